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

use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use crate::driver::{
    DriverError, ScreenshotError, ScreenshotOptions, ScreenshotTracker, TlsConfig, surface_to_ppm,
};
use crate::driver::{DriverState, Incoming, Step, TlsSetup, endpoint, screenshot_config};
use crate::event::Event;
use crate::session::{ConnId, Session, SessionConfig};
use crate::uri::SpiceUri;

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

/// A session driven over TCP.
pub struct Client {
    st: DriverState,
    addr: String,
    tls: Option<TlsSetup>,
    sockets: HashMap<ConnId, Sock>,
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    out: Vec<u8>,
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
        config: SessionConfig,
        tls: Option<TlsConfig>,
    ) -> Result<Self, DriverError> {
        let (addr, tls, config) = endpoint(uri, config, tls.as_ref())?;
        let (tx, rx) = mpsc::channel();
        let mut c = Self {
            st: DriverState::new(Session::new(config)?),
            addr,
            tls,
            sockets: HashMap::new(),
            tx,
            rx,
            out: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        };
        // Open the main channel now so connection errors surface here.
        c.open_pending()?;
        Ok(c)
    }

    /// The session (for inputs, agent data, surfaces).
    pub fn session(&mut self) -> &mut Session {
        &mut self.st.session
    }

    /// The session, read-only.
    pub fn session_ref(&self) -> &Session {
        &self.st.session
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
            .st
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
                self.st.session.connection_closed(conn);
            }
        }
        Ok(())
    }

    /// Writes pending output and closes sockets of closed connections.
    fn flush(&mut self) {
        let conns: Vec<ConnId> = self.sockets.keys().copied().collect();
        for conn in conns {
            self.out.clear();
            self.st.session.transmit(conn, &mut self.out);
            if !self.out.is_empty() {
                let res = match self.sockets.get_mut(&conn) {
                    Some(s) => s.send(&self.out),
                    None => Err(None),
                };
                if let Err(e) = res {
                    if let (Some(e), ConnId(0)) = (e, conn) {
                        self.st.main_error = Some(e);
                    }
                    self.st.session.connection_closed(conn);
                }
            }
            if self.st.session.is_closed(conn) {
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
            let wake = match self.st.step(end)? {
                Step::Event(ev) => return Ok(Some(ev)),
                Step::TimedOut => return Ok(None),
                Step::WaitUntil(wake) => wake,
            };
            match self
                .rx
                .recv_timeout(wake.saturating_duration_since(Instant::now()))
            {
                Ok(msg) => {
                    self.st.incoming(msg);
                    // Take everything already queued before looking at events again.
                    while let Ok(m) = self.rx.try_recv() {
                        self.st.incoming(m);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(DriverError::Disconnected),
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
    let mut client = Client::connect_with(uri, screenshot_config(), tls)?;
    let mut tracker = ScreenshotTracker::new(opts.clone(), Instant::now());
    loop {
        if let Some(done) = tracker.take(client.session_ref(), Instant::now())? {
            return Ok(done);
        }
        if let Some(ev) = client.poll(tracker.wait(Instant::now()))? {
            tracker.observe(ev, Instant::now())?;
        }
    }
}
