//! The SPICE wire protocol, sans-IO.
//!
//! - [`wire`]: read cursor, write buffer, [`wire::Encode`] / [`wire::Decode`].
//! - [`link`], [`caps`], [`ticket`]: the link stage (header, link message and reply,
//!   capabilities, auth mechanism, RSA ticket).
//! - [`header`], [`framer`]: full and mini data headers; a framer that says how many bytes
//!   it still needs.
//! - [`base`] and one module per channel ([`main`], [`display`], [`inputs`], [`cursor`],
//!   [`playback`], [`record`], [`smartcard`], [`spicevmc`]): typed messages, both directions.
//! - [`types`]: the display types shared by display and cursor messages.
//! - [`agent`]: the VDAgent protocol carried in main-channel agent data.
//! - [`messages`]: decode/encode of any message given its channel and direction.
//!
//! No sockets, no threads, no clock: bytes in, typed values and bytes out.

pub mod agent;
pub mod base;
pub mod caps;
pub mod channel;
pub mod cursor;
pub mod display;
pub mod error;
pub mod framer;
pub mod header;
pub mod inputs;
pub mod link;
#[path = "main_channel.rs"]
pub mod main;
pub mod message;
pub mod messages;
pub mod playback;
pub mod record;
pub mod smartcard;
pub mod spicevmc;
pub mod ticket;
pub mod types;
pub mod wire;

pub use channel::{ChannelType, Direction};
pub use error::{DecodeError, EncodeError, MessageError};
pub use message::ChannelMessage;
pub use wire::{Decode, Encode, ReadCursor, WriteBuf};
