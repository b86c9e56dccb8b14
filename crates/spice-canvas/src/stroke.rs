//! DRAW_STROKE: one-pixel-wide lines along a path of lines and cubic Béziers, solid or
//! dashed.

use spice_proto::display::DrawStroke;
use spice_proto::types::{LineFlags, PathFlags, PointFix, Rect, Ropd};

use crate::draw::{Paint, for_rows};
use crate::error::CanvasError;
use crate::image::ImageContext;
use crate::region::{Area, bounds};
use crate::rop::Rop;
use crate::surface::Surfaces;

/// Most pixel steps one stroke may take (after clipping each line to the box).
pub const MAX_STROKE_STEPS: u64 = 1 << 24;
/// Most line pieces a path may flatten to.
pub const MAX_STROKE_LINES: usize = 1 << 20;

/// A point in pixels (from 28.4 fixed point).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pt {
    x: f64,
    y: f64,
}

fn pt(p: &PointFix) -> Pt {
    Pt {
        x: f64::from(p.x) / 16.0,
        y: f64::from(p.y) / 16.0,
    }
}

/// Flattens the path into polylines (one per sub-path).
fn flatten(d: &DrawStroke<'_>) -> Result<Vec<Vec<Pt>>, CanvasError> {
    let mut subs: Vec<Vec<Pt>> = Vec::new();
    let mut cur: Vec<Pt> = Vec::new();
    let mut total = 0usize;
    for seg in &d.path.segments {
        let mut pts = seg.points.iter().map(pt);
        if seg.flags.contains(PathFlags::BEGIN) || cur.is_empty() {
            if cur.len() > 1 {
                subs.push(std::mem::take(&mut cur));
            }
            cur.clear();
            match pts.next() {
                Some(p) => cur.push(p),
                None => continue,
            }
        }
        if seg.flags.contains(PathFlags::BEZIER) {
            let rest: Vec<Pt> = pts.collect();
            for c in rest.chunks_exact(3) {
                let p0 = *cur.last().expect("cur is not empty");
                let len = dist(p0, c[0]) + dist(c[0], c[1]) + dist(c[1], c[2]);
                let n = (len / 4.0).clamp(2.0, 256.0) as usize;
                for i in 1..=n {
                    let t = i as f64 / n as f64;
                    let u = 1.0 - t;
                    let (a, b, cc, dd) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
                    cur.push(Pt {
                        x: a * p0.x + b * c[0].x + cc * c[1].x + dd * c[2].x,
                        y: a * p0.y + b * c[0].y + cc * c[1].y + dd * c[2].y,
                    });
                }
                total += n;
            }
        } else {
            for p in pts {
                cur.push(p);
                total += 1;
            }
        }
        if total > MAX_STROKE_LINES {
            return Err(CanvasError::StrokeTooComplex("too many path points"));
        }
        if seg.flags.contains(PathFlags::END) {
            if seg.flags.contains(PathFlags::CLOSE) && cur.len() > 1 {
                cur.push(cur[0]);
            }
            if cur.len() > 1 {
                subs.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    if cur.len() > 1 {
        subs.push(cur);
    }
    Ok(subs)
}

fn dist(a: Pt, b: Pt) -> f64 {
    let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
    if d.is_finite() { d } else { 1e9 }
}

/// Liang-Barsky: the part of `a -> b` inside `[x0, x1] x [y0, y1]`, as parameters.
fn clip_line(a: Pt, b: Pt, x0: f64, y0: f64, x1: f64, y1: f64) -> Option<(f64, f64)> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let mut t0 = 0.0f64;
    let mut t1 = 1.0f64;
    for (p, q) in [
        (-dx, a.x - x0),
        (dx, x1 - a.x),
        (-dy, a.y - y0),
        (dy, y1 - a.y),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some((t0, t1))
}

/// The dash pattern: alternating on / off lengths in pixels.
struct Dash {
    segs: Vec<f64>,
    idx: usize,
    left: f64,
    on: bool,
}

impl Dash {
    fn new(d: &DrawStroke<'_>) -> Option<Dash> {
        if !d.attr.flags.contains(LineFlags::STYLED) {
            return None;
        }
        let segs: Vec<f64> = d
            .attr
            .style
            .as_ref()?
            .iter()
            .map(|&v| (f64::from(v) / 16.0).abs())
            .collect();
        if segs.iter().all(|&s| s < 1.0 / 16.0) {
            return None;
        }
        let on = !d.attr.flags.contains(LineFlags::START_WITH_GAP);
        Some(Dash {
            left: segs[0],
            segs,
            idx: 0,
            on,
        })
    }

    /// Advances by `len` pixels; returns whether the pen was down at the start.
    fn step(&mut self, mut len: f64) -> bool {
        let was = self.on;
        // Bounded: each pass consumes a segment of at least 1/16 px or the whole `len`;
        // `len` is at most a few pixels per call.
        let mut guard = 0;
        while len > 0.0 && guard < 1 << 16 {
            guard += 1;
            if self.left > len {
                self.left -= len;
                break;
            }
            len -= self.left;
            self.idx = (self.idx + 1) % self.segs.len();
            self.left = self.segs[self.idx];
            self.on = !self.on;
        }
        was
    }
}

/// Renders DRAW_STROKE with one-pixel lines (the protocol's LineAttr has no width: every
/// SPICE stroke is a cosmetic line). A sub-path starts at a BEGIN segment's first point;
/// BEZIER segments give cubic curves (three points each, flattened to at most 256 lines);
/// END closes the sub-path back to its start when CLOSE is also set. Lines are rasterised
/// with a DDA between pixel centres (28.4 coordinates rounded to the nearest pixel) and,
/// like the reference's `CapNotLast` Windows-style cosmetic lines, the last point of each
/// line is not drawn. Every covered pixel is drawn once through `fore_mode` with the brush
/// as source (a NONE brush is colour 0). Styled lines draw only the "on" dashes
/// (`back_mode` is ignored, as by the reference).
///
/// Approximations: the reference rasterises with the X server's `mi` zero-width line code,
/// whose pixel choice can differ from this DDA by one pixel on some slopes; the dash
/// phase of START_WITH_GAP patterns and across clipped lines is approximate.
pub(crate) fn draw_stroke(
    surfaces: &mut Surfaces,
    images: &mut ImageContext,
    d: &DrawStroke<'_>,
    areas: &[Area],
    b: Option<Area>,
) -> Result<Option<Rect>, CanvasError> {
    let paint = Paint::resolve(&d.brush, images, surfaces)?;
    let subs = flatten(d)?;
    let Some(bb) = b else { return Ok(None) };
    let rop = Rop::from_ropd(
        Ropd::from_bits_retain(d.fore_mode),
        Ropd::INVERS_BRUSH,
        Ropd::INVERS_DEST,
    );
    // A NONE brush strokes with colour 0, like the reference.
    if rop.is_noop() {
        return Ok(None);
    }
    let (cw, ch) = ((bb.x1 - bb.x0) as usize, (bb.y1 - bb.y0) as usize);
    let mut cov = vec![false; cw * ch];
    let mut dash = Dash::new(d);
    let mut steps = 0u64;
    let (fx0, fy0) = (f64::from(bb.x0) - 1.0, f64::from(bb.y0) - 1.0);
    let (fx1, fy1) = (f64::from(bb.x1) + 1.0, f64::from(bb.y1) + 1.0);
    let mut plot = |x: i64, y: i64| {
        if x >= i64::from(bb.x0)
            && x < i64::from(bb.x1)
            && y >= i64::from(bb.y0)
            && y < i64::from(bb.y1)
        {
            cov[(y - i64::from(bb.y0)) as usize * cw + (x - i64::from(bb.x0)) as usize] = true;
        }
    };
    for sub in &subs {
        for w in sub.windows(2) {
            let (a, bpt) = (w[0], w[1]);
            let full = (bpt.x - a.x).abs().max((bpt.y - a.y).abs());
            let Some((t0, t1)) = clip_line(a, bpt, fx0, fy0, fx1, fy1) else {
                if let Some(ds) = dash.as_mut() {
                    ds.step(full.min(1e7));
                }
                continue;
            };
            if let Some(ds) = dash.as_mut() {
                ds.step((full * t0).min(1e7));
            }
            let p = Pt {
                x: a.x + (bpt.x - a.x) * t0,
                y: a.y + (bpt.y - a.y) * t0,
            };
            let q = Pt {
                x: a.x + (bpt.x - a.x) * t1,
                y: a.y + (bpt.y - a.y) * t1,
            };
            let (dx, dy) = (q.x - p.x, q.y - p.y);
            let n = dx.abs().max(dy.abs()).round() as u64;
            steps += n + 1;
            if steps > MAX_STROKE_STEPS {
                return Err(CanvasError::StrokeTooComplex("too many pixels"));
            }
            let n = n.max(1);
            let (sx, sy) = (dx / n as f64, dy / n as f64);
            for i in 0..n {
                let on = dash.as_mut().is_none_or(|ds| ds.step(1.0));
                if on {
                    let x = (p.x + sx * i as f64).round() as i64;
                    let y = (p.y + sy * i as f64).round() as i64;
                    plot(x, y);
                }
            }
            if let Some(ds) = dash.as_mut() {
                ds.step((full * (1.0 - t1)).min(1e7));
            }
        }
    }
    let s = surfaces.get_mut(d.base.surface_id)?;
    let mut src = Vec::new();
    for_rows(s, areas, None, |y, x0, dst, _| {
        src.resize(dst.len(), 0);
        paint.fetch(y, x0, &mut src);
        let row = &cov[(y - bb.y0) as usize * cw..];
        for (i, dp) in dst.iter_mut().enumerate() {
            if row[(x0 - bb.x0) as usize + i] {
                *dp = rop.apply(src[i], *dp);
            }
        }
    });
    let _ = ch;
    let changed = bounds(areas);
    if let Some(c) = changed {
        s.normalize(c.x0 as u32, c.y0 as u32, c.x1 as u32, c.y1 as u32);
    }
    Ok(changed.map(Area::to_rect))
}
