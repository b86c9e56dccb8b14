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
//! - [`playback`], [`record`]: the audio channels (PCM from / to the host's audio devices,
//!   raw or Opus); [`demo_audio`]: a demo host tone.
//! - [`agent`]: the agent relay between main channels and the host's agent device.
//! - [`demo_agent`]: the demo host's guest agent (clipboard, monitors, file transfer).
//! - [`transport`]: TLS and WebSocket layers.
//! - [`demo`]: the demo desktop, a guest driving spice-qxl's guest side.
//! - [`display`]: the display pipeline (display worker per QXL device, display channel).
//! - [`spicevmc`]: the usbredir, smartcard, port and webdav passthrough channels, one per
//!   host character device.
//! - [`test_client`]: a minimal blocking client for tests of the server and its channels.

pub mod agent;
pub mod channel;
pub mod config;
pub mod cursor;
pub mod demo;
pub mod demo_agent;
pub mod demo_audio;
pub mod display;
pub mod host;
pub mod inputs;
pub mod main_channel;
pub mod playback;
pub mod record;
pub mod server;
pub mod session;
pub mod spicevmc;
pub mod test_client;
pub mod testing;
pub mod transport;
