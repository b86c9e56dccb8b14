//! The passthrough channels (usbredir, port, webdav, smartcard) of the session against the
//! scripted in-memory server.

use std::time::Instant;

use spice_client_core::spicevmc::{MAX_PENDING_OUTPUT, SEND_CHUNK};
use spice_client_core::testing::{
    link_reply_bytes, link_reply_with_caps, main_init, raw_message, server_message,
};
use spice_client_core::{ConnId, Event, Session, SessionConfig};
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::HeaderKind;
use spice_proto::main::{self as pmain, ChannelId};
use spice_proto::messages::{ClientMessage, ServerMessage};
use spice_proto::spicevmc::{self, CompressedData, DataCompressionType, PortEvent, PortInit};
use spice_proto::{ChannelType, caps, smartcard};

const MINI: HeaderKind = HeaderKind::Mini;
const LIST: [ChannelType; 4] = [
    ChannelType::USBREDIR,
    ChannelType::PORT,
    ChannelType::WEBDAV,
    ChannelType::SMARTCARD,
];

struct Setup {
    s: Session,
    conns: Vec<(ChannelType, ConnId)>,
    /// The link messages the client sent, per conn.
    links: Vec<Vec<u8>>,
    skipped: Vec<ChannelType>,
}

impl Setup {
    fn conn(&self, ty: ChannelType) -> ConnId {
        self.conns.iter().find(|(t, _)| *t == ty).unwrap().1
    }
}

/// A session with main linked and the passthrough channels listed and linked (the server
/// offering LZ4 when `server_lz4`).
fn setup(config: SessionConfig, server_lz4: bool) -> Setup {
    let now = Instant::now();
    let mut s = Session::new(config).unwrap();
    let main = ConnId(0);
    s.receive(main, &link_reply_bytes(true), now).unwrap();
    s.receive(main, &server_message(MINI, 1, &main_init()), now)
        .unwrap();
    let list = ServerMessage::Main(pmain::ServerMessage::ChannelsList(
        LIST.iter()
            .map(|&t| ChannelId {
                channel_type: t,
                id: 0,
            })
            .collect(),
    ));
    s.receive(main, &server_message(MINI, 2, &list), now)
        .unwrap();
    let mut conns = Vec::new();
    let mut skipped = Vec::new();
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::OpenChannel {
                conn, channel_type, ..
            } if channel_type != ChannelType::MAIN => conns.push((channel_type, conn)),
            Event::ChannelSkipped { channel_type, .. } => skipped.push(channel_type),
            _ => {}
        }
    }
    let mut links = Vec::new();
    for &(ty, c) in &conns {
        let mut out = Vec::new();
        s.transmit(c, &mut out);
        links.push(out);
        let reply = if server_lz4 && ty != ChannelType::SMARTCARD {
            link_reply_with_caps(true, &[caps::spicevmc::DATA_COMPRESS_LZ4])
        } else {
            link_reply_bytes(true)
        };
        s.receive(c, &reply, now).unwrap();
    }
    while s.poll_event().is_some() {}
    for (c, ..) in s.connections().collect::<Vec<_>>() {
        s.transmit(c, &mut Vec::new());
    }
    Setup {
        s,
        conns,
        links,
        skipped,
    }
}

/// The channel caps word of a client link message (header + LinkMess).
fn channel_caps_word(link: &[u8]) -> Option<u32> {
    let body = &link[16..];
    let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().unwrap());
    let (common, channel, offset) = (u32_at(6), u32_at(10), u32_at(14) as usize);
    (channel > 0).then(|| u32_at(offset + 4 * common as usize))
}

fn client_messages(ty: ChannelType, bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut f = Framer::new(MINI, u32::MAX);
    let mut pos = 0;
    let mut v = Vec::new();
    while let Frame::Complete(i) = f.next_frame(&bytes[pos..]).unwrap() {
        let body = bytes[pos + i.body.start..pos + i.body.end].to_vec();
        ClientMessage::decode(ty, i.msg_type, &body).unwrap();
        v.push((i.msg_type, body));
        pos += i.total_len;
    }
    assert_eq!(pos, bytes.len());
    v
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn opens_listed_channels_and_advertises_lz4() {
    let st = setup(SessionConfig::default(), true);
    let mut types: Vec<ChannelType> = st.conns.iter().map(|c| c.0).collect();
    types.sort();
    assert_eq!(
        types,
        [
            ChannelType::SMARTCARD,
            ChannelType::USBREDIR,
            ChannelType::PORT,
            ChannelType::WEBDAV
        ]
    );
    for ((ty, c), link) in st.conns.iter().zip(&st.links) {
        let want = (*ty != ChannelType::SMARTCARD).then_some(1);
        assert_eq!(channel_caps_word(link), want, "{ty}");
        assert_eq!(st.s.vmc_lz4(*c), *ty != ChannelType::SMARTCARD);
        assert_eq!(st.s.passthrough_conn(*ty, 0), Some(*c));
    }
    // The server without the cap: no LZ4.
    let st = setup(SessionConfig::default(), false);
    assert!(!st.s.vmc_lz4(st.conn(ChannelType::USBREDIR)));
    // The client without it: not advertised, not used.
    let mut config = SessionConfig::default();
    config.passthrough.lz4 = false;
    let st = setup(config, true);
    let i = st
        .conns
        .iter()
        .position(|c| c.0 == ChannelType::USBREDIR)
        .unwrap();
    assert_eq!(channel_caps_word(&st.links[i]), None);
    assert!(!st.s.vmc_lz4(st.conn(ChannelType::USBREDIR)));
}

#[test]
fn selection_skips_unwanted_channels() {
    let mut config = SessionConfig::default();
    config.passthrough.port = false;
    config.passthrough.smartcard = false;
    let st = setup(config, true);
    let mut skipped = st.skipped.clone();
    skipped.sort();
    assert_eq!(skipped, [ChannelType::SMARTCARD, ChannelType::PORT]);
    assert_eq!(st.conns.len(), 2);
}

#[test]
fn server_messages_become_events() {
    let mut st = setup(SessionConfig::default(), true);
    let now = Instant::now();
    let port = st.conn(ChannelType::PORT);
    let usb = st.conn(ChannelType::USBREDIR);
    let card = st.conn(ChannelType::SMARTCARD);
    let s = &mut st.s;
    let init = ServerMessage::Spicevmc(spicevmc::ServerMessage::PortInit(PortInit {
        name: b"org.qemu.monitor.qmp.0\0",
        opened: 1,
    }));
    s.receive(port, &server_message(MINI, 1, &init), now)
        .unwrap();
    let ev = ServerMessage::Spicevmc(spicevmc::ServerMessage::PortEvent(PortEvent::CLOSED));
    s.receive(port, &server_message(MINI, 2, &ev), now).unwrap();
    let big: Vec<u8> = (0..50_000u32).map(|i| (i / 300) as u8).collect();
    let block = spice_codecs::vmc_lz4::compress(&big).unwrap();
    let comp = ServerMessage::Spicevmc(spicevmc::ServerMessage::CompressedData(CompressedData {
        compression: DataCompressionType::LZ4,
        uncompressed_size: big.len() as u32,
        data: &block,
    }));
    let plain = ServerMessage::Spicevmc(spicevmc::ServerMessage::Data(b"usb"));
    let mut bytes = server_message(MINI, 1, &plain);
    bytes.extend(server_message(MINI, 2, &comp));
    // Split anywhere: framing copes.
    for chunk in bytes.chunks(777) {
        s.receive(usb, chunk, now).unwrap();
    }
    let vsc = ServerMessage::Smartcard(smartcard::ServerMessage::Data(smartcard::SmartcardData {
        msg_type: smartcard::VscMessageType::APDU,
        reader_id: 1,
        data: &[0x90, 0x00],
    }));
    s.receive(card, &server_message(MINI, 1, &vsc), now)
        .unwrap();
    let evs = events(s);
    let mut usb_data = Vec::new();
    let mut seen = (false, false, false);
    for e in evs {
        match e {
            Event::PortInit {
                conn, name, opened, ..
            } => {
                assert_eq!(
                    (conn, name.as_str(), opened),
                    (port, "org.qemu.monitor.qmp.0", true)
                );
                seen.0 = true;
            }
            Event::PortEvent { conn, event, .. } => {
                assert_eq!((conn, event), (port, 1));
                seen.1 = true;
            }
            Event::VmcData { conn, data, .. } => {
                assert_eq!(conn, usb);
                usb_data.extend(data);
            }
            Event::SmartcardData {
                msg_type,
                reader_id,
                data,
                ..
            } => {
                assert_eq!((msg_type, reader_id, &data[..]), (7, 1, &[0x90, 0][..]));
                seen.2 = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (true, true, true));
    let mut want = b"usb".to_vec();
    want.extend(&big);
    assert_eq!(usb_data, want);
    let port_state = s.port_state(port).unwrap();
    assert_eq!(
        (port_state.name.as_str(), port_state.opened),
        ("org.qemu.monitor.qmp.0", false)
    );
    let stats = s.vmc_stats(usb).unwrap();
    assert_eq!(stats.compressed_received, 1);
    assert_eq!(stats.bytes_received, want.len() as u64);
}

#[test]
fn writes_are_chunked_compressed_and_bounded() {
    let mut st = setup(SessionConfig::default(), true);
    let usb = st.conn(ChannelType::USBREDIR);
    let s = &mut st.s;
    // Compressible and incompressible parts.
    let mut data: Vec<u8> = vec![1u8; 150_000];
    let mut x = 7u32;
    data.extend((0..100_000).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    data.extend(b"tail");
    assert_eq!(s.vmc_write(usb, &data).unwrap(), data.len());
    let mut out = Vec::new();
    s.transmit(usb, &mut out);
    let mut back = Vec::new();
    let mut kinds = Vec::new();
    for (t, body) in client_messages(ChannelType::USBREDIR, &out) {
        let m = ClientMessage::decode(ChannelType::USBREDIR, t, &body).unwrap();
        match m {
            ClientMessage::Spicevmc(spicevmc::ClientMessage::Data(d)) => {
                assert!(d.len() <= SEND_CHUNK);
                back.extend(d);
                kinds.push(101);
            }
            ClientMessage::Spicevmc(spicevmc::ClientMessage::CompressedData(c)) => {
                assert!(c.uncompressed_size as usize <= SEND_CHUNK);
                back.extend(
                    spice_codecs::vmc_lz4::decompress(
                        c.data,
                        c.uncompressed_size as usize,
                        1 << 20,
                    )
                    .unwrap(),
                );
                kinds.push(102);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(back, data);
    assert!(kinds.contains(&101) && kinds.contains(&102), "{kinds:?}");
    // Bounded: a huge incompressible write is taken only up to the output bound (the
    // bound counts bytes on the wire, so compressible data may take more).
    let huge: Vec<u8> = (0..8u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let took = s.vmc_write(usb, &huge).unwrap();
    assert!(took > 0 && took <= MAX_PENDING_OUTPUT * 2, "{took}");
    assert!(s.pending_output(usb) < MAX_PENDING_OUTPUT + SEND_CHUNK);
    assert_eq!(s.vmc_write(usb, &huge).unwrap(), 0);
    s.transmit(usb, &mut Vec::new());
    assert!(s.vmc_write(usb, &huge).unwrap() > 0);
    // Port events and smartcard messages.
    let port = st.conn(ChannelType::PORT);
    st.s.port_event(port, PortEvent::OPENED).unwrap();
    let mut out = Vec::new();
    st.s.transmit(port, &mut out);
    assert_eq!(client_messages(ChannelType::PORT, &out), [(201, vec![0])]);
    assert!(st.s.port_event(usb, PortEvent::OPENED).is_err());
    let card = st.conn(ChannelType::SMARTCARD);
    st.s.smartcard_send(card, 3, 0, b"r").unwrap();
    let mut out = Vec::new();
    st.s.transmit(card, &mut out);
    assert_eq!(
        client_messages(ChannelType::SMARTCARD, &out),
        [(101, vec![3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'r'])]
    );
    assert!(st.s.smartcard_send(usb, 3, 0, b"r").is_err());
    assert!(st.s.vmc_write(card, b"r").is_err());
}

#[test]
fn malformed_data_closes_only_that_channel() {
    let cases: [&[u8]; 3] = [
        &[1, 0x10, 0, 0, 0, 0xff, 0xff], // LZ4 garbage
        &[7, 0, 0, 0, 0, 1],             // unknown compression
        &[1, 0xff, 0xff, 0xff, 0xff, 0], // 4 GiB announced
    ];
    for body in cases {
        let mut st = setup(SessionConfig::default(), true);
        let now = Instant::now();
        let usb = st.conn(ChannelType::USBREDIR);
        let port = st.conn(ChannelType::PORT);
        st.s.receive(usb, &raw_message(MINI, 1, 102, body), now)
            .unwrap();
        let evs = events(&mut st.s);
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::ChannelError { conn, .. } if *conn == usb)),
            "{evs:?}"
        );
        assert!(!evs.iter().any(|e| matches!(e, Event::Disconnected)));
        assert!(st.s.is_closed(usb));
        assert!(!st.s.is_closed(port));
        // The port still delivers.
        let d = ServerMessage::Spicevmc(spicevmc::ServerMessage::Data(b"ok"));
        st.s.receive(port, &server_message(MINI, 1, &d), now)
            .unwrap();
        assert!(matches!(
            st.s.poll_event(),
            Some(Event::VmcData { conn, ref data, .. }) if conn == port && data == b"ok"
        ));
        assert!(st.s.vmc_write(usb, b"x").is_err());
    }
}
