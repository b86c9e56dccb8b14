//! Main channel (1): session set-up, channel list, mouse mode, multimedia time, the agent
//! data stream and migration (spice.proto `MainChannel`, protocol.md §2.2, §4).
//!
//! Agent data is carried as borrowed chunks of the VDAgent byte stream; see
//! [`crate::agent`] for its messages, chunking and reassembly.

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::{ChannelMessage, finish_at};
use crate::wire::{ReadCursor, WriteBuf};

bitflags::bitflags! {
    /// `mouse_mode` flags: u32 in `INIT`, u16 in `MOUSE_MODE` and `MOUSE_MODE_REQUEST`.
    /// Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MouseMode: u32 {
        /// Server mouse: relative motion, the server draws the pointer.
        const SERVER = 1 << 0;
        /// Client mouse: absolute positions, needs a guest agent or tablet.
        const CLIENT = 1 << 1;
    }
}

/// One `(type, id)` entry of `CHANNELS_LIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// Channel type (unknown types are kept).
    pub channel_type: ChannelType,
    /// Channel instance id.
    pub id: u8,
}

/// `INIT` (103): the first message on the main channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    /// Connection id all other channels must link with.
    pub session_id: u32,
    /// Number of display channels.
    pub display_channels_hint: u32,
    /// Mouse modes the server allows.
    pub supported_mouse_modes: MouseMode,
    /// Current mouse mode.
    pub current_mouse_mode: MouseMode,
    /// Non-zero when a guest agent is connected.
    pub agent_connected: u32,
    /// Agent data tokens granted to the client (spice-server: 10).
    pub agent_tokens: u32,
    /// Server multimedia time (ms).
    pub multi_media_time: u32,
    /// QXL RAM size hint (bytes).
    pub ram_hint: u32,
}

impl Init {
    /// Eight u32 fields.
    pub const SIZE: usize = 8 * 4;
}

/// `DstInfo`: where to migrate. `u16 port; u16 sport; u32 host_size; u32 host_ptr;
/// u32 cert_subject_size; u32 cert_subject_ptr`, pointees after the fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DstInfo<'a> {
    /// Plain port (or 0 / -1 when none).
    pub port: u16,
    /// TLS port.
    pub sport: u16,
    /// Destination host as sent, NUL-terminated by spice-server. For `MIGRATE_BEGIN*` the
    /// pointer must not be NULL; for `MIGRATE_SWITCH_HOST` a NULL pointer is `None`.
    pub host: Option<&'a [u8]>,
    /// Certificate subject as sent; `None` for a NULL pointer.
    pub cert_subject: Option<&'a [u8]>,
}

impl<'a> DstInfo<'a> {
    /// `u16 port + u16 sport + u32 host_size + u32 host_ptr + u32 cert_size + u32 cert_ptr`.
    pub const FIXED_SIZE: usize = 2 + 2 + 4 + 4 + 4 + 4;

    /// Reads the fixed part at `r` and follows its pointers within the whole body. Returns
    /// the value and the furthest byte a pointee reached.
    fn decode(r: &mut ReadCursor<'a>, host_nonnull: bool) -> Result<(Self, usize), DecodeError> {
        r.ensure(Self::FIXED_SIZE, "dst_info")?;
        let port = r.read_u16("dst_info.port")?;
        let sport = r.read_u16("dst_info.sport")?;
        let host_size = r.read_u32("dst_info.host_size")?;
        let host_ptr = r.read_u32("dst_info.host_data")?;
        let cert_size = r.read_u32("dst_info.cert_subject_size")?;
        let cert_ptr = r.read_u32("dst_info.cert_subject_data")?;
        if host_nonnull && host_ptr == 0 {
            return Err(DecodeError::NullPointer {
                field: "dst_info.host_data",
            });
        }
        let mut end = 0;
        let mut follow =
            |size: u32, ptr: u32, ctx: &'static str| -> Result<Option<&'a [u8]>, DecodeError> {
                if ptr == 0 {
                    return Ok(None);
                }
                let mut p = r.at_offset(ptr, ctx)?;
                let n = p.check_count(size.into(), 1, ctx)?;
                let s = p.read_slice(n, ctx)?;
                end = end.max(p.pos());
                Ok(Some(s))
            };
        let host = follow(host_size, host_ptr, "dst_info.host_data")?;
        let cert_subject = follow(cert_size, cert_ptr, "dst_info.cert_subject_data")?;
        Ok((
            Self {
                port,
                sport,
                host,
                cert_subject,
            },
            end,
        ))
    }

    /// Writes the fixed part; `extra` writes the fields that follow it in the message (before
    /// the pointees, which come last in creation order: host, then certificate subject).
    fn encode(
        &self,
        w: &mut WriteBuf<'_>,
        host_nonnull: bool,
        extra: impl FnOnce(&mut WriteBuf<'_>),
    ) -> Result<(), EncodeError> {
        if host_nonnull && self.host.is_none() {
            return Err(EncodeError::Inconsistent {
                field: "dst_info.host_data",
            });
        }
        w.write_u16(self.port);
        w.write_u16(self.sport);
        w.write_u32(WriteBuf::len_as(
            self.host.map_or(0, <[u8]>::len),
            "dst_info.host_size",
        )?);
        let host_slot = w.reserve_ptr();
        w.write_u32(WriteBuf::len_as(
            self.cert_subject.map_or(0, <[u8]>::len),
            "dst_info.cert_subject_size",
        )?);
        let cert_slot = w.reserve_ptr();
        extra(w);
        if let Some(h) = self.host {
            w.patch_ptr(host_slot, "dst_info.host_data")?;
            w.write_slice(h);
        }
        if let Some(c) = self.cert_subject {
            w.patch_ptr(cert_slot, "dst_info.cert_subject_data")?;
            w.write_slice(c);
        }
        Ok(())
    }
}

/// Server → client main-channel messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// 101 `MIGRATE_BEGIN` (semi-seamless migration); `host` is never `None`.
    MigrateBegin(DstInfo<'a>),
    /// 102 `MIGRATE_CANCEL`.
    MigrateCancel,
    /// 103 `INIT`.
    Init(Init),
    /// 104 `CHANNELS_LIST`: `u32 count; {u8 type; u8 id}[count]`.
    ChannelsList(Vec<ChannelId>),
    /// 105 `MOUSE_MODE` (u16 flags on the wire).
    MouseMode {
        /// Modes allowed.
        supported_modes: MouseMode,
        /// Mode in use.
        current_mode: MouseMode,
    },
    /// 106 `MULTI_MEDIA_TIME`: resynchronise the multimedia clock (ms).
    MultiMediaTime {
        /// Server multimedia time.
        time: u32,
    },
    /// 107 `AGENT_CONNECTED`.
    AgentConnected,
    /// 108 `AGENT_DISCONNECTED`.
    AgentDisconnected {
        /// A `link_err` code.
        error_code: u32,
    },
    /// 109 `AGENT_DATA`: a chunk (≤ 2048 bytes) of the VDAgent message stream, borrowed.
    AgentData(&'a [u8]),
    /// 110 `AGENT_TOKEN`: tokens returned to the client.
    AgentToken {
        /// Number of tokens.
        num_tokens: u32,
    },
    /// 111 `MIGRATE_SWITCH_HOST`: same layout as `DstInfo`; pointers may be NULL.
    MigrateSwitchHost(DstInfo<'a>),
    /// 112 `MIGRATE_END`.
    MigrateEnd,
    /// 113 `NAME`: `u32 name_len; u8 name[name_len]` (spice-server includes the NUL).
    Name(&'a [u8]),
    /// 114 `UUID`.
    Uuid([u8; 16]),
    /// 115 `AGENT_CONNECTED_TOKENS` (`MAIN_CAP_AGENT_CONNECTED_TOKENS`).
    AgentConnectedTokens {
        /// Number of tokens.
        num_tokens: u32,
    },
    /// 116 `MIGRATE_BEGIN_SEAMLESS`: `DstInfo; u32 src_mig_version`.
    MigrateBeginSeamless {
        /// Destination; `host` is never `None`.
        dst_info: DstInfo<'a>,
        /// Migration protocol version of the source.
        src_mig_version: u32,
    },
    /// 117 `MIGRATE_DST_SEAMLESS_ACK`.
    MigrateDstSeamlessAck,
    /// 118 `MIGRATE_DST_SEAMLESS_NACK`.
    MigrateDstSeamlessNack,
}

impl ServerMessage<'_> {
    /// 101
    pub const MIGRATE_BEGIN: u16 = 101;
    /// 102
    pub const MIGRATE_CANCEL: u16 = 102;
    /// 103
    pub const INIT: u16 = 103;
    /// 104
    pub const CHANNELS_LIST: u16 = 104;
    /// 105
    pub const MOUSE_MODE: u16 = 105;
    /// 106
    pub const MULTI_MEDIA_TIME: u16 = 106;
    /// 107
    pub const AGENT_CONNECTED: u16 = 107;
    /// 108
    pub const AGENT_DISCONNECTED: u16 = 108;
    /// 109
    pub const AGENT_DATA: u16 = 109;
    /// 110
    pub const AGENT_TOKEN: u16 = 110;
    /// 111
    pub const MIGRATE_SWITCH_HOST: u16 = 111;
    /// 112
    pub const MIGRATE_END: u16 = 112;
    /// 113
    pub const NAME: u16 = 113;
    /// 114
    pub const UUID: u16 = 114;
    /// 115
    pub const AGENT_CONNECTED_TOKENS: u16 = 115;
    /// 116
    pub const MIGRATE_BEGIN_SEAMLESS: u16 = 116;
    /// 117
    pub const MIGRATE_DST_SEAMLESS_ACK: u16 = 117;
    /// 118
    pub const MIGRATE_DST_SEAMLESS_NACK: u16 = 118;
}

fn mode16(m: MouseMode, ctx: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(m.bits()).map_err(|_| EncodeError::TooLarge {
        field: ctx,
        value: m.bits().into(),
    })
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::MigrateBegin(_) => Self::MIGRATE_BEGIN,
            Self::MigrateCancel => Self::MIGRATE_CANCEL,
            Self::Init(_) => Self::INIT,
            Self::ChannelsList(_) => Self::CHANNELS_LIST,
            Self::MouseMode { .. } => Self::MOUSE_MODE,
            Self::MultiMediaTime { .. } => Self::MULTI_MEDIA_TIME,
            Self::AgentConnected => Self::AGENT_CONNECTED,
            Self::AgentDisconnected { .. } => Self::AGENT_DISCONNECTED,
            Self::AgentData(_) => Self::AGENT_DATA,
            Self::AgentToken { .. } => Self::AGENT_TOKEN,
            Self::MigrateSwitchHost(_) => Self::MIGRATE_SWITCH_HOST,
            Self::MigrateEnd => Self::MIGRATE_END,
            Self::Name(_) => Self::NAME,
            Self::Uuid(_) => Self::UUID,
            Self::AgentConnectedTokens { .. } => Self::AGENT_CONNECTED_TOKENS,
            Self::MigrateBeginSeamless { .. } => Self::MIGRATE_BEGIN_SEAMLESS,
            Self::MigrateDstSeamlessAck => Self::MIGRATE_DST_SEAMLESS_ACK,
            Self::MigrateDstSeamlessNack => Self::MIGRATE_DST_SEAMLESS_NACK,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::MAIN, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::MIGRATE_BEGIN | Self::MIGRATE_SWITCH_HOST | Self::MIGRATE_BEGIN_SEAMLESS => {
                let (dst_info, end) =
                    DstInfo::decode(&mut r, msg_type != Self::MIGRATE_SWITCH_HOST)?;
                let m = match msg_type {
                    Self::MIGRATE_BEGIN => Self::MigrateBegin(dst_info),
                    Self::MIGRATE_SWITCH_HOST => Self::MigrateSwitchHost(dst_info),
                    _ => Self::MigrateBeginSeamless {
                        dst_info,
                        src_mig_version: r.read_u32("migrate_begin_seamless.src_mig_version")?,
                    },
                };
                finish_at(body.len(), end.max(r.pos()), "main migrate dst_info")?;
                return Ok(m);
            }
            Self::MIGRATE_CANCEL => Self::MigrateCancel,
            Self::INIT => {
                r.ensure(Init::SIZE, "main init")?;
                Self::Init(Init {
                    session_id: r.read_u32("main init.session_id")?,
                    display_channels_hint: r.read_u32("main init.display_channels_hint")?,
                    supported_mouse_modes: MouseMode::from_bits_retain(
                        r.read_u32("main init.supported_mouse_modes")?,
                    ),
                    current_mouse_mode: MouseMode::from_bits_retain(
                        r.read_u32("main init.current_mouse_mode")?,
                    ),
                    agent_connected: r.read_u32("main init.agent_connected")?,
                    agent_tokens: r.read_u32("main init.agent_tokens")?,
                    multi_media_time: r.read_u32("main init.multi_media_time")?,
                    ram_hint: r.read_u32("main init.ram_hint")?,
                })
            }
            Self::CHANNELS_LIST => {
                let n = r.read_u32("channels_list.num_of_channels")?;
                let n = r.check_count(n.into(), 2, "channels_list.channels")?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(ChannelId {
                        channel_type: ChannelType(r.read_u8("channels_list.type")?),
                        id: r.read_u8("channels_list.id")?,
                    });
                }
                Self::ChannelsList(list)
            }
            Self::MOUSE_MODE => {
                r.ensure(2 + 2, "main mouse_mode")?;
                Self::MouseMode {
                    supported_modes: MouseMode::from_bits_retain(
                        r.read_u16("mouse_mode.supported_modes")?.into(),
                    ),
                    current_mode: MouseMode::from_bits_retain(
                        r.read_u16("mouse_mode.current_mode")?.into(),
                    ),
                }
            }
            Self::MULTI_MEDIA_TIME => Self::MultiMediaTime {
                time: r.read_u32("multi_media_time.time")?,
            },
            Self::AGENT_CONNECTED => Self::AgentConnected,
            Self::AGENT_DISCONNECTED => Self::AgentDisconnected {
                error_code: r.read_u32("agent_disconnected.error_code")?,
            },
            Self::AGENT_DATA => Self::AgentData(r.read_rest()),
            Self::AGENT_TOKEN => Self::AgentToken {
                num_tokens: r.read_u32("agent_token.num_tokens")?,
            },
            Self::MIGRATE_END => Self::MigrateEnd,
            Self::NAME => {
                let n = r.read_u32("name.name_len")?;
                let n = r.check_count(n.into(), 1, "name.name")?;
                Self::Name(r.read_slice(n, "name.name")?)
            }
            Self::UUID => Self::Uuid(r.read_array("uuid.uuid")?),
            Self::AGENT_CONNECTED_TOKENS => Self::AgentConnectedTokens {
                num_tokens: r.read_u32("agent_connected_tokens.num_tokens")?,
            },
            Self::MIGRATE_DST_SEAMLESS_ACK => Self::MigrateDstSeamlessAck,
            Self::MIGRATE_DST_SEAMLESS_NACK => Self::MigrateDstSeamlessNack,
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("main server message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::MigrateBegin(d) => d.encode(w, true, |_| {})?,
            Self::MigrateSwitchHost(d) => d.encode(w, false, |_| {})?,
            Self::MigrateBeginSeamless {
                dst_info,
                src_mig_version,
            } => dst_info.encode(w, true, |w| w.write_u32(*src_mig_version))?,
            Self::MigrateCancel
            | Self::AgentConnected
            | Self::MigrateEnd
            | Self::MigrateDstSeamlessAck
            | Self::MigrateDstSeamlessNack => {}
            Self::Init(i) => {
                w.write_u32(i.session_id);
                w.write_u32(i.display_channels_hint);
                w.write_u32(i.supported_mouse_modes.bits());
                w.write_u32(i.current_mouse_mode.bits());
                w.write_u32(i.agent_connected);
                w.write_u32(i.agent_tokens);
                w.write_u32(i.multi_media_time);
                w.write_u32(i.ram_hint);
            }
            Self::ChannelsList(list) => {
                w.write_u32(WriteBuf::len_as(
                    list.len(),
                    "channels_list.num_of_channels",
                )?);
                for c in list {
                    w.write_u8(c.channel_type.0);
                    w.write_u8(c.id);
                }
            }
            Self::MouseMode {
                supported_modes,
                current_mode,
            } => {
                w.write_u16(mode16(*supported_modes, "mouse_mode.supported_modes")?);
                w.write_u16(mode16(*current_mode, "mouse_mode.current_mode")?);
            }
            Self::MultiMediaTime { time } => w.write_u32(*time),
            Self::AgentDisconnected { error_code } => w.write_u32(*error_code),
            Self::AgentData(d) => w.write_slice(d),
            Self::AgentToken { num_tokens } | Self::AgentConnectedTokens { num_tokens } => {
                w.write_u32(*num_tokens)
            }
            Self::Name(n) => {
                w.write_u32(WriteBuf::len_as(n.len(), "name.name_len")?);
                w.write_slice(n);
            }
            Self::Uuid(u) => w.write_slice(u),
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::MIGRATE_BEGIN => "migrate_begin",
            Self::MIGRATE_CANCEL => "migrate_cancel",
            Self::INIT => "init",
            Self::CHANNELS_LIST => "channels_list",
            Self::MOUSE_MODE => "mouse_mode",
            Self::MULTI_MEDIA_TIME => "multi_media_time",
            Self::AGENT_CONNECTED => "agent_connected",
            Self::AGENT_DISCONNECTED => "agent_disconnected",
            Self::AGENT_DATA => "agent_data",
            Self::AGENT_TOKEN => "agent_token",
            Self::MIGRATE_SWITCH_HOST => "migrate_switch_host",
            Self::MIGRATE_END => "migrate_end",
            Self::NAME => "name",
            Self::UUID => "uuid",
            Self::AGENT_CONNECTED_TOKENS => "agent_connected_tokens",
            Self::MIGRATE_BEGIN_SEAMLESS => "migrate_begin_seamless",
            Self::MIGRATE_DST_SEAMLESS_ACK => "migrate_dst_seamless_ack",
            Self::MIGRATE_DST_SEAMLESS_NACK => "migrate_dst_seamless_nack",
            _ => return None,
        })
    }
}

/// Client → server main-channel messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// 101 `CLIENT_INFO` (not sent by spice-gtk).
    ClientInfo {
        /// Client cache size.
        cache_size: u64,
    },
    /// 102 `MIGRATE_CONNECTED`: connected to the migration destination.
    MigrateConnected,
    /// 103 `MIGRATE_CONNECT_ERROR`.
    MigrateConnectError,
    /// 104 `ATTACH_CHANNELS`: asks for `CHANNELS_LIST`.
    AttachChannels,
    /// 105 `MOUSE_MODE_REQUEST` (u16 on the wire).
    MouseModeRequest {
        /// The mode wanted.
        mode: MouseMode,
    },
    /// 106 `AGENT_START`: tokens for server → client agent data (spice-gtk: `!0`).
    AgentStart {
        /// Number of tokens.
        num_tokens: u32,
    },
    /// 107 `AGENT_DATA`: a chunk (≤ 2048 bytes) of the VDAgent message stream, borrowed.
    AgentData(&'a [u8]),
    /// 108 `AGENT_TOKEN`: more tokens for the server.
    AgentToken {
        /// Number of tokens.
        num_tokens: u32,
    },
    /// 109 `MIGRATE_END`.
    MigrateEnd,
    /// 110 `MIGRATE_DST_DO_SEAMLESS` (to the destination).
    MigrateDstDoSeamless {
        /// The source's migration protocol version.
        src_version: u32,
    },
    /// 111 `MIGRATE_CONNECTED_SEAMLESS`.
    MigrateConnectedSeamless,
    /// 112 `QUALITY_INDICATOR`: raw bytes.
    QualityIndicator(&'a [u8]),
}

impl ClientMessage<'_> {
    /// 101
    pub const CLIENT_INFO: u16 = 101;
    /// 102
    pub const MIGRATE_CONNECTED: u16 = 102;
    /// 103
    pub const MIGRATE_CONNECT_ERROR: u16 = 103;
    /// 104
    pub const ATTACH_CHANNELS: u16 = 104;
    /// 105
    pub const MOUSE_MODE_REQUEST: u16 = 105;
    /// 106
    pub const AGENT_START: u16 = 106;
    /// 107
    pub const AGENT_DATA: u16 = 107;
    /// 108
    pub const AGENT_TOKEN: u16 = 108;
    /// 109
    pub const MIGRATE_END: u16 = 109;
    /// 110
    pub const MIGRATE_DST_DO_SEAMLESS: u16 = 110;
    /// 111
    pub const MIGRATE_CONNECTED_SEAMLESS: u16 = 111;
    /// 112
    pub const QUALITY_INDICATOR: u16 = 112;
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::ClientInfo { .. } => Self::CLIENT_INFO,
            Self::MigrateConnected => Self::MIGRATE_CONNECTED,
            Self::MigrateConnectError => Self::MIGRATE_CONNECT_ERROR,
            Self::AttachChannels => Self::ATTACH_CHANNELS,
            Self::MouseModeRequest { .. } => Self::MOUSE_MODE_REQUEST,
            Self::AgentStart { .. } => Self::AGENT_START,
            Self::AgentData(_) => Self::AGENT_DATA,
            Self::AgentToken { .. } => Self::AGENT_TOKEN,
            Self::MigrateEnd => Self::MIGRATE_END,
            Self::MigrateDstDoSeamless { .. } => Self::MIGRATE_DST_DO_SEAMLESS,
            Self::MigrateConnectedSeamless => Self::MIGRATE_CONNECTED_SEAMLESS,
            Self::QualityIndicator(_) => Self::QUALITY_INDICATOR,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::MAIN, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::CLIENT_INFO => Self::ClientInfo {
                cache_size: r.read_u64("client_info.cache_size")?,
            },
            Self::MIGRATE_CONNECTED => Self::MigrateConnected,
            Self::MIGRATE_CONNECT_ERROR => Self::MigrateConnectError,
            Self::ATTACH_CHANNELS => Self::AttachChannels,
            Self::MOUSE_MODE_REQUEST => Self::MouseModeRequest {
                mode: MouseMode::from_bits_retain(r.read_u16("mouse_mode_request.mode")?.into()),
            },
            Self::AGENT_START => Self::AgentStart {
                num_tokens: r.read_u32("agent_start.num_tokens")?,
            },
            Self::AGENT_DATA => Self::AgentData(r.read_rest()),
            Self::AGENT_TOKEN => Self::AgentToken {
                num_tokens: r.read_u32("agent_token.num_tokens")?,
            },
            Self::MIGRATE_END => Self::MigrateEnd,
            Self::MIGRATE_DST_DO_SEAMLESS => Self::MigrateDstDoSeamless {
                src_version: r.read_u32("migrate_dst_do_seamless.src_version")?,
            },
            Self::MIGRATE_CONNECTED_SEAMLESS => Self::MigrateConnectedSeamless,
            Self::QUALITY_INDICATOR => Self::QualityIndicator(r.read_rest()),
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("main client message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::ClientInfo { cache_size } => w.write_u64(*cache_size),
            Self::MigrateConnected
            | Self::MigrateConnectError
            | Self::AttachChannels
            | Self::MigrateEnd
            | Self::MigrateConnectedSeamless => {}
            Self::MouseModeRequest { mode } => {
                w.write_u16(mode16(*mode, "mouse_mode_request.mode")?)
            }
            Self::AgentStart { num_tokens } | Self::AgentToken { num_tokens } => {
                w.write_u32(*num_tokens)
            }
            Self::AgentData(d) | Self::QualityIndicator(d) => w.write_slice(d),
            Self::MigrateDstDoSeamless { src_version } => w.write_u32(*src_version),
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::CLIENT_INFO => "client_info",
            Self::MIGRATE_CONNECTED => "migrate_connected",
            Self::MIGRATE_CONNECT_ERROR => "migrate_connect_error",
            Self::ATTACH_CHANNELS => "attach_channels",
            Self::MOUSE_MODE_REQUEST => "mouse_mode_request",
            Self::AGENT_START => "agent_start",
            Self::AGENT_DATA => "agent_data",
            Self::AGENT_TOKEN => "agent_token",
            Self::MIGRATE_END => "migrate_end",
            Self::MIGRATE_DST_DO_SEAMLESS => "migrate_dst_do_seamless",
            Self::MIGRATE_CONNECTED_SEAMLESS => "migrate_connected_seamless",
            Self::QUALITY_INDICATOR => "quality_indicator",
            _ => return None,
        })
    }
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a server main message.
#[doc(hidden)]
pub fn fuzz_server(data: &[u8]) {
    crate::message::fuzz_roundtrip!(ServerMessage, ChannelType::MAIN, data);
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a client main message.
#[doc(hidden)]
pub fn fuzz_client(data: &[u8]) {
    crate::message::fuzz_roundtrip!(ClientMessage, ChannelType::MAIN, data);
}

/// proptest strategies covering every message of both directions.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::prelude::*;

    fn mode32() -> impl Strategy<Value = MouseMode> {
        any::<u32>().prop_map(MouseMode::from_bits_retain)
    }

    fn mode16() -> impl Strategy<Value = MouseMode> {
        any::<u16>().prop_map(|b| MouseMode::from_bits_retain(b.into()))
    }

    fn dst_info(host_nullable: bool) -> impl Strategy<Value = DstInfo<'static>> {
        let host = if host_nullable {
            proptest::option::of(leaked_bytes(0..24)).boxed()
        } else {
            leaked_bytes(0..24).prop_map(Some).boxed()
        };
        (
            any::<u16>(),
            any::<u16>(),
            host,
            proptest::option::of(leaked_bytes(0..24)),
        )
            .prop_map(|(port, sport, host, cert_subject)| DstInfo {
                port,
                sport,
                host,
                cert_subject,
            })
    }

    fn init() -> impl Strategy<Value = Init> {
        (
            (any::<u32>(), any::<u32>(), mode32(), mode32()),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        )
            .prop_map(
                |(
                    (session_id, display_channels_hint, supported_mouse_modes, current_mouse_mode),
                    (agent_connected, agent_tokens, multi_media_time, ram_hint),
                )| Init {
                    session_id,
                    display_channels_hint,
                    supported_mouse_modes,
                    current_mouse_mode,
                    agent_connected,
                    agent_tokens,
                    multi_media_time,
                    ram_hint,
                },
            )
    }

    /// Every server main message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            dst_info(false).prop_map(ServerMessage::MigrateBegin),
            Just(ServerMessage::MigrateCancel),
            init().prop_map(ServerMessage::Init),
            proptest::collection::vec((any::<u8>(), any::<u8>()), 0..12).prop_map(|v| {
                ServerMessage::ChannelsList(
                    v.into_iter()
                        .map(|(t, id)| ChannelId {
                            channel_type: ChannelType(t),
                            id,
                        })
                        .collect(),
                )
            }),
            (mode16(), mode16()).prop_map(|(supported_modes, current_mode)| {
                ServerMessage::MouseMode {
                    supported_modes,
                    current_mode,
                }
            }),
            any::<u32>().prop_map(|time| ServerMessage::MultiMediaTime { time }),
            Just(ServerMessage::AgentConnected),
            any::<u32>().prop_map(|error_code| ServerMessage::AgentDisconnected { error_code }),
            leaked_bytes(0..96).prop_map(ServerMessage::AgentData),
            any::<u32>().prop_map(|num_tokens| ServerMessage::AgentToken { num_tokens }),
            dst_info(true).prop_map(ServerMessage::MigrateSwitchHost),
            Just(ServerMessage::MigrateEnd),
            leaked_bytes(0..24).prop_map(ServerMessage::Name),
            any::<[u8; 16]>().prop_map(ServerMessage::Uuid),
            any::<u32>().prop_map(|num_tokens| ServerMessage::AgentConnectedTokens { num_tokens }),
            (dst_info(false), any::<u32>()).prop_map(|(dst_info, src_mig_version)| {
                ServerMessage::MigrateBeginSeamless {
                    dst_info,
                    src_mig_version,
                }
            }),
            Just(ServerMessage::MigrateDstSeamlessAck),
            Just(ServerMessage::MigrateDstSeamlessNack),
        ]
        .boxed()
    }

    /// Every client main message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            any::<u64>().prop_map(|cache_size| ClientMessage::ClientInfo { cache_size }),
            Just(ClientMessage::MigrateConnected),
            Just(ClientMessage::MigrateConnectError),
            Just(ClientMessage::AttachChannels),
            mode16().prop_map(|mode| ClientMessage::MouseModeRequest { mode }),
            any::<u32>().prop_map(|num_tokens| ClientMessage::AgentStart { num_tokens }),
            leaked_bytes(0..96).prop_map(ClientMessage::AgentData),
            any::<u32>().prop_map(|num_tokens| ClientMessage::AgentToken { num_tokens }),
            Just(ClientMessage::MigrateEnd),
            any::<u32>()
                .prop_map(|src_version| ClientMessage::MigrateDstDoSeamless { src_version }),
            Just(ClientMessage::MigrateConnectedSeamless),
            leaked_bytes(0..16).prop_map(ClientMessage::QualityIndicator),
        ]
        .boxed()
    }
}
