//! Cursor shapes: every SPICE cursor type decoded to straight RGBA, and the cursor cache.
//!
//! Layouts (spice.proto `Cursor`, protocol.md §6.3): the shape data follows the header and is
//! the rest of the message.
//!
//! | type | data |
//! |---|---|
//! | ALPHA | `w*h` u32 ARGB (bytes B,G,R,A) |
//! | MONO | AND mask then XOR mask, each `ceil(w/8)*h` bytes, MSB first |
//! | COLOR4 | `ceil(w/2)*h` bytes of 4-bit indices (high nibble first), 16 u32 palette, AND mask |
//! | COLOR8 | `w*h` bytes of indices, 256 u32 palette, AND mask |
//! | COLOR16 | `2*w*h` bytes x555, AND mask |
//! | COLOR24 | `3*w*h` bytes B,G,R, AND mask |
//! | COLOR32 | `4*w*h` bytes xRGB (B,G,R,x), AND mask |
//!
//! Pixels that would invert the screen (MONO: AND and XOR set; COLOR*: AND set and a non-black
//! colour) cannot be drawn as RGBA: they come out opaque black, and [`CursorShape::inverted`]
//! counts them so an embedder that can XOR may special-case the shape.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use spice_proto::types::{CursorFlags, CursorHeader, CursorType};

/// Largest cursor side accepted (spice-server's QXL cursors are at most 256x256; guests with
/// big cursors stay well below this).
pub const MAX_CURSOR_SIDE: u16 = 1024;

/// Cursors kept in the cache at most (spice-server assumes 256; the server evicts with
/// `INVAL_ONE`, this cap only bounds memory against a hostile server).
pub const CURSOR_CACHE_CAPACITY: usize = 1024;

/// A decoded cursor: straight (not premultiplied) RGBA, `width * height * 4` bytes, rows
/// top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// The server's cache id (`CursorHeader.unique`).
    pub unique: u64,
    /// The cursor type it was decoded from.
    pub cursor_type: CursorType,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hot spot x.
    pub hot_x: u16,
    /// Hot spot y.
    pub hot_y: u16,
    /// Pixels, RGBA.
    pub rgba: Vec<u8>,
    /// Number of "invert the screen" pixels rendered as opaque black.
    pub inverted: usize,
}

/// Why a cursor shape could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// Wider or taller than [`MAX_CURSOR_SIDE`].
    #[error("cursor {width}x{height} too large")]
    TooLarge {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// Fewer data bytes than the type and size need.
    #[error("{cursor_type:?} {width}x{height} needs {needed} data bytes, got {got}")]
    ShortData {
        /// Cursor type.
        cursor_type: CursorType,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A cursor type number this decoder does not know.
    #[error("unknown cursor type {0}")]
    UnknownType(u8),
    /// `FROM_CACHE` for an id that is not in the cache.
    #[error("cursor {0:#x} not in the cache")]
    NotCached(u64),
    /// Neither `NONE` nor a header: never produced by the proto decoder, kept for safety.
    #[error("cursor without header")]
    NoHeader,
}

fn bit(mask: &[u8], stride: usize, x: usize, y: usize) -> bool {
    mask[y * stride + x / 8] & (0x80 >> (x % 8)) != 0
}

/// Decodes a cursor shape to RGBA. `data` may be longer than needed (extra bytes ignored).
pub fn decode_shape(header: &CursorHeader, data: &[u8]) -> Result<CursorShape, CursorError> {
    let (w, h) = (header.width, header.height);
    if w > MAX_CURSOR_SIDE || h > MAX_CURSOR_SIDE {
        return Err(CursorError::TooLarge {
            width: w,
            height: h,
        });
    }
    let (wu, hu) = (usize::from(w), usize::from(h));
    let px = wu * hu;
    let mask_stride = wu.div_ceil(8);
    let mask_len = mask_stride * hu;
    let t = header.cursor_type;
    let needed = match t {
        CursorType::ALPHA => px * 4,
        CursorType::MONO => mask_len * 2,
        CursorType::COLOR4 => wu.div_ceil(2) * hu + 16 * 4 + mask_len,
        CursorType::COLOR8 => px + 256 * 4 + mask_len,
        CursorType::COLOR16 => px * 2 + mask_len,
        CursorType::COLOR24 => px * 3 + mask_len,
        CursorType::COLOR32 => px * 4 + mask_len,
        other => return Err(CursorError::UnknownType(other.0)),
    };
    if data.len() < needed {
        return Err(CursorError::ShortData {
            cursor_type: t,
            width: w,
            height: h,
            needed,
            got: data.len(),
        });
    }
    let mut rgba = vec![0u8; px * 4];
    let mut inverted = 0;
    // Colour of pixel (x, y) as (r, g, b) for the COLOR types.
    let color_end = needed - mask_len;
    let and_mask = &data[color_end..needed];
    let mut put = |i: usize, rgb: [u8; 3], a: u8| {
        rgba[i * 4..i * 4 + 4].copy_from_slice(&[rgb[0], rgb[1], rgb[2], a]);
    };
    match t {
        CursorType::ALPHA => {
            for i in 0..px {
                let p = &data[i * 4..i * 4 + 4];
                put(i, [p[2], p[1], p[0]], p[3]);
            }
        }
        CursorType::MONO => {
            let (and, xor) = data[..mask_len * 2].split_at(mask_len);
            for y in 0..hu {
                for x in 0..wu {
                    let i = y * wu + x;
                    match (bit(and, mask_stride, x, y), bit(xor, mask_stride, x, y)) {
                        (false, false) => put(i, [0, 0, 0], 255),
                        (false, true) => put(i, [255, 255, 255], 255),
                        (true, false) => put(i, [0, 0, 0], 0),
                        (true, true) => {
                            inverted += 1;
                            put(i, [0, 0, 0], 255);
                        }
                    }
                }
            }
        }
        _ => {
            let color = |x: usize, y: usize| -> [u8; 3] {
                let i = y * wu + x;
                match t {
                    CursorType::COLOR4 => {
                        let b = data[y * wu.div_ceil(2) + x / 2];
                        let idx = usize::from(if x % 2 == 0 { b >> 4 } else { b & 0xf });
                        let pal = wu.div_ceil(2) * hu + idx * 4;
                        [data[pal + 2], data[pal + 1], data[pal]]
                    }
                    CursorType::COLOR8 => {
                        let pal = px + usize::from(data[i]) * 4;
                        [data[pal + 2], data[pal + 1], data[pal]]
                    }
                    CursorType::COLOR16 => {
                        let v = u16::from_le_bytes([data[i * 2], data[i * 2 + 1]]);
                        let c5 = |s: u16| {
                            let c = ((v >> s) & 0x1f) as u8;
                            (c << 3) | (c >> 2)
                        };
                        [c5(10), c5(5), c5(0)]
                    }
                    CursorType::COLOR24 => [data[i * 3 + 2], data[i * 3 + 1], data[i * 3]],
                    _ => [data[i * 4 + 2], data[i * 4 + 1], data[i * 4]],
                }
            };
            for y in 0..hu {
                for x in 0..wu {
                    let i = y * wu + x;
                    let c = color(x, y);
                    if bit(and_mask, mask_stride, x, y) {
                        if c == [0, 0, 0] {
                            put(i, c, 0);
                        } else {
                            inverted += 1;
                            put(i, [0, 0, 0], 255);
                        }
                    } else {
                        put(i, c, 255);
                    }
                }
            }
        }
    }
    Ok(CursorShape {
        unique: header.unique,
        cursor_type: t,
        width: w,
        height: h,
        hot_x: header.hot_spot_x,
        hot_y: header.hot_spot_y,
        rgba,
        inverted,
    })
}

/// The client's cursor cache: shapes the server sent with `CACHE_ME`, by `unique`.
#[derive(Debug, Default)]
pub struct CursorCache {
    shapes: HashMap<u64, Arc<CursorShape>>,
    order: VecDeque<u64>,
}

impl CursorCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached shapes.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// The shape cached under `id`.
    pub fn get(&self, id: u64) -> Option<&Arc<CursorShape>> {
        self.shapes.get(&id)
    }

    /// Caches a shape (dropping the oldest beyond [`CURSOR_CACHE_CAPACITY`]).
    pub fn insert(&mut self, shape: Arc<CursorShape>) {
        let id = shape.unique;
        if self.shapes.insert(id, shape).is_none() {
            self.order.push_back(id);
        }
        while self.shapes.len() > CURSOR_CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.shapes.remove(&old);
                }
                None => break,
            }
        }
    }

    /// `INVAL_ONE`.
    pub fn remove(&mut self, id: u64) {
        if self.shapes.remove(&id).is_some() {
            self.order.retain(|&o| o != id);
        }
    }

    /// `INVAL_ALL` / `RESET`.
    pub fn clear(&mut self) {
        self.shapes.clear();
        self.order.clear();
    }

    /// Resolves the [`spice_proto::types::Cursor`] of an `INIT` or `SET`: `None` for a
    /// `NONE` cursor (hidden), else the decoded or cached shape (caching it if asked).
    pub fn resolve(
        &mut self,
        cursor: &spice_proto::types::Cursor<'_>,
    ) -> Result<Option<Arc<CursorShape>>, CursorError> {
        if cursor.flags.contains(CursorFlags::NONE) {
            return Ok(None);
        }
        let header = cursor.header.as_ref().ok_or(CursorError::NoHeader)?;
        if cursor.flags.contains(CursorFlags::FROM_CACHE) {
            return self
                .get(header.unique)
                .cloned()
                .map(Some)
                .ok_or(CursorError::NotCached(header.unique));
        }
        let shape = Arc::new(decode_shape(header, cursor.data)?);
        if cursor.flags.contains(CursorFlags::CACHE_ME) {
            self.insert(shape.clone());
        }
        Ok(Some(shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(t: CursorType, w: u16, h: u16) -> CursorHeader {
        CursorHeader {
            unique: 7,
            cursor_type: t,
            width: w,
            height: h,
            hot_spot_x: 1,
            hot_spot_y: 0,
        }
    }

    #[test]
    fn alpha_is_bgra_to_rgba() {
        let s = decode_shape(&hdr(CursorType::ALPHA, 1, 1), &[1, 2, 3, 4]).unwrap();
        assert_eq!(s.rgba, [3, 2, 1, 4]);
        assert_eq!((s.hot_x, s.hot_y), (1, 0));
    }

    #[test]
    fn mono_four_cases() {
        // 4x1: AND 0b0011...., XOR 0b0101....
        let s = decode_shape(&hdr(CursorType::MONO, 4, 1), &[0x30, 0x50]).unwrap();
        assert_eq!(
            s.rgba,
            [
                0, 0, 0, 255, // and 0 xor 0: black
                255, 255, 255, 255, // and 0 xor 1: white
                0, 0, 0, 0, // and 1 xor 0: transparent
                0, 0, 0, 255, // and 1 xor 1: invert
            ]
        );
        assert_eq!(s.inverted, 1);
    }

    #[test]
    fn color_types_with_and_mask() {
        // COLOR32 2x1: red, then masked black (transparent).
        let d = [0, 0, 255, 0, 0, 0, 0, 0, 0x40];
        let s = decode_shape(&hdr(CursorType::COLOR32, 2, 1), &d).unwrap();
        assert_eq!(s.rgba, [255, 0, 0, 255, 0, 0, 0, 0]);
        // COLOR16 1x1 pure green (x555: 0x03e0).
        let s = decode_shape(&hdr(CursorType::COLOR16, 1, 1), &[0xe0, 0x03, 0]).unwrap();
        assert_eq!(s.rgba, [0, 255, 0, 255]);
        // COLOR24 1x1 blue.
        let s = decode_shape(&hdr(CursorType::COLOR24, 1, 1), &[255, 0, 0, 0]).unwrap();
        assert_eq!(s.rgba, [0, 0, 255, 255]);
        // COLOR4 2x1: indices 1 and 0; palette[1] = white; palette[0] black.
        let mut d = vec![0x10];
        let mut pal = vec![0u8; 64];
        pal[4..8].copy_from_slice(&[255, 255, 255, 0]);
        d.extend_from_slice(&pal);
        d.push(0x00);
        let s = decode_shape(&hdr(CursorType::COLOR4, 2, 1), &d).unwrap();
        assert_eq!(s.rgba, [255, 255, 255, 255, 0, 0, 0, 255]);
        // COLOR8 1x1 index 2, palette[2] = (B=1,G=2,R=3), masked and non-black: inverted.
        let mut d = vec![2];
        let mut pal = vec![0u8; 1024];
        pal[8..12].copy_from_slice(&[1, 2, 3, 0]);
        d.extend_from_slice(&pal);
        d.push(0x80);
        let s = decode_shape(&hdr(CursorType::COLOR8, 1, 1), &d).unwrap();
        assert_eq!((s.rgba.as_slice(), s.inverted), (&[0, 0, 0, 255][..], 1));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(matches!(
            decode_shape(&hdr(CursorType::ALPHA, 2, 2), &[0; 15]),
            Err(CursorError::ShortData { needed: 16, .. })
        ));
        assert!(matches!(
            decode_shape(&hdr(CursorType::ALPHA, 4000, 2), &[]),
            Err(CursorError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_shape(&hdr(CursorType(9), 1, 1), &[0; 64]),
            Err(CursorError::UnknownType(9))
        ));
    }

    #[test]
    fn cache_hits_and_invalidations() {
        use spice_proto::types::Cursor;
        let mut c = CursorCache::new();
        let h = hdr(CursorType::ALPHA, 1, 1);
        let data = [9, 9, 9, 9];
        let set = Cursor {
            flags: CursorFlags::CACHE_ME,
            header: Some(h),
            data: &data,
        };
        let s = c.resolve(&set).unwrap().unwrap();
        let from = Cursor {
            flags: CursorFlags::FROM_CACHE,
            header: Some(h),
            data: &[],
        };
        assert_eq!(c.resolve(&from).unwrap().unwrap(), s);
        c.remove(7);
        assert_eq!(c.resolve(&from), Err(CursorError::NotCached(7)));
        let none = Cursor {
            flags: CursorFlags::NONE,
            header: None,
            data: &[],
        };
        assert_eq!(c.resolve(&none), Ok(None));
    }
}
