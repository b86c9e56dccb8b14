//! The record channel: audio captured by the client, decoded (raw or Opus) and handed to
//! the host's [`RecordDevice`] (protocol.md §7.4).
//!
//! The host implements [`RecordDevice`]; at server start it gets a [`RecordControl`]
//! through [`RecordDevice::attach`] and calls [`RecordControl::start`] when the guest
//! opens its microphone (clients get `RECORD_START` and begin sending), and
//! [`RecordControl::stop`], [`RecordControl::set_volume`], [`RecordControl::set_mute`].
//! Clients answer with `MODE` (raw, or Opus when the server advertised `RECORD_CAP_OPUS`),
//! `START_MARK` and one `DATA` per frame; the decoded interleaved S16 samples go to
//! [`RecordDevice::samples`]. Data outside start/stop is dropped, as spice-server does.
//! Undecodable data (a wrong-size raw frame, a refused Opus packet, an unknown mode) is a
//! typed error that closes this channel only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use spice_codecs::audio::{AudioDecoder, AudioMode, opus_supported};
use spice_proto::caps::{self, Caps};
use spice_proto::link::LinkErr;
use spice_proto::messages::ClientMessage;
use spice_proto::playback::{AudioFormat as WireFormat, AudioVolume};
use spice_proto::record::{ClientMessage as RecordClient, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType};

use crate::channel::{ChannelError, ChannelFactory, ChannelHandler, OpenContext, Outbox, Waker};
use crate::host::{AudioFormat, RecordDevice};
use crate::session::lock;

#[derive(Debug, Clone)]
enum ControlEvent {
    Start,
    Stop,
    Volume(Vec<u16>),
    Mute(bool),
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    queue: VecDeque<ControlEvent>,
    waker: Waker,
}

#[derive(Debug, Default)]
struct ControlState {
    active: bool,
    volume: Option<Vec<u16>>,
    mute: Option<bool>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
}

/// The host's handle on a record device's clients (one per device, shared by every
/// client's record channel). Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct RecordControl {
    state: Arc<Mutex<ControlState>>,
}

impl Default for RecordControl {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordControl {
    /// A control with capture stopped.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(ControlState::default())),
        }
    }

    fn broadcast(st: &mut ControlState, ev: &ControlEvent) {
        for s in &mut st.subscribers {
            // Bounded: only the latest few control events matter; a client that does not
            // read its channel cannot grow this without bound.
            if s.queue.len() >= 64 {
                s.queue.pop_front();
            }
            s.queue.push_back(ev.clone());
            s.waker.wake();
        }
    }

    /// The guest starts capturing: clients get `RECORD_START` and send audio.
    pub fn start(&self) {
        let mut st = lock(&self.state);
        if !st.active {
            st.active = true;
            Self::broadcast(&mut st, &ControlEvent::Start);
        }
    }

    /// The guest stops capturing: clients get `RECORD_STOP`.
    pub fn stop(&self) {
        let mut st = lock(&self.state);
        if st.active {
            st.active = false;
            Self::broadcast(&mut st, &ControlEvent::Stop);
        }
    }

    /// The capture volume per channel (clients with `RECORD_CAP_VOLUME`).
    pub fn set_volume(&self, volume: &[u16]) {
        let mut st = lock(&self.state);
        st.volume = Some(volume.to_vec());
        Self::broadcast(&mut st, &ControlEvent::Volume(volume.to_vec()));
    }

    /// Capture muted or not (clients with `RECORD_CAP_VOLUME`).
    pub fn set_mute(&self, mute: bool) {
        let mut st = lock(&self.state);
        st.mute = Some(mute);
        Self::broadcast(&mut st, &ControlEvent::Mute(mute));
    }

    /// True between start and stop.
    pub fn is_active(&self) -> bool {
        lock(&self.state).active
    }

    /// Number of connected record channels.
    pub fn client_count(&self) -> usize {
        lock(&self.state).subscribers.len()
    }

    fn subscribe(&self, waker: Waker) -> ControlSubscription {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        let mut queue = VecDeque::new();
        if let Some(v) = &st.volume {
            queue.push_back(ControlEvent::Volume(v.clone()));
        }
        if let Some(m) = st.mute {
            queue.push_back(ControlEvent::Mute(m));
        }
        if st.active {
            queue.push_back(ControlEvent::Start);
        }
        st.subscribers.push(Subscriber { id, queue, waker });
        ControlSubscription {
            control: self.clone(),
            id,
        }
    }
}

#[derive(Debug)]
struct ControlSubscription {
    control: RecordControl,
    id: u64,
}

impl ControlSubscription {
    fn pop(&self) -> Option<ControlEvent> {
        let mut st = lock(&self.control.state);
        st.subscribers
            .iter_mut()
            .find(|s| s.id == self.id)?
            .queue
            .pop_front()
    }
}

impl Drop for ControlSubscription {
    fn drop(&mut self) {
        lock(&self.control.state)
            .subscribers
            .retain(|s| s.id != self.id);
    }
}

/// Serves a record channel for one [`RecordDevice`].
pub struct RecordChannelFactory {
    id: u8,
    device: Arc<dyn RecordDevice>,
    control: RecordControl,
}

impl std::fmt::Debug for RecordChannelFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordChannelFactory")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RecordChannelFactory {
    /// A record channel `id` for `device`: creates its [`RecordControl`] and attaches it.
    pub fn new(id: u8, device: Arc<dyn RecordDevice>) -> Self {
        let control = RecordControl::new();
        device.attach(control.clone());
        Self {
            id,
            device,
            control,
        }
    }

    /// The control handle given to the device.
    pub fn control(&self) -> &RecordControl {
        &self.control
    }
}

impl ChannelFactory for RecordChannelFactory {
    fn channel_type(&self) -> ChannelType {
        ChannelType::RECORD
    }
    fn channel_id(&self) -> u8 {
        self.id
    }
    fn caps(&self) -> Caps {
        let f = self.device.format();
        let mut c = Caps::from_caps(&[caps::record::VOLUME]);
        if opus_supported(f.frequency, f.channels) {
            c.set(caps::record::OPUS);
        }
        c
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        Ok(Box::new(RecordChannel {
            device: self.device.clone(),
            format: self.device.format(),
            sub: self.control.subscribe(ctx.waker.clone()),
            volume_cap: ctx.info.peer_channel_caps.has(caps::record::VOLUME),
            active: false,
            mode: AudioMode::Raw,
            decoder: None,
            pcm: Vec::new(),
            frames: 0,
            start_mark: None,
        }))
    }
}

/// The record channel of one client.
pub struct RecordChannel {
    device: Arc<dyn RecordDevice>,
    format: AudioFormat,
    sub: ControlSubscription,
    volume_cap: bool,
    active: bool,
    mode: AudioMode,
    decoder: Option<AudioDecoder>,
    pcm: Vec<i16>,
    frames: u64,
    start_mark: Option<u32>,
}

impl std::fmt::Debug for RecordChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordChannel")
            .field("mode", &self.mode)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl RecordChannel {
    /// The mode the client announced (raw until its `MODE`).
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// Data messages decoded and delivered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The time of the client's last `START_MARK`.
    pub fn start_mark(&self) -> Option<u32> {
        self.start_mark
    }

    fn protocol(what: String) -> ChannelError {
        ChannelError::Protocol {
            channel: ChannelType::RECORD,
            what,
        }
    }
}

impl ChannelHandler for RecordChannel {
    fn on_connect(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.poll(now, out)
    }

    fn handle_message(
        &mut self,
        msg: &ClientMessage<'_>,
        _now: Instant,
        _out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        let ClientMessage::Record(m) = msg else {
            return Err(Self::protocol(format!("unexpected message {}", msg.name())));
        };
        match m {
            RecordClient::Mode { mode, .. } => {
                let mode = AudioMode::from_wire(mode.0)
                    .map_err(|e| Self::protocol(format!("record mode: {e}")))?;
                if mode == AudioMode::Opus
                    && !opus_supported(self.format.frequency, self.format.channels)
                {
                    return Err(Self::protocol(
                        "Opus record mode at a rate Opus cannot code".into(),
                    ));
                }
                self.mode = mode;
                self.decoder = None;
            }
            RecordClient::StartMark { time } => {
                self.start_mark = Some(*time);
            }
            RecordClient::Data { data, .. } => {
                if !self.active {
                    tracing::trace!("record data while stopped dropped");
                    return Ok(());
                }
                if self.decoder.is_none() {
                    self.decoder = Some(
                        AudioDecoder::new(self.mode, self.format.frequency, self.format.channels)
                            .map_err(|e| Self::protocol(format!("record decoder: {e}")))?,
                    );
                }
                let Some(dec) = &mut self.decoder else {
                    return Ok(());
                };
                self.pcm.clear();
                dec.decode(data, &mut self.pcm)
                    .map_err(|e| Self::protocol(format!("record data: {e}")))?;
                self.frames += 1;
                self.device.samples(&self.pcm);
            }
            other => {
                return Err(Self::protocol(format!(
                    "unexpected message {}",
                    other.name()
                )));
            }
        }
        Ok(())
    }

    fn poll(&mut self, _now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        while out.can_send() {
            let Some(ev) = self.sub.pop() else {
                break;
            };
            match ev {
                ControlEvent::Start => {
                    self.active = true;
                    // A new capture: the client announces its mode again.
                    self.decoder = None;
                    out.send(&ServerMessage::Start {
                        channels: self.format.channels.into(),
                        format: WireFormat::S16,
                        frequency: self.format.frequency,
                    })?;
                }
                ControlEvent::Stop => {
                    self.active = false;
                    out.send(&ServerMessage::Stop)?;
                }
                ControlEvent::Volume(v) => {
                    if self.volume_cap {
                        out.send(&ServerMessage::Volume(AudioVolume { volumes: v }))?;
                    }
                }
                ControlEvent::Mute(m) => {
                    if self.volume_cap {
                        out.send(&ServerMessage::Mute { mute: u8::from(m) })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelCore;
    use crate::session::Session;
    use crate::testing::TestRecord;
    use spice_codecs::audio::{AudioEncoder, FRAME_SAMPLES};
    use spice_proto::framer::{Frame, Framer};
    use spice_proto::header::{HeaderKind, write_channel_message};
    use spice_proto::messages::ServerMessage as AnyServer;

    fn setup(
        volume_cap: bool,
    ) -> (
        Arc<TestRecord>,
        RecordControl,
        ChannelCore,
        Box<dyn ChannelHandler>,
        Instant,
    ) {
        let server = crate::server::ServerBuilder::new(
            crate::config::ServerConfig::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .build()
                .unwrap(),
        )
        .start()
        .unwrap();
        let dev = Arc::new(TestRecord::default());
        let factory = RecordChannelFactory::new(0, dev.clone());
        assert!(factory.caps().has(caps::record::OPUS));
        let control = factory.control().clone();
        let mut peer = Caps::new();
        if volume_cap {
            peer.set(caps::record::VOLUME);
        }
        let now = Instant::now();
        let (core, handler) =
            crate::testing::open_channel(&server, &factory, &Arc::new(Session::new(1)), peer, now);
        server.shutdown();
        (dev, control, core, handler, now)
    }

    fn names(out: &[u8]) -> Vec<&'static str> {
        let mut f = Framer::new(HeaderKind::Mini, u32::MAX);
        let mut pos = 0;
        let mut v = Vec::new();
        while let Frame::Complete(i) = f.next_frame(&out[pos..]).unwrap() {
            let body = &out[pos + i.body.start..pos + i.body.end];
            v.push(
                AnyServer::decode(ChannelType::RECORD, i.msg_type, body)
                    .unwrap()
                    .name(),
            );
            pos += i.total_len;
        }
        v
    }

    fn msg(m: RecordClient<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        write_channel_message(&mut v, HeaderKind::Mini, 0, &m).unwrap();
        v
    }

    #[test]
    fn raw_and_opus_data_reach_the_device_only_while_started() {
        let (dev, control, mut core, mut h, now) = setup(true);
        control.set_mute(true);
        // Data before START is dropped.
        core.handle_input(
            &msg(RecordClient::Data {
                time: 0,
                data: &[0; 1920],
            }),
            &mut *h,
            now,
        )
        .unwrap();
        assert_eq!(dev.sample_count(), 0);
        control.start();
        core.poll(&mut *h, now).unwrap();
        assert_eq!(names(&core.take_output()), ["mute", "start"]);
        let pcm: Vec<i16> = (0..960).map(|i| (i * 31) as i16).collect();
        let raw: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut input = msg(RecordClient::Mode {
            time: 5,
            mode: spice_proto::playback::AudioDataMode::RAW,
            data: &[],
        });
        input.extend(msg(RecordClient::StartMark { time: 5 }));
        input.extend(msg(RecordClient::Data {
            time: 5,
            data: &raw,
        }));
        core.handle_input(&input, &mut *h, now).unwrap();
        assert_eq!(dev.samples(), pcm);
        let ch = h.as_any().unwrap().downcast_ref::<RecordChannel>().unwrap();
        assert_eq!((ch.frames(), ch.start_mark()), (1, Some(5)));
        // Opus.
        core.handle_input(
            &msg(RecordClient::Mode {
                time: 6,
                mode: spice_proto::playback::AudioDataMode::OPUS,
                data: &[],
            }),
            &mut *h,
            now,
        )
        .unwrap();
        let mut enc = AudioEncoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        let mut pkt = Vec::new();
        enc.encode_frame(&pcm, &mut pkt).unwrap();
        core.handle_input(
            &msg(RecordClient::Data {
                time: 6,
                data: &pkt,
            }),
            &mut *h,
            now,
        )
        .unwrap();
        assert_eq!(dev.sample_count(), 2 * FRAME_SAMPLES * 2);
        control.stop();
        core.poll(&mut *h, now).unwrap();
        assert_eq!(names(&core.take_output()), ["stop"]);
    }

    #[test]
    fn malformed_record_data_is_a_typed_error() {
        let (_, control, mut core, mut h, now) = setup(false);
        control.set_volume(&[1, 2]);
        control.start();
        core.poll(&mut *h, now).unwrap();
        // No VOLUME without the cap.
        assert_eq!(names(&core.take_output()), ["start"]);
        let e = core
            .handle_input(
                &msg(RecordClient::Data {
                    time: 0,
                    data: &[1, 2, 3],
                }),
                &mut *h,
                now,
            )
            .unwrap_err();
        assert!(matches!(e, ChannelError::Protocol { .. }), "{e}");
        assert!(e.to_string().contains("multiple"), "{e}");

        let (_, control, mut core, mut h, now) = setup(false);
        control.start();
        let e = core
            .handle_input(
                &msg(RecordClient::Mode {
                    time: 0,
                    mode: spice_proto::playback::AudioDataMode::CELT_0_5_1,
                    data: &[],
                }),
                &mut *h,
                now,
            )
            .unwrap_err();
        assert!(e.to_string().contains("mode 2"), "{e}");

        let (_, control, mut core, mut h, now) = setup(false);
        control.start();
        core.poll(&mut *h, now).unwrap();
        let mut input = msg(RecordClient::Mode {
            time: 0,
            mode: spice_proto::playback::AudioDataMode::OPUS,
            data: &[],
        });
        input.extend(msg(RecordClient::Data { time: 0, data: &[] }));
        let e = core.handle_input(&input, &mut *h, now).unwrap_err();
        assert!(e.to_string().contains("empty Opus packet"), "{e}");
    }
}
