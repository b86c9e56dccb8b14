//! The display channel: DISPLAY_INIT, surfaces, draw operations rendered by spice-canvas,
//! image and palette cache invalidations, video streams and stream reports.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use spice_proto::caps::{self, Caps};
use spice_proto::display::{self as pdisplay, ServerMessage as M};
use spice_proto::message::ChannelMessage as _;
use spice_proto::messages::ClientMessage;
use spice_proto::types::Rect;

use crate::error::ChannelError;
use crate::event::Event;
use crate::session::{ConnIo, SessionConfig};

/// Display channel caps this client advertises.
pub(crate) fn display_caps() -> Caps {
    Caps::from_caps(&[
        caps::display::SIZED_STREAM,
        caps::display::MONITORS_CONFIG,
        caps::display::STREAM_REPORT,
        caps::display::MULTI_CODEC,
        caps::display::CODEC_MJPEG,
    ])
}

/// Display state shared by every display channel of a session: the pixmap cache, the
/// palette cache and the one GLZ window.
#[derive(Debug)]
pub struct DisplayShared {
    _priv: (),
}

impl DisplayShared {
    pub(crate) fn new(_config: &SessionConfig) -> Self {
        Self { _priv: () }
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
    /// Frames decoded.
    pub frames: u64,
    report: Option<Report>,
}

/// One display channel's state.
#[derive(Debug)]
pub struct DisplayChannel {
    id: u8,
    streams: Vec<Stream>,
    marked: bool,
    _pending: VecDeque<()>,
}

impl DisplayChannel {
    pub(crate) fn new(id: u8) -> Self {
        Self {
            id,
            streams: Vec::new(),
            marked: false,
            _pending: VecDeque::new(),
        }
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

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .iter()
            .filter_map(|s| s.report.as_ref())
            .filter_map(|r| r.window_start.map(|t| t + r.timeout))
            .min()
    }

    pub(crate) fn handle_timeout(
        &mut self,
        io: &mut ConnIo,
        now: Instant,
        _mm_now: Option<u32>,
    ) -> Result<(), ChannelError> {
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
        _shared: &mut DisplayShared,
        events: &mut VecDeque<Event>,
        now: Instant,
        mm_now: Option<u32>,
    ) -> Result<(), ChannelError> {
        let display = self.id;
        match msg {
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
                for s in self.streams.drain(..) {
                    events.push_back(Event::StreamDestroyed {
                        display,
                        stream_id: s.id,
                    });
                }
            }
            M::StreamActivateReport(a) => {
                let s = self
                    .streams
                    .iter_mut()
                    .find(|s| s.id == a.stream_id)
                    .ok_or_else(|| ChannelError::Protocol {
                        channel: spice_proto::ChannelType::DISPLAY,
                        msg: "stream_activate_report",
                        detail: format!("unknown stream {}", a.stream_id),
                    })?;
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
                let _ = (now, mm_now);
                tracing::debug!(msg = other.name(), "display message not rendered");
            }
        }
        Ok(())
    }
}

/// Counts one stream frame in its report window; sends the report when the window is full.
#[allow(dead_code)]
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
