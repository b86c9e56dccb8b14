//! Display channel (2) messages: [`ServerMessage`] (34 spice.proto messages plus
//! GL_SCANOUT2_UNIX = 323) and [`ClientMessage`] (5 messages).
//!
//! Draw messages carry pointers (images, paths, strings, line styles). Decoding follows
//! them with bounds checks; encoding lays the pointed data out after the fixed part in the
//! order spice-server's marshaller does (see [`crate::types`]), so that decoding a message
//! recorded from spice-server and encoding it again gives the same bytes.
//!
//! Bodies must be consumed exactly: bytes after the fixed part and after the last pointee are
//! rejected with [`DecodeError::TrailingBytes`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::types::{
    AlphaFlags, BodyExtent, Brush, Clip, CompositeFlags, DisplayBase, GlScanoutFlags, Head, Image,
    ImageCompression, ImageScaleMode, LineAttr, Path, Point, Point16, PointerQueue, QMask, Rect,
    ResourceId, Ropd, SpiceString, StreamDataHeader, StreamFlags, SurfaceFlags, SurfaceFormat,
    Transform, VideoCodecType, WaitForChannel,
};
use crate::wire::{Decode, Encode, ReadCursor, WriteBuf};

/// Server message numbers of the display channel.
pub mod msg {
    /// MODE (legacy).
    pub const MODE: u16 = 101;
    /// MARK.
    pub const MARK: u16 = 102;
    /// RESET (legacy).
    pub const RESET: u16 = 103;
    /// COPY_BITS.
    pub const COPY_BITS: u16 = 104;
    /// INVAL_LIST.
    pub const INVAL_LIST: u16 = 105;
    /// INVAL_ALL_PIXMAPS.
    pub const INVAL_ALL_PIXMAPS: u16 = 106;
    /// INVAL_PALETTE.
    pub const INVAL_PALETTE: u16 = 107;
    /// INVAL_ALL_PALETTES.
    pub const INVAL_ALL_PALETTES: u16 = 108;
    /// STREAM_CREATE.
    pub const STREAM_CREATE: u16 = 122;
    /// STREAM_DATA.
    pub const STREAM_DATA: u16 = 123;
    /// STREAM_CLIP.
    pub const STREAM_CLIP: u16 = 124;
    /// STREAM_DESTROY.
    pub const STREAM_DESTROY: u16 = 125;
    /// STREAM_DESTROY_ALL.
    pub const STREAM_DESTROY_ALL: u16 = 126;
    /// DRAW_FILL.
    pub const DRAW_FILL: u16 = 302;
    /// DRAW_OPAQUE.
    pub const DRAW_OPAQUE: u16 = 303;
    /// DRAW_COPY.
    pub const DRAW_COPY: u16 = 304;
    /// DRAW_BLEND.
    pub const DRAW_BLEND: u16 = 305;
    /// DRAW_BLACKNESS.
    pub const DRAW_BLACKNESS: u16 = 306;
    /// DRAW_WHITENESS.
    pub const DRAW_WHITENESS: u16 = 307;
    /// DRAW_INVERS.
    pub const DRAW_INVERS: u16 = 308;
    /// DRAW_ROP3.
    pub const DRAW_ROP3: u16 = 309;
    /// DRAW_STROKE.
    pub const DRAW_STROKE: u16 = 310;
    /// DRAW_TEXT.
    pub const DRAW_TEXT: u16 = 311;
    /// DRAW_TRANSPARENT.
    pub const DRAW_TRANSPARENT: u16 = 312;
    /// DRAW_ALPHA_BLEND.
    pub const DRAW_ALPHA_BLEND: u16 = 313;
    /// SURFACE_CREATE.
    pub const SURFACE_CREATE: u16 = 314;
    /// SURFACE_DESTROY.
    pub const SURFACE_DESTROY: u16 = 315;
    /// STREAM_DATA_SIZED.
    pub const STREAM_DATA_SIZED: u16 = 316;
    /// MONITORS_CONFIG.
    pub const MONITORS_CONFIG: u16 = 317;
    /// DRAW_COMPOSITE.
    pub const DRAW_COMPOSITE: u16 = 318;
    /// STREAM_ACTIVATE_REPORT.
    pub const STREAM_ACTIVATE_REPORT: u16 = 319;
    /// GL_SCANOUT_UNIX.
    pub const GL_SCANOUT_UNIX: u16 = 320;
    /// GL_DRAW.
    pub const GL_DRAW: u16 = 321;
    /// QUALITY_INDICATOR.
    pub const QUALITY_INDICATOR: u16 = 322;
    /// GL_SCANOUT2_UNIX (post-2021, protocol.md §5.9).
    pub const GL_SCANOUT2_UNIX: u16 = 323;
}

/// Client message numbers of the display channel.
pub mod msgc {
    /// INIT.
    pub const INIT: u16 = 101;
    /// STREAM_REPORT.
    pub const STREAM_REPORT: u16 = 102;
    /// PREFERRED_COMPRESSION.
    pub const PREFERRED_COMPRESSION: u16 = 103;
    /// GL_DRAW_DONE.
    pub const GL_DRAW_DONE: u16 = 104;
    /// PREFERRED_VIDEO_CODEC_TYPE.
    pub const PREFERRED_VIDEO_CODEC_TYPE: u16 = 105;
}

// ---------------------------------------------------------------------------------------
// Message bodies
// ---------------------------------------------------------------------------------------

/// MODE (101, legacy): `u32 x_res; u32 y_res; u32 bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Horizontal resolution.
    pub x_res: u32,
    /// Vertical resolution.
    pub y_res: u32,
    /// Bits per pixel.
    pub bits: u32,
}

/// COPY_BITS (104): copy the `base.bbox`-sized area from `src_pos` on the same surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyBits {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source position.
    pub src_pos: Point,
}

/// STREAM_CREATE (122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCreate {
    /// Surface (spice-server sends 0).
    pub surface_id: u32,
    /// Stream id (< 64).
    pub id: u32,
    /// Flags.
    pub flags: StreamFlags,
    /// Codec.
    pub codec_type: VideoCodecType,
    /// Stamp (spice-server sends 0).
    pub stamp: u64,
    /// Encoded frame width.
    pub stream_width: u32,
    /// Encoded frame height.
    pub stream_height: u32,
    /// Source width.
    pub src_width: u32,
    /// Source height.
    pub src_height: u32,
    /// Destination on the surface.
    pub dest: Rect,
    /// Visible region.
    pub clip: Clip,
}

/// STREAM_DATA (123): one encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamData<'a> {
    /// Stream id and presentation time.
    pub header: StreamDataHeader,
    /// The frame (`u32 data_size; data`), borrowed.
    pub data: &'a [u8],
}

/// STREAM_CLIP (124).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClip {
    /// Stream id.
    pub id: u32,
    /// New visible region.
    pub clip: Clip,
}

/// DRAW_FILL (302).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawFill<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Fill brush.
    pub brush: Brush<'a>,
    /// Raster op.
    pub rop_descriptor: Ropd,
    /// Mask.
    pub mask: QMask<'a>,
}

/// DRAW_OPAQUE (303).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawOpaque<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source image (NULL allowed by spice.proto).
    pub src_bitmap: Option<Image<'a>>,
    /// Source area.
    pub src_area: Rect,
    /// Brush.
    pub brush: Brush<'a>,
    /// Raster op.
    pub rop_descriptor: Ropd,
    /// Scaling.
    pub scale_mode: ImageScaleMode,
    /// Mask.
    pub mask: QMask<'a>,
}

/// DRAW_COPY (304) and DRAW_BLEND (305).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawCopy<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source image (NULL allowed by spice.proto).
    pub src_bitmap: Option<Image<'a>>,
    /// Source area.
    pub src_area: Rect,
    /// Raster op.
    pub rop_descriptor: Ropd,
    /// Scaling.
    pub scale_mode: ImageScaleMode,
    /// Mask.
    pub mask: QMask<'a>,
}

/// DRAW_BLACKNESS (306), DRAW_WHITENESS (307), DRAW_INVERS (308).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawMask<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Mask.
    pub mask: QMask<'a>,
}

/// DRAW_ROP3 (309).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawRop3<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source image.
    pub src_bitmap: Option<Image<'a>>,
    /// Source area.
    pub src_area: Rect,
    /// Brush.
    pub brush: Brush<'a>,
    /// Ternary raster op code.
    pub rop3: u8,
    /// Scaling.
    pub scale_mode: ImageScaleMode,
    /// Mask.
    pub mask: QMask<'a>,
}

/// DRAW_STROKE (310).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawStroke<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// The path (`@nonnull` pointer).
    pub path: Path,
    /// Line attributes.
    pub attr: LineAttr,
    /// Brush.
    pub brush: Brush<'a>,
    /// Foreground raster op (ropd bits).
    pub fore_mode: u16,
    /// Background raster op (ropd bits).
    pub back_mode: u16,
}

/// DRAW_TEXT (311).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawText<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// The glyphs (`@nonnull` pointer).
    pub text: SpiceString<'a>,
    /// Background area.
    pub back_area: Rect,
    /// Foreground brush.
    pub fore_brush: Brush<'a>,
    /// Background brush.
    pub back_brush: Brush<'a>,
    /// Foreground raster op (ropd bits).
    pub fore_mode: u16,
    /// Background raster op (ropd bits).
    pub back_mode: u16,
}

/// DRAW_TRANSPARENT (312).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawTransparent<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source image.
    pub src_bitmap: Option<Image<'a>>,
    /// Source area.
    pub src_area: Rect,
    /// Transparent colour in the source.
    pub src_color: u32,
    /// The same colour, 32-bit.
    pub true_color: u32,
}

/// DRAW_ALPHA_BLEND (313).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawAlphaBlend<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Alpha flags.
    pub alpha_flags: AlphaFlags,
    /// Global alpha.
    pub alpha: u8,
    /// Source image.
    pub src_bitmap: Option<Image<'a>>,
    /// Source area.
    pub src_area: Rect,
}

/// SURFACE_CREATE (314).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceCreate {
    /// Surface id (0 = primary).
    pub surface_id: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Pixel format.
    pub format: SurfaceFormat,
    /// Flags.
    pub flags: SurfaceFlags,
}

/// STREAM_DATA_SIZED (316).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDataSized<'a> {
    /// Stream id and presentation time.
    pub header: StreamDataHeader,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Destination.
    pub dest: Rect,
    /// The frame, borrowed.
    pub data: &'a [u8],
}

/// MONITORS_CONFIG (317).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorsConfig {
    /// Most monitors the guest supports.
    pub max_allowed: u16,
    /// Monitors.
    pub heads: Vec<Head>,
}

/// DRAW_COMPOSITE (318). `mask_bitmap`'s pointer is on the wire only with `HAS_MASK`
/// (NULL → `None`); the transforms are present exactly when their HAS_* bit is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawComposite<'a> {
    /// Target and clip.
    pub base: DisplayBase,
    /// Operator, filters, repeats and HAS_* bits.
    pub flags: CompositeFlags,
    /// Source image.
    pub src_bitmap: Option<Image<'a>>,
    /// Mask image (only with `HAS_MASK`).
    pub mask_bitmap: Option<Image<'a>>,
    /// Source transform (iff `HAS_SRC_TRANSFORM`).
    pub src_transform: Option<Transform>,
    /// Mask transform (iff `HAS_MASK_TRANSFORM`).
    pub mask_transform: Option<Transform>,
    /// Source origin.
    pub src_origin: Point16,
    /// Mask origin.
    pub mask_origin: Point16,
}

/// STREAM_ACTIVATE_REPORT (319).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamActivateReport {
    /// Stream id.
    pub stream_id: u32,
    /// Id the client's reports must echo.
    pub unique_id: u32,
    /// Most frames per report.
    pub max_window_size: u32,
    /// Longest time per report.
    pub timeout_ms: u32,
}

/// GL_SCANOUT_UNIX (320). The DMA-BUF fd travels out of band (SCM_RIGHTS; 0 body bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlScanoutUnix {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Stride.
    pub stride: u32,
    /// DRM fourcc (0 = scanout disabled).
    pub drm_fourcc_format: u32,
    /// Flags.
    pub flags: GlScanoutFlags,
}

/// GL_DRAW (321): damaged rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlDraw {
    /// X.
    pub x: u32,
    /// Y.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// GL_SCANOUT2_UNIX (323; post-2021, from the `yuq/spice-common` spice.proto, protocol.md
/// §5.9): 60 bytes; the `num_dmabuf` fds travel out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlScanout2Unix {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Plane offsets.
    pub offset: [u32; 4],
    /// Plane strides.
    pub stride: [u32; 4],
    /// DRM fourcc.
    pub fourcc: u32,
    /// Flags.
    pub flags: GlScanoutFlags,
    /// DRM format modifier.
    pub modifier: u64,
    /// Planes used.
    pub num_planes: u16,
    /// Fds passed.
    pub num_dmabuf: u16,
}

/// A display-channel message from the server (types 101-323).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // borrowed views, built per message; boxing would allocate
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// MODE (101).
    Mode(Mode),
    /// MARK (102).
    Mark,
    /// RESET (103).
    Reset,
    /// COPY_BITS (104).
    CopyBits(CopyBits),
    /// INVAL_LIST (105): `u16 count; ResourceID[count]`.
    InvalList(Vec<ResourceId>),
    /// INVAL_ALL_PIXMAPS (106): `u8 wait_count; WaitForChannel[wait_count]`.
    InvalAllPixmaps(Vec<WaitForChannel>),
    /// INVAL_PALETTE (107): palette id.
    InvalPalette(u64),
    /// INVAL_ALL_PALETTES (108).
    InvalAllPalettes,
    /// STREAM_CREATE (122).
    StreamCreate(StreamCreate),
    /// STREAM_DATA (123).
    StreamData(StreamData<'a>),
    /// STREAM_CLIP (124).
    StreamClip(StreamClip),
    /// STREAM_DESTROY (125): stream id.
    StreamDestroy(u32),
    /// STREAM_DESTROY_ALL (126).
    StreamDestroyAll,
    /// DRAW_FILL (302).
    DrawFill(DrawFill<'a>),
    /// DRAW_OPAQUE (303).
    DrawOpaque(DrawOpaque<'a>),
    /// DRAW_COPY (304).
    DrawCopy(DrawCopy<'a>),
    /// DRAW_BLEND (305).
    DrawBlend(DrawCopy<'a>),
    /// DRAW_BLACKNESS (306).
    DrawBlackness(DrawMask<'a>),
    /// DRAW_WHITENESS (307).
    DrawWhiteness(DrawMask<'a>),
    /// DRAW_INVERS (308).
    DrawInvers(DrawMask<'a>),
    /// DRAW_ROP3 (309).
    DrawRop3(DrawRop3<'a>),
    /// DRAW_STROKE (310).
    DrawStroke(DrawStroke<'a>),
    /// DRAW_TEXT (311).
    DrawText(DrawText<'a>),
    /// DRAW_TRANSPARENT (312).
    DrawTransparent(DrawTransparent<'a>),
    /// DRAW_ALPHA_BLEND (313).
    DrawAlphaBlend(DrawAlphaBlend<'a>),
    /// SURFACE_CREATE (314).
    SurfaceCreate(SurfaceCreate),
    /// SURFACE_DESTROY (315): surface id.
    SurfaceDestroy(u32),
    /// STREAM_DATA_SIZED (316).
    StreamDataSized(StreamDataSized<'a>),
    /// MONITORS_CONFIG (317).
    MonitorsConfig(MonitorsConfig),
    /// DRAW_COMPOSITE (318).
    DrawComposite(DrawComposite<'a>),
    /// STREAM_ACTIVATE_REPORT (319).
    StreamActivateReport(StreamActivateReport),
    /// GL_SCANOUT_UNIX (320).
    GlScanoutUnix(GlScanoutUnix),
    /// GL_DRAW (321).
    GlDraw(GlDraw),
    /// QUALITY_INDICATOR (322): raw bytes.
    QualityIndicator(&'a [u8]),
    /// GL_SCANOUT2_UNIX (323).
    GlScanout2Unix(GlScanout2Unix),
}

/// DISPLAY_INIT (client 101): cache sizes, 14 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    /// Pixmap cache id (shared across display channels).
    pub pixmap_cache_id: u8,
    /// Pixmap cache size in pixels.
    pub pixmap_cache_size: i64,
    /// GLZ dictionary id.
    pub glz_dictionary_id: u8,
    /// GLZ window size in pixels.
    pub glz_dictionary_window_size: i32,
}

/// STREAM_REPORT (client 102), 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReport {
    /// Stream id.
    pub stream_id: u32,
    /// Echo of STREAM_ACTIVATE_REPORT's unique id.
    pub unique_id: u32,
    /// mm time of the first frame.
    pub start_frame_mm_time: u32,
    /// mm time of the last frame.
    pub end_frame_mm_time: u32,
    /// Frames received.
    pub num_frames: u32,
    /// Frames dropped.
    pub num_drops: u32,
    /// `end_frame_mm_time - client mm time`.
    pub last_frame_delay: i32,
    /// Audio latency, 0xffffffff if none.
    pub audio_delay: u32,
}

/// The codec list of PREFERRED_VIDEO_CODEC_TYPE, borrowed (one `video_codec_type` byte each,
/// most preferred first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecList<'a>(pub &'a [u8]);

impl CodecList<'_> {
    /// The codecs in preference order.
    pub fn iter(&self) -> impl Iterator<Item = VideoCodecType> + '_ {
        self.0.iter().map(|c| VideoCodecType(*c))
    }
}

/// A display-channel message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// INIT (101).
    Init(Init),
    /// STREAM_REPORT (102).
    StreamReport(StreamReport),
    /// PREFERRED_COMPRESSION (103).
    PreferredCompression(ImageCompression),
    /// GL_DRAW_DONE (104).
    GlDrawDone,
    /// PREFERRED_VIDEO_CODEC_TYPE (105): `u8 num; u8 codecs[num]`, in preference order.
    PreferredVideoCodecType(CodecList<'a>),
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

fn server_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        msg::MODE => "mode",
        msg::MARK => "mark",
        msg::RESET => "reset",
        msg::COPY_BITS => "copy_bits",
        msg::INVAL_LIST => "inval_list",
        msg::INVAL_ALL_PIXMAPS => "inval_all_pixmaps",
        msg::INVAL_PALETTE => "inval_palette",
        msg::INVAL_ALL_PALETTES => "inval_all_palettes",
        msg::STREAM_CREATE => "stream_create",
        msg::STREAM_DATA => "stream_data",
        msg::STREAM_CLIP => "stream_clip",
        msg::STREAM_DESTROY => "stream_destroy",
        msg::STREAM_DESTROY_ALL => "stream_destroy_all",
        msg::DRAW_FILL => "draw_fill",
        msg::DRAW_OPAQUE => "draw_opaque",
        msg::DRAW_COPY => "draw_copy",
        msg::DRAW_BLEND => "draw_blend",
        msg::DRAW_BLACKNESS => "draw_blackness",
        msg::DRAW_WHITENESS => "draw_whiteness",
        msg::DRAW_INVERS => "draw_invers",
        msg::DRAW_ROP3 => "draw_rop3",
        msg::DRAW_STROKE => "draw_stroke",
        msg::DRAW_TEXT => "draw_text",
        msg::DRAW_TRANSPARENT => "draw_transparent",
        msg::DRAW_ALPHA_BLEND => "draw_alpha_blend",
        msg::SURFACE_CREATE => "surface_create",
        msg::SURFACE_DESTROY => "surface_destroy",
        msg::STREAM_DATA_SIZED => "stream_data_sized",
        msg::MONITORS_CONFIG => "monitors_config",
        msg::DRAW_COMPOSITE => "draw_composite",
        msg::STREAM_ACTIVATE_REPORT => "stream_activate_report",
        msg::GL_SCANOUT_UNIX => "gl_scanout_unix",
        msg::GL_DRAW => "gl_draw",
        msg::QUALITY_INDICATOR => "quality_indicator",
        msg::GL_SCANOUT2_UNIX => "gl_scanout2_unix",
        _ => return None,
    })
}

fn client_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        msgc::INIT => "init",
        msgc::STREAM_REPORT => "stream_report",
        msgc::PREFERRED_COMPRESSION => "preferred_compression",
        msgc::GL_DRAW_DONE => "gl_draw_done",
        msgc::PREFERRED_VIDEO_CODEC_TYPE => "preferred_video_codec_type",
        _ => return None,
    })
}

fn read_rect_u32x4(r: &mut ReadCursor<'_>, ctx: &'static str) -> Result<[u32; 4], DecodeError> {
    r.ensure(16, ctx)?;
    Ok([
        r.read_u32(ctx)?,
        r.read_u32(ctx)?,
        r.read_u32(ctx)?,
        r.read_u32(ctx)?,
    ])
}

fn decode_copy<'a>(
    r: &mut ReadCursor<'a>,
    ext: &mut BodyExtent,
) -> Result<DrawCopy<'a>, DecodeError> {
    let base = DisplayBase::decode(r)?;
    r.ensure(4 + 16 + 2 + 1, "draw_copy")?;
    let src_bitmap = Image::decode_ptr(r, ext, "src_bitmap")?;
    let src_area = Rect::decode(r)?;
    let rop_descriptor = Ropd::from_bits_retain(r.read_u16("rop_descriptor")?);
    let scale_mode = ImageScaleMode(r.read_u8("scale_mode")?);
    let mask = QMask::decode(r, ext)?;
    Ok(DrawCopy {
        base,
        src_bitmap,
        src_area,
        rop_descriptor,
        scale_mode,
        mask,
    })
}

fn decode_mask<'a>(
    r: &mut ReadCursor<'a>,
    ext: &mut BodyExtent,
) -> Result<DrawMask<'a>, DecodeError> {
    Ok(DrawMask {
        base: DisplayBase::decode(r)?,
        mask: QMask::decode(r, ext)?,
    })
}

fn decode_stream_data<'a>(
    r: &mut ReadCursor<'a>,
    ctx: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let n = r.read_u32(ctx)?;
    let n = r.check_count(n.into(), 1, ctx)?;
    r.read_slice(n, ctx)
}

fn decode_server<'a>(msg_type: u16, body: &'a [u8]) -> Result<ServerMessage<'a>, DecodeError> {
    let name = server_name(msg_type).ok_or(DecodeError::UnknownMessage { msg_type })?;
    let mut r = ReadCursor::new(body);
    let r = &mut r;
    let mut ext = BodyExtent::new();
    let e = &mut ext;
    let m = match msg_type {
        msg::MODE => {
            r.ensure(12, name)?;
            ServerMessage::Mode(Mode {
                x_res: r.read_u32(name)?,
                y_res: r.read_u32(name)?,
                bits: r.read_u32(name)?,
            })
        }
        msg::MARK => ServerMessage::Mark,
        msg::RESET => ServerMessage::Reset,
        msg::COPY_BITS => ServerMessage::CopyBits(CopyBits {
            base: DisplayBase::decode(r)?,
            src_pos: Point::decode(r)?,
        }),
        msg::INVAL_LIST => {
            let n = r.read_u16("inval_list count")?;
            let n = r.check_count(n.into(), ResourceId::SIZE, "inval_list resources")?;
            ServerMessage::InvalList(
                (0..n)
                    .map(|_| ResourceId::decode(r))
                    .collect::<Result<_, _>>()?,
            )
        }
        msg::INVAL_ALL_PIXMAPS => {
            let n = r.read_u8("inval_all_pixmaps wait_count")?;
            let n = r.check_count(
                n.into(),
                WaitForChannel::SIZE,
                "inval_all_pixmaps wait_list",
            )?;
            ServerMessage::InvalAllPixmaps(
                (0..n)
                    .map(|_| WaitForChannel::decode(r))
                    .collect::<Result<_, _>>()?,
            )
        }
        msg::INVAL_PALETTE => ServerMessage::InvalPalette(r.read_u64("inval_palette id")?),
        msg::INVAL_ALL_PALETTES => ServerMessage::InvalAllPalettes,
        msg::STREAM_CREATE => {
            r.ensure(50, name)?;
            ServerMessage::StreamCreate(StreamCreate {
                surface_id: r.read_u32(name)?,
                id: r.read_u32(name)?,
                flags: StreamFlags::from_bits_retain(r.read_u8(name)?),
                codec_type: VideoCodecType(r.read_u8(name)?),
                stamp: r.read_u64(name)?,
                stream_width: r.read_u32(name)?,
                stream_height: r.read_u32(name)?,
                src_width: r.read_u32(name)?,
                src_height: r.read_u32(name)?,
                dest: Rect::decode(r)?,
                clip: Clip::decode(r)?,
            })
        }
        msg::STREAM_DATA => ServerMessage::StreamData(StreamData {
            header: StreamDataHeader::decode(r)?,
            data: decode_stream_data(r, "stream_data data")?,
        }),
        msg::STREAM_CLIP => ServerMessage::StreamClip(StreamClip {
            id: r.read_u32("stream_clip id")?,
            clip: Clip::decode(r)?,
        }),
        msg::STREAM_DESTROY => ServerMessage::StreamDestroy(r.read_u32("stream_destroy id")?),
        msg::STREAM_DESTROY_ALL => ServerMessage::StreamDestroyAll,
        msg::DRAW_FILL => {
            let base = DisplayBase::decode(r)?;
            let brush = Brush::decode(r, e)?;
            let rop_descriptor = Ropd::from_bits_retain(r.read_u16("rop_descriptor")?);
            let mask = QMask::decode(r, e)?;
            ServerMessage::DrawFill(DrawFill {
                base,
                brush,
                rop_descriptor,
                mask,
            })
        }
        msg::DRAW_OPAQUE => {
            let base = DisplayBase::decode(r)?;
            let src_bitmap = Image::decode_ptr(r, e, "src_bitmap")?;
            let src_area = Rect::decode(r)?;
            let brush = Brush::decode(r, e)?;
            r.ensure(3, name)?;
            let rop_descriptor = Ropd::from_bits_retain(r.read_u16("rop_descriptor")?);
            let scale_mode = ImageScaleMode(r.read_u8("scale_mode")?);
            let mask = QMask::decode(r, e)?;
            ServerMessage::DrawOpaque(DrawOpaque {
                base,
                src_bitmap,
                src_area,
                brush,
                rop_descriptor,
                scale_mode,
                mask,
            })
        }
        msg::DRAW_COPY => ServerMessage::DrawCopy(decode_copy(r, e)?),
        msg::DRAW_BLEND => ServerMessage::DrawBlend(decode_copy(r, e)?),
        msg::DRAW_BLACKNESS => ServerMessage::DrawBlackness(decode_mask(r, e)?),
        msg::DRAW_WHITENESS => ServerMessage::DrawWhiteness(decode_mask(r, e)?),
        msg::DRAW_INVERS => ServerMessage::DrawInvers(decode_mask(r, e)?),
        msg::DRAW_ROP3 => {
            let base = DisplayBase::decode(r)?;
            let src_bitmap = Image::decode_ptr(r, e, "src_bitmap")?;
            let src_area = Rect::decode(r)?;
            let brush = Brush::decode(r, e)?;
            r.ensure(2, name)?;
            let rop3 = r.read_u8("rop3")?;
            let scale_mode = ImageScaleMode(r.read_u8("scale_mode")?);
            let mask = QMask::decode(r, e)?;
            ServerMessage::DrawRop3(DrawRop3 {
                base,
                src_bitmap,
                src_area,
                brush,
                rop3,
                scale_mode,
                mask,
            })
        }
        msg::DRAW_STROKE => {
            let base = DisplayBase::decode(r)?;
            let path = Path::decode_ptr(r, e, "stroke path")?;
            let attr = LineAttr::decode(r, e)?;
            let brush = Brush::decode(r, e)?;
            r.ensure(4, name)?;
            ServerMessage::DrawStroke(DrawStroke {
                base,
                path,
                attr,
                brush,
                fore_mode: r.read_u16("fore_mode")?,
                back_mode: r.read_u16("back_mode")?,
            })
        }
        msg::DRAW_TEXT => {
            let base = DisplayBase::decode(r)?;
            let text = SpiceString::decode_ptr(r, e, "text string")?;
            let back_area = Rect::decode(r)?;
            let fore_brush = Brush::decode(r, e)?;
            let back_brush = Brush::decode(r, e)?;
            r.ensure(4, name)?;
            ServerMessage::DrawText(DrawText {
                base,
                text,
                back_area,
                fore_brush,
                back_brush,
                fore_mode: r.read_u16("fore_mode")?,
                back_mode: r.read_u16("back_mode")?,
            })
        }
        msg::DRAW_TRANSPARENT => {
            let base = DisplayBase::decode(r)?;
            r.ensure(4 + 16 + 8, name)?;
            let src_bitmap = Image::decode_ptr(r, e, "src_bitmap")?;
            ServerMessage::DrawTransparent(DrawTransparent {
                base,
                src_bitmap,
                src_area: Rect::decode(r)?,
                src_color: r.read_u32("src_color")?,
                true_color: r.read_u32("true_color")?,
            })
        }
        msg::DRAW_ALPHA_BLEND => {
            let base = DisplayBase::decode(r)?;
            r.ensure(1 + 1 + 4 + 16, name)?;
            let alpha_flags = AlphaFlags::from_bits_retain(r.read_u8("alpha_flags")?);
            let alpha = r.read_u8("alpha")?;
            let src_bitmap = Image::decode_ptr(r, e, "src_bitmap")?;
            ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
                base,
                alpha_flags,
                alpha,
                src_bitmap,
                src_area: Rect::decode(r)?,
            })
        }
        msg::SURFACE_CREATE => {
            r.ensure(20, name)?;
            ServerMessage::SurfaceCreate(SurfaceCreate {
                surface_id: r.read_u32(name)?,
                width: r.read_u32(name)?,
                height: r.read_u32(name)?,
                format: SurfaceFormat(r.read_u32(name)?),
                flags: SurfaceFlags::from_bits_retain(r.read_u32(name)?),
            })
        }
        msg::SURFACE_DESTROY => ServerMessage::SurfaceDestroy(r.read_u32("surface_id")?),
        msg::STREAM_DATA_SIZED => {
            r.ensure(36, name)?;
            ServerMessage::StreamDataSized(StreamDataSized {
                header: StreamDataHeader::decode(r)?,
                width: r.read_u32(name)?,
                height: r.read_u32(name)?,
                dest: Rect::decode(r)?,
                data: decode_stream_data(r, "stream_data_sized data")?,
            })
        }
        msg::MONITORS_CONFIG => {
            r.ensure(4, name)?;
            let count = r.read_u16("monitors_config count")?;
            let max_allowed = r.read_u16("monitors_config max_allowed")?;
            let n = r.check_count(count.into(), Head::SIZE, "monitors_config heads")?;
            let heads = (0..n).map(|_| Head::decode(r)).collect::<Result<_, _>>()?;
            ServerMessage::MonitorsConfig(MonitorsConfig { max_allowed, heads })
        }
        msg::DRAW_COMPOSITE => {
            let base = DisplayBase::decode(r)?;
            let flags = CompositeFlags::from_bits_retain(r.read_u32("composite flags")?);
            let src_bitmap = Image::decode_ptr(r, e, "src_bitmap")?;
            let mask_bitmap = if flags.contains(CompositeFlags::HAS_MASK) {
                Image::decode_ptr(r, e, "mask_bitmap")?
            } else {
                None
            };
            let src_transform = if flags.contains(CompositeFlags::HAS_SRC_TRANSFORM) {
                Some(Transform::decode(r)?)
            } else {
                None
            };
            let mask_transform = if flags.contains(CompositeFlags::HAS_MASK_TRANSFORM) {
                Some(Transform::decode(r)?)
            } else {
                None
            };
            ServerMessage::DrawComposite(DrawComposite {
                base,
                flags,
                src_bitmap,
                mask_bitmap,
                src_transform,
                mask_transform,
                src_origin: Point16::decode(r)?,
                mask_origin: Point16::decode(r)?,
            })
        }
        msg::STREAM_ACTIVATE_REPORT => {
            r.ensure(16, name)?;
            ServerMessage::StreamActivateReport(StreamActivateReport {
                stream_id: r.read_u32(name)?,
                unique_id: r.read_u32(name)?,
                max_window_size: r.read_u32(name)?,
                timeout_ms: r.read_u32(name)?,
            })
        }
        msg::GL_SCANOUT_UNIX => {
            r.ensure(20, name)?;
            ServerMessage::GlScanoutUnix(GlScanoutUnix {
                width: r.read_u32(name)?,
                height: r.read_u32(name)?,
                stride: r.read_u32(name)?,
                drm_fourcc_format: r.read_u32(name)?,
                flags: GlScanoutFlags::from_bits_retain(r.read_u32(name)?),
            })
        }
        msg::GL_DRAW => {
            r.ensure(16, name)?;
            ServerMessage::GlDraw(GlDraw {
                x: r.read_u32(name)?,
                y: r.read_u32(name)?,
                w: r.read_u32(name)?,
                h: r.read_u32(name)?,
            })
        }
        msg::QUALITY_INDICATOR => ServerMessage::QualityIndicator(r.read_rest()),
        msg::GL_SCANOUT2_UNIX => {
            r.ensure(60, name)?;
            ServerMessage::GlScanout2Unix(GlScanout2Unix {
                width: r.read_u32(name)?,
                height: r.read_u32(name)?,
                offset: read_rect_u32x4(r, name)?,
                stride: read_rect_u32x4(r, name)?,
                fourcc: r.read_u32(name)?,
                flags: GlScanoutFlags::from_bits_retain(r.read_u32(name)?),
                modifier: r.read_u64(name)?,
                num_planes: r.read_u16(name)?,
                num_dmabuf: r.read_u16(name)?,
            })
        }
        _ => return Err(DecodeError::UnknownMessage { msg_type }),
    };
    ext.finish(r, name)?;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

fn encode_copy<'r, 'a>(
    c: &'r DrawCopy<'a>,
    w: &mut WriteBuf<'_>,
    q: &mut PointerQueue<'r, 'a>,
) -> Result<(), EncodeError> {
    c.base.encode(w)?;
    Image::encode_ptr(c.src_bitmap.as_ref(), w, q);
    c.src_area.encode(w)?;
    w.write_u16(c.rop_descriptor.bits());
    w.write_u8(c.scale_mode.0);
    c.mask.encode(w, q);
    Ok(())
}

fn encode_mask<'r, 'a>(
    m: &'r DrawMask<'a>,
    w: &mut WriteBuf<'_>,
    q: &mut PointerQueue<'r, 'a>,
) -> Result<(), EncodeError> {
    m.base.encode(w)?;
    m.mask.encode(w, q);
    Ok(())
}

fn write_data(w: &mut WriteBuf<'_>, data: &[u8], ctx: &'static str) -> Result<(), EncodeError> {
    w.write_u32(WriteBuf::len_as(data.len(), ctx)?);
    w.write_slice(data);
    Ok(())
}

impl<'a> ServerMessage<'a> {
    fn encode_fixed<'r>(
        &'r self,
        w: &mut WriteBuf<'_>,
        q: &mut PointerQueue<'r, 'a>,
    ) -> Result<(), EncodeError> {
        match self {
            ServerMessage::Mode(m) => {
                w.write_u32(m.x_res);
                w.write_u32(m.y_res);
                w.write_u32(m.bits);
            }
            ServerMessage::Mark
            | ServerMessage::Reset
            | ServerMessage::InvalAllPalettes
            | ServerMessage::StreamDestroyAll => {}
            ServerMessage::CopyBits(c) => {
                c.base.encode(w)?;
                c.src_pos.encode(w)?;
            }
            ServerMessage::InvalList(list) => {
                w.write_u16(WriteBuf::len_as(list.len(), "inval_list count")?);
                for res in list {
                    res.encode(w)?;
                }
            }
            ServerMessage::InvalAllPixmaps(list) => {
                w.write_u8(WriteBuf::len_as(
                    list.len(),
                    "inval_all_pixmaps wait_count",
                )?);
                for wait in list {
                    wait.encode(w)?;
                }
            }
            ServerMessage::InvalPalette(id) => w.write_u64(*id),
            ServerMessage::StreamCreate(s) => {
                w.write_u32(s.surface_id);
                w.write_u32(s.id);
                w.write_u8(s.flags.bits());
                w.write_u8(s.codec_type.0);
                w.write_u64(s.stamp);
                w.write_u32(s.stream_width);
                w.write_u32(s.stream_height);
                w.write_u32(s.src_width);
                w.write_u32(s.src_height);
                s.dest.encode(w)?;
                s.clip.encode(w)?;
            }
            ServerMessage::StreamData(s) => {
                s.header.encode(w)?;
                write_data(w, s.data, "stream_data data_size")?;
            }
            ServerMessage::StreamClip(s) => {
                w.write_u32(s.id);
                s.clip.encode(w)?;
            }
            ServerMessage::StreamDestroy(id) | ServerMessage::SurfaceDestroy(id) => {
                w.write_u32(*id)
            }
            ServerMessage::DrawFill(f) => {
                f.base.encode(w)?;
                f.brush.encode(w, q);
                w.write_u16(f.rop_descriptor.bits());
                f.mask.encode(w, q);
            }
            ServerMessage::DrawOpaque(o) => {
                o.base.encode(w)?;
                Image::encode_ptr(o.src_bitmap.as_ref(), w, q);
                o.src_area.encode(w)?;
                o.brush.encode(w, q);
                w.write_u16(o.rop_descriptor.bits());
                w.write_u8(o.scale_mode.0);
                o.mask.encode(w, q);
            }
            ServerMessage::DrawCopy(c) | ServerMessage::DrawBlend(c) => encode_copy(c, w, q)?,
            ServerMessage::DrawBlackness(m)
            | ServerMessage::DrawWhiteness(m)
            | ServerMessage::DrawInvers(m) => encode_mask(m, w, q)?,
            ServerMessage::DrawRop3(o) => {
                o.base.encode(w)?;
                Image::encode_ptr(o.src_bitmap.as_ref(), w, q);
                o.src_area.encode(w)?;
                o.brush.encode(w, q);
                w.write_u8(o.rop3);
                w.write_u8(o.scale_mode.0);
                o.mask.encode(w, q);
            }
            ServerMessage::DrawStroke(s) => {
                s.base.encode(w)?;
                s.path.encode_ptr(w, q);
                s.attr.encode(w, q)?;
                s.brush.encode(w, q);
                w.write_u16(s.fore_mode);
                w.write_u16(s.back_mode);
            }
            ServerMessage::DrawText(t) => {
                t.base.encode(w)?;
                t.text.encode_ptr(w, q);
                t.back_area.encode(w)?;
                t.fore_brush.encode(w, q);
                t.back_brush.encode(w, q);
                w.write_u16(t.fore_mode);
                w.write_u16(t.back_mode);
            }
            ServerMessage::DrawTransparent(t) => {
                t.base.encode(w)?;
                Image::encode_ptr(t.src_bitmap.as_ref(), w, q);
                t.src_area.encode(w)?;
                w.write_u32(t.src_color);
                w.write_u32(t.true_color);
            }
            ServerMessage::DrawAlphaBlend(a) => {
                a.base.encode(w)?;
                w.write_u8(a.alpha_flags.bits());
                w.write_u8(a.alpha);
                Image::encode_ptr(a.src_bitmap.as_ref(), w, q);
                a.src_area.encode(w)?;
            }
            ServerMessage::SurfaceCreate(s) => {
                w.write_u32(s.surface_id);
                w.write_u32(s.width);
                w.write_u32(s.height);
                w.write_u32(s.format.0);
                w.write_u32(s.flags.bits());
            }
            ServerMessage::StreamDataSized(s) => {
                s.header.encode(w)?;
                w.write_u32(s.width);
                w.write_u32(s.height);
                s.dest.encode(w)?;
                write_data(w, s.data, "stream_data_sized data_size")?;
            }
            ServerMessage::MonitorsConfig(m) => {
                w.write_u16(WriteBuf::len_as(m.heads.len(), "monitors_config count")?);
                w.write_u16(m.max_allowed);
                for h in &m.heads {
                    h.encode(w)?;
                }
            }
            ServerMessage::DrawComposite(c) => {
                let has_mask = c.flags.contains(CompositeFlags::HAS_MASK);
                if (!has_mask && c.mask_bitmap.is_some())
                    || c.flags.contains(CompositeFlags::HAS_SRC_TRANSFORM)
                        != c.src_transform.is_some()
                    || c.flags.contains(CompositeFlags::HAS_MASK_TRANSFORM)
                        != c.mask_transform.is_some()
                {
                    return Err(EncodeError::Inconsistent {
                        field: "draw_composite (HAS_* flags vs optional fields)",
                    });
                }
                c.base.encode(w)?;
                w.write_u32(c.flags.bits());
                Image::encode_ptr(c.src_bitmap.as_ref(), w, q);
                if has_mask {
                    Image::encode_ptr(c.mask_bitmap.as_ref(), w, q);
                }
                if let Some(t) = &c.src_transform {
                    t.encode(w)?;
                }
                if let Some(t) = &c.mask_transform {
                    t.encode(w)?;
                }
                c.src_origin.encode(w)?;
                c.mask_origin.encode(w)?;
            }
            ServerMessage::StreamActivateReport(s) => {
                w.write_u32(s.stream_id);
                w.write_u32(s.unique_id);
                w.write_u32(s.max_window_size);
                w.write_u32(s.timeout_ms);
            }
            ServerMessage::GlScanoutUnix(g) => {
                w.write_u32(g.width);
                w.write_u32(g.height);
                w.write_u32(g.stride);
                w.write_u32(g.drm_fourcc_format);
                w.write_u32(g.flags.bits());
            }
            ServerMessage::GlDraw(g) => {
                w.write_u32(g.x);
                w.write_u32(g.y);
                w.write_u32(g.w);
                w.write_u32(g.h);
            }
            ServerMessage::QualityIndicator(d) => w.write_slice(d),
            ServerMessage::GlScanout2Unix(g) => {
                w.write_u32(g.width);
                w.write_u32(g.height);
                for v in g.offset.iter().chain(&g.stride) {
                    w.write_u32(*v);
                }
                w.write_u32(g.fourcc);
                w.write_u32(g.flags.bits());
                w.write_u64(g.modifier);
                w.write_u16(g.num_planes);
                w.write_u16(g.num_dmabuf);
            }
        }
        Ok(())
    }
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            ServerMessage::Mode(_) => msg::MODE,
            ServerMessage::Mark => msg::MARK,
            ServerMessage::Reset => msg::RESET,
            ServerMessage::CopyBits(_) => msg::COPY_BITS,
            ServerMessage::InvalList(_) => msg::INVAL_LIST,
            ServerMessage::InvalAllPixmaps(_) => msg::INVAL_ALL_PIXMAPS,
            ServerMessage::InvalPalette(_) => msg::INVAL_PALETTE,
            ServerMessage::InvalAllPalettes => msg::INVAL_ALL_PALETTES,
            ServerMessage::StreamCreate(_) => msg::STREAM_CREATE,
            ServerMessage::StreamData(_) => msg::STREAM_DATA,
            ServerMessage::StreamClip(_) => msg::STREAM_CLIP,
            ServerMessage::StreamDestroy(_) => msg::STREAM_DESTROY,
            ServerMessage::StreamDestroyAll => msg::STREAM_DESTROY_ALL,
            ServerMessage::DrawFill(_) => msg::DRAW_FILL,
            ServerMessage::DrawOpaque(_) => msg::DRAW_OPAQUE,
            ServerMessage::DrawCopy(_) => msg::DRAW_COPY,
            ServerMessage::DrawBlend(_) => msg::DRAW_BLEND,
            ServerMessage::DrawBlackness(_) => msg::DRAW_BLACKNESS,
            ServerMessage::DrawWhiteness(_) => msg::DRAW_WHITENESS,
            ServerMessage::DrawInvers(_) => msg::DRAW_INVERS,
            ServerMessage::DrawRop3(_) => msg::DRAW_ROP3,
            ServerMessage::DrawStroke(_) => msg::DRAW_STROKE,
            ServerMessage::DrawText(_) => msg::DRAW_TEXT,
            ServerMessage::DrawTransparent(_) => msg::DRAW_TRANSPARENT,
            ServerMessage::DrawAlphaBlend(_) => msg::DRAW_ALPHA_BLEND,
            ServerMessage::SurfaceCreate(_) => msg::SURFACE_CREATE,
            ServerMessage::SurfaceDestroy(_) => msg::SURFACE_DESTROY,
            ServerMessage::StreamDataSized(_) => msg::STREAM_DATA_SIZED,
            ServerMessage::MonitorsConfig(_) => msg::MONITORS_CONFIG,
            ServerMessage::DrawComposite(_) => msg::DRAW_COMPOSITE,
            ServerMessage::StreamActivateReport(_) => msg::STREAM_ACTIVATE_REPORT,
            ServerMessage::GlScanoutUnix(_) => msg::GL_SCANOUT_UNIX,
            ServerMessage::GlDraw(_) => msg::GL_DRAW,
            ServerMessage::QualityIndicator(_) => msg::QUALITY_INDICATOR,
            ServerMessage::GlScanout2Unix(_) => msg::GL_SCANOUT2_UNIX,
        }
    }

    fn name(&self) -> &'static str {
        server_name(self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        decode_server(msg_type, body)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        let mut q = PointerQueue::new();
        self.encode_fixed(w, &mut q)?;
        q.flush(w)
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        server_name(msg_type)
    }
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            ClientMessage::Init(_) => msgc::INIT,
            ClientMessage::StreamReport(_) => msgc::STREAM_REPORT,
            ClientMessage::PreferredCompression(_) => msgc::PREFERRED_COMPRESSION,
            ClientMessage::GlDrawDone => msgc::GL_DRAW_DONE,
            ClientMessage::PreferredVideoCodecType(_) => msgc::PREFERRED_VIDEO_CODEC_TYPE,
        }
    }

    fn name(&self) -> &'static str {
        client_name(self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let name = client_name(msg_type).ok_or(DecodeError::UnknownMessage { msg_type })?;
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            msgc::INIT => {
                r.ensure(14, name)?;
                ClientMessage::Init(Init {
                    pixmap_cache_id: r.read_u8(name)?,
                    pixmap_cache_size: r.read_i64(name)?,
                    glz_dictionary_id: r.read_u8(name)?,
                    glz_dictionary_window_size: r.read_i32(name)?,
                })
            }
            msgc::STREAM_REPORT => {
                r.ensure(32, name)?;
                ClientMessage::StreamReport(StreamReport {
                    stream_id: r.read_u32(name)?,
                    unique_id: r.read_u32(name)?,
                    start_frame_mm_time: r.read_u32(name)?,
                    end_frame_mm_time: r.read_u32(name)?,
                    num_frames: r.read_u32(name)?,
                    num_drops: r.read_u32(name)?,
                    last_frame_delay: r.read_i32(name)?,
                    audio_delay: r.read_u32(name)?,
                })
            }
            msgc::PREFERRED_COMPRESSION => {
                ClientMessage::PreferredCompression(ImageCompression(r.read_u8(name)?))
            }
            msgc::GL_DRAW_DONE => ClientMessage::GlDrawDone,
            msgc::PREFERRED_VIDEO_CODEC_TYPE => {
                let n = r.read_u8("num_of_codecs")?;
                ClientMessage::PreferredVideoCodecType(CodecList(r.read_slice(n.into(), "codecs")?))
            }
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish(name)?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            ClientMessage::Init(i) => {
                w.write_u8(i.pixmap_cache_id);
                w.write_i64(i.pixmap_cache_size);
                w.write_u8(i.glz_dictionary_id);
                w.write_i32(i.glz_dictionary_window_size);
            }
            ClientMessage::StreamReport(s) => {
                w.write_u32(s.stream_id);
                w.write_u32(s.unique_id);
                w.write_u32(s.start_frame_mm_time);
                w.write_u32(s.end_frame_mm_time);
                w.write_u32(s.num_frames);
                w.write_u32(s.num_drops);
                w.write_i32(s.last_frame_delay);
                w.write_u32(s.audio_delay);
            }
            ClientMessage::PreferredCompression(c) => w.write_u8(c.0),
            ClientMessage::GlDrawDone => {}
            ClientMessage::PreferredVideoCodecType(codecs) => {
                w.write_u8(WriteBuf::len_as(codecs.0.len(), "num_of_codecs")?);
                w.write_slice(codecs.0);
            }
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        client_name(msg_type)
    }
}

/// Fuzz entry for server messages: the first 2 bytes (LE) are the message type, the rest the
/// body. Decodes; if that succeeds, encodes, decodes again and panics unless the two values
/// are equal (the round-trip invariant). Never panics otherwise.
pub fn fuzz_server(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let msg_type = u16::from_le_bytes([data[0], data[1]]);
    let body = &data[2..];
    if let Ok(m) = ServerMessage::decode_body(ChannelType::DISPLAY, msg_type, body) {
        let mut out = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut out))
            .expect("a decoded message re-encodes");
        let again = ServerMessage::decode_body(ChannelType::DISPLAY, msg_type, &out)
            .expect("an encoded message decodes");
        assert_eq!(m, again, "display server round trip");
    }
}

/// Fuzz entry for client messages (same framing and invariant as [`fuzz_server`]).
pub fn fuzz_client(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let msg_type = u16::from_le_bytes([data[0], data[1]]);
    let body = &data[2..];
    if let Ok(m) = ClientMessage::decode_body(ChannelType::DISPLAY, msg_type, body) {
        let mut out = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut out))
            .expect("a decoded message re-encodes");
        assert_eq!(
            out.as_slice(),
            body,
            "display client messages re-encode exactly"
        );
        let again = ClientMessage::decode_body(ChannelType::DISPLAY, msg_type, &out)
            .expect("an encoded message decodes");
        assert_eq!(m, again, "display client round trip");
    }
}

/// proptest strategies for display messages (feature `proptest`).
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::types::strategies as ts;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn opt_image() -> BoxedStrategy<Option<Image<'static>>> {
        proptest::option::of(ts::image()).boxed()
    }

    fn copy() -> BoxedStrategy<DrawCopy<'static>> {
        (
            ts::display_base(),
            opt_image(),
            ts::rect(),
            any::<u16>(),
            any::<u8>(),
            ts::qmask(),
        )
            .prop_map(|(base, src_bitmap, src_area, rop, scale, mask)| DrawCopy {
                base,
                src_bitmap,
                src_area,
                rop_descriptor: Ropd::from_bits_retain(rop),
                scale_mode: ImageScaleMode(scale),
                mask,
            })
            .boxed()
    }

    fn draw_mask() -> BoxedStrategy<DrawMask<'static>> {
        (ts::display_base(), ts::qmask())
            .prop_map(|(base, mask)| DrawMask { base, mask })
            .boxed()
    }

    fn composite() -> BoxedStrategy<DrawComposite<'static>> {
        (
            ts::display_base(),
            any::<u32>(),
            opt_image(),
            proptest::option::of(opt_image()),
            proptest::option::of(ts::transform()),
            proptest::option::of(ts::transform()),
            ts::point16(),
            ts::point16(),
        )
            .prop_map(|(base, bits, src_bitmap, mask, src_t, mask_t, so, mo)| {
                let mut flags = CompositeFlags::from_bits_retain(bits)
                    - CompositeFlags::HAS_MASK
                    - CompositeFlags::HAS_SRC_TRANSFORM
                    - CompositeFlags::HAS_MASK_TRANSFORM;
                flags.set(CompositeFlags::HAS_MASK, mask.is_some());
                flags.set(CompositeFlags::HAS_SRC_TRANSFORM, src_t.is_some());
                flags.set(CompositeFlags::HAS_MASK_TRANSFORM, mask_t.is_some());
                DrawComposite {
                    base,
                    flags,
                    src_bitmap,
                    mask_bitmap: mask.flatten(),
                    src_transform: src_t,
                    mask_transform: mask_t,
                    src_origin: so,
                    mask_origin: mo,
                }
            })
            .boxed()
    }

    /// Every [`ServerMessage`] variant with arbitrary, consistent contents.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        let simple = prop_oneof![
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(x_res, y_res, bits)| {
                ServerMessage::Mode(Mode { x_res, y_res, bits })
            }),
            Just(ServerMessage::Mark),
            Just(ServerMessage::Reset),
            (ts::display_base(), ts::point())
                .prop_map(|(base, src_pos)| ServerMessage::CopyBits(CopyBits { base, src_pos })),
            vec(ts::resource_id(), 0..6).prop_map(ServerMessage::InvalList),
            vec(ts::wait_for_channel(), 0..6).prop_map(ServerMessage::InvalAllPixmaps),
            any::<u64>().prop_map(ServerMessage::InvalPalette),
            Just(ServerMessage::InvalAllPalettes),
            (
                (
                    any::<u32>(),
                    any::<u32>(),
                    any::<u8>(),
                    any::<u8>(),
                    any::<u64>()
                ),
                (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
                ts::rect(),
                ts::clip(),
            )
                .prop_map(
                    |((surface_id, id, f, c, stamp), (sw, sh, w, h), dest, clip)| {
                        ServerMessage::StreamCreate(StreamCreate {
                            surface_id,
                            id,
                            flags: StreamFlags::from_bits_retain(f),
                            codec_type: VideoCodecType(c),
                            stamp,
                            stream_width: sw,
                            stream_height: sh,
                            src_width: w,
                            src_height: h,
                            dest,
                            clip,
                        })
                    }
                ),
            (ts::stream_data_header(), ts::bytes(64)).prop_map(|(header, data)| {
                ServerMessage::StreamData(StreamData { header, data })
            }),
            (any::<u32>(), ts::clip())
                .prop_map(|(id, clip)| ServerMessage::StreamClip(StreamClip { id, clip })),
            any::<u32>().prop_map(ServerMessage::StreamDestroy),
            Just(ServerMessage::StreamDestroyAll),
        ];
        let draws = prop_oneof![
            (ts::display_base(), ts::brush(), any::<u16>(), ts::qmask()).prop_map(
                |(base, brush, rop, mask)| ServerMessage::DrawFill(DrawFill {
                    base,
                    brush,
                    rop_descriptor: Ropd::from_bits_retain(rop),
                    mask,
                })
            ),
            (
                ts::display_base(),
                opt_image(),
                ts::rect(),
                ts::brush(),
                any::<u16>(),
                any::<u8>(),
                ts::qmask()
            )
                .prop_map(|(base, src_bitmap, src_area, brush, rop, scale, mask)| {
                    ServerMessage::DrawOpaque(DrawOpaque {
                        base,
                        src_bitmap,
                        src_area,
                        brush,
                        rop_descriptor: Ropd::from_bits_retain(rop),
                        scale_mode: ImageScaleMode(scale),
                        mask,
                    })
                }),
            copy().prop_map(ServerMessage::DrawCopy),
            copy().prop_map(ServerMessage::DrawBlend),
            draw_mask().prop_map(ServerMessage::DrawBlackness),
            draw_mask().prop_map(ServerMessage::DrawWhiteness),
            draw_mask().prop_map(ServerMessage::DrawInvers),
            (
                ts::display_base(),
                opt_image(),
                ts::rect(),
                ts::brush(),
                any::<u8>(),
                any::<u8>(),
                ts::qmask()
            )
                .prop_map(|(base, src_bitmap, src_area, brush, rop3, scale, mask)| {
                    ServerMessage::DrawRop3(DrawRop3 {
                        base,
                        src_bitmap,
                        src_area,
                        brush,
                        rop3,
                        scale_mode: ImageScaleMode(scale),
                        mask,
                    })
                }),
            (
                ts::display_base(),
                ts::path(),
                ts::line_attr(),
                ts::brush(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(base, path, attr, brush, fore_mode, back_mode)| {
                    ServerMessage::DrawStroke(DrawStroke {
                        base,
                        path,
                        attr,
                        brush,
                        fore_mode,
                        back_mode,
                    })
                }),
            (
                ts::display_base(),
                ts::spice_string(),
                ts::rect(),
                ts::brush(),
                ts::brush(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(base, text, back_area, fb, bb, fore_mode, back_mode)| {
                    ServerMessage::DrawText(DrawText {
                        base,
                        text,
                        back_area,
                        fore_brush: fb,
                        back_brush: bb,
                        fore_mode,
                        back_mode,
                    })
                }),
            (
                ts::display_base(),
                opt_image(),
                ts::rect(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(|(base, src_bitmap, src_area, src_color, true_color)| {
                    ServerMessage::DrawTransparent(DrawTransparent {
                        base,
                        src_bitmap,
                        src_area,
                        src_color,
                        true_color,
                    })
                }),
            (
                ts::display_base(),
                any::<u8>(),
                any::<u8>(),
                opt_image(),
                ts::rect()
            )
                .prop_map(|(base, af, alpha, src_bitmap, src_area)| {
                    ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
                        base,
                        alpha_flags: AlphaFlags::from_bits_retain(af),
                        alpha,
                        src_bitmap,
                        src_area,
                    })
                }),
            composite().prop_map(ServerMessage::DrawComposite),
        ];
        let rest = prop_oneof![
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(|(surface_id, width, height, format, flags)| {
                    ServerMessage::SurfaceCreate(SurfaceCreate {
                        surface_id,
                        width,
                        height,
                        format: SurfaceFormat(format),
                        flags: SurfaceFlags::from_bits_retain(flags),
                    })
                }),
            any::<u32>().prop_map(ServerMessage::SurfaceDestroy),
            (
                ts::stream_data_header(),
                any::<u32>(),
                any::<u32>(),
                ts::rect(),
                ts::bytes(64)
            )
                .prop_map(|(header, width, height, dest, data)| {
                    ServerMessage::StreamDataSized(StreamDataSized {
                        header,
                        width,
                        height,
                        dest,
                        data,
                    })
                }),
            (any::<u16>(), vec(ts::head(), 0..5)).prop_map(|(max_allowed, heads)| {
                ServerMessage::MonitorsConfig(MonitorsConfig { max_allowed, heads })
            }),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c, d)| {
                ServerMessage::StreamActivateReport(StreamActivateReport {
                    stream_id: a,
                    unique_id: b,
                    max_window_size: c,
                    timeout_ms: d,
                })
            }),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(|(width, height, stride, fmt, flags)| {
                    ServerMessage::GlScanoutUnix(GlScanoutUnix {
                        width,
                        height,
                        stride,
                        drm_fourcc_format: fmt,
                        flags: GlScanoutFlags::from_bits_retain(flags),
                    })
                }),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(x, y, w, h)| ServerMessage::GlDraw(GlDraw { x, y, w, h })),
            ts::bytes(32).prop_map(ServerMessage::QualityIndicator),
            (
                (
                    any::<u32>(),
                    any::<u32>(),
                    any::<[u32; 4]>(),
                    any::<[u32; 4]>()
                ),
                (
                    any::<u32>(),
                    any::<u32>(),
                    any::<u64>(),
                    any::<u16>(),
                    any::<u16>()
                )
            )
                .prop_map(
                    |((width, height, offset, stride), (fourcc, flags, modifier, np, nd))| {
                        ServerMessage::GlScanout2Unix(GlScanout2Unix {
                            width,
                            height,
                            offset,
                            stride,
                            fourcc,
                            flags: GlScanoutFlags::from_bits_retain(flags),
                            modifier,
                            num_planes: np,
                            num_dmabuf: nd,
                        })
                    }
                ),
        ];
        prop_oneof![simple, draws, rest].boxed()
    }

    /// Every [`ClientMessage`] variant with arbitrary contents.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            (any::<u8>(), any::<i64>(), any::<u8>(), any::<i32>()).prop_map(|(a, b, c, d)| {
                ClientMessage::Init(Init {
                    pixmap_cache_id: a,
                    pixmap_cache_size: b,
                    glz_dictionary_id: c,
                    glz_dictionary_window_size: d,
                })
            }),
            (any::<[u32; 6]>(), any::<i32>(), any::<u32>()).prop_map(|(v, delay, audio)| {
                ClientMessage::StreamReport(StreamReport {
                    stream_id: v[0],
                    unique_id: v[1],
                    start_frame_mm_time: v[2],
                    end_frame_mm_time: v[3],
                    num_frames: v[4],
                    num_drops: v[5],
                    last_frame_delay: delay,
                    audio_delay: audio,
                })
            }),
            any::<u8>().prop_map(|c| ClientMessage::PreferredCompression(ImageCompression(c))),
            Just(ClientMessage::GlDrawDone),
            ts::bytes(8).prop_map(|v| ClientMessage::PreferredVideoCodecType(CodecList(v))),
        ]
        .boxed()
    }
}
