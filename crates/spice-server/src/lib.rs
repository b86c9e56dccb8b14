//! A reference SPICE server composed from spice-proto, spice-codecs and spice-qxl.
//!
//! - [`channel`]: the sans-IO per-connection [`channel::ChannelCore`] and the
//!   [`channel::ChannelHandler`] / [`channel::ChannelFactory`] traits every channel
//!   implements (the plug-in point for display channels).
//! - [`session`]: per-client sessions shared by a client's channels.
//! - [`display`]: the display pipeline (display worker per QXL device, display channel).

pub mod channel;
pub mod display;
pub mod session;
