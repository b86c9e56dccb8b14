//! Playback channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

use spice_proto::error::DecodeError;
use spice_proto::playback::{AudioDataMode, AudioFormat, AudioVolume, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn enc<'a>(m: &impl ChannelMessage<'a>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    v
}

fn server(t: u16, b: &[u8]) -> Result<ServerMessage<'_>, DecodeError> {
    ServerMessage::decode_body(ChannelType::PLAYBACK, t, b)
}

#[test]
fn start_golden() {
    // channels 2, format S16, 48000 Hz, time 0x1000 (14 bytes, §2.6)
    let body = [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0, 0, 0x10, 0, 0];
    let m = ServerMessage::Start {
        channels: 2,
        format: AudioFormat::S16,
        frequency: 48_000,
        time: 0x1000,
    };
    assert_eq!(server(103, &body).unwrap(), m);
    assert_eq!(enc(&m), body);
}

#[test]
fn data_mode_volume_golden() {
    let body = [0x10, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    let m = ServerMessage::Data {
        time: 16,
        data: &[0xde, 0xad, 0xbe, 0xef],
    };
    assert_eq!(server(101, &body).unwrap(), m);
    assert_eq!(enc(&m), body);
    assert_eq!(
        server(102, &[1, 0, 0, 0, 3, 0]).unwrap(),
        ServerMessage::Mode {
            time: 1,
            mode: AudioDataMode::OPUS,
            data: &[]
        }
    );
    let v = ServerMessage::Volume(AudioVolume {
        volumes: vec![0xffff, 0x8000],
    });
    assert_eq!(enc(&v), [2, 0xff, 0xff, 0x00, 0x80]);
    assert_eq!(server(105, &[2, 0xff, 0xff, 0x00, 0x80]).unwrap(), v);
    assert_eq!(server(106, &[1]).unwrap(), ServerMessage::Mute { mute: 1 });
    assert_eq!(
        server(107, &[200, 0, 0, 0]).unwrap(),
        ServerMessage::Latency { latency_ms: 200 }
    );
    assert_eq!(server(104, &[]).unwrap(), ServerMessage::Stop);
}

#[test]
fn malformed_playback() {
    assert!(matches!(
        server(105, &[3, 0, 0, 0, 0]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        server(105, &[1, 0, 0, 0]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        server(103, &[0; 13]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert!(matches!(
        server(101, &[0; 3]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert_eq!(
        server(108, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 108 })
    );
    let too_many = ServerMessage::Volume(AudioVolume {
        volumes: vec![0; 256],
    });
    assert!(
        too_many
            .encode_body(&mut WriteBuf::new(&mut Vec::new()))
            .is_err()
    );
}

#[test]
fn fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/playback_server");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        spice_proto::playback::fuzz_server(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use proptest::prelude::*;
    use spice_proto::playback::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) {
            let bytes: &'static [u8] = Vec::leak(enc(&m));
            let back = ServerMessage::decode_body(ChannelType::PLAYBACK, m.msg_type(), bytes).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(enc(&back), bytes);
            prop_assert_eq!(ServerMessage::name_of(ChannelType::PLAYBACK, m.msg_type()), Some(m.name()));
        }
        #[test]
        fn random_bytes_never_panic(t in 99u16..110, body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut data = t.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::playback::fuzz_server(&data);
        }
    }
}
