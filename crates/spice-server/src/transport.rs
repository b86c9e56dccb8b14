//! Byte-stream layers between the socket and SPICE, sans-IO: TLS (rustls) and WebSocket
//! (tungstenite over an in-memory stream), stacked as socket → TLS → WebSocket → SPICE.
//!
//! A plain or TLS connection whose first bytes are `GET ` is an HTTP request: it is
//! answered as a WebSocket upgrade (with `Sec-WebSocket-Protocol: binary` when the client
//! asks for it, as spice-html5 does) and SPICE then runs over binary frames.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake, server::ServerHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Largest WebSocket message or frame accepted from a client.
pub const MAX_WS_MESSAGE: usize = 4 << 20;

/// A transport failure (the connection is closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// TLS failed (handshake or record layer).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The WebSocket handshake or framing failed.
    #[error("WebSocket: {0}")]
    WebSocket(Box<tungstenite::Error>),
    /// I/O on the in-memory buffers (not expected).
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

impl From<tungstenite::Error> for TransportError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

/// An in-memory duplex stream: reads drain `input` (WouldBlock when empty), writes append to
/// `output`. tungstenite runs on top of it.
#[derive(Debug, Default)]
pub struct MemStream {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.input.read(buf)?;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Adds `Sec-WebSocket-Protocol: binary` when the client offers it.
#[derive(Debug, Clone, Copy)]
struct BinaryProtocol;

impl Callback for BinaryProtocol {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        let offers_binary = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("binary"));
        if offers_binary {
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                tungstenite::http::HeaderValue::from_static("binary"),
            );
        }
        Ok(response)
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE))
}

enum WsState {
    Handshake(Option<Box<MidHandshake<ServerHandshake<MemStream, BinaryProtocol>>>>),
    Open(Box<WebSocket<MemStream>>),
    Closed,
}

/// The WebSocket layer of one connection.
pub struct WsLayer {
    state: WsState,
}

impl std::fmt::Debug for WsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsLayer")
    }
}

impl WsLayer {
    /// A layer waiting for the HTTP upgrade request.
    pub fn new() -> Self {
        Self {
            state: WsState::Handshake(None),
        }
    }

    /// True once the client closed the WebSocket.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, WsState::Closed)
    }

    /// Feeds bytes from below; appends SPICE bytes to `spice` and bytes to send below to
    /// `raw_out`.
    pub fn input(
        &mut self,
        data: &[u8],
        spice: &mut Vec<u8>,
        raw_out: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        match &mut self.state {
            WsState::Closed => return Ok(()),
            WsState::Handshake(mid) => {
                let result = match mid.take() {
                    None => {
                        let mut s = MemStream::default();
                        s.input.extend(data);
                        tungstenite::accept_hdr_with_config(s, BinaryProtocol, Some(ws_config()))
                    }
                    Some(mut m) => {
                        m.get_mut().get_mut().input.extend(data);
                        (*m).handshake()
                    }
                };
                match result {
                    Ok(mut ws) => {
                        raw_out.append(&mut ws.get_mut().output);
                        tracing::debug!("WebSocket upgrade accepted");
                        self.state = WsState::Open(Box::new(ws));
                        // Frames that came with the request.
                        return self.input(&[], spice, raw_out);
                    }
                    Err(HandshakeError::Interrupted(mut m)) => {
                        raw_out.append(&mut m.get_mut().get_mut().output);
                        self.state = WsState::Handshake(Some(Box::new(m)));
                        return Ok(());
                    }
                    Err(HandshakeError::Failure(e)) => return Err(e.into()),
                }
            }
            WsState::Open(ws) => {
                ws.get_mut().input.extend(data);
                loop {
                    match ws.read() {
                        Ok(Message::Binary(b)) => spice.extend_from_slice(&b),
                        Ok(Message::Text(t)) => spice.extend_from_slice(t.as_bytes()),
                        Ok(Message::Close(_)) => {
                            let _ = ws.flush();
                            raw_out.append(&mut ws.get_mut().output);
                            self.state = WsState::Closed;
                            return Ok(());
                        }
                        Ok(_) => {} // ping/pong: tungstenite queues the pong
                        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                            break;
                        }
                        Err(tungstenite::Error::ConnectionClosed) => {
                            self.state = WsState::Closed;
                            return Ok(());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                match ws.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
                raw_out.append(&mut ws.get_mut().output);
            }
        }
        Ok(())
    }

    /// Wraps SPICE bytes in one binary message; appends the frame to `raw_out`.
    pub fn output(&mut self, data: &[u8], raw_out: &mut Vec<u8>) -> Result<(), TransportError> {
        if data.is_empty() {
            return Ok(());
        }
        if let WsState::Open(ws) = &mut self.state {
            ws.send(Message::Binary(data.to_vec().into()))?;
            raw_out.append(&mut ws.get_mut().output);
        }
        Ok(())
    }
}

impl Default for WsLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// The TLS layer of one connection.
#[derive(Debug)]
pub struct TlsLayer {
    conn: rustls::ServerConnection,
}

impl TlsLayer {
    /// A server-side TLS session.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<Self, TransportError> {
        Ok(Self {
            conn: rustls::ServerConnection::new(config)?,
        })
    }

    /// Feeds TLS records; appends plaintext to `plain` and records to send to `raw_out`.
    pub fn input(
        &mut self,
        mut data: &[u8],
        plain: &mut Vec<u8>,
        raw_out: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        while !data.is_empty() {
            let n = self.conn.read_tls(&mut data)?;
            if n == 0 {
                break;
            }
            let state = self.conn.process_new_packets()?;
            let avail = state.plaintext_bytes_to_read();
            if avail > 0 {
                let start = plain.len();
                plain.resize(start + avail, 0);
                let got = self.conn.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + got);
            }
        }
        self.flush(raw_out)
    }

    /// Encrypts plaintext; appends records to `raw_out`.
    pub fn output(&mut self, data: &[u8], raw_out: &mut Vec<u8>) -> Result<(), TransportError> {
        if !data.is_empty() {
            self.conn.writer().write_all(data)?;
        }
        self.flush(raw_out)
    }

    fn flush(&mut self, raw_out: &mut Vec<u8>) -> Result<(), TransportError> {
        while self.conn.wants_write() {
            self.conn.write_tls(raw_out)?;
        }
        Ok(())
    }
}

/// The stack of one connection: optional TLS, then optional WebSocket (decided from the
/// first plaintext bytes).
#[derive(Debug)]
pub struct Transport {
    tls: Option<TlsLayer>,
    ws: Option<WsLayer>,
}

impl Transport {
    /// A plain transport.
    pub fn plain() -> Self {
        Self {
            tls: None,
            ws: None,
        }
    }

    /// A TLS transport.
    pub fn tls(config: Arc<rustls::ServerConfig>) -> Result<Self, TransportError> {
        Ok(Self {
            tls: Some(TlsLayer::new(config)?),
            ws: None,
        })
    }

    /// True when TLS is in use.
    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    /// True when WebSocket is in use.
    pub fn is_websocket(&self) -> bool {
        self.ws.is_some()
    }

    /// Switches to WebSocket above the current layers; `head` is the plaintext received so
    /// far (the start of the HTTP request). Appends SPICE bytes and bytes to send.
    pub fn start_websocket(
        &mut self,
        head: &[u8],
        spice: &mut Vec<u8>,
        raw_out: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        let mut ws = WsLayer::new();
        let mut out = Vec::new();
        ws.input(head, spice, &mut out)?;
        self.ws = Some(ws);
        self.wrap_below_ws(&out, raw_out)
    }

    /// True when a layer closed the stream cleanly (WebSocket close).
    pub fn is_closed(&self) -> bool {
        self.ws.as_ref().is_some_and(WsLayer::is_closed)
    }

    fn wrap_below_ws(&mut self, data: &[u8], raw_out: &mut Vec<u8>) -> Result<(), TransportError> {
        match &mut self.tls {
            Some(tls) => tls.output(data, raw_out),
            None => {
                raw_out.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Socket bytes in; SPICE bytes and bytes to send back (TLS handshake, pongs) out.
    pub fn input(
        &mut self,
        raw: &[u8],
        spice: &mut Vec<u8>,
        raw_out: &mut Vec<u8>,
    ) -> Result<(), TransportError> {
        let plain_owned;
        let plain: &[u8] = match &mut self.tls {
            Some(tls) => {
                let mut p = Vec::new();
                tls.input(raw, &mut p, raw_out)?;
                plain_owned = p;
                &plain_owned
            }
            None => raw,
        };
        match &mut self.ws {
            Some(ws) => {
                let mut out = Vec::new();
                ws.input(plain, spice, &mut out)?;
                self.wrap_below_ws(&out, raw_out)
            }
            None => {
                spice.extend_from_slice(plain);
                Ok(())
            }
        }
    }

    /// SPICE bytes out; socket bytes appended to `raw_out`.
    pub fn output(&mut self, spice: &[u8], raw_out: &mut Vec<u8>) -> Result<(), TransportError> {
        match &mut self.ws {
            Some(ws) => {
                let mut framed = Vec::new();
                ws.output(spice, &mut framed)?;
                self.wrap_below_ws(&framed, raw_out)
            }
            None => self.wrap_below_ws(spice, raw_out),
        }
    }
}
