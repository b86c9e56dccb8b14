//! Main channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

mod common;
use common::{enc, replay};
use spice_proto::error::DecodeError;
use spice_proto::main::{ChannelId, ClientMessage, DstInfo, Init, MouseMode, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn server(t: u16, b: &[u8]) -> Result<ServerMessage<'_>, DecodeError> {
    ServerMessage::decode_body(ChannelType::MAIN, t, b)
}

#[test]
fn init_golden() {
    // Appendix A: mini header `67 00 | 20 00 00 00` then the 32-byte body.
    let body = [
        0x78, 0x56, 0x34, 0x12, // session_id
        0x01, 0x00, 0x00, 0x00, // display_channels_hint
        0x03, 0x00, 0x00, 0x00, // supported_mouse_modes SERVER|CLIENT
        0x01, 0x00, 0x00, 0x00, // current_mouse_mode SERVER
        0x01, 0x00, 0x00, 0x00, // agent_connected
        0x0a, 0x00, 0x00, 0x00, // agent_tokens 10
        0x10, 0x27, 0x00, 0x00, // multi_media_time 10000
        0x00, 0x00, 0x00, 0x04, // ram_hint 64 MiB
    ];
    let m = ServerMessage::Init(Init {
        session_id: 0x1234_5678,
        display_channels_hint: 1,
        supported_mouse_modes: MouseMode::SERVER | MouseMode::CLIENT,
        current_mouse_mode: MouseMode::SERVER,
        agent_connected: 1,
        agent_tokens: 10,
        multi_media_time: 10_000,
        ram_hint: 64 << 20,
    });
    assert_eq!(m.msg_type(), 0x67);
    assert_eq!(body.len(), 0x20);
    assert_eq!(enc(&m), body);
    assert_eq!(server(103, &body).unwrap(), m);
    assert_eq!(m.name(), "init");
}

#[test]
fn channels_list_golden() {
    let body = [4, 0, 0, 0, 2, 0, 3, 0, 4, 0, 0x2a, 7];
    let m = ServerMessage::ChannelsList(vec![
        ChannelId {
            channel_type: ChannelType::DISPLAY,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::INPUTS,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::CURSOR,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType(0x2a),
            id: 7,
        }, // unknown type kept
    ]);
    assert_eq!(server(104, &body).unwrap(), m);
    assert_eq!(enc(&m), body);
}

#[test]
fn migrate_begin_pointers_golden() {
    let body = [
        0x0c, 0x17, 0x0d, 0x17, // port 5900, sport 5901
        4, 0, 0, 0, 20, 0, 0, 0, // host_size 4, host_ptr -> 20
        0, 0, 0, 0, 0, 0, 0, 0, // no cert subject (NULL)
        b'd', b's', b't', 0,
    ];
    let dst = DstInfo {
        port: 5900,
        sport: 5901,
        host: Some(b"dst\0"),
        cert_subject: None,
    };
    assert_eq!(
        server(101, &body).unwrap(),
        ServerMessage::MigrateBegin(dst)
    );
    assert_eq!(enc(&ServerMessage::MigrateBegin(dst)), body);

    let seamless = ServerMessage::MigrateBeginSeamless {
        dst_info: DstInfo {
            cert_subject: Some(b"CN=a\0"),
            ..dst
        },
        src_mig_version: 2,
    };
    let b = enc(&seamless);
    assert_eq!(&b[8..12], &24u32.to_le_bytes()); // host after the 24-byte fixed part
    assert_eq!(&b[16..20], &28u32.to_le_bytes()); // then the cert subject
    assert_eq!(&b[20..24], &2u32.to_le_bytes());
    assert_eq!(&b[24..], b"dst\0CN=a\0");
    assert_eq!(server(116, &b).unwrap(), seamless);
}

#[test]
fn small_client_messages_golden() {
    let c = |t, b: &'static [u8]| ClientMessage::decode_body(ChannelType::MAIN, t, b).unwrap();
    assert_eq!(c(104, &[]), ClientMessage::AttachChannels);
    assert_eq!(
        c(105, &[2, 0]),
        ClientMessage::MouseModeRequest {
            mode: MouseMode::CLIENT
        }
    );
    assert_eq!(
        c(106, &[0xff; 4]),
        ClientMessage::AgentStart {
            num_tokens: u32::MAX
        }
    );
    assert_eq!(c(107, b"abc"), ClientMessage::AgentData(b"abc"));
    assert_eq!(
        enc(&ClientMessage::ClientInfo { cache_size: 0x0102 }),
        [2, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(server(114, &[7; 16]).unwrap(), ServerMessage::Uuid([7; 16]));
    assert_eq!(
        server(113, &[3, 0, 0, 0, b'v', b'm', 0]).unwrap(),
        ServerMessage::Name(b"vm\0")
    );
    assert_eq!(
        server(105, &[3, 0, 2, 0]).unwrap(),
        ServerMessage::MouseMode {
            supported_modes: MouseMode::all(),
            current_mode: MouseMode::CLIENT
        }
    );
}

#[test]
fn malformed_main_messages() {
    assert!(matches!(
        server(104, &[0xff, 0xff, 0xff, 0xff, 1, 0]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        server(103, &[0; 31]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert!(matches!(
        server(103, &[0; 33]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    // host pointer NULL is refused in MIGRATE_BEGIN but allowed in MIGRATE_SWITCH_HOST
    let null_host = [0u8; 20];
    assert!(matches!(
        server(101, &null_host),
        Err(DecodeError::NullPointer { .. })
    ));
    assert_eq!(
        server(111, &null_host).unwrap(),
        ServerMessage::MigrateSwitchHost(DstInfo {
            port: 0,
            sport: 0,
            host: None,
            cert_subject: None
        })
    );
    let mut out_of_range = [0u8; 20];
    out_of_range[4] = 1;
    out_of_range[8] = 200;
    assert!(matches!(
        server(101, &out_of_range),
        Err(DecodeError::OffsetOutOfRange { offset: 200, .. })
    ));
    let mut too_long = [0u8; 24];
    too_long[4] = 100; // host_size 100 at offset 20: only 4 bytes there
    too_long[8] = 20;
    assert!(matches!(
        server(101, &too_long),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert_eq!(
        server(119, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 119 })
    );
    assert_eq!(ServerMessage::name_of(ChannelType::MAIN, 1), None);
    // u16 mouse modes cannot carry bits above 0xffff
    let bad = ClientMessage::MouseModeRequest {
        mode: MouseMode::from_bits_retain(0x1_0000),
    };
    assert!(
        bad.encode_body(&mut WriteBuf::new(&mut Vec::new()))
            .is_err()
    );
}

#[test]
fn fuzz_corpus_replays() {
    replay("main_server", spice_proto::main::fuzz_server);
    replay("main_client", spice_proto::main::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use common::roundtrip;
    use proptest::prelude::*;
    use spice_proto::main::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) { roundtrip(ChannelType::MAIN, &m); }
        #[test]
        fn client_round_trip(m in strategies::client_message()) { roundtrip(ChannelType::MAIN, &m); }
        #[test]
        fn random_bytes_never_panic(t in 99u16..121, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut data = t.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::main::fuzz_server(&data);
            spice_proto::main::fuzz_client(&data);
        }
    }
}
