//! The SPICE LZ4 image framing (`SPICE_IMAGE_TYPE_LZ4` = 109).
//!
//! Payload layout (the bytes after the image's `u32 data_size`):
//!
//! ```text
//! u8       top_down (1 = first row is the top row, 0 = bottom-up rows)
//! u8       SpiceBitmapFmt: 16BIT = 6, 24BIT = 7, 32BIT = 8, RGBA = 9
//! repeated until the end of the payload:
//!   u32 BE compressed block length
//!   LZ4 block
//! ```
//!
//! The blocks form one LZ4 *stream*: spice-server compresses each chunk of rows with
//! `LZ4_compress_fast_continue` on one `LZ4_stream_t` per image, so a block may copy from
//! the 64 KiB of output that precedes it (the earlier blocks). The client
//! (`canvas_get_lz4`) decodes with `LZ4_decompress_safe_continue` into one contiguous buffer
//! of `width * bytes_per_pixel * height` bytes, so the history of block *n* is simply all the
//! bytes decoded before it. Rows are packed (no stride padding) and in bitmap memory order:
//! the first decoded row is the bottom row when `top_down` is 0.
//!
//! This module encodes with [`encode`] (rows split into blocks of a chosen row count, each
//! block compressed with the preceding 64 KiB as dictionary, as the C stream does) and
//! decodes with [`decode`] into a caller buffer, with the caller's stride, rows always
//! written top row first, optionally converted to 32-bit BGRX.

use thiserror::Error;

/// LZ4's match window: a block may reference at most this many bytes back.
const WINDOW: usize = 64 * 1024;

/// Bytes of the LZ4 image header (`top_down`, `format`).
pub const HEADER_SIZE: usize = 2;

/// Bitmap formats the LZ4 image type can carry (`SpiceBitmapFmt` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Lz4Format {
    /// `SPICE_BITMAP_FMT_16BIT`: little-endian x1r5g5b5, 2 bytes per pixel.
    Rgb16 = 6,
    /// `SPICE_BITMAP_FMT_24BIT`: B, G, R bytes.
    Rgb24 = 7,
    /// `SPICE_BITMAP_FMT_32BIT`: B, G, R, X bytes.
    Rgb32 = 8,
    /// `SPICE_BITMAP_FMT_RGBA`: B, G, R, A bytes.
    Rgba = 9,
}

impl Lz4Format {
    /// Parses the wire byte; `None` for formats the LZ4 image type does not carry.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            6 => Some(Self::Rgb16),
            7 => Some(Self::Rgb24),
            8 => Some(Self::Rgb32),
            9 => Some(Self::Rgba),
            _ => None,
        }
    }

    /// Bytes per pixel of the packed rows.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 | Self::Rgba => 4,
        }
    }
}

/// The two header bytes of an LZ4 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lz4Header {
    /// Whether the first row in the stream is the top row of the image.
    pub top_down: bool,
    /// Pixel format of the rows.
    pub format: Lz4Format,
}

/// How [`decode`] writes pixels into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lz4Output {
    /// The stream's own format (2, 3 or 4 bytes per pixel).
    Native,
    /// 32-bit B, G, R, X: 16- and 24-bit pixels are expanded (X = 0xFF), RGBA keeps its alpha.
    Bgrx,
}

/// Caps that [`decode`] checks before touching memory sized by the image dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lz4Limits {
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
    /// Largest accepted decoded size in bytes (packed rows, native format).
    pub max_bytes: usize,
}

impl Default for Lz4Limits {
    fn default() -> Self {
        Self {
            max_width: 16384,
            max_height: 16384,
            max_bytes: 256 << 20,
        }
    }
}

/// Errors of the LZ4 image codec.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lz4Error {
    /// The payload is shorter than the 2-byte header.
    #[error("LZ4 image: payload of {0} bytes has no header")]
    MissingHeader(usize),
    /// The format byte is not 16BIT/24BIT/32BIT/RGBA.
    #[error("LZ4 image: unsupported bitmap format {0}")]
    UnsupportedFormat(u8),
    /// Width or height is zero.
    #[error("LZ4 image: empty image {width}x{height}")]
    EmptyImage {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The dimensions exceed the caller's [`Lz4Limits`].
    #[error("LZ4 image: {width}x{height} exceeds the limits")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// A block length field is cut short (fewer than 4 bytes left).
    #[error("LZ4 image: truncated block length at offset {offset}")]
    TruncatedBlockLength {
        /// Offset of the length field in the payload.
        offset: usize,
    },
    /// A block claims more bytes than remain in the payload.
    #[error("LZ4 image: block at offset {offset} claims {len} bytes, {remaining} remain")]
    BlockOverrun {
        /// Offset of the length field in the payload.
        offset: usize,
        /// Declared block length.
        len: u32,
        /// Bytes remaining after the length field.
        remaining: usize,
    },
    /// lz4_flex rejected a block (bad token, offset before the start, output overflow).
    #[error("LZ4 image: block at offset {offset} is corrupt: {reason}")]
    CorruptBlock {
        /// Offset of the block's length field in the payload.
        offset: usize,
        /// What the LZ4 decoder reported.
        reason: String,
    },
    /// A block decoded to zero bytes (the C client treats this as a format error).
    #[error("LZ4 image: block at offset {offset} decoded to nothing")]
    EmptyBlock {
        /// Offset of the block's length field in the payload.
        offset: usize,
    },
    /// The blocks decoded to fewer bytes than the image needs.
    #[error("LZ4 image: decoded {got} bytes, the image needs {expected}")]
    ShortImage {
        /// Bytes decoded.
        got: usize,
        /// Bytes the image needs.
        expected: usize,
    },
    /// The caller's buffer or stride cannot hold the image.
    #[error(
        "LZ4 image: destination of {len} bytes with stride {stride} cannot hold {rows} rows of {row_bytes} bytes"
    )]
    DestinationTooSmall {
        /// Caller buffer length.
        len: usize,
        /// Caller stride.
        stride: usize,
        /// Rows to write.
        rows: usize,
        /// Bytes per row to write.
        row_bytes: usize,
    },
    /// The source buffer handed to [`encode`] is smaller than `stride * height`.
    #[error(
        "LZ4 image: source of {len} bytes cannot hold {rows} rows at stride {stride} ({row_bytes} bytes each)"
    )]
    SourceTooSmall {
        /// Source length.
        len: usize,
        /// Source stride.
        stride: usize,
        /// Rows.
        rows: usize,
        /// Bytes per row.
        row_bytes: usize,
    },
}

/// Parses the two header bytes.
pub fn read_header(payload: &[u8]) -> Result<Lz4Header, Lz4Error> {
    let [top, fmt, ..] = *payload else {
        return Err(Lz4Error::MissingHeader(payload.len()));
    };
    let format = Lz4Format::from_u8(fmt).ok_or(Lz4Error::UnsupportedFormat(fmt))?;
    Ok(Lz4Header {
        top_down: top != 0,
        format,
    })
}

fn packed_size(width: u32, height: u32, bpp: usize, limits: &Lz4Limits) -> Result<usize, Lz4Error> {
    if width == 0 || height == 0 {
        return Err(Lz4Error::EmptyImage { width, height });
    }
    let too_large = Lz4Error::TooLarge { width, height };
    if width > limits.max_width || height > limits.max_height {
        return Err(too_large);
    }
    let size = (width as usize)
        .checked_mul(bpp)
        .and_then(|r| r.checked_mul(height as usize))
        .ok_or(Lz4Error::TooLarge { width, height })?;
    if size > limits.max_bytes {
        return Err(too_large);
    }
    Ok(size)
}

/// Encodes an image as an LZ4 image payload, appended to `out`.
///
/// `src` holds `height` rows of `width` pixels at `stride` bytes per row, in memory order
/// (the order they go on the wire; `header.top_down` only tells the client which row is on top).
/// Padding beyond `width * bpp` is dropped: the client assumes packed rows.
/// `rows_per_block` sets how many rows go into each LZ4 block (spice-server uses one block
/// per chunk of the guest bitmap, usually the whole image: pass `height` or more for that);
/// every block after the first is compressed against the preceding 64 KiB of rows, so the
/// client must decode the blocks as one stream, as `LZ4_decompress_safe_continue` does.
pub fn encode(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    header: Lz4Header,
    rows_per_block: usize,
    out: &mut Vec<u8>,
) -> Result<(), Lz4Error> {
    let Lz4Header { top_down, format } = header;
    let bpp = format.bytes_per_pixel();
    let limits = Lz4Limits {
        max_width: u32::MAX,
        max_height: u32::MAX,
        max_bytes: usize::MAX,
    };
    let total = packed_size(width, height, bpp, &limits)?;
    let row_bytes = width as usize * bpp;
    let rows = height as usize;
    let needed = stride
        .checked_mul(rows - 1)
        .and_then(|n| n.checked_add(row_bytes));
    if stride < row_bytes || needed.is_none_or(|n| n > src.len()) {
        return Err(Lz4Error::SourceTooSmall {
            len: src.len(),
            stride,
            rows,
            row_bytes,
        });
    }
    // The stream history must be the packed rows, exactly as the client lays them out.
    let packed_storage;
    let packed: &[u8] = if stride == row_bytes {
        &src[..total]
    } else {
        let mut v = Vec::with_capacity(total);
        for r in 0..rows {
            v.extend_from_slice(&src[r * stride..r * stride + row_bytes]);
        }
        packed_storage = v;
        &packed_storage
    };
    out.push(u8::from(top_down));
    out.push(format as u8);
    let block_bytes = rows_per_block.clamp(1, rows) * row_bytes;
    let mut pos = 0;
    while pos < total {
        let end = (pos + block_bytes).min(total);
        let input = &packed[pos..end];
        let dict = &packed[pos.saturating_sub(WINDOW)..pos];
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let max = lz4_flex::block::get_maximum_output_size(input.len());
        out.resize(len_at + 4 + max, 0);
        let n = lz4_flex::block::compress_into_with_dict(input, &mut out[len_at + 4..], dict)
            .map_err(|e| Lz4Error::CorruptBlock {
                offset: len_at,
                reason: e.to_string(),
            })?;
        out.truncate(len_at + 4 + n);
        let n32 = u32::try_from(n).map_err(|_| Lz4Error::TooLarge { width, height })?;
        out[len_at..len_at + 4].copy_from_slice(&n32.to_be_bytes());
        pos = end;
    }
    Ok(())
}

/// Decodes the block stream of `payload` (header included) into `packed`, which must be
/// exactly the packed image size. Returns the header.
fn decode_packed(payload: &[u8], packed: &mut [u8]) -> Result<Lz4Header, Lz4Error> {
    let header = read_header(payload)?;
    let mut offset = HEADER_SIZE;
    let mut pos = 0usize;
    // The reference decoder reads at least one block (do-while), then stops at the end.
    loop {
        let Some(len_bytes) = payload.get(offset..offset + 4) else {
            return Err(Lz4Error::TruncatedBlockLength { offset });
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let remaining = payload.len() - offset - 4;
        if len as usize > remaining {
            return Err(Lz4Error::BlockOverrun {
                offset,
                len,
                remaining,
            });
        }
        let block = &payload[offset + 4..offset + 4 + len as usize];
        let (history, rest) = packed.split_at_mut(pos);
        let dict = &history[pos.saturating_sub(WINDOW)..];
        let n = lz4_flex::block::decompress_into_with_dict(block, rest, dict).map_err(|e| {
            Lz4Error::CorruptBlock {
                offset,
                reason: e.to_string(),
            }
        })?;
        if n == 0 {
            return Err(Lz4Error::EmptyBlock { offset });
        }
        pos += n;
        offset += 4 + len as usize;
        if offset >= payload.len() {
            break;
        }
    }
    if pos != packed.len() {
        return Err(Lz4Error::ShortImage {
            got: pos,
            expected: packed.len(),
        });
    }
    Ok(header)
}

/// Writes one packed row of `format` into `dst` as BGRX.
fn row_to_bgrx(format: Lz4Format, src: &[u8], dst: &mut [u8]) {
    match format {
        Lz4Format::Rgb32 | Lz4Format::Rgba => dst.copy_from_slice(src),
        Lz4Format::Rgb24 => {
            for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(4)) {
                d[..3].copy_from_slice(s);
                d[3] = 0xFF;
            }
        }
        Lz4Format::Rgb16 => {
            for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(4)) {
                let p = u16::from_le_bytes([s[0], s[1]]);
                let expand = |v: u16| -> u8 {
                    let v = (v & 0x1f) as u8;
                    (v << 3) | (v >> 2)
                };
                d[0] = expand(p);
                d[1] = expand(p >> 5);
                d[2] = expand(p >> 10);
                d[3] = 0xFF;
            }
        }
    }
}

/// Decodes an LZ4 image payload into `dst`.
///
/// `width` and `height` come from the image descriptor. Rows are written top row first
/// (bottom-up streams are flipped), each at `dst_stride` bytes from the previous one, in
/// the stream's format ([`Lz4Output::Native`]) or as 32-bit BGRX. The dimensions are checked
/// against `limits` before anything is allocated; the blocks must decode to exactly
/// `width * bpp * height` bytes. Returns the header (format and orientation of the stream).
pub fn decode(
    payload: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
    dst_stride: usize,
    output: Lz4Output,
    limits: &Lz4Limits,
) -> Result<Lz4Header, Lz4Error> {
    let header = read_header(payload)?;
    let bpp = header.format.bytes_per_pixel();
    let total = packed_size(width, height, bpp, limits)?;
    let rows = height as usize;
    let src_row = width as usize * bpp;
    let out_row = match output {
        Lz4Output::Native => src_row,
        Lz4Output::Bgrx => width as usize * 4,
    };
    let fits = dst_stride >= out_row
        && dst_stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(out_row))
            .is_some_and(|n| n <= dst.len());
    if !fits {
        return Err(Lz4Error::DestinationTooSmall {
            len: dst.len(),
            stride: dst_stride,
            rows,
            row_bytes: out_row,
        });
    }
    // Fast path: the caller's buffer is the packed top-down image itself.
    if output == Lz4Output::Native && dst_stride == src_row && header.top_down {
        return decode_packed(payload, &mut dst[..total]);
    }
    let mut packed = vec![0u8; total];
    decode_packed(payload, &mut packed)?;
    for (i, src) in packed.chunks_exact(src_row).enumerate() {
        let row = if header.top_down { i } else { rows - 1 - i };
        let d = &mut dst[row * dst_stride..row * dst_stride + out_row];
        match output {
            Lz4Output::Native => d.copy_from_slice(src),
            Lz4Output::Bgrx => row_to_bgrx(header.format, src, d),
        }
    }
    Ok(header)
}

/// Fuzzing entry point: the first 4 bytes give the width and height (u16 LE each, capped to
/// 512x512), the rest is an LZ4 image payload decoded to BGRX. Never panics.
pub fn fuzz_decode(data: &[u8]) -> Result<Lz4Header, Lz4Error> {
    if data.len() < 4 {
        return Err(Lz4Error::MissingHeader(data.len()));
    }
    let width = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let height = u32::from(u16::from_le_bytes([data[2], data[3]]));
    let limits = Lz4Limits {
        max_width: 512,
        max_height: 512,
        max_bytes: 1 << 20,
    };
    let payload = &data[4..];
    // Check the dimensions before sizing the output buffer.
    let header = read_header(payload)?;
    packed_size(width, height, header.format.bytes_per_pixel(), &limits)?;
    let stride = width as usize * 4;
    let mut dst = vec![0u8; stride * height as usize];
    decode(
        payload,
        width,
        height,
        &mut dst,
        stride,
        Lz4Output::Bgrx,
        &limits,
    )
}
