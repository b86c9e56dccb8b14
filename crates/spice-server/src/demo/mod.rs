//! The demo desktop: a deterministic "guest" that drives spice-qxl's guest-driver side, so
//! `spice-server --demo` has something to show.
//!
//! [`DemoDesktop::new`] builds a QXL device over in-process memory ([`VecMemory`]), attaches a
//! [`GuestDriver`] to it and creates the primary surface (1024x768 by default,
//! [`DemoConfig`]). The server's display worker then treats [`DemoDesktop::device_mut`] as
//! its QXL device (it implements [`QxlInterface`]): it takes the [`IoRequest`]s the guest
//! caused ([`DemoDesktop::take_io_requests`], first of all the primary surface's
//! `CreatePrimary`), pulls commands from the command and cursor rings, and releases them.
//!
//! The demo is sans-IO: the caller says when a frame is due ([`DemoDesktop::frame_interval`],
//! [`DemoDesktop::frame_at`]) and calls [`DemoDesktop::step`] with the frame number. Each
//! step first collects what the server released, then queues the frame's commands and pushes
//! as many as the rings and guest memory allow; the rest stays queued until
//! [`DemoDesktop::pump`] (or the next step) finds room, so call `pump` after the worker
//! drained the rings and released what it finished. A frame that arrives while the previous
//! frame's video, status or cursor command is still queued replaces it (as a real guest
//! driver coalesces), so the queue stays bounded however slow the server is.
//!
//! What is drawn:
//! - the first step draws the scene: a gradient background (DRAW_COPY of bitmap strips),
//!   three windows (shadow, border and body as DRAW_FILL; title bar and text rendered from a
//!   built-in 5x7 font as DRAW_COPY bitmaps, or with [`TextMode::Glyphs`] as DRAW_TEXT with
//!   1-bpp raster glyphs and the background in `back_area`), a bar chart (DRAW_FILLs, with
//!   [`DemoConfig::clip_fills`] clipped by clip rectangles), and sets the cursor shape (a
//!   32x32 ALPHA arrow with cache id [`CURSOR_UNIQUE`]);
//! - every step: a new full bitmap DRAW_COPY into the video region (320x240 by default,
//!   photo-like moving plasma, never cached: what a stream detector picks), the status line
//!   ("FRAME nnnnnnnnnn", text with its background), and a cursor MOVE.
//!
//! The default [`DemoConfig`] uses only what spice-html5 draws too (it has no DRAW_TEXT and
//! ignores clip rectangles); [`DemoConfig::rich`] exercises DRAW_TEXT and clips.
//!
//! Everything drawn for frame `n` is a function of `n` alone (same frame number, same
//! commands, byte for byte, apart from the copies' `mm_time`, which a guest driver copies from
//! the ROM clock the server sets with [`QxlInterface::set_mm_time`]), and with [`DemoConfig::freeze_after`] = `Some(n)` the desktop
//! stops changing once frame `n - 1` is drawn (`--demo-frames N`), so the server's framebuffer
//! and a client's screenshot can be compared.
//!
//! Text glyphs follow spice-gtk's canvas: the glyph box is `render_pos + glyph_origin` (the
//! demo uses origin (0, 0) and puts `render_pos` at the glyph's top-left), rows are stored
//! bottom row first and the most significant bit is the leftmost pixel; each text command
//! fills its `back_area` (the text's line) with the background brush first (`back_mode` and
//! `fore_mode` are `OP_PUT`).

pub mod font;
pub mod scene;

use std::collections::VecDeque;
use std::time::Duration;

use spice_qxl::abi::{self, draw_type};
use spice_qxl::guest::{GuestBitmap, GuestGlyph, drawable};
use spice_qxl::parse::Rect;
use spice_qxl::{
    BarLayout, DeviceConfig, DeviceError, GuestDriver, GuestError, IoRequest, PrimarySurface,
    QxlDevice, VecMemory,
};
use thiserror::Error;
use zerocopy::{FromZeros, IntoBytes};

pub use spice_qxl::QxlInterface;

use scene::{Layout, colors};

/// Cache id (`unique`) of the demo's cursor shape.
pub const CURSOR_UNIQUE: u64 = 0x5350_4943_4544_0001;
/// Image ids: background strip `i` is `STRIP_ID | i`.
pub const STRIP_ID: u64 = 0x4752_4144_0000_0000;
/// Image ids: the video frame `n` is `VIDEO_ID | n` (never flagged for caching).
pub const VIDEO_ID: u64 = 0x5649_4400_0000_0000;
/// Image ids: text drawn as bitmaps ([`TextMode::Bitmaps`]).
pub const TEXT_ID: u64 = 0x5445_5854_0000_0000;
/// Rows per background strip.
pub const STRIP_ROWS: u32 = 64;
/// QXL memory slot the demo guest registers.
pub const DEMO_SLOT: u32 = 1;

/// How text is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextMode {
    /// DRAW_TEXT with 1-bpp raster glyphs (spice-gtk draws them; spice-html5 has no
    /// DRAW_TEXT and shows nothing).
    Glyphs,
    /// DRAW_COPY of a bitmap holding the rendered text (same pixels; every client).
    #[default]
    Bitmaps,
}

/// The demo's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Screen width (at least 640).
    pub width: u32,
    /// Screen height (at least 480).
    pub height: u32,
    /// Width of the video region.
    pub video_width: u32,
    /// Height of the video region.
    pub video_height: u32,
    /// Frames per second ([`DemoDesktop::frame_interval`]).
    pub fps: u32,
    /// Stop changing after this many frames (frames `0..n` are drawn; 0 counts as 1).
    pub freeze_after: Option<u64>,
    /// How text is sent.
    pub text_mode: TextMode,
    /// Draw the chart bars as fills of the whole chart area clipped by a clip rectangle
    /// (spice-gtk honours the clip; spice-html5 ignores clips and would fill the whole
    /// area), instead of fills of each bar's own rectangle.
    pub clip_fills: bool,
    /// Guest memory for commands and images, besides the primary surface.
    pub working_memory: u64,
    /// The largest size [`DemoDesktop::resize`] goes to (requests are clamped to it); guest
    /// RAM is reserved for a primary surface this big (pages nobody touches cost nothing).
    pub max_width: u32,
    /// See [`DemoConfig::max_width`].
    pub max_height: u32,
}

/// The smallest desktop (the demo's windows must fit).
pub const MIN_SIZE: (u32, u32) = (640, 480);
/// The default [`DemoConfig::max_width`] x [`DemoConfig::max_height`].
pub const MAX_SIZE: (u32, u32) = (4096, 2160);

impl Default for DemoConfig {
    /// 1024x768, a 320x240 video region, 25 frames/s, no freeze, 24 MiB, and only what every
    /// client (spice-gtk, remote-viewer, spice-html5) draws alike: text as bitmaps, fills
    /// without clip rectangles. [`DemoConfig::rich`] uses DRAW_TEXT and clips.
    fn default() -> Self {
        DemoConfig {
            width: 1024,
            height: 768,
            video_width: 320,
            video_height: 240,
            fps: 25,
            freeze_after: None,
            text_mode: TextMode::Bitmaps,
            clip_fills: false,
            working_memory: 24 << 20,
            max_width: MAX_SIZE.0,
            max_height: MAX_SIZE.1,
        }
    }
}

impl DemoConfig {
    /// The default with DRAW_TEXT raster glyphs and clipped fills (for spice-gtk clients).
    pub fn rich() -> Self {
        DemoConfig {
            text_mode: TextMode::Glyphs,
            clip_fills: true,
            ..DemoConfig::default()
        }
    }
}

/// What went wrong in the demo guest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The screen is too small or too large, or the video region does not fit.
    #[error(
        "unsupported demo geometry {width}x{height} with a {video_width}x{video_height} video region"
    )]
    BadGeometry {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Video width.
        video_width: u32,
        /// Video height.
        video_height: u32,
    },
    /// A command needs more guest memory than is free with nothing left to release.
    #[error("demo guest out of memory ({0} bytes) with nothing outstanding")]
    OutOfMemory(u64),
    /// The guest driver failed.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The device refused a port write.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Creating the primary surface did not produce the expected request.
    #[error("unexpected answer to CREATE_PRIMARY: {0:?}")]
    UnexpectedIo(Box<IoRequest>),
}

/// What a step or a pump did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    /// The frame whose content was queued (`None` when frozen and already drawn).
    pub frame: Option<u64>,
    /// The desktop is frozen ([`DemoConfig::freeze_after`] reached).
    pub frozen: bool,
    /// Commands pushed to the rings by this call (the worker has commands to pull when > 0).
    pub pushed: usize,
    /// Commands still queued in the demo (waiting for ring space or guest memory).
    pub pending: usize,
    /// Resources the server released that this call collected.
    pub released: usize,
}

/// A text command: `text` at `origin`, on a background rectangle `back` of colour `bg`,
/// clipped to `back` (the command's bounding box).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextItem {
    origin: (i32, i32),
    text: String,
    fg: u32,
    back: Rect,
    bg: u32,
}

/// A glyph raster: width, height, 1-bpp rows.
type Raster = (u16, u16, Vec<u8>);

/// A queued display command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DrawItem {
    Strip(u32),
    Fill {
        bbox: Rect,
        color: u32,
        clip: Option<Vec<Rect>>,
    },
    Text(TextItem),
    Video(u64),
    Status(u64),
}

/// A queued cursor command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CursorItem {
    Set(u64),
    Move(u64),
}

/// The demo desktop (see the [module documentation](self)).
#[derive(Debug)]
pub struct DemoDesktop {
    dev: QxlDevice<VecMemory>,
    guest: GuestDriver,
    cfg: DemoConfig,
    layout: Layout,
    primary: PrimarySurface,
    io: Vec<IoRequest>,
    draw_q: VecDeque<DrawItem>,
    cursor_q: VecDeque<CursorItem>,
    scene_drawn: bool,
    last_frame: Option<u64>,
}

fn text_rect(origin: (i32, i32), text: &str) -> Rect {
    Rect {
        top: origin.1,
        left: origin.0,
        bottom: origin.1 + (font::LINE_H * scene::FONT_SCALE) as i32,
        right: origin.0 + font::text_width(text, scene::FONT_SCALE) as i32,
    }
}

fn inside(r: Rect, w: u32, h: u32) -> bool {
    r.left >= 0
        && r.top >= 0
        && r.left < r.right
        && r.top < r.bottom
        && r.right as u32 <= w
        && r.bottom as u32 <= h
}

fn none_clip() -> abi::QxlClip {
    abi::QxlClip {
        ty: abi::clip_type::NONE.into(),
        data: 0.into(),
    }
}

/// Render a text item into 32-bit xRGB pixels covering `bbox`.
fn render_text(t: &TextItem, bbox: Rect) -> Vec<u8> {
    let (w, h) = (
        (bbox.right - bbox.left) as u32,
        (bbox.bottom - bbox.top) as u32,
    );
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    let adv = (font::ADVANCE * scene::FONT_SCALE) as i32;
    let gw = (font::GLYPH_W * scene::FONT_SCALE) as i32;
    let gh = (font::GLYPH_H * scene::FONT_SCALE) as i32;
    let chars: Vec<char> = t.text.chars().collect();
    for y in bbox.top..bbox.bottom {
        for x in bbox.left..bbox.right {
            let (dx, dy) = (x - t.origin.0, y - t.origin.1);
            let on = dx >= 0 && dy >= 0 && dy < gh && {
                let i = (dx / adv) as usize;
                let gx = dx % adv;
                gx < gw
                    && chars
                        .get(i)
                        .is_some_and(|&c| font::pixel(c, scene::FONT_SCALE, gx as u32, dy as u32))
            };
            let px = if on { t.fg } else { t.bg };
            out.extend_from_slice(&px.to_le_bytes());
        }
    }
    out
}

/// The scene's commands, in drawing order.
fn scene_items(cfg: &DemoConfig, layout: &Layout) -> Vec<DrawItem> {
    let mut q = Vec::new();
    for i in 0..cfg.height.div_ceil(STRIP_ROWS) {
        q.push(DrawItem::Strip(i));
    }
    for win in &layout.windows {
        let f = win.frame;
        let shadow = Rect {
            top: f.top + 6,
            left: f.left + 6,
            bottom: f.bottom + 6,
            right: f.right + 6,
        };
        q.push(DrawItem::Fill {
            bbox: shadow,
            color: colors::SHADOW,
            clip: None,
        });
        q.push(DrawItem::Fill {
            bbox: f,
            color: colors::BORDER,
            clip: None,
        });
        let tb = win.title_bar();
        q.push(DrawItem::Text(TextItem {
            origin: (tb.left + 8, tb.top + 5),
            text: win.title.to_string(),
            fg: colors::TITLE_TEXT,
            back: tb,
            bg: colors::TITLE,
        }));
        q.push(DrawItem::Fill {
            bbox: win.body(),
            color: colors::BODY,
            clip: None,
        });
        for (i, line) in win.lines.iter().enumerate() {
            let origin = win.line_origin(i);
            q.push(DrawItem::Text(TextItem {
                origin,
                text: line.to_string(),
                fg: colors::TEXT,
                back: text_rect(origin, line),
                bg: colors::BODY,
            }));
        }
    }
    for (bar, color) in layout.chart_bars() {
        q.push(if cfg.clip_fills {
            DrawItem::Fill {
                bbox: layout.chart,
                color,
                clip: Some(vec![bar]),
            }
        } else {
            DrawItem::Fill {
                bbox: bar,
                color,
                clip: None,
            }
        });
    }
    q
}

/// The status line's text command for a frame.
fn status_item(layout: &Layout, frame: u64) -> TextItem {
    let r = layout.status_line;
    TextItem {
        origin: (r.left, r.top),
        text: scene::status_text(frame),
        fg: colors::STATUS,
        back: r,
        bg: colors::BODY,
    }
}

/// Paint `pixels` (xRGB, `w` wide) of `r` clipped to the screen from `src(x, y)`.
fn paint(fb: &mut [u32], w: u32, h: u32, r: Rect, mut src: impl FnMut(i32, i32) -> Option<u32>) {
    for y in r.top.max(0)..r.bottom.min(h as i32) {
        for x in r.left.max(0)..r.right.min(w as i32) {
            if let Some(p) = src(x, y) {
                fb[y as usize * w as usize + x as usize] = p;
            }
        }
    }
}

fn paint_text(fb: &mut [u32], w: u32, h: u32, t: &TextItem) {
    let bbox = t.back;
    let px = render_text(t, bbox);
    let bw = (bbox.right - bbox.left) as usize;
    paint(fb, w, h, bbox, |x, y| {
        let i = (y - bbox.top) as usize * bw + (x - bbox.left) as usize;
        Some(u32::from_le_bytes([
            px[i * 4],
            px[i * 4 + 1],
            px[i * 4 + 2],
            px[i * 4 + 3],
        ]))
    });
}

/// The picture after the scene and frame `frame` (see [`DemoDesktop::reference_frame`]).
fn reference_frame(cfg: &DemoConfig, layout: &Layout, frame: u64) -> Vec<u32> {
    let (w, h) = (cfg.width, cfg.height);
    let mut fb = vec![0u32; (w * h) as usize];
    let mut items = scene_items(cfg, layout);
    items.push(DrawItem::Video(frame));
    items.push(DrawItem::Status(frame));
    for item in &items {
        match item {
            DrawItem::Strip(i) => {
                let y0 = (i * STRIP_ROWS) as i32;
                let r = Rect {
                    top: y0,
                    left: 0,
                    bottom: y0 + STRIP_ROWS as i32,
                    right: w as i32,
                };
                paint(&mut fb, w, h, r, |x, y| {
                    Some(scene::gradient(x as u32, y as u32, w, h))
                });
            }
            DrawItem::Fill { bbox, color, clip } => {
                paint(&mut fb, w, h, *bbox, |x, y| {
                    let inside =
                        |r: &Rect| x >= r.left && x < r.right && y >= r.top && y < r.bottom;
                    match clip {
                        Some(rs) if !rs.iter().any(inside) => None,
                        _ => Some(*color),
                    }
                });
            }
            DrawItem::Text(t) => paint_text(&mut fb, w, h, t),
            DrawItem::Video(f) => {
                let v = layout.video;
                let px = scene::video_frame(cfg.video_width, cfg.video_height, *f);
                let vw = cfg.video_width as usize;
                paint(&mut fb, w, h, v, |x, y| {
                    let i = ((y - v.top) as usize * vw + (x - v.left) as usize) * 4;
                    Some(u32::from_le_bytes([px[i], px[i + 1], px[i + 2], px[i + 3]]))
                });
            }
            DrawItem::Status(f) => paint_text(&mut fb, w, h, &status_item(layout, *f)),
        }
    }
    fb
}

/// The layout of `cfg`'s screen, checked: the screen is 640x480 .. 8192x8192 and every
/// window (with its shadow) and the video region fit.
fn checked_layout(cfg: &DemoConfig) -> Result<Layout, DemoError> {
    let bad = || DemoError::BadGeometry {
        width: cfg.width,
        height: cfg.height,
        video_width: cfg.video_width,
        video_height: cfg.video_height,
    };
    if !(MIN_SIZE.0..=8192).contains(&cfg.width)
        || !(MIN_SIZE.1..=8192).contains(&cfg.height)
        || cfg.video_width == 0
        || cfg.video_height == 0
    {
        return Err(bad());
    }
    let layout = Layout::new(cfg.width, cfg.height, cfg.video_width, cfg.video_height);
    let all_inside = layout.windows.iter().all(|w| {
        let shadow = Rect {
            top: w.frame.top + 6,
            left: w.frame.left + 6,
            bottom: w.frame.bottom + 6,
            right: w.frame.right + 6,
        };
        inside(shadow, cfg.width, cfg.height)
    }) && inside(layout.video, cfg.width, cfg.height)
        && layout.video.right <= layout.windows[1].body().right
        && layout.video.bottom <= layout.windows[1].body().bottom;
    if !all_inside {
        return Err(bad());
    }
    Ok(layout)
}

impl DemoDesktop {
    /// Build the device and guest and create the primary surface.
    pub fn new(cfg: DemoConfig) -> Result<Self, DemoError> {
        let layout = checked_layout(&cfg)?;
        // Room for the largest primary a resize may ask for.
        let primary_bytes = u64::from(cfg.width.max(cfg.max_width.min(8192)))
            * u64::from(cfg.height.max(cfg.max_height.min(8192)))
            * 4;
        let header = (size_of::<abi::QxlRam>() as u64).div_ceil(4096) * 4096;
        let ram = (primary_bytes + cfg.working_memory.max(1 << 20)).next_multiple_of(4096) + header;
        let bars = BarLayout::contiguous(ram, 64 * 1024);
        let mem = VecMemory::new(bars.total_size() as usize);
        let mut dev = QxlDevice::new(mem, DeviceConfig::new(bars))?;
        let mut guest = GuestDriver::attach(&mut dev, DEMO_SLOT)?;
        let primary = match guest.create_primary(&mut dev, cfg.width, cfg.height)? {
            IoRequest::CreatePrimary { surface, .. } => surface,
            other => return Err(DemoError::UnexpectedIo(Box::new(other))),
        };
        let io = vec![IoRequest::CreatePrimary {
            surface: primary,
            cookie: None,
        }];
        tracing::debug!(
            target: "spice_server::demo",
            width = cfg.width,
            height = cfg.height,
            ram,
            "demo desktop created"
        );
        Ok(DemoDesktop {
            dev,
            guest,
            cfg,
            layout,
            primary,
            io,
            draw_q: VecDeque::new(),
            cursor_q: VecDeque::new(),
            scene_drawn: false,
            last_frame: None,
        })
    }

    /// The QXL device the display worker pulls commands from.
    pub fn device(&self) -> &QxlDevice<VecMemory> {
        &self.dev
    }

    /// The QXL device, mutably (for [`QxlInterface`]: `get_command`, `release_resource`, ...).
    pub fn device_mut(&mut self) -> &mut QxlDevice<VecMemory> {
        &mut self.dev
    }

    /// The guest driver (statistics: outstanding resources, memory in use).
    pub fn guest(&self) -> &GuestDriver {
        &self.guest
    }

    /// The primary surface the guest created.
    pub fn primary(&self) -> &PrimarySurface {
        &self.primary
    }

    /// The requests the guest's port writes caused that the server has not taken yet (first
    /// of all `CreatePrimary`).
    pub fn take_io_requests(&mut self) -> Vec<IoRequest> {
        std::mem::take(&mut self.io)
    }

    /// The configuration.
    pub fn config(&self) -> &DemoConfig {
        &self.cfg
    }

    /// The layout (window and video rectangles).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Time between frames.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.cfg.fps.max(1)))
    }

    /// The frame due `elapsed` after the demo started.
    pub fn frame_at(&self, elapsed: Duration) -> u64 {
        let us = self.frame_interval().as_micros().max(1);
        (elapsed.as_micros() / us) as u64
    }

    /// The last frame whose content was queued.
    pub fn last_frame(&self) -> Option<u64> {
        self.last_frame
    }

    /// The last frame that will ever be drawn, if the demo freezes.
    fn final_frame(&self) -> Option<u64> {
        self.cfg.freeze_after.map(|n| n.max(1) - 1)
    }

    /// Whether the desktop will not change any more (frozen, final frame queued).
    pub fn is_frozen(&self) -> bool {
        self.final_frame()
            .is_some_and(|f| self.last_frame.is_some_and(|l| l >= f))
    }

    /// Whether every queued command has been pushed to the rings.
    pub fn is_idle(&self) -> bool {
        self.draw_q.is_empty() && self.cursor_q.is_empty()
    }

    /// Queue frame `frame` (the scene too on the first call) and push what fits. With a
    /// freeze configured, frames past the last one draw the last one if it was skipped, and
    /// nothing otherwise.
    pub fn step(&mut self, frame: u64) -> Result<StepOutcome, DemoError> {
        let mut drawn = None;
        let target = match self.final_frame() {
            Some(last) if frame > last => {
                if self.last_frame.is_some_and(|l| l >= last) {
                    None
                } else {
                    Some(last)
                }
            }
            _ => Some(frame),
        };
        if let Some(f) = target {
            if !self.scene_drawn {
                self.queue_scene(f);
                self.scene_drawn = true;
            }
            self.queue_frame(f);
            self.last_frame = Some(f);
            drawn = Some(f);
        }
        let mut out = self.pump()?;
        out.frame = drawn;
        Ok(out)
    }

    /// Collect released resources and push queued commands while the rings and guest memory
    /// have room.
    pub fn pump(&mut self) -> Result<StepOutcome, DemoError> {
        let released = self.guest.collect_releases(self.dev.memory_mut())?.len();
        let mut pushed = 0;
        while let Some(item) = self.draw_q.pop_front() {
            match self.push_draw(&item) {
                Ok(()) => pushed += 1,
                Err(e) => {
                    self.draw_q.push_front(item);
                    if self.blocked(e)? {
                        break;
                    }
                }
            }
        }
        while let Some(item) = self.cursor_q.pop_front() {
            match self.push_cursor(item) {
                Ok(()) => pushed += 1,
                Err(e) => {
                    self.cursor_q.push_front(item);
                    if self.blocked(e)? {
                        break;
                    }
                }
            }
        }
        Ok(StepOutcome {
            frame: None,
            frozen: self.is_frozen(),
            pushed,
            pending: self.draw_q.len() + self.cursor_q.len(),
            released,
        })
    }

    /// Whether a push failure means "wait for the server" (`Ok(true)`), or is fatal.
    fn blocked(&self, e: GuestError) -> Result<bool, DemoError> {
        match e {
            GuestError::RingFull => Ok(true),
            GuestError::OutOfMemory(n) if self.guest.outstanding() == 0 => {
                Err(DemoError::OutOfMemory(n))
            }
            GuestError::OutOfMemory(_) => Ok(true),
            other => Err(other.into()),
        }
    }

    fn queue_scene(&mut self, frame: u64) {
        self.draw_q.extend(scene_items(&self.cfg, &self.layout));
        self.cursor_q.push_back(CursorItem::Set(frame));
    }

    /// The size [`DemoDesktop::resize`] gives for a request of `width` x `height`: clamped
    /// to [`MIN_SIZE`] .. (`max_width`, `max_height`), the width rounded down to a multiple
    /// of 8 (as the X11 agent's modes are).
    pub fn resize_target(&self, width: u32, height: u32) -> (u32, u32) {
        let max_w = self.cfg.max_width.clamp(MIN_SIZE.0, 8192);
        let max_h = self.cfg.max_height.clamp(MIN_SIZE.1, 8192);
        let w = width.clamp(MIN_SIZE.0, max_w) & !7;
        (w.max(MIN_SIZE.0), height.clamp(MIN_SIZE.1, max_h))
    }

    /// Resizes the desktop as a guest driver changes mode: drops what it had queued for the
    /// old screen, destroys the primary surface (`QXL_IO_DESTROY_PRIMARY`) and creates one of
    /// the new size (`QXL_IO_CREATE_PRIMARY`); the server takes both requests with
    /// [`DemoDesktop::take_io_requests`] and must handle them in order, before the next
    /// step. The next step draws the whole scene again at the new size (a frozen desktop
    /// draws its last frame again). The size is clamped ([`DemoDesktop::resize_target`]);
    /// returns the size the desktop has now (unchanged when it already had it). When guest
    /// memory has no block for the new surface, the old size is kept (recreated) and
    /// [`DemoError::OutOfMemory`] returned.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(u32, u32), DemoError> {
        let (w, h) = self.resize_target(width, height);
        if (w, h) == (self.cfg.width, self.cfg.height) {
            return Ok((w, h));
        }
        let new_cfg = DemoConfig {
            width: w,
            height: h,
            ..self.cfg.clone()
        };
        let layout = checked_layout(&new_cfg)?;
        // What was queued was laid out for the old screen.
        self.draw_q.clear();
        self.cursor_q.clear();
        let destroy = self.guest.destroy_primary(&mut self.dev)?;
        self.io.push(destroy);
        let (created, result) = match self.guest.create_primary(&mut self.dev, w, h) {
            Ok(r) => (r, Ok((w, h))),
            Err(GuestError::OutOfMemory(n)) => {
                // The old block is free again: the old size fits.
                let (ow, oh) = (self.cfg.width, self.cfg.height);
                tracing::warn!(
                    target: "spice_server::demo",
                    width = w,
                    height = h,
                    "no guest memory for the resized primary; keeping {ow}x{oh}"
                );
                let r = self.guest.create_primary(&mut self.dev, ow, oh)?;
                (r, Err(DemoError::OutOfMemory(n)))
            }
            Err(e) => return Err(e.into()),
        };
        let IoRequest::CreatePrimary { surface, .. } = created else {
            return Err(DemoError::UnexpectedIo(Box::new(created)));
        };
        self.primary = surface;
        self.io.push(created);
        if result.is_ok() {
            self.cfg = new_cfg;
            self.layout = layout;
        }
        // Draw everything again: the scene, and the current (or final) frame.
        self.scene_drawn = false;
        self.last_frame = None;
        tracing::debug!(
            target: "spice_server::demo",
            width = self.cfg.width,
            height = self.cfg.height,
            "demo desktop resized"
        );
        result
    }

    /// The picture (32-bit xRGB, `width * height`, top row first) the primary surface shows
    /// once every command queued so far has been drawn, as a client or the server's canvas
    /// should render it (the cursor is not part of it); `None` before the first step. An
    /// independent reference for screenshots and for canvases: it paints the demo's own
    /// description of each command, not the QXL commands.
    pub fn reference_frame(&self) -> Option<Vec<u32>> {
        self.last_frame
            .map(|f| reference_frame(&self.cfg, &self.layout, f))
    }

    fn queue_frame(&mut self, frame: u64) {
        // A still-queued item of the same kind is replaced (coalesced), keeping its place.
        let replace = |q: &mut VecDeque<DrawItem>, new: DrawItem| {
            let same = |it: &DrawItem| {
                matches!(
                    (it, &new),
                    (DrawItem::Video(_), DrawItem::Video(_))
                        | (DrawItem::Status(_), DrawItem::Status(_))
                )
            };
            match q.iter_mut().find(|it| same(it)) {
                Some(slot) => *slot = new,
                None => q.push_back(new),
            }
        };
        replace(&mut self.draw_q, DrawItem::Video(frame));
        replace(&mut self.draw_q, DrawItem::Status(frame));
        match self
            .cursor_q
            .iter_mut()
            .find(|c| matches!(c, CursorItem::Move(_)))
        {
            Some(slot) => *slot = CursorItem::Move(frame),
            None => self.cursor_q.push_back(CursorItem::Move(frame)),
        }
    }

    /// The multimedia time a guest driver stamps drawables with: the ROM's `mm_clock`, which
    /// the server sets through [`QxlInterface::set_mm_time`] (0 until then, which makes
    /// spice-server use its own clock).
    fn mm_time(&self) -> u32 {
        self.dev.rom().map(|r| r.mm_clock.get()).unwrap_or(0)
    }

    fn push_copy(&mut self, bbox: Rect, bmp: GuestBitmap<'_>) -> Result<(), GuestError> {
        let mm_time = self.mm_time();
        let mem = self.dev.memory_mut();
        let mut b = self.guest.builder();
        let img = b.bitmap_image(mem, &bmp)?;
        let mut c = abi::QxlCopy::new_zeroed();
        c.src_bitmap = img.into();
        c.src_area = abi::QxlRect::new(0, 0, bmp.height as i32, bmp.width as i32);
        c.rop_descriptor = 8.into(); // OP_PUT
        let mut d = drawable(0, draw_type::COPY, bbox, none_clip(), c.as_bytes());
        d.mm_time = mm_time.into();
        b.submit_draw(mem, &d)?;
        Ok(())
    }

    fn push_text(&mut self, t: &TextItem, id: u64) -> Result<(), GuestError> {
        // Text is clipped to its background rectangle.
        let bbox = t.back;
        if self.cfg.text_mode == TextMode::Bitmaps {
            let px = render_text(t, bbox);
            let (w, h) = (
                (bbox.right - bbox.left) as u32,
                (bbox.bottom - bbox.top) as u32,
            );
            return self.push_copy(bbox, GuestBitmap::xrgb32(TEXT_ID | id, w, h, &px));
        }
        let adv = (font::ADVANCE * scene::FONT_SCALE) as i32;
        let rasters: Vec<(i32, Raster)> = t
            .text
            .chars()
            .enumerate()
            .filter(|(i, c)| {
                // Blank glyphs and glyphs wholly outside the clipping box are left out.
                let x = t.origin.0 + *i as i32 * adv;
                !font::is_blank(*c) && x < bbox.right && x + adv > bbox.left
            })
            .map(|(i, c)| {
                (
                    t.origin.0 + i as i32 * adv,
                    font::a1_glyph(c, scene::FONT_SCALE),
                )
            })
            .collect();
        if rasters.is_empty() {
            // spice-gtk cannot draw a string without glyphs: fill the background instead.
            return self
                .guest
                .fill(self.dev.memory_mut(), 0, t.back, t.bg, None)
                .map(|_| ());
        }
        let glyphs: Vec<GuestGlyph<'_>> = rasters
            .iter()
            .map(|(x, (w, h, data))| GuestGlyph {
                render_pos: (*x, t.origin.1),
                glyph_origin: (0, 0),
                width: *w,
                height: *h,
                data,
            })
            .collect();
        let mem = self.dev.memory_mut();
        let mut b = self.guest.builder();
        let s = b.string(mem, abi::string_flags::RASTER_A1, &glyphs, 4096)?;
        let solid = |c: u32| {
            let mut br = abi::QxlBrush::new_zeroed();
            br.ty = abi::brush_type::SOLID.into();
            br.u[..4].copy_from_slice(&c.to_le_bytes());
            br
        };
        let mut tx = abi::QxlText::new_zeroed();
        tx.str = s.into();
        tx.back_area = abi::QxlRect::new(t.back.top, t.back.left, t.back.bottom, t.back.right);
        tx.fore_brush = solid(t.fg);
        tx.back_brush = solid(t.bg);
        tx.fore_mode = 8.into(); // OP_PUT
        tx.back_mode = 8.into();
        let d = drawable(0, draw_type::TEXT, bbox, none_clip(), tx.as_bytes());
        b.submit_draw(mem, &d)?;
        Ok(())
    }

    fn push_draw(&mut self, item: &DrawItem) -> Result<(), GuestError> {
        match item {
            DrawItem::Strip(i) => {
                let (w, h) = (self.cfg.width, self.cfg.height);
                let y0 = i * STRIP_ROWS;
                let y1 = (y0 + STRIP_ROWS).min(h);
                let mut px = Vec::new();
                scene::gradient_rows(w, h, y0, y1, &mut px);
                let bbox = Rect {
                    top: y0 as i32,
                    left: 0,
                    bottom: y1 as i32,
                    right: w as i32,
                };
                self.push_copy(
                    bbox,
                    GuestBitmap::xrgb32(STRIP_ID | u64::from(*i), w, y1 - y0, &px),
                )
            }
            DrawItem::Fill { bbox, color, clip } => self
                .guest
                .fill(self.dev.memory_mut(), 0, *bbox, *color, clip.as_deref())
                .map(|_| ()),
            DrawItem::Text(t) => {
                let id = (t.origin.0 as u64) << 16 | t.origin.1 as u64;
                self.push_text(t, id)
            }
            DrawItem::Video(frame) => {
                let (vw, vh) = (self.cfg.video_width, self.cfg.video_height);
                let px = scene::video_frame(vw, vh, *frame);
                let bbox = self.layout.video;
                self.push_copy(
                    bbox,
                    GuestBitmap::xrgb32(VIDEO_ID | (frame & 0xffff_ffff_ffff), vw, vh, &px),
                )
            }
            DrawItem::Status(frame) => {
                let t = status_item(&self.layout, *frame);
                self.push_text(&t, 0xffff_0000_0000 | (frame & 0xffff_ffff))
            }
        }
    }

    fn push_cursor(&mut self, item: CursorItem) -> Result<(), GuestError> {
        let (w, h) = (self.cfg.width, self.cfg.height);
        match item {
            CursorItem::Set(frame) => {
                let (x, y) = scene::cursor_pos(frame, w, h);
                let shape = scene::cursor_arrow();
                let mem = self.dev.memory_mut();
                let mut b = self.guest.builder();
                let n = scene::CURSOR_SIZE;
                let addr = b.cursor_shape(
                    mem,
                    abi::QxlCursorHeader {
                        unique: CURSOR_UNIQUE.into(),
                        ty: 0.into(), // ALPHA
                        width: n.into(),
                        height: n.into(),
                        hot_spot_x: 0.into(),
                        hot_spot_y: 0.into(),
                    },
                    &shape,
                    shape.len(),
                )?;
                let set = abi::QxlCursorSet {
                    position: abi::QxlPoint16 {
                        x: x.into(),
                        y: y.into(),
                    },
                    visible: 1,
                    shape: addr.into(),
                };
                let mut c = abi::QxlCursorCmd::new_zeroed();
                c.ty = abi::cursor_cmd::SET;
                c.u.copy_from_slice(set.as_bytes());
                b.submit_cursor(mem, &c)?;
                Ok(())
            }
            CursorItem::Move(frame) => {
                let (x, y) = scene::cursor_pos(frame, w, h);
                self.guest
                    .cursor_move(self.dev.memory_mut(), x, y)
                    .map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests;
