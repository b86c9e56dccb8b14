//! Our server's port channel against the real spice-gtk PortChannel (Debian's packages; see
//! shared PEERS.md). Never skips: a missing peer panics with the package to install.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_server::config::ServerConfig;
use spice_server::host::{CharDevice, CharDeviceKind, Host};
use spice_server::server::ServerBuilder;
use spice_server::spicevmc::EchoDevice;
use spice_testpeers::gtk_client::GtkScenario;

#[test]
fn spice_gtk_port_channel_echo_and_events() {
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
    // 3000 lines of 27 bytes: 81 000 bytes, more than one 64 KiB device read.
    let run = GtkScenario::new(server.local_addrs()[0].port())
        .port_echo(3000)
        .timeout(Duration::from_secs(30))
        .run()
        .expect("run the spice-gtk client");
    run.assert_ok();
    let port = run.events_named("port").next().expect("no port channel");
    assert_eq!(port["name"], "org.example.echo.0", "{port}");
    assert_eq!(port["opened"], true, "{port}");
    let echo = run.events_named("port_echo").next().expect("no echo");
    assert_eq!(echo["bytes"], 81_000, "{echo}");
    assert_eq!(echo["equal"], true, "{echo}");
    // spice-gtk's PORT_EVENT (BREAK: it manages OPENED/CLOSED itself) reached the device; the device saw the client come and go.
    let end = Instant::now() + Duration::from_secs(10);
    while dev.states() != [true, false] {
        assert!(Instant::now() < end, "states {:?}", dev.states());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dev.port_events(), [2], "{:?}", run.output);
    assert_eq!(dev.written(), 81_000);
    server.shutdown();
}
