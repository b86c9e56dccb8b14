//! MJPEG video streams: a sans-IO encoder with spice-server's rate control, and the frame
//! decoder.
//!
//! Every `STREAM_DATA` frame is one complete, standalone JFIF (spice-server marks all
//! tables for output on every frame), so decoding is [`crate::jpeg::decode`]; this module
//! re-exports it as [`decode_frame`] and encodes with [`crate::jpeg::encode`].
//!
//! Rate control follows spice-server's `mjpeg-encoder.c`:
//! - qualities come from [`QUALITY_LADDER`] (20..80), the frame rate from 1 to 25 fps
//!   ([`MAX_FPS`], or a lower configured cap);
//! - a stream starts at quality 50 and 5 fps and *evaluates* qualities: successive frames
//!   are encoded at different qualities and, for each, the frame rate the byte budget
//!   allows (`byte_rate / frame_size`) decides whether to try a better or a worse quality;
//!   above the median quality a frame rate of at least 10 fps is required (unless the
//!   source is slower), at or below it more than 5 fps and at least 2/3 of the lower
//!   bound's rate;
//! - frames arriving faster than the chosen rate are dropped (`encode_frame` returns
//!   `None`); the pacing rate is corrected every 500 ms so the average matches;
//! - when the average size of the last 3 frames implies a different frame rate, the
//!   quality is re-evaluated upwards or downwards;
//! - client `STREAM_REPORT`s: a late frame (delay < -15 ms), video delay far above a
//!   shrinking audio delay, or a collapsing delay lower the bit rate to the measured rate
//!   minus one average frame (ignored during the 3 s warm-up); reports without drops after
//!   2 s (3 s when already at high quality and rate) of stable playback raise it by one
//!   average frame;
//! - more than 10 % of frames dropped on the server side over about a second of frames
//!   lower the bit rate too.
//!
//! Time enters as `now_ms` (any monotonic millisecond clock); nothing here reads a clock.

use crate::jpeg::{self, JpegError, JpegInfo, JpegLimits, JpegSource};

/// The quality ladder of spice-server's MJPEG encoder.
pub const QUALITY_LADDER: [u8; 7] = [20, 30, 40, 50, 60, 70, 80];
/// Highest frame rate of the MJPEG encoder.
pub const MAX_FPS: u32 = 25;
/// Lowest frame rate of the MJPEG encoder.
pub const MIN_FPS: u32 = 1;

const NUM_QUALITIES: usize = QUALITY_LADDER.len();
const MEDIAN_QUALITY: usize = NUM_QUALITIES / 2;
const STRICT_FPS_TH: u32 = 10;
const PERMISSIVE_FPS_TH: u32 = 5;
const AVERAGE_SIZE_WINDOW: u32 = 3;
const BIT_RATE_EVAL_MIN_FRAMES: u32 = 3;
const SERVER_DROP_FACTOR_TH: f64 = 0.1;
const POSITIVE_REPORT_TIMEOUT_MS: i32 = 2000;
const POSITIVE_REPORT_STRICT_TIMEOUT_MS: i32 = 3000;
const ADJUST_FPS_TIMEOUT_MS: u64 = 500;
const MAX_CLIENT_PLAYBACK_DELAY_MS: u32 = 5000;
const WARMUP_MS: u64 = 3000;
const LATENCY_DECREASE_FACTOR: f64 = 0.5;
const VIDEO_VS_AUDIO_LATENCY_FACTOR: f64 = 1.25;
const VIDEO_DELAY_TH_MS: i32 = -15;

/// Decodes one MJPEG frame (a standalone JFIF) into `dst` as B,G,R,X, top row first.
/// The same function as [`crate::jpeg::decode`]: there is one JPEG codec.
pub fn decode_frame(
    data: &[u8],
    dst: &mut [u8],
    dst_stride: usize,
    limits: &JpegLimits,
) -> Result<JpegInfo, JpegError> {
    jpeg::decode(data, dst, dst_stride, limits)
}

/// The fields of `SPICE_MSGC_DISPLAY_STREAM_REPORT` the rate control uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReport {
    /// Frames the report covers.
    pub num_frames: u32,
    /// Frames the client dropped (0xFFFFFFFF with `num_frames` 0: cannot decode the stream).
    pub num_drops: u32,
    /// mm-time of the first frame covered.
    pub start_frame_mm_time: u32,
    /// mm-time of the last frame covered.
    pub end_frame_mm_time: u32,
    /// How early (positive) or late (negative) the last frame arrived, in ms.
    pub last_frame_delay: i32,
    /// Audio playback delay in ms (0xFFFFFFFF without audio).
    pub audio_delay: u32,
}

/// Settings of a new [`MjpegEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MjpegConfig {
    /// Starting bit rate in bits per second (spice-server: 0.8 of the link's rate shared
    /// between streams by area; 10 Mbit/s by default).
    pub start_bit_rate: u64,
    /// Frame-rate cap, clamped to [`MIN_FPS`]..=[`MAX_FPS`].
    pub max_fps: u32,
}

impl Default for MjpegConfig {
    fn default() -> Self {
        Self {
            start_bit_rate: 10 * 1024 * 1024,
            max_fps: MAX_FPS,
        }
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The JFIF bytes (the `STREAM_DATA` payload).
    pub data: Vec<u8>,
    /// JPEG quality used.
    pub quality: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvalKind {
    Set,
    Upgrade,
    Downgrade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvalReason {
    SizeChange,
    RateChange,
}

/// State of a quality evaluation round; kept (with its bounds) while idle too, as the
/// reference keeps it.
#[derive(Debug, Clone, Copy)]
struct Evaluation {
    active: bool,
    kind: EvalKind,
    reason: EvalReason,
    size_by_quality: [u64; NUM_QUALITIES],
    min_quality: usize,
    min_quality_fps: u32,
    max_quality: usize,
    max_quality_fps: u32,
    best_fps: u32,
    best_fps_quality: usize,
}

impl Evaluation {
    fn idle(max_fps: u32) -> Self {
        Self {
            active: false,
            kind: EvalKind::Set,
            reason: EvalReason::SizeChange,
            size_by_quality: [0; NUM_QUALITIES],
            min_quality: 0,
            min_quality_fps: 0,
            max_quality: NUM_QUALITIES - 1,
            max_quality_fps: max_fps,
            best_fps: 0,
            best_fps_quality: 0,
        }
    }

    fn evaluated(&self, q: usize) -> bool {
        self.size_by_quality[q] != 0
    }
}

/// What was sent since the last bit-rate change.
#[derive(Debug, Clone, Copy, Default)]
struct SinceRateChange {
    start_ms: Option<u64>,
    start_mm_time: u32,
    last_frame_ms: Option<u64>,
    was_upgraded: bool,
    frames: u32,
    bytes: u64,
}

/// An MJPEG stream encoder with spice-server's rate control. Sans-IO: time is a parameter.
#[derive(Debug, Clone)]
pub struct MjpegEncoder {
    max_fps: u32,
    byte_rate: u64,
    quality: usize,
    fps: u32,
    adjusted_fps: f64,
    adjusted_fps_start_ms: Option<u64>,
    adjusted_fps_frames: u64,
    base_size: u64,
    last_size: u64,
    recent_bytes: u64,
    recent_frames: u32,
    warmup_start_ms: Option<u64>,
    eval: Evaluation,
    since_change: SinceRateChange,
    max_video_latency: i32,
    max_audio_latency: u32,
    server_encoded: u32,
    server_dropped: u32,
    source_fps: u32,
    latency_ms: u32,
    playback_delay: Option<u32>,
    start_bit_rate: u64,
    frames_encoded: u64,
    quality_sum: u64,
}

impl MjpegEncoder {
    /// A new stream encoder started at `now_ms`: quality 50, 5 fps, evaluating.
    pub fn new(config: MjpegConfig, now_ms: u64) -> Self {
        let max_fps = config.max_fps.clamp(MIN_FPS, MAX_FPS);
        let mut enc = Self {
            max_fps,
            byte_rate: config.start_bit_rate / 8,
            quality: MEDIAN_QUALITY,
            fps: 5,
            adjusted_fps: 0.0,
            adjusted_fps_start_ms: None,
            adjusted_fps_frames: 0,
            base_size: 0,
            last_size: 0,
            recent_bytes: 0,
            recent_frames: 0,
            warmup_start_ms: Some(now_ms),
            eval: Evaluation::idle(max_fps),
            since_change: SinceRateChange::default(),
            max_video_latency: 0,
            max_audio_latency: 0,
            server_encoded: 0,
            server_dropped: 0,
            source_fps: max_fps,
            latency_ms: 0,
            playback_delay: None,
            start_bit_rate: config.start_bit_rate,
            frames_encoded: 0,
            quality_sum: 0,
        };
        enc.reset_quality(MEDIAN_QUALITY, 5, 0);
        enc.eval.active = true;
        enc.eval.kind = EvalKind::Set;
        enc.eval.reason = EvalReason::RateChange;
        enc
    }

    /// Current bit rate budget in bits per second.
    pub fn bit_rate(&self) -> u64 {
        self.byte_rate * 8
    }

    /// Bit rate the stream started with.
    pub fn start_bit_rate(&self) -> u64 {
        self.start_bit_rate
    }

    /// JPEG quality the next frame will use.
    pub fn quality(&self) -> u8 {
        QUALITY_LADDER[self.quality]
    }

    /// Target frame rate.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Whether a quality evaluation round is under way.
    pub fn evaluating(&self) -> bool {
        self.eval.active
    }

    /// Average quality of the frames encoded so far (0 before the first).
    pub fn average_quality(&self) -> f64 {
        if self.frames_encoded == 0 {
            0.0
        } else {
            self.quality_sum as f64 / self.frames_encoded as f64
        }
    }

    /// Sets the measured input frame rate of the source (spice-server's stream
    /// `input_fps`; defaults to the frame-rate cap).
    pub fn set_source_fps(&mut self, fps: u32) {
        self.source_fps = fps.max(1);
    }

    /// Sets the channel round-trip time; half of it is taken as the network latency.
    pub fn set_roundtrip_ms(&mut self, rtt_ms: u32) {
        self.latency_ms = rtt_ms / 2;
    }

    /// The minimum client playback delay (ms) computed at the last evaluation or report,
    /// if it changed since the last call (spice-server's `update_client_playback_delay`).
    pub fn take_playback_delay(&mut self) -> Option<u32> {
        self.playback_delay.take()
    }

    fn fps_for_size(&self, size: u64) -> u32 {
        self.byte_rate
            .checked_div(size)
            .map_or(self.max_fps, |f| u32::try_from(f).unwrap_or(u32::MAX))
    }

    fn min_playback_delay(&self, frame_size: u64) -> u32 {
        if frame_size == 0 || self.byte_rate == 0 {
            return self.latency_ms;
        }
        let one_frame = u32::try_from(frame_size * 1000 / self.byte_rate).unwrap_or(u32::MAX);
        one_frame
            .saturating_mul(2)
            .saturating_add(self.latency_ms)
            .min(MAX_CLIENT_PLAYBACK_DELAY_MS)
    }

    /// Ends any evaluation and settles on `quality` at `fps`.
    fn reset_quality(&mut self, quality: usize, fps: u32, frame_size: u64) {
        if self.quality != quality {
            self.last_size = 0;
        }
        if self.eval.reason == EvalReason::RateChange {
            self.server_encoded = 0;
            self.server_dropped = 0;
        }
        self.quality = quality;
        self.eval = Evaluation::idle(self.max_fps);
        let ratio = if self.adjusted_fps != 0.0 {
            self.adjusted_fps / f64::from(self.fps)
        } else {
            1.5
        };
        self.fps = fps.clamp(MIN_FPS, self.max_fps);
        self.adjusted_fps = f64::from(self.fps) * ratio;
        self.adjusted_fps_start_ms = None;
        self.adjusted_fps_frames = 0;
        self.base_size = frame_size;
        self.recent_bytes = 0;
        self.recent_frames = 0;
    }

    /// Looks at the size of the frame just encoded at the current quality and either picks
    /// the next quality to try or completes the evaluation.
    fn evaluate_quality(&mut self) {
        let q = self.quality;
        let size = self.eval.size_by_quality[q];
        if size == 0 {
            return;
        }
        let src_fps = self.source_fps;
        let fps = self.fps_for_size(size);
        tracing::debug!(
            quality = QUALITY_LADDER[q],
            size,
            fps,
            src_fps,
            "mjpeg quality sample"
        );
        let ev = &mut self.eval;
        if fps > ev.best_fps || ((fps == ev.best_fps || fps >= src_fps) && q > ev.best_fps_quality)
        {
            ev.best_fps = fps;
            ev.best_fps_quality = q;
        }

        let complete_at = if q > MEDIAN_QUALITY && fps < STRICT_FPS_TH && fps < src_fps {
            // High quality but too few frames: step down.
            if ev.evaluated(q - 1) {
                Some(q - 1)
            } else {
                self.quality = q - 1;
                None
            }
        } else if (fps > PERMISSIVE_FPS_TH
            && f64::from(fps) >= 0.66 * f64::from(ev.min_quality_fps))
            || fps >= src_fps
        {
            // Enough frames: try a better quality unless bounded or already tried.
            let bounded = q + 1 == NUM_QUALITIES || q >= ev.max_quality || ev.evaluated(q + 1);
            let median_too_slow = q == MEDIAN_QUALITY && fps < STRICT_FPS_TH && fps < src_fps;
            if bounded || median_too_slow {
                Some(q)
            } else {
                self.quality = q + 1;
                None
            }
        } else if q == 0 || q <= ev.min_quality {
            Some(q)
        } else if ev.evaluated(q - 1) {
            Some(q - 1)
        } else {
            self.quality = q - 1;
            None
        };

        let Some(q) = complete_at else { return };
        let ev = self.eval;
        let final_quality = if ev.best_fps != 0 {
            q.max(ev.best_fps_quality)
        } else {
            q
        };
        let final_size = ev.size_by_quality[final_quality];
        let mut final_fps = self.fps_for_size(final_size);
        if final_quality == ev.min_quality {
            final_fps = final_fps.max(ev.min_quality_fps);
        }
        if final_quality == ev.max_quality {
            final_fps = final_fps.min(ev.max_quality_fps);
        }
        // `reset_quality` compares with the quality the round ended on.
        self.quality = q;
        self.reset_quality(final_quality, final_fps, final_size);
        self.recent_bytes = final_size;
        self.recent_frames = 1;
        self.playback_delay = Some(self.min_playback_delay(final_size));
        tracing::debug!(
            quality = self.quality(),
            fps = self.fps,
            "mjpeg quality evaluation complete"
        );
    }

    fn start_evaluation(&mut self, kind: EvalKind, reason: EvalReason) {
        self.eval.active = true;
        self.eval.kind = kind;
        self.eval.reason = reason;
        match kind {
            EvalKind::Upgrade => {
                self.eval.min_quality = self.quality;
                self.eval.min_quality_fps = self.fps;
            }
            EvalKind::Downgrade => {
                self.eval.max_quality = self.quality;
                self.eval.max_quality_fps = self.fps;
            }
            EvalKind::Set => {}
        }
    }

    /// Before encoding: feed the last frame's size into the evaluation, or check whether
    /// the recent sizes call for a new one.
    fn adjust_to_bit_rate(&mut self, now_ms: u64) {
        if self.last_size == 0 {
            return;
        }
        if self.eval.active {
            self.eval.size_by_quality[self.quality] = self.last_size;
            self.evaluate_quality();
            return;
        }
        if self.recent_frames == 0 {
            return;
        }
        let mut avg = 0;
        if self.recent_frames >= AVERAGE_SIZE_WINDOW || self.recent_frames >= self.fps {
            avg = self.recent_bytes / u64::from(self.recent_frames);
            let new_fps = self.fps_for_size(avg);
            if new_fps > self.fps
                && (self.fps < self.source_fps || self.quality < NUM_QUALITIES - 1)
            {
                self.start_evaluation(EvalKind::Upgrade, EvalReason::SizeChange);
            } else if new_fps < self.fps && new_fps < self.source_fps {
                self.start_evaluation(EvalKind::Downgrade, EvalReason::SizeChange);
            }
        }
        if self.eval.active {
            self.eval.size_by_quality[self.quality] = avg;
            self.evaluate_quality();
        } else {
            self.process_server_drops(now_ms);
        }
    }

    /// Keeps the pacing rate such that the average frame rate matches the target.
    fn adjust_fps(&mut self, now_ms: u64) {
        let start = *self.adjusted_fps_start_ms.get_or_insert(now_ms);
        let passed = now_ms.saturating_sub(start);
        if self.eval.active
            || passed <= ADJUST_FPS_TIMEOUT_MS
            || passed as f64 <= 1000.0 / self.adjusted_fps
        {
            return;
        }
        let avg_fps = self.adjusted_fps_frames as f64 * 1000.0 / passed as f64;
        let fps = f64::from(self.fps);
        let ratio = avg_fps / fps;
        if avg_fps + 0.5 < fps && f64::from(self.source_fps) > avg_fps {
            let new = if avg_fps > 0.0 {
                self.adjusted_fps / ratio
            } else {
                self.adjusted_fps * 2.0
            };
            self.adjusted_fps = new.min(fps * 2.0);
        } else if fps + 0.5 < avg_fps {
            self.adjusted_fps = (self.adjusted_fps / ratio).max(fps);
        }
        self.adjusted_fps_start_ms = Some(now_ms);
        self.adjusted_fps_frames = 0;
    }

    /// Offers a frame captured at `now_ms` with mm-time `frame_mm_time`. Returns `Ok(None)`
    /// when the rate control drops it (too soon after the previous one), else the JPEG at
    /// the current quality. Rows are encoded in the frame's memory order when
    /// `frame.top_down` is true (as spice-server does for streams: the stream's TOP_DOWN
    /// flag tells the client).
    pub fn encode_frame(
        &mut self,
        frame: &JpegSource<'_>,
        frame_mm_time: u32,
        now_ms: u64,
    ) -> Result<Option<EncodedFrame>, JpegError> {
        if self.adjusted_fps_start_ms.is_none() {
            self.adjusted_fps_start_ms = Some(now_ms);
        }
        self.adjust_fps(now_ms);
        if let Some(last) = self.since_change.last_frame_ms {
            let interval_ms = now_ms.saturating_sub(last) as f64;
            if interval_ms < 1000.0 / self.adjusted_fps {
                return Ok(None);
            }
        }
        self.adjust_to_bit_rate(now_ms);
        let tracks_rate = !self.eval.active || self.eval.reason == EvalReason::SizeChange;
        if tracks_rate {
            if self.since_change.start_ms.is_none() {
                self.since_change.start_ms = Some(now_ms);
                self.since_change.start_mm_time = frame_mm_time;
            }
            self.since_change.last_frame_ms = Some(now_ms);
        }

        let quality = self.quality();
        let mut data = Vec::with_capacity(32 * 1024);
        if let Err(e) = jpeg::encode(frame, quality, &mut data) {
            self.last_size = 0;
            return Err(e);
        }
        let size = data.len() as u64;
        self.frames_encoded += 1;
        self.quality_sum += u64::from(quality);
        self.last_size = size;
        self.server_encoded += 1;
        if tracks_rate {
            if !self.eval.active {
                if self.recent_frames >= AVERAGE_SIZE_WINDOW {
                    self.recent_frames = 0;
                    self.recent_bytes = 0;
                }
                self.recent_bytes += size;
                self.recent_frames += 1;
                self.adjusted_fps_frames += 1;
            }
            self.since_change.bytes += size;
            self.since_change.frames += 1;
        }
        Ok(Some(EncodedFrame { data, quality }))
    }

    /// Cancels an evaluation round, falling back to its safe bound.
    fn stop_evaluation(&mut self) {
        if !self.eval.active {
            return;
        }
        let (q, fps) = match self.eval.kind {
            EvalKind::Upgrade => (self.eval.min_quality, self.eval.min_quality_fps),
            EvalKind::Downgrade => (self.eval.max_quality, self.eval.max_quality_fps),
            EvalKind::Set => (MEDIAN_QUALITY, self.max_fps / 2),
        };
        self.reset_quality(q, fps, 0);
    }

    /// Byte rate, frame rate and mean frame size measured since the last change, when
    /// enough frames were sent over a non-zero time.
    fn measured(&self) -> Option<(u64, u64)> {
        let s = &self.since_change;
        if s.frames <= BIT_RATE_EVAL_MIN_FRAMES && s.frames <= self.fps {
            return None;
        }
        let duration_s = s.last_frame_ms?.saturating_sub(s.start_ms?) as f64 / 1000.0;
        if duration_s <= 0.0 {
            return None;
        }
        Some((
            (s.bytes as f64 / duration_s) as u64,
            s.bytes / u64::from(s.frames),
        ))
    }

    fn decrease_bit_rate(&mut self, now_ms: u64) {
        self.stop_evaluation();
        self.max_video_latency = 0;
        self.max_audio_latency = 0;
        if let Some(start) = self.warmup_start_ms {
            if now_ms.saturating_sub(start) < WARMUP_MS {
                tracing::debug!("mjpeg: decrease ignored during warm-up");
                return;
            }
            self.warmup_start_ms = None;
        }
        let (measured, mut decrease) = self
            .measured()
            .unwrap_or((self.byte_rate, self.byte_rate / u64::from(self.fps.max(1))));
        let measured = measured.min(self.byte_rate);
        if decrease >= measured {
            decrease = measured / 2;
        }
        self.byte_rate = measured - decrease;
        self.since_change = SinceRateChange::default();
        tracing::debug!(bit_rate = self.byte_rate * 8, "mjpeg: decrease bit rate");
        self.start_evaluation(EvalKind::Downgrade, EvalReason::RateChange);
    }

    fn increase_bit_rate(&mut self) {
        let Some((measured, increase)) = self.measured() else {
            return;
        };
        self.stop_evaluation();
        if measured + increase >= self.byte_rate {
            self.byte_rate = measured.min(self.byte_rate) + increase;
        }
        self.since_change = SinceRateChange {
            was_upgraded: true,
            ..SinceRateChange::default()
        };
        tracing::debug!(bit_rate = self.byte_rate * 8, "mjpeg: increase bit rate");
        self.start_evaluation(EvalKind::Upgrade, EvalReason::RateChange);
    }

    fn negative_report(&mut self, end_frame_mm_time: u32, now_ms: u64) {
        let s = &self.since_change;
        if (s.start_mm_time > end_frame_mm_time || s.start_mm_time == 0) && !s.was_upgraded {
            // A decrease already happened after the frames this report covers.
            return;
        }
        self.decrease_bit_rate(now_ms);
    }

    fn positive_report(&mut self, start_frame_mm_time: u32) {
        if self.eval.active && self.eval.reason == EvalReason::RateChange {
            return;
        }
        let high = (self.fps > STRICT_FPS_TH || self.fps >= self.source_fps)
            && self.quality > MEDIAN_QUALITY;
        let timeout = if high {
            POSITIVE_REPORT_STRICT_TIMEOUT_MS
        } else {
            POSITIVE_REPORT_TIMEOUT_MS
        };
        let start = self.since_change.start_mm_time;
        // mm-times are u32 and wrap; the difference is taken as signed, like the C code.
        let stable = start_frame_mm_time.wrapping_sub(start) as i32;
        if start == 0 || stable < timeout {
            return;
        }
        self.increase_bit_rate();
    }

    /// Handles a client `STREAM_REPORT` received at `now_ms`.
    pub fn client_report(&mut self, report: &StreamReport, now_ms: u64) {
        let delay = report.last_frame_delay;
        tracing::debug!(?report, "mjpeg client report");
        if self.eval.active
            && self.eval.kind == EvalKind::Downgrade
            && self.eval.reason == EvalReason::RateChange
        {
            return;
        }
        let avg = if self.recent_frames > 0 {
            self.recent_bytes / u64::from(self.recent_frames)
        } else {
            0
        };
        let min_delay = self.min_playback_delay(avg);
        let mut video_delay_small = false;
        // The C code compares the u32 minimum with the i32 delay as unsigned, so a negative
        // delay never counts here (it is handled as a late frame below).
        if min_delay > delay as u32 {
            let at_top =
                self.quality == NUM_QUALITIES - 1 && self.fps >= self.source_fps.min(self.max_fps);
            if !at_top || delay < 0 {
                video_delay_small = true;
                self.playback_delay = Some(min_delay);
            }
        }
        if delay > 0
            && f64::from(report.audio_delay)
                < LATENCY_DECREASE_FACTOR * f64::from(self.max_audio_latency)
            && f64::from(delay) > VIDEO_VS_AUDIO_LATENCY_FACTOR * f64::from(report.audio_delay)
        {
            self.negative_report(report.end_frame_mm_time, now_ms);
            return;
        }
        if delay < VIDEO_DELAY_TH_MS {
            self.negative_report(report.end_frame_mm_time, now_ms);
            return;
        }
        self.max_video_latency = self.max_video_latency.max(delay);
        self.max_audio_latency = self.max_audio_latency.max(report.audio_delay);
        let medium = f64::from(self.max_video_latency) * LATENCY_DECREASE_FACTOR;
        let major = medium * LATENCY_DECREASE_FACTOR;
        let d = f64::from(delay);
        if (d < medium && video_delay_small) || d < major {
            self.negative_report(report.end_frame_mm_time, now_ms);
        } else if report.num_drops == 0 {
            self.positive_report(report.start_frame_mm_time);
        }
    }

    /// Records a frame the server dropped before sending (pipe congestion) at `now_ms`.
    pub fn notify_server_frame_drop(&mut self, now_ms: u64) {
        self.server_dropped += 1;
        self.process_server_drops(now_ms);
    }

    fn process_server_drops(&mut self, now_ms: u64) {
        let fps = self.fps.min(self.source_fps);
        if self.server_encoded < fps {
            return;
        }
        let total = self.server_dropped + self.server_encoded;
        let factor = f64::from(self.server_dropped) / f64::from(total);
        if factor > SERVER_DROP_FACTOR_TH {
            self.decrease_bit_rate(now_ms);
        }
        self.server_encoded = 0;
        self.server_dropped = 0;
    }
}
