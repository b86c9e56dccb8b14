//! Our server against the real spice-gtk (Debian's packages; see shared PEERS.md). These
//! tests never skip: a missing peer panics with the package to install.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spice_proto::inputs::{KeyboardModifiers, MouseButtonMask};
use spice_server::config::ServerConfig;
use spice_server::cursor::CursorFeed;
use spice_server::host::{Host, Keyboard, Mouse};
use spice_server::server::{Server, ServerBuilder};
use spice_testpeers::process::run_with_timeout;

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Keyboard for Recorder {
    fn push_scancode(&self, byte: u8) {
        self.0.lock().unwrap().push(format!("key {byte:02x}"));
    }
    fn leds(&self) -> KeyboardModifiers {
        KeyboardModifiers::empty()
    }
}
impl Mouse for Recorder {
    fn motion(&self, dx: i32, dy: i32, dz: i32, b: MouseButtonMask) {
        self.0
            .lock()
            .unwrap()
            .push(format!("motion {dx} {dy} {dz} {:x}", b.bits()));
    }
    fn buttons(&self, b: MouseButtonMask) {
        self.0
            .lock()
            .unwrap()
            .push(format!("buttons {:x}", b.bits()));
    }
}

fn start(password: Option<&str>) -> (Server, SocketAddr, Arc<Recorder>) {
    let mut b = ServerConfig::builder().listen("127.0.0.1:0".parse().unwrap());
    if let Some(p) = password {
        b = b.password(p, None);
    }
    let rec = Arc::new(Recorder::default());
    let host = Host {
        keyboard: Some(rec.clone()),
        mouse: Some(rec.clone()),
        ..Host::default()
    };
    let server = ServerBuilder::new(b.build().unwrap())
        .host(host)
        .cursor(CursorFeed::new())
        .start()
        .unwrap();
    let addr = server.local_addrs()[0];
    (server, addr, rec)
}

fn script() -> String {
    format!("{}/tests/peers/gtk_inputs.py", env!("CARGO_MANIFEST_DIR"))
}

fn run_gtk(port: u16, password: Option<&str>) -> spice_testpeers::process::ProgramOutput {
    let port = port.to_string();
    let s = script();
    let mut args: Vec<&std::ffi::OsStr> = vec![s.as_ref(), port.as_ref()];
    if let Some(p) = password {
        args.push(p.as_ref());
    }
    // Debian's python3 has the gi bindings (PEERS.md).
    run_with_timeout("/usr/bin/python3", &args, &[], Duration::from_secs(30)).unwrap()
}

#[test]
fn spice_gtk_links_main_and_inputs_and_keys_arrive_in_order() {
    let (server, addr, rec) = start(Some("pw"));
    let out = run_gtk(addr.port(), Some("pw"));
    assert!(
        out.success(),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("main-opened") && out.stdout.contains("inputs-opened"));
    let got = rec.0.lock().unwrap().clone();
    let expected = [
        "key 1e",
        "key 9e",
        "key e0",
        "key 1d",
        "key e0",
        "key 9d",
        "motion 5 -3 0 0",
        "buttons 1",
        "buttons 0",
    ];
    assert_eq!(got, expected, "stderr: {}", out.stderr);
    server.shutdown();
}

#[test]
fn spice_gtk_wrong_password_is_refused() {
    let (server, addr, rec) = start(Some("pw"));
    let out = run_gtk(addr.port(), Some("nope"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("error:MainChannel:error-auth"),
        "{}",
        out.stdout
    );
    assert!(rec.0.lock().unwrap().is_empty());
    server.shutdown();
}
