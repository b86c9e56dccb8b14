//! TLS (rustls, x509 dir as QEMU lays it out) and WebSocket (as spice-html5 connects) on
//! our server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use spice_proto::ChannelType;
use spice_proto::link::{LinkErr, LinkError};
use spice_proto::main;
use spice_proto::messages::ServerMessage;
use spice_server::config::{ChannelSecurity, ServerConfig};
use spice_server::server::ServerBuilder;
use spice_server::test_client::{TestClient, TestClientError, link_config};
use tungstenite::client::IntoClientRequest;

fn tls_stream(addr: SocketAddr, ca_pem: &str) -> Box<dyn spice_server::test_client::Stream> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Box::new(rustls::StreamOwned::new(conn, tcp))
}

fn init_of(c: &mut TestClient) -> main::Init {
    let r = c.recv_type(main::ServerMessage::INIT).unwrap();
    let ServerMessage::Main(main::ServerMessage::Init(i)) = r.decode().unwrap() else {
        panic!()
    };
    i
}

#[test]
fn tls_port_links_and_secure_channels_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let pki = spice_testpeers::tls::TestPki::generate(dir.path()).unwrap();
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .tls_listen("127.0.0.1:0".parse().unwrap())
        .x509_dir(pki.dir())
        .password("pw", None)
        .channel_security(ChannelType::MAIN, ChannelSecurity::Secure)
        .channel_security(ChannelType::INPUTS, ChannelSecurity::Insecure)
        .build()
        .unwrap();
    let server = ServerBuilder::new(cfg).start().unwrap();
    let plain = server.local_addrs()[0];
    let tls = server.tls_local_addrs()[0];
    // Main over TLS works.
    let mut m = TestClient::over(
        tls_stream(tls, &pki.ca_pem),
        link_config(ChannelType::MAIN, 0, 0, b"pw"),
    )
    .unwrap();
    let init = init_of(&mut m);
    // Main on the plain port: NEED_SECURED.
    let e = TestClient::connect(plain, link_config(ChannelType::MAIN, 0, 0, b"pw")).unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::NEED_SECURED
            })
        ),
        "{e}"
    );
    // Inputs on the TLS port: NEED_UNSECURED; on the plain port it joins the TLS session.
    let e = TestClient::over(
        tls_stream(tls, &pki.ca_pem),
        link_config(ChannelType::INPUTS, 0, init.session_id, b"pw"),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::NEED_UNSECURED
            })
        ),
        "{e}"
    );
    let mut i = TestClient::connect(
        plain,
        link_config(ChannelType::INPUTS, 0, init.session_id, b"pw"),
    )
    .unwrap();
    i.recv_type(spice_proto::inputs::InputsServerMessage::INIT)
        .unwrap();
    // Wrong password over TLS.
    let e = TestClient::over(
        tls_stream(tls, &pki.ca_pem),
        link_config(ChannelType::MAIN, 0, 0, b"bad"),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TestClientError::Link(LinkError::Server {
                code: LinkErr::PERMISSION_DENIED
            })
        ),
        "{e}"
    );
    server.shutdown();
}

/// SPICE over WebSocket binary messages, as spice-html5 runs it.
struct WsStream {
    ws: tungstenite::WebSocket<TcpStream>,
    buf: Vec<u8>,
}

impl Read for WsStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.ws.read() {
                Ok(tungstenite::Message::Binary(b)) => self.buf.extend_from_slice(&b),
                Ok(tungstenite::Message::Close(_)) => return Ok(0),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(tungstenite::Error::ConnectionClosed) => return Ok(0),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Ok(n)
    }
}

impl Write for WsStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.ws
            .send(tungstenite::Message::Binary(data.to_vec().into()))
            .map_err(io::Error::other)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn ws_connect(addr: SocketAddr) -> WsStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("ws://{addr}/websockify")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    let (ws, resp) = tungstenite::client(req, tcp).unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["sec-websocket-protocol"], "binary");
    WsStream {
        ws,
        buf: Vec::new(),
    }
}

#[test]
fn websocket_on_the_plain_port() {
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let server = ServerBuilder::new(cfg).start().unwrap();
    let addr = server.local_addrs()[0];
    let mut m = TestClient::over(
        Box::new(ws_connect(addr)),
        link_config(ChannelType::MAIN, 0, 0, b""),
    )
    .unwrap();
    let init = init_of(&mut m);
    m.send(&main::ClientMessage::AttachChannels).unwrap();
    m.recv_type(main::ServerMessage::CHANNELS_LIST).unwrap();
    // A second channel over WebSocket joins, and plain SPICE still works beside it.
    let mut i = TestClient::over(
        Box::new(ws_connect(addr)),
        link_config(ChannelType::INPUTS, 0, init.session_id, b""),
    )
    .unwrap();
    i.recv_type(spice_proto::inputs::InputsServerMessage::INIT)
        .unwrap();
    let mut p = TestClient::connect(addr, link_config(ChannelType::MAIN, 0, 0, b"")).unwrap();
    init_of(&mut p);
    // An HTTP request that is not an upgrade is refused and closed.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut v = Vec::new();
    let _ = raw.read_to_end(&mut v);
    assert!(!String::from_utf8_lossy(&v).contains("101"));
    server.shutdown();
}
