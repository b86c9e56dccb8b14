//! Conversion of parsed QXL commands into spice-proto's display and cursor messages, the way
//! spice-server's QXL parser and display/cursor marshallers map them.
//!
//! # Drawables
//!
//! [`ConvertedDrawable::new`] takes a [`ParsedDrawable`] (by value: its pixel buffers move in,
//! nothing is copied) and converts everything that does not depend on the client: the
//! [`DisplayBase`] (surface id, bounding box, clip rectangles), brushes, masks, raster
//! operation descriptors, scale modes, paths, line attributes and glyph strings. spice-proto's
//! message types borrow their payloads, so the converted drawable owns the bytes and lends
//! them out through [`ConvertedDrawable::message`].
//!
//! Images are the part a server decides per client: compressed (QUIC, LZ, GLZ, LZ4, JPEG) or
//! raw, taken from the client's pixmap cache (`FROM_CACHE`), put into it (`CACHE_ME`), with
//! a cached palette or an inline one. So every image the message refers to is left in an
//! [`ImageSlot`] ([`ConvertedDrawable::images`]), in the order spice-server fills them
//! (source, brush pattern, then mask; for text the foreground then the background brush
//! pattern; for composite the source then the mask) which is also the order their bytes are
//! laid out in the encoded message. A server:
//!
//! 1. looks at each slot ([`ImageSlot::content`]: the guest's image with its id, flags, and
//!    for a bitmap the gathered rows, stride, format, palette and row order; or a request to
//!    render the drawable's own area, see [`SlotContent::SelfBitmap`]);
//! 2. builds the final spice-proto [`Image`] for this client: [`ImageSlot::raw`] (what
//!    spice-server sends with compression off and no cache), [`ImageSlot::raw_with`] (same,
//!    with the caller's descriptor flags and palette caching), [`ImageSlot::encoded`] (a body
//!    the caller compressed, for example `ImageBody::Quic(&buf)`), [`ImageSlot::from_cache`],
//!    or [`ImageSlot::surface`] for a `SURFACE` image (its descriptor carries the surface's
//!    size, which only the server knows);
//! 3. passes the images, one per slot in slot order, to [`ConvertedDrawable::message`] and
//!    encodes the resulting [`display::ServerMessage`].
//!
//! [`ConvertedDrawable::raw_message`] does all three steps with [`ImageSlot::raw`].
//!
//! Facts from spice-server that the caller must apply (they depend on its state, not on the
//! drawable):
//! - descriptor flags on the wire: spice-server starts from `HIGH_BITS_SET` only
//!   ([`ImageSlot::wire_flags`]), adds `CACHE_ME` when the guest asked for caching
//!   ([`ImageSlot::cache_me`]) and the image was added to the client's pixmap cache, and
//!   `CACHE_REPLACE_ME` when a lossy cache entry is being replaced by a lossless image;
//! - a cache hit is sent as `FROM_CACHE` (or `FROM_CACHE_LOSSLESS` when JPEG is enabled and the
//!   cached entry is lossless but the drawable needs it lossless);
//! - `QMask` bitmaps ([`ImageRole::Mask`]) are always sent with compression off (a composite's
//!   mask, [`ImageRole::CompositeMask`], is an ordinary image and is compressed like a source);
//! - a raw bitmap keeps only the `TOP_DOWN` bitmap flag; its palette is either inline
//!   ([`PaletteSource::Inline`], `PAL_CACHE_ME` set when the client's palette cache took it) or
//!   a `PAL_FROM_CACHE` reference to the palette's `unique` id;
//! - `NOP` drawables are never sent ([`ConvertError::Nop`]).
//!
//! # Cursor commands
//!
//! [`ConvertedCursor`] maps `SET` (shape of any cursor type), `MOVE`, `HIDE` and `TRAIL` to
//! the cursor channel's messages; whether the shape is sent whole, cached or taken from the
//! cache is the caller's [`CursorCaching`] decision (spice-server: shapes with a non-zero
//! `unique` are looked up in, or added to, the client's cursor cache).

use spice_proto::cursor::{self, CursorSet};
use spice_proto::display::{
    self, CopyBits, DrawAlphaBlend, DrawComposite, DrawCopy, DrawFill, DrawMask, DrawOpaque,
    DrawRop3, DrawStroke, DrawText, DrawTransparent,
};
use spice_proto::types::{
    self, AlphaFlags, Bitmap, BitmapFlags, BitmapFormat, Brush as PBrush, Clip as PClip, ClipRects,
    CompositeFlags, Cursor, CursorFlags, CursorHeader, CursorType, DisplayBase, Image, ImageBody,
    ImageFlags, ImageScaleMode, LineAttr as PLineAttr, LineFlags, MaskFlags, Palette as PPalette,
    PaletteSource, Path, PathFlags, PathSegment, Pattern, Point as PPoint, Point16 as PPoint16,
    PointFix, QMask as PQMask, Rect as PRect, Ropd, SpiceString, StringFlags, SurfaceFlags,
    SurfaceFormat, Transform,
};
use spice_proto::{ChannelMessage, EncodeError, WriteBuf};
use thiserror::Error;

use crate::abi::{image_flags, string_flags};
use crate::parse::{
    Brush, Clip, CopyOp, CursorOp, CursorShape, DrawOp, ImageKind, LineAttr, ParsedBitmap,
    ParsedCursorCmd, ParsedDrawable, ParsedImage, ParsedString, PathSeg, Point, Point16, QMask,
    Rect, ReleaseInfoExt, SurfaceCreate,
};

/// Why a drawable could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A `QXL_DRAW_NOP` drawable: nothing to send (release it).
    #[error("NOP drawable: nothing to send")]
    Nop,
    /// [`ConvertedDrawable::message`] got another number of images than there are slots.
    #[error("{expected} image slots, {given} images given")]
    ImageCount {
        /// Slots of the drawable.
        expected: usize,
        /// Images passed.
        given: usize,
    },
    /// [`ConvertedDrawable::raw_message`] on a drawable whose source is its own rendered
    /// area: the server must render it and pass the image to [`ConvertedDrawable::message`].
    #[error("the drawable's source is its own area ({0:?}): render it first")]
    NeedsSelfBitmap(Rect),
    /// A string holds more glyphs than a SPICE string can count.
    #[error("string of {0} glyphs")]
    TooManyGlyphs(usize),
}

/// What an image slot is used for in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageRole {
    /// The source bitmap (`src_bitmap`, or a composite's `src`).
    Source,
    /// The pattern of the (foreground) brush.
    BrushPattern,
    /// The pattern of a text's background brush.
    BackBrushPattern,
    /// A `QMask` bitmap: spice-server always sends these uncompressed.
    Mask,
    /// The mask image of a composite (an ordinary image, compressed like a source).
    CompositeMask,
}

/// Where a slot's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotContent {
    /// An image the guest wrote (bitmap, QUIC or surface).
    Guest(ParsedImage),
    /// The drawable asked for its own destination area (`self_bitmap`) and has no source of
    /// its own: the server renders `area` of the target surface and sends that image
    /// (spice-server's `self_bitmap_image`).
    SelfBitmap {
        /// Area of the target surface to render.
        area: Rect,
    },
}

/// One image of a converted drawable, to be turned into the final spice-proto [`Image`] per
/// client (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSlot {
    role: ImageRole,
    content: SlotContent,
}

/// How a cursor shape is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CursorCaching {
    /// Whole, not cached.
    #[default]
    Uncached,
    /// Whole, and the client caches it under its `unique` id (`CACHE_ME`).
    CacheMe,
    /// Header only: the client takes the shape from its cache (`FROM_CACHE`).
    FromCache,
}

/// Palette flags and source for a raw bitmap sent with an inline palette (or none).
fn inline_palette(b: &ParsedBitmap) -> PaletteSource {
    match &b.palette {
        Some(p) => PaletteSource::Inline(PPalette {
            unique: p.unique,
            ents: p.entries.clone(),
        }),
        None => PaletteSource::None,
    }
}

/// The `TOP_DOWN` bit of a QXL bitmap as a SPICE bitmap flag (the only one spice-server keeps).
fn bitmap_flags_of(b: &ParsedBitmap) -> BitmapFlags {
    if b.top_down() {
        BitmapFlags::TOP_DOWN
    } else {
        BitmapFlags::empty()
    }
}

impl ImageSlot {
    /// What the image is used for.
    pub fn role(&self) -> ImageRole {
        self.role
    }

    /// Where the image comes from.
    pub fn content(&self) -> &SlotContent {
        &self.content
    }

    /// The guest's image, unless the slot asks for the drawable's own area.
    pub fn guest_image(&self) -> Option<&ParsedImage> {
        match &self.content {
            SlotContent::Guest(i) => Some(i),
            SlotContent::SelfBitmap { .. } => None,
        }
    }

    /// The guest's bitmap (rows gathered contiguously, `stride` bytes each, `height` rows,
    /// top row first iff [`ParsedBitmap::top_down`]), if the image is one.
    pub fn bitmap(&self) -> Option<&ParsedBitmap> {
        match self.guest_image()?.kind {
            ImageKind::Bitmap(ref b) => Some(b),
            _ => None,
        }
    }

    /// The surface a `SURFACE` image refers to.
    pub fn surface_id(&self) -> Option<u32> {
        match self.guest_image()?.kind {
            ImageKind::Surface(id) => Some(id),
            _ => None,
        }
    }

    /// The guest's cache id (`descriptor.id`; 0 for a self bitmap).
    pub fn id(&self) -> u64 {
        self.guest_image().map_or(0, |i| i.id)
    }

    /// The guest asked for the image to be cached (`QXL_IMAGE_CACHE`, spice-server's
    /// `SPICE_IMAGE_FLAGS_CACHE_ME` after parsing).
    pub fn cache_me(&self) -> bool {
        self.guest_image()
            .is_some_and(|i| i.flags & image_flags::CACHE != 0)
    }

    /// The guest's `QXL_IMAGE_HIGH_BITS_SET` (the alpha byte of every pixel is 0xff).
    pub fn high_bits_set(&self) -> bool {
        self.guest_image()
            .is_some_and(|i| i.flags & image_flags::HIGH_BITS_SET != 0)
    }

    /// The descriptor flags as spice-server's parser translates the QXL ones:
    /// `QXL_IMAGE_CACHE` to `CACHE_ME`, `QXL_IMAGE_HIGH_BITS_SET` to `HIGH_BITS_SET`, other
    /// bits dropped.
    pub fn parsed_flags(&self) -> ImageFlags {
        let mut f = self.wire_flags();
        if self.cache_me() {
            f |= ImageFlags::CACHE_ME;
        }
        f
    }

    /// The descriptor flags spice-server starts from when it sends the image: only
    /// `HIGH_BITS_SET`. The caller adds `CACHE_ME` / `CACHE_REPLACE_ME` as its pixmap cache
    /// decides.
    pub fn wire_flags(&self) -> ImageFlags {
        if self.high_bits_set() {
            ImageFlags::HIGH_BITS_SET
        } else {
            ImageFlags::empty()
        }
    }

    /// The image as spice-server sends it with compression off and no pixmap or palette cache:
    /// a raw `BITMAP` (only the `TOP_DOWN` bitmap flag, palette inline), the guest's `QUIC`
    /// data as is, or a `SURFACE` reference whose descriptor keeps the guest's width and
    /// height (use [`ImageSlot::surface`] to give the surface's real size). `None` for a
    /// [`SlotContent::SelfBitmap`] slot.
    pub fn raw(&self) -> Option<Image<'_>> {
        self.raw_with(self.wire_flags(), None)
    }

    /// Like [`ImageSlot::raw`], with the caller's descriptor `flags` and, for a bitmap with a
    /// palette, the caller's palette decision: `Some((source, flags))` replaces the inline
    /// palette by `source` and ORs `flags` (`PAL_CACHE_ME` or `PAL_FROM_CACHE`, which must
    /// agree with `source`) into the bitmap flags.
    pub fn raw_with(
        &self,
        flags: ImageFlags,
        palette: Option<(PaletteSource, BitmapFlags)>,
    ) -> Option<Image<'_>> {
        let img = self.guest_image()?;
        let body = match &img.kind {
            ImageKind::Bitmap(b) => {
                let (palette, pal_flags) = match palette {
                    Some((src, f)) if b.palette.is_some() => (src, f),
                    _ => (inline_palette(b), BitmapFlags::empty()),
                };
                ImageBody::Bitmap(Bitmap {
                    format: BitmapFormat(b.format),
                    flags: bitmap_flags_of(b) | pal_flags,
                    x: b.width,
                    y: b.height,
                    stride: b.stride,
                    palette,
                    data: &b.data,
                })
            }
            ImageKind::Quic(d) => ImageBody::Quic(d),
            ImageKind::Surface(id) => ImageBody::Surface(*id),
        };
        let flags = if matches!(img.kind, ImageKind::Surface(_)) {
            ImageFlags::empty()
        } else {
            flags
        };
        Some(Image {
            id: img.id,
            flags,
            width: img.width,
            height: img.height,
            body,
        })
    }

    /// An image with this slot's id and size and the caller's flags and (encoded) body, for
    /// example `slot.encoded(flags, ImageBody::LzRgb(&lz_bytes))`. For a self-bitmap slot the
    /// id is 0 and the size is the area's.
    pub fn encoded<'b>(&self, flags: ImageFlags, body: ImageBody<'b>) -> Image<'b> {
        let (id, width, height) = match &self.content {
            SlotContent::Guest(i) => (i.id, i.width, i.height),
            SlotContent::SelfBitmap { area } => (
                0,
                area.right.saturating_sub(area.left).max(0) as u32,
                area.bottom.saturating_sub(area.top).max(0) as u32,
            ),
        };
        Image {
            id,
            flags,
            width,
            height,
            body,
        }
    }

    /// A reference to the client's pixmap cache entry `id()`: `FROM_CACHE`, or
    /// `FROM_CACHE_LOSSLESS` when `lossless`; descriptor flags `HIGH_BITS_SET` as the guest
    /// set it.
    pub fn from_cache(&self, lossless: bool) -> Image<'static> {
        let body = if lossless {
            ImageBody::FromCacheLossless
        } else {
            ImageBody::FromCache
        };
        self.encoded(self.wire_flags(), body)
    }

    /// The `SURFACE` image for a surface of `width` x `height` (spice-server puts the
    /// surface's size in the descriptor and no flags); `None` unless the slot is a surface.
    pub fn surface(&self, width: u32, height: u32) -> Option<Image<'static>> {
        let id = self.surface_id()?;
        Some(Image {
            id: self.id(),
            flags: ImageFlags::empty(),
            width,
            height,
            body: ImageBody::Surface(id),
        })
    }
}

/// A brush whose pattern image lives in a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BrushT {
    None,
    Solid(u32),
    Pattern { slot: usize, pos: PPoint },
}

/// A mask whose bitmap lives in a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MaskT {
    flags: MaskFlags,
    pos: PPoint,
    slot: Option<usize>,
}

/// Glyphs owned, lent to a [`SpiceString`] per message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedString {
    flags: StringFlags,
    glyphs: Vec<crate::parse::RasterGlyph>,
}

/// The draw operation with everything converted but the images.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Fill {
        brush: BrushT,
        rop: Ropd,
        mask: MaskT,
    },
    Opaque {
        src: usize,
        src_area: PRect,
        brush: BrushT,
        rop: Ropd,
        scale: ImageScaleMode,
        mask: MaskT,
    },
    Copy {
        blend: bool,
        src: usize,
        src_area: PRect,
        rop: Ropd,
        scale: ImageScaleMode,
        mask: MaskT,
    },
    CopyBits {
        src_pos: PPoint,
    },
    Blackness(MaskT),
    Whiteness(MaskT),
    Invers(MaskT),
    Rop3 {
        src: Option<usize>,
        src_area: PRect,
        brush: BrushT,
        rop3: u8,
        scale: ImageScaleMode,
        mask: MaskT,
    },
    Stroke {
        path: Path,
        attr: PLineAttr,
        brush: BrushT,
        fore_mode: u16,
        back_mode: u16,
    },
    Text {
        string: OwnedString,
        back_area: PRect,
        fore_brush: BrushT,
        back_brush: BrushT,
        fore_mode: u16,
        back_mode: u16,
    },
    Transparent {
        src: usize,
        src_area: PRect,
        src_color: u32,
        true_color: u32,
    },
    AlphaBlend {
        flags: AlphaFlags,
        alpha: u8,
        src: usize,
        src_area: PRect,
    },
    Composite {
        flags: CompositeFlags,
        src: usize,
        mask: Option<usize>,
        src_transform: Option<Transform>,
        mask_transform: Option<Transform>,
        src_origin: PPoint16,
        mask_origin: PPoint16,
    },
}

/// A QXL rectangle as spice-proto's.
pub fn rect(r: Rect) -> PRect {
    PRect {
        top: r.top,
        left: r.left,
        bottom: r.bottom,
        right: r.right,
    }
}

fn point(p: Point) -> PPoint {
    PPoint { x: p.x, y: p.y }
}

fn point16(p: Point16) -> PPoint16 {
    PPoint16 { x: p.x, y: p.y }
}

/// A QXL clip as spice-proto's.
pub fn clip(c: &Clip) -> PClip {
    match c {
        Clip::None => PClip::None,
        Clip::Rects(rs) => PClip::Rects(ClipRects {
            rects: rs.iter().copied().map(rect).collect(),
        }),
    }
}

fn transform(t: [u32; 6]) -> Transform {
    Transform {
        t00: t[0],
        t01: t[1],
        t02: t[2],
        t10: t[3],
        t11: t[4],
        t12: t[5],
    }
}

/// Paths: segment flags are a `u8` on the wire (spice-server truncates the guest's `u32`).
fn path(segs: Vec<PathSeg>) -> Path {
    Path {
        segments: segs
            .into_iter()
            .map(|s| PathSegment {
                flags: PathFlags::from_bits_retain(s.flags as u8),
                points: s
                    .points
                    .into_iter()
                    .map(|p| PointFix { x: p.x, y: p.y })
                    .collect(),
            })
            .collect(),
    }
}

/// Line attributes: only the flags and the dash pattern travel (spice.proto's `LineAttr`);
/// an unstyled line has neither, an empty pattern is sent as a NULL pointer.
fn line_attr(a: LineAttr) -> PLineAttr {
    let flags = LineFlags::from_bits_retain(a.flags);
    if !flags.contains(LineFlags::STYLED) {
        return PLineAttr {
            flags,
            style_nseg: 0,
            style: None,
        };
    }
    // The parser read `style_nseg` (a u8) values, so the length fits.
    let style_nseg = u8::try_from(a.style.len()).unwrap_or(u8::MAX);
    PLineAttr {
        flags,
        style_nseg,
        style: (!a.style.is_empty()).then_some(a.style),
    }
}

/// String flags: the guest's are a `u16`; spice-server passes them on and the wire has a
/// `u8`. spice-proto (like spice-gtk's parser, which takes the first depth bit found) needs a
/// single depth bit, so the depth the parser used (A1, else A4, else A8) and `TOP_DOWN` are
/// kept and nothing else.
fn string(s: ParsedString) -> Result<OwnedString, ConvertError> {
    if s.glyphs.len() > usize::from(u16::MAX) {
        return Err(ConvertError::TooManyGlyphs(s.glyphs.len()));
    }
    let depth = if s.flags & string_flags::RASTER_A1 != 0 {
        StringFlags::RASTER_A1
    } else if s.flags & string_flags::RASTER_A4 != 0 {
        StringFlags::RASTER_A4
    } else {
        StringFlags::RASTER_A8
    };
    let mut flags = depth;
    if s.flags & string_flags::RASTER_TOP_DOWN != 0 {
        flags |= StringFlags::RASTER_TOP_DOWN;
    }
    Ok(OwnedString {
        flags,
        glyphs: s.glyphs,
    })
}

/// Builds the op, moving images into slots.
struct Slots(Vec<ImageSlot>);

impl Slots {
    fn add(&mut self, role: ImageRole, img: ParsedImage) -> usize {
        self.0.push(ImageSlot {
            role,
            content: SlotContent::Guest(img),
        });
        self.0.len() - 1
    }

    fn brush(&mut self, b: Brush, role: ImageRole) -> BrushT {
        match b {
            Brush::None => BrushT::None,
            Brush::Solid(c) => BrushT::Solid(c),
            Brush::Pattern { image, pos } => BrushT::Pattern {
                slot: self.add(role, *image),
                pos: point(pos),
            },
        }
    }

    fn mask(&mut self, m: QMask) -> MaskT {
        match m.bitmap {
            Some(img) => MaskT {
                flags: MaskFlags::from_bits_retain(m.flags),
                pos: point(m.pos),
                slot: Some(self.add(ImageRole::Mask, *img)),
            },
            // spice-server zeroes flags and position of a mask without bitmap.
            None => MaskT {
                flags: MaskFlags::empty(),
                pos: PPoint::default(),
                slot: None,
            },
        }
    }

    fn copy(&mut self, c: CopyOp, blend: bool) -> Op {
        let src = self.add(ImageRole::Source, *c.src);
        let mask = self.mask(c.mask);
        Op::Copy {
            blend,
            src,
            src_area: rect(c.src_area),
            rop: Ropd::from_bits_retain(c.rop_descriptor),
            scale: ImageScaleMode(c.scale_mode),
            mask,
        }
    }
}

/// A drawable converted for sending (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedDrawable {
    /// Where to release the guest's resource.
    pub release: ReleaseInfoExt,
    /// Target surface, bounding box and clip.
    pub base: DisplayBase,
    /// `QXL_EFFECT_*` (for the drawing tree: opaque, blend, ...).
    pub effect: u8,
    /// The area the guest asked to be rendered and sent as the source (`self_bitmap`).
    pub self_bitmap: Option<Rect>,
    /// The guest's multimedia time of the drawable (for streams).
    pub mm_time: u32,
    /// Surfaces the drawable reads (-1: none) and the areas read.
    pub surface_deps: [(i32, PRect); 3],
    op: Op,
    slots: Vec<ImageSlot>,
}

impl ConvertedDrawable {
    /// Convert a parsed drawable. Fails only for `NOP` drawables (and strings a SPICE message
    /// cannot count, which the parser already excludes).
    pub fn new(d: ParsedDrawable) -> Result<Self, ConvertError> {
        let mut s = Slots(Vec::new());
        let self_bitmap = d.self_bitmap.then_some(d.self_bitmap_area);
        let op = match d.op {
            DrawOp::Nop => return Err(ConvertError::Nop),
            DrawOp::Fill {
                brush,
                rop_descriptor,
                mask,
            } => {
                let brush = s.brush(brush, ImageRole::BrushPattern);
                Op::Fill {
                    brush,
                    rop: Ropd::from_bits_retain(rop_descriptor),
                    mask: s.mask(mask),
                }
            }
            DrawOp::Opaque {
                src,
                src_area,
                brush,
                rop_descriptor,
                scale_mode,
                mask,
            } => {
                let src = s.add(ImageRole::Source, *src);
                let brush = s.brush(brush, ImageRole::BrushPattern);
                Op::Opaque {
                    src,
                    src_area: rect(src_area),
                    brush,
                    rop: Ropd::from_bits_retain(rop_descriptor),
                    scale: ImageScaleMode(scale_mode),
                    mask: s.mask(mask),
                }
            }
            DrawOp::Copy(c) => s.copy(c, false),
            DrawOp::Blend(c) => s.copy(c, true),
            DrawOp::CopyBits { src_pos } => Op::CopyBits {
                src_pos: point(src_pos),
            },
            DrawOp::Blackness { mask } => Op::Blackness(s.mask(mask)),
            DrawOp::Whiteness { mask } => Op::Whiteness(s.mask(mask)),
            DrawOp::Invers { mask } => Op::Invers(s.mask(mask)),
            DrawOp::Rop3 {
                src,
                src_area,
                brush,
                rop3,
                scale_mode,
                mask,
            } => {
                let src = match (src, self_bitmap) {
                    (Some(img), _) => Some(s.add(ImageRole::Source, *img)),
                    (None, Some(area)) => {
                        s.0.push(ImageSlot {
                            role: ImageRole::Source,
                            content: SlotContent::SelfBitmap { area },
                        });
                        Some(s.0.len() - 1)
                    }
                    (None, None) => None,
                };
                let brush = s.brush(brush, ImageRole::BrushPattern);
                Op::Rop3 {
                    src,
                    src_area: rect(src_area),
                    brush,
                    rop3,
                    scale: ImageScaleMode(scale_mode),
                    mask: s.mask(mask),
                }
            }
            DrawOp::Stroke {
                path: p,
                attr,
                brush,
                fore_mode,
                back_mode,
            } => Op::Stroke {
                path: path(p),
                attr: line_attr(attr),
                brush: s.brush(brush, ImageRole::BrushPattern),
                fore_mode,
                back_mode,
            },
            DrawOp::Text {
                string: st,
                back_area,
                fore_brush,
                back_brush,
                fore_mode,
                back_mode,
            } => {
                let fore_brush = s.brush(fore_brush, ImageRole::BrushPattern);
                let back_brush = s.brush(back_brush, ImageRole::BackBrushPattern);
                Op::Text {
                    string: string(st)?,
                    back_area: rect(back_area),
                    fore_brush,
                    back_brush,
                    fore_mode,
                    back_mode,
                }
            }
            DrawOp::Transparent {
                src,
                src_area,
                src_color,
                true_color,
            } => Op::Transparent {
                src: s.add(ImageRole::Source, *src),
                src_area: rect(src_area),
                src_color,
                true_color,
            },
            // The wire's alpha flags are a u8 (spice-server truncates the guest's u16).
            DrawOp::AlphaBlend {
                alpha_flags,
                alpha,
                src,
                src_area,
            } => Op::AlphaBlend {
                flags: AlphaFlags::from_bits_retain(alpha_flags as u8),
                alpha,
                src: s.add(ImageRole::Source, *src),
                src_area: rect(src_area),
            },
            DrawOp::Composite {
                flags,
                src,
                src_transform,
                mask,
                mask_transform,
                src_origin,
                mask_origin,
            } => {
                // spice-server ORs the HAS_* bits in for what is present; stray guest bits
                // would make the message claim a transform it does not carry, so they are
                // cleared first.
                let presence = CompositeFlags::HAS_MASK
                    | CompositeFlags::HAS_SRC_TRANSFORM
                    | CompositeFlags::HAS_MASK_TRANSFORM;
                let mut f = CompositeFlags::from_bits_retain(flags) - presence;
                let src = s.add(ImageRole::Source, *src);
                if src_transform.is_some() {
                    f |= CompositeFlags::HAS_SRC_TRANSFORM;
                }
                let (mask, mask_transform) = match mask {
                    Some(m) => {
                        f |= CompositeFlags::HAS_MASK;
                        if mask_transform.is_some() {
                            f |= CompositeFlags::HAS_MASK_TRANSFORM;
                        }
                        (
                            Some(s.add(ImageRole::CompositeMask, *m)),
                            mask_transform.map(transform),
                        )
                    }
                    None => (None, None),
                };
                Op::Composite {
                    flags: f,
                    src,
                    mask,
                    src_transform: src_transform.map(transform),
                    mask_transform,
                    src_origin: point16(src_origin),
                    mask_origin: point16(mask_origin),
                }
            }
        };
        let deps = std::array::from_fn(|i| (d.surface_deps[i], rect(d.surfaces_rects[i])));
        Ok(ConvertedDrawable {
            release: d.release,
            base: DisplayBase {
                surface_id: d.surface_id,
                bbox: rect(d.bbox),
                clip: clip(&d.clip),
            },
            effect: d.effect,
            self_bitmap,
            mm_time: d.mm_time,
            surface_deps: deps,
            op,
            slots: s.0,
        })
    }

    /// The images the message refers to, in the order [`ConvertedDrawable::message`] takes
    /// them (and their bytes follow in the encoded message).
    pub fn images(&self) -> &[ImageSlot] {
        &self.slots
    }

    /// Mutable access to the slots, to take a large bitmap's buffer out or to replace it by
    /// an already converted one (the slot's role cannot change).
    pub fn images_mut(&mut self) -> impl Iterator<Item = &mut SlotContent> {
        self.slots.iter_mut().map(|s| &mut s.content)
    }

    /// The display message number this drawable becomes (`display::msg::DRAW_*`,
    /// `COPY_BITS`).
    pub fn msg_type(&self) -> u16 {
        use display::msg;
        match &self.op {
            Op::Fill { .. } => msg::DRAW_FILL,
            Op::Opaque { .. } => msg::DRAW_OPAQUE,
            Op::Copy { blend: false, .. } => msg::DRAW_COPY,
            Op::Copy { blend: true, .. } => msg::DRAW_BLEND,
            Op::CopyBits { .. } => msg::COPY_BITS,
            Op::Blackness(_) => msg::DRAW_BLACKNESS,
            Op::Whiteness(_) => msg::DRAW_WHITENESS,
            Op::Invers(_) => msg::DRAW_INVERS,
            Op::Rop3 { .. } => msg::DRAW_ROP3,
            Op::Stroke { .. } => msg::DRAW_STROKE,
            Op::Text { .. } => msg::DRAW_TEXT,
            Op::Transparent { .. } => msg::DRAW_TRANSPARENT,
            Op::AlphaBlend { .. } => msg::DRAW_ALPHA_BLEND,
            Op::Composite { .. } => msg::DRAW_COMPOSITE,
        }
    }

    /// The source area and source slot of ops that copy an image (copy, blend, opaque,
    /// transparent, alpha blend, rop3 with a source): what a video-stream detector looks at.
    pub fn source(&self) -> Option<(usize, PRect)> {
        match &self.op {
            Op::Copy { src, src_area, .. }
            | Op::Opaque { src, src_area, .. }
            | Op::Transparent { src, src_area, .. }
            | Op::AlphaBlend { src, src_area, .. } => Some((*src, *src_area)),
            Op::Rop3 {
                src: Some(src),
                src_area,
                ..
            } => Some((*src, *src_area)),
            _ => None,
        }
    }

    /// Whether spice-server's stream detector would consider this drawable (apart from its
    /// streaming-video setting and, for `filter`, the minimum size of 96x96 pixels): an
    /// opaque `OP_PUT` copy of a `BITMAP` onto the primary surface (`surface_id` 0).
    pub fn stream_candidate(&self) -> bool {
        const QXL_EFFECT_OPAQUE: u8 = 1;
        match &self.op {
            Op::Copy {
                blend: false,
                src,
                rop,
                ..
            } => {
                self.base.surface_id == 0
                    && self.effect == QXL_EFFECT_OPAQUE
                    && *rop == Ropd::OP_PUT
                    && self.slots[*src].bitmap().is_some()
            }
            _ => false,
        }
    }

    /// The display message, with `images[i]` as the image of slot `i` (see
    /// [`ConvertedDrawable::images`]). The message borrows from `self` (glyphs) and from the
    /// images' payloads.
    pub fn message<'s>(
        &'s self,
        images: Vec<Image<'s>>,
    ) -> Result<display::ServerMessage<'s>, ConvertError> {
        if images.len() != self.slots.len() {
            return Err(ConvertError::ImageCount {
                expected: self.slots.len(),
                given: images.len(),
            });
        }
        let mut imgs: Vec<Option<Image<'s>>> = images.into_iter().map(Some).collect();
        let mut take = |i: usize| imgs.get_mut(i).and_then(Option::take);
        let brush = |b: &BrushT, take: &mut dyn FnMut(usize) -> Option<Image<'s>>| match b {
            BrushT::None => PBrush::None,
            BrushT::Solid(c) => PBrush::Solid(*c),
            BrushT::Pattern { slot, pos } => match take(*slot) {
                Some(pat) => PBrush::Pattern(Pattern { pat, pos: *pos }),
                None => PBrush::None,
            },
        };
        let mask = |m: &MaskT, take: &mut dyn FnMut(usize) -> Option<Image<'s>>| PQMask {
            flags: m.flags,
            pos: m.pos,
            bitmap: m.slot.and_then(&mut *take),
        };
        let base = self.base.clone();
        use display::ServerMessage as M;
        Ok(match &self.op {
            Op::Fill {
                brush: b,
                rop,
                mask: m,
            } => M::DrawFill(DrawFill {
                base,
                brush: brush(b, &mut take),
                rop_descriptor: *rop,
                mask: mask(m, &mut take),
            }),
            Op::Opaque {
                src,
                src_area,
                brush: b,
                rop,
                scale,
                mask: m,
            } => {
                let src_bitmap = take(*src);
                M::DrawOpaque(DrawOpaque {
                    base,
                    src_bitmap,
                    src_area: *src_area,
                    brush: brush(b, &mut take),
                    rop_descriptor: *rop,
                    scale_mode: *scale,
                    mask: mask(m, &mut take),
                })
            }
            Op::Copy {
                blend,
                src,
                src_area,
                rop,
                scale,
                mask: m,
            } => {
                let c = DrawCopy {
                    base,
                    src_bitmap: take(*src),
                    src_area: *src_area,
                    rop_descriptor: *rop,
                    scale_mode: *scale,
                    mask: mask(m, &mut take),
                };
                if *blend {
                    M::DrawBlend(c)
                } else {
                    M::DrawCopy(c)
                }
            }
            Op::CopyBits { src_pos } => M::CopyBits(CopyBits {
                base,
                src_pos: *src_pos,
            }),
            Op::Blackness(m) => M::DrawBlackness(DrawMask {
                base,
                mask: mask(m, &mut take),
            }),
            Op::Whiteness(m) => M::DrawWhiteness(DrawMask {
                base,
                mask: mask(m, &mut take),
            }),
            Op::Invers(m) => M::DrawInvers(DrawMask {
                base,
                mask: mask(m, &mut take),
            }),
            Op::Rop3 {
                src,
                src_area,
                brush: b,
                rop3,
                scale,
                mask: m,
            } => {
                let src_bitmap = src.and_then(&mut take);
                M::DrawRop3(DrawRop3 {
                    base,
                    src_bitmap,
                    src_area: *src_area,
                    brush: brush(b, &mut take),
                    rop3: *rop3,
                    scale_mode: *scale,
                    mask: mask(m, &mut take),
                })
            }
            Op::Stroke {
                path,
                attr,
                brush: b,
                fore_mode,
                back_mode,
            } => M::DrawStroke(DrawStroke {
                base,
                path: path.clone(),
                attr: attr.clone(),
                brush: brush(b, &mut take),
                fore_mode: *fore_mode,
                back_mode: *back_mode,
            }),
            Op::Text {
                string,
                back_area,
                fore_brush,
                back_brush,
                fore_mode,
                back_mode,
            } => {
                let fore_brush = brush(fore_brush, &mut take);
                let back_brush = brush(back_brush, &mut take);
                M::DrawText(DrawText {
                    base,
                    text: SpiceString {
                        flags: string.flags,
                        glyphs: string
                            .glyphs
                            .iter()
                            .map(|g| types::RasterGlyph {
                                render_pos: point(g.render_pos),
                                glyph_origin: point(g.glyph_origin),
                                width: g.width,
                                height: g.height,
                                data: &g.data,
                            })
                            .collect(),
                    },
                    back_area: *back_area,
                    fore_brush,
                    back_brush,
                    fore_mode: *fore_mode,
                    back_mode: *back_mode,
                })
            }
            Op::Transparent {
                src,
                src_area,
                src_color,
                true_color,
            } => M::DrawTransparent(DrawTransparent {
                base,
                src_bitmap: take(*src),
                src_area: *src_area,
                src_color: *src_color,
                true_color: *true_color,
            }),
            Op::AlphaBlend {
                flags,
                alpha,
                src,
                src_area,
            } => M::DrawAlphaBlend(DrawAlphaBlend {
                base,
                alpha_flags: *flags,
                alpha: *alpha,
                src_bitmap: take(*src),
                src_area: *src_area,
            }),
            Op::Composite {
                flags,
                src,
                mask: m,
                src_transform,
                mask_transform,
                src_origin,
                mask_origin,
            } => {
                let src_bitmap = take(*src);
                let mask_bitmap = m.and_then(&mut take);
                M::DrawComposite(DrawComposite {
                    base,
                    flags: *flags,
                    src_bitmap,
                    mask_bitmap,
                    src_transform: *src_transform,
                    mask_transform: *mask_transform,
                    src_origin: *src_origin,
                    mask_origin: *mask_origin,
                })
            }
        })
    }

    /// The message with every image as [`ImageSlot::raw`] gives it (what spice-server sends
    /// with image compression off and empty caches; `SURFACE` images keep the guest's
    /// descriptor size).
    pub fn raw_message(&self) -> Result<display::ServerMessage<'_>, ConvertError> {
        let images = self
            .slots
            .iter()
            .map(|s| match &s.content {
                SlotContent::SelfBitmap { area } => Err(ConvertError::NeedsSelfBitmap(*area)),
                SlotContent::Guest(_) => s
                    .raw()
                    .ok_or(ConvertError::NeedsSelfBitmap(Rect::default())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.message(images)
    }
}

impl TryFrom<ParsedDrawable> for ConvertedDrawable {
    type Error = ConvertError;
    fn try_from(d: ParsedDrawable) -> Result<Self, ConvertError> {
        ConvertedDrawable::new(d)
    }
}

/// Encode a display message body (no data header) into a new buffer.
pub fn encode_display(m: &display::ServerMessage<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut out))?;
    Ok(out)
}

/// Encode a cursor message body (no data header) into a new buffer.
pub fn encode_cursor(m: &cursor::ServerMessage<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut out))?;
    Ok(out)
}

/// `SURFACE_CREATE` for a surface the guest created with a surface command (or, with
/// `primary`, for the primary surface): spice-server sends the id, size, the guest's format
/// and `PRIMARY` for the primary surface.
pub fn surface_create(surface_id: u32, s: &SurfaceCreate, primary: bool) -> display::SurfaceCreate {
    display::SurfaceCreate {
        surface_id,
        width: s.width,
        height: s.height,
        format: SurfaceFormat(s.format),
        flags: if primary {
            SurfaceFlags::PRIMARY
        } else {
            SurfaceFlags::empty()
        },
    }
}

/// `SURFACE_CREATE` for the primary surface created through `QXL_IO_CREATE_PRIMARY`
/// (surface id 0, flags `PRIMARY`).
pub fn primary_surface_create(p: &crate::device::PrimarySurface) -> display::SurfaceCreate {
    display::SurfaceCreate {
        surface_id: 0,
        width: p.width,
        height: p.height,
        format: SurfaceFormat(p.format),
        flags: SurfaceFlags::PRIMARY,
    }
}

/// A cursor shape as spice-proto's [`Cursor`]: header (the guest's `u16` type truncated to
/// the wire's `u8`, as spice-server does) and the shape data (the guest's declared size or
/// what its chunks hold, whichever is smaller), or the header alone when taken from the
/// client's cache.
pub fn cursor_shape(shape: &CursorShape, caching: CursorCaching) -> Cursor<'_> {
    let header = CursorHeader {
        unique: shape.unique,
        cursor_type: CursorType(shape.cursor_type as u8),
        width: shape.width,
        height: shape.height,
        hot_spot_x: shape.hot_spot_x,
        hot_spot_y: shape.hot_spot_y,
    };
    let (flags, data): (_, &[u8]) = match caching {
        CursorCaching::Uncached => (CursorFlags::empty(), &shape.data),
        CursorCaching::CacheMe => (CursorFlags::CACHE_ME, &shape.data),
        CursorCaching::FromCache => (CursorFlags::FROM_CACHE, &[]),
    };
    Cursor {
        flags,
        header: Some(header),
        data,
    }
}

/// "No cursor" (`flags = NONE`, no header), for a cursor INIT before any shape was set.
pub fn no_cursor() -> Cursor<'static> {
    Cursor {
        flags: CursorFlags::NONE,
        header: None,
        data: &[],
    }
}

/// Bytes of shape data a cursor of this type and size must carry (what clients read), or
/// `None` for an unknown type. Palette cursors include their palette (16 or 256 entries of
/// 4 bytes) and every colour cursor an AND mask.
pub fn cursor_data_size(cursor_type: u16, width: u16, height: u16) -> Option<u64> {
    let (w, h) = (u64::from(width), u64::from(height));
    let and_mask = w.div_ceil(8) * h;
    Some(match cursor_type {
        0 => w * h * 4,
        1 => and_mask * 2,
        2 => (w * 4).div_ceil(8) * h + 16 * 4 + and_mask,
        3 => w * h + 256 * 4 + and_mask,
        4 => w * 2 * h + and_mask,
        5 => w * 3 * h + and_mask,
        6 => w * 4 * h + and_mask,
        _ => return None,
    })
}

/// A cursor command converted for the cursor channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedCursor {
    /// Where to release the guest's resource. spice-server keeps a `SET`'s resource until
    /// the next shape replaces it (the shape is resent to new clients).
    pub release: ReleaseInfoExt,
    /// The operation (shape data owned).
    pub op: CursorOp,
}

impl From<ParsedCursorCmd> for ConvertedCursor {
    fn from(c: ParsedCursorCmd) -> Self {
        ConvertedCursor {
            release: c.release,
            op: c.op,
        }
    }
}

impl ConvertedCursor {
    /// The shape of a `SET`.
    pub fn shape(&self) -> Option<&CursorShape> {
        match &self.op {
            CursorOp::Set { shape, .. } => Some(shape),
            _ => None,
        }
    }

    /// The cache id of a `SET`'s shape, when it has one (non-zero `unique`: spice-server
    /// caches only those).
    pub fn cache_id(&self) -> Option<u64> {
        self.shape().map(|s| s.unique).filter(|&u| u != 0)
    }

    /// The cursor-channel message: `SET` (position, visibility and the shape sent as
    /// `caching` says; `caching` is ignored by the other commands), `MOVE`, `HIDE` or
    /// `TRAIL`.
    pub fn message(&self, caching: CursorCaching) -> cursor::ServerMessage<'_> {
        match &self.op {
            CursorOp::Set {
                position,
                visible,
                shape,
            } => cursor::ServerMessage::Set(CursorSet {
                position: point16(*position),
                visible: u8::from(*visible),
                cursor: cursor_shape(shape, caching),
            }),
            CursorOp::Move { position } => cursor::ServerMessage::Move(point16(*position)),
            CursorOp::Hide => cursor::ServerMessage::Hide,
            CursorOp::Trail { length, frequency } => cursor::ServerMessage::Trail {
                length: *length,
                frequency: *frequency,
            },
        }
    }
}

/// Parse-and-convert helper for fuzzing and tests: encodes the raw message of a drawable (or
/// the messages of a cursor command for each caching choice) and decodes the bytes back with
/// spice-proto, checking they agree. Returns the encoded bodies. Never panics on what the
/// parser accepted; a disagreement is reported as `Err` with a description.
pub fn encode_roundtrip(cmd: crate::parse::ParsedCommand) -> Result<Vec<Vec<u8>>, String> {
    use crate::parse::ParsedCommand as C;
    use spice_proto::channel::ChannelType;
    match cmd {
        C::Draw(d) => {
            let c = match ConvertedDrawable::new(*d) {
                Ok(c) => c,
                Err(ConvertError::Nop) => return Ok(Vec::new()),
                Err(e) => return Err(e.to_string()),
            };
            let m = match c.raw_message() {
                Ok(m) => m,
                Err(ConvertError::NeedsSelfBitmap(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.to_string()),
            };
            let bytes = encode_display(&m).map_err(|e| e.to_string())?;
            let back =
                display::ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes)
                    .map_err(|e| format!("{}: {e}", m.name()))?;
            if back != m {
                return Err(format!("{}: decode(encode(m)) != m", m.name()));
            }
            Ok(vec![bytes])
        }
        C::Cursor(cmd) => {
            let c = ConvertedCursor::from(cmd);
            let mut out = Vec::new();
            for caching in [
                CursorCaching::Uncached,
                CursorCaching::CacheMe,
                CursorCaching::FromCache,
            ] {
                let m = c.message(caching);
                let bytes = encode_cursor(&m).map_err(|e| e.to_string())?;
                let back =
                    cursor::ServerMessage::decode_body(ChannelType::CURSOR, m.msg_type(), &bytes)
                        .map_err(|e| format!("{}: {e}", m.name()))?;
                if back != m {
                    return Err(format!("{}: decode(encode(m)) != m", m.name()));
                }
                out.push(bytes);
            }
            Ok(out)
        }
        C::Surface(s) => match s.op {
            crate::parse::SurfaceOp::Create(ref c) => {
                let m =
                    display::ServerMessage::SurfaceCreate(surface_create(s.surface_id, c, false));
                Ok(vec![encode_display(&m).map_err(|e| e.to_string())?])
            }
            crate::parse::SurfaceOp::Destroy => {
                let m = display::ServerMessage::SurfaceDestroy(s.surface_id);
                Ok(vec![encode_display(&m).map_err(|e| e.to_string())?])
            }
        },
        _ => Ok(Vec::new()),
    }
}
