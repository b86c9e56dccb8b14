//! The agent relay: VDAgent data between a client's main channel and the host's agent
//! character device ([`CharDeviceKind::Agent`]), with flow control in both directions.
//!
//! ```text
//!  client ── AGENT_DATA (≤ 2048 B, 1 token each) ──► ClientStreamFilter ──► VDI chunks
//!         ◄─ AGENT_TOKEN (once the device took the bytes) ─────────────────  (port CLIENT)
//!                                                                              │
//!                                                                   CharDevice::write
//!  client ◄─ AGENT_DATA (1 client-granted token each) ◄── VdiDechunker ◄── CharDevice::read
//! ```
//!
//! - [`AgentRelay`] (one per server): the device, the bytes waiting for it (bounded), the
//!   device-side dechunker, and which client currently holds the agent (the latest main
//!   channel to connect; one client at a time, as spice-server serves one).
//! - [`AgentLink`] (one per main channel): the client's tokens both ways and its
//!   [`ClientStreamFilter`]. The main channel forwards `AGENT_START`, `AGENT_TOKEN` and
//!   `AGENT_DATA` to it and calls [`AgentLink::poll`] from its own poll.
//!
//! Flow control: the client holds at most [`crate::main_channel::AGENT_TOKENS`] tokens; a
//! token comes back only once its chunk was handed to the device, so at most that many chunks
//! wait for the device per client. Towards the client, one `AGENT_DATA` per token the client
//! granted (`AGENT_START`/`AGENT_TOKEN`); without tokens the device is not read (the guest
//! side is held back, nothing is buffered here).
//!
//! Bad input from the client never disturbs the session: an `AGENT_DATA` larger than
//! [`VD_AGENT_MAX_DATA_SIZE`] is refused whole; a message header with a wrong protocol drops
//! the rest of that `AGENT_DATA` (the next one is taken as a message start); a message larger
//! than the size cap or of a type a client may not send is skipped. The agent only ever sees
//! whole, validated headers followed by exactly the announced body bytes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_proto::agent::{
    AgentHeader, AgentMessage, AgentMessageType, AgentMouseButtons, AgentReassembler, MouseState,
    VD_AGENT_MAX_DATA_SIZE, VD_AGENT_PROTOCOL, VdiDechunker, VdiPort, write_vdi_chunks,
};
use spice_proto::inputs::MouseButtonMask;
use spice_proto::link::LinkErr;
use spice_proto::main::ServerMessage;
use spice_proto::wire::ReadCursor;

use crate::channel::{ChannelError, Outbox, Waker};
use crate::host::{CharDevice, CharDeviceKind};
use crate::session::lock;

/// Default cap on one client agent message body (larger ones are skipped, never buffered).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Bytes waiting for the device above which client tokens are held back.
const TO_DEVICE_LOW_WATER: usize = 2 * (VD_AGENT_MAX_DATA_SIZE + 8);

/// Hard bound of the bytes waiting for the device (client chunks can never reach it: the
/// token window keeps them below; mouse states beyond it are dropped).
const TO_DEVICE_MAX: usize = 64 * (VD_AGENT_MAX_DATA_SIZE + 8);

/// Largest message the agent may send to the server port (only logged).
const SERVER_PORT_MAX_MESSAGE: usize = 64 * 1024;

/// How often an attached link polls the device even without a wake (devices whose
/// [`CharDevice::set_waker`] is a no-op).
const FALLBACK_POLL: Duration = Duration::from_millis(100);

/// Why client agent data was refused or skipped (logged; the session goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentFilterError {
    /// An `AGENT_DATA` message larger than [`VD_AGENT_MAX_DATA_SIZE`].
    #[error("agent data chunk of {size} bytes exceeds {max}")]
    ChunkTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A message header with a protocol other than [`VD_AGENT_PROTOCOL`].
    #[error("agent message with protocol {protocol}")]
    BadProtocol {
        /// The protocol read.
        protocol: u32,
    },
    /// A message body above the cap (skipped).
    #[error("agent message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// The announced size.
        size: u32,
        /// The cap.
        max: usize,
    },
    /// A message type a client may not send (skipped).
    #[error("agent message type {0} not accepted from a client")]
    TypeNotAllowed(u32),
}

/// True for the message types a client may send to the agent.
fn client_type_allowed(t: AgentMessageType) -> bool {
    matches!(
        t,
        AgentMessageType::MONITORS_CONFIG
            | AgentMessageType::REPLY
            | AgentMessageType::CLIPBOARD
            | AgentMessageType::DISPLAY_CONFIG
            | AgentMessageType::ANNOUNCE_CAPABILITIES
            | AgentMessageType::CLIPBOARD_GRAB
            | AgentMessageType::CLIPBOARD_REQUEST
            | AgentMessageType::CLIPBOARD_RELEASE
            | AgentMessageType::FILE_XFER_START
            | AgentMessageType::FILE_XFER_STATUS
            | AgentMessageType::FILE_XFER_DATA
            | AgentMessageType::MAX_CLIPBOARD
            | AgentMessageType::AUDIO_VOLUME_SYNC
    )
}

/// Follows the client's agent stream message by message without buffering bodies: holds a
/// partial header (20 bytes at most), forwards validated headers and exactly the announced
/// body bytes, skips what it refuses. Sans-IO; see the module docs for the rules.
#[derive(Debug, Clone)]
pub struct ClientStreamFilter {
    max_message_size: usize,
    header: [u8; AgentHeader::SIZE],
    header_len: usize,
    /// Body bytes of the current message still to come, and whether they are forwarded.
    body_left: usize,
    forwarding: bool,
}

impl ClientStreamFilter {
    /// A filter at a message boundary, skipping bodies above `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            header: [0; AgentHeader::SIZE],
            header_len: 0,
            body_left: 0,
            forwarding: false,
        }
    }

    /// True at a message boundary.
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.body_left == 0
    }

    /// Back to a message boundary (partial header dropped). Only call when the agent side is
    /// at a boundary too (nothing of a message was forwarded), e.g. after the agent went away.
    pub fn reset(&mut self) {
        self.header_len = 0;
        self.body_left = 0;
        self.forwarding = false;
    }

    /// Filters the body of one `AGENT_DATA`: appends what the agent may see to `out`, and
    /// returns the problems met (each also logged by the caller). Never fails as a whole.
    pub fn push_chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Vec<AgentFilterError> {
        let mut errors = Vec::new();
        if chunk.len() > VD_AGENT_MAX_DATA_SIZE {
            // Refused whole: as if it never came, so the agent's framing is unchanged.
            errors.push(AgentFilterError::ChunkTooLarge {
                size: chunk.len(),
                max: VD_AGENT_MAX_DATA_SIZE,
            });
            return errors;
        }
        let mut input = chunk;
        while !input.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(input.len());
                if self.forwarding {
                    out.extend_from_slice(&input[..n]);
                }
                self.body_left -= n;
                input = &input[n..];
                continue;
            }
            let n = (AgentHeader::SIZE - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
            self.header_len += n;
            input = &input[n..];
            if self.header_len < AgentHeader::SIZE {
                break;
            }
            self.header_len = 0;
            let Ok(h) = AgentHeader::decode(&mut ReadCursor::new(&self.header)) else {
                // a complete 20-byte header always decodes; be defensive anyway
                break;
            };
            if h.protocol != VD_AGENT_PROTOCOL {
                // Out of step: drop the rest of this chunk, the next starts a message.
                errors.push(AgentFilterError::BadProtocol {
                    protocol: h.protocol,
                });
                break;
            }
            let size = h.size as usize;
            self.body_left = size;
            self.forwarding = false;
            if size > self.max_message_size {
                errors.push(AgentFilterError::MessageTooLarge {
                    size: h.size,
                    max: self.max_message_size,
                });
            } else if !client_type_allowed(h.msg_type) {
                errors.push(AgentFilterError::TypeNotAllowed(h.msg_type.0));
            } else {
                self.forwarding = true;
                out.extend_from_slice(&self.header);
            }
        }
        errors
    }
}

/// Runs client `AGENT_DATA` bodies and device bytes through the relay's parsers (for fuzzing
/// and the corpus replay test). Byte 0 picks the split: chunks of `data[0] as usize * 16 + 1`
/// bytes (up to 4081, so oversize chunks occur); odd byte 1 feeds everything to the device
/// side instead. Returns the number of bytes forwarded to the agent / the client.
pub fn fuzz_agent_stream(data: &[u8]) -> usize {
    let [split, side, rest @ ..] = data else {
        return 0;
    };
    let piece = usize::from(*split) * 16 + 1;
    let mut forwarded = 0;
    if side & 1 == 0 {
        let mut filter = ClientStreamFilter::new(8 * 1024);
        let mut out = Vec::new();
        for chunk in rest.chunks(piece) {
            out.clear();
            let _ = filter.push_chunk(chunk, &mut out);
            assert!(out.len() <= chunk.len() + AgentHeader::SIZE);
            forwarded += out.len();
        }
    } else {
        let mut dev = DeviceSide::new();
        for chunk in rest.chunks(piece) {
            let mut input = chunk;
            while let Some(p) = dev.next_piece(&mut input) {
                assert!(p.len() <= VD_AGENT_MAX_DATA_SIZE);
                forwarded += p.len();
            }
        }
    }
    forwarded
}

/// The device-to-client parser: VDI chunks in; client-port payload pieces out; server-port
/// messages reassembled and logged.
#[derive(Debug)]
struct DeviceSide {
    dechunker: VdiDechunker,
    server_port: AgentReassembler,
}

impl DeviceSide {
    fn new() -> Self {
        Self {
            dechunker: VdiDechunker::new(),
            server_port: AgentReassembler::new(SERVER_PORT_MAX_MESSAGE),
        }
    }

    /// The next client-port piece in `input` (consumed from its front), or `None` when
    /// `input` is used up.
    fn next_piece<'i>(&mut self, input: &mut &'i [u8]) -> Option<&'i [u8]> {
        loop {
            match self.dechunker.push(input) {
                Ok(Some((VdiPort::CLIENT, piece))) => return Some(piece),
                Ok(Some((port, piece))) => self.server_port_data(port, piece),
                Ok(None) => return None,
                Err(e) => {
                    // The device stream is out of step; the dechunker restarts at the next
                    // byte as a chunk header.
                    tracing::warn!(error = %e, "agent device stream");
                }
            }
        }
    }

    fn server_port_data(&mut self, port: VdiPort, mut piece: &[u8]) {
        if port != VdiPort::SERVER {
            tracing::debug!(
                port = port.0,
                len = piece.len(),
                "agent data for unknown port"
            );
            return;
        }
        while !piece.is_empty() {
            match self.server_port.push(&mut piece) {
                Ok(Some(m)) => {
                    tracing::debug!(msg_type = m.header.msg_type.0, "agent message to server")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "agent server-port stream");
                    return;
                }
            }
        }
    }
}

#[derive(Debug)]
struct RelayInner {
    /// VDI-chunked bytes the device has not taken yet.
    to_device: Vec<u8>,
    /// Bytes read from the device, not yet parsed; `from_pos` is the parse position.
    from_device: Vec<u8>,
    from_pos: usize,
    device_side: DeviceSide,
    /// The agent mouse state (client mouse mode through the agent).
    mouse: MouseState,
}

/// The server's agent: one host agent device shared by the server's main channels. See the
/// module docs.
pub struct AgentRelay {
    device: Arc<dyn CharDevice>,
    max_message_size: usize,
    /// The link holding the agent, its waker, and the next link id. Never locked while
    /// calling into the device (a device may wake from inside `write`).
    owner: Mutex<(Option<(u64, Waker)>, u64)>,
    inner: Mutex<RelayInner>,
}

impl std::fmt::Debug for AgentRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRelay")
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

impl AgentRelay {
    /// A relay over the host's first agent device, if any (`None` without one).
    pub fn from_devices(devices: &[Arc<dyn CharDevice>]) -> Option<Arc<Self>> {
        let device = devices
            .iter()
            .find(|d| d.kind() == CharDeviceKind::Agent)?
            .clone();
        Some(Self::new(device, DEFAULT_MAX_MESSAGE_SIZE))
    }

    /// A relay over `device`, skipping client messages above `max_message_size`.
    pub fn new(device: Arc<dyn CharDevice>, max_message_size: usize) -> Arc<Self> {
        let relay = Arc::new(Self {
            device,
            max_message_size,
            owner: Mutex::new((None, 1)),
            inner: Mutex::new(RelayInner {
                to_device: Vec::new(),
                from_device: Vec::new(),
                from_pos: 0,
                device_side: DeviceSide::new(),
                mouse: MouseState {
                    x: 0,
                    y: 0,
                    buttons: AgentMouseButtons::empty(),
                    display_id: 0,
                },
            }),
        });
        let weak = Arc::downgrade(&relay);
        // A device that does not wake is polled (see `poll_timeout`).
        let _wakes = relay.device.set_waker(Some(Waker::new(move || {
            if let Some(r) = weak.upgrade() {
                r.wake_owner();
            }
        })));
        relay
    }

    /// True while the guest side of the device is open (an agent is running).
    pub fn connected(&self) -> bool {
        self.device.guest_connected()
    }

    fn wake_owner(&self) {
        let w = lock(&self.owner).0.as_ref().map(|(_, w)| w.clone());
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Makes a new link the agent's owner (the previous owner, if any, loses it).
    fn attach(&self, waker: Waker) -> u64 {
        let old = {
            let mut o = lock(&self.owner);
            let id = o.1;
            o.1 += 1;
            (o.0.replace((id, waker)), id)
        };
        let (old, id) = old;
        if let Some((_, w)) = old {
            w.wake();
        }
        self.device.state(true);
        id
    }

    fn detach(&self, id: u64) {
        let was_owner = {
            let mut o = lock(&self.owner);
            let mine = o.0.as_ref().is_some_and(|(x, _)| *x == id);
            if mine {
                o.0 = None;
            }
            mine
        };
        if was_owner {
            // Tell the agent its client is gone (it drops clipboard grabs, transfers).
            self.send_server_message(&AgentMessage::ClientDisconnected);
            self.flush();
            self.device.state(false);
        }
    }

    fn is_owner(&self, id: u64) -> bool {
        lock(&self.owner).0.as_ref().is_some_and(|(o, _)| *o == id)
    }

    /// Queues a message from the server itself (VDI port SERVER) if there is room.
    fn send_server_message(&self, msg: &AgentMessage<'_>) -> bool {
        let mut bytes = Vec::new();
        if msg.encode(0, &mut bytes).is_err() {
            return false;
        }
        let mut st = lock(&self.inner);
        if st.to_device.len() + bytes.len() + 16 > TO_DEVICE_MAX {
            tracing::debug!("agent device busy: server message dropped");
            return false;
        }
        write_vdi_chunks(VdiPort::SERVER, &bytes, &mut st.to_device);
        true
    }

    /// Queues filtered client stream bytes for the device (port CLIENT).
    fn queue_client_stream(&self, stream: &[u8]) {
        let mut st = lock(&self.inner);
        write_vdi_chunks(VdiPort::CLIENT, stream, &mut st.to_device);
    }

    /// Hands waiting bytes to the device; returns the bytes still waiting.
    fn flush(&self) -> usize {
        let mut st = lock(&self.inner);
        while !st.to_device.is_empty() {
            let n = self.device.write(&st.to_device).min(st.to_device.len());
            if n == 0 {
                break;
            }
            st.to_device.drain(..n);
        }
        st.to_device.len()
    }

    /// The next piece of client-port data from the device (≤ 2048 bytes), reading the device
    /// when nothing is buffered.
    fn next_client_piece(&self) -> Option<Vec<u8>> {
        let mut st = lock(&self.inner);
        let st = &mut *st;
        loop {
            if st.from_pos >= st.from_device.len() {
                st.from_device.resize(2 * (VD_AGENT_MAX_DATA_SIZE + 8), 0);
                let n = self
                    .device
                    .read(&mut st.from_device)
                    .min(st.from_device.len());
                st.from_device.truncate(n);
                st.from_pos = 0;
                if n == 0 {
                    return None;
                }
            }
            let mut input = &st.from_device[st.from_pos..];
            let before = input.len();
            let piece = st.device_side.next_piece(&mut input).map(<[u8]>::to_vec);
            st.from_pos += before - input.len();
            if piece.is_some() {
                return piece;
            }
        }
    }

    /// Drops what waits in either direction (the agent went away: a new agent starts
    /// with fresh streams).
    fn reset_streams(&self) {
        let mut st = lock(&self.inner);
        st.to_device.clear();
        st.from_device.clear();
        st.from_pos = 0;
        st.device_side = DeviceSide::new();
    }

    /// Client mouse mode through the agent: an absolute position.
    pub fn mouse_position(&self, x: u32, y: u32, buttons: MouseButtonMask, display_id: u8) {
        let state = {
            let mut st = lock(&self.inner);
            st.mouse.x = x;
            st.mouse.y = y;
            st.mouse.display_id = display_id;
            st.mouse.buttons = agent_buttons(buttons);
            st.mouse
        };
        self.send_mouse(state);
    }

    /// Client mouse mode through the agent: the buttons held changed (wheel: a press of
    /// UP/DOWN sets their bit, as spice-server does).
    pub fn mouse_buttons(&self, buttons: MouseButtonMask) {
        let state = {
            let mut st = lock(&self.inner);
            st.mouse.buttons = agent_buttons(buttons);
            st.mouse
        };
        self.send_mouse(state);
    }

    fn send_mouse(&self, state: MouseState) {
        if self.connected() && self.send_server_message(&AgentMessage::MouseState(state)) {
            self.flush();
            self.wake_owner();
        }
    }
}

/// SPICE button mask → VDAgent button mask (shifted by one).
pub fn agent_buttons(b: MouseButtonMask) -> AgentMouseButtons {
    AgentMouseButtons::from_bits_retain(u32::from(b.bits()) << 1)
}

/// One main channel's side of the agent. See the module docs.
#[derive(Debug)]
pub struct AgentLink {
    relay: Option<Arc<AgentRelay>>,
    id: u64,
    /// The client has `AGENT_CONNECTED_TOKENS`.
    connected_tokens_cap: bool,
    /// Tokens the client holds (may send that many `AGENT_DATA`).
    client_tokens: u32,
    /// Tokens to hand back once the device drained.
    tokens_owed: u32,
    /// `AGENT_DATA` we may send (granted by the client).
    server_tokens: u32,
    /// The agent state the client was last told.
    told_connected: bool,
    filter: ClientStreamFilter,
    next_fallback: Option<Instant>,
    scratch: Vec<u8>,
    refused: u64,
    state_changed: bool,
}

impl AgentLink {
    /// A link for a main channel; `relay` is the server's agent (if the host has one). The
    /// link becomes the agent's owner.
    pub fn new(
        relay: Option<Arc<AgentRelay>>,
        waker: Waker,
        client_tokens: u32,
        connected_tokens_cap: bool,
    ) -> Self {
        let id = relay.as_ref().map_or(0, |r| r.attach(waker));
        let max = relay
            .as_ref()
            .map_or(DEFAULT_MAX_MESSAGE_SIZE, |r| r.max_message_size);
        Self {
            told_connected: relay.as_ref().is_some_and(|r| r.connected()),
            relay,
            id,
            connected_tokens_cap,
            client_tokens,
            tokens_owed: 0,
            server_tokens: 0,
            filter: ClientStreamFilter::new(max),
            next_fallback: None,
            scratch: Vec::new(),
            refused: 0,
            state_changed: false,
        }
    }

    /// True when this link holds a connected agent (what `MAIN_INIT.agent_connected` says).
    pub fn agent_connected(&self) -> bool {
        self.active_relay().is_some()
    }

    /// Client agent data refused or skipped so far (malformed, oversize, not allowed).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Tokens we may use to send agent data to the client.
    pub fn server_tokens(&self) -> u32 {
        self.server_tokens
    }

    fn active_relay(&self) -> Option<&Arc<AgentRelay>> {
        self.relay
            .as_ref()
            .filter(|r| r.connected() && r.is_owner(self.id))
    }

    /// `AGENT_START`: the client grants `num_tokens`.
    pub fn on_start(&mut self, num_tokens: u32, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.server_tokens = num_tokens;
        if self.active_relay().is_none() {
            out.send(&ServerMessage::AgentDisconnected {
                error_code: LinkErr::OK.0,
            })?;
            self.told_connected = false;
        }
        Ok(())
    }

    /// `AGENT_TOKEN`: the client grants more.
    pub fn on_token(&mut self, num_tokens: u32) {
        self.server_tokens = self.server_tokens.saturating_add(num_tokens);
    }

    /// `AGENT_DATA` from the client. Only a flow-control breach (data without a token) is an
    /// error; malformed data is refused and counted.
    pub fn on_data(&mut self, data: &[u8], out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        if self.client_tokens == 0 {
            return Err(ChannelError::Protocol {
                channel: spice_proto::ChannelType::MAIN,
                what: "agent data without a token".into(),
            });
        }
        self.client_tokens -= 1;
        let Some(relay) = self.active_relay().cloned() else {
            tracing::debug!(len = data.len(), "agent data dropped: no agent");
            return self.give_back(1, out);
        };
        let mut filtered = std::mem::take(&mut self.scratch);
        filtered.clear();
        for e in self.filter.push_chunk(data, &mut filtered) {
            self.refused += 1;
            tracing::warn!(error = %e, "client agent data refused");
        }
        relay.queue_client_stream(&filtered);
        self.scratch = filtered;
        if relay.flush() <= TO_DEVICE_LOW_WATER {
            self.give_back(1, out)
        } else {
            self.tokens_owed += 1;
            Ok(())
        }
    }

    fn give_back(&mut self, n: u32, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.client_tokens += n;
        out.send(&ServerMessage::AgentToken { num_tokens: n })
    }

    /// Moves data both ways and reports agent state changes; call from the channel's poll.
    pub fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let Some(relay) = self.relay.clone() else {
            return Ok(());
        };
        self.next_fallback = Some(now + FALLBACK_POLL);
        let connected = self.active_relay().is_some();
        if connected != self.told_connected {
            self.told_connected = connected;
            self.state_changed = true;
            self.filter.reset();
            self.tokens_owed = 0;
            if connected {
                self.client_tokens = crate::main_channel::AGENT_TOKENS;
                if self.connected_tokens_cap {
                    out.send(&ServerMessage::AgentConnectedTokens {
                        num_tokens: self.client_tokens,
                    })?;
                } else {
                    out.send(&ServerMessage::AgentConnected)?;
                }
            } else {
                if !relay.connected() && relay.is_owner(self.id) {
                    relay.reset_streams();
                }
                out.send(&ServerMessage::AgentDisconnected {
                    error_code: LinkErr::OK.0,
                })?;
            }
        }
        if !connected {
            return Ok(());
        }
        if self.tokens_owed > 0 && relay.flush() <= TO_DEVICE_LOW_WATER {
            let n = std::mem::take(&mut self.tokens_owed);
            self.give_back(n, out)?;
        }
        while self.server_tokens > 0 && out.can_send() {
            let Some(piece) = relay.next_client_piece() else {
                break;
            };
            self.server_tokens -= 1;
            out.send(&ServerMessage::AgentData(&piece))?;
        }
        Ok(())
    }

    /// True (once) after [`AgentLink::poll`] reported the agent coming or going: the mouse
    /// modes may have changed.
    pub fn take_state_changed(&mut self) -> bool {
        std::mem::take(&mut self.state_changed)
    }

    /// When the link wants a poll without a wake (devices that cannot wake).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.relay.as_ref().and(self.next_fallback)
    }

    /// The main channel is gone: the agent is told, and released.
    pub fn detach(&mut self) {
        if let Some(r) = self.relay.take() {
            r.detach(self.id);
        }
    }
}

impl Drop for AgentLink {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(protocol: u32, msg_type: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [protocol, msg_type, 0, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    fn run(filter: &mut ClientStreamFilter, chunks: &[&[u8]]) -> (Vec<u8>, Vec<AgentFilterError>) {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for c in chunks {
            errs.extend(filter.push_chunk(c, &mut out));
        }
        (out, errs)
    }

    #[test]
    fn valid_stream_passes_byte_for_byte_in_any_split() {
        let mut stream = msg(1, 4, b"clipboard text");
        stream.extend(msg(1, 6, &[1, 0, 0, 0, 0xff, 0, 0, 0]));
        stream.extend(msg(1, 12, &vec![7; 5000]));
        for split in [1, 3, 19, 20, 21, 2048] {
            let mut f = ClientStreamFilter::new(1 << 20);
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            let (out, errs) = run(&mut f, &chunks);
            assert!(errs.is_empty(), "{errs:?}");
            assert_eq!(out, stream, "split {split}");
            assert!(f.is_idle());
        }
    }

    #[test]
    fn oversize_chunk_refused_whole() {
        let mut f = ClientStreamFilter::new(1 << 20);
        let big = msg(1, 4, &[0; 3000]);
        let (out, errs) = run(&mut f, &[&big]);
        assert!(out.is_empty());
        assert_eq!(
            errs,
            vec![AgentFilterError::ChunkTooLarge {
                size: 3020,
                max: 2048
            }]
        );
        assert!(f.is_idle());
    }

    #[test]
    fn bad_protocol_drops_rest_of_chunk_then_resyncs() {
        let mut f = ClientStreamFilter::new(1 << 20);
        let mut first = msg(2, 4, b"xx");
        first.extend(msg(1, 4, b"lost"));
        let good = msg(1, 4, b"kept");
        let (out, errs) = run(&mut f, &[&first, &good]);
        assert_eq!(errs, vec![AgentFilterError::BadProtocol { protocol: 2 }]);
        assert_eq!(out, good);
    }

    #[test]
    fn oversize_message_and_forbidden_type_skipped_exactly() {
        let mut f = ClientStreamFilter::new(100);
        let big = msg(1, 4, &[9; 300]);
        let mouse = msg(1, 1, &[0; 13]);
        let good = msg(1, 9, &[]);
        let mut stream = big.clone();
        stream.extend(&mouse);
        stream.extend(&good);
        let chunks: Vec<&[u8]> = stream.chunks(64).collect();
        let (out, errs) = run(&mut f, &chunks);
        assert_eq!(
            errs,
            vec![
                AgentFilterError::MessageTooLarge {
                    size: 300,
                    max: 100
                },
                AgentFilterError::TypeNotAllowed(1)
            ]
        );
        assert_eq!(out, good);
    }

    #[test]
    fn button_mapping() {
        assert_eq!(
            agent_buttons(MouseButtonMask::LEFT | MouseButtonMask::RIGHT),
            AgentMouseButtons::LEFT | AgentMouseButtons::RIGHT
        );
        assert_eq!(agent_buttons(MouseButtonMask::UP), AgentMouseButtons::UP);
    }

    #[test]
    fn fuzz_entry_small_inputs() {
        assert_eq!(fuzz_agent_stream(&[]), 0);
        let mut d = vec![0u8, 0];
        d.extend(msg(1, 4, b"abc"));
        assert_eq!(fuzz_agent_stream(&d), 23);
        let mut d = vec![200u8, 1];
        d.extend([1, 0, 0, 0, 3, 0, 0, 0, b'x', b'y', b'z']);
        assert_eq!(fuzz_agent_stream(&d), 3);
    }
}
