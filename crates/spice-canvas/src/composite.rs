//! DRAW_COMPOSITE: pixman-style compositing of a source (and optional mask) image onto
//! the destination, as the guest's X driver (Render) asks.

use spice_proto::display::DrawComposite;
use spice_proto::types::{CompositeFlags, Rect, Transform};

use crate::draw::for_rows;
use crate::error::CanvasError;
use crate::image::ImageContext;
use crate::region::{Area, bounds};
use crate::surface::{Pixmap, Surfaces};

/// How a source outside its image is read (`composite_flags` repeat bits, pixman order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    None,
    Normal,
    Pad,
    Reflect,
}

impl Repeat {
    fn from_bits(v: u32) -> Repeat {
        match v & 3 {
            0 => Repeat::None,
            1 => Repeat::Normal,
            2 => Repeat::Pad,
            _ => Repeat::Reflect,
        }
    }
}

/// A source or mask image with its transform, filter and repeat.
struct Sampler<'p> {
    pm: &'p Pixmap,
    /// 16.16 affine matrix (identity when absent).
    t: [i64; 6],
    bilinear: bool,
    repeat: Repeat,
    origin: (i64, i64),
    /// For an image without alpha, alpha reads as 0xff.
    force_opaque: bool,
}

fn matrix(t: &Option<Transform>) -> [i64; 6] {
    match t {
        // The wire holds pixman_fixed_t (signed 16.16) in u32s.
        Some(t) => [t.t00, t.t01, t.t02, t.t10, t.t11, t.t12].map(|v| i64::from(v as i32)),
        None => [1 << 16, 0, 0, 0, 1 << 16, 0],
    }
}

impl Sampler<'_> {
    fn wrap(&self, v: i64, n: i64) -> Option<i64> {
        if (0..n).contains(&v) {
            return Some(v);
        }
        match self.repeat {
            Repeat::None => None,
            Repeat::Normal => Some(v.rem_euclid(n)),
            Repeat::Pad => Some(v.clamp(0, n - 1)),
            Repeat::Reflect => {
                let m = v.rem_euclid(2 * n);
                Some(if m < n { m } else { 2 * n - 1 - m })
            }
        }
    }

    fn texel(&self, x: i64, y: i64) -> u32 {
        let (w, h) = (i64::from(self.pm.width()), i64::from(self.pm.height()));
        match (self.wrap(x, w), self.wrap(y, h)) {
            (Some(x), Some(y)) => {
                let p = self.pm.pixels()[(y * w + x) as usize];
                if self.force_opaque {
                    p | 0xff00_0000
                } else {
                    p
                }
            }
            _ => 0,
        }
    }

    /// The sample for destination pixel `(dx, dy)` relative to the box origin.
    fn sample(&self, dx: i64, dy: i64) -> u32 {
        // Pixel centre in source space (16.16), through the transform.
        let px = ((dx + self.origin.0) << 16) + (1 << 15);
        let py = ((dy + self.origin.1) << 16) + (1 << 15);
        let t = &self.t;
        let sx = ((i128::from(t[0]) * i128::from(px) + i128::from(t[1]) * i128::from(py)) >> 16)
            as i64
            + t[2];
        let sy = ((i128::from(t[3]) * i128::from(px) + i128::from(t[4]) * i128::from(py)) >> 16)
            as i64
            + t[5];
        if !self.bilinear {
            return self.texel(sx >> 16, sy >> 16);
        }
        let (fx, fy) = (sx - (1 << 15), sy - (1 << 15));
        let (x0, y0) = (fx >> 16, fy >> 16);
        let (wx, wy) = (((fx >> 8) & 0xff) as u32, ((fy >> 8) & 0xff) as u32);
        let top = lerp(self.texel(x0, y0), self.texel(x0 + 1, y0), wx);
        let bot = lerp(self.texel(x0, y0 + 1), self.texel(x0 + 1, y0 + 1), wx);
        lerp(top, bot, wy)
    }
}

fn lerp(a: u32, b: u32, w: u32) -> u32 {
    let mut r = 0;
    for s in [0, 8, 16, 24] {
        let (ca, cb) = ((a >> s) & 0xff, (b >> s) & 0xff);
        r |= ((ca * (256 - w) + cb * w + 128) >> 8) << s;
    }
    r
}

fn ch(p: u32, s: u32) -> f32 {
    ((p >> s) & 0xff) as f32 / 255.0
}

/// Porter-Duff factors (for the source, for the destination) of operator `base`.
fn factors(base: u8, sa: f32, da: f32) -> Option<(f32, f32)> {
    Some(match base {
        0 => (0.0, 0.0),
        1 => (1.0, 0.0),
        2 => (0.0, 1.0),
        3 => (1.0, 1.0 - sa),
        4 => (1.0 - da, 1.0),
        5 => (da, 0.0),
        6 => (0.0, sa),
        7 => (1.0 - da, 0.0),
        8 => (0.0, 1.0 - sa),
        9 => (da, 1.0 - sa),
        10 => (1.0 - da, sa),
        11 => (1.0 - da, 1.0 - sa),
        12 => (1.0, 1.0),
        13 => {
            let fa = if sa <= 0.0 {
                1.0
            } else {
                ((1.0 - da) / sa).min(1.0)
            };
            (fa, 1.0)
        }
        _ => return None,
    })
}

fn unit(v: f32) -> u32 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u32
}

/// Composites premultiplied `s` onto `d` with pixman operator `op`. With component
/// alpha, `ca` holds the per-channel source alpha (R, G, B) that the Porter-Duff factors
/// use for the colour channels, as pixman does.
///
/// Exact for the Porter-Duff operators (0-13) and the separable blend modes MULTIPLY,
/// SCREEN, OVERLAY, DARKEN, LIGHTEN, HARD_LIGHT, DIFFERENCE and EXCLUSION (in float, so a
/// channel may differ from pixman's integer rounding by one). The DISJOINT_* and
/// CONJOINT_* operators are computed as their plain counterparts (identical for opaque
/// pixels); COLOR_DODGE, COLOR_BURN, SOFT_LIGHT and the HSL modes as OVER; blend modes
/// ignore component alpha.
pub(crate) fn composite_px(op: u8, s: u32, d: u32, ca: Option<[u32; 3]>) -> u32 {
    let sa = ch(s, 24);
    let da = ch(d, 24);
    let base = if (0x10..=0x1b).contains(&op) || (0x20..=0x2b).contains(&op) {
        op & 0x0f
    } else {
        op
    };
    match (base, ca) {
        (0, _) => return 0,
        (1, None) => return s,
        (2, _) => return d,
        _ => {}
    }
    if let Some((fa, fb)) = factors(base, sa, da) {
        let mut r = unit(sa * fa + da * fb) << 24;
        for (i, sh) in [16u32, 8, 0].into_iter().enumerate() {
            let (fa, fb) = match ca {
                Some(c) => factors(base, c[i] as f32 / 255.0, da).unwrap_or((fa, fb)),
                None => (fa, fb),
            };
            r |= unit(ch(s, sh) * fa + ch(d, sh) * fb) << sh;
        }
        return r;
    }
    match base {
        0x30..=0x34 | 0x37 | 0x39 | 0x3a => {
            let blend = |sc: f32, dc: f32| -> f32 {
                match base {
                    0x30 => sc * dc,
                    0x31 => sc * da + dc * sa - sc * dc,
                    0x32 => {
                        if 2.0 * dc < da {
                            2.0 * sc * dc
                        } else {
                            sa * da - 2.0 * (da - dc) * (sa - sc)
                        }
                    }
                    0x33 => (sc * da).min(dc * sa),
                    0x34 => (sc * da).max(dc * sa),
                    0x37 => {
                        if 2.0 * sc < sa {
                            2.0 * sc * dc
                        } else {
                            sa * da - 2.0 * (da - dc) * (sa - sc)
                        }
                    }
                    0x39 => (sc * da - dc * sa).abs(),
                    _ => sc * da + dc * sa - 2.0 * sc * dc,
                }
            };
            let mut r = 0u32;
            for sh in [0, 8, 16] {
                let (sc, dc) = (ch(s, sh), ch(d, sh));
                r |= unit(sc * (1.0 - da) + dc * (1.0 - sa) + blend(sc, dc)) << sh;
            }
            r | unit(sa + da - sa * da) << 24
        }
        _ => composite_px(3, s, d, ca),
    }
}

/// Renders DRAW_COMPOSITE: for each destination pixel of the box (and clip), the source
/// and mask are sampled at `origin + (x - box.left, y - box.top)` through their
/// transforms (pixel centres, 16.16 fixed point), with nearest (filter 0) or bilinear
/// (filters 1 and 2: pixman GOOD / BEST) sampling and the repeat mode of the flags; the
/// source is multiplied by the mask (per channel with COMPONENT_ALPHA, which also gives
/// the per-channel source alpha, else by the mask's alpha) and composited with the
/// operator of bits 0-7 (see [`composite_px`]).
pub(crate) fn draw_composite(
    surfaces: &mut Surfaces,
    images: &mut ImageContext,
    d: &DrawComposite<'_>,
    areas: &[Area],
    b: Option<Area>,
) -> Result<Option<Rect>, CanvasError> {
    let Some(src_img) = &d.src_bitmap else {
        return Ok(None);
    };
    let src = images.decode(src_img, surfaces)?.pixmap;
    let mask = match &d.mask_bitmap {
        Some(m) if d.flags.contains(CompositeFlags::HAS_MASK) => {
            Some(images.decode(m, surfaces)?.pixmap)
        }
        _ => None,
    };
    let Some(bb) = b else { return Ok(None) };
    let bits = d.flags.bits();
    let op = (bits & 0xff) as u8;
    let src_s = Sampler {
        pm: &src,
        t: matrix(&d.src_transform),
        bilinear: (bits >> 8) & 7 != 0,
        repeat: Repeat::from_bits(bits >> 14),
        origin: (i64::from(d.src_origin.x), i64::from(d.src_origin.y)),
        force_opaque: !src.has_alpha() || d.flags.contains(CompositeFlags::SOURCE_OPAQUE),
    };
    let mask_s = mask.as_ref().map(|m| Sampler {
        pm: m,
        t: matrix(&d.mask_transform),
        bilinear: (bits >> 11) & 7 != 0,
        repeat: Repeat::from_bits(bits >> 16),
        origin: (i64::from(d.mask_origin.x), i64::from(d.mask_origin.y)),
        force_opaque: !m.has_alpha() || d.flags.contains(CompositeFlags::MASK_OPAQUE),
    });
    let ca = d.flags.contains(CompositeFlags::COMPONENT_ALPHA);
    let (bx, by) = (i64::from(d.base.bbox.left), i64::from(d.base.bbox.top));
    let s = surfaces.get_mut(d.base.surface_id)?;
    let dest_opaque = !s.has_alpha();
    for_rows(s, areas, None, |y, x0, dst, _| {
        for (i, dp) in dst.iter_mut().enumerate() {
            let (dx, dy) = (i64::from(x0) + i as i64 - bx, i64::from(y) - by);
            let mut sp = src_s.sample(dx, dy);
            let mut ca_alpha = None;
            if let Some(ms) = &mask_s {
                let m = ms.sample(dx, dy);
                let mut r = 0u32;
                for sh in [0u32, 8, 16, 24] {
                    let f = if ca && sh != 24 {
                        (m >> sh) & 0xff
                    } else {
                        m >> 24
                    };
                    r |= crate::draw::mul255((sp >> sh) & 0xff, f) << sh;
                }
                if ca {
                    // Per-channel source alpha: alpha(s) * mask channel.
                    let sa = sp >> 24;
                    ca_alpha =
                        Some([16u32, 8, 0].map(|sh| crate::draw::mul255(sa, (m >> sh) & 0xff)));
                }
                sp = r;
            }
            let dv = if dest_opaque { *dp | 0xff00_0000 } else { *dp };
            *dp = composite_px(op, sp, dv, ca_alpha);
        }
    });
    let _ = bb;
    let changed = bounds(areas);
    if let Some(c) = changed {
        s.normalize(c.x0 as u32, c.y0 as u32, c.x1 as u32, c.y1 as u32);
    }
    Ok(changed.map(Area::to_rect))
}
