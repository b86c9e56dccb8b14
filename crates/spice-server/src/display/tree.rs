//! The drawing "tree" in its simpler equivalent: per surface, the list of drawables that are
//! still queued for at least one client. A new opaque drawable that wholly covers an older,
//! unsent one makes the older one pointless: it is taken out of every client's queue and its
//! guest resource is released. Drawables that a later drawable reads (through a surface
//! dependency) are pinned and never dropped.

use std::collections::HashMap;

use spice_qxl::parse::{Brush, Clip, DrawOp, ParsedDrawable, Rect, ReleaseInfoExt};

/// `QXL_EFFECT_OPAQUE`.
pub const QXL_EFFECT_OPAQUE: u8 = 1;
/// `SPICE_ROPD_OP_PUT`.
const ROPD_OP_PUT: u16 = 1 << 3;

/// A rectangle helper: empty when `left >= right` or `top >= bottom`.
pub fn rect_is_empty(r: &Rect) -> bool {
    r.left >= r.right || r.top >= r.bottom
}

/// The intersection of two rectangles (possibly empty).
pub fn rect_intersect(a: &Rect, b: &Rect) -> Rect {
    Rect {
        top: a.top.max(b.top),
        left: a.left.max(b.left),
        bottom: a.bottom.min(b.bottom),
        right: a.right.min(b.right),
    }
}

/// `inner` lies inside `outer` (an empty `inner` always does).
pub fn rect_contains(outer: &Rect, inner: &Rect) -> bool {
    rect_is_empty(inner)
        || (outer.left <= inner.left
            && outer.top <= inner.top
            && outer.right >= inner.right
            && outer.bottom >= inner.bottom)
}

/// `target` minus `cut`: at most four rectangles.
fn rect_subtract(target: &Rect, cut: &Rect) -> Vec<Rect> {
    let i = rect_intersect(target, cut);
    if rect_is_empty(&i) {
        return vec![*target];
    }
    let mut out = Vec::with_capacity(4);
    let t = *target;
    if t.top < i.top {
        out.push(Rect {
            top: t.top,
            left: t.left,
            bottom: i.top,
            right: t.right,
        });
    }
    if i.bottom < t.bottom {
        out.push(Rect {
            top: i.bottom,
            left: t.left,
            bottom: t.bottom,
            right: t.right,
        });
    }
    if t.left < i.left {
        out.push(Rect {
            top: i.top,
            left: t.left,
            bottom: i.bottom,
            right: i.left,
        });
    }
    if i.right < t.right {
        out.push(Rect {
            top: i.top,
            left: i.right,
            bottom: i.bottom,
            right: t.right,
        });
    }
    out
}

/// `target` is wholly covered by the union of `cover`.
pub fn region_covers(cover: &[Rect], target: &Rect) -> bool {
    let mut rest = vec![*target];
    for c in cover {
        rest = rest.iter().flat_map(|r| rect_subtract(r, c)).collect();
        if rest.is_empty() {
            return true;
        }
        // A pathological clip list cannot blow this up: each cut at most quadruples the
        // pieces, bounded below.
        if rest.len() > 4096 {
            return false;
        }
    }
    rest.iter().all(rect_is_empty)
}

/// The area a drawable paints opaquely (every pixel replaced regardless of what was there),
/// as rectangles, or `None` when it is not opaque.
pub fn opaque_cover(d: &ParsedDrawable) -> Option<Vec<Rect>> {
    if d.effect != QXL_EFFECT_OPAQUE || d.self_bitmap {
        return None;
    }
    if d.surface_deps.contains(&(d.surface_id as i32)) {
        return None;
    }
    let opaque_op = match &d.op {
        DrawOp::Fill {
            brush,
            rop_descriptor,
            mask,
        } => {
            matches!(brush, Brush::Solid(_))
                && *rop_descriptor == ROPD_OP_PUT
                && mask.bitmap.is_none()
        }
        DrawOp::Copy(c) => {
            c.rop_descriptor == ROPD_OP_PUT
                && c.mask.bitmap.is_none()
                && !matches!(c.src.kind, spice_qxl::parse::ImageKind::Surface(id) if id == d.surface_id)
        }
        DrawOp::Blackness { mask } | DrawOp::Whiteness { mask } => mask.bitmap.is_none(),
        _ => false,
    };
    if !opaque_op || rect_is_empty(&d.bbox) {
        return None;
    }
    Some(match &d.clip {
        Clip::None => vec![d.bbox],
        Clip::Rects(rs) => rs
            .iter()
            .map(|r| rect_intersect(r, &d.bbox))
            .filter(|r| !rect_is_empty(r))
            .collect(),
    })
}

/// A drawable queued for at least one client.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The guest resource to release.
    pub release: ReleaseInfoExt,
    /// Target surface.
    pub surface_id: u32,
    /// Bounding box (the most it can change).
    pub bbox: Rect,
    /// Client queues holding it.
    pub refs: u32,
    /// A later drawable reads this one's surface: never drop it.
    pub pinned: bool,
}

/// The pending drawables of every surface.
#[derive(Debug, Default)]
pub struct DrawTree {
    items: HashMap<u64, Pending>,
    by_surface: HashMap<u32, Vec<u64>>,
}

impl DrawTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drawables pending.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The pending drawable `seq`.
    pub fn get(&self, seq: u64) -> Option<&Pending> {
        self.items.get(&seq)
    }

    /// Adds drawable `seq` (with `refs` client queues holding it).
    pub fn insert(&mut self, seq: u64, p: Pending) {
        self.by_surface.entry(p.surface_id).or_default().push(seq);
        self.items.insert(seq, p);
    }

    /// Unpinned drawables of `surface_id` that `cover` wholly hides, taken out of the tree.
    pub fn take_hidden(&mut self, surface_id: u32, cover: &[Rect]) -> Vec<(u64, Pending)> {
        let Some(list) = self.by_surface.get_mut(&surface_id) else {
            return Vec::new();
        };
        let mut hidden = Vec::new();
        list.retain(|seq| {
            let Some(p) = self.items.get(seq) else {
                return false;
            };
            if !p.pinned && region_covers(cover, &p.bbox) {
                hidden.push(*seq);
                false
            } else {
                true
            }
        });
        hidden
            .into_iter()
            .filter_map(|s| self.items.remove(&s).map(|p| (s, p)))
            .collect()
    }

    /// Pins every drawable pending on `surface_id` (a later drawable reads that surface).
    pub fn pin_surface(&mut self, surface_id: u32) {
        if let Some(list) = self.by_surface.get(&surface_id) {
            for seq in list {
                if let Some(p) = self.items.get_mut(seq) {
                    p.pinned = true;
                }
            }
        }
    }

    /// One client queue let go of `seq`; returns the release info when no queue holds it
    /// any more (the drawable left the tree).
    pub fn unref(&mut self, seq: u64) -> Option<ReleaseInfoExt> {
        let p = self.items.get_mut(&seq)?;
        p.refs = p.refs.saturating_sub(1);
        if p.refs > 0 {
            return None;
        }
        let p = self.items.remove(&seq)?;
        if let Some(list) = self.by_surface.get_mut(&p.surface_id) {
            list.retain(|s| *s != seq);
            if list.is_empty() {
                self.by_surface.remove(&p.surface_id);
            }
        }
        Some(p.release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(l: i32, t: i32, rr: i32, b: i32) -> Rect {
        Rect {
            top: t,
            left: l,
            bottom: b,
            right: rr,
        }
    }

    #[test]
    fn coverage_by_union() {
        let target = r(0, 0, 10, 10);
        assert!(region_covers(&[r(0, 0, 10, 10)], &target));
        assert!(region_covers(&[r(0, 0, 5, 10), r(5, 0, 10, 10)], &target));
        assert!(!region_covers(&[r(0, 0, 5, 10), r(6, 0, 10, 10)], &target));
        assert!(!region_covers(&[], &target));
        assert!(region_covers(&[], &r(3, 3, 3, 9)));
    }

    #[test]
    fn hidden_pinned_and_unref() {
        let rel = |n| ReleaseInfoExt {
            info_offset: n,
            group_id: 0,
        };
        let mut t = DrawTree::new();
        for (seq, bbox) in [(1, r(0, 0, 4, 4)), (2, r(2, 2, 20, 20)), (3, r(1, 1, 3, 3))] {
            t.insert(
                seq,
                Pending {
                    release: rel(seq),
                    surface_id: 0,
                    bbox,
                    refs: 2,
                    pinned: false,
                },
            );
        }
        // Pinning another surface leaves surface 0's drawables droppable.
        t.pin_surface(1);
        let hidden = t.take_hidden(0, &[r(0, 0, 5, 5)]);
        let seqs: Vec<u64> = hidden.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(t.len(), 1);
        t.pin_surface(0);
        assert!(t.take_hidden(0, &[r(0, 0, 100, 100)]).is_empty());
        assert_eq!(t.unref(2), None);
        assert_eq!(t.unref(2), Some(rel(2)));
        assert!(t.is_empty());
        assert_eq!(t.unref(2), None);
    }
}
