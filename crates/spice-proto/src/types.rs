//! The display types shared by display and cursor messages (spice.proto's `Point`, `Rect`,
//! `Clip`, `Image`, `Brush`, `Path`, `String`, `Cursor`, ... and their enums and flags).
//!
//! # Pointers
//!
//! Some of these types hold SPICE pointers: `u32` offsets from the start of the message body
//! (0 = NULL) to data laid out later in the same body. They do not implement [`Decode`] /
//! [`Encode`] but offer `decode(r, ext)` / `encode(w, q)` pairs:
//!
//! - decoding reads the fixed part at the cursor and follows every pointer through the
//!   body (bounds-checked), noting in a [`BodyExtent`] how far the pointed data reaches so
//!   that the message decoder can reject bytes no field accounts for;
//! - encoding writes the fixed part, reserving each pointer slot and queueing the pointee in
//!   a [`PointerQueue`]; [`PointerQueue::flush`] then writes the pointees in queue order, each
//!   of which may queue further pointees (a bitmap's palette).
//!
//! This is the layout spice-server's marshaller produces (spice-common `marshaller.c`): every
//! pointer gets a sub-marshaller when its parent is marshalled, sub-marshallers are emitted in
//! creation order after the fixed part, and an empty sub-marshaller leaves its pointer NULL.
//! spice-server (`dcc-send.cpp`) fills the pointed images in field order (source, brush
//! pattern, mask), and a bitmap's or LZ_PLT's palette sub-marshaller is created while its image
//! is filled, so it lands after every pointee created before it: exactly a FIFO queue.
//!
//! Image payloads (bitmap rows, QUIC/LZ/GLZ/JPEG/LZ4 streams, glyph bitmaps, cursor shapes)
//! are borrowed from the message body, never copied.

use std::collections::VecDeque;

use bitflags::bitflags;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Decode, Encode, PtrSlot, ReadCursor, WriteBuf};

// ---------------------------------------------------------------------------------------
// Enums (newtypes: unknown values survive a round trip) and flags (unknown bits kept)
// ---------------------------------------------------------------------------------------

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        impl $name {
            $($(#[$cm])* pub const $c: Self = Self($v);)*

            /// The value's name as spice.proto spells it, or `None` for a value it does not define.
            pub fn name(self) -> Option<&'static str> {
                $(if self.0 == $v { return Some(stringify!($c)); })*
                None
            }
        }
    };
}

wire_enum! {
    /// `image_type` (u8): the `type` of an [`ImageDescriptor`].
    ImageType(u8) {
        /// Uncompressed bitmap.
        BITMAP = 0,
        /// QUIC-compressed.
        QUIC = 1,
        /// Reserved (never sent).
        RESERVED = 2,
        /// LZ with palette.
        LZ_PLT = 100,
        /// LZ RGB.
        LZ_RGB = 101,
        /// GLZ RGB (shared dictionary).
        GLZ_RGB = 102,
        /// Taken from the client's image cache.
        FROM_CACHE = 103,
        /// Another surface.
        SURFACE = 104,
        /// JPEG.
        JPEG = 105,
        /// Taken from the cache, must be lossless.
        FROM_CACHE_LOSSLESS = 106,
        /// zlib-deflated GLZ.
        ZLIB_GLZ_RGB = 107,
        /// JPEG plus an LZ alpha plane.
        JPEG_ALPHA = 108,
        /// LZ4.
        LZ4 = 109,
    }
}

wire_enum! {
    /// `bitmap_fmt` (u8): pixel format of a BITMAP image.
    BitmapFormat(u8) {
        /// Invalid.
        INVALID = 0,
        /// 1 bpp, little-endian bit order.
        BIT1_LE = 1,
        /// 1 bpp, big-endian bit order.
        BIT1_BE = 2,
        /// 4 bpp, little-endian nibble order.
        BIT4_LE = 3,
        /// 4 bpp, big-endian nibble order.
        BIT4_BE = 4,
        /// 8 bpp palette indices.
        BIT8 = 5,
        /// 16 bpp x555.
        BIT16 = 6,
        /// 24 bpp B,G,R.
        BIT24 = 7,
        /// 32 bpp xRGB.
        BIT32 = 8,
        /// 32 bpp ARGB.
        RGBA = 9,
        /// 8 bpp alpha only.
        BIT8_A = 10,
    }
}

wire_enum! {
    /// `image_scale_mode` (u8).
    ImageScaleMode(u8) {
        /// Interpolate.
        INTERPOLATE = 0,
        /// Nearest neighbour.
        NEAREST = 1,
    }
}

wire_enum! {
    /// `surface_fmt` (u32; sparse values).
    SurfaceFormat(u32) {
        /// Invalid.
        INVALID = 0,
        /// 1-bit alpha.
        FMT_1_A = 1,
        /// 8-bit alpha.
        FMT_8_A = 8,
        /// 16-bit x555.
        FMT_16_555 = 16,
        /// 32-bit xRGB.
        FMT_32_XRGB = 32,
        /// 16-bit 565.
        FMT_16_565 = 80,
        /// 32-bit ARGB.
        FMT_32_ARGB = 96,
    }
}

wire_enum! {
    /// `video_codec_type` (u8).
    VideoCodecType(u8) {
        /// Motion JPEG.
        MJPEG = 1,
        /// VP8.
        VP8 = 2,
        /// H.264.
        H264 = 3,
        /// VP9.
        VP9 = 4,
        /// H.265.
        H265 = 5,
    }
}

wire_enum! {
    /// `image_compression` (u8), as in `PREFERRED_COMPRESSION`.
    ImageCompression(u8) {
        /// Invalid.
        INVALID = 0,
        /// No compression.
        OFF = 1,
        /// Automatic, GLZ.
        AUTO_GLZ = 2,
        /// Automatic, LZ.
        AUTO_LZ = 3,
        /// QUIC.
        QUIC = 4,
        /// GLZ.
        GLZ = 5,
        /// LZ.
        LZ = 6,
        /// LZ4.
        LZ4 = 7,
    }
}

wire_enum! {
    /// `cursor_type` (u8).
    CursorType(u8) {
        /// 32-bit ARGB.
        ALPHA = 0,
        /// AND and XOR masks.
        MONO = 1,
        /// 4-bit palette + AND mask.
        COLOR4 = 2,
        /// 8-bit palette + AND mask.
        COLOR8 = 3,
        /// 16-bit + AND mask.
        COLOR16 = 4,
        /// 24-bit + AND mask.
        COLOR24 = 5,
        /// 32-bit + AND mask.
        COLOR32 = 6,
    }
}

wire_enum! {
    /// `resource_type` (u8) of a [`ResourceId`].
    ResourceType(u8) {
        /// Invalid.
        INVALID = 0,
        /// A pixmap of the image cache.
        PIXMAP = 1,
    }
}

macro_rules! wire_flags {
    ($(#[doc = $d:literal])* $name:ident: $ty:ty { $($(#[doc = $cd:literal])* $c:ident = $v:expr;)* }) => {
        bitflags! {
            $(#[doc = $d])*
            ///
            /// Unknown bits are kept (`from_bits_retain`).
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub struct $name: $ty {
                $($(#[doc = $cd])* const $c = $v;)*
                const _ = !0;
            }
        }
    };
}

wire_flags! {
    /// `image_flags` (u8) of an [`ImageDescriptor`].
    ImageFlags: u8 {
        /// Store the decoded image in the cache under `id`.
        CACHE_ME = 1;
        /// OR every pixel with 0xff000000 after decoding.
        HIGH_BITS_SET = 2;
        /// Replace a lossy cache entry with this lossless image.
        CACHE_REPLACE_ME = 4;
    }
}

wire_flags! {
    /// `bitmap_flags` (u8) of BITMAP and LZ_PLT images.
    BitmapFlags: u8 {
        /// Cache the palette.
        PAL_CACHE_ME = 1;
        /// The palette is a cache id (`u64`) instead of a pointer.
        PAL_FROM_CACHE = 2;
        /// Rows are top-down.
        TOP_DOWN = 4;
    }
}

wire_flags! {
    /// `jpeg_alpha_flags` (u8).
    JpegAlphaFlags: u8 {
        /// Rows are top-down.
        TOP_DOWN = 1;
    }
}

wire_flags! {
    /// `ropd` (u16): raster operation descriptor.
    Ropd: u16 {
        /// Invert the source.
        INVERS_SRC = 1;
        /// Invert the brush.
        INVERS_BRUSH = 2;
        /// Invert the destination.
        INVERS_DEST = 4;
        /// Copy.
        OP_PUT = 8;
        /// OR.
        OP_OR = 16;
        /// AND.
        OP_AND = 32;
        /// XOR.
        OP_XOR = 64;
        /// Black.
        OP_BLACKNESS = 128;
        /// White.
        OP_WHITENESS = 256;
        /// Invert.
        OP_INVERS = 512;
        /// Invert the result.
        INVERS_RES = 1024;
    }
}

wire_flags! {
    /// `alpha_flags` (u8) of DRAW_ALPHA_BLEND.
    AlphaFlags: u8 {
        /// The destination has alpha.
        DEST_HAS_ALPHA = 1;
        /// The source surface has alpha.
        SRC_SURFACE_HAS_ALPHA = 2;
    }
}

wire_flags! {
    /// `composite_flags` (u32) of DRAW_COMPOSITE: bits 0-7 pixman operator, 8-10 source
    /// filter, 11-13 mask filter, 14-15 source repeat, 16-17 mask repeat, then single bits.
    CompositeFlags: u32 {
        /// Component alpha.
        COMPONENT_ALPHA = 1 << 18;
        /// A mask image pointer is present.
        HAS_MASK = 1 << 19;
        /// A source transform is present.
        HAS_SRC_TRANSFORM = 1 << 20;
        /// A mask transform is present.
        HAS_MASK_TRANSFORM = 1 << 21;
        /// The source is opaque.
        SOURCE_OPAQUE = 1 << 22;
        /// The mask is opaque.
        MASK_OPAQUE = 1 << 23;
        /// The destination is opaque.
        DEST_OPAQUE = 1 << 24;
    }
}

wire_flags! {
    /// `path_flags` (u8) of a [`PathSegment`].
    PathFlags: u8 {
        /// Begins a sub-path.
        BEGIN = 1;
        /// Ends a sub-path.
        END = 2;
        /// Closes the sub-path.
        CLOSE = 8;
        /// Points are Bezier control points.
        BEZIER = 16;
    }
}

wire_flags! {
    /// `string_flags` (u8) of a [`SpiceString`]: exactly one of the RASTER_* bits.
    StringFlags: u8 {
        /// 1-bpp glyphs.
        RASTER_A1 = 1;
        /// 4-bpp glyphs.
        RASTER_A4 = 2;
        /// 8-bpp glyphs.
        RASTER_A8 = 4;
        /// Glyph rows top-down.
        RASTER_TOP_DOWN = 8;
    }
}

wire_flags! {
    /// `line_flags` (u8) of a [`LineAttr`].
    LineFlags: u8 {
        /// The dash pattern starts with a gap.
        START_WITH_GAP = 4;
        /// Dashed: `style_nseg` and the style pointer follow.
        STYLED = 8;
    }
}

wire_flags! {
    /// `mask_flags` (u8) of a [`QMask`].
    MaskFlags: u8 {
        /// Invert the mask.
        INVERS = 1;
    }
}

wire_flags! {
    /// `stream_flags` (u8) of STREAM_CREATE.
    StreamFlags: u8 {
        /// Frames are top-down.
        TOP_DOWN = 1;
    }
}

wire_flags! {
    /// `surface_flags` (u32) of SURFACE_CREATE.
    SurfaceFlags: u32 {
        /// The primary surface.
        PRIMARY = 1;
        /// The surface only receives stream frames.
        STREAMING_MODE = 2;
    }
}

wire_flags! {
    /// `cursor_flags` (u16) of a [`Cursor`].
    CursorFlags: u16 {
        /// No cursor (hidden); no header follows.
        NONE = 1;
        /// Cache the cursor under its `unique` id.
        CACHE_ME = 2;
        /// Take the cursor from the cache (header only, no data).
        FROM_CACHE = 4;
    }
}

wire_flags! {
    /// `gl_scanout_flags` (u32).
    GlScanoutFlags: u32 {
        /// Row 0 is the top row.
        Y0TOP = 1;
    }
}

// ---------------------------------------------------------------------------------------
// Pointer machinery
// ---------------------------------------------------------------------------------------

/// How far into the message body the decoded data reaches (the end of the fixed part and of
/// every pointee), so a message decoder can reject bytes that no field accounts for.
///
/// Bytes in gaps between pointees are not detected; bytes after the last one are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyExtent {
    end: usize,
}

impl BodyExtent {
    /// An extent that covers nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that decoded data reaches up to `pos` (exclusive).
    pub fn note(&mut self, pos: usize) {
        self.end = self.end.max(pos);
    }

    /// The furthest position noted.
    pub fn end(&self) -> usize {
        self.end
    }

    /// Notes the end of the fixed part at `r`, then fails with
    /// [`DecodeError::TrailingBytes`] unless everything up to the end of the body is covered.
    pub fn finish(mut self, r: &ReadCursor<'_>, ctx: &'static str) -> Result<(), DecodeError> {
        self.note(r.pos());
        let len = r.buffer().len();
        if self.end < len {
            Err(DecodeError::TrailingBytes {
                field: ctx,
                extra: len - self.end,
            })
        } else {
            Ok(())
        }
    }
}

/// Reads a `u32` pointer at `r` and returns a cursor at its target, or `None` for NULL.
pub fn read_ptr<'a>(
    r: &mut ReadCursor<'a>,
    ctx: &'static str,
) -> Result<Option<ReadCursor<'a>>, DecodeError> {
    let off = r.read_u32(ctx)?;
    if off == 0 {
        Ok(None)
    } else {
        r.at_offset(off, ctx).map(Some)
    }
}

/// Like [`read_ptr`] for a `@nonnull` pointer: NULL is [`DecodeError::NullPointer`].
pub fn read_nonnull_ptr<'a>(
    r: &mut ReadCursor<'a>,
    ctx: &'static str,
) -> Result<ReadCursor<'a>, DecodeError> {
    read_ptr(r, ctx)?.ok_or(DecodeError::NullPointer { field: ctx })
}

#[derive(Debug, Clone, Copy)]
enum Pointee<'r, 'a> {
    Image(&'r Image<'a>),
    Palette(&'r Palette),
    Path(&'r Path),
    Str(&'r SpiceString<'a>),
    Style(&'r [i32]),
}

/// Pointees waiting to be written after the fixed part of a message, in the order their
/// pointer slots were reserved (spice-server's sub-marshaller order).
#[derive(Debug, Default)]
pub struct PointerQueue<'r, 'a> {
    items: VecDeque<(PtrSlot, Pointee<'r, 'a>)>,
}

impl<'r, 'a> PointerQueue<'r, 'a> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, w: &mut WriteBuf<'_>, p: Pointee<'r, 'a>) {
        let slot = w.reserve_ptr();
        self.items.push_back((slot, p));
    }

    /// Writes every queued pointee (and those they queue in turn) and patches the pointer
    /// slots. A pointee of zero bytes (an empty line style) leaves its pointer NULL, as
    /// spice-server's marshaller does.
    pub fn flush(&mut self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        while let Some((slot, p)) = self.items.pop_front() {
            match p {
                Pointee::Image(img) => {
                    w.patch_ptr(slot, "image pointer")?;
                    img.encode(w, self)?;
                }
                Pointee::Palette(pal) => {
                    w.patch_ptr(slot, "palette pointer")?;
                    pal.encode(w)?;
                }
                Pointee::Path(path) => {
                    w.patch_ptr(slot, "path pointer")?;
                    path.encode(w)?;
                }
                Pointee::Str(s) => {
                    w.patch_ptr(slot, "string pointer")?;
                    s.encode(w)?;
                }
                Pointee::Style(style) => {
                    if !style.is_empty() {
                        w.patch_ptr(slot, "line style pointer")?;
                        for v in style {
                            w.write_i32(*v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Fixed-size types
// ---------------------------------------------------------------------------------------

macro_rules! fixed_struct {
    (
        $(#[$m:meta])* $name:ident, $size:expr, $ctx:literal {
            $($(#[$fm:meta])* $f:ident : $ty:ident => $read:ident, $write:ident;)*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $($(#[$fm])* pub $f: $ty,)*
        }

        impl $name {
            /// Size on the wire.
            pub const SIZE: usize = $size;
        }

        impl<'a> Decode<'a> for $name {
            fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
                r.ensure(Self::SIZE, $ctx)?;
                Ok(Self { $($f: r.$read($ctx)?,)* })
            }
        }

        impl Encode for $name {
            fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
                $(w.$write(self.$f);)*
                Ok(())
            }
        }
    };
}

fixed_struct! {
    /// `Point`: `i32 x; i32 y` (8 bytes).
    Point, 8, "point" {
        /// X.
        x: i32 => read_i32, write_i32;
        /// Y.
        y: i32 => read_i32, write_i32;
    }
}

fixed_struct! {
    /// `Point16`: `i16 x; i16 y` (4 bytes).
    Point16, 4, "point16" {
        /// X.
        x: i16 => read_i16, write_i16;
        /// Y.
        y: i16 => read_i16, write_i16;
    }
}

fixed_struct! {
    /// `PointFix`: two `fixed28_4` (i32 with 4 fractional bits) (8 bytes).
    PointFix, 8, "point fix" {
        /// X, 28.4 fixed point.
        x: i32 => read_i32, write_i32;
        /// Y, 28.4 fixed point.
        y: i32 => read_i32, write_i32;
    }
}

fixed_struct! {
    /// `Rect`: wire order `top, left, bottom, right` (16 bytes).
    Rect, 16, "rect" {
        /// Top.
        top: i32 => read_i32, write_i32;
        /// Left.
        left: i32 => read_i32, write_i32;
        /// Bottom (exclusive).
        bottom: i32 => read_i32, write_i32;
        /// Right (exclusive).
        right: i32 => read_i32, write_i32;
    }
}

fixed_struct! {
    /// `Transform`: six pixman 16.16 fixed-point matrix entries (24 bytes).
    Transform, 24, "transform" {
        /// Row 0, column 0.
        t00: u32 => read_u32, write_u32;
        /// Row 0, column 1.
        t01: u32 => read_u32, write_u32;
        /// Row 0, column 2.
        t02: u32 => read_u32, write_u32;
        /// Row 1, column 0.
        t10: u32 => read_u32, write_u32;
        /// Row 1, column 1.
        t11: u32 => read_u32, write_u32;
        /// Row 1, column 2.
        t12: u32 => read_u32, write_u32;
    }
}

fixed_struct! {
    /// `WaitForChannel`: wait until channel (type, id) processed `message_serial` (10 bytes).
    WaitForChannel, 10, "wait for channel" {
        /// Channel type.
        channel_type: u8 => read_u8, write_u8;
        /// Channel id.
        channel_id: u8 => read_u8, write_u8;
        /// Serial to wait for.
        message_serial: u64 => read_u64, write_u64;
    }
}

fixed_struct! {
    /// `Head`: one monitor of MONITORS_CONFIG (28 bytes).
    Head, 28, "head" {
        /// Monitor id.
        monitor_id: u32 => read_u32, write_u32;
        /// Surface shown.
        surface_id: u32 => read_u32, write_u32;
        /// Width.
        width: u32 => read_u32, write_u32;
        /// Height.
        height: u32 => read_u32, write_u32;
        /// X within the surface.
        x: u32 => read_u32, write_u32;
        /// Y within the surface.
        y: u32 => read_u32, write_u32;
        /// Flags.
        flags: u32 => read_u32, write_u32;
    }
}

fixed_struct! {
    /// `StreamDataHeader`: `u32 id; u32 multi_media_time` (8 bytes).
    StreamDataHeader, 8, "stream data header" {
        /// Stream id.
        id: u32 => read_u32, write_u32;
        /// Presentation time on the multimedia clock.
        multi_media_time: u32 => read_u32, write_u32;
    }
}

/// `ResourceID`: `u8 type; u64 id` (9 bytes), an entry of INVAL_LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceId {
    /// Resource type (1 = pixmap).
    pub resource_type: ResourceType,
    /// Resource id.
    pub id: u64,
}

impl ResourceId {
    /// Size on the wire.
    pub const SIZE: usize = 9;
}

impl<'a> Decode<'a> for ResourceId {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "resource id")?;
        Ok(Self {
            resource_type: ResourceType(r.read_u8("resource id")?),
            id: r.read_u64("resource id")?,
        })
    }
}

impl Encode for ResourceId {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u8(self.resource_type.0);
        w.write_u64(self.id);
        Ok(())
    }
}

/// `CursorHeader` (17 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CursorHeader {
    /// Cache id.
    pub unique: u64,
    /// Shape type.
    pub cursor_type: CursorType,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hot spot x.
    pub hot_spot_x: u16,
    /// Hot spot y.
    pub hot_spot_y: u16,
}

impl CursorHeader {
    /// Size on the wire: u64 unique + u8 type + 4 × u16.
    pub const SIZE: usize = 8 + 1 + 2 + 2 + 2 + 2;
}

impl<'a> Decode<'a> for CursorHeader {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        const CTX: &str = "cursor header";
        r.ensure(Self::SIZE, CTX)?;
        Ok(Self {
            unique: r.read_u64(CTX)?,
            cursor_type: CursorType(r.read_u8(CTX)?),
            width: r.read_u16(CTX)?,
            height: r.read_u16(CTX)?,
            hot_spot_x: r.read_u16(CTX)?,
            hot_spot_y: r.read_u16(CTX)?,
        })
    }
}

impl Encode for CursorHeader {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u64(self.unique);
        w.write_u8(self.cursor_type.0);
        w.write_u16(self.width);
        w.write_u16(self.height);
        w.write_u16(self.hot_spot_x);
        w.write_u16(self.hot_spot_y);
        Ok(())
    }
}

/// `Cursor`: `u16 flags`; unless `NONE`, a [`CursorHeader`]; then the shape data, which is
/// the rest of the message (so a cursor is always the last field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor<'a> {
    /// Flags; `NONE` means no header.
    pub flags: CursorFlags,
    /// Present exactly when `flags` lacks `NONE`.
    pub header: Option<CursorHeader>,
    /// Shape data (rest of the message), borrowed.
    pub data: &'a [u8],
}

impl<'a> Decode<'a> for Cursor<'a> {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        let flags = CursorFlags::from_bits_retain(r.read_u16("cursor flags")?);
        let header = if flags.contains(CursorFlags::NONE) {
            None
        } else {
            Some(CursorHeader::decode(r)?)
        };
        Ok(Self {
            flags,
            header,
            data: r.read_rest(),
        })
    }
}

impl Encode for Cursor<'_> {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        if self.flags.contains(CursorFlags::NONE) != self.header.is_none() {
            return Err(EncodeError::Inconsistent {
                field: "cursor header (present iff flags lack NONE)",
            });
        }
        w.write_u16(self.flags.bits());
        if let Some(h) = &self.header {
            h.encode(w)?;
        }
        w.write_slice(self.data);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Clip and DisplayBase (no pointers: the clip rects are inline)
// ---------------------------------------------------------------------------------------

/// `ClipRects`: `u32 num_rects; Rect rects[num_rects]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClipRects {
    /// The rectangles.
    pub rects: Vec<Rect>,
}

impl<'a> Decode<'a> for ClipRects {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        let n = r.read_u32("clip num_rects")?;
        let n = r.check_count(n.into(), Rect::SIZE, "clip rects")?;
        let rects = (0..n).map(|_| Rect::decode(r)).collect::<Result<_, _>>()?;
        Ok(Self { rects })
    }
}

impl Encode for ClipRects {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(WriteBuf::len_as(self.rects.len(), "clip num_rects")?);
        for rect in &self.rects {
            rect.encode(w)?;
        }
        Ok(())
    }
}

/// `Clip`: `u8 type` (0 NONE, 1 RECTS); RECTS is followed by [`ClipRects`] inline.
/// Other types are rejected ([`DecodeError::InvalidValue`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Clip {
    /// No clipping.
    #[default]
    None,
    /// Clip to the union of these rectangles.
    Rects(ClipRects),
}

impl<'a> Decode<'a> for Clip {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        match r.read_u8("clip type")? {
            0 => Ok(Clip::None),
            1 => Ok(Clip::Rects(ClipRects::decode(r)?)),
            v => Err(DecodeError::InvalidValue {
                field: "clip type",
                value: v.into(),
            }),
        }
    }
}

impl Encode for Clip {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Clip::None => w.write_u8(0),
            Clip::Rects(rects) => {
                w.write_u8(1);
                rects.encode(w)?;
            }
        }
        Ok(())
    }
}

/// `DisplayBase`: `u32 surface_id; Rect box; Clip clip` (21 bytes + clip rects).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayBase {
    /// Target surface.
    pub surface_id: u32,
    /// Bounding box on the target (`box` in spice.proto).
    pub bbox: Rect,
    /// Clip region.
    pub clip: Clip,
}

impl<'a> Decode<'a> for DisplayBase {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            surface_id: r.read_u32("display base surface_id")?,
            bbox: Rect::decode(r)?,
            clip: Clip::decode(r)?,
        })
    }
}

impl Encode for DisplayBase {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(self.surface_id);
        self.bbox.encode(w)?;
        self.clip.encode(w)
    }
}

// ---------------------------------------------------------------------------------------
// Palette and images
// ---------------------------------------------------------------------------------------

/// `Palette`: `u64 unique; u16 num_ents; u32 ents[num_ents]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Palette {
    /// Cache id.
    pub unique: u64,
    /// Entries (xRGB).
    pub ents: Vec<u32>,
}

impl<'a> Decode<'a> for Palette {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(10, "palette")?;
        let unique = r.read_u64("palette unique")?;
        let n = r.read_u16("palette num_ents")?;
        let n = r.check_count(n.into(), 4, "palette ents")?;
        let ents = (0..n)
            .map(|_| r.read_u32("palette ents"))
            .collect::<Result<_, _>>()?;
        Ok(Self { unique, ents })
    }
}

impl Encode for Palette {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u64(self.unique);
        w.write_u16(WriteBuf::len_as(self.ents.len(), "palette num_ents")?);
        for e in &self.ents {
            w.write_u32(*e);
        }
        Ok(())
    }
}

/// `ImageDescriptor` (18 bytes): `u64 id; u8 type; u8 flags; u32 width; u32 height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageDescriptor {
    /// Cache id.
    pub id: u64,
    /// Image type (selects the body).
    pub image_type: ImageType,
    /// Flags.
    pub flags: ImageFlags,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageDescriptor {
    /// Size on the wire: u64 + u8 + u8 + u32 + u32.
    pub const SIZE: usize = 8 + 1 + 1 + 4 + 4;
}

impl<'a> Decode<'a> for ImageDescriptor {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        const CTX: &str = "image descriptor";
        r.ensure(Self::SIZE, CTX)?;
        Ok(Self {
            id: r.read_u64(CTX)?,
            image_type: ImageType(r.read_u8(CTX)?),
            flags: ImageFlags::from_bits_retain(r.read_u8(CTX)?),
            width: r.read_u32(CTX)?,
            height: r.read_u32(CTX)?,
        })
    }
}

impl Encode for ImageDescriptor {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u64(self.id);
        w.write_u8(self.image_type.0);
        w.write_u8(self.flags.bits());
        w.write_u32(self.width);
        w.write_u32(self.height);
        Ok(())
    }
}

/// Where a BITMAP or LZ_PLT image's palette comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaletteSource {
    /// `PAL_FROM_CACHE`: the `u64` id of a cached palette.
    FromCache(u64),
    /// A palette pointer that is set.
    Inline(Palette),
    /// A NULL palette pointer (BITMAP only; LZ_PLT's pointer is `@nonnull`).
    None,
}

/// `BitmapData`: an uncompressed BITMAP image body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap<'a> {
    /// Pixel format.
    pub format: BitmapFormat,
    /// Flags; `PAL_FROM_CACHE` must agree with [`PaletteSource::FromCache`].
    pub flags: BitmapFlags,
    /// Width in pixels.
    pub x: u32,
    /// Rows.
    pub y: u32,
    /// Bytes per row.
    pub stride: u32,
    /// The palette.
    pub palette: PaletteSource,
    /// Pixel rows, `stride * y` bytes, borrowed.
    pub data: &'a [u8],
}

/// `LZPLTData`: an LZ image with palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LzPlt<'a> {
    /// Flags; `PAL_FROM_CACHE` must agree with [`PaletteSource::FromCache`].
    pub flags: BitmapFlags,
    /// The palette (never [`PaletteSource::None`]).
    pub palette: PaletteSource,
    /// LZ stream, borrowed.
    pub data: &'a [u8],
}

/// `ZlibGlzRGBData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZlibGlzRgb<'a> {
    /// Size of the inflated GLZ stream.
    pub glz_data_size: u32,
    /// zlib data, borrowed.
    pub data: &'a [u8],
}

/// `JPEGAlphaData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegAlpha<'a> {
    /// Flags.
    pub flags: JpegAlphaFlags,
    /// Bytes of JPEG at the start of `data`; the rest is an LZ alpha plane.
    pub jpeg_size: u32,
    /// JPEG + LZ alpha, borrowed.
    pub data: &'a [u8],
}

/// The body of an [`Image`], by image type. `BinaryData` bodies (`u32 data_size; data`) hold
/// the borrowed data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBody<'a> {
    /// BITMAP (0).
    Bitmap(Bitmap<'a>),
    /// QUIC (1).
    Quic(&'a [u8]),
    /// LZ_PLT (100).
    LzPlt(LzPlt<'a>),
    /// LZ_RGB (101).
    LzRgb(&'a [u8]),
    /// GLZ_RGB (102).
    GlzRgb(&'a [u8]),
    /// FROM_CACHE (103): no body.
    FromCache,
    /// SURFACE (104): `u32 surface_id`.
    Surface(u32),
    /// JPEG (105).
    Jpeg(&'a [u8]),
    /// FROM_CACHE_LOSSLESS (106): no body.
    FromCacheLossless,
    /// ZLIB_GLZ_RGB (107).
    ZlibGlzRgb(ZlibGlzRgb<'a>),
    /// JPEG_ALPHA (108).
    JpegAlpha(JpegAlpha<'a>),
    /// LZ4 (109).
    Lz4(&'a [u8]),
}

impl ImageBody<'_> {
    /// The descriptor's image type for this body.
    pub fn image_type(&self) -> ImageType {
        match self {
            ImageBody::Bitmap(_) => ImageType::BITMAP,
            ImageBody::Quic(_) => ImageType::QUIC,
            ImageBody::LzPlt(_) => ImageType::LZ_PLT,
            ImageBody::LzRgb(_) => ImageType::LZ_RGB,
            ImageBody::GlzRgb(_) => ImageType::GLZ_RGB,
            ImageBody::FromCache => ImageType::FROM_CACHE,
            ImageBody::Surface(_) => ImageType::SURFACE,
            ImageBody::Jpeg(_) => ImageType::JPEG,
            ImageBody::FromCacheLossless => ImageType::FROM_CACHE_LOSSLESS,
            ImageBody::ZlibGlzRgb(_) => ImageType::ZLIB_GLZ_RGB,
            ImageBody::JpegAlpha(_) => ImageType::JPEG_ALPHA,
            ImageBody::Lz4(_) => ImageType::LZ4,
        }
    }
}

/// `Image`: an [`ImageDescriptor`] (whose type is taken from the body) and the body.
///
/// Always reached through a pointer. Types outside the 12 defined bodies (including
/// RESERVED = 2) are rejected with [`DecodeError::InvalidValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image<'a> {
    /// Cache id.
    pub id: u64,
    /// Descriptor flags.
    pub flags: ImageFlags,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The type-specific body.
    pub body: ImageBody<'a>,
}

fn read_binary<'a>(r: &mut ReadCursor<'a>, ctx: &'static str) -> Result<&'a [u8], DecodeError> {
    let n = r.read_u32(ctx)?;
    let n = r.check_count(n.into(), 1, ctx)?;
    r.read_slice(n, ctx)
}

fn write_binary(w: &mut WriteBuf<'_>, data: &[u8], ctx: &'static str) -> Result<(), EncodeError> {
    w.write_u32(WriteBuf::len_as(data.len(), ctx)?);
    w.write_slice(data);
    Ok(())
}

fn decode_palette_source<'a>(
    r: &mut ReadCursor<'a>,
    flags: BitmapFlags,
    nonnull: bool,
    ext: &mut BodyExtent,
) -> Result<PaletteSource, DecodeError> {
    if flags.contains(BitmapFlags::PAL_FROM_CACHE) {
        return Ok(PaletteSource::FromCache(r.read_u64("palette id")?));
    }
    let target = if nonnull {
        Some(read_nonnull_ptr(r, "palette pointer")?)
    } else {
        read_ptr(r, "palette pointer")?
    };
    match target {
        None => Ok(PaletteSource::None),
        Some(mut sub) => {
            let pal = Palette::decode(&mut sub)?;
            ext.note(sub.pos());
            Ok(PaletteSource::Inline(pal))
        }
    }
}

fn encode_palette_source<'r, 'a>(
    w: &mut WriteBuf<'_>,
    q: &mut PointerQueue<'r, 'a>,
    flags: BitmapFlags,
    src: &'r PaletteSource,
    nonnull: bool,
) -> Result<(), EncodeError> {
    let from_cache = flags.contains(BitmapFlags::PAL_FROM_CACHE);
    match src {
        PaletteSource::FromCache(id) if from_cache => w.write_u64(*id),
        PaletteSource::Inline(pal) if !from_cache => q.push(w, Pointee::Palette(pal)),
        PaletteSource::None if !from_cache && !nonnull => w.write_u32(0),
        _ => {
            return Err(EncodeError::Inconsistent {
                field: "palette (PAL_FROM_CACHE flag vs palette source)",
            });
        }
    }
    Ok(())
}

impl<'a> Image<'a> {
    /// The 18-byte descriptor of this image.
    pub fn descriptor(&self) -> ImageDescriptor {
        ImageDescriptor {
            id: self.id,
            image_type: self.body.image_type(),
            flags: self.flags,
            width: self.width,
            height: self.height,
        }
    }

    /// Decodes an image at `r` (which must sit at the pointer's target), following its
    /// palette pointer if any.
    pub fn decode(r: &mut ReadCursor<'a>, ext: &mut BodyExtent) -> Result<Self, DecodeError> {
        let d = ImageDescriptor::decode(r)?;
        let body = match d.image_type {
            ImageType::BITMAP => {
                const CTX: &str = "bitmap";
                r.ensure(1 + 1 + 4 + 4 + 4, CTX)?;
                let format = BitmapFormat(r.read_u8(CTX)?);
                let flags = BitmapFlags::from_bits_retain(r.read_u8(CTX)?);
                let x = r.read_u32(CTX)?;
                let y = r.read_u32(CTX)?;
                let stride = r.read_u32(CTX)?;
                let palette = decode_palette_source(r, flags, false, ext)?;
                let n = r.check_count(u64::from(stride) * u64::from(y), 1, "bitmap data")?;
                let data = r.read_slice(n, "bitmap data")?;
                ImageBody::Bitmap(Bitmap {
                    format,
                    flags,
                    x,
                    y,
                    stride,
                    palette,
                    data,
                })
            }
            ImageType::QUIC => ImageBody::Quic(read_binary(r, "quic data")?),
            ImageType::LZ_PLT => {
                let flags = BitmapFlags::from_bits_retain(r.read_u8("lz_plt flags")?);
                let size = r.read_u32("lz_plt data_size")?;
                let palette = decode_palette_source(r, flags, true, ext)?;
                let n = r.check_count(size.into(), 1, "lz_plt data")?;
                let data = r.read_slice(n, "lz_plt data")?;
                ImageBody::LzPlt(LzPlt {
                    flags,
                    palette,
                    data,
                })
            }
            ImageType::LZ_RGB => ImageBody::LzRgb(read_binary(r, "lz_rgb data")?),
            ImageType::GLZ_RGB => ImageBody::GlzRgb(read_binary(r, "glz_rgb data")?),
            ImageType::FROM_CACHE => ImageBody::FromCache,
            ImageType::SURFACE => ImageBody::Surface(r.read_u32("image surface_id")?),
            ImageType::JPEG => ImageBody::Jpeg(read_binary(r, "jpeg data")?),
            ImageType::FROM_CACHE_LOSSLESS => ImageBody::FromCacheLossless,
            ImageType::ZLIB_GLZ_RGB => {
                let glz_data_size = r.read_u32("zlib_glz glz_data_size")?;
                let data = read_binary(r, "zlib_glz data")?;
                ImageBody::ZlibGlzRgb(ZlibGlzRgb {
                    glz_data_size,
                    data,
                })
            }
            ImageType::JPEG_ALPHA => {
                r.ensure(9, "jpeg_alpha")?;
                let flags = JpegAlphaFlags::from_bits_retain(r.read_u8("jpeg_alpha flags")?);
                let jpeg_size = r.read_u32("jpeg_alpha jpeg_size")?;
                let data = read_binary(r, "jpeg_alpha data")?;
                ImageBody::JpegAlpha(JpegAlpha {
                    flags,
                    jpeg_size,
                    data,
                })
            }
            ImageType::LZ4 => ImageBody::Lz4(read_binary(r, "lz4 data")?),
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "image type",
                    value: other.0.into(),
                });
            }
        };
        ext.note(r.pos());
        Ok(Self {
            id: d.id,
            flags: d.flags,
            width: d.width,
            height: d.height,
            body,
        })
    }

    /// Reads an `Image*` pointer at `r` and decodes its target; `None` for NULL.
    pub fn decode_ptr(
        r: &mut ReadCursor<'a>,
        ext: &mut BodyExtent,
        ctx: &'static str,
    ) -> Result<Option<Self>, DecodeError> {
        match read_ptr(r, ctx)? {
            None => Ok(None),
            Some(mut sub) => Image::decode(&mut sub, ext).map(Some),
        }
    }

    /// Writes the image (descriptor, body, inline data) at the current position; a palette
    /// pointer is queued in `q`.
    pub fn encode<'r>(
        &'r self,
        w: &mut WriteBuf<'_>,
        q: &mut PointerQueue<'r, 'a>,
    ) -> Result<(), EncodeError> {
        self.descriptor().encode(w)?;
        match &self.body {
            ImageBody::Bitmap(b) => {
                if u64::from(b.stride) * u64::from(b.y) != b.data.len() as u64 {
                    return Err(EncodeError::Inconsistent {
                        field: "bitmap data (length must be stride * y)",
                    });
                }
                w.write_u8(b.format.0);
                w.write_u8(b.flags.bits());
                w.write_u32(b.x);
                w.write_u32(b.y);
                w.write_u32(b.stride);
                encode_palette_source(w, q, b.flags, &b.palette, false)?;
                w.write_slice(b.data);
            }
            ImageBody::Quic(d) => write_binary(w, d, "quic data_size")?,
            ImageBody::LzPlt(l) => {
                w.write_u8(l.flags.bits());
                w.write_u32(WriteBuf::len_as(l.data.len(), "lz_plt data_size")?);
                encode_palette_source(w, q, l.flags, &l.palette, true)?;
                w.write_slice(l.data);
            }
            ImageBody::LzRgb(d) => write_binary(w, d, "lz_rgb data_size")?,
            ImageBody::GlzRgb(d) => write_binary(w, d, "glz_rgb data_size")?,
            ImageBody::FromCache | ImageBody::FromCacheLossless => {}
            ImageBody::Surface(id) => w.write_u32(*id),
            ImageBody::Jpeg(d) => write_binary(w, d, "jpeg data_size")?,
            ImageBody::ZlibGlzRgb(z) => {
                w.write_u32(z.glz_data_size);
                write_binary(w, z.data, "zlib_glz data_size")?;
            }
            ImageBody::JpegAlpha(j) => {
                w.write_u8(j.flags.bits());
                w.write_u32(j.jpeg_size);
                write_binary(w, j.data, "jpeg_alpha data_size")?;
            }
            ImageBody::Lz4(d) => write_binary(w, d, "lz4 data_size")?,
        }
        Ok(())
    }

    /// Reserves an `Image*` slot at the current position and queues `img` (NULL for `None`).
    pub fn encode_ptr<'r>(
        img: Option<&'r Image<'a>>,
        w: &mut WriteBuf<'_>,
        q: &mut PointerQueue<'r, 'a>,
    ) {
        match img {
            Some(img) => q.push(w, Pointee::Image(img)),
            None => w.write_u32(0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Brush, QMask, LineAttr
// ---------------------------------------------------------------------------------------

/// `Pattern`: `Image* pat (@nonnull); Point pos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern<'a> {
    /// The pattern image.
    pub pat: Image<'a>,
    /// Pattern origin.
    pub pos: Point,
}

/// `Brush`: `u8 type` (0 NONE, 1 SOLID + `u32 color`, 2 PATTERN + [`Pattern`]).
/// Other types are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Brush<'a> {
    /// No brush.
    #[default]
    None,
    /// A solid colour.
    Solid(u32),
    /// An image pattern.
    Pattern(Pattern<'a>),
}

impl<'a> Brush<'a> {
    /// Decodes a brush at `r`, following a pattern's image pointer.
    pub fn decode(r: &mut ReadCursor<'a>, ext: &mut BodyExtent) -> Result<Self, DecodeError> {
        match r.read_u8("brush type")? {
            0 => Ok(Brush::None),
            1 => Ok(Brush::Solid(r.read_u32("brush color")?)),
            2 => {
                let mut sub = read_nonnull_ptr(r, "pattern image")?;
                let pat = Image::decode(&mut sub, ext)?;
                let pos = Point::decode(r)?;
                Ok(Brush::Pattern(Pattern { pat, pos }))
            }
            v => Err(DecodeError::InvalidValue {
                field: "brush type",
                value: v.into(),
            }),
        }
    }

    /// Writes the brush; a pattern's image is queued in `q`.
    pub fn encode<'r>(&'r self, w: &mut WriteBuf<'_>, q: &mut PointerQueue<'r, 'a>) {
        match self {
            Brush::None => w.write_u8(0),
            Brush::Solid(c) => {
                w.write_u8(1);
                w.write_u32(*c);
            }
            Brush::Pattern(p) => {
                w.write_u8(2);
                q.push(w, Pointee::Image(&p.pat));
                w.write_i32(p.pos.x);
                w.write_i32(p.pos.y);
            }
        }
    }
}

/// `QMask`: `u8 flags; Point pos; Image* bitmap` (13 bytes; NULL = no mask).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QMask<'a> {
    /// Flags.
    pub flags: MaskFlags,
    /// Mask origin.
    pub pos: Point,
    /// The 1-bpp mask image, if any.
    pub bitmap: Option<Image<'a>>,
}

impl Default for MaskFlags {
    fn default() -> Self {
        MaskFlags::empty()
    }
}

impl<'a> QMask<'a> {
    /// Size of the fixed part.
    pub const SIZE: usize = 1 + 8 + 4;

    /// Decodes a mask at `r`, following its image pointer.
    pub fn decode(r: &mut ReadCursor<'a>, ext: &mut BodyExtent) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "qmask")?;
        let flags = MaskFlags::from_bits_retain(r.read_u8("qmask flags")?);
        let pos = Point::decode(r)?;
        let bitmap = Image::decode_ptr(r, ext, "qmask bitmap")?;
        Ok(Self { flags, pos, bitmap })
    }

    /// Writes the mask; its image is queued in `q`.
    pub fn encode<'r>(&'r self, w: &mut WriteBuf<'_>, q: &mut PointerQueue<'r, 'a>) {
        w.write_u8(self.flags.bits());
        w.write_i32(self.pos.x);
        w.write_i32(self.pos.y);
        Image::encode_ptr(self.bitmap.as_ref(), w, q);
    }
}

/// `LineAttr`: `u8 flags`; if `STYLED`: `u8 style_nseg` and a pointer to
/// `fixed28_4 style[style_nseg]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAttr {
    /// Flags.
    pub flags: LineFlags,
    /// Number of dash segments (0 unless `STYLED`).
    pub style_nseg: u8,
    /// The dash pattern (28.4 fixed), `None` for a NULL pointer (always `None` unless
    /// `STYLED`); when present its length is `style_nseg`. An empty pattern is written as a
    /// NULL pointer (as spice-server does) and so decodes as `None`.
    pub style: Option<Vec<i32>>,
}

impl LineAttr {
    /// Decodes line attributes at `r`, following the style pointer.
    pub fn decode(r: &mut ReadCursor<'_>, ext: &mut BodyExtent) -> Result<Self, DecodeError> {
        let flags = LineFlags::from_bits_retain(r.read_u8("line flags")?);
        if !flags.contains(LineFlags::STYLED) {
            return Ok(Self {
                flags,
                style_nseg: 0,
                style: None,
            });
        }
        let style_nseg = r.read_u8("line style_nseg")?;
        let style = match read_ptr(r, "line style")? {
            // An empty style has no bytes; spice-server's marshaller leaves the pointer of an
            // empty sub-marshaller NULL, so an empty style is always read back as NULL.
            Some(_) if style_nseg == 0 => None,
            None => None,
            Some(mut sub) => {
                let n = sub.check_count(style_nseg.into(), 4, "line style")?;
                let v = (0..n)
                    .map(|_| sub.read_i32("line style"))
                    .collect::<Result<Vec<_>, _>>()?;
                ext.note(sub.pos());
                Some(v)
            }
        };
        Ok(Self {
            flags,
            style_nseg,
            style,
        })
    }

    /// Writes the attributes; the style array is queued in `q`.
    pub fn encode<'r, 'a>(
        &'r self,
        w: &mut WriteBuf<'_>,
        q: &mut PointerQueue<'r, 'a>,
    ) -> Result<(), EncodeError> {
        let styled = self.flags.contains(LineFlags::STYLED);
        let consistent = if styled {
            self.style
                .as_ref()
                .is_none_or(|s| s.len() == usize::from(self.style_nseg))
        } else {
            self.style_nseg == 0 && self.style.is_none()
        };
        if !consistent {
            return Err(EncodeError::Inconsistent {
                field: "line attr (STYLED vs style_nseg / style)",
            });
        }
        w.write_u8(self.flags.bits());
        if styled {
            w.write_u8(self.style_nseg);
            match &self.style {
                Some(s) => q.push(w, Pointee::Style(s)),
                None => w.write_u32(0),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Path and String (pointees of DRAW_STROKE / DRAW_TEXT)
// ---------------------------------------------------------------------------------------

/// `PathSegment`: `u8 flags; u32 count; PointFix points[count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSegment {
    /// Flags.
    pub flags: PathFlags,
    /// Points.
    pub points: Vec<PointFix>,
}

/// `Path`: `u32 num_segments; PathSegment segments[num_segments]` (segments inline).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path {
    /// Segments.
    pub segments: Vec<PathSegment>,
}

impl<'a> Decode<'a> for Path {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        let n = r.read_u32("path num_segments")?;
        let n = r.check_count(n.into(), 5, "path segments")?;
        let mut segments = Vec::with_capacity(n);
        for _ in 0..n {
            r.ensure(5, "path segment")?;
            let flags = PathFlags::from_bits_retain(r.read_u8("path segment flags")?);
            let count = r.read_u32("path segment count")?;
            let count = r.check_count(count.into(), PointFix::SIZE, "path points")?;
            let points = (0..count)
                .map(|_| PointFix::decode(r))
                .collect::<Result<_, _>>()?;
            segments.push(PathSegment { flags, points });
        }
        Ok(Self { segments })
    }
}

impl Encode for Path {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(WriteBuf::len_as(self.segments.len(), "path num_segments")?);
        for seg in &self.segments {
            w.write_u8(seg.flags.bits());
            w.write_u32(WriteBuf::len_as(seg.points.len(), "path segment count")?);
            for p in &seg.points {
                p.encode(w)?;
            }
        }
        Ok(())
    }
}

impl Path {
    /// Reads a `Path*` (`@nonnull`) pointer at `r` and decodes its target.
    pub fn decode_ptr(
        r: &mut ReadCursor<'_>,
        ext: &mut BodyExtent,
        ctx: &'static str,
    ) -> Result<Self, DecodeError> {
        let mut sub = read_nonnull_ptr(r, ctx)?;
        let p = Path::decode(&mut sub)?;
        ext.note(sub.pos());
        Ok(p)
    }

    /// Reserves a `Path*` slot and queues `self`.
    pub fn encode_ptr<'r, 'a>(&'r self, w: &mut WriteBuf<'_>, q: &mut PointerQueue<'r, 'a>) {
        q.push(w, Pointee::Path(self));
    }
}

/// `RasterGlyphA1/A4/A8`: `Point render_pos; Point glyph_origin; u16 width; u16 height;`
/// then `image_size(bpp, width, height) = ((bpp*width+7)/8)*height` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RasterGlyph<'a> {
    /// Where the glyph is rendered.
    pub render_pos: Point,
    /// Glyph origin.
    pub glyph_origin: Point,
    /// Width in pixels.
    pub width: u16,
    /// Height in rows.
    pub height: u16,
    /// Glyph bitmap, borrowed.
    pub data: &'a [u8],
}

/// Bytes of a `bpp`-deep image of `width` × `rows` (spice.proto's `image_size`).
pub fn image_size(bpp: u32, width: u32, rows: u32) -> u64 {
    (u64::from(bpp) * u64::from(width)).div_ceil(8) * u64::from(rows)
}

/// `String` (spice.proto): `u16 length; u8 flags`, then `length` raster glyphs whose depth
/// is given by the single RASTER_A1/A4/A8 flag.
///
/// spice.proto requires exactly one of the three depth bits; a string with none or several
/// is rejected ([`DecodeError::InvalidValue`]) since its glyphs' size would be ambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceString<'a> {
    /// Flags (one depth bit, maybe TOP_DOWN).
    pub flags: StringFlags,
    /// Glyphs.
    pub glyphs: Vec<RasterGlyph<'a>>,
}

impl SpiceString<'_> {
    /// Bits per pixel of the glyphs, or `None` unless exactly one depth bit is set.
    pub fn bpp(flags: StringFlags) -> Option<u32> {
        let depth =
            flags & (StringFlags::RASTER_A1 | StringFlags::RASTER_A4 | StringFlags::RASTER_A8);
        if depth == StringFlags::RASTER_A1 {
            Some(1)
        } else if depth == StringFlags::RASTER_A4 {
            Some(4)
        } else if depth == StringFlags::RASTER_A8 {
            Some(8)
        } else {
            None
        }
    }
}

impl<'a> Decode<'a> for SpiceString<'a> {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(3, "string")?;
        let length = r.read_u16("string length")?;
        let flags = StringFlags::from_bits_retain(r.read_u8("string flags")?);
        let bpp = Self::bpp(flags).ok_or(DecodeError::InvalidValue {
            field: "string flags (one of RASTER_A1/A4/A8)",
            value: flags.bits().into(),
        })?;
        let n = r.check_count(length.into(), 20, "string glyphs")?;
        let mut glyphs = Vec::with_capacity(n);
        for _ in 0..n {
            let render_pos = Point::decode(r)?;
            let glyph_origin = Point::decode(r)?;
            let width = r.read_u16("glyph width")?;
            let height = r.read_u16("glyph height")?;
            let size = image_size(bpp, width.into(), height.into());
            let size = r.check_count(size, 1, "glyph data")?;
            let data = r.read_slice(size, "glyph data")?;
            glyphs.push(RasterGlyph {
                render_pos,
                glyph_origin,
                width,
                height,
                data,
            });
        }
        Ok(Self { flags, glyphs })
    }
}

impl Encode for SpiceString<'_> {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        let bpp = Self::bpp(self.flags).ok_or(EncodeError::Inconsistent {
            field: "string flags (one of RASTER_A1/A4/A8)",
        })?;
        w.write_u16(WriteBuf::len_as(self.glyphs.len(), "string length")?);
        w.write_u8(self.flags.bits());
        for g in &self.glyphs {
            if image_size(bpp, g.width.into(), g.height.into()) != g.data.len() as u64 {
                return Err(EncodeError::Inconsistent {
                    field: "glyph data (length must be image_size(bpp, width, height))",
                });
            }
            g.render_pos.encode(w)?;
            g.glyph_origin.encode(w)?;
            w.write_u16(g.width);
            w.write_u16(g.height);
            w.write_slice(g.data);
        }
        Ok(())
    }
}

impl<'a> SpiceString<'a> {
    /// Reads a `String*` (`@nonnull`) pointer at `r` and decodes its target.
    pub fn decode_ptr(
        r: &mut ReadCursor<'a>,
        ext: &mut BodyExtent,
        ctx: &'static str,
    ) -> Result<Self, DecodeError> {
        let mut sub = read_nonnull_ptr(r, ctx)?;
        let s = SpiceString::decode(&mut sub)?;
        ext.note(sub.pos());
        Ok(s)
    }

    /// Reserves a `String*` slot and queues `self`.
    pub fn encode_ptr<'r>(&'r self, w: &mut WriteBuf<'_>, q: &mut PointerQueue<'r, 'a>) {
        q.push(w, Pointee::Str(self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_rule() {
        assert_eq!(image_size(1, 9, 2), 4);
        assert_eq!(image_size(4, 3, 5), 10);
        assert_eq!(image_size(8, 7, 3), 21);
        assert_eq!(image_size(1, 0, 100), 0);
    }

    #[test]
    fn rect_wire_order_is_top_left_bottom_right() {
        let r = Rect {
            top: 1,
            left: 2,
            bottom: 3,
            right: 4,
        };
        assert_eq!(
            r.to_vec().unwrap(),
            [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]
        );
    }

    #[test]
    fn enum_names() {
        assert_eq!(ImageType::LZ4.name(), Some("LZ4"));
        assert_eq!(ImageType(77).name(), None);
        assert_eq!(SurfaceFormat(96), SurfaceFormat::FMT_32_ARGB);
    }

    #[test]
    fn unknown_flag_bits_are_kept() {
        let f = ImageFlags::from_bits_retain(0xf1);
        assert_eq!(f.bits(), 0xf1);
        assert!(f.contains(ImageFlags::CACHE_ME));
    }
}

/// proptest strategies for the display types (feature `proptest`). Byte payloads are leaked
/// to get `'static` borrows, which is fine for tests.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A leaked byte string of up to `max` bytes.
    pub fn bytes(max: usize) -> BoxedStrategy<&'static [u8]> {
        vec(any::<u8>(), 0..=max)
            .prop_map(|v| &*Box::leak(v.into_boxed_slice()))
            .boxed()
    }

    /// A leaked byte string of exactly `n` bytes.
    pub fn exact_bytes(n: usize) -> BoxedStrategy<&'static [u8]> {
        vec(any::<u8>(), n)
            .prop_map(|v| &*Box::leak(v.into_boxed_slice()))
            .boxed()
    }

    /// Any [`Point`].
    pub fn point() -> BoxedStrategy<Point> {
        (any::<i32>(), any::<i32>())
            .prop_map(|(x, y)| Point { x, y })
            .boxed()
    }

    /// Any [`Point16`].
    pub fn point16() -> BoxedStrategy<Point16> {
        (any::<i16>(), any::<i16>())
            .prop_map(|(x, y)| Point16 { x, y })
            .boxed()
    }

    /// Any [`Rect`].
    pub fn rect() -> BoxedStrategy<Rect> {
        any::<[i32; 4]>()
            .prop_map(|[top, left, bottom, right]| Rect {
                top,
                left,
                bottom,
                right,
            })
            .boxed()
    }

    /// Any [`Transform`].
    pub fn transform() -> BoxedStrategy<Transform> {
        any::<[u32; 6]>()
            .prop_map(|t| Transform {
                t00: t[0],
                t01: t[1],
                t02: t[2],
                t10: t[3],
                t11: t[4],
                t12: t[5],
            })
            .boxed()
    }

    /// A [`Clip`], NONE or up to 4 rectangles.
    pub fn clip() -> BoxedStrategy<Clip> {
        prop_oneof![
            Just(Clip::None),
            vec(rect(), 0..4).prop_map(|rects| Clip::Rects(ClipRects { rects })),
        ]
        .boxed()
    }

    /// Any [`DisplayBase`].
    pub fn display_base() -> BoxedStrategy<DisplayBase> {
        (any::<u32>(), rect(), clip())
            .prop_map(|(surface_id, bbox, clip)| DisplayBase {
                surface_id,
                bbox,
                clip,
            })
            .boxed()
    }

    /// Any [`ResourceId`].
    pub fn resource_id() -> BoxedStrategy<ResourceId> {
        (any::<u8>(), any::<u64>())
            .prop_map(|(t, id)| ResourceId {
                resource_type: ResourceType(t),
                id,
            })
            .boxed()
    }

    /// Any [`WaitForChannel`].
    pub fn wait_for_channel() -> BoxedStrategy<WaitForChannel> {
        (any::<u8>(), any::<u8>(), any::<u64>())
            .prop_map(
                |(channel_type, channel_id, message_serial)| WaitForChannel {
                    channel_type,
                    channel_id,
                    message_serial,
                },
            )
            .boxed()
    }

    /// Any [`Head`].
    pub fn head() -> BoxedStrategy<Head> {
        any::<[u32; 7]>()
            .prop_map(|h| Head {
                monitor_id: h[0],
                surface_id: h[1],
                width: h[2],
                height: h[3],
                x: h[4],
                y: h[5],
                flags: h[6],
            })
            .boxed()
    }

    /// Any [`StreamDataHeader`].
    pub fn stream_data_header() -> BoxedStrategy<StreamDataHeader> {
        (any::<u32>(), any::<u32>())
            .prop_map(|(id, multi_media_time)| StreamDataHeader {
                id,
                multi_media_time,
            })
            .boxed()
    }

    /// A [`Palette`] of up to 16 entries.
    pub fn palette() -> BoxedStrategy<Palette> {
        (any::<u64>(), vec(any::<u32>(), 0..16))
            .prop_map(|(unique, ents)| Palette { unique, ents })
            .boxed()
    }

    fn with_pal_flag(flags: u8, src: &PaletteSource) -> BitmapFlags {
        let mut f = BitmapFlags::from_bits_retain(flags);
        f.set(
            BitmapFlags::PAL_FROM_CACHE,
            matches!(src, PaletteSource::FromCache(_)),
        );
        f
    }

    fn bitmap() -> BoxedStrategy<ImageBody<'static>> {
        (0u32..24, 0u32..8)
            .prop_flat_map(|(stride, y)| {
                (
                    any::<u8>(),
                    any::<u8>(),
                    any::<u32>(),
                    Just((stride, y)),
                    prop_oneof![
                        any::<u64>().prop_map(PaletteSource::FromCache),
                        palette().prop_map(PaletteSource::Inline),
                        Just(PaletteSource::None),
                    ],
                    exact_bytes((stride * y) as usize),
                )
            })
            .prop_map(|(format, flags, x, (stride, y), palette, data)| {
                ImageBody::Bitmap(Bitmap {
                    format: BitmapFormat(format),
                    flags: with_pal_flag(flags, &palette),
                    x,
                    y,
                    stride,
                    palette,
                    data,
                })
            })
            .boxed()
    }

    /// An [`ImageBody`] of any of the 12 kinds.
    pub fn image_body() -> BoxedStrategy<ImageBody<'static>> {
        prop_oneof![
            bitmap(),
            bytes(48).prop_map(ImageBody::Quic),
            (
                any::<u8>(),
                prop_oneof![
                    any::<u64>().prop_map(PaletteSource::FromCache),
                    palette().prop_map(PaletteSource::Inline),
                ],
                bytes(48)
            )
                .prop_map(|(flags, palette, data)| ImageBody::LzPlt(LzPlt {
                    flags: with_pal_flag(flags, &palette),
                    palette,
                    data,
                })),
            bytes(48).prop_map(ImageBody::LzRgb),
            bytes(48).prop_map(ImageBody::GlzRgb),
            Just(ImageBody::FromCache),
            any::<u32>().prop_map(ImageBody::Surface),
            bytes(48).prop_map(ImageBody::Jpeg),
            Just(ImageBody::FromCacheLossless),
            (any::<u32>(), bytes(48)).prop_map(|(glz_data_size, data)| {
                ImageBody::ZlibGlzRgb(ZlibGlzRgb {
                    glz_data_size,
                    data,
                })
            }),
            (any::<u8>(), any::<u32>(), bytes(48)).prop_map(|(f, jpeg_size, data)| {
                ImageBody::JpegAlpha(JpegAlpha {
                    flags: JpegAlphaFlags::from_bits_retain(f),
                    jpeg_size,
                    data,
                })
            }),
            bytes(48).prop_map(ImageBody::Lz4),
        ]
        .boxed()
    }

    /// An [`Image`] of any kind.
    pub fn image() -> BoxedStrategy<Image<'static>> {
        (
            any::<u64>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            image_body(),
        )
            .prop_map(|(id, flags, width, height, body)| Image {
                id,
                flags: ImageFlags::from_bits_retain(flags),
                width,
                height,
                body,
            })
            .boxed()
    }

    /// A [`Brush`]: none, solid or pattern.
    pub fn brush() -> BoxedStrategy<Brush<'static>> {
        prop_oneof![
            Just(Brush::None),
            any::<u32>().prop_map(Brush::Solid),
            (image(), point()).prop_map(|(pat, pos)| Brush::Pattern(Pattern { pat, pos })),
        ]
        .boxed()
    }

    /// A [`QMask`] with or without an image.
    pub fn qmask() -> BoxedStrategy<QMask<'static>> {
        (any::<u8>(), point(), proptest::option::of(image()))
            .prop_map(|(flags, pos, bitmap)| QMask {
                flags: MaskFlags::from_bits_retain(flags),
                pos,
                bitmap,
            })
            .boxed()
    }

    /// A consistent [`LineAttr`] (styled or not, NULL or present style).
    pub fn line_attr() -> BoxedStrategy<LineAttr> {
        (
            any::<u8>(),
            proptest::option::of(vec(any::<i32>(), 1..6)),
            any::<bool>(),
        )
            .prop_map(|(flags, style, styled)| {
                let mut flags = LineFlags::from_bits_retain(flags);
                flags.set(LineFlags::STYLED, styled);
                if styled {
                    let nseg = style.as_ref().map_or(3, |s| s.len() as u8);
                    LineAttr {
                        flags,
                        style_nseg: nseg,
                        style,
                    }
                } else {
                    LineAttr {
                        flags,
                        style_nseg: 0,
                        style: None,
                    }
                }
            })
            .boxed()
    }

    /// A [`Path`] of up to 3 segments of up to 4 points.
    pub fn path() -> BoxedStrategy<Path> {
        vec(
            (
                any::<u8>(),
                vec(
                    (any::<i32>(), any::<i32>()).prop_map(|(x, y)| PointFix { x, y }),
                    0..4,
                ),
            )
                .prop_map(|(f, points)| PathSegment {
                    flags: PathFlags::from_bits_retain(f),
                    points,
                }),
            0..3,
        )
        .prop_map(|segments| Path { segments })
        .boxed()
    }

    /// A [`SpiceString`] of up to 3 glyphs with correctly sized data.
    pub fn spice_string() -> BoxedStrategy<SpiceString<'static>> {
        (prop_oneof![Just(1u8), Just(2u8), Just(4u8)], any::<bool>())
            .prop_flat_map(|(depth, top_down)| {
                let mut flags = StringFlags::from_bits_retain(depth);
                flags.set(StringFlags::RASTER_TOP_DOWN, top_down);
                let bpp = SpiceString::bpp(flags).unwrap_or(8);
                let glyph = (point(), point(), 0u16..12, 0u16..6).prop_flat_map(
                    move |(render_pos, glyph_origin, width, height)| {
                        let n = image_size(bpp, width.into(), height.into()) as usize;
                        exact_bytes(n).prop_map(move |data| RasterGlyph {
                            render_pos,
                            glyph_origin,
                            width,
                            height,
                            data,
                        })
                    },
                );
                (Just(flags), vec(glyph, 0..3))
            })
            .prop_map(|(flags, glyphs)| SpiceString { flags, glyphs })
            .boxed()
    }

    /// A consistent [`Cursor`] (NONE without header, otherwise with one).
    pub fn cursor() -> BoxedStrategy<Cursor<'static>> {
        (
            any::<u16>(),
            (any::<u64>(), any::<u8>(), any::<[u16; 4]>()),
            bytes(64),
        )
            .prop_map(|(flags, (unique, t, d), data)| {
                let flags = CursorFlags::from_bits_retain(flags);
                let header = (!flags.contains(CursorFlags::NONE)).then_some(CursorHeader {
                    unique,
                    cursor_type: CursorType(t),
                    width: d[0],
                    height: d[1],
                    hot_spot_x: d[2],
                    hot_spot_y: d[3],
                });
                Cursor {
                    flags,
                    header,
                    data,
                }
            })
            .boxed()
    }
}
