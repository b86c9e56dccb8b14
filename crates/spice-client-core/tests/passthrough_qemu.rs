//! Our client core's port channel against QEMU's spice-server, with QEMU's QMP monitor on a
//! spiceport chardev (`org.qemu.monitor.qmp.0`). Needs QEMU (panics when missing, never
//! skips).

use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::{ConnId, Event, SessionConfig, SpiceUri};
use spice_proto::ChannelType;
use spice_proto::spicevmc::PortEvent;
use spice_testpeers::qemu::QemuBuilder;

const QMP_PORT: &str = "org.qemu.monitor.qmp.0";

/// Polls until `buf` holds a complete JSON line containing `needle` (QMP ends every
/// message with CRLF); returns that line.
fn read_until(
    client: &mut Client,
    conn: ConnId,
    buf: &mut Vec<u8>,
    needle: &str,
    end: Instant,
) -> String {
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            if line.contains(needle) {
                return line;
            }
        }
        assert!(
            Instant::now() < end,
            "no QMP line with {needle:?}; pending {:?}",
            String::from_utf8_lossy(buf)
        );
        match client.poll(Duration::from_millis(100)).expect("session") {
            Some(Event::VmcData {
                conn: c,
                channel_type,
                data,
                ..
            }) => {
                assert_eq!(c, conn);
                assert_eq!(channel_type, ChannelType::PORT);
                buf.extend_from_slice(&data);
            }
            Some(Event::ChannelError {
                channel_type,
                error,
                ..
            }) => panic!("{channel_type} failed: {error}"),
            _ => {}
        }
    }
}

/// Writes `data` on the port; data that arrives meanwhile goes to `buf`.
fn write_all(client: &mut Client, conn: ConnId, data: &[u8], buf: &mut Vec<u8>) {
    let mut rest = data;
    while !rest.is_empty() {
        let n = client.session().vmc_write(conn, rest).expect("port write");
        rest = &rest[n..];
        if let Some(Event::VmcData { data, .. }) =
            client.poll(Duration::from_millis(1)).expect("session")
        {
            buf.extend_from_slice(&data);
        }
    }
}

#[test]
fn qmp_over_the_port_channel() {
    let qemu = QemuBuilder::new()
        .args([
            "-chardev",
            &format!("spiceport,id=qmpport,name={QMP_PORT}"),
            "-mon",
            "chardev=qmpport,mode=control",
        ])
        .spawn()
        .expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut config = SessionConfig::default();
    config.channels.display = false;
    config.channels.cursor = false;
    config.channels.inputs = false;
    let mut client = Client::connect(&uri, config).unwrap();
    let end = Instant::now() + Duration::from_secs(30);

    // The port channel is listed, linked, and PORT_INIT names the port.
    let mut port = None;
    let mut buf = Vec::new();
    while port.is_none() {
        assert!(Instant::now() < end, "no PORT_INIT");
        match client.poll(Duration::from_millis(200)).unwrap() {
            Some(Event::PortInit {
                conn,
                channel_type,
                name,
                opened,
                ..
            }) => {
                assert_eq!(channel_type, ChannelType::PORT);
                assert_eq!(name, QMP_PORT);
                // QEMU's monitor opens the chardev frontend at start.
                assert!(opened, "QMP port not open in PORT_INIT");
                port = Some(conn);
            }
            Some(Event::VmcData { data, .. }) => buf.extend_from_slice(&data),
            Some(Event::ChannelError {
                channel_type,
                error,
                ..
            }) => panic!("{channel_type} failed: {error}"),
            _ => {}
        }
    }
    let port = port.unwrap();
    assert_eq!(
        client.session_ref().passthrough_conn(ChannelType::PORT, 0),
        Some(port)
    );
    assert_eq!(
        client
            .session_ref()
            .port_state(port)
            .map(|p| p.name.as_str()),
        Some(QMP_PORT)
    );
    // spice-server advertises LZ4 when built with it (Debian's is); either way the QMP
    // lines are below the compression threshold.
    // Opening our end makes QEMU's chardev "connected": the monitor sends its greeting.
    client
        .session()
        .port_event(port, PortEvent::OPENED)
        .unwrap();
    let greeting = read_until(&mut client, port, &mut buf, "\"QMP\"", end);
    assert!(greeting.contains("\"version\""), "{greeting}");
    assert!(greeting.contains("\"capabilities\""), "{greeting}");

    write_all(
        &mut client,
        port,
        b"{\"execute\":\"qmp_capabilities\"}\r\n",
        &mut buf,
    );
    let ret = read_until(&mut client, port, &mut buf, "\"return\"", end);
    assert_eq!(ret.replace(' ', ""), "{\"return\":{}}");

    write_all(
        &mut client,
        port,
        b"{\"execute\":\"query-status\",\"id\":7}\r\n",
        &mut buf,
    );
    let status = read_until(&mut client, port, &mut buf, "\"return\"", end);
    assert!(status.contains("\"status\""), "{status}");
    assert!(status.contains("\"running\""), "{status}");
    assert!(
        status.contains("\"id\": 7") || status.contains("\"id\":7"),
        "{status}"
    );

    // A bad command gets QMP's error answer, still through the port.
    write_all(
        &mut client,
        port,
        b"{\"execute\":\"no-such-command\"}\r\n",
        &mut buf,
    );
    let err = read_until(&mut client, port, &mut buf, "\"error\"", end);
    assert!(err.contains("CommandNotFound"), "{err}");

    client
        .session()
        .port_event(port, PortEvent::CLOSED)
        .unwrap();
    let _ = client.poll(Duration::from_millis(50)).unwrap();
}

/// QEMU's usb-redir device on a spicevmc chardev greets a new usbredir channel with a
/// usbredir `hello` packet; a webdav spiceport appears as the webdav channel (guest side
/// closed: no guest OS).
#[test]
fn usbredir_hello_and_webdav_port_from_qemu() {
    let qemu = QemuBuilder::new()
        .args([
            "-device",
            "qemu-xhci",
            "-chardev",
            "spicevmc,name=usbredir,id=ur0",
            "-device",
            "usb-redir,chardev=ur0",
            "-device",
            "virtio-serial",
            "-chardev",
            "spiceport,id=dav,name=org.spice-space.webdav.0",
            "-device",
            "virtserialport,chardev=dav,name=org.spice-space.webdav.0",
        ])
        .spawn()
        .expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut config = SessionConfig::default();
    config.channels.display = false;
    config.channels.cursor = false;
    config.channels.inputs = false;
    let mut client = Client::connect(&uri, config).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let mut usb = Vec::new();
    let mut usb_conn = None;
    let mut webdav = None;
    while webdav.is_none() || !usb.windows(20).any(|w| w == b"qemu usb-redir guest") {
        assert!(
            Instant::now() < end,
            "webdav {webdav:?}, usbredir data {:?}",
            String::from_utf8_lossy(&usb)
        );
        match client.poll(Duration::from_millis(200)).unwrap() {
            Some(Event::VmcData {
                conn,
                channel_type,
                data,
                ..
            }) if channel_type == ChannelType::USBREDIR => {
                usb_conn = Some(conn);
                usb.extend_from_slice(&data);
            }
            Some(Event::PortInit {
                channel_type,
                name,
                opened,
                ..
            }) => {
                assert_eq!(channel_type, ChannelType::WEBDAV);
                webdav = Some((name, opened));
            }
            Some(Event::ChannelError {
                channel_type,
                error,
                ..
            }) => panic!("{channel_type} failed: {error}"),
            _ => {}
        }
    }
    assert_eq!(webdav, Some(("org.spice-space.webdav.0".to_owned(), false)));
    // usbredir header: u32 type 0 (hello), u32 length, u32 id; then the version string.
    assert_eq!(&usb[..4], &[0, 0, 0, 0]);
    let len = u32::from_le_bytes(usb[4..8].try_into().unwrap()) as usize;
    assert!(len >= 64, "hello length {len}");
    // spice-server 0.15 advertises LZ4 for spicevmc; we did too, so it is on.
    let conn = usb_conn.unwrap();
    assert!(client.session_ref().vmc_lz4(conn));
}
