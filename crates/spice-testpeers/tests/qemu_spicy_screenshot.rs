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
