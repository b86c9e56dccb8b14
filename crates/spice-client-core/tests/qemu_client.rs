//! Our client against QEMU's spice-server. Needs QEMU (panics when missing, never skips).

use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::{Event, SessionConfig, SpiceUri};
use spice_proto::ChannelType;
use spice_testpeers::qemu::QemuBuilder;

#[test]
fn links_main_display_inputs_cursor() {
    let qemu = QemuBuilder::new().spawn().expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut client = Client::connect(&uri, SessionConfig::default()).unwrap();
    let mut linked = Vec::new();
    let mut init = false;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && linked.len() < 4 {
        match client.poll(Duration::from_millis(200)).unwrap() {
            Some(Event::ChannelLinked { channel_type, .. }) => linked.push(channel_type),
            Some(Event::MainInit { session_id, .. }) => {
                assert_ne!(session_id, 0);
                init = true;
            }
            Some(Event::ChannelError {
                error,
                channel_type,
                ..
            }) => {
                panic!("{channel_type} failed: {error}")
            }
            _ => {}
        }
    }
    assert!(init);
    linked.sort();
    assert_eq!(
        linked,
        [
            ChannelType::MAIN,
            ChannelType::DISPLAY,
            ChannelType::INPUTS,
            ChannelType::CURSOR
        ]
    );
}

use spice_client_core::blocking::{
    DriverError, ScreenshotError, ScreenshotOptions, screenshot_with_stats,
};
use spice_proto::link::{LinkErr, LinkError};
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};

/// Long enough for SeaBIOS to have drawn text on the QXL primary surface.
const BOOT: Duration = Duration::from_secs(4);

/// Our screenshot of a stopped guest equals QEMU's QMP screendump, pixel for pixel.
fn screenshot_matches(mode: &str, password: Option<&str>, image_types: &[u8]) {
    let mut b = QemuBuilder::new().image_compression(mode);
    if let Some(p) = password {
        b = b.password(p);
    }
    let mut qemu = b.spawn().expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().expect("QMP screendump");
    assert!(truth.non_black_pixels() > 0, "the firmware drew nothing");
    let mut uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    uri.password = password.map(str::to_owned);
    let opts = ScreenshotOptions {
        quiet: Duration::from_millis(500),
        settle_limit: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
    let (shot, stats) =
        screenshot_with_stats(&uri, &opts).unwrap_or_else(|e| panic!("{mode}: {e}"));
    let shot = Ppm::parse(&shot).expect("our PPM parses");
    assert_ppm_eq(&truth, &shot);
    assert_eq!(stats.render_errors, 0, "{stats:?}");
    for t in image_types {
        assert!(
            stats.images.contains_key(t),
            "{mode}: no image of type {t}: {stats:?}"
        );
    }
    if password.is_some() {
        uri.password = Some("wrong".into());
        match screenshot_with_stats(&uri, &opts) {
            Err(ScreenshotError::Channel {
                channel: ChannelType::MAIN,
                error: spice_client_core::ChannelError::Link(LinkError::Server { code }),
            }) => assert_eq!(code, LinkErr::PERMISSION_DENIED),
            other => panic!("a wrong password gave {other:?}"),
        }
    }
}

/// Connected while the firmware draws (so draws arrive as they happen, with the mode's
/// image compression), then the guest is stopped: our primary surface equals QMP's dump.
fn live_matches(mode: &str, image_types: &[u8]) {
    let mut qemu = QemuBuilder::new()
        .image_compression(mode)
        .spawn()
        .expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut client = Client::connect(&uri, SessionConfig::default()).unwrap();
    let pump = |client: &mut Client, d: Duration| -> Instant {
        let end = Instant::now() + d;
        let mut last = Instant::now();
        while Instant::now() < end {
            match client.poll(Duration::from_millis(50)).unwrap() {
                Some(Event::RegionChanged { .. } | Event::SurfaceCreated { .. }) => {
                    last = Instant::now()
                }
                Some(Event::ChannelError {
                    channel_type,
                    error,
                    ..
                }) => {
                    panic!("{mode}: {channel_type}: {error}")
                }
                Some(Event::RenderError { msg, detail, .. }) => panic!("{mode}: {msg}: {detail}"),
                _ => {}
            }
        }
        last
    };
    pump(&mut client, BOOT);
    qemu.qmp().stop().unwrap();
    // Drain what the server still sends, until quiet.
    loop {
        let last = pump(&mut client, Duration::from_millis(400));
        if last.elapsed() >= Duration::from_millis(300) {
            break;
        }
    }
    let truth = qemu.screendump().expect("QMP screendump");
    assert!(truth.non_black_pixels() > 0, "the firmware drew nothing");
    let s = client.session_ref();
    let surface = s.surface(0, 0).expect("primary surface");
    let ours = Ppm::parse(&spice_client_core::blocking::surface_to_ppm(surface)).unwrap();
    assert_ppm_eq(&truth, &ours);
    let stats = s.display_channel(0).unwrap().stats();
    assert!(stats.draws > 1, "{mode}: only {stats:?}");
    for t in image_types {
        assert!(
            stats.images.contains_key(t),
            "{mode}: no image of type {t}: {stats:?}"
        );
    }
}

#[test]
fn screenshot_off() {
    screenshot_matches("off", None, &[0]);
}

#[test]
fn screenshot_lz_and_wrong_password() {
    screenshot_matches("lz", Some("s3cret&pass"), &[101]);
}

#[test]
fn live_off() {
    live_matches("off", &[0]);
}

#[test]
fn live_quic() {
    live_matches("quic", &[1]);
}

#[test]
fn live_lz() {
    live_matches("lz", &[101]);
}

#[test]
fn live_glz() {
    live_matches("glz", &[102]);
}

#[test]
fn live_auto_glz() {
    live_matches("auto_glz", &[]);
}

#[test]
fn live_auto_lz() {
    live_matches("auto_lz", &[]);
}

/// Runs the client until nothing changed on the primary surface for `quiet`; returns the
/// primary surface's pixels.
fn settle_client(client: &mut Client, quiet: Duration, limit: Duration) -> Vec<u32> {
    let end = Instant::now() + limit;
    let mut last = Instant::now();
    while Instant::now() < end {
        if let Some(Event::RegionChanged { .. }) = client.poll(Duration::from_millis(50)).unwrap() {
            last = Instant::now();
        }
        if last.elapsed() >= quiet {
            break;
        }
    }
    // xRGB surface: the x byte is undefined, compare colours only.
    let s = client.session_ref().surface(0, 0).expect("primary");
    s.pixels().iter().map(|p| p & 0x00ff_ffff).collect()
}

/// Bounding box (x0, y0, x1, y1), exclusive ends, of the pixels that differ.
fn diff_box(a: &[u32], b: &[u32], width: usize) -> Option<(usize, usize, usize, usize)> {
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        if p != q {
            let (x, y) = (i % width, i / width);
            bbox = Some(match bbox {
                None => (x, y, x + 1, y + 1),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
            });
        }
    }
    bbox
}

fn tap(client: &mut Client, make: u8) {
    client.session().key_down(make, false).unwrap();
    client.session().key_up(make, false).unwrap();
}

/// Ctrl-B at iPXE's prompt opens its shell; typed text appears there, and backspaces take it
/// away again, pixel for pixel. Keys travel through our inputs channel only.
#[test]
fn keyboard_reaches_ipxe_shell() {
    let mut qemu = QemuBuilder::new()
        .image_compression("quic")
        .spawn()
        .expect("start QEMU");
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}", qemu.port())).unwrap();
    let mut client = Client::connect(&uri, SessionConfig::default()).unwrap();
    // Press Ctrl-B throughout the firmware's boot: iPXE shows "Press Ctrl-B" for 2 s.
    let end = Instant::now() + Duration::from_secs(7);
    let mut next = Instant::now();
    while Instant::now() < end {
        let _ = client.poll(Duration::from_millis(20)).unwrap();
        if Instant::now() >= next && client.session_ref().display_channel(0).is_some() {
            let s = client.session();
            if s.key_down(0x1d, false).is_ok() {
                s.key_down(0x30, false).unwrap();
                s.key_up(0x30, false).unwrap();
                s.key_up(0x1d, false).unwrap();
            }
            next = Instant::now() + Duration::from_millis(150);
        }
    }
    let quiet = Duration::from_millis(700);
    let before = settle_client(&mut client, quiet, Duration::from_secs(5));
    for make in [0x2d, 0x15, 0x2c] {
        tap(&mut client, make); // "xyz"
    }
    let typed = settle_client(&mut client, quiet, Duration::from_secs(5));
    assert_ne!(
        before, typed,
        "typing changed nothing: the keys did not reach a shell"
    );
    for _ in 0..3 {
        tap(&mut client, 0x0e); // backspace
    }
    let erased = settle_client(&mut client, quiet, Duration::from_secs(5));
    // iPXE's text cursor blinks: pictures may differ in the one cell it sits in.
    let w = client.session_ref().surface(0, 0).unwrap().width() as usize;
    let cell = |a: &[u32], b: &[u32]| {
        diff_box(a, b, w).is_none_or(|(x0, y0, x1, y1)| x1 - x0 <= 9 && y1 - y0 <= 16)
    };
    let (x0, _, x1, _) = diff_box(&before, &typed, w).unwrap();
    assert!(
        x1 - x0 >= 3 * 8,
        "three characters expected, changed columns {x0}..{x1}"
    );
    assert!(
        cell(&before, &erased),
        "backspaces did not restore the screen: {:?}",
        diff_box(&before, &erased, w)
    );
    // And QEMU agrees with what we show, with the text typed again.
    for make in [0x2d, 0x15, 0x2c] {
        tap(&mut client, make);
    }
    let again = settle_client(&mut client, quiet, Duration::from_secs(5));
    assert!(cell(&again, &typed), "typing again gave another picture");
    qemu.qmp().stop().unwrap();
    settle_client(
        &mut client,
        Duration::from_millis(300),
        Duration::from_secs(3),
    );
    let truth = qemu.screendump().unwrap();
    let s = client.session_ref().surface(0, 0).unwrap();
    assert_ppm_eq(
        &truth,
        &Ppm::parse(&spice_client_core::blocking::surface_to_ppm(s)).unwrap(),
    );
}

/// A test CA and a server certificate for 127.0.0.1 in QEMU's x509-dir layout.
fn make_x509_dir(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "spice-rs test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut srv =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    srv.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = srv.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
}

/// Over TLS (rustls, the test CA) our client gets the same picture as QMP's dump; a client
/// trusting another CA is refused.
#[test]
fn screenshot_over_tls() {
    use spice_client_core::blocking::{TlsConfig, screenshot_tls};
    let certs = tempfile::tempdir().unwrap();
    make_x509_dir(certs.path());
    let mut qemu = QemuBuilder::new()
        .image_compression("glz")
        .tls(certs.path())
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let uri = SpiceUri::parse(&format!(
        "spice://127.0.0.1?tls-port={}",
        qemu.tls_port().expect("tls port")
    ))
    .unwrap();
    let opts = ScreenshotOptions {
        quiet: Duration::from_millis(500),
        settle_limit: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
    let tls = TlsConfig {
        ca_file: certs.path().join("ca-cert.pem"),
        server_name: None,
    };
    let (shot, _) = screenshot_tls(&uri, &opts, Some(tls)).expect("TLS screenshot");
    assert_ppm_eq(&truth, &Ppm::parse(&shot).unwrap());

    let other = tempfile::tempdir().unwrap();
    make_x509_dir(other.path());
    let tls = TlsConfig {
        ca_file: other.path().join("ca-cert.pem"),
        server_name: None,
    };
    let opts = ScreenshotOptions {
        quiet: Duration::from_millis(500),
        settle_limit: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    };
    match screenshot_tls(&uri, &opts, Some(tls)) {
        Err(ScreenshotError::Driver(DriverError::MainConnection(e))) => {
            assert!(e.to_string().contains("invalid peer certificate"), "{e}")
        }
        other => panic!("an unknown CA gave {other:?}"),
    }
}
