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
