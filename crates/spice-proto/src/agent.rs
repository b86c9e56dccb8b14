//! The VDAgent protocol (spice-protocol `vd_agent.h`, protocol.md §4.2-4.4): the messages
//! exchanged between the client, the server and the guest agent, carried inside main-channel
//! `AGENT_DATA` messages (≤ [`VD_AGENT_MAX_DATA_SIZE`] bytes each) and, between server and
//! guest, in [`VdiChunkHeader`] chunks on the virtio port `com.redhat.spice.0`.
//!
//! - [`AgentHeader`] (20 bytes) + body → [`AgentMessage`] with [`decode_message`] /
//!   [`AgentMessage::decode`]; the clipboard messages' optional prefixes depend on the
//!   negotiated capabilities, passed explicitly as [`ClipboardOptions`].
//! - [`agent_data_chunks`] splits an encoded message for `AGENT_DATA`;
//!   [`write_vdi_chunks`] / [`VdiDechunker`] do the same for VDI chunks.
//! - [`AgentReassembler`] rebuilds messages from a chunked stream with a caller-given maximum
//!   message size; nothing is allocated beyond the bytes actually received.

use crate::error::{DecodeError, EncodeError};
use crate::wire::{ReadCursor, WriteBuf};

/// `VD_AGENT_PROTOCOL`: the only protocol version.
pub const VD_AGENT_PROTOCOL: u32 = 1;
/// `VD_AGENT_MAX_DATA_SIZE`: the largest main-channel `AGENT_DATA` body, and the largest
/// VDI chunk payload spice-server accepts.
pub const VD_AGENT_MAX_DATA_SIZE: usize = 2048;

/// Agent message type (`VD_AGENT_*`, u32). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentMessageType(pub u32);

impl AgentMessageType {
    /// 1: server → agent, [`MouseState`].
    pub const MOUSE_STATE: Self = Self(1);
    /// 2: client → agent, [`MonitorsConfig`].
    pub const MONITORS_CONFIG: Self = Self(2);
    /// 3: agent → client, [`Reply`].
    pub const REPLY: Self = Self(3);
    /// 4: both ways, [`Clipboard`] data.
    pub const CLIPBOARD: Self = Self(4);
    /// 5: client → agent, [`DisplayConfig`].
    pub const DISPLAY_CONFIG: Self = Self(5);
    /// 6: both ways, [`AnnounceCapabilities`].
    pub const ANNOUNCE_CAPABILITIES: Self = Self(6);
    /// 7: both ways, [`ClipboardGrab`].
    pub const CLIPBOARD_GRAB: Self = Self(7);
    /// 8: both ways, [`ClipboardRequest`].
    pub const CLIPBOARD_REQUEST: Self = Self(8);
    /// 9: both ways, [`ClipboardRelease`].
    pub const CLIPBOARD_RELEASE: Self = Self(9);
    /// 10: client → agent, [`FileXferStart`].
    pub const FILE_XFER_START: Self = Self(10);
    /// 11: both ways, [`FileXferStatus`].
    pub const FILE_XFER_STATUS: Self = Self(11);
    /// 12: client → agent, [`FileXferData`].
    pub const FILE_XFER_DATA: Self = Self(12);
    /// 13: server → agent, empty.
    pub const CLIENT_DISCONNECTED: Self = Self(13);
    /// 14: client → agent, `i32 max`.
    pub const MAX_CLIPBOARD: Self = Self(14);
    /// 15: client → agent, [`AudioVolumeSync`].
    pub const AUDIO_VOLUME_SYNC: Self = Self(15);
    /// 16: server → agent, [`GraphicsDeviceInfo`].
    pub const GRAPHICS_DEVICE_INFO: Self = Self(16);
    /// 17: `VD_AGENT_END_MESSAGE`, one past the last defined type.
    pub const END_MESSAGE: Self = Self(17);
}

/// Agent capability bit numbers (`VD_AGENT_CAP_*`), for [`AgentCaps`].
pub mod cap {
    /// 0: agent handles [`super::MouseState`].
    pub const MOUSE_STATE: u32 = 0;
    /// 1: monitors config.
    pub const MONITORS_CONFIG: u32 = 1;
    /// 2: replies to monitors/display config.
    pub const REPLY: u32 = 2;
    /// 3: old-style clipboard.
    pub const CLIPBOARD: u32 = 3;
    /// 4: display config.
    pub const DISPLAY_CONFIG: u32 = 4;
    /// 5: clipboard grab/request/release.
    pub const CLIPBOARD_BY_DEMAND: u32 = 5;
    /// 6: clipboard messages carry a selection prefix.
    pub const CLIPBOARD_SELECTION: u32 = 6;
    /// 7: monitors with 0×0 size are disabled.
    pub const SPARSE_MONITORS_CONFIG: u32 = 7;
    /// 8: guest text uses LF line ends.
    pub const GUEST_LINEEND_LF: u32 = 8;
    /// 9: guest text uses CRLF line ends.
    pub const GUEST_LINEEND_CRLF: u32 = 9;
    /// 10: max clipboard size.
    pub const MAX_CLIPBOARD: u32 = 10;
    /// 11: audio volume sync.
    pub const AUDIO_VOLUME_SYNC: u32 = 11;
    /// 12: monitors config positions are honoured.
    pub const MONITORS_CONFIG_POSITION: u32 = 12;
    /// 13: file transfer disabled.
    pub const FILE_XFER_DISABLED: u32 = 13;
    /// 14: file transfer status carries detailed errors.
    pub const FILE_XFER_DETAILED_ERRORS: u32 = 14;
    /// 15: graphics device info.
    pub const GRAPHICS_DEVICE_INFO: u32 = 15;
    /// 16: no release before a new grab.
    pub const CLIPBOARD_NO_RELEASE_ON_REGRAB: u32 = 16;
    /// 17: clipboard grabs carry a serial.
    pub const CLIPBOARD_GRAB_SERIAL: u32 = 17;
    /// 18: `VD_AGENT_END_CAP`, one past the last defined bit.
    pub const END_CAP: u32 = 18;
}

/// A capability bitmap as carried by [`AnnounceCapabilities`]: `u32` words, bit *k* of the
/// map is bit `k % 32` of word `k / 32`. Unknown bits are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentCaps(pub Vec<u32>);

impl AgentCaps {
    /// A bitmap with the given [`cap`] bits set.
    pub fn with(bits: &[u32]) -> Self {
        let mut c = Self::default();
        for &b in bits {
            c.set(b);
        }
        c
    }

    /// True when bit `bit` is set.
    pub fn has(&self, bit: u32) -> bool {
        self.0
            .get((bit / 32) as usize)
            .is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// Sets bit `bit`, growing the word list as needed.
    pub fn set(&mut self, bit: u32) {
        let i = (bit / 32) as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] |= 1 << (bit % 32);
    }
}

/// Which optional clipboard prefixes are on the wire; both depend on what the two ends
/// announced, so the caller states them explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClipboardOptions {
    /// `VD_AGENT_CAP_CLIPBOARD_SELECTION` negotiated: clipboard, grab, request and release
    /// messages start with `u8 selection; u8 reserved[3]`.
    pub selection: bool,
    /// `VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL` negotiated: grabs carry `u32 serial`.
    pub grab_serial: bool,
}

impl ClipboardOptions {
    /// The options both ends support, from the two announced capability sets.
    pub fn negotiated(ours: &AgentCaps, theirs: &AgentCaps) -> Self {
        let both = |b| ours.has(b) && theirs.has(b);
        Self {
            selection: both(cap::CLIPBOARD_SELECTION),
            grab_serial: both(cap::CLIPBOARD_GRAB_SERIAL),
        }
    }
}

/// Clipboard selection (u8). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClipboardSelection(pub u8);

impl ClipboardSelection {
    /// 0: the CLIPBOARD selection.
    pub const CLIPBOARD: Self = Self(0);
    /// 1: PRIMARY (X11 selection).
    pub const PRIMARY: Self = Self(1);
    /// 2: SECONDARY.
    pub const SECONDARY: Self = Self(2);
}

/// Clipboard data type (u32). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClipboardType(pub u32);

impl ClipboardType {
    /// 0: none.
    pub const NONE: Self = Self(0);
    /// 1: UTF-8 text.
    pub const UTF8_TEXT: Self = Self(1);
    /// 2: PNG image.
    pub const IMAGE_PNG: Self = Self(2);
    /// 3: BMP image.
    pub const IMAGE_BMP: Self = Self(3);
    /// 4: TIFF image.
    pub const IMAGE_TIFF: Self = Self(4);
    /// 5: JPEG image.
    pub const IMAGE_JPG: Self = Self(5);
    /// 6: NUL-separated UTF-8 paths on the webdav share, first item `copy` or `cut`.
    pub const FILE_LIST: Self = Self(6);
}

bitflags::bitflags! {
    /// `VD_AGENT_*BUTTON_MASK` of [`MouseState`] (note: bit 0 unused). Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AgentMouseButtons: u32 {
        /// Left.
        const LEFT = 1 << 1;
        /// Middle.
        const MIDDLE = 1 << 2;
        /// Right.
        const RIGHT = 1 << 3;
        /// Wheel up.
        const UP = 1 << 4;
        /// Wheel down.
        const DOWN = 1 << 5;
        /// Side.
        const SIDE = 1 << 6;
        /// Extra.
        const EXTRA = 1 << 7;
    }
}

bitflags::bitflags! {
    /// `VD_AGENT_CONFIG_MONITORS_FLAG_*`. Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MonitorsConfigFlags: u32 {
        /// Honour the monitors' x/y positions.
        const USE_POS = 1 << 0;
        /// Physical sizes follow the monitor list.
        const PHYSICAL_SIZE = 1 << 1;
    }
}

bitflags::bitflags! {
    /// `VD_AGENT_DISPLAY_CONFIG_FLAG_*`. Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DisplayConfigFlags: u32 {
        /// Disable the wallpaper.
        const DISABLE_WALLPAPER = 1 << 0;
        /// Disable font smoothing.
        const DISABLE_FONT_SMOOTH = 1 << 1;
        /// Disable animations.
        const DISABLE_ANIMATION = 1 << 2;
        /// Apply `depth`.
        const SET_COLOR_DEPTH = 1 << 3;
    }
}

/// The 20-byte `VDAgentMessage` header: `u32 protocol; u32 type; u64 opaque; u32 size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHeader {
    /// Should be [`VD_AGENT_PROTOCOL`].
    pub protocol: u32,
    /// Message type.
    pub msg_type: AgentMessageType,
    /// Opaque value, echoed by nobody (0 in practice).
    pub opaque: u64,
    /// Body size in bytes.
    pub size: u32,
}

impl AgentHeader {
    /// `u32 protocol + u32 type + u64 opaque + u32 size`.
    pub const SIZE: usize = 4 + 4 + 8 + 4;

    /// Reads a header.
    pub fn decode(r: &mut ReadCursor<'_>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "agent header")?;
        Ok(Self {
            protocol: r.read_u32("agent header.protocol")?,
            msg_type: AgentMessageType(r.read_u32("agent header.type")?),
            opaque: r.read_u64("agent header.opaque")?,
            size: r.read_u32("agent header.size")?,
        })
    }

    /// Writes a header.
    pub fn encode(&self, w: &mut WriteBuf<'_>) {
        w.write_u32(self.protocol);
        w.write_u32(self.msg_type.0);
        w.write_u64(self.opaque);
        w.write_u32(self.size);
    }
}

/// `VDAgentMouseState`: `u32 x; u32 y; u32 buttons; u8 display_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseState {
    /// X.
    pub x: u32,
    /// Y.
    pub y: u32,
    /// Buttons held.
    pub buttons: AgentMouseButtons,
    /// Display the position is on.
    pub display_id: u8,
}

/// `VDAgentMonConfig`: `u32 height; u32 width; u32 depth; i32 x; i32 y` (20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonConfig {
    /// Height (0 with width 0: disabled, `SPARSE_MONITORS_CONFIG`).
    pub height: u32,
    /// Width.
    pub width: u32,
    /// Bits per pixel.
    pub depth: u32,
    /// X position (with `USE_POS`).
    pub x: i32,
    /// Y position (with `USE_POS`).
    pub y: i32,
}

/// `VDAgentMonitorMM`: physical size in millimetres (`u16 height; u16 width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorMm {
    /// Height in mm.
    pub height: u16,
    /// Width in mm.
    pub width: u16,
}

/// `VDAgentMonitorsConfig`: `u32 n; u32 flags; MonConfig[n]; [MonitorMM[n] if PHYSICAL_SIZE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorsConfig {
    /// Flags; `PHYSICAL_SIZE` says whether `physical_sizes` is on the wire.
    pub flags: MonitorsConfigFlags,
    /// The monitors.
    pub monitors: Vec<MonConfig>,
    /// One per monitor when `flags` has `PHYSICAL_SIZE`, else empty.
    pub physical_sizes: Vec<MonitorMm>,
}

/// Result code of [`Reply`] (u32). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyError(pub u32);

impl ReplyError {
    /// 1: success.
    pub const SUCCESS: Self = Self(1);
    /// 2: error.
    pub const ERROR: Self = Self(2);
}

/// `VDAgentReply`: the agent's answer to a config message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The message type answered.
    pub msg_type: AgentMessageType,
    /// The outcome.
    pub error: ReplyError,
}

/// `VDAgentClipboard`: `[u8 selection; u8 reserved[3]]; u32 type; u8 data[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clipboard<'a> {
    /// Present exactly when [`ClipboardOptions::selection`].
    pub selection: Option<ClipboardSelection>,
    /// Data type.
    pub data_type: ClipboardType,
    /// The clipboard content, borrowed.
    pub data: &'a [u8],
}

/// `VDAgentDisplayConfig`: `u32 flags; u32 depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayConfig {
    /// What to change.
    pub flags: DisplayConfigFlags,
    /// Colour depth (with `SET_COLOR_DEPTH`).
    pub depth: u32,
}

/// `VDAgentAnnounceCapabilities`: `u32 request; u32 caps[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceCapabilities {
    /// Non-zero: the peer should answer with its own capabilities.
    pub request: u32,
    /// The capability bitmap.
    pub caps: AgentCaps,
}

/// `VDAgentClipboardGrab`: `[selection prefix]; [u32 serial]; u32 types[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardGrab {
    /// Present exactly when [`ClipboardOptions::selection`].
    pub selection: Option<ClipboardSelection>,
    /// Present exactly when [`ClipboardOptions::grab_serial`].
    pub serial: Option<u32>,
    /// The offered types.
    pub types: Vec<ClipboardType>,
}

/// `VDAgentClipboardRequest`: `[selection prefix]; u32 type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipboardRequest {
    /// Present exactly when [`ClipboardOptions::selection`].
    pub selection: Option<ClipboardSelection>,
    /// The wanted type.
    pub data_type: ClipboardType,
}

/// `VDAgentClipboardRelease`: `[selection prefix]` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipboardRelease {
    /// Present exactly when [`ClipboardOptions::selection`].
    pub selection: Option<ClipboardSelection>,
}

/// `VDAgentFileXferStartMessage`: `u32 id; u8 data[]` (GKeyFile text with name and size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileXferStart<'a> {
    /// Transfer id.
    pub id: u32,
    /// `[vdagent-file-xfer]\nname=…\nsize=…\n`, borrowed.
    pub data: &'a [u8],
}

/// `VD_AGENT_FILE_XFER_STATUS_*` (u32). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileXferResult(pub u32);

impl FileXferResult {
    /// 0: go on sending data.
    pub const CAN_SEND_DATA: Self = Self(0);
    /// 1: cancelled.
    pub const CANCELLED: Self = Self(1);
    /// 2: error (detail: [`FileXferDetail::Error`]).
    pub const ERROR: Self = Self(2);
    /// 3: done.
    pub const SUCCESS: Self = Self(3);
    /// 4: not enough space (detail: [`FileXferDetail::NotEnoughSpace`]).
    pub const NOT_ENOUGH_SPACE: Self = Self(4);
    /// 5: guest session locked.
    pub const SESSION_LOCKED: Self = Self(5);
    /// 6: no session agent.
    pub const VDAGENT_NOT_CONNECTED: Self = Self(6);
    /// 7: file transfer disabled.
    pub const DISABLED: Self = Self(7);
}

/// `VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO`: `error_code` is a `G_IO_ERROR_*`.
pub const FILE_XFER_ERROR_GLIB_IO: u8 = 0;

/// The optional detail after a file-transfer status (`FILE_XFER_DETAILED_ERRORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileXferDetail<'a> {
    /// No detail bytes.
    None,
    /// With [`FileXferResult::ERROR`], exactly 5 bytes: `u8 error_type; u32 error_code`.
    Error {
        /// [`FILE_XFER_ERROR_GLIB_IO`] or unknown.
        error_type: u8,
        /// Error code in that domain.
        error_code: u32,
    },
    /// With [`FileXferResult::NOT_ENOUGH_SPACE`], exactly 8 bytes: `u64 disk_free_space`.
    NotEnoughSpace {
        /// Free bytes on the guest disk.
        disk_free_space: u64,
    },
    /// Any other non-empty detail bytes, kept as they are.
    Other(&'a [u8]),
}

/// `VDAgentFileXferStatusMessage`: `u32 id; u32 result; u8 data[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileXferStatus<'a> {
    /// Transfer id.
    pub id: u32,
    /// Outcome.
    pub result: FileXferResult,
    /// Detail payload.
    pub detail: FileXferDetail<'a>,
}

/// `VDAgentFileXferDataMessage`: `u32 id; u64 size; u8 data[size]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileXferData<'a> {
    /// Transfer id.
    pub id: u32,
    /// File bytes, borrowed (`size` = their length).
    pub data: &'a [u8],
}

/// `VDAgentAudioVolumeSync`: `u8 is_playback; u8 mute; u8 nchannels; u16 volume[n]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioVolumeSync {
    /// Non-zero: playback; zero: record.
    pub is_playback: u8,
    /// Non-zero: muted.
    pub mute: u8,
    /// One volume per channel (≤ 255).
    pub volumes: Vec<u16>,
}

/// `VDAgentDeviceDisplayInfo`: `u32 channel_id; u32 monitor_id; u32 device_display_id;
/// u32 device_address_len; u8 device_address[len]` (NUL-terminated string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDisplayInfo<'a> {
    /// SPICE display channel id.
    pub channel_id: u32,
    /// Monitor within that channel.
    pub monitor_id: u32,
    /// Display index within the device.
    pub device_display_id: u32,
    /// Device address as sent (e.g. `pci/0000/02.0\0`), borrowed.
    pub device_address: &'a [u8],
}

impl DeviceDisplayInfo<'_> {
    /// Four u32 fields before the address.
    pub const FIXED_SIZE: usize = 4 * 4;
}

/// `VDAgentGraphicsDeviceInfo`: `u32 count; VDAgentDeviceDisplayInfo[count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsDeviceInfo<'a> {
    /// The mappings.
    pub devices: Vec<DeviceDisplayInfo<'a>>,
}

/// One agent message body, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentMessage<'a> {
    /// 1 `MOUSE_STATE`.
    MouseState(MouseState),
    /// 2 `MONITORS_CONFIG`.
    MonitorsConfig(MonitorsConfig),
    /// 3 `REPLY`.
    Reply(Reply),
    /// 4 `CLIPBOARD`.
    Clipboard(Clipboard<'a>),
    /// 5 `DISPLAY_CONFIG`.
    DisplayConfig(DisplayConfig),
    /// 6 `ANNOUNCE_CAPABILITIES`.
    AnnounceCapabilities(AnnounceCapabilities),
    /// 7 `CLIPBOARD_GRAB`.
    ClipboardGrab(ClipboardGrab),
    /// 8 `CLIPBOARD_REQUEST`.
    ClipboardRequest(ClipboardRequest),
    /// 9 `CLIPBOARD_RELEASE`.
    ClipboardRelease(ClipboardRelease),
    /// 10 `FILE_XFER_START`.
    FileXferStart(FileXferStart<'a>),
    /// 11 `FILE_XFER_STATUS`.
    FileXferStatus(FileXferStatus<'a>),
    /// 12 `FILE_XFER_DATA`.
    FileXferData(FileXferData<'a>),
    /// 13 `CLIENT_DISCONNECTED` (empty).
    ClientDisconnected,
    /// 14 `MAX_CLIPBOARD`: `i32 max` (bytes; negative = unlimited in spice-gtk).
    MaxClipboard {
        /// The limit.
        max: i32,
    },
    /// 15 `AUDIO_VOLUME_SYNC`.
    AudioVolumeSync(AudioVolumeSync),
    /// 16 `GRAPHICS_DEVICE_INFO`.
    GraphicsDeviceInfo(GraphicsDeviceInfo<'a>),
    /// A type this crate does not know (0 or ≥ 17), body kept as it is.
    Unknown {
        /// The type from the header.
        msg_type: AgentMessageType,
        /// The body, borrowed.
        data: &'a [u8],
    },
}

fn read_selection(
    r: &mut ReadCursor<'_>,
    on: bool,
) -> Result<Option<ClipboardSelection>, DecodeError> {
    if !on {
        return Ok(None);
    }
    // u8 selection + u8 reserved[3] (reserved bytes are ignored, written as 0)
    let sel = ClipboardSelection(r.read_u8("agent clipboard.selection")?);
    r.skip(3, "agent clipboard.reserved")?;
    Ok(Some(sel))
}

fn write_selection(w: &mut WriteBuf<'_>, sel: Option<ClipboardSelection>) {
    if let Some(s) = sel {
        w.write_u8(s.0);
        w.write_zeros(3);
    }
}

/// True when raw detail bytes would decode as no detail or as a typed detail.
fn raw_detail_is_ambiguous(result: FileXferResult, d: &[u8]) -> bool {
    d.is_empty()
        || (result == FileXferResult::ERROR && d.len() == 5)
        || (result == FileXferResult::NOT_ENOUGH_SPACE && d.len() == 8)
}

fn read_volumes(r: &mut ReadCursor<'_>, n: u8, ctx: &'static str) -> Result<Vec<u16>, DecodeError> {
    let n = r.check_count(n.into(), 2, ctx)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.read_u16(ctx)?);
    }
    Ok(v)
}

impl<'a> AgentMessage<'a> {
    /// The message type for the header.
    pub fn msg_type(&self) -> AgentMessageType {
        use AgentMessageType as T;
        match self {
            Self::MouseState(_) => T::MOUSE_STATE,
            Self::MonitorsConfig(_) => T::MONITORS_CONFIG,
            Self::Reply(_) => T::REPLY,
            Self::Clipboard(_) => T::CLIPBOARD,
            Self::DisplayConfig(_) => T::DISPLAY_CONFIG,
            Self::AnnounceCapabilities(_) => T::ANNOUNCE_CAPABILITIES,
            Self::ClipboardGrab(_) => T::CLIPBOARD_GRAB,
            Self::ClipboardRequest(_) => T::CLIPBOARD_REQUEST,
            Self::ClipboardRelease(_) => T::CLIPBOARD_RELEASE,
            Self::FileXferStart(_) => T::FILE_XFER_START,
            Self::FileXferStatus(_) => T::FILE_XFER_STATUS,
            Self::FileXferData(_) => T::FILE_XFER_DATA,
            Self::ClientDisconnected => T::CLIENT_DISCONNECTED,
            Self::MaxClipboard { .. } => T::MAX_CLIPBOARD,
            Self::AudioVolumeSync(_) => T::AUDIO_VOLUME_SYNC,
            Self::GraphicsDeviceInfo(_) => T::GRAPHICS_DEVICE_INFO,
            Self::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// The clipboard options under which this message's encoding decodes back to it (the
    /// presence of its optional prefixes; default for non-clipboard messages).
    pub fn clipboard_options(&self) -> ClipboardOptions {
        let sel = |s: &Option<ClipboardSelection>| s.is_some();
        match self {
            Self::Clipboard(c) => ClipboardOptions {
                selection: sel(&c.selection),
                grab_serial: false,
            },
            Self::ClipboardGrab(g) => ClipboardOptions {
                selection: sel(&g.selection),
                grab_serial: g.serial.is_some(),
            },
            Self::ClipboardRequest(c) => ClipboardOptions {
                selection: sel(&c.selection),
                grab_serial: false,
            },
            Self::ClipboardRelease(c) => ClipboardOptions {
                selection: sel(&c.selection),
                grab_serial: false,
            },
            _ => ClipboardOptions::default(),
        }
    }

    /// Decodes one whole body of type `msg_type`. Bodies must be consumed exactly.
    pub fn decode(
        msg_type: AgentMessageType,
        body: &'a [u8],
        opts: ClipboardOptions,
    ) -> Result<Self, DecodeError> {
        use AgentMessageType as T;
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            T::MOUSE_STATE => {
                // u32 x + u32 y + u32 buttons + u8 display_id
                r.ensure(4 + 4 + 4 + 1, "agent mouse_state")?;
                Self::MouseState(MouseState {
                    x: r.read_u32("agent mouse_state.x")?,
                    y: r.read_u32("agent mouse_state.y")?,
                    buttons: AgentMouseButtons::from_bits_retain(
                        r.read_u32("agent mouse_state.buttons")?,
                    ),
                    display_id: r.read_u8("agent mouse_state.display_id")?,
                })
            }
            T::MONITORS_CONFIG => {
                r.ensure(4 + 4, "agent monitors_config")?;
                let n = r.read_u32("agent monitors_config.num_of_monitors")?;
                let flags = MonitorsConfigFlags::from_bits_retain(
                    r.read_u32("agent monitors_config.flags")?,
                );
                let physical = flags.contains(MonitorsConfigFlags::PHYSICAL_SIZE);
                let per_monitor = 20 + if physical { 4 } else { 0 };
                let n = r.check_count(n.into(), per_monitor, "agent monitors_config.monitors")?;
                let mut monitors = Vec::with_capacity(n);
                for _ in 0..n {
                    monitors.push(MonConfig {
                        height: r.read_u32("agent mon_config.height")?,
                        width: r.read_u32("agent mon_config.width")?,
                        depth: r.read_u32("agent mon_config.depth")?,
                        x: r.read_i32("agent mon_config.x")?,
                        y: r.read_i32("agent mon_config.y")?,
                    });
                }
                let mut physical_sizes = Vec::new();
                if physical {
                    physical_sizes.reserve_exact(n);
                    for _ in 0..n {
                        physical_sizes.push(MonitorMm {
                            height: r.read_u16("agent monitor_mm.height")?,
                            width: r.read_u16("agent monitor_mm.width")?,
                        });
                    }
                }
                Self::MonitorsConfig(MonitorsConfig {
                    flags,
                    monitors,
                    physical_sizes,
                })
            }
            T::REPLY => {
                r.ensure(4 + 4, "agent reply")?;
                Self::Reply(Reply {
                    msg_type: AgentMessageType(r.read_u32("agent reply.type")?),
                    error: ReplyError(r.read_u32("agent reply.error")?),
                })
            }
            T::CLIPBOARD => Self::Clipboard(Clipboard {
                selection: read_selection(&mut r, opts.selection)?,
                data_type: ClipboardType(r.read_u32("agent clipboard.type")?),
                data: r.read_rest(),
            }),
            T::DISPLAY_CONFIG => {
                r.ensure(4 + 4, "agent display_config")?;
                Self::DisplayConfig(DisplayConfig {
                    flags: DisplayConfigFlags::from_bits_retain(
                        r.read_u32("agent display_config.flags")?,
                    ),
                    depth: r.read_u32("agent display_config.depth")?,
                })
            }
            T::ANNOUNCE_CAPABILITIES => {
                let request = r.read_u32("agent announce_capabilities.request")?;
                let n = r.remaining() / 4;
                let mut caps = Vec::with_capacity(n);
                for _ in 0..n {
                    caps.push(r.read_u32("agent announce_capabilities.caps")?);
                }
                Self::AnnounceCapabilities(AnnounceCapabilities {
                    request,
                    caps: AgentCaps(caps),
                })
            }
            T::CLIPBOARD_GRAB => {
                let selection = read_selection(&mut r, opts.selection)?;
                let serial = if opts.grab_serial {
                    Some(r.read_u32("agent clipboard_grab.serial")?)
                } else {
                    None
                };
                let n = r.remaining() / 4;
                let mut types = Vec::with_capacity(n);
                for _ in 0..n {
                    types.push(ClipboardType(r.read_u32("agent clipboard_grab.types")?));
                }
                Self::ClipboardGrab(ClipboardGrab {
                    selection,
                    serial,
                    types,
                })
            }
            T::CLIPBOARD_REQUEST => Self::ClipboardRequest(ClipboardRequest {
                selection: read_selection(&mut r, opts.selection)?,
                data_type: ClipboardType(r.read_u32("agent clipboard_request.type")?),
            }),
            T::CLIPBOARD_RELEASE => Self::ClipboardRelease(ClipboardRelease {
                selection: read_selection(&mut r, opts.selection)?,
            }),
            T::FILE_XFER_START => Self::FileXferStart(FileXferStart {
                id: r.read_u32("agent file_xfer_start.id")?,
                data: r.read_rest(),
            }),
            T::FILE_XFER_STATUS => {
                r.ensure(4 + 4, "agent file_xfer_status")?;
                let id = r.read_u32("agent file_xfer_status.id")?;
                let result = FileXferResult(r.read_u32("agent file_xfer_status.result")?);
                let rest = r.read_rest();
                let mut d = ReadCursor::new(rest);
                let detail = match (result, rest.len()) {
                    (_, 0) => FileXferDetail::None,
                    (FileXferResult::ERROR, 5) => FileXferDetail::Error {
                        error_type: d.read_u8("agent file_xfer_status.error_type")?,
                        error_code: d.read_u32("agent file_xfer_status.error_code")?,
                    },
                    (FileXferResult::NOT_ENOUGH_SPACE, 8) => FileXferDetail::NotEnoughSpace {
                        disk_free_space: d.read_u64("agent file_xfer_status.disk_free_space")?,
                    },
                    _ => FileXferDetail::Other(rest),
                };
                Self::FileXferStatus(FileXferStatus { id, result, detail })
            }
            T::FILE_XFER_DATA => {
                r.ensure(4 + 8, "agent file_xfer_data")?;
                let id = r.read_u32("agent file_xfer_data.id")?;
                let size = r.read_u64("agent file_xfer_data.size")?;
                let size = r.check_count(size, 1, "agent file_xfer_data.data")?;
                Self::FileXferData(FileXferData {
                    id,
                    data: r.read_slice(size, "agent file_xfer_data.data")?,
                })
            }
            T::CLIENT_DISCONNECTED => Self::ClientDisconnected,
            T::MAX_CLIPBOARD => Self::MaxClipboard {
                max: r.read_i32("agent max_clipboard.max")?,
            },
            T::AUDIO_VOLUME_SYNC => {
                r.ensure(3, "agent audio_volume_sync")?;
                let is_playback = r.read_u8("agent audio_volume_sync.is_playback")?;
                let mute = r.read_u8("agent audio_volume_sync.mute")?;
                let n = r.read_u8("agent audio_volume_sync.nchannels")?;
                Self::AudioVolumeSync(AudioVolumeSync {
                    is_playback,
                    mute,
                    volumes: read_volumes(&mut r, n, "agent audio_volume_sync.volume")?,
                })
            }
            T::GRAPHICS_DEVICE_INFO => {
                let n = r.read_u32("agent graphics_device_info.count")?;
                let n = r.check_count(
                    n.into(),
                    DeviceDisplayInfo::FIXED_SIZE,
                    "agent graphics_device_info",
                )?;
                let mut devices = Vec::with_capacity(n);
                for _ in 0..n {
                    r.ensure(DeviceDisplayInfo::FIXED_SIZE, "agent device_display_info")?;
                    let channel_id = r.read_u32("agent device_display_info.channel_id")?;
                    let monitor_id = r.read_u32("agent device_display_info.monitor_id")?;
                    let device_display_id =
                        r.read_u32("agent device_display_info.device_display_id")?;
                    let len = r.read_u32("agent device_display_info.device_address_len")?;
                    let len =
                        r.check_count(len.into(), 1, "agent device_display_info.device_address")?;
                    devices.push(DeviceDisplayInfo {
                        channel_id,
                        monitor_id,
                        device_display_id,
                        device_address: r
                            .read_slice(len, "agent device_display_info.device_address")?,
                    });
                }
                Self::GraphicsDeviceInfo(GraphicsDeviceInfo { devices })
            }
            other => Self::Unknown {
                msg_type: other,
                data: r.read_rest(),
            },
        };
        r.finish("agent message")?;
        Ok(m)
    }

    /// Appends the body (no header). Optional clipboard prefixes are written when present.
    pub fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::MouseState(m) => {
                w.write_u32(m.x);
                w.write_u32(m.y);
                w.write_u32(m.buttons.bits());
                w.write_u8(m.display_id);
            }
            Self::MonitorsConfig(c) => {
                let physical = c.flags.contains(MonitorsConfigFlags::PHYSICAL_SIZE);
                let expect = if physical { c.monitors.len() } else { 0 };
                if c.physical_sizes.len() != expect {
                    return Err(EncodeError::Inconsistent {
                        field: "agent monitors_config.physical_sizes",
                    });
                }
                w.write_u32(WriteBuf::len_as(
                    c.monitors.len(),
                    "agent monitors_config.num_of_monitors",
                )?);
                w.write_u32(c.flags.bits());
                for m in &c.monitors {
                    w.write_u32(m.height);
                    w.write_u32(m.width);
                    w.write_u32(m.depth);
                    w.write_i32(m.x);
                    w.write_i32(m.y);
                }
                for p in &c.physical_sizes {
                    w.write_u16(p.height);
                    w.write_u16(p.width);
                }
            }
            Self::Reply(r) => {
                w.write_u32(r.msg_type.0);
                w.write_u32(r.error.0);
            }
            Self::Clipboard(c) => {
                write_selection(w, c.selection);
                w.write_u32(c.data_type.0);
                w.write_slice(c.data);
            }
            Self::DisplayConfig(d) => {
                w.write_u32(d.flags.bits());
                w.write_u32(d.depth);
            }
            Self::AnnounceCapabilities(a) => {
                w.write_u32(a.request);
                for c in &a.caps.0 {
                    w.write_u32(*c);
                }
            }
            Self::ClipboardGrab(g) => {
                write_selection(w, g.selection);
                if let Some(s) = g.serial {
                    w.write_u32(s);
                }
                for t in &g.types {
                    w.write_u32(t.0);
                }
            }
            Self::ClipboardRequest(c) => {
                write_selection(w, c.selection);
                w.write_u32(c.data_type.0);
            }
            Self::ClipboardRelease(c) => write_selection(w, c.selection),
            Self::FileXferStart(s) => {
                w.write_u32(s.id);
                w.write_slice(s.data);
            }
            Self::FileXferStatus(s) => {
                w.write_u32(s.id);
                w.write_u32(s.result.0);
                match s.detail {
                    FileXferDetail::None => {}
                    FileXferDetail::Error {
                        error_type,
                        error_code,
                    } if s.result == FileXferResult::ERROR => {
                        w.write_u8(error_type);
                        w.write_u32(error_code);
                    }
                    FileXferDetail::NotEnoughSpace { disk_free_space }
                        if s.result == FileXferResult::NOT_ENOUGH_SPACE =>
                    {
                        w.write_u64(disk_free_space)
                    }
                    // Raw detail that would read back as a typed one (or as none) is ambiguous.
                    FileXferDetail::Other(d) if !raw_detail_is_ambiguous(s.result, d) => {
                        w.write_slice(d)
                    }
                    _ => {
                        return Err(EncodeError::Inconsistent {
                            field: "agent file_xfer_status.detail",
                        });
                    }
                }
            }
            Self::FileXferData(d) => {
                w.write_u32(d.id);
                w.write_u64(d.data.len() as u64);
                w.write_slice(d.data);
            }
            Self::ClientDisconnected => {}
            Self::MaxClipboard { max } => w.write_i32(*max),
            Self::AudioVolumeSync(a) => {
                w.write_u8(a.is_playback);
                w.write_u8(a.mute);
                w.write_u8(WriteBuf::len_as(
                    a.volumes.len(),
                    "agent audio_volume_sync.nchannels",
                )?);
                for v in &a.volumes {
                    w.write_u16(*v);
                }
            }
            Self::GraphicsDeviceInfo(g) => {
                w.write_u32(WriteBuf::len_as(
                    g.devices.len(),
                    "agent graphics_device_info.count",
                )?);
                for d in &g.devices {
                    w.write_u32(d.channel_id);
                    w.write_u32(d.monitor_id);
                    w.write_u32(d.device_display_id);
                    w.write_u32(WriteBuf::len_as(
                        d.device_address.len(),
                        "agent device_display_info.device_address_len",
                    )?);
                    w.write_slice(d.device_address);
                }
            }
            Self::Unknown { data, .. } => w.write_slice(data),
        }
        Ok(())
    }

    /// Appends the whole message (header with protocol 1, `opaque` and the body size, then the
    /// body) to `out`.
    pub fn encode(&self, opaque: u64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let mut w = WriteBuf::new(out);
        AgentHeader {
            protocol: VD_AGENT_PROTOCOL,
            msg_type: self.msg_type(),
            opaque,
            size: 0,
        }
        .encode(&mut w);
        self.encode_body(&mut w)?;
        let size =
            WriteBuf::len_as::<u32>(out.len() - start - AgentHeader::SIZE, "agent header.size")?;
        out[start + 16..start + 20].copy_from_slice(&size.to_le_bytes());
        Ok(())
    }
}

/// Decodes one whole message (header + exactly `size` body bytes). A protocol other than
/// [`VD_AGENT_PROTOCOL`] is [`DecodeError::InvalidValue`].
pub fn decode_message(
    buf: &[u8],
    opts: ClipboardOptions,
) -> Result<(AgentHeader, AgentMessage<'_>), DecodeError> {
    let mut r = ReadCursor::new(buf);
    let header = AgentHeader::decode(&mut r)?;
    if header.protocol != VD_AGENT_PROTOCOL {
        return Err(DecodeError::InvalidValue {
            field: "agent header.protocol",
            value: header.protocol.into(),
        });
    }
    let size = r.check_count(header.size.into(), 1, "agent header.size")?;
    let body = r.read_slice(size, "agent body")?;
    r.finish("agent message")?;
    Ok((header, AgentMessage::decode(header.msg_type, body, opts)?))
}

/// Splits an encoded agent message (or any part of the agent stream) into the bodies of
/// main-channel `AGENT_DATA` messages, each at most [`VD_AGENT_MAX_DATA_SIZE`] bytes.
pub fn agent_data_chunks(stream: &[u8]) -> core::slice::Chunks<'_, u8> {
    stream.chunks(VD_AGENT_MAX_DATA_SIZE)
}

/// A VDI port number of [`VdiChunkHeader`]. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VdiPort(pub u32);

impl VdiPort {
    /// 1: `VDP_CLIENT_PORT`, messages from/to the client.
    pub const CLIENT: Self = Self(1);
    /// 2: `VDP_SERVER_PORT`, messages from/to the server itself.
    pub const SERVER: Self = Self(2);
}

/// `VDIChunkHeader`: `u32 port; u32 size`, then `size` bytes of agent stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdiChunkHeader {
    /// Which peer the data belongs to.
    pub port: VdiPort,
    /// Payload bytes that follow.
    pub size: u32,
}

impl VdiChunkHeader {
    /// `u32 port + u32 size`.
    pub const SIZE: usize = 4 + 4;

    /// Reads a chunk header.
    pub fn decode(r: &mut ReadCursor<'_>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "vdi chunk header")?;
        Ok(Self {
            port: VdiPort(r.read_u32("vdi chunk header.port")?),
            size: r.read_u32("vdi chunk header.size")?,
        })
    }

    /// Writes a chunk header.
    pub fn encode(&self, w: &mut WriteBuf<'_>) {
        w.write_u32(self.port.0);
        w.write_u32(self.size);
    }
}

/// Appends `stream` to `out` as VDI chunks for `port`, each payload at most
/// [`VD_AGENT_MAX_DATA_SIZE`] bytes (an empty stream writes nothing).
pub fn write_vdi_chunks(port: VdiPort, stream: &[u8], out: &mut Vec<u8>) {
    for chunk in stream.chunks(VD_AGENT_MAX_DATA_SIZE) {
        let mut w = WriteBuf::new(out);
        // chunk.len() <= 2048 always fits a u32
        VdiChunkHeader {
            port,
            size: chunk.len() as u32,
        }
        .encode(&mut w);
        w.write_slice(chunk);
    }
}

/// Errors of the agent stream layer: chunking and reassembly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentStreamError {
    /// A message header announced a body larger than the caller's limit.
    #[error("agent message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The announced body size.
        size: u32,
        /// The caller's limit.
        max: usize,
    },
    /// A message header carried a protocol other than [`VD_AGENT_PROTOCOL`] (the stream is
    /// out of step).
    #[error("agent message with protocol {protocol}")]
    BadProtocol {
        /// The protocol read.
        protocol: u32,
    },
    /// A VDI chunk announced more than [`VD_AGENT_MAX_DATA_SIZE`] bytes.
    #[error("VDI chunk of {size} bytes exceeds {max}")]
    ChunkTooLarge {
        /// The announced size.
        size: u32,
        /// The limit.
        max: usize,
    },
}

/// Splits a virtio-port byte stream into VDI chunk payload pieces, without copying.
///
/// Feed bytes with [`VdiDechunker::push`]; each call returns the next piece of payload (tagged
/// with its port) borrowed from the input, possibly a part of a chunk. Pieces of one port,
/// concatenated, are that port's agent stream (feed them to an [`AgentReassembler`]).
#[derive(Debug, Clone, Default)]
pub struct VdiDechunker {
    header: [u8; VdiChunkHeader::SIZE],
    header_len: usize,
    current: Option<(VdiPort, usize)>,
}

impl VdiDechunker {
    /// A dechunker at a chunk boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes bytes from the front of `input` and returns the next payload piece, or
    /// `None` when `input` is used up (keeping any partial header). After an error the stream
    /// cannot be followed any more; the dechunker is reset.
    pub fn push<'i>(
        &mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<(VdiPort, &'i [u8])>, AgentStreamError> {
        loop {
            if let Some((port, left)) = self.current {
                if input.is_empty() {
                    return Ok(None);
                }
                let n = left.min(input.len());
                let (piece, rest) = input.split_at(n);
                *input = rest;
                self.current = if left == n {
                    None
                } else {
                    Some((port, left - n))
                };
                return Ok(Some((port, piece)));
            }
            let need = VdiChunkHeader::SIZE - self.header_len;
            let n = need.min(input.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
            self.header_len += n;
            *input = &input[n..];
            if self.header_len < VdiChunkHeader::SIZE {
                return Ok(None);
            }
            self.header_len = 0;
            let h = VdiChunkHeader::decode(&mut ReadCursor::new(&self.header))
                .expect("a complete 8-byte header always decodes");
            if h.size as usize > VD_AGENT_MAX_DATA_SIZE {
                *self = Self::default();
                return Err(AgentStreamError::ChunkTooLarge {
                    size: h.size,
                    max: VD_AGENT_MAX_DATA_SIZE,
                });
            }
            if h.size > 0 {
                self.current = Some((h.port, h.size as usize));
            }
        }
    }
}

/// One reassembled agent message: its header and body, borrowed from the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssembledMessage<'s> {
    /// The header (protocol already checked).
    pub header: AgentHeader,
    /// Exactly `header.size` bytes.
    pub body: &'s [u8],
}

impl<'s> AssembledMessage<'s> {
    /// Decodes the body.
    pub fn decode(&self, opts: ClipboardOptions) -> Result<AgentMessage<'s>, DecodeError> {
        AgentMessage::decode(self.header.msg_type, self.body, opts)
    }
}

/// Rebuilds agent messages from the concatenated agent stream (main-channel `AGENT_DATA`
/// bodies, or one VDI port's payload pieces), enforcing a maximum body size.
///
/// Memory use is bounded by `max_message_size` plus the header: the body buffer only grows
/// with bytes actually received, and a header announcing more than the limit is an error
/// before anything is stored for it.
#[derive(Debug, Clone)]
pub struct AgentReassembler {
    max_message_size: usize,
    header: [u8; AgentHeader::SIZE],
    header_len: usize,
    parsed: Option<AgentHeader>,
    body: Vec<u8>,
    complete: bool,
}

impl AgentReassembler {
    /// A reassembler accepting bodies of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            header: [0; AgentHeader::SIZE],
            header_len: 0,
            parsed: None,
            body: Vec::new(),
            complete: false,
        }
    }

    /// True when no message is partly received.
    pub fn is_idle(&self) -> bool {
        (self.header_len == 0 && self.parsed.is_none()) || self.complete
    }

    /// Drops any partial message.
    pub fn reset(&mut self) {
        self.header_len = 0;
        self.parsed = None;
        self.body.clear();
        self.complete = false;
    }

    /// Consumes bytes from the front of `input` until one message is complete and returns it,
    /// or returns `None` once `input` is used up. Call again with the rest of `input` for the
    /// next message. After an error the reassembler is reset (the stream is out of step).
    pub fn push<'s>(
        &'s mut self,
        input: &mut &[u8],
    ) -> Result<Option<AssembledMessage<'s>>, AgentStreamError> {
        if self.complete {
            self.reset();
        }
        if self.parsed.is_none() {
            let need = AgentHeader::SIZE - self.header_len;
            let n = need.min(input.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
            self.header_len += n;
            *input = &input[n..];
            if self.header_len < AgentHeader::SIZE {
                return Ok(None);
            }
            let h = AgentHeader::decode(&mut ReadCursor::new(&self.header))
                .expect("a complete 20-byte header always decodes");
            if h.protocol != VD_AGENT_PROTOCOL {
                self.reset();
                return Err(AgentStreamError::BadProtocol {
                    protocol: h.protocol,
                });
            }
            if h.size as usize > self.max_message_size {
                self.reset();
                return Err(AgentStreamError::MessageTooLarge {
                    size: h.size,
                    max: self.max_message_size,
                });
            }
            self.parsed = Some(h);
        }
        let h = self.parsed.expect("header parsed above");
        let left = h.size as usize - self.body.len();
        let n = left.min(input.len());
        self.body.extend_from_slice(&input[..n]);
        *input = &input[n..];
        if self.body.len() < h.size as usize {
            return Ok(None);
        }
        self.complete = true;
        Ok(Some(AssembledMessage {
            header: h,
            body: &self.body,
        }))
    }
}

/// Fuzz entry for the agent layer. Byte 0: bit 0 = selection prefix, bit 1 = grab serial,
/// bit 2 = wrap the stream in VDI chunks first; byte 1: piece size for feeding (1..=64);
/// the rest: the agent stream. Every reassembled message that decodes must round-trip.
#[doc(hidden)]
pub fn fuzz_agent(data: &[u8]) {
    let [flags, piece, stream @ ..] = data else {
        return;
    };
    let opts = ClipboardOptions {
        selection: flags & 1 != 0,
        grab_serial: flags & 2 != 0,
    };
    let piece = usize::from(piece % 64) + 1;
    let mut reasm = AgentReassembler::new(16 * 1024);
    let mut dechunker = VdiDechunker::new();
    let check = |input: &[u8], reasm: &mut AgentReassembler| -> bool {
        let mut input = input;
        loop {
            match reasm.push(&mut input) {
                Ok(Some(msg)) => fuzz_check_message(msg, opts),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };
    for part in stream.chunks(piece) {
        if flags & 4 != 0 {
            let mut input = part;
            loop {
                match dechunker.push(&mut input) {
                    Ok(Some((_port, payload))) => {
                        if !check(payload, &mut reasm) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        } else if !check(part, &mut reasm) {
            return;
        }
    }
}

fn fuzz_check_message(msg: AssembledMessage<'_>, opts: ClipboardOptions) {
    let Ok(first) = msg.decode(opts) else { return };
    assert_eq!(first.msg_type(), msg.header.msg_type);
    let mut bytes = Vec::new();
    first
        .encode(msg.header.opaque, &mut bytes)
        .expect("a decoded agent message must encode");
    let (h, second) = decode_message(&bytes, opts).expect("an encoded agent message must decode");
    assert_eq!(h.opaque, msg.header.opaque);
    assert_eq!(first, second, "decode(encode(m)) != m");
    let mut again = Vec::new();
    second.encode(h.opaque, &mut again).expect("re-encode");
    assert_eq!(bytes, again, "agent encoding is not canonical");
}

/// proptest strategies for agent messages.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;

    fn selection() -> impl Strategy<Value = Option<ClipboardSelection>> {
        of(any::<u8>().prop_map(ClipboardSelection))
    }

    fn monitors_config() -> impl Strategy<Value = MonitorsConfig> {
        (
            any::<u32>(),
            vec(
                (
                    any::<u32>(),
                    any::<u32>(),
                    any::<u32>(),
                    any::<i32>(),
                    any::<i32>(),
                    any::<u16>(),
                    any::<u16>(),
                ),
                0..4,
            ),
        )
            .prop_map(|(flags, ms)| {
                let flags = MonitorsConfigFlags::from_bits_retain(flags);
                let physical = flags.contains(MonitorsConfigFlags::PHYSICAL_SIZE);
                MonitorsConfig {
                    flags,
                    monitors: ms
                        .iter()
                        .map(|&(height, width, depth, x, y, _, _)| MonConfig {
                            height,
                            width,
                            depth,
                            x,
                            y,
                        })
                        .collect(),
                    physical_sizes: if physical {
                        ms.iter()
                            .map(|&(.., height, width)| MonitorMm { height, width })
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
    }

    fn file_xfer_status() -> impl Strategy<Value = FileXferStatus<'static>> {
        prop_oneof![
            (any::<u32>(), 0u32..10).prop_map(|(id, r)| FileXferStatus {
                id,
                result: FileXferResult(r),
                detail: FileXferDetail::None
            }),
            (any::<u32>(), any::<u8>(), any::<u32>()).prop_map(|(id, error_type, error_code)| {
                FileXferStatus {
                    id,
                    result: FileXferResult::ERROR,
                    detail: FileXferDetail::Error {
                        error_type,
                        error_code,
                    },
                }
            }),
            (any::<u32>(), any::<u64>()).prop_map(|(id, disk_free_space)| FileXferStatus {
                id,
                result: FileXferResult::NOT_ENOUGH_SPACE,
                detail: FileXferDetail::NotEnoughSpace { disk_free_space },
            }),
            (any::<u32>(), 5u32..10, leaked_bytes(1..12)).prop_map(|(id, r, d)| FileXferStatus {
                id,
                result: FileXferResult(r),
                detail: FileXferDetail::Other(d),
            }),
        ]
    }

    /// Every agent message type, including an unknown one.
    pub fn message() -> BoxedStrategy<AgentMessage<'static>> {
        prop_oneof![
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>()).prop_map(
                |(x, y, b, display_id)| AgentMessage::MouseState(MouseState {
                    x,
                    y,
                    buttons: AgentMouseButtons::from_bits_retain(b),
                    display_id
                })
            ),
            monitors_config().prop_map(AgentMessage::MonitorsConfig),
            (any::<u32>(), any::<u32>()).prop_map(|(t, e)| AgentMessage::Reply(Reply {
                msg_type: AgentMessageType(t),
                error: ReplyError(e)
            })),
            (selection(), any::<u32>(), leaked_bytes(0..64)).prop_map(|(selection, t, data)| {
                AgentMessage::Clipboard(Clipboard {
                    selection,
                    data_type: ClipboardType(t),
                    data,
                })
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(f, depth)| AgentMessage::DisplayConfig(
                DisplayConfig {
                    flags: DisplayConfigFlags::from_bits_retain(f),
                    depth
                }
            )),
            (any::<u32>(), vec(any::<u32>(), 0..3)).prop_map(|(request, caps)| {
                AgentMessage::AnnounceCapabilities(AnnounceCapabilities {
                    request,
                    caps: AgentCaps(caps),
                })
            }),
            (
                selection(),
                of(any::<u32>()),
                vec(any::<u32>().prop_map(ClipboardType), 0..6)
            )
                .prop_map(|(selection, serial, types)| AgentMessage::ClipboardGrab(
                    ClipboardGrab {
                        selection,
                        serial,
                        types
                    }
                )),
            (selection(), any::<u32>()).prop_map(|(selection, t)| AgentMessage::ClipboardRequest(
                ClipboardRequest {
                    selection,
                    data_type: ClipboardType(t)
                }
            )),
            selection().prop_map(
                |selection| AgentMessage::ClipboardRelease(ClipboardRelease { selection })
            ),
            (any::<u32>(), leaked_bytes(0..48))
                .prop_map(|(id, data)| AgentMessage::FileXferStart(FileXferStart { id, data })),
            file_xfer_status().prop_map(AgentMessage::FileXferStatus),
            (any::<u32>(), leaked_bytes(0..64))
                .prop_map(|(id, data)| AgentMessage::FileXferData(FileXferData { id, data })),
            Just(AgentMessage::ClientDisconnected),
            any::<i32>().prop_map(|max| AgentMessage::MaxClipboard { max }),
            (any::<u8>(), any::<u8>(), vec(any::<u16>(), 0..4)).prop_map(
                |(is_playback, mute, volumes)| {
                    AgentMessage::AudioVolumeSync(AudioVolumeSync {
                        is_playback,
                        mute,
                        volumes,
                    })
                }
            ),
            vec(
                (
                    any::<u32>(),
                    any::<u32>(),
                    any::<u32>(),
                    leaked_bytes(0..20)
                ),
                0..3
            )
            .prop_map(|ds| {
                AgentMessage::GraphicsDeviceInfo(GraphicsDeviceInfo {
                    devices: ds
                        .into_iter()
                        .map(
                            |(channel_id, monitor_id, device_display_id, device_address)| {
                                DeviceDisplayInfo {
                                    channel_id,
                                    monitor_id,
                                    device_display_id,
                                    device_address,
                                }
                            },
                        )
                        .collect(),
                })
            }),
            (prop_oneof![Just(0u32), 17u32..1000], leaked_bytes(0..16)).prop_map(|(t, data)| {
                AgentMessage::Unknown {
                    msg_type: AgentMessageType(t),
                    data,
                }
            }),
        ]
        .boxed()
    }
}
