//! The passthrough channels (usbredir, port, webdav, smartcard) end to end: our client core
//! (blocking driver, TCP) against our server with in-memory echo devices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::{ConnId, Event, SessionConfig, SpiceUri};
use spice_proto::spicevmc::{self, CompressedData, DataCompressionType, PortEvent};
use spice_proto::{ChannelMessage, ChannelType};
use spice_server::config::ServerConfig;
use spice_server::host::{CharDevice, CharDeviceKind, Host};
use spice_server::server::{Server, ServerBuilder};
use spice_server::spicevmc::{EchoDevice, WEBDAV_PORT_NAME};
use spice_server::test_client::{TestClient, TestClientError, link_config};

const PORT_NAME: &str = "org.example.test.0";
const T: Duration = Duration::from_secs(20);

struct Devices {
    usb: Arc<EchoDevice>,
    port: Arc<EchoDevice>,
    webdav: Arc<EchoDevice>,
    card: Arc<EchoDevice>,
}

fn start() -> (Server, SocketAddr, Devices) {
    let d = Devices {
        usb: Arc::new(EchoDevice::new(CharDeviceKind::UsbRedir, 64 * 1024)),
        port: Arc::new(EchoDevice::new(
            CharDeviceKind::Port {
                name: PORT_NAME.into(),
            },
            64 * 1024,
        )),
        webdav: Arc::new(EchoDevice::new(CharDeviceKind::Webdav, 64 * 1024)),
        card: Arc::new(EchoDevice::new(CharDeviceKind::Smartcard, 64 * 1024)),
    };
    let host = Host {
        char_devices: vec![
            d.usb.clone() as Arc<dyn CharDevice>,
            d.port.clone(),
            d.webdav.clone(),
            d.card.clone(),
        ],
        ..Host::default()
    };
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let addr = server.local_addrs()[0];
    (server, addr, d)
}

/// A client plus everything its events told so far.
struct Harness {
    client: Client,
    session_id: Option<u32>,
    linked: HashMap<ChannelType, ConnId>,
    data: HashMap<ConnId, Vec<u8>>,
    port_inits: HashMap<ConnId, (String, bool)>,
    port_events: Vec<(ConnId, u8)>,
    cards: Vec<(u32, u32, Vec<u8>)>,
    errors: Vec<(ChannelType, String)>,
    closed: Vec<ChannelType>,
}

impl Harness {
    fn connect(addr: SocketAddr, config: SessionConfig) -> Self {
        let uri = SpiceUri::parse(&format!("spice://{addr}")).unwrap();
        Self {
            client: Client::connect(&uri, config).unwrap(),
            session_id: None,
            linked: HashMap::new(),
            data: HashMap::new(),
            port_inits: HashMap::new(),
            port_events: Vec::new(),
            cards: Vec::new(),
            errors: Vec::new(),
            closed: Vec::new(),
        }
    }

    fn pump(&mut self, wait: Duration) {
        let Some(ev) = self.client.poll(wait).expect("session") else {
            return;
        };
        match ev {
            Event::MainInit { session_id, .. } => self.session_id = Some(session_id),
            Event::ChannelLinked {
                conn, channel_type, ..
            } => {
                self.linked.insert(channel_type, conn);
            }
            Event::VmcData { conn, data, .. } => {
                self.data.entry(conn).or_default().extend_from_slice(&data)
            }
            Event::PortInit {
                conn, name, opened, ..
            } => {
                self.port_inits.insert(conn, (name, opened));
            }
            Event::PortEvent { conn, event, .. } => self.port_events.push((conn, event)),
            Event::SmartcardData {
                msg_type,
                reader_id,
                data,
                ..
            } => self.cards.push((msg_type, reader_id, data)),
            Event::ChannelError {
                channel_type,
                error,
                ..
            } => self.errors.push((channel_type, error.to_string())),
            Event::ChannelClosed { channel_type, .. } => self.closed.push(channel_type),
            _ => {}
        }
    }

    fn until(&mut self, what: &str, f: impl Fn(&Self) -> bool) {
        let end = Instant::now() + T;
        while !f(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            assert!(self.errors.is_empty(), "{:?}", self.errors);
            self.pump(Duration::from_millis(20));
        }
    }

    fn conn(&mut self, ty: ChannelType) -> ConnId {
        self.until(&format!("{ty} linked"), |h| h.linked.contains_key(&ty));
        self.linked[&ty]
    }

    fn received(&self, conn: ConnId) -> usize {
        self.data.get(&conn).map_or(0, Vec::len)
    }

    /// Sends `data` on `conn` and waits until as many bytes came back, keeping at most
    /// `window` bytes sent and not yet echoed (the blocking driver's socket writes block,
    /// so an echo test must not run ahead of what the buffers on the way hold).
    fn echo(&mut self, conn: ConnId, data: &[u8], window: usize) {
        let base = self.received(conn);
        let mut sent = 0;
        let mut chunk = 1000;
        let end = Instant::now() + T;
        while self.received(conn) < base + data.len() {
            assert!(Instant::now() < end, "echo stalled at {sent}");
            let outstanding = base + sent - self.received(conn);
            if sent < data.len() && outstanding < window {
                // Varying chunk sizes: small, threshold-sized and large writes.
                chunk = (chunk * 7 + 13) % 90_000 + 1;
                let n = chunk.min(data.len() - sent).min(window - outstanding);
                let took = self
                    .client
                    .session()
                    .vmc_write(conn, &data[sent..sent + n])
                    .unwrap();
                sent += took;
            }
            assert!(self.errors.is_empty(), "{:?}", self.errors);
            self.pump(Duration::from_millis(1));
        }
        assert_eq!(self.received(conn), base + data.len());
        assert!(
            self.data[&conn][base..] == *data,
            "echoed data differs from what was sent"
        );
    }
}

/// `n` bytes of random data, half of it in runs LZ4 compresses well.
fn test_data(n: usize, mut seed: u64) -> Vec<u8> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let r = next();
        let len = (r % 8000) as usize + 1;
        if r & (1 << 40) != 0 {
            let b = (r >> 48) as u8;
            v.extend(std::iter::repeat_n(b, len));
        } else {
            v.extend((0..len).map(|_| next() as u8));
        }
    }
    v.truncate(n);
    v
}

fn usbredir_echo(lz4: bool) {
    let (server, addr, devs) = start();
    let mut config = SessionConfig::default();
    config.passthrough.lz4 = lz4;
    let mut h = Harness::connect(addr, config);
    let usb = h.conn(ChannelType::USBREDIR);
    h.until("device told of the client", |_| devs.usb.states() == [true]);
    assert_eq!(h.client.session_ref().vmc_lz4(usb), lz4);
    let data = test_data(1 << 20, 0x9e37_79b9_7f4a_7c15);
    h.echo(usb, &data, 256 * 1024);
    let stats = h.client.session_ref().vmc_stats(usb).unwrap();
    assert_eq!(stats.bytes_sent, 1 << 20);
    assert_eq!(stats.bytes_received, 1 << 20);
    if lz4 {
        assert!(stats.compressed_sent > 0, "{stats:?}");
        assert!(stats.compressed_received > 0, "{stats:?}");
    } else {
        assert_eq!(stats.compressed_sent, 0);
        assert_eq!(stats.compressed_received, 0);
    }
    assert_eq!(devs.usb.written(), 1 << 20);
    drop(h);
    let end = Instant::now() + T;
    while devs.usb.states() != [true, false] {
        assert!(Instant::now() < end, "{:?}", devs.usb.states());
        std::thread::sleep(Duration::from_millis(10));
    }
    server.shutdown();
}

#[test]
fn usbredir_one_mib_echoed_with_lz4() {
    usbredir_echo(true);
}

#[test]
fn usbredir_one_mib_echoed_without_lz4() {
    usbredir_echo(false);
}

#[test]
fn port_init_and_events_both_ways() {
    let (server, addr, devs) = start();
    devs.port.set_port_opened(false);
    let mut h = Harness::connect(addr, SessionConfig::default());
    let port = h.conn(ChannelType::PORT);
    h.until("PORT_INIT", |h| h.port_inits.contains_key(&port));
    assert_eq!(h.port_inits[&port], (PORT_NAME.to_owned(), false));
    // Host → client: the guest opens, closes and opens the port again.
    devs.port.set_port_opened(true);
    h.until("OPENED", |h| h.port_events.len() == 1);
    devs.port.set_port_opened(false);
    h.until("CLOSED", |h| h.port_events.len() == 2);
    devs.port.set_port_opened(true);
    h.until("OPENED", |h| h.port_events.len() == 3);
    assert_eq!(
        h.port_events,
        [
            (port, PortEvent::OPENED.0),
            (port, PortEvent::CLOSED.0),
            (port, PortEvent::OPENED.0)
        ]
    );
    assert!(h.client.session_ref().port_state(port).unwrap().opened);
    // Client → host.
    let s = h.client.session();
    s.port_event(port, PortEvent::OPENED).unwrap();
    s.port_event(port, PortEvent::BREAK).unwrap();
    s.port_event(port, PortEvent::CLOSED).unwrap();
    h.until("client port events at the device", |_| {
        devs.port.port_events().len() == 3
    });
    assert_eq!(devs.port.port_events(), [0, 2, 1]);
    // Port events are refused on usbredir by the API.
    let usb = h.conn(ChannelType::USBREDIR);
    assert!(
        h.client
            .session()
            .port_event(usb, PortEvent::OPENED)
            .is_err()
    );
    // And data passes through the port too.
    h.echo(port, b"{\"execute\":\"query-status\"}\r\n", 4096);
    server.shutdown();
}

#[test]
fn webdav_data_both_ways() {
    let (server, addr, devs) = start();
    let mut h = Harness::connect(addr, SessionConfig::default());
    let dav = h.conn(ChannelType::WEBDAV);
    h.until("PORT_INIT", |h| h.port_inits.contains_key(&dav));
    assert_eq!(h.port_inits[&dav], (WEBDAV_PORT_NAME.to_owned(), true));
    // Client → device → client: a webdav multiplex record (i64 client, u16 size, data).
    let mut record = Vec::new();
    record.extend_from_slice(&7i64.to_le_bytes());
    let body = b"PROPFIND / HTTP/1.1\r\nHost: localhost\r\nDepth: 1\r\n\r\n";
    record.extend_from_slice(&(body.len() as u16).to_le_bytes());
    record.extend_from_slice(body);
    h.echo(dav, &record, 64 * 1024);
    // Device (guest) → client on its own.
    let reply = test_data(300_000, 77);
    devs.webdav.inject(&reply);
    let base = record.len();
    h.until("guest data", |h| h.received(dav) == base + reply.len());
    assert!(h.data[&dav][base..] == reply[..]);
    server.shutdown();
}

#[test]
fn smartcard_vsc_messages_round_trip() {
    let (server, addr, _devs) = start();
    let mut h = Harness::connect(addr, SessionConfig::default());
    let card = h.conn(ChannelType::SMARTCARD);
    let apdu = [
        0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0, 0, 0, 0x03, 0x10, 0x10,
    ];
    let s = h.client.session();
    s.smartcard_send(card, 3, 0, b"reader").unwrap(); // VSC_ReaderAdd
    s.smartcard_send(card, 7, 0, &apdu).unwrap(); // VSC_APDU
    s.smartcard_send(card, 6, 0, &[]).unwrap(); // VSC_CardRemove
    assert!(
        s.vmc_write(card, b"x").is_err(),
        "raw data is not smartcard"
    );
    h.until("three VSC messages back", |h| h.cards.len() == 3);
    assert_eq!(
        h.cards,
        [
            (3, 0, b"reader".to_vec()),
            (7, 0, apdu.to_vec()),
            (6, 0, Vec::new())
        ]
    );
    server.shutdown();
}

fn closed(r: Result<spice_server::test_client::Received, TestClientError>) -> bool {
    match r {
        Err(TestClientError::Closed) => true,
        Err(TestClientError::Io(e)) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

/// Sends `body` as `msg_type` on a raw usbredir link and checks only that channel closes:
/// the client's port channel still echoes, and usbredir can be linked again.
fn malformed_closes_only_that_channel(msg_type: u16, body: &[u8]) {
    let (server, addr, devs) = start();
    let mut config = SessionConfig::default();
    config.passthrough.usbredir = false;
    let mut h = Harness::connect(addr, config);
    let port = h.conn(ChannelType::PORT);
    h.until("MAIN_INIT", |h| h.session_id.is_some());
    let sid = h.session_id.unwrap();
    let mut raw =
        TestClient::connect(addr, link_config(ChannelType::USBREDIR, 0, sid, b"")).unwrap();
    // A valid message first: it reaches the device.
    raw.send(&spicevmc::ClientMessage::Data(b"ok")).unwrap();
    let back = raw.recv_type(spicevmc::ServerMessage::DATA).unwrap();
    assert_eq!(back.body, b"ok");
    raw.send_raw(msg_type, body).unwrap();
    let end = Instant::now() + T;
    loop {
        assert!(
            Instant::now() < end,
            "malformed message did not close usbredir"
        );
        if closed(raw.recv()) {
            break;
        }
    }
    // Other channels keep working.
    h.echo(port, b"still alive", 4096);
    assert!(h.errors.is_empty());
    assert!(!h.closed.contains(&ChannelType::MAIN));
    // The device was released: usbredir links again and echoes.
    let end = Instant::now() + T;
    let mut again = loop {
        match TestClient::connect(addr, link_config(ChannelType::USBREDIR, 0, sid, b"")) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < end, "usbredir not available again: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    again
        .send(&spicevmc::ClientMessage::Data(b"again"))
        .unwrap();
    let back = again.recv_type(spicevmc::ServerMessage::DATA).unwrap();
    assert_eq!(back.body, b"again");
    assert_eq!(devs.usb.written(), 2 + 5);
    server.shutdown();
}

#[test]
fn corrupt_lz4_closes_only_usbredir() {
    let mut body = Vec::new();
    spicevmc::ClientMessage::CompressedData(CompressedData {
        compression: DataCompressionType::LZ4,
        uncompressed_size: 5000,
        data: &[0xf0, 0xff, 0xff, 0x01, 0x02],
    })
    .encode_body(&mut spice_proto::wire::WriteBuf::new(&mut body))
    .unwrap();
    malformed_closes_only_that_channel(spicevmc::ClientMessage::COMPRESSED_DATA, &body);
}

#[test]
fn unknown_compression_closes_only_usbredir() {
    malformed_closes_only_that_channel(
        spicevmc::ClientMessage::COMPRESSED_DATA,
        &[9, 0, 1, 0, 0, 1],
    );
}

#[test]
fn oversized_uncompressed_size_closes_only_usbredir() {
    malformed_closes_only_that_channel(
        spicevmc::ClientMessage::COMPRESSED_DATA,
        &[1, 0xff, 0xff, 0xff, 0x7f, 0],
    );
}

#[test]
fn port_event_on_usbredir_closes_only_usbredir() {
    malformed_closes_only_that_channel(201, &[0]);
}

#[test]
fn second_client_of_a_device_is_refused() {
    let (server, addr, _devs) = start();
    let mut h = Harness::connect(addr, SessionConfig::default());
    h.conn(ChannelType::USBREDIR);
    h.until("MAIN_INIT", |h| h.session_id.is_some());
    let sid = h.session_id.unwrap();
    match TestClient::connect(addr, link_config(ChannelType::USBREDIR, 0, sid, b"")) {
        Err(TestClientError::Link(e)) => {
            assert!(e.to_string().contains("CHANNEL_NOT_AVAILABLE"), "{e}")
        }
        other => panic!("second usbredir client: {other:?}"),
    }
    server.shutdown();
}

#[test]
fn channels_listed_only_for_present_devices() {
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let host = Host {
        char_devices: vec![
            Arc::new(EchoDevice::new(CharDeviceKind::UsbRedir, 16)) as Arc<dyn CharDevice>,
            Arc::new(EchoDevice::new(CharDeviceKind::UsbRedir, 16)),
            Arc::new(EchoDevice::new(
                CharDeviceKind::Port { name: "a".into() },
                16,
            )),
        ],
        ..Host::default()
    };
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let list: Vec<(ChannelType, u8)> = server
        .context()
        .channel_list()
        .iter()
        .map(|c| (c.channel_type, c.id))
        .filter(|(t, _)| *t != ChannelType::MAIN && *t != ChannelType::INPUTS)
        .collect();
    assert_eq!(
        list,
        [
            (ChannelType::USBREDIR, 0),
            (ChannelType::USBREDIR, 1),
            (ChannelType::PORT, 0)
        ]
    );
    server.shutdown();
}

/// A usbredir device that takes nothing until opened, then everything.
struct Gated {
    open: std::sync::atomic::AtomicBool,
    written: std::sync::atomic::AtomicUsize,
}

impl CharDevice for Gated {
    fn kind(&self) -> CharDeviceKind {
        CharDeviceKind::UsbRedir
    }
    fn write(&self, data: &[u8]) -> usize {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.open.load(SeqCst) {
            return 0;
        }
        self.written.fetch_add(data.len(), SeqCst);
        data.len()
    }
    fn read(&self, _: &mut [u8]) -> usize {
        0
    }
    fn state(&self, _: bool) {}
}

/// A client that floods a device which takes nothing is throttled (the server stops reading
/// its socket instead of buffering), and everything arrives once the device takes data.
#[test]
fn flooding_a_stalled_device_is_throttled_not_buffered() {
    use std::sync::atomic::Ordering::SeqCst;
    let dev = Arc::new(Gated {
        open: false.into(),
        written: 0.into(),
    });
    let host = Host {
        char_devices: vec![dev.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let addr = server.local_addrs()[0];
    // The client core leaves usbredir to a raw connection that floods it.
    let mut h = Harness::connect(
        addr,
        SessionConfig {
            passthrough: spice_client_core::spicevmc::PassthroughSelection {
                usbredir: false,
                ..Default::default()
            },
            ..SessionConfig::default()
        },
    );
    h.until("MAIN_INIT", |h| h.session_id.is_some());
    let sid = h.session_id.unwrap();
    let mut raw =
        TestClient::connect(addr, link_config(ChannelType::USBREDIR, 0, sid, b"")).unwrap();
    // 32 MiB in 64 KiB DATA messages, from a thread: the writes must block.
    const TOTAL: usize = 32 << 20;
    let mut msg = Vec::new();
    spice_proto::header::write_message(&mut msg, raw.header_kind(), 1, 101, |w| {
        w.write_slice(&[0x5a; 64 * 1024]);
        Ok(())
    })
    .unwrap();
    let blaster = std::thread::spawn(move || {
        for _ in 0..TOTAL / (64 * 1024) {
            raw.send_bytes(&msg).unwrap();
        }
        raw
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !blaster.is_finished(),
        "the server swallowed 32 MiB for a device that takes nothing"
    );
    assert_eq!(dev.written.load(SeqCst), 0);
    // The device opens: everything flows through.
    dev.open.store(true, SeqCst);
    let end = Instant::now() + T;
    while dev.written.load(SeqCst) < TOTAL {
        assert!(
            Instant::now() < end,
            "only {} bytes reached the device",
            dev.written.load(SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _raw = blaster.join().unwrap();
    assert_eq!(dev.written.load(SeqCst), TOTAL);
    server.shutdown();
}
