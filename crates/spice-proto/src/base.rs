//! Messages common to every channel (`BaseChannel` in spice.proto): server types 1–8,
//! client types 1–6. Channel-specific messages start at 101.
//!
//! The tunnel channel (7) has no messages at all, not even these; decoding on it gives
//! [`DecodeError::UnknownMessage`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::header::DataHeader;
use crate::link::LinkErr;
use crate::message::ChannelMessage;
use crate::wire::{Encode, ReadCursor, WriteBuf};

/// Server → client base message numbers (`SPICE_MSG_*`).
pub mod server_msg {
    /// `MIGRATE`.
    pub const MIGRATE: u16 = 1;
    /// `MIGRATE_DATA`.
    pub const MIGRATE_DATA: u16 = 2;
    /// `SET_ACK`.
    pub const SET_ACK: u16 = 3;
    /// `PING`.
    pub const PING: u16 = 4;
    /// `WAIT_FOR_CHANNELS`.
    pub const WAIT_FOR_CHANNELS: u16 = 5;
    /// `DISCONNECTING`.
    pub const DISCONNECTING: u16 = 6;
    /// `NOTIFY`.
    pub const NOTIFY: u16 = 7;
    /// `LIST` (sub-message list; used with the mini header).
    pub const LIST: u16 = 8;
}

/// Client → server base message numbers (`SPICE_MSGC_*`).
pub mod client_msg {
    /// `ACK_SYNC`.
    pub const ACK_SYNC: u16 = 1;
    /// `ACK`.
    pub const ACK: u16 = 2;
    /// `PONG`.
    pub const PONG: u16 = 3;
    /// `MIGRATE_FLUSH_MARK`.
    pub const MIGRATE_FLUSH_MARK: u16 = 4;
    /// `MIGRATE_DATA`.
    pub const MIGRATE_DATA: u16 = 5;
    /// `DISCONNECTING`.
    pub const DISCONNECTING: u16 = 6;
}

/// The first message number of channel-specific messages (`BASE_LAST` + 1).
pub const FIRST_CHANNEL_MESSAGE: u16 = 101;

bitflags::bitflags! {
    /// `MIGRATE` flags; unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MigrateFlags: u32 {
        /// The client must send `MIGRATE_FLUSH_MARK`.
        const NEED_FLUSH = 1;
        /// The next server message is `MIGRATE_DATA`.
        const NEED_DATA_TRANSFER = 2;
    }
}

/// `SET_ACK`: start (or restart) ACK windowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetAck {
    /// Generation, echoed by the client's `ACK_SYNC`.
    pub generation: u32,
    /// The client sends `ACK` every `window` messages.
    pub window: u32,
}

/// `PING`: the client must answer with `PONG { id, timestamp }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ping<'a> {
    /// Ping id.
    pub id: u32,
    /// Server timestamp.
    pub timestamp: u64,
    /// Padding for bandwidth measurement (not echoed).
    pub data: &'a [u8],
}

/// `PONG` (client → server): echo of a ping's id and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pong {
    /// Ping id.
    pub id: u32,
    /// The ping's timestamp.
    pub timestamp: u64,
}

/// One channel a `WAIT_FOR_CHANNELS` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitForChannel {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// Wait until that channel has processed this serial.
    pub message_serial: u64,
}

impl WaitForChannel {
    /// Wire size: type (1) + id (1) + serial (8).
    pub const SIZE: usize = 1 + 1 + 8;
}

/// `DISCONNECTING` (both directions; neither reference implementation sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Disconnecting {
    /// Timestamp.
    pub time_stamp: u64,
    /// Reason, a link error code.
    pub reason: LinkErr,
}

/// `NOTIFY` severity (`SPICE_NOTIFY_SEVERITY_*`); unknown values kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifySeverity(pub u32);

impl NotifySeverity {
    /// Information.
    pub const INFO: Self = Self(0);
    /// Warning.
    pub const WARN: Self = Self(1);
    /// Error.
    pub const ERROR: Self = Self(2);
}

/// `NOTIFY` visibility (`SPICE_NOTIFY_VISIBILITY_*`); unknown values kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyVisibility(pub u32);

impl NotifyVisibility {
    /// Low.
    pub const LOW: Self = Self(0);
    /// Medium.
    pub const MEDIUM: Self = Self(1);
    /// High.
    pub const HIGH: Self = Self(2);
}

/// `NOTIFY`: a text message for the user.
///
/// Peer quirk (spice-server, `main_channel_client` notify): `message_len` is `strlen` of
/// the text but the text is sent with its terminating NUL, one byte more than counted.
/// That single trailing NUL is accepted and recorded in `nul_terminated`, so re-encoding
/// gives the same bytes; any other trailing data is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notify<'a> {
    /// Timestamp.
    pub time_stamp: u64,
    /// Severity.
    pub severity: NotifySeverity,
    /// Visibility.
    pub visibility: NotifyVisibility,
    /// Warn/info code (`SPICE_WARN_GENERAL` = `SPICE_INFO_GENERAL` = 0).
    pub what: u32,
    /// The text, `message_len` bytes (normally UTF-8, not checked).
    pub message: &'a [u8],
    /// A NUL follows the counted text (spice-server does this).
    pub nul_terminated: bool,
}

impl Notify<'_> {
    /// Fixed part: time_stamp (8) + severity (4) + visibility (4) + what (4)
    /// + message_len (4).
    pub const FIXED_SIZE: usize = 8 + 4 + 4 + 4 + 4;
}

/// One entry of a [`SubMessageList`]: a message of the same channel, type and raw body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubMessage<'a> {
    /// Message type (decode the body with the channel's message enum).
    pub msg_type: u16,
    /// Body bytes.
    pub body: &'a [u8],
}

/// `SpiceSubMessageList`: `u16 count`, `u32 offsets[count]` (from the start of the message
/// body), each pointing at `{u16 type, u32 size, body}`.
///
/// Decoding follows the offsets; encoding writes the canonical layout (list, then the
/// sub-messages in order, as spice-server does), so bytes with another layout decode to the
/// same value but re-encode differently.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubMessageList<'a> {
    /// The sub-messages, in list order (process them before the main message).
    pub messages: Vec<SubMessage<'a>>,
}

impl<'a> SubMessageList<'a> {
    /// Sub-message header: type (2) + size (4).
    pub const SUB_HEADER_SIZE: usize = 2 + 4;

    /// Decodes a list that starts at body offset `offset`.
    pub fn decode_at(body: &'a [u8], offset: u32) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body).at_offset(offset, "sub_list")?;
        let count = r.read_u16("sub_list.size")?;
        let n = r.check_count(u64::from(count), 4, "sub_list.sub_messages")?;
        let mut messages = Vec::with_capacity(n);
        for _ in 0..n {
            let off = r.read_u32("sub_list.sub_messages")?;
            let mut s = r.at_offset(off, "sub_message")?;
            s.ensure(Self::SUB_HEADER_SIZE, "sub_message")?;
            let msg_type = s.read_u16("sub_message.type")?;
            let size = s.read_u32("sub_message.size")?;
            let body = s.read_slice(size as usize, "sub_message.data")?;
            messages.push(SubMessage { msg_type, body });
        }
        Ok(Self { messages })
    }
}

impl Encode for SubMessageList<'_> {
    /// Writes the list at the current body offset, then the sub-messages.
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u16(WriteBuf::len_as(self.messages.len(), "sub_list.size")?);
        let slots: Vec<_> = self.messages.iter().map(|_| w.reserve_ptr()).collect();
        for (slot, m) in slots.into_iter().zip(&self.messages) {
            w.patch_ptr(slot, "sub_list.sub_messages")?;
            w.write_u16(m.msg_type);
            w.write_u32(WriteBuf::len_as(m.body.len(), "sub_message.size")?);
            w.write_slice(m.body);
        }
        Ok(())
    }
}

/// Full header only: splits a message body whose header has a non-zero `sub_list` into the
/// main message's body (everything before the list, which spice-server appends after the
/// message) and the list. With `sub_list == 0` the whole body is the main message.
pub fn split_sub_list(
    body: &[u8],
    sub_list: u32,
) -> Result<(&[u8], Option<SubMessageList<'_>>), DecodeError> {
    if sub_list == 0 {
        return Ok((body, None));
    }
    let list = SubMessageList::decode_at(body, sub_list)?;
    Ok((&body[..sub_list as usize], Some(list)))
}

/// Full header only: appends a message whose body is written by `body`, followed by
/// `list` referenced from the header's `sub_list` (spice-server's legacy free-list
/// layout). On error `out` is left as it was.
pub fn write_full_message_with_sub_list<F>(
    out: &mut Vec<u8>,
    serial: u64,
    msg_type: u16,
    body: F,
    list: &SubMessageList<'_>,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut WriteBuf<'_>) -> Result<(), EncodeError>,
{
    let start = out.len();
    let res = (|| {
        DataHeader {
            serial,
            msg_type,
            size: 0,
            sub_list: 0,
        }
        .encode(&mut WriteBuf::new(out))?;
        let body_start = out.len();
        let mut w = WriteBuf::new(out);
        body(&mut w)?;
        let sub_list: u32 = WriteBuf::len_as(w.offset(), "data_header.sub_list")?;
        list.encode(&mut w)?;
        let size: u32 = WriteBuf::len_as(out.len() - body_start, "data_header.size")?;
        out[start + 10..start + 14].copy_from_slice(&size.to_le_bytes());
        out[start + 14..start + 18].copy_from_slice(&sub_list.to_le_bytes());
        Ok(())
    })();
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// Base messages sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerMessage<'a> {
    /// `MIGRATE` (1).
    Migrate(MigrateFlags),
    /// `MIGRATE_DATA` (2): opaque.
    MigrateData(&'a [u8]),
    /// `SET_ACK` (3).
    SetAck(SetAck),
    /// `PING` (4).
    Ping(Ping<'a>),
    /// `WAIT_FOR_CHANNELS` (5).
    WaitForChannels(Vec<WaitForChannel>),
    /// `DISCONNECTING` (6).
    Disconnecting(Disconnecting),
    /// `NOTIFY` (7).
    Notify(Notify<'a>),
    /// `LIST` (8): the body is a sub-message list.
    List(SubMessageList<'a>),
}

fn server_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        server_msg::MIGRATE => "migrate",
        server_msg::MIGRATE_DATA => "migrate_data",
        server_msg::SET_ACK => "set_ack",
        server_msg::PING => "ping",
        server_msg::WAIT_FOR_CHANNELS => "wait_for_channels",
        server_msg::DISCONNECTING => "disconnecting",
        server_msg::NOTIFY => "notify",
        server_msg::LIST => "list",
        _ => return None,
    })
}

fn client_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        client_msg::ACK_SYNC => "ack_sync",
        client_msg::ACK => "ack",
        client_msg::PONG => "pong",
        client_msg::MIGRATE_FLUSH_MARK => "migrate_flush_mark",
        client_msg::MIGRATE_DATA => "migrate_data",
        client_msg::DISCONNECTING => "disconnecting",
        _ => return None,
    })
}

fn decode_disconnecting(r: &mut ReadCursor<'_>) -> Result<Disconnecting, DecodeError> {
    r.ensure(8 + 4, "disconnecting")?;
    Ok(Disconnecting {
        time_stamp: r.read_u64("disconnecting.time_stamp")?,
        reason: LinkErr(r.read_u32("disconnecting.reason")?),
    })
}

fn encode_disconnecting(d: &Disconnecting, w: &mut WriteBuf<'_>) {
    w.write_u64(d.time_stamp);
    w.write_u32(d.reason.0);
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            ServerMessage::Migrate(_) => server_msg::MIGRATE,
            ServerMessage::MigrateData(_) => server_msg::MIGRATE_DATA,
            ServerMessage::SetAck(_) => server_msg::SET_ACK,
            ServerMessage::Ping(_) => server_msg::PING,
            ServerMessage::WaitForChannels(_) => server_msg::WAIT_FOR_CHANNELS,
            ServerMessage::Disconnecting(_) => server_msg::DISCONNECTING,
            ServerMessage::Notify(_) => server_msg::NOTIFY,
            ServerMessage::List(_) => server_msg::LIST,
        }
    }

    fn name(&self) -> &'static str {
        server_name(self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        if channel == ChannelType::TUNNEL {
            return Err(DecodeError::UnknownMessage { msg_type });
        }
        let mut r = ReadCursor::new(body);
        let msg = match msg_type {
            server_msg::MIGRATE => {
                ServerMessage::Migrate(MigrateFlags::from_bits_retain(r.read_u32("migrate.flags")?))
            }
            server_msg::MIGRATE_DATA => ServerMessage::MigrateData(r.read_rest()),
            server_msg::SET_ACK => {
                r.ensure(8, "set_ack")?;
                ServerMessage::SetAck(SetAck {
                    generation: r.read_u32("set_ack.generation")?,
                    window: r.read_u32("set_ack.window")?,
                })
            }
            server_msg::PING => {
                r.ensure(4 + 8, "ping")?;
                ServerMessage::Ping(Ping {
                    id: r.read_u32("ping.id")?,
                    timestamp: r.read_u64("ping.timestamp")?,
                    data: r.read_rest(),
                })
            }
            server_msg::WAIT_FOR_CHANNELS => {
                let count = r.read_u8("wait_for_channels.wait_count")?;
                let n = r.check_count(
                    u64::from(count),
                    WaitForChannel::SIZE,
                    "wait_for_channels.wait_list",
                )?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(WaitForChannel {
                        channel_type: ChannelType(r.read_u8("wait_for_channel.channel_type")?),
                        channel_id: r.read_u8("wait_for_channel.channel_id")?,
                        message_serial: r.read_u64("wait_for_channel.message_serial")?,
                    });
                }
                ServerMessage::WaitForChannels(list)
            }
            server_msg::DISCONNECTING => {
                ServerMessage::Disconnecting(decode_disconnecting(&mut r)?)
            }
            server_msg::NOTIFY => {
                r.ensure(Notify::FIXED_SIZE, "notify")?;
                let time_stamp = r.read_u64("notify.time_stamp")?;
                let severity = NotifySeverity(r.read_u32("notify.severity")?);
                let visibility = NotifyVisibility(r.read_u32("notify.visibility")?);
                let what = r.read_u32("notify.what")?;
                let len = r.read_u32("notify.message_len")?;
                let message = r.read_slice(len as usize, "notify.message")?;
                // spice-server quirk: one NUL after the counted text.
                let nul_terminated = r.remaining() == 1 && r.peek_u8("notify.nul")? == 0;
                if nul_terminated {
                    r.skip(1, "notify.nul")?;
                }
                ServerMessage::Notify(Notify {
                    time_stamp,
                    severity,
                    visibility,
                    what,
                    message,
                    nul_terminated,
                })
            }
            server_msg::LIST => {
                // Offsets point anywhere in the body: no trailing-bytes check.
                return Ok(ServerMessage::List(SubMessageList::decode_at(body, 0)?));
            }
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish(server_name(msg_type).unwrap_or("message"))?;
        Ok(msg)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            ServerMessage::Migrate(f) => w.write_u32(f.bits()),
            ServerMessage::MigrateData(d) => w.write_slice(d),
            ServerMessage::SetAck(s) => {
                w.write_u32(s.generation);
                w.write_u32(s.window);
            }
            ServerMessage::Ping(p) => {
                w.write_u32(p.id);
                w.write_u64(p.timestamp);
                w.write_slice(p.data);
            }
            ServerMessage::WaitForChannels(list) => {
                w.write_u8(WriteBuf::len_as(
                    list.len(),
                    "wait_for_channels.wait_count",
                )?);
                for c in list {
                    w.write_u8(c.channel_type.0);
                    w.write_u8(c.channel_id);
                    w.write_u64(c.message_serial);
                }
            }
            ServerMessage::Disconnecting(d) => encode_disconnecting(d, w),
            ServerMessage::Notify(n) => {
                w.write_u64(n.time_stamp);
                w.write_u32(n.severity.0);
                w.write_u32(n.visibility.0);
                w.write_u32(n.what);
                w.write_u32(WriteBuf::len_as(n.message.len(), "notify.message_len")?);
                w.write_slice(n.message);
                if n.nul_terminated {
                    w.write_u8(0);
                }
            }
            ServerMessage::List(l) => l.encode(w)?,
        }
        Ok(())
    }

    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        if channel == ChannelType::TUNNEL {
            return None;
        }
        server_name(msg_type)
    }
}

/// Base messages sent by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMessage<'a> {
    /// `ACK_SYNC` (1): answer to `SET_ACK`, echoing its generation.
    AckSync {
        /// The `SET_ACK` generation.
        generation: u32,
    },
    /// `ACK` (2): one per window of received messages.
    Ack,
    /// `PONG` (3).
    Pong(Pong),
    /// `MIGRATE_FLUSH_MARK` (4).
    MigrateFlushMark,
    /// `MIGRATE_DATA` (5): opaque.
    MigrateData(&'a [u8]),
    /// `DISCONNECTING` (6).
    Disconnecting(Disconnecting),
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            ClientMessage::AckSync { .. } => client_msg::ACK_SYNC,
            ClientMessage::Ack => client_msg::ACK,
            ClientMessage::Pong(_) => client_msg::PONG,
            ClientMessage::MigrateFlushMark => client_msg::MIGRATE_FLUSH_MARK,
            ClientMessage::MigrateData(_) => client_msg::MIGRATE_DATA,
            ClientMessage::Disconnecting(_) => client_msg::DISCONNECTING,
        }
    }

    fn name(&self) -> &'static str {
        client_name(self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        if channel == ChannelType::TUNNEL {
            return Err(DecodeError::UnknownMessage { msg_type });
        }
        let mut r = ReadCursor::new(body);
        let msg = match msg_type {
            client_msg::ACK_SYNC => ClientMessage::AckSync {
                generation: r.read_u32("ack_sync.generation")?,
            },
            client_msg::ACK => ClientMessage::Ack,
            client_msg::PONG => {
                r.ensure(4 + 8, "pong")?;
                ClientMessage::Pong(Pong {
                    id: r.read_u32("pong.id")?,
                    timestamp: r.read_u64("pong.timestamp")?,
                })
            }
            client_msg::MIGRATE_FLUSH_MARK => ClientMessage::MigrateFlushMark,
            client_msg::MIGRATE_DATA => ClientMessage::MigrateData(r.read_rest()),
            client_msg::DISCONNECTING => {
                ClientMessage::Disconnecting(decode_disconnecting(&mut r)?)
            }
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish(client_name(msg_type).unwrap_or("message"))?;
        Ok(msg)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            ClientMessage::AckSync { generation } => w.write_u32(*generation),
            ClientMessage::Ack | ClientMessage::MigrateFlushMark => {}
            ClientMessage::Pong(p) => {
                w.write_u32(p.id);
                w.write_u64(p.timestamp);
            }
            ClientMessage::MigrateData(d) => w.write_slice(d),
            ClientMessage::Disconnecting(d) => encode_disconnecting(d, w),
        }
        Ok(())
    }

    fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        if channel == ChannelType::TUNNEL {
            return None;
        }
        client_name(msg_type)
    }
}

/// Decodes, re-encodes and decodes again one base message of each direction; panics only
/// when the round trip disagrees (a bug). The first two bytes are the message type (LE),
/// the rest the body. Used by the `base_messages` fuzz target and its corpus replay test.
pub fn fuzz_base_messages(data: &[u8]) {
    let Some((ty, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let msg_type = u16::from_le_bytes(*ty);
    let ch = ChannelType::MAIN;
    if let Ok(m) = ServerMessage::decode_body(ch, msg_type, body) {
        let mut out = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut out))
            .expect("decoded message re-encodes");
        let again =
            ServerMessage::decode_body(ch, msg_type, &out).expect("re-encoded message decodes");
        assert_eq!(again, m);
        if msg_type != server_msg::LIST {
            assert_eq!(out, body, "non-canonical bytes accepted");
        }
    }
    if let Ok(m) = ClientMessage::decode_body(ch, msg_type, body) {
        let mut out = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut out))
            .expect("decoded message re-encodes");
        let again =
            ClientMessage::decode_body(ch, msg_type, &out).expect("re-encoded message decodes");
        assert_eq!(again, m);
        assert_eq!(out, body, "non-canonical bytes accepted");
    }
    let sub_list = body
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_le_bytes(*b));
    if let Ok((main, Some(list))) = split_sub_list(body, sub_list) {
        assert!(main.len() == sub_list as usize);
        let mut out = Vec::new();
        list.encode(&mut WriteBuf::new(&mut out))
            .expect("list re-encodes");
        assert_eq!(SubMessageList::decode_at(&out, 0).as_ref(), Ok(&list));
    }
}

/// Proptest strategies for base messages (payloads are leaked to get `'static` borrows).
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use proptest::prelude::*;

    /// Small leaked byte strings.
    pub fn bytes(max: usize) -> BoxedStrategy<&'static [u8]> {
        proptest::collection::vec(any::<u8>(), 0..=max)
            .prop_map(|v| &*Box::leak(v.into_boxed_slice()))
            .boxed()
    }

    fn disconnecting() -> impl Strategy<Value = Disconnecting> {
        (any::<u64>(), any::<u32>()).prop_map(|(time_stamp, r)| Disconnecting {
            time_stamp,
            reason: LinkErr(r),
        })
    }

    /// A sub-message list of up to 4 entries.
    pub fn sub_message_list() -> BoxedStrategy<SubMessageList<'static>> {
        proptest::collection::vec((any::<u16>(), bytes(24)), 0..=4)
            .prop_map(|v| SubMessageList {
                messages: v
                    .into_iter()
                    .map(|(msg_type, body)| SubMessage { msg_type, body })
                    .collect(),
            })
            .boxed()
    }

    /// Any server base message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            any::<u32>().prop_map(|f| ServerMessage::Migrate(MigrateFlags::from_bits_retain(f))),
            bytes(32).prop_map(ServerMessage::MigrateData),
            (any::<u32>(), any::<u32>()).prop_map(|(generation, window)| ServerMessage::SetAck(
                SetAck { generation, window }
            )),
            (any::<u32>(), any::<u64>(), bytes(32)).prop_map(|(id, timestamp, data)| {
                ServerMessage::Ping(Ping {
                    id,
                    timestamp,
                    data,
                })
            }),
            proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u64>()), 0..=5).prop_map(
                |v| {
                    ServerMessage::WaitForChannels(
                        v.into_iter()
                            .map(|(t, channel_id, message_serial)| WaitForChannel {
                                channel_type: ChannelType(t),
                                channel_id,
                                message_serial,
                            })
                            .collect(),
                    )
                }
            ),
            disconnecting().prop_map(ServerMessage::Disconnecting),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                bytes(32),
                any::<bool>()
            )
                .prop_map(|(time_stamp, s, v, what, message, nul_terminated)| {
                    ServerMessage::Notify(Notify {
                        time_stamp,
                        severity: NotifySeverity(s),
                        visibility: NotifyVisibility(v),
                        what,
                        message,
                        nul_terminated,
                    })
                }),
            sub_message_list().prop_map(ServerMessage::List),
        ]
        .boxed()
    }

    /// Any client base message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            any::<u32>().prop_map(|generation| ClientMessage::AckSync { generation }),
            Just(ClientMessage::Ack),
            (any::<u32>(), any::<u64>())
                .prop_map(|(id, timestamp)| ClientMessage::Pong(Pong { id, timestamp })),
            Just(ClientMessage::MigrateFlushMark),
            bytes(32).prop_map(ClientMessage::MigrateData),
            disconnecting().prop_map(ClientMessage::Disconnecting),
        ]
        .boxed()
    }
}
