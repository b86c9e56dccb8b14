//! The demo desktop follows the client's monitors config: our client core's agent layer
//! (`AgentClient::monitors_config`) asks the demo agent for a new size, the demo destroys and
//! recreates its primary surface and draws itself again, and the client ends up with a
//! primary of that size showing exactly the server's framebuffer (and the demo's own
//! reference picture). Back and forth twice; guest resources return to where they were.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_client_core::agent::{AgentClient, AgentEvent};
use spice_client_core::blocking::Client;
use spice_client_core::{Event, SessionConfig, SpiceUri};
use spice_codecs::classify::ImageCompression;
use spice_proto::agent::{AgentMessageType, MonConfig, MonitorsConfig, MonitorsConfigFlags};
use spice_proto::display::{ClientMessage as DisplayClientMessage, Init, ServerMessage};
use spice_proto::{ChannelMessage, WriteBuf};
use spice_server::cursor::CursorFeed;
use spice_server::demo::{DemoConfig, DemoDesktop};
use spice_server::display::demo::DemoRunner;
use spice_server::display::glz::GlzRegistry;
use spice_server::display::{
    ClientId, ClientOptions, DisplayClientCaps, DisplayConfig, DisplayError, DisplaySink,
    DisplayWorker,
};

struct Peer {
    client: Client,
    agent: AgentClient,
    agent_events: Vec<AgentEvent>,
    events: Vec<Event>,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Self {
        let uri: SpiceUri = format!("spice://127.0.0.1:{}", addr.port())
            .parse()
            .unwrap();
        Self {
            client: Client::connect(&uri, SessionConfig::default()).unwrap(),
            agent: AgentClient::default(),
            agent_events: Vec::new(),
            events: Vec::new(),
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool, what: &str) {
        let end = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            if let Some(ev) = self.client.poll(Duration::from_millis(20)).unwrap() {
                self.agent
                    .handle_session_event(self.client.session(), &ev)
                    .unwrap();
                self.events.push(ev);
            }
            self.agent.pump(self.client.session()).unwrap();
            while let Some(e) = self.agent.poll_event() {
                self.agent_events.push(e);
            }
        }
    }
}

fn monitors(width: u32, height: u32) -> MonitorsConfig {
    MonitorsConfig {
        flags: MonitorsConfigFlags::empty(),
        monitors: vec![MonConfig {
            height,
            width,
            depth: 32,
            x: 0,
            y: 0,
        }],
        physical_sizes: Vec::new(),
    }
}

/// True when the frozen demo is completely drawn at `size` on the server and the client's
/// primary surface equals both the server's framebuffer and the demo's reference picture.
fn client_matches(p: &Peer, demo: &DemoRunner, size: (u32, u32)) -> bool {
    let w = demo.worker().lock().unwrap();
    let d = w.device();
    if !(d.is_frozen() && d.is_idle()) || w.pending_drawables() != 0 {
        return false;
    }
    let (Some(server), Some(client)) = (w.surface(0), p.client.session_ref().surface(0, 0)) else {
        return false;
    };
    if (server.width(), server.height()) != size || (client.width(), client.height()) != size {
        return false;
    }
    let rgb = |px: &[u32]| px.iter().map(|p| p & 0x00ff_ffff).collect::<Vec<u32>>();
    let fb = rgb(server.pixels());
    rgb(client.pixels()) == fb && d.reference_frame().is_some_and(|r| rgb(&r) == fb)
}

#[test]
fn client_monitors_config_resizes_the_demo_desktop() {
    let (_server, addr, demo) = spice_server::testing::demo_server(ImageCompression::AutoGlz);
    assert!(demo.wait_settled(Duration::from_secs(30)), "demo settled");
    let mut p = Peer::connect(addr);
    p.run_until(
        Duration::from_secs(20),
        |p| p.agent.peer_caps().is_some() && client_matches(p, &demo, (1024, 768)),
        "agent caps and the first picture",
    );
    let baseline = {
        let w = demo.worker().lock().unwrap();
        (w.outstanding_resources(), w.device().guest().outstanding())
    };

    for (width, height) in [(800, 600), (1024, 768), (1280, 720), (1024, 768)] {
        p.events.clear();
        p.agent_events.clear();
        p.agent
            .monitors_config(p.client.session(), &monitors(width, height))
            .unwrap();
        p.run_until(
            Duration::from_secs(20),
            |p| client_matches(p, &demo, (width, height)),
            &format!("the client's {width}x{height} picture"),
        );
        assert!(
            p.agent_events.contains(&AgentEvent::Reply {
                msg_type: AgentMessageType::MONITORS_CONFIG,
                success: true,
            }),
            "{:?}",
            p.agent_events
        );
        // The cursor channel is reset with the primary (spice-server's cursor_channel_reset).
        p.run_until(
            Duration::from_secs(10),
            |p| p.events.iter().any(|e| matches!(e, Event::CursorReset)),
            "the cursor reset",
        );
        // The old primary went, the new one came with its monitors config and a MARK.
        let destroyed = p
            .events
            .iter()
            .position(|e| matches!(e, Event::SurfaceDestroyed { surface_id: 0, .. }))
            .expect("SURFACE_DESTROY");
        let after = &p.events[destroyed..];
        let pos = |f: &dyn Fn(&Event) -> bool| after.iter().position(f).map(|i| i + destroyed);
        let created = pos(&|e| {
            matches!(e, Event::SurfaceCreated { primary: true, width: w, height: h, .. }
                if (*w, *h) == (width, height))
        })
        .expect("SURFACE_CREATE of the new size");
        let heads = pos(&|e| {
            matches!(e, Event::MonitorsConfig { heads, .. }
                if heads.len() == 1 && (heads[0].width, heads[0].height) == (width, height))
        })
        .expect("MONITORS_CONFIG of the new size");
        let marked = pos(&|e| matches!(e, Event::PrimaryMarked { .. })).expect("MARK");
        assert!(
            destroyed < created && created < heads && created < marked,
            "{destroyed} {created} {heads} {marked}: {:?}",
            p.events.iter().take(12).collect::<Vec<_>>()
        );
    }

    // Requests beyond the bounds are clamped: the desktop stays between 640x480 and
    // 4096x2160, widths a multiple of 8.
    {
        let mut w = demo.worker().lock().unwrap();
        assert_eq!(w.device_mut().resize_target(100, 100), (640, 480));
        assert_eq!(w.device_mut().resize_target(9999, 9999), (4096, 2160));
        assert_eq!(w.device_mut().resize_target(1023, 700), (1016, 700));
    }

    // Everything the old surfaces held went back to the guest.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = {
            let w = demo.worker().lock().unwrap();
            (w.outstanding_resources(), w.device().guest().outstanding())
        };
        if now == baseline {
            break;
        }
        assert!(
            Instant::now() < end,
            "resources {now:?} vs baseline {baseline:?}"
        );
        p.run_until(Duration::from_secs(1), |_| true, "nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Renders what the worker sends with spice-canvas and records the message names.
struct CanvasSink {
    canvas: Canvas,
    names: Vec<&'static str>,
}

impl DisplaySink for CanvasSink {
    fn can_send(&self) -> bool {
        true
    }
    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        let mut body = Vec::new();
        msg.encode_body(&mut WriteBuf::new(&mut body))
            .map_err(|e| DisplayError::Send(e.to_string()))?;
        let m =
            ServerMessage::decode_body(spice_proto::ChannelType::DISPLAY, msg.msg_type(), &body)
                .unwrap();
        self.names.push(m.name());
        self.canvas.apply(&m).unwrap();
        Ok(())
    }
}

/// Steps frame `f` and lets the worker take (and the demo push) everything.
fn run_frame(w: &mut DisplayWorker<DemoDesktop>, f: u64, now_ms: u64) {
    w.device_mut().step(f).unwrap();
    for _ in 0..64 {
        w.process(now_ms);
        if w.device_mut().pump().unwrap().pushed == 0 {
            break;
        }
    }
    w.process(now_ms);
}

/// In process: a client that has not read its queue when the primary goes loses the
/// queued drawables of the old surface (their resources go straight back to the guest),
/// gets SURFACE_DESTROY, SURFACE_CREATE, MONITORS_CONFIG and MARK, then the redrawn
/// desktop, and ends with exactly the server's framebuffer.
#[test]
fn destroying_the_primary_drops_what_clients_had_queued_for_it() {
    let mut w = DisplayWorker::new(
        DemoDesktop::new(DemoConfig::default()).unwrap(),
        DisplayConfig {
            streaming: spice_codecs::stream_detect::StreamingVideo::All,
            ..DisplayConfig::default()
        },
    );
    w.set_cursor_feed(CursorFeed::new());
    for r in w.device_mut().take_io_requests() {
        w.handle_io(r, 0);
    }
    let id: ClientId = w.add_client(ClientOptions {
        session_id: 1,
        caps: DisplayClientCaps::spice_gtk(),
        glz: Arc::new(GlzRegistry::new()),
        waker: None,
        bit_rate: None,
    });
    w.client_message(
        id,
        &DisplayClientMessage::Init(Init {
            pixmap_cache_id: 1,
            pixmap_cache_size: 20 << 20,
            glz_dictionary_id: 1,
            glz_dictionary_window_size: 1 << 22,
        }),
        0,
    )
    .unwrap();
    let mut sink = CanvasSink {
        canvas: Canvas::new(1 << 26, ImageLimits::default(), new_glz_window(1 << 22)),
        names: Vec::new(),
    };
    w.client_poll(id, &mut sink, 0).unwrap();
    // Frames the client does not read yet (a stream starts on the video region).
    let mut f = 0;
    while w.stream_count() == 0 && f < 100 {
        run_frame(&mut w, f, 40 * f);
        f += 1;
    }
    for _ in 0..3 {
        run_frame(&mut w, f, 40 * f);
        f += 1;
    }
    assert!(w.pending_drawables() > 0);
    assert!(w.outstanding_resources() > 0);
    assert!(w.stream_count() >= 1, "the video region streams");

    let size = w.device_mut().resize(800, 600).unwrap();
    assert_eq!(size, (800, 600));
    for r in w.device_mut().take_io_requests() {
        w.handle_io(r, 40 * f);
    }
    assert_eq!(w.pending_drawables(), 0, "queued drawables dropped");
    assert_eq!(w.outstanding_resources(), 0, "and released to the guest");
    assert_eq!(w.stream_count(), 0);
    w.device_mut().pump().unwrap();
    assert_eq!(w.device().guest().outstanding(), 0);

    sink.names.clear();
    w.client_poll(id, &mut sink, 40 * f).unwrap();
    let tail = [
        "surface_destroy",
        "surface_create",
        "monitors_config",
        "mark",
    ];
    assert!(sink.names.ends_with(&tail), "{:?}", sink.names);
    let before = &sink.names[..sink.names.len() - tail.len()];
    assert!(
        before
            .iter()
            .all(|n| !n.starts_with("draw_") && *n != "stream_data" && *n != "stream_data_sized"),
        "{before:?}"
    );
    // The desktop draws itself again at the new size.
    run_frame(&mut w, f, 40 * f);
    w.client_poll(id, &mut sink, 40 * f).unwrap();
    let server = w.surface(0).unwrap();
    let client = sink.canvas.surfaces.get(0).unwrap();
    assert_eq!((client.width(), client.height()), (800, 600));
    let rgb = |px: &[u32]| px.iter().map(|p| p & 0x00ff_ffff).collect::<Vec<u32>>();
    assert_eq!(rgb(client.pixels()), rgb(server.pixels()));
    assert_eq!(
        rgb(server.pixels()),
        rgb(&w.device().reference_frame().unwrap())
    );
}
