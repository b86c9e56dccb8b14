//! Display channel: proptest round trips, random bytes, malformed input.

use proptest::prelude::*;
use spice_proto::display::{self, ClientMessage, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType, DecodeError, WriteBuf};

fn enc<'a, M: ChannelMessage<'a>>(m: &M) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).expect("encodes");
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_messages_round_trip(m in display::strategies::server_message()) {
        let bytes = enc(&m);
        let back = ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(enc(&back), bytes);
        prop_assert_eq!(ServerMessage::name_of(ChannelType::DISPLAY, m.msg_type()), Some(m.name()));
    }

    #[test]
    fn client_messages_round_trip(m in display::strategies::client_message()) {
        let bytes = enc(&m);
        let back = ClientMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(enc(&back), bytes);
    }

    #[test]
    fn random_bytes_never_panic(t in prop_oneof![101u16..=108, 122u16..=126, 302u16..=323, any::<u16>()],
                                body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut data = t.to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        display::fuzz_server(&data);
        display::fuzz_client(&data);
    }

    #[test]
    fn truncations_fail_cleanly(m in display::strategies::server_message(), cut in any::<prop::sample::Index>()) {
        let bytes = enc(&m);
        if !bytes.is_empty() {
            let n = cut.index(bytes.len());
            // Any prefix either fails with an error or (for rest-of-message payloads) decodes.
            let _ = ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes[..n]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        // One byte more is never accepted, except where the last field is "the rest".
        let r = ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &longer);
        if !matches!(m, ServerMessage::QualityIndicator(_)) {
            prop_assert!(r.is_err(), "trailing byte accepted for {}", m.name());
        }
    }

    #[test]
    fn mutated_messages_keep_the_round_trip_invariant(
        m in display::strategies::server_message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut data = m.msg_type().to_le_bytes().to_vec();
        data.extend_from_slice(&enc(&m));
        for (at, v) in edits {
            if data.len() == 2 {
                break;
            }
            let i = at.index(data.len() - 2) + 2;
            data[i] = v;
        }
        display::fuzz_server(&data);
    }

    #[test]
    fn pointer_fields_are_bounds_checked(m in display::strategies::server_message(), off in any::<u32>()) {
        // Overwrite every aligned u32 in turn with a random offset: decoding must not panic.
        let bytes = enc(&m);
        for i in (0..bytes.len().saturating_sub(3)).step_by(4) {
            let mut b = bytes.clone();
            b[i..i + 4].copy_from_slice(&off.to_le_bytes());
            let _ = ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), &b);
        }
    }
}

#[test]
fn unknown_types_are_typed_errors() {
    for t in [0u16, 8, 100, 109, 121, 127, 301, 324, 0xffff] {
        assert_eq!(
            ServerMessage::decode_body(ChannelType::DISPLAY, t, &[]),
            Err(DecodeError::UnknownMessage { msg_type: t })
        );
    }
    assert_eq!(
        ClientMessage::decode_body(ChannelType::DISPLAY, 106, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 106 })
    );
    assert_eq!(
        ServerMessage::name_of(ChannelType::DISPLAY, 323),
        Some("gl_scanout2_unix")
    );
    assert_eq!(
        ClientMessage::name_of(ChannelType::DISPLAY, 105),
        Some("preferred_video_codec_type")
    );
}

/// A DRAW_COPY whose source pointer is `ptr`, the rest minimal (no clip, no mask).
fn draw_copy_with_ptr(ptr: u32, tail: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 21]; // surface 0, box 0, clip NONE
    b.extend_from_slice(&ptr.to_le_bytes());
    b.extend_from_slice(&[0; 16]); // src_area
    b.extend_from_slice(&8u16.to_le_bytes()); // OP_PUT
    b.push(0); // scale mode
    b.extend_from_slice(&[0; 13]); // mask: flags, pos, NULL
    b.extend_from_slice(tail);
    b
}

#[test]
fn malformed_pointers_and_counts() {
    // Pointer past the end.
    let b = draw_copy_with_ptr(1000, &[]);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 304, &b),
        Err(DecodeError::OffsetOutOfRange { offset: 1000, .. })
    ));
    // Pointer to the very end: the descriptor does not fit.
    let b = draw_copy_with_ptr(57, &[]);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 304, &b),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    // A QUIC image claiming 4 GiB of data.
    let mut img = vec![0u8; 8];
    img.extend_from_slice(&[1, 0]); // QUIC, no flags
    img.extend_from_slice(&[0; 8]);
    img.extend_from_slice(&u32::MAX.to_le_bytes());
    let b = draw_copy_with_ptr(57, &img);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 304, &b),
        Err(DecodeError::CountTooLarge { .. })
    ));
    // RESERVED image type.
    let mut img = vec![0u8; 8];
    img.extend_from_slice(&[2, 0]);
    img.extend_from_slice(&[0; 8]);
    let b = draw_copy_with_ptr(57, &img);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 304, &b),
        Err(DecodeError::InvalidValue {
            field: "image type",
            value: 2
        })
    ));
    // Bytes after the last pointee.
    let mut img = vec![0u8; 8];
    img.extend_from_slice(&[103, 0]); // FROM_CACHE
    img.extend_from_slice(&[0; 8]);
    img.push(0xee);
    let b = draw_copy_with_ptr(57, &img);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 304, &b),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
    // A pattern brush with a NULL (nonnull) image pointer.
    let mut b = vec![0u8; 21];
    b.push(2);
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&[0; 15]);
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 302, &b),
        Err(DecodeError::NullPointer { .. })
    ));
    // A clip claiming 2^32-1 rectangles.
    let mut b = vec![0u8; 20];
    b.push(1);
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 104, &b),
        Err(DecodeError::CountTooLarge { .. })
    ));
    // MONITORS_CONFIG with more heads than bytes.
    let b = [5, 0, 1, 0];
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 317, &b),
        Err(DecodeError::CountTooLarge { .. })
    ));
    // DRAW_STROKE with a NULL path.
    let mut b = vec![0u8; 21];
    b.extend_from_slice(&[0; 4]); // NULL path
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // attr, brush none, modes
    assert!(matches!(
        ServerMessage::decode_body(ChannelType::DISPLAY, 310, &b),
        Err(DecodeError::NullPointer { .. })
    ));
}

#[test]
fn inconsistent_values_do_not_encode() {
    use spice_proto::types::*;
    let bad_bitmap = Image {
        id: 0,
        flags: ImageFlags::empty(),
        width: 1,
        height: 1,
        body: ImageBody::Bitmap(Bitmap {
            format: BitmapFormat::BIT32,
            flags: BitmapFlags::empty(),
            x: 1,
            y: 1,
            stride: 4,
            palette: PaletteSource::None,
            data: &[1, 2, 3],
        }),
    };
    let m = ServerMessage::DrawCopy(display::DrawCopy {
        base: DisplayBase::default(),
        src_bitmap: Some(bad_bitmap),
        src_area: Rect::default(),
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::INTERPOLATE,
        mask: QMask::default(),
    });
    let mut v = Vec::new();
    assert!(m.encode_body(&mut WriteBuf::new(&mut v)).is_err());
}

fn replay(dir: &str, f: fn(&[u8])) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn replay_fuzz_corpora() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus");
    assert!(replay(&format!("{root}/display_server"), display::fuzz_server) > 0);
    assert!(replay(&format!("{root}/display_client"), display::fuzz_client) > 0);
}

#[test]
fn corpus_seeds_decode() {
    // Every committed seed is a valid message (they double as extra golden inputs).
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus");
    for (dir, client) in [("display_server", false), ("display_client", true)] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let t = u16::from_le_bytes([data[0], data[1]]);
            let ok = if client {
                ClientMessage::decode_body(ChannelType::DISPLAY, t, &data[2..]).map(|m| enc(&m))
            } else {
                ServerMessage::decode_body(ChannelType::DISPLAY, t, &data[2..]).map(|m| enc(&m))
            };
            assert_eq!(ok.as_deref(), Ok(&data[2..]), "{}", path.display());
        }
    }
}
