//! The playback channel: PCM from the host to every connected client, Opus-coded when the
//! client can decode it (protocol.md §7.3).
//!
//! # Host side
//!
//! The host implements [`crate::host::PlaybackDevice`]. When the server starts it creates
//! one [`PlaybackSink`] per device and hands it over with
//! [`crate::host::PlaybackDevice::attach`]. The host then calls, from any thread:
//! [`PlaybackSink::start`], [`PlaybackSink::write`] (interleaved S16 samples, any amount;
//! they are cut into 480-sample frames), [`PlaybackSink::stop`],
//! [`PlaybackSink::set_volume`], [`PlaybackSink::set_mute`] and
//! [`PlaybackSink::set_latency`]. Each call queues events for every connected playback
//! channel and wakes it; nothing blocks on the network. A client that falls behind loses
//! its oldest frames (at most [`MAX_QUEUED_FRAMES`] wait per client).
//!
//! # Wire
//!
//! On connect: `MODE` (Opus when the client has `PLAYBACK_CAP_OPUS`, the server's
//! playback compression is on and the format is Opus-capable; raw otherwise), then the
//! current state (`START` if playing, `VOLUME`/`MUTE` with `PLAYBACK_CAP_VOLUME`,
//! `LATENCY` with `PLAYBACK_CAP_LATENCY`). Then `START`/`DATA`/`STOP` as the host plays.
//!
//! # Time stamps
//!
//! `DATA.time` is on the server's raw multimedia clock ([`ServerContext::mm_time`], the
//! clock video stream frames are stamped with; `MAIN_INIT`/`MULTI_MEDIA_TIME` tell clients
//! that clock minus [`crate::main_channel::MM_TIME_DELTA`], so a client playing each packet
//! at its stamp buffers 400 ms, as it does for video). At `START` the channel
//! takes the clock's current value as the stream's origin; each frame is stamped with the
//! origin plus the duration of the samples before it, so stamps advance exactly with the
//! audio. If the host falls behind real time (an underrun without `STOP`) by more than
//! [`RESYNC_MS`], the origin is moved to the current clock so stamps never lag the clock
//! that video frames use.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use spice_codecs::audio::{AudioEncoder, AudioMode, FRAME_SAMPLES, opus_supported};
use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::link::LinkErr;
use spice_proto::messages::ClientMessage;
use spice_proto::playback::{AudioDataMode, AudioFormat as WireFormat, AudioVolume, ServerMessage};

use crate::channel::{ChannelError, ChannelFactory, ChannelHandler, OpenContext, Outbox, Waker};
use crate::host::{AudioFormat, PlaybackDevice};
use crate::main_channel::MmTimeControl;
use crate::server::ServerContext;
use crate::session::lock;

/// Frames (10 ms each at 48 kHz) queued per client before the oldest are dropped.
pub const MAX_QUEUED_FRAMES: usize = 100;

/// Lag of the frame stamps behind the multimedia clock that resets the stream origin (ms).
pub const RESYNC_MS: u32 = 200;

/// One thing that happened on the host side, queued per client.
#[derive(Debug, Clone)]
enum SinkEvent {
    Start,
    Frame(Arc<[i16]>),
    Stop,
    Volume(Vec<u16>),
    Mute(bool),
    Latency(u32),
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    queue: VecDeque<SinkEvent>,
    frames: usize,
    dropped: u64,
    waker: Waker,
}

#[derive(Debug, Default)]
struct SinkState {
    playing: bool,
    volume: Option<Vec<u16>>,
    mute: Option<bool>,
    latency_ms: Option<u32>,
    partial: Vec<i16>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    frames_written: u64,
}

#[derive(Debug)]
struct SinkShared {
    format: AudioFormat,
    state: Mutex<SinkState>,
}

/// Where the host writes playback audio (one per playback device, shared by every
/// client's playback channel). Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct PlaybackSink {
    shared: Arc<SinkShared>,
}

impl PlaybackSink {
    /// A sink for PCM in `format` (S16, interleaved).
    pub fn new(format: AudioFormat) -> Self {
        Self {
            shared: Arc::new(SinkShared {
                format,
                state: Mutex::new(SinkState::default()),
            }),
        }
    }

    /// The PCM format of the sink.
    pub fn format(&self) -> AudioFormat {
        self.shared.format
    }

    /// Interleaved samples per frame ([`FRAME_SAMPLES`] × channels).
    pub fn frame_len(&self) -> usize {
        FRAME_SAMPLES * usize::from(self.shared.format.channels.max(1))
    }

    fn broadcast(st: &mut SinkState, ev: &SinkEvent) {
        let is_frame = matches!(ev, SinkEvent::Frame(_));
        for s in &mut st.subscribers {
            if is_frame {
                if s.frames >= MAX_QUEUED_FRAMES {
                    // Drop the oldest frame of this slow client.
                    if let Some(pos) = s
                        .queue
                        .iter()
                        .position(|e| matches!(e, SinkEvent::Frame(_)))
                    {
                        s.queue.remove(pos);
                        s.frames -= 1;
                        s.dropped += 1;
                        if s.dropped % 100 == 1 {
                            tracing::debug!(
                                dropped = s.dropped,
                                "playback client behind; frames dropped"
                            );
                        }
                    }
                }
                s.frames += 1;
            }
            s.queue.push_back(ev.clone());
            s.waker.wake();
        }
    }

    /// The guest starts playing (sends `START`). Writing also starts implicitly.
    pub fn start(&self) {
        let mut st = lock(&self.shared.state);
        if !st.playing {
            st.playing = true;
            st.partial.clear();
            Self::broadcast(&mut st, &SinkEvent::Start);
        }
    }

    /// Interleaved S16 samples to play, in order. Complete 480-sample frames are queued
    /// for every client; a remainder waits for the next write.
    pub fn write(&self, samples: &[i16]) {
        let frame_len = self.frame_len();
        let mut st = lock(&self.shared.state);
        if !st.playing {
            st.playing = true;
            st.partial.clear();
            Self::broadcast(&mut st, &SinkEvent::Start);
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (frame_len - st.partial.len()).min(rest.len());
            st.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if st.partial.len() == frame_len {
                let frame: Arc<[i16]> = std::mem::take(&mut st.partial).into();
                st.frames_written += 1;
                if !st.subscribers.is_empty() {
                    Self::broadcast(&mut st, &SinkEvent::Frame(frame));
                }
            }
        }
    }

    /// The guest stopped playing (sends `STOP`). A partial frame is padded with silence
    /// and sent first.
    pub fn stop(&self) {
        let frame_len = self.frame_len();
        let mut st = lock(&self.shared.state);
        if !st.playing {
            return;
        }
        if !st.partial.is_empty() {
            let mut frame = std::mem::take(&mut st.partial);
            frame.resize(frame_len, 0);
            st.frames_written += 1;
            Self::broadcast(&mut st, &SinkEvent::Frame(frame.into()));
        }
        st.playing = false;
        Self::broadcast(&mut st, &SinkEvent::Stop);
    }

    /// The guest's volume, per channel (0..=65535); sent to clients with
    /// `PLAYBACK_CAP_VOLUME`.
    pub fn set_volume(&self, volume: &[u16]) {
        let mut st = lock(&self.shared.state);
        st.volume = Some(volume.to_vec());
        Self::broadcast(&mut st, &SinkEvent::Volume(volume.to_vec()));
    }

    /// The guest muted or unmuted; sent to clients with `PLAYBACK_CAP_VOLUME`.
    pub fn set_mute(&self, mute: bool) {
        let mut st = lock(&self.shared.state);
        st.mute = Some(mute);
        Self::broadcast(&mut st, &SinkEvent::Mute(mute));
    }

    /// The minimum buffering clients should apply to stay in sync with video (ms); sent to
    /// clients with `PLAYBACK_CAP_LATENCY`.
    pub fn set_latency(&self, latency_ms: u32) {
        let mut st = lock(&self.shared.state);
        st.latency_ms = Some(latency_ms);
        Self::broadcast(&mut st, &SinkEvent::Latency(latency_ms));
    }

    /// True between start (or the first write) and stop.
    pub fn is_playing(&self) -> bool {
        lock(&self.shared.state).playing
    }

    /// Number of connected playback channels.
    pub fn client_count(&self) -> usize {
        lock(&self.shared.state).subscribers.len()
    }

    /// Complete frames written so far.
    pub fn frames_written(&self) -> u64 {
        lock(&self.shared.state).frames_written
    }

    /// Registers a client; its queue starts with the current state.
    fn subscribe(&self, waker: Waker) -> Subscription {
        let mut st = lock(&self.shared.state);
        let id = st.next_id;
        st.next_id += 1;
        let mut queue = VecDeque::new();
        if let Some(v) = &st.volume {
            queue.push_back(SinkEvent::Volume(v.clone()));
        }
        if let Some(m) = st.mute {
            queue.push_back(SinkEvent::Mute(m));
        }
        if let Some(l) = st.latency_ms {
            queue.push_back(SinkEvent::Latency(l));
        }
        if st.playing {
            queue.push_back(SinkEvent::Start);
        }
        st.subscribers.push(Subscriber {
            id,
            queue,
            frames: 0,
            dropped: 0,
            waker,
        });
        Subscription {
            sink: self.clone(),
            id,
        }
    }
}

/// One client's place in a [`PlaybackSink`]; unregisters on drop.
#[derive(Debug)]
struct Subscription {
    sink: PlaybackSink,
    id: u64,
}

impl Subscription {
    fn pop(&self) -> Option<SinkEvent> {
        let mut st = lock(&self.sink.shared.state);
        let s = st.subscribers.iter_mut().find(|s| s.id == self.id)?;
        let ev = s.queue.pop_front()?;
        if matches!(ev, SinkEvent::Frame(_)) {
            s.frames -= 1;
        }
        Some(ev)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.sink.shared.state)
            .subscribers
            .retain(|s| s.id != self.id);
    }
}

/// Serves a playback channel for one [`PlaybackDevice`].
pub struct PlaybackChannelFactory {
    id: u8,
    sink: PlaybackSink,
}

impl std::fmt::Debug for PlaybackChannelFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackChannelFactory")
            .field("id", &self.id)
            .field("format", &self.sink.format())
            .finish_non_exhaustive()
    }
}

impl PlaybackChannelFactory {
    /// A playback channel `id` for `device`: creates its [`PlaybackSink`] and attaches it
    /// to the device. Opus is used only when the server's playback compression is on
    /// ([`crate::config::ServerConfig::playback_compression`]).
    pub fn new(id: u8, device: &Arc<dyn PlaybackDevice>) -> Self {
        let sink = PlaybackSink::new(device.format());
        device.attach(sink.clone());
        Self { id, sink }
    }

    /// The sink the device writes to.
    pub fn sink(&self) -> &PlaybackSink {
        &self.sink
    }
}

impl ChannelFactory for PlaybackChannelFactory {
    fn channel_type(&self) -> ChannelType {
        ChannelType::PLAYBACK
    }
    fn channel_id(&self) -> u8 {
        self.id
    }
    fn caps(&self) -> Caps {
        let f = self.sink.format();
        let mut c = Caps::from_caps(&[caps::playback::VOLUME]);
        if opus_supported(f.frequency, f.channels) {
            c.set(caps::playback::OPUS);
        }
        c
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        let server = ctx.server.clone();
        let f = self.sink.format();
        let peer = &ctx.info.peer_channel_caps;
        let mode = if server.config().playback_compression
            && peer.has(caps::playback::OPUS)
            && opus_supported(f.frequency, f.channels)
        {
            AudioMode::Opus
        } else {
            AudioMode::Raw
        };
        let mm = ctx.session.shared(MmTimeControl::new);
        mm.add_playback_waker(ctx.waker.clone());
        Ok(Box::new(PlaybackChannel {
            server,
            mm,
            playing: false,
            latency_seen: 0,
            sub: self.sink.subscribe(ctx.waker.clone()),
            format: f,
            mode,
            volume_cap: peer.has(caps::playback::VOLUME),
            latency_cap: peer.has(caps::playback::LATENCY),
            encoder: None,
            origin: None,
            samples_sent: 0,
            frames_sent: 0,
            buf: Vec::new(),
        }))
    }
}

/// The playback channel of one client.
pub struct PlaybackChannel {
    server: Arc<ServerContext>,
    /// The client's multimedia clock control (audio playing hands the clock to the client's
    /// audio; stream latency needs come back as `LATENCY`).
    mm: Arc<MmTimeControl>,
    /// `START` sent, no `STOP` yet.
    playing: bool,
    /// Generation of the last stream latency sent.
    latency_seen: u64,
    sub: Subscription,
    format: AudioFormat,
    mode: AudioMode,
    volume_cap: bool,
    latency_cap: bool,
    encoder: Option<AudioEncoder>,
    /// Multimedia time of the first frame after START.
    origin: Option<u32>,
    samples_sent: u64,
    frames_sent: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PlaybackChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackChannel")
            .field("mode", &self.mode)
            .field("frames_sent", &self.frames_sent)
            .finish_non_exhaustive()
    }
}

impl PlaybackChannel {
    /// The coding negotiated with this client.
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// DATA messages sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    fn host_err(&self, what: String) -> ChannelError {
        ChannelError::Host {
            channel: ChannelType::PLAYBACK,
            what,
        }
    }

    /// The stamp of the next frame, resynchronising the origin when it lags the clock.
    fn frame_time(&mut self, mm_now: u32) -> u32 {
        let rate = u64::from(self.format.frequency.max(1));
        let offset = |samples: u64| (samples * 1000 / rate) as u32;
        let origin = *self.origin.get_or_insert(mm_now);
        let t = origin.wrapping_add(offset(self.samples_sent));
        // Signed distance on the wrapping u32 clock.
        let lag = mm_now.wrapping_sub(t) as i32;
        if lag > RESYNC_MS as i32 {
            tracing::debug!(lag, "playback stamps behind the clock; resynchronising");
            self.origin = Some(mm_now);
            self.samples_sent = 0;
            return mm_now;
        }
        t
    }

    fn send_event(
        &mut self,
        ev: SinkEvent,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        let mm = self.server.mm_time(now);
        match ev {
            SinkEvent::Start => {
                self.encoder = Some(
                    AudioEncoder::new(self.mode, self.format.frequency, self.format.channels)
                        .map_err(|e| self.host_err(format!("encoder: {e}")))?,
                );
                self.origin = Some(mm);
                self.samples_sent = 0;
                if !self.playing {
                    self.playing = true;
                    self.mm.playback_started();
                }
                out.send(&ServerMessage::Start {
                    channels: self.format.channels.into(),
                    format: WireFormat::S16,
                    frequency: self.format.frequency,
                    time: mm,
                })?;
            }
            SinkEvent::Frame(pcm) => {
                let time = self.frame_time(mm);
                let Some(enc) = &mut self.encoder else {
                    // A frame without START cannot happen (the sink starts first); drop.
                    return Ok(());
                };
                self.buf.clear();
                enc.encode_frame(&pcm, &mut self.buf)
                    .map_err(|e| ChannelError::Host {
                        channel: ChannelType::PLAYBACK,
                        what: format!("encoding a frame: {e}"),
                    })?;
                out.send(&ServerMessage::Data {
                    time,
                    data: &self.buf,
                })?;
                self.samples_sent += FRAME_SAMPLES as u64;
                self.frames_sent += 1;
            }
            SinkEvent::Stop => {
                self.encoder = None;
                self.origin = None;
                out.send(&ServerMessage::Stop)?;
                if std::mem::take(&mut self.playing) {
                    self.mm.playback_stopped();
                }
            }
            SinkEvent::Volume(v) => {
                if self.volume_cap {
                    out.send(&ServerMessage::Volume(AudioVolume { volumes: v }))?;
                }
            }
            SinkEvent::Mute(m) => {
                if self.volume_cap {
                    out.send(&ServerMessage::Mute { mute: u8::from(m) })?;
                }
            }
            SinkEvent::Latency(l) => {
                if self.latency_cap {
                    out.send(&ServerMessage::Latency { latency_ms: l })?;
                }
            }
        }
        Ok(())
    }
}

impl ChannelHandler for PlaybackChannel {
    fn on_connect(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        tracing::debug!(mode = ?self.mode, format = ?self.format, "playback channel connected");
        out.send(&ServerMessage::Mode {
            time: self.server.mm_time(now),
            mode: AudioDataMode(self.mode.to_wire()),
            data: &[],
        })
    }

    fn handle_message(
        &mut self,
        msg: &ClientMessage<'_>,
        _now: Instant,
        _out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        Err(ChannelError::Protocol {
            channel: ChannelType::PLAYBACK,
            what: format!("unexpected client message {}", msg.name()),
        })
    }

    fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        if let Some((generation, latency)) = self.mm.playback_latency_since(self.latency_seen) {
            // A video stream needs more buffering while audio plays (spice-server's
            // snd_set_playback_latency).
            self.latency_seen = generation;
            if self.playing && self.latency_cap {
                out.send(&ServerMessage::Latency {
                    latency_ms: latency,
                })?;
            }
        }
        while out.can_send() {
            let Some(ev) = self.sub.pop() else {
                break;
            };
            self.send_event(ev, now, out)?;
        }
        Ok(())
    }

    fn on_disconnect(&mut self) {
        if std::mem::take(&mut self.playing) {
            self.mm.playback_stopped();
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelCore;
    use crate::config::ServerConfig;
    use crate::server::ServerBuilder;
    use crate::session::Session;
    use spice_proto::framer::{Frame, Framer};
    use spice_proto::header::HeaderKind;
    use spice_proto::messages::ServerMessage as AnyServer;
    use std::time::Duration;

    /// (name, time of DATA/START/MODE) of every message in `out`.
    fn decode(out: &[u8]) -> Vec<(&'static str, Option<u32>)> {
        let mut f = Framer::new(HeaderKind::Mini, u32::MAX);
        let mut pos = 0;
        let mut v = Vec::new();
        while let Frame::Complete(i) = f.next_frame(&out[pos..]).unwrap() {
            let body = &out[pos + i.body.start..pos + i.body.end];
            let m = AnyServer::decode(ChannelType::PLAYBACK, i.msg_type, body).unwrap();
            let t = match &m {
                AnyServer::Playback(
                    ServerMessage::Data { time, .. }
                    | ServerMessage::Start { time, .. }
                    | ServerMessage::Mode { time, .. },
                ) => Some(*time),
                _ => None,
            };
            v.push((m.name(), t));
            pos += i.total_len;
        }
        v
    }

    fn open(
        peer: &[u32],
        compression: bool,
    ) -> (
        crate::server::Server,
        PlaybackSink,
        ChannelCore,
        Box<dyn ChannelHandler>,
    ) {
        let server = ServerBuilder::new(
            ServerConfig::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .playback_compression(compression)
                .build()
                .unwrap(),
        )
        .start()
        .unwrap();
        let dev: Arc<dyn PlaybackDevice> = Arc::new(crate::testing::TestPlayback::default());
        let factory = PlaybackChannelFactory::new(0, &dev);
        let sink = factory.sink().clone();
        let (core, h) = crate::testing::open_channel(
            &server,
            &factory,
            &Arc::new(Session::new(1)),
            Caps::from_caps(peer),
            Instant::now(),
        );
        (server, sink, core, h)
    }

    #[test]
    fn caps_decide_mode_and_control_messages() {
        let (server, sink, mut core, mut h) = open(&[caps::playback::OPUS], true);
        let first = decode(&core.take_output());
        assert_eq!(first[0].0, "mode");
        let ch = h
            .as_any()
            .unwrap()
            .downcast_ref::<PlaybackChannel>()
            .unwrap();
        assert_eq!(ch.mode(), AudioMode::Opus);
        // No VOLUME / MUTE / LATENCY without the caps.
        sink.set_volume(&[1, 2]);
        sink.set_mute(true);
        sink.set_latency(100);
        core.poll(&mut *h, Instant::now()).unwrap();
        assert!(decode(&core.take_output()).is_empty());
        server.shutdown();

        let all = [
            caps::playback::OPUS,
            caps::playback::VOLUME,
            caps::playback::LATENCY,
        ];
        let (server, sink, mut core, mut h) = open(&all, false);
        core.take_output();
        let ch = h
            .as_any()
            .unwrap()
            .downcast_ref::<PlaybackChannel>()
            .unwrap();
        assert_eq!(ch.mode(), AudioMode::Raw, "compression off");
        sink.set_volume(&[1, 2]);
        sink.set_mute(true);
        sink.set_latency(100);
        core.poll(&mut *h, Instant::now()).unwrap();
        let names: Vec<_> = decode(&core.take_output()).iter().map(|m| m.0).collect();
        assert_eq!(names, ["volume", "mute", "latency"]);
        server.shutdown();
    }

    #[test]
    fn slow_client_drops_oldest_frames_and_stamps_resync() {
        let (server, sink, mut core, mut h) = open(&[], true);
        core.take_output();
        let frame = vec![7i16; FRAME_SAMPLES * 2];
        for _ in 0..MAX_QUEUED_FRAMES + 50 {
            sink.write(&frame);
        }
        assert_eq!(sink.frames_written(), (MAX_QUEUED_FRAMES + 50) as u64);
        let t0 = Instant::now();
        core.poll(&mut *h, t0).unwrap();
        let msgs = decode(&core.take_output());
        assert_eq!(msgs[0].0, "start");
        assert_eq!(msgs.len(), 1 + MAX_QUEUED_FRAMES);
        let times: Vec<u32> = msgs[1..].iter().map(|m| m.1.unwrap()).collect();
        assert_eq!(times[0], msgs[0].1.unwrap());
        assert!(times.windows(2).all(|w| w[1] - w[0] == 10));
        // An underrun of 2 s without STOP: the next stamp follows the clock again.
        sink.write(&frame);
        let later = t0 + Duration::from_secs(2);
        core.poll(&mut *h, later).unwrap();
        let msgs = decode(&core.take_output());
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].1, Some(server.context().mm_time(later)));
        // A partial frame is padded on stop.
        sink.write(&frame[..100]);
        sink.stop();
        core.poll(&mut *h, later).unwrap();
        let names: Vec<_> = decode(&core.take_output()).iter().map(|m| m.0).collect();
        assert_eq!(names, ["data", "stop"]);
        assert!(!sink.is_playing());
        drop(h);
        assert_eq!(sink.client_count(), 0);
        server.shutdown();
    }
}
