//! DRAW_TEXT: raster glyphs (1, 4 or 8 bits per pixel) over an optional background.

use spice_proto::display::DrawText;
use spice_proto::types::{Rect, Ropd, SpiceString, StringFlags, image_size};

use crate::draw::{Paint, for_rows};
use crate::error::CanvasError;
use crate::image::ImageContext;
use crate::region::{Area, bounds};
use crate::surface::Surfaces;

/// Renders DRAW_TEXT as the reference software canvas does:
///
/// 1. when `back_area` is not empty, it (within the box and clip) is filled with the back
///    brush as a plain copy (a NONE brush fills with 0); text with a background must have
///    `fore_mode == OP_PUT`, anything else draws nothing;
/// 2. the glyphs, at `render_pos + glyph_origin`, form a coverage mask (1-bpp: 0 or 255;
///    4-bpp: `v * 17`; 8-bpp: the byte) through which the fore brush is composited OVER
///    the destination (`fore_mode` is not applied, like the reference). A NONE fore brush
///    draws no glyphs.
///
/// 1-bpp rows are MSB first, 4-bpp rows high nibble first; strings without
/// `RASTER_TOP_DOWN` have their glyph rows bottom-up. Pattern fore brushes tile from
/// their `pos` in surface coordinates (the reference anchors them to the string's
/// origin; spice-server sends solid text brushes).
pub(crate) fn draw_text(
    surfaces: &mut Surfaces,
    images: &mut ImageContext,
    d: &DrawText<'_>,
    areas: &[Area],
    b: Option<Area>,
) -> Result<Option<Rect>, CanvasError> {
    let fore = Paint::resolve(&d.fore_brush, images, surfaces)?;
    let back = Paint::resolve(&d.back_brush, images, surfaces)?;
    let Some(bb) = b else { return Ok(None) };
    let sid = d.base.surface_id;
    let mut changed: Option<Area> = None;

    let back_set = d.back_area.left < d.back_area.right && d.back_area.top < d.back_area.bottom;
    if back_set {
        // The reference accepts only OP_PUT text when there is a background (and draws
        // nothing otherwise).
        if Ropd::from_bits_retain(d.fore_mode) != Ropd::OP_PUT {
            return Ok(None);
        }
        let parts: Vec<Area> = areas
            .iter()
            .filter_map(|a| Area::clamp_to(&d.back_area, a))
            .collect();
        if !parts.is_empty() {
            let s = surfaces.get_mut(sid)?;
            for_rows(s, &parts, None, |y, x0, dst, _| back.fetch(y, x0, dst));
            changed = bounds(&parts);
        }
    }

    if fore.is_none() || d.text.glyphs.is_empty() {
        return Ok(finish(surfaces, sid, changed));
    }
    let Some(bpp) = SpiceString::bpp(d.text.flags) else {
        return Ok(finish(surfaces, sid, changed));
    };
    let top_down = d.text.flags.contains(StringFlags::RASTER_TOP_DOWN);
    // Coverage of the glyphs over the (clamped) box.
    let (cw, ch) = ((bb.x1 - bb.x0) as usize, (bb.y1 - bb.y0) as usize);
    let mut cov = vec![0u8; cw * ch];
    let mut glyph_box: Option<Area> = None;
    for g in &d.text.glyphs {
        let gx = i64::from(g.render_pos.x) + i64::from(g.glyph_origin.x);
        let gy = i64::from(g.render_pos.y) + i64::from(g.glyph_origin.y);
        let (w, h) = (usize::from(g.width), usize::from(g.height));
        let stride = image_size(bpp, u32::from(g.width), 1) as usize;
        if w == 0 || h == 0 || g.data.len() < stride * h {
            continue;
        }
        for row in 0..h {
            let y = gy + row as i64;
            if y < i64::from(bb.y0) || y >= i64::from(bb.y1) {
                continue;
            }
            let src_row = if top_down { row } else { h - 1 - row };
            let bits = &g.data[src_row * stride..(src_row + 1) * stride];
            let cy = (y - i64::from(bb.y0)) as usize;
            for col in 0..w {
                let x = gx + col as i64;
                if x < i64::from(bb.x0) || x >= i64::from(bb.x1) {
                    continue;
                }
                let v = match bpp {
                    1 => {
                        if bits[col / 8] & (0x80 >> (col % 8)) != 0 {
                            255
                        } else {
                            0
                        }
                    }
                    4 => {
                        let byte = bits[col / 2];
                        let n = if col % 2 == 0 { byte >> 4 } else { byte & 0xf };
                        n * 17
                    }
                    _ => bits[col],
                };
                if v != 0 {
                    let c = &mut cov[cy * cw + (x - i64::from(bb.x0)) as usize];
                    *c = (*c).max(v);
                    let px = Area {
                        x0: x as i32,
                        y0: y as i32,
                        x1: x as i32 + 1,
                        y1: y as i32 + 1,
                    };
                    glyph_box = Some(glyph_box.map_or(px, |a| a.union(&px)));
                }
            }
        }
    }
    let Some(gb) = glyph_box else {
        return Ok(finish(surfaces, sid, changed));
    };
    let parts: Vec<Area> = areas
        .iter()
        .filter_map(|a| Area::clamp_to(&gb.to_rect(), a))
        .collect();
    let s = surfaces.get_mut(sid)?;
    let mut src = Vec::new();
    for_rows(s, &parts, None, |y, x0, dst, _| {
        src.resize(dst.len(), 0);
        fore.fetch(y, x0, &mut src);
        let crow = &cov[(y - bb.y0) as usize * cw..];
        for (i, dp) in dst.iter_mut().enumerate() {
            let c = crow[(x0 - bb.x0) as usize + i];
            if c == 0 {
                continue;
            }
            *dp = blend(src[i] | 0xff00_0000, *dp, u32::from(c));
        }
    });
    let all = match (changed, bounds(&parts)) {
        (Some(a), Some(b)) => Some(a.union(&b)),
        (a, b) => a.or(b),
    };
    Ok(finish(surfaces, sid, all))
}

/// `s` over `d` with coverage `c` (0-255), s opaque.
fn blend(s: u32, d: u32, c: u32) -> u32 {
    crate::draw::over(s, d, c)
}

fn finish(surfaces: &mut Surfaces, sid: u32, b: Option<Area>) -> Option<Rect> {
    let b = b?;
    if let Ok(s) = surfaces.get_mut(sid) {
        s.normalize(b.x0 as u32, b.y0 as u32, b.x1 as u32, b.y1 as u32);
    }
    Some(b.to_rect())
}
