//! The server's video-region detector (spice-server `video-stream.cpp`), sans-IO.
//!
//! A drawing is *streamable* when streaming is not [`StreamingVideo::Off`], it is a
//! `QXL_DRAW_COPY` with rop `OP_PUT` of a `BITMAP` image, opaque, onto the primary surface
//! (the caller checks those and sets [`DrawCandidate::streamable_op`]) and, in
//! [`StreamingVideo::Filter`] mode, its source area is at least 96x96 pixels.
//!
//! Successive streamable drawings with the same destination rectangle and source size,
//! each at most 200 ms after the previous one, form a chain. Each frame after the first
//! counts (`frames_count = previous + 1`); frames whose bitmap is not [`Graduality::Low`]
//! (in All mode every frame; in Filter mode bitmaps that cannot be classified too) count
//! as gradual, and a gradual frame more than 100 frames after the previous gradual one
//! restarts the counts at 1/1. A stream starts when `frames_count >= 20` and at least
//! 20 % of them are gradual — at the 21st update of the region at 5 fps or more.
//!
//! Once a stream exists, a streamable drawing at most 1 s after the stream's last frame
//! whose rectangle contains the stream's destination, is at most twice its area, and has
//! the same row order is the stream's next frame. A stream without frames for 1 s is
//! destroyed ([`StreamDetector::poll_timeouts`]). At most [`MAX_STREAMS`] exist at once.
//!
//! Time is a parameter (`now_ms`, any monotonic millisecond clock).

use crate::classify::Graduality;

/// `streaming-video` server setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingVideo {
    /// Never stream.
    Off,
    /// Stream any region updated often enough, regardless of content or size.
    All,
    /// Stream regions of at least 96x96 with enough photo-like frames (the default).
    Filter,
}

/// Smallest source area (pixels) streamed in Filter mode (96x96).
pub const MIN_STREAM_AREA: u64 = 96 * 96;
/// Frames needed before a stream starts.
pub const FRAMES_START_CONDITION: u32 = 20;
/// Fraction of gradual frames needed.
pub const GRADUAL_FRAMES_START_CONDITION: f64 = 0.2;
/// A gradual frame this many frames after the previous gradual one restarts the counts.
pub const FRAMES_RESET_CONDITION: u32 = 100;
/// Largest gap between two frames of a candidate chain.
pub const DETECTION_MAX_DELTA_MS: u64 = 200;
/// Largest gap between two frames of an existing stream.
pub const CONTINUOUS_MAX_DELTA_MS: u64 = 1000;
/// A stream without frames for this long is destroyed.
pub const STREAM_TIMEOUT_MS: u64 = 1000;
/// The input frame rate is re-measured this often.
pub const INPUT_FPS_INTERVAL_MS: u64 = 5000;
/// Upper bound of the estimated input frame rate at stream start.
pub const MAX_INPUT_FPS: u32 = 30;
/// Streams that can exist at once (spice-server `NUM_STREAMS`).
pub const MAX_STREAMS: usize = 50;
/// Candidate chains remembered (spice-server keeps an 8-entry trace).
pub const TRACE_SIZE: usize = 8;

/// A rectangle, `left`/`top` inclusive, `right`/`bottom` exclusive (SpiceRect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left edge.
    pub left: i32,
    /// Top edge.
    pub top: i32,
    /// Right edge (exclusive).
    pub right: i32,
    /// Bottom edge (exclusive).
    pub bottom: i32,
}

impl Rect {
    /// Area in pixels (0 for empty or inverted rectangles).
    pub fn area(&self) -> u64 {
        let w = i64::from(self.right) - i64::from(self.left);
        let h = i64::from(self.bottom) - i64::from(self.top);
        if w <= 0 || h <= 0 {
            0
        } else {
            (w as u64) * (h as u64)
        }
    }

    /// Whether `other` lies inside `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        self.left <= other.left
            && self.top <= other.top
            && self.right >= other.right
            && self.bottom >= other.bottom
    }
}

/// A drawing offered to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawCandidate {
    /// Destination rectangle on the primary surface (the drawable's bbox).
    pub bbox: Rect,
    /// Width of the source area of the bitmap.
    pub src_width: u32,
    /// Height of the source area of the bitmap.
    pub src_height: u32,
    /// The bitmap's TOP_DOWN flag.
    pub top_down: bool,
    /// Opaque `DRAW_COPY` / `OP_PUT` of a `BITMAP` image onto surface 0.
    pub streamable_op: bool,
}

/// A video stream the detector created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream id (0..[`MAX_STREAMS`]).
    pub id: u32,
    /// Destination rectangle (`STREAM_CREATE.dest`).
    pub dest: Rect,
    /// Source width (`stream_width`, `src_width`).
    pub width: u32,
    /// Source height.
    pub height: u32,
    /// Row order of the frames (`STREAM_CREATE.flags` TOP_DOWN).
    pub top_down: bool,
    /// Estimated input frame rate (feed it to the video encoder).
    pub input_fps: u32,
}

/// What the detector made of a drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Not streamable: send it as an ordinary image.
    NotStreamable,
    /// Streamable; part of a chain with these counts (send as an image for now).
    Candidate {
        /// Frames counted so far (0 for the first of a chain).
        frames: u32,
        /// Gradual frames among them.
        gradual_frames: u32,
    },
    /// A new stream starts with this drawing as its first frame.
    StreamCreated(StreamInfo),
    /// The drawing is the next frame of an existing stream.
    StreamFrame {
        /// The stream's id.
        id: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Track {
    bbox: Rect,
    src_width: u32,
    src_height: u32,
    time_ms: u64,
    first_frame_ms: u64,
    frames: u32,
    gradual_frames: u32,
    last_gradual_frame: u32,
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    info: StreamInfo,
    last_ms: u64,
    fps_start_ms: u64,
    fps_frames: u32,
}

/// The detector for one display channel.
#[derive(Debug, Clone)]
pub struct StreamDetector {
    mode: StreamingVideo,
    tracks: Vec<Track>,
    streams: Vec<Stream>,
}

impl StreamDetector {
    /// A detector with the given `streaming-video` setting.
    pub fn new(mode: StreamingVideo) -> Self {
        Self {
            mode,
            tracks: Vec::with_capacity(TRACE_SIZE),
            streams: Vec::new(),
        }
    }

    /// The `streaming-video` setting.
    pub fn mode(&self) -> StreamingVideo {
        self.mode
    }

    /// Changes the setting (existing streams are kept until they time out or are
    /// destroyed; Off stops new frames from attaching).
    pub fn set_mode(&mut self, mode: StreamingVideo) {
        self.mode = mode;
        if mode == StreamingVideo::Off {
            self.tracks.clear();
        }
    }

    /// The live streams.
    pub fn streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.streams.iter().map(|s| &s.info)
    }

    /// Whether a candidate is streamable under the current mode.
    pub fn is_streamable(&self, c: &DrawCandidate) -> bool {
        match self.mode {
            StreamingVideo::Off => false,
            StreamingVideo::All => c.streamable_op,
            StreamingVideo::Filter => {
                c.streamable_op
                    && u64::from(c.src_width) * u64::from(c.src_height) >= MIN_STREAM_AREA
            }
        }
    }

    /// Offers a drawing made at `now_ms`. `graduality` is called (at most once, in Filter
    /// mode only) to classify the bitmap; `None` means it cannot be classified (padded,
    /// unstable, non-RGB), which counts as gradual like any level but Low.
    pub fn on_draw(
        &mut self,
        c: &DrawCandidate,
        now_ms: u64,
        graduality: impl FnOnce() -> Option<Graduality>,
    ) -> Detection {
        if !self.is_streamable(c) {
            // An opaque drawing over a chain's rectangle replaces the chain's last frame;
            // the next frame then restarts counting.
            self.tracks.retain(|t| t.bbox != c.bbox);
            return Detection::NotStreamable;
        }
        if let Some(s) = self.streams.iter_mut().find(|s| {
            now_ms.saturating_sub(s.last_ms) <= CONTINUOUS_MAX_DELTA_MS
                && c.bbox.contains(&s.info.dest)
                && c.bbox.area() <= 2 * s.info.dest.area()
                && c.top_down == s.info.top_down
        }) {
            s.last_ms = now_ms;
            let elapsed = now_ms.saturating_sub(s.fps_start_ms);
            if elapsed >= INPUT_FPS_INTERVAL_MS {
                s.info.input_fps =
                    ((u64::from(s.fps_frames) * 1000 + elapsed / 2) / elapsed) as u32;
                s.fps_frames = 0;
                s.fps_start_ms = now_ms;
            } else {
                s.fps_frames += 1;
            }
            return Detection::StreamFrame { id: s.info.id };
        }

        let prev = self.tracks.iter().position(|t| {
            t.bbox == c.bbox
                && t.src_width == c.src_width
                && t.src_height == c.src_height
                && now_ms.saturating_sub(t.time_ms) <= DETECTION_MAX_DELTA_MS
        });
        let Some(i) = prev else {
            // First frame of a new chain: counts start at 0.
            self.tracks.retain(|t| t.bbox != c.bbox);
            if self.tracks.len() == TRACE_SIZE {
                let oldest = (0..self.tracks.len())
                    .min_by_key(|&i| self.tracks[i].time_ms)
                    .unwrap_or(0);
                self.tracks.swap_remove(oldest);
            }
            self.tracks.push(Track {
                bbox: c.bbox,
                src_width: c.src_width,
                src_height: c.src_height,
                time_ms: now_ms,
                first_frame_ms: now_ms,
                frames: 0,
                gradual_frames: 0,
                last_gradual_frame: 0,
            });
            return Detection::Candidate {
                frames: 0,
                gradual_frames: 0,
            };
        };

        let gradual = match self.mode {
            StreamingVideo::Filter => graduality() != Some(Graduality::Low),
            _ => true,
        };
        let t = &mut self.tracks[i];
        t.time_ms = now_ms;
        t.frames += 1;
        if gradual {
            if t.frames - t.last_gradual_frame > FRAMES_RESET_CONDITION {
                t.frames = 1;
                t.gradual_frames = 1;
            } else {
                t.gradual_frames += 1;
            }
            t.last_gradual_frame = t.frames;
        }
        let (frames, gradual_frames) = (t.frames, t.gradual_frames);
        let start = frames >= FRAMES_START_CONDITION
            && f64::from(gradual_frames) >= GRADUAL_FRAMES_START_CONDITION * f64::from(frames);
        if start {
            if let Some(info) = self.create_stream(i, c, now_ms) {
                return Detection::StreamCreated(info);
            }
        }
        Detection::Candidate {
            frames,
            gradual_frames,
        }
    }

    fn create_stream(
        &mut self,
        track: usize,
        c: &DrawCandidate,
        now_ms: u64,
    ) -> Option<StreamInfo> {
        let id =
            (0..MAX_STREAMS as u32).find(|id| self.streams.iter().all(|s| s.info.id != *id))?;
        let t = self.tracks.swap_remove(track);
        let duration = now_ms.saturating_sub(t.first_frame_ms);
        let mut input_fps = MAX_INPUT_FPS;
        if duration > 1000 * u64::from(t.frames) / u64::from(MAX_INPUT_FPS) {
            input_fps = ((1000 * u64::from(t.frames) + duration / 2) / duration) as u32;
        }
        let info = StreamInfo {
            id,
            dest: c.bbox,
            width: c.src_width,
            height: c.src_height,
            top_down: c.top_down,
            input_fps,
        };
        tracing::debug!(?info, "video stream detected");
        self.streams.push(Stream {
            info,
            last_ms: now_ms,
            fps_start_ms: now_ms,
            fps_frames: 0,
        });
        Some(info)
    }

    /// Destroys streams without a frame for [`STREAM_TIMEOUT_MS`]; returns their ids
    /// (send `STREAM_DESTROY` for each).
    pub fn poll_timeouts(&mut self, now_ms: u64) -> Vec<u32> {
        let mut gone = Vec::new();
        self.streams.retain(|s| {
            let alive = now_ms.saturating_sub(s.last_ms) < STREAM_TIMEOUT_MS;
            if !alive {
                gone.push(s.info.id);
            }
            alive
        });
        gone
    }

    /// When the next stream times out, if any stream exists.
    pub fn next_timeout(&self) -> Option<u64> {
        self.streams
            .iter()
            .map(|s| s.last_ms + STREAM_TIMEOUT_MS)
            .min()
    }

    /// Destroys a stream (e.g. its region was covered); returns whether it existed.
    pub fn destroy_stream(&mut self, id: u32) -> bool {
        let before = self.streams.len();
        self.streams.retain(|s| s.info.id != id);
        self.streams.len() != before
    }
}
