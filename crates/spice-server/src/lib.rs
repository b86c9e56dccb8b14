//! A reference SPICE server composed from spice-proto, spice-codecs and spice-qxl.
//!
//! - [`channel`]: the sans-IO per-connection [`channel::ChannelCore`] and the
//!   [`channel::ChannelHandler`] / [`channel::ChannelFactory`] traits every channel
//!   implements (the plug-in point for display channels).
//! - [`session`]: per-client sessions shared by a client's channels.
//! - [`config`]: [`config::ServerConfig`] and its builder (libspice's settings).
//! - [`host`]: host device traits (keyboard, mouse, tablet, audio, character devices).
//! - [`server`]: the driver (listeners, link stage, sessions, routing):
//!   [`server::ServerBuilder`] → [`server::Server`].
//! - [`main_channel`], [`inputs`], [`cursor`]: the built-in channels.
//! - [`spicevmc`]: the usbredir, smartcard, port and webdav passthrough channels, one per
//!   host character device.
//! - [`transport`]: TLS and WebSocket layers.
//! - [`display`]: the display pipeline (display worker per QXL device, display channel).
//! - `demo`: the demo desktop (qxl-convert).
//! - [`test_client`]: a minimal blocking client for tests of the server and its channels.

pub mod channel;
pub mod config;
pub mod cursor;
pub mod demo;
pub mod display;
pub mod host;
pub mod inputs;
pub mod main_channel;
pub mod server;
pub mod session;
pub mod spicevmc;
pub mod test_client;
pub mod transport;
