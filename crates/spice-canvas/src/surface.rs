//! Pixmaps (decoded images) and drawing surfaces.

use std::collections::HashMap;

use spice_proto::types::SurfaceFormat;

use crate::error::CanvasError;

/// Largest width or height of a surface or image the canvas accepts (pixman's limit is
/// larger, but no display is wider than this).
pub const MAX_DIMENSION: u32 = 1 << 15;

/// A decoded image: `width * height` pixels, top row first, each a `u32` `0xAARRGGBB`.
///
/// Images without alpha (everything but RGBA bitmaps / streams, JPEG_ALPHA, A8 and ARGB
/// surfaces) have their alpha byte set to `0xff`. Pixels with alpha are premultiplied, as
/// pixman's `a8r8g8b8` (what the guest sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixmap {
    width: u32,
    height: u32,
    has_alpha: bool,
    pixels: Vec<u32>,
}

impl Pixmap {
    /// A pixmap from its pixels; `None` unless `pixels.len() == width * height`.
    pub fn from_pixels(width: u32, height: u32, has_alpha: bool, pixels: Vec<u32>) -> Option<Self> {
        (pixels.len() as u64 == u64::from(width) * u64::from(height)).then_some(Self {
            width,
            height,
            has_alpha,
            pixels,
        })
    }

    /// Converts packed B,G,R,X/A rows (`width * 4` bytes each, top row first); when
    /// `has_alpha` is false the fourth byte is replaced by `0xff`.
    pub fn from_bgrx(width: u32, height: u32, has_alpha: bool, bytes: &[u8]) -> Option<Self> {
        let n = u64::from(width) * u64::from(height);
        if bytes.len() as u64 != n * 4 {
            return None;
        }
        let or = if has_alpha { 0 } else { 0xff00_0000 };
        let pixels = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | or)
            .collect();
        Some(Self {
            width,
            height,
            has_alpha,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// True when the alpha byte is meaningful.
    pub fn has_alpha(&self) -> bool {
        self.has_alpha
    }

    /// All pixels, top row first.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// Row `y`, or `None` past the bottom.
    pub fn row(&self, y: u32) -> Option<&[u32]> {
        let w = self.width as usize;
        let y = y as usize;
        self.pixels.get(y * w..(y + 1) * w)
    }

    /// Pixel `(x, y)`, or `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        if x >= self.width {
            return None;
        }
        self.row(y).map(|r| r[x as usize])
    }

    pub(crate) fn pixels_mut(&mut self) -> &mut [u32] {
        &mut self.pixels
    }

    /// Number of pixels (`width * height`).
    pub fn pixel_count(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// A drawing surface: SURFACE_CREATE's `width`, `height` and `format`.
///
/// Pixels are kept as `u32` `0xAARRGGBB` whatever the format; after every draw the changed
/// pixels are brought to the format's precision so reads see what a pixman surface of
/// that format holds:
///
/// | format | stored |
/// |---|---|
/// | `FMT_32_XRGB` (32) | `x8r8g8b8`: the top byte is not meaningful (readers ignore it) |
/// | `FMT_32_ARGB` (96) | premultiplied `a8r8g8b8` |
/// | `FMT_16_555` (16) / `FMT_16_565` (80) | each channel cut to 5 (6) bits and widened back (`v << 3 \| v >> 2`), alpha `0xff` |
/// | `FMT_8_A` (8) | alpha only (`a << 24`) |
/// | `FMT_1_A` (1) | alpha 0 or `0xff` (top bit of the alpha), colour 0 |
#[derive(Debug, Clone)]
pub struct Surface {
    width: u32,
    height: u32,
    format: SurfaceFormat,
    pixels: Vec<u32>,
}

impl Surface {
    /// A surface filled with zero pixels (transparent black; black for xRGB).
    pub fn new(width: u32, height: u32, format: SurfaceFormat) -> Result<Self, CanvasError> {
        check_format(format)?;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(CanvasError::BadSurfaceSize { width, height });
        }
        Ok(Self {
            width,
            height,
            format,
            pixels: vec![0; width as usize * height as usize],
        })
    }

    /// Width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Format.
    pub fn format(&self) -> SurfaceFormat {
        self.format
    }

    /// True for formats whose alpha byte is meaningful (ARGB, A8, A1).
    pub fn has_alpha(&self) -> bool {
        self.format != SurfaceFormat::FMT_32_XRGB
            && self.format != SurfaceFormat::FMT_16_555
            && self.format != SurfaceFormat::FMT_16_565
    }

    /// All pixels, top row first, `width` per row.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// Mutable pixels (for a server rendering guest memory into the surface). Call
    /// [`Surface::normalize`] afterwards for formats other than 32-bit.
    pub fn pixels_mut(&mut self) -> &mut [u32] {
        &mut self.pixels
    }

    /// Row `y`, or `None` past the bottom.
    pub fn row(&self, y: u32) -> Option<&[u32]> {
        let w = self.width as usize;
        let y = y as usize;
        self.pixels.get(y * w..(y + 1) * w)
    }

    /// Pixel `(x, y)`, or `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        if x >= self.width {
            return None;
        }
        self.row(y).map(|r| r[x as usize])
    }

    /// The pixels as packed R,G,B bytes, top row first (what a PPM holds; the alpha byte
    /// is dropped).
    pub fn to_rgb24(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 3);
        for &p in &self.pixels {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
        }
        out
    }

    /// The pixels as packed B,G,R,X bytes (`u32` little-endian), top row first.
    pub fn to_bgrx(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 4);
        for &p in &self.pixels {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// A copy of the whole surface as a [`Pixmap`] (a SURFACE image).
    pub fn to_pixmap(&self) -> Pixmap {
        let or = if self.has_alpha() { 0 } else { 0xff00_0000 };
        Pixmap {
            width: self.width,
            height: self.height,
            has_alpha: self.has_alpha(),
            pixels: self.pixels.iter().map(|p| p | or).collect(),
        }
    }

    /// A copy of the whole surface keeping the stored alpha bytes as they are, marked as
    /// having alpha (ALPHA_BLEND's `SRC_SURFACE_HAS_ALPHA`: the guest says the bytes of
    /// an xRGB surface hold alpha).
    pub fn to_pixmap_with_alpha(&self) -> Pixmap {
        Pixmap {
            width: self.width,
            height: self.height,
            has_alpha: true,
            pixels: self.pixels.clone(),
        }
    }

    /// Brings the pixels of rectangle `[x0, x1) x [y0, y1)` (clamped to the surface) to the
    /// precision of the format (see the table on [`Surface`]); a no-op for 32-bit formats.
    pub fn normalize(&mut self, x0: u32, y0: u32, x1: u32, y1: u32) {
        let f: fn(u32) -> u32 = match self.format {
            SurfaceFormat::FMT_16_555 => |p| {
                let c = |s: u32| {
                    let v = (p >> (s + 3)) & 0x1f;
                    ((v << 3) | (v >> 2)) << s
                };
                0xff00_0000 | c(16) | c(8) | c(0)
            },
            SurfaceFormat::FMT_16_565 => |p| {
                let r = (p >> 19) & 0x1f;
                let g = (p >> 10) & 0x3f;
                let b = (p >> 3) & 0x1f;
                0xff00_0000
                    | ((r << 3) | (r >> 2)) << 16
                    | ((g << 2) | (g >> 4)) << 8
                    | ((b << 3) | (b >> 2))
            },
            SurfaceFormat::FMT_8_A => |p| p & 0xff00_0000,
            SurfaceFormat::FMT_1_A => |p| if p & 0x8000_0000 != 0 { 0xff00_0000 } else { 0 },
            _ => return,
        };
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let w = self.width as usize;
        for y in y0..y1 {
            let row = &mut self.pixels[y as usize * w..(y as usize + 1) * w];
            for p in &mut row[x0.min(x1) as usize..x1 as usize] {
                *p = f(*p);
            }
        }
    }
}

fn check_format(format: SurfaceFormat) -> Result<(), CanvasError> {
    match format {
        SurfaceFormat::FMT_1_A
        | SurfaceFormat::FMT_8_A
        | SurfaceFormat::FMT_16_555
        | SurfaceFormat::FMT_16_565
        | SurfaceFormat::FMT_32_XRGB
        | SurfaceFormat::FMT_32_ARGB => Ok(()),
        f => Err(CanvasError::UnsupportedSurfaceFormat(f)),
    }
}

/// The surfaces of one display channel, by id (0 is the primary), under a cap on the
/// pixels of all of them together.
#[derive(Debug)]
pub struct Surfaces {
    map: HashMap<u32, Surface>,
    total_pixels: u64,
    max_total_pixels: u64,
}

impl Surfaces {
    /// No surfaces; creations that would hold more than `max_total_pixels` pixels in all
    /// are refused with [`CanvasError::SurfacePixelsOverCap`].
    pub fn new(max_total_pixels: u64) -> Self {
        Self {
            map: HashMap::new(),
            total_pixels: 0,
            max_total_pixels,
        }
    }

    /// Creates (or replaces) surface `id`, filled with zero pixels.
    pub fn create(
        &mut self,
        id: u32,
        width: u32,
        height: u32,
        format: SurfaceFormat,
    ) -> Result<&mut Surface, CanvasError> {
        check_format(format)?;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(CanvasError::BadSurfaceSize { width, height });
        }
        let old = self.map.get(&id).map_or(0, |s| s.pixels.len() as u64);
        let requested = self.total_pixels - old + u64::from(width) * u64::from(height);
        if requested > self.max_total_pixels {
            return Err(CanvasError::SurfacePixelsOverCap {
                requested,
                limit: self.max_total_pixels,
            });
        }
        // Drop the old one before allocating the new one.
        self.map.remove(&id);
        let s = Surface::new(width, height, format)?;
        self.total_pixels = requested;
        Ok(self.map.entry(id).or_insert(s))
    }

    /// Destroys surface `id`.
    pub fn destroy(&mut self, id: u32) -> Result<(), CanvasError> {
        let s = self
            .map
            .remove(&id)
            .ok_or(CanvasError::UnknownSurface(id))?;
        self.total_pixels -= s.pixels.len() as u64;
        Ok(())
    }

    /// Destroys every surface.
    pub fn clear(&mut self) {
        self.map.clear();
        self.total_pixels = 0;
    }

    /// Surface `id`.
    pub fn get(&self, id: u32) -> Result<&Surface, CanvasError> {
        self.map.get(&id).ok_or(CanvasError::UnknownSurface(id))
    }

    /// Surface `id`, mutable.
    pub fn get_mut(&mut self, id: u32) -> Result<&mut Surface, CanvasError> {
        self.map.get_mut(&id).ok_or(CanvasError::UnknownSurface(id))
    }

    /// True when surface `id` exists.
    pub fn contains(&self, id: u32) -> bool {
        self.map.contains_key(&id)
    }

    /// Ids of the existing surfaces, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.map.keys().copied()
    }

    /// Pixels held by all surfaces.
    pub fn total_pixels(&self) -> u64 {
        self.total_pixels
    }
}
