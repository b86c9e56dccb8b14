//! The device passthrough channels: usbredir (9), port (10), webdav (11) and smartcard (8).
//!
//! Each host [`CharDevice`] (other than the agent) is served on one channel: a
//! [`CharDeviceKind::UsbRedir`] on a usbredir channel, a [`CharDeviceKind::Port`] on a port
//! channel, [`CharDeviceKind::Webdav`] on the webdav channel (a port named
//! [`WEBDAV_PORT_NAME`]) and a [`CharDeviceKind::Smartcard`] on a smartcard channel. Ids are
//! given per channel type in the order of [`Host::char_devices`]. [`factories_for`] makes
//! the factories; the server registers them, so the channels appear in `CHANNELS_LIST` when
//! the host provides the devices. One client at a time uses a device (a second link gets
//! `CHANNEL_NOT_AVAILABLE` while the first is connected).
//!
//! # Data path
//!
//! ```text
//!  client DATA / COMPRESSED_DATA ──► [≤ MAX_PENDING_TO_DEVICE + 1 message] ──► CharDevice::write
//!  CharDevice::read (≤ DEVICE_READ_CHUNK per message) ──► DATA / COMPRESSED_DATA ──► client
//! ```
//!
//! Flow control, both ways, never buffers without bound:
//! - client → device: bytes the device did not take wait in the handler; while more than
//!   [`MAX_PENDING_TO_DEVICE`] wait, the handler is not ready for input
//!   ([`ChannelHandler::ready_for_input`]), the core keeps later messages undecoded and the
//!   driver stops reading the socket, so TCP throttles the client. At most
//!   `MAX_PENDING_TO_DEVICE` + one message (≤ [`MAX_DECOMPRESSED`] after LZ4) is held.
//! - device → client: the device is read only while [`Outbox::can_send`] holds (the client's
//!   ACK window, 2 × window messages in flight, and the core's output bound), each read at
//!   most [`DEVICE_READ_CHUNK`] bytes, so a slow client stops the reading of the device.
//!
//! `COMPRESSED_DATA` with LZ4 is sent when the client has
//! `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4` and the chunk pays off (more than
//! [`spice_codecs::vmc_lz4::COMPRESS_THRESHOLD`] bytes and smaller compressed, as
//! spice-server decides); compressed client data is accepted with the cap advertised.
//!
//! Ports: `PORT_INIT` (name, guest open state) goes first; a change of
//! [`CharDevice::port_opened`] becomes a `PORT_EVENT` to the client; a client `PORT_EVENT` goes
//! to [`CharDevice::port_event`]. [`CharDevice::state`] tells the host when a client
//! connects to and leaves the channel.
//!
//! Smartcard: the device speaks VSC messages with the 12-byte header in network byte order
//! (as libcacard's `vscclient` and QEMU's `ccid-card-passthru` do); the SPICE wire carries
//! the header little-endian. The handler frames the device stream into VSC messages
//! (payload at most [`MAX_VSC_PAYLOAD`]) and converts the header both ways.
//!
//! A malformed message (bad LZ4 block, wrong size, unknown compression, port message on
//! usbredir, truncated smartcard header) is a [`ChannelError`]: the driver closes that
//! channel only.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::header::HeaderKind;
use spice_proto::link::LinkErr;
use spice_proto::messages::ClientMessage;
use spice_proto::smartcard::{self, SmartcardData, VscMessageType};
use spice_proto::spicevmc::{
    self, CompressedData, DataCompressionType, PortEvent, PortInit, ServerMessage,
};

use crate::channel::{
    ChannelCore, ChannelError, ChannelFactory, ChannelHandler, ChannelInfo, CoreConfig,
    OpenContext, Outbox, Waker,
};
use crate::host::{CharDevice, CharDeviceKind, Host};
use crate::session::lock;

/// The name of the WebDAV port (spice-gtk's folder sharing).
pub const WEBDAV_PORT_NAME: &str = "org.spice-space.webdav.0";

/// Most bytes read from the device into one message (spice-server: 64 KiB).
pub const DEVICE_READ_CHUNK: usize = 64 * 1024;

/// Client bytes waiting for a slow device above which client messages are held.
pub const MAX_PENDING_TO_DEVICE: usize = 256 * 1024;

/// Largest `uncompressed_size` accepted in a client `COMPRESSED_DATA`.
pub const MAX_DECOMPRESSED: usize = 1 << 20;

/// Largest VSC payload accepted from the smartcard device.
pub const MAX_VSC_PAYLOAD: usize = 64 * 1024;

/// How often a device that does not use the waker is polled.
pub const DEVICE_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The channel type a device kind is served on (`None` for the agent, which the main
/// channel serves).
pub fn channel_type_of(kind: &CharDeviceKind) -> Option<ChannelType> {
    match kind {
        CharDeviceKind::UsbRedir => Some(ChannelType::USBREDIR),
        CharDeviceKind::Smartcard => Some(ChannelType::SMARTCARD),
        // spice-server serves a port of this name on the webdav channel too.
        CharDeviceKind::Port { name } if name == WEBDAV_PORT_NAME => Some(ChannelType::WEBDAV),
        CharDeviceKind::Port { .. } => Some(ChannelType::PORT),
        CharDeviceKind::Webdav => Some(ChannelType::WEBDAV),
        _ => None,
    }
}

/// One factory per passthrough device of `host`, ids counted per channel type in order.
pub fn factories_for(host: &Host) -> Vec<Arc<dyn ChannelFactory>> {
    let mut next_id: Vec<(ChannelType, u8)> = Vec::new();
    let mut out: Vec<Arc<dyn ChannelFactory>> = Vec::new();
    for dev in &host.char_devices {
        let Some(ty) = channel_type_of(&dev.kind()) else {
            continue;
        };
        let id = match next_id.iter_mut().find(|(t, _)| *t == ty) {
            Some((_, n)) => {
                let Some(id) = n.checked_add(1) else {
                    tracing::warn!(channel = %ty, "more than 256 devices of one kind; ignored");
                    continue;
                };
                *n = id;
                id
            }
            None => {
                next_id.push((ty, 0));
                0
            }
        };
        if let Some(f) = VmcChannelFactory::new(dev.clone(), id) {
            out.push(Arc::new(f));
        }
    }
    out
}

/// Serves one passthrough [`CharDevice`] on its channel.
pub struct VmcChannelFactory {
    channel_type: ChannelType,
    channel_id: u8,
    device: Arc<dyn CharDevice>,
    port_name: Option<Vec<u8>>,
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for VmcChannelFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmcChannelFactory")
            .field("channel_type", &self.channel_type)
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

impl VmcChannelFactory {
    /// A factory for `device` as channel `channel_id` of its type; `None` for an agent
    /// device.
    pub fn new(device: Arc<dyn CharDevice>, channel_id: u8) -> Option<Self> {
        let kind = device.kind();
        let channel_type = channel_type_of(&kind)?;
        let port_name = match kind {
            CharDeviceKind::Port { name } => Some(name.into_bytes()),
            CharDeviceKind::Webdav => Some(WEBDAV_PORT_NAME.as_bytes().to_vec()),
            _ => None,
        };
        Some(Self {
            channel_type,
            channel_id,
            device,
            port_name,
            busy: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The handler for one client, without the link machinery (tests, fuzzing, embedders
    /// with their own driver). `None` while another client uses the device.
    pub fn handler(&self, info: &ChannelInfo, waker: Waker) -> Option<VmcHandler> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return None;
        }
        let lz4 = self.channel_type != ChannelType::SMARTCARD
            && info
                .peer_channel_caps
                .has(caps::spicevmc::DATA_COMPRESS_LZ4);
        Some(VmcHandler {
            channel_type: self.channel_type,
            device: self.device.clone(),
            waker,
            device_wakes: false,
            lz4,
            port_name: self.port_name.clone(),
            sent_opened: None,
            to_device: VecDeque::new(),
            sc_in: Vec::new(),
            read_buf: vec![0; DEVICE_READ_CHUNK],
            last_poll: None,
            connected: false,
            stats: VmcStats::default(),
            _busy: BusyGuard(self.busy.clone()),
        })
    }
}

impl ChannelFactory for VmcChannelFactory {
    fn channel_type(&self) -> ChannelType {
        self.channel_type
    }
    fn channel_id(&self) -> u8 {
        self.channel_id
    }
    fn caps(&self) -> Caps {
        if self.channel_type == ChannelType::SMARTCARD {
            Caps::new()
        } else {
            Caps::from_caps(&[caps::spicevmc::DATA_COMPRESS_LZ4])
        }
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        match self.handler(ctx.info, ctx.waker) {
            Some(h) => Ok(Box::new(h)),
            None => {
                tracing::info!(channel = %self.channel_type, id = self.channel_id, "device already in use by a client");
                Err(LinkErr::CHANNEL_NOT_AVAILABLE)
            }
        }
    }
}

/// Clears the factory's "in use" flag when the handler goes.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Byte counters of one passthrough connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmcStats {
    /// Payload bytes received from the client (after decompression).
    pub from_client: u64,
    /// Payload bytes sent to the client (before compression).
    pub to_client: u64,
    /// `COMPRESSED_DATA` messages sent.
    pub compressed_sent: u64,
    /// `COMPRESSED_DATA` messages received.
    pub compressed_received: u64,
}

/// The handler of one passthrough channel connection. See the module docs.
pub struct VmcHandler {
    channel_type: ChannelType,
    device: Arc<dyn CharDevice>,
    waker: Waker,
    device_wakes: bool,
    lz4: bool,
    port_name: Option<Vec<u8>>,
    sent_opened: Option<bool>,
    to_device: VecDeque<u8>,
    sc_in: Vec<u8>,
    read_buf: Vec<u8>,
    last_poll: Option<Instant>,
    connected: bool,
    stats: VmcStats,
    _busy: BusyGuard,
}

impl std::fmt::Debug for VmcHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmcHandler")
            .field("channel_type", &self.channel_type)
            .field("lz4", &self.lz4)
            .field("to_device", &self.to_device.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl VmcHandler {
    /// The byte counters.
    pub fn stats(&self) -> VmcStats {
        self.stats
    }

    /// True when LZ4 is used toward the client.
    pub fn lz4(&self) -> bool {
        self.lz4
    }

    /// Client bytes the device has not taken yet.
    pub fn pending_to_device(&self) -> usize {
        self.to_device.len()
    }

    fn protocol(&self, what: impl Into<String>) -> ChannelError {
        ChannelError::Protocol {
            channel: self.channel_type,
            what: what.into(),
        }
    }

    /// Writes what the device takes of the pending bytes.
    fn flush_to_device(&mut self) {
        while !self.to_device.is_empty() {
            let (a, _) = self.to_device.as_slices();
            let n = self.device.write(a).min(a.len());
            if n == 0 {
                break;
            }
            self.to_device.drain(..n);
        }
    }

    fn queue_for_device(&mut self, data: &[u8]) {
        self.stats.from_client += data.len() as u64;
        self.to_device.extend(data);
        self.flush_to_device();
    }

    fn send_data(&mut self, data: &[u8], out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.stats.to_client += data.len() as u64;
        if self.lz4 {
            if let Some(block) = spice_codecs::vmc_lz4::compress(data) {
                self.stats.compressed_sent += 1;
                let msg = ServerMessage::CompressedData(CompressedData {
                    compression: DataCompressionType::LZ4,
                    uncompressed_size: u32::try_from(data.len()).unwrap_or(u32::MAX),
                    data: &block,
                });
                return out.send(&msg);
            }
        }
        out.send(&ServerMessage::Data(data))
    }

    fn send_port_state(&mut self, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        if self.port_name.is_none() {
            return Ok(());
        }
        let opened = self.device.port_opened();
        if self.sent_opened == Some(opened) {
            return Ok(());
        }
        let msg = match self.sent_opened {
            None => {
                let mut name = self.port_name.clone().unwrap_or_default();
                name.push(0);
                let msg = ServerMessage::PortInit(PortInit {
                    name: &name,
                    opened: u8::from(opened),
                });
                out.send(&msg)?;
                self.sent_opened = Some(opened);
                return Ok(());
            }
            Some(_) => ServerMessage::PortEvent(if opened {
                PortEvent::OPENED
            } else {
                PortEvent::CLOSED
            }),
        };
        out.send(&msg)?;
        self.sent_opened = Some(opened);
        Ok(())
    }

    /// Reads device data and sends it while the client's window allows.
    fn pump_device(&mut self, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        if self.channel_type == ChannelType::SMARTCARD {
            return self.pump_smartcard(out);
        }
        while out.can_send() {
            let mut buf = std::mem::take(&mut self.read_buf);
            let n = self.device.read(&mut buf).min(buf.len());
            let r = if n > 0 {
                self.send_data(&buf[..n], out)
            } else {
                Ok(())
            };
            self.read_buf = buf;
            r?;
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    fn pump_smartcard(&mut self, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        loop {
            // Send every complete VSC message held.
            while out.can_send() {
                let Some((ty, reader, len)) = vsc_header(&self.sc_in) else {
                    break;
                };
                if len > MAX_VSC_PAYLOAD {
                    return Err(ChannelError::Host {
                        channel: self.channel_type,
                        what: format!("VSC message of {len} bytes (limit {MAX_VSC_PAYLOAD})"),
                    });
                }
                let total = SmartcardData::HEADER_SIZE + len;
                if self.sc_in.len() < total {
                    break;
                }
                let msg = smartcard::ServerMessage::Data(SmartcardData {
                    msg_type: VscMessageType(ty),
                    reader_id: reader,
                    data: &self.sc_in[SmartcardData::HEADER_SIZE..total],
                });
                out.send(&msg)?;
                self.stats.to_client += len as u64;
                self.sc_in.drain(..total);
            }
            if !out.can_send() {
                return Ok(());
            }
            // Read at most what completes the next message (bounded by its size).
            let want = match vsc_header(&self.sc_in) {
                Some((_, _, len)) => SmartcardData::HEADER_SIZE + len - self.sc_in.len(),
                None => SmartcardData::HEADER_SIZE - self.sc_in.len(),
            };
            let want = want.min(self.read_buf.len());
            let n = self.device.read(&mut self.read_buf[..want]).min(want);
            if n == 0 {
                return Ok(());
            }
            self.sc_in.extend_from_slice(&self.read_buf[..n]);
        }
    }
}

/// `(type, reader_id, length)` of a VSC header in network byte order, once 12 bytes are
/// there.
fn vsc_header(buf: &[u8]) -> Option<(u32, u32, usize)> {
    let h: &[u8; 12] = buf.get(..12)?.try_into().ok()?;
    let be = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Some((be(0), be(4), be(8) as usize))
}

impl ChannelHandler for VmcHandler {
    fn on_connect(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.connected = true;
        self.device_wakes = self.device.set_waker(Some(self.waker.clone()));
        self.device.state(true);
        self.last_poll = Some(now);
        self.send_port_state(out)
    }

    fn handle_message(
        &mut self,
        msg: &ClientMessage<'_>,
        _now: Instant,
        _out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        match msg {
            ClientMessage::Spicevmc(m) => match m {
                spicevmc::ClientMessage::Data(d) => self.queue_for_device(d),
                spicevmc::ClientMessage::CompressedData(c) => {
                    if c.compression != DataCompressionType::LZ4 {
                        return Err(self.protocol(format!(
                            "compressed data of unknown type {}",
                            c.compression.0
                        )));
                    }
                    let data = spice_codecs::vmc_lz4::decompress(
                        c.data,
                        c.uncompressed_size as usize,
                        MAX_DECOMPRESSED,
                    )
                    .map_err(|e| self.protocol(format!("compressed data: {e}")))?;
                    self.stats.compressed_received += 1;
                    self.queue_for_device(&data);
                }
                spicevmc::ClientMessage::PortEvent(e) => {
                    if self.port_name.is_none() {
                        return Err(self.protocol("port event on a channel without a port"));
                    }
                    tracing::debug!(channel = %self.channel_type, event = e.0, "client port event");
                    self.device.port_event(e.0);
                }
                other => {
                    tracing::debug!(channel = %self.channel_type, msg = ?other, "ignored message");
                }
            },
            ClientMessage::Smartcard(smartcard::ClientMessage::Data(d)) => {
                let len = u32::try_from(d.data.len())
                    .map_err(|_| self.protocol("smartcard message too large"))?;
                let mut v = Vec::with_capacity(SmartcardData::HEADER_SIZE + d.data.len());
                v.extend_from_slice(&d.msg_type.0.to_be_bytes());
                v.extend_from_slice(&d.reader_id.to_be_bytes());
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(d.data);
                self.stats.from_client += d.data.len() as u64;
                self.to_device.extend(&v);
                self.flush_to_device();
            }
            other => {
                return Err(self.protocol(format!("unexpected message {}", other.name())));
            }
        }
        Ok(())
    }

    fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.last_poll = Some(now);
        self.send_port_state(out)?;
        self.pump_device(out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.device_wakes && self.to_device.is_empty() {
            None
        } else {
            self.last_poll.map(|t| t + DEVICE_POLL_INTERVAL)
        }
    }

    fn ready_for_input(&mut self, _now: Instant) -> bool {
        self.flush_to_device();
        self.to_device.len() <= MAX_PENDING_TO_DEVICE
    }

    fn on_disconnect(&mut self) {
        if self.connected {
            self.connected = false;
            self.device.set_waker(None);
            self.device.state(false);
        }
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl Drop for VmcHandler {
    fn drop(&mut self) {
        // Tell the device even if the driver never called on_disconnect; the busy flag
        // clears when `_busy` drops right after.
        self.on_disconnect();
    }
}

/// An in-memory [`CharDevice`] that echoes what it is written (a loopback, as a usbredir
/// or port test peer), with a bounded buffer: writes beyond `capacity` are refused (short
/// writes), so it also exercises the server's flow control. Records the client's port
/// events and connect states; its port open state is settable.
pub struct EchoDevice {
    kind: CharDeviceKind,
    state: Mutex<EchoState>,
}

struct EchoState {
    buf: VecDeque<u8>,
    capacity: usize,
    opened: bool,
    events: Vec<u8>,
    states: Vec<bool>,
    waker: Option<Waker>,
    written: u64,
}

impl std::fmt::Debug for EchoDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoDevice")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl EchoDevice {
    /// An echo device of `kind` holding at most `capacity` unread bytes (port opened).
    pub fn new(kind: CharDeviceKind, capacity: usize) -> Self {
        Self {
            kind,
            state: Mutex::new(EchoState {
                buf: VecDeque::new(),
                capacity,
                opened: true,
                events: Vec::new(),
                states: Vec::new(),
                waker: None,
                written: 0,
            }),
        }
    }

    /// Opens or closes the guest side of the port (the client gets a `PORT_EVENT`).
    pub fn set_port_opened(&self, opened: bool) {
        let w = {
            let mut st = lock(&self.state);
            st.opened = opened;
            st.waker.clone()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Queues bytes as if the guest wrote them (sent to the client), beyond the capacity.
    pub fn inject(&self, data: &[u8]) {
        let w = {
            let mut st = lock(&self.state);
            st.buf.extend(data);
            st.waker.clone()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// The port events the client sent, in order.
    pub fn port_events(&self) -> Vec<u8> {
        lock(&self.state).events.clone()
    }

    /// The connect (true) / disconnect (false) notifications, in order.
    pub fn states(&self) -> Vec<bool> {
        lock(&self.state).states.clone()
    }

    /// Bytes written by the server so far.
    pub fn written(&self) -> u64 {
        lock(&self.state).written
    }
}

impl CharDevice for EchoDevice {
    fn kind(&self) -> CharDeviceKind {
        self.kind.clone()
    }
    fn write(&self, data: &[u8]) -> usize {
        let (n, w) = {
            let mut st = lock(&self.state);
            let n = data.len().min(st.capacity.saturating_sub(st.buf.len()));
            st.buf.extend(&data[..n]);
            st.written += n as u64;
            (n, if n > 0 { st.waker.clone() } else { None })
        };
        if let Some(w) = w {
            w.wake();
        }
        n
    }
    fn read(&self, buf: &mut [u8]) -> usize {
        let (n, w) = {
            let mut st = lock(&self.state);
            let was_full = st.buf.len() >= st.capacity;
            let n = buf.len().min(st.buf.len());
            for (d, s) in buf.iter_mut().zip(st.buf.drain(..n)) {
                *d = s;
            }
            (
                n,
                if was_full && n > 0 {
                    st.waker.clone()
                } else {
                    None
                },
            )
        };
        if let Some(w) = w {
            w.wake();
        }
        n
    }
    fn state(&self, connected: bool) {
        lock(&self.state).states.push(connected);
    }
    fn set_waker(&self, waker: Option<Waker>) -> bool {
        lock(&self.state).waker = waker;
        true
    }
    fn port_opened(&self) -> bool {
        lock(&self.state).opened
    }
    fn port_event(&self, event: u8) {
        lock(&self.state).events.push(event);
    }
}

/// Fuzz body (`spicevmc_server_channel`): arbitrary client bytes into a started
/// [`ChannelCore`] with a [`VmcHandler`] over an [`EchoDevice`]. The first byte picks the
/// channel (low two bits: usbredir, port, webdav, smartcard), the client's LZ4 cap (bit 2)
/// and the header kind (bit 3: mini); the rest is fed in chunks of 61 bytes, the output
/// taken and the ACK window never reopened. Never panics; returns the number of client
/// messages the core framed before the channel failed or closed.
pub fn fuzz_channel(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let kind = match sel & 3 {
        0 => CharDeviceKind::UsbRedir,
        1 => CharDeviceKind::Port {
            name: "org.qemu.monitor.qmp.0".into(),
        },
        2 => CharDeviceKind::Webdav,
        _ => CharDeviceKind::Smartcard,
    };
    let device = Arc::new(EchoDevice::new(kind, 4096));
    let Some(factory) = VmcChannelFactory::new(device.clone(), 0) else {
        return 0;
    };
    let peer_channel_caps = if sel & 4 != 0 {
        Caps::from_caps(&[caps::spicevmc::DATA_COMPRESS_LZ4])
    } else {
        Caps::new()
    };
    let info = ChannelInfo {
        channel_type: factory.channel_type,
        channel_id: 0,
        session_id: 1,
        header: if sel & 8 != 0 {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        },
        peer_common_caps: Caps::new(),
        peer_channel_caps,
        secure: false,
        websocket: false,
    };
    let Some(mut handler) = factory.handler(&info, Waker::noop()) else {
        return 0;
    };
    let now = Instant::now();
    let config = CoreConfig {
        ping_interval: None,
        max_message_size: 1 << 16,
        ..CoreConfig::default()
    };
    let mut core = ChannelCore::new(info, &config, now);
    if core.start(&mut handler, now).is_err() {
        return 0;
    }
    for chunk in rest.chunks(61) {
        if core.handle_input(chunk, &mut handler, now).is_err() {
            break;
        }
        let _ = core.take_output();
        if core.close_reason().is_some() {
            break;
        }
    }
    let _ = core.poll(&mut handler, now);
    let _ = core.take_output();
    let _ = device.written();
    usize::try_from(core.messages_received()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::ChannelMessage;
    use spice_proto::framer::{Frame, Framer};
    use spice_proto::header::write_message;
    use std::sync::atomic::AtomicUsize;

    /// Takes at most `budget` bytes in total, then nothing.
    struct Slow {
        budget: AtomicUsize,
        got: Mutex<Vec<u8>>,
    }

    impl CharDevice for Slow {
        fn kind(&self) -> CharDeviceKind {
            CharDeviceKind::UsbRedir
        }
        fn write(&self, data: &[u8]) -> usize {
            let n = data.len().min(self.budget.load(Ordering::SeqCst));
            self.budget.fetch_sub(n, Ordering::SeqCst);
            lock(&self.got).extend_from_slice(&data[..n]);
            n
        }
        fn read(&self, _: &mut [u8]) -> usize {
            0
        }
        fn state(&self, _: bool) {}
    }

    fn info(ty: ChannelType, lz4: bool) -> ChannelInfo {
        ChannelInfo {
            channel_type: ty,
            channel_id: 0,
            session_id: 1,
            header: HeaderKind::Mini,
            peer_common_caps: Caps::new(),
            peer_channel_caps: if lz4 {
                Caps::from_caps(&[caps::spicevmc::DATA_COMPRESS_LZ4])
            } else {
                Caps::new()
            },
            secure: false,
            websocket: false,
        }
    }

    fn setup(
        device: Arc<dyn CharDevice>,
        lz4: bool,
        window: u32,
    ) -> (ChannelCore, VmcHandler, Instant) {
        let ty = channel_type_of(&device.kind()).unwrap();
        let f = VmcChannelFactory::new(device, 0).unwrap();
        let info = info(ty, lz4);
        let h = f.handler(&info, Waker::noop()).unwrap();
        let now = Instant::now();
        let cfg = CoreConfig {
            ack_window: window,
            ping_interval: None,
            ..CoreConfig::default()
        };
        (ChannelCore::new(info, &cfg, now), h, now)
    }

    /// (type, body) of every message in `bytes` (mini headers).
    fn frames(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut f = Framer::new(HeaderKind::Mini, u32::MAX);
        let mut pos = 0;
        let mut v = Vec::new();
        while let Frame::Complete(i) = f.next_frame(&bytes[pos..]).unwrap() {
            v.push((
                i.msg_type,
                bytes[pos + i.body.start..pos + i.body.end].to_vec(),
            ));
            pos += i.total_len;
        }
        assert_eq!(pos, bytes.len());
        v
    }

    fn client_data(n: usize, count: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..count {
            write_message(&mut v, HeaderKind::Mini, 0, 101, |w| {
                w.write_slice(&vec![i as u8; n]);
                Ok(())
            })
            .unwrap();
        }
        v
    }

    #[test]
    fn slow_device_holds_client_input_within_the_bound() {
        let dev = Arc::new(Slow {
            budget: AtomicUsize::new(1000),
            got: Mutex::new(Vec::new()),
        });
        let (mut core, mut h, now) = setup(dev.clone(), false, 20);
        core.start(&mut h, now).unwrap();
        core.handle_input(&client_data(64 * 1024, 12), &mut h, now)
            .unwrap();
        assert!(core.input_held());
        assert!(h.pending_to_device() > MAX_PENDING_TO_DEVICE);
        assert!(h.pending_to_device() <= MAX_PENDING_TO_DEVICE + 64 * 1024);
        // More input while held is kept undecoded, not handed over.
        let before = h.pending_to_device();
        core.handle_input(&client_data(10, 3), &mut h, now).unwrap();
        assert_eq!(h.pending_to_device(), before);
        assert_eq!(core.messages_received(), 5);
        // The device catches up: everything flows, in order.
        dev.budget.store(usize::MAX / 2, Ordering::SeqCst);
        core.poll(&mut h, now).unwrap();
        assert!(!core.input_held());
        assert_eq!(h.pending_to_device(), 0);
        let got = lock(&dev.got);
        assert_eq!(got.len(), 12 * 64 * 1024 + 30);
        for i in 0..12 {
            assert!(
                got[i * 65536..(i + 1) * 65536]
                    .iter()
                    .all(|&b| b == i as u8)
            );
        }
        assert!(
            got[12 * 65536..]
                .iter()
                .enumerate()
                .all(|(j, &b)| b == (j / 10) as u8)
        );
    }

    #[test]
    fn slow_client_stops_device_reads() {
        let dev = Arc::new(EchoDevice::new(CharDeviceKind::UsbRedir, 0));
        dev.inject(&vec![5u8; 5 << 20]);
        let (mut core, mut h, now) = setup(dev.clone(), false, 4);
        core.start(&mut h, now).unwrap();
        core.poll(&mut h, now).unwrap();
        let out = frames(&core.take_output());
        // SET_ACK + 2 * window data messages of one read each.
        assert_eq!(out.len(), 1 + 8);
        assert!(
            out[1..]
                .iter()
                .all(|(t, b)| *t == 101 && b.len() == DEVICE_READ_CHUNK)
        );
        let mut rest = vec![0u8; 6 << 20];
        assert_eq!(dev.read(&mut rest), (5 << 20) - 8 * DEVICE_READ_CHUNK);
    }

    #[test]
    fn lz4_only_for_chunks_that_pay_off() {
        let dev = Arc::new(EchoDevice::new(CharDeviceKind::UsbRedir, 0));
        let (mut core, mut h, now) = setup(dev.clone(), true, 0);
        core.start(&mut h, now).unwrap();
        let mut x = 1u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let inputs = [vec![0u8; 1000], vec![0u8; 1001], noise, vec![3u8; 60_000]];
        let mut kinds = Vec::new();
        for data in &inputs {
            dev.inject(data);
            core.poll(&mut h, now).unwrap();
            let out = frames(&core.take_output());
            assert_eq!(out.len(), 1);
            let (t, body) = &out[0];
            let msg = ServerMessage::decode_body(ChannelType::USBREDIR, *t, body).unwrap();
            let back = match msg {
                ServerMessage::Data(d) => d.to_vec(),
                ServerMessage::CompressedData(c) => {
                    assert_eq!(c.compression, DataCompressionType::LZ4);
                    spice_codecs::vmc_lz4::decompress(c.data, c.uncompressed_size as usize, 1 << 20)
                        .unwrap()
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(&back, data);
            kinds.push(*t);
        }
        assert_eq!(kinds, [101, 102, 101, 102]);
        assert_eq!(h.stats().compressed_sent, 2);
        // Without the client's cap: never compressed.
        let (mut core, mut h, now) = setup(dev.clone(), false, 0);
        core.start(&mut h, now).unwrap();
        dev.inject(&[3u8; 60_000]);
        core.poll(&mut h, now).unwrap();
        assert_eq!(frames(&core.take_output())[0].0, 101);
    }

    #[test]
    fn port_init_golden_and_events() {
        let dev = Arc::new(EchoDevice::new(
            CharDeviceKind::Port { name: "ab".into() },
            16,
        ));
        let (mut core, mut h, now) = setup(dev.clone(), false, 0);
        core.start(&mut h, now).unwrap();
        let out = frames(&core.take_output());
        // u32 name_size 3, u32 name ptr 9, u8 opened 1, "ab\0".
        assert_eq!(out, [(201, vec![3, 0, 0, 0, 9, 0, 0, 0, 1, b'a', b'b', 0])]);
        dev.set_port_opened(false);
        core.poll(&mut h, now).unwrap();
        dev.set_port_opened(true);
        core.poll(&mut h, now).unwrap();
        core.poll(&mut h, now).unwrap();
        assert_eq!(
            frames(&core.take_output()),
            [(202, vec![1]), (202, vec![0])]
        );
        let mut input = Vec::new();
        write_message(&mut input, HeaderKind::Mini, 0, 201, |w| {
            w.write_u8(2);
            Ok(())
        })
        .unwrap();
        core.handle_input(&input, &mut h, now).unwrap();
        assert_eq!(dev.port_events(), [2]);
        assert_eq!(dev.states(), [true]);
        drop(h);
        assert_eq!(dev.states(), [true, false]);
        // The device is free again.
        let f = VmcChannelFactory::new(dev.clone(), 0).unwrap();
        assert!(
            f.handler(&info(ChannelType::PORT, false), Waker::noop())
                .is_some()
        );
    }

    #[test]
    fn smartcard_frames_device_stream_and_converts_headers() {
        let dev = Arc::new(EchoDevice::new(CharDeviceKind::Smartcard, 0));
        let (mut core, mut h, now) = setup(dev.clone(), false, 0);
        core.start(&mut h, now).unwrap();
        // VSC_APDU (7), reader 2, 3 bytes, in network byte order, split mid-header.
        let msg = [0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 3, 0xa, 0xb, 0xc];
        dev.inject(&msg[..5]);
        core.poll(&mut h, now).unwrap();
        assert!(core.take_output().is_empty());
        dev.inject(&msg[5..]);
        core.poll(&mut h, now).unwrap();
        assert_eq!(
            frames(&core.take_output()),
            [(101, vec![7, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0xa, 0xb, 0xc])]
        );
        // Client → device: little-endian on the wire, network order to the device.
        let dev2 = Arc::new(EchoDevice::new(CharDeviceKind::Smartcard, 1 << 16));
        let (mut core2, mut h2, _) = setup(dev2.clone(), false, 0);
        core2.start(&mut h2, now).unwrap();
        let mut input = Vec::new();
        write_message(&mut input, HeaderKind::Mini, 0, 101, |w| {
            w.write_slice(&[3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'h', b'i']);
            Ok(())
        })
        .unwrap();
        core2.handle_input(&input, &mut h2, now).unwrap();
        let mut buf = [0u8; 64];
        // The echo device hands the bytes straight back; the handler already sent them.
        let out = frames(&core2.take_output());
        assert_eq!(
            out,
            [(101, vec![3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'h', b'i'])]
        );
        assert_eq!(dev2.read(&mut buf), 0);
        assert_eq!(dev2.written(), 14);
        // An oversized VSC length from the device is a host error.
        dev.inject(&[0, 0, 0, 7, 0, 0, 0, 0, 0x7f, 0, 0, 0]);
        let e = core.poll(&mut h, now).unwrap_err();
        assert!(matches!(e, ChannelError::Host { .. }), "{e}");
    }

    #[test]
    fn malformed_client_messages_are_typed_errors() {
        let cases: [(ChannelType, u16, &[u8]); 5] = [
            (ChannelType::USBREDIR, 102, &[1, 10, 0, 0, 0, 0xff]),
            (ChannelType::USBREDIR, 102, &[2, 1, 0, 0, 0, 0]),
            (ChannelType::USBREDIR, 102, &[1, 0, 0, 0x10, 0, 0]),
            (ChannelType::USBREDIR, 201, &[0]),
            (
                ChannelType::SMARTCARD,
                101,
                &[7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0],
            ),
        ];
        for (ty, t, body) in cases {
            let kind = match ty {
                ChannelType::SMARTCARD => CharDeviceKind::Smartcard,
                _ => CharDeviceKind::UsbRedir,
            };
            let dev = Arc::new(EchoDevice::new(kind, 1 << 16));
            let (mut core, mut h, now) = setup(dev, true, 0);
            core.start(&mut h, now).unwrap();
            let mut input = Vec::new();
            write_message(&mut input, HeaderKind::Mini, 0, t, |w| {
                w.write_slice(body);
                Ok(())
            })
            .unwrap();
            let e = core.handle_input(&input, &mut h, now).unwrap_err();
            assert!(
                matches!(e, ChannelError::Protocol { .. } | ChannelError::Decode(_)),
                "{ty} {t}: {e}"
            );
        }
    }

    #[test]
    fn device_kinds_map_to_channels() {
        let port = |n: &str| CharDeviceKind::Port { name: n.into() };
        assert_eq!(channel_type_of(&port("x")), Some(ChannelType::PORT));
        assert_eq!(
            channel_type_of(&port(WEBDAV_PORT_NAME)),
            Some(ChannelType::WEBDAV)
        );
        assert_eq!(
            channel_type_of(&CharDeviceKind::Webdav),
            Some(ChannelType::WEBDAV)
        );
        assert_eq!(channel_type_of(&CharDeviceKind::Agent), None);
        let host = Host {
            char_devices: vec![
                Arc::new(EchoDevice::new(port("a"), 1)) as Arc<dyn CharDevice>,
                Arc::new(EchoDevice::new(CharDeviceKind::Agent, 1)),
                Arc::new(EchoDevice::new(port("b"), 1)),
                Arc::new(EchoDevice::new(CharDeviceKind::Smartcard, 1)),
            ],
            ..Host::default()
        };
        let ids: Vec<(ChannelType, u8)> = factories_for(&host)
            .iter()
            .map(|f| (f.channel_type(), f.channel_id()))
            .collect();
        assert_eq!(
            ids,
            [
                (ChannelType::PORT, 0),
                (ChannelType::PORT, 1),
                (ChannelType::SMARTCARD, 0)
            ]
        );
        assert!(
            VmcChannelFactory::new(Arc::new(EchoDevice::new(CharDeviceKind::Agent, 1)), 0)
                .is_none()
        );
    }

    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/spicevmc_server_channel");
        let mut n = 0;
        let mut delivered = 0;
        for e in std::fs::read_dir(&dir).expect("corpus directory") {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            delivered += fuzz_channel(&data);
            n += 1;
        }
        assert!(n >= 4, "corpus has {n} files");
        assert!(delivered > 0);
    }
}
