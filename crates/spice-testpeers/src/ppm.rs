//! Binary PPM (P6, 8-bit RGB) reading, writing and pixel-exact comparison.
//!
//! QEMU's `screendump` and `spicy-screenshot` both write P6 with maxval 255.

use std::fmt;
use std::path::Path;

/// The largest image accepted (pixels), so a hostile header cannot ask for a huge buffer.
pub const MAX_PIXELS: usize = 16384 * 16384;

/// Why a PPM could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PpmError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The magic is not `P6`.
    #[error("not a binary PPM (magic {0:?}, want \"P6\")")]
    BadMagic([u8; 2]),
    /// A header field is missing, not a number or out of range.
    #[error("bad PPM header field {field}")]
    BadHeader {
        /// Which field (`width`, `height`, `maxval`).
        field: &'static str,
    },
    /// Only maxval 255 (one byte per sample) is supported.
    #[error("unsupported PPM maxval {0} (only 255)")]
    UnsupportedMaxval(u32),
    /// The dimensions exceed [`MAX_PIXELS`] or are zero.
    #[error("unsupported PPM size {width}x{height}")]
    BadSize {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// Fewer pixel bytes than the header promises.
    #[error("PPM pixel data truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header asks for.
        need: usize,
        /// Bytes present.
        have: usize,
    },
}

/// An 8-bit RGB image.
#[derive(Clone, PartialEq, Eq)]
pub struct Ppm {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, rows top to bottom, R G B per pixel.
    pub rgb: Vec<u8>,
}

impl fmt::Debug for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ppm({}x{})", self.width, self.height)
    }
}

/// Reads one header token (skipping whitespace and `#` comments), as a number.
fn header_number(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<u32, PpmError> {
    loop {
        match buf.get(*pos) {
            Some(c) if c.is_ascii_whitespace() => *pos += 1,
            Some(b'#') => {
                while let Some(&c) = buf.get(*pos) {
                    *pos += 1;
                    if c == b'\n' {
                        break;
                    }
                }
            }
            _ => break,
        }
    }
    let start = *pos;
    while buf.get(*pos).is_some_and(u8::is_ascii_digit) {
        *pos += 1;
        if *pos - start > 9 {
            return Err(PpmError::BadHeader { field });
        }
    }
    if start == *pos {
        return Err(PpmError::BadHeader { field });
    }
    std::str::from_utf8(&buf[start..*pos])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(PpmError::BadHeader { field })
}

impl Ppm {
    /// Parses a P6 image (maxval 255). Bytes after the pixel data are ignored.
    pub fn parse(buf: &[u8]) -> Result<Self, PpmError> {
        let magic = [
            buf.first().copied().unwrap_or(0),
            buf.get(1).copied().unwrap_or(0),
        ];
        if &magic != b"P6" {
            return Err(PpmError::BadMagic(magic));
        }
        let mut pos = 2;
        let width = header_number(buf, &mut pos, "width")?;
        let height = header_number(buf, &mut pos, "height")?;
        let maxval = header_number(buf, &mut pos, "maxval")?;
        if maxval != 255 {
            return Err(PpmError::UnsupportedMaxval(maxval));
        }
        // Exactly one whitespace byte separates the header from the raster.
        if !buf.get(pos).is_some_and(u8::is_ascii_whitespace) {
            return Err(PpmError::BadHeader { field: "maxval" });
        }
        pos += 1;
        let pixels = (width as usize).checked_mul(height as usize);
        let need = match pixels {
            Some(p) if p > 0 && p <= MAX_PIXELS => p * 3,
            _ => return Err(PpmError::BadSize { width, height }),
        };
        let have = buf.len() - pos;
        if have < need {
            return Err(PpmError::Truncated { need, have });
        }
        Ok(Self {
            width,
            height,
            rgb: buf[pos..pos + need].to_vec(),
        })
    }

    /// Reads and parses a P6 file.
    pub fn read(path: &Path) -> Result<Self, PpmError> {
        let buf = std::fs::read(path).map_err(|source| PpmError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&buf)
    }

    /// The P6 encoding of this image.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.rgb);
        out
    }

    /// The pixel at (`x`, `y`), or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.rgb.get(i..i + 3).map(|p| [p[0], p[1], p[2]])
    }

    /// Number of pixels that are not black (a cheap "something was drawn" check).
    pub fn non_black_pixels(&self) -> usize {
        self.rgb.chunks_exact(3).filter(|p| p != &[0, 0, 0]).count()
    }
}

/// How two images differ (from [`compare`]); its `Display` is a readable diff.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PpmDiff {
    /// Different dimensions.
    Size {
        /// `(width, height)` of the expected image.
        expected: (u32, u32),
        /// `(width, height)` of the actual image.
        actual: (u32, u32),
    },
    /// Same size, some pixels differ.
    Pixels {
        /// How many pixels differ.
        count: usize,
        /// Total number of pixels.
        total: usize,
        /// Bounding box of the differences: `(x0, y0, x1, y1)`, inclusive.
        bbox: (u32, u32, u32, u32),
        /// The first few differences: `(x, y, expected, actual)`.
        first: Vec<(u32, u32, [u8; 3], [u8; 3])>,
    },
}

impl fmt::Display for PpmDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PpmDiff::Size { expected, actual } => write!(
                f,
                "image size differs: expected {}x{}, got {}x{}",
                expected.0, expected.1, actual.0, actual.1
            ),
            PpmDiff::Pixels {
                count,
                total,
                bbox,
                first,
            } => {
                write!(
                    f,
                    "{count} of {total} pixels differ, within x {}..={} y {}..={}; first:",
                    bbox.0, bbox.2, bbox.1, bbox.3
                )?;
                for (x, y, e, a) in first {
                    write!(
                        f,
                        "\n  ({x},{y}) expected #{:02x}{:02x}{:02x} got #{:02x}{:02x}{:02x}",
                        e[0], e[1], e[2], a[0], a[1], a[2]
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// How many differing pixels [`PpmDiff::Pixels::first`] lists.
const FIRST_DIFFS: usize = 10;

/// Compares two images pixel for pixel; `Ok(())` when identical.
pub fn compare(expected: &Ppm, actual: &Ppm) -> Result<(), PpmDiff> {
    if (expected.width, expected.height) != (actual.width, actual.height) {
        return Err(PpmDiff::Size {
            expected: (expected.width, expected.height),
            actual: (actual.width, actual.height),
        });
    }
    let w = expected.width as usize;
    let mut count = 0;
    let mut bbox = (u32::MAX, u32::MAX, 0, 0);
    let mut first = Vec::new();
    let pairs = expected.rgb.chunks_exact(3).zip(actual.rgb.chunks_exact(3));
    for (i, (e, a)) in pairs.enumerate() {
        if e != a {
            // i < width*height <= MAX_PIXELS, so both fit in u32.
            let x = (i % w) as u32;
            let y = (i / w) as u32;
            count += 1;
            bbox = (bbox.0.min(x), bbox.1.min(y), bbox.2.max(x), bbox.3.max(y));
            if first.len() < FIRST_DIFFS {
                first.push((x, y, [e[0], e[1], e[2]], [a[0], a[1], a[2]]));
            }
        }
    }
    if count == 0 {
        Ok(())
    } else {
        Err(PpmDiff::Pixels {
            count,
            total: w * expected.height as usize,
            bbox,
            first,
        })
    }
}

/// Panics with the readable diff when the images differ.
#[track_caller]
pub fn assert_ppm_eq(expected: &Ppm, actual: &Ppm) {
    if let Err(d) = compare(expected, actual) {
        panic!("images differ: {d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Ppm {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        Ppm {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn round_trip_and_comments() {
        let a = img(3, 2, |x, y| [x as u8, y as u8, 7]);
        assert_eq!(Ppm::parse(&a.to_bytes()).unwrap(), a);
        let mut with_comment = b"P6 # made by hand\n3\t2 # size\n255\n".to_vec();
        with_comment.extend_from_slice(&a.rgb);
        with_comment.extend_from_slice(b"trailing");
        assert_eq!(Ppm::parse(&with_comment).unwrap(), a);
        assert_eq!(a.pixel(2, 1), Some([2, 1, 7]));
        assert_eq!(a.pixel(3, 0), None);
        assert_eq!(a.non_black_pixels(), 6);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(matches!(Ppm::parse(b""), Err(PpmError::BadMagic(_))));
        assert!(matches!(
            Ppm::parse(b"P3\n1 1\n255\n"),
            Err(PpmError::BadMagic(_))
        ));
        assert!(matches!(
            Ppm::parse(b"P6\nx 1\n255\n"),
            Err(PpmError::BadHeader { field: "width" })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n1"),
            Err(PpmError::BadHeader { field: "height" })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n1 1\n65535\n"),
            Err(PpmError::UnsupportedMaxval(65535))
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n1 1\n255"),
            Err(PpmError::BadHeader { .. })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n0 1\n255\n"),
            Err(PpmError::BadSize { .. })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n999999999 999999999\n255\n"),
            Err(PpmError::BadSize { .. })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n1234567890 1\n255\n"),
            Err(PpmError::BadHeader { .. })
        ));
        assert!(matches!(
            Ppm::parse(b"P6\n2 1\n255\nabc"),
            Err(PpmError::Truncated { need: 6, have: 3 })
        ));
    }

    #[test]
    fn compare_reports_size_and_pixels() {
        let a = img(4, 3, |_, _| [0, 0, 0]);
        assert_eq!(compare(&a, &a), Ok(()));
        let b = img(3, 4, |_, _| [0, 0, 0]);
        assert!(
            compare(&a, &b)
                .unwrap_err()
                .to_string()
                .contains("expected 4x3, got 3x4")
        );
        let c = img(4, 3, |x, y| {
            if (x, y) == (1, 2) || (x, y) == (3, 0) {
                [255, 0, 16]
            } else {
                [0, 0, 0]
            }
        });
        let d = compare(&a, &c).unwrap_err();
        assert_eq!(
            d,
            PpmDiff::Pixels {
                count: 2,
                total: 12,
                bbox: (1, 0, 3, 2),
                first: vec![
                    (3, 0, [0, 0, 0], [255, 0, 16]),
                    (1, 2, [0, 0, 0], [255, 0, 16])
                ],
            }
        );
        let msg = d.to_string();
        assert!(msg.contains("2 of 12 pixels differ"), "{msg}");
        assert!(msg.contains("(3,0) expected #000000 got #ff0010"), "{msg}");
    }

    #[test]
    #[should_panic(expected = "images differ")]
    fn assert_eq_panics_on_difference() {
        assert_ppm_eq(&img(1, 1, |_, _| [1, 2, 3]), &img(1, 1, |_, _| [1, 2, 4]));
    }
}
