//! The demo desktop through the display pipeline and the real driver: frozen after a few
//! frames, the server's framebuffer (`--dump-frame`) equals what our own test client renders
//! over TCP, pixel for pixel, and the demo's independent reference picture. (The real
//! spice-gtk `spicy-screenshot` against the binary: `tests/display_cli.rs`.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::display::{self, ClientMessage, Init};
use spice_proto::main;
use spice_proto::messages::ServerMessage;
use spice_server::config::{ServerConfig, StreamingVideo};
use spice_server::cursor::CursorFeed;
use spice_server::demo::DemoConfig;
use spice_server::display::DisplayConfig;
use spice_server::display::demo::DemoRunner;
use spice_server::server::{Server, ServerBuilder};
use spice_server::test_client::{TestClient, link_config};
use spice_testpeers::ppm::{Ppm, compare};

fn start(compression: &str, frames: u64) -> (Server, SocketAddr, DemoRunner) {
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .image_compression(spice_server::config::parse_image_compression(compression).unwrap())
        .streaming_video(StreamingVideo::Filter)
        .build()
        .unwrap();
    let epoch = Instant::now();
    let feed = CursorFeed::new();
    let demo = DemoRunner::start(
        DemoConfig {
            freeze_after: Some(frames),
            ..DemoConfig::rich()
        },
        DisplayConfig::from_server_config(&cfg),
        feed.clone(),
        epoch,
    )
    .unwrap();
    let server = ServerBuilder::new(cfg)
        .cursor(feed)
        .add_channel(demo.factory())
        .start()
        .unwrap();
    let addr = server.local_addrs()[0];
    assert!(
        demo.wait_settled(Duration::from_secs(30)),
        "demo did not settle"
    );
    (server, addr, demo)
}

#[test]
fn our_client_renders_the_frozen_demo_exactly() {
    let (_server, addr, demo) = start("auto_glz", 4);
    let want = Ppm::parse(&demo.primary_ppm().unwrap()).unwrap();
    let mut m = TestClient::connect(addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
    let init = m.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(init)) = init.decode().unwrap() else {
        panic!()
    };
    let mut cfg = link_config(ChannelType::DISPLAY, 0, init.session_id, b"");
    cfg.channel_caps = Caps::new().with(caps::display::MONITORS_CONFIG);
    let mut d = TestClient::connect(addr, cfg).unwrap();
    d.send(&ClientMessage::Init(Init {
        pixmap_cache_id: 1,
        pixmap_cache_size: 20 << 20,
        glz_dictionary_id: 1,
        glz_dictionary_window_size: 1 << 22,
    }))
    .unwrap();
    let mut canvas = Canvas::new(1 << 26, ImageLimits::default(), new_glz_window(1 << 22));
    loop {
        let r = d.recv().unwrap();
        if let ServerMessage::Display(msg) = r.decode().unwrap() {
            canvas.apply(&msg).unwrap();
            if r.msg_type == display::msg::MARK {
                break;
            }
        }
    }
    let s = canvas.surfaces.get(0).unwrap();
    let got = Ppm::parse(
        &[
            format!("P6\n{} {}\n255\n", s.width(), s.height()).into_bytes(),
            s.to_rgb24(),
        ]
        .concat(),
    )
    .unwrap();
    if let Err(diff) = compare(&want, &got) {
        panic!("client differs from the framebuffer: {diff:?}");
    }
    // The demo's own reference picture agrees too.
    let reference = {
        let w = demo.worker().lock().unwrap();
        w.device().reference_frame().unwrap()
    };
    let fb: Vec<u32> = s.pixels().iter().map(|p| p & 0x00ff_ffff).collect();
    let reference: Vec<u32> = reference.iter().map(|p| p & 0x00ff_ffff).collect();
    assert_eq!(fb, reference);
}
