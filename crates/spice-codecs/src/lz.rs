//! LZ image compression (spice-common `lz.c`): encoder and decoder for every
//! [`LzImageType`].
//!
//! An LZ stream is a 28-byte big-endian [`LzHeader`] followed by tokens over
//! "pixels" (coded units): literal runs (`ctrl < 32`: `ctrl + 1` pixels follow)
//! and back references (`ctrl >= 32`: a 3-bit length, optional length extension
//! bytes and a 13-bit near or 16-bit far distance). See `codecs.md` §4.
//!
//! The encoder reproduces the reference encoder byte for byte for a given
//! split of the image into row chunks ("segments"); the decoder is strict like
//! the reference one (the stream must be consumed exactly and fill the image
//! exactly) but turns every violation into an [`LzError`] instead of aborting.
//!
//! `RGBA` streams are an RGB pass followed by an alpha pass; `XXXA` is the
//! alpha pass alone, used by JPEG_ALPHA images ([`encode_alpha`],
//! [`decode_alpha`]).

use thiserror::Error;

/// `"  ZL"`: magic of LZ and GLZ headers (big-endian u32).
pub const LZ_MAGIC: u32 = 0x2020_5A4C;
/// LZ/GLZ version 1.1.
pub const LZ_VERSION: u32 = 0x0001_0001;
/// Largest `stride * height` accepted by the reference implementation.
pub const MAX_IMAGE_BYTES: u64 = (1 << 30) - 1;

const HASH_LOG: u32 = 13;
const HASH_SIZE: usize = 1 << HASH_LOG;
const HASH_MASK: u32 = (HASH_SIZE as u32) - 1;
const MAX_COPY: usize = 32;
const MAX_DISTANCE: usize = 8191;
const MAX_FARDISTANCE: usize = 65535 + MAX_DISTANCE - 1;
const BOUND_OFFSET: usize = 2;
const LIMIT_OFFSET: usize = 6;

/// The image types of an LZ stream (`LzImageType`, u32 in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LzImageType {
    /// 1 bit per pixel palette indices, bit 0 first.
    Plt1Le = 1,
    /// 1 bit per pixel palette indices, bit 7 first.
    Plt1Be = 2,
    /// 4 bits per pixel palette indices, low nibble first.
    Plt4Le = 3,
    /// 4 bits per pixel palette indices, high nibble first.
    Plt4Be = 4,
    /// 8 bits per pixel palette indices.
    Plt8 = 5,
    /// 16 bits per pixel x1r5g5b5, little-endian in memory.
    Rgb16 = 6,
    /// 24 bits per pixel B,G,R.
    Rgb24 = 7,
    /// 32 bits per pixel B,G,R,X (X is not transmitted; decoded as 0).
    Rgb32 = 8,
    /// 32 bits per pixel B,G,R,A: an RGB pass then an alpha pass.
    Rgba = 9,
    /// Only the alpha byte of 32-bit B,G,R,A pixels (JPEG_ALPHA).
    Xxxa = 10,
    /// 8 bits per pixel alpha (`8BIT_A` bitmaps).
    A8 = 11,
}

impl LzImageType {
    /// Parses the numeric type of a header (1..=11).
    pub fn from_u32(v: u32) -> Option<Self> {
        use LzImageType::*;
        Some(match v {
            1 => Plt1Le,
            2 => Plt1Be,
            3 => Plt4Le,
            4 => Plt4Be,
            5 => Plt8,
            6 => Rgb16,
            7 => Rgb24,
            8 => Rgb32,
            9 => Rgba,
            10 => Xxxa,
            11 => A8,
            _ => return None,
        })
    }

    /// Whether this is a palette type (PLT1/PLT4/PLT8).
    pub fn is_palette(self) -> bool {
        (self as u8) <= 5
    }

    /// Pixels per byte of a palette type (8, 2 or 1); 1 for the others.
    pub fn pixels_per_byte(self) -> usize {
        match self {
            Self::Plt1Le | Self::Plt1Be => 8,
            Self::Plt4Le | Self::Plt4Be => 2,
            _ => 1,
        }
    }

    /// Bytes per pixel in memory (1 for palette types and A8).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 | Self::Rgba | Self::Xxxa => 4,
            _ => 1,
        }
    }
}

/// Errors of LZ encoding and decoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LzError {
    /// The stream is shorter than the 28-byte header.
    #[error("LZ stream of {0} bytes is shorter than its 28-byte header")]
    ShortHeader(usize),
    /// The magic is not `"  ZL"`.
    #[error("bad LZ magic {0:#010x}")]
    BadMagic(u32),
    /// The version is not 1.1.
    #[error("unsupported LZ version {0:#010x}")]
    BadVersion(u32),
    /// The image type is not 1..=11.
    #[error("invalid LZ image type {0}")]
    BadImageType(u32),
    /// Width or height is zero.
    #[error("empty LZ image {width}x{height}")]
    EmptyImage {
        /// Width in pixels.
        width: u32,
        /// Height in rows.
        height: u32,
    },
    /// The stride does not fit the width and type (reference `lz_set_sizes`).
    #[error("stride {stride} does not fit a {image_type:?} image {width} pixels wide")]
    BadStride {
        /// Image type.
        image_type: LzImageType,
        /// Width in pixels.
        width: u32,
        /// Stride in bytes.
        stride: u32,
    },
    /// `stride * height` is over 2^30 - 1 bytes, or over the caller's cap.
    #[error("LZ image of {bytes} bytes is too large (limit {limit})")]
    TooLarge {
        /// Size of the image in bytes.
        bytes: u64,
        /// The limit applied.
        limit: u64,
    },
    /// The input image buffer or chunk list does not hold `stride * height` bytes of whole rows.
    #[error("input image holds {got} bytes, expected {expected} in whole rows")]
    BadInput {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The caller's output buffer is too small.
    #[error("output buffer of {got} bytes, need {need}")]
    OutputTooSmall {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The output stride is smaller than a decoded row.
    #[error("output stride {stride} is smaller than a row of {row_bytes} bytes")]
    OutputStride {
        /// Stride given.
        stride: usize,
        /// Bytes of one decoded row.
        row_bytes: usize,
    },
    /// The requested output format cannot be produced from this image type.
    #[error("cannot decode {image_type:?} to the requested format")]
    UnsupportedOutput {
        /// Image type of the stream.
        image_type: LzImageType,
    },
    /// A palette image was decoded to 32 bits without a (large enough) palette.
    #[error("palette missing or too small ({entries} entries)")]
    BadPalette {
        /// Entries given.
        entries: usize,
    },
    /// The stream ended inside the image data.
    #[error("LZ stream truncated at byte {0}")]
    Truncated(usize),
    /// Bytes remain after the image is complete.
    #[error("{0} trailing bytes after the LZ image")]
    TrailingBytes(usize),
    /// A token would write past the end of the image.
    #[error("LZ token at byte {0} overruns the image")]
    Overrun(usize),
    /// A back reference points before the start of the image.
    #[error("LZ back reference at byte {0} points before the image start")]
    BadReference(usize),
}

/// The 28-byte big-endian LZ header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LzHeader {
    /// Image type.
    pub image_type: LzImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Stride in bytes of the encoded image (RGB: exactly `width * bpp`).
    pub stride: u32,
    /// Whether row 0 of the stream is the top row.
    pub top_down: bool,
}

impl LzHeader {
    /// Size of the header on the wire.
    pub const SIZE: usize = 28;

    /// Parses and validates a header (magic, version, type, sizes).
    pub fn parse(data: &[u8]) -> Result<Self, LzError> {
        if data.len() < Self::SIZE {
            return Err(LzError::ShortHeader(data.len()));
        }
        let w = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        if w(0) != LZ_MAGIC {
            return Err(LzError::BadMagic(w(0)));
        }
        if w(4) != LZ_VERSION {
            return Err(LzError::BadVersion(w(4)));
        }
        let image_type = LzImageType::from_u32(w(8)).ok_or(LzError::BadImageType(w(8)))?;
        let h = LzHeader {
            image_type,
            width: w(12),
            height: w(16),
            stride: w(20),
            top_down: w(24) != 0,
        };
        check_sizes(image_type, h.width, h.height, h.stride)?;
        Ok(h)
    }

    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        for v in [
            LZ_MAGIC,
            LZ_VERSION,
            self.image_type as u32,
            self.width,
            self.height,
            self.stride,
            u32::from(self.top_down),
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Number of coded units ("pixels" of the token stream) of one pass:
    /// `width * height`, or `stride * height` bytes for palette types.
    pub fn units(&self) -> usize {
        if self.image_type.is_palette() {
            self.stride as usize * self.height as usize
        } else {
            self.width as usize * self.height as usize
        }
    }
}

/// Validates width/height/stride like the reference `lz_set_sizes`.
pub(crate) fn check_sizes(
    t: LzImageType,
    width: u32,
    height: u32,
    stride: u32,
) -> Result<(), LzError> {
    if width == 0 || height == 0 {
        return Err(LzError::EmptyImage { width, height });
    }
    let bad = || LzError::BadStride {
        image_type: t,
        width,
        stride,
    };
    if t.is_palette() {
        let ppb = t.pixels_per_byte() as u32;
        let min = width.div_ceil(ppb);
        // The reference accepts any stride <= width/ppb (+1 when not aligned); a
        // stride shorter than the pixels of a row cannot describe the image, so
        // require it to hold the row.
        if stride < min || stride > width / ppb + u32::from(width % ppb != 0) {
            return Err(bad());
        }
    } else {
        let bpp = t.bytes_per_pixel() as u64;
        if u64::from(stride) != u64::from(width) * bpp {
            return Err(bad());
        }
    }
    let bytes = u64::from(stride) * u64::from(height);
    if bytes > MAX_IMAGE_BYTES {
        return Err(LzError::TooLarge {
            bytes,
            limit: MAX_IMAGE_BYTES,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Pixel kinds of the encoder
// ---------------------------------------------------------------------------

/// How one coded unit is read, compared, hashed and written (per image type).
pub(crate) trait Pixel {
    /// Bytes per unit in the input.
    const BYTES: usize;
    /// Equal units needed before a hash match is taken.
    const MIN_MATCH: usize;
    /// Extra equal units for a far match.
    const FAR_EXTRA: usize;
    /// Added to `ip - anchor` to get the length code.
    const LEN_BIAS: usize;
    /// RGB16/24/32: the first boundary hash insert only if `ip > anchor`.
    const GUARD_FIRST: bool;
    /// RGB24/32: the second boundary hash insert only if `ip > anchor`.
    const GUARD_SECOND: bool;
    /// Far match needs `ref < limit - 1` (byte types) instead of `ref < limit`.
    const FAR_STRICT: bool;
    /// Comparable value of unit `i`.
    fn key(d: &[u8], i: usize) -> u32;
    /// DJB2 hash of units `i..i+3`, masked by `mask`.
    fn hash(d: &[u8], i: usize, mask: u32) -> u32;
    /// Writes the literal bytes of unit `i`.
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>);

    /// Hashes of units `i..i + 4` (each over three units, so units up to
    /// `i + 5` must exist).
    #[inline(always)]
    fn hash4(d: &[u8], i: usize, mask: u32) -> [u32; 4] {
        [0, 1, 2, 3].map(|j| Self::hash(d, i + j, mask))
    }

    /// How many of units `a[ai..ai + max]` equal `b[bi..bi + max]` before the
    /// first difference.
    #[inline(always)]
    fn match_len(a: &[u8], ai: usize, b: &[u8], bi: usize, max: usize) -> usize {
        // Equal bytes imply equal keys: skip whole equal blocks first.
        const BLK: usize = 64;
        let blk = BLK / Self::BYTES * Self::BYTES;
        let ea = &a[ai * Self::BYTES..(ai + max) * Self::BYTES];
        let eb = &b[bi * Self::BYTES..(bi + max) * Self::BYTES];
        let mut k = 0;
        for (x, y) in ea.chunks_exact(blk).zip(eb.chunks_exact(blk)) {
            if x != y {
                break;
            }
            k += blk;
        }
        let done = k / Self::BYTES;
        done + (0..max - done)
            .position(|j| Self::key(a, ai + done + j) != Self::key(b, bi + done + j))
            .unwrap_or(max - done)
    }

    /// How many of units `a[ai..ai + max]` have key `x` before the first other.
    #[inline(always)]
    fn run_len(a: &[u8], ai: usize, x: u32, max: usize) -> usize {
        (0..max)
            .position(|j| Self::key(a, ai + j) != x)
            .unwrap_or(max)
    }
}

#[inline(always)]
fn djb2(h: u32, c: u8) -> u32 {
    h.wrapping_mul(33) ^ u32::from(c)
}

/// B,G,R,X pixels (RGB32 and the RGB pass of RGBA).
pub(crate) struct Rgb32Px;
/// B,G,R pixels.
pub(crate) struct Rgb24Px;
/// x1r5g5b5 little-endian pixels.
pub(crate) struct Rgb16Px;
/// One-byte units (palette bytes, A8).
pub(crate) struct BytePx;
/// The alpha byte of 32-bit pixels.
pub(crate) struct AlphaPx;

impl Pixel for Rgb32Px {
    const BYTES: usize = 4;
    const MIN_MATCH: usize = 1;
    const FAR_EXTRA: usize = 1;
    const LEN_BIAS: usize = 2;
    const GUARD_FIRST: bool = true;
    const GUARD_SECOND: bool = true;
    const FAR_STRICT: bool = false;
    #[inline(always)]
    fn key(d: &[u8], i: usize) -> u32 {
        let p = &d[i * 4..i * 4 + 3];
        u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16
    }
    #[inline(always)]
    fn hash(d: &[u8], i: usize, mask: u32) -> u32 {
        let p = &d[i * 4..i * 4 + 11];
        let mut h = 5381;
        for k in 0..3 {
            h = djb2(h, p[k * 4 + 2]);
            h = djb2(h, p[k * 4 + 1]);
            h = djb2(h, p[k * 4]);
        }
        h & mask
    }
    #[inline(always)]
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&d[i * 4..i * 4 + 3]);
    }
    #[inline(always)]
    fn hash4(d: &[u8], i: usize, mask: u32) -> [u32; 4] {
        // The same DJB2 chains as `hash`, four positions side by side (the
        // compiler keeps the lanes in one vector register).
        let p = &d[i * 4..i * 4 + 24];
        let mut px = [0u32; 6];
        for (v, c) in px.iter_mut().zip(p.chunks_exact(4)) {
            *v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        let mut h = [5381u32; 4];
        for k in 0..3 {
            for shift in [16, 8, 0] {
                for (l, hl) in h.iter_mut().enumerate() {
                    *hl = hl.wrapping_mul(33) ^ ((px[l + k] >> shift) & 0xff);
                }
            }
        }
        h.map(|x| x & mask)
    }
    #[inline(always)]
    fn match_len(a: &[u8], ai: usize, b: &[u8], bi: usize, max: usize) -> usize {
        let ea = &a[ai * 4..(ai + max) * 4];
        let eb = &b[bi * 4..(bi + max) * 4];
        rgb32_equal_len(ea, eb)
    }
    #[inline(always)]
    fn run_len(a: &[u8], ai: usize, x: u32, max: usize) -> usize {
        let ea = &a[ai * 4..(ai + max) * 4];
        let x2 = u64::from(x) | u64::from(x) << 32;
        // A short masked scan; once it shows a long run, the pixel before
        // each block has key `x`, so a block byte-equal to itself shifted by
        // one pixel is all `x` (X bytes included, else the masked scan goes on).
        let n = rgb32_prefix(ea, 0, max.min(16), Against::Key(x2));
        if n < 16 {
            return n;
        }
        let mut n = 16;
        while n + BIG <= max && ea[n * 4..(n + BIG) * 4] == ea[(n - 1) * 4..(n - 1 + BIG) * 4] {
            n += BIG;
        }
        n + rgb32_prefix(ea, n, max - n, Against::Key(x2))
    }
}

/// Pixels per exact block compare in long RGB32 matches and runs.
const BIG: usize = 128;

/// How many leading B,G,R,X pixels of `ea` and `eb` (same length) have equal
/// B,G,R bytes.
#[inline(always)]
fn rgb32_equal_len(ea: &[u8], eb: &[u8]) -> usize {
    let max = ea.len() / 4;
    let n = rgb32_prefix(ea, 0, max.min(16), Against::Pixels(eb));
    if n < 16 {
        return n;
    }
    // A long match: skip byte-equal blocks (equal bytes imply equal pixels).
    let mut n = 16;
    while n + BIG <= max && ea[n * 4..(n + BIG) * 4] == eb[n * 4..(n + BIG) * 4] {
        n += BIG;
    }
    n + rgb32_prefix(ea, n, max - n, Against::Pixels(eb))
}

/// What RGB32 pixels are compared with.
#[derive(Clone, Copy)]
enum Against<'a> {
    /// The pixels at the same byte offsets of another buffer.
    Pixels(&'a [u8]),
    /// One key (`x | x << 32`).
    Key(u64),
}

impl Against<'_> {
    /// Two pixels at byte offset `o`.
    #[inline(always)]
    fn two(self, o: usize) -> u64 {
        match self {
            Against::Pixels(b) => le64(&b[o..]),
            Against::Key(x2) => x2,
        }
    }
    /// One pixel at byte offset `o`.
    #[inline(always)]
    fn one(self, o: usize) -> u32 {
        match self {
            Against::Pixels(b) => u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]),
            Against::Key(x2) => x2 as u32,
        }
    }
}

/// How many of the `count` pixels of `e` from pixel `from` on have the B,G,R
/// bytes of `other`.
#[inline(always)]
fn rgb32_prefix(e: &[u8], from: usize, count: usize, other: Against<'_>) -> usize {
    let mut n = 0;
    // Two pixels per u64, eight per step.
    while n + 8 <= count {
        let o = (from + n) * 4;
        let mut d = [0u64; 4];
        for (j, dj) in d.iter_mut().enumerate() {
            *dj = (le64(&e[o + j * 8..]) ^ other.two(o + j * 8)) & RGB_MASK2;
        }
        if d != [0; 4] {
            let j = d.iter().position(|&v| v != 0).unwrap_or(0);
            return n + 2 * j + (d[j].trailing_zeros() / 32) as usize;
        }
        n += 8;
    }
    while n < count {
        let o = (from + n) * 4;
        let w = u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
        if (w ^ other.one(o)) & 0x00ff_ffff != 0 {
            break;
        }
        n += 1;
    }
    n
}

/// The B,G,R bytes of two little-endian B,G,R,X pixels in a `u64`.
const RGB_MASK2: u64 = 0x00ff_ffff_00ff_ffff;

/// The first 8 bytes of `b` as a little-endian `u64`.
#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

impl Pixel for Rgb24Px {
    const BYTES: usize = 3;
    const MIN_MATCH: usize = 1;
    const FAR_EXTRA: usize = 1;
    const LEN_BIAS: usize = 2;
    const GUARD_FIRST: bool = true;
    const GUARD_SECOND: bool = true;
    const FAR_STRICT: bool = false;
    #[inline(always)]
    fn key(d: &[u8], i: usize) -> u32 {
        let p = &d[i * 3..i * 3 + 3];
        u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16
    }
    #[inline(always)]
    fn hash(d: &[u8], i: usize, mask: u32) -> u32 {
        let p = &d[i * 3..i * 3 + 9];
        let mut h = 5381;
        for k in 0..3 {
            h = djb2(h, p[k * 3 + 2]);
            h = djb2(h, p[k * 3 + 1]);
            h = djb2(h, p[k * 3]);
        }
        h & mask
    }
    #[inline(always)]
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&d[i * 3..i * 3 + 3]);
    }
}

impl Pixel for Rgb16Px {
    const BYTES: usize = 2;
    const MIN_MATCH: usize = 2;
    const FAR_EXTRA: usize = 1;
    const LEN_BIAS: usize = 1;
    const GUARD_FIRST: bool = true;
    const GUARD_SECOND: bool = false;
    const FAR_STRICT: bool = false;
    #[inline(always)]
    fn key(d: &[u8], i: usize) -> u32 {
        u32::from(u16::from_le_bytes([d[i * 2], d[i * 2 + 1]]) & 0x7fff)
    }
    #[inline(always)]
    fn hash(d: &[u8], i: usize, mask: u32) -> u32 {
        let p = &d[i * 2..i * 2 + 6];
        let mut h = 5381;
        for k in 0..3 {
            h = djb2(h, p[k * 2]);
            h = djb2(h, p[k * 2 + 1] & 0x7f);
        }
        h & mask
    }
    #[inline(always)]
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>) {
        out.push(d[i * 2 + 1]);
        out.push(d[i * 2]);
    }
}

impl Pixel for BytePx {
    const BYTES: usize = 1;
    const MIN_MATCH: usize = 3;
    const FAR_EXTRA: usize = 2;
    const LEN_BIAS: usize = 0;
    const GUARD_FIRST: bool = false;
    const GUARD_SECOND: bool = false;
    const FAR_STRICT: bool = true;
    #[inline(always)]
    fn key(d: &[u8], i: usize) -> u32 {
        u32::from(d[i])
    }
    #[inline(always)]
    fn hash(d: &[u8], i: usize, mask: u32) -> u32 {
        let p = &d[i..i + 3];
        let mut h = 5381;
        for &c in p {
            h = djb2(h, c);
        }
        h & mask
    }
    #[inline(always)]
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>) {
        out.push(d[i]);
    }
}

impl Pixel for AlphaPx {
    const BYTES: usize = 4;
    const MIN_MATCH: usize = 3;
    const FAR_EXTRA: usize = 2;
    const LEN_BIAS: usize = 0;
    const GUARD_FIRST: bool = false;
    const GUARD_SECOND: bool = false;
    const FAR_STRICT: bool = true;
    #[inline(always)]
    fn key(d: &[u8], i: usize) -> u32 {
        u32::from(d[i * 4 + 3])
    }
    #[inline(always)]
    fn hash(d: &[u8], i: usize, mask: u32) -> u32 {
        let p = &d[i * 4..i * 4 + 12];
        let mut h = 5381;
        for k in 0..3 {
            h = djb2(h, p[k * 4 + 3]);
        }
        h & mask
    }
    #[inline(always)]
    fn emit(d: &[u8], i: usize, out: &mut Vec<u8>) {
        out.push(d[i * 4 + 3]);
    }
}

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

/// An image to LZ-encode, given as row chunks in memory order.
///
/// Each chunk holds whole rows of `stride` bytes (the server's QXL bitmap
/// chunks); the reference encoder codes each chunk as a segment, which changes
/// the output bytes, so pass the same chunking to get the same bytes. A single
/// chunk gives the reference's single-segment output.
#[derive(Debug, Clone, Copy)]
pub struct LzImage<'a> {
    /// Image type.
    pub image_type: LzImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows (sum of the chunks' rows).
    pub height: u32,
    /// Stride in bytes (RGB types: exactly `width * bpp`).
    pub stride: u32,
    /// Top-down flag written to the header (row order is not changed).
    pub top_down: bool,
    /// Row chunks, in order.
    pub chunks: &'a [&'a [u8]],
}

/// A segment: bytes and the global id of its first unit.
struct Seg<'a> {
    data: &'a [u8],
    start: usize,
    len: usize,
}

/// The output byte buffer with the pending literal-count byte.
struct Out<'a> {
    buf: &'a mut Vec<u8>,
    last_copy: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn copy_count(&mut self, v: u8) {
        self.last_copy = self.buf.len();
        self.buf.push(v);
    }
    #[inline(always)]
    fn update_copy(&mut self, v: u8) {
        self.buf[self.last_copy] = v;
    }
    #[inline(always)]
    fn drop_copy(&mut self) {
        debug_assert_eq!(self.buf.len(), self.last_copy + 1);
        self.buf.pop();
    }
    #[inline(always)]
    fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }
}

/// Encodes an image into `out` (appending header and data); returns the number
/// of bytes appended.
pub fn encode(image: &LzImage<'_>, out: &mut Vec<u8>) -> Result<usize, LzError> {
    let t = image.image_type;
    check_sizes(t, image.width, image.height, image.stride)?;
    let stride = image.stride as usize;
    let expected = stride * image.height as usize;
    let mut total = 0usize;
    for c in image.chunks {
        if c.len() % stride != 0 {
            return Err(LzError::BadInput {
                got: c.len(),
                expected,
            });
        }
        total += c.len();
    }
    if total != expected {
        return Err(LzError::BadInput {
            got: total,
            expected,
        });
    }
    let start_len = out.len();
    LzHeader {
        image_type: t,
        width: image.width,
        height: image.height,
        stride: image.stride,
        top_down: image.top_down,
    }
    .write(out);
    let chunks = image.chunks;
    match t {
        LzImageType::Rgb16 => compress::<Rgb16Px>(chunks, out),
        LzImageType::Rgb24 => compress::<Rgb24Px>(chunks, out),
        LzImageType::Rgb32 => compress::<Rgb32Px>(chunks, out),
        LzImageType::Rgba => {
            compress::<Rgb32Px>(chunks, out);
            compress::<AlphaPx>(chunks, out);
        }
        LzImageType::Xxxa => compress::<AlphaPx>(chunks, out),
        _ => compress::<BytePx>(chunks, out),
    }
    Ok(out.len() - start_len)
}

/// Encodes a contiguous image (one segment) of `height` rows of `stride` bytes.
pub fn encode_image(
    image_type: LzImageType,
    width: u32,
    height: u32,
    stride: u32,
    top_down: bool,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, LzError> {
    encode(
        &LzImage {
            image_type,
            width,
            height,
            stride,
            top_down,
            chunks: &[data],
        },
        out,
    )
}

/// Encodes the alpha bytes of a B,G,R,A image (`stride == width * 4`) as an
/// LZ `XXXA` stream: the alpha part of a JPEG_ALPHA image.
pub fn encode_alpha(
    width: u32,
    height: u32,
    top_down: bool,
    bgra: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, LzError> {
    encode_image(
        LzImageType::Xxxa,
        width,
        height,
        width.saturating_mul(4),
        top_down,
        bgra,
        out,
    )
}

fn compress<P: Pixel>(chunks: &[&[u8]], buf: &mut Vec<u8>) {
    let mut segs = Vec::with_capacity(chunks.len());
    let mut start = 0usize;
    for c in chunks {
        let len = c.len() / P::BYTES;
        if len > 0 {
            segs.push(Seg {
                data: c,
                start,
                len,
            });
        }
        start += len;
    }
    let mut out = Out { buf, last_copy: 0 };
    let mut first = 0;
    while first < segs.len() && segs[first].len < 4 {
        let s = &segs[first];
        out.copy_count((s.len - 1) as u8);
        for i in 0..s.len {
            P::emit(s.data, i, out.buf);
        }
        first += 1;
    }
    if first == segs.len() {
        return;
    }
    // Each entry: global unit index of the last position with that hash, and
    // the key of the unit there (units never change, so comparing the stored
    // key is the reference's first unit compare without touching its data).
    let s0 = &segs[first];
    let mut table = vec![
        Entry {
            pos: s0.start as u32,
            key: P::key(s0.data, 0),
        };
        HASH_SIZE
    ];
    out.copy_count((MAX_COPY - 1) as u8);
    P::emit(s0.data, 0, out.buf);
    P::emit(s0.data, 1, out.buf);
    compress_seg::<P>(&segs, first, 2, 2, &mut table, &mut out);
    for s in first + 1..segs.len() {
        compress_seg::<P>(&segs, s, 0, 0, &mut table, &mut out);
    }
}

/// A hash table slot of the LZ encoder.
#[derive(Clone, Copy)]
struct Entry {
    /// Global unit index (images are under 2^30 bytes).
    pos: u32,
    /// `P::key` of that unit.
    key: u32,
}

#[inline(always)]
fn emit_match(out: &mut Out<'_>, len: usize, distance: usize) {
    let (dhi, far) = if distance < MAX_DISTANCE {
        ((distance >> 8) as u8, None)
    } else {
        (31u8, Some(distance - MAX_DISTANCE))
    };
    if len < 7 {
        out.byte(((len as u8) << 5) + dhi);
    } else {
        out.byte((7 << 5) + dhi);
        let mut l = len - 7;
        while l >= 255 {
            out.byte(255);
            l -= 255;
        }
        out.byte(l as u8);
    }
    match far {
        None => out.byte((distance & 255) as u8),
        Some(d) => {
            out.byte(255);
            out.byte((d >> 8) as u8);
            out.byte((d & 255) as u8);
        }
    }
}

/// Index of the segment holding global unit `pos` (segments are in order and
/// not empty).
#[inline]
fn seg_of(segs: &[Seg<'_>], pos: usize) -> usize {
    segs.partition_point(|s| s.start <= pos) - 1
}

fn compress_seg<P: Pixel>(
    segs: &[Seg<'_>],
    s: usize,
    from: usize,
    copied: usize,
    table: &mut [Entry],
    out: &mut Out<'_>,
) {
    let seg = &segs[s];
    let d = seg.data;
    let n = seg.len;
    let base = seg.start;
    let bound = n.saturating_sub(BOUND_OFFSET);
    let mut ip = from;
    let mut copy = copied;
    if copy == 0 {
        out.copy_count((MAX_COPY - 1) as u8);
    }
    // Hashes of positions `hpos..hpos + 4`, computed four at a time while
    // literals follow each other (one at a time right after a match).
    let mut hcache = [0u32; 4];
    let mut hpos = usize::MAX - 4;
    let mut after_literal = false;
    while ip + LIMIT_OFFSET < n {
        let anchor = ip;
        let k = P::key(d, ip);
        // Returns Some((ref seg, ref index, distance, ip)) for a match.
        let found: Option<(usize, usize, usize, usize)> = 'find: {
            if ip > 0 {
                let k0 = P::key(d, ip - 1);
                if k0 == k && k0 == P::key(d, ip + 1) && k0 == P::key(d, ip + 2) {
                    break 'find Some((s, anchor + 2, 1, ip + 3));
                }
            }
            let h = if ip.wrapping_sub(hpos) < 4 {
                hcache[ip - hpos]
            } else if after_literal {
                hpos = ip;
                hcache = P::hash4(d, ip, HASH_MASK);
                hcache[0]
            } else {
                P::hash(d, ip, HASH_MASK)
            } as usize;
            let e = std::mem::replace(
                &mut table[h],
                Entry {
                    pos: (base + anchor) as u32,
                    key: k,
                },
            );
            let rpos = e.pos as usize;
            let distance = base + anchor - rpos;
            if distance == 0 || distance >= MAX_FARDISTANCE || e.key != k {
                break 'find None;
            }
            let rs = if rpos >= base { s } else { seg_of(segs, rpos) };
            let rseg = &segs[rs];
            let rd = rseg.data;
            let mut r = rpos - rseg.start + 1;
            let mut ipm = ip + 1;
            for _ in 1..P::MIN_MATCH {
                if P::key(rd, r) != P::key(d, ipm) {
                    break 'find None;
                }
                r += 1;
                ipm += 1;
            }
            if distance >= MAX_DISTANCE {
                let limit = rseg.len;
                let ok = if P::FAR_STRICT {
                    r + 1 < limit
                } else {
                    r < limit
                };
                if !ok {
                    break 'find None;
                }
                for _ in 0..P::FAR_EXTRA {
                    if P::key(rd, r) != P::key(d, ipm) {
                        break 'find None;
                    }
                    r += 1;
                    ipm += 1;
                }
            }
            Some((rs, r, distance, ipm))
        };
        after_literal = found.is_none();
        let Some((rs, r, distance, mut ipm)) = found else {
            P::emit(d, anchor, out.buf);
            ip = anchor + 1;
            copy += 1;
            if copy == MAX_COPY {
                copy = 0;
                out.copy_count((MAX_COPY - 1) as u8);
            }
            continue;
        };
        let distance = distance - 1;
        let rseg = &segs[rs];
        let rd = rseg.data;
        let ref_limit = rseg.len;
        if ipm < bound && r < ref_limit {
            let max = (bound - ipm).min(ref_limit - r);
            if distance == 0 {
                let x = P::key(rd, r);
                ipm += P::run_len(rd, r, x, max);
            } else {
                let m = P::match_len(rd, r, d, ipm, max);
                // A unit that differs is still consumed (the reference's
                // post-increment on the failed compare).
                ipm += if m < max { m + 1 } else { m };
            }
        }
        if copy > 0 {
            out.update_copy((copy - 1) as u8);
        } else {
            out.drop_copy();
        }
        copy = 0;
        // ip - 3 may be anchor - 1 (one-pixel RGB match).
        let ip3 = ipm as isize - 3;
        let len = (ip3 - anchor as isize + P::LEN_BIAS as isize) as usize;
        debug_assert!(len >= 1);
        emit_match(out, len, distance);
        let mut ipi = ip3;
        if !P::GUARD_FIRST || ipi > anchor as isize {
            let i = ipi as usize;
            table[P::hash(d, i, HASH_MASK) as usize] = Entry {
                pos: (base + i) as u32,
                key: P::key(d, i),
            };
        }
        ipi += 1;
        if !P::GUARD_SECOND || ipi > anchor as isize {
            let i = ipi as usize;
            table[P::hash(d, i, HASH_MASK) as usize] = Entry {
                pos: (base + i) as u32,
                key: P::key(d, i),
            };
        }
        ip = (ipi + 1) as usize;
        out.copy_count((MAX_COPY - 1) as u8);
    }
    while ip < n {
        P::emit(d, ip, out.buf);
        ip += 1;
        copy += 1;
        if copy == MAX_COPY {
            copy = 0;
            out.copy_count((MAX_COPY - 1) as u8);
        }
    }
    if copy > 0 {
        out.update_copy((copy - 1) as u8);
    } else {
        out.drop_copy();
    }
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

/// Pixel format the decoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LzOutputFormat {
    /// The stream's own format: palette bytes (rows of `stride` bytes), RGB16
    /// (u16 LE), RGB24 (B,G,R), RGB32 (B,G,R,0), RGBA (B,G,R,A), A8 bytes;
    /// XXXA writes only byte 3 of existing 32-bit pixels.
    #[default]
    Native,
    /// 32-bit B,G,R,X for display (`SPICE_BITMAP_FMT_32BIT` / pixman x8r8g8b8):
    /// RGB16 is widened like the reference client, RGB24 gets X = 0, palette
    /// images go through the palette (rows of `width` pixels), A8 becomes
    /// (0,0,0,a), RGBA keeps alpha. Not available for XXXA.
    Bgrx32,
}

/// Where and how to decode.
#[derive(Debug, Clone, Copy)]
pub struct LzDecodeOptions<'p> {
    /// Output format.
    pub format: LzOutputFormat,
    /// Output stride in bytes (0: rows packed without padding).
    pub stride: usize,
    /// Palette (`0x00RRGGBB` entries) for palette images decoded to [`LzOutputFormat::Bgrx32`].
    pub palette: Option<&'p [u32]>,
    /// Largest image (in output bytes) the caller accepts.
    pub max_bytes: usize,
}

impl Default for LzDecodeOptions<'_> {
    fn default() -> Self {
        Self {
            format: LzOutputFormat::Native,
            stride: 0,
            palette: None,
            max_bytes: 1 << 30,
        }
    }
}

/// Output geometry of a decode: bytes per decoded row and the buffer size needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LzLayout {
    /// Bytes of one output row (without padding).
    pub row_bytes: usize,
    /// Output stride used.
    pub stride: usize,
    /// Minimum output buffer length.
    pub buffer_len: usize,
    /// Bytes the decoder produces per coded unit before rows are placed.
    unit_out: usize,
}

impl LzHeader {
    /// Computes the output layout for `format` and a requested `stride` (0 = packed).
    pub fn layout(&self, format: LzOutputFormat, stride: usize) -> Result<LzLayout, LzError> {
        let t = self.image_type;
        let w = self.width as usize;
        let h = self.height as usize;
        let (row_bytes, unit_out) = match (format, t) {
            (LzOutputFormat::Native, _) if t.is_palette() => (self.stride as usize, 1),
            (LzOutputFormat::Native, _) => (w * t.bytes_per_pixel(), t.bytes_per_pixel()),
            (LzOutputFormat::Bgrx32, LzImageType::Xxxa) => {
                return Err(LzError::UnsupportedOutput { image_type: t });
            }
            (LzOutputFormat::Bgrx32, _) => (w * 4, 4 * t.pixels_per_byte()),
        };
        let stride = if stride == 0 { row_bytes } else { stride };
        if stride < row_bytes {
            return Err(LzError::OutputStride { stride, row_bytes });
        }
        let contiguous = self.units() * unit_out;
        let placed = stride * (h - 1) + row_bytes;
        Ok(LzLayout {
            row_bytes,
            stride,
            buffer_len: if t == LzImageType::Xxxa {
                placed
            } else {
                contiguous.max(placed)
            },
            unit_out,
        })
    }
}

/// Input reader with position for errors.
pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl Reader<'_> {
    #[inline(always)]
    pub(crate) fn byte(&mut self) -> Result<u8, LzError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(LzError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }
    #[inline(always)]
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], LzError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(LzError::Truncated(self.data.len()))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

/// How literal units are turned into output bytes.
trait Lit {
    /// Bytes per literal unit in the stream.
    const IN: usize;
    /// Output bytes per unit.
    const OUT: usize;
    /// Length bias of the decoder (`count = len_code + BIAS`).
    const BIAS: usize;
    fn put(inp: &[u8], out: &mut [u8], pal: &[u32]) -> Result<(), LzError>;
}

macro_rules! lit {
    ($name:ident, $in:expr, $out:expr, $bias:expr, |$i:ident, $o:ident, $p:ident| $body:block) => {
        struct $name;
        impl Lit for $name {
            const IN: usize = $in;
            const OUT: usize = $out;
            const BIAS: usize = $bias;
            #[inline(always)]
            #[allow(unused_variables)]
            fn put($i: &[u8], $o: &mut [u8], $p: &[u32]) -> Result<(), LzError> $body
        }
    };
}

lit!(LitByte, 1, 1, 3, |i, o, p| {
    o[0] = i[0];
    Ok(())
});
lit!(LitRgb16, 2, 2, 2, |i, o, p| {
    o[0] = i[1];
    o[1] = i[0];
    Ok(())
});
lit!(LitRgb16To32, 2, 4, 2, |i, o, p| {
    widen_rgb16(i[0], i[1], o);
    Ok(())
});
lit!(LitRgb24, 3, 3, 1, |i, o, p| {
    o[..3].copy_from_slice(&i[..3]);
    Ok(())
});
lit!(LitRgb32, 3, 4, 1, |i, o, p| {
    o[..3].copy_from_slice(&i[..3]);
    o[3] = 0;
    Ok(())
});
lit!(LitA8To32, 1, 4, 3, |i, o, p| {
    o[..3].fill(0);
    o[3] = i[0];
    Ok(())
});
lit!(LitPlt8To32, 1, 4, 3, |i, o, p| {
    let e = *p
        .get(usize::from(i[0]))
        .ok_or(LzError::BadPalette { entries: p.len() })?;
    put_entry(e, o);
    Ok(())
});
lit!(LitPlt4LeTo32, 1, 8, 3, |i, o, p| {
    let n = p.len();
    put_entry(p[usize::from(i[0] & 15) % n], &mut o[0..4]);
    put_entry(p[usize::from(i[0] >> 4) % n], &mut o[4..8]);
    Ok(())
});
lit!(LitPlt4BeTo32, 1, 8, 3, |i, o, p| {
    let n = p.len();
    put_entry(p[usize::from(i[0] >> 4) % n], &mut o[0..4]);
    put_entry(p[usize::from(i[0] & 15) % n], &mut o[4..8]);
    Ok(())
});
lit!(LitPlt1LeTo32, 1, 32, 3, |i, o, p| {
    for k in 0..8 {
        put_entry(p[usize::from((i[0] >> k) & 1)], &mut o[k * 4..k * 4 + 4]);
    }
    Ok(())
});
lit!(LitPlt1BeTo32, 1, 32, 3, |i, o, p| {
    for k in 0..8 {
        put_entry(
            p[usize::from((i[0] >> (7 - k)) & 1)],
            &mut o[k * 4..k * 4 + 4],
        );
    }
    Ok(())
});

#[inline(always)]
fn put_entry(e: u32, o: &mut [u8]) {
    o[0] = e as u8;
    o[1] = (e >> 8) as u8;
    o[2] = (e >> 16) as u8;
    o[3] = 0;
}

/// Widens an x1r5g5b5 pixel given as (high byte, low byte) to B,G,R,0 like the
/// reference client (5-bit channels replicated into the low bits).
#[inline(always)]
pub(crate) fn widen_rgb16(hi: u8, lo: u8, o: &mut [u8]) {
    let mut g = ((hi << 6) | (lo >> 2)) & !7;
    g |= g >> 5;
    let r = ((hi << 1) & !7) | ((hi >> 4) & 7);
    let b = (lo << 3) | ((lo >> 2) & 7);
    o[0] = b;
    o[1] = g;
    o[2] = r;
    o[3] = 0;
}

/// Forward copy of `len` bytes from `dst - dist` to `dst` with LZ overlap semantics.
#[inline(always)]
pub(crate) fn copy_back(buf: &mut [u8], dst: usize, dist: usize, len: usize) {
    if dist >= len {
        buf.copy_within(dst - dist..dst - dist + len, dst);
        return;
    }
    let mut d = dist;
    let mut done = 0;
    while done < len {
        let c = d.min(len - done);
        let src = dst + done - d;
        buf.copy_within(src..src + c, dst + done);
        done += c;
        d = done + dist;
    }
}

/// Decodes one pass of `n` units into the contiguous `out` (`n * L::OUT` bytes).
fn decompress<L: Lit>(
    r: &mut Reader<'_>,
    out: &mut [u8],
    n: usize,
    pal: &[u32],
) -> Result<(), LzError> {
    let mut op = 0usize;
    while op < n {
        let at = r.pos;
        let ctrl = usize::from(r.byte()?);
        if ctrl >= MAX_COPY {
            let (len, ofs) = read_match(r, ctrl)?;
            let len = len + L::BIAS;
            if ofs > op {
                return Err(LzError::BadReference(at));
            }
            if len > n - op {
                return Err(LzError::Overrun(at));
            }
            copy_back(out, op * L::OUT, ofs * L::OUT, len * L::OUT);
            op += len;
        } else {
            let cnt = ctrl + 1;
            if cnt > n - op {
                return Err(LzError::Overrun(at));
            }
            let inp = r.take(cnt * L::IN)?;
            let dst = &mut out[op * L::OUT..(op + cnt) * L::OUT];
            for (i, o) in inp.chunks_exact(L::IN).zip(dst.chunks_exact_mut(L::OUT)) {
                L::put(i, o, pal)?;
            }
            op += cnt;
        }
    }
    Ok(())
}

/// Reads the rest of an LZ match token: returns (length code before bias, offset).
#[inline(always)]
fn read_match(r: &mut Reader<'_>, ctrl: usize) -> Result<(usize, usize), LzError> {
    let mut len = (ctrl >> 5) - 1;
    let mut ofs = (ctrl & 31) << 8;
    if len == 6 {
        loop {
            let code = r.byte()?;
            len += usize::from(code);
            if code != 255 {
                break;
            }
        }
    }
    let code = usize::from(r.byte()?);
    ofs += code;
    if code == 255 && ofs - code == 31 << 8 {
        let hi = usize::from(r.byte()?);
        let lo = usize::from(r.byte()?);
        ofs = (hi << 8 | lo) + MAX_DISTANCE;
    }
    Ok((len, ofs + 1))
}

/// Decodes an alpha pass of `n` units into byte 3 of 32-bit pixels of `out`,
/// rows of `w` pixels at `stride` bytes.
fn decompress_alpha(
    r: &mut Reader<'_>,
    out: &mut [u8],
    n: usize,
    w: usize,
    stride: usize,
) -> Result<(), LzError> {
    let packed = stride == w * 4;
    let pos = |i: usize| {
        if packed {
            i * 4 + 3
        } else {
            (i / w) * stride + (i % w) * 4 + 3
        }
    };
    let mut op = 0usize;
    while op < n {
        let at = r.pos;
        let ctrl = usize::from(r.byte()?);
        if ctrl >= MAX_COPY {
            let (len, ofs) = read_match(r, ctrl)?;
            let len = len + 3;
            if ofs > op {
                return Err(LzError::BadReference(at));
            }
            if len > n - op {
                return Err(LzError::Overrun(at));
            }
            for i in op..op + len {
                out[pos(i)] = out[pos(i - ofs)];
            }
            op += len;
        } else {
            let cnt = ctrl + 1;
            if cnt > n - op {
                return Err(LzError::Overrun(at));
            }
            let inp = r.take(cnt)?;
            for (k, &a) in inp.iter().enumerate() {
                out[pos(op + k)] = a;
            }
            op += cnt;
        }
    }
    Ok(())
}

/// Moves rows decoded contiguously (`src_row` bytes apart) to `stride` bytes apart,
/// keeping `row_bytes` of each.
fn place_rows(out: &mut [u8], h: usize, src_row: usize, row_bytes: usize, stride: usize) {
    if stride == src_row {
        return;
    }
    if stride > src_row {
        for r in (1..h).rev() {
            out.copy_within(r * src_row..r * src_row + row_bytes, r * stride);
        }
    } else {
        for r in 1..h {
            out.copy_within(r * src_row..r * src_row + row_bytes, r * stride);
        }
    }
}

/// Decodes an LZ stream into `out` (rows in stream order: see
/// [`LzHeader::top_down`]); returns the header. `out` must hold at least
/// [`LzLayout::buffer_len`] bytes (from [`LzHeader::layout`]). The whole stream
/// must be one image: missing or trailing bytes are errors.
pub fn decode(
    stream: &[u8],
    out: &mut [u8],
    opts: &LzDecodeOptions<'_>,
) -> Result<LzHeader, LzError> {
    let hdr = LzHeader::parse(stream)?;
    let lay = hdr.layout(opts.format, opts.stride)?;
    if lay.buffer_len > opts.max_bytes {
        return Err(LzError::TooLarge {
            bytes: lay.buffer_len as u64,
            limit: opts.max_bytes as u64,
        });
    }
    if out.len() < lay.buffer_len {
        return Err(LzError::OutputTooSmall {
            got: out.len(),
            need: lay.buffer_len,
        });
    }
    let mut r = Reader {
        data: stream,
        pos: LzHeader::SIZE,
    };
    let t = hdr.image_type;
    let n = hdr.units();
    let w = hdr.width as usize;
    let h = hdr.height as usize;
    let contig = &mut out[..n * lay.unit_out];
    use LzImageType as T;
    use LzOutputFormat as F;
    let pal: &[u32] = match (opts.format, t.is_palette()) {
        (F::Bgrx32, true) => {
            let p = opts.palette.unwrap_or(&[]);
            let need = if t.pixels_per_byte() == 8 { 2 } else { 1 };
            if p.len() < need {
                return Err(LzError::BadPalette { entries: p.len() });
            }
            p
        }
        _ => &[],
    };
    match (opts.format, t) {
        (F::Native, T::Xxxa) => decompress_alpha(&mut r, out, n, w, lay.stride)?,
        (F::Native, T::Rgb16) => decompress::<LitRgb16>(&mut r, contig, n, pal)?,
        (F::Native, T::Rgb24) => decompress::<LitRgb24>(&mut r, contig, n, pal)?,
        (_, T::Rgb32 | T::Rgba) | (F::Bgrx32, T::Rgb24) => {
            decompress::<LitRgb32>(&mut r, contig, n, pal)?
        }
        (F::Native, _) => decompress::<LitByte>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Rgb16) => decompress::<LitRgb16To32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::A8) => decompress::<LitA8To32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Plt8) => decompress::<LitPlt8To32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Plt4Le) => decompress::<LitPlt4LeTo32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Plt4Be) => decompress::<LitPlt4BeTo32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Plt1Le) => decompress::<LitPlt1LeTo32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Plt1Be) => decompress::<LitPlt1BeTo32>(&mut r, contig, n, pal)?,
        (F::Bgrx32, T::Xxxa) => return Err(LzError::UnsupportedOutput { image_type: t }),
    }
    if t != T::Xxxa {
        let src_row = n / h * lay.unit_out;
        place_rows(out, h, src_row, lay.row_bytes, lay.stride);
    }
    if t == T::Rgba {
        decompress_alpha(&mut r, out, n, w, lay.stride)?;
    }
    if r.pos != stream.len() {
        return Err(LzError::TrailingBytes(stream.len() - r.pos));
    }
    Ok(hdr)
}

/// Decodes an LZ `XXXA` stream (the alpha of a JPEG_ALPHA image) into byte 3
/// of the 32-bit pixels already in `bgrx` (rows `stride` bytes apart, 0 =
/// `width * 4`); the other bytes are left as they are.
pub fn decode_alpha(stream: &[u8], bgrx: &mut [u8], stride: usize) -> Result<LzHeader, LzError> {
    let hdr = LzHeader::parse(stream)?;
    if hdr.image_type != LzImageType::Xxxa {
        return Err(LzError::UnsupportedOutput {
            image_type: hdr.image_type,
        });
    }
    decode(
        stream,
        bgrx,
        &LzDecodeOptions {
            stride,
            ..Default::default()
        },
    )
}

/// Decodes into a new buffer (packed rows), refusing images over `max_bytes`.
pub fn decode_to_vec(
    stream: &[u8],
    format: LzOutputFormat,
    palette: Option<&[u32]>,
    max_bytes: usize,
) -> Result<(LzHeader, Vec<u8>), LzError> {
    let hdr = LzHeader::parse(stream)?;
    let lay = hdr.layout(format, 0)?;
    if lay.buffer_len > max_bytes {
        return Err(LzError::TooLarge {
            bytes: lay.buffer_len as u64,
            limit: max_bytes as u64,
        });
    }
    let mut out = vec![0u8; lay.buffer_len];
    let opts = LzDecodeOptions {
        format,
        stride: 0,
        palette,
        max_bytes,
    };
    decode(stream, &mut out, &opts)?;
    out.truncate(lay.row_bytes * hdr.height as usize);
    Ok((hdr, out))
}

/// Fuzzing entry point: decodes `data` as an LZ stream in both output formats
/// (with a 256-entry grey palette), capped at 16 MiB of output. Never panics.
pub fn fuzz_decode(data: &[u8]) -> Result<(), LzError> {
    let pal: Vec<u32> = (0..256u32).map(|i| i * 0x010101).collect();
    let native = decode_to_vec(data, LzOutputFormat::Native, None, 16 << 20).map(|_| ());
    let wide = decode_to_vec(data, LzOutputFormat::Bgrx32, Some(&pal), 16 << 20).map(|_| ());
    native.and(wide)
}

#[cfg(test)]
mod tests {
    use super::{Pixel, Rgb32Px};

    /// Unit-by-unit reference for the word-at-a-time match and run lengths.
    fn slow_len(a: &[u8], ai: usize, b: &[u8], bi: usize, max: usize) -> usize {
        (0..max)
            .position(|j| Rgb32Px::key(a, ai + j) != Rgb32Px::key(b, bi + j))
            .unwrap_or(max)
    }

    #[test]
    fn rgb32_hash4_matches_hash() {
        let d: Vec<u8> = (0..64u32).map(|i| (i * 37 % 251) as u8).collect();
        for i in 0..=10 {
            let want = [0, 1, 2, 3].map(|j| Rgb32Px::hash(&d, i + j, 0x1fff));
            assert_eq!(Rgb32Px::hash4(&d, i, 0x1fff), want);
        }
    }

    #[test]
    fn rgb32_match_and_run_len_agree_with_unit_compare() {
        let n = 300;
        // X bytes vary, so byte-exact block compares fail and the masked
        // compare has to take over.
        let base: Vec<u8> = (0..n * 4)
            .map(|i| {
                if i % 4 == 3 {
                    (i / 4 % 5) as u8
                } else {
                    (i % 4 * 60) as u8
                }
            })
            .collect();
        let same_x: Vec<u8> = (0..n * 4).map(|i| (i % 4 * 60) as u8).collect();
        let positions = (0..40).chain((40..n).step_by(13)).chain([n - 1]);
        for (base, pos) in positions.flat_map(|p| [(&base, p), (&same_x, p)]) {
            for byte in 0..4 {
                let mut b = base.clone();
                b[pos * 4 + byte] ^= 0x11;
                for ai in [0, 1, 3] {
                    for max in [0, 1, 7, 8, 9, 17, 150, n - ai] {
                        let want = slow_len(base, ai, &b, ai, max);
                        assert_eq!(Rgb32Px::match_len(base, ai, &b, ai, max), want);
                        let x = Rgb32Px::key(base, 0);
                        assert_eq!(Rgb32Px::run_len(&b, ai, x, max), want);
                    }
                }
            }
        }
    }
}
