//! The tokio driver against QEMU's spice-server: the same pictures as QMP's screendump, over
//! plain TCP with a password and over TLS (tokio-rustls, a test CA), and a wrong password
//! refused. These tests need QEMU; they panic (never skip) when it is missing.

use std::time::Duration;

use spice_client_core::tokio_driver::{ScreenshotError, ScreenshotOptions, TlsConfig, screenshot};
use spice_client_core::{ChannelError, SpiceUri};
use spice_proto::ChannelType;
use spice_proto::link::{LinkErr, LinkError};
use spice_testpeers::ppm::{Ppm, assert_ppm_eq};
use spice_testpeers::qemu::QemuBuilder;
use spice_testpeers::tls::TestPki;

const BOOT: Duration = Duration::from_secs(4);

fn opts() -> ScreenshotOptions {
    ScreenshotOptions {
        quiet: Duration::from_millis(500),
        settle_limit: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_screenshot_with_password_equals_screendump() {
    let mut qemu = QemuBuilder::new()
        .image_compression("auto_glz")
        .password("tok")
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}?password=tok", qemu.port())).unwrap();
    let (shot, stats) = screenshot(&uri, &opts(), None).await.expect("screenshot");
    assert_ppm_eq(&truth, &Ppm::parse(&shot).unwrap());
    assert_eq!(stats.render_errors, 0, "{stats:?}");

    let uri = SpiceUri::parse(&format!("spice://127.0.0.1:{}?password=bad", qemu.port())).unwrap();
    match screenshot(&uri, &opts(), None).await {
        Err(ScreenshotError::Channel {
            channel: ChannelType::MAIN,
            error: ChannelError::Link(LinkError::Server { code }),
        }) => assert_eq!(code, LinkErr::PERMISSION_DENIED),
        other => panic!("a wrong password gave {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_screenshot_over_tls_equals_screendump() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let mut qemu = QemuBuilder::new()
        .image_compression("quic")
        .tls(pki.dir())
        .spawn()
        .expect("start QEMU");
    qemu.settle(BOOT).expect("stop the guest");
    let truth = qemu.screendump().unwrap();
    let uri = SpiceUri::parse(&format!(
        "spice://127.0.0.1?tls-port={}",
        qemu.tls_port().expect("tls port")
    ))
    .unwrap();
    let tls = TlsConfig {
        ca_file: pki.ca_file(),
        server_name: None,
    };
    let (shot, _) = screenshot(&uri, &opts(), Some(tls))
        .await
        .expect("TLS screenshot");
    assert_ppm_eq(&truth, &Ppm::parse(&shot).unwrap());
}
