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

use spice_client_core::blocking::{ScreenshotError, ScreenshotOptions, screenshot_with_stats};
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
