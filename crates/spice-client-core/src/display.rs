//! The display channel: DISPLAY_INIT, surfaces, draw operations rendered by spice-canvas,
//! image and palette cache invalidations, video streams and stream reports.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use spice_canvas::{
    CanvasError, DrawOp, ImageContext, ImageLimits, Surface, Surfaces, decode_mjpeg_frame, draw,
    draw_stream_frame, new_glz_window,
};
use spice_proto::caps::{self, Caps};
use spice_proto::display::{self as pdisplay, ServerMessage as M};
use spice_proto::message::ChannelMessage as _;
use spice_proto::messages::ClientMessage;
use spice_proto::types::{Clip, Rect, SurfaceFlags, SurfaceFormat};

use crate::error::ChannelError;
use crate::event::Event;
use crate::session::{ConnIo, SessionConfig};

/// Display channel caps this client advertises.
pub(crate) fn display_caps() -> Caps {
    Caps::from_caps(&[
        caps::display::SIZED_STREAM,
        caps::display::MONITORS_CONFIG,
        // spice-canvas draws DRAW_COMPOSITE, keeps A8 surfaces and decodes LZ4 images.
        caps::display::COMPOSITE,
        caps::display::A8_SURFACE,
        caps::display::STREAM_REPORT,
        caps::display::LZ4_COMPRESSION,
        caps::display::MULTI_CODEC,
        caps::display::CODEC_MJPEG,
    ])
}

/// Largest video frame side accepted.
pub const MAX_STREAM_SIDE: u32 = 8192;

/// Display state shared by every display channel of a session: the pixmap cache, the
/// palette cache and the one GLZ window (all display channels send the same cache and
/// dictionary ids in DISPLAY_INIT, so the server treats them as one).
#[derive(Debug)]
pub struct DisplayShared {
    images: ImageContext,
}

impl DisplayShared {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        // The server never references more than the announced window; keep twice that so
        // an image straddling the window edge is still there.
        let window = if config.glz_window_pixels > 0 {
            config.glz_window_pixels
        } else {
            (12 << 20) / 4
        };
        let glz_pixels = usize::try_from(window).unwrap_or(1 << 22) * 2;
        let limits = ImageLimits {
            max_image_pixels: config.max_image_pixels,
            cache_pixels: u64::try_from(config.pixmap_cache_pixels.max(0)).unwrap_or(0),
        };
        Self {
            images: ImageContext::new(limits, new_glz_window(glz_pixels)),
        }
    }

    /// The image context: pixmap cache, palette cache, GLZ window.
    pub fn images(&self) -> &ImageContext {
        &self.images
    }
}

/// Adaptive bit-rate reporting of one stream (`STREAM_ACTIVATE_REPORT`).
#[derive(Debug, Clone)]
struct Report {
    unique_id: u32,
    max_window: u32,
    timeout: Duration,
    window_start: Option<Instant>,
    start_mm: u32,
    end_mm: u32,
    frames: u32,
    drops: u32,
    last_delay: i32,
}

/// One video stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Stream id.
    pub id: u32,
    /// Surface it is drawn on.
    pub surface_id: u32,
    /// Codec (1 = MJPEG).
    pub codec: u8,
    /// Destination rectangle.
    pub dest: Rect,
    /// Frame size.
    pub src_width: u32,
    /// Frame size.
    pub src_height: u32,
    /// True when frames are top-down.
    pub top_down: bool,
    /// The visible part.
    pub clip: Clip,
    /// Frames decoded.
    pub frames: u64,
    report: Option<Report>,
}

/// Counters of one display channel (what the server sent and how it went).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayStats {
    /// Display messages handled.
    pub messages: u64,
    /// Draw messages rendered (including those that failed).
    pub draws: u64,
    /// Source images of draw messages by image type number (QUIC = 1, LZ_RGB = 101, ...).
    pub images: std::collections::BTreeMap<u8, u64>,
    /// Messages that could not be rendered.
    pub render_errors: u64,
    /// Stream frames drawn.
    pub stream_frames: u64,
}

fn src_image<'m, 'a>(msg: &'m M<'a>) -> Option<&'m spice_proto::types::Image<'a>> {
    match msg {
        M::DrawCopy(d) | M::DrawBlend(d) => d.src_bitmap.as_ref(),
        M::DrawOpaque(d) => d.src_bitmap.as_ref(),
        M::DrawRop3(d) => d.src_bitmap.as_ref(),
        M::DrawTransparent(d) => d.src_bitmap.as_ref(),
        M::DrawAlphaBlend(d) => d.src_bitmap.as_ref(),
        M::DrawComposite(d) => d.src_bitmap.as_ref(),
        _ => None,
    }
}

/// Most decoded stream frames waiting for their presentation time per display channel; a
/// newer frame pushes the oldest out (drawn at once, late rather than lost).
pub const MAX_QUEUED_FRAMES: usize = 32;

/// Most pixels of all waiting stream frames together (64 MiB of pixels), whatever the
/// stamps a server sends: past it the oldest are drawn at once (a bigger frame is drawn on
/// arrival).
pub const MAX_QUEUED_PIXELS: u64 = 1 << 24;

/// A decoded stream frame waiting for its presentation time ([`SessionConfig::video_sync`]).
#[derive(Debug)]
struct QueuedFrame {
    due: Instant,
    stream_id: u32,
    mm_time: u32,
    frame: spice_canvas::Pixmap,
    src_width: u32,
    src_height: u32,
    dest: Rect,
}

/// One display channel's state.
#[derive(Debug)]
pub struct DisplayChannel {
    id: u8,
    surfaces: Surfaces,
    streams: Vec<Stream>,
    marked: bool,
    stats: DisplayStats,
    video_sync: bool,
    queued: VecDeque<QueuedFrame>,
}

impl DisplayChannel {
    pub(crate) fn new(id: u8, config: &SessionConfig) -> Self {
        Self {
            id,
            surfaces: Surfaces::new(config.max_surface_pixels),
            streams: Vec::new(),
            marked: false,
            stats: DisplayStats::default(),
            video_sync: config.video_sync,
            queued: VecDeque::new(),
        }
    }

    /// Stream frames decoded and waiting for their presentation time.
    pub fn queued_frames(&self) -> usize {
        self.queued.len()
    }

    /// Counters.
    pub fn stats(&self) -> &DisplayStats {
        &self.stats
    }

    /// The surfaces of this channel.
    pub fn surfaces(&self) -> &Surfaces {
        &self.surfaces
    }

    /// Surface `id` (0 is the primary surface), pixels `0xAARRGGBB`.
    pub fn surface(&self, id: u32) -> Option<&Surface> {
        self.surfaces.get(id).ok()
    }

    /// The channel instance.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// True once `MARK` arrived (the primary surface is complete).
    pub fn marked(&self) -> bool {
        self.marked
    }

    /// The active streams.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    pub(crate) fn on_linked(
        &mut self,
        io: &mut ConnIo,
        config: &SessionConfig,
    ) -> Result<(), ChannelError> {
        // spice-server blocks the channel until DISPLAY_INIT arrives: send it at once.
        io.send(&ClientMessage::Display(pdisplay::ClientMessage::Init(
            pdisplay::Init {
                pixmap_cache_id: 1,
                pixmap_cache_size: config.pixmap_cache_pixels,
                glz_dictionary_id: 1,
                glz_dictionary_window_size: config.glz_window_pixels,
            },
        )))?;
        Ok(())
    }

    /// The multimedia clock reads `mm_now` at `now` after a change: each waiting frame is
    /// due when the new clock reaches its stamp (at once when it already has). Frames stay
    /// in arrival order.
    pub(crate) fn reschedule(&mut self, now: Instant, mm_now: u32) {
        for f in &mut self.queued {
            f.due = due_at(now, mm_now, f.mm_time).unwrap_or(now);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let reports = self
            .streams
            .iter()
            .filter_map(|s| s.report.as_ref())
            .filter_map(|r| r.window_start.map(|t| t + r.timeout))
            .min();
        let frame = self.queued.front().map(|f| f.due);
        reports.into_iter().chain(frame).min()
    }

    pub(crate) fn handle_timeout(
        &mut self,
        io: &mut ConnIo,
        events: &mut VecDeque<Event>,
        now: Instant,
        _mm_now: Option<u32>,
    ) -> Result<(), ChannelError> {
        // Frames in arrival order, each once its time came.
        while self.queued.front().is_some_and(|f| f.due <= now) {
            if let Some(f) = self.queued.pop_front() {
                self.present_queued(f, events);
            }
        }
        for s in &mut self.streams {
            let due = s
                .report
                .as_ref()
                .and_then(|r| r.window_start.map(|t| now >= t + r.timeout))
                .unwrap_or(false);
            if due {
                send_report(io, s.id, s.report.as_mut().expect("checked above"))?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle(
        &mut self,
        msg: M<'_>,
        io: &mut ConnIo,
        shared: &mut DisplayShared,
        events: &mut VecDeque<Event>,
        now: Instant,
        mm_now: Option<u32>,
    ) -> Result<(), ChannelError> {
        let display = self.id;
        self.stats.messages += 1;
        if let Some(op) = DrawOp::from_message(&msg) {
            self.stats.draws += 1;
            if let Some(img) = src_image(&msg) {
                *self
                    .stats
                    .images
                    .entry(img.body.image_type().0)
                    .or_default() += 1;
            }
            let surface_id = op.base().surface_id;
            match draw(&mut self.surfaces, &mut shared.images, &op) {
                Ok(Some(rect)) => events.push_back(Event::RegionChanged {
                    display,
                    surface_id,
                    rect,
                }),
                Ok(None) => {}
                Err(e) => {
                    self.stats.render_errors += 1;
                    render_error(events, display, msg.name(), e);
                }
            }
            return Ok(());
        }
        match msg {
            M::SurfaceCreate(c) => {
                match self
                    .surfaces
                    .create(c.surface_id, c.width, c.height, c.format)
                {
                    Ok(_) => events.push_back(Event::SurfaceCreated {
                        display,
                        surface_id: c.surface_id,
                        width: c.width,
                        height: c.height,
                        primary: c.flags.contains(SurfaceFlags::PRIMARY),
                    }),
                    Err(e) => render_error(events, display, "surface_create", e),
                }
            }
            M::SurfaceDestroy(id) => {
                if self.surfaces.destroy(id).is_ok() {
                    if id == 0 {
                        self.marked = false;
                    }
                    events.push_back(Event::SurfaceDestroyed {
                        display,
                        surface_id: id,
                    });
                }
            }
            M::Mode(m) => {
                // Legacy (never sent by spice-server 0.14+): a primary surface of that size.
                match self
                    .surfaces
                    .create(0, m.x_res, m.y_res, SurfaceFormat::FMT_32_XRGB)
                {
                    Ok(_) => events.push_back(Event::SurfaceCreated {
                        display,
                        surface_id: 0,
                        width: m.x_res,
                        height: m.y_res,
                        primary: true,
                    }),
                    Err(e) => render_error(events, display, "mode", e),
                }
            }
            M::Reset => {
                self.surfaces.clear();
                self.streams.clear();
                self.marked = false;
                events.push_back(Event::DisplayReset { display });
            }
            M::InvalList(list) => shared.images.invalidate_list(&list),
            // The wait list was honoured before the message was taken.
            M::InvalAllPixmaps(_) => shared.images.invalidate_all_pixmaps(),
            M::InvalPalette(id) => shared.images.invalidate_palette(id),
            M::InvalAllPalettes => shared.images.invalidate_all_palettes(),
            M::StreamData(d) => {
                self.stream_frame(
                    d.header.id,
                    d.header.multi_media_time,
                    d.data,
                    None,
                    shared,
                    io,
                    events,
                    now,
                    mm_now,
                )?;
            }
            M::StreamDataSized(d) => {
                self.stream_frame(
                    d.header.id,
                    d.header.multi_media_time,
                    d.data,
                    Some((d.width, d.height, d.dest)),
                    shared,
                    io,
                    events,
                    now,
                    mm_now,
                )?;
            }
            M::StreamClip(c) => {
                let s = self.stream_mut(c.id, "stream_clip")?;
                s.clip = c.clip;
            }
            M::GlDraw(_) => {
                // GL scanout needs a local UNIX socket; answer so the server never waits.
                io.send(&ClientMessage::Display(pdisplay::ClientMessage::GlDrawDone))?;
            }
            M::Mark => {
                self.marked = true;
                events.push_back(Event::PrimaryMarked { display });
            }
            M::MonitorsConfig(mc) => events.push_back(Event::MonitorsConfig {
                display,
                max_allowed: mc.max_allowed,
                heads: mc.heads,
            }),
            M::StreamCreate(sc) => {
                if sc.id >= 64 {
                    return Err(ChannelError::Protocol {
                        channel: spice_proto::ChannelType::DISPLAY,
                        msg: "stream_create",
                        detail: format!("stream id {} out of range", sc.id),
                    });
                }
                self.streams.retain(|s| s.id != sc.id);
                self.streams.push(Stream {
                    id: sc.id,
                    surface_id: sc.surface_id,
                    codec: sc.codec_type.0,
                    dest: sc.dest,
                    src_width: sc.src_width,
                    src_height: sc.src_height,
                    top_down: sc.flags.contains(spice_proto::types::StreamFlags::TOP_DOWN),
                    clip: sc.clip.clone(),
                    frames: 0,
                    report: None,
                });
                events.push_back(Event::StreamCreated {
                    display,
                    stream_id: sc.id,
                    codec: sc.codec_type.0,
                    dest: sc.dest,
                });
            }
            M::StreamDestroy(id) => {
                // Frames not shown yet go with their stream (spice-gtk drops them too).
                self.queued.retain(|f| f.stream_id != id);
                if let Some(pos) = self.streams.iter().position(|s| s.id == id) {
                    let mut s = self.streams.remove(pos);
                    if let Some(r) = s.report.as_mut() {
                        if r.frames > 0 {
                            send_report(io, s.id, r)?;
                        }
                    }
                    events.push_back(Event::StreamDestroyed {
                        display,
                        stream_id: id,
                    });
                }
            }
            M::StreamDestroyAll => {
                self.queued.clear();
                for s in self.streams.drain(..) {
                    events.push_back(Event::StreamDestroyed {
                        display,
                        stream_id: s.id,
                    });
                }
            }
            M::StreamActivateReport(a) => {
                let s = self.stream_mut(a.stream_id, "stream_activate_report")?;
                s.report = Some(Report {
                    unique_id: a.unique_id,
                    max_window: a.max_window_size.max(1),
                    timeout: Duration::from_millis(u64::from(a.timeout_ms.max(1))),
                    window_start: None,
                    start_mm: 0,
                    end_mm: 0,
                    frames: 0,
                    drops: 0,
                    last_delay: 0,
                });
            }
            other => {
                tracing::debug!(msg = other.name(), "display message ignored");
            }
        }
        Ok(())
    }

    fn stream_mut(&mut self, id: u32, msg: &'static str) -> Result<&mut Stream, ChannelError> {
        self.streams
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| ChannelError::Protocol {
                channel: spice_proto::ChannelType::DISPLAY,
                msg,
                detail: format!("unknown stream {id}"),
            })
    }

    /// Decodes one frame (MJPEG) and draws it; counts it in the stream report.
    #[allow(clippy::too_many_arguments)]
    fn stream_frame(
        &mut self,
        id: u32,
        frame_mm: u32,
        data: &[u8],
        sized: Option<(u32, u32, Rect)>,
        _shared: &mut DisplayShared,
        io: &mut ConnIo,
        events: &mut VecDeque<Event>,
        now: Instant,
        mm_now: Option<u32>,
    ) -> Result<(), ChannelError> {
        let display = self.id;
        let pos = self
            .streams
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| ChannelError::Protocol {
                channel: spice_proto::ChannelType::DISPLAY,
                msg: "stream_data",
                detail: format!("unknown stream {id}"),
            })?;
        let s = &self.streams[pos];
        let (src_w, src_h, dest) = sized.unwrap_or((s.src_width, s.src_height, s.dest));
        let decoded = if s.codec == spice_proto::types::VideoCodecType::MJPEG.0 {
            decode_mjpeg_frame(data, MAX_STREAM_SIDE, MAX_STREAM_SIDE).map_err(|e| e.to_string())
        } else {
            Err(format!("video codec {} not supported", s.codec))
        };
        // When to show it: the local instant the multimedia clock reaches its stamp.
        let due = mm_now
            .filter(|_| self.video_sync)
            .and_then(|m| due_at(now, m, frame_mm));
        let ok = match decoded {
            Ok(frame) => {
                let f = QueuedFrame {
                    due: due.unwrap_or(now),
                    stream_id: id,
                    mm_time: frame_mm,
                    frame,
                    src_width: src_w,
                    src_height: src_h,
                    dest,
                };
                let pixels =
                    |f: &QueuedFrame| u64::from(f.frame.width()) * u64::from(f.frame.height());
                if due.is_some() && pixels(&f) <= MAX_QUEUED_PIXELS {
                    let mut held = self.queued.iter().map(pixels).sum::<u64>() + pixels(&f);
                    while self.queued.len() >= MAX_QUEUED_FRAMES || held > MAX_QUEUED_PIXELS {
                        let Some(old) = self.queued.pop_front() else {
                            break;
                        };
                        held -= pixels(&old);
                        self.present_queued(old, events);
                    }
                    self.queued.push_back(f);
                    true
                } else {
                    self.present_queued(f, events)
                }
            }
            Err(detail) => {
                self.stats.render_errors += 1;
                events.push_back(Event::RenderError {
                    display,
                    msg: "stream_data",
                    detail,
                });
                false
            }
        };
        let s = &mut self.streams[pos];
        if ok {
            s.frames += 1;
            self.stats.stream_frames += 1;
        }
        count_frame(io, s, frame_mm, mm_now, ok, now)
    }
}

impl DisplayChannel {
    /// Draws a decoded stream frame on its stream's surface (through the stream's clip as
    /// it is now); false when it could not be drawn. A frame whose stream is gone is
    /// dropped.
    fn present_queued(&mut self, f: QueuedFrame, events: &mut VecDeque<Event>) -> bool {
        let display = self.id;
        let Some(s) = self.streams.iter().find(|s| s.id == f.stream_id) else {
            return false;
        };
        match draw_stream_frame(
            &mut self.surfaces,
            s.surface_id,
            &f.frame,
            f.src_width,
            f.src_height,
            &f.dest,
            &s.clip,
            s.top_down,
        ) {
            Ok(rect) => {
                if let Some(rect) = rect {
                    events.push_back(Event::RegionChanged {
                        display,
                        surface_id: s.surface_id,
                        rect,
                    });
                }
                events.push_back(Event::StreamFrame {
                    display,
                    stream_id: f.stream_id,
                    mm_time: f.mm_time,
                });
                true
            }
            Err(e) => {
                self.stats.render_errors += 1;
                render_error(events, display, "stream_data", e);
                false
            }
        }
    }
}

fn render_error(events: &mut VecDeque<Event>, display: u8, msg: &'static str, e: CanvasError) {
    tracing::warn!(msg, error = %e, "display message not rendered");
    events.push_back(Event::RenderError {
        display,
        msg,
        detail: e.to_string(),
    });
}

/// Counts one stream frame in its report window; sends the report when the window is full.
fn count_frame(
    io: &mut ConnIo,
    s: &mut Stream,
    frame_mm: u32,
    mm_now: Option<u32>,
    decoded: bool,
    now: Instant,
) -> Result<(), ChannelError> {
    let id = s.id;
    let Some(r) = s.report.as_mut() else {
        return Ok(());
    };
    if r.window_start.is_none() {
        r.window_start = Some(now);
        r.start_mm = frame_mm;
    }
    r.end_mm = frame_mm;
    r.frames += 1;
    if !decoded {
        r.drops += 1;
    }
    // Positive: the frame arrived before its presentation time.
    r.last_delay = mm_now.map_or(0, |m| frame_mm.wrapping_sub(m) as i32);
    if r.frames >= r.max_window {
        send_report(io, id, r)?;
    }
    Ok(())
}

fn send_report(io: &mut ConnIo, stream_id: u32, r: &mut Report) -> Result<(), ChannelError> {
    io.send(&ClientMessage::Display(
        pdisplay::ClientMessage::StreamReport(pdisplay::StreamReport {
            stream_id,
            unique_id: r.unique_id,
            start_frame_mm_time: r.start_mm,
            end_frame_mm_time: r.end_mm,
            num_frames: r.frames,
            num_drops: r.drops,
            last_frame_delay: r.last_delay,
            // No playback channel in this client: "no audio" as spice-gtk sends it.
            audio_delay: u32::MAX,
        }),
    ))?;
    r.window_start = None;
    r.frames = 0;
    r.drops = 0;
    Ok(())
}

/// The local instant a frame stamped `stamp` is due when the multimedia clock reads `mm_now`
/// at `now`; `None` when the stamp is not ahead of the clock (wrapping u32 comparison).
fn due_at(now: Instant, mm_now: u32, stamp: u32) -> Option<Instant> {
    let ahead = stamp.wrapping_sub(mm_now) as i32;
    (ahead > 0).then(|| now + Duration::from_millis(ahead.unsigned_abs().into()))
}
