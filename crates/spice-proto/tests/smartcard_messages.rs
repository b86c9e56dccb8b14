//! Smartcard channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

use spice_proto::error::DecodeError;
use spice_proto::smartcard::{ClientMessage, ServerMessage, SmartcardData, VscMessageType};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn enc<'a>(m: &impl ChannelMessage<'a>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    v
}

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

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        f(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn fuzz_corpus_replays() {
    replay("smartcard_server", spice_proto::smartcard::fuzz_server);
    replay("smartcard_client", spice_proto::smartcard::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use proptest::prelude::*;
    use spice_proto::smartcard::strategies;

    fn roundtrip<M: ChannelMessage<'static> + PartialEq + std::fmt::Debug>(m: &M) {
        let bytes: &'static [u8] = Vec::leak(enc(m));
        let back = M::decode_body(ChannelType::SMARTCARD, m.msg_type(), bytes).unwrap();
        assert_eq!(&back, m);
        assert_eq!(enc(&back), bytes);
        assert_eq!(
            M::name_of(ChannelType::SMARTCARD, m.msg_type()),
            Some(m.name())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) { roundtrip(&m); }
        #[test]
        fn client_round_trip(m in strategies::client_message()) { roundtrip(&m); }
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut data = 101u16.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::smartcard::fuzz_server(&data);
            spice_proto::smartcard::fuzz_client(&data);
        }
    }
}
