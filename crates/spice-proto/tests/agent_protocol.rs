//! VDAgent protocol: golden bytes, capability handling, chunking and reassembly, malformed
//! input, proptest round trips, fuzz corpus replay.

use spice_proto::agent::*;
use spice_proto::error::DecodeError;

#[test]
fn announce_capabilities_golden() {
    // spice-gtk announces {0,1,2,4,5,6,12,14,16,17} with request = 1 (§4.4)
    let caps = AgentCaps::with(&[
        cap::MOUSE_STATE,
        cap::MONITORS_CONFIG,
        cap::REPLY,
        cap::DISPLAY_CONFIG,
        cap::CLIPBOARD_BY_DEMAND,
        cap::CLIPBOARD_SELECTION,
        cap::MONITORS_CONFIG_POSITION,
        cap::FILE_XFER_DETAILED_ERRORS,
        cap::CLIPBOARD_NO_RELEASE_ON_REGRAB,
        cap::CLIPBOARD_GRAB_SERIAL,
    ]);
    assert_eq!(caps.0, [0x0003_5077]);
    let m = AgentMessage::AnnounceCapabilities(AnnounceCapabilities { request: 1, caps });
    let bytes = [
        1, 0, 0, 0, // protocol
        6, 0, 0, 0, // ANNOUNCE_CAPABILITIES
        0, 0, 0, 0, 0, 0, 0, 0, // opaque
        8, 0, 0, 0, // size
        1, 0, 0, 0, // request
        0x77, 0x50, 0x03, 0x00, // caps[0]
    ];
    let mut out = Vec::new();
    m.encode(0, &mut out).unwrap();
    assert_eq!(out, bytes);
    let (h, back) = decode_message(&bytes, ClipboardOptions::default()).unwrap();
    assert_eq!(
        h,
        AgentHeader {
            protocol: 1,
            msg_type: AgentMessageType::ANNOUNCE_CAPABILITIES,
            opaque: 0,
            size: 8
        }
    );
    assert_eq!(back, m);
    let AgentMessage::AnnounceCapabilities(a) = back else {
        unreachable!()
    };
    assert!(a.caps.has(cap::CLIPBOARD_GRAB_SERIAL));
    assert!(!a.caps.has(cap::CLIPBOARD));
    assert!(!a.caps.has(100));
}

#[test]
fn clipboard_golden_with_and_without_selection() {
    let with_sel = [
        1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, // header, size 10
        1, 0, 0, 0, // selection PRIMARY + 3 reserved
        1, 0, 0, 0, // UTF8_TEXT
        b'h', b'i',
    ];
    let opts = ClipboardOptions {
        selection: true,
        grab_serial: false,
    };
    let m = AgentMessage::Clipboard(Clipboard {
        selection: Some(ClipboardSelection::PRIMARY),
        data_type: ClipboardType::UTF8_TEXT,
        data: b"hi",
    });
    assert_eq!(decode_message(&with_sel, opts).unwrap().1, m);
    let mut out = Vec::new();
    m.encode(0, &mut out).unwrap();
    assert_eq!(out, with_sel);
    // The same body read without the SELECTION cap is a different message.
    let (_, plain) = decode_message(&with_sel, ClipboardOptions::default()).unwrap();
    assert_eq!(
        plain,
        AgentMessage::Clipboard(Clipboard {
            selection: None,
            data_type: ClipboardType(1),
            data: &[1, 0, 0, 0, b'h', b'i']
        })
    );
    // Grab with selection and serial.
    let body = [0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0];
    let g = AgentMessage::decode(
        AgentMessageType::CLIPBOARD_GRAB,
        &body,
        ClipboardOptions {
            selection: true,
            grab_serial: true,
        },
    )
    .unwrap();
    assert_eq!(
        g,
        AgentMessage::ClipboardGrab(ClipboardGrab {
            selection: Some(ClipboardSelection::CLIPBOARD),
            serial: Some(7),
            types: vec![ClipboardType::UTF8_TEXT, ClipboardType::IMAGE_PNG],
        })
    );
    assert_eq!(
        g.clipboard_options(),
        ClipboardOptions {
            selection: true,
            grab_serial: true
        }
    );
    let ours = AgentCaps::with(&[cap::CLIPBOARD_SELECTION, cap::CLIPBOARD_GRAB_SERIAL]);
    let theirs = AgentCaps::with(&[cap::CLIPBOARD_SELECTION]);
    assert_eq!(
        ClipboardOptions::negotiated(&ours, &theirs),
        ClipboardOptions {
            selection: true,
            grab_serial: false
        }
    );
}

#[test]
fn other_bodies_golden() {
    let d = |t, b: &'static [u8]| {
        AgentMessage::decode(AgentMessageType(t), b, ClipboardOptions::default()).unwrap()
    };
    assert_eq!(
        d(1, &[10, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1]),
        AgentMessage::MouseState(MouseState {
            x: 10,
            y: 20,
            buttons: AgentMouseButtons::LEFT,
            display_id: 1
        })
    );
    assert_eq!(
        d(
            2,
            &[
                1, 0, 0, 0, 3, 0, 0, 0, 0x38, 4, 0, 0, 0x80, 7, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0x2c, 1, 0x10, 2
            ]
        ),
        AgentMessage::MonitorsConfig(MonitorsConfig {
            flags: MonitorsConfigFlags::USE_POS | MonitorsConfigFlags::PHYSICAL_SIZE,
            monitors: vec![MonConfig {
                height: 1080,
                width: 1920,
                depth: 32,
                x: 0,
                y: 0
            }],
            physical_sizes: vec![MonitorMm {
                height: 300,
                width: 528
            }],
        })
    );
    assert_eq!(
        d(3, &[2, 0, 0, 0, 1, 0, 0, 0]),
        AgentMessage::Reply(Reply {
            msg_type: AgentMessageType::MONITORS_CONFIG,
            error: ReplyError::SUCCESS
        })
    );
    assert_eq!(d(13, &[]), AgentMessage::ClientDisconnected);
    assert_eq!(
        d(14, &[0xff, 0xff, 0xff, 0xff]),
        AgentMessage::MaxClipboard { max: -1 }
    );
    assert_eq!(
        d(15, &[1, 0, 2, 0xff, 0xff, 0, 0]),
        AgentMessage::AudioVolumeSync(AudioVolumeSync {
            is_playback: 1,
            mute: 0,
            volumes: vec![0xffff, 0]
        })
    );
    assert_eq!(
        d(11, &[3, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0]),
        AgentMessage::FileXferStatus(FileXferStatus {
            id: 3,
            result: FileXferResult::ERROR,
            detail: FileXferDetail::Error {
                error_type: 0,
                error_code: 2
            }
        })
    );
    assert_eq!(
        d(11, &[3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
        AgentMessage::FileXferStatus(FileXferStatus {
            id: 3,
            result: FileXferResult::NOT_ENOUGH_SPACE,
            detail: FileXferDetail::NotEnoughSpace {
                disk_free_space: 1 << 32
            }
        })
    );
    assert_eq!(
        d(12, &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'o', b'k']),
        AgentMessage::FileXferData(FileXferData { id: 1, data: b"ok" })
    );
    assert_eq!(
        d(
            16,
            &[
                1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0
            ]
        ),
        AgentMessage::GraphicsDeviceInfo(GraphicsDeviceInfo {
            devices: vec![DeviceDisplayInfo {
                channel_id: 0,
                monitor_id: 0,
                device_display_id: 1,
                device_address: b"a\0"
            }]
        })
    );
    assert_eq!(
        d(99, &[1, 2]),
        AgentMessage::Unknown {
            msg_type: AgentMessageType(99),
            data: &[1, 2]
        }
    );
}

#[test]
fn malformed_agent() {
    let d = |t, b: &'static [u8]| {
        AgentMessage::decode(AgentMessageType(t), b, ClipboardOptions::default())
    };
    assert!(matches!(
        d(2, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        d(16, &[0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        d(12, &[0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        d(6, &[1, 0, 0, 0, 1]),
        Err(DecodeError::TrailingBytes { .. })
    ));
    assert!(matches!(
        d(15, &[1, 0, 5, 0]),
        Err(DecodeError::CountTooLarge { .. })
    ));
    assert!(matches!(
        d(1, &[0; 12]),
        Err(DecodeError::NotEnoughBytes { .. })
    ));
    // header protocol and size are checked
    let mut bytes = vec![2, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        decode_message(&bytes, ClipboardOptions::default()),
        Err(DecodeError::InvalidValue { .. })
    ));
    bytes[0] = 1;
    bytes[16] = 1;
    assert!(matches!(
        decode_message(&bytes, ClipboardOptions::default()),
        Err(DecodeError::CountTooLarge { .. })
    ));
    // inconsistent values do not encode
    let bad = AgentMessage::MonitorsConfig(MonitorsConfig {
        flags: MonitorsConfigFlags::PHYSICAL_SIZE,
        monitors: vec![MonConfig {
            height: 1,
            width: 1,
            depth: 32,
            x: 0,
            y: 0,
        }],
        physical_sizes: vec![],
    });
    assert!(bad.encode(0, &mut Vec::new()).is_err());
    let bad = AgentMessage::FileXferStatus(FileXferStatus {
        id: 0,
        result: FileXferResult::SUCCESS,
        detail: FileXferDetail::NotEnoughSpace { disk_free_space: 0 },
    });
    assert!(bad.encode(0, &mut Vec::new()).is_err());
}

fn big_clipboard() -> Vec<u8> {
    let data: &'static [u8] = Vec::leak((0..5000u32).map(|i| i as u8).collect());
    let mut out = Vec::new();
    AgentMessage::Clipboard(Clipboard {
        selection: None,
        data_type: ClipboardType::IMAGE_PNG,
        data,
    })
    .encode(7, &mut out)
    .unwrap();
    out
}

#[test]
fn main_channel_chunks_and_reassembly() {
    let msg = big_clipboard();
    let chunks: Vec<&[u8]> = agent_data_chunks(&msg).collect();
    assert_eq!(
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
        [2048, 2048, 5024 - 4096]
    );
    let mut r = AgentReassembler::new(8192);
    let mut got = 0;
    for (i, c) in chunks.iter().enumerate() {
        let mut input = *c;
        while let Some(m) = r.push(&mut input).unwrap() {
            assert_eq!(i, 2);
            assert_eq!(m.header.opaque, 7);
            assert_eq!(m.header.size, 5004);
            let AgentMessage::Clipboard(c) = m.decode(ClipboardOptions::default()).unwrap() else {
                panic!()
            };
            assert_eq!(c.data.len(), 5000);
            got += 1;
        }
        assert!(input.is_empty());
    }
    assert_eq!(got, 1);
    assert!(r.is_idle());

    // Two messages in one buffer, fed byte by byte.
    let mut two = Vec::new();
    AgentMessage::ClientDisconnected
        .encode(1, &mut two)
        .unwrap();
    AgentMessage::MaxClipboard { max: 5 }
        .encode(2, &mut two)
        .unwrap();
    let mut seen = vec![];
    for b in &two {
        let mut input = std::slice::from_ref(b);
        while let Some(m) = r.push(&mut input).unwrap() {
            seen.push((
                m.header.opaque,
                m.decode(ClipboardOptions::default()).unwrap().msg_type(),
            ));
        }
    }
    assert_eq!(
        seen,
        [
            (1, AgentMessageType::CLIENT_DISCONNECTED),
            (2, AgentMessageType::MAX_CLIPBOARD)
        ]
    );
}

#[test]
fn reassembler_enforces_limit_and_protocol() {
    let msg = big_clipboard();
    let mut r = AgentReassembler::new(4096);
    let mut input = &msg[..];
    assert_eq!(
        r.push(&mut input).unwrap_err(),
        AgentStreamError::MessageTooLarge {
            size: 5004,
            max: 4096
        }
    );
    // A hostile 4 GiB size allocates nothing and fails at once.
    let mut hdr = vec![
        1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ];
    let mut r = AgentReassembler::new(1 << 20);
    assert!(matches!(
        r.push(&mut &hdr[..]),
        Err(AgentStreamError::MessageTooLarge { size: u32::MAX, .. })
    ));
    hdr[0] = 9;
    assert_eq!(
        r.push(&mut &hdr[..]).unwrap_err(),
        AgentStreamError::BadProtocol { protocol: 9 }
    );
}

#[test]
fn vdi_chunks_round_trip() {
    let msg = big_clipboard();
    let mut wire = Vec::new();
    write_vdi_chunks(VdiPort::CLIENT, &msg, &mut wire);
    assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 8, 0, 0]); // port 1, size 2048
    assert_eq!(wire.len(), msg.len() + 3 * VdiChunkHeader::SIZE);
    let mut d = VdiDechunker::new();
    let mut r = AgentReassembler::new(1 << 16);
    let mut n = 0;
    for piece in wire.chunks(333) {
        let mut input = piece;
        while let Some((port, payload)) = d.push(&mut input).unwrap() {
            assert_eq!(port, VdiPort::CLIENT);
            let mut p = payload;
            while let Some(m) = r.push(&mut p).unwrap() {
                assert_eq!(m.header.size, 5004);
                n += 1;
            }
        }
    }
    assert_eq!(n, 1);
    let mut bad = &[2u8, 0, 0, 0, 0x01, 0x08, 0, 0][..];
    assert_eq!(
        d.push(&mut bad).unwrap_err(),
        AgentStreamError::ChunkTooLarge {
            size: 2049,
            max: 2048
        }
    );
}

#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/agent");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        fuzz_agent(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0);
}

#[cfg(feature = "proptest")]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn message_round_trip(m in strategies::message(), opaque in any::<u64>()) {
            let mut out = Vec::new();
            m.encode(opaque, &mut out).unwrap();
            let bytes: &'static [u8] = Vec::leak(out);
            let (h, back) = decode_message(bytes, m.clipboard_options()).unwrap();
            prop_assert_eq!(h.opaque, opaque);
            prop_assert_eq!(h.msg_type, m.msg_type());
            prop_assert_eq!(&back, &m);
            let mut again = Vec::new();
            back.encode(opaque, &mut again).unwrap();
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn reassembly_of_any_split(ms in proptest::collection::vec(strategies::message(), 1..4), piece in 1usize..50) {
            let mut stream = Vec::new();
            for m in &ms {
                m.encode(0, &mut stream).unwrap();
            }
            let mut r = AgentReassembler::new(1 << 16);
            let mut got = Vec::new();
            for p in stream.chunks(piece) {
                let mut input = p;
                while let Some(a) = r.push(&mut input).unwrap() {
                    got.push(a.body.to_vec());
                }
            }
            prop_assert_eq!(got.len(), ms.len());
            for (body, m) in got.iter().zip(&ms) {
                let bytes: &'static [u8] = Vec::leak(body.clone());
                prop_assert_eq!(&AgentMessage::decode(m.msg_type(), bytes, m.clipboard_options()).unwrap(), m);
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            fuzz_agent(&data);
            for t in 0..18 {
                let _ = AgentMessage::decode(AgentMessageType(t), &data, ClipboardOptions { selection: true, grab_serial: true });
            }
        }
    }
}
