//! The core of the wire format: a read cursor over a borrowed message body, a growable
//! write buffer that knows where the body starts (SPICE pointers are offsets from there),
//! and the [`Encode`] / [`Decode`] traits every wire type implements.
//!
//! Everything on the SPICE wire is little-endian and packed (no padding). The only
//! big-endian data are the LZ/GLZ stream headers, which belong to `spice-codecs`.

use crate::error::{DecodeError, EncodeError};

/// A read cursor over one whole message body (or any other borrowed byte string).
///
/// The cursor keeps the whole body so that SPICE pointers, which are `u32` offsets from the
/// start of the body, can be followed with [`ReadCursor::at_offset`]. Reads never panic: each
/// returns [`DecodeError::NotEnoughBytes`] when the data runs out.
#[derive(Debug, Clone)]
pub struct ReadCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! read_le {
    ($($name:ident, $peek:ident => $ty:ty;)*) => {$(
        #[doc = concat!("Reads a little-endian `", stringify!($ty), "`; `ctx` names the field for errors.")]
        #[inline]
        pub fn $name(&mut self, ctx: &'static str) -> Result<$ty, DecodeError> {
            let bytes = self.read_array::<{ core::mem::size_of::<$ty>() }>(ctx)?;
            Ok(<$ty>::from_le_bytes(bytes))
        }

        #[doc = concat!("Reads a little-endian `", stringify!($ty), "` without advancing.")]
        #[inline]
        pub fn $peek(&self, ctx: &'static str) -> Result<$ty, DecodeError> {
            self.clone().$name(ctx)
        }
    )*};
}

impl<'a> ReadCursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A new cursor over the same buffer at absolute `offset` (a SPICE pointer value).
    /// Fails with [`DecodeError::OffsetOutOfRange`] when `offset` lies past the end.
    pub fn at_offset(&self, offset: u32, ctx: &'static str) -> Result<ReadCursor<'a>, DecodeError> {
        let off = offset as usize;
        if off > self.buf.len() {
            return Err(DecodeError::OffsetOutOfRange {
                field: ctx,
                offset,
                len: self.buf.len(),
            });
        }
        Ok(ReadCursor {
            buf: self.buf,
            pos: off,
        })
    }

    /// The whole underlying buffer (the message body).
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// Current position from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`DecodeError::NotEnoughBytes`] unless `n` more bytes are available.
    /// Call once per fixed part, before reading its fields.
    #[inline]
    pub fn ensure(&self, n: usize, ctx: &'static str) -> Result<(), DecodeError> {
        if self.remaining() < n {
            Err(DecodeError::NotEnoughBytes {
                field: ctx,
                needed: n,
                available: self.remaining(),
            })
        } else {
            Ok(())
        }
    }

    /// Checks that `count` items of at least `min_item_size` bytes each can still fit in
    /// what remains, before anything is allocated for them. Returns `count` as `usize`.
    ///
    /// This is the guard against unbounded allocation: a count read from the wire is never
    /// trusted beyond the bytes that are actually present.
    #[inline]
    pub fn check_count(
        &self,
        count: u64,
        min_item_size: usize,
        ctx: &'static str,
    ) -> Result<usize, DecodeError> {
        let total = (count as u128) * (min_item_size.max(1) as u128);
        if total > self.remaining() as u128 {
            return Err(DecodeError::CountTooLarge {
                field: ctx,
                count,
                available: self.remaining(),
            });
        }
        Ok(count as usize)
    }

    /// Advances by `n` bytes.
    pub fn skip(&mut self, n: usize, ctx: &'static str) -> Result<(), DecodeError> {
        self.ensure(n, ctx)?;
        self.pos += n;
        Ok(())
    }

    /// Borrows the next `n` bytes (no copy).
    #[inline]
    pub fn read_slice(&mut self, n: usize, ctx: &'static str) -> Result<&'a [u8], DecodeError> {
        self.ensure(n, ctx)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a fixed-size array.
    #[inline]
    pub fn read_array<const N: usize>(
        &mut self,
        ctx: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let s = self.read_slice(N, ctx)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Borrows everything that is left and moves to the end.
    pub fn read_rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    read_le! {
        read_u8, peek_u8 => u8;
        read_i8, peek_i8 => i8;
        read_u16, peek_u16 => u16;
        read_i16, peek_i16 => i16;
        read_u32, peek_u32 => u32;
        read_i32, peek_i32 => i32;
        read_u64, peek_u64 => u64;
        read_i64, peek_i64 => i64;
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless the cursor is at the end.
    pub fn finish(&self, ctx: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            Err(DecodeError::TrailingBytes {
                field: ctx,
                extra: self.remaining(),
            })
        } else {
            Ok(())
        }
    }
}

/// A growable output buffer for one message body.
///
/// The caller owns the `Vec`; the body may start after bytes already in it (a data header,
/// say), and pointer offsets are measured from that start ([`WriteBuf::offset`]).
#[derive(Debug)]
pub struct WriteBuf<'v> {
    buf: &'v mut Vec<u8>,
    base: usize,
}

/// A reserved `u32` pointer slot, to be filled with [`WriteBuf::patch_ptr`] once the
/// pointed-to data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reserved pointer must be patched or it stays 0 (NULL)"]
pub struct PtrSlot(usize);

macro_rules! write_le {
    ($($name:ident => $ty:ty;)*) => {$(
        #[doc = concat!("Appends a little-endian `", stringify!($ty), "`.")]
        #[inline]
        pub fn $name(&mut self, v: $ty) {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    )*};
}

impl<'v> WriteBuf<'v> {
    /// A body that starts at the current end of `buf`.
    pub fn new(buf: &'v mut Vec<u8>) -> Self {
        let base = buf.len();
        Self { buf, base }
    }

    /// The current offset from the start of the body: the value a pointer to data written
    /// next must hold.
    pub fn offset(&self) -> usize {
        self.buf.len() - self.base
    }

    /// The body bytes written so far.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.base..]
    }

    write_le! {
        write_u8 => u8;
        write_i8 => i8;
        write_u16 => u16;
        write_i16 => i16;
        write_u32 => u32;
        write_i32 => i32;
        write_u64 => u64;
        write_i64 => i64;
    }

    /// Appends raw bytes.
    #[inline]
    pub fn write_slice(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
    }

    /// Appends `n` zero bytes.
    pub fn write_zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Reserves room for a `u32` SPICE pointer (written as 0 = NULL for now).
    pub fn reserve_ptr(&mut self) -> PtrSlot {
        let at = self.buf.len();
        self.write_u32(0);
        PtrSlot(at)
    }

    /// Fills `slot` with the current body offset, i.e. points it at what is written next.
    pub fn patch_ptr(&mut self, slot: PtrSlot, ctx: &'static str) -> Result<(), EncodeError> {
        let off = u32::try_from(self.offset()).map_err(|_| EncodeError::TooLarge {
            field: ctx,
            value: self.offset() as u64,
        })?;
        self.buf[slot.0..slot.0 + 4].copy_from_slice(&off.to_le_bytes());
        Ok(())
    }

    /// Converts a length to the wire's integer type, or fails with [`EncodeError::TooLarge`].
    pub fn len_as<T: TryFrom<usize>>(len: usize, ctx: &'static str) -> Result<T, EncodeError> {
        T::try_from(len).map_err(|_| EncodeError::TooLarge {
            field: ctx,
            value: len as u64,
        })
    }
}

/// A value that can be written to the wire.
pub trait Encode {
    /// Appends the wire form of `self` to `w`.
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError>;

    /// Encodes into a fresh vector (convenience for tests and small messages).
    fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.encode(&mut WriteBuf::new(&mut v))?;
        Ok(v)
    }
}

/// A value that can be read from the wire, borrowing large payloads from the input.
pub trait Decode<'a>: Sized {
    /// Reads one value at the cursor and advances it.
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError>;
}

/// Decodes a whole buffer as one `T`, failing on trailing bytes.
pub fn decode_exact<'a, T: Decode<'a>>(buf: &'a [u8], ctx: &'static str) -> Result<T, DecodeError> {
    let mut r = ReadCursor::new(buf);
    let v = T::decode(&mut r)?;
    r.finish(ctx)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_reports_shortage() {
        let data = [1u8, 2, 3, 4, 5, 6, 7];
        let mut r = ReadCursor::new(&data);
        assert_eq!(r.read_u16("a").unwrap(), 0x0201);
        assert_eq!(r.peek_u32("b").unwrap(), 0x0605_0403);
        assert_eq!(r.read_u32("b").unwrap(), 0x0605_0403);
        assert!(matches!(
            r.read_u16("c"),
            Err(DecodeError::NotEnoughBytes {
                field: "c",
                needed: 2,
                available: 1
            })
        ));
        assert_eq!(r.read_rest(), &[7]);
        r.finish("end").unwrap();
    }

    #[test]
    fn offsets_and_counts_are_checked() {
        let data = [0u8; 8];
        let r = ReadCursor::new(&data);
        assert!(r.at_offset(8, "p").is_ok());
        assert!(matches!(
            r.at_offset(9, "p"),
            Err(DecodeError::OffsetOutOfRange { offset: 9, .. })
        ));
        assert_eq!(r.check_count(2, 4, "n").unwrap(), 2);
        assert!(r.check_count(u64::MAX, 16, "n").is_err());
        assert!(r.check_count(3, 4, "n").is_err());
    }

    #[test]
    fn pointers_are_offsets_from_body_start() {
        let mut v = vec![0xAA; 6]; // a mini header before the body
        let mut w = WriteBuf::new(&mut v);
        w.write_u8(0x7b);
        w.write_u32(2);
        let slot = w.reserve_ptr();
        w.patch_ptr(slot, "data").unwrap();
        w.write_u64(1);
        w.write_u64(2);
        // Layout from spice-common's marshaller test: 7b | 02 00 00 00 | 09 00 00 00 | ...
        assert_eq!(&v[6..15], &[0x7b, 2, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(v.len(), 6 + 9 + 16);
    }
}
