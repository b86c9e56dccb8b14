//! Harness sanity for the two other real clients, straight against QEMU's spice-server: the
//! scripted spice-gtk (GObject/Python) client and spice-html5 in headless Chromium both show
//! exactly what QMP `screendump` reports once the guest is stopped, and the spice-gtk client's
//! inputs channel takes keys and mouse events.
//!
//! These tests need QEMU, spice-gtk's Python bindings, node, Chromium and spice-html5; they panic
//! (never skip) when those are missing.

use std::time::Duration;

use spice_testpeers::gtk_client::{GtkInput, GtkScenario};
use spice_testpeers::html5::html5_screenshot;
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};
use spice_testpeers::qemu::QemuBuilder;

const BOOT: Duration = Duration::from_secs(4);

#[test]
fn gtk_client_primary_equals_qmp_screendump_and_sends_inputs() {
    let mut qemu = QemuBuilder::new()
        .image_compression("glz")
        .password("pw")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("primary.ppm");
    let run = GtkScenario::new(qemu.port())
        .password("pw")
        .primary_out(&out, Duration::from_millis(800))
        .inputs(vec![
            GtkInput::Motion(3, 4, 0),
            GtkInput::Key(0x1e),
            GtkInput::Press(1, 1),
            GtkInput::Release(1, 0),
        ])
        .run()
        .expect("run the spice-gtk client");
    assert!(run.ok(), "spice-gtk client failed: {:?}", run.output);
    let channels = run.channels();
    for want in [
        "SpiceMainChannel",
        "SpiceDisplayChannel",
        "SpiceInputsChannel",
    ] {
        assert!(
            channels.iter().any(|c| c == want),
            "{want} missing: {channels:?}"
        );
    }
    assert_eq!(run.events_named("input_sent").count(), 4);
    assert_ppm_eq(&truth, &Ppm::read(&out).unwrap());

    // A wrong password ends in a main channel error, not a picture.
    let bad = GtkScenario::new(qemu.port())
        .password("nope")
        .primary_out(dir.path().join("bad.ppm"), Duration::from_millis(500))
        .timeout(Duration::from_secs(10))
        .run()
        .unwrap();
    assert!(!bad.ok(), "a wrong password was accepted: {:?}", bad.output);
    assert!(!dir.path().join("bad.ppm").exists());
}

#[test]
fn spice_html5_canvas_equals_qmp_screendump() {
    let mut qemu = QemuBuilder::new()
        .image_compression("quic")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let shot = html5_screenshot(
        qemu.port(),
        None,
        Duration::from_millis(1500),
        Duration::from_secs(40),
    )
    .expect("run spice-html5");
    let image = shot
        .image
        .unwrap_or_else(|| panic!("spice-html5 showed nothing: {:?}", shot.output));
    assert_ppm_eq(&truth, &image);
}

#[test]
fn remote_viewer_shows_the_qmp_screendump() {
    let mut qemu = QemuBuilder::new()
        .image_compression("auto_glz")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let mut rv = spice_testpeers::remote_viewer::RemoteViewer::start(&format!(
        "spice://127.0.0.1:{}",
        qemu.port()
    ))
    .expect("start remote-viewer");
    match rv.wait_showing(&truth, Duration::from_secs(30)) {
        Ok((x, y)) => eprintln!("guest picture found at ({x}, {y})"),
        Err(last) => panic!(
            "remote-viewer never showed the guest picture; last screenshot {}x{}",
            last.width, last.height
        ),
    }
}

/// The test CA works with the real server: spice-gtk over TLS only (QEMU's tls-port with our
/// x509 dir) shows the screendump.
#[test]
fn gtk_client_over_tls_with_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = spice_testpeers::tls::TestPki::generate(&dir.path().join("x509")).unwrap();
    let mut qemu = QemuBuilder::new()
        .image_compression("lz")
        .tls(pki.dir())
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let out = dir.path().join("tls.ppm");
    let run = GtkScenario::new_tls(qemu.tls_port().expect("a TLS port"), pki.ca_file())
        .primary_out(&out, Duration::from_millis(800))
        .run()
        .expect("run the spice-gtk client");
    assert!(run.ok(), "spice-gtk over TLS failed: {:?}", run.output);
    assert_ppm_eq(&truth, &Ppm::read(&out).unwrap());
}
