//! A minimal blocking SPICE client for tests of this server (and of channels plugged into
//! it): links one channel with spice-proto's [`ClientLink`], then frames and decodes what
//! the server sends, answering `SET_ACK`, `ACK` windows and `PING` like spice-gtk (switch
//! that off with [`TestClient::set_auto_ack`] to play a client that stops acknowledging).
//!
//! It works over any byte stream ([`TestClient::over`]): plain TCP, TLS, or a WebSocket
//! adapter.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use spice_proto::base::{self, Pong};
use spice_proto::caps::{self, Caps};
use spice_proto::framer::{Frame, FrameError, Framer};
use spice_proto::header::{HeaderKind, write_channel_message, write_message};
use spice_proto::link::{ClientLink, ClientLinkConfig, ClientLinkStatus, LinkError};
use spice_proto::messages::ServerMessage;
use spice_proto::{ChannelMessage, ChannelType, MessageError};

/// A test-client failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestClientError {
    /// Socket I/O (a timeout shows as `WouldBlock` / `TimedOut`).
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The link failed or was refused (`LinkError::Server { code }`).
    #[error("link: {0}")]
    Link(#[from] LinkError),
    /// Framing failed.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A server message did not decode.
    #[error(transparent)]
    Decode(#[from] MessageError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
}

/// One received message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The channel it came on.
    pub channel: ChannelType,
    /// Message type.
    pub msg_type: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// Decodes the body.
    pub fn decode(&self) -> Result<ServerMessage<'_>, MessageError> {
        ServerMessage::decode(self.channel, self.msg_type, &self.body)
    }
}

/// A byte stream the client can run over.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A linked channel connection. See the module docs.
pub struct TestClient {
    stream: Box<dyn Stream>,
    channel: ChannelType,
    kind: HeaderKind,
    framer: Framer,
    buf: Vec<u8>,
    serial: u64,
    ack_window: u32,
    ack_left: u32,
    auto_ack: bool,
    tcp: Option<TcpStream>,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("channel", &self.channel)
            .field("header", &self.kind)
            .finish_non_exhaustive()
    }
}

/// `read`, retried on `Interrupted`.
fn read_retrying(s: &mut dyn Stream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A link config for `channel` with the default client caps and `password`.
pub fn link_config(
    channel_type: ChannelType,
    channel_id: u8,
    connection_id: u32,
    password: &[u8],
) -> ClientLinkConfig {
    ClientLinkConfig {
        connection_id,
        channel_type,
        channel_id,
        common_caps: caps::default_client_common_caps(),
        channel_caps: Caps::new(),
        password: password.to_vec(),
    }
}

impl TestClient {
    /// Connects over plain TCP with a 5 s read timeout and links.
    pub fn connect(addr: SocketAddr, config: ClientLinkConfig) -> Result<Self, TestClientError> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        let tcp = s.try_clone()?;
        let mut c = Self::over(Box::new(s), config)?;
        c.tcp = Some(tcp);
        Ok(c)
    }

    /// Links over an established stream.
    pub fn over(
        mut stream: Box<dyn Stream>,
        config: ClientLinkConfig,
    ) -> Result<Self, TestClientError> {
        let channel = config.channel_type;
        let mut link = ClientLink::new(config)?;
        stream.write_all(&link.take_output())?;
        stream.flush()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let outcome = loop {
            let n = read_retrying(&mut *stream, &mut chunk)?;
            if n == 0 {
                return Err(TestClientError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            let (used, status) = link.handle_input(&buf)?;
            buf.drain(..used);
            let out = link.take_output();
            if !out.is_empty() {
                stream.write_all(&out)?;
                stream.flush()?;
            }
            if let ClientLinkStatus::Linked(outcome) = status {
                break outcome;
            }
        };
        let kind = HeaderKind::from_mini(outcome.mini_header);
        Ok(Self {
            stream,
            channel,
            kind,
            framer: Framer::new(kind, 64 << 20),
            buf,
            serial: 0,
            ack_window: 0,
            ack_left: 0,
            auto_ack: true,
            tcp: None,
        })
    }

    /// The header kind negotiated.
    pub fn header_kind(&self) -> HeaderKind {
        self.kind
    }

    /// Sets the read timeout (plain TCP connections from [`TestClient::connect`] only).
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<(), TestClientError> {
        if let Some(t) = &self.tcp {
            t.set_read_timeout(Some(timeout))?;
        }
        Ok(())
    }

    /// Turns automatic `ACK_SYNC` / `ACK` / `PONG` answers on or off.
    pub fn set_auto_ack(&mut self, on: bool) {
        self.auto_ack = on;
    }

    /// Sends a typed message of this channel (or a base message).
    pub fn send<'m, M: ChannelMessage<'m>>(&mut self, msg: &M) -> Result<(), TestClientError> {
        let mut v = Vec::new();
        self.serial += 1;
        write_channel_message(&mut v, self.kind, self.serial, msg)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&v)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends a message with a raw body (malformed-input tests).
    pub fn send_raw(&mut self, msg_type: u16, body: &[u8]) -> Result<(), TestClientError> {
        let mut v = Vec::new();
        self.serial += 1;
        write_message(&mut v, self.kind, self.serial, msg_type, |w| {
            w.write_slice(body);
            Ok(())
        })
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&v)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Writes raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), TestClientError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Receives the next message (base messages included), answering flow control when
    /// auto-ack is on.
    pub fn recv(&mut self) -> Result<Received, TestClientError> {
        loop {
            if let Frame::Complete(info) = self.framer.next_frame(&self.buf)? {
                let body = self.buf[info.body.clone()].to_vec();
                self.buf.drain(..info.total_len);
                let r = Received {
                    channel: self.channel,
                    msg_type: info.msg_type,
                    body,
                };
                let msg = r.decode()?;
                if self.auto_ack {
                    self.flow_control(&msg)?;
                }
                return Ok(r);
            }
            let mut chunk = [0u8; 65536];
            let n = read_retrying(&mut *self.stream, &mut chunk)?;
            if n == 0 {
                return Err(TestClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Receives until a message of `msg_type` arrives (others are skipped).
    pub fn recv_type(&mut self, msg_type: u16) -> Result<Received, TestClientError> {
        loop {
            let r = self.recv()?;
            if r.msg_type == msg_type {
                return Ok(r);
            }
        }
    }

    fn flow_control(&mut self, msg: &ServerMessage<'_>) -> Result<(), TestClientError> {
        // spice-gtk counts every message received after SET_ACK, SET_ACK excluded.
        let mut counted = true;
        match msg {
            ServerMessage::Base(base::ServerMessage::SetAck(a)) => {
                self.ack_window = a.window;
                self.ack_left = a.window;
                counted = false;
                self.send(&base::ClientMessage::AckSync {
                    generation: a.generation,
                })?;
            }
            ServerMessage::Base(base::ServerMessage::Ping(p)) => {
                let pong = base::ClientMessage::Pong(Pong {
                    id: p.id,
                    timestamp: p.timestamp,
                });
                self.send(&pong)?;
            }
            _ => {}
        }
        if counted && self.ack_window > 0 {
            self.ack_left -= 1;
            if self.ack_left == 0 {
                self.ack_left = self.ack_window;
                self.send(&base::ClientMessage::Ack)?;
            }
        }
        Ok(())
    }
}
