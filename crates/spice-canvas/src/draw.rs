//! The draw operations of the display channel.

use std::sync::Arc;

use spice_proto::display::{
    CopyBits, DrawAlphaBlend, DrawComposite, DrawCopy, DrawFill, DrawMask, DrawOpaque, DrawRop3,
    DrawStroke, DrawText, DrawTransparent, ServerMessage,
};
use spice_proto::types::{
    AlphaFlags, Brush, Clip, DisplayBase, Image, ImageBody, ImageScaleMode, MaskFlags, QMask, Rect,
    Ropd,
};

use crate::error::CanvasError;
use crate::image::ImageContext;
use crate::region::{Area, bounds, clip_areas};
use crate::rop::{Rop, RopKind, rop3};
use crate::surface::{Pixmap, Surface, Surfaces};

/// One draw message of the display channel, borrowed from the decoded
/// [`ServerMessage`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum DrawOp<'m, 'a> {
    /// DRAW_FILL.
    Fill(&'m DrawFill<'a>),
    /// DRAW_OPAQUE.
    Opaque(&'m DrawOpaque<'a>),
    /// DRAW_COPY.
    Copy(&'m DrawCopy<'a>),
    /// DRAW_BLEND.
    Blend(&'m DrawCopy<'a>),
    /// DRAW_BLACKNESS.
    Blackness(&'m DrawMask<'a>),
    /// DRAW_WHITENESS.
    Whiteness(&'m DrawMask<'a>),
    /// DRAW_INVERS.
    Invers(&'m DrawMask<'a>),
    /// DRAW_ROP3.
    Rop3(&'m DrawRop3<'a>),
    /// DRAW_STROKE.
    Stroke(&'m DrawStroke<'a>),
    /// DRAW_TEXT.
    Text(&'m DrawText<'a>),
    /// DRAW_TRANSPARENT.
    Transparent(&'m DrawTransparent<'a>),
    /// DRAW_ALPHA_BLEND.
    AlphaBlend(&'m DrawAlphaBlend<'a>),
    /// DRAW_COMPOSITE.
    Composite(&'m DrawComposite<'a>),
    /// COPY_BITS.
    CopyBits(&'m CopyBits),
}

impl<'m, 'a> DrawOp<'m, 'a> {
    /// The draw carried by `msg`, or `None` for a message that does not draw.
    pub fn from_message(msg: &'m ServerMessage<'a>) -> Option<Self> {
        Some(match msg {
            ServerMessage::DrawFill(d) => DrawOp::Fill(d),
            ServerMessage::DrawOpaque(d) => DrawOp::Opaque(d),
            ServerMessage::DrawCopy(d) => DrawOp::Copy(d),
            ServerMessage::DrawBlend(d) => DrawOp::Blend(d),
            ServerMessage::DrawBlackness(d) => DrawOp::Blackness(d),
            ServerMessage::DrawWhiteness(d) => DrawOp::Whiteness(d),
            ServerMessage::DrawInvers(d) => DrawOp::Invers(d),
            ServerMessage::DrawRop3(d) => DrawOp::Rop3(d),
            ServerMessage::DrawStroke(d) => DrawOp::Stroke(d),
            ServerMessage::DrawText(d) => DrawOp::Text(d),
            ServerMessage::DrawTransparent(d) => DrawOp::Transparent(d),
            ServerMessage::DrawAlphaBlend(d) => DrawOp::AlphaBlend(d),
            ServerMessage::DrawComposite(d) => DrawOp::Composite(d),
            ServerMessage::CopyBits(d) => DrawOp::CopyBits(d),
            _ => return None,
        })
    }

    /// Target surface, bounding box and clip.
    pub fn base(&self) -> &'m DisplayBase {
        match *self {
            DrawOp::Fill(d) => &d.base,
            DrawOp::Opaque(d) => &d.base,
            DrawOp::Copy(d) | DrawOp::Blend(d) => &d.base,
            DrawOp::Blackness(d) | DrawOp::Whiteness(d) | DrawOp::Invers(d) => &d.base,
            DrawOp::Rop3(d) => &d.base,
            DrawOp::Stroke(d) => &d.base,
            DrawOp::Text(d) => &d.base,
            DrawOp::Transparent(d) => &d.base,
            DrawOp::AlphaBlend(d) => &d.base,
            DrawOp::Composite(d) => &d.base,
            DrawOp::CopyBits(d) => &d.base,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pixel sources
// ---------------------------------------------------------------------------------------

/// A QMask resolved against a draw: mask pixel for surface pixel `(x, y)` is
/// `(x + dx, y + dy)`; pixels outside the mask image are not drawn.
pub(crate) struct Mask {
    pm: Arc<Pixmap>,
    invers: bool,
    dx: i64,
    dy: i64,
}

impl Mask {
    pub(crate) fn resolve(
        mask: &QMask<'_>,
        bbox: &Rect,
        images: &mut ImageContext,
        surfaces: &Surfaces,
    ) -> Result<Option<Mask>, CanvasError> {
        let Some(img) = &mask.bitmap else {
            return Ok(None);
        };
        let pm = images.decode_mask(img, surfaces)?.pixmap;
        Ok(Some(Mask {
            pm,
            invers: mask.flags.contains(MaskFlags::INVERS),
            dx: i64::from(mask.pos.x) - i64::from(bbox.left),
            dy: i64::from(mask.pos.y) - i64::from(bbox.top),
        }))
    }

    fn row(&self, y: i32, x0: i32, out: &mut [bool]) {
        let my = i64::from(y) + self.dy;
        let (w, h) = (i64::from(self.pm.width()), i64::from(self.pm.height()));
        if my < 0 || my >= h {
            out.fill(false);
            return;
        }
        let row = self.pm.row(my as u32).unwrap_or(&[]);
        for (i, o) in out.iter_mut().enumerate() {
            let mx = i64::from(x0) + i as i64 + self.dx;
            *o = mx >= 0 && mx < w && (((row[mx as usize] & 0x00ff_ffff) != 0) != self.invers);
        }
    }
}

/// How an image's `src_area` is sampled for the destination box.
enum Sample {
    /// Same size: `sx = x + off_x`.
    Direct { off_x: i64, off_y: i64 },
    /// Nearest neighbour: column table from `x_base`, row by formula.
    Nearest { cols: Vec<i64>, x_base: i32 },
    /// Bilinear: 16.16 fixed source coordinates, clamped to the source area.
    Bilinear { cols: Vec<i64>, x_base: i32 },
}

/// An image placed on the destination: `src_area` of `pm` stretched over `bbox`.
pub(crate) struct Placed {
    pm: Arc<Pixmap>,
    /// Source area clamped to the image (x0, y0, x1, y1); may be empty.
    clamp: (i64, i64, i64, i64),
    sy0: i64,
    sh: i64,
    by: i64,
    dh: i64,
    sample: Sample,
    /// Bilinear samples outside the image repeat its edge pixels (stream frames) instead
    /// of reading transparent black (pixman's repeat NONE, for draws).
    pad: bool,
}

impl Placed {
    /// `src_area` of `pm` drawn over `bbox`; `cols` is the range of destination columns
    /// that will be fetched. Areas of different size are scaled per `mode`.
    pub(crate) fn new(
        pm: Arc<Pixmap>,
        src_area: &Rect,
        bbox: &Rect,
        col_range: (i32, i32),
        mode: ImageScaleMode,
    ) -> Placed {
        let sx0 = i64::from(src_area.left);
        let sy0 = i64::from(src_area.top);
        let sw = i64::from(src_area.right) - sx0;
        let sh = i64::from(src_area.bottom) - sy0;
        let bx = i64::from(bbox.left);
        let by = i64::from(bbox.top);
        let dw = i64::from(bbox.right) - bx;
        let dh = i64::from(bbox.bottom) - by;
        // pixman reads the whole image (repeat NONE), not only `src_area`.
        let clamp = (0, 0, i64::from(pm.width()), i64::from(pm.height()));
        let sample = if (sw == dw && sh == dh) || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 {
            Sample::Direct {
                off_x: sx0 - bx,
                off_y: sy0 - by,
            }
        } else if mode == ImageScaleMode::INTERPOLATE {
            let cols = (col_range.0..col_range.1)
                .map(|x| {
                    let t = (i128::from(x) - i128::from(bx)) * 2 + 1;
                    let fx = t * i128::from(sw) * 65536 / (2 * i128::from(dw)) - 32768;
                    (i128::from(sx0) * 65536 + fx) as i64
                })
                .collect();
            Sample::Bilinear {
                cols,
                x_base: col_range.0,
            }
        } else {
            let cols = (col_range.0..col_range.1)
                .map(|x| {
                    let t = (i128::from(x) - i128::from(bx)) * 2 + 1;
                    (i128::from(sx0) + t * i128::from(sw) / (2 * i128::from(dw))) as i64
                })
                .collect();
            Sample::Nearest {
                cols,
                x_base: col_range.0,
            }
        };
        Placed {
            pm,
            clamp,
            sy0,
            sh,
            by,
            dh,
            sample,
            pad: false,
        }
    }

    fn px(&self, x: i64, y: i64) -> u32 {
        let (cx0, cy0, cx1, cy1) = self.clamp;
        let (x, y) = if self.pad && cx0 < cx1 && cy0 < cy1 {
            (x.clamp(cx0, cx1 - 1), y.clamp(cy0, cy1 - 1))
        } else {
            (x, y)
        };
        if x < cx0 || x >= cx1 || y < cy0 || y >= cy1 {
            return 0;
        }
        self.pm.pixels()[y as usize * self.pm.width() as usize + x as usize]
    }

    /// Source pixels for destination row `y`, columns `x0..x0 + out.len()`. Pixels outside
    /// the image read as 0 (transparent black, pixman's repeat NONE).
    pub(crate) fn fetch(&self, y: i32, x0: i32, out: &mut [u32]) {
        let (cx0, cy0, cx1, cy1) = self.clamp;
        match &self.sample {
            Sample::Direct { off_x, off_y } => {
                let sy = i64::from(y) + off_y;
                let sx = i64::from(x0) + off_x;
                if sy < cy0 || sy >= cy1 {
                    out.fill(0);
                    return;
                }
                let n = out.len() as i64;
                let a = cx0.max(sx);
                let b = cx1.min(sx + n);
                if a >= b {
                    out.fill(0);
                    return;
                }
                let w = self.pm.width() as usize;
                let row = &self.pm.pixels()[sy as usize * w..(sy as usize + 1) * w];
                let (da, db) = ((a - sx) as usize, (b - sx) as usize);
                out[..da].fill(0);
                out[da..db].copy_from_slice(&row[a as usize..b as usize]);
                out[db..].fill(0);
            }
            Sample::Nearest { cols, x_base } => {
                let t = (i128::from(y) - i128::from(self.by)) * 2 + 1;
                let sy = (i128::from(self.sy0)
                    + t * i128::from(self.sh) / (2 * i128::from(self.dh)))
                    as i64;
                for (i, o) in out.iter_mut().enumerate() {
                    let sx = cols[(x0 - x_base) as usize + i];
                    *o = self.px(sx, sy);
                }
            }
            Sample::Bilinear { cols, x_base } => {
                // pixman's bilinear filter with repeat NONE: the four neighbours of the
                // sample point (pixels outside the image are transparent black), weights
                // of 7 bits widened to 8, the sum truncated.
                let t = (i128::from(y) - i128::from(self.by)) * 2 + 1;
                let fy = (i128::from(self.sy0) * 65536
                    + t * i128::from(self.sh) * 65536 / (2 * i128::from(self.dh))
                    - 32768)
                    .clamp(i128::from(i64::MIN >> 2), i128::from(i64::MAX >> 2))
                    as i64;
                let y0 = fy >> 16;
                let dy = (((fy >> 9) & 0x7f) << 1) as u32;
                for (i, o) in out.iter_mut().enumerate() {
                    let fx = cols[(x0 - x_base) as usize + i];
                    let xa = fx >> 16;
                    let dx = (((fx >> 9) & 0x7f) << 1) as u32;
                    *o = bilinear(
                        [
                            self.px(xa, y0),
                            self.px(xa + 1, y0),
                            self.px(xa, y0 + 1),
                            self.px(xa + 1, y0 + 1),
                        ],
                        dx,
                        dy,
                    );
                }
            }
        }
    }
}

/// pixman's bilinear interpolation of `[top-left, top-right, bottom-left,
/// bottom-right]` with 8-bit distances `dx`, `dy` (0-255), per channel, truncated.
#[inline]
fn bilinear(p: [u32; 4], dx: u32, dy: u32) -> u32 {
    let w = [
        (256 - dx) * (256 - dy),
        dx * (256 - dy),
        (256 - dx) * dy,
        dx * dy,
    ];
    let mut r = 0;
    for s in [0, 8, 16, 24] {
        let mut acc = 0u32;
        for (px, wt) in p.iter().zip(w) {
            acc += ((px >> s) & 0xff) * wt;
        }
        r |= (acc >> 16) << s;
    }
    r
}

/// A brush resolved for drawing.
pub(crate) enum Paint {
    None,
    Solid(u32),
    Tile { pm: Arc<Pixmap>, ox: i64, oy: i64 },
}

impl Paint {
    pub(crate) fn resolve(
        brush: &Brush<'_>,
        images: &mut ImageContext,
        surfaces: &Surfaces,
    ) -> Result<Paint, CanvasError> {
        Ok(match brush {
            Brush::None => Paint::None,
            Brush::Solid(c) => Paint::Solid(*c),
            Brush::Pattern(p) => Paint::Tile {
                pm: images.decode(&p.pat, surfaces)?.pixmap,
                ox: i64::from(p.pos.x),
                oy: i64::from(p.pos.y),
            },
        })
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Paint::None)
    }

    /// Brush pixels of row `y`, columns `x0..x0 + out.len()` (patterns tile from `pos`).
    pub(crate) fn fetch(&self, y: i32, x0: i32, out: &mut [u32]) {
        match self {
            Paint::None => out.fill(0),
            Paint::Solid(c) => out.fill(*c),
            Paint::Tile { pm, ox, oy } => {
                let (w, h) = (i64::from(pm.width()), i64::from(pm.height()));
                let ty = (i64::from(y) - oy).rem_euclid(h);
                let row = &pm.pixels()[(ty * w) as usize..((ty + 1) * w) as usize];
                let mut tx = (i64::from(x0) - ox).rem_euclid(w) as usize;
                for o in out.iter_mut() {
                    *o = row[tx];
                    tx += 1;
                    if tx == row.len() {
                        tx = 0;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The row driver
// ---------------------------------------------------------------------------------------

/// Calls `f(y, x0, dst_row, mask_row)` for every row of every area; `mask_row` is `None`
/// when there is no mask (every pixel drawn).
pub(crate) fn for_rows(
    surface: &mut Surface,
    areas: &[Area],
    mask: Option<&Mask>,
    mut f: impl FnMut(i32, i32, &mut [u32], Option<&[bool]>),
) {
    let w = surface.width() as usize;
    let px = surface.pixels_mut();
    let mut mrow = Vec::new();
    for a in areas {
        let n = (a.x1 - a.x0) as usize;
        mrow.resize(n, false);
        for y in a.y0..a.y1 {
            let start = y as usize * w + a.x0 as usize;
            let dst = &mut px[start..start + n];
            match mask {
                Some(m) => {
                    m.row(y, a.x0, &mut mrow);
                    f(y, a.x0, dst, Some(&mrow));
                }
                None => f(y, a.x0, dst, None),
            }
        }
    }
}

/// `dst = rop(src, dst)` where the mask allows.
pub(crate) fn combine_rop(dst: &mut [u32], src: &[u32], m: Option<&[bool]>, rop: Rop) {
    match m {
        None if rop.is_copy() => dst.copy_from_slice(src),
        None => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = rop.apply(s, *d);
            }
        }
        Some(m) => {
            for ((d, &s), &on) in dst.iter_mut().zip(src).zip(m) {
                if on {
                    *d = rop.apply(s, *d);
                }
            }
        }
    }
}

/// Premultiplied OVER of `s` (its alpha scaled by `ga`) onto `d`.
#[inline]
pub(crate) fn over(s: u32, d: u32, ga: u32) -> u32 {
    let sa = mul255((s >> 24) & 0xff, ga);
    let inv = 255 - sa;
    let mut r = 0;
    for sh in [0, 8, 16] {
        let c = mul255((s >> sh) & 0xff, ga) + mul255((d >> sh) & 0xff, inv);
        r |= c.min(255) << sh;
    }
    let a = sa + mul255((d >> 24) & 0xff, inv);
    r | (a.min(255) << 24)
}

/// `a * b / 255`, rounded like pixman.
#[inline]
pub(crate) fn mul255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    (t + (t >> 8)) >> 8
}

// ---------------------------------------------------------------------------------------
// draw
// ---------------------------------------------------------------------------------------

/// The pixels a draw may touch on surface `sid`: its box and clip cut to the surface.
fn target_areas(
    surfaces: &Surfaces,
    base: &DisplayBase,
) -> Result<(Vec<Area>, Option<Area>), CanvasError> {
    let s = surfaces.get(base.surface_id)?;
    let Some(bbox) = Area::clamp(&base.bbox, s.width(), s.height()) else {
        return Ok((Vec::new(), None));
    };
    let areas = clip_areas(bbox, &base.clip)?;
    let b = bounds(&areas);
    Ok((areas, b))
}

fn finish(surface: &mut Surface, b: Option<Area>) -> Option<Rect> {
    let b = b?;
    surface.normalize(b.x0 as u32, b.y0 as u32, b.x1 as u32, b.y1 as u32);
    Some(b.to_rect())
}

fn decode_src(
    img: &Option<Image<'_>>,
    images: &mut ImageContext,
    surfaces: &Surfaces,
) -> Result<Option<Arc<Pixmap>>, CanvasError> {
    match img {
        Some(i) => Ok(Some(images.decode(i, surfaces)?.pixmap)),
        None => Ok(None),
    }
}

/// Draws `op` on its target surface (`op.base().surface_id`), decoding its images through
/// `images` (which caches them as their flags ask, even when nothing is visible).
///
/// Returns the bounding rectangle of the pixels that may have changed (box ∩ clip ∩
/// surface), or `None` when nothing could change. Coordinates may be anything: all
/// drawing is clipped to the surface.
pub fn draw(
    surfaces: &mut Surfaces,
    images: &mut ImageContext,
    op: &DrawOp<'_, '_>,
) -> Result<Option<Rect>, CanvasError> {
    let base = op.base();
    let (areas, b) = target_areas(surfaces, base)?;
    match *op {
        DrawOp::Fill(d) => {
            let paint = Paint::resolve(&d.brush, images, surfaces)?;
            let mask = Mask::resolve(&d.mask, &base.bbox, images, surfaces)?;
            let rop = Rop::from_ropd(d.rop_descriptor, Ropd::INVERS_BRUSH, Ropd::INVERS_DEST);
            // A NONE brush is a source of 0 (the reference fills colour 0 through the ROP).
            if rop.is_noop() {
                return Ok(None);
            }
            let s = surfaces.get_mut(base.surface_id)?;
            let mut src = Vec::new();
            for_rows(s, &areas, mask.as_ref(), |y, x0, dst, m| {
                src.resize(dst.len(), 0);
                paint.fetch(y, x0, &mut src);
                combine_rop(dst, &src, m, rop);
            });
            Ok(finish(s, b))
        }
        DrawOp::Copy(d) | DrawOp::Blend(d) => {
            if let Some(r) = copy_decoding_in_place(surfaces, images, d, &areas, b)? {
                return Ok(r);
            }
            let src_pm = decode_src(&d.src_bitmap, images, surfaces)?;
            let mask = Mask::resolve(&d.mask, &base.bbox, images, surfaces)?;
            let rop = Rop::from_ropd(d.rop_descriptor, Ropd::INVERS_SRC, Ropd::INVERS_DEST);
            let (Some(pm), Some(bb)) = (src_pm, b) else {
                return Ok(None);
            };
            if rop.is_noop() {
                return Ok(None);
            }
            let placed = Placed::new(pm, &d.src_area, &base.bbox, (bb.x0, bb.x1), d.scale_mode);
            let s = surfaces.get_mut(base.surface_id)?;
            if rop.is_copy() && mask.is_none() {
                // The common case (every screen update): straight into the surface.
                for_rows(s, &areas, None, |y, x0, dst, _| placed.fetch(y, x0, dst));
                return Ok(finish(s, b));
            }
            let mut src = Vec::new();
            for_rows(s, &areas, mask.as_ref(), |y, x0, dst, m| {
                src.resize(dst.len(), 0);
                placed.fetch(y, x0, &mut src);
                combine_rop(dst, &src, m, rop);
            });
            Ok(finish(s, b))
        }
        DrawOp::Opaque(d) => {
            let src_pm = decode_src(&d.src_bitmap, images, surfaces)?;
            let paint = Paint::resolve(&d.brush, images, surfaces)?;
            let mask = Mask::resolve(&d.mask, &base.bbox, images, surfaces)?;
            // The image is drawn first; the brush is then the source and the image the
            // destination of the ROP (INVERS_BRUSH inverts the brush, INVERS_SRC the image).
            let rop = Rop::from_ropd(d.rop_descriptor, Ropd::INVERS_BRUSH, Ropd::INVERS_SRC);
            let (Some(pm), Some(bb)) = (src_pm, b) else {
                return Ok(None);
            };
            if rop.is_noop() {
                return Ok(None);
            }
            let placed = Placed::new(pm, &d.src_area, &base.bbox, (bb.x0, bb.x1), d.scale_mode);
            let s = surfaces.get_mut(base.surface_id)?;
            let (mut src, mut br) = (Vec::new(), Vec::new());
            for_rows(s, &areas, mask.as_ref(), |y, x0, dst, m| {
                src.resize(dst.len(), 0);
                placed.fetch(y, x0, &mut src);
                // A NONE brush is colour 0 through the ROP, as in the reference.
                br.resize(dst.len(), 0);
                paint.fetch(y, x0, &mut br);
                for (v, &p) in src.iter_mut().zip(&br) {
                    *v = rop.apply(p, *v);
                }
                combine_rop(dst, &src, m, Rop::COPY);
            });
            Ok(finish(s, b))
        }
        DrawOp::Blackness(d) | DrawOp::Whiteness(d) | DrawOp::Invers(d) => {
            let mask = Mask::resolve(&d.mask, &base.bbox, images, surfaces)?;
            let kind = match op {
                DrawOp::Blackness(_) => RopKind::Blackness,
                DrawOp::Whiteness(_) => RopKind::Whiteness,
                _ => RopKind::Invers,
            };
            let rop = Rop { kind, ..Rop::COPY };
            let s = surfaces.get_mut(base.surface_id)?;
            let mut src = Vec::new();
            for_rows(s, &areas, mask.as_ref(), |_, _, dst, m| {
                src.resize(dst.len(), 0);
                combine_rop(dst, &src, m, rop);
            });
            Ok(finish(s, b))
        }
        DrawOp::Rop3(d) => {
            let src_pm = decode_src(&d.src_bitmap, images, surfaces)?;
            let paint = Paint::resolve(&d.brush, images, surfaces)?;
            let mask = Mask::resolve(&d.mask, &base.bbox, images, surfaces)?;
            let Some(bb) = b else { return Ok(None) };
            let placed = src_pm
                .map(|pm| Placed::new(pm, &d.src_area, &base.bbox, (bb.x0, bb.x1), d.scale_mode));
            let code = d.rop3;
            let s = surfaces.get_mut(base.surface_id)?;
            let (mut src, mut br) = (Vec::new(), Vec::new());
            for_rows(s, &areas, mask.as_ref(), |y, x0, dst, m| {
                src.resize(dst.len(), 0);
                br.resize(dst.len(), 0);
                match &placed {
                    Some(p) => p.fetch(y, x0, &mut src),
                    None => src.fill(0),
                }
                paint.fetch(y, x0, &mut br);
                for (i, d) in dst.iter_mut().enumerate() {
                    if m.is_none_or(|m| m[i]) {
                        *d = rop3(code, br[i], src[i], *d);
                    }
                }
            });
            Ok(finish(s, b))
        }
        DrawOp::Transparent(d) => {
            let src_pm = decode_src(&d.src_bitmap, images, surfaces)?;
            let (Some(pm), Some(bb)) = (src_pm, b) else {
                return Ok(None);
            };
            let placed = Placed::new(
                pm,
                &d.src_area,
                &base.bbox,
                (bb.x0, bb.x1),
                ImageScaleMode::NEAREST,
            );
            let key = d.true_color & 0x00ff_ffff;
            let s = surfaces.get_mut(base.surface_id)?;
            let mut src = Vec::new();
            for_rows(s, &areas, None, |y, x0, dst, _| {
                src.resize(dst.len(), 0);
                placed.fetch(y, x0, &mut src);
                for (d, &v) in dst.iter_mut().zip(&src) {
                    if v & 0x00ff_ffff != key {
                        *d = v;
                    }
                }
            });
            Ok(finish(s, b))
        }
        DrawOp::AlphaBlend(d) => {
            let src_pm = match &d.src_bitmap {
                Some(Image {
                    body: ImageBody::Surface(sid),
                    ..
                }) if d.alpha_flags.contains(AlphaFlags::SRC_SURFACE_HAS_ALPHA) => {
                    Some(Arc::new(surfaces.get(*sid)?.to_pixmap_with_alpha()))
                }
                _ => decode_src(&d.src_bitmap, images, surfaces)?,
            };
            let (Some(pm), Some(bb)) = (src_pm, b) else {
                return Ok(None);
            };
            if d.alpha == 0 {
                return Ok(None);
            }
            let src_alpha =
                pm.has_alpha() || d.alpha_flags.contains(AlphaFlags::SRC_SURFACE_HAS_ALPHA);
            let placed = Placed::new(
                pm,
                &d.src_area,
                &base.bbox,
                (bb.x0, bb.x1),
                ImageScaleMode::NEAREST,
            );
            let ga = u32::from(d.alpha);
            let s = surfaces.get_mut(base.surface_id)?;
            let mut src = Vec::new();
            for_rows(s, &areas, None, |y, x0, dst, _| {
                src.resize(dst.len(), 0);
                placed.fetch(y, x0, &mut src);
                for (d, &v) in dst.iter_mut().zip(&src) {
                    let v = if src_alpha { v } else { v | 0xff00_0000 };
                    *d = over(v, *d, ga);
                }
            });
            Ok(finish(s, b))
        }
        DrawOp::CopyBits(d) => {
            let s = surfaces.get_mut(base.surface_id)?;
            copy_bits(s, &areas, &base.bbox, d.src_pos.x, d.src_pos.y);
            Ok(finish(s, b))
        }
        DrawOp::Stroke(d) => crate::stroke::draw_stroke(surfaces, images, d, &areas, b),
        DrawOp::Text(d) => crate::text::draw_text(surfaces, images, d, &areas, b),
        DrawOp::Composite(d) => crate::composite::draw_composite(surfaces, images, d, &areas, b),
    }
}

/// The common screen update: an unscaled, unmasked, unclipped OP_PUT copy of a whole
/// QUIC or GLZ image lying inside the surface, with no cache flag. The image is decoded
/// straight into the surface (no intermediate pixmap). `None` when the draw is not of
/// that kind.
fn copy_decoding_in_place(
    surfaces: &mut Surfaces,
    images: &mut ImageContext,
    d: &DrawCopy<'_>,
    areas: &[Area],
    b: Option<Area>,
) -> Result<Option<Option<Rect>>, CanvasError> {
    let (Some(img), Some(bb)) = (&d.src_bitmap, b) else {
        return Ok(None);
    };
    let whole = Rect {
        top: 0,
        left: 0,
        bottom: img.height as i32,
        right: img.width as i32,
    };
    let rop = Rop::from_ropd(d.rop_descriptor, Ropd::INVERS_SRC, Ropd::INVERS_DEST);
    if !rop.is_copy()
        || d.mask.bitmap.is_some()
        || areas != [bb]
        || bb.to_rect() != d.base.bbox
        || img.width > i32::MAX as u32
        || img.height > i32::MAX as u32
        || d.src_area != whole
        || i64::from(bb.x1 - bb.x0) != i64::from(img.width)
        || i64::from(bb.y1 - bb.y0) != i64::from(img.height)
        || !matches!(
            img.body,
            ImageBody::Quic(_) | ImageBody::GlzRgb(_) | ImageBody::ZlibGlzRgb(_)
        )
    {
        return Ok(None);
    }
    let s = surfaces.get_mut(d.base.surface_id)?;
    let stride = s.width() as usize;
    let start = bb.y0 as usize * stride + bb.x0 as usize;
    if !images.decode_into(img, &mut s.pixels_mut()[start..], stride)? {
        return Ok(None);
    }
    Ok(Some(finish(s, b)))
}

/// COPY_BITS: every destination pixel reads the pixel at the same offset from `src_pos`
/// as it has from the box's top-left corner; all sources are read before any pixel is
/// written (the areas may overlap). Sources outside the surface leave the destination
/// unchanged.
fn copy_bits(s: &mut Surface, areas: &[Area], bbox: &Rect, sx: i32, sy: i32) {
    let dx = i64::from(sx) - i64::from(bbox.left);
    let dy = i64::from(sy) - i64::from(bbox.top);
    let (w, h) = (i64::from(s.width()), i64::from(s.height()));
    let mut saved: Vec<(Area, Vec<u32>)> = Vec::new();
    for a in areas {
        // Destination pixels whose source is inside the surface.
        let src_ok = Area {
            x0: (0 - dx).max(i64::from(a.x0)).min(i64::from(a.x1)) as i32,
            y0: (0 - dy).max(i64::from(a.y0)).min(i64::from(a.y1)) as i32,
            x1: (w - dx).min(i64::from(a.x1)).max(i64::from(a.x0)) as i32,
            y1: (h - dy).min(i64::from(a.y1)).max(i64::from(a.y0)) as i32,
        };
        if src_ok.x0 >= src_ok.x1 || src_ok.y0 >= src_ok.y1 {
            continue;
        }
        let n = (src_ok.x1 - src_ok.x0) as usize;
        let mut buf = Vec::with_capacity(n * (src_ok.y1 - src_ok.y0) as usize);
        for y in src_ok.y0..src_ok.y1 {
            let syy = (i64::from(y) + dy) as usize;
            let sxx = (i64::from(src_ok.x0) + dx) as usize;
            let row = syy * w as usize;
            buf.extend_from_slice(&s.pixels()[row + sxx..row + sxx + n]);
        }
        saved.push((src_ok, buf));
    }
    let wu = w as usize;
    let px = s.pixels_mut();
    for (a, buf) in saved {
        let n = (a.x1 - a.x0) as usize;
        for (i, y) in (a.y0..a.y1).enumerate() {
            let o = y as usize * wu + a.x0 as usize;
            px[o..o + n].copy_from_slice(&buf[i * n..(i + 1) * n]);
        }
    }
}

/// Draws a decoded video frame (STREAM_DATA) onto surface `surface_id`: the frame's
/// `src_width` x `src_height` top-left area (the stream's `src_width` / `src_height`;
/// the encoded frame may be larger) is scaled (bilinear, edge pixels repeated) over
/// `dest`, clipped to `clip`
/// and the surface. Frames of streams without the TOP_DOWN flag are stored bottom row
/// first and are flipped. Returns the changed rectangle.
#[allow(clippy::too_many_arguments)]
pub fn draw_stream_frame(
    surfaces: &mut Surfaces,
    surface_id: u32,
    frame: &Pixmap,
    src_width: u32,
    src_height: u32,
    dest: &Rect,
    clip: &Clip,
    top_down: bool,
) -> Result<Option<Rect>, CanvasError> {
    let base = DisplayBase {
        surface_id,
        bbox: *dest,
        clip: clip.clone(),
    };
    let (areas, b) = target_areas(surfaces, &base)?;
    let Some(bb) = b else { return Ok(None) };
    let sw = src_width.min(frame.width());
    let sh = src_height.min(frame.height());
    let (pm, src_area) = if top_down {
        (
            Arc::new(frame.clone()),
            Rect {
                top: 0,
                left: 0,
                bottom: sh as i32,
                right: sw as i32,
            },
        )
    } else {
        // Bottom-up: the visible rows are the last `sh` rows of the frame, reversed.
        let w = frame.width() as usize;
        let fh = frame.height() as usize;
        let mut px = Vec::with_capacity(w * sh as usize);
        for y in 0..sh as usize {
            let r = fh - 1 - y;
            px.extend_from_slice(&frame.pixels()[r * w..(r + 1) * w]);
        }
        (
            Arc::new(
                Pixmap::from_pixels(frame.width(), sh, frame.has_alpha(), px).expect("w*sh pixels"),
            ),
            Rect {
                top: 0,
                left: 0,
                bottom: sh as i32,
                right: sw as i32,
            },
        )
    };
    let mut placed = Placed::new(
        pm,
        &src_area,
        dest,
        (bb.x0, bb.x1),
        ImageScaleMode::INTERPOLATE,
    );
    placed.pad = true;
    let s = surfaces.get_mut(surface_id)?;
    let mut src = Vec::new();
    for_rows(s, &areas, None, |y, x0, dst, _| {
        src.resize(dst.len(), 0);
        placed.fetch(y, x0, &mut src);
        dst.copy_from_slice(&src);
    });
    Ok(finish(s, b))
}

/// Decodes one MJPEG stream frame (STREAM_DATA payload) to a [`Pixmap`], refusing frames
/// wider than `max_width` or taller than `max_height` before allocating (use the stream's
/// `stream_width` / `stream_height`). Draw it with [`draw_stream_frame`].
pub fn decode_mjpeg_frame(
    data: &[u8],
    max_width: u32,
    max_height: u32,
) -> Result<Pixmap, CanvasError> {
    let limits = spice_codecs::jpeg::JpegLimits {
        max_width,
        max_height,
    };
    let info = spice_codecs::jpeg::read_info(data, &limits)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let mut bytes = vec![0u8; w * h * 4];
    spice_codecs::mjpeg::decode_frame(data, &mut bytes, w * 4, &limits)?;
    Pixmap::from_bgrx(info.width, info.height, false, &bytes).ok_or(
        CanvasError::ImageSizeMismatch {
            width: info.width,
            height: info.height,
            got_width: info.width,
            got_height: info.height,
        },
    )
}
