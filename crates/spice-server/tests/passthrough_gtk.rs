//! Our server's port channel against the real spice-gtk PortChannel (Debian's packages; see
//! shared PEERS.md). Never skips: a missing peer panics with the package to install.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_server::config::ServerConfig;
use spice_server::host::{CharDevice, CharDeviceKind, Host};
use spice_server::server::ServerBuilder;
use spice_server::spicevmc::EchoDevice;
use spice_testpeers::process::run_with_timeout;

#[test]
fn spice_gtk_port_channel_echo_and_events() {
    spice_testpeers::gtk_client::require_gi();
    let dev = Arc::new(EchoDevice::new(
        CharDeviceKind::Port {
            name: "org.example.echo.0".into(),
        },
        1 << 20,
    ));
    let host = Host {
        char_devices: vec![dev.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let port = server.local_addrs()[0].port().to_string();
    let script = format!("{}/tests/peers/gtk_port.py", env!("CARGO_MANIFEST_DIR"));
    // 3000 lines of 27 bytes: 81 000 bytes, more than one 64 KiB device read.
    let args: Vec<&std::ffi::OsStr> = vec![script.as_ref(), port.as_ref(), "3000".as_ref()];
    let out = run_with_timeout("/usr/bin/python3", &args, &[], Duration::from_secs(40)).unwrap();
    let stdout = &out.stdout;
    assert!(
        out.success(),
        "spice-gtk script failed: {stdout}\n{}",
        out.stderr
    );
    assert!(stdout.contains("port:org.example.echo.0:True"), "{stdout}");
    assert!(stdout.contains("echo-ok:81000"), "{stdout}");
    // spice-gtk's PORT_EVENT (BREAK: it manages OPENED/CLOSED itself) reached the device; the device saw the client come and go.
    let end = Instant::now() + Duration::from_secs(10);
    while dev.states() != [true, false] {
        assert!(Instant::now() < end, "states {:?}", dev.states());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dev.port_events(), [2], "stderr: {}", out.stderr);
    assert_eq!(dev.written(), 81_000);
    server.shutdown();
}
