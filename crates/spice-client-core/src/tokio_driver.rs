//! A tokio driver: the same [`Session`] over tokio TCP sockets (and tokio-rustls for TLS).
//!
//! One task per connection reads into a bounded queue (so a session that falls behind pushes
//! back on the socket instead of buffering without limit); the caller's task owns the
//! session, writes to the sockets and runs the session's timers:
//!
//! ```no_run
//! use std::time::Duration;
//! use spice_client_core::tokio_driver::AsyncClient;
//! use spice_client_core::{Event, SessionConfig, SpiceUri};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uri = SpiceUri::parse("spice://127.0.0.1:5930")?;
//! let mut client = AsyncClient::connect(&uri, SessionConfig::default(), None).await?;
//! while let Some(ev) = client.poll(Duration::from_secs(1)).await? {
//!     if let Event::PrimaryMarked { .. } = ev { break; }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::driver::{
    DriverError, ScreenshotError, ScreenshotOptions, ScreenshotTracker, TlsConfig, surface_to_ppm,
};
use crate::driver::{DriverState, Incoming, Step, TlsSetup, endpoint, screenshot_config};
use crate::event::Event;
use crate::session::{ConnId, Session, SessionConfig};
use crate::uri::SpiceUri;

/// Received chunks queued per driver before readers wait for the session to catch up.
const QUEUE: usize = 64;
/// Size of each read.
const READ_SIZE: usize = 256 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A session driven over tokio sockets.
pub struct AsyncClient {
    st: DriverState,
    addr: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    writers: HashMap<ConnId, WriteHalf<Box<dyn Stream>>>,
    readers: HashMap<ConnId, JoinHandle<()>>,
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    out: Vec<u8>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("addr", &self.addr)
            .field("connections", &self.writers.len())
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Connects the main channel to the URI's plain port, or with `tls` to its `tls-port`
    /// over TLS (rustls, server certificate checked against `tls.ca_file`); every further
    /// channel follows the same way. The URI's password, if any, replaces `config.password`.
    pub async fn connect(
        uri: &SpiceUri,
        config: SessionConfig,
        tls: Option<TlsConfig>,
    ) -> Result<Self, DriverError> {
        let (addr, tls, config) = endpoint(uri, config, tls.as_ref())?;
        let tls =
            tls.map(|TlsSetup { config, name }| (tokio_rustls::TlsConnector::from(config), name));
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut c = Self {
            st: DriverState::new(Session::new(config)?),
            addr,
            tls,
            writers: HashMap::new(),
            readers: HashMap::new(),
            tx,
            rx,
            out: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        };
        // Open the main channel now so connection errors surface here.
        c.open_pending().await?;
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

    async fn open_socket(&mut self, conn: ConnId) -> Result<(), DriverError> {
        let err = |source| DriverError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            })?
            .map_err(err)?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| DriverError::Tls(e.to_string()))?,
            ),
        };
        let (mut reader, writer) = tokio::io::split(stream);
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_SIZE];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx.send(Incoming::Closed(conn, None)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send(Incoming::Data(conn, buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Incoming::Closed(conn, Some(e))).await;
                        return;
                    }
                }
            }
        });
        self.writers.insert(conn, writer);
        self.readers.insert(conn, task);
        Ok(())
    }

    /// Opens sockets for channels the session asked for that have none yet.
    async fn open_pending(&mut self) -> Result<(), DriverError> {
        let wanted: Vec<ConnId> = self
            .st
            .session
            .connections()
            .filter(|&(c, _, _, open)| open && !self.writers.contains_key(&c))
            .map(|(c, ..)| c)
            .collect();
        for conn in wanted {
            if let Err(e) = self.open_socket(conn).await {
                if conn == ConnId(0) {
                    return Err(e);
                }
                tracing::warn!(error = %e, ?conn, "channel connection failed");
                self.st.session.connection_closed(conn);
            }
        }
        Ok(())
    }

    /// Writes pending output and drops the sockets of closed connections.
    async fn flush(&mut self) {
        let conns: Vec<ConnId> = self.writers.keys().copied().collect();
        for conn in conns {
            self.out.clear();
            self.st.session.transmit(conn, &mut self.out);
            if !self.out.is_empty() {
                let res = match self.writers.get_mut(&conn) {
                    Some(w) => w.write_all(&self.out).await.and(w.flush().await),
                    None => Ok(()),
                };
                if let Err(e) = res {
                    if conn == ConnId(0) {
                        self.st.main_error = Some(e);
                    }
                    self.st.session.connection_closed(conn);
                }
            }
            if self.st.session.is_closed(conn) {
                self.close_socket(conn).await;
            }
        }
    }

    async fn close_socket(&mut self, conn: ConnId) {
        if let Some(mut w) = self.writers.remove(&conn) {
            let _ = w.shutdown().await;
        }
        if let Some(t) = self.readers.remove(&conn) {
            t.abort();
        }
    }

    /// Runs the session until it has an event or `timeout` passes. `Ok(None)` on timeout;
    /// [`DriverError::Disconnected`] (or [`DriverError::MainConnection`]) once the main
    /// channel is gone and every event was handed out.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Option<Event>, DriverError> {
        let end = Instant::now() + timeout;
        loop {
            self.open_pending().await?;
            self.flush().await;
            let wake = match self.st.step(end)? {
                Step::Event(ev) => return Ok(Some(ev)),
                Step::TimedOut => return Ok(None),
                Step::WaitUntil(wake) => wake,
            };
            tokio::select! {
                msg = self.rx.recv() => {
                    // The driver holds a sender, so the queue never closes.
                    if let Some(m) = msg {
                        self.st.incoming(m);
                        while let Ok(m) = self.rx.try_recv() {
                            self.st.incoming(m);
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

impl Drop for AsyncClient {
    fn drop(&mut self) {
        for t in self.readers.values() {
            t.abort();
        }
    }
}

/// Connects (over TLS when `tls` is given), waits until the primary surface is complete
/// (see [`ScreenshotTracker`]) and returns it as a binary PPM with the display channel's
/// counters. Only the display channel is opened besides the main channel.
pub async fn screenshot(
    uri: &SpiceUri,
    opts: &ScreenshotOptions,
    tls: Option<TlsConfig>,
) -> Result<(Vec<u8>, crate::display::DisplayStats), ScreenshotError> {
    let mut client = AsyncClient::connect(uri, screenshot_config(), tls).await?;
    let mut tracker = ScreenshotTracker::new(opts.clone(), Instant::now());
    loop {
        if let Some(done) = tracker.take(client.session_ref(), Instant::now())? {
            return Ok(done);
        }
        if let Some(ev) = client.poll(tracker.wait(Instant::now())).await? {
            tracker.observe(ev, Instant::now())?;
        }
    }
}
