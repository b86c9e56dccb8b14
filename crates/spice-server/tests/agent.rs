//! The agent end to end: our client core (spice-client-core's blocking driver and
//! `AgentClient`) against our server with the demo agent, over loopback TCP. File transfer,
//! clipboard both ways, monitors config, agent coming and going, and hostile agent data that
//! must not disturb the session's other channels.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_client_core::agent::{AgentClient, AgentEvent};
use spice_client_core::blocking::Client;
use spice_client_core::{Event, SessionConfig, SpiceUri};
use spice_proto::agent::{
    AgentHeader, AgentMessage, AgentMessageType, ClipboardSelection, ClipboardType, MonConfig,
    MonitorsConfig, MonitorsConfigFlags,
};
use spice_proto::agent::{FileXferResult, VD_AGENT_MAX_DATA_SIZE};
use spice_proto::inputs::KeyboardModifiers;
use spice_proto::main::MouseMode;
use spice_server::config::ServerConfig;
use spice_server::demo_agent::{DemoAgent, DemoAgentConfig};
use spice_server::display::{DisplayChannelFactory, DisplayConfig};
use spice_server::host::{CharDevice, Host, Keyboard};
use spice_server::server::{Server, ServerBuilder};

const W: u32 = 160;
const H: u32 = 120;

#[derive(Default)]
struct Keys(Mutex<Vec<u8>>);

impl Keyboard for Keys {
    fn push_scancode(&self, byte: u8) {
        self.0.lock().unwrap().push(byte);
    }
    fn leds(&self) -> KeyboardModifiers {
        KeyboardModifiers::empty()
    }
}

struct Setup {
    agent: Arc<DemoAgent>,
    keys: Arc<Keys>,
    addr: SocketAddr,
    _server: Server,
}

fn setup(cfg: DemoAgentConfig, with_display: bool) -> Setup {
    let agent = DemoAgent::new(cfg);
    let keys = Arc::new(Keys::default());
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .build()
        .unwrap();
    let host = Host {
        keyboard: Some(keys.clone()),
        char_devices: vec![agent.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let mut b = ServerBuilder::new(config.clone()).host(host);
    if with_display {
        let (mut w, mut guest) = spice_server::testing::display_worker(
            4 << 20,
            DisplayConfig::from_server_config(&config),
        );
        spice_server::testing::create_primary(&mut w, &mut guest, W, H);
        b = b.add_channel(Arc::new(DisplayChannelFactory::new(
            Arc::new(Mutex::new(w)),
            0,
            Instant::now(),
        )));
    }
    let server = b.start().unwrap();
    let addr = server.local_addrs()[0];
    Setup {
        agent,
        keys,
        addr,
        _server: server,
    }
}

/// A client-core client with its agent layer, pumped together.
struct Peer {
    client: Client,
    agent: AgentClient,
    events: Vec<AgentEvent>,
    session_events: Vec<Event>,
    agent_errors: usize,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Self {
        let uri: SpiceUri = format!("spice://127.0.0.1:{}", addr.port())
            .parse()
            .unwrap();
        let client = Client::connect(&uri, SessionConfig::default()).unwrap();
        Self {
            client,
            agent: AgentClient::default(),
            events: Vec::new(),
            session_events: Vec::new(),
            agent_errors: 0,
        }
    }

    /// Runs the session until `done` holds (checked after every event), or panics after
    /// `limit`.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool, what: &str) {
        let end = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            let ev = self.client.poll(Duration::from_millis(20)).unwrap();
            if let Some(ev) = ev {
                if let Err(e) = self.agent.handle_session_event(self.client.session(), &ev) {
                    assert!(
                        matches!(
                            e,
                            spice_client_core::agent::AgentError::Stream(_)
                                | spice_client_core::agent::AgentError::Decode { .. }
                        ),
                        "{e}"
                    );
                    self.agent_errors += 1;
                }
                self.session_events.push(ev);
            }
            self.agent.pump(self.client.session()).unwrap();
            while let Some(e) = self.agent.poll_event() {
                self.events.push(e);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        self.run_until(d + secs(1), |_| Instant::now() >= end, "time");
    }

    fn has_caps(&self) -> bool {
        self.agent.peer_caps().is_some()
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn file_transfer_10_mib_arrives_intact() {
    let s = setup(DemoAgentConfig::default(), false);
    let mut p = Peer::connect(s.addr);
    p.run_until(secs(10), Peer::has_caps, "agent caps");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let want = fnv1a(&data);
    let id = p
        .agent
        .file_transfer_start(p.client.session(), "big.bin", data)
        .unwrap();
    p.run_until(
        secs(60),
        |p| {
            p.events.iter().any(|e| {
                matches!(e, AgentEvent::FileXferStatus { id: i, result, .. }
                    if *i == id && *result != FileXferResult::CAN_SEND_DATA)
            })
        },
        "transfer end",
    );
    let end = p
        .events
        .iter()
        .find_map(|e| match e {
            AgentEvent::FileXferStatus { id: i, result, .. }
                if *i == id && *result != FileXferResult::CAN_SEND_DATA =>
            {
                Some(*result)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(end, FileXferResult::SUCCESS);
    let files = s.agent.received_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "big.bin");
    assert_eq!(files[0].data.len(), 10 << 20);
    assert_eq!(fnv1a(&files[0].data), want);
    // Flow control held: the session never queued more than the agent layer allows.
    assert!(p.client.session_ref().agent_queued() <= AgentClient::MAX_QUEUED_CHUNKS);
    assert_eq!(s.agent.errors(), 0);
}

#[test]
fn file_transfer_too_large_and_into_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DemoAgentConfig {
        max_file_size: 1000,
        file_dir: Some(dir.path().to_path_buf()),
        ..DemoAgentConfig::default()
    };
    let s = setup(cfg, false);
    let mut p = Peer::connect(s.addr);
    p.run_until(secs(10), Peer::has_caps, "agent caps");
    let big = p
        .agent
        .file_transfer_start(p.client.session(), "big", vec![1; 2000])
        .unwrap();
    let small = p
        .agent
        .file_transfer_start(p.client.session(), "../evil/small.txt", b"hello".to_vec())
        .unwrap();
    let ended = |p: &Peer, id: u32| {
        p.events.iter().find_map(|e| match e {
            AgentEvent::FileXferStatus {
                id: i,
                result,
                free_space,
            } if *i == id && *result != FileXferResult::CAN_SEND_DATA => {
                Some((*result, *free_space))
            }
            _ => None,
        })
    };
    p.run_until(
        secs(10),
        |p| ended(p, big).is_some() && ended(p, small).is_some(),
        "both transfers",
    );
    assert_eq!(
        ended(&p, big),
        Some((FileXferResult::NOT_ENOUGH_SPACE, Some(1000)))
    );
    assert_eq!(ended(&p, small), Some((FileXferResult::SUCCESS, None)));
    // The name's directories are dropped: the file lands inside the directory.
    assert_eq!(
        std::fs::read(dir.path().join("small.txt")).unwrap(),
        b"hello"
    );
}

#[test]
fn clipboard_both_ways_and_monitors_config() {
    let resized = Arc::new(Mutex::new(Vec::new()));
    let r2 = resized.clone();
    let cfg = DemoAgentConfig {
        initial_clipboard: Some("text from the demo agent".into()),
        on_monitors_config: Some(Arc::new(move |mc: &MonitorsConfig| {
            let m = mc.monitors[0];
            r2.lock().unwrap().push((m.width, m.height));
            m.width <= 4096 && m.height <= 4096
        })),
        ..DemoAgentConfig::default()
    };
    let s = setup(cfg, false);
    let mut p = Peer::connect(s.addr);
    p.run_until(secs(10), Peer::has_caps, "agent caps");

    // Agent → client: the demo agent grabbed at start; request and receive its text.
    p.run_until(
        secs(10),
        |p| {
            p.events
                .iter()
                .any(|e| matches!(e, AgentEvent::ClipboardGrab { .. }))
        },
        "agent grab",
    );
    assert!(p.events.contains(&AgentEvent::ClipboardGrab {
        selection: ClipboardSelection::CLIPBOARD,
        types: vec![ClipboardType::UTF8_TEXT],
    }));
    p.agent
        .clipboard_request(
            p.client.session(),
            ClipboardSelection::CLIPBOARD,
            ClipboardType::UTF8_TEXT,
        )
        .unwrap();
    p.run_until(
        secs(10),
        |p| {
            p.events
                .iter()
                .any(|e| matches!(e, AgentEvent::ClipboardData { .. }))
        },
        "agent clipboard data",
    );
    assert!(p.events.contains(&AgentEvent::ClipboardData {
        selection: ClipboardSelection::CLIPBOARD,
        data_type: ClipboardType::UTF8_TEXT,
        data: b"text from the demo agent".to_vec(),
    }));

    // Client → agent: grab, the agent requests, the client answers, the agent stores it.
    p.agent
        .clipboard_grab(
            p.client.session(),
            ClipboardSelection::PRIMARY,
            &[ClipboardType::UTF8_TEXT],
        )
        .unwrap();
    p.run_until(
        secs(10),
        |p| {
            p.events
                .iter()
                .any(|e| matches!(e, AgentEvent::ClipboardRequest { .. }))
        },
        "agent request",
    );
    assert!(p.events.contains(&AgentEvent::ClipboardRequest {
        selection: ClipboardSelection::PRIMARY,
        data_type: ClipboardType::UTF8_TEXT,
    }));
    let text = "héllo from our client ✓";
    p.agent
        .clipboard_data(
            p.client.session(),
            ClipboardSelection::PRIMARY,
            ClipboardType::UTF8_TEXT,
            text.as_bytes(),
        )
        .unwrap();
    let agent = s.agent.clone();
    p.run_until(
        secs(10),
        |_| agent.client_text(ClipboardSelection::PRIMARY).is_some(),
        "agent stores the text",
    );
    assert_eq!(
        s.agent.client_text(ClipboardSelection::PRIMARY).as_deref(),
        Some(text)
    );
    p.agent
        .clipboard_release(p.client.session(), ClipboardSelection::PRIMARY)
        .unwrap();

    // Monitors config: applied by the hook, answered with REPLY success; an impossible
    // size answered with an error.
    for (w, h) in [(1024, 768), (100_000, 10)] {
        let mc = MonitorsConfig {
            flags: MonitorsConfigFlags::empty(),
            monitors: vec![MonConfig {
                height: h,
                width: w,
                depth: 32,
                x: 0,
                y: 0,
            }],
            physical_sizes: Vec::new(),
        };
        p.events.clear();
        p.agent.monitors_config(p.client.session(), &mc).unwrap();
        p.run_until(
            secs(10),
            |p| {
                p.events
                    .iter()
                    .any(|e| matches!(e, AgentEvent::Reply { .. }))
            },
            "monitors reply",
        );
        assert!(p.events.contains(&AgentEvent::Reply {
            msg_type: AgentMessageType::MONITORS_CONFIG,
            success: w <= 4096,
        }));
    }
    assert_eq!(*resized.lock().unwrap(), vec![(1024, 768), (100_000, 10)]);
    // The host grabs later with its own text (DemoAgent::grab_text).
    s.agent.grab_text(ClipboardSelection::SECONDARY, "later");
    p.run_until(
        secs(10),
        |p| {
            p.events.contains(&AgentEvent::ClipboardGrab {
                selection: ClipboardSelection::SECONDARY,
                types: vec![ClipboardType::UTF8_TEXT],
            })
        },
        "host grab",
    );
    assert_eq!(s.agent.monitors_requests().len(), 2);
    assert_eq!(p.agent_errors, 0);
    assert_eq!(s.agent.errors(), 0);
}

#[test]
fn agent_comes_and_goes_and_client_mouse_follows() {
    let s = setup(DemoAgentConfig::default(), false);
    let mut p = Peer::connect(s.addr);
    p.run_until(secs(10), Peer::has_caps, "agent caps");
    let init_modes = p.session_events.iter().find_map(|e| match e {
        Event::MainInit {
            supported_mouse_modes,
            agent_connected,
            ..
        } => Some((*supported_mouse_modes, *agent_connected)),
        _ => None,
    });
    assert_eq!(
        init_modes,
        Some((MouseMode::SERVER | MouseMode::CLIENT, true))
    );
    // Client mouse through the agent: positions become MOUSE_STATE.
    p.client
        .session()
        .request_mouse_mode(MouseMode::CLIENT)
        .unwrap();
    p.run_until(
        secs(10),
        |p| p.client.session_ref().mouse_mode() == Some(MouseMode::CLIENT),
        "client mouse mode",
    );
    // The inputs channel may still be linking: retry until the agent saw the position.
    let end = Instant::now() + secs(10);
    while s.agent.mouse_state().map(|m| (m.x, m.y)) != Some((33, 44)) {
        assert!(Instant::now() < end, "no agent mouse state");
        let _ = p.client.session().mouse_position(33, 44, 0);
        p.run_for(Duration::from_millis(50));
    }

    s.agent.set_running(false);
    p.run_until(
        secs(10),
        |p| {
            p.session_events
                .iter()
                .any(|e| matches!(e, Event::AgentDisconnected { .. }))
        },
        "agent disconnected",
    );
    p.run_until(
        secs(10),
        |p| {
            p.session_events.iter().any(|e| {
                matches!(e, Event::MouseMode { supported, current }
                    if *supported == MouseMode::SERVER && *current == MouseMode::SERVER)
            })
        },
        "server mouse only",
    );
    assert!(p.agent.peer_caps().is_none());
    let before = p
        .session_events
        .iter()
        .filter(|e| matches!(e, Event::AgentConnected))
        .count();
    s.agent.set_running(true);
    p.run_until(
        secs(10),
        |p| {
            p.session_events
                .iter()
                .filter(|e| matches!(e, Event::AgentConnected))
                .count()
                > before
        },
        "agent connected again",
    );
    p.run_until(secs(10), Peer::has_caps, "caps again");
}

fn raw_message(protocol: u32, msg_type: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&protocol.to_le_bytes());
    v.extend_from_slice(&msg_type.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(body);
    assert_eq!(v.len(), AgentHeader::SIZE + body.len());
    v
}

#[test]
fn malformed_agent_messages_do_not_disturb_other_channels() {
    let s = setup(DemoAgentConfig::default(), true);
    let mut p = Peer::connect(s.addr);
    p.run_until(secs(10), Peer::has_caps, "agent caps");
    // A bad protocol (the rest of that AGENT_DATA is dropped by the server), a type a client
    // may not send (skipped), a body that does not decode (reaches the agent, refused there).
    let sess = p.client.session();
    let mut bad = raw_message(7, AgentMessageType::CLIPBOARD_GRAB.0, &[0; 8]);
    bad.extend_from_slice(&raw_message(1, 4, b"hidden behind the bad header"));
    sess.send_agent_data(&bad).unwrap();
    sess.send_agent_data(&raw_message(1, AgentMessageType::MOUSE_STATE.0, &[0; 13]))
        .unwrap();
    sess.send_agent_data(&raw_message(
        1,
        AgentMessageType::CLIPBOARD_GRAB.0,
        &[1, 2, 3],
    ))
    .unwrap();
    let agent = s.agent.clone();
    p.run_until(
        secs(10),
        |_| agent.errors() >= 1,
        "agent refuses the bad body",
    );
    assert!(
        s.agent.mouse_state().is_none(),
        "client MOUSE_STATE was filtered"
    );

    // Everything else still works: the agent, the display, the inputs.
    p.agent
        .clipboard_grab(
            p.client.session(),
            ClipboardSelection::CLIPBOARD,
            &[ClipboardType::UTF8_TEXT],
        )
        .unwrap();
    p.run_until(
        secs(10),
        |p| {
            p.events
                .iter()
                .any(|e| matches!(e, AgentEvent::ClipboardRequest { .. }))
        },
        "agent request after garbage",
    );
    p.run_until(
        secs(10),
        |p| {
            p.client
                .session_ref()
                .surface(0, 0)
                .is_some_and(|s| (s.width(), s.height()) == (W, H))
        },
        "primary surface",
    );
    let end = Instant::now() + secs(10);
    while s.keys.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "keys never arrived");
        let _ = p.client.session().key_down(0x1e, false);
        let _ = p.client.session().key_up(0x1e, false);
        p.run_for(Duration::from_millis(50));
    }
    assert_eq!(s.agent.errors(), 1);
    assert_eq!(p.agent_errors, 0);
}

#[test]
fn oversize_agent_chunk_refused_session_goes_on() {
    use spice_proto::ChannelType;
    use spice_proto::main::{self, ClientMessage};
    use spice_proto::messages::ServerMessage;
    use spice_server::test_client::{TestClient, link_config};

    let s = setup(DemoAgentConfig::default(), false);
    let mut m = TestClient::connect(s.addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
    let init = m.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(init)) = init.decode().unwrap() else {
        panic!("no MAIN_INIT")
    };
    assert_eq!(init.agent_connected, 1);
    assert_eq!(init.agent_tokens, 10);
    m.send(&ClientMessage::AgentStart { num_tokens: 10 })
        .unwrap();
    // An AGENT_DATA above 2048 bytes: refused whole, its token returned.
    let big = raw_message(1, AgentMessageType::MAX_CLIPBOARD.0, &vec![0; 3000]);
    assert!(big.len() > VD_AGENT_MAX_DATA_SIZE);
    m.send(&ClientMessage::AgentData(&big)).unwrap();
    let t = m.recv_type(main::ServerMessage::AGENT_TOKEN).unwrap();
    let ServerMessage::Main(main::ServerMessage::AgentToken { num_tokens: 1 }) =
        t.decode().unwrap()
    else {
        panic!("no token back")
    };
    // A valid message afterwards reaches the agent.
    let ok = raw_message(1, AgentMessageType::MAX_CLIPBOARD.0, &1234i32.to_le_bytes());
    m.send(&ClientMessage::AgentData(&ok)).unwrap();
    m.recv_type(main::ServerMessage::AGENT_TOKEN).unwrap();
    let end = Instant::now() + secs(10);
    while s.agent.max_clipboard() != Some(1234) {
        assert!(Instant::now() < end, "valid message lost");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.agent.errors(), 0);
    // The inputs channel of the same session links and delivers keys.
    let mut i = TestClient::connect(
        s.addr,
        link_config(ChannelType::INPUTS, 0, init.session_id, b""),
    )
    .unwrap();
    i.send(&spice_proto::inputs::ClientMessage::KeyDown { code: 0x1e })
        .unwrap();
    let end = Instant::now() + secs(10);
    while s.keys.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "inputs broken");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Agent messages in the other direction still flow: the agent's answer to caps.
    let caps = AgentMessage::AnnounceCapabilities(spice_proto::agent::AnnounceCapabilities {
        request: 1,
        caps: spice_proto::agent::AgentCaps::with(&[]),
    });
    let mut bytes = Vec::new();
    caps.encode(0, &mut bytes).unwrap();
    m.send(&ClientMessage::AgentData(&bytes)).unwrap();
    let d = m.recv_type(main::ServerMessage::AGENT_DATA).unwrap();
    let ServerMessage::Main(main::ServerMessage::AgentData(d)) = d.decode().unwrap() else {
        panic!("no agent data")
    };
    let (h, msg) = spice_proto::agent::decode_message(d, Default::default()).unwrap();
    assert_eq!(h.msg_type, AgentMessageType::ANNOUNCE_CAPABILITIES);
    assert!(matches!(msg, AgentMessage::AnnounceCapabilities(a) if a.request == 0));
}

/// An agent device that takes nothing until opened, then everything.
#[derive(Default)]
struct Gate {
    open: std::sync::atomic::AtomicBool,
    taken: Mutex<Vec<u8>>,
    waker: Mutex<Option<spice_server::channel::Waker>>,
}

impl CharDevice for Gate {
    fn kind(&self) -> spice_server::host::CharDeviceKind {
        spice_server::host::CharDeviceKind::Agent
    }
    fn write(&self, data: &[u8]) -> usize {
        if !self.open.load(std::sync::atomic::Ordering::SeqCst) {
            return 0;
        }
        self.taken.lock().unwrap().extend_from_slice(data);
        data.len()
    }
    fn read(&self, _: &mut [u8]) -> usize {
        0
    }
    fn state(&self, _: bool) {}
    fn set_waker(&self, w: Option<spice_server::channel::Waker>) -> bool {
        *self.waker.lock().unwrap() = w;
        true
    }
}

#[test]
fn tokens_come_back_only_as_the_device_takes_data() {
    use spice_proto::ChannelType;
    use spice_proto::main::{self, ClientMessage};
    use spice_proto::messages::ServerMessage;
    use spice_server::test_client::{TestClient, link_config};

    let gate = Arc::new(Gate::default());
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .build()
        .unwrap();
    let host = Host {
        char_devices: vec![gate.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let mut m = TestClient::connect(
        server.local_addrs()[0],
        link_config(ChannelType::MAIN, 0, 0, b""),
    )
    .unwrap();
    let init = m.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(init)) = init.decode().unwrap() else {
        panic!("no MAIN_INIT")
    };
    m.send(&ClientMessage::AgentStart { num_tokens: 10 })
        .unwrap();
    // All ten tokens spent on one 10 × 2000-byte message the device does not take yet.
    let body = vec![0x5a; 10 * 2000 - AgentHeader::SIZE - 4];
    let stream = raw_message(
        1,
        AgentMessageType::CLIPBOARD.0,
        &[&1u32.to_le_bytes()[..], &body].concat(),
    );
    assert_eq!(stream.len(), 20_000);
    for chunk in stream.chunks(2000) {
        m.send(&ClientMessage::AgentData(chunk)).unwrap();
    }
    // Tokens come back while at most two chunks wait for the device; then they stop.
    m.set_read_timeout(Duration::from_millis(500)).unwrap();
    let mut back = 0;
    while back < 10 {
        match m.recv_type(main::ServerMessage::AGENT_TOKEN) {
            Ok(t) => {
                let ServerMessage::Main(main::ServerMessage::AgentToken { num_tokens }) =
                    t.decode().unwrap()
                else {
                    panic!()
                };
                back += num_tokens;
            }
            Err(_) => break, // read timeout: no more tokens for now
        }
    }
    assert!(
        back <= 3,
        "{back} tokens returned while the device took nothing"
    );
    // An eleventh chunk beyond the tokens held would be a flow-control breach; instead open
    // the device: the rest of the tokens come back and the agent got the message intact.
    m.set_read_timeout(secs(5)).unwrap();
    gate.open.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(w) = gate.waker.lock().unwrap().clone() {
        w.wake();
    }
    while back < 10 {
        let t = m.recv_type(main::ServerMessage::AGENT_TOKEN).unwrap();
        let ServerMessage::Main(main::ServerMessage::AgentToken { num_tokens }) =
            t.decode().unwrap()
        else {
            panic!()
        };
        back += num_tokens;
    }
    assert_eq!(back, 10);
    let taken = gate.taken.lock().unwrap().clone();
    // VDI chunks (8-byte headers, port 1) carrying exactly the client's stream.
    let mut payload = Vec::new();
    let mut rest = &taken[..];
    while !rest.is_empty() {
        let port = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let size = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        assert_eq!(port, 1);
        payload.extend_from_slice(&rest[8..8 + size]);
        rest = &rest[8 + size..];
    }
    assert_eq!(payload, stream);
    assert_eq!(init.agent_connected, 1);
}
