//! Audio end to end over TCP: our client core (spice-client-core's blocking driver) against
//! our server, playback and record, raw (bit-exact) and Opus (SNR after aligning the codec
//! delay); and the real spice-gtk client receiving the tone of `spice-server --demo
//! --demo-tone` (never skipped: a missing peer panics with what to install).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::playback::AudioConfig;
use spice_client_core::{ChannelSelection, Event, SessionConfig, SpiceUri};
use spice_codecs::audio::{AudioMode, FRAME_SAMPLES, OPUS_DELAY_SAMPLES};
use spice_proto::ChannelType;
use spice_server::config::ServerConfig;
use spice_server::host::Host;
use spice_server::server::{Server, ServerBuilder};
use spice_server::testing::{TestPlayback, TestRecord};
use spice_testpeers::gtk_client::GtkScenario;

/// Opus must keep at least this SNR on a music-like test signal (measured ~30 dB and up).
const OPUS_MIN_SNR_DB: f64 = 20.0;

/// A two-tone stereo signal (different on each channel), `frames` frames long.
fn signal(frames: usize) -> Vec<i16> {
    let n = frames * FRAME_SAMPLES;
    let mut v = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 / 48_000.0;
        let l = 9000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
            + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin();
        let r = 8000.0 * (2.0 * std::f64::consts::PI * 660.0 * t).sin();
        v.push(l.round() as i16);
        v.push(r.round() as i16);
    }
    v
}

/// SNR (dB) of `got` delayed by `delay` samples per channel against `want`, skipping the
/// first 10 frames (encoder warm-up).
fn snr_db(want: &[i16], got: &[i16], delay: usize) -> f64 {
    let skip = 10 * FRAME_SAMPLES * 2;
    let (mut sig, mut noise) = (0f64, 0f64);
    for i in skip..want.len().min(got.len().saturating_sub(delay * 2)) {
        let w = f64::from(want[i]);
        let g = f64::from(got[i + delay * 2]);
        sig += w * w;
        noise += (w - g) * (w - g);
    }
    10.0 * (sig / noise.max(1.0)).log10()
}

struct Setup {
    server: Server,
    addr: SocketAddr,
    playback: Arc<TestPlayback>,
    record: Arc<TestRecord>,
}

fn start_server() -> Setup {
    let playback = Arc::new(TestPlayback::default());
    let record = Arc::new(TestRecord::default());
    let host = Host {
        playback: vec![playback.clone()],
        record: vec![record.clone()],
        ..Host::default()
    };
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let addr = server.local_addrs()[0];
    Setup {
        server,
        addr,
        playback,
        record,
    }
}

fn connect(addr: SocketAddr, opus: bool) -> Client {
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", addr.port())).unwrap();
    let config = SessionConfig {
        channels: ChannelSelection {
            display: false,
            inputs: false,
            cursor: false,
        },
        audio: AudioConfig {
            playback: true,
            record: true,
            opus,
        },
        ..SessionConfig::default()
    };
    Client::connect(&uri, config).unwrap()
}

/// Polls until `pred` accepts an event (others are collected) or the deadline passes.
fn wait_for(client: &mut Client, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < end {
        if let Some(ev) = client.poll(Duration::from_millis(50)).unwrap() {
            if let Event::ChannelError { error, .. } = &ev {
                panic!("channel error while waiting for {what}: {error}");
            }
            let done = pred(&ev);
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }
    panic!("timed out waiting for {what}; saw {:?}", summary(&seen));
}

fn wait_linked(client: &mut Client) -> Vec<Event> {
    let mut linked = (false, false);
    wait_for(client, "audio channels linked", |e| {
        if let Event::ChannelLinked { channel_type, .. } = e {
            linked.0 |= *channel_type == ChannelType::PLAYBACK;
            linked.1 |= *channel_type == ChannelType::RECORD;
        }
        linked == (true, true)
    })
}

/// A short description of events for failure messages (no PCM dumps).
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::PlaybackData { mm_time, pcm } => format!("data@{mm_time}({})", pcm.len()),
            other => format!("{other:?}").chars().take(80).collect(),
        })
        .collect()
}

fn round_trip(opus: bool) {
    let s = start_server();
    let mut client = connect(s.addr, opus);
    // MODE may arrive while the other channel is still linking.
    let early = wait_linked(&mut client);
    let sink = s.playback.sink().unwrap();
    // The server side subscribes at link time; wait until it did.
    let end = Instant::now() + Duration::from_secs(5);
    while sink.client_count() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.client_count(), 1);

    // --- playback
    sink.set_volume(&[1000, 2000]);
    sink.set_mute(true);
    sink.set_latency(150);
    let frames = 60;
    let pcm = signal(frames);
    // Odd-sized writes: the sink must cut frames itself.
    for chunk in pcm.chunks(700) {
        sink.write(chunk);
    }
    sink.stop();
    // MAIN_INIT's multimedia time (the clock of MULTI_MEDIA_TIME and video streams).
    let mm_init = early
        .iter()
        .find_map(|e| match e {
            Event::MultiMediaTime(t) => Some(*t),
            _ => None,
        })
        .expect("MAIN_INIT multimedia time");
    let mut events = early;
    events.extend(wait_for(&mut client, "playback stop", |e| {
        matches!(e, Event::PlaybackStop)
    }));
    let expect_mode = if opus {
        AudioMode::Opus
    } else {
        AudioMode::Raw
    };
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PlaybackMode(m) if *m == expect_mode)),
        "{:?}",
        summary(&events)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PlaybackVolume(v) if v == &[1000, 2000]))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PlaybackMute(true)))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PlaybackLatency(150)))
    );
    let start = events
        .iter()
        .find_map(|e| match e {
            Event::PlaybackStart {
                channels,
                rate,
                time,
                ..
            } => Some((*channels, *rate, *time)),
            _ => None,
        })
        .expect("PlaybackStart");
    assert_eq!((start.0, start.1), (2, 48_000));
    let mut got = Vec::new();
    let mut times = Vec::new();
    for e in &events {
        if let Event::PlaybackData { pcm, mm_time } = e {
            assert_eq!(pcm.len(), FRAME_SAMPLES * 2);
            got.extend_from_slice(pcm);
            times.push(*mm_time);
        }
    }
    assert_eq!(times.len(), frames);
    // Stamps: from the START time, 10 ms per frame, on the server's mm clock.
    assert_eq!(times[0], start.2);
    for w in times.windows(2) {
        assert_eq!(w[1].wrapping_sub(w[0]), 10, "{times:?}");
    }
    // Audio stamps are on the server's raw clock, which MAIN_INIT's runs MM_TIME_DELTA
    // behind: the first stamp is at least 400 ms past MAIN_INIT's time, within seconds.
    let since_init = times[0].wrapping_sub(mm_init);
    assert!(
        (spice_server::main_channel::MM_TIME_DELTA..10_000).contains(&since_init),
        "first stamp {} vs MAIN_INIT {mm_init}",
        times[0]
    );
    let mm_now = s.server.context().mm_time(Instant::now());
    assert!(
        mm_now.wrapping_sub(times[0]) < 10_000,
        "stamp {} vs clock {mm_now}",
        times[0]
    );
    if opus {
        let snr = snr_db(&pcm, &got, OPUS_DELAY_SAMPLES);
        assert!(snr >= OPUS_MIN_SNR_DB, "playback Opus SNR {snr:.1} dB");
    } else {
        assert_eq!(got, pcm, "raw playback must be bit-exact");
    }

    // --- record
    let control = s.record.control().unwrap();
    control.set_volume(&[500, 600]);
    control.start();
    let events = wait_for(&mut client, "record start", |e| {
        matches!(e, Event::RecordStart { .. })
    });
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RecordVolume(v) if v == &[500, 600]))
    );
    let rec = signal(40);
    for chunk in rec.chunks(1000) {
        client
            .session()
            .send_record_pcm(chunk, Instant::now())
            .unwrap();
    }
    let rc = client.session_ref().record_channel().unwrap();
    assert_eq!(rc.mode(), expect_mode);
    assert_eq!(rc.frames_sent(), 40);
    let end = Instant::now() + Duration::from_secs(10);
    while s.record.sample_count() < rec.len() && Instant::now() < end {
        let _ = client.poll(Duration::from_millis(20)).unwrap();
    }
    let got = s.record.samples();
    assert_eq!(got.len(), rec.len());
    if opus {
        let snr = snr_db(&rec, &got, OPUS_DELAY_SAMPLES);
        assert!(snr >= OPUS_MIN_SNR_DB, "record Opus SNR {snr:.1} dB");
    } else {
        assert_eq!(got, rec, "raw record must be bit-exact");
    }
    control.stop();
    wait_for(&mut client, "record stop", |e| {
        matches!(e, Event::RecordStop)
    });
    assert!(matches!(
        client
            .session()
            .send_record_pcm(&rec[..960], Instant::now()),
        Err(spice_client_core::SessionError::NotActive(_))
    ));
    drop(client);
    s.server.shutdown();
}

#[test]
fn raw_playback_and_record_are_bit_exact() {
    round_trip(false);
}

#[test]
fn opus_playback_and_record_within_tolerance() {
    round_trip(true);
}

#[test]
fn server_without_compression_sends_raw_to_an_opus_client() {
    let playback = Arc::new(TestPlayback::default());
    let host = Host {
        playback: vec![playback.clone()],
        ..Host::default()
    };
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .playback_compression(false)
        .build()
        .unwrap();
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let mut client = connect(server.local_addrs()[0], true);
    let events = wait_for(&mut client, "playback mode", |e| {
        matches!(e, Event::PlaybackMode(_))
    });
    assert!(matches!(
        events.last(),
        Some(Event::PlaybackMode(AudioMode::Raw))
    ));
    drop(client);
    server.shutdown();
}

/// Frequency estimate from rising zero crossings of a mono signal.
fn zero_crossing_hz(mono: &[i16], rate: f64) -> f64 {
    let ups: Vec<usize> = mono
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, _)| i)
        .collect();
    assert!(ups.len() > 10, "no tone: {} crossings", ups.len());
    let span = (ups[ups.len() - 1] - ups[0]) as f64;
    (ups.len() - 1) as f64 * rate / span
}

/// `spice-server --demo --demo-tone` on an ephemeral port; killed on drop.
struct DemoServer {
    child: std::process::Child,
    port: u16,
}

impl DemoServer {
    fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spice-server"))
            .args(["--listen", "127.0.0.1:0", "--demo", "--demo-tone"])
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start spice-server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("spice-server exited before listening")
                .unwrap();
            if let Some(addr) = line.strip_prefix("spice-server: listening on ") {
                break addr.parse::<SocketAddr>().unwrap().port();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn spice_gtk_receives_the_demo_tone() {
    let server = DemoServer::start();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let pcm_path = dir.path().join("pcm.raw");
    let run = GtkScenario::new(port)
        .playback(&pcm_path, Duration::from_millis(1500))
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap();
    drop(server);
    run.assert_ok();
    let start = run
        .events_named("playback_start")
        .next()
        .unwrap_or_else(|| panic!("no playback_start: {run:?}"))
        .clone();
    assert_eq!(start["channels"], 2, "{start}");
    assert_eq!(start["rate"], 48_000, "{start}");
    let bytes = std::fs::read(&pcm_path).unwrap();
    let samples: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // At least 1 s of stereo audio.
    assert!(samples.len() >= 48_000 * 2, "{} samples", samples.len());
    // Skip the codec warm-up, take the left channel.
    let left: Vec<i16> = samples[4800 * 2..].iter().step_by(2).copied().collect();
    let hz = zero_crossing_hz(&left, 48_000.0);
    assert!((hz - 440.0).abs() < 3.0, "tone at {hz:.1} Hz");
    let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(
        (8_500..=11_500).contains(&peak),
        "peak {peak} (demo amplitude 10000)"
    );
}
