//! Helpers shared by the integration tests.
#![allow(missing_docs)]
#![allow(dead_code)]

use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_proto::types::{
    Bitmap, BitmapFlags, BitmapFormat, Clip, ClipRects, DisplayBase, Image, ImageBody, ImageFlags,
    PaletteSource, Rect, SurfaceFormat,
};

pub fn rect(left: i32, top: i32, right: i32, bottom: i32) -> Rect {
    Rect {
        top,
        left,
        bottom,
        right,
    }
}

pub fn base(surface_id: u32, bbox: Rect) -> DisplayBase {
    DisplayBase {
        surface_id,
        bbox,
        clip: Clip::None,
    }
}

pub fn clipped(surface_id: u32, bbox: Rect, rects: Vec<Rect>) -> DisplayBase {
    DisplayBase {
        surface_id,
        bbox,
        clip: Clip::Rects(ClipRects { rects }),
    }
}

/// A canvas with an xRGB primary surface of `w` x `h`, filled with `fill`.
pub fn canvas(w: u32, h: u32, fill: u32) -> Canvas {
    let mut c = Canvas::new(
        1 << 24,
        ImageLimits {
            max_image_pixels: 1 << 22,
            cache_pixels: 1 << 20,
        },
        new_glz_window(1 << 24),
    );
    c.surfaces
        .create(0, w, h, SurfaceFormat::FMT_32_XRGB)
        .unwrap()
        .pixels_mut()
        .fill(fill);
    c
}

/// Leaks bytes to get a `'static` borrow (tests only).
pub fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

/// A top-down 32-bit BITMAP image of `w` x `h` from `0xAARRGGBB` pixels.
pub fn bitmap32(id: u64, flags: ImageFlags, w: u32, h: u32, px: &[u32]) -> Image<'static> {
    let data: Vec<u8> = px.iter().flat_map(|p| p.to_le_bytes()).collect();
    Image {
        id,
        flags,
        width: w,
        height: h,
        body: ImageBody::Bitmap(Bitmap {
            format: BitmapFormat::BIT32,
            flags: BitmapFlags::TOP_DOWN,
            x: w,
            y: h,
            stride: w * 4,
            palette: PaletteSource::None,
            data: leak(data),
        }),
    }
}

/// A 1-bit BE mask bitmap from rows of '#' (set) and '.' (clear).
pub fn mask_bitmap(rows: &[&str]) -> Image<'static> {
    let w = rows[0].len() as u32;
    let h = rows.len() as u32;
    let stride = w.div_ceil(8);
    let mut data = vec![0u8; (stride * h) as usize];
    for (y, r) in rows.iter().enumerate() {
        for (x, c) in r.chars().enumerate() {
            if c == '#' {
                data[y * stride as usize + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    Image {
        id: 0,
        flags: ImageFlags::empty(),
        width: w,
        height: h,
        body: ImageBody::Bitmap(Bitmap {
            format: BitmapFormat::BIT1_BE,
            flags: BitmapFlags::TOP_DOWN,
            x: w,
            y: h,
            stride,
            palette: PaletteSource::None,
            data: leak(data),
        }),
    }
}

/// Surface 0's pixels with the (meaningless) xRGB top byte cleared.
pub fn rgb(c: &Canvas) -> Vec<u32> {
    c.surfaces
        .get(0)
        .unwrap()
        .pixels()
        .iter()
        .map(|p| p & 0x00ff_ffff)
        .collect()
}
