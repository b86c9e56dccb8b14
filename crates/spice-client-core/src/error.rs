//! Errors of the client core.

use spice_proto::ChannelType;
use spice_proto::framer::FrameError;
use spice_proto::link::LinkError;
use spice_proto::{EncodeError, MessageError};

use crate::session::ConnId;

/// Why one channel connection failed. Reported in [`crate::Event::ChannelError`]; the
/// connection is closed afterwards (the embedder drops its socket).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The link stage failed (refused by the server, bad reply, bad password).
    #[error("link: {0}")]
    Link(#[from] LinkError),
    /// A data header announced a message larger than the configured limit.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A message body could not be decoded.
    #[error("{0}")]
    Message(#[from] MessageError),
    /// A message this client cannot act on (named, with details).
    #[error("{channel} message {msg}: {detail}")]
    Protocol {
        /// The channel.
        channel: ChannelType,
        /// Message name.
        msg: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Rendering a display message failed (bad image data, unknown surface, ...).
    #[error("display {msg}: {detail}")]
    Render {
        /// Message name.
        msg: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A reply could not be encoded (only on internal inconsistencies).
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The server closed the channel with `DISCONNECTING`.
    #[error("server disconnecting: {reason}")]
    ServerDisconnecting {
        /// The server's reason (a link error code).
        reason: spice_proto::link::LinkErr,
    },
    /// The input buffer of a connection paused by `WAIT_FOR_CHANNELS` grew past the limit.
    #[error("{buffered} bytes buffered while waiting for another channel")]
    WaitOverflow {
        /// Bytes held.
        buffered: usize,
    },
}

/// A call on the session API that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No connection with this id.
    #[error("unknown connection {0:?}")]
    UnknownConnection(ConnId),
    /// The channel needed for the call is not linked (yet, or any more).
    #[error("no linked {0} channel")]
    NotConnected(ChannelType),
    /// A message could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The channel is linked but not in a state for the call (record data before the
    /// server's `RECORD_START`, say).
    #[error("{0} channel not active")]
    NotActive(ChannelType),
    /// The session configuration is invalid (password too long, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
}
