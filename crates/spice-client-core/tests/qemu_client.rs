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

use spice_client_core::blocking::{ScreenshotOptions, screenshot};
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};

/// Long enough for SeaBIOS to have drawn text on the QXL primary surface.
const BOOT: Duration = Duration::from_secs(4);

/// Our screenshot of a stopped guest equals QEMU's QMP screendump, pixel for pixel.
fn screenshot_matches(mode: &str, password: Option<&str>) {
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
        timeout: Duration::from_secs(30),
    };
    let shot = screenshot(&uri, &opts).unwrap_or_else(|e| panic!("{mode}: {e}"));
    let shot = Ppm::parse(&shot).expect("our PPM parses");
    assert_ppm_eq(&truth, &shot);
}

#[test]
fn screenshot_off() {
    screenshot_matches("off", None);
}

#[test]
fn screenshot_quic() {
    screenshot_matches("quic", None);
}

#[test]
fn screenshot_lz() {
    screenshot_matches("lz", None);
}

#[test]
fn screenshot_glz() {
    screenshot_matches("glz", None);
}

#[test]
fn screenshot_auto_glz() {
    screenshot_matches("auto_glz", None);
}

#[test]
fn screenshot_auto_lz() {
    screenshot_matches("auto_lz", None);
}

#[test]
fn screenshot_with_password_and_wrong_password() {
    screenshot_matches("auto_glz", Some("s3cret&pass"));
}
