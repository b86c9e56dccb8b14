//! The client core's playback and record channels against the scripted in-memory server:
//! decoding, events, the record send path, and malformed server messages (each a typed
//! channel error that closes only that channel).

use std::time::{Duration, Instant};

use spice_client_core::testing::{link_reply_bytes, main_init, raw_message, server_message};
use spice_client_core::{ConnId, Event, Session, SessionConfig, SessionError};
use spice_codecs::audio::{AudioEncoder, AudioMode, FRAME_SAMPLES};
use spice_proto::ChannelType;
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::HeaderKind;
use spice_proto::main::{self as pmain, ChannelId};
use spice_proto::messages::{ClientMessage, ServerMessage};
use spice_proto::playback::{self, AudioDataMode, AudioFormat};
use spice_proto::record;

const K: HeaderKind = HeaderKind::Mini;

/// A session with main, playback and record linked; returns (session, playback, record).
fn linked(now: Instant) -> (Session, ConnId, ConnId) {
    let mut s = Session::new(SessionConfig::default()).unwrap();
    let main = ConnId(0);
    s.receive(main, &link_reply_bytes(true), now).unwrap();
    s.receive(main, &server_message(K, 1, &main_init()), now)
        .unwrap();
    let list = ServerMessage::Main(pmain::ServerMessage::ChannelsList(vec![
        ChannelId {
            channel_type: ChannelType::PLAYBACK,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::RECORD,
            id: 0,
        },
    ]));
    s.receive(main, &server_message(K, 2, &list), now).unwrap();
    let mut ids = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let Event::OpenChannel {
            conn, channel_type, ..
        } = ev
        {
            ids.push((channel_type, conn));
        }
    }
    let find = |t| ids.iter().find(|(ty, _)| *ty == t).unwrap().1;
    let (p, r) = (find(ChannelType::PLAYBACK), find(ChannelType::RECORD));
    for c in [p, r] {
        s.receive(c, &link_reply_bytes(true), now).unwrap();
    }
    while s.poll_event().is_some() {}
    let mut sink = Vec::new();
    for (c, ..) in s.connections().collect::<Vec<_>>() {
        s.transmit(c, &mut sink);
    }
    (s, p, r)
}

fn pb(serial: u64, m: playback::ServerMessage<'_>) -> Vec<u8> {
    server_message(K, serial, &ServerMessage::Playback(m))
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn playback_decodes_opus_and_reports_controls() {
    let now = Instant::now();
    let (mut s, p, _) = linked(now);
    let pcm: Vec<i16> = (0..FRAME_SAMPLES * 2).map(|i| (i as i16) * 9).collect();
    let mut enc = AudioEncoder::new(AudioMode::Opus, 48_000, 2).unwrap();
    let mut pkt = Vec::new();
    enc.encode_frame(&pcm, &mut pkt).unwrap();
    let mut input = pb(
        1,
        playback::ServerMessage::Mode {
            time: 1,
            mode: AudioDataMode::OPUS,
            data: &[],
        },
    );
    input.extend(pb(
        2,
        playback::ServerMessage::Start {
            channels: 2,
            format: AudioFormat::S16,
            frequency: 48_000,
            time: 100,
        },
    ));
    input.extend(pb(
        3,
        playback::ServerMessage::Data {
            time: 100,
            data: &pkt,
        },
    ));
    input.extend(pb(
        4,
        playback::ServerMessage::Volume(playback::AudioVolume {
            volumes: vec![9, 8],
        }),
    ));
    input.extend(pb(5, playback::ServerMessage::Mute { mute: 1 }));
    input.extend(pb(6, playback::ServerMessage::Latency { latency_ms: 250 }));
    input.extend(pb(7, playback::ServerMessage::Stop));
    s.receive(p, &input, now).unwrap();
    let ev = events(&mut s);
    assert!(
        matches!(ev[0], Event::PlaybackMode(AudioMode::Opus)),
        "{ev:?}"
    );
    assert!(matches!(
        ev[1],
        Event::PlaybackStart {
            channels: 2,
            rate: 48_000,
            time: 100,
            ..
        }
    ));
    match &ev[2] {
        Event::PlaybackData { pcm, mm_time } => {
            assert_eq!((pcm.len(), *mm_time), (FRAME_SAMPLES * 2, 100));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&ev[3], Event::PlaybackVolume(v) if v == &[9, 8]));
    assert!(matches!(ev[4], Event::PlaybackMute(true)));
    assert!(matches!(ev[5], Event::PlaybackLatency(250)));
    assert!(matches!(ev[6], Event::PlaybackStop));
    assert_eq!(s.playback_channel().unwrap().frames(), 1);
}

fn expect_playback_error(input: Vec<u8>, what: &str) {
    let now = Instant::now();
    let (mut s, p, r) = linked(now);
    s.receive(p, &input, now).unwrap();
    let ev = events(&mut s);
    let err = ev
        .iter()
        .find_map(|e| match e {
            Event::ChannelError {
                channel_type: ChannelType::PLAYBACK,
                error,
                ..
            } => Some(error.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no error for {what}: {ev:?}"));
    assert!(err.contains(what), "{err}");
    assert!(s.is_closed(p));
    assert!(!s.is_closed(r), "other channels go on");
}

#[test]
fn malformed_playback_is_a_typed_channel_error() {
    let start = |channels, format, frequency| {
        pb(
            1,
            playback::ServerMessage::Start {
                channels,
                format,
                frequency,
                time: 0,
            },
        )
    };
    expect_playback_error(start(2, AudioFormat(7), 48_000), "sample format 7");
    expect_playback_error(start(300, AudioFormat::S16, 48_000), "300 channels");
    expect_playback_error(start(2, AudioFormat::S16, 0), "rate 0");
    expect_playback_error(
        pb(
            1,
            playback::ServerMessage::Data {
                time: 0,
                data: &[0; 4],
            },
        ),
        "data before start",
    );
    let mut odd = start(2, AudioFormat::S16, 44_100);
    odd.extend(pb(
        2,
        playback::ServerMessage::Data {
            time: 0,
            data: &[0; 5],
        },
    ));
    expect_playback_error(odd, "multiple of 4");
    let mut opus44 = pb(
        1,
        playback::ServerMessage::Mode {
            time: 0,
            mode: AudioDataMode::OPUS,
            data: &[],
        },
    );
    opus44.extend(start(2, AudioFormat::S16, 44_100));
    expect_playback_error(opus44, "unsupported audio format");
    expect_playback_error(
        pb(
            1,
            playback::ServerMessage::Mode {
                time: 0,
                mode: AudioDataMode::CELT_0_5_1,
                data: &[],
            },
        ),
        "mode 2",
    );
    // A truncated START body.
    expect_playback_error(raw_message(K, 1, 103, &[2, 0, 0]), "start");
}

#[test]
fn record_sends_mode_start_mark_and_raw_frames() {
    let now = Instant::now();
    let (mut s, _, r) = linked(now);
    assert!(matches!(
        s.send_record_pcm(&[0; 960], now),
        Err(SessionError::NotActive(ChannelType::RECORD))
    ));
    let start = server_message(
        K,
        1,
        &ServerMessage::Record(record::ServerMessage::Start {
            channels: 2,
            format: AudioFormat::S16,
            frequency: 48_000,
        }),
    );
    s.receive(r, &start, now).unwrap();
    let ev = events(&mut s);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::RecordStart {
                channels: 2,
                rate: 48_000,
                ..
            }
        )),
        "{ev:?}"
    );
    let pcm: Vec<i16> = (0..FRAME_SAMPLES * 2 * 2 + 10).map(|i| i as i16).collect();
    s.send_record_pcm(&pcm, now).unwrap();
    let mut out = Vec::new();
    s.transmit(r, &mut out);
    let mut f = Framer::new(K, u32::MAX);
    let mut pos = 0;
    let mut got = Vec::new();
    let mut names = Vec::new();
    while let Frame::Complete(i) = f.next_frame(&out[pos..]).unwrap() {
        let body = &out[pos + i.body.start..pos + i.body.end];
        let m = ClientMessage::decode(ChannelType::RECORD, i.msg_type, body).unwrap();
        names.push(m.name());
        match m {
            ClientMessage::Record(record::ClientMessage::Mode { mode, .. }) => {
                // The scripted server advertises no RECORD_CAP_OPUS: raw.
                assert_eq!(mode, AudioDataMode::RAW);
            }
            ClientMessage::Record(record::ClientMessage::Data { data, .. }) => {
                got.extend(data.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
            }
            _ => {}
        }
        pos += i.total_len;
    }
    // The ACK_SYNC of the link may precede; the audio messages are in this order.
    let audio: Vec<_> = names
        .iter()
        .copied()
        .filter(|n| ["mode", "start_mark", "data"].contains(n))
        .collect();
    assert_eq!(audio, ["mode", "start_mark", "data", "data"]);
    assert_eq!(got, pcm[..FRAME_SAMPLES * 4]);
    let stop = server_message(K, 2, &ServerMessage::Record(record::ServerMessage::Stop));
    s.receive(r, &stop, now).unwrap();
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::RecordStop))
    );
    assert!(!s.record_channel().unwrap().is_active());
}

/// An audio packet is presented when the session's multimedia clock (MAIN_INIT: 1000 at
/// `now`) reaches its stamp, as a video frame with the same stamp is (see
/// `mjpeg_stream_drawn_and_reported`); the audio device's reported delay moves the clock
/// so video follows the sound (spice-gtk's `spice_playback_channel_set_delay`).
#[test]
fn playback_stamps_map_to_local_presentation_times() {
    let now = Instant::now();
    let (mut s, p, _) = linked(now);
    assert_eq!(s.set_playback_delay(100, now), None, "no data yet");
    let pcm = vec![0u8; FRAME_SAMPLES * 4];
    let mut input = pb(
        1,
        playback::ServerMessage::Start {
            channels: 2,
            format: AudioFormat::S16,
            frequency: 48_000,
            time: 1400,
        },
    );
    input.extend(pb(
        2,
        playback::ServerMessage::Data {
            time: 1400,
            data: &pcm,
        },
    ));
    s.receive(p, &input, now).unwrap();
    let stamp = events(&mut s)
        .iter()
        .find_map(|e| match e {
            Event::PlaybackData { mm_time, .. } => Some(*mm_time),
            _ => None,
        })
        .unwrap();
    assert_eq!(stamp, 1400);
    // 400 ms of buffering: the server's clock minus MM_TIME_DELTA.
    assert_eq!(
        s.presentation_time(stamp),
        Some(now + Duration::from_millis(400))
    );
    // The device says the packet is heard 150 ms from `later`: the clock follows it.
    let later = now + Duration::from_millis(20);
    assert_eq!(s.set_playback_delay(150, later), Some(1250));
    assert_eq!(s.mm_time(later), Some(1250));
    assert_eq!(
        s.presentation_time(1400),
        Some(later + Duration::from_millis(150))
    );
}
