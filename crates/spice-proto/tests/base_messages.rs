//! Base (every-channel) messages: golden bytes, round trips, malformed input, sub-lists.

use proptest::prelude::*;
use spice_proto::base::strategies::{client_message, server_message, sub_message_list};
use spice_proto::base::*;
use spice_proto::header::{HeaderKind, write_channel_message};
use spice_proto::link::LinkErr;
use spice_proto::{ChannelMessage, ChannelType, DecodeError, WriteBuf};

fn encode<'a, M: ChannelMessage<'a>>(m: &M) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    v
}

const MAIN: ChannelType = ChannelType::MAIN;

/// (message, body bytes) pairs worked out by hand from protocol.md §1.9.
fn server_golden() -> Vec<(ServerMessage<'static>, Vec<u8>)> {
    vec![
        (
            ServerMessage::Migrate(MigrateFlags::NEED_FLUSH | MigrateFlags::NEED_DATA_TRANSFER),
            vec![3, 0, 0, 0],
        ),
        (ServerMessage::MigrateData(b"xyz"), b"xyz".to_vec()),
        (
            ServerMessage::SetAck(SetAck {
                generation: 1,
                window: 20,
            }),
            vec![1, 0, 0, 0, 20, 0, 0, 0],
        ),
        (
            ServerMessage::Ping(Ping {
                id: 1,
                timestamp: 0x0102,
                data: &[0xaa, 0xbb],
            }),
            vec![1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb],
        ),
        (
            ServerMessage::WaitForChannels(vec![WaitForChannel {
                channel_type: ChannelType::DISPLAY,
                channel_id: 0,
                message_serial: 42,
            }]),
            vec![1, 2, 0, 42, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            ServerMessage::Disconnecting(Disconnecting {
                time_stamp: 5,
                reason: LinkErr::ERROR,
            }),
            vec![5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        ),
        (
            // spice-server's notify: message_len = strlen, then the text and a NUL.
            ServerMessage::Notify(Notify {
                time_stamp: 0,
                severity: NotifySeverity::WARN,
                visibility: NotifyVisibility::HIGH,
                what: 0,
                message: b"hi",
                nul_terminated: true,
            }),
            vec![
                0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'h', b'i',
                0,
            ],
        ),
        (
            // Mini-header free list: WAIT_FOR_CHANNELS (5, empty list) then a display
            // INVAL_LIST-like sub-message (type 0x130, 2 bytes).
            ServerMessage::List(SubMessageList {
                messages: vec![
                    SubMessage {
                        msg_type: 5,
                        body: &[0],
                    },
                    SubMessage {
                        msg_type: 0x130,
                        body: &[9, 8],
                    },
                ],
            }),
            vec![
                2, 0, // count
                10, 0, 0, 0, // offset of first
                17, 0, 0, 0, // offset of second
                5, 0, 1, 0, 0, 0, 0, // {type 5, size 1, body}
                0x30, 1, 2, 0, 0, 0, 9, 8, // {type 0x130, size 2, body}
            ],
        ),
    ]
}

fn client_golden() -> Vec<(ClientMessage<'static>, Vec<u8>)> {
    vec![
        (ClientMessage::AckSync { generation: 7 }, vec![7, 0, 0, 0]),
        (ClientMessage::Ack, vec![]),
        (
            ClientMessage::Pong(Pong {
                id: 3,
                timestamp: u64::MAX,
            }),
            vec![3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (ClientMessage::MigrateFlushMark, vec![]),
        (ClientMessage::MigrateData(&[1, 2]), vec![1, 2]),
        (
            ClientMessage::Disconnecting(Disconnecting {
                time_stamp: 1,
                reason: LinkErr(77),
            }),
            vec![1, 0, 0, 0, 0, 0, 0, 0, 77, 0, 0, 0],
        ),
    ]
}

#[test]
fn server_golden_bytes() {
    let golden = server_golden();
    assert_eq!(golden.len(), 8);
    for (msg, bytes) in golden {
        assert_eq!(encode(&msg), bytes, "{}", msg.name());
        assert_eq!(
            ServerMessage::decode_body(MAIN, msg.msg_type(), &bytes).unwrap(),
            msg
        );
        assert_eq!(
            ServerMessage::name_of(MAIN, msg.msg_type()),
            Some(msg.name())
        );
    }
}

#[test]
fn client_golden_bytes() {
    let golden = client_golden();
    assert_eq!(golden.len(), 6);
    for (msg, bytes) in golden {
        assert_eq!(encode(&msg), bytes, "{}", msg.name());
        assert_eq!(
            ClientMessage::decode_body(MAIN, msg.msg_type(), &bytes).unwrap(),
            msg
        );
        assert_eq!(
            ClientMessage::name_of(MAIN, msg.msg_type()),
            Some(msg.name())
        );
    }
}

#[test]
fn appendix_a_ack_with_mini_header() {
    // Appendix A: client ACK = 02 00 00 00 00 00.
    let mut out = Vec::new();
    write_channel_message(&mut out, HeaderKind::Mini, 1, &ClientMessage::Ack).unwrap();
    assert_eq!(out, [2, 0, 0, 0, 0, 0]);
}

#[test]
fn names_and_unknown_types() {
    assert_eq!(ServerMessage::name_of(MAIN, 100), None);
    assert_eq!(ServerMessage::name_of(MAIN, 4), Some("ping"));
    assert_eq!(
        ClientMessage::name_of(ChannelType::DISPLAY, 4),
        Some("migrate_flush_mark")
    );
    assert_eq!(ClientMessage::name_of(MAIN, 7), None);
    assert_eq!(
        ServerMessage::decode_body(MAIN, 9, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 9 })
    );
    // The tunnel channel has no messages at all.
    assert_eq!(ServerMessage::name_of(ChannelType::TUNNEL, 4), None);
    assert!(ClientMessage::decode_body(ChannelType::TUNNEL, 2, &[]).is_err());
}

#[test]
fn malformed_bodies_are_typed_errors() {
    use DecodeError::*;
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 3, &[0; 7]),
        Err(NotEnoughBytes { .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 3, &[0; 9]),
        Err(TrailingBytes { extra: 1, .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 4, &[0; 11]),
        Err(NotEnoughBytes { .. })
    ));
    // wait_count 255 with nothing behind it: refused before allocating.
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 5, &[255]),
        Err(CountTooLarge { count: 255, .. })
    ));
    // notify: message_len larger than the data
    let mut n = vec![0u8; 24];
    n[20] = 5;
    n.extend_from_slice(b"abc");
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 7, &n),
        Err(NotEnoughBytes { .. })
    ));
    // notify: trailing bytes other than one NUL
    let mut n = vec![0u8; 24];
    n.extend_from_slice(&[0, 0]);
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 7, &n),
        Err(TrailingBytes { extra: 2, .. })
    ));
    let mut n = vec![0u8; 24];
    n.push(1);
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 7, &n),
        Err(TrailingBytes { extra: 1, .. })
    ));
    // A NUL-less notify (not spice-server's quirk) is fine too.
    let m = ServerMessage::decode_body(MAIN, 7, &[0u8; 24]).unwrap();
    assert!(matches!(
        m,
        ServerMessage::Notify(Notify {
            nul_terminated: false,
            ..
        })
    ));
    // list: count larger than the data, offset past the end, sub-message size past the end
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 8, &[0xff, 0xff, 0, 0]),
        Err(CountTooLarge { .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 8, &[1, 0, 99, 0, 0, 0]),
        Err(OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        ServerMessage::decode_body(MAIN, 8, &[1, 0, 6, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]),
        Err(NotEnoughBytes { .. })
    ));
    // pong with the ping data echoed is not what the protocol says
    assert!(matches!(
        ClientMessage::decode_body(MAIN, 3, &[0; 13]),
        Err(TrailingBytes { .. })
    ));
    assert!(matches!(
        ClientMessage::decode_body(MAIN, 2, &[0]),
        Err(TrailingBytes { .. })
    ));
}

#[test]
fn full_header_sub_list() {
    let list = SubMessageList {
        messages: vec![SubMessage {
            msg_type: 5,
            body: &[0],
        }],
    };
    let mut out = Vec::new();
    write_full_message_with_sub_list(
        &mut out,
        9,
        3,
        |w| {
            w.write_u32(1);
            w.write_u32(20);
            Ok(())
        },
        &list,
    )
    .unwrap();
    // header: serial 9, type 3, size 8 + 2 + 4 + 7 = 21, sub_list 8
    assert_eq!(
        &out[..18],
        &[9, 0, 0, 0, 0, 0, 0, 0, 3, 0, 21, 0, 0, 0, 8, 0, 0, 0]
    );
    let body = &out[18..];
    let (main, sub) = split_sub_list(body, 8).unwrap();
    assert_eq!(
        ServerMessage::decode_body(MAIN, 3, main).unwrap(),
        ServerMessage::SetAck(SetAck {
            generation: 1,
            window: 20
        })
    );
    assert_eq!(sub.unwrap(), list);
    assert_eq!(split_sub_list(body, 0).unwrap(), (body, None));
    assert!(split_sub_list(body, 200).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_round_trip(m in server_message()) {
        let b = encode(&m);
        let d = ServerMessage::decode_body(MAIN, m.msg_type(), &b).unwrap();
        prop_assert_eq!(&d, &m);
        prop_assert_eq!(encode(&d), b);
    }

    #[test]
    fn client_round_trip(m in client_message()) {
        let b = encode(&m);
        let d = ClientMessage::decode_body(MAIN, m.msg_type(), &b).unwrap();
        prop_assert_eq!(&d, &m);
        prop_assert_eq!(encode(&d), b);
    }

    #[test]
    fn sub_list_round_trip(l in sub_message_list(), prefix in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut out = Vec::new();
        let mut w = WriteBuf::new(&mut out);
        w.write_slice(&prefix);
        spice_proto::Encode::encode(&l, &mut w).unwrap();
        let (main, sub) = split_sub_list(&out, prefix.len() as u32).unwrap();
        prop_assert_eq!(main, &prefix[..]);
        prop_assert_eq!(sub.unwrap(), l);
    }

    #[test]
    fn decoders_never_panic(ty in 0u16..12, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut data = ty.to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        fuzz_base_messages(&data);
    }
}
