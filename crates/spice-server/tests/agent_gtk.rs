//! Real peer: spice-gtk (SpiceClientGLib from Python) against our server with the demo agent
//! sees the agent connected and makes a clipboard round trip through it. Fails loudly (never
//! skips) when spice-gtk's Python bindings are missing.

use std::sync::Arc;
use std::time::Duration;

use spice_proto::agent::ClipboardSelection;
use spice_server::config::ServerConfig;
use spice_server::demo_agent::{DemoAgent, DemoAgentConfig};
use spice_server::host::{CharDevice, Host};
use spice_server::server::ServerBuilder;
use spice_testpeers::gtk_client::GtkScenario;

#[test]
fn spice_gtk_clipboard_round_trip_through_demo_agent() {
    let agent = DemoAgent::new(DemoAgentConfig {
        initial_clipboard: Some("copied in the demo guest".into()),
        ..DemoAgentConfig::default()
    });
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .build()
        .unwrap();
    let host = Host {
        char_devices: vec![agent.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let port = server.local_addrs()[0].port();

    let text = "pasted from spice-gtk ✓";
    let run = GtkScenario::new(port)
        .clipboard_round_trip(1, text)
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    run.assert_ok();
    assert!(
        run.events_named("agent_connected")
            .any(|e| e["connected"] == true),
        "agent never connected: {:?}",
        run.events
    );
    // Agent → spice-gtk: the demo agent's grab, fetched as text.
    let got: Vec<_> = run
        .events_named("clipboard_data")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(got, vec!["copied in the demo guest"]);
    // spice-gtk → agent: its grab on PRIMARY, requested by the agent, stored there.
    assert!(
        run.events_named("clipboard_request")
            .any(|e| e["selection"] == 1)
    );
    assert_eq!(
        agent.client_text(ClipboardSelection::PRIMARY).as_deref(),
        Some(text)
    );
    assert_eq!(agent.errors(), 0);
}

#[test]
fn spice_gtk_file_transfer_to_demo_agent() {
    let agent = DemoAgent::new(DemoAgentConfig::default());
    let config = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .build()
        .unwrap();
    let host = Host {
        char_devices: vec![agent.clone() as Arc<dyn CharDevice>],
        ..Host::default()
    };
    let server = ServerBuilder::new(config).host(host).start().unwrap();
    let port = server.local_addrs()[0].port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-gtk.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let run = GtkScenario::new(port)
        .file_copy(&path)
        .timeout(Duration::from_secs(60))
        .run()
        .unwrap();
    run.assert_ok();
    assert!(run.events_named("file_copy_done").any(|e| e["ok"] == true));
    let files = agent.received_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "from-gtk.bin");
    assert!(files[0].data == data, "file content differs");
}

/// Kills the server when the test ends, also on a panic.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn spice_gtk_sees_the_binary_demo_agent_connected() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let child = Command::new(env!("CARGO_BIN_EXE_spice-server"))
        .args(["--listen", "127.0.0.1:0", "--demo", "--disable-ticketing"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("binary exited").unwrap();
        if let Some(a) = line.strip_prefix("spice-server: listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let run = GtkScenario::new(addr.port())
        .wait_agent()
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    run.assert_ok();
    assert!(
        run.events_named("agent_connected")
            .any(|e| e["connected"] == true)
    );
}
