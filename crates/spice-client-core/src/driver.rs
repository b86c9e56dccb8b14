//! What the two drivers ([`crate::blocking`] and [`crate::tokio_driver`]) share: their error
//! type, the TLS settings (rustls), the endpoint a URI names, and the sans-IO
//! [`ScreenshotTracker`] that decides when the primary surface is complete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::SessionError;
use crate::event::Event;
use crate::session::{ConnId, Session, SessionConfig};
use crate::uri::SpiceUri;

/// A failure of a driver.
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

/// A rustls client configuration and the name to verify, built from a [`TlsConfig`].
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

impl TlsSetup {
    pub(crate) fn new(tls: &TlsConfig, host: &str) -> Result<Self, DriverError> {
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

/// Where a driver connects every channel: `host:port` (the TLS port with `tls`), the TLS
/// setup, and the session configuration with the URI's password applied.
pub(crate) fn endpoint(
    uri: &SpiceUri,
    mut config: SessionConfig,
    tls: Option<&TlsConfig>,
) -> Result<(String, Option<TlsSetup>, SessionConfig), DriverError> {
    let (port, tls) = match tls {
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
    Ok((format!("{host}:{port}"), tls, config))
}

/// What a connection's reader reports to the driver.
pub(crate) enum Incoming {
    /// Bytes received.
    Data(ConnId, Vec<u8>),
    /// The connection ended (with the I/O error, if any).
    Closed(ConnId, Option<std::io::Error>),
}

/// What a driver does next, decided by [`DriverState::step`].
pub(crate) enum Step {
    /// Hand this event to the caller.
    Event(Event),
    /// The caller's time limit passed.
    TimedOut,
    /// Wait for socket input until this instant (a session deadline or the caller's limit).
    WaitUntil(Instant),
}

/// The socket-independent part of a driver: the session, whether the main channel is gone,
/// and why.
pub(crate) struct DriverState {
    pub(crate) session: Session,
    pub(crate) disconnected: bool,
    pub(crate) main_error: Option<std::io::Error>,
}

impl DriverState {
    pub(crate) fn new(session: Session) -> Self {
        Self {
            session,
            disconnected: false,
            main_error: None,
        }
    }

    /// After the driver opened pending sockets and flushed output: the next event, the end
    /// of the session (an error once every event was handed out), a fired session timer
    /// (handled here), or how long to wait for input before `end`.
    pub(crate) fn step(&mut self, end: Instant) -> Result<Step, DriverError> {
        if let Some(ev) = self.session.poll_event() {
            if matches!(ev, Event::Disconnected) {
                self.disconnected = true;
            }
            return Ok(Step::Event(ev));
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
                // A timer may queue output: the driver flushes before it waits.
                return Ok(Step::WaitUntil(now));
            }
        }
        if now >= end {
            return Ok(Step::TimedOut);
        }
        Ok(Step::WaitUntil(
            self.session.next_deadline().map_or(end, |d| d.min(end)),
        ))
    }

    /// Applies what a connection's reader reported.
    pub(crate) fn incoming(&mut self, msg: Incoming) {
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

/// The session configuration of a screenshot: main and display channels only.
pub(crate) fn screenshot_config() -> SessionConfig {
    SessionConfig {
        channels: crate::session::ChannelSelection {
            display: true,
            inputs: false,
            cursor: false,
        },
        ..SessionConfig::default()
    }
}

/// How a screenshot decides the picture is complete.
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

/// Why a screenshot failed.
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

/// Decides, from the session's events, when the primary surface is complete: marked
/// (`MARK`) and then unchanged for [`ScreenshotOptions::quiet`] (or
/// [`ScreenshotOptions::settle_limit`] after the mark). Sans-IO: the driver feeds events and
/// the time, and asks [`ScreenshotTracker::take`] / [`ScreenshotTracker::wait`].
#[derive(Debug, Clone)]
pub struct ScreenshotTracker {
    opts: ScreenshotOptions,
    start: Instant,
    primary: Option<(u8, u32)>,
    marked: Option<Instant>,
    last_change: Instant,
}

impl ScreenshotTracker {
    /// Starts tracking at `now`.
    pub fn new(opts: ScreenshotOptions, now: Instant) -> Self {
        Self {
            opts,
            start: now,
            primary: None,
            marked: None,
            last_change: now,
        }
    }

    /// Feeds one event of the session. A main or display channel error ends the screenshot.
    pub fn observe(&mut self, ev: Event, now: Instant) -> Result<(), ScreenshotError> {
        match ev {
            Event::SurfaceCreated {
                display,
                surface_id,
                primary: true,
                ..
            } => {
                self.primary = Some((display, surface_id));
                self.marked = None;
                self.last_change = now;
            }
            Event::PrimaryMarked { .. } => {
                self.marked = Some(now);
                self.last_change = now;
            }
            Event::RegionChanged {
                display,
                surface_id,
                ..
            } if self.primary == Some((display, surface_id)) => self.last_change = now,
            Event::SurfaceDestroyed {
                display,
                surface_id,
            } if self.primary == Some((display, surface_id)) => {
                self.primary = None;
                self.marked = None;
            }
            Event::ChannelError {
                channel_type,
                error,
                ..
            } if channel_type == spice_proto::ChannelType::MAIN
                || channel_type == spice_proto::ChannelType::DISPLAY =>
            {
                return Err(ScreenshotError::Channel {
                    channel: channel_type,
                    error,
                });
            }
            Event::RenderError { msg, detail, .. } => {
                tracing::warn!(msg, detail, "render error");
            }
            _ => {}
        }
        Ok(())
    }

    /// The picture (PPM) and the display channel's counters once complete; `Ok(None)` while
    /// not yet; [`ScreenshotError::Timeout`] past the time limit.
    pub fn take(
        &self,
        session: &Session,
        now: Instant,
    ) -> Result<Option<(Vec<u8>, crate::display::DisplayStats)>, ScreenshotError> {
        let ready = self.marked.is_some_and(|m| {
            now >= self.last_change + self.opts.quiet || now >= m + self.opts.settle_limit
        });
        if ready {
            if let Some((d, s)) = self.primary {
                if let (Some(surface), Some(ch)) =
                    (session.surface(d, s), session.display_channel(d))
                {
                    return Ok(Some((surface_to_ppm(surface), ch.stats().clone())));
                }
            }
        }
        if now >= self.start + self.opts.timeout {
            return Err(ScreenshotError::Timeout(self.opts.timeout));
        }
        Ok(None)
    }

    /// How long the driver may wait for the next event before asking [`Self::take`] again.
    pub fn wait(&self, now: Instant) -> Duration {
        let mut wake = (self.last_change + self.opts.quiet).min(self.start + self.opts.timeout);
        if let Some(m) = self.marked {
            wake = wake.min(m + self.opts.settle_limit);
        }
        wake.saturating_duration_since(now)
            .max(Duration::from_millis(10))
    }
}
