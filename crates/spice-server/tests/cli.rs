//! The `spice-server` binary: option errors, busy port, unreadable certificates, and a run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use spice_proto::ChannelType;
use spice_proto::cursor as pcursor;
use spice_proto::main;
use spice_proto::messages::ServerMessage;
use spice_server::test_client::{TestClient, link_config};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spice-server"));
    c.env("RUST_LOG", "warn");
    c
}

fn fails(args: &[&str]) -> (i32, String) {
    let out = bin().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_option_values_are_named() {
    let (code, err) = fails(&["--listen", "127.0.0.1:0", "--image-compression", "zip"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("image-compression") && err.contains("zip"),
        "{err}"
    );
    let (_, err) = fails(&["--listen", "127.0.0.1:0", "--streaming-video", "sometimes"]);
    assert!(err.contains("streaming-video"), "{err}");
    let (_, err) = fails(&["--listen", "127.0.0.1:0", "--jpeg-wan-compression", "x"]);
    assert!(err.contains("jpeg-wan-compression"), "{err}");
    // clap usage errors exit with 2.
    let (code, err) = fails(&["--listen", "nonsense"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = fails(&["--tls-port", "5901"]);
    assert_eq!(code, 2);
    assert!(err.contains("x509-dir"), "{err}");
    let (code, _) = fails(&["--password", "a", "--disable-ticketing"]);
    assert_eq!(code, 2);
    let (code, err) = fails(&["--listen", "127.0.0.1:0", "--password", &"p".repeat(61)]);
    assert_eq!(code, 1);
    assert!(err.contains("password"), "{err}");
}

#[test]
fn busy_port_and_unreadable_certificates() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (code, err) = fails(&["--listen", &addr]);
    assert_eq!(code, 1);
    assert!(err.contains("port busy") && err.contains(&addr), "{err}");
    let dir = tempfile_dir();
    let (code, err) = fails(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-port",
        "0",
        "--x509-dir",
        &dir,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("server-cert.pem"), "{err}");
    std::fs::write(format!("{dir}/server-cert.pem"), "not a pem").unwrap();
    std::fs::write(format!("{dir}/ca-cert.pem"), "not a pem").unwrap();
    let (_, err) = fails(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-port",
        "0",
        "--x509-dir",
        &dir,
    ]);
    assert!(
        err.contains("server-cert.pem") && err.contains("no certificate"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> String {
    let d = std::env::temp_dir().join(format!("spice-server-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.to_string_lossy().into_owned()
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
fn demo_serves_main_and_cursor() {
    let child = bin()
        .args(["--listen", "127.0.0.1:0", "--demo", "--demo-frames", "3"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("binary exited").unwrap();
        if let Some(a) = line.strip_prefix("spice-server: listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let mut m = TestClient::connect(addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
    let r = m.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(init)) = r.decode().unwrap() else {
        panic!()
    };
    let mut c = TestClient::connect(
        addr,
        link_config(ChannelType::CURSOR, 0, init.session_id, b""),
    )
    .unwrap();
    let r = c.recv_type(pcursor::msg::INIT).unwrap();
    let ServerMessage::Cursor(pcursor::ServerMessage::Init(ci)) = r.decode().unwrap() else {
        panic!()
    };
    assert_eq!(ci.cursor.header.unwrap().width, 16);
    assert_eq!(ci.cursor.data.len(), 16 * 16 * 4);
    drop(child);
}
