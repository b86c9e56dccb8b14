//! Lip-sync: the multimedia time rule spice-server follows, checked deterministically in
//! process. The main channel tells the client the server's clock minus `MM_TIME_DELTA`
//! (400 ms); a video stream frame and an audio packet produced at the same instant carry the
//! same raw stamp; and our client core, fed exactly the bytes the server channels produced,
//! schedules both for the same local instant, 400 ms after they were produced (the video
//! frame is drawn then, not on arrival).

use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_client_core::testing::{link_reply_bytes, server_message};
use spice_client_core::{ConnId, Event, Session as ClientSession, SessionConfig};
use spice_codecs::audio::FRAME_SAMPLES;
use spice_codecs::stream_detect::StreamingVideo;
use spice_proto::caps::Caps;
use spice_proto::display::ServerMessage;
use spice_proto::header::{HeaderKind, write_message};
use spice_proto::main::{self as pmain, ChannelId};
use spice_proto::messages::ServerMessage as AnyServer;
use spice_proto::{ChannelMessage, ChannelType};
use spice_server::channel::{ChannelCore, ChannelFactory, ChannelHandler};
use spice_server::config::ServerConfig;
use spice_server::demo::{DemoConfig, DemoDesktop};
use spice_server::display::glz::GlzRegistry;
use spice_server::display::{DisplayConfig, DisplayError, DisplaySink, DisplayWorker};
use spice_server::host::PlaybackDevice;
use spice_server::main_channel::{MM_TIME_DELTA, MainChannelFactory, MmTimeControl};
use spice_server::playback::PlaybackChannelFactory;
use spice_server::server::{Server, ServerBuilder};
use spice_server::session::Session;
use spice_server::testing::{TestPlayback, open_channel};

/// Display messages framed with the mini header, as the display channel would send them.
#[derive(Default)]
struct BytesSink {
    out: Vec<u8>,
    stream_stamps: Vec<u32>,
}

impl DisplaySink for BytesSink {
    fn can_send(&self) -> bool {
        true
    }
    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        if let ServerMessage::StreamData(d) = msg {
            self.stream_stamps.push(d.header.multi_media_time);
        }
        if let ServerMessage::StreamDataSized(d) = msg {
            self.stream_stamps.push(d.header.multi_media_time);
        }
        write_message(&mut self.out, HeaderKind::Mini, 0, msg.msg_type(), |w| {
            msg.encode_body(w)
        })
        .map_err(|e| DisplayError::Send(e.to_string()))
    }
}

fn start_server(epoch: Instant) -> Server {
    ServerBuilder::new(
        ServerConfig::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .playback_compression(false)
            .build()
            .unwrap(),
    )
    .mm_epoch(epoch)
    .start()
    .unwrap()
}

/// Opens `factory`'s channel for session 7 at `now`; returns its core (output holds what
/// the channel sent on connect) and handler.
fn open(
    server: &Server,
    factory: &dyn ChannelFactory,
    now: Instant,
) -> (ChannelCore, Box<dyn ChannelHandler>) {
    open_channel(
        server,
        factory,
        &Arc::new(Session::new(7)),
        Caps::new(),
        now,
    )
}

fn main_init_time(bytes: &[u8]) -> u32 {
    let mut f = spice_proto::framer::Framer::new(HeaderKind::Mini, u32::MAX);
    let mut pos = 0;
    while let spice_proto::framer::Frame::Complete(i) = f.next_frame(&bytes[pos..]).unwrap() {
        let body = &bytes[pos + i.body.start..pos + i.body.end];
        if let AnyServer::Main(pmain::ServerMessage::Init(init)) =
            AnyServer::decode(ChannelType::MAIN, i.msg_type, body).unwrap()
        {
            return init.multi_media_time;
        }
        pos += i.total_len;
    }
    panic!("no MAIN_INIT");
}

#[test]
fn audio_and_video_share_the_clock_and_the_client_presents_them_together() {
    let epoch = Instant::now();
    let server = start_server(epoch);
    let at = |ms: u64| epoch + Duration::from_millis(ms);

    // --- MAIN_INIT: the server's clock minus MM_TIME_DELTA.
    let t_init = at(3_000);
    let main = MainChannelFactory::new(Arc::downgrade(server.context()));
    let (mut main_core, _main_h) = open(&server, &main, t_init);
    let main_bytes = main_core.take_output();
    assert_eq!(server.context().mm_time(t_init), 3_000);
    assert_eq!(main_init_time(&main_bytes), 3_000 - MM_TIME_DELTA);

    // --- Video: the demo desktop's video region becomes a stream; frames go out stamped
    // with the clock at the instant they came in.
    let demo = DemoDesktop::new(DemoConfig::default()).unwrap();
    let mut worker = DisplayWorker::new(
        demo,
        DisplayConfig {
            streaming: StreamingVideo::All,
            ..DisplayConfig::default()
        },
    );
    for r in worker.device_mut().take_io_requests() {
        worker.handle_io(r, 3_000);
    }
    let client =
        spice_server::testing::add_client(&mut worker, 7, Arc::new(GlzRegistry::new()), 3_000);
    let mut display = BytesSink::default();
    let mut frame_ms = 3_000;
    for f in 0..40u64 {
        frame_ms = 3_000 + f * 40;
        worker.device_mut().step(f).unwrap();
        for _ in 0..64 {
            worker.process(frame_ms);
            if worker.device_mut().pump().unwrap().pushed == 0 {
                break;
            }
        }
        worker.process(frame_ms);
        let before = display.stream_stamps.len();
        worker.client_poll(client, &mut display, frame_ms).unwrap();
        if display.stream_stamps.len() > before {
            break;
        }
    }
    let video_stamp = *display.stream_stamps.last().expect("a stream frame");
    assert_eq!(video_stamp as u64, frame_ms, "raw clock, no offset");

    // --- Audio: a packet produced at the same instant carries the same stamp.
    let dev: Arc<dyn PlaybackDevice> = Arc::new(TestPlayback::default());
    let playback = PlaybackChannelFactory::new(0, &dev);
    let sink = playback.sink().clone();
    let (mut pb_core, mut pb_h) = open(&server, &playback, t_init);
    let t_frame = at(frame_ms);
    sink.write(&vec![100i16; FRAME_SAMPLES * 2]);
    pb_core.poll(&mut *pb_h, t_frame).unwrap();
    let pb_bytes = pb_core.take_output();

    // --- Our client core, fed those bytes: one presentation instant for both.
    let t_client = Instant::now();
    let mut s = ClientSession::new(SessionConfig::default()).unwrap();
    let main_conn = ConnId(0);
    s.receive(main_conn, &link_reply_bytes(true), t_client)
        .unwrap();
    s.receive(main_conn, &main_bytes, t_client).unwrap();
    let list = AnyServer::Main(pmain::ServerMessage::ChannelsList(vec![
        ChannelId {
            channel_type: ChannelType::DISPLAY,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::PLAYBACK,
            id: 0,
        },
    ]));
    s.receive(
        main_conn,
        &server_message(HeaderKind::Mini, 0, &list),
        t_client,
    )
    .unwrap();
    let mut conns = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let Event::OpenChannel {
            conn, channel_type, ..
        } = ev
        {
            conns.push((channel_type, conn));
        }
    }
    let conn = |t| conns.iter().find(|(ty, _)| *ty == t).unwrap().1;
    let (d, p) = (conn(ChannelType::DISPLAY), conn(ChannelType::PLAYBACK));
    for c in [d, p] {
        s.receive(c, &link_reply_bytes(true), t_client).unwrap();
    }
    // Everything arrives at the same local instant, well before the presentation time.
    s.receive(d, &display.out, t_client).unwrap();
    s.receive(p, &pb_bytes, t_client).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    let audio = events
        .iter()
        .find_map(|e| match e {
            Event::PlaybackData { mm_time, .. } => Some(*mm_time),
            _ => None,
        })
        .expect("playback data event");
    assert_eq!(audio as u64, frame_ms, "same instant, same stamp");
    // Produced (frame_ms - 3000) ms after MAIN_INIT; presented 400 ms after that.
    let when_audio = s.presentation_time(audio).unwrap();
    assert_eq!(
        when_audio,
        t_client + Duration::from_millis(frame_ms - 3_000) + Duration::from_millis(400)
    );
    // The video frames wait in the client core until their time: the last one, produced
    // with the audio packet, is drawn exactly when the audio packet is to be played.
    let stream_frames = |evs: &[Event]| -> Vec<u32> {
        evs.iter()
            .filter_map(|e| match e {
                Event::StreamFrame { mm_time, .. } => Some(*mm_time),
                _ => None,
            })
            .collect()
    };
    assert!(stream_frames(&events).is_empty(), "drawn too early");
    s.handle_timeout(when_audio - Duration::from_millis(1));
    let early: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        !stream_frames(&early).contains(&audio),
        "drawn before its time"
    );
    s.handle_timeout(when_audio);
    let due: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(stream_frames(&due).last(), Some(&audio));
    assert_eq!(s.presentation_time(video_stamp), Some(when_audio));
    server.shutdown();
}

/// (name, time or latency) of every message in `bytes` (mini header) of channel `ty`.
fn messages(ty: ChannelType, bytes: &[u8]) -> Vec<(&'static str, Option<u32>)> {
    let mut f = spice_proto::framer::Framer::new(HeaderKind::Mini, u32::MAX);
    let mut pos = 0;
    let mut v = Vec::new();
    while let spice_proto::framer::Frame::Complete(i) = f.next_frame(&bytes[pos..]).unwrap() {
        let body = &bytes[pos + i.body.start..pos + i.body.end];
        let m = AnyServer::decode(ty, i.msg_type, body).unwrap();
        let value = match &m {
            AnyServer::Main(pmain::ServerMessage::MultiMediaTime { time }) => Some(*time),
            AnyServer::Playback(spice_proto::playback::ServerMessage::Latency { latency_ms }) => {
                Some(*latency_ms)
            }
            _ => None,
        };
        v.push((m.name(), value));
        pos += i.total_len;
    }
    v
}

/// What spice-server does when latency needs change: without audio a stream's larger need
/// moves the client's clock further back (MULTI_MEDIA_TIME again); with audio playing it
/// becomes PLAYBACK_LATENCY instead; when the audio stops the clock is back at 400 ms.
#[test]
fn stream_latency_moves_the_clock_or_the_audio_buffering() {
    let epoch = Instant::now();
    let server = start_server(epoch);
    let at = |ms: u64| epoch + Duration::from_millis(ms);
    let session = Arc::new(Session::new(9));
    let main = MainChannelFactory::new(Arc::downgrade(server.context()));
    let (mut main_core, mut main_h) =
        open_channel(&server, &main, &session, Caps::new(), at(1_000));
    assert_eq!(
        main_init_time(&main_core.take_output()),
        1_000 - MM_TIME_DELTA
    );
    let mm = session.shared(MmTimeControl::new);
    let mut main_poll = |ms: u64| {
        main_core.poll(&mut *main_h, at(ms)).unwrap();
        messages(ChannelType::MAIN, &main_core.take_output())
    };

    // Less than the 400 ms the clock already has: nothing.
    mm.stream_latency(300);
    assert!(main_poll(1_100).is_empty());
    // More: the clock is resent that far behind.
    mm.stream_latency(700);
    assert_eq!(
        main_poll(1_200),
        vec![("multi_media_time", Some(1_200 - 700))]
    );
    assert_eq!(mm.latency(), 700);

    // Audio starts: the client's audio drives its clock now.
    let dev: Arc<dyn PlaybackDevice> = Arc::new(TestPlayback::default());
    let playback = PlaybackChannelFactory::new(0, &dev);
    let sink = playback.sink().clone();
    let latency_cap = Caps::from_caps(&[spice_proto::caps::playback::LATENCY]);
    let (mut pb_core, mut pb_h) =
        open_channel(&server, &playback, &session, latency_cap, at(1_300));
    pb_core.take_output();
    let mut pb_poll = |ms: u64| {
        pb_core.poll(&mut *pb_h, at(ms)).unwrap();
        messages(ChannelType::PLAYBACK, &pb_core.take_output())
    };
    sink.start();
    sink.write(&vec![0i16; FRAME_SAMPLES * 2]);
    let names: Vec<_> = pb_poll(1_300).iter().map(|m| m.0).collect();
    assert_eq!(names, ["start", "data"]);
    assert!(!mm.enabled());
    // A stream needs 900 ms: the client is told to buffer that much audio.
    mm.stream_latency(900);
    assert_eq!(pb_poll(1_400), vec![("latency", Some(900))]);
    assert!(main_poll(1_400).is_empty(), "the clock is the audio's");
    assert!(pb_poll(1_450).is_empty(), "sent once");

    // Audio stops: the main channel owns the clock again, at 400 ms.
    sink.stop();
    let names: Vec<_> = pb_poll(1_500).iter().map(|m| m.0).collect();
    assert_eq!(names, ["stop"]);
    assert!(mm.enabled());
    assert_eq!(
        main_poll(1_600),
        vec![("multi_media_time", Some(1_600 - MM_TIME_DELTA))]
    );
    assert!(main_poll(1_700).is_empty());
    server.shutdown();
}
