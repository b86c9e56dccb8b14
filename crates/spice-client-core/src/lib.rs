//! A sans-IO SPICE client core: channels, caches, surfaces and decoding.
//!
//! The core never opens sockets, starts threads or reads a clock. An embedder creates a
//! [`Session`], opens one connection per [`Event::OpenChannel`], feeds received bytes to
//! [`Session::receive`], sends what [`Session::transmit`] gives, and calls
//! [`Session::handle_timeout`] at [`Session::next_deadline`]. [`blocking`] is such an
//! embedder over std TCP sockets, [`tokio_driver`] one over tokio (feature `tokio`).
//!
//! - [`session`]: the session, the main channel, ACK windows, ping, agent data, inputs.
//! - [`agent`]: the guest agent: clipboard, monitors config, file transfer.
//! - [`display`]: display channels rendered through `spice-canvas`.
//! - [`cursor`]: cursor shapes of every type decoded to RGBA, the cursor cache.
//! - [`playback`], [`record`]: the audio channels (raw and Opus).
//! - [`spicevmc`]: usbredir, smartcard, port and webdav passthrough channels.
//! - [`uri`]: `spice://` URIs as remote-viewer takes them.

pub mod agent;
#[cfg(feature = "blocking")]
pub mod blocking;
pub mod cursor;
pub mod display;
#[cfg(any(feature = "blocking", feature = "tokio"))]
pub mod driver;
pub mod error;
pub mod event;
pub mod playback;
pub mod record;
pub mod session;
pub mod spicevmc;
pub mod testing;
#[cfg(feature = "tokio")]
pub mod tokio_driver;
pub mod uri;

pub use error::{ChannelError, SessionError};
pub use event::Event;
pub use session::{ChannelSelection, ConnId, Session, SessionConfig};
/// A display surface as the session keeps it (pixels `0xAARRGGBB`, see
/// [`Session::surface`]).
pub use spice_canvas::Surface;
pub use uri::SpiceUri;
