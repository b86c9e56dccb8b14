//! The channel layer: one sans-IO [`ChannelCore`] per linked channel connection, and the
//! [`ChannelHandler`] trait every channel's logic implements.
//!
//! # Shape
//!
//! ```text
//!  socket bytes ──► ChannelCore::handle_input ──► Framer ──► ClientMessage::decode
//!                        │  base messages (ACK_SYNC, ACK, PONG, DISCONNECTING,
//!                        │  MIGRATE_*) are handled here
//!                        └─► ChannelHandler::handle_message(msg, &mut Outbox)
//!  ChannelCore::poll(now) ──► PING when due ──► ChannelHandler::poll(now, &mut Outbox)
//!                                                 (only while the ACK window is open)
//!  ChannelCore::take_output ──► socket
//! ```
//!
//! The core does no I/O and reads no clock: time comes in as `now`. The driver
//! ([`crate::server`]) owns one core and one handler per connection, feeds it the bytes the
//! socket delivers, calls [`ChannelCore::poll`] when the handler's [`Waker`] fires or
//! [`ChannelCore::poll_timeout`] expires, and writes [`ChannelCore::take_output`] out.
//!
//! # Writing a channel
//!
//! 1. Implement [`ChannelHandler`]:
//!    - [`ChannelHandler::on_connect`]: queue the channel's first messages (e.g. an `INIT`).
//!      The core has already queued `SET_ACK`.
//!    - [`ChannelHandler::handle_message`]: one decoded client message of this channel
//!      (never a base message). Reply through the [`Outbox`].
//!    - [`ChannelHandler::poll`]: produce pending data. Called only while
//!      [`Outbox::can_send`] is true; check it again after each message and stop when it turns
//!      false (the client has not acknowledged enough yet). Return; you will be polled again
//!      when ACKs arrive or when your waker fires.
//! 2. Implement [`ChannelFactory`] (type, id, channel caps, `open`) and register it with
//!    [`crate::server::ServerBuilder::add_channel`]. `open` receives an [`OpenContext`] with
//!    the negotiated [`ChannelInfo`], the client's [`crate::session::Session`] (per-client
//!    shared state, e.g. a GLZ dictionary shared by that client's display channels) and a
//!    [`Waker`]: keep it, and call [`Waker::wake`] from any thread when new data is ready
//!    (a display worker that has new commands, say).
//!
//! # Flow control
//!
//! The core sends `SET_ACK { generation, window }` first. The client answers `ACK_SYNC`
//! and then one `ACK` per `window` messages received. Every message sent counts as in
//! flight; each `ACK` of the current generation retires `window` of them. Producing stops
//! (as spice-server does) once `2 * window` messages are in flight, and also while more
//! than [`CoreConfig::max_pending_bytes`] of output wait for the socket, so a client that
//! stops reading bounds the server's memory. Replies to client messages are always queued
//! (they are small and bounded by what the client sends).
//!
//! # Latency
//!
//! A `PING` goes out right after the link and then every [`CoreConfig::ping_interval`];
//! only one is outstanding at a time. The matching `PONG` gives [`ChannelCore::latency`].

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_proto::base::{self, Notify, NotifySeverity, NotifyVisibility, Ping, SetAck};
use spice_proto::caps::Caps;
use spice_proto::framer::{Frame, FrameError, Framer};
use spice_proto::header::{HeaderKind, write_message};
use spice_proto::link::LinkErr;
use spice_proto::messages::ClientMessage;
use spice_proto::wire::WriteBuf;
use spice_proto::{ChannelMessage, ChannelType, EncodeError, MessageError};

use crate::session::Session;

/// A failure on one channel connection. The driver closes that connection (only) and logs
/// the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A data header announced more than the allowed message size.
    #[error("{channel}: {source}")]
    Frame {
        /// The channel.
        channel: ChannelType,
        /// The framing failure.
        #[source]
        source: FrameError,
    },
    /// A client message did not decode (the error names channel, direction and message).
    #[error(transparent)]
    Decode(#[from] MessageError),
    /// A message could not be encoded.
    #[error("{channel}: encoding {what}: {source}")]
    Encode {
        /// The channel.
        channel: ChannelType,
        /// What was being encoded.
        what: &'static str,
        /// The failure.
        #[source]
        source: EncodeError,
    },
    /// A well-formed message that is wrong here (state, values).
    #[error("{channel}: {what}")]
    Protocol {
        /// The channel.
        channel: ChannelType,
        /// What was wrong.
        what: String,
    },
    /// The host side of the channel failed.
    #[error("{channel}: host: {what}")]
    Host {
        /// The channel.
        channel: ChannelType,
        /// What failed.
        what: String,
    },
}

/// Why a channel connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent `DISCONNECTING`.
    ClientDisconnecting,
    /// The handler asked to close ([`Outbox::close`]).
    Handler,
}

/// A handle that makes the driver poll a channel again; cheap to clone, callable from any
/// thread. Calling it when nothing changed is harmless.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    /// A waker that runs `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// A waker that does nothing (for tests that poll by hand).
    pub fn noop() -> Self {
        Self::new(|| {})
    }

    /// Asks for a poll of the channel.
    pub fn wake(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// What the link stage agreed on for one channel connection.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// The session (connection id) the channel belongs to.
    pub session_id: u32,
    /// Mini (6-byte) or full (18-byte) data headers.
    pub header: HeaderKind,
    /// The client's common caps.
    pub peer_common_caps: Caps,
    /// The client's caps for this channel.
    pub peer_channel_caps: Caps,
    /// True when the connection runs over TLS.
    pub secure: bool,
    /// True when the connection runs over WebSocket.
    pub websocket: bool,
}

/// What a [`ChannelFactory`] gets when a client links its channel.
#[derive(Debug)]
pub struct OpenContext<'a> {
    /// The link's outcome.
    pub info: &'a ChannelInfo,
    /// The client's session (shared by all its channels).
    pub session: &'a Arc<Session>,
    /// Wakes this connection's driver; keep it to signal new data from other threads.
    pub waker: Waker,
    /// The server: settings (image compression, streaming...), the multimedia clock
    /// ([`crate::server::ServerContext::mm_time`]), host devices.
    pub server: &'a Arc<crate::server::ServerContext>,
}

/// Creates the handler of one channel (type, id) for each client that links it.
pub trait ChannelFactory: Send + Sync {
    /// The channel type this factory serves.
    fn channel_type(&self) -> ChannelType;
    /// The channel instance id.
    fn channel_id(&self) -> u8;
    /// The channel caps the server advertises in the link reply.
    fn caps(&self) -> Caps;
    /// True when this channel must run over TLS (the link is refused with `NEED_SECURED`
    /// on the plain port). Defaults to false; the server config can also require it.
    fn requires_secure(&self) -> bool {
        false
    }
    /// Creates the handler for one client, or refuses the link with a code (for example
    /// [`LinkErr::CHANNEL_NOT_AVAILABLE`]).
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr>;
}

/// The logic of one channel for one client. See the module docs.
pub trait ChannelHandler: Send {
    /// Called once after the link, after the core queued `SET_ACK`: queue the channel's
    /// first messages.
    fn on_connect(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError>;

    /// One decoded client message of this channel (base messages are handled by the core).
    fn handle_message(
        &mut self,
        msg: &ClientMessage<'_>,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError>;

    /// Produce pending data while [`Outbox::can_send`] holds. Called after input, after
    /// ACKs, when the waker fired, and when [`ChannelHandler::poll_timeout`] expired.
    fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let _ = (now, out);
        Ok(())
    }

    /// When the handler next wants [`ChannelHandler::poll`] without being woken (timers).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The connection is gone (closed by either side or failed).
    fn on_disconnect(&mut self) {}

    /// Asked before each client message is decoded and on every poll. A handler whose
    /// consumer is slow (a character device that takes bytes slowly, say) can flush what it
    /// holds here and return false: the core then keeps the following client messages
    /// undecoded and [`ChannelCore::input_held`] tells the driver to stop reading the
    /// socket until a later poll finds the handler ready again (TCP then throttles the
    /// client). Defaults to always ready.
    fn ready_for_input(&mut self, now: Instant) -> bool {
        let _ = now;
        true
    }

    /// For tests and embedders that need the concrete handler back.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// Tunables of a [`ChannelCore`].
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The ACK window sent in `SET_ACK` (spice-server: 20 over TCP). 0 disables flow
    /// control (no `SET_ACK`).
    pub ack_window: u32,
    /// Interval between `PING`s; `None` sends none.
    pub ping_interval: Option<Duration>,
    /// Largest client message body accepted.
    pub max_message_size: u32,
    /// Output bytes waiting for the socket above which producers are held back.
    pub max_pending_bytes: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            ack_window: 20,
            ping_interval: Some(Duration::from_secs(10)),
            max_message_size: 1 << 20,
            max_pending_bytes: 4 << 20,
        }
    }
}

/// Outgoing state: serials and the ACK window accounting.
#[derive(Debug)]
struct SendState {
    channel: ChannelType,
    header: HeaderKind,
    /// Serial of the last message queued (the first gets 1).
    serial: u64,
    /// Messages sent and not yet retired by an ACK.
    in_flight: u32,
    /// `SET_ACK` generation; the client echoes it in `ACK_SYNC`.
    generation: u32,
    /// Generation the client last synced to (ACKs of other generations are stale).
    client_generation: Option<u32>,
    window: u32,
    max_pending_bytes: usize,
    close: Option<CloseReason>,
    messages_sent: u64,
}

/// Where a handler queues messages; also tells whether it may produce more.
#[derive(Debug)]
pub struct Outbox<'a> {
    out: &'a mut Vec<u8>,
    st: &'a mut SendState,
}

impl Outbox<'_> {
    /// True while the client's ACK window and the output buffer bound leave room: producers
    /// stop when this turns false (replies may still be queued).
    pub fn can_send(&self) -> bool {
        let window_open = self.st.window == 0 || self.st.in_flight < 2 * self.st.window;
        window_open && self.out.len() < self.st.max_pending_bytes
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> u32 {
        self.st.in_flight
    }

    /// Bytes queued and not yet taken by the driver.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// The data header kind (mini or full).
    pub fn header_kind(&self) -> HeaderKind {
        self.st.header
    }

    /// Queues a typed message (any channel's `ServerMessage` enum, or the base one).
    pub fn send<'m, M: ChannelMessage<'m>>(&mut self, msg: &M) -> Result<(), ChannelError> {
        let name = msg.name();
        self.send_raw(msg.msg_type(), name, |w| msg.encode_body(w))
    }

    /// Queues a message whose body `body` writes directly (for large bodies that are
    /// assembled in place); `name` is used in errors.
    pub fn send_raw<F>(
        &mut self,
        msg_type: u16,
        name: &'static str,
        body: F,
    ) -> Result<(), ChannelError>
    where
        F: FnOnce(&mut WriteBuf<'_>) -> Result<(), EncodeError>,
    {
        let serial = self.st.serial + 1;
        write_message(self.out, self.st.header, serial, msg_type, body).map_err(|source| {
            ChannelError::Encode {
                channel: self.st.channel,
                what: name,
                source,
            }
        })?;
        self.st.serial = serial;
        self.st.in_flight = self.st.in_flight.saturating_add(1);
        self.st.messages_sent += 1;
        Ok(())
    }

    /// Queues a `NOTIFY` with a text message (NUL-terminated on the wire, as spice-server
    /// sends it). `time_stamp` is in the caller's clock (spice-server: ms of the monotonic
    /// clock).
    pub fn notify(
        &mut self,
        time_stamp: u64,
        severity: NotifySeverity,
        visibility: NotifyVisibility,
        what: u32,
        message: &str,
    ) -> Result<(), ChannelError> {
        let msg = base::ServerMessage::Notify(Notify {
            time_stamp,
            severity,
            visibility,
            what,
            message: message.as_bytes(),
            nul_terminated: true,
        });
        self.send(&msg)
    }

    /// Asks the driver to close this connection once the queued output is written.
    pub fn close(&mut self) {
        self.st.close.get_or_insert(CloseReason::Handler);
    }
}

/// Ping bookkeeping.
#[derive(Debug)]
struct PingState {
    interval: Option<Duration>,
    next_due: Option<Instant>,
    next_id: u32,
    outstanding: Option<(u32, Instant)>,
    latency: Option<Duration>,
}

/// The sans-IO core of one linked channel connection. See the module docs.
#[derive(Debug)]
pub struct ChannelCore {
    info: ChannelInfo,
    framer: Framer,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    st: SendState,
    ping: PingState,
    epoch: Instant,
    started: bool,
    messages_received: u64,
    input_held: bool,
}

impl ChannelCore {
    /// A core for a channel linked as `info`; `now` is the link time (ping timestamps are
    /// counted from it).
    pub fn new(info: ChannelInfo, config: &CoreConfig, now: Instant) -> Self {
        Self {
            framer: Framer::new(info.header, config.max_message_size),
            inbuf: Vec::new(),
            out: Vec::new(),
            st: SendState {
                channel: info.channel_type,
                header: info.header,
                serial: 0,
                in_flight: 0,
                generation: 0,
                client_generation: None,
                window: config.ack_window,
                max_pending_bytes: config.max_pending_bytes,
                close: None,
                messages_sent: 0,
            },
            ping: PingState {
                interval: config.ping_interval,
                next_due: config.ping_interval.map(|_| now),
                next_id: 1,
                outstanding: None,
                latency: None,
            },
            epoch: now,
            started: false,
            messages_received: 0,
            input_held: false,
            info,
        }
    }

    /// The link's outcome.
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }

    fn outbox(&mut self) -> Outbox<'_> {
        Outbox {
            out: &mut self.out,
            st: &mut self.st,
        }
    }

    /// Queues `SET_ACK` and lets the handler queue its first messages. Call once, first.
    pub fn start(
        &mut self,
        handler: &mut dyn ChannelHandler,
        now: Instant,
    ) -> Result<(), ChannelError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.st.window > 0 {
            self.st.generation = self.st.generation.wrapping_add(1);
            let msg = base::ServerMessage::SetAck(SetAck {
                generation: self.st.generation,
                window: self.st.window,
            });
            self.outbox().send(&msg)?;
            // Messages before the client's ACK_SYNC are not acknowledged in this
            // generation's count; start counting from the SET_ACK on.
            self.st.in_flight = 0;
        }
        handler.on_connect(now, &mut self.outbox())?;
        self.poll(handler, now)
    }

    /// Consumes bytes from the client: frames them, handles base messages and passes the
    /// rest to `handler`. Stops at the first error (the connection must then be closed).
    pub fn handle_input(
        &mut self,
        data: &[u8],
        handler: &mut dyn ChannelHandler,
        now: Instant,
    ) -> Result<(), ChannelError> {
        self.inbuf.extend_from_slice(data);
        self.process_input(handler, now)?;
        self.poll(handler, now)
    }

    /// True when client messages wait undecoded because the handler is not ready for them
    /// ([`ChannelHandler::ready_for_input`]): the driver should stop reading the socket
    /// until this turns false (after a poll).
    pub fn input_held(&self) -> bool {
        self.input_held
    }

    /// Frames and dispatches the buffered client bytes while the handler is ready.
    fn process_input(
        &mut self,
        handler: &mut dyn ChannelHandler,
        now: Instant,
    ) -> Result<(), ChannelError> {
        let mut pos = 0;
        self.input_held = false;
        let res = loop {
            if self.st.close.is_some() {
                break Ok(());
            }
            if pos < self.inbuf.len() && !handler.ready_for_input(now) {
                self.input_held = true;
                break Ok(());
            }
            let frame = match self.framer.next_frame(&self.inbuf[pos..]) {
                Ok(f) => f,
                Err(source) => {
                    break Err(ChannelError::Frame {
                        channel: self.info.channel_type,
                        source,
                    });
                }
            };
            let info = match frame {
                Frame::Need(_) => break Ok(()),
                Frame::Complete(info) => info,
            };
            let start = pos;
            pos += info.total_len;
            self.messages_received += 1;
            let body = &self.inbuf[start + info.body.start..start + info.body.end];
            let msg = match ClientMessage::decode(self.info.channel_type, info.msg_type, body) {
                Ok(m) => m,
                Err(e) => break Err(e.into()),
            };
            tracing::trace!(channel = %self.info.channel_type, msg = msg.name(), "received");
            let r = match &msg {
                ClientMessage::Base(b) => {
                    Self::handle_base(&mut self.st, &mut self.ping, self.info.channel_type, b, now)
                }
                other => handler.handle_message(
                    other,
                    now,
                    &mut Outbox {
                        out: &mut self.out,
                        st: &mut self.st,
                    },
                ),
            };
            if let Err(e) = r {
                break Err(e);
            }
        };
        self.inbuf.drain(..pos);
        res
    }

    fn handle_base(
        st: &mut SendState,
        ping: &mut PingState,
        channel: ChannelType,
        msg: &base::ClientMessage<'_>,
        now: Instant,
    ) -> Result<(), ChannelError> {
        match msg {
            base::ClientMessage::AckSync { generation } => {
                st.client_generation = Some(*generation);
            }
            base::ClientMessage::Ack => {
                if st.client_generation == Some(st.generation) {
                    st.in_flight = st.in_flight.saturating_sub(st.window);
                } else {
                    tracing::debug!(%channel, "ACK of a stale generation ignored");
                }
            }
            base::ClientMessage::Pong(p) => match ping.outstanding {
                Some((id, sent)) if id == p.id => {
                    ping.outstanding = None;
                    let rtt = now.saturating_duration_since(sent);
                    ping.latency = Some(rtt);
                    tracing::trace!(%channel, ?rtt, "pong");
                }
                _ => tracing::debug!(%channel, id = p.id, "unexpected PONG ignored"),
            },
            base::ClientMessage::Disconnecting(d) => {
                tracing::debug!(%channel, reason = %d.reason, "client disconnecting");
                st.close = Some(CloseReason::ClientDisconnecting);
            }
            base::ClientMessage::MigrateFlushMark | base::ClientMessage::MigrateData(_) => {
                // Migration is not offered by this server (no MIGRATE is ever sent), so a
                // client has no reason to send these; they are ignored, not fatal.
                tracing::debug!(%channel, "migration message ignored (migration not supported)");
            }
        }
        Ok(())
    }

    /// Sends a `PING` when due and lets the handler produce while the window allows. Call
    /// after the waker fired or a timeout expired (input handling calls it itself).
    pub fn poll(
        &mut self,
        handler: &mut dyn ChannelHandler,
        now: Instant,
    ) -> Result<(), ChannelError> {
        if !self.started || self.st.close.is_some() {
            return Ok(());
        }
        self.maybe_ping(now)?;
        if self.input_held {
            // Held input resumes once the handler is ready again (it may flush here).
            self.process_input(handler, now)?;
        } else {
            // Lets the handler flush what it holds for its consumer.
            handler.ready_for_input(now);
        }
        if self.st.close.is_some() {
            return Ok(());
        }
        let mut out = self.outbox();
        if out.can_send() {
            handler.poll(now, &mut out)?;
        }
        Ok(())
    }

    fn maybe_ping(&mut self, now: Instant) -> Result<(), ChannelError> {
        let (Some(interval), Some(due)) = (self.ping.interval, self.ping.next_due) else {
            return Ok(());
        };
        if now < due {
            return Ok(());
        }
        if let Some((_, sent)) = self.ping.outstanding {
            // One ping at a time: wait for its PONG (or give up on it after 3 intervals).
            if now.saturating_duration_since(sent) < interval * 3 {
                self.ping.next_due = Some(now + interval);
                return Ok(());
            }
        }
        let id = self.ping.next_id;
        self.ping.next_id = self.ping.next_id.wrapping_add(1);
        let timestamp =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let msg = base::ServerMessage::Ping(Ping {
            id,
            timestamp,
            data: &[],
        });
        self.outbox().send(&msg)?;
        self.ping.outstanding = Some((id, now));
        self.ping.next_due = Some(now + interval);
        Ok(())
    }

    /// When [`ChannelCore::poll`] should next be called without new input or a wake.
    pub fn poll_timeout(&self, handler: &dyn ChannelHandler) -> Option<Instant> {
        match (self.ping.next_due, handler.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Output bytes for the socket (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Gives back a buffer taken with [`ChannelCore::take_output`] once written, so the
    /// next messages are assembled in its allocation instead of a growing new one.
    pub fn recycle_output(&mut self, mut buf: Vec<u8>) {
        if self.out.is_empty() && buf.capacity() > self.out.capacity() {
            buf.clear();
            self.out = buf;
        }
    }

    /// True when output is waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Set when the connection should close after the output is written.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.st.close
    }

    /// The last measured round trip (PING → PONG).
    pub fn latency(&self) -> Option<Duration> {
        self.ping.latency
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> u32 {
        self.st.in_flight
    }

    /// True while the window and the output bound let producers run.
    pub fn can_send(&self) -> bool {
        let window_open = self.st.window == 0 || self.st.in_flight < 2 * self.st.window;
        window_open && self.out.len() < self.st.max_pending_bytes
    }

    /// Messages sent so far (all kinds).
    pub fn messages_sent(&self) -> u64 {
        self.st.messages_sent
    }

    /// Messages received so far.
    pub fn messages_received(&self) -> u64 {
        self.messages_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::base::{Disconnecting, Pong};
    use spice_proto::header::write_channel_message;
    use spice_proto::messages::ServerMessage;

    /// Sends one NOTIFY per poll while the window allows, `budget` in all.
    struct Producer {
        budget: u32,
        got: Vec<u16>,
    }

    impl ChannelHandler for Producer {
        fn on_connect(&mut self, _: Instant, _: &mut Outbox<'_>) -> Result<(), ChannelError> {
            Ok(())
        }
        fn handle_message(
            &mut self,
            msg: &ClientMessage<'_>,
            _: Instant,
            _: &mut Outbox<'_>,
        ) -> Result<(), ChannelError> {
            self.got.push(msg.msg_type());
            Ok(())
        }
        fn poll(&mut self, _: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
            while self.budget > 0 && out.can_send() {
                self.budget -= 1;
                out.notify(0, NotifySeverity::INFO, NotifyVisibility::LOW, 0, "x")?;
            }
            Ok(())
        }
    }

    fn info(header: HeaderKind) -> ChannelInfo {
        ChannelInfo {
            channel_type: ChannelType::INPUTS,
            channel_id: 0,
            session_id: 1,
            header,
            peer_common_caps: Caps::new(),
            peer_channel_caps: Caps::new(),
            secure: false,
            websocket: false,
        }
    }

    fn decode_all(kind: HeaderKind, bytes: &[u8]) -> Vec<(u64, u16, Vec<u8>)> {
        let mut f = Framer::new(kind, u32::MAX);
        let mut pos = 0;
        let mut v = Vec::new();
        while let Frame::Complete(i) = f.next_frame(&bytes[pos..]).unwrap() {
            let body = bytes[pos + i.body.start..pos + i.body.end].to_vec();
            ServerMessage::decode(ChannelType::INPUTS, i.msg_type, &body).unwrap();
            v.push((i.serial, i.msg_type, body));
            pos += i.total_len;
        }
        assert_eq!(pos, bytes.len());
        v
    }

    fn client_msg(kind: HeaderKind, serial: u64, m: &base::ClientMessage<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        write_channel_message(&mut v, kind, serial, m).unwrap();
        v
    }

    #[test]
    fn window_stops_at_twice_and_reopens_on_ack() {
        for kind in [HeaderKind::Mini, HeaderKind::Full] {
            let now = Instant::now();
            let cfg = CoreConfig {
                ack_window: 4,
                ping_interval: None,
                ..CoreConfig::default()
            };
            let mut core = ChannelCore::new(info(kind), &cfg, now);
            let mut h = Producer {
                budget: 100,
                got: vec![],
            };
            core.start(&mut h, now).unwrap();
            let msgs = decode_all(kind, &core.take_output());
            // SET_ACK then 2 * window producer messages.
            assert_eq!(msgs.len(), 1 + 8);
            assert_eq!(msgs[0].1, base::server_msg::SET_ACK);
            assert_eq!(&msgs[0].2[..], &[1, 0, 0, 0, 4, 0, 0, 0]);
            if kind == HeaderKind::Full {
                let serials: Vec<u64> = msgs.iter().map(|m| m.0).collect();
                assert_eq!(serials, (1..=9).collect::<Vec<_>>());
            }
            assert!(!core.can_send());
            core.poll(&mut h, now).unwrap();
            assert!(core.take_output().is_empty());
            // An ACK before ACK_SYNC is stale.
            core.handle_input(&client_msg(kind, 1, &base::ClientMessage::Ack), &mut h, now)
                .unwrap();
            assert!(core.take_output().is_empty());
            let mut input = client_msg(kind, 2, &base::ClientMessage::AckSync { generation: 1 });
            input.extend(client_msg(kind, 3, &base::ClientMessage::Ack));
            // Fed byte by byte: framing must cope with any split.
            for b in &input {
                core.handle_input(std::slice::from_ref(b), &mut h, now)
                    .unwrap();
            }
            let msgs = decode_all(kind, &core.take_output());
            assert_eq!(msgs.len(), 4);
            assert_eq!(h.budget, 100 - 12);
            assert!(h.got.is_empty(), "base messages stay in the core");
        }
    }

    #[test]
    fn ping_pong_latency_and_timeout() {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            ping_interval: Some(Duration::from_secs(10)),
            ..CoreConfig::default()
        };
        let mut core = ChannelCore::new(info(HeaderKind::Mini), &cfg, t0);
        let mut h = Producer {
            budget: 0,
            got: vec![],
        };
        core.start(&mut h, t0).unwrap();
        let msgs = decode_all(HeaderKind::Mini, &core.take_output());
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].1, base::server_msg::PING);
        assert_eq!(core.poll_timeout(&h), Some(t0 + Duration::from_secs(10)));
        // Wrong id ignored, right id measured.
        let pong = |id| {
            client_msg(
                HeaderKind::Mini,
                0,
                &base::ClientMessage::Pong(Pong { id, timestamp: 0 }),
            )
        };
        core.handle_input(&pong(9), &mut h, t0 + Duration::from_millis(5))
            .unwrap();
        assert_eq!(core.latency(), None);
        core.handle_input(&pong(1), &mut h, t0 + Duration::from_millis(7))
            .unwrap();
        assert_eq!(core.latency(), Some(Duration::from_millis(7)));
        core.poll(&mut h, t0 + Duration::from_secs(10)).unwrap();
        let msgs = decode_all(HeaderKind::Mini, &core.take_output());
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0].2[..4], &2u32.to_le_bytes());
        // Unanswered: no second ping until three intervals have passed.
        core.poll(&mut h, t0 + Duration::from_secs(20)).unwrap();
        assert!(core.take_output().is_empty());
        core.poll(&mut h, t0 + Duration::from_secs(41)).unwrap();
        assert_eq!(decode_all(HeaderKind::Mini, &core.take_output()).len(), 1);
    }

    #[test]
    fn malformed_and_oversized_input_are_typed_errors() {
        let now = Instant::now();
        let cfg = CoreConfig {
            max_message_size: 64,
            ..CoreConfig::default()
        };
        let mut h = Producer {
            budget: 0,
            got: vec![],
        };
        let mut core = ChannelCore::new(info(HeaderKind::Mini), &cfg, now);
        core.start(&mut h, now).unwrap();
        // ACK_SYNC with a 2-byte body.
        let e = core
            .handle_input(&[1, 0, 2, 0, 0, 0, 1, 2], &mut h, now)
            .unwrap_err();
        assert!(matches!(e, ChannelError::Decode(_)), "{e}");
        let mut core = ChannelCore::new(info(HeaderKind::Mini), &cfg, now);
        core.start(&mut h, now).unwrap();
        let e = core
            .handle_input(&[1, 0, 65, 0, 0, 0], &mut h, now)
            .unwrap_err();
        assert!(matches!(e, ChannelError::Frame { .. }), "{e}");
        // An unknown inputs message type.
        let mut core = ChannelCore::new(info(HeaderKind::Mini), &cfg, now);
        core.start(&mut h, now).unwrap();
        let e = core
            .handle_input(&[200, 0, 0, 0, 0, 0], &mut h, now)
            .unwrap_err();
        assert!(e.to_string().contains("inputs"), "{e}");
    }

    #[test]
    fn disconnecting_closes_and_channel_messages_reach_handler() {
        let now = Instant::now();
        let mut h = Producer {
            budget: 0,
            got: vec![],
        };
        let mut core = ChannelCore::new(info(HeaderKind::Full), &CoreConfig::default(), now);
        core.start(&mut h, now).unwrap();
        let mut input = Vec::new();
        write_message(&mut input, HeaderKind::Full, 1, 101, |w| {
            w.write_u32(0x1e);
            Ok(())
        })
        .unwrap();
        input.extend(client_msg(
            HeaderKind::Full,
            2,
            &base::ClientMessage::Disconnecting(Disconnecting {
                time_stamp: 0,
                reason: LinkErr::OK,
            }),
        ));
        core.handle_input(&input, &mut h, now).unwrap();
        assert_eq!(h.got, vec![101]);
        assert_eq!(core.close_reason(), Some(CloseReason::ClientDisconnecting));
    }
}
