//! Typed errors. Decoding errors name the field; message-level errors add the channel,
//! the direction and the message, so a caller can log exactly what a peer got wrong.

use crate::channel::{ChannelType, Direction};

/// A failure to read a wire value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The data ended before a field was complete.
    #[error("{field}: needs {needed} bytes, only {available} left")]
    NotEnoughBytes {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A count read from the wire cannot fit in the bytes that remain.
    #[error("{field}: count {count} does not fit in the {available} bytes left")]
    CountTooLarge {
        /// The counted field.
        field: &'static str,
        /// The count read from the wire.
        count: u64,
        /// Bytes that were left.
        available: usize,
    },
    /// A pointer (offset from the start of the message body) points outside the message.
    #[error("{field}: offset {offset} outside the {len}-byte message")]
    OffsetOutOfRange {
        /// The pointer field.
        field: &'static str,
        /// The offset read from the wire.
        offset: u32,
        /// Length of the message body.
        len: usize,
    },
    /// A pointer that must not be NULL was 0.
    #[error("{field}: NULL pointer where a value is required")]
    NullPointer {
        /// The pointer field.
        field: &'static str,
    },
    /// A field holds a value the protocol does not allow.
    #[error("{field}: invalid value {value}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value read (widened).
        value: u64,
    },
    /// Bytes are left that no field accounts for.
    #[error("{field}: {extra} trailing bytes")]
    TrailingBytes {
        /// The structure that was complete.
        field: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A message type this channel does not define.
    #[error("unknown message type {msg_type}")]
    UnknownMessage {
        /// The type number from the header.
        msg_type: u16,
    },
    /// Nesting deeper than the protocol allows (guards against hostile recursion).
    #[error("{field}: nested too deeply")]
    TooDeep {
        /// The recursive structure.
        field: &'static str,
    },
}

/// A failure to write a wire value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A length or count does not fit in its wire field.
    #[error("{field}: {value} does not fit in its wire field")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value that did not fit.
        value: u64,
    },
    /// The value is inconsistent (for example a flag says a field is present but it is not).
    #[error("{field}: inconsistent value")]
    Inconsistent {
        /// The field.
        field: &'static str,
    },
    /// The message cannot be sent on this channel or in this direction.
    #[error("message {msg_type} is not defined on channel {channel}")]
    WrongChannel {
        /// The channel.
        channel: ChannelType,
        /// The message type.
        msg_type: u16,
    },
}

/// A failure of one message: which channel, direction and message, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{channel} {direction} message {msg_type} ({name}): {source}")]
pub struct MessageError {
    /// The channel the message was on.
    pub channel: ChannelType,
    /// Who sent it.
    pub direction: Direction,
    /// The message type from the header.
    pub msg_type: u16,
    /// The message's name, or `"unknown"`.
    pub name: &'static str,
    /// What was wrong with it.
    #[source]
    pub source: DecodeError,
}
