//! The display channel plugged into the real server driver, over loopback TCP: a client
//! links main then display, sends DISPLAY_INIT, and renders what arrives (flow-controlled by
//! the ACK window) with spice-canvas until it equals the server's framebuffer. The cursor
//! ring feeds the cursor channel through the same worker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_codecs::classify::ImageCompression;
use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::cursor as pcursor;
use spice_proto::display::{self, ClientMessage, Init};
use spice_proto::main;
use spice_proto::messages::ServerMessage;
use spice_qxl::parse::Rect;
use spice_qxl::{GuestDriver, QxlDevice, VecMemory};
use spice_server::config::{ServerConfig, StreamingVideo};
use spice_server::cursor::CursorFeed;
use spice_server::display::{DisplayChannelFactory, DisplayConfig, DisplayWorker, millis_since};
use spice_server::server::ServerBuilder;
use spice_server::test_client::{TestClient, link_config};

const W: u32 = 200;
const H: u32 = 150;

type Worker = Arc<Mutex<DisplayWorker<QxlDevice<VecMemory>>>>;

struct Setup {
    worker: Worker,
    guest: GuestDriver,
    epoch: Instant,
    addr: SocketAddr,
    _server: spice_server::server::Server,
}

fn setup(compression: ImageCompression) -> Setup {
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .image_compression(compression)
        .streaming_video(StreamingVideo::Off)
        .build()
        .unwrap();
    let epoch = Instant::now();
    let (mut w, mut guest) =
        spice_server::testing::display_worker(8 << 20, DisplayConfig::from_server_config(&cfg));
    let feed = CursorFeed::new();
    w.set_cursor_feed(feed.clone());
    spice_server::testing::create_primary(&mut w, &mut guest, W, H);
    let worker = Arc::new(Mutex::new(w));
    let server = ServerBuilder::new(cfg)
        .cursor(feed)
        .add_channel(Arc::new(DisplayChannelFactory::new(
            worker.clone(),
            0,
            epoch,
        )))
        .start()
        .unwrap();
    let addr = server.local_addrs()[0];
    Setup {
        worker,
        guest,
        epoch,
        addr,
        _server: server,
    }
}

impl Setup {
    fn step(&mut self) {
        let mut w = self.worker.lock().unwrap();
        w.process(millis_since(self.epoch, Instant::now()));
        self.guest
            .collect_releases(w.device_mut().memory_mut())
            .unwrap();
    }

    fn fill(&mut self, bbox: Rect, color: u32) {
        {
            let mut w = self.worker.lock().unwrap();
            self.guest
                .fill(w.device_mut().memory_mut(), 0, bbox, color, None)
                .unwrap();
        }
        self.step();
    }

    fn copy(&mut self, at: (i32, i32), w_: u32, h_: u32, px: &[u8]) {
        {
            let mut w = self.worker.lock().unwrap();
            let bbox = Rect::new(at.0, at.1, at.0 + w_ as i32, at.1 + h_ as i32);
            self.guest
                .copy_bitmap(w.device_mut().memory_mut(), 0, bbox, w_, h_, px, 4096)
                .unwrap();
        }
        self.step();
    }

    fn framebuffer(&self) -> Vec<u32> {
        let w = self.worker.lock().unwrap();
        w.surface(0)
            .unwrap()
            .pixels()
            .iter()
            .map(|p| p & 0x00ff_ffff)
            .collect()
    }

    fn display_client(&self) -> (TestClient, TestClient, Canvas) {
        let mut m =
            TestClient::connect(self.addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
        let init = m.recv_type(main::ServerMessage::INIT).unwrap();
        let ServerMessage::Main(main::ServerMessage::Init(init)) = init.decode().unwrap() else {
            panic!("no MAIN_INIT")
        };
        let mut cfg = link_config(ChannelType::DISPLAY, 0, init.session_id, b"");
        cfg.channel_caps = Caps::new()
            .with(caps::display::MONITORS_CONFIG)
            .with(caps::display::LZ4_COMPRESSION)
            .with(caps::display::PREF_COMPRESSION);
        let mut d = TestClient::connect(self.addr, cfg).unwrap();
        d.send(&ClientMessage::Init(Init {
            pixmap_cache_id: 1,
            pixmap_cache_size: 20 << 20,
            glz_dictionary_id: 1,
            glz_dictionary_window_size: 1 << 22,
        }))
        .unwrap();
        let canvas = Canvas::new(1 << 26, ImageLimits::default(), new_glz_window(1 << 22));
        (m, d, canvas)
    }
}

fn pixels(c: &Canvas) -> Option<Vec<u32>> {
    let s = c.surfaces.get(0).ok()?;
    Some(s.pixels().iter().map(|p| p & 0x00ff_ffff).collect())
}

/// Receives and renders until the client's primary equals `want` (or the read times out).
fn sync(d: &mut TestClient, canvas: &mut Canvas, want: &[u32], seen: &mut Vec<u16>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if pixels(canvas).as_deref() == Some(want) && seen.contains(&display::msg::MARK) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "client never matched the framebuffer"
        );
        let m = d.recv().unwrap();
        if let ServerMessage::Display(msg) = m.decode().unwrap() {
            seen.push(m.msg_type);
            canvas.apply(&msg).unwrap();
        }
    }
}

fn desktop(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let ink = (x / 3 + y / 5 + seed) % 7 == 0;
            v.extend_from_slice(&if ink {
                [9, 9, 9, 0]
            } else {
                [0xf0, 0xe8, seed as u8, 0]
            });
        }
    }
    v
}

#[test]
fn display_channel_over_tcp_matches_the_framebuffer() {
    for compression in [
        ImageCompression::AutoGlz,
        ImageCompression::Lz4,
        ImageCompression::Quic,
    ] {
        let mut s = setup(compression);
        s.fill(Rect::new(0, 0, W as i32, H as i32), 0x00204060);
        s.copy((10, 10), 60, 40, &desktop(60, 40, 1));
        let (_main, mut d, mut canvas) = s.display_client();
        let mut seen = Vec::new();
        // A late joiner: the current framebuffer, then MARK.
        sync(&mut d, &mut canvas, &s.framebuffer(), &mut seen);
        assert_eq!(seen[0], display::msg::SURFACE_CREATE, "{compression:?}");
        // Many more drawables than the ACK window (20): the channel stops at 2x the window
        // and resumes as the client acknowledges.
        for i in 0..80u32 {
            let x = (i % 10) as i32 * 20;
            let y = (i / 10) as i32 * 18;
            if i % 3 == 0 {
                s.copy((x, y), 16, 16, &desktop(16, 16, i));
            } else {
                s.fill(Rect::new(x, y, x + 15, y + 15), 0x00010101 * i);
            }
        }
        sync(&mut d, &mut canvas, &s.framebuffer(), &mut seen);
        assert!(seen.len() > 60, "{compression:?}: {} messages", seen.len());
    }
}

#[test]
fn cursor_ring_feeds_the_cursor_channel() {
    let mut s = setup(ImageCompression::AutoGlz);
    let (_main, _d, _canvas) = s.display_client();
    // The cursor channel of the same session.
    let mut m = TestClient::connect(s.addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
    let init = m.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(init)) = init.decode().unwrap() else {
        panic!()
    };
    let mut c = TestClient::connect(
        s.addr,
        link_config(ChannelType::CURSOR, 0, init.session_id, b""),
    )
    .unwrap();
    c.recv_type(pcursor::msg::INIT).unwrap();
    {
        let mut w = s.worker.lock().unwrap();
        let shape = vec![0xffu8; 8 * 8 * 4];
        s.guest
            .cursor_set(w.device_mut().memory_mut(), 5, 6, 0, 8, 8, &shape)
            .unwrap();
        s.guest
            .cursor_move(w.device_mut().memory_mut(), 30, 40)
            .unwrap();
    }
    s.step();
    let set = c.recv_type(pcursor::msg::SET).unwrap();
    let ServerMessage::Cursor(pcursor::ServerMessage::Set(set)) = set.decode().unwrap() else {
        panic!()
    };
    assert_eq!((set.position.x, set.position.y), (5, 6));
    let mv = c.recv_type(pcursor::msg::MOVE).unwrap();
    let ServerMessage::Cursor(pcursor::ServerMessage::Move(p)) = mv.decode().unwrap() else {
        panic!()
    };
    assert_eq!((p.x, p.y), (30, 40));
    assert_eq!(s.guest.outstanding(), 0, "cursor commands released");
}
