//! The contract every per-channel message enum fulfils.

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::wire::WriteBuf;

/// One direction's messages of one channel (or of the base channel), as a typed enum.
///
/// The message number lives in exactly one place: the implementation of `msg_type` and the
/// `match` in `decode_body`; `spec/messages.csv` is checked against both.
pub trait ChannelMessage<'a>: Sized {
    /// The message type number written in the data header.
    fn msg_type(&self) -> u16;

    /// The message's name as spice.proto spells it (for example `"draw_copy"`).
    fn name(&self) -> &'static str;

    /// Decodes one whole message body. `channel` tells the SpiceVMC family apart (usbredir
    /// has no port messages); other channels ignore it. Unknown types give
    /// [`DecodeError::UnknownMessage`]; bodies must be consumed exactly, apart from the peer
    /// quirks documented where they are handled.
    fn decode_body(channel: ChannelType, msg_type: u16, body: &'a [u8]) -> Result<Self, DecodeError>;

    /// Appends the message body (without any data header) to `w`.
    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError>;

    /// The name of message `msg_type` on `channel`, or `None` when it is not defined.
    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str>;
}
