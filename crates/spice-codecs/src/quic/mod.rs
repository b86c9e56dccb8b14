//! QUIC: the lossless image codec of SPICE (`SPICE_IMAGE_TYPE_QUIC`).
//!
//! QUIC is derived from SFALIC: each channel is predicted from its left and upper
//! neighbours (`(a + b) >> 1`), the modular residual is zig-zag mapped and written with
//! one of a family of length-limited Golomb–Rice codes, chosen per context bucket by
//! running code-length counters. Flat areas are coded as runs with the JPEG-LS melcode.
//! The stream is a sequence of little-endian `u32` words whose bits are filled MSB
//! first; it opens with a 20-byte header (`"QUIC"`, version 0, type, width, height)
//! and ends with one all-zero word.
//!
//! The encoder reproduces the reference encoder of spice-common byte for byte. The
//! decoder accepts every stream the reference decoder accepts, and rejects malformed
//! streams with a [`QuicError`] (it never panics, never reads outside the input and
//! never allocates more than the header declares, bounded by [`DecodeLimits`]).
//!
//! Encoding: [`encode`] / [`encode_into`] over an [`Image`] (caller's pixel buffer,
//! any stride, either row order). Decoding: [`decode_header`], then [`decode`] into a
//! caller's buffer with a caller-chosen stride, row order and [`PixelFormat`], or
//! [`decode_to_vec`].

use thiserror::Error;

/// Magic word at offset 0 (`"QUIC"` as little-endian bytes).
pub const MAGIC: u32 = 0x4349_5551;
/// The only stream version (major 0, minor 0).
pub const VERSION: u32 = 0;
/// Size of the stream header in bytes.
pub const HEADER_SIZE: usize = 20;
/// Largest `width * height` the reference decoder accepts (2^29 - 1).
pub const MAX_PIXELS_REFERENCE: u64 = (1 << 29) - 1;

/// The image type stored in a QUIC header (`QuicImageType`, a `u32` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageType {
    /// One 8-bit channel (1 byte per input pixel). Not accepted by spice-gtk.
    Gray = 1,
    /// Three 5-bit channels from a little-endian x1r5g5b5 `u16` (bit 15 ignored).
    Rgb16 = 2,
    /// Three 8-bit channels from B, G, R bytes.
    Rgb24 = 3,
    /// Three 8-bit channels from B, G, R, X bytes (X ignored).
    Rgb32 = 4,
    /// Three 8-bit channels plus alpha, from B, G, R, A bytes.
    Rgba = 5,
}

impl ImageType {
    /// The type for a header word, if it names one of the five types.
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Gray,
            2 => Self::Rgb16,
            3 => Self::Rgb24,
            4 => Self::Rgb32,
            5 => Self::Rgba,
            _ => return None,
        })
    }

    /// The header word of this type.
    pub fn to_u32(self) -> u32 {
        self as u32
    }

    /// The pixel layout the encoder reads for this type, and the decoder's exact output.
    pub fn natural_format(self) -> PixelFormat {
        match self {
            Self::Gray => PixelFormat::Gray8,
            Self::Rgb16 => PixelFormat::Rgb16,
            Self::Rgb24 => PixelFormat::Rgb24,
            Self::Rgb32 => PixelFormat::Rgb32,
            Self::Rgba => PixelFormat::Rgba,
        }
    }
}

/// A pixel layout in memory (encoder input, decoder output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 1 byte per pixel: the gray level.
    Gray8,
    /// 2 bytes per pixel: little-endian x1r5g5b5; the decoder writes bit 15 as 0.
    Rgb16,
    /// 3 bytes per pixel: B, G, R.
    Rgb24,
    /// 4 bytes per pixel: B, G, R, X; the decoder writes X as 0.
    Rgb32,
    /// 4 bytes per pixel: B, G, R, A; the decoder writes A = 255 for types without alpha.
    Rgba,
}

impl PixelFormat {
    /// Bytes per pixel of this layout.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 | Self::Rgba => 4,
        }
    }
}

/// Order of the rows in a caller's buffer. QUIC streams always hold the top row first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowOrder {
    /// The first row in memory is the top row.
    #[default]
    TopDown,
    /// The first row in memory is the bottom row.
    BottomUp,
}

/// The 20-byte header of a QUIC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuicHeader {
    /// Image type (channels and bit depth).
    pub image_type: ImageType,
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
}

/// Caps a decoder applies before allocating or writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `width * height` accepted (never more than [`MAX_PIXELS_REFERENCE`]).
    pub max_pixels: u64,
    /// Largest output buffer [`decode_to_vec`] allocates, in bytes.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// 64 Mi pixels and 256 MiB.
    fn default() -> Self {
        Self {
            max_pixels: 1 << 26,
            max_bytes: 1 << 28,
        }
    }
}

/// An image to encode: pixels in the caller's buffer, in `image_type`'s natural layout
/// ([`ImageType::natural_format`]).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// What to code, and the layout of `data`.
    pub image_type: ImageType,
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
    /// Bytes from the start of one row to the start of the next in memory.
    pub stride: usize,
    /// Whether `data` starts with the top or the bottom row.
    pub row_order: RowOrder,
    /// The pixels: at least `stride * (height - 1) + width * bytes_per_pixel` bytes.
    pub data: &'a [u8],
}

/// Why a QUIC stream could not be decoded or an image could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuicError {
    /// Fewer than 20 bytes: no complete header.
    #[error("QUIC stream of {0} bytes is shorter than the 20-byte header")]
    HeaderTruncated(usize),
    /// The first word is not `"QUIC"`.
    #[error("bad QUIC magic {0:#010x}")]
    BadMagic(u32),
    /// The version word is not 0.
    #[error("unsupported QUIC version {0:#010x}")]
    BadVersion(u32),
    /// The type word is not in 1..=5.
    #[error("unknown QUIC image type {0}")]
    BadImageType(u32),
    /// Width or height is 0, or their product exceeds the reference limit of 2^29 - 1.
    #[error("invalid QUIC image size {width}x{height}")]
    BadDimensions {
        /// Width from the header or the caller.
        width: u32,
        /// Height from the header or the caller.
        height: u32,
    },
    /// The image is larger than the caller's [`DecodeLimits`].
    #[error("QUIC image of {pixels} pixels / {bytes} bytes exceeds the caller's limit")]
    TooLarge {
        /// `width * height`.
        pixels: u64,
        /// Bytes the output would need.
        bytes: u64,
    },
    /// The requested output layout cannot represent this image type exactly.
    #[error("cannot decode a QUIC {image_type:?} image to {format:?}")]
    UnsupportedFormat {
        /// The stream's image type.
        image_type: ImageType,
        /// The requested output layout.
        format: PixelFormat,
    },
    /// The stride is smaller than one row of pixels.
    #[error("stride {stride} is smaller than a row of {row_bytes} bytes")]
    StrideTooSmall {
        /// The caller's stride.
        stride: usize,
        /// `width * bytes_per_pixel`.
        row_bytes: usize,
    },
    /// The caller's pixel buffer is too small for the image.
    #[error("pixel buffer of {got} bytes, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The coded data ended before the last pixel.
    #[error("QUIC stream truncated")]
    Truncated,
    /// An escape code named a residual outside the channel's range.
    #[error("QUIC escape code out of range")]
    BadResidual,
    /// A run went past the end of its row segment ("wrong RLE" in the reference).
    #[error("QUIC run longer than the rest of the row")]
    RunTooLong,
}

/// Result alias of this module.
pub type Result<T, E = QuicError> = core::result::Result<T, E>;

mod bits;
mod model;
mod plane;
mod scan;
mod swar;

use bits::{BitReader, BitWriter};
use plane::Plane;
use scan::Simd;

// ---------------------------------------------------------------------------------
// Header.

fn check_dimensions(width: u32, height: u32) -> Result<u64> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || pixels > MAX_PIXELS_REFERENCE {
        return Err(QuicError::BadDimensions { width, height });
    }
    Ok(pixels)
}

/// Parses and checks the 20-byte header of a QUIC stream (magic, version 0, type,
/// non-zero size within the reference limit of 2^29 - 1 pixels).
pub fn decode_header(data: &[u8]) -> Result<QuicHeader> {
    let Some(head) = data.get(..HEADER_SIZE) else {
        return Err(QuicError::HeaderTruncated(data.len()));
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(0) != MAGIC {
        return Err(QuicError::BadMagic(word(0)));
    }
    if word(4) != VERSION {
        return Err(QuicError::BadVersion(word(4)));
    }
    let image_type = ImageType::from_u32(word(8)).ok_or(QuicError::BadImageType(word(8)))?;
    let (width, height) = (word(12), word(16));
    check_dimensions(width, height)?;
    Ok(QuicHeader {
        image_type,
        width,
        height,
    })
}

/// Checks `stride` and the buffer length for `height` rows of `row_bytes`.
fn check_buffer(len: usize, stride: usize, row_bytes: usize, height: u32) -> Result<()> {
    if stride < row_bytes {
        return Err(QuicError::StrideTooSmall { stride, row_bytes });
    }
    let needed = (height as usize - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .ok_or(QuicError::BufferTooSmall {
            needed: usize::MAX,
            got: len,
        })?;
    if len < needed {
        return Err(QuicError::BufferTooSmall { needed, got: len });
    }
    Ok(())
}

/// Byte offset of stream row `y` (0 = top) in a caller's buffer.
#[inline(always)]
fn row_offset(y: usize, height: usize, stride: usize, order: RowOrder) -> usize {
    match order {
        RowOrder::TopDown => y * stride,
        RowOrder::BottomUp => (height - 1 - y) * stride,
    }
}

// ---------------------------------------------------------------------------------
// Encoder.

/// Encodes `image` as a QUIC stream (header, coded rows, trailing zero word).
///
/// The output equals the reference encoder's byte for byte; its length is a multiple
/// of 4 (the `data_size` of a `SpiceQUICData`).
pub fn encode(image: &Image<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(image, &mut out)?;
    Ok(out)
}

/// Appends the QUIC stream of `image` to `out`; returns the number of bytes appended.
/// On error nothing is appended.
pub fn encode_into(image: &Image<'_>, out: &mut Vec<u8>) -> Result<usize> {
    encode_with(image, out, Simd::detect())
}

/// [`encode_into`] with the row loops of instruction set `simd`.
fn encode_with(image: &Image<'_>, out: &mut Vec<u8>, simd: Simd) -> Result<usize> {
    let &Image {
        image_type,
        width,
        height,
        stride,
        row_order,
        data,
    } = image;
    check_dimensions(width, height)?;
    let bpp = image_type.natural_format().bytes_per_pixel();
    let row_bytes = width as usize * bpp;
    check_buffer(data.len(), stride, row_bytes, height)?;
    let start = out.len();
    // A rough guess to avoid most reallocations: a quarter of the input.
    out.reserve(HEADER_SIZE + (row_bytes * height as usize) / 4 + 8);
    for word in [MAGIC, VERSION, image_type.to_u32(), width, height] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let mut w = BitWriter::new(out);
    let (wd, ht) = (width as usize, height as usize);
    let rows = (0..ht).map(|y| {
        let off = row_offset(y, ht, stride, row_order);
        &data[off..off + row_bytes]
    });
    match image_type {
        ImageType::Gray => {
            let mut p = Plane::<1, 1, 8>::with_simd(wd, simd);
            for row in rows {
                p.cur.as_flattened_mut().copy_from_slice(row);
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgb16 => {
            let mut p = Plane::<4, 3, 5>::with_simd(wd, simd);
            for row in rows {
                for (d, s) in p.cur.iter_mut().zip(row.chunks_exact(2)) {
                    let v = u16::from_le_bytes([s[0], s[1]]);
                    *d = [v as u8 & 31, (v >> 5) as u8 & 31, (v >> 10) as u8 & 31, 0];
                }
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgb24 => {
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            for row in rows {
                for (d, s) in p.cur.iter_mut().zip(row.chunks_exact(3)) {
                    *d = [s[0], s[1], s[2], 0];
                }
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgb32 => {
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            for row in rows {
                // X is ignored: clear it so pixel compares see B, G, R only.
                scan::copy_clear_x(&mut p.cur, row);
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgba => {
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            let mut a = Plane::<1, 1, 8>::with_simd(wd, simd);
            for row in rows {
                for ((d, da), s) in p
                    .cur
                    .iter_mut()
                    .zip(a.cur.iter_mut())
                    .zip(row.chunks_exact(4))
                {
                    *d = [s[0], s[1], s[2], 0];
                    *da = [s[3]];
                }
                p.encode_row(&mut w);
                a.encode_row(&mut w);
                p.next_row();
                a.next_row();
            }
        }
    }
    w.flush();
    Ok(out.len() - start)
}

// ---------------------------------------------------------------------------------
// Decoder.

/// Sets byte 3 (alpha) of every 4-byte pixel of `row` to 255.
fn set_opaque(row: &mut [u8]) {
    // Four pixels at a time as one u128 (LLVM keeps it in a vector register).
    const ALPHA: u128 = 0xff00_0000_ff00_0000_ff00_0000_ff00_0000;
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        let v = u128::from_le_bytes((&*c).try_into().expect("16 bytes")) | ALPHA;
        c.copy_from_slice(&v.to_le_bytes());
    }
    for px in chunks.into_remainder().chunks_exact_mut(4) {
        px[3] = 0xff;
    }
}

/// A row of 4-byte pixels (`row.len()` is a multiple of 4).
fn as_pixels(row: &[u8]) -> &[[u8; 4]] {
    debug_assert!(row.len() % 4 == 0);
    // SAFETY: `[u8; 4]` has the size 4 and the alignment 1 of four bytes, so the
    // first `len / 4 * 4` bytes of `row` are `len / 4` valid pixels, borrowed as long
    // as `row`. (`<[u8]>::as_chunks` needs Rust 1.88; the MSRV is 1.85.)
    unsafe { core::slice::from_raw_parts(row.as_ptr().cast(), row.len() / 4) }
}

/// [`as_pixels`] for writing.
fn as_pixels_mut(row: &mut [u8]) -> &mut [[u8; 4]] {
    debug_assert!(row.len() % 4 == 0);
    // SAFETY: as in `as_pixels`; the mutable borrow of `row` is moved into the result.
    unsafe { core::slice::from_raw_parts_mut(row.as_mut_ptr().cast(), row.len() / 4) }
}

fn check_format(image_type: ImageType, format: PixelFormat) -> Result<()> {
    let ok = match format {
        PixelFormat::Gray8 => image_type == ImageType::Gray,
        PixelFormat::Rgb16 => image_type == ImageType::Rgb16,
        PixelFormat::Rgb24 | PixelFormat::Rgb32 | PixelFormat::Rgba => true,
    };
    if ok {
        Ok(())
    } else {
        Err(QuicError::UnsupportedFormat { image_type, format })
    }
}

#[inline(always)]
fn expand5(v: u8) -> u8 {
    (v << 3) | (v >> 2)
}

/// Writes a decoded gray row in `format`.
fn store_gray(src: &[[u8; 1]], format: PixelFormat, dst: &mut [u8]) {
    match format {
        PixelFormat::Gray8 => dst.copy_from_slice(src.as_flattened()),
        PixelFormat::Rgb24 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&[s[0]; 3]);
            }
        }
        PixelFormat::Rgb32 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[s[0], s[0], s[0], 0]);
            }
        }
        PixelFormat::Rgba => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[s[0], s[0], s[0], 255]);
            }
        }
        PixelFormat::Rgb16 => {}
    }
}

/// Writes a decoded 5-bit B,G,R,0 row in `format`.
fn store_rgb5(src: &[[u8; 4]], format: PixelFormat, dst: &mut [u8]) {
    match format {
        PixelFormat::Rgb16 => {
            for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                let v = (u16::from(s[2]) << 10) | (u16::from(s[1]) << 5) | u16::from(s[0]);
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        PixelFormat::Rgb24 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&[expand5(s[0]), expand5(s[1]), expand5(s[2])]);
            }
        }
        PixelFormat::Rgb32 | PixelFormat::Rgba => {
            let x = if format == PixelFormat::Rgba { 255 } else { 0 };
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[expand5(s[0]), expand5(s[1]), expand5(s[2]), x]);
            }
        }
        PixelFormat::Gray8 => {}
    }
}

/// Writes a decoded 8-bit B,G,R,0 row (plus alpha, if any) in `format`.
fn store_rgb8(src: &[[u8; 4]], alpha: Option<&[[u8; 1]]>, format: PixelFormat, dst: &mut [u8]) {
    match (format, alpha) {
        (PixelFormat::Rgb24, _) => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&s[..3]);
            }
        }
        (PixelFormat::Rgba, Some(alpha)) => {
            // Whole-word form: B,G,R from the pixel word, A shifted into the top byte.
            for ((d, s), a) in dst.chunks_exact_mut(4).zip(src).zip(alpha) {
                let v = (u32::from_le_bytes(*s) & 0x00FF_FFFF) | (u32::from(a[0]) << 24);
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        // Stored pixels already are B,G,R,0.
        (PixelFormat::Rgb32, _) => dst.copy_from_slice(src.as_flattened()),
        (PixelFormat::Rgba, None) => {
            // The stored fourth byte is 0: one OR per pixel word, which LLVM vectorises.
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                let v = u32::from_le_bytes(*s) | 0xFF00_0000;
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        (PixelFormat::Gray8 | PixelFormat::Rgb16, _) => {}
    }
}

/// Decodes a QUIC stream into `out`: row `y` of the image (0 = top) lands at
/// `y * stride` ([`RowOrder::TopDown`]) or `(height - 1 - y) * stride`
/// ([`RowOrder::BottomUp`]), in `format`. Bytes between rows are left untouched.
///
/// Formats: every type decodes to [`PixelFormat::Rgb24`], [`PixelFormat::Rgb32`]
/// (X = 0) and [`PixelFormat::Rgba`] (A = 255 unless the type is RGBA); GRAY also to
/// [`PixelFormat::Gray8`], RGB16 also to [`PixelFormat::Rgb16`]. 5-bit channels widen as
/// `v << 3 | v >> 2`, like spice-gtk.
///
/// Whole 32-bit words are read (1–3 trailing bytes are ignored, like the reference);
/// data after the last coded symbol is ignored. On error `out` may hold a partial image.
///
/// Memory: after the header and size checks, the decoder makes a copy of `data`
/// (byte-swapped for fast bit reads) in a buffer this thread keeps for its next decode
/// (up to 16 MiB of it; a larger one is freed), and allocates a few rows of `width`
/// pixels; nothing else. RGB images decoded to RGB32 or RGBA are written straight into
/// `out`.
pub fn decode(
    data: &[u8],
    out: &mut [u8],
    stride: usize,
    format: PixelFormat,
    row_order: RowOrder,
    limits: &DecodeLimits,
) -> Result<QuicHeader> {
    decode_with(data, out, stride, format, row_order, limits, Simd::detect())
}

/// [`decode`] with the row loops of instruction set `simd`.
fn decode_with(
    data: &[u8],
    out: &mut [u8],
    stride: usize,
    format: PixelFormat,
    row_order: RowOrder,
    limits: &DecodeLimits,
    simd: Simd,
) -> Result<QuicHeader> {
    let header = decode_header(data)?;
    let QuicHeader {
        image_type,
        width,
        height,
    } = header;
    check_format(image_type, format)?;
    let pixels = u64::from(width) * u64::from(height);
    let row_bytes = width as usize * format.bytes_per_pixel();
    if pixels > limits.max_pixels {
        return Err(QuicError::TooLarge {
            pixels,
            bytes: pixels * format.bytes_per_pixel() as u64,
        });
    }
    check_buffer(out.len(), stride, row_bytes, height)?;
    let mut r = BitReader::new(&data[HEADER_SIZE..]);
    let (wd, ht) = (width as usize, height as usize);
    let dst = |y: usize| {
        let off = row_offset(y, ht, stride, row_order);
        // In bounds: check_buffer verified (height - 1) * stride + row_bytes <= len.
        off..off + row_bytes
    };
    match image_type {
        ImageType::Gray => {
            let mut p = Plane::<1, 1, 8>::with_simd(wd, simd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_gray(&p.cur, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgb16 => {
            let mut p = Plane::<4, 3, 5>::with_simd(wd, simd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_rgb5(&p.cur, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgb24 | ImageType::Rgb32
            if matches!(format, PixelFormat::Rgb32 | PixelFormat::Rgba) =>
        {
            // The output rows have the plane's layout (B, G, R, 0): decode straight
            // into them, each over the output row before it. For RGBA output a row's
            // alpha is set once the next row no longer needs it as its upper row.
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            let alpha = format == PixelFormat::Rgba;
            for y in 0..ht {
                let cur = dst(y);
                if y == 0 {
                    p.decode_row_into(&mut r, &[], as_pixels_mut(&mut out[cur]))?;
                    continue;
                }
                let prev = dst(y - 1);
                let (prev_row, cur_row) = if prev.start < cur.start {
                    let (head, tail) = out.split_at_mut(cur.start);
                    (&head[prev.clone()], &mut tail[..row_bytes])
                } else {
                    let (head, tail) = out.split_at_mut(prev.start);
                    (&tail[..row_bytes], &mut head[cur])
                };
                p.decode_row_into(&mut r, as_pixels(prev_row), as_pixels_mut(cur_row))?;
                if alpha {
                    set_opaque(&mut out[prev]);
                }
            }
            if alpha && ht > 0 {
                set_opaque(&mut out[dst(ht - 1)]);
            }
        }
        ImageType::Rgb24 | ImageType::Rgb32 => {
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_rgb8(&p.cur, None, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgba => {
            let mut p = Plane::<4, 3, 8>::with_simd(wd, simd);
            let mut a = Plane::<1, 1, 8>::with_simd(wd, simd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                a.decode_row(&mut r)?;
                store_rgb8(&p.cur, Some(&a.cur), format, &mut out[dst(y)]);
                p.next_row();
                a.next_row();
            }
        }
    }
    Ok(header)
}

/// Decodes a QUIC stream into a new top-down buffer with rows tightly packed in
/// `format`, after checking its size against `limits`.
pub fn decode_to_vec(
    data: &[u8],
    format: PixelFormat,
    limits: &DecodeLimits,
) -> Result<(QuicHeader, Vec<u8>)> {
    let header = decode_header(data)?;
    check_format(header.image_type, format)?;
    let pixels = u64::from(header.width) * u64::from(header.height);
    let bytes = pixels * format.bytes_per_pixel() as u64;
    if pixels > limits.max_pixels || bytes > limits.max_bytes {
        return Err(QuicError::TooLarge { pixels, bytes });
    }
    let stride = header.width as usize * format.bytes_per_pixel();
    let mut out = vec![0; bytes as usize];
    decode(data, &mut out, stride, format, RowOrder::TopDown, limits)?;
    Ok((header, out))
}

/// Fuzzing entry point: decodes `data` (images up to 2^20 pixels) in its natural format
/// and as RGB32, discarding the result. Never panics.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits {
        max_pixels: 1 << 20,
        max_bytes: 1 << 22,
    };
    let Ok(header) = decode_header(data) else {
        return;
    };
    let natural = header.image_type.natural_format();
    let _ = decode_to_vec(data, natural, &limits);
    if natural != PixelFormat::Rgb32 {
        let _ = decode_to_vec(data, PixelFormat::Rgb32, &limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift generator from `seed`.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Decodes `stream` as RGB32 rows of `width` pixels, top-down, into `out` with the
    /// instruction set `simd`.
    fn decode_rgb32(stream: &[u8], out: &mut [u8], width: usize, simd: Simd) -> Result<QuicHeader> {
        let limits = DecodeLimits::default();
        decode_with(
            stream,
            out,
            width * 4,
            PixelFormat::Rgb32,
            RowOrder::TopDown,
            &limits,
            simd,
        )
    }

    /// Every instruction set this CPU has gives the same bytes (the portable row loops,
    /// SSE2 and x86-64-v3 with AVX2), and decodes them back, for every type on images
    /// of awkward sizes with runs, noise and escapes.
    #[test]
    fn reused_reader_buffer_holds_nothing_of_the_last_stream() {
        // A big noisy image, then a small one and its truncations on the same thread:
        // the small stream must decode exactly, and its truncations exactly as on a
        // fresh thread (nothing to reuse), as if the big stream's bytes were not still
        // in the reused buffer.
        let mut next = xorshift(0x5151_7272_9393_b4b4);
        let mut noise = |n: usize| -> Vec<u8> { (0..n).map(|_| next() as u8).collect() };
        let image = |data: &[u8], w: usize, h: usize| {
            let image = Image {
                image_type: ImageType::Rgb32,
                width: w as u32,
                height: h as u32,
                stride: w * 4,
                row_order: RowOrder::TopDown,
                data,
            };
            encode(&image).unwrap()
        };
        let big = noise(300 * 200 * 4);
        let small = noise(40 * 30 * 4);
        let (big_stream, small_stream) = (image(&big, 300, 200), image(&small, 40, 30));
        let simd = Simd::detect();
        let mut out = vec![0u8; 300 * 200 * 4];
        decode_rgb32(&big_stream, &mut out, 300, simd).unwrap();
        let mut small_out = vec![0u8; 40 * 30 * 4];
        decode_rgb32(&small_stream, &mut small_out, 40, simd).unwrap();
        for (g, w) in small_out.chunks(4).zip(small.chunks(4)) {
            assert_eq!(g[..3], w[..3]);
        }
        for cut in [
            small_stream.len() - 4,
            small_stream.len() - 12,
            small_stream.len() / 2,
        ] {
            let part = small_stream[..cut].to_vec();
            let fresh = std::thread::spawn(move || {
                let mut o = vec![0u8; 40 * 30 * 4];
                let r = decode_rgb32(&part, &mut o, 40, simd);
                (r.is_ok(), o)
            })
            .join()
            .unwrap();
            decode_rgb32(&big_stream, &mut out, 300, simd).unwrap();
            let mut o = vec![0u8; 40 * 30 * 4];
            let r = decode_rgb32(&small_stream[..cut], &mut o, 40, simd);
            assert_eq!((r.is_ok(), o), fresh, "cut at {cut}");
        }
    }

    #[test]
    fn decoder_row_strategies_are_exact() {
        // Rows alternate between kinds the decoder treats apart: below a flat row or a
        // row of long repeats, most pixels equal their upper neighbours (the run
        // condition is checked at every pixel); below noise or short repeats, equal
        // upper neighbours are rare (the mask leads from one cluster to the next, and
        // runs begin inside and at the edges of clusters). Wide enough that
        // most of the stream is read with unchecked refills and its end with checked
        // ones.
        let mut next = xorshift(0x0123_4567_89ab_cdefu64);
        for &(width, height) in &[(300usize, 48usize), (67, 30), (1100, 12)] {
            let mut data = vec![0u8; width * height * 4];
            for y in 0..height {
                let mut v = [0u8; 3];
                for x in 0..width {
                    let r = next();
                    match y % 4 {
                        0 => {
                            v = if r % 40 == 0 {
                                [r as u8, 7, 9]
                            } else {
                                [200, 200, 200]
                            }
                        }
                        1 => v = [(r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8],
                        2 => {
                            // Equal neighbours in about one pixel of six: the row
                            // below reads it as sparse, with clusters to check.
                            if r % 8 != 0 {
                                v = [(r >> 8) as u8 % 16, 5, 1];
                            }
                        }
                        _ => {
                            // Long repeats: runs start right at those clusters.
                            if r % 4 == 0 {
                                v = [(r >> 8) as u8 & 0xf0, 0, 1];
                            }
                        }
                    }
                    data[(y * width + x) * 4..][..3].copy_from_slice(&v);
                }
            }
            let image = Image {
                image_type: ImageType::Rgb32,
                width: width as u32,
                height: height as u32,
                stride: width * 4,
                row_order: RowOrder::TopDown,
                data: &data,
            };
            let stream = encode(&image).unwrap();
            for simd in Simd::available() {
                let mut pixels = vec![0u8; width * height * 4];
                decode_rgb32(&stream, &mut pixels, width, simd).unwrap();
                for (k, (got, want)) in pixels.chunks(4).zip(data.chunks(4)).enumerate() {
                    assert_eq!(got[..3], want[..3], "{width}x{height} {simd:?} pixel {k}");
                }
            }
        }
    }

    #[test]
    fn instruction_sets_give_identical_streams() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let types = [
            ImageType::Gray,
            ImageType::Rgb16,
            ImageType::Rgb24,
            ImageType::Rgb32,
            ImageType::Rgba,
        ];
        for &(width, height) in &[(1, 1), (3, 2), (7, 5), (9, 3), (63, 4), (65, 6), (131, 9)] {
            for ty in types {
                let bpp = ty.natural_format().bytes_per_pixel();
                let stride = width * bpp + 3;
                let mut data = vec![0u8; stride * height];
                // Flat areas and repeats (runs), a few colours, noise (escapes).
                let palette: Vec<u8> = (0..12).map(|_| next() as u8).collect();
                for (i, px) in data.chunks_exact_mut(bpp).enumerate() {
                    let v = next();
                    for (k, b) in px.iter_mut().enumerate() {
                        *b = match v % 7 {
                            0 | 1 => (v >> (8 + 8 * k)) as u8,
                            2..=4 => palette[(i / 13 % 4) * 3 % 12 + k % 3],
                            _ => palette[k % 3],
                        };
                    }
                }
                let image = Image {
                    image_type: ty,
                    width: width as u32,
                    height: height as u32,
                    stride,
                    row_order: RowOrder::TopDown,
                    data: &data,
                };
                let mut streams = Vec::new();
                for simd in Simd::available() {
                    let mut out = Vec::new();
                    encode_with(&image, &mut out, simd).unwrap();
                    streams.push((simd, out));
                }
                let (_, want) = &streams[0];
                for (simd, got) in &streams {
                    assert_eq!(got, want, "{ty:?} {width}x{height} {simd:?}");
                    let format = ty.natural_format();
                    let mut pixels = vec![0u8; width * bpp * height];
                    let limits = DecodeLimits::default();
                    decode_with(
                        got,
                        &mut pixels,
                        width * bpp,
                        format,
                        RowOrder::TopDown,
                        &limits,
                        *simd,
                    )
                    .unwrap();
                    for y in 0..height {
                        let (row, src) = (
                            &pixels[y * width * bpp..][..width * bpp],
                            &data[y * stride..][..width * bpp],
                        );
                        for (x, (d, s)) in
                            row.chunks_exact(bpp).zip(src.chunks_exact(bpp)).enumerate()
                        {
                            let same = match ty {
                                ImageType::Rgb32 => d[..3] == s[..3],
                                ImageType::Rgb16 => d[0] == s[0] && d[1] == s[1] & 0x7f,
                                _ => d == s,
                            };
                            assert!(same, "{ty:?} {width}x{height} {simd:?} pixel {x},{y}");
                        }
                    }
                }
            }
        }
    }
}
