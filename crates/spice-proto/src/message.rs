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
    fn decode_body(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError>;

    /// Appends the message body (without any data header) to `w`.
    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError>;

    /// The name of message `msg_type` on `channel`, or `None` when it is not defined.
    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str>;
}

/// Fuzz/replay round trip for one message enum: decodes `data` (first two bytes: the message
/// type, little-endian; the rest: the body) on `channel`; when that succeeds, encodes the
/// value, decodes the encoding again and checks that both values and both encodings agree.
///
/// Expands to concrete code per enum, so the borrowed lifetimes of the two decodes need no
/// higher-ranked bounds. Used by the `fuzz_*` functions of the channel modules.
macro_rules! fuzz_roundtrip {
    ($ty:ident, $channel:expr, $data:expr) => {{
        use $crate::message::ChannelMessage as _;
        let data: &[u8] = $data;
        let channel: $crate::channel::ChannelType = $channel;
        if data.len() >= 2 {
            let msg_type = u16::from_le_bytes([data[0], data[1]]);
            if let Ok(first) = $ty::decode_body(channel, msg_type, &data[2..]) {
                assert_eq!(
                    first.msg_type(),
                    msg_type,
                    "decoded message reports another type"
                );
                assert!(
                    $ty::name_of(channel, msg_type).is_some(),
                    "decoded an unnamed message"
                );
                let mut bytes = Vec::new();
                first
                    .encode_body(&mut $crate::wire::WriteBuf::new(&mut bytes))
                    .expect("a decoded message must encode");
                let second = $ty::decode_body(channel, msg_type, &bytes)
                    .expect("an encoded message must decode");
                assert_eq!(first, second, "decode(encode(m)) != m");
                let mut again = Vec::new();
                second
                    .encode_body(&mut $crate::wire::WriteBuf::new(&mut again))
                    .expect("a decoded message must encode");
                assert_eq!(bytes, again, "encoding is not canonical");
            }
        }
    }};
}
pub(crate) use fuzz_roundtrip;

/// Checks that the data read by a body with pointers ends exactly at the end of the body:
/// `end` is the furthest byte any field or pointee reached.
pub(crate) fn finish_at(body_len: usize, end: usize, ctx: &'static str) -> Result<(), DecodeError> {
    if end < body_len {
        Err(DecodeError::TrailingBytes {
            field: ctx,
            extra: body_len - end,
        })
    } else {
        Ok(())
    }
}

/// Shared pieces of the per-channel proptest strategies.
#[cfg(feature = "proptest")]
#[doc(hidden)]
pub mod strategies {
    use proptest::prelude::*;

    /// Random bytes leaked to `'static`, for borrowed payloads in generated messages.
    pub fn leaked_bytes(len: core::ops::Range<usize>) -> BoxedStrategy<&'static [u8]> {
        proptest::collection::vec(any::<u8>(), len)
            .prop_map(|v| &*Vec::leak(v))
            .boxed()
    }
}
