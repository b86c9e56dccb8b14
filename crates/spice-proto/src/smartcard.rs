//! Smartcard channel (8) (spice.proto `SmartcardChannel`, protocol.md §2.8).
//!
//! Both directions carry one message, `DATA` (101): a VSC message header
//! (`u32 type; u32 reader_id; u32 length`, little-endian on the SPICE wire — spice-server
//! converts it from/to the network byte order the smartcard device uses) followed by
//! `length` bytes of libcacard VSC payload, which is passed through untouched.
//! (spice-protocol's other `SPICE_MSGC_SMARTCARD_*` = 101 aliases are historic and
//! not separate messages.)

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::wire::{ReadCursor, WriteBuf};

/// `vsc_message_type` (u32): the kind of VSC message. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VscMessageType(pub u32);

impl VscMessageType {
    /// 1: `VSC_Init`.
    pub const INIT: Self = Self(1);
    /// 2: `VSC_Error`.
    pub const ERROR: Self = Self(2);
    /// 3: `VSC_ReaderAdd`.
    pub const READER_ADD: Self = Self(3);
    /// 4: `VSC_ReaderRemove`.
    pub const READER_REMOVE: Self = Self(4);
    /// 5: `VSC_ATR` (card inserted, answer to reset).
    pub const ATR: Self = Self(5);
    /// 6: `VSC_CardRemove`.
    pub const CARD_REMOVE: Self = Self(6);
    /// 7: `VSC_APDU`.
    pub const APDU: Self = Self(7);
    /// 8: `VSC_Flush`.
    pub const FLUSH: Self = Self(8);
    /// 9: `VSC_FlushComplete`.
    pub const FLUSH_COMPLETE: Self = Self(9);
}

/// The body of a smartcard `DATA` message: the VSC header fields and the borrowed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartcardData<'a> {
    /// The VSC message type.
    pub msg_type: VscMessageType,
    /// The reader the message is about.
    pub reader_id: u32,
    /// The VSC payload (`length` bytes on the wire).
    pub data: &'a [u8],
}

impl<'a> SmartcardData<'a> {
    /// `u32 type + u32 reader_id + u32 length`.
    pub const HEADER_SIZE: usize = 4 + 4 + 4;

    /// Reads the header and exactly `length` payload bytes.
    pub fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(Self::HEADER_SIZE, "smartcard data header")?;
        let msg_type = VscMessageType(r.read_u32("smartcard data.type")?);
        let reader_id = r.read_u32("smartcard data.reader_id")?;
        let length = r.read_u32("smartcard data.length")?;
        let length = r.check_count(length.into(), 1, "smartcard data.data")?;
        let data = r.read_slice(length, "smartcard data.data")?;
        Ok(Self {
            msg_type,
            reader_id,
            data,
        })
    }

    /// Writes the header (with `length` = payload size) and the payload.
    pub fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(self.msg_type.0);
        w.write_u32(self.reader_id);
        w.write_u32(WriteBuf::len_as(self.data.len(), "smartcard data.length")?);
        w.write_slice(self.data);
        Ok(())
    }
}

/// `DATA` message number (both directions).
pub const DATA: u16 = 101;

macro_rules! smartcard_message {
    ($(#[$doc:meta])* $name:ident, $fuzz:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name<'a> {
            /// 101 `DATA`: one VSC message.
            Data(SmartcardData<'a>),
        }

        impl<'a> ChannelMessage<'a> for $name<'a> {
            fn msg_type(&self) -> u16 {
                match self {
                    Self::Data(_) => DATA,
                }
            }

            fn name(&self) -> &'static str {
                "data"
            }

            fn decode_body(_channel: ChannelType, msg_type: u16, body: &'a [u8]) -> Result<Self, DecodeError> {
                if msg_type != DATA {
                    return Err(DecodeError::UnknownMessage { msg_type });
                }
                let mut r = ReadCursor::new(body);
                let d = SmartcardData::decode(&mut r)?;
                r.finish("smartcard data")?;
                Ok(Self::Data(d))
            }

            fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
                match self {
                    Self::Data(d) => d.encode(w),
                }
            }

            fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
                (msg_type == DATA).then_some("data")
            }
        }

        /// Fuzz entry: `data` = message type (u16 LE) + body of a smartcard message.
        #[doc(hidden)]
        pub fn $fuzz(data: &[u8]) {
            crate::message::fuzz_roundtrip!($name, ChannelType::SMARTCARD, data);
        }
    };
}

smartcard_message!(
    /// Server → client smartcard messages (from the emulated card device).
    ServerMessage,
    fuzz_server
);
smartcard_message!(
    /// Client → server smartcard messages (from the client's card reader).
    ClientMessage,
    fuzz_client
);

/// proptest strategies covering both directions.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::prelude::*;

    fn data() -> impl Strategy<Value = SmartcardData<'static>> {
        (1u32..12, any::<u32>(), leaked_bytes(0..64)).prop_map(|(t, reader_id, data)| {
            SmartcardData {
                msg_type: VscMessageType(t),
                reader_id,
                data,
            }
        })
    }

    /// Every server smartcard message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        data().prop_map(ServerMessage::Data).boxed()
    }

    /// Every client smartcard message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        data().prop_map(ClientMessage::Data).boxed()
    }
}
