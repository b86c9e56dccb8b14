//! Clip regions: the bounding box and clip rectangles of a draw, cut to the surface, as
//! non-overlapping rectangles (so that XOR-like operations touch each pixel once).

use spice_proto::types::{Clip, Rect};

use crate::error::CanvasError;

/// Most clip rectangles a draw may carry (spice-server sends a handful; the cost of the
/// banding below is quadratic in this).
pub const MAX_CLIP_RECTS: usize = 4096;

/// A non-empty rectangle `[x0, x1) x [y0, y1)` inside a surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Area {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Area {
    /// `r` cut to `[0, w) x [0, h)`, or `None` when empty (also for inverted rects).
    pub fn clamp(r: &Rect, w: u32, h: u32) -> Option<Area> {
        Area::clamp_to(r, &Area::full(w, h))
    }

    pub fn full(w: u32, h: u32) -> Area {
        Area {
            x0: 0,
            y0: 0,
            x1: w as i32,
            y1: h as i32,
        }
    }

    /// `r` cut to `bounds`, or `None` when empty.
    pub fn clamp_to(r: &Rect, b: &Area) -> Option<Area> {
        let a = Area {
            x0: r.left.max(b.x0),
            y0: r.top.max(b.y0),
            x1: r.right.min(b.x1),
            y1: r.bottom.min(b.y1),
        };
        (a.x0 < a.x1 && a.y0 < a.y1).then_some(a)
    }

    pub fn union(&self, b: &Area) -> Area {
        Area {
            x0: self.x0.min(b.x0),
            y0: self.y0.min(b.y0),
            x1: self.x1.max(b.x1),
            y1: self.y1.max(b.y1),
        }
    }

    pub fn to_rect(self) -> Rect {
        Rect {
            top: self.y0,
            left: self.x0,
            bottom: self.y1,
            right: self.x1,
        }
    }
}

/// The bounding box of `areas`.
pub(crate) fn bounds(areas: &[Area]) -> Option<Area> {
    let mut it = areas.iter();
    let first = *it.next()?;
    Some(it.fold(first, |a, b| a.union(b)))
}

/// The pixels of `within` that the clip lets through, as non-overlapping rectangles.
pub(crate) fn clip_areas(within: Area, clip: &Clip) -> Result<Vec<Area>, CanvasError> {
    let rects = match clip {
        Clip::None => return Ok(vec![within]),
        Clip::Rects(r) => &r.rects,
    };
    if rects.len() > MAX_CLIP_RECTS {
        return Err(CanvasError::ClipTooComplex(rects.len()));
    }
    let parts: Vec<Area> = rects
        .iter()
        .filter_map(|r| Area::clamp_to(r, &within))
        .collect();
    Ok(disjoint(parts))
}

/// Turns possibly overlapping rectangles into disjoint ones covering the same pixels
/// (horizontal bands, merged intervals per band).
pub(crate) fn disjoint(mut parts: Vec<Area>) -> Vec<Area> {
    if parts.len() <= 1 {
        return parts;
    }
    let mut ys: Vec<i32> = parts.iter().flat_map(|a| [a.y0, a.y1]).collect();
    ys.sort_unstable();
    ys.dedup();
    parts.sort_unstable_by_key(|a| a.x0);
    let mut out = Vec::new();
    for band in ys.windows(2) {
        let (ya, yb) = (band[0], band[1]);
        let mut cur: Option<(i32, i32)> = None;
        for a in parts.iter().filter(|a| a.y0 <= ya && a.y1 >= yb) {
            match &mut cur {
                Some((_, e)) if a.x0 <= *e => *e = (*e).max(a.x1),
                _ => {
                    if let Some((s, e)) = cur {
                        out.push(Area {
                            x0: s,
                            y0: ya,
                            x1: e,
                            y1: yb,
                        });
                    }
                    cur = Some((a.x0, a.x1));
                }
            }
        }
        if let Some((s, e)) = cur {
            out.push(Area {
                x0: s,
                y0: ya,
                x1: e,
                y1: yb,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(x0: i32, y0: i32, x1: i32, y1: i32) -> Area {
        Area { x0, y0, x1, y1 }
    }

    fn count(areas: &[Area], w: i32, h: i32) -> Vec<u8> {
        let mut c = vec![0u8; (w * h) as usize];
        for r in areas {
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    c[(y * w + x) as usize] += 1;
                }
            }
        }
        c
    }

    #[test]
    fn overlapping_rects_become_disjoint() {
        let parts = vec![a(0, 0, 5, 5), a(3, 3, 8, 8), a(1, 1, 2, 2), a(6, 0, 8, 2)];
        let d = disjoint(parts.clone());
        let c = count(&d, 10, 10);
        assert!(c.iter().all(|&v| v <= 1), "no pixel twice");
        let orig = count(&parts, 10, 10);
        for (o, n) in orig.iter().zip(&c) {
            assert_eq!(*o > 0, *n > 0);
        }
    }

    #[test]
    fn inverted_and_huge_rects_clamp() {
        let r = Rect {
            top: i32::MIN,
            left: i32::MIN,
            bottom: i32::MAX,
            right: i32::MAX,
        };
        assert_eq!(Area::clamp(&r, 4, 3), Some(a(0, 0, 4, 3)));
        let inv = Rect {
            top: 3,
            left: 3,
            bottom: 1,
            right: 1,
        };
        assert_eq!(Area::clamp(&inv, 4, 4), None);
    }
}
