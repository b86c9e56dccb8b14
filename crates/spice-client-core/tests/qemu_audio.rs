//! Our client core's audio channels against QEMU's spice-server (`-audiodev spice` with
//! intel-hda + hda-duplex). Needs QEMU (panics when missing, never skips).
//!
//! The guest has no OS, so nothing plays: the test checks that playback and record link
//! with our caps, that the server's `MODE` arrives and decodes, and that any `START` /
//! `DATA` that does come decodes without a channel error. It does not assert on sound the
//! guest never plays.

use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::{Event, SessionConfig, SpiceUri};
use spice_codecs::audio::AudioMode;
use spice_proto::ChannelType;
use spice_testpeers::qemu::QemuBuilder;

#[test]
fn qemu_playback_and_record_link_and_announce_their_mode() {
    let qemu = QemuBuilder::new().with_audio().spawn().expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut client = Client::connect(&uri, SessionConfig::default()).unwrap();
    let mut linked = Vec::new();
    let mut mode = None;
    let mut starts = Vec::new();
    let mut data_frames = 0usize;
    let end = Instant::now() + Duration::from_secs(20);
    // Run until both audio channels linked and the mode came, then 2 s more to see
    // whether anything plays.
    let mut settle_until: Option<Instant> = None;
    while Instant::now() < end && settle_until.is_none_or(|t| Instant::now() < t) {
        match client.poll(Duration::from_millis(100)).unwrap() {
            Some(Event::ChannelLinked { channel_type, .. }) => linked.push(channel_type),
            Some(Event::PlaybackMode(m)) => mode = Some(m),
            Some(Event::PlaybackStart { channels, rate, .. }) => starts.push((channels, rate)),
            Some(Event::PlaybackData { pcm, .. }) => {
                assert!(!pcm.is_empty());
                data_frames += 1;
            }
            Some(Event::ChannelError {
                error,
                channel_type,
                ..
            }) => panic!("{channel_type} failed: {error}\n{}", qemu.log()),
            _ => {}
        }
        if settle_until.is_none()
            && mode.is_some()
            && linked.contains(&ChannelType::PLAYBACK)
            && linked.contains(&ChannelType::RECORD)
        {
            settle_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    assert!(
        linked.contains(&ChannelType::PLAYBACK),
        "{linked:?}\n{}",
        qemu.log()
    );
    assert!(linked.contains(&ChannelType::RECORD), "{linked:?}");
    let mode = mode.expect("QEMU's spice-server sends PLAYBACK_MODE on connect");
    assert!(matches!(mode, AudioMode::Raw | AudioMode::Opus));
    for (channels, rate) in &starts {
        assert_eq!(*channels, 2);
        assert!(*rate == 48_000 || *rate == 44_100, "rate {rate}");
    }
    let pc = client
        .session_ref()
        .playback_channel()
        .expect("playback linked");
    assert_eq!(pc.frames() as usize, data_frames);
    eprintln!("QEMU playback: mode {mode:?}, starts {starts:?}, {data_frames} frames");
}
