//! Record channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

mod common;
use common::{enc, replay};
use spice_proto::error::DecodeError;
use spice_proto::playback::{AudioDataMode, AudioFormat, AudioVolume};
use spice_proto::record::{ClientMessage, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType};

fn client(t: u16, b: &[u8]) -> Result<ClientMessage<'_>, DecodeError> {
    ClientMessage::decode_body(ChannelType::RECORD, t, b)
}

fn server(t: u16, b: &[u8]) -> Result<ServerMessage<'_>, DecodeError> {
    ServerMessage::decode_body(ChannelType::RECORD, t, b)
}

#[test]
fn data_golden() {
    let body = [5, 0, 0, 0, 1, 2, 3, 4];
    let m = ClientMessage::Data {
        time: 5,
        data: &[1, 2, 3, 4],
    };
    assert_eq!(client(101, &body).unwrap(), m);
    assert_eq!(enc(&m), body);
    assert_eq!(
        client(102, &[5, 0, 0, 0, 1, 0]).unwrap(),
        ClientMessage::Mode {
            time: 5,
            mode: AudioDataMode::RAW,
            data: &[]
        }
    );
    assert_eq!(
        client(103, &[9, 0, 0, 0]).unwrap(),
        ClientMessage::StartMark { time: 9 }
    );
}

#[test]
fn server_golden() {
    // START is 10 bytes: no time field, unlike playback.
    let body = [2, 0, 0, 0, 1, 0, 0x44, 0xac, 0, 0];
    let m = ServerMessage::Start {
        channels: 2,
        format: AudioFormat::S16,
        frequency: 44_100,
    };
    assert_eq!(server(101, &body).unwrap(), m);
    assert_eq!(enc(&m), body);
    assert_eq!(server(102, &[]).unwrap(), ServerMessage::Stop);
    assert_eq!(
        server(103, &[1, 0x34, 0x12]).unwrap(),
        ServerMessage::Volume(AudioVolume {
            volumes: vec![0x1234]
        })
    );
    assert_eq!(server(104, &[0]).unwrap(), ServerMessage::Mute { mute: 0 });
}

#[test]
fn malformed_record() {
    assert!(matches!(
        server(101, &[0; 14]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        server(103, &[200, 0]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        client(102, &[0; 5]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert_eq!(
        client(104, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 104 })
    );
}

#[test]
fn fuzz_corpus_replays() {
    replay("record_server", spice_proto::record::fuzz_server);
    replay("record_client", spice_proto::record::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use common::roundtrip;
    use proptest::prelude::*;
    use spice_proto::record::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) { roundtrip(ChannelType::RECORD, &m); }
        #[test]
        fn client_round_trip(m in strategies::client_message()) { roundtrip(ChannelType::RECORD, &m); }
        #[test]
        fn random_bytes_never_panic(t in 99u16..106, body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut data = t.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::record::fuzz_server(&data);
            spice_proto::record::fuzz_client(&data);
        }
    }
}
