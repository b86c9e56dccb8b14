//! The server's TLS layer carries outputs larger than rustls's plaintext buffer (a display
//! channel's 1 MiB image) intact, and sends no TLS 1.3 session tickets (spice-gtk hangs on
//! them after the link).

use std::io::Read;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use spice_server::config::load_x509_dir;
use spice_server::transport::TlsLayer;
use spice_testpeers::tls::TestPki;

/// Moves every pending TLS record of the client into the server and back, until both are
/// idle; returns the plaintext the server received.
fn pump(
    client: &mut rustls::ClientConnection,
    server: &mut TlsLayer,
    to_client: &mut Vec<u8>,
) -> Vec<u8> {
    let mut plain = Vec::new();
    for _ in 0..64 {
        let mut c2s = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut c2s).unwrap();
        }
        if !c2s.is_empty() {
            server.input(&c2s, &mut plain, to_client).unwrap();
        }
        if !to_client.is_empty() {
            let mut rd: &[u8] = to_client;
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap();
            }
            to_client.clear();
        }
        if c2s.is_empty() && !client.is_handshaking() && !client.wants_write() {
            break;
        }
    }
    plain
}

#[test]
fn large_outputs_arrive_intact_and_no_session_tickets_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let server_cfg = load_x509_dir(dir.path()).unwrap();
    assert_eq!(server_cfg.send_tls13_tickets, 0);
    let mut server = TlsLayer::new(server_cfg).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client =
        rustls::ClientConnection::new(Arc::new(client_cfg), "127.0.0.1".try_into().unwrap())
            .unwrap();
    let mut to_client = Vec::new();
    pump(&mut client, &mut server, &mut to_client);
    assert!(!client.is_handshaking());

    // 1 MiB + a bit, well past rustls's default 64 KiB plaintext limit.
    let big: Vec<u8> = (0..(1 << 20) + 12345u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    server.output(&big, &mut to_client).unwrap();
    let mut got = Vec::new();
    let mut rd: &[u8] = &to_client;
    while !rd.is_empty() {
        client.read_tls(&mut rd).unwrap();
        client.process_new_packets().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match client.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the plaintext changed on the way");
}
