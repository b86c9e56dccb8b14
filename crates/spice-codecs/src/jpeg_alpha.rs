//! JPEG_ALPHA images: the colour as JPEG ([`crate::jpeg`]) and the alpha as an LZ `XXXA`
//! stream ([`crate::lz`]), composed here so that server and client share one implementation.

use crate::jpeg::{self, AlphaSource, JpegAlphaHeader, JpegError, JpegLimits};
use crate::lz::{self, LzError, LzImageType};

/// Why the alpha part of a JPEG_ALPHA image was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlphaStreamError {
    /// The LZ stream itself is malformed.
    #[error(transparent)]
    Lz(#[from] LzError),
    /// The LZ stream is not of type XXXA.
    #[error("alpha stream has LZ type {0:?}, expected XXXA")]
    WrongType(LzImageType),
    /// The LZ stream's geometry or orientation disagrees with the image.
    #[error(
        "alpha stream is {got_w}x{got_h} (top_down {got_top_down}), image is {w}x{h} (top_down {top_down})"
    )]
    Mismatch {
        /// Stream width.
        got_w: u32,
        /// Stream height.
        got_h: u32,
        /// Stream orientation.
        got_top_down: bool,
        /// Image width.
        w: u32,
        /// Image height.
        h: u32,
        /// Image orientation (JPEG_ALPHA flags).
        top_down: bool,
    },
}

/// Encodes a B,G,R,A bitmap (`stride` bytes per row, memory order per `top_down`) as a
/// JPEG_ALPHA body appended to `out`: colour at `quality`, alpha as LZ XXXA.
pub fn encode(
    src: &AlphaSource<'_>,
    quality: u8,
    out: &mut Vec<u8>,
) -> Result<JpegAlphaHeader, JpegError> {
    jpeg::encode_jpeg_alpha(
        src,
        quality,
        |s, out| -> Result<(), LzError> {
            // The LZ encoder wants packed rows; repack when the bitmap has stride padding.
            let row = s.width as usize * 4;
            if s.stride == row {
                lz::encode_alpha(
                    s.width,
                    s.height,
                    s.top_down,
                    &s.data[..row * s.height as usize],
                    out,
                )?;
            } else {
                let mut packed = Vec::with_capacity(row * s.height as usize);
                for r in 0..s.height as usize {
                    packed.extend_from_slice(&s.data[r * s.stride..r * s.stride + row]);
                }
                lz::encode_alpha(s.width, s.height, s.top_down, &packed, out)?;
            }
            Ok(())
        },
        out,
    )
}

/// Decodes a JPEG_ALPHA body whose descriptor declared `width` x `height` into `dst` as
/// B,G,R,A, top row first, rows `dst_stride` apart. `limits` caps the JPEG's dimensions
/// before anything is allocated.
pub fn decode(
    body: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
    dst_stride: usize,
    limits: &JpegLimits,
) -> Result<JpegAlphaHeader, JpegError> {
    jpeg::decode_jpeg_alpha(
        body,
        width,
        height,
        dst,
        dst_stride,
        limits,
        |stream, w, h, top_down| {
            let hdr = lz::LzHeader::parse(stream)?;
            if hdr.image_type != LzImageType::Xxxa {
                return Err(AlphaStreamError::WrongType(hdr.image_type));
            }
            if hdr.width != w || hdr.height != h || hdr.top_down != top_down {
                return Err(AlphaStreamError::Mismatch {
                    got_w: hdr.width,
                    got_h: hdr.height,
                    got_top_down: hdr.top_down,
                    w,
                    h,
                    top_down,
                });
            }
            // The geometry equals the image's, which `limits` already bounded via the JPEG.
            let mut pixels = vec![0u8; w as usize * h as usize * 4];
            lz::decode_alpha(stream, &mut pixels, 0)?;
            Ok(pixels.chunks_exact(4).map(|p| p[3]).collect())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, stride: usize) -> Vec<u8> {
        let mut v = vec![0u8; stride * h as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = &mut v[y * stride + x * 4..y * stride + x * 4 + 4];
                p[0] = (x * 7) as u8;
                p[1] = (y * 5) as u8;
                p[2] = 128;
                p[3] = if (x / 4 + y / 3) % 2 == 0 {
                    255
                } else {
                    (x * 3 + y) as u8
                };
            }
        }
        v
    }

    #[test]
    fn alpha_is_exact_and_colour_close_both_orientations_and_strides() {
        let limits = JpegLimits {
            max_width: 4096,
            max_height: 4096,
        };
        for (w, h, pad, top_down) in [
            (37u32, 19u32, 0usize, true),
            (16, 16, 12, false),
            (1, 1, 0, true),
        ] {
            let stride = w as usize * 4 + pad;
            let src = image(w, h, stride);
            let mut body = Vec::new();
            let hdr = encode(
                &AlphaSource {
                    data: &src,
                    width: w,
                    height: h,
                    stride,
                    top_down,
                },
                90,
                &mut body,
            )
            .unwrap();
            assert_eq!(hdr.top_down, top_down);
            let mut out = vec![0u8; w as usize * h as usize * 4];
            decode(&body, w, h, &mut out, w as usize * 4, &limits).unwrap();
            for y in 0..h as usize {
                // Memory row `y` of the source is image row `y` (top-down) or `h-1-y`.
                let iy = if top_down { y } else { h as usize - 1 - y };
                for x in 0..w as usize {
                    let s = &src[y * stride + x * 4..y * stride + x * 4 + 4];
                    let d = &out[iy * w as usize * 4 + x * 4..iy * w as usize * 4 + x * 4 + 4];
                    assert_eq!(s[3], d[3], "alpha at {x},{y}");
                    for c in 0..3 {
                        assert!((s[c] as i32 - d[c] as i32).abs() <= 48, "colour at {x},{y}");
                    }
                }
            }
        }
    }

    #[test]
    fn alpha_stream_of_the_wrong_size_is_refused() {
        let limits = JpegLimits {
            max_width: 4096,
            max_height: 4096,
        };
        let src = image(8, 8, 32);
        let mut body = Vec::new();
        encode(
            &AlphaSource {
                data: &src,
                width: 8,
                height: 8,
                stride: 32,
                top_down: true,
            },
            80,
            &mut body,
        )
        .unwrap();
        let mut out = vec![0u8; 9 * 8 * 4];
        // Declared 9x8 while the stream says 8x8: the JPEG or the alpha check refuses it.
        assert!(decode(&body, 9, 8, &mut out, 36, &limits).is_err());
        // Truncated bodies are errors, never panics.
        for n in 0..body.len() {
            let _ = decode(&body[..n], 8, 8, &mut out, 32, &limits);
        }
    }
}
