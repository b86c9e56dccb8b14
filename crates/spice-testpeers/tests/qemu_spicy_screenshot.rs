//! Harness sanity against the real peers: spice-gtk's spicy-screenshot connected straight to
//! QEMU's spice-server shows exactly what QMP `screendump` reports, once the guest is stopped.
//!
//! These tests need QEMU and spice-client-gtk; they panic (never skip) when those are missing.

use std::time::Duration;

use spice_testpeers::ppm::{Ppm, assert_ppm_eq};
use spice_testpeers::qemu::QemuBuilder;
use spice_testpeers::spicy::spicy_screenshot;

/// Long enough for SeaBIOS to have drawn text on the QXL primary surface.
const BOOT: Duration = Duration::from_secs(4);

#[test]
fn spicy_screenshot_equals_qmp_screendump() {
    let mut qemu = QemuBuilder::new()
        .image_compression("quic")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    assert_eq!(qemu.qmp().status().unwrap(), "paused");
    let truth = qemu.screendump().expect("QMP screendump");
    assert!(
        truth.non_black_pixels() > 0,
        "the firmware drew nothing in {BOOT:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shot.ppm");
    let run = spicy_screenshot("127.0.0.1", qemu.port(), None, &out).expect("spicy-screenshot");
    assert!(run.success(), "spicy-screenshot failed: {run:?}");
    let shot = Ppm::read(&out).expect("spicy-screenshot wrote a PPM");
    assert_ppm_eq(&truth, &shot);

    // The guest stays paused, so a second dump is identical too.
    assert_ppm_eq(&truth, &qemu.screendump().unwrap());
}

#[test]
fn ticketing_rejects_a_wrong_password_and_accepts_the_right_one() {
    let mut qemu = QemuBuilder::new()
        .password("s3cret,with comma")
        .image_compression("lz")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let bad = dir.path().join("bad.ppm");
    let run = spicy_screenshot("127.0.0.1", qemu.port(), Some("wrong"), &bad).unwrap();
    assert!(!run.success(), "a wrong password was accepted: {run:?}");
    assert!(!bad.exists());

    let good = dir.path().join("good.ppm");
    let run = spicy_screenshot("127.0.0.1", qemu.port(), Some("s3cret,with comma"), &good).unwrap();
    assert!(run.success(), "the right password was rejected: {run:?}");
    assert_ppm_eq(&truth, &Ppm::read(&good).unwrap());
}

#[test]
fn a_taken_port_is_reported_with_qemus_own_words() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = QemuBuilder::new()
        .port(port)
        .spawn()
        .expect_err("QEMU cannot bind a port that is taken");
    match err {
        spice_testpeers::PeerError::EarlyExit {
            program, stderr, ..
        } => {
            assert_eq!(program, "qemu-system-x86_64");
            assert!(stderr.contains("Failed to open SPICE sockets"), "{stderr}");
        }
        other => panic!("unexpected error: {other}"),
    }
}
