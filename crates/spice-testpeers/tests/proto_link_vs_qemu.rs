//! spice-proto's client link stage and RSA ticket against QEMU's spice-server: the right
//! password links (and the server's first message, MAIN_INIT, decodes), a wrong one gets
//! PERMISSION_DENIED, a password over the protocol's limit is refused before anything is sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use spice_proto::caps::{Caps, common, default_client_common_caps};
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::HeaderKind;
use spice_proto::link::{
    ClientLink, ClientLinkConfig, ClientLinkStatus, LinkErr, LinkError, LinkOutcome,
};
use spice_proto::messages::ServerMessage;
use spice_proto::{ChannelType, main};
use spice_testpeers::qemu::QemuBuilder;

const PASSWORD: &str = "s3cret-Pa55";

/// Links the main channel over a real socket with our sans-IO `ClientLink`; returns the
/// outcome and the socket (positioned right after the link result).
fn link_main(
    addr: std::net::SocketAddr,
    password: &str,
) -> Result<(LinkOutcome, TcpStream, Vec<u8>), LinkError> {
    let mut sock = TcpStream::connect(addr).expect("connect to spice-server");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut link = ClientLink::new(ClientLinkConfig {
        connection_id: 0,
        channel_type: ChannelType::MAIN,
        channel_id: 0,
        common_caps: default_client_common_caps(),
        channel_caps: Caps::new(),
        password: password.as_bytes().to_vec(),
    })?;
    let mut buf = vec![0u8; 4096];
    loop {
        let out = link.take_output();
        if !out.is_empty() {
            sock.write_all(&out).expect("send link bytes");
        }
        let n = sock.read(&mut buf).expect("read from spice-server");
        assert!(
            n > 0,
            "spice-server closed the connection during the link stage"
        );
        let mut data = &buf[..n];
        while !data.is_empty() {
            let (used, status) = link.handle_input(data)?;
            data = &data[used..];
            if let ClientLinkStatus::Linked(outcome) = status {
                return Ok((outcome, sock, data.to_vec()));
            }
            let out = link.take_output();
            if !out.is_empty() {
                sock.write_all(&out).expect("send link bytes");
            }
        }
    }
}

#[test]
fn ticket_right_password_links_and_wrong_one_is_denied() {
    let qemu = QemuBuilder::new()
        .password(PASSWORD)
        .spawn()
        .expect("start QEMU");
    let addr = qemu.spice_addr();

    // Right password: linked, mini header negotiated (QEMU advertises it), MAIN_INIT decodes.
    let (outcome, mut sock, mut pending) = link_main(addr, PASSWORD).expect("right password links");
    assert!(outcome.mini_header, "spice-server advertises MINI_HEADER");
    assert!(outcome.peer_common_caps.has(common::AUTH_SPICE));
    let mut framer = Framer::new(HeaderKind::Mini, 1 << 20);
    let mut buf = vec![0u8; 4096];
    let info = loop {
        match framer.next_frame(&pending).expect("frame") {
            Frame::Complete(info) => break info,
            Frame::Need(_) => {
                let n = sock.read(&mut buf).expect("read MAIN_INIT");
                assert!(n > 0, "server closed before MAIN_INIT");
                pending.extend_from_slice(&buf[..n]);
            }
        }
    };
    let msg = ServerMessage::decode(
        ChannelType::MAIN,
        info.msg_type,
        &pending[info.body.clone()],
    )
    .expect("decode");
    match msg {
        ServerMessage::Main(main::ServerMessage::Init(init)) => {
            assert_ne!(init.session_id, 0, "session id");
        }
        other => panic!("first main message is not INIT: {other:?}"),
    }

    // Wrong password: the server answers PERMISSION_DENIED.
    match link_main(addr, "wrong-password") {
        Err(e) => assert_eq!(e.link_err(), LinkErr::PERMISSION_DENIED, "{e}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
    // No password at all: also denied.
    match link_main(addr, "") {
        Err(e) => assert_eq!(e.link_err(), LinkErr::PERMISSION_DENIED, "{e}"),
        Ok(_) => panic!("an empty password was accepted"),
    }
    // Over the protocol's 60-byte limit: refused locally, nothing sent.
    let long = "x".repeat(61);
    let err = ClientLink::new(ClientLinkConfig {
        connection_id: 0,
        channel_type: ChannelType::MAIN,
        channel_id: 0,
        common_caps: default_client_common_caps(),
        channel_caps: Caps::new(),
        password: long.into_bytes(),
    })
    .expect_err("61-byte password refused");
    assert!(matches!(err, LinkError::Ticket(_)), "{err}");
}

#[test]
fn without_ticketing_any_password_links() {
    let qemu = QemuBuilder::new()
        .disable_ticketing()
        .spawn()
        .expect("start QEMU");
    let (outcome, _sock, _) = link_main(qemu.spice_addr(), "anything").expect("links");
    assert!(outcome.mini_header);
}
