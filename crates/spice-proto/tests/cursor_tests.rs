//! Cursor channel: golden bytes, proptest round trips, malformed input, fuzz corpus replay.

use proptest::prelude::*;
use spice_proto::cursor::{self, CursorSet, ServerMessage};
use spice_proto::types::{Cursor, CursorFlags, CursorHeader, CursorType, Point16};
use spice_proto::{ChannelMessage, ChannelType, DecodeError, WriteBuf};

fn enc(m: &ServerMessage<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    v
}

#[test]
fn cursor_set_alpha_golden() {
    let pixels = [0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x80];
    let m = ServerMessage::Set(CursorSet {
        position: Point16 { x: 10, y: 20 },
        visible: 1,
        cursor: Cursor {
            flags: CursorFlags::CACHE_ME,
            header: Some(CursorHeader {
                unique: 0x42,
                cursor_type: CursorType::ALPHA,
                width: 2,
                height: 1,
                hot_spot_x: 0,
                hot_spot_y: 0,
            }),
            data: &pixels,
        },
    });
    let golden = [
        0x0a, 0x00, 0x14, 0x00, // position
        0x01, // visible
        0x02, 0x00, // flags CACHE_ME
        0x42, 0, 0, 0, 0, 0, 0, 0,    // unique
        0x00, // ALPHA
        0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // w h hx hy
        0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x80, // 2×1 ARGB
    ];
    assert_eq!(enc(&m), golden);
    assert_eq!(
        ServerMessage::decode_body(ChannelType::CURSOR, 103, &golden).unwrap(),
        m
    );
}

#[test]
fn cursor_none_has_no_header() {
    let body = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let m = ServerMessage::decode_body(ChannelType::CURSOR, 101, &body).unwrap();
    match m {
        ServerMessage::Init(i) => {
            assert!(i.cursor.header.is_none());
            assert!(i.cursor.data.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(enc(&m), body);
}

#[test]
fn malformed_cursor_messages() {
    // SET with a header cut short.
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::CURSOR, 103, &[0, 0, 0, 0, 1, 0, 0, 1, 2]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    // MOVE with a trailing byte.
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::CURSOR, 104, &[1, 0, 2, 0, 9]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert_eq!(
        ServerMessage::decode_body(ChannelType::CURSOR, 109, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 109 })
    );
    // An inconsistent cursor does not encode.
    let m = ServerMessage::Set(CursorSet {
        position: Point16::default(),
        visible: 0,
        cursor: Cursor {
            flags: CursorFlags::NONE,
            header: Some(CursorHeader {
                unique: 0,
                cursor_type: CursorType::MONO,
                width: 0,
                height: 0,
                hot_spot_x: 0,
                hot_spot_y: 0,
            }),
            data: &[],
        },
    });
    assert!(m.encode_body(&mut WriteBuf::new(&mut Vec::new())).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_messages_round_trip(m in cursor::strategies::server_message()) {
        let bytes = enc(&m);
        let back = ServerMessage::decode_body(ChannelType::CURSOR, m.msg_type(), &bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(enc(&back), bytes);
        prop_assert_eq!(ServerMessage::name_of(ChannelType::CURSOR, m.msg_type()), Some(m.name()));
    }

    #[test]
    fn random_bytes_never_panic(t in prop_oneof![101u16..=108, any::<u16>()],
                                body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut data = t.to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        cursor::fuzz_server(&data);
    }
}

#[test]
fn replay_fuzz_corpus() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/cursor_server"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        cursor::fuzz_server(&data);
        n += 1;
    }
    assert!(n > 0);
}
