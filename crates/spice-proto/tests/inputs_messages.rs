//! Inputs channel: golden bytes, malformed input, proptest round trips, fuzz corpus replay.

mod common;
use common::{enc, replay};
use spice_proto::error::DecodeError;
use spice_proto::inputs::{
    ClientMessage, KeyboardModifiers, MouseButton, MouseButtonMask, ServerMessage, make_scancode,
    scancode_bytes,
};
use spice_proto::{ChannelMessage, ChannelType};

fn client(t: u16, b: &[u8]) -> Result<ClientMessage<'_>, DecodeError> {
    ClientMessage::decode_body(ChannelType::INPUTS, t, b)
}

#[test]
fn key_down_golden() {
    // A make code 0x1e; Right-Ctrl = E0 1D -> 0x00001de0 (§6.1).
    assert_eq!(
        client(101, &[0x1e, 0, 0, 0]).unwrap(),
        ClientMessage::KeyDown { code: 0x1e }
    );
    assert_eq!(
        enc(&ClientMessage::KeyDown {
            code: make_scancode(0x1d, true, false)
        }),
        [0xe0, 0x1d, 0, 0]
    );
    assert_eq!(
        enc(&ClientMessage::KeyUp {
            code: make_scancode(0x1d, true, true)
        }),
        [0xe0, 0x9d, 0, 0]
    );
    assert_eq!(make_scancode(0x1e, false, true), 0x9e);
    assert_eq!(scancode_bytes(0x9de0).collect::<Vec<_>>(), [0xe0, 0x9d]);
    assert_eq!(scancode_bytes(0).count(), 0);
}

#[test]
fn mouse_golden() {
    let motion = [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0x01, 0x00];
    let m = ClientMessage::MouseMotion {
        dx: -1,
        dy: 2,
        buttons_state: MouseButtonMask::LEFT,
    };
    assert_eq!(client(111, &motion).unwrap(), m);
    assert_eq!(enc(&m), motion);
    let pos = [0x20, 0x03, 0, 0, 0x58, 0x02, 0, 0, 0x05, 0x00, 1];
    let p = ClientMessage::MousePosition {
        x: 800,
        y: 600,
        buttons_state: MouseButtonMask::LEFT | MouseButtonMask::RIGHT,
        display_id: 1,
    };
    assert_eq!(client(112, &pos).unwrap(), p);
    assert_eq!(enc(&p), pos);
    let press = ClientMessage::MousePress {
        button: MouseButton::UP,
        buttons_state: MouseButtonMask::UP,
    };
    assert_eq!(enc(&press), [4, 8, 0]);
    assert_eq!(client(113, &[4, 8, 0]).unwrap(), press);
    assert_eq!(MouseButton::EXTRA.mask(), Some(MouseButtonMask::EXTRA));
    assert_eq!(MouseButton::INVALID.mask(), None);
    assert_eq!(
        client(104, &[0xe0, 0x1d, 0xe0, 0x9d]).unwrap(),
        ClientMessage::KeyScancode(&[0xe0, 0x1d, 0xe0, 0x9d])
    );
}

#[test]
fn server_golden() {
    let s = |t, b: &[u8]| ServerMessage::decode_body(ChannelType::INPUTS, t, b).unwrap();
    assert_eq!(
        s(101, &[0x06, 0]),
        ServerMessage::Init {
            keyboard_modifiers: KeyboardModifiers::NUM_LOCK | KeyboardModifiers::CAPS_LOCK
        }
    );
    // unknown bits are kept
    assert_eq!(
        s(102, &[0x00, 0x80]),
        ServerMessage::KeyModifiers {
            modifiers: KeyboardModifiers::from_bits_retain(0x8000)
        }
    );
    assert_eq!(s(111, &[]), ServerMessage::MouseMotionAck);
    assert_eq!(
        enc(&ServerMessage::KeyModifiers {
            modifiers: KeyboardModifiers::SCROLL_LOCK
        }),
        [1, 0]
    );
}

#[test]
fn malformed_inputs() {
    assert!(matches!(
        client(111, &[0; 9]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    assert!(matches!(
        client(101, &[0; 5]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert_eq!(
        client(105, &[]),
        Err(DecodeError::UnknownMessage { msg_type: 105 })
    );
    assert!(ServerMessage::decode_body(ChannelType::INPUTS, 111, &[0]).is_err());
}

#[test]
fn fuzz_corpus_replays() {
    replay("inputs_server", spice_proto::inputs::fuzz_server);
    replay("inputs_client", spice_proto::inputs::fuzz_client);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use common::roundtrip;
    use proptest::prelude::*;
    use spice_proto::inputs::strategies;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn server_round_trip(m in strategies::server_message()) { roundtrip(ChannelType::INPUTS, &m); }
        #[test]
        fn client_round_trip(m in strategies::client_message()) { roundtrip(ChannelType::INPUTS, &m); }
        #[test]
        fn random_bytes_never_panic(t in 99u16..116, body in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut data = t.to_le_bytes().to_vec();
            data.extend_from_slice(&body);
            spice_proto::inputs::fuzz_server(&data);
            spice_proto::inputs::fuzz_client(&data);
        }
    }
}
