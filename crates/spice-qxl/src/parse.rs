//! Parsing QXL commands out of guest memory into owned, validated values.
//!
//! Every structure is copied out of guest memory once (so a guest changing it meanwhile cannot
//! make two reads disagree), every pointer goes through [`MemSlotTable::translate`] for the full
//! length it is used for, every chunk chain is bounded by [`ParseLimits::max_chunks`] (so a chain
//! that loops ends with [`ParseError::TooManyChunks`]), and every byte copied counts against
//! [`ParseLimits::max_command_bytes`], checked before anything is allocated.
//!
//! The parsed types mirror SPICE's display types (`SpiceImage`, `SpiceClip`, `SpiceBrush`, the
//! draw operations of `SpiceMsgDisplayDraw*`) field for field, with image data gathered out of
//! chunks into one buffer, so converting them into spice-proto's display messages is a direct
//! mapping.

use thiserror::Error;
use zerocopy::FromBytes;

use crate::abi::{self, QxlPhysical, bitmap_flags, bitmap_fmt, brush_type, clip_type, draw_type};
use crate::memory::{GuestMemory, MemSlotTable, MemoryError, TranslateError};

/// Caps the host sets on what one command may make the device copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Longest chunk chain followed (empty chunks count too). spice-server: 2 M.
    pub max_chunks: u32,
    /// Total bytes of variable data (pixels, rectangles, glyphs, path points, text) one
    /// command may carry.
    pub max_command_bytes: u64,
}

impl Default for ParseLimits {
    /// 16384 chunks, 64 MiB per command (a 4096x4096 32-bit bitmap fits).
    fn default() -> Self {
        ParseLimits {
            max_chunks: 16384,
            max_command_bytes: 64 << 20,
        }
    }
}

/// What was wrong with a command in guest memory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// An address did not translate.
    #[error("{what}: {source}")]
    Translate {
        /// The structure being read.
        what: &'static str,
        /// Why.
        #[source]
        source: TranslateError,
    },
    /// The host memory refused the access.
    #[error("{what}: {source}")]
    Memory {
        /// The structure being read.
        what: &'static str,
        /// Why.
        #[source]
        source: MemoryError,
    },
    /// A chunk chain longer than the cap (or looping).
    #[error("{what}: chunk chain longer than {limit} chunks (loop?)")]
    TooManyChunks {
        /// The structure being read.
        what: &'static str,
        /// The cap.
        limit: u32,
    },
    /// More variable data than the command's budget.
    #[error("{what}: {size} bytes exceed the remaining budget of {remaining}")]
    DataTooLarge {
        /// The structure being read.
        what: &'static str,
        /// The size asked for.
        size: u64,
        /// What was left of [`ParseLimits::max_command_bytes`].
        remaining: u64,
    },
    /// A declared size disagrees with the data found.
    #[error("{what}: declared {declared} bytes, found {actual}")]
    SizeMismatch {
        /// The structure.
        what: &'static str,
        /// Declared size.
        declared: u64,
        /// Actual size.
        actual: u64,
    },
    /// A command type the device does not know.
    #[error("unknown command type {0}")]
    UnknownCommandType(u32),
    /// A draw type the device does not know.
    #[error("unknown draw type {0}")]
    UnknownDrawType(u8),
    /// An image type the guest may not send.
    #[error("unknown or unsupported image type {0}")]
    UnknownImageType(u8),
    /// A bitmap format the device does not know.
    #[error("unknown bitmap format {0}")]
    UnknownBitmapFormat(u8),
    /// A bitmap of zero width or height.
    #[error("zero-area bitmap")]
    ZeroAreaBitmap,
    /// A bitmap whose stride is too small for its width.
    #[error("bitmap stride {stride} too small for width {width} at {bpp} bpp")]
    StrideTooSmall {
        /// Stride.
        stride: u32,
        /// Width.
        width: u32,
        /// Bits per pixel.
        bpp: u32,
    },
    /// A palette format bitmap without palette.
    #[error("palette bitmap (format {0}) without palette")]
    MissingPalette(u8),
    /// A source area outside its bitmap or inverted.
    #[error("source area outside the source image")]
    BadSourceArea,
    /// A clip type the device does not know.
    #[error("unknown clip type {0}")]
    UnknownClipType(u32),
    /// A brush type the device does not know.
    #[error("unknown brush type {0}")]
    UnknownBrushType(u32),
    /// A required pointer was 0.
    #[error("{0}: null address")]
    NullAddress(&'static str),
    /// A path segment whose points run past the path data.
    #[error("path segment runs past the path data")]
    BadPathSegment,
    /// A glyph that runs past the string data.
    #[error("glyph runs past the string data")]
    BadGlyph,
    /// A string with no raster format flag.
    #[error("string without raster format flags ({0:#x})")]
    BadStringFlags(u16),
    /// A string whose glyph count disagrees with its length field.
    #[error("string declares {declared} glyphs, data holds {actual}")]
    GlyphCountMismatch {
        /// Declared.
        declared: u16,
        /// Found.
        actual: u32,
    },
    /// A surface with an unknown format, too small a stride or too large a size.
    #[error("invalid surface {width}x{height} stride {stride} format {format}")]
    InvalidSurface {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Stride.
        stride: i32,
        /// Format.
        format: u32,
    },
    /// A surface command type the device does not know.
    #[error("unknown surface command type {0}")]
    UnknownSurfaceCmd(u8),
    /// A cursor command type the device does not know.
    #[error("unknown cursor command type {0}")]
    UnknownCursorCmd(u8),
    /// A message without NUL terminator inside its slot (or the first 100000 bytes).
    #[error("message text is not NUL-terminated")]
    UnterminatedMessage,
    /// A monitors config with too many heads.
    #[error("monitors config has {count} heads, more than {max}")]
    TooManyHeads {
        /// Declared.
        count: u16,
        /// Cap.
        max: u16,
    },
}

/// A QXL command as the device hands it to the server (`QXLCommandExt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandExt {
    /// QXL address of the command structure.
    pub addr: QxlPhysical,
    /// [`abi::cmd_type`].
    pub cmd_type: u32,
    /// Memory slot group to translate with.
    pub group_id: u32,
    /// `QXL_COMMAND_FLAG_*`.
    pub flags: u32,
}

/// Where a command's `QXLReleaseInfo` lives, to give the resource back (`QXLReleaseInfoExt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReleaseInfoExt {
    /// Host offset of the `QXLReleaseInfo` (validated when the command was read).
    pub info_offset: u64,
    /// Memory slot group of the command.
    pub group_id: u32,
}

/// A point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    /// x
    pub x: i32,
    /// y
    pub y: i32,
}

/// A 16-bit point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point16 {
    /// x
    pub x: i16,
    /// y
    pub y: i16,
}

/// A rectangle (`SpiceRect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// top
    pub top: i32,
    /// left
    pub left: i32,
    /// bottom
    pub bottom: i32,
    /// right
    pub right: i32,
}

impl Rect {
    /// The rectangle from (`left`, `top`) to (`right`, `bottom`), exclusive.
    pub const fn new(left: i32, top: i32, right: i32, bottom: i32) -> Self {
        Self {
            top,
            left,
            bottom,
            right,
        }
    }
}

impl From<abi::QxlRect> for Rect {
    fn from(r: abi::QxlRect) -> Self {
        Rect {
            top: r.top.get(),
            left: r.left.get(),
            bottom: r.bottom.get(),
            right: r.right.get(),
        }
    }
}
impl From<abi::QxlPoint> for Point {
    fn from(p: abi::QxlPoint) -> Self {
        Point {
            x: p.x.get(),
            y: p.y.get(),
        }
    }
}
impl From<abi::QxlPoint16> for Point16 {
    fn from(p: abi::QxlPoint16) -> Self {
        Point16 {
            x: p.x.get(),
            y: p.y.get(),
        }
    }
}

/// A command read from the command or cursor ring.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParsedCommand {
    /// `QXL_CMD_DRAW`.
    Draw(Box<ParsedDrawable>),
    /// `QXL_CMD_UPDATE`.
    Update(ParsedUpdate),
    /// `QXL_CMD_SURFACE`.
    Surface(ParsedSurfaceCmd),
    /// `QXL_CMD_MESSAGE`.
    Message(ParsedMessage),
    /// `QXL_CMD_CURSOR`.
    Cursor(ParsedCursorCmd),
}

impl ParsedCommand {
    /// Where to release this command's resource when the server is done with it.
    pub fn release_info(&self) -> ReleaseInfoExt {
        match self {
            ParsedCommand::Draw(d) => d.release,
            ParsedCommand::Update(u) => u.release,
            ParsedCommand::Surface(s) => s.release,
            ParsedCommand::Message(m) => m.release,
            ParsedCommand::Cursor(c) => c.release,
        }
    }
}

/// `QXL_CMD_UPDATE`: the guest asks to be told when `area` is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// Release location.
    pub release: ReleaseInfoExt,
    /// Area.
    pub area: Rect,
    /// Echoed through `notify_update`.
    pub update_id: u32,
    /// Surface (0 for compat commands).
    pub surface_id: u32,
}

/// `QXL_CMD_MESSAGE`: a debug text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMessage {
    /// Release location.
    pub release: ReleaseInfoExt,
    /// The text, without its NUL.
    pub text: Vec<u8>,
}

/// `QXL_CMD_SURFACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSurfaceCmd {
    /// Release location.
    pub release: ReleaseInfoExt,
    /// Surface id.
    pub surface_id: u32,
    /// Flags.
    pub flags: u32,
    /// Create or destroy.
    pub op: SurfaceOp,
}

/// What a surface command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurfaceOp {
    /// Create a surface whose pixels stay in guest memory.
    Create(SurfaceCreate),
    /// Destroy the surface.
    Destroy,
}

/// A validated surface: format, geometry, and where its pixels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceCreate {
    /// [`abi::surface_fmt`].
    pub format: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Stride; negative for bottom-up surfaces.
    pub stride: i32,
    /// QXL address of the pixels.
    pub data_addr: QxlPhysical,
    /// Host offset of the first byte of the pixels; `height * |stride|` bytes are inside one slot.
    pub data_offset: u64,
}

impl SurfaceCreate {
    /// Bytes of pixel memory (`height * |stride|`).
    pub fn byte_len(&self) -> u64 {
        u64::from(self.height) * u64::from(self.stride.unsigned_abs())
    }
}

/// Check a surface's geometry as spice-server does; returns its byte size.
pub fn validate_surface(
    width: u32,
    height: u32,
    stride: i32,
    format: u32,
) -> Result<u64, ParseError> {
    let bad = || ParseError::InvalidSurface {
        width,
        height,
        stride,
        format,
    };
    let bpp = abi::surface_fmt::bits_per_pixel(format).ok_or_else(bad)?;
    let row = (u64::from(width) * u64::from(bpp)).div_ceil(8);
    if stride == i32::MIN || row > u64::from(stride.unsigned_abs()) {
        return Err(bad());
    }
    let size = u64::from(height) * u64::from(stride.unsigned_abs());
    if size > 0x7fff_ffff {
        return Err(bad());
    }
    Ok(size)
}

/// `QXL_CMD_CURSOR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCursorCmd {
    /// Release location.
    pub release: ReleaseInfoExt,
    /// What to do.
    pub op: CursorOp,
}

/// A cursor operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorOp {
    /// Set shape and position.
    Set {
        /// Position.
        position: Point16,
        /// Visible.
        visible: bool,
        /// Shape.
        shape: CursorShape,
    },
    /// Move.
    Move {
        /// Position.
        position: Point16,
    },
    /// Hide.
    Hide,
    /// Trail.
    Trail {
        /// Length.
        length: u16,
        /// Frequency.
        frequency: u16,
    },
}

/// A cursor shape (`SpiceCursor`), data gathered from its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Cache id.
    pub unique: u64,
    /// `SPICE_CURSOR_TYPE_*`.
    pub cursor_type: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hot spot x.
    pub hot_spot_x: u16,
    /// Hot spot y.
    pub hot_spot_y: u16,
    /// Shape data (at most the declared `data_size`).
    pub data: Vec<u8>,
}

/// `QXL_CMD_DRAW`: a drawable (`RedDrawable`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDrawable {
    /// Release location.
    pub release: ReleaseInfoExt,
    /// Target surface.
    pub surface_id: u32,
    /// `QXL_EFFECT_*`.
    pub effect: u8,
    /// The server should render and send the destination area as a bitmap.
    pub self_bitmap: bool,
    /// Area for `self_bitmap`.
    pub self_bitmap_area: Rect,
    /// Bounding box.
    pub bbox: Rect,
    /// Clip.
    pub clip: Clip,
    /// Multimedia time.
    pub mm_time: u32,
    /// Surfaces read by the operation (-1: none).
    pub surface_deps: [i32; 3],
    /// Areas read from them.
    pub surfaces_rects: [Rect; 3],
    /// The operation.
    pub op: DrawOp,
}

/// A clip (`SpiceClip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clip {
    /// No clipping.
    None,
    /// Draw only inside these rectangles.
    Rects(Vec<Rect>),
}

/// A brush (`SpiceBrush`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brush {
    /// No brush.
    None,
    /// Solid colour (32-bit xRGB; 16-bit compat colours already widened).
    Solid(u32),
    /// Image pattern.
    Pattern {
        /// The image.
        image: Box<ParsedImage>,
        /// Origin.
        pos: Point,
    },
}

/// A mask (`SpiceQMask`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QMask {
    /// `SPICE_MASK_FLAGS_*`.
    pub flags: u8,
    /// Position.
    pub pos: Point,
    /// The mask image, if any.
    pub bitmap: Option<Box<ParsedImage>>,
}

/// Source copy parameters shared by copy and blend (`SpiceCopy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    /// Source image.
    pub src: Box<ParsedImage>,
    /// Source area (checked inside the bitmap).
    pub src_area: Rect,
    /// `SPICE_ROPD_*`.
    pub rop_descriptor: u16,
    /// Scale mode.
    pub scale_mode: u8,
    /// Mask.
    pub mask: QMask,
}

/// Line attributes (`SpiceLineAttr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAttr {
    /// [`abi::line_flags`].
    pub flags: u8,
    /// Join style.
    pub join_style: u8,
    /// End style.
    pub end_style: u8,
    /// Width (28.4).
    pub width: i32,
    /// Miter limit (28.4).
    pub miter_limit: i32,
    /// Dash lengths (28.4), empty unless styled.
    pub style: Vec<i32>,
}

/// One path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSeg {
    /// `SPICE_PATH_*`.
    pub flags: u32,
    /// Points (28.4 fixed).
    pub points: Vec<Point>,
}

/// A raster glyph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RasterGlyph {
    /// Render position.
    pub render_pos: Point,
    /// Origin.
    pub glyph_origin: Point,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Pixels, `height * ceil(width * bpp / 8)` bytes.
    pub data: Vec<u8>,
}

/// A string of glyphs (`SpiceString`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedString {
    /// [`abi::string_flags`].
    pub flags: u16,
    /// Glyphs.
    pub glyphs: Vec<RasterGlyph>,
}

/// A draw operation with its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DrawOp {
    /// Nothing.
    Nop,
    /// Fill.
    Fill {
        /// Brush.
        brush: Brush,
        /// `SPICE_ROPD_*`.
        rop_descriptor: u16,
        /// Mask.
        mask: QMask,
    },
    /// Opaque.
    Opaque {
        /// Source image.
        src: Box<ParsedImage>,
        /// Source area.
        src_area: Rect,
        /// Brush.
        brush: Brush,
        /// `SPICE_ROPD_*`.
        rop_descriptor: u16,
        /// Scale mode.
        scale_mode: u8,
        /// Mask.
        mask: QMask,
    },
    /// Copy.
    Copy(CopyOp),
    /// Blend.
    Blend(CopyOp),
    /// Copy bits from `src_pos` to the bbox.
    CopyBits {
        /// Source position.
        src_pos: Point,
    },
    /// Blackness.
    Blackness {
        /// Mask.
        mask: QMask,
    },
    /// Whiteness.
    Whiteness {
        /// Mask.
        mask: QMask,
    },
    /// Invert.
    Invers {
        /// Mask.
        mask: QMask,
    },
    /// Ternary raster operation.
    Rop3 {
        /// Source image (may be absent).
        src: Option<Box<ParsedImage>>,
        /// Source area.
        src_area: Rect,
        /// Brush.
        brush: Brush,
        /// rop3 code.
        rop3: u8,
        /// Scale mode.
        scale_mode: u8,
        /// Mask.
        mask: QMask,
    },
    /// Stroke.
    Stroke {
        /// Path segments.
        path: Vec<PathSeg>,
        /// Line attributes.
        attr: LineAttr,
        /// Brush.
        brush: Brush,
        /// Foreground mode.
        fore_mode: u16,
        /// Background mode.
        back_mode: u16,
    },
    /// Text.
    Text {
        /// Glyphs.
        string: ParsedString,
        /// Background area.
        back_area: Rect,
        /// Foreground brush.
        fore_brush: Brush,
        /// Background brush.
        back_brush: Brush,
        /// Foreground mode.
        fore_mode: u16,
        /// Background mode.
        back_mode: u16,
    },
    /// Transparent copy.
    Transparent {
        /// Source image.
        src: Box<ParsedImage>,
        /// Source area.
        src_area: Rect,
        /// Colour key.
        src_color: u32,
        /// True colour.
        true_color: u32,
    },
    /// Alpha blend.
    AlphaBlend {
        /// `SPICE_ALPHA_FLAGS_*` (0 for compat).
        alpha_flags: u16,
        /// Alpha.
        alpha: u8,
        /// Source image.
        src: Box<ParsedImage>,
        /// Source area.
        src_area: Rect,
    },
    /// Composite.
    Composite {
        /// Operator and filter bits.
        flags: u32,
        /// Source image.
        src: Box<ParsedImage>,
        /// Source transform.
        src_transform: Option<[u32; 6]>,
        /// Mask image.
        mask: Option<Box<ParsedImage>>,
        /// Mask transform.
        mask_transform: Option<[u32; 6]>,
        /// Source origin.
        src_origin: Point16,
        /// Mask origin.
        mask_origin: Point16,
    },
}

/// An image (`SpiceImage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedImage {
    /// Cache id.
    pub id: u64,
    /// [`abi::image_type`].
    pub image_type: u8,
    /// [`abi::image_flags`] as the guest set them.
    pub flags: u8,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Contents.
    pub kind: ImageKind,
}

/// What an image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    /// Raw pixels.
    Bitmap(ParsedBitmap),
    /// QUIC-compressed data, gathered from its chunks.
    Quic(Vec<u8>),
    /// Another surface.
    Surface(u32),
}

/// A bitmap (`SpiceBitmap`), pixels gathered from its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBitmap {
    /// [`abi::bitmap_fmt`].
    pub format: u8,
    /// [`abi::bitmap_flags`] as the guest set them.
    pub flags: u8,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Palette.
    pub palette: Option<Palette>,
    /// `height * stride` bytes.
    pub data: Vec<u8>,
}

impl ParsedBitmap {
    /// Rows stored top row first.
    pub fn top_down(&self) -> bool {
        self.flags & bitmap_flags::TOP_DOWN != 0
    }

    /// Bytes of pixel data per row (`ceil(width * bpp / 8)`, at most `stride`).
    pub fn row_bytes(&self) -> usize {
        let bpp = bitmap_fmt::bits_per_pixel(self.format).unwrap_or(0);
        ((u64::from(self.width) * u64::from(bpp)).div_ceil(8) as usize).min(self.stride as usize)
    }

    /// The rows as stored (each `row_bytes()` long, padding cut off).
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        let n = self.row_bytes();
        self.data
            .chunks_exact(self.stride.max(1) as usize)
            .map(move |r| &r[..n])
    }

    /// The rows top row first, whatever the storage order.
    pub fn rows_top_down(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        if self.top_down() {
            Box::new(self.rows())
        } else {
            Box::new(self.rows().rev())
        }
    }
}

/// A palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    /// Cache id.
    pub unique: u64,
    /// Colours (xRGB).
    pub entries: Vec<u32>,
}

/// A parse failure together with the release location, when the command's own structure could
/// be read (the resource must still go back to the guest).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct CommandError {
    /// Release location, if the top structure was readable.
    pub release: Option<ReleaseInfoExt>,
    /// What was wrong.
    #[source]
    pub error: ParseError,
}

/// Widen a 16-bit x1r5g5b5 colour to 32-bit xRGB (compat 16 bpp mode).
pub fn color_16_to_32(c: u32) -> u32 {
    let widen = |v: u32| (v << 3) | (v >> 2);
    let b = widen(c & 0x1f);
    let g = widen((c >> 5) & 0x1f);
    let r = widen((c >> 10) & 0x1f);
    (r << 16) | (g << 8) | b
}

const SIZE_CHUNK: u64 = size_of::<abi::QxlDataChunk>() as u64;
const MAX_MESSAGE: u64 = 100_000;

/// Reads commands from guest memory with one group, set of flags and byte budget.
pub struct Parser<'a, M: GuestMemory + ?Sized> {
    mem: &'a M,
    slots: &'a MemSlotTable,
    group: u32,
    flags: u32,
    limits: ParseLimits,
    remaining: u64,
}

impl<'a, M: GuestMemory + ?Sized> Parser<'a, M> {
    /// A parser for one command.
    pub fn new(
        mem: &'a M,
        slots: &'a MemSlotTable,
        group: u32,
        flags: u32,
        limits: ParseLimits,
    ) -> Self {
        Parser {
            mem,
            slots,
            group,
            flags,
            limits,
            remaining: limits.max_command_bytes,
        }
    }

    fn translate(
        &self,
        what: &'static str,
        addr: QxlPhysical,
        len: u64,
    ) -> Result<u64, ParseError> {
        if addr == 0 {
            return Err(ParseError::Translate {
                what,
                source: TranslateError::Null,
            });
        }
        self.slots
            .translate(self.group, addr, len)
            .map_err(|source| ParseError::Translate { what, source })
    }

    fn read<T: FromBytes + zerocopy::IntoBytes>(
        &self,
        what: &'static str,
        addr: QxlPhysical,
    ) -> Result<(T, u64), ParseError> {
        let host = self.translate(what, addr, size_of::<T>() as u64)?;
        let v = crate::memory::read_struct::<T, M>(self.mem, host)
            .map_err(|source| ParseError::Memory { what, source })?;
        Ok((v, host))
    }

    fn charge(&mut self, what: &'static str, size: u64) -> Result<(), ParseError> {
        if size > self.remaining {
            return Err(ParseError::DataTooLarge {
                what,
                size,
                remaining: self.remaining,
            });
        }
        self.remaining -= size;
        Ok(())
    }

    /// Copy `len` bytes at host offset `host` (already validated) after charging the budget.
    fn copy(
        &mut self,
        what: &'static str,
        host: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), ParseError> {
        self.charge(what, len)?;
        let n = usize::try_from(len).map_err(|_| ParseError::DataTooLarge {
            what,
            size: len,
            remaining: 0,
        })?;
        self.mem
            .read_append(host, n, out)
            .map_err(|source| ParseError::Memory { what, source })
    }

    /// Gather a chunk chain whose first header is at QXL address `first` (inline or not).
    fn chunks(&mut self, what: &'static str, first: QxlPhysical) -> Result<Vec<u8>, ParseError> {
        self.chunks_expecting(what, first, 0)
    }

    /// [`chunks`](Self::chunks) reserving room for `expected` bytes up front (the caller has
    /// checked `expected` against the budget).
    fn chunks_expecting(
        &mut self,
        what: &'static str,
        first: QxlPhysical,
        expected: usize,
    ) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::with_capacity(expected);
        let (head, _) = self.read::<abi::QxlDataChunk>(what, first)?;
        let size = u64::from(head.data_size.get());
        let host = self
            .slots
            .translate_at(self.group, first, SIZE_CHUNK, size)
            .map_err(|source| ParseError::Translate { what, source })?;
        self.copy(what, host, size, &mut out)?;
        let mut next = head.next_chunk.get();
        let mut count = 0u32;
        while next != 0 {
            count += 1;
            if count >= self.limits.max_chunks {
                return Err(ParseError::TooManyChunks {
                    what,
                    limit: self.limits.max_chunks,
                });
            }
            let (chunk, _) = self.read::<abi::QxlDataChunk>(what, next)?;
            let size = u64::from(chunk.data_size.get());
            if size != 0 {
                let host = self
                    .slots
                    .translate_at(self.group, next, SIZE_CHUNK, size)
                    .map_err(|source| ParseError::Translate { what, source })?;
                self.copy(what, host, size, &mut out)?;
            }
            next = chunk.next_chunk.get();
        }
        Ok(out)
    }

    fn color(&self, c: u32) -> u32 {
        if self.flags & abi::QXL_COMMAND_FLAG_COMPAT_16BPP != 0 {
            color_16_to_32(c)
        } else {
            c
        }
    }

    /// Read the image at `addr` (`is_mask`: palette formats need no palette).
    pub fn image(&mut self, addr: QxlPhysical, is_mask: bool) -> Result<ParsedImage, ParseError> {
        if addr == 0 {
            return Err(ParseError::NullAddress("image"));
        }
        let (img, _) = self.read::<abi::QxlImage>("image", addr)?;
        let d = img.descriptor;
        let kind = match d.ty {
            abi::image_type::BITMAP => ImageKind::Bitmap(self.bitmap(&img, is_mask)?),
            abi::image_type::SURFACE => {
                let id = u32::from_le_bytes([img.u[0], img.u[1], img.u[2], img.u[3]]);
                ImageKind::Surface(id)
            }
            abi::image_type::QUIC => {
                let declared = u32::from_le_bytes([img.u[0], img.u[1], img.u[2], img.u[3]]);
                // The first chunk header follows data_size inline, right after the descriptor.
                let chunk_addr = inner(
                    "quic image",
                    addr,
                    (size_of::<abi::QxlImageDescriptor>() + 4) as u64,
                )?;
                let data = self.chunks("quic image", chunk_addr)?;
                if data.len() as u64 != u64::from(declared) {
                    return Err(ParseError::SizeMismatch {
                        what: "quic image",
                        declared: declared.into(),
                        actual: data.len() as u64,
                    });
                }
                ImageKind::Quic(data)
            }
            other => return Err(ParseError::UnknownImageType(other)),
        };
        Ok(ParsedImage {
            id: d.id.get(),
            image_type: d.ty,
            flags: d.flags,
            width: d.width.get(),
            height: d.height.get(),
            kind,
        })
    }

    fn bitmap(&mut self, img: &abi::QxlImage, is_mask: bool) -> Result<ParsedBitmap, ParseError> {
        let b =
            abi::QxlBitmap::read_from_bytes(&img.u[..]).map_err(|_| ParseError::BadSourceArea)?;
        let (format, flags, x, y, stride) =
            (b.format, b.flags, b.x.get(), b.y.get(), b.stride.get());
        let palette_addr = b.palette.get();
        if !bitmap_fmt::is_rgb(format) && palette_addr == 0 && !is_mask {
            return Err(ParseError::MissingPalette(format));
        }
        if x == 0 || y == 0 {
            return Err(ParseError::ZeroAreaBitmap);
        }
        let bpp =
            bitmap_fmt::bits_per_pixel(format).ok_or(ParseError::UnknownBitmapFormat(format))?;
        if u64::from(stride) < (u64::from(x) * u64::from(bpp)).div_ceil(8) {
            return Err(ParseError::StrideTooSmall {
                stride,
                width: x,
                bpp,
            });
        }
        let palette = if palette_addr != 0 {
            Some(self.palette(palette_addr)?)
        } else {
            None
        };
        let size = u64::from(y) * u64::from(stride);
        if size > self.remaining {
            return Err(ParseError::DataTooLarge {
                what: "bitmap",
                size,
                remaining: self.remaining,
            });
        }
        let data = if flags & bitmap_flags::DIRECT != 0 {
            let host = self.translate("bitmap data", b.data.get(), size)?;
            let mut out = Vec::new();
            self.copy("bitmap data", host, size, &mut out)?;
            out
        } else {
            let data_addr = b.data.get();
            if data_addr == 0 {
                return Err(ParseError::NullAddress("bitmap data"));
            }
            // `size` is within the budget checked above.
            let expected = usize::try_from(size).unwrap_or(0);
            let out = self.chunks_expecting("bitmap data", data_addr, expected)?;
            if out.len() as u64 != size {
                return Err(ParseError::SizeMismatch {
                    what: "bitmap data",
                    declared: size,
                    actual: out.len() as u64,
                });
            }
            out
        };
        Ok(ParsedBitmap {
            format,
            flags,
            width: x,
            height: y,
            stride,
            palette,
            data,
        })
    }

    fn palette(&mut self, addr: QxlPhysical) -> Result<Palette, ParseError> {
        let (p, _) = self.read::<abi::QxlPalette>("palette", addr)?;
        let n = u64::from(p.num_ents.get());
        let hdr = size_of::<abi::QxlPalette>() as u64;
        let host = self
            .slots
            .translate_at(self.group, addr, hdr, n * 4)
            .map_err(|source| ParseError::Translate {
                what: "palette",
                source,
            })?;
        let mut raw = Vec::new();
        self.copy("palette", host, n * 4, &mut raw)?;
        let entries = raw
            .chunks_exact(4)
            .map(|c| self.color(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        Ok(Palette {
            unique: p.unique.get(),
            entries,
        })
    }

    fn brush(&mut self, b: &abi::QxlBrush) -> Result<Brush, ParseError> {
        match b.ty.get() {
            brush_type::NONE => Ok(Brush::None),
            brush_type::SOLID => {
                Ok(Brush::Solid(self.color(u32::from_le_bytes([
                    b.u[0], b.u[1], b.u[2], b.u[3],
                ]))))
            }
            brush_type::PATTERN => {
                let p = abi::QxlPattern::read_from_bytes(&b.u[..])
                    .map_err(|_| ParseError::UnknownBrushType(2))?;
                let image = Box::new(self.image(p.pat.get(), false)?);
                Ok(Brush::Pattern {
                    image,
                    pos: p.pos.into(),
                })
            }
            other => Err(ParseError::UnknownBrushType(other)),
        }
    }

    fn qmask(&mut self, m: &abi::QxlQMask) -> Result<QMask, ParseError> {
        let addr = m.bitmap.get();
        if addr == 0 {
            return Ok(QMask::default());
        }
        let bitmap = Some(Box::new(self.image(addr, true)?));
        Ok(QMask {
            flags: m.flags,
            pos: m.pos.into(),
            bitmap,
        })
    }

    fn opt_image(&mut self, addr: QxlPhysical) -> Result<Option<Box<ParsedImage>>, ParseError> {
        if addr == 0 {
            Ok(None)
        } else {
            Ok(Some(Box::new(self.image(addr, false)?)))
        }
    }

    fn clip(&mut self, c: &abi::QxlClip) -> Result<Clip, ParseError> {
        match c.ty.get() {
            clip_type::NONE => Ok(Clip::None),
            clip_type::RECTS => {
                let addr = c.data.get();
                let (cr, _) = self.read::<abi::QxlClipRects>("clip rects", addr)?;
                let data = self.chunks("clip rects", inner("clip rects", addr, 4)?)?;
                let declared = u64::from(cr.num_rects.get()) * 16;
                if declared != data.len() as u64 {
                    return Err(ParseError::SizeMismatch {
                        what: "clip rects",
                        declared,
                        actual: data.len() as u64,
                    });
                }
                let rects = data
                    .chunks_exact(16)
                    .map(|r| {
                        let q = abi::QxlRect::read_from_bytes(r)
                            .unwrap_or(abi::QxlRect::new(0, 0, 0, 0));
                        Rect::from(q)
                    })
                    .collect();
                Ok(Clip::Rects(rects))
            }
            other => Err(ParseError::UnknownClipType(other)),
        }
    }

    fn path(&mut self, addr: QxlPhysical) -> Result<Vec<PathSeg>, ParseError> {
        let (p, _) = self.read::<abi::QxlPath>("path", addr)?;
        let data = self.chunks("path", inner("path", addr, 4)?)?;
        let declared = u64::from(p.data_size.get());
        if declared != data.len() as u64 {
            return Err(ParseError::SizeMismatch {
                what: "path",
                declared,
                actual: data.len() as u64,
            });
        }
        let mut segs = Vec::new();
        let mut rest = &data[..];
        // Like spice-server, trailing bytes too short for a segment header are ignored.
        while rest.len() >= 8 {
            let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let count = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            rest = &rest[8..];
            let bytes = u64::from(count) * 8;
            if bytes > rest.len() as u64 {
                return Err(ParseError::BadPathSegment);
            }
            let (pts, tail) = rest.split_at(bytes as usize);
            let points = pts
                .chunks_exact(8)
                .map(|c| Point {
                    x: i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    y: i32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect();
            segs.push(PathSeg { flags, points });
            rest = tail;
        }
        Ok(segs)
    }

    fn string(&mut self, addr: QxlPhysical) -> Result<ParsedString, ParseError> {
        let (s, _) = self.read::<abi::QxlString>("string", addr)?;
        let data = self.chunks("string", inner("string", addr, 8)?)?;
        let declared = u64::from(s.data_size.get());
        if declared != data.len() as u64 {
            return Err(ParseError::SizeMismatch {
                what: "string",
                declared,
                actual: data.len() as u64,
            });
        }
        let flags = s.flags.get();
        let bpp: u64 = if flags & abi::string_flags::RASTER_A1 != 0 {
            1
        } else if flags & abi::string_flags::RASTER_A4 != 0 {
            4
        } else if flags & abi::string_flags::RASTER_A8 != 0 {
            8
        } else {
            return Err(ParseError::BadStringFlags(flags));
        };
        let mut glyphs = Vec::new();
        let mut rest = &data[..];
        let hdr = size_of::<abi::QxlRasterGlyph>();
        while !rest.is_empty() {
            let g =
                abi::QxlRasterGlyph::read_from_bytes(rest.get(..hdr).ok_or(ParseError::BadGlyph)?)
                    .map_err(|_| ParseError::BadGlyph)?;
            rest = &rest[hdr..];
            let (w, h) = (g.width.get(), g.height.get());
            let size = u64::from(h) * (u64::from(w) * bpp).div_ceil(8);
            if size > rest.len() as u64 {
                return Err(ParseError::BadGlyph);
            }
            let (px, tail) = rest.split_at(size as usize);
            glyphs.push(RasterGlyph {
                render_pos: g.render_pos.into(),
                glyph_origin: g.glyph_origin.into(),
                width: w,
                height: h,
                data: px.to_vec(),
            });
            rest = tail;
        }
        if glyphs.len() != usize::from(s.length.get()) {
            return Err(ParseError::GlyphCountMismatch {
                declared: s.length.get(),
                actual: glyphs.len() as u32,
            });
        }
        Ok(ParsedString { flags, glyphs })
    }

    fn transform(&mut self, addr: QxlPhysical) -> Result<Option<[u32; 6]>, ParseError> {
        if addr == 0 {
            return Ok(None);
        }
        let (t, _) = self.read::<abi::QxlTransform>("transform", addr)?;
        Ok(Some(t.t.map(|v| v.get())))
    }

    fn copy_op(&mut self, c: &abi::QxlCopy) -> Result<CopyOp, ParseError> {
        let src = Box::new(self.image(c.src_bitmap.get(), false)?);
        let src_area = Rect::from(c.src_area);
        if src_area.left < 0
            || src_area.left > src_area.right
            || src_area.top < 0
            || src_area.top > src_area.bottom
        {
            return Err(ParseError::BadSourceArea);
        }
        if let ImageKind::Bitmap(b) = &src.kind {
            if i64::from(src_area.right) > i64::from(b.width)
                || i64::from(src_area.bottom) > i64::from(b.height)
            {
                return Err(ParseError::BadSourceArea);
            }
        }
        let mask = self.qmask(&c.mask)?;
        Ok(CopyOp {
            src,
            src_area,
            rop_descriptor: c.rop_descriptor.get(),
            scale_mode: c.scale_mode,
            mask,
        })
    }

    fn draw_op(
        &mut self,
        ty: u8,
        u: &[u8; abi::QXL_DRAWABLE_UNION_SIZE],
        compat: bool,
    ) -> Result<DrawOp, ParseError> {
        fn member<T: FromBytes>(u: &[u8]) -> T {
            // The union is as large as its largest member, so the prefix read cannot fail.
            T::read_from_prefix(u)
                .map(|(v, _)| v)
                .unwrap_or_else(|_| T::new_zeroed())
        }
        Ok(match ty {
            draw_type::NOP => DrawOp::Nop,
            draw_type::FILL => {
                let f: abi::QxlFill = member(u);
                DrawOp::Fill {
                    brush: self.brush(&f.brush)?,
                    rop_descriptor: f.rop_descriptor.get(),
                    mask: self.qmask(&f.mask)?,
                }
            }
            draw_type::OPAQUE => {
                let o: abi::QxlOpaque = member(u);
                DrawOp::Opaque {
                    src: Box::new(self.image(o.src_bitmap.get(), false)?),
                    src_area: o.src_area.into(),
                    brush: self.brush(&o.brush)?,
                    rop_descriptor: o.rop_descriptor.get(),
                    scale_mode: o.scale_mode,
                    mask: self.qmask(&o.mask)?,
                }
            }
            draw_type::COPY => DrawOp::Copy(self.copy_op(&member(u))?),
            draw_type::BLEND => DrawOp::Blend(self.copy_op(&member(u))?),
            draw_type::COPY_BITS => {
                let c: abi::QxlCopyBits = member(u);
                DrawOp::CopyBits {
                    src_pos: c.src_pos.into(),
                }
            }
            draw_type::BLACKNESS => DrawOp::Blackness {
                mask: self.qmask(&member::<abi::QxlBlackness>(u).mask)?,
            },
            draw_type::WHITENESS => DrawOp::Whiteness {
                mask: self.qmask(&member::<abi::QxlBlackness>(u).mask)?,
            },
            draw_type::INVERS => DrawOp::Invers {
                mask: self.qmask(&member::<abi::QxlBlackness>(u).mask)?,
            },
            draw_type::ROP3 => {
                let r: abi::QxlRop3 = member(u);
                DrawOp::Rop3 {
                    src: self.opt_image(r.src_bitmap.get())?,
                    src_area: r.src_area.into(),
                    brush: self.brush(&r.brush)?,
                    rop3: r.rop3,
                    scale_mode: r.scale_mode,
                    mask: self.qmask(&r.mask)?,
                }
            }
            draw_type::STROKE => {
                let s: abi::QxlStroke = member(u);
                let path = self.path(s.path.get())?;
                let a = s.attr;
                let style = if a.flags & abi::line_flags::STYLED != 0 {
                    let n = u64::from(a.style_nseg);
                    let host = self.translate("line style", a.style.get(), n * 4)?;
                    let mut raw = Vec::new();
                    self.copy("line style", host, n * 4, &mut raw)?;
                    raw.chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                } else {
                    Vec::new()
                };
                DrawOp::Stroke {
                    path,
                    attr: LineAttr {
                        flags: a.flags,
                        join_style: a.join_style,
                        end_style: a.end_style,
                        width: a.width.get(),
                        miter_limit: a.miter_limit.get(),
                        style,
                    },
                    brush: self.brush(&s.brush)?,
                    fore_mode: s.fore_mode.get(),
                    back_mode: s.back_mode.get(),
                }
            }
            draw_type::TEXT => {
                let t: abi::QxlText = member(u);
                DrawOp::Text {
                    string: self.string(t.str.get())?,
                    back_area: t.back_area.into(),
                    fore_brush: self.brush(&t.fore_brush)?,
                    back_brush: self.brush(&t.back_brush)?,
                    fore_mode: t.fore_mode.get(),
                    back_mode: t.back_mode.get(),
                }
            }
            draw_type::TRANSPARENT => {
                let t: abi::QxlTransparent = member(u);
                DrawOp::Transparent {
                    src: Box::new(self.image(t.src_bitmap.get(), false)?),
                    src_area: t.src_area.into(),
                    src_color: t.src_color.get(),
                    true_color: t.true_color.get(),
                }
            }
            draw_type::ALPHA_BLEND if compat => {
                let a: abi::QxlCompatAlphaBlend = member(u);
                DrawOp::AlphaBlend {
                    alpha_flags: 0,
                    alpha: a.alpha,
                    src: Box::new(self.image(a.src_bitmap.get(), false)?),
                    src_area: a.src_area.into(),
                }
            }
            draw_type::ALPHA_BLEND => {
                let a: abi::QxlAlphaBlend = member(u);
                DrawOp::AlphaBlend {
                    alpha_flags: a.alpha_flags.get(),
                    alpha: a.alpha,
                    src: Box::new(self.image(a.src_bitmap.get(), false)?),
                    src_area: a.src_area.into(),
                }
            }
            draw_type::COMPOSITE if !compat => {
                let c: abi::QxlComposite = member(u);
                let src = Box::new(self.image(c.src.get(), false)?);
                let src_transform = self.transform(c.src_transform.get())?;
                let mask = self.opt_image(c.mask.get())?;
                let mask_transform = if mask.is_some() {
                    self.transform(c.mask_transform.get())?
                } else {
                    None
                };
                DrawOp::Composite {
                    flags: c.flags.get(),
                    src,
                    src_transform,
                    mask,
                    mask_transform,
                    src_origin: c.src_origin.into(),
                    mask_origin: c.mask_origin.into(),
                }
            }
            other => return Err(ParseError::UnknownDrawType(other)),
        })
    }

    fn release_at(&self, host: u64) -> ReleaseInfoExt {
        ReleaseInfoExt {
            info_offset: host,
            group_id: self.group,
        }
    }

    fn drawable(&mut self, addr: QxlPhysical) -> Result<ParsedCommand, CommandError> {
        let compat = self.flags & abi::QXL_COMMAND_FLAG_COMPAT != 0;
        if compat {
            let (d, host) = self
                .read::<abi::QxlCompatDrawable>("drawable", addr)
                .map_err(no_release)?;
            let release = self.release_at(host);
            let with = |error| CommandError {
                release: Some(release),
                error,
            };
            let clip = self.clip(&d.clip).map_err(with)?;
            let op = self.draw_op(d.ty, &d.u, true).map_err(with)?;
            return Ok(ParsedCommand::Draw(Box::new(ParsedDrawable {
                release,
                surface_id: 0,
                effect: d.effect,
                self_bitmap: d.bitmap_offset.get() != 0,
                self_bitmap_area: d.bitmap_area.into(),
                bbox: d.bbox.into(),
                clip,
                mm_time: d.mm_time.get(),
                surface_deps: [-1; 3],
                surfaces_rects: [Rect::default(); 3],
                op,
            })));
        }
        let (d, host) = self
            .read::<abi::QxlDrawable>("drawable", addr)
            .map_err(no_release)?;
        let release = self.release_at(host);
        let with = |error| CommandError {
            release: Some(release),
            error,
        };
        let clip = self.clip(&d.clip).map_err(with)?;
        let op = self.draw_op(d.ty, &d.u, false).map_err(with)?;
        // spice-server: some drivers set self_bitmap on copies, where it makes no sense.
        let self_bitmap = d.self_bitmap != 0 && !matches!(op, DrawOp::Copy(_) | DrawOp::Blend(_));
        Ok(ParsedCommand::Draw(Box::new(ParsedDrawable {
            release,
            surface_id: d.surface_id.get(),
            effect: d.effect,
            self_bitmap,
            self_bitmap_area: d.self_bitmap_area.into(),
            bbox: d.bbox.into(),
            clip,
            mm_time: d.mm_time.get(),
            surface_deps: d.surfaces_dest.map(|v| v.get()),
            surfaces_rects: d.surfaces_rects.map(Rect::from),
            op,
        })))
    }

    fn update(&mut self, addr: QxlPhysical) -> Result<ParsedCommand, CommandError> {
        if self.flags & abi::QXL_COMMAND_FLAG_COMPAT != 0 {
            let (u, host) = self
                .read::<abi::QxlCompatUpdateCmd>("update", addr)
                .map_err(no_release)?;
            return Ok(ParsedCommand::Update(ParsedUpdate {
                release: self.release_at(host),
                area: u.area.into(),
                update_id: u.update_id.get(),
                surface_id: 0,
            }));
        }
        let (u, host) = self
            .read::<abi::QxlUpdateCmd>("update", addr)
            .map_err(no_release)?;
        Ok(ParsedCommand::Update(ParsedUpdate {
            release: self.release_at(host),
            area: u.area.into(),
            update_id: u.update_id.get(),
            surface_id: u.surface_id.get(),
        }))
    }

    fn message(&mut self, addr: QxlPhysical) -> Result<ParsedCommand, CommandError> {
        let (_, host) = self
            .read::<abi::QxlMessage>("message", addr)
            .map_err(no_release)?;
        let release = self.release_at(host);
        let with = |error| CommandError {
            release: Some(release),
            error,
        };
        let text_addr = addr
            .checked_add(8)
            .ok_or(with(ParseError::UnterminatedMessage))?;
        let avail = self
            .slots
            .max_size(self.group, text_addr)
            .map_err(|source| {
                with(ParseError::Translate {
                    what: "message",
                    source,
                })
            })?
            .min(MAX_MESSAGE);
        let mut text = Vec::new();
        if avail > 0 {
            self.copy("message", host + 8, avail, &mut text)
                .map_err(with)?;
        }
        let end = text
            .iter()
            .position(|&b| b == 0)
            .ok_or(with(ParseError::UnterminatedMessage))?;
        text.truncate(end);
        Ok(ParsedCommand::Message(ParsedMessage { release, text }))
    }

    fn surface(&mut self, addr: QxlPhysical) -> Result<ParsedCommand, CommandError> {
        let (s, host) = self
            .read::<abi::QxlSurfaceCmd>("surface", addr)
            .map_err(no_release)?;
        let release = self.release_at(host);
        let with = |error| CommandError {
            release: Some(release),
            error,
        };
        let op = match s.ty {
            abi::surface_cmd::CREATE => {
                let c = s.u;
                let (width, height, stride, format) = (
                    c.width.get(),
                    c.height.get(),
                    c.stride.get(),
                    c.format.get(),
                );
                let size = validate_surface(width, height, stride, format).map_err(with)?;
                let data_addr = c.data.get();
                let data_offset = self
                    .translate("surface data", data_addr, size)
                    .map_err(with)?;
                SurfaceOp::Create(SurfaceCreate {
                    format,
                    width,
                    height,
                    stride,
                    data_addr,
                    data_offset,
                })
            }
            abi::surface_cmd::DESTROY => SurfaceOp::Destroy,
            other => return Err(with(ParseError::UnknownSurfaceCmd(other))),
        };
        Ok(ParsedCommand::Surface(ParsedSurfaceCmd {
            release,
            surface_id: s.surface_id.get(),
            flags: s.flags.get(),
            op,
        }))
    }

    fn cursor(&mut self, addr: QxlPhysical) -> Result<ParsedCommand, CommandError> {
        let (c, host) = self
            .read::<abi::QxlCursorCmd>("cursor command", addr)
            .map_err(no_release)?;
        let release = self.release_at(host);
        let with = |error| CommandError {
            release: Some(release),
            error,
        };
        let op = match c.ty {
            abi::cursor_cmd::SET => {
                let s = abi::QxlCursorSet::read_from_bytes(&c.u[..])
                    .map_err(|_| with(ParseError::UnknownCursorCmd(0)))?;
                let shape_addr = s.shape.get();
                let (cur, _) = self
                    .read::<abi::QxlCursor>("cursor shape", shape_addr)
                    .map_err(with)?;
                let mut data = self
                    .chunks(
                        "cursor shape",
                        inner("cursor shape", shape_addr, 22).map_err(with)?,
                    )
                    .map_err(with)?;
                data.truncate(cur.data_size.get() as usize);
                let h = cur.header;
                CursorOp::Set {
                    position: s.position.into(),
                    visible: s.visible != 0,
                    shape: CursorShape {
                        unique: h.unique.get(),
                        cursor_type: h.ty.get(),
                        width: h.width.get(),
                        height: h.height.get(),
                        hot_spot_x: h.hot_spot_x.get(),
                        hot_spot_y: h.hot_spot_y.get(),
                        data,
                    },
                }
            }
            abi::cursor_cmd::MOVE => {
                let (p, _) = abi::QxlPoint16::read_from_prefix(&c.u[..])
                    .map_err(|_| with(ParseError::UnknownCursorCmd(1)))?;
                CursorOp::Move { position: p.into() }
            }
            abi::cursor_cmd::HIDE => CursorOp::Hide,
            abi::cursor_cmd::TRAIL => {
                let (t, _) = abi::QxlCursorTrail::read_from_prefix(&c.u[..])
                    .map_err(|_| with(ParseError::UnknownCursorCmd(3)))?;
                CursorOp::Trail {
                    length: t.length.get(),
                    frequency: t.frequency.get(),
                }
            }
            other => return Err(with(ParseError::UnknownCursorCmd(other))),
        };
        Ok(ParsedCommand::Cursor(ParsedCursorCmd { release, op }))
    }
}

/// The QXL address of a field `off` bytes into the structure at `addr`.
fn inner(what: &'static str, addr: QxlPhysical, off: u64) -> Result<QxlPhysical, ParseError> {
    addr.checked_add(off).ok_or(ParseError::Translate {
        what,
        source: TranslateError::OutOfSlot { addr, len: off },
    })
}

fn no_release(error: ParseError) -> CommandError {
    CommandError {
        release: None,
        error,
    }
}

/// Parse the command `ext` points at. On failure the error carries the release location when
/// the command's top structure was readable, so the device can still give the resource back.
pub fn parse_command<M: GuestMemory + ?Sized>(
    mem: &M,
    slots: &MemSlotTable,
    limits: ParseLimits,
    ext: &CommandExt,
) -> Result<ParsedCommand, CommandError> {
    let mut p = Parser::new(mem, slots, ext.group_id, ext.flags, limits);
    match ext.cmd_type {
        abi::cmd_type::DRAW => p.drawable(ext.addr),
        abi::cmd_type::UPDATE => p.update(ext.addr),
        abi::cmd_type::MESSAGE => p.message(ext.addr),
        abi::cmd_type::SURFACE => p.surface(ext.addr),
        abi::cmd_type::CURSOR => p.cursor(ext.addr),
        other => Err(no_release(ParseError::UnknownCommandType(other))),
    }
}

/// One head of a guest monitors config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorHead {
    /// Id.
    pub id: u32,
    /// Surface.
    pub surface_id: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// x offset in the surface.
    pub x: u32,
    /// y offset in the surface.
    pub y: u32,
    /// Flags.
    pub flags: u32,
}

/// A guest's monitors config (`QXLMonitorsConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorsConfig {
    /// The driver's limit (0: none).
    pub max_allowed: u16,
    /// Heads.
    pub heads: Vec<MonitorHead>,
}

/// Read a monitors config of at most `max_heads` heads.
pub fn parse_monitors_config<M: GuestMemory + ?Sized>(
    mem: &M,
    slots: &MemSlotTable,
    group: u32,
    addr: QxlPhysical,
    max_heads: u16,
) -> Result<MonitorsConfig, ParseError> {
    let p = Parser::new(mem, slots, group, 0, ParseLimits::default());
    let (c, _) = p.read::<abi::QxlMonitorsConfig>("monitors config", addr)?;
    let count = c.count.get();
    if count > max_heads {
        return Err(ParseError::TooManyHeads {
            count,
            max: max_heads,
        });
    }
    let hs = size_of::<abi::QxlHead>() as u64;
    let host = slots
        .translate_at(group, addr, 4, u64::from(count) * hs)
        .map_err(|source| ParseError::Translate {
            what: "monitors config",
            source,
        })?;
    let mut heads = Vec::with_capacity(count.into());
    for i in 0..u64::from(count) {
        let h: abi::QxlHead = crate::memory::read_struct(mem, host + i * hs).map_err(|source| {
            ParseError::Memory {
                what: "monitors config",
                source,
            }
        })?;
        heads.push(MonitorHead {
            id: h.id.get(),
            surface_id: h.surface_id.get(),
            width: h.width.get(),
            height: h.height.get(),
            x: h.x.get(),
            y: h.y.get(),
            flags: h.flags.get(),
        });
    }
    Ok(MonitorsConfig {
        max_allowed: c.max_allowed.get(),
        heads,
    })
}
