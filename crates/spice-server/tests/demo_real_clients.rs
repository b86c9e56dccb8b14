//! The `spice-server` binary's frozen demo, shown by every real client we have: remote-viewer
//! under Xvfb, spice-html5 in headless Chromium over WebSocket on the plain port, the spice-gtk
//! library over TLS, and 50 spicy-screenshot clients at once. Each must show exactly the
//! server's own `--dump-frame`. With `--streaming-video=all`, spice-gtk receives MJPEG stream
//! frames (seen on the wire through a recording proxy, and decoded there by spice-proto).
//!
//! These tests need the real peers (PEERS.md); they panic, never skip, when one is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spice_proto::Direction;
use spice_testpeers::analyse::analyse;
use spice_testpeers::gtk_client::GtkScenario;
use spice_testpeers::html5::html5_screenshot;
use spice_testpeers::net::{free_port, wait_for_port};
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};
use spice_testpeers::proxy::RecordingProxy;
use spice_testpeers::remote_viewer::RemoteViewer;
use spice_testpeers::spicy::{spicy_screenshot, spicy_screenshot_with};
use spice_testpeers::tls::TestPki;

/// The binary under test, started on free ports; killed on drop.
struct DemoServer {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

impl DemoServer {
    /// `spice-server --listen 127.0.0.1:<free> --demo --demo-frames <frames> --dump-frame ..`
    /// plus `extra`; waits until the port accepts and, when `frames` freezes the demo, until
    /// the dump is written.
    fn start(frames: u64, extra: &[&str], tls: Option<&TestPki>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let dump = dir.path().join("frame.ppm");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spice-server"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--demo")
            .arg("--demo-frames")
            .arg(frames.to_string())
            .arg("--dump-frame")
            .arg(&dump)
            .args(extra);
        let tls_port = tls.map(|pki| {
            let tp = free_port().unwrap();
            cmd.arg("--tls-port")
                .arg(tp.to_string())
                .arg("--x509-dir")
                .arg(pki.dir());
            tp
        });
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spice-server");
        let server = DemoServer {
            child,
            port,
            tls_port,
            dump,
            _dir: dir,
        };
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("spice-server did not listen: {e}; log:\n{}", server.log()));
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's own framebuffer, once frozen.
    fn frame(&self) -> Ppm {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(p) = Ppm::read(&self.dump) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no --dump-frame after 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shot_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn remote_viewer_shows_the_frozen_demo() {
    let server = DemoServer::start(12, &["--image-compression", "auto_glz"], None);
    let frame = server.frame();
    let mut rv = RemoteViewer::start(&format!("spice://127.0.0.1:{}", server.port))
        .expect("start remote-viewer");
    match rv.wait_showing(&frame, Duration::from_secs(40)) {
        Ok((x, y)) => eprintln!("demo found at ({x}, {y}) in remote-viewer's window"),
        Err(last) => panic!(
            "remote-viewer never showed the demo frame ({}x{}); last screenshot {}x{}; log:\n{}",
            frame.width,
            frame.height,
            last.width,
            last.height,
            server.log()
        ),
    }
}

#[test]
fn spice_html5_shows_the_frozen_demo_over_websocket() {
    let server = DemoServer::start(12, &["--image-compression", "quic"], None);
    let frame = server.frame();
    let shot = html5_screenshot(
        server.port,
        None,
        Duration::from_millis(1500),
        Duration::from_secs(45),
    )
    .expect("run spice-html5");
    let image = shot.image.unwrap_or_else(|| {
        panic!(
            "spice-html5 showed nothing: {:?}; server log:\n{}",
            shot.output,
            server.log()
        )
    });
    if (image.width, image.height) == (frame.width, frame.height) {
        assert_ppm_eq(&frame, &image);
    } else {
        // spice-html5 asks the agent for its canvas size: the demo desktop was resized and
        // drew its final frame again at that size (the dump is from before the client).
        let log = strip_ansi(&server.log());
        let resized = format!("width={} height={}", image.width, image.height);
        assert!(
            log.lines()
                .any(|l| l.contains("demo agent: desktop resized") && l.contains(&resized)),
            "client shows {}x{} but the demo was not resized to it; log:\n{log}",
            image.width,
            image.height
        );
        assert_ppm_eq(&demo_reference(image.width, image.height, 12), &image);
    }
}

/// `text` without its terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match (in_code, c) {
            (false, '\x1b') => in_code = true,
            (false, c) => out.push(c),
            (true, 'm') => in_code = false,
            (true, _) => {}
        }
    }
    out
}

/// The frozen demo's picture (`--demo-frames frames`) at `width` x `height`, from the demo's
/// own reference painter (equal to the server's framebuffer: `tests/display_demo.rs`).
fn demo_reference(width: u32, height: u32, frames: u64) -> Ppm {
    let mut demo = spice_server::demo::DemoDesktop::new(spice_server::demo::DemoConfig {
        width,
        height,
        freeze_after: Some(frames),
        ..spice_server::demo::DemoConfig::default()
    })
    .unwrap();
    demo.step(frames - 1).unwrap();
    let px = demo.reference_frame().unwrap();
    Ppm {
        width,
        height,
        rgb: px
            .iter()
            .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
            .collect(),
    }
}

#[test]
fn spice_gtk_over_tls_shows_the_frozen_demo_and_a_wrong_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("x509")).unwrap();
    let server = DemoServer::start(
        12,
        &["--image-compression", "lz", "--password", "sesame"],
        Some(&pki),
    );
    let frame = server.frame();
    let out = shot_path(dir.path(), "tls.ppm");
    let run = GtkScenario::new_tls(server.tls_port.unwrap(), pki.ca_file())
        .password("sesame")
        .primary_out(&out, Duration::from_millis(800))
        .run()
        .expect("run the spice-gtk client");
    assert!(
        run.ok(),
        "spice-gtk over TLS failed: {:?}; log:\n{}",
        run.output,
        server.log()
    );
    assert_ppm_eq(&frame, &Ppm::read(&out).unwrap());

    let bad = shot_path(dir.path(), "bad.ppm");
    let run = spicy_screenshot("127.0.0.1", server.port, Some("wrong"), &bad).unwrap();
    assert!(!run.success(), "a wrong password was accepted: {run:?}");
    assert!(!bad.exists());
}

#[test]
fn fifty_spicy_screenshot_clients_at_once_all_get_the_frame() {
    let server = DemoServer::start(12, &["--image-compression", "glz"], None);
    let frame = server.frame();
    let dir = tempfile::tempdir().unwrap();
    let port = server.port;
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let out = shot_path(dir.path(), &format!("shot{i}.ppm"));
            std::thread::spawn(move || {
                let run = spicy_screenshot_with(
                    "127.0.0.1",
                    port,
                    None,
                    &out,
                    &[],
                    Duration::from_secs(120),
                );
                (i, out, run)
            })
        })
        .collect();
    for h in handles {
        let (i, out, run) = h.join().unwrap();
        let run = run.unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert!(
            run.success(),
            "client {i} failed: {run:?}; log:\n{}",
            server.log()
        );
        let shot = Ppm::read(&out).unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_ppm_eq(&frame, &shot);
    }
}

#[test]
fn streaming_video_all_sends_mjpeg_stream_frames_to_spice_gtk() {
    // 150 frames at 25 fps: six seconds of animation, then frozen.
    let server = DemoServer::start(150, &["--streaming-video", "all"], None);
    let proxy = RecordingProxy::start(([127, 0, 0, 1], server.port).into()).unwrap();
    let run = GtkScenario::new(proxy.port())
        .run_for(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .run()
        .expect("run the spice-gtk client");
    assert!(
        run.ok(),
        "spice-gtk failed: {:?}; log:\n{}",
        run.output,
        server.log()
    );
    let errors: Vec<_> = run.events_named("error").collect();
    assert!(errors.is_empty(), "spice-gtk channel errors: {errors:?}");
    proxy.wait_all_closed(Duration::from_secs(10));
    let rec = proxy.stop();
    let mut creates = 0;
    let mut frames = 0;
    let mut reports = 0;
    for c in &rec.connections {
        let summary = analyse(c).unwrap_or_else(|e| panic!("connection {}: {e}", c.index));
        for (dir, _, name) in &summary.messages {
            match (*dir, *name) {
                (Direction::ServerToClient, "stream_create") => creates += 1,
                (Direction::ServerToClient, "stream_data" | "stream_data_sized") => frames += 1,
                (Direction::ClientToServer, "stream_report") => reports += 1,
                _ => {}
            }
        }
    }
    eprintln!("streams created {creates}, stream frames {frames}, client reports {reports}");
    assert!(creates >= 1, "no STREAM_CREATE reached spice-gtk");
    assert!(
        frames >= 10,
        "only {frames} stream frames reached spice-gtk"
    );
}
