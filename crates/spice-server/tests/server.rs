//! In-process tests: our server driven by spice-proto's ClientLink over loopback sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spice_proto::ChannelType;
use spice_proto::base;
use spice_proto::cursor as pcursor;
use spice_proto::inputs::{self, KeyboardModifiers, MouseButton, MouseButtonMask};
use spice_proto::link::{LinkErr, LinkError};
use spice_proto::main::{self, MouseMode};
use spice_proto::messages::ServerMessage;
use spice_proto::types::{CursorFlags, CursorType, Point16};
use spice_server::config::ServerConfig;
use spice_server::cursor::{CursorCommand, CursorFeed, CursorShape};
use spice_server::host::{Host, Keyboard, Mouse, Tablet};
use spice_server::server::{Server, ServerBuilder, ServerError};
use spice_server::test_client::{TestClient, TestClientError, link_config};

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Scan(u8),
    Motion(i32, i32, i32, u16),
    Buttons(u16),
    Pos(u32, u32, u16, u8),
    Wheel(i32, u16),
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Ev>>,
    leds: Mutex<u16>,
}

impl Keyboard for Recorder {
    fn push_scancode(&self, byte: u8) {
        self.events.lock().unwrap().push(Ev::Scan(byte));
    }
    fn leds(&self) -> KeyboardModifiers {
        KeyboardModifiers::from_bits_retain(*self.leds.lock().unwrap())
    }
}
impl Mouse for Recorder {
    fn motion(&self, dx: i32, dy: i32, dz: i32, b: MouseButtonMask) {
        self.events
            .lock()
            .unwrap()
            .push(Ev::Motion(dx, dy, dz, b.bits()));
    }
    fn buttons(&self, b: MouseButtonMask) {
        self.events.lock().unwrap().push(Ev::Buttons(b.bits()));
    }
}
impl Tablet for Recorder {
    fn set_logical_size(&self, _: u32, _: u32) {}
    fn position(&self, x: u32, y: u32, b: MouseButtonMask, d: u8) {
        self.events.lock().unwrap().push(Ev::Pos(x, y, b.bits(), d));
    }
    fn wheel(&self, dz: i32, b: MouseButtonMask) {
        self.events.lock().unwrap().push(Ev::Wheel(dz, b.bits()));
    }
    fn buttons(&self, b: MouseButtonMask) {
        self.events.lock().unwrap().push(Ev::Buttons(b.bits()));
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start(config: ServerConfig, host: Host, feed: Option<Arc<CursorFeed>>) -> (Server, SocketAddr) {
    let mut b = ServerBuilder::new(config).host(host);
    if let Some(f) = feed {
        b = b.cursor(f);
    }
    let s = b.start().unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

fn plain() -> ServerConfig {
    ServerConfig::builder().listen(localhost()).build().unwrap()
}

/// Links the main channel and returns it with MAIN_INIT.
fn main_link(
    addr: SocketAddr,
    password: &[u8],
) -> Result<(TestClient, main::Init), TestClientError> {
    let mut c = TestClient::connect(addr, link_config(ChannelType::MAIN, 0, 0, password))?;
    let r = c.recv_type(main::ServerMessage::INIT)?;
    let ServerMessage::Main(main::ServerMessage::Init(init)) = r.decode()? else {
        panic!("not init")
    };
    Ok((c, init))
}

fn channels_list(c: &mut TestClient) -> Vec<(u8, u8)> {
    c.send(&main::ClientMessage::AttachChannels).unwrap();
    let r = c.recv_type(main::ServerMessage::CHANNELS_LIST).unwrap();
    let ServerMessage::Main(main::ServerMessage::ChannelsList(l)) = r.decode().unwrap() else {
        panic!()
    };
    l.iter().map(|c| (c.channel_type.0, c.id)).collect()
}

#[test]
fn link_main_init_and_channels_list() {
    let (server, addr) = start(plain(), Host::default(), Some(CursorFeed::new()));
    let (mut c, init) = main_link(addr, b"").unwrap();
    assert_ne!(init.session_id, 0);
    assert_eq!(init.supported_mouse_modes, MouseMode::SERVER);
    assert_eq!(init.current_mouse_mode, MouseMode::SERVER);
    assert_eq!(init.agent_connected, 0);
    assert_eq!(init.agent_tokens, 10);
    assert_eq!(init.display_channels_hint, 0);
    assert_eq!(channels_list(&mut c), vec![(3, 0), (4, 0)]);
    // No agent: AGENT_START is answered with AGENT_DISCONNECTED, agent data gets its token back.
    c.send(&main::ClientMessage::AgentStart { num_tokens: !0 })
        .unwrap();
    let r = c
        .recv_type(main::ServerMessage::AGENT_DISCONNECTED)
        .unwrap();
    assert!(r.decode().is_ok());
    c.send(&main::ClientMessage::AgentData(&[1, 2, 3])).unwrap();
    let r = c.recv_type(main::ServerMessage::AGENT_TOKEN).unwrap();
    assert_eq!(r.body, 1u32.to_le_bytes());
    assert_eq!(server.context().session_count(), 1);
    server.shutdown();
}

#[test]
fn password_checked() {
    let cfg = ServerConfig::builder()
        .listen(localhost())
        .password("s3cret", None)
        .build()
        .unwrap();
    let (server, addr) = start(cfg, Host::default(), None);
    let e = main_link(addr, b"wrong").unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::PERMISSION_DENIED
            })
        ),
        "{e}"
    );
    let e = main_link(addr, b"").unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::PERMISSION_DENIED
            })
        ),
        "{e}"
    );
    let (_c, init) = main_link(addr, b"s3cret").unwrap();
    assert_ne!(init.session_id, 0);
    // An expired password refuses everybody.
    let cfg = ServerConfig::builder()
        .listen(localhost())
        .password(
            "s3cret",
            Some(std::time::SystemTime::now() - Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let (server2, addr2) = start(cfg, Host::default(), None);
    assert!(main_link(addr2, b"s3cret").is_err());
    server.shutdown();
    server2.shutdown();
}

#[test]
fn link_refusals_bad_connection_id_and_unknown_channel() {
    let (server, addr) = start(plain(), Host::default(), None);
    let e = TestClient::connect(addr, link_config(ChannelType::INPUTS, 0, 12345, b"")).unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::BAD_CONNECTION_ID
            })
        ),
        "{e}"
    );
    let (_m, init) = main_link(addr, b"").unwrap();
    let e = TestClient::connect(
        addr,
        link_config(ChannelType::DISPLAY, 0, init.session_id, b""),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::CHANNEL_NOT_AVAILABLE
            })
        ),
        "{e}"
    );
    let e = TestClient::connect(
        addr,
        link_config(ChannelType::CURSOR, 0, init.session_id, b""),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::CHANNEL_NOT_AVAILABLE
            })
        ),
        "{e}"
    );
    server.shutdown();
}

fn wait_events(rec: &Recorder, n: usize) -> Vec<Ev> {
    for _ in 0..200 {
        let v = rec.events.lock().unwrap().clone();
        if v.len() >= n {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    rec.events.lock().unwrap().clone()
}

#[test]
fn inputs_delivered_in_order_with_motion_acks_and_mouse_modes() {
    let rec = Arc::new(Recorder::default());
    *rec.leds.lock().unwrap() = KeyboardModifiers::NUM_LOCK.bits();
    let host = Host {
        keyboard: Some(rec.clone()),
        mouse: Some(rec.clone()),
        tablet: Some(rec.clone()),
        ..Host::default()
    };
    let (server, addr) = start(plain(), host, None);
    let (mut m, init) = main_link(addr, b"").unwrap();
    assert_eq!(
        init.supported_mouse_modes,
        MouseMode::SERVER | MouseMode::CLIENT
    );
    let mut i = TestClient::connect(
        addr,
        link_config(ChannelType::INPUTS, 0, init.session_id, b""),
    )
    .unwrap();
    let r = i.recv_type(inputs::InputsServerMessage::INIT).unwrap();
    assert_eq!(r.body, KeyboardModifiers::NUM_LOCK.bits().to_le_bytes());

    let b = MouseButtonMask::LEFT;
    i.send(&inputs::ClientMessage::KeyDown { code: 0x1e })
        .unwrap();
    i.send(&inputs::ClientMessage::KeyUp { code: 0x9e })
        .unwrap();
    i.send(&inputs::ClientMessage::KeyDown { code: 0x1de0 })
        .unwrap();
    i.send(&inputs::ClientMessage::KeyScancode(&[0x2a, 0xaa]))
        .unwrap();
    // Caps wanted on, num wanted off: both toggled (num first in scroll/num/caps order).
    i.send(&inputs::ClientMessage::KeyModifiers {
        modifiers: KeyboardModifiers::CAPS_LOCK,
    })
    .unwrap();
    for k in 0..4 {
        i.send(&inputs::ClientMessage::MouseMotion {
            dx: k,
            dy: -k,
            buttons_state: b,
        })
        .unwrap();
    }
    i.send(&inputs::ClientMessage::MousePress {
        button: MouseButton::LEFT,
        buttons_state: b,
    })
    .unwrap();
    i.send(&inputs::ClientMessage::MousePress {
        button: MouseButton::DOWN,
        buttons_state: b,
    })
    .unwrap();
    i.send(&inputs::ClientMessage::MouseRelease {
        button: MouseButton::LEFT,
        buttons_state: MouseButtonMask::empty(),
    })
    .unwrap();
    // One MOTION_ACK for the bunch of four.
    i.recv_type(inputs::InputsServerMessage::MOUSE_MOTION_ACK)
        .unwrap();
    // The inputs and main channels are separate connections with no order between
    // them: let the server-mode events land before the main channel switches modes
    // (the ack only covers the motions, not the press and release after them).
    let server_mode = [
        Ev::Scan(0x1e),
        Ev::Scan(0x9e),
        Ev::Scan(0xe0),
        Ev::Scan(0x1d),
        Ev::Scan(0x2a),
        Ev::Scan(0xaa),
        Ev::Scan(0x45),
        Ev::Scan(0xc5),
        Ev::Scan(0x3a),
        Ev::Scan(0xba),
        Ev::Motion(0, 0, 0, 1),
        Ev::Motion(1, -1, 0, 1),
        Ev::Motion(2, -2, 0, 1),
        Ev::Motion(3, -3, 0, 1),
        Ev::Buttons(1),
        Ev::Motion(0, 0, 1, 1),
        Ev::Buttons(0),
    ];
    assert_eq!(wait_events(&rec, server_mode.len()), server_mode);

    // Switch to client mode: positions go to the tablet, motions are ignored.
    m.send(&main::ClientMessage::MouseModeRequest {
        mode: MouseMode::CLIENT,
    })
    .unwrap();
    let r = m.recv_type(main::ServerMessage::MOUSE_MODE).unwrap();
    let ServerMessage::Main(main::ServerMessage::MouseMode { current_mode, .. }) =
        r.decode().unwrap()
    else {
        panic!()
    };
    assert_eq!(current_mode, MouseMode::CLIENT);
    i.send(&inputs::ClientMessage::MouseMotion {
        dx: 9,
        dy: 9,
        buttons_state: b,
    })
    .unwrap();
    i.send(&inputs::ClientMessage::MousePosition {
        x: 100,
        y: 200,
        buttons_state: b,
        display_id: 0,
    })
    .unwrap();
    i.send(&inputs::ClientMessage::MousePress {
        button: MouseButton::UP,
        buttons_state: b,
    })
    .unwrap();

    let mut expected = server_mode.to_vec();
    expected.extend([Ev::Pos(100, 200, 1, 0), Ev::Wheel(-1, 1)]);
    assert_eq!(wait_events(&rec, expected.len()), expected);

    // LED change pushed to the client.
    *rec.leds.lock().unwrap() = KeyboardModifiers::CAPS_LOCK.bits();
    server.keyboard_leds_changed();
    let r = i
        .recv_type(inputs::InputsServerMessage::KEY_MODIFIERS)
        .unwrap();
    assert_eq!(r.body, KeyboardModifiers::CAPS_LOCK.bits().to_le_bytes());
    server.shutdown();
}

#[test]
fn client_mouse_refused_without_tablet() {
    let (server, addr) = start(plain(), Host::default(), None);
    let (mut m, _) = main_link(addr, b"").unwrap();
    m.send(&main::ClientMessage::MouseModeRequest {
        mode: MouseMode::CLIENT,
    })
    .unwrap();
    // Ignored as spice-server does; the next reply we get is for ATTACH_CHANNELS.
    assert_eq!(channels_list(&mut m), vec![(3, 0)]);
    server.shutdown();
}

#[test]
fn malformed_message_closes_only_that_channel() {
    let rec = Arc::new(Recorder::default());
    let host = Host {
        keyboard: Some(rec.clone()),
        ..Host::default()
    };
    let (server, addr) = start(plain(), host, None);
    let (mut m, init) = main_link(addr, b"").unwrap();
    let mut i = TestClient::connect(
        addr,
        link_config(ChannelType::INPUTS, 0, init.session_id, b""),
    )
    .unwrap();
    i.recv_type(inputs::InputsServerMessage::INIT).unwrap();
    // KEY_DOWN with a 3-byte body.
    i.send_raw(inputs::ClientMessage::KEY_DOWN, &[1, 2, 3])
        .unwrap();
    loop {
        match i.recv() {
            Ok(_) => continue,
            Err(TestClientError::Closed) => break,
            Err(TestClientError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("expected close, got {e}"),
        }
    }
    // The main channel still answers, and a new inputs channel links into the same session.
    assert_eq!(channels_list(&mut m), vec![(3, 0)]);
    let mut i2 = TestClient::connect(
        addr,
        link_config(ChannelType::INPUTS, 0, init.session_id, b""),
    )
    .unwrap();
    i2.recv_type(inputs::InputsServerMessage::INIT).unwrap();
    i2.send(&inputs::ClientMessage::KeyDown { code: 0x10 })
        .unwrap();
    assert_eq!(wait_events(&rec, 1), vec![Ev::Scan(0x10)]);
    // A main channel that sends garbage closes, and its session's other channels with it.
    m.send_raw(main::ClientMessage::MOUSE_MODE_REQUEST, &[])
        .unwrap();
    assert!(matches!(
        i2.recv_type(9999),
        Err(TestClientError::Closed) | Err(TestClientError::Io(_))
    ));
    server.shutdown();
}

#[test]
fn two_clients_at_once() {
    let (server, addr) = start(plain(), Host::default(), Some(CursorFeed::new()));
    let t: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut m, init) = main_link(addr, b"").unwrap();
                let mut i = TestClient::connect(
                    addr,
                    link_config(ChannelType::INPUTS, 0, init.session_id, b""),
                )
                .unwrap();
                i.recv_type(inputs::InputsServerMessage::INIT).unwrap();
                let l = channels_list(&mut m);
                (init.session_id, l, m, i)
            })
        })
        .collect();
    let res: Vec<_> = t.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(res[0].0, res[1].0);
    assert_eq!(res[0].1, res[1].1);
    assert_eq!(server.context().session_count(), 2);
    drop(res);
    server.shutdown();
}

#[test]
fn busy_port_is_a_bind_error() {
    let (server, addr) = start(plain(), Host::default(), None);
    let cfg = ServerConfig::builder().listen(addr).build().unwrap();
    let e = ServerBuilder::new(cfg).start().unwrap_err();
    match &e {
        ServerError::Bind { addr: a, source } => {
            assert_eq!(*a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&addr.to_string()));
    server.shutdown();
}

fn shape(unique: u64) -> Arc<CursorShape> {
    Arc::new(CursorShape {
        unique,
        cursor_type: CursorType::ALPHA,
        width: 2,
        height: 2,
        hot_spot_x: 0,
        hot_spot_y: 0,
        data: vec![0xff; 16],
    })
}

fn cursor_of(r: &spice_server::test_client::Received) -> pcursor::ServerMessage<'_> {
    match r.decode().unwrap() {
        ServerMessage::Cursor(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cursor_init_set_cache_move_reset() {
    let feed = CursorFeed::new();
    feed.push(CursorCommand::Set {
        position: Point16 { x: 5, y: 6 },
        visible: true,
        shape: shape(7),
    });
    let (server, addr) = start(plain(), Host::default(), Some(feed.clone()));
    let (_m, init) = main_link(addr, b"").unwrap();
    let mut c = TestClient::connect(
        addr,
        link_config(ChannelType::CURSOR, 0, init.session_id, b""),
    )
    .unwrap();
    let r = c.recv_type(pcursor::msg::INIT).unwrap();
    let pcursor::ServerMessage::Init(ci) = cursor_of(&r) else {
        panic!()
    };
    assert_eq!((ci.position.x, ci.position.y, ci.visible), (5, 6, 1));
    assert_eq!(ci.cursor.flags, CursorFlags::CACHE_ME);
    assert_eq!(ci.cursor.data.len(), 16);

    feed.push(CursorCommand::Move(Point16 { x: 1, y: 1 }));
    feed.push(CursorCommand::Set {
        position: Point16 { x: 2, y: 2 },
        visible: true,
        shape: shape(7),
    });
    feed.push(CursorCommand::Hide);
    feed.push(CursorCommand::Reset);
    let mut got = Vec::new();
    while got.len() < 5 {
        let r = c.recv().unwrap();
        if r.msg_type < 101 {
            continue;
        }
        got.push(r);
    }
    assert_eq!(
        cursor_of(&got[0]),
        pcursor::ServerMessage::Move(Point16 { x: 1, y: 1 })
    );
    let pcursor::ServerMessage::Set(s) = cursor_of(&got[1]) else {
        panic!()
    };
    assert_eq!(s.cursor.flags, CursorFlags::FROM_CACHE);
    assert!(s.cursor.data.is_empty());
    assert_eq!(cursor_of(&got[2]), pcursor::ServerMessage::Hide);
    // As spice-server's cursor_channel_reset: the cache goes first, then RESET.
    assert_eq!(cursor_of(&got[3]), pcursor::ServerMessage::InvalAll);
    assert_eq!(cursor_of(&got[4]), pcursor::ServerMessage::Reset);
    // After the reset the shape is sent again with its pixels.
    feed.push(CursorCommand::Set {
        position: Point16 { x: 0, y: 0 },
        visible: true,
        shape: shape(7),
    });
    let r = c.recv_type(pcursor::msg::SET).unwrap();
    let pcursor::ServerMessage::Set(s) = cursor_of(&r) else {
        panic!()
    };
    assert_eq!(s.cursor.flags, CursorFlags::CACHE_ME);
    server.shutdown();
}

#[test]
fn slow_client_window_bounds_output() {
    // A client that never ACKs gets at most 2 * window cursor messages (plus nothing more).
    let feed = CursorFeed::new();
    let cfg = ServerConfig::builder()
        .listen(localhost())
        .ack_window(4)
        .ping_interval(None)
        .build()
        .unwrap();
    let (server, addr) = start(cfg, Host::default(), Some(feed.clone()));
    let (_m, init) = main_link(addr, b"").unwrap();
    let mut c = TestClient::connect(
        addr,
        link_config(ChannelType::CURSOR, 0, init.session_id, b""),
    )
    .unwrap();
    c.set_auto_ack(false);
    c.set_read_timeout(Duration::from_millis(300)).unwrap();
    c.recv_type(base::server_msg::SET_ACK).unwrap();
    c.recv_type(pcursor::msg::INIT).unwrap();
    for k in 0..30 {
        feed.push(CursorCommand::Trail {
            length: k,
            frequency: 1,
        });
    }
    let mut n = 0;
    loop {
        match c.recv() {
            Ok(_) => n += 1,
            Err(TestClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => panic!("{e}"),
        }
        if n > 20 {
            break;
        }
    }
    // INIT counted: 8 in flight in all.
    assert_eq!(n, 7);
    // ACK_SYNC + one ACK releases one window more.
    c.send(&base::ClientMessage::AckSync { generation: 1 })
        .unwrap();
    c.send(&base::ClientMessage::Ack).unwrap();
    for _ in 0..4 {
        c.recv().unwrap();
    }
    server.shutdown();
}
