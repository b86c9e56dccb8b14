//! A blocking std driver: TCP sockets around a [`Session`].
//!
//! One reader thread per connection hands received bytes to the caller's thread, which owns
//! the session, writes to the sockets and runs the timers:
//!
//! ```no_run
//! use std::time::Duration;
//! use spice_client_core::blocking::Client;
//! use spice_client_core::{Event, SessionConfig, SpiceUri};
//!
//! let uri = SpiceUri::parse("spice://127.0.0.1:5930")?;
//! let mut client = Client::connect(&uri, SessionConfig::default())?;
//! while let Some(ev) = client.poll(Duration::from_secs(1))? {
//!     if let Event::PrimaryMarked { .. } = ev { break; }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::SessionError;
use crate::event::Event;
use crate::session::{ConnId, Session, SessionConfig};
use crate::uri::SpiceUri;

/// A failure of the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// Connecting a channel's socket failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URI names only a TLS port and no [`TlsConfig`] was given.
    #[error("the URI has only a tls-port: give a TLS configuration (CA file)")]
    TlsNotConfigured,
    /// A TLS configuration was given but the URI has no tls-port.
    #[error("TLS configured but the URI has no tls-port")]
    NoTlsPort,
    /// The TLS configuration could not be built (CA file, server name).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The session refused the configuration.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// The main channel closed: the session is over.
    #[error("disconnected")]
    Disconnected,
    /// The main channel's socket failed (a TLS handshake refused, a reset, ...).
    #[error("main channel connection: {0}")]
    MainConnection(std::io::Error),
}

/// TLS settings: every channel then connects to the URI's `tls-port`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the server certificate
    /// (remote-viewer's `ca-file`).
    pub ca_file: PathBuf,
    /// Name to verify the server certificate against; the URI host when `None`.
    pub server_name: Option<String>,
}

struct TlsSetup {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsSetup {
    fn new(tls: &TlsConfig, host: &str) -> Result<Self, DriverError> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&tls.ca_file)
            .map_err(|e| DriverError::Tls(format!("{}: {e}", tls.ca_file.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| DriverError::Tls(format!("{}: {e}", tls.ca_file.display())))?;
            roots
                .add(cert)
                .map_err(|e| DriverError::Tls(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(DriverError::Tls(format!(
                "no certificate in {}",
                tls.ca_file.display()
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DriverError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = tls.server_name.clone().unwrap_or_else(|| host.to_owned());
        let name = ServerName::try_from(name.clone())
            .map_err(|e| DriverError::Tls(format!("server name {name:?}: {e}")))?;
        Ok(Self {
            config: Arc::new(config),
            name,
        })
    }
}

/// A channel's socket as the driver's thread sees it.
enum Sock {
    /// Written here directly; a reader thread reads.
    Plain(TcpStream),
    /// One thread owns the TLS stream; bytes to send go through the channel. The TCP
    /// stream is kept to shut it down.
    Tls(mpsc::Sender<Vec<u8>>, TcpStream),
}

impl Sock {
    /// Sends bytes. An error means the connection is gone and nothing else will report
    /// it; a TLS thread that stopped has already queued its own `Closed` with the reason.
    fn send(&mut self, bytes: &[u8]) -> Result<(), Option<std::io::Error>> {
        match self {
            Sock::Plain(s) => s.write_all(bytes).map_err(Some),
            Sock::Tls(tx, _) => {
                // A send error means the thread ended; its Closed message is queued.
                let _ = tx.send(bytes.to_vec());
                Ok(())
            }
        }
    }

    fn shutdown(&self) {
        let s = match self {
            Sock::Plain(s) | Sock::Tls(_, s) => s,
        };
        let _ = s.shutdown(Shutdown::Both);
    }
}

enum Incoming {
    Data(ConnId, Vec<u8>),
    Closed(ConnId, Option<std::io::Error>),
}

/// A session driven over TCP.
pub struct Client {
    session: Session,
    addr: String,
    tls: Option<TlsSetup>,
    sockets: HashMap<ConnId, Sock>,
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    out: Vec<u8>,
    disconnected: bool,
    main_error: Option<std::io::Error>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("sockets", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects the main channel to the URI's host and plain port. The URI's password, if
    /// any, replaces `config.password`.
    pub fn connect(uri: &SpiceUri, config: SessionConfig) -> Result<Self, DriverError> {
        Self::connect_with(uri, config, None)
    }

    /// Like [`Client::connect`]; with `tls`, every channel connects to the URI's
    /// `tls-port` over TLS (rustls, server certificate checked against `tls.ca_file`).
    pub fn connect_with(
        uri: &SpiceUri,
        mut config: SessionConfig,
        tls: Option<TlsConfig>,
    ) -> Result<Self, DriverError> {
        let (port, tls) = match &tls {
            Some(t) => (
                uri.tls_port.ok_or(DriverError::NoTlsPort)?,
                Some(TlsSetup::new(t, &uri.host)?),
            ),
            None => (uri.port.ok_or(DriverError::TlsNotConfigured)?, None),
        };
        if let Some(p) = &uri.password {
            config.password = p.clone();
        }
        let host = if uri.host.contains(':') {
            format!("[{}]", uri.host)
        } else {
            uri.host.clone()
        };
        let (tx, rx) = mpsc::channel();
        let mut c = Self {
            session: Session::new(config)?,
            addr: format!("{host}:{port}"),
            tls,
            sockets: HashMap::new(),
            tx,
            rx,
            out: Vec::new(),
            disconnected: false,
            main_error: None,
            connect_timeout: Duration::from_secs(10),
        };
        // Open the main channel now so connection errors surface here.
        c.open_pending()?;
        Ok(c)
    }

    /// The session (for inputs, agent data, surfaces).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session, read-only.
    pub fn session_ref(&self) -> &Session {
        &self.session
    }

    fn open_socket(&mut self, conn: ConnId) -> Result<(), DriverError> {
        let err = |source| DriverError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let addrs: Vec<_> = self.addr.to_socket_addrs().map_err(err)?.collect();
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            err(last.unwrap_or_else(|| std::io::Error::other("no address for the host")))
        })?;
        let _ = stream.set_nodelay(true);
        let keep = stream.try_clone().map_err(err)?;
        let tx = self.tx.clone();
        let sock = match &self.tls {
            None => {
                let reader = stream.try_clone().map_err(err)?;
                std::thread::Builder::new()
                    .name(format!("spice-conn-{}", conn.0))
                    .spawn(move || plain_reader(conn, reader, tx))
                    .map_err(err)?;
                Sock::Plain(stream)
            }
            Some(t) => {
                let tls = rustls::ClientConnection::new(t.config.clone(), t.name.clone())
                    .map_err(|e| DriverError::Tls(e.to_string()))?;
                // The thread alternates between sending queued bytes and short reads.
                stream
                    .set_read_timeout(Some(Duration::from_millis(5)))
                    .map_err(err)?;
                let (out_tx, out_rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("spice-tls-{}", conn.0))
                    .spawn(move || tls_io(conn, rustls::StreamOwned::new(tls, stream), out_rx, tx))
                    .map_err(err)?;
                Sock::Tls(out_tx, keep)
            }
        };
        self.sockets.insert(conn, sock);
        Ok(())
    }

    /// Opens sockets for channels the session asked for that have none yet.
    fn open_pending(&mut self) -> Result<(), DriverError> {
        let wanted: Vec<ConnId> = self
            .session
            .connections()
            .filter(|&(c, _, _, open)| open && !self.sockets.contains_key(&c))
            .map(|(c, ..)| c)
            .collect();
        for conn in wanted {
            if let Err(e) = self.open_socket(conn) {
                if conn == ConnId(0) {
                    return Err(e);
                }
                tracing::warn!(error = %e, ?conn, "channel connection failed");
                self.session.connection_closed(conn);
            }
        }
        Ok(())
    }

    /// Writes pending output and closes sockets of closed connections.
    fn flush(&mut self) {
        let conns: Vec<ConnId> = self.sockets.keys().copied().collect();
        for conn in conns {
            self.out.clear();
            self.session.transmit(conn, &mut self.out);
            if !self.out.is_empty() {
                let res = match self.sockets.get_mut(&conn) {
                    Some(s) => s.send(&self.out),
                    None => Err(None),
                };
                if let Err(e) = res {
                    if let (Some(e), ConnId(0)) = (e, conn) {
                        self.main_error = Some(e);
                    }
                    self.session.connection_closed(conn);
                }
            }
            if self.session.is_closed(conn) {
                if let Some(s) = self.sockets.remove(&conn) {
                    s.shutdown();
                }
            }
        }
    }

    /// Runs the session until it has an event or `timeout` passes. `Ok(None)` on timeout;
    /// [`DriverError::Disconnected`] once the main channel is gone and every event was
    /// handed out.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Event>, DriverError> {
        let end = Instant::now() + timeout;
        loop {
            self.open_pending()?;
            self.flush();
            if let Some(ev) = self.session.poll_event() {
                if matches!(ev, Event::Disconnected) {
                    self.disconnected = true;
                }
                return Ok(Some(ev));
            }
            if self.disconnected {
                return Err(match self.main_error.take() {
                    Some(e) => DriverError::MainConnection(e),
                    None => DriverError::Disconnected,
                });
            }
            let now = Instant::now();
            if let Some(d) = self.session.next_deadline() {
                if d <= now {
                    self.session.handle_timeout(now);
                    continue;
                }
            }
            if now >= end {
                return Ok(None);
            }
            let wake = self.session.next_deadline().map_or(end, |d| d.min(end));
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    self.incoming(msg);
                    // Take everything already queued before looking at events again.
                    while let Ok(m) = self.rx.try_recv() {
                        self.incoming(m);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(DriverError::Disconnected),
            }
        }
    }

    fn incoming(&mut self, msg: Incoming) {
        let now = Instant::now();
        match msg {
            Incoming::Data(conn, bytes) => {
                // Only unknown connections fail here, and every id comes from the session.
                let _ = self.session.receive(conn, &bytes, now);
            }
            Incoming::Closed(conn, err) => {
                if let Some(e) = err {
                    tracing::debug!(?conn, error = %e, "socket error");
                    if conn == ConnId(0) {
                        self.main_error = Some(e);
                    }
                }
                self.session.connection_closed(conn);
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for s in self.sockets.values() {
            s.shutdown();
        }
    }
}

fn plain_reader(conn: ConnId, mut reader: TcpStream, tx: mpsc::Sender<Incoming>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Incoming::Closed(conn, None));
                return;
            }
            Ok(n) => {
                if tx.send(Incoming::Data(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Incoming::Closed(conn, Some(e)));
                return;
            }
        }
    }
}

fn tls_io(
    conn: ConnId,
    mut stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    out: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<Incoming>,
) {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        loop {
            match out.try_recv() {
                Ok(bytes) => {
                    if let Err(e) = stream.write_all(&bytes).and_then(|()| stream.flush()) {
                        let _ = tx.send(Incoming::Closed(conn, Some(e)));
                        return;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                // The driver is gone.
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Incoming::Closed(conn, None));
                return;
            }
            Ok(n) => {
                if tx.send(Incoming::Data(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut | Interrupted) => {}
            Err(e) => {
                let _ = tx.send(Incoming::Closed(conn, Some(e)));
                return;
            }
        }
    }
}

/// How [`screenshot`] decides the picture is complete.
#[derive(Debug, Clone)]
pub struct ScreenshotOptions {
    /// The primary surface must be marked and unchanged for this long.
    pub quiet: Duration,
    /// A guest that never stops drawing (a blinking text cursor redraws its cell twice a
    /// second) is captured this long after `MARK` even if it was never quiet.
    pub settle_limit: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for ScreenshotOptions {
    fn default() -> Self {
        Self {
            quiet: Duration::from_secs(1),
            settle_limit: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why [`screenshot`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScreenshotError {
    /// The driver failed (connect, disconnect).
    #[error("{0}")]
    Driver(#[from] DriverError),
    /// A channel needed for the picture failed.
    #[error("{channel} channel: {error}")]
    Channel {
        /// Which channel.
        channel: spice_proto::ChannelType,
        /// Why.
        error: crate::error::ChannelError,
    },
    /// No complete, quiet primary surface in time.
    #[error("no complete primary surface within {0:?}")]
    Timeout(Duration),
}

/// Encodes a surface as a binary PPM (P6, 8-bit RGB).
pub fn surface_to_ppm(surface: &spice_canvas::Surface) -> Vec<u8> {
    let mut out = format!("P6\n{} {}\n255\n", surface.width(), surface.height()).into_bytes();
    out.extend_from_slice(&surface.to_rgb24());
    out
}

/// Connects, waits until the primary surface has been marked (`MARK`) and nothing drew on
/// it for `opts.quiet`, and returns it as a binary PPM. Only the display channel is
/// opened besides the main channel.
pub fn screenshot(uri: &SpiceUri, opts: &ScreenshotOptions) -> Result<Vec<u8>, ScreenshotError> {
    screenshot_with_stats(uri, opts).map(|(ppm, _)| ppm)
}

/// [`screenshot`] over TLS when `tls` is given.
pub fn screenshot_tls(
    uri: &SpiceUri,
    opts: &ScreenshotOptions,
    tls: Option<TlsConfig>,
) -> Result<(Vec<u8>, crate::display::DisplayStats), ScreenshotError> {
    screenshot_inner(uri, opts, tls)
}

/// [`screenshot`], also returning the display channel's counters.
pub fn screenshot_with_stats(
    uri: &SpiceUri,
    opts: &ScreenshotOptions,
) -> Result<(Vec<u8>, crate::display::DisplayStats), ScreenshotError> {
    screenshot_inner(uri, opts, None)
}

fn screenshot_inner(
    uri: &SpiceUri,
    opts: &ScreenshotOptions,
    tls: Option<TlsConfig>,
) -> Result<(Vec<u8>, crate::display::DisplayStats), ScreenshotError> {
    let config = SessionConfig {
        channels: crate::session::ChannelSelection {
            display: true,
            inputs: false,
            cursor: false,
        },
        ..SessionConfig::default()
    };
    let mut client = Client::connect_with(uri, config, tls)?;
    let start = Instant::now();
    let mut primary: Option<(u8, u32)> = None;
    let mut marked: Option<Instant> = None;
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        if now >= start + opts.timeout {
            return Err(ScreenshotError::Timeout(opts.timeout));
        }
        let ready =
            marked.is_some_and(|m| now >= last_change + opts.quiet || now >= m + opts.settle_limit);
        if ready {
            if let Some((d, s)) = primary {
                let session = client.session_ref();
                if let (Some(surface), Some(ch)) =
                    (session.surface(d, s), session.display_channel(d))
                {
                    return Ok((surface_to_ppm(surface), ch.stats().clone()));
                }
            }
        }
        let mut wake = last_change + opts.quiet;
        if let Some(m) = marked {
            wake = wake.min(m + opts.settle_limit);
        }
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(10));
        match client.poll(wait)? {
            Some(Event::SurfaceCreated {
                display,
                surface_id,
                primary: true,
                ..
            }) => {
                primary = Some((display, surface_id));
                marked = None;
                last_change = Instant::now();
            }
            Some(Event::PrimaryMarked { .. }) => {
                let now = Instant::now();
                marked = Some(now);
                last_change = now;
            }
            Some(Event::RegionChanged {
                display,
                surface_id,
                ..
            }) if primary == Some((display, surface_id)) => last_change = Instant::now(),
            Some(Event::SurfaceDestroyed {
                display,
                surface_id,
            }) if primary == Some((display, surface_id)) => {
                primary = None;
                marked = None;
            }
            Some(Event::ChannelError {
                channel_type,
                error,
                ..
            }) if channel_type == spice_proto::ChannelType::MAIN
                || channel_type == spice_proto::ChannelType::DISPLAY =>
            {
                return Err(ScreenshotError::Channel {
                    channel: channel_type,
                    error,
                });
            }
            Some(Event::RenderError { msg, detail, .. }) => {
                tracing::warn!(msg, detail, "render error");
            }
            _ => {}
        }
    }
}
