//! JPEG (`SPICE_IMAGE_TYPE_JPEG` = 105) and JPEG_ALPHA (108) images.
//!
//! spice-server feeds libjpeg RGB rows converted from the bitmap (16-bit x1r5g5b5, 24-bit
//! B,G,R or 32-bit B,G,R,X; the X/alpha byte is dropped), top row first (bottom-up bitmaps are
//! read backwards), with `jpeg_set_defaults` (YCbCr, 4:2:0, baseline) and quality 85 for
//! images ([`IMAGE_QUALITY`]). This module encodes the same kind of baseline JFIF with the
//! `jpeg-encoder` crate and decodes any baseline/progressive JFIF with `zune-jpeg` into a
//! caller buffer as 32-bit B,G,R,X (X = 0xFF), top row first, at the caller's stride.
//!
//! JPEG_ALPHA carries an RGBA bitmap as the JPEG of its colour followed, in the same data
//! buffer, by an LZ stream of type XXXA holding the alpha bytes (rows in bitmap memory
//! order, header `top_down` = the bitmap's flag). The LZ codec lives in another module: the
//! functions here take its encode/decode as a closure ([`encode_jpeg_alpha`],
//! [`decode_jpeg_alpha`]) and do the framing and composition.

use thiserror::Error;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// JPEG quality spice-server uses for images (`dcc.cpp`, fixed).
pub const IMAGE_QUALITY: u8 = 85;

/// Largest width/height a baseline JFIF can declare.
pub const MAX_DIMENSION: u32 = 65535;

/// `SPICE_JPEG_ALPHA_FLAGS_TOP_DOWN`.
pub const JPEG_ALPHA_FLAG_TOP_DOWN: u8 = 1;

/// Pixel layouts [`encode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegSourceFormat {
    /// `SPICE_BITMAP_FMT_16BIT`: little-endian x1r5g5b5.
    Rgb16,
    /// `SPICE_BITMAP_FMT_24BIT`: B, G, R.
    Bgr24,
    /// `SPICE_BITMAP_FMT_32BIT` or `RGBA`: B, G, R, X/A (the fourth byte is ignored).
    Bgrx32,
}

impl JpegSourceFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb16 => 2,
            Self::Bgr24 => 3,
            Self::Bgrx32 => 4,
        }
    }
}

/// A borrowed bitmap to encode.
#[derive(Debug, Clone, Copy)]
pub struct JpegSource<'a> {
    /// Pixel rows, `stride` bytes apart, in memory order.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Pixel layout.
    pub format: JpegSourceFormat,
    /// Whether the first row in memory is the top row. When false the rows are fed to the
    /// encoder backwards so the JPEG is top row first (what spice-server does for images;
    /// MJPEG frames instead keep memory order and pass `true`).
    pub top_down: bool,
}

/// Caps checked before a decode allocates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegLimits {
    /// Largest accepted width.
    pub max_width: u32,
    /// Largest accepted height.
    pub max_height: u32,
}

impl Default for JpegLimits {
    fn default() -> Self {
        Self {
            max_width: 16384,
            max_height: 16384,
        }
    }
}

/// Dimensions of a decoded JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Errors of the JPEG / JPEG_ALPHA codecs.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JpegError {
    /// Width or height is zero.
    #[error("JPEG: empty image {width}x{height}")]
    EmptyImage {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Dimensions above the caller's limits (or above 65535 for encoding).
    #[error("JPEG: {width}x{height} exceeds the limits")]
    TooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The source buffer cannot hold the declared rows.
    #[error(
        "JPEG: source of {len} bytes cannot hold {rows} rows of {row_bytes} bytes at stride {stride}"
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
    /// The destination buffer cannot hold the decoded rows.
    #[error(
        "JPEG: destination of {len} bytes cannot hold {rows} rows of {row_bytes} bytes at stride {stride}"
    )]
    DestinationTooSmall {
        /// Destination length.
        len: usize,
        /// Destination stride.
        stride: usize,
        /// Rows.
        rows: usize,
        /// Bytes per row.
        row_bytes: usize,
    },
    /// The JPEG encoder failed.
    #[error("JPEG encode failed: {0}")]
    Encode(String),
    /// The JPEG stream is malformed (reported by the decoder).
    #[error("JPEG decode failed: {0}")]
    Decode(String),
    /// The JPEG's dimensions differ from those the image descriptor declared.
    #[error("JPEG: stream is {got_width}x{got_height}, descriptor says {width}x{height}")]
    DimensionMismatch {
        /// Descriptor width.
        width: u32,
        /// Descriptor height.
        height: u32,
        /// Width in the stream.
        got_width: u32,
        /// Height in the stream.
        got_height: u32,
    },
    /// The JPEG_ALPHA body is shorter than its 9-byte header.
    #[error("JPEG_ALPHA: body of {0} bytes has no header")]
    AlphaHeaderTruncated(usize),
    /// `jpeg_size` is larger than `data_size` or the data present.
    #[error("JPEG_ALPHA: jpeg_size {jpeg_size} exceeds data of {data_len} bytes")]
    AlphaJpegSizeOverrun {
        /// Declared JPEG size.
        jpeg_size: u32,
        /// Bytes of data available.
        data_len: usize,
    },
    /// The body holds fewer bytes than `data_size` says.
    #[error("JPEG_ALPHA: data_size {data_size} but {available} bytes follow the header")]
    AlphaDataTruncated {
        /// Declared data size.
        data_size: u32,
        /// Bytes present.
        available: usize,
    },
    /// The alpha codec returned a plane of the wrong size.
    #[error("JPEG_ALPHA: alpha plane of {got} bytes, expected {expected}")]
    AlphaPlaneSize {
        /// Bytes returned.
        got: usize,
        /// `width * height`.
        expected: usize,
    },
    /// The alpha (LZ XXXA) codec failed.
    #[error("JPEG_ALPHA: alpha codec failed: {0}")]
    Alpha(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn check_rows(len: usize, stride: usize, rows: usize, row_bytes: usize) -> bool {
    stride >= row_bytes
        && rows > 0
        && stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(row_bytes))
            .is_some_and(|n| n <= len)
}

/// A strided, possibly bottom-up view fed to `jpeg-encoder` row by row.
struct StridedImage<'a>(JpegSource<'a>);

impl StridedImage<'_> {
    fn row(&self, y: usize) -> &[u8] {
        let s = &self.0;
        let mem_row = if s.top_down {
            y
        } else {
            s.height as usize - 1 - y
        };
        let start = mem_row * s.stride;
        &s.data[start..start + s.width as usize * s.format.bytes_per_pixel()]
    }
}

fn expand5(v: u16) -> u8 {
    let v = (v & 0x1f) as u8;
    (v << 3) | (v >> 2)
}

impl jpeg_encoder::ImageBuffer for StridedImage<'_> {
    fn get_jpeg_color_type(&self) -> jpeg_encoder::JpegColorType {
        jpeg_encoder::JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        // Checked ≤ 65535 in `encode`.
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let row = self.row(usize::from(y));
        let mut push = |r: u8, g: u8, b: u8| {
            let (yy, cb, cr) = jpeg_encoder::rgb_to_ycbcr(r, g, b);
            buffers[0].push(yy);
            buffers[1].push(cb);
            buffers[2].push(cr);
        };
        match self.0.format {
            JpegSourceFormat::Rgb16 => {
                for p in row.chunks_exact(2) {
                    let v = u16::from_le_bytes([p[0], p[1]]);
                    push(expand5(v >> 10), expand5(v >> 5), expand5(v));
                }
            }
            JpegSourceFormat::Bgr24 => {
                for p in row.chunks_exact(3) {
                    push(p[2], p[1], p[0]);
                }
            }
            JpegSourceFormat::Bgrx32 => {
                for p in row.chunks_exact(4) {
                    push(p[2], p[1], p[0]);
                }
            }
        }
    }
}

/// Encodes `src` as a baseline JFIF (YCbCr 4:2:0 below quality 90) at `quality` (1-100),
/// appending it to `out`. Returns the number of bytes appended.
pub fn encode(src: &JpegSource<'_>, quality: u8, out: &mut Vec<u8>) -> Result<usize, JpegError> {
    let (width, height) = (src.width, src.height);
    if width == 0 || height == 0 {
        return Err(JpegError::EmptyImage { width, height });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(JpegError::TooLarge { width, height });
    }
    let row_bytes = width as usize * src.format.bytes_per_pixel();
    if !check_rows(src.data.len(), src.stride, height as usize, row_bytes) {
        return Err(JpegError::SourceTooSmall {
            len: src.data.len(),
            stride: src.stride,
            rows: height as usize,
            row_bytes,
        });
    }
    let start = out.len();
    let encoder = jpeg_encoder::Encoder::new(&mut *out, quality.clamp(1, 100));
    let contiguous = src.top_down && src.stride == row_bytes;
    let data = &src.data[..if contiguous {
        row_bytes * height as usize
    } else {
        0
    }];
    let result = match (contiguous, src.format) {
        // Fast paths: let the crate read packed rows directly (SIMD colour conversion).
        (true, JpegSourceFormat::Bgrx32) => encoder.encode(
            data,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Bgra,
        ),
        (true, JpegSourceFormat::Bgr24) => encoder.encode(
            data,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Bgr,
        ),
        _ => encoder.encode_image(StridedImage(*src)),
    };
    result.map_err(|e| JpegError::Encode(e.to_string()))?;
    Ok(out.len() - start)
}

fn decoder_options(limits: &JpegLimits) -> DecoderOptions {
    DecoderOptions::default()
        .set_max_width(limits.max_width as usize)
        .set_max_height(limits.max_height as usize)
        .jpeg_set_out_colorspace(ColorSpace::BGRA)
}

/// Reads the dimensions from the JPEG headers without decoding pixels.
pub fn read_info(data: &[u8], limits: &JpegLimits) -> Result<JpegInfo, JpegError> {
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), decoder_options(limits));
    dec.decode_headers()
        .map_err(|e| JpegError::Decode(e.to_string()))?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| JpegError::Decode("no frame header".into()))?;
    let (width, height) = (w as u32, h as u32);
    if width == 0 || height == 0 {
        return Err(JpegError::EmptyImage { width, height });
    }
    if width > limits.max_width || height > limits.max_height {
        return Err(JpegError::TooLarge { width, height });
    }
    Ok(JpegInfo { width, height })
}

/// Decodes a JPEG into `dst` as 32-bit B,G,R,X (X = 0xFF), top row first, rows `dst_stride`
/// bytes apart. The dimensions are read from the headers and checked against `limits` and
/// the destination before any pixel buffer is allocated.
pub fn decode(
    data: &[u8],
    dst: &mut [u8],
    dst_stride: usize,
    limits: &JpegLimits,
) -> Result<JpegInfo, JpegError> {
    let info = read_info(data, limits)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let row_bytes = w * 4;
    if !check_rows(dst.len(), dst_stride, h, row_bytes) {
        return Err(JpegError::DestinationTooSmall {
            len: dst.len(),
            stride: dst_stride,
            rows: h,
            row_bytes,
        });
    }
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), decoder_options(limits));
    if dst_stride == row_bytes {
        dec.decode_into(&mut dst[..row_bytes * h])
            .map_err(|e| JpegError::Decode(e.to_string()))?;
    } else {
        let mut tmp = vec![0u8; row_bytes * h];
        dec.decode_into(&mut tmp)
            .map_err(|e| JpegError::Decode(e.to_string()))?;
        for (y, row) in tmp.chunks_exact(row_bytes).enumerate() {
            dst[y * dst_stride..y * dst_stride + row_bytes].copy_from_slice(row);
        }
    }
    Ok(info)
}

/// Decodes a JPEG image whose descriptor declared `width` x `height`; the stream must match
/// (the C client checks the same). See [`decode`].
pub fn decode_image(
    data: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
    dst_stride: usize,
    limits: &JpegLimits,
) -> Result<JpegInfo, JpegError> {
    let info = read_info(data, limits)?;
    if info.width != width || info.height != height {
        return Err(JpegError::DimensionMismatch {
            width,
            height,
            got_width: info.width,
            got_height: info.height,
        });
    }
    decode(data, dst, dst_stride, limits)
}

/// Fuzzing entry point: splits `data` as a JPEG_ALPHA body (result ignored), then decodes
/// it as a JPEG (limits 1024x1024) into a scratch buffer.
pub fn fuzz_decode(data: &[u8]) -> Result<JpegInfo, JpegError> {
    let _ = split_jpeg_alpha(data);
    let limits = JpegLimits {
        max_width: 1024,
        max_height: 1024,
    };
    let info = read_info(data, &limits)?;
    let stride = info.width as usize * 4;
    let mut dst = vec![0u8; stride * info.height as usize];
    decode(data, &mut dst, stride, &limits)
}

// ---------------------------------------------------------------------------------------
// JPEG_ALPHA

/// The fixed part of a JPEG_ALPHA image body: `u8 flags; u32 jpeg_size; u32 data_size`
/// (little-endian), followed by `data_size` bytes: the JFIF then the LZ XXXA stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegAlphaHeader {
    /// `flags` bit 0: the alpha rows (and the bitmap) are top-down.
    pub top_down: bool,
    /// Bytes of JFIF at the start of the data.
    pub jpeg_size: u32,
    /// Total bytes of data (JFIF + LZ XXXA).
    pub data_size: u32,
}

impl JpegAlphaHeader {
    /// Encoded size of the fixed part.
    pub const SIZE: usize = 1 /* flags */ + 4 /* jpeg_size */ + 4 /* data_size */;

    /// The `flags` byte.
    pub fn flags(&self) -> u8 {
        if self.top_down {
            JPEG_ALPHA_FLAG_TOP_DOWN
        } else {
            0
        }
    }

    /// Appends the fixed part to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.flags());
        out.extend_from_slice(&self.jpeg_size.to_le_bytes());
        out.extend_from_slice(&self.data_size.to_le_bytes());
    }
}

/// A JPEG_ALPHA body split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegAlphaParts<'a> {
    /// The fixed part.
    pub header: JpegAlphaHeader,
    /// The JFIF (`jpeg_size` bytes).
    pub jpeg: &'a [u8],
    /// The LZ XXXA stream (`data_size - jpeg_size` bytes).
    pub alpha: &'a [u8],
}

/// Splits a JPEG_ALPHA body (`flags, jpeg_size, data_size, data`) into its parts, checking
/// the sizes against the bytes present. Unknown flag bits are ignored.
pub fn split_jpeg_alpha(body: &[u8]) -> Result<JpegAlphaParts<'_>, JpegError> {
    if body.len() < JpegAlphaHeader::SIZE {
        return Err(JpegError::AlphaHeaderTruncated(body.len()));
    }
    let u32_at = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let header = JpegAlphaHeader {
        top_down: body[0] & JPEG_ALPHA_FLAG_TOP_DOWN != 0,
        jpeg_size: u32_at(1),
        data_size: u32_at(5),
    };
    let rest = &body[JpegAlphaHeader::SIZE..];
    if header.data_size as usize > rest.len() {
        return Err(JpegError::AlphaDataTruncated {
            data_size: header.data_size,
            available: rest.len(),
        });
    }
    let data = &rest[..header.data_size as usize];
    if header.jpeg_size as usize > data.len() {
        return Err(JpegError::AlphaJpegSizeOverrun {
            jpeg_size: header.jpeg_size,
            data_len: data.len(),
        });
    }
    let (jpeg, alpha) = data.split_at(header.jpeg_size as usize);
    Ok(JpegAlphaParts {
        header,
        jpeg,
        alpha,
    })
}

/// The RGBA bitmap whose alpha channel the LZ XXXA encoder compresses: 4-byte B,G,R,A
/// pixels, alpha at byte 3, rows in memory order.
#[derive(Debug, Clone, Copy)]
pub struct AlphaSource<'a> {
    /// Pixel rows, `stride` bytes apart.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// The bitmap's TOP_DOWN flag (goes into the LZ header and the JPEG_ALPHA flags).
    pub top_down: bool,
}

impl AlphaSource<'_> {
    /// The alpha bytes as a packed `width * height` plane, rows in memory order.
    pub fn alpha_plane(&self) -> Vec<u8> {
        let w = self.width as usize;
        let mut plane = Vec::with_capacity(w * self.height as usize);
        for r in 0..self.height as usize {
            let row = &self.data[r * self.stride..r * self.stride + w * 4];
            plane.extend(row.chunks_exact(4).map(|p| p[3]));
        }
        plane
    }
}

/// Encodes an RGBA bitmap (B,G,R,A; `stride` bytes per row; memory order with `top_down`)
/// as a JPEG_ALPHA body appended to `out`: the fixed part, the JFIF of the colour at
/// `quality` (top row first), then what `encode_alpha` appends (the LZ XXXA stream of the
/// alpha, in memory row order, with the bitmap's `top_down`). Returns the header written.
pub fn encode_jpeg_alpha<E>(
    src: &AlphaSource<'_>,
    quality: u8,
    encode_alpha: impl FnOnce(&AlphaSource<'_>, &mut Vec<u8>) -> Result<(), E>,
    out: &mut Vec<u8>,
) -> Result<JpegAlphaHeader, JpegError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let header_at = out.len();
    out.extend_from_slice(&[0; JpegAlphaHeader::SIZE]);
    let jpeg_size = encode(
        &JpegSource {
            data: src.data,
            width: src.width,
            height: src.height,
            stride: src.stride,
            format: JpegSourceFormat::Bgrx32,
            top_down: src.top_down,
        },
        quality,
        out,
    )?;
    let alpha_at = out.len();
    encode_alpha(src, out).map_err(|e| JpegError::Alpha(Box::new(e)))?;
    let data_size = jpeg_size + (out.len() - alpha_at);
    let too_large = || JpegError::TooLarge {
        width: src.width,
        height: src.height,
    };
    let header = JpegAlphaHeader {
        top_down: src.top_down,
        jpeg_size: u32::try_from(jpeg_size).map_err(|_| too_large())?,
        data_size: u32::try_from(data_size).map_err(|_| too_large())?,
    };
    let mut fixed = Vec::with_capacity(JpegAlphaHeader::SIZE);
    header.write(&mut fixed);
    out[header_at..header_at + JpegAlphaHeader::SIZE].copy_from_slice(&fixed);
    Ok(header)
}

/// Decodes a JPEG_ALPHA body whose descriptor declared `width` x `height` into `dst` as
/// B,G,R,A, top row first, rows `dst_stride` apart.
///
/// The JFIF gives B,G,R; `decode_alpha(lz_stream, width, height, top_down)` must decode the
/// LZ XXXA stream (checking its type, size and `top_down` against the arguments, as the C
/// client does) and return the `width * height` alpha bytes in stream (memory) row order;
/// they are written into byte 3 of each pixel, bottom-up streams flipped.
pub fn decode_jpeg_alpha<E>(
    body: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
    dst_stride: usize,
    limits: &JpegLimits,
    decode_alpha: impl FnOnce(&[u8], u32, u32, bool) -> Result<Vec<u8>, E>,
) -> Result<JpegAlphaHeader, JpegError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let parts = split_jpeg_alpha(body)?;
    decode_image(parts.jpeg, width, height, dst, dst_stride, limits)?;
    let plane = decode_alpha(parts.alpha, width, height, parts.header.top_down)
        .map_err(|e| JpegError::Alpha(Box::new(e)))?;
    let (w, h) = (width as usize, height as usize);
    if plane.len() != w * h {
        return Err(JpegError::AlphaPlaneSize {
            got: plane.len(),
            expected: w * h,
        });
    }
    for (i, alpha_row) in plane.chunks_exact(w).enumerate() {
        let y = if parts.header.top_down { i } else { h - 1 - i };
        let row = &mut dst[y * dst_stride..y * dst_stride + w * 4];
        for (p, &a) in row.chunks_exact_mut(4).zip(alpha_row) {
            p[3] = a;
        }
    }
    Ok(parts.header)
}
