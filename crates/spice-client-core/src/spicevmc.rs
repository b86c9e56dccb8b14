//! The device passthrough channels on the client side: usbredir (9), port (10), webdav (11)
//! and smartcard (8).
//!
//! The session opens the ones [`PassthroughSelection`] allows when the server lists them in
//! `CHANNELS_LIST`, advertising `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4` on the SpiceVMC
//! ones. What arrives becomes events: [`crate::Event::VmcData`] (LZ4 `COMPRESSED_DATA`
//! already decoded), [`crate::Event::PortInit`], [`crate::Event::PortEvent`],
//! [`crate::Event::SmartcardData`]. The embedder writes with
//! [`crate::Session::vmc_write`] (usbredir, port, webdav: chunks of at most
//! [`SEND_CHUNK`] bytes, LZ4-compressed when the server has the cap and the chunk pays off,
//! as spice-gtk does), [`crate::Session::port_event`] and
//! [`crate::Session::smartcard_send`]; [`crate::Session::passthrough_conn`] finds a
//! channel's connection.
//!
//! Writes are bounded: [`crate::Session::vmc_write`] takes only what keeps the connection's
//! unsent output under [`MAX_PENDING_OUTPUT`] and returns how much it took (like a
//! non-blocking `write`); call it again after [`crate::Session::transmit`] drained the
//! connection.

use spice_proto::ChannelType;
use spice_proto::EncodeError;
use spice_proto::caps::{self, Caps};
use spice_proto::messages::ClientMessage;
use spice_proto::smartcard::{self, SmartcardData};
use spice_proto::spicevmc::{self, CompressedData, DataCompressionType, PortEvent};

use crate::error::ChannelError;
use crate::event::Event;
use crate::session::{ConnId, ConnIo};

/// Largest payload put in one `DATA` / `COMPRESSED_DATA` message sent.
pub const SEND_CHUNK: usize = 64 * 1024;

/// Unsent bytes of one connection above which [`crate::Session::vmc_write`] takes no more.
pub const MAX_PENDING_OUTPUT: usize = 1 << 20;

/// Largest `uncompressed_size` accepted in a server `COMPRESSED_DATA`.
pub const MAX_DECOMPRESSED: usize = 1 << 20;

/// Which passthrough channels the session opens when the server lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassthroughSelection {
    /// usbredir channels.
    pub usbredir: bool,
    /// Smartcard channels.
    pub smartcard: bool,
    /// Port channels.
    pub port: bool,
    /// The webdav channel.
    pub webdav: bool,
    /// Advertise `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4` (LZ4 both ways when the server has
    /// it too).
    pub lz4: bool,
}

impl Default for PassthroughSelection {
    fn default() -> Self {
        Self {
            usbredir: true,
            smartcard: true,
            port: true,
            webdav: true,
            lz4: true,
        }
    }
}

impl PassthroughSelection {
    /// True when channels of type `ty` are opened.
    pub fn wants(&self, ty: ChannelType) -> bool {
        match ty {
            ChannelType::USBREDIR => self.usbredir,
            ChannelType::SMARTCARD => self.smartcard,
            ChannelType::PORT => self.port,
            ChannelType::WEBDAV => self.webdav,
            _ => false,
        }
    }
}

/// True for the channel types this module serves.
pub(crate) fn is_passthrough(ty: ChannelType) -> bool {
    matches!(
        ty,
        ChannelType::USBREDIR | ChannelType::SMARTCARD | ChannelType::PORT | ChannelType::WEBDAV
    )
}

/// The channel caps advertised for a passthrough channel.
pub(crate) fn caps_for(ty: ChannelType, sel: &PassthroughSelection) -> Caps {
    if ty == ChannelType::SMARTCARD || !sel.lz4 {
        Caps::new()
    } else {
        Caps::from_caps(&[caps::spicevmc::DATA_COMPRESS_LZ4])
    }
}

/// The name and guest open state of a port channel, from `PORT_INIT` and `PORT_EVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    /// The port name (without its NUL).
    pub name: String,
    /// Whether the guest side is open.
    pub opened: bool,
}

/// Byte and message counters of one passthrough connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmcStats {
    /// Payload bytes received (after decompression).
    pub bytes_received: u64,
    /// Payload bytes queued for sending (before compression).
    pub bytes_sent: u64,
    /// `COMPRESSED_DATA` (LZ4) messages received.
    pub compressed_received: u64,
    /// `COMPRESSED_DATA` (LZ4) messages sent.
    pub compressed_sent: u64,
}

/// Per-connection state of a passthrough channel.
#[derive(Debug, Default)]
pub(crate) struct VmcState {
    /// Both sides have `SPICEVMC_CAP_DATA_COMPRESS_LZ4`: compress what pays off.
    pub(crate) lz4: bool,
    pub(crate) port: Option<PortState>,
    pub(crate) stats: VmcStats,
}

fn protocol(ty: ChannelType, msg: &'static str, detail: impl Into<String>) -> ChannelError {
    ChannelError::Protocol {
        channel: ty,
        msg,
        detail: detail.into(),
    }
}

impl VmcState {
    pub(crate) fn on_linked(
        &mut self,
        peer_caps: &Caps,
        ty: ChannelType,
        sel: &PassthroughSelection,
    ) {
        self.lz4 = ty != ChannelType::SMARTCARD
            && sel.lz4
            && peer_caps.has(caps::spicevmc::DATA_COMPRESS_LZ4);
    }

    /// One SpiceVMC message from the server.
    pub(crate) fn handle(
        &mut self,
        conn: ConnId,
        channel_type: ChannelType,
        channel_id: u8,
        msg: spicevmc::ServerMessage<'_>,
        events: &mut std::collections::VecDeque<Event>,
    ) -> Result<(), ChannelError> {
        use spicevmc::ServerMessage as M;
        match msg {
            M::Data(d) => {
                self.stats.bytes_received += d.len() as u64;
                events.push_back(Event::VmcData {
                    conn,
                    channel_type,
                    channel_id,
                    data: d.to_vec(),
                });
            }
            M::CompressedData(c) => {
                let data = match c.compression {
                    DataCompressionType::NONE => c.data.to_vec(),
                    DataCompressionType::LZ4 => {
                        let d = spice_codecs::vmc_lz4::decompress(
                            c.data,
                            c.uncompressed_size as usize,
                            MAX_DECOMPRESSED,
                        )
                        .map_err(|e| protocol(channel_type, "compressed_data", e.to_string()))?;
                        self.stats.compressed_received += 1;
                        d
                    }
                    other => {
                        return Err(protocol(
                            channel_type,
                            "compressed_data",
                            format!("unknown compression type {}", other.0),
                        ));
                    }
                };
                self.stats.bytes_received += data.len() as u64;
                events.push_back(Event::VmcData {
                    conn,
                    channel_type,
                    channel_id,
                    data,
                });
            }
            M::PortInit(p) => {
                let name = String::from_utf8_lossy(p.name_str()).into_owned();
                let opened = p.opened != 0;
                self.port = Some(PortState {
                    name: name.clone(),
                    opened,
                });
                events.push_back(Event::PortInit {
                    conn,
                    channel_type,
                    channel_id,
                    name,
                    opened,
                });
            }
            M::PortEvent(e) => {
                if let Some(p) = &mut self.port {
                    match e {
                        PortEvent::OPENED => p.opened = true,
                        PortEvent::CLOSED => p.opened = false,
                        _ => {}
                    }
                }
                events.push_back(Event::PortEvent {
                    conn,
                    channel_type,
                    channel_id,
                    event: e.0,
                });
            }
            other => {
                tracing::debug!(channel = %channel_type, msg = ?other, "ignored spicevmc message");
            }
        }
        Ok(())
    }

    /// Queues as much of `data` as fits under [`MAX_PENDING_OUTPUT`]; returns the bytes
    /// taken.
    pub(crate) fn write(&mut self, io: &mut ConnIo, data: &[u8]) -> Result<usize, EncodeError> {
        let mut taken = 0;
        while taken < data.len() && io.out.len() < MAX_PENDING_OUTPUT {
            let end = data.len().min(taken + SEND_CHUNK);
            let chunk = &data[taken..end];
            let block = if self.lz4 {
                spice_codecs::vmc_lz4::compress(chunk)
            } else {
                None
            };
            let msg = match &block {
                Some(b) => spicevmc::ClientMessage::CompressedData(CompressedData {
                    compression: DataCompressionType::LZ4,
                    uncompressed_size: chunk.len() as u32,
                    data: b,
                }),
                None => spicevmc::ClientMessage::Data(chunk),
            };
            io.send(&ClientMessage::Spicevmc(msg))?;
            if block.is_some() {
                self.stats.compressed_sent += 1;
            }
            self.stats.bytes_sent += chunk.len() as u64;
            taken = end;
        }
        Ok(taken)
    }

    pub(crate) fn port_event(
        &mut self,
        io: &mut ConnIo,
        event: PortEvent,
    ) -> Result<(), EncodeError> {
        io.send(&ClientMessage::Spicevmc(
            spicevmc::ClientMessage::PortEvent(event),
        ))
    }
}

/// One smartcard message from the server as an event.
pub(crate) fn smartcard_event(
    conn: ConnId,
    channel_id: u8,
    msg: smartcard::ServerMessage<'_>,
) -> Option<Event> {
    match msg {
        smartcard::ServerMessage::Data(d) => Some(Event::SmartcardData {
            conn,
            channel_id,
            msg_type: d.msg_type.0,
            reader_id: d.reader_id,
            data: d.data.to_vec(),
        }),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Queues a smartcard `DATA` (one VSC message).
pub(crate) fn smartcard_send(
    io: &mut ConnIo,
    msg_type: u32,
    reader_id: u32,
    data: &[u8],
) -> Result<(), EncodeError> {
    io.send(&ClientMessage::Smartcard(smartcard::ClientMessage::Data(
        SmartcardData {
            msg_type: smartcard::VscMessageType(msg_type),
            reader_id,
            data,
        },
    )))
}
