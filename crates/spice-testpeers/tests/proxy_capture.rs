//! The recording proxy between spice-gtk's spicy-screenshot and QEMU's spice-server.
//!
//! For image-compression=glz and =quic: the screenshot through the proxy still equals QMP's
//! screendump, the recording has one connection per channel (main first, then the channels
//! spicy-screenshot links: display 0; each listed in the main channel's CHANNELS_LIST, none
//! linked twice, all with the session id), and each connection starts with
//! the "REDQ" link header in both directions. Each recording is saved under
//! `$SPICE_CAPTURE_DIR` (default `/tmp/spice-testpeers-captures`) as `<mode>.spicerec`.
//!
//! The link-stage reading here is deliberately minimal (fixed offsets of protocol.md §1.2-1.5,
//! §1.8); full decoding of the captured messages is spice-proto's job.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use spice_proto::Direction;
use spice_testpeers::analyse::analyse;
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};
use spice_testpeers::proxy::RecordingProxy;
use spice_testpeers::qemu::QemuBuilder;
use spice_testpeers::recording::{Connection, Recording};
use spice_testpeers::spicy::spicy_screenshot;

const BOOT: Duration = Duration::from_secs(4);
const REDQ: &[u8; 4] = b"REDQ";
const CHANNEL_MAIN: u8 = 1;
const CHANNEL_DISPLAY: u8 = 2;
const MSG_MAIN_CHANNELS_LIST: u16 = 104;
const COMMON_CAP_MINI_HEADER: u32 = 3;

fn u32_at(b: &[u8], off: usize) -> u32 {
    let s = b
        .get(off..off + 4)
        .unwrap_or_else(|| panic!("stream too short for a u32 at {off} ({} bytes)", b.len()));
    u32::from_le_bytes([s[0], s[1], s[2], s[3]])
}

/// `(connection_id, channel_type, channel_id)` from the client's SpiceLinkMess.
fn link_target(c: &Connection) -> (u32, u8, u8) {
    let b = &c.client_to_server;
    assert!(
        b.len() >= 16 + 18,
        "connection {}: short link message",
        c.index
    );
    (u32_at(b, 16), b[20], b[21])
}

/// Whether capability `cap` is set among the common caps of a SpiceLinkMess/SpiceLinkReply
/// starting at `body` (`fixed` = offset of the num_common_caps field in that struct).
fn common_cap(stream: &[u8], fixed: usize, cap: u32) -> bool {
    let body = 16;
    let ncommon = u32_at(stream, body + fixed);
    let caps_offset = u32_at(stream, body + fixed + 8) as usize;
    let word = cap / 32;
    word < ncommon
        && u32_at(stream, body + caps_offset + 4 * word as usize) & (1 << (cap % 32)) != 0
}

/// The `(type, id)` pairs of the main channel's CHANNELS_LIST, found by walking the server's
/// data messages after the link stage (mini headers when both sides advertised them).
fn channels_list(main: &Connection) -> Vec<(u8, u8)> {
    let s = &main.server_to_client;
    let mini = common_cap(&main.client_to_server, 6, COMMON_CAP_MINI_HEADER)
        && common_cap(s, 166, COMMON_CAP_MINI_HEADER);
    // Link header + SpiceLinkReply, then the u32 link result.
    let mut pos = 16 + u32_at(s, 12) as usize;
    assert_eq!(u32_at(s, pos), 0, "main channel link result is not OK");
    pos += 4;
    while pos < s.len() {
        let (ty, size, hdr) = if mini {
            (
                u16::from_le_bytes([s[pos], s[pos + 1]]),
                u32_at(s, pos + 2),
                6,
            )
        } else {
            (
                u16::from_le_bytes([s[pos + 8], s[pos + 9]]),
                u32_at(s, pos + 10),
                18,
            )
        };
        let body = pos + hdr;
        if ty == MSG_MAIN_CHANNELS_LIST {
            let n = u32_at(s, body) as usize;
            let list = s
                .get(body + 4..body + 4 + 2 * n)
                .expect("CHANNELS_LIST body within the stream");
            return list.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        }
        pos = body + size as usize;
    }
    panic!("no CHANNELS_LIST in the main channel's {} bytes", s.len());
}

fn capture_dir() -> PathBuf {
    std::env::var_os("SPICE_CAPTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/spice-testpeers-captures"))
}

/// Checks the properties every capture of a spicy-screenshot session must have.
fn check_recording(rec: &Recording) {
    assert!(!rec.connections.is_empty(), "no connection recorded");
    for c in &rec.connections {
        assert!(
            c.client_to_server.starts_with(REDQ),
            "connection {}: client did not start with REDQ: {:02x?}",
            c.index,
            &c.client_to_server[..c.client_to_server.len().min(16)]
        );
        assert!(
            c.server_to_client.starts_with(REDQ),
            "connection {}: server did not start with REDQ: {:02x?}",
            c.index,
            &c.server_to_client[..c.server_to_client.len().min(16)]
        );
    }
    let main = &rec.connections[0];
    let (conn_id, ty, id) = link_target(main);
    assert_eq!(
        (conn_id, ty, id),
        (0, CHANNEL_MAIN, 0),
        "first connection is not main"
    );
    let mut seen = BTreeSet::new();
    seen.insert((ty, id));
    let mut session = None;
    for c in &rec.connections[1..] {
        let (conn_id, ty, id) = link_target(c);
        assert!(seen.insert((ty, id)), "channel ({ty},{id}) linked twice");
        assert_ne!(
            conn_id, 0,
            "channel ({ty},{id}) linked without the session id"
        );
        assert_eq!(*session.get_or_insert(conn_id), conn_id, "two session ids");
    }
    let listed: BTreeSet<(u8, u8)> = channels_list(main).into_iter().collect();
    let opened: BTreeSet<(u8, u8)> = seen
        .iter()
        .copied()
        .filter(|c| c.0 != CHANNEL_MAIN)
        .collect();
    assert!(
        opened.contains(&(CHANNEL_DISPLAY, 0)),
        "no display channel: {opened:?}"
    );
    // spicy-screenshot links only the channels it needs (main + display), so the opened set is
    // a subset of the list, each channel on exactly one connection (checked above).
    assert!(
        opened.is_subset(&listed),
        "opened channels {opened:?} not all in CHANNELS_LIST {listed:?}"
    );
    assert!(
        listed.contains(&(CHANNEL_DISPLAY, 0)),
        "CHANNELS_LIST {listed:?}"
    );
}

/// Every captured message, both directions of every channel, frames, decodes with spice-proto
/// and re-encodes to the identical bytes (link stage included); the main channel carries INIT
/// and CHANNELS_LIST and the display channel a surface and drawing.
fn decode_recording(rec: &Recording) {
    let mut total = 0;
    for c in &rec.connections {
        let summary = analyse(c).unwrap_or_else(|e| panic!("{e}"));
        let names: BTreeSet<&str> = summary.messages.iter().map(|m| m.2).collect();
        let server = summary
            .messages
            .iter()
            .filter(|m| m.0 == Direction::ServerToClient)
            .count();
        let client = summary.messages.len() - server;
        eprintln!(
            "connection {} ({} {}): {server} server and {client} client messages: {names:?}",
            c.index, summary.channel, summary.channel_id
        );
        assert!(
            server > 0,
            "connection {}: no server messages decoded",
            c.index
        );
        match summary.channel.0 {
            CHANNEL_MAIN => {
                assert!(
                    names.contains("init") && names.contains("channels_list"),
                    "{names:?}"
                );
                assert!(names.contains("attach_channels"), "{names:?}");
            }
            CHANNEL_DISPLAY => {
                assert!(names.contains("surface_create"), "{names:?}");
                assert!(names.iter().any(|n| n.starts_with("draw_")), "{names:?}");
                assert!(
                    names.contains("init"),
                    "display init from the client: {names:?}"
                );
            }
            _ => {}
        }
        total += summary.messages.len();
    }
    eprintln!("{total} messages decoded and re-encoded byte for byte");
}

fn capture(mode: &str) -> Recording {
    let mut qemu = QemuBuilder::new()
        .image_compression(mode)
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().expect("screendump");

    let proxy = RecordingProxy::start(qemu.spice_addr()).expect("start proxy");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shot.ppm");
    let run = spicy_screenshot("127.0.0.1", proxy.port(), None, &out).expect("spicy-screenshot");
    assert!(
        run.success(),
        "spicy-screenshot through the proxy failed: {run:?}"
    );
    assert_ppm_eq(&truth, &Ppm::read(&out).unwrap());
    assert!(
        proxy.wait_all_closed(Duration::from_secs(10)),
        "connections still open after spicy-screenshot exited"
    );
    let rec = proxy.stop();

    let cdir = capture_dir();
    std::fs::create_dir_all(&cdir).unwrap();
    let path = cdir.join(format!("{mode}.spicerec"));
    rec.save(&path).unwrap();
    assert_eq!(Recording::load(&path).unwrap(), rec);
    rec
}

#[test]
fn proxy_records_glz_session() {
    let rec = capture("glz");
    check_recording(&rec);
    decode_recording(&rec);
}

#[test]
fn proxy_records_quic_session() {
    let rec = capture("quic");
    check_recording(&rec);
    decode_recording(&rec);
}

/// The committed sample capture (made by `proxy_records_quic_session`) has the same shape, so
/// decode tests can rely on it without QEMU.
#[test]
fn committed_quic_capture_is_well_formed() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/quic.spicerec");
    let rec = Recording::load(&path).expect("committed capture loads");
    check_recording(&rec);
    decode_recording(&rec);
}

/// Kills a child process when dropped.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// remote-viewer (under Xvfb) opens more channels than spicy-screenshot: main, display,
/// inputs and cursor. Every message of each, both directions, decodes and re-encodes byte for
/// byte, with image-compression=auto_glz (QEMU's default).
#[test]
fn remote_viewer_session_decodes_on_every_channel() {
    let xvfb = spice_testpeers::process::require_program("Xvfb");
    let viewer = spice_testpeers::process::require_program("remote-viewer");
    let mut qemu = QemuBuilder::new()
        .image_compression("auto_glz")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let proxy = RecordingProxy::start(qemu.spice_addr()).expect("start proxy");

    // A free X display number: the first whose lock file does not exist.
    let display = (100..200)
        .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .expect("a free X display");
    let _x = Reap(
        std::process::Command::new(xvfb)
            .args([
                format!(":{display}"),
                "-screen".into(),
                "0".into(),
                "1280x1024x24".into(),
                "-nolisten".into(),
                "tcp".into(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start Xvfb"),
    );
    std::thread::sleep(Duration::from_secs(1));
    let rv = Reap(
        std::process::Command::new(viewer)
            .arg(format!("spice://127.0.0.1:{}", proxy.port()))
            .env("DISPLAY", format!(":{display}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start remote-viewer"),
    );
    // Wait until the viewer has linked main, display, inputs and cursor and drawn for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proxy.connection_count() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(rv);
    proxy.wait_all_closed(Duration::from_secs(10));
    let rec = proxy.stop();

    let mut channels = BTreeSet::new();
    let mut total = 0;
    for c in &rec.connections {
        let summary = analyse(c).unwrap_or_else(|e| panic!("{e}"));
        channels.insert(summary.channel.name());
        total += summary.messages.len();
        assert!(
            !summary.messages.is_empty(),
            "connection {}: nothing decoded",
            c.index
        );
    }
    eprintln!("remote-viewer session: {total} messages on {channels:?}");
    for ch in ["main", "display", "inputs", "cursor"] {
        assert!(
            channels.contains(ch),
            "remote-viewer did not open {ch}: {channels:?}"
        );
    }
}
