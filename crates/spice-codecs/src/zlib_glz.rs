//! ZLIB_GLZ_RGB images: a GLZ stream deflated with zlib (`codecs.md` §5.5).
//!
//! The message carries `glz_data_size` (the inflated size) and `data_size`
//! (the zlib stream). The server deflates at level 3 with the zlib wrapper and
//! sends the result only when it is smaller than the GLZ stream; the client
//! inflates to exactly `glz_data_size` bytes and decodes the GLZ stream as
//! usual. This module uses the pure-Rust `miniz_oxide` backend of `flate2`.

use crate::glz::{GlzError, GlzHeader, GlzWindow};
use flate2::{Compression, Decompress, FlushDecompress, Status, write::ZlibEncoder};
use std::io::Write;
use thiserror::Error;

/// zlib level used by the server.
pub const ZLIB_LEVEL: u32 = 3;
/// The server only wraps GLZ streams of at least this many bytes.
pub const MIN_GLZ_SIZE_FOR_ZLIB: usize = 100;

/// Errors of ZLIB_GLZ_RGB wrapping and unwrapping.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ZlibGlzError {
    /// The declared inflated size is over the caller's cap.
    #[error("declared GLZ size {declared} is over the cap of {cap} bytes")]
    TooLarge {
        /// `glz_data_size` from the message.
        declared: usize,
        /// The caller's cap.
        cap: usize,
    },
    /// The zlib stream is corrupt.
    #[error("zlib stream is corrupt: {0}")]
    Corrupt(String),
    /// The zlib stream inflates to more bytes than declared.
    #[error("zlib stream inflates past the declared {declared} bytes")]
    Overlong {
        /// `glz_data_size` from the message.
        declared: usize,
    },
    /// The zlib stream ends before `glz_data_size` bytes (or is cut short).
    #[error("zlib stream inflates to {got} bytes, {declared} declared")]
    Short {
        /// Bytes inflated.
        got: usize,
        /// `glz_data_size` from the message.
        declared: usize,
    },
    /// Bytes follow the end of the zlib stream.
    #[error("{0} bytes after the end of the zlib stream")]
    TrailingBytes(usize),
    /// The inner GLZ stream failed to decode.
    #[error(transparent)]
    Glz(#[from] GlzError),
}

/// Deflates a GLZ stream (zlib wrapper, level 3); returns `None` when the
/// stream is shorter than [`MIN_GLZ_SIZE_FOR_ZLIB`] or does not shrink, as the
/// server then sends plain GLZ.
pub fn wrap(glz: &[u8]) -> Option<Vec<u8>> {
    if glz.len() < MIN_GLZ_SIZE_FOR_ZLIB {
        return None;
    }
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(glz.len() / 2),
        Compression::new(ZLIB_LEVEL),
    );
    // Writing to a Vec cannot fail.
    enc.write_all(glz).ok()?;
    let z = enc.finish().ok()?;
    (z.len() < glz.len()).then_some(z)
}

/// Inflates a zlib stream to exactly `glz_data_size` bytes, refusing sizes
/// over `cap`. Allocates `glz_data_size` bytes only after the cap check.
pub fn unwrap(zlib: &[u8], glz_data_size: usize, cap: usize) -> Result<Vec<u8>, ZlibGlzError> {
    if glz_data_size > cap {
        return Err(ZlibGlzError::TooLarge {
            declared: glz_data_size,
            cap,
        });
    }
    // One spare byte detects streams that inflate past the declared size.
    let mut out = vec![0u8; glz_data_size + 1];
    let mut z = Decompress::new(true);
    loop {
        let in_pos = z.total_in() as usize;
        let out_pos = z.total_out() as usize;
        let status = z
            .decompress(
                &zlib[in_pos..],
                &mut out[out_pos..],
                FlushDecompress::Finish,
            )
            .map_err(|e| ZlibGlzError::Corrupt(e.to_string()))?;
        let produced = z.total_out() as usize;
        if produced > glz_data_size {
            return Err(ZlibGlzError::Overlong {
                declared: glz_data_size,
            });
        }
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                // No progress possible: input exhausted before the end.
                if produced == out_pos && z.total_in() as usize == in_pos {
                    return Err(ZlibGlzError::Short {
                        got: produced,
                        declared: glz_data_size,
                    });
                }
            }
        }
    }
    let got = z.total_out() as usize;
    if got != glz_data_size {
        return Err(ZlibGlzError::Short {
            got,
            declared: glz_data_size,
        });
    }
    let used = z.total_in() as usize;
    if used != zlib.len() {
        return Err(ZlibGlzError::TrailingBytes(zlib.len() - used));
    }
    out.truncate(glz_data_size);
    Ok(out)
}

/// Inflates and decodes a ZLIB_GLZ_RGB image into `window`.
pub fn decode(
    window: &mut GlzWindow,
    zlib: &[u8],
    glz_data_size: usize,
    cap: usize,
) -> Result<GlzHeader, ZlibGlzError> {
    let glz = unwrap(zlib, glz_data_size, cap)?;
    Ok(window.decode(&glz)?)
}

/// Fuzzing entry point: the first 4 bytes (LE) are `glz_data_size`, the rest
/// the zlib stream; capped at 4 MiB. Never panics.
pub fn fuzz_decode(data: &[u8]) -> Result<(), ZlibGlzError> {
    if data.len() < 4 {
        return Err(ZlibGlzError::Short {
            got: 0,
            declared: 4,
        });
    }
    let size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let mut win = GlzWindow::new(1 << 20);
    decode(&mut win, &data[4..], size, 4 << 20).map(|_| ())
}
