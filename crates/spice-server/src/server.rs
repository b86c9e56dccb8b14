//! The driver: listening sockets, connections, the link stage, sessions and routing of
//! channels to their handlers. All I/O lives here; protocol logic lives in the sans-IO
//! [`crate::channel::ChannelCore`] and the handlers.
//!
//! # Threads
//!
//! Blocking std I/O. One accept thread per listening socket. Per connection, two threads:
//! a **reader** that does blocking reads and hands the bytes over a bounded queue
//! (so a client that floods input is throttled by TCP, not buffered), and a **worker**
//! that owns the transport (TLS / WebSocket), the link stage, the [`ChannelCore`] and the
//! handler, and does blocking writes. The worker sleeps on the queue until input arrives,
//! the handler's [`Waker`] fires (same queue; wakes are coalesced) or a timer
//! ([`ChannelCore::poll_timeout`]) expires. A client that stops reading blocks its worker
//! in `write`, so the handler is not polled and nothing more is produced for it: memory per
//! connection stays bounded by the ACK window and [`crate::channel::CoreConfig`]'s output
//! bound. Input waiting for the worker is bounded too: at most 8 reads of 64 KiB are queued
//! before the reader stops reading. A connection that has not finished the link stage
//! within [`LINK_TIMEOUT`] is closed.
//!
//! # Sessions
//!
//! A main channel link creates a [`Session`] with a fresh random id (sent in `MAIN_INIT`);
//! other channels must link with that id as their connection id, else `BAD_CONNECTION_ID`.
//! When the main channel goes, the session closes and its other channels with it.
//! Channels are routed by (type, id) to the registered [`ChannelFactory`]; a link for an
//! unknown channel gets `CHANNEL_NOT_AVAILABLE`. A bad or malformed message closes only
//! the channel it arrived on (logged with its typed error).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rand_core::{OsRng, RngCore};
use spice_proto::ChannelType;
use spice_proto::caps;
use spice_proto::header::HeaderKind;
use spice_proto::link::{
    LinkErr, LinkError, ServerLink, ServerLinkConfig, ServerLinkStatus, TicketPolicy,
};
use spice_proto::main::ChannelId;
use spice_proto::ticket::TicketKey;

use crate::channel::{
    ChannelCore, ChannelError, ChannelFactory, ChannelHandler, ChannelInfo, CoreConfig,
    OpenContext, Waker,
};
use crate::config::{ChannelSecurity, ServerConfig, Ticketing};
use crate::cursor::{CursorChannelFactory, CursorFeed};
use crate::host::Host;
use crate::inputs::InputsChannelFactory;
use crate::main_channel::MainChannelFactory;
use crate::playback::PlaybackChannelFactory;
use crate::record::RecordChannelFactory;
use crate::session::{Session, lock};
use crate::transport::{Transport, TransportError};

/// A failure to start the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listen address could not be bound (busy port, no permission, bad address).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error (`AddrInUse` for a busy port).
        #[source]
        source: io::Error,
    },
    /// Two factories for the same channel (type, id).
    #[error("channel {channel_type} id {channel_id} registered twice")]
    DuplicateChannel {
        /// Channel type.
        channel_type: ChannelType,
        /// Channel id.
        channel_id: u8,
    },
    /// Starting a thread failed.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// Why a connection ended with an error (logged; closes that connection only).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Socket I/O.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// TLS or WebSocket.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The link stage failed or was refused.
    #[error("link: {0}")]
    Link(#[from] LinkError),
    /// The channel failed after the link.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Keeps a few RSA ticket keys ready (generating one takes a while), so each link gets a
/// fresh key as spice-server does; under a burst of links, the last key is reused rather
/// than making clients wait (OAEP is randomised, so reuse reveals nothing about tickets).
struct KeyPool {
    state: Mutex<KeyPoolState>,
    cond: Condvar,
}

struct KeyPoolState {
    ready: Vec<TicketKey>,
    last: Option<TicketKey>,
}

const KEY_POOL_SIZE: usize = 4;

impl KeyPool {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(KeyPoolState {
                ready: Vec::new(),
                last: None,
            }),
            cond: Condvar::new(),
        })
    }

    /// The process-wide pool (shared by every server in the process), with its refill
    /// thread started on first use.
    fn global() -> Arc<Self> {
        static POOL: std::sync::OnceLock<Arc<KeyPool>> = std::sync::OnceLock::new();
        POOL.get_or_init(|| {
            let pool = Self::new();
            let p = pool.clone();
            if let Err(e) = std::thread::Builder::new()
                .name("spice-keys".into())
                .spawn(move || p.run())
            {
                // Without the thread, take() generates keys inline.
                tracing::warn!(error = %e, "cannot start the key pool thread");
            }
            pool
        })
        .clone()
    }

    fn take(&self) -> Result<TicketKey, LinkError> {
        let mut st = lock(&self.state);
        if let Some(k) = st.ready.pop() {
            st.last = Some(k.clone());
            self.cond.notify_all();
            return Ok(k);
        }
        if let Some(k) = st.last.clone() {
            self.cond.notify_all();
            return Ok(k);
        }
        drop(st);
        let k = TicketKey::generate(&mut OsRng)?;
        lock(&self.state).last = Some(k.clone());
        Ok(k)
    }

    /// Refill loop, run on its own thread for the life of the process.
    fn run(self: Arc<Self>) {
        loop {
            {
                let mut st = lock(&self.state);
                while st.ready.len() >= KEY_POOL_SIZE {
                    st = self
                        .cond
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            match TicketKey::generate(&mut OsRng) {
                Ok(k) => lock(&self.state).ready.push(k),
                Err(e) => {
                    tracing::error!(error = %e, "ticket key generation failed");
                    return;
                }
            }
        }
    }
}

/// What every connection and handler of a server shares: the settings, the host devices,
/// the registered channels and the sessions.
pub struct ServerContext {
    config: ServerConfig,
    host: Host,
    factories: Vec<Arc<dyn ChannelFactory>>,
    sessions: Mutex<HashMap<u32, Weak<Session>>>,
    epoch: Instant,
    inputs_wakers: Mutex<Vec<Waker>>,
    agent: Option<Arc<crate::agent::AgentRelay>>,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("config", &self.config)
            .field("host", &self.host)
            .field("channels", &self.channel_list())
            .finish_non_exhaustive()
    }
}

impl ServerContext {
    /// The context of a server with the built-in channels (main, inputs, cursor when a
    /// feed is given) and `extra` ones. Used by [`ServerBuilder::start`], and without any
    /// socket by [`fuzz_server_channel`].
    fn build(
        config: ServerConfig,
        host: Host,
        cursor: Option<Arc<CursorFeed>>,
        extra: Vec<Arc<dyn ChannelFactory>>,
        epoch: Instant,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<ServerContext>| {
            let mut factories: Vec<Arc<dyn ChannelFactory>> = vec![
                Arc::new(MainChannelFactory::new(weak.clone())),
                Arc::new(InputsChannelFactory::new(weak.clone())),
            ];
            if let Some(feed) = cursor {
                factories.push(Arc::new(CursorChannelFactory::new(feed)));
            }
            // One playback / record channel per host audio device (ids in order).
            for (id, dev) in (0u8..).zip(&host.playback) {
                factories.push(Arc::new(PlaybackChannelFactory::new(id, dev)));
            }
            for (id, dev) in (0u8..).zip(&host.record) {
                factories.push(Arc::new(RecordChannelFactory::new(id, dev.clone())));
            }
            factories.extend(crate::spicevmc::factories_for(&host));
            factories.extend(extra);
            let agent = crate::agent::AgentRelay::from_devices(&host.char_devices);
            ServerContext {
                config,
                host,
                factories,
                sessions: Mutex::new(HashMap::new()),
                epoch,
                inputs_wakers: Mutex::new(Vec::new()),
                agent,
            }
        })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The host devices.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Every channel the server offers, main first, as `CHANNELS_LIST` entries.
    pub fn channel_list(&self) -> Vec<ChannelId> {
        self.factories
            .iter()
            .map(|f| ChannelId {
                channel_type: f.channel_type(),
                id: f.channel_id(),
            })
            .collect()
    }

    /// Number of display channels (`MAIN_INIT.display_channels_hint`).
    pub fn display_channel_count(&self) -> u32 {
        let n = self
            .factories
            .iter()
            .filter(|f| f.channel_type() == ChannelType::DISPLAY)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// True when a guest agent is connected (the host's agent device is open on its guest
    /// side).
    pub fn agent_connected(&self) -> bool {
        self.agent.as_ref().is_some_and(|a| a.connected())
    }

    /// The agent relay, when the host has an agent device.
    pub fn agent(&self) -> Option<&Arc<crate::agent::AgentRelay>> {
        self.agent.as_ref()
    }

    /// The agent relay when client mouse events go to the agent: agent mouse on, an agent
    /// connected.
    pub fn agent_mouse(&self) -> Option<&Arc<crate::agent::AgentRelay>> {
        self.agent
            .as_ref()
            .filter(|a| self.config.agent_mouse && a.connected())
    }

    /// Client mouse mode is allowed with the agent mouse on and an agent connected, or with
    /// a tablet and at most one display (as spice-server decides).
    pub fn client_mouse_allowed(&self) -> bool {
        (self.config.agent_mouse && self.agent_connected())
            || (self.host.tablet.is_some() && self.display_channel_count() <= 1)
    }

    /// The multimedia time (ms since the server started), as sent in `MAIN_INIT` and
    /// `MULTI_MEDIA_TIME`.
    pub fn mm_time(&self, now: Instant) -> u32 {
        // Wraps like spice-server's u32 millisecond clock.
        (now.saturating_duration_since(self.epoch).as_millis() & 0xffff_ffff) as u32
    }

    fn factory(&self, ty: ChannelType, id: u8) -> Option<&Arc<dyn ChannelFactory>> {
        self.factories
            .iter()
            .find(|f| f.channel_type() == ty && f.channel_id() == id)
    }

    fn new_session(&self) -> Arc<Session> {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.strong_count() > 0);
        loop {
            let id = OsRng.next_u32();
            if id != 0 && !sessions.contains_key(&id) {
                let s = Arc::new(Session::new(id));
                sessions.insert(id, Arc::downgrade(&s));
                return s;
            }
        }
    }

    fn find_session(&self, id: u32) -> Option<Arc<Session>> {
        lock(&self.sessions)
            .get(&id)
            .and_then(Weak::upgrade)
            .filter(|s| !s.is_closed())
    }

    /// Number of live sessions (clients).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.upgrade().is_some_and(|s| !s.is_closed()))
            .count()
    }

    /// Registers an inputs channel's waker for LED changes.
    pub(crate) fn add_inputs_waker(&self, w: Waker) {
        lock(&self.inputs_wakers).push(w);
    }

    fn wake_inputs(&self) {
        for w in lock(&self.inputs_wakers).iter() {
            w.wake();
        }
    }
}

/// Builds and starts a [`Server`].
pub struct ServerBuilder {
    config: ServerConfig,
    host: Host,
    factories: Vec<Arc<dyn ChannelFactory>>,
    cursor: Option<Arc<CursorFeed>>,
    mm_epoch: Option<Instant>,
}

impl ServerBuilder {
    /// A server with these settings, no host devices and no display.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            host: Host::default(),
            factories: Vec::new(),
            cursor: None,
            mm_epoch: None,
        }
    }

    /// The settings the server will start with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The instant the multimedia clock counts from (`MAIN_INIT`, `MULTI_MEDIA_TIME`, audio
    /// stamps). Give it the epoch the display worker stamps video stream frames from, so
    /// audio and video share one clock; default: when the server starts.
    pub fn mm_epoch(mut self, epoch: Instant) -> Self {
        self.mm_epoch = Some(epoch);
        self
    }

    /// The host devices inputs are delivered to.
    pub fn host(mut self, host: Host) -> Self {
        self.host = host;
        self
    }

    /// Adds a host playback device (served as the next playback channel id), keeping the
    /// other host devices.
    pub fn playback_device(mut self, device: Arc<dyn crate::host::PlaybackDevice>) -> Self {
        self.host.playback.push(device);
        self
    }

    /// Adds a host record device (served as the next record channel id), keeping the
    /// other host devices.
    pub fn record_device(mut self, device: Arc<dyn crate::host::RecordDevice>) -> Self {
        self.host.record.push(device);
        self
    }

    /// Registers a channel (a display channel, say). Main and inputs are built in; cursor
    /// is added with [`ServerBuilder::cursor`].
    pub fn add_channel(mut self, factory: Arc<dyn ChannelFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// Serves a cursor channel (id 0) fed from `feed`.
    pub fn cursor(mut self, feed: Arc<CursorFeed>) -> Self {
        self.cursor = Some(feed);
        self
    }

    /// Binds every listen address and starts accepting.
    pub fn start(self) -> Result<Server, ServerError> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.factories {
            if !seen.insert((f.channel_type(), f.channel_id())) {
                return Err(ServerError::DuplicateChannel {
                    channel_type: f.channel_type(),
                    channel_id: f.channel_id(),
                });
            }
        }
        let mut listeners = Vec::new();
        for (addr, secure) in self
            .config
            .listen
            .iter()
            .map(|a| (*a, false))
            .chain(self.config.tls_listen.iter().map(|a| (*a, true)))
        {
            let l = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
            let local = l
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push((l, local, secure));
        }
        let epoch = self.mm_epoch.unwrap_or_else(Instant::now);
        let ctx = ServerContext::build(self.config, self.host, self.cursor, self.factories, epoch);
        if let Some(dup) = find_duplicate(&ctx.factories) {
            return Err(dup);
        }
        let shared = Arc::new(Shared {
            ctx,
            keys: KeyPool::global(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        let mut threads = Vec::new();
        let mut plain_addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        for (l, local, secure) in listeners {
            if secure {
                tls_addrs.push(local);
            } else {
                plain_addrs.push(local);
            }
            tracing::info!(addr = %local, tls = secure, "listening");
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("spice-accept-{local}"))
                    .spawn(move || accept_loop(shared, l, secure))
                    .map_err(ServerError::Thread)?,
            );
        }
        Ok(Server {
            shared,
            plain_addrs,
            tls_addrs,
            threads,
        })
    }
}

fn find_duplicate(factories: &[Arc<dyn ChannelFactory>]) -> Option<ServerError> {
    let mut seen = std::collections::HashSet::new();
    factories.iter().find_map(|f| {
        (!seen.insert((f.channel_type(), f.channel_id()))).then(|| ServerError::DuplicateChannel {
            channel_type: f.channel_type(),
            channel_id: f.channel_id(),
        })
    })
}

struct Shared {
    ctx: Arc<ServerContext>,
    keys: Arc<KeyPool>,
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    shared: Arc<Shared>,
    plain_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("plain", &self.plain_addrs)
            .field("tls", &self.tls_addrs)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The bound plain addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.plain_addrs
    }

    /// The bound TLS addresses.
    pub fn tls_local_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The shared context (settings, sessions, channel list).
    pub fn context(&self) -> &Arc<ServerContext> {
        &self.shared.ctx
    }

    /// Tells connected inputs channels that the keyboard LEDs changed (they send
    /// `KEY_MODIFIERS`).
    pub fn keyboard_leds_changed(&self) {
        self.shared.ctx.wake_inputs();
    }

    /// Number of open connections (all channels of all clients).
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Stops accepting, closes every connection and joins the server's threads.
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for addr in self.plain_addrs.iter().chain(&self.tls_addrs) {
            // Unblock the accept threads.
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
        for (_, s) in lock(&self.shared.conns).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Blocks until the server stops (it runs until the process ends).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, secure: bool) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let _ = stream.set_nodelay(true);
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("spice-conn-{id}"))
            .spawn(move || {
                let span = tracing::info_span!("conn", id, peer = ?peer, tls = secure);
                let _e = span.enter();
                match run_connection(&sh, stream, secure) {
                    Ok(()) => tracing::debug!("connection closed"),
                    Err(e) => tracing::warn!(error = %e, "connection closed with an error"),
                }
                if let Some(s) = lock(&sh.conns).remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a connection thread");
            lock(&shared.conns).remove(&id);
        }
    }
}

/// How long a connection may take to complete the link stage.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(30);

enum Event {
    Input(Vec<u8>),
    Wake,
    Eof,
    ReadError(io::Error),
}

/// The handle behind a connection's [`Waker`]: coalesces wakes into one queued event.
struct WakeSignal {
    tx: SyncSender<Event>,
    pending: AtomicBool,
}

impl WakeSignal {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            match self.tx.try_send(Event::Wake) {
                // Full: the worker has events queued and will poll after them.
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// Pauses a connection's reader while its channel holds client input
/// ([`ChannelCore::input_held`]: a slow consumer such as a character device), so TCP
/// throttles the client. Client bytes buffered meanwhile are bounded by the queue (8 reads
/// of at most 64 KiB) plus the one read in progress.
struct ReadGate {
    paused: Mutex<bool>,
    cond: Condvar,
}

impl ReadGate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            paused: Mutex::new(false),
            cond: Condvar::new(),
        })
    }

    fn set_paused(&self, paused: bool) {
        let mut p = lock(&self.paused);
        if *p != paused {
            *p = paused;
            self.cond.notify_all();
        }
    }

    fn wait_open(&self) {
        let mut p = lock(&self.paused);
        while *p {
            p = self
                .cond
                .wait(p)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

fn spawn_reader(
    mut stream: TcpStream,
    tx: SyncSender<Event>,
    gate: Arc<ReadGate>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("spice-reader".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                gate.wait_open();
                match stream.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Event::Eof);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Event::Input(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Event::ReadError(e));
                        return;
                    }
                }
            }
        })
}

/// Link-stage progress of one connection.
enum Stage {
    /// Waiting for 4 bytes to tell SPICE from an HTTP (WebSocket) request.
    Detect(Vec<u8>),
    /// The link stage.
    Link(Box<ServerLink>),
}

struct Linked {
    core: ChannelCore,
    handler: Box<dyn ChannelHandler>,
    session: Arc<Session>,
    is_main: bool,
}

fn write_out(
    stream: &mut TcpStream,
    transport: &mut Transport,
    spice: &[u8],
) -> Result<(), ConnectionError> {
    if !transport.is_secure() && !transport.is_websocket() {
        // Plain TCP: the bytes as they are, without a copy.
        if !spice.is_empty() {
            stream.write_all(spice)?;
        }
        return Ok(());
    }
    let mut raw = Vec::new();
    transport.output(spice, &mut raw)?;
    if !raw.is_empty() {
        stream.write_all(&raw)?;
    }
    Ok(())
}

/// Writes a channel core's output. Over TLS each SPICE message goes out in records of its
/// own: spice-gtk reads a message, then looks at the socket before reading the next, so a
/// record that holds the end of one message and the start of the next leaves the rest
/// decrypted in OpenSSL's buffer with nothing left to wake it (seen: its main channel hung
/// after the link waiting for MAIN_INIT). spice-server writes one record per message too.
fn write_messages(
    stream: &mut TcpStream,
    transport: &mut Transport,
    spice: &[u8],
    header: HeaderKind,
) -> Result<(), ConnectionError> {
    if !transport.is_secure() {
        return write_out(stream, transport, spice);
    }
    let mut raw = Vec::new();
    for msg in split_messages(spice, header) {
        transport.output(msg, &mut raw)?;
    }
    if !raw.is_empty() {
        stream.write_all(&raw)?;
    }
    Ok(())
}

/// Splits a buffer of whole data messages (as a channel core writes them) at message
/// boundaries; a malformed tail (never produced by the core) stays one piece.
fn split_messages(mut buf: &[u8], header: HeaderKind) -> Vec<&[u8]> {
    let (hlen, size_at) = match header {
        HeaderKind::Mini => (6, 2),
        HeaderKind::Full => (18, 10),
    };
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = buf
            .get(size_at..size_at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|size| size.checked_add(hlen))
            .filter(|&len| len <= buf.len())
            .unwrap_or(buf.len());
        let (msg, rest) = buf.split_at(len);
        out.push(msg);
        buf = rest;
    }
    out
}

fn run_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    secure: bool,
) -> Result<(), ConnectionError> {
    let ctx = &shared.ctx;
    let mut transport = if secure {
        match &ctx.config.tls {
            Some(tls) => Transport::tls(tls.clone())?,
            None => return Ok(()),
        }
    } else {
        Transport::plain()
    };
    let (tx, rx): (SyncSender<Event>, Receiver<Event>) = sync_channel(8);
    let gate = ReadGate::new();
    let reader = spawn_reader(stream.try_clone()?, tx.clone(), gate.clone())?;
    let signal = Arc::new(WakeSignal {
        tx,
        pending: AtomicBool::new(false),
    });
    let mut stream = stream;
    let result = drive(shared, &mut stream, &mut transport, &rx, &signal, &gate);
    let _ = stream.shutdown(Shutdown::Both);
    gate.set_paused(false);
    drop(rx);
    let _ = reader.join();
    result
}

fn drive(
    shared: &Arc<Shared>,
    stream: &mut TcpStream,
    transport: &mut Transport,
    rx: &Receiver<Event>,
    signal: &Arc<WakeSignal>,
    gate: &ReadGate,
) -> Result<(), ConnectionError> {
    let ctx = &shared.ctx;
    let mut stage = Stage::Detect(Vec::new());
    let mut linked: Option<Linked> = None;
    let link_deadline = Instant::now() + LINK_TIMEOUT;
    let result = (|| -> Result<(), ConnectionError> {
        loop {
            let timeout = match &linked {
                Some(l) => l.core.poll_timeout(&*l.handler),
                None => Some(link_deadline),
            };
            if linked.is_none() && Instant::now() >= link_deadline {
                tracing::info!("no link within {LINK_TIMEOUT:?}; closing");
                return Ok(());
            }
            let ev = match timeout {
                Some(t) => {
                    let wait = t.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(ev) => Some(ev),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
                None => match rx.recv() {
                    Ok(ev) => Some(ev),
                    Err(_) => return Ok(()),
                },
            };
            let mut events: Vec<Event> = ev.into_iter().collect();
            while let Ok(ev) = rx.try_recv() {
                events.push(ev);
            }
            let mut spice_in = Vec::new();
            let mut raw_out = Vec::new();
            let mut eof = false;
            for ev in events {
                match ev {
                    Event::Input(raw) => transport.input(&raw, &mut spice_in, &mut raw_out)?,
                    Event::Wake => {}
                    Event::Eof => eof = true,
                    Event::ReadError(e) => {
                        if let Some(l) = &linked {
                            // Orderly for us: the client reset the connection.
                            tracing::debug!(channel = %l.core.info().channel_type, error = %e, "read failed");
                            return Ok(());
                        }
                        return Err(e.into());
                    }
                }
            }
            if !raw_out.is_empty() {
                stream.write_all(&raw_out)?;
            }
            let now = Instant::now();
            if linked.is_none() && !spice_in.is_empty() {
                let input = match &mut stage {
                    Stage::Detect(head) => {
                        head.extend_from_slice(&spice_in);
                        detect(shared, head, transport, stream)?
                    }
                    Stage::Link(_) => Some(std::mem::take(&mut spice_in)),
                };
                if let Some(input) = input {
                    if let Stage::Detect(_) = stage {
                        let key = shared.keys.take()?;
                        stage = Stage::Link(Box::new(ServerLink::new(link_config(ctx), key)));
                    }
                    linked =
                        link_input(shared, &mut stage, &input, transport, stream, signal, now)?;
                }
            } else if let Some(l) = &mut linked {
                if !spice_in.is_empty() {
                    l.core.handle_input(&spice_in, &mut *l.handler, now)?;
                }
            }
            if let Some(l) = &mut linked {
                signal.pending.store(false, Ordering::SeqCst);
                l.core.poll(&mut *l.handler, now)?;
                gate.set_paused(l.core.input_held());
                let out = l.core.take_output();
                write_messages(stream, transport, &out, l.core.info().header)?;
                l.core.recycle_output(out);
                if let Some(reason) = l.core.close_reason() {
                    tracing::debug!(?reason, channel = %l.core.info().channel_type, "closing");
                    return Ok(());
                }
                if l.session.is_closed() && !l.is_main {
                    tracing::debug!("session closed");
                    return Ok(());
                }
            }
            if eof || transport.is_closed() {
                return Ok(());
            }
        }
    })();
    if let Some(mut l) = linked {
        l.handler.on_disconnect();
        if l.is_main {
            l.session.close();
        }
        if let Err(e) = &result {
            tracing::warn!(channel = %l.core.info().channel_type, session = l.session.id(), error = %e, "channel closed on error");
        }
    }
    result
}

fn link_config(ctx: &ServerContext) -> ServerLinkConfig {
    ServerLinkConfig {
        common_caps: caps::default_server_common_caps(),
        ticket: match &ctx.config.ticketing {
            Ticketing::Disabled => TicketPolicy::Disabled,
            Ticketing::Password {
                password,
                expires_at,
            } => TicketPolicy::Password {
                password: password.clone(),
                expires_at: *expires_at,
            },
        },
    }
}

/// Tells SPICE from a WebSocket upgrade once 4 plaintext bytes are there. Returns the
/// bytes for the link stage (`None`: wait for more).
fn detect(
    _shared: &Arc<Shared>,
    head: &mut Vec<u8>,
    transport: &mut Transport,
    stream: &mut TcpStream,
) -> Result<Option<Vec<u8>>, ConnectionError> {
    if head.len() < 4 {
        return Ok(None);
    }
    if transport.is_websocket() || !head.starts_with(b"GET ") {
        return Ok(Some(std::mem::take(head)));
    }
    let request = std::mem::take(head);
    let mut spice = Vec::new();
    let mut out = Vec::new();
    transport.start_websocket(&request, &mut spice, &mut out)?;
    if !out.is_empty() {
        stream.write_all(&out)?;
    }
    // SPICE bytes inside WebSocket frames: detect again on them.
    *head = spice;
    detect(_shared, head, transport, stream)
}

/// Refuses the link with `code`, sends it, and returns the error to close with.
fn refuse_link(
    link: &mut ServerLink,
    code: LinkErr,
    stream: &mut TcpStream,
    transport: &mut Transport,
) -> ConnectionError {
    let e = link.refuse(code);
    let out = link.take_output();
    match write_out(stream, transport, &out) {
        Ok(()) => e.into(),
        Err(io) => io,
    }
}

/// Drives the link stage with `input`; on success returns the linked channel (after
/// feeding it any bytes that followed the ticket).
fn link_input(
    shared: &Arc<Shared>,
    stage: &mut Stage,
    mut input: &[u8],
    transport: &mut Transport,
    stream: &mut TcpStream,
    signal: &Arc<WakeSignal>,
    now: Instant,
) -> Result<Option<Linked>, ConnectionError> {
    let ctx = &shared.ctx;
    let Stage::Link(link) = stage else {
        return Ok(None);
    };
    loop {
        let res = link.handle_input(input, SystemTime::now());
        let out = link.take_output();
        write_out(stream, transport, &out)?;
        let (used, status) = res?;
        input = &input[used..];
        match status {
            ServerLinkStatus::NeedMore(_) => return Ok(None),
            ServerLinkStatus::LinkMess => {
                let Some(mess) = link.link_mess().cloned() else {
                    return Err(LinkError::InvalidState("no link message").into());
                };
                let Some(factory) = ctx.factory(mess.channel_type, mess.channel_id) else {
                    tracing::info!(channel = %mess.channel_type, id = mess.channel_id, "link for a channel we do not have");
                    return Err(refuse_link(
                        link,
                        LinkErr::CHANNEL_NOT_AVAILABLE,
                        stream,
                        transport,
                    ));
                };
                let security = if factory.requires_secure() {
                    ChannelSecurity::Secure
                } else {
                    ctx.config.security_of(mess.channel_type)
                };
                let secure = transport.is_secure();
                match security {
                    ChannelSecurity::Secure if !secure => {
                        return Err(refuse_link(link, LinkErr::NEED_SECURED, stream, transport));
                    }
                    ChannelSecurity::Insecure if secure => {
                        return Err(refuse_link(
                            link,
                            LinkErr::NEED_UNSECURED,
                            stream,
                            transport,
                        ));
                    }
                    _ => {}
                }
                link.reply(factory.caps())?;
                let out = link.take_output();
                write_out(stream, transport, &out)?;
            }
            ServerLinkStatus::Authenticated => {
                let Some(mess) = link.link_mess().cloned() else {
                    return Err(LinkError::InvalidState("no link message").into());
                };
                let is_main = mess.channel_type == ChannelType::MAIN;
                let session = if is_main {
                    ctx.new_session()
                } else {
                    match ctx.find_session(mess.connection_id) {
                        Some(s) => s,
                        None => {
                            tracing::info!(
                                connection_id = mess.connection_id,
                                "unknown connection id"
                            );
                            return Err(refuse_link(
                                link,
                                LinkErr::BAD_CONNECTION_ID,
                                stream,
                                transport,
                            ));
                        }
                    }
                };
                let Some(factory) = ctx.factory(mess.channel_type, mess.channel_id) else {
                    return Err(LinkError::InvalidState("channel vanished").into());
                };
                let outcome_preview_mini = caps::negotiate_mini_header(
                    &caps::default_server_common_caps(),
                    &mess.common_caps,
                );
                let info = ChannelInfo {
                    channel_type: mess.channel_type,
                    channel_id: mess.channel_id,
                    session_id: session.id(),
                    header: HeaderKind::from_mini(outcome_preview_mini),
                    peer_common_caps: mess.common_caps.clone(),
                    peer_channel_caps: mess.channel_caps.clone(),
                    secure: transport.is_secure(),
                    websocket: transport.is_websocket(),
                };
                let sig = signal.clone();
                let waker = Waker::new(move || sig.wake());
                let handler = match factory.open(OpenContext {
                    info: &info,
                    session: &session,
                    waker: waker.clone(),
                    server: ctx,
                }) {
                    Ok(h) => h,
                    Err(code) => {
                        if is_main {
                            session.close();
                        }
                        return Err(refuse_link(link, code, stream, transport));
                    }
                };
                let outcome = link.accept()?;
                let out = link.take_output();
                write_out(stream, transport, &out)?;
                let info = ChannelInfo {
                    header: HeaderKind::from_mini(outcome.mini_header),
                    ..info
                };
                session.add_waker(waker);
                tracing::info!(channel = %info.channel_type, id = info.channel_id, session = info.session_id, mini_header = outcome.mini_header, "channel linked");
                let core_cfg = CoreConfig {
                    ack_window: ctx.config.ack_window,
                    ping_interval: ctx.config.ping_interval,
                    ..CoreConfig::default()
                };
                let mut l = Linked {
                    core: ChannelCore::new(info, &core_cfg, now),
                    handler,
                    session,
                    is_main,
                };
                let started = l.core.start(&mut *l.handler, now).and_then(|()| {
                    if input.is_empty() {
                        Ok(())
                    } else {
                        l.core.handle_input(input, &mut *l.handler, now)
                    }
                });
                if let Err(e) = started {
                    l.handler.on_disconnect();
                    if l.is_main {
                        l.session.close();
                    }
                    return Err(e.into());
                }
                return Ok(Some(l));
            }
        }
    }
}

/// Fuzzing entry point (`server_channel` target): a linked channel core of the built-in
/// main, inputs or cursor channel fed with arbitrary client bytes.
///
/// Byte 0 picks the channel (`% 3`: main, inputs, cursor) and the header (bit 7: mini),
/// byte 1 the chunk size for incremental feeding; the rest is input. Stops at the first
/// channel error (which closes a real connection). Panics only on a bug: every byte the
/// core sends must frame and decode as a server message of that channel.
pub fn fuzz_server_channel(data: &[u8]) {
    use spice_proto::framer::{Frame, Framer};
    use spice_proto::messages::ServerMessage;

    let [sel, chunk, input @ ..] = data else {
        return;
    };
    let channel =
        [ChannelType::MAIN, ChannelType::INPUTS, ChannelType::CURSOR][usize::from(sel % 3)];
    let header = HeaderKind::from_mini(sel & 0x80 != 0);
    let chunk = usize::from(*chunk).max(1);
    let Ok(config) = ServerConfig::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .ack_window(4)
        .build()
    else {
        return;
    };
    let feed = CursorFeed::new();
    let ctx = ServerContext::build(
        config,
        Host::default(),
        Some(feed.clone()),
        Vec::new(),
        Instant::now(),
    );
    let session = ctx.new_session();
    let Some(factory) = ctx.factory(channel, 0) else {
        return;
    };
    let info = ChannelInfo {
        channel_type: channel,
        channel_id: 0,
        session_id: session.id(),
        header,
        peer_common_caps: caps::default_client_common_caps(),
        peer_channel_caps: spice_proto::caps::Caps::new(),
        secure: false,
        websocket: false,
    };
    let Ok(mut handler) = factory.open(OpenContext {
        info: &info,
        session: &session,
        waker: Waker::noop(),
        server: &ctx,
    }) else {
        return;
    };
    let t0 = Instant::now();
    let mut core = ChannelCore::new(info, &CoreConfig::default(), t0);
    let mut sent = Vec::new();
    if core.start(&mut *handler, t0).is_err() {
        return;
    }
    for (k, piece) in input.chunks(chunk).enumerate() {
        let now = t0 + Duration::from_millis(k as u64 * 500);
        if k % 4 == 3 {
            feed.push(crate::cursor::CursorCommand::Move(
                spice_proto::types::Point16 { x: k as i16, y: 0 },
            ));
        }
        let r = core.handle_input(piece, &mut *handler, now);
        sent.extend(core.take_output());
        if r.is_err() || core.close_reason().is_some() {
            break;
        }
    }
    let mut framer = Framer::new(header, u32::MAX);
    let mut pos = 0;
    while let Ok(Frame::Complete(f)) = framer.next_frame(&sent[pos..]) {
        let body = &sent[pos + f.body.start..pos + f.body.end];
        if let Err(e) = ServerMessage::decode(channel, f.msg_type, body) {
            panic!("the server sent an undecodable message: {e}");
        }
        pos += f.total_len;
    }
    assert_eq!(pos, sent.len(), "the server sent a partial message");
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn split_messages_cuts_at_every_header() {
        // mini: type u16, size u32
        let mut buf = Vec::new();
        for (t, body) in [
            (3u16, &b"abcd"[..]),
            (103, &[][..]),
            (4, &b"xyzxyzxyzxyz"[..]),
        ] {
            buf.extend_from_slice(&t.to_le_bytes());
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(body);
        }
        let parts = split_messages(&buf, HeaderKind::Mini);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [10, 6, 18]
        );
        // full: serial u64, type u16, size u32, sub_list u32
        let mut full = Vec::new();
        for (serial, body) in [(1u64, &b"12345"[..]), (2, &b"6"[..])] {
            full.extend_from_slice(&serial.to_le_bytes());
            full.extend_from_slice(&101u16.to_le_bytes());
            full.extend_from_slice(&(body.len() as u32).to_le_bytes());
            full.extend_from_slice(&0u32.to_le_bytes());
            full.extend_from_slice(body);
        }
        let parts = split_messages(&full, HeaderKind::Full);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [23, 19]);
        // A truncated tail stays whole instead of panicking.
        let parts = split_messages(&buf[..13], HeaderKind::Mini);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [10, 3]);
    }
}
