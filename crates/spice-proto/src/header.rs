//! Data message headers: the 18-byte full header and the 6-byte mini header.
//!
//! The mini header is used iff both sides advertised `COMMON_CAP_MINI_HEADER`
//! ([`crate::caps::negotiate_mini_header`]); it carries no serial (the receiver counts
//! messages from 1) and no sub-message list.

use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::wire::{Decode, Encode, ReadCursor, WriteBuf};

/// `SpiceDataHeader` (18 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataHeader {
    /// Per-direction serial, from 1.
    pub serial: u64,
    /// Message type.
    pub msg_type: u16,
    /// Body bytes that follow.
    pub size: u32,
    /// 0, or the body offset of a `SpiceSubMessageList` appended to the body.
    pub sub_list: u32,
}

impl DataHeader {
    /// Wire size: serial (8) + type (2) + size (4) + sub_list (4).
    pub const SIZE: usize = 8 + 2 + 4 + 4;
}

impl Encode for DataHeader {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u64(self.serial);
        w.write_u16(self.msg_type);
        w.write_u32(self.size);
        w.write_u32(self.sub_list);
        Ok(())
    }
}

impl<'a> Decode<'a> for DataHeader {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "data_header")?;
        Ok(Self {
            serial: r.read_u64("data_header.serial")?,
            msg_type: r.read_u16("data_header.type")?,
            size: r.read_u32("data_header.size")?,
            sub_list: r.read_u32("data_header.sub_list")?,
        })
    }
}

/// `SpiceMiniDataHeader` (6 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MiniHeader {
    /// Message type.
    pub msg_type: u16,
    /// Body bytes that follow.
    pub size: u32,
}

impl MiniHeader {
    /// Wire size: type (2) + size (4).
    pub const SIZE: usize = 2 + 4;
}

impl Encode for MiniHeader {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u16(self.msg_type);
        w.write_u32(self.size);
        Ok(())
    }
}

impl<'a> Decode<'a> for MiniHeader {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "mini_header")?;
        Ok(Self {
            msg_type: r.read_u16("mini_header.type")?,
            size: r.read_u32("mini_header.size")?,
        })
    }
}

/// Which data header a channel uses after the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// 18-byte [`DataHeader`].
    Full,
    /// 6-byte [`MiniHeader`].
    Mini,
}

impl HeaderKind {
    /// The kind negotiated in the link stage (`mini_header` from
    /// [`crate::link::LinkOutcome`]).
    pub fn from_mini(mini_header: bool) -> Self {
        if mini_header { Self::Mini } else { Self::Full }
    }

    /// Header size in bytes.
    pub fn size(self) -> usize {
        match self {
            HeaderKind::Full => DataHeader::SIZE,
            HeaderKind::Mini => MiniHeader::SIZE,
        }
    }
}

/// Appends one data message to `out`: the header (with `serial` for the full header; the
/// mini header has none), then the body written by `body`, then patches the header's size.
/// On error `out` is left as it was.
pub fn write_message<F>(
    out: &mut Vec<u8>,
    kind: HeaderKind,
    serial: u64,
    msg_type: u16,
    body: F,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut WriteBuf<'_>) -> Result<(), EncodeError>,
{
    let start = out.len();
    let res = (|| {
        {
            let mut w = WriteBuf::new(out);
            match kind {
                HeaderKind::Full => DataHeader {
                    serial,
                    msg_type,
                    size: 0,
                    sub_list: 0,
                }
                .encode(&mut w)?,
                HeaderKind::Mini => MiniHeader { msg_type, size: 0 }.encode(&mut w)?,
            }
        }
        let body_start = out.len();
        body(&mut WriteBuf::new(out))?;
        let size: u32 = WriteBuf::len_as(out.len() - body_start, "data_header.size")?;
        let at = match kind {
            HeaderKind::Full => start + 10,
            HeaderKind::Mini => start + 2,
        };
        out[at..at + 4].copy_from_slice(&size.to_le_bytes());
        Ok(())
    })();
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// Appends a typed message with its header (see [`write_message`]).
pub fn write_channel_message<'a, M: ChannelMessage<'a>>(
    out: &mut Vec<u8>,
    kind: HeaderKind,
    serial: u64,
    msg: &M,
) -> Result<(), EncodeError> {
    write_message(out, kind, serial, msg.msg_type(), |w| msg.encode_body(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_exact;

    #[test]
    fn full_header_layout() {
        let h = DataHeader {
            serial: 0x0102030405060708,
            msg_type: 0x0a0b,
            size: 0x11223344,
            sub_list: 0x55667788,
        };
        let b = h.to_vec().unwrap();
        assert_eq!(
            b,
            [
                8, 7, 6, 5, 4, 3, 2, 1, 0x0b, 0x0a, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55
            ]
        );
        assert_eq!(decode_exact::<DataHeader>(&b, "h").unwrap(), h);
        assert!(decode_exact::<DataHeader>(&b[..17], "h").is_err());
    }

    #[test]
    fn write_message_patches_size_and_rolls_back() {
        // Appendix A: client ATTACH_CHANNELS with mini header = 68 00 00 00 00 00.
        let mut out = vec![0xee];
        write_message(&mut out, HeaderKind::Mini, 1, 104, |_| Ok(())).unwrap();
        assert_eq!(out, [0xee, 0x68, 0, 0, 0, 0, 0]);
        write_message(&mut out, HeaderKind::Full, 7, 3, |w| {
            w.write_u32(9);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            &out[7..],
            &[
                7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0
            ]
        );
        let before = out.clone();
        let err = write_message(&mut out, HeaderKind::Mini, 1, 1, |w| {
            w.write_u32(1);
            Err(EncodeError::Inconsistent { field: "x" })
        });
        assert!(err.is_err());
        assert_eq!(out, before);
    }
}
