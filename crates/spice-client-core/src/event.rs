//! What a [`crate::Session`] tells its embedder.

use std::sync::Arc;

use spice_codecs::audio::AudioMode;
use spice_proto::ChannelType;
use spice_proto::inputs::KeyboardModifiers;
use spice_proto::link::LinkErr;
use spice_proto::main::MouseMode;
use spice_proto::playback::AudioFormat;
use spice_proto::types::{Head, Rect};

use crate::cursor::CursorShape;
use crate::error::ChannelError;
use crate::session::ConnId;

/// An event for the embedder, from [`crate::Session::poll_event`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Open a connection to the server (same host; the plain or TLS port) for this
    /// channel, then feed its bytes with [`crate::Session::receive`] and send what
    /// [`crate::Session::transmit`] gives. The first event of every session is the one for the
    /// main channel.
    OpenChannel {
        /// The connection handle to use.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
    },
    /// A channel finished its link stage.
    ChannelLinked {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
    },
    /// The server listed a channel this session does not open (unsupported type or not
    /// wanted by the configuration).
    ChannelSkipped {
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
    },
    /// A channel failed; its connection is closed (drop the socket).
    ChannelError {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
        /// What went wrong.
        error: ChannelError,
    },
    /// A channel's connection is closed (after an error, `DISCONNECTING`, or
    /// [`crate::Session::connection_closed`]).
    ChannelClosed {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
    },
    /// The main channel is gone: the session is over.
    Disconnected,
    /// `MAIN_INIT` arrived.
    MainInit {
        /// The session id every other channel links with.
        session_id: u32,
        /// Mouse modes the server allows.
        supported_mouse_modes: MouseMode,
        /// Mouse mode in use.
        current_mouse_mode: MouseMode,
        /// True when a guest agent is connected.
        agent_connected: bool,
        /// Number of display channels the server announces.
        display_channels_hint: u32,
    },
    /// `MOUSE_MODE`: the mouse mode changed.
    MouseMode {
        /// Allowed modes.
        supported: MouseMode,
        /// Current mode.
        current: MouseMode,
    },
    /// The server's multimedia time (ms), from `MAIN_INIT` or `MULTI_MEDIA_TIME`.
    MultiMediaTime(u32),
    /// The guest agent connected (`AGENT_CONNECTED` / `AGENT_CONNECTED_TOKENS`).
    AgentConnected,
    /// The guest agent disconnected.
    AgentDisconnected {
        /// The server's error code.
        error_code: u32,
    },
    /// A chunk of the agent byte stream (VDAgentMessages, see `spice_proto::agent`).
    AgentData(Vec<u8>),
    /// `NOTIFY` from the server.
    Notify {
        /// 0 info, 1 warn, 2 error.
        severity: u32,
        /// 0 low, 1 medium, 2 high.
        visibility: u32,
        /// Code.
        what: u32,
        /// The text (lossy UTF-8, trailing NUL removed).
        message: String,
    },
    /// `NAME`: the VM name.
    Name(String),
    /// `UUID`: the VM UUID.
    Uuid([u8; 16]),
    /// The server announced a migration this client does not carry out (the server was told
    /// `MIGRATE_CONNECT_ERROR` when it asked).
    MigrationRefused,
    /// `MIGRATE_SWITCH_HOST`: the server asks the client to reconnect elsewhere.
    SwitchHost {
        /// Destination host.
        host: String,
        /// Plain port (`None` when absent).
        port: Option<u16>,
        /// TLS port (`None` when absent).
        tls_port: Option<u16>,
    },
    /// `DISCONNECTING` on a channel: the server closes it.
    ServerDisconnecting {
        /// Connection.
        conn: ConnId,
        /// Reason.
        reason: LinkErr,
    },
    /// A display surface was created (or re-created with another size).
    SurfaceCreated {
        /// Display channel instance.
        display: u8,
        /// Surface id (0 is the primary surface).
        surface_id: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// True for the primary surface.
        primary: bool,
    },
    /// A display surface was destroyed.
    SurfaceDestroyed {
        /// Display channel instance.
        display: u8,
        /// Surface id.
        surface_id: u32,
    },
    /// Pixels of a surface changed in this rectangle (clipped to the surface).
    RegionChanged {
        /// Display channel instance.
        display: u8,
        /// Surface id.
        surface_id: u32,
        /// The rectangle.
        rect: Rect,
    },
    /// A display message could not be rendered (bad image data, unsupported codec, unknown
    /// surface). The channel goes on; the picture may be wrong in that area.
    RenderError {
        /// Display channel instance.
        display: u8,
        /// Message name.
        msg: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// `MARK`: the primary surface is complete and may be shown.
    PrimaryMarked {
        /// Display channel instance.
        display: u8,
    },
    /// `RESET` (legacy): the display was reset; surfaces are gone.
    DisplayReset {
        /// Display channel instance.
        display: u8,
    },
    /// `MONITORS_CONFIG`.
    MonitorsConfig {
        /// Display channel instance.
        display: u8,
        /// Monitors the guest allows.
        max_allowed: u16,
        /// The monitors.
        heads: Vec<Head>,
    },
    /// A video stream was created.
    StreamCreated {
        /// Display channel instance.
        display: u8,
        /// Stream id.
        stream_id: u32,
        /// Codec type (1 MJPEG, ...).
        codec: u8,
        /// Where it is drawn.
        dest: Rect,
    },
    /// A video stream frame was drawn (after the [`Event::RegionChanged`] of its area).
    /// `mm_time` is the frame's multimedia time; with [`crate::SessionConfig::video_sync`]
    /// (the default) the frame was held until [`crate::Session::presentation_time`]`(mm_time)`
    /// (from [`crate::Session::handle_timeout`]), the local instant at which audio
    /// ([`Event::PlaybackData`]) with the same stamp is to be played.
    StreamFrame {
        /// Display channel instance.
        display: u8,
        /// Stream id.
        stream_id: u32,
        /// Multimedia time of the frame (ms, the server's clock).
        mm_time: u32,
    },
    /// A video stream was destroyed.
    StreamDestroyed {
        /// Display channel instance.
        display: u8,
        /// Stream id.
        stream_id: u32,
    },
    /// The cursor shape changed (`INIT`/`SET`); `None` means no cursor.
    CursorSet {
        /// The shape.
        shape: Option<Arc<CursorShape>>,
        /// Position (server mouse mode).
        x: i16,
        /// Position.
        y: i16,
        /// Visible.
        visible: bool,
    },
    /// `MOVE`: the cursor moved (server mouse mode).
    CursorMoved {
        /// X.
        x: i16,
        /// Y.
        y: i16,
    },
    /// `HIDE`.
    CursorHidden,
    /// `RESET` on the cursor channel: no cursor, cache cleared.
    CursorReset,
    /// `TRAIL` (cosmetic).
    CursorTrail {
        /// Length.
        length: u16,
        /// Frequency.
        frequency: u16,
    },
    /// The guest's lock keys (inputs `INIT` / `KEY_MODIFIERS`).
    KeyModifiers(KeyboardModifiers),
    /// Playback `MODE`: how the following data is coded.
    PlaybackMode(AudioMode),
    /// Playback `START`: play PCM in this format.
    PlaybackStart {
        /// Sample format (S16).
        format: AudioFormat,
        /// Interleaved channels.
        channels: u8,
        /// Samples per second.
        rate: u32,
        /// Multimedia time of the start (ms).
        time: u32,
    },
    /// Playback `DATA`, decoded.
    PlaybackData {
        /// Interleaved S16 samples (one frame).
        pcm: Vec<i16>,
        /// Multimedia time at which to play it (ms, server clock): the local instant is
        /// [`crate::Session::presentation_time`]`(mm_time)`.
        mm_time: u32,
    },
    /// Playback `STOP`.
    PlaybackStop,
    /// Playback `VOLUME` (per channel, 0..=65535).
    PlaybackVolume(Vec<u16>),
    /// Playback `MUTE`.
    PlaybackMute(bool),
    /// Playback `LATENCY`: minimum buffering the server asks for (ms).
    PlaybackLatency(u32),
    /// Record `START`: capture in this format and pass the samples to
    /// [`crate::Session::send_record_pcm`].
    RecordStart {
        /// Sample format (S16).
        format: AudioFormat,
        /// Interleaved channels.
        channels: u8,
        /// Samples per second.
        rate: u32,
    },
    /// Record `STOP`.
    RecordStop,
    /// Record `VOLUME` (per channel, 0..=65535).
    RecordVolume(Vec<u16>),
    /// Record `MUTE`.
    RecordMute(bool),
    /// Data received on a usbredir, port or webdav channel (LZ4 already decoded).
    VmcData {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
        /// The payload.
        data: Vec<u8>,
    },
    /// `PORT_INIT` on a port or webdav channel.
    PortInit {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
        /// The port name (e.g. `org.qemu.monitor.qmp.0`).
        name: String,
        /// Whether the guest side is open.
        opened: bool,
    },
    /// `PORT_EVENT` from the server (0 opened, 1 closed, 2 break).
    PortEvent {
        /// Connection.
        conn: ConnId,
        /// Channel type.
        channel_type: ChannelType,
        /// Channel instance.
        channel_id: u8,
        /// The event.
        event: u8,
    },
    /// A VSC message on a smartcard channel.
    SmartcardData {
        /// Connection.
        conn: ConnId,
        /// Channel instance.
        channel_id: u8,
        /// VSC message type.
        msg_type: u32,
        /// Reader id.
        reader_id: u32,
        /// VSC payload.
        data: Vec<u8>,
    },
}
