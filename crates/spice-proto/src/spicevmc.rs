//! The SpiceVMC channel family: usbredir (9), port (10) and webdav (11)
//! (spice.proto `SpicevmcChannel`, `PortChannel`; protocol.md §2.9).
//!
//! All three carry opaque `DATA` and `COMPRESSED_DATA`; port and webdav add `PORT_INIT` and
//! `PORT_EVENT`. The channel passed to [`ChannelMessage::decode_body`] decides whether the
//! port messages exist: on usbredir they are [`DecodeError::UnknownMessage`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::{ChannelMessage, finish_at};
use crate::wire::{ReadCursor, WriteBuf};

/// `data_compression_type` (u8). Unknown values are kept (and, like LZ4, carry an
/// `uncompressed_size`, since the wire only special-cases NONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataCompressionType(pub u8);

impl DataCompressionType {
    /// 0: not compressed; no `uncompressed_size` on the wire.
    pub const NONE: Self = Self(0);
    /// 1: LZ4 block (`SPICEVMC_CAP_DATA_COMPRESS_LZ4`).
    pub const LZ4: Self = Self(1);
}

/// Port event (u8) of `PORT_EVENT`. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortEvent(pub u8);

impl PortEvent {
    /// 0: the port was opened.
    pub const OPENED: Self = Self(0);
    /// 1: the port was closed.
    pub const CLOSED: Self = Self(1);
    /// 2: a break condition.
    pub const BREAK: Self = Self(2);
}

/// `CompressedData`: `u8 type; [u32 uncompressed_size if type != NONE]; u8 data[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedData<'a> {
    /// The compression.
    pub compression: DataCompressionType,
    /// Size after decompression; must be 0 when `compression` is NONE (not on the wire).
    pub uncompressed_size: u32,
    /// The (compressed) payload, borrowed.
    pub data: &'a [u8],
}

impl<'a> CompressedData<'a> {
    /// Reads the whole rest of the body.
    pub fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        let compression = DataCompressionType(r.read_u8("compressed_data.type")?);
        let uncompressed_size = if compression == DataCompressionType::NONE {
            0
        } else {
            r.read_u32("compressed_data.uncompressed_size")?
        };
        Ok(Self {
            compression,
            uncompressed_size,
            data: r.read_rest(),
        })
    }

    /// Writes the message; a non-zero `uncompressed_size` with NONE is
    /// [`EncodeError::Inconsistent`].
    pub fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u8(self.compression.0);
        if self.compression == DataCompressionType::NONE {
            if self.uncompressed_size != 0 {
                return Err(EncodeError::Inconsistent {
                    field: "compressed_data.uncompressed_size",
                });
            }
        } else {
            w.write_u32(self.uncompressed_size);
        }
        w.write_slice(self.data);
        Ok(())
    }
}

/// `PORT_INIT`: `u32 name_size; u32 name_ptr (non-NULL) → u8 name[name_size]; u8 opened`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInit<'a> {
    /// The port name as sent, normally NUL-terminated (e.g. `org.spice-space.webdav.0\0`).
    pub name: &'a [u8],
    /// Non-zero when the guest side of the port is open.
    pub opened: u8,
}

impl PortInit<'_> {
    /// The name without its terminating NUL (and anything after a NUL).
    pub fn name_str(&self) -> &[u8] {
        self.name.split(|&b| b == 0).next().unwrap_or_default()
    }
}

const DATA: u16 = 101;
const COMPRESSED_DATA: u16 = 102;
const PORT_INIT: u16 = 201;
const PORT_EVENT_S2C: u16 = 202;
const PORT_EVENT_C2S: u16 = 201;

fn has_port(channel: ChannelType) -> bool {
    channel == ChannelType::PORT || channel == ChannelType::WEBDAV
}

/// Server → client SpiceVMC messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// 101 `DATA`: opaque payload (usbredir protocol, port bytes, webdav multiplex).
    Data(&'a [u8]),
    /// 102 `COMPRESSED_DATA`.
    CompressedData(CompressedData<'a>),
    /// 201 `PORT_INIT` (port, webdav).
    PortInit(PortInit<'a>),
    /// 202 `PORT_EVENT` (port, webdav).
    PortEvent(PortEvent),
}

impl ServerMessage<'_> {
    /// 101
    pub const DATA: u16 = DATA;
    /// 102
    pub const COMPRESSED_DATA: u16 = COMPRESSED_DATA;
    /// 201
    pub const PORT_INIT: u16 = PORT_INIT;
    /// 202
    pub const PORT_EVENT: u16 = PORT_EVENT_S2C;
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Data(_) => DATA,
            Self::CompressedData(_) => COMPRESSED_DATA,
            Self::PortInit(_) => PORT_INIT,
            Self::PortEvent(_) => PORT_EVENT_S2C,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::PORT, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        if Self::name_of(channel, msg_type).is_none() {
            return Err(DecodeError::UnknownMessage { msg_type });
        }
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            DATA => Self::Data(r.read_rest()),
            COMPRESSED_DATA => Self::CompressedData(CompressedData::decode(&mut r)?),
            PORT_INIT => {
                // u32 name_size + u32 name_ptr + u8 opened
                r.ensure(4 + 4 + 1, "port init")?;
                let size = r.read_u32("port init.name_size")?;
                let ptr = r.read_u32("port init.name")?;
                let opened = r.read_u8("port init.opened")?;
                if ptr == 0 {
                    return Err(DecodeError::NullPointer {
                        field: "port init.name",
                    });
                }
                let mut p = r.at_offset(ptr, "port init.name")?;
                let size = p.check_count(size.into(), 1, "port init.name_size")?;
                let name = p.read_slice(size, "port init.name")?;
                finish_at(body.len(), r.pos().max(p.pos()), "port init")?;
                return Ok(Self::PortInit(PortInit { name, opened }));
            }
            PORT_EVENT_S2C => Self::PortEvent(PortEvent(r.read_u8("port event.event")?)),
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("spicevmc server message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Data(d) => w.write_slice(d),
            Self::CompressedData(c) => c.encode(w)?,
            Self::PortInit(p) => {
                w.write_u32(WriteBuf::len_as(p.name.len(), "port init.name_size")?);
                let slot = w.reserve_ptr();
                w.write_u8(p.opened);
                w.patch_ptr(slot, "port init.name")?;
                w.write_slice(p.name);
            }
            Self::PortEvent(e) => w.write_u8(e.0),
        }
        Ok(())
    }

    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            DATA => "data",
            COMPRESSED_DATA => "compressed_data",
            PORT_INIT if has_port(channel) => "init",
            PORT_EVENT_S2C if has_port(channel) => "event",
            _ => return None,
        })
    }
}

/// Client → server SpiceVMC messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// 101 `DATA`: opaque payload.
    Data(&'a [u8]),
    /// 102 `COMPRESSED_DATA`.
    CompressedData(CompressedData<'a>),
    /// 201 `PORT_EVENT` (port, webdav): the client opened/closed its end.
    PortEvent(PortEvent),
}

impl ClientMessage<'_> {
    /// 101
    pub const DATA: u16 = DATA;
    /// 102
    pub const COMPRESSED_DATA: u16 = COMPRESSED_DATA;
    /// 201
    pub const PORT_EVENT: u16 = PORT_EVENT_C2S;
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Data(_) => DATA,
            Self::CompressedData(_) => COMPRESSED_DATA,
            Self::PortEvent(_) => PORT_EVENT_C2S,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::PORT, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        if Self::name_of(channel, msg_type).is_none() {
            return Err(DecodeError::UnknownMessage { msg_type });
        }
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            DATA => Self::Data(r.read_rest()),
            COMPRESSED_DATA => Self::CompressedData(CompressedData::decode(&mut r)?),
            PORT_EVENT_C2S => Self::PortEvent(PortEvent(r.read_u8("port event.event")?)),
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("spicevmc client message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Data(d) => w.write_slice(d),
            Self::CompressedData(c) => c.encode(w)?,
            Self::PortEvent(e) => w.write_u8(e.0),
        }
        Ok(())
    }

    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            DATA => "data",
            COMPRESSED_DATA => "compressed_data",
            PORT_EVENT_C2S if has_port(channel) => "event",
            _ => return None,
        })
    }
}

fn fuzz_channel(data: &[u8]) -> Option<(ChannelType, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    let channel = [
        ChannelType::USBREDIR,
        ChannelType::PORT,
        ChannelType::WEBDAV,
    ][usize::from(sel % 3)];
    Some((channel, rest))
}

/// Fuzz entry: first byte selects usbredir/port/webdav (mod 3), then message type (u16 LE)
/// and body of a server SpiceVMC message.
#[doc(hidden)]
pub fn fuzz_server(data: &[u8]) {
    if let Some((channel, rest)) = fuzz_channel(data) {
        crate::message::fuzz_roundtrip!(ServerMessage, channel, rest);
    }
}

/// Fuzz entry: as [`fuzz_server`], for client SpiceVMC messages.
#[doc(hidden)]
pub fn fuzz_client(data: &[u8]) {
    if let Some((channel, rest)) = fuzz_channel(data) {
        crate::message::fuzz_roundtrip!(ClientMessage, channel, rest);
    }
}

/// proptest strategies covering every message of both directions (port messages included;
/// decode those with [`ChannelType::PORT`] or [`ChannelType::WEBDAV`]).
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::prelude::*;

    fn compressed() -> impl Strategy<Value = CompressedData<'static>> {
        prop_oneof![
            leaked_bytes(0..64).prop_map(|data| CompressedData {
                compression: DataCompressionType::NONE,
                uncompressed_size: 0,
                data
            }),
            (1u8..=255, any::<u32>(), leaked_bytes(0..64)).prop_map(
                |(t, uncompressed_size, data)| {
                    CompressedData {
                        compression: DataCompressionType(t),
                        uncompressed_size,
                        data,
                    }
                }
            ),
        ]
    }

    /// Every server SpiceVMC message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            leaked_bytes(0..64).prop_map(ServerMessage::Data),
            compressed().prop_map(ServerMessage::CompressedData),
            (leaked_bytes(0..32), any::<u8>())
                .prop_map(|(name, opened)| ServerMessage::PortInit(PortInit { name, opened })),
            any::<u8>().prop_map(|e| ServerMessage::PortEvent(PortEvent(e))),
        ]
        .boxed()
    }

    /// Every client SpiceVMC message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            leaked_bytes(0..64).prop_map(ClientMessage::Data),
            compressed().prop_map(ClientMessage::CompressedData),
            any::<u8>().prop_map(|e| ClientMessage::PortEvent(PortEvent(e))),
        ]
        .boxed()
    }
}
