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
use spice_testpeers::gtk_client::{GtkInput, GtkRun, GtkScenario};

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

/// The scripted spice-gtk client of spice-testpeers: inputs as soon as the inputs channel
/// is open (this server has no display), then 700 ms for them to arrive.
fn run_gtk(port: u16, password: &str) -> GtkRun {
    GtkScenario::new(port)
        .password(password)
        .inputs(vec![
            GtkInput::KeyDown(0x1e),
            GtkInput::KeyUp(0x1e),
            GtkInput::KeyDown(0x11d), // right ctrl (extended)
            GtkInput::KeyUp(0x11d),
            GtkInput::Motion(5, -3, 0),
            GtkInput::Press(1, 1), // SPICE_MOUSE_BUTTON_LEFT, mask LEFT
            GtkInput::Release(1, 0),
            GtkInput::SleepMs(700),
        ])
        .inputs_without_display()
        .timeout(Duration::from_secs(15))
        .run()
        .expect("run the spice-gtk client")
}

#[test]
fn spice_gtk_links_main_and_inputs_and_keys_arrive_in_order() {
    let (server, addr, rec) = start(Some("pw"));
    let run = run_gtk(addr.port(), "pw");
    run.assert_ok();
    let channels = run.channels();
    assert!(
        channels.iter().any(|c| c == "SpiceMainChannel")
            && channels.iter().any(|c| c == "SpiceInputsChannel"),
        "{channels:?}"
    );
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
    assert_eq!(got, expected, "{:?}", run.output);
    server.shutdown();
}

#[test]
fn spice_gtk_wrong_password_is_refused() {
    let (server, addr, rec) = start(Some("pw"));
    let run = run_gtk(addr.port(), "nope");
    assert!(!run.ok(), "a wrong password was accepted: {:?}", run.output);
    // SPICE_CHANNEL_ERROR_AUTH = 23
    assert!(
        run.channel_errors()
            .contains(&("SpiceMainChannel".to_owned(), 23)),
        "{:?}",
        run.output
    );
    assert!(rec.0.lock().unwrap().is_empty());
    server.shutdown();
}
