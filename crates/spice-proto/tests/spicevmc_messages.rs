//! SpiceVMC family (usbredir, port, webdav): golden bytes, channel-dependent messages,
//! malformed input, proptest round trips, fuzz corpus replay.

mod common;
use common::{enc, replay};
use spice_proto::error::DecodeError;
use spice_proto::spicevmc::{
    ClientMessage, CompressedData, DataCompressionType, PortEvent, PortInit, ServerMessage,
};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

#[test]
fn port_init_golden() {
    let name = b"org.spice-space.webdav.0\0";
    let mut body = vec![25, 0, 0, 0, 9, 0, 0, 0, 1]; // name_size 25, name_ptr -> 9, opened 1
    body.extend_from_slice(name);
    let m = ServerMessage::PortInit(PortInit { name, opened: 1 });
    assert_eq!(enc(&m), body);
    for ch in [ChannelType::PORT, ChannelType::WEBDAV] {
        assert_eq!(ServerMessage::decode_body(ch, 201, &body).unwrap(), m);
    }
    // usbredir has no port messages
    assert_eq!(
        ServerMessage::decode_body(ChannelType::USBREDIR, 201, &body),
        Err(DecodeError::UnknownMessage { msg_type: 201 })
    );
    assert_eq!(
        ClientMessage::decode_body(ChannelType::USBREDIR, 201, &[0]),
        Err(DecodeError::UnknownMessage { msg_type: 201 })
    );
    assert_eq!(ServerMessage::name_of(ChannelType::USBREDIR, 202), None);
    assert_eq!(
        ServerMessage::name_of(ChannelType::WEBDAV, 202),
        Some("event")
    );
    if let ServerMessage::PortInit(p) = m {
        assert_eq!(p.name_str(), b"org.spice-space.webdav.0");
    }
    assert_eq!(
        ClientMessage::decode_body(ChannelType::PORT, 201, &[1]).unwrap(),
        ClientMessage::PortEvent(PortEvent::CLOSED)
    );
    assert_eq!(
        ServerMessage::decode_body(ChannelType::PORT, 202, &[2]).unwrap(),
        ServerMessage::PortEvent(PortEvent::BREAK)
    );
}

#[test]
fn usbredir_data_golden() {
    // usbredirparser hello header bytes, passed through untouched
    let body = [0, 0, 0, 0, 0x44, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        ClientMessage::decode_body(ChannelType::USBREDIR, 101, &body).unwrap(),
        ClientMessage::Data(&body)
    );
    let lz4 = [1, 0x00, 0x10, 0, 0, 0xf0, 0x01];
    let m = ServerMessage::CompressedData(CompressedData {
        compression: DataCompressionType::LZ4,
        uncompressed_size: 4096,
        data: &[0xf0, 0x01],
    });
    assert_eq!(
        ServerMessage::decode_body(ChannelType::USBREDIR, 102, &lz4).unwrap(),
        m
    );
    assert_eq!(enc(&m), lz4);
    // NONE has no uncompressed_size on the wire
    let none = [0, 0xaa];
    let m = ClientMessage::CompressedData(CompressedData {
        compression: DataCompressionType::NONE,
        uncompressed_size: 0,
        data: &[0xaa],
    });
    assert_eq!(
        ClientMessage::decode_body(ChannelType::WEBDAV, 102, &none).unwrap(),
        m
    );
    assert_eq!(enc(&m), none);
    let bad = ClientMessage::CompressedData(CompressedData {
        compression: DataCompressionType::NONE,
        uncompressed_size: 1,
        data: &[],
    });
    assert!(
        bad.encode_body(&mut WriteBuf::new(&mut Vec::new()))
            .is_err()
    );
}

#[test]
fn malformed_spicevmc() {
    let s = |b: &[u8]| ServerMessage::decode_body(ChannelType::PORT, 201, b).map(|_| ());
    assert!(matches!(
        s(&[1, 0, 0, 0, 0, 0, 0, 0, 1, b'a']),
        Err(DecodeError::NullPointer { .. })
    ));
    assert!(matches!(
        s(&[1, 0, 0, 0, 99, 0, 0, 0, 1, b'a']),
        Err(DecodeError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        s(&[9, 0, 0, 0, 9, 0, 0, 0, 1, b'a']),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        s(&[1, 0, 0, 0, 9, 0, 0, 0, 1, b'a', b'b']),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        s(&[1, 0, 0, 0, 9, 0, 0, 0]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::USBREDIR, 102, &[1, 0, 0]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::PORT, 202, &[1, 2]),
        Err(DecodeError::TrailingBytes { .. })
    ));
}

#[test]
fn fuzz_corpus_replays() {
    replay("spicevmc_server", spice_proto::spicevmc::fuzz_server);
    replay("spicevmc_client", spice_proto::spicevmc::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use common::roundtrip;
    use proptest::prelude::*;
    use spice_proto::spicevmc::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn server_round_trip(m in strategies::server_message(), webdav in any::<bool>()) {
            roundtrip(if webdav { ChannelType::WEBDAV } else { ChannelType::PORT }, &m);
        }
        #[test]
        fn client_round_trip(m in strategies::client_message(), webdav in any::<bool>()) {
            roundtrip(if webdav { ChannelType::WEBDAV } else { ChannelType::PORT }, &m);
        }
        #[test]
        fn random_bytes_never_panic(sel in any::<u8>(), t in prop_oneof![99u16..104, 199u16..204], body in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut data = vec![sel];
            data.extend_from_slice(&t.to_le_bytes());
            data.extend_from_slice(&body);
            spice_proto::spicevmc::fuzz_server(&data);
            spice_proto::spicevmc::fuzz_client(&data);
        }
    }
}
