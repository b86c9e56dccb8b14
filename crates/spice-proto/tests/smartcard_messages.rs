//! Smartcard channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

mod common;
use common::{enc, replay};
use spice_proto::error::DecodeError;
use spice_proto::smartcard::{ClientMessage, ServerMessage, SmartcardData, VscMessageType};
use spice_proto::{ChannelMessage, ChannelType};

#[test]
fn data_golden() {
    // type APDU (7), reader 0, length 3, payload
    let body = [7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0xaa, 0xbb, 0xcc];
    let d = SmartcardData {
        msg_type: VscMessageType::APDU,
        reader_id: 0,
        data: &[0xaa, 0xbb, 0xcc],
    };
    assert_eq!(
        ServerMessage::decode_body(ChannelType::SMARTCARD, 101, &body).unwrap(),
        ServerMessage::Data(d.clone())
    );
    assert_eq!(
        ClientMessage::decode_body(ChannelType::SMARTCARD, 101, &body).unwrap(),
        ClientMessage::Data(d.clone())
    );
    assert_eq!(enc(&ClientMessage::Data(d)), body);
    let empty = [8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        ClientMessage::decode_body(ChannelType::SMARTCARD, 101, &empty).unwrap(),
        ClientMessage::Data(SmartcardData {
            msg_type: VscMessageType::FLUSH,
            reader_id: 1,
            data: &[]
        })
    );
}

#[test]
fn malformed_smartcard() {
    let s = |b: &[u8]| ServerMessage::decode_body(ChannelType::SMARTCARD, 101, b).map(|_| ());
    assert!(matches!(
        s(&[7, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 1]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        s(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        s(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert_eq!(
        ServerMessage::decode_body(ChannelType::SMARTCARD, 102, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 102 })
    );
}

#[test]
fn fuzz_corpus_replays() {
    replay("smartcard_server", spice_proto::smartcard::fuzz_server);
    replay("smartcard_client", spice_proto::smartcard::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use common::roundtrip;
    use proptest::prelude::*;
    use spice_proto::smartcard::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) { roundtrip(ChannelType::SMARTCARD, &m); }
        #[test]
        fn client_round_trip(m in strategies::client_message()) { roundtrip(ChannelType::SMARTCARD, &m); }
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut data = 101u16.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::smartcard::fuzz_server(&data);
            spice_proto::smartcard::fuzz_client(&data);
        }
    }
}
