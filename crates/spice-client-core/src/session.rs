//! The session: every channel connection of one client, sans-IO.
//!
//! ```text
//! let mut s = Session::new(config)?;
//! loop {
//!     while let Some(ev) = s.poll_event() {
//!         // Event::OpenChannel { conn, .. } => open a socket for `conn`
//!     }
//!     s.transmit(conn, &mut out);          // send `out` on conn's socket
//!     s.receive(conn, &bytes, now);        // bytes read from conn's socket
//!     s.next_deadline() / s.handle_timeout(now)
//! }
//! ```
//!
//! The session never opens sockets, starts threads or reads a clock: time comes in as `now`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_proto::base::{self, Pong, split_sub_list};
use spice_proto::caps::{self, Caps};
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::{HeaderKind, write_message};
use spice_proto::inputs::{
    self as pinputs, KeyboardModifiers, MOTION_ACK_BUNCH, MouseButton, MouseButtonMask,
};
use spice_proto::link::{ClientLink, ClientLinkConfig, ClientLinkStatus};
use spice_proto::main::{self as pmain, MouseMode};
use spice_proto::messages::{ClientMessage, ServerMessage};
use spice_proto::{ChannelType, EncodeError, cursor as pcursor};

use crate::cursor::CursorCache;
use crate::display::{DisplayChannel, DisplayShared};
use crate::error::{ChannelError, SessionError};
use crate::event::Event;
use crate::playback::{AudioConfig, PlaybackChannel};
use crate::record::RecordChannel;

/// A connection handle: one per channel connection of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Largest agent data chunk (`VD_AGENT_MAX_DATA_SIZE`).
pub const AGENT_MAX_DATA: usize = 2048;

/// Which advertised channels the session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSelection {
    /// Display channels.
    pub display: bool,
    /// The inputs channel.
    pub inputs: bool,
    /// The cursor channel.
    pub cursor: bool,
}

impl Default for ChannelSelection {
    fn default() -> Self {
        Self {
            display: true,
            inputs: true,
            cursor: true,
        }
    }
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The ticket password (at most 60 bytes; empty for none).
    pub password: String,
    /// Channels to open.
    pub channels: ChannelSelection,
    /// Image cache size in pixels sent in `DISPLAY_INIT` (spice-gtk: 80 MiB / 4).
    pub pixmap_cache_pixels: i64,
    /// GLZ window in pixels sent in `DISPLAY_INIT`; 0 picks it as spice-gtk does from
    /// `MAIN_INIT`'s `ram_hint`: half the guest's QXL RAM, at least 12 MiB and at most
    /// 64 MiB, divided by 4.
    pub glz_window_pixels: i32,
    /// Largest `width * height` of one image.
    pub max_image_pixels: u64,
    /// Most pixels of all surfaces of one display channel together.
    pub max_surface_pixels: u64,
    /// Largest message body accepted on any channel.
    pub max_message_size: u32,
    /// Ask the server for this mouse mode after `MAIN_INIT` when it allows it.
    pub mouse_mode: Option<MouseMode>,
    /// Start the agent data flow (`AGENT_START`) when an agent is connected.
    pub agent: bool,
    /// Most bytes held for a connection paused by `WAIT_FOR_CHANNELS`.
    pub max_buffered: usize,
    /// Playback / record channels and Opus.
    pub audio: AudioConfig,
    /// Passthrough channels (usbredir, smartcard, port, webdav) to open.
    pub passthrough: crate::spicevmc::PassthroughSelection,
    /// Draw each video stream frame when the multimedia clock reaches its stamp
    /// ([`Session::presentation_time`], as spice-gtk does), so video stays in sync with
    /// audio played at its stamps; frames already due are drawn at once. Off: every frame
    /// is drawn as soon as it arrives.
    pub video_sync: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            password: String::new(),
            channels: ChannelSelection::default(),
            pixmap_cache_pixels: 80 * 1024 * 1024 / 4,
            glz_window_pixels: 0,
            max_image_pixels: 1 << 25,
            max_surface_pixels: 1 << 26,
            max_message_size: 128 * 1024 * 1024,
            mouse_mode: None,
            agent: true,
            max_buffered: 512 * 1024 * 1024,
            audio: AudioConfig::default(),
            passthrough: crate::spicevmc::PassthroughSelection::default(),
            video_sync: true,
        }
    }
}

/// The sending half of one connection: output buffer, header kind, serial.
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub(crate) out: Vec<u8>,
    header: HeaderKind,
    send_serial: u64,
    pub(crate) channel_type: ChannelType,
}

impl ConnIo {
    /// Queues a message.
    pub(crate) fn send(&mut self, msg: &ClientMessage<'_>) -> Result<(), EncodeError> {
        self.send_serial += 1;
        write_message(
            &mut self.out,
            self.header,
            self.send_serial,
            msg.msg_type(),
            |w| msg.encode_body(w),
        )
    }
}

enum LinkStage {
    Linking(Box<ClientLink>),
    Open(Framer),
    Closed,
}

/// Per-channel state.
enum Kind {
    Main(MainState),
    Display(Box<DisplayChannel>),
    Cursor(CursorCache),
    Inputs(InputsState),
    Playback(Box<PlaybackChannel>),
    Record(Box<RecordChannel>),
    Vmc(crate::spicevmc::VmcState),
}

#[derive(Default)]
struct MainState {
    agent_connected: bool,
    agent_tokens: u32,
    agent_queue: VecDeque<Vec<u8>>,
    mouse_mode: Option<MouseMode>,
    supported_mouse_modes: Option<MouseMode>,
    attached: bool,
}

struct InputsState {
    buttons: MouseButtonMask,
    motion_count: u32,
    pending_dx: i32,
    pending_dy: i32,
    pending_position: Option<(u32, u32, u8)>,
    modifiers: Option<KeyboardModifiers>,
}

impl Default for InputsState {
    fn default() -> Self {
        Self {
            buttons: MouseButtonMask::empty(),
            motion_count: 0,
            pending_dx: 0,
            pending_dy: 0,
            pending_position: None,
            modifiers: None,
        }
    }
}

struct Conn {
    channel_id: u8,
    io: ConnIo,
    link: LinkStage,
    inbuf: Vec<u8>,
    in_pos: usize,
    ack_generation: u32,
    ack_window: u32,
    ack_count: u32,
    last_serial: u64,
    kind: Kind,
}

impl Conn {
    fn channel_type(&self) -> ChannelType {
        self.io.channel_type
    }
    fn is_open(&self) -> bool {
        matches!(self.link, LinkStage::Open(_))
    }
}

/// One SPICE client session, sans-IO.
pub struct Session {
    config: SessionConfig,
    conns: Vec<Conn>,
    events: VecDeque<Event>,
    session_id: Option<u32>,
    mm_time: Option<(u32, Instant)>,
    display_shared: DisplayShared,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connections", &self.conns.len())
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

fn main_caps() -> Caps {
    Caps::from_caps(&[
        caps::main::AGENT_CONNECTED_TOKENS,
        caps::main::NAME_AND_UUID,
    ])
}

/// Decoded message plus the bits the wait logic needs.
type Waits = Vec<(ChannelType, u8, u64)>;

impl Session {
    /// A new session. The first [`Session::poll_event`] is [`Event::OpenChannel`] for the
    /// main channel ([`ConnId`] 0).
    pub fn new(config: SessionConfig) -> Result<Self, SessionError> {
        spice_proto::ticket::check_password(config.password.as_bytes())
            .map_err(|e| SessionError::Config(e.to_string()))?;
        let display_shared = DisplayShared::new(&config);
        let mut s = Self {
            config,
            conns: Vec::new(),
            events: VecDeque::new(),
            session_id: None,
            mm_time: None,
            display_shared,
        };
        s.open(ChannelType::MAIN, 0, Kind::Main(MainState::default()))?;
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The session id from `MAIN_INIT`.
    pub fn session_id(&self) -> Option<u32> {
        self.session_id
    }

    /// The server's multimedia clock (ms) at `now`: the last `MAIN_INIT` /
    /// `MULTI_MEDIA_TIME` value plus the time since it arrived.
    pub fn mm_time(&self, now: Instant) -> Option<u32> {
        self.mm_time
            .map(|(mm, at)| mm.wrapping_add(now.saturating_duration_since(at).as_millis() as u32))
    }

    /// The local instant at which the multimedia clock reaches `mm_time`: when to present a
    /// video frame ([`Event::StreamFrame`]) or an audio packet ([`Event::PlaybackData`])
    /// stamped `mm_time`. The server sends a clock that runs `MM_TIME_DELTA` (400 ms) behind
    /// the one it stamps with, so both are presented with that much buffering, in sync.
    /// `None` before `MAIN_INIT`. Stamps are compared on the wrapping u32 clock (a stamp
    /// more than ~24 days ahead counts as past).
    pub fn presentation_time(&self, mm_time: u32) -> Option<Instant> {
        let (mm, at) = self.mm_time?;
        let ahead = mm_time.wrapping_sub(mm) as i32;
        let d = Duration::from_millis(u64::from(ahead.unsigned_abs()));
        Some(if ahead >= 0 {
            at + d
        } else {
            // An instant before the clock was set: the stamp is late.
            at.checked_sub(d).unwrap_or(at)
        })
    }

    /// Resynchronises the multimedia clock on the audio output, as spice-gtk's
    /// `spice_playback_channel_set_delay` does: the audio device reports `delay_ms` of
    /// samples queued ahead of the speaker, so the packet stamped with the last
    /// [`Event::PlaybackData`] time is heard `delay_ms` from `now`; video frames then follow
    /// the sound. Returns the new clock, or `None` (nothing changed) when no playback data
    /// came yet.
    pub fn set_playback_delay(&mut self, delay_ms: u32, now: Instant) -> Option<u32> {
        let last = self.playback_channel()?.last_time()?;
        let mm = last.wrapping_sub(delay_ms);
        self.mm_time = Some((mm, now));
        self.reschedule_video(now);
        Some(mm)
    }

    /// The multimedia clock moved: video frames waiting for their stamps get new
    /// presentation times on the new clock (as spice-gtk reschedules its frames).
    fn reschedule_video(&mut self, now: Instant) {
        let Some(mm_now) = self.mm_time(now) else {
            return;
        };
        for c in &mut self.conns {
            if let Kind::Display(d) = &mut c.kind {
                d.reschedule(now, mm_now);
            }
        }
    }

    fn open(&mut self, ty: ChannelType, id: u8, kind: Kind) -> Result<ConnId, SessionError> {
        let channel_caps = match &kind {
            Kind::Main(_) => main_caps(),
            Kind::Display(_) => crate::display::display_caps(),
            Kind::Inputs(_) => Caps::from_caps(&[caps::inputs::KEY_SCANCODE]),
            Kind::Cursor(_) => Caps::new(),
            Kind::Playback(_) => crate::playback::playback_caps(&self.config.audio),
            Kind::Record(_) => crate::record::record_caps(&self.config.audio),
            Kind::Vmc(_) => crate::spicevmc::caps_for(ty, &self.config.passthrough),
        };
        let mut link = ClientLink::new(ClientLinkConfig {
            connection_id: self.session_id.unwrap_or(0),
            channel_type: ty,
            channel_id: id,
            common_caps: caps::default_client_common_caps(),
            channel_caps,
            password: self.config.password.as_bytes().to_vec(),
        })
        .map_err(|e| SessionError::Config(e.to_string()))?;
        let out = link.take_output();
        let conn = ConnId(u32::try_from(self.conns.len()).unwrap_or(u32::MAX));
        self.conns.push(Conn {
            channel_id: id,
            io: ConnIo {
                out,
                header: HeaderKind::Full,
                send_serial: 0,
                channel_type: ty,
            },
            link: LinkStage::Linking(Box::new(link)),
            inbuf: Vec::new(),
            in_pos: 0,
            ack_generation: 0,
            ack_window: 0,
            ack_count: 0,
            last_serial: 0,
            kind,
        });
        self.events.push_back(Event::OpenChannel {
            conn,
            channel_type: ty,
            channel_id: id,
        });
        Ok(conn)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every connection id with its channel type and id, and whether it is still open.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, ChannelType, u8, bool)> + '_ {
        self.conns.iter().enumerate().map(|(i, c)| {
            (
                ConnId(i as u32),
                c.channel_type(),
                c.channel_id,
                !matches!(c.link, LinkStage::Closed),
            )
        })
    }

    /// True when the connection is closed (the embedder should drop its socket once
    /// [`Session::transmit`] gives nothing more).
    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.0 as usize)
            .is_none_or(|c| matches!(c.link, LinkStage::Closed))
    }

    /// Appends the bytes to send on `conn` to `out`. Returns how many were appended.
    pub fn transmit(&mut self, conn: ConnId, out: &mut Vec<u8>) -> usize {
        match self.conns.get_mut(conn.0 as usize) {
            Some(c) => {
                let n = c.io.out.len();
                out.append(&mut c.io.out);
                n
            }
            None => 0,
        }
    }

    /// True when some connection has bytes to send.
    pub fn wants_transmit(&self) -> bool {
        self.conns.iter().any(|c| !c.io.out.is_empty())
    }

    /// The embedder's socket for `conn` closed (EOF or error).
    pub fn connection_closed(&mut self, conn: ConnId) {
        self.close(conn.0 as usize);
    }

    fn close(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        if matches!(c.link, LinkStage::Closed) {
            return;
        }
        c.link = LinkStage::Closed;
        c.inbuf = Vec::new();
        c.in_pos = 0;
        let (ty, id) = (c.channel_type(), c.channel_id);
        self.events.push_back(Event::ChannelClosed {
            conn: ConnId(idx as u32),
            channel_type: ty,
            channel_id: id,
        });
        if ty == ChannelType::MAIN {
            self.events.push_back(Event::Disconnected);
        }
    }

    fn fail(&mut self, idx: usize, error: ChannelError) {
        let Some(c) = self.conns.get(idx) else {
            return;
        };
        if matches!(c.link, LinkStage::Closed) {
            return;
        }
        tracing::warn!(channel = %c.channel_type(), id = c.channel_id, %error, "channel error");
        self.events.push_back(Event::ChannelError {
            conn: ConnId(idx as u32),
            channel_type: c.channel_type(),
            channel_id: c.channel_id,
            error,
        });
        self.close(idx);
    }

    /// Feeds bytes received on `conn`. Errors of the channel become
    /// [`Event::ChannelError`]; the only error returned here is an unknown `conn`.
    pub fn receive(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), SessionError> {
        let idx = conn.0 as usize;
        let c = self
            .conns
            .get_mut(idx)
            .ok_or(SessionError::UnknownConnection(conn))?;
        if matches!(c.link, LinkStage::Closed) {
            return Ok(());
        }
        let mut rest = bytes;
        if let LinkStage::Linking(link) = &mut c.link {
            let res = link.handle_input(rest);
            c.io.out.extend(link.take_output());
            match res {
                // The link machine takes every byte it is given until it is linked.
                Ok((_, ClientLinkStatus::NeedMore(_))) => return Ok(()),
                Ok((used, ClientLinkStatus::Linked(outcome))) => {
                    rest = &rest[used..];
                    c.io.header = HeaderKind::from_mini(outcome.mini_header);
                    c.link =
                        LinkStage::Open(Framer::new(c.io.header, self.config.max_message_size));
                    let (ty, id) = (c.channel_type(), c.channel_id);
                    self.events.push_back(Event::ChannelLinked {
                        conn,
                        channel_type: ty,
                        channel_id: id,
                    });
                    if let Err(e) = self.on_linked(idx, &outcome.peer_channel_caps) {
                        self.fail(idx, e);
                        return Ok(());
                    }
                }
                Err(e) => {
                    self.fail(idx, e.into());
                    return Ok(());
                }
            }
        }
        let c = &mut self.conns[idx];
        if c.in_pos > 0 && c.in_pos == c.inbuf.len() {
            c.inbuf.clear();
            c.in_pos = 0;
        }
        c.inbuf.extend_from_slice(rest);
        if c.inbuf.len() - c.in_pos > self.config.max_buffered {
            let buffered = c.inbuf.len() - c.in_pos;
            self.fail(idx, ChannelError::WaitOverflow { buffered });
            return Ok(());
        }
        self.pump(now);
        Ok(())
    }

    /// Processes buffered messages of every connection until none can progress (a
    /// connection paused by `WAIT_FOR_CHANNELS` resumes once the awaited channel got there).
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            for idx in 0..self.conns.len() {
                progressed |= self.process_conn(idx, now);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Processes complete messages of one connection. Returns true when any was processed.
    fn process_conn(&mut self, idx: usize, now: Instant) -> bool {
        let mut any = false;
        loop {
            let c = &mut self.conns[idx];
            let LinkStage::Open(framer) = &mut c.link else {
                return any;
            };
            let buf = &c.inbuf[c.in_pos..];
            let info = match framer.peek(buf) {
                Ok(Frame::Need(_)) => break,
                Ok(Frame::Complete(info)) => info,
                Err(e) => {
                    self.fail(idx, e.into());
                    return true;
                }
            };
            // WAIT_FOR_CHANNELS (alone, first in a LIST, or in INVAL_ALL_PIXMAPS): hold the
            // message until the awaited channels have processed the serials.
            let waits = match self.waits_of(idx, &info) {
                Ok(w) => w,
                Err(e) => {
                    self.fail(idx, e);
                    return true;
                }
            };
            if !self.waits_satisfied(&waits) {
                break;
            }
            let c = &mut self.conns[idx];
            let LinkStage::Open(framer) = &mut c.link else {
                return any;
            };
            let Ok(Frame::Complete(info)) = framer.next_frame(&c.inbuf[c.in_pos..]) else {
                break;
            };
            // Count the message in the ACK window before handling it (as spice-gtk does):
            // a SET_ACK then starts a fresh window that does not include itself.
            if c.ack_window > 0 {
                c.ack_count = c.ack_count.saturating_sub(1);
                if c.ack_count == 0 {
                    c.ack_count = c.ack_window;
                    if let Err(e) = c.io.send(&ClientMessage::Base(base::ClientMessage::Ack)) {
                        self.fail(idx, e.into());
                        return true;
                    }
                }
            }
            let c = &mut self.conns[idx];
            let buf = std::mem::take(&mut c.inbuf);
            let start = c.in_pos;
            let body = &buf[start + info.body.start..start + info.body.end];
            let res = self.handle_frame(idx, info.msg_type, info.sub_list, body, now);
            let c = &mut self.conns[idx];
            if !matches!(c.link, LinkStage::Closed) {
                c.inbuf = buf;
                c.in_pos = start + info.total_len;
                c.last_serial = info.serial;
            }
            any = true;
            if let Err(e) = res {
                self.fail(idx, e);
                return true;
            }
        }
        let c = &mut self.conns[idx];
        if c.in_pos > 0 && c.in_pos * 2 >= c.inbuf.len() {
            c.inbuf.drain(..c.in_pos);
            c.in_pos = 0;
        }
        any
    }

    fn waits_of(
        &self,
        idx: usize,
        info: &spice_proto::framer::FrameInfo,
    ) -> Result<Waits, ChannelError> {
        let c = &self.conns[idx];
        let body = &c.inbuf[c.in_pos + info.body.start..c.in_pos + info.body.end];
        let ty = c.channel_type();
        let conv = |l: &[base::WaitForChannel]| -> Waits {
            l.iter()
                .map(|w| (w.channel_type, w.channel_id, w.message_serial))
                .collect()
        };
        let mut subs: Vec<(u16, &[u8])> = Vec::new();
        let (main_body, list) =
            split_sub_list(body, info.sub_list).map_err(|source| spice_proto::MessageError {
                channel: ty,
                direction: spice_proto::Direction::ServerToClient,
                msg_type: info.msg_type,
                name: "sub_list",
                source,
            })?;
        if let Some(list) = &list {
            subs.extend(list.messages.iter().map(|m| (m.msg_type, m.body)));
        }
        subs.push((info.msg_type, main_body));
        let mut waits = Vec::new();
        for (t, b) in subs {
            match t {
                base::server_msg::WAIT_FOR_CHANNELS => {
                    if let Ok(ServerMessage::Base(base::ServerMessage::WaitForChannels(l))) =
                        ServerMessage::decode(ty, t, b)
                    {
                        waits.extend(conv(&l));
                    }
                }
                base::server_msg::LIST => {
                    if let Ok(ServerMessage::Base(base::ServerMessage::List(l))) =
                        ServerMessage::decode(ty, t, b)
                    {
                        for m in &l.messages {
                            if m.msg_type == base::server_msg::WAIT_FOR_CHANNELS {
                                if let Ok(ServerMessage::Base(
                                    base::ServerMessage::WaitForChannels(l),
                                )) = ServerMessage::decode(ty, m.msg_type, m.body)
                                {
                                    waits.extend(conv(&l));
                                }
                            }
                        }
                    }
                }
                spice_proto::display::msg::INVAL_ALL_PIXMAPS if ty == ChannelType::DISPLAY => {
                    if let Ok(ServerMessage::Display(
                        spice_proto::display::ServerMessage::InvalAllPixmaps(l),
                    )) = ServerMessage::decode(ty, t, b)
                    {
                        waits.extend(l.iter().map(|w| {
                            (ChannelType(w.channel_type), w.channel_id, w.message_serial)
                        }));
                    }
                }
                _ => {}
            }
        }
        Ok(waits)
    }

    fn waits_satisfied(&self, waits: &Waits) -> bool {
        waits.iter().all(|&(ty, id, serial)| {
            // A channel that is not open (never was, or closed) will never get there.
            self.conns
                .iter()
                .filter(|c| c.channel_type() == ty && c.channel_id == id && c.is_open())
                .all(|c| c.last_serial >= serial)
        })
    }

    fn on_linked(&mut self, idx: usize, peer_caps: &Caps) -> Result<(), ChannelError> {
        let c = &mut self.conns[idx];
        if let Kind::Record(r) = &mut c.kind {
            r.on_linked(peer_caps);
        }
        if let Kind::Display(d) = &mut c.kind {
            d.on_linked(&mut c.io, &self.config)?;
        }
        let ty = c.channel_type();
        if let Kind::Vmc(v) = &mut c.kind {
            v.on_linked(peer_caps, ty, &self.config.passthrough);
        }
        Ok(())
    }

    fn handle_frame(
        &mut self,
        idx: usize,
        msg_type: u16,
        sub_list: u32,
        body: &[u8],
        now: Instant,
    ) -> Result<(), ChannelError> {
        let ty = self.conns[idx].channel_type();
        let (main_body, list) =
            split_sub_list(body, sub_list).map_err(|source| spice_proto::MessageError {
                channel: ty,
                direction: spice_proto::Direction::ServerToClient,
                msg_type,
                name: "sub_list",
                source,
            })?;
        if let Some(list) = list {
            for m in &list.messages {
                self.handle_message(idx, m.msg_type, m.body, now, true)?;
            }
        }
        self.handle_message(idx, msg_type, main_body, now, false)
    }

    fn handle_message(
        &mut self,
        idx: usize,
        msg_type: u16,
        body: &[u8],
        now: Instant,
        nested: bool,
    ) -> Result<(), ChannelError> {
        let ty = self.conns[idx].channel_type();
        let msg = ServerMessage::decode(ty, msg_type, body)?;
        tracing::trace!(channel = %ty, msg = msg.name(), len = body.len(), "message");
        match msg {
            ServerMessage::Base(b) => self.handle_base(idx, b, now, nested),
            ServerMessage::Main(m) => {
                let clock = self.mm_time;
                let r = self.handle_main(idx, m, now);
                if self.mm_time != clock {
                    self.reschedule_video(now);
                }
                r
            }
            ServerMessage::Display(m) => {
                let mm_now = self.mm_time(now);
                let c = &mut self.conns[idx];
                let Kind::Display(d) = &mut c.kind else {
                    return Ok(());
                };
                d.handle(
                    m,
                    &mut c.io,
                    &mut self.display_shared,
                    &mut self.events,
                    now,
                    mm_now,
                )
            }
            ServerMessage::Cursor(m) => self.handle_cursor(idx, m),
            ServerMessage::Inputs(m) => self.handle_inputs(idx, m),
            ServerMessage::Playback(m) => match &mut self.conns[idx].kind {
                Kind::Playback(p) => p.handle(m, &mut self.events),
                _ => Ok(()),
            },
            ServerMessage::Record(m) => match &mut self.conns[idx].kind {
                Kind::Record(r) => r.handle(m, &mut self.events),
                _ => Ok(()),
            },
            ServerMessage::Spicevmc(m) => {
                let c = &mut self.conns[idx];
                let id = c.channel_id;
                let Kind::Vmc(v) = &mut c.kind else {
                    return Ok(());
                };
                v.handle(ConnId(idx as u32), ty, id, m, &mut self.events)
            }
            ServerMessage::Smartcard(m) => {
                let id = self.conns[idx].channel_id;
                if let Some(ev) = crate::spicevmc::smartcard_event(ConnId(idx as u32), id, m) {
                    self.events.push_back(ev);
                }
                Ok(())
            }
            other => {
                tracing::debug!(channel = %ty, msg = other.name(), "ignored message");
                Ok(())
            }
        }
    }

    fn handle_base(
        &mut self,
        idx: usize,
        msg: base::ServerMessage<'_>,
        now: Instant,
        nested: bool,
    ) -> Result<(), ChannelError> {
        let c = &mut self.conns[idx];
        match msg {
            base::ServerMessage::SetAck(a) => {
                c.ack_generation = a.generation;
                c.ack_window = a.window;
                c.ack_count = a.window;
                c.io.send(&ClientMessage::Base(base::ClientMessage::AckSync {
                    generation: a.generation,
                }))?;
            }
            base::ServerMessage::Ping(p) => {
                c.io.send(&ClientMessage::Base(base::ClientMessage::Pong(Pong {
                    id: p.id,
                    timestamp: p.timestamp,
                })))?;
            }
            base::ServerMessage::Notify(n) => {
                let mut m = n.message;
                while let [rest @ .., 0] = m {
                    m = rest;
                }
                self.events.push_back(Event::Notify {
                    severity: n.severity.0,
                    visibility: n.visibility.0,
                    what: n.what,
                    message: String::from_utf8_lossy(m).into_owned(),
                });
            }
            base::ServerMessage::Disconnecting(d) => {
                self.events.push_back(Event::ServerDisconnecting {
                    conn: ConnId(idx as u32),
                    reason: d.reason,
                });
            }
            base::ServerMessage::Migrate(flags) => {
                // No migration support: acknowledge the flush so the server does not wait,
                // and tell the embedder.
                if flags.contains(base::MigrateFlags::NEED_FLUSH) {
                    c.io.send(&ClientMessage::Base(base::ClientMessage::MigrateFlushMark))?;
                }
                self.events.push_back(Event::MigrationRefused);
            }
            base::ServerMessage::MigrateData(_) => {
                tracing::debug!("MIGRATE_DATA ignored (no migration support)");
            }
            base::ServerMessage::WaitForChannels(_) => {
                // Already waited for before the message was taken (see process_conn).
            }
            base::ServerMessage::List(list) => {
                if nested {
                    return Err(ChannelError::Protocol {
                        channel: c.channel_type(),
                        msg: "list",
                        detail: "a LIST inside a sub-message list".into(),
                    });
                }
                for m in &list.messages {
                    self.handle_message(idx, m.msg_type, m.body, now, true)?;
                }
            }
        }
        Ok(())
    }

    fn handle_main(
        &mut self,
        idx: usize,
        msg: pmain::ServerMessage<'_>,
        now: Instant,
    ) -> Result<(), ChannelError> {
        use pmain::ServerMessage as M;
        let c = &mut self.conns[idx];
        let Kind::Main(st) = &mut c.kind else {
            return Ok(());
        };
        match msg {
            M::Init(init) => {
                self.session_id = Some(init.session_id);
                if self.config.glz_window_pixels <= 0 {
                    let bytes = (init.ram_hint / 2).clamp(12 << 20, 64 << 20);
                    self.config.glz_window_pixels = (bytes / 4) as i32;
                }
                // No display channel exists before MAIN_INIT: size the shared window now.
                self.display_shared = DisplayShared::new(&self.config);
                self.mm_time = Some((init.multi_media_time, now));
                st.mouse_mode = Some(init.current_mouse_mode);
                st.supported_mouse_modes = Some(init.supported_mouse_modes);
                st.agent_connected = init.agent_connected != 0;
                st.agent_tokens = init.agent_tokens;
                self.events.push_back(Event::MainInit {
                    session_id: init.session_id,
                    supported_mouse_modes: init.supported_mouse_modes,
                    current_mouse_mode: init.current_mouse_mode,
                    agent_connected: init.agent_connected != 0,
                    display_channels_hint: init.display_channels_hint,
                });
                self.events
                    .push_back(Event::MultiMediaTime(init.multi_media_time));
                if st.agent_connected && self.config.agent {
                    c.io.send(&ClientMessage::Main(pmain::ClientMessage::AgentStart {
                        num_tokens: u32::MAX,
                    }))?;
                }
                if let Some(want) = self.config.mouse_mode {
                    if want != init.current_mouse_mode && init.supported_mouse_modes.contains(want)
                    {
                        c.io.send(&ClientMessage::Main(
                            pmain::ClientMessage::MouseModeRequest { mode: want },
                        ))?;
                    }
                }
                if !st.attached {
                    st.attached = true;
                    c.io.send(&ClientMessage::Main(pmain::ClientMessage::AttachChannels))?;
                }
            }
            M::ChannelsList(list) => {
                for ch in list {
                    let sel = self.config.channels;
                    let kind = match ch.channel_type {
                        ChannelType::DISPLAY if sel.display => Some(Kind::Display(Box::new(
                            DisplayChannel::new(ch.id, &self.config),
                        ))),
                        ChannelType::INPUTS if sel.inputs => {
                            Some(Kind::Inputs(InputsState::default()))
                        }
                        ChannelType::CURSOR if sel.cursor => Some(Kind::Cursor(CursorCache::new())),
                        ChannelType::PLAYBACK if self.config.audio.playback => {
                            Some(Kind::Playback(Box::default()))
                        }
                        ChannelType::RECORD if self.config.audio.record => Some(Kind::Record(
                            Box::new(RecordChannel::new(self.config.audio.opus)),
                        )),
                        t if crate::spicevmc::is_passthrough(t)
                            && self.config.passthrough.wants(t) =>
                        {
                            Some(Kind::Vmc(crate::spicevmc::VmcState::default()))
                        }
                        _ => None,
                    };
                    let already = self
                        .conns
                        .iter()
                        .any(|c| c.channel_type() == ch.channel_type && c.channel_id == ch.id);
                    match kind {
                        Some(kind) if !already => {
                            self.open(ch.channel_type, ch.id, kind).map_err(|e| {
                                ChannelError::Protocol {
                                    channel: ChannelType::MAIN,
                                    msg: "channels_list",
                                    detail: e.to_string(),
                                }
                            })?;
                        }
                        Some(_) => {}
                        None => self.events.push_back(Event::ChannelSkipped {
                            channel_type: ch.channel_type,
                            channel_id: ch.id,
                        }),
                    }
                }
            }
            M::MouseMode {
                supported_modes,
                current_mode,
            } => {
                st.mouse_mode = Some(current_mode);
                st.supported_mouse_modes = Some(supported_modes);
                self.events.push_back(Event::MouseMode {
                    supported: supported_modes,
                    current: current_mode,
                });
            }
            M::MultiMediaTime { time } => {
                self.mm_time = Some((time, now));
                self.events.push_back(Event::MultiMediaTime(time));
            }
            M::AgentConnected | M::AgentConnectedTokens { .. } => {
                if let M::AgentConnectedTokens { num_tokens } = msg {
                    st.agent_tokens = num_tokens;
                }
                st.agent_connected = true;
                if self.config.agent {
                    c.io.send(&ClientMessage::Main(pmain::ClientMessage::AgentStart {
                        num_tokens: u32::MAX,
                    }))?;
                }
                self.events.push_back(Event::AgentConnected);
                Self::flush_agent(st, &mut c.io)?;
            }
            M::AgentDisconnected { error_code } => {
                st.agent_connected = false;
                st.agent_tokens = 0;
                st.agent_queue.clear();
                self.events
                    .push_back(Event::AgentDisconnected { error_code });
            }
            M::AgentData(d) => self.events.push_back(Event::AgentData(d.to_vec())),
            M::AgentToken { num_tokens } => {
                st.agent_tokens = st.agent_tokens.saturating_add(num_tokens);
                Self::flush_agent(st, &mut c.io)?;
            }
            M::Name(n) => {
                let n = n.strip_suffix(&[0]).unwrap_or(n);
                self.events
                    .push_back(Event::Name(String::from_utf8_lossy(n).into_owned()));
            }
            M::Uuid(u) => self.events.push_back(Event::Uuid(u)),
            M::MigrateBegin(_) | M::MigrateBeginSeamless { .. } => {
                c.io.send(&ClientMessage::Main(
                    pmain::ClientMessage::MigrateConnectError,
                ))?;
                self.events.push_back(Event::MigrationRefused);
            }
            M::MigrateSwitchHost(dst) => {
                let host = dst.host.unwrap_or(b"");
                let host = host.strip_suffix(&[0]).unwrap_or(host);
                let port = |p: u16| (p != 0 && p != u16::MAX).then_some(p);
                self.events.push_back(Event::SwitchHost {
                    host: String::from_utf8_lossy(host).into_owned(),
                    port: port(dst.port),
                    tls_port: port(dst.sport),
                });
            }
            M::MigrateCancel
            | M::MigrateEnd
            | M::MigrateDstSeamlessAck
            | M::MigrateDstSeamlessNack => {
                tracing::debug!("migration message ignored");
            }
            other => tracing::debug!(msg = ?other, "unhandled main message"),
        }
        Ok(())
    }

    fn flush_agent(st: &mut MainState, io: &mut ConnIo) -> Result<(), EncodeError> {
        while st.agent_tokens > 0 {
            let Some(chunk) = st.agent_queue.pop_front() else {
                break;
            };
            st.agent_tokens -= 1;
            io.send(&ClientMessage::Main(pmain::ClientMessage::AgentData(
                &chunk,
            )))?;
        }
        Ok(())
    }

    fn handle_cursor(
        &mut self,
        idx: usize,
        msg: pcursor::ServerMessage<'_>,
    ) -> Result<(), ChannelError> {
        use pcursor::ServerMessage as M;
        let Kind::Cursor(cache) = &mut self.conns[idx].kind else {
            return Ok(());
        };
        let resolve = |cache: &mut CursorCache, c, name| {
            cache.resolve(c).map_err(|e| ChannelError::Protocol {
                channel: ChannelType::CURSOR,
                msg: name,
                detail: e.to_string(),
            })
        };
        match msg {
            M::Init(i) => {
                cache.clear();
                let shape = resolve(cache, &i.cursor, "init")?;
                self.events.push_back(Event::CursorSet {
                    shape,
                    x: i.position.x,
                    y: i.position.y,
                    visible: i.visible != 0,
                });
                self.events.push_back(Event::CursorTrail {
                    length: i.trail_length,
                    frequency: i.trail_frequency,
                });
            }
            M::Set(s) => {
                let shape = resolve(cache, &s.cursor, "set")?;
                self.events.push_back(Event::CursorSet {
                    shape,
                    x: s.position.x,
                    y: s.position.y,
                    visible: s.visible != 0,
                });
            }
            M::Move(p) => self.events.push_back(Event::CursorMoved { x: p.x, y: p.y }),
            M::Hide => self.events.push_back(Event::CursorHidden),
            M::Reset => {
                cache.clear();
                self.events.push_back(Event::CursorReset);
            }
            M::Trail { length, frequency } => self
                .events
                .push_back(Event::CursorTrail { length, frequency }),
            M::InvalOne(id) => cache.remove(id),
            M::InvalAll => cache.clear(),
            other => tracing::debug!(msg = ?other, "unhandled cursor message"),
        }
        Ok(())
    }

    fn handle_inputs(
        &mut self,
        idx: usize,
        msg: pinputs::ServerMessage<'_>,
    ) -> Result<(), ChannelError> {
        use pinputs::InputsServerMessage as M;
        let c = &mut self.conns[idx];
        let Kind::Inputs(st) = &mut c.kind else {
            return Ok(());
        };
        match msg {
            M::Init { keyboard_modifiers }
            | M::KeyModifiers {
                modifiers: keyboard_modifiers,
            } => {
                st.modifiers = Some(keyboard_modifiers);
                self.events
                    .push_back(Event::KeyModifiers(keyboard_modifiers));
            }
            M::MouseMotionAck => {
                st.motion_count = st.motion_count.saturating_sub(MOTION_ACK_BUNCH);
                Self::flush_motion(st, &mut c.io)?;
            }
            other => tracing::debug!(msg = ?other, "unhandled inputs message"),
        }
        Ok(())
    }

    /// Sends accumulated motion / the latest position while the window allows.
    fn flush_motion(st: &mut InputsState, io: &mut ConnIo) -> Result<(), EncodeError> {
        if st.motion_count >= 2 * MOTION_ACK_BUNCH {
            return Ok(());
        }
        if st.pending_dx != 0 || st.pending_dy != 0 {
            io.send(&ClientMessage::Inputs(
                pinputs::ClientMessage::MouseMotion {
                    dx: std::mem::take(&mut st.pending_dx),
                    dy: std::mem::take(&mut st.pending_dy),
                    buttons_state: st.buttons,
                },
            ))?;
            st.motion_count += 1;
        }
        if st.motion_count < 2 * MOTION_ACK_BUNCH {
            if let Some((x, y, display_id)) = st.pending_position.take() {
                io.send(&ClientMessage::Inputs(
                    pinputs::ClientMessage::MousePosition {
                        x,
                        y,
                        buttons_state: st.buttons,
                        display_id,
                    },
                ))?;
                st.motion_count += 1;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------------------------

    /// When [`Session::handle_timeout`] should be called next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter(|c| c.is_open())
            .filter_map(|c| match &c.kind {
                Kind::Display(d) => d.next_deadline(),
                _ => None,
            })
            .min()
    }

    /// Runs the timers that are due at `now` (stream reports, video frames due for
    /// presentation).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut errors = Vec::new();
        let mm_now = self.mm_time(now);
        for (idx, c) in self.conns.iter_mut().enumerate() {
            if !c.is_open() {
                continue;
            }
            if let Kind::Display(d) = &mut c.kind {
                if let Err(e) = d.handle_timeout(&mut c.io, &mut self.events, now, mm_now) {
                    errors.push((idx, e));
                }
            }
        }
        for (idx, e) in errors {
            self.fail(idx, e);
        }
    }

    // ------------------------------------------------------------------------------------
    // Main channel API
    // ------------------------------------------------------------------------------------

    fn find(&mut self, ty: ChannelType) -> Result<&mut Conn, SessionError> {
        self.conns
            .iter_mut()
            .find(|c| c.channel_type() == ty && c.is_open())
            .ok_or(SessionError::NotConnected(ty))
    }

    /// Asks the server for a mouse mode (`MOUSE_MODE_REQUEST`).
    pub fn request_mouse_mode(&mut self, mode: MouseMode) -> Result<(), SessionError> {
        let c = self.find(ChannelType::MAIN)?;
        c.io.send(&ClientMessage::Main(
            pmain::ClientMessage::MouseModeRequest { mode },
        ))?;
        Ok(())
    }

    /// The current mouse mode, once known.
    pub fn mouse_mode(&self) -> Option<MouseMode> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Main(m) => m.mouse_mode,
            _ => None,
        })
    }

    /// Queues bytes of the agent stream (VDAgentMessages): split into `AGENT_DATA` chunks
    /// of at most [`AGENT_MAX_DATA`] bytes, each sent when the server has granted a token.
    pub fn send_agent_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let c = self.find(ChannelType::MAIN)?;
        let Kind::Main(st) = &mut c.kind else {
            return Err(SessionError::NotConnected(ChannelType::MAIN));
        };
        for chunk in data.chunks(AGENT_MAX_DATA) {
            st.agent_queue.push_back(chunk.to_vec());
        }
        Self::flush_agent(st, &mut c.io)?;
        Ok(())
    }

    /// `AGENT_DATA` chunks queued and waiting for server tokens (0 without a main channel).
    pub fn agent_queued(&self) -> usize {
        self.conns
            .iter()
            .find_map(|c| match &c.kind {
                Kind::Main(m) => Some(m.agent_queue.len()),
                _ => None,
            })
            .unwrap_or(0)
    }

    // ------------------------------------------------------------------------------------
    // Inputs API
    // ------------------------------------------------------------------------------------

    fn inputs(&mut self) -> Result<(&mut InputsState, &mut ConnIo), SessionError> {
        let c = self.find(ChannelType::INPUTS)?;
        match &mut c.kind {
            Kind::Inputs(st) => Ok((st, &mut c.io)),
            _ => Err(SessionError::NotConnected(ChannelType::INPUTS)),
        }
    }

    /// Key press: a set-1 scancode `make` code (`0x1e` for A), `extended` for the
    /// `E0`-prefixed keys (right Ctrl, arrows, ...). Sent as `KEY_DOWN` with the code
    /// packed as spice-gtk does (`E0 1D` → `0x1de0`).
    pub fn key_down(&mut self, make: u8, extended: bool) -> Result<(), SessionError> {
        let (_, io) = self.inputs()?;
        let code = pinputs::make_scancode(make, extended, false);
        io.send(&ClientMessage::Inputs(pinputs::ClientMessage::KeyDown {
            code,
        }))?;
        Ok(())
    }

    /// Key release (`KEY_UP` with the break bit set).
    pub fn key_up(&mut self, make: u8, extended: bool) -> Result<(), SessionError> {
        let (_, io) = self.inputs()?;
        let code = pinputs::make_scancode(make, extended, true);
        io.send(&ClientMessage::Inputs(pinputs::ClientMessage::KeyUp {
            code,
        }))?;
        Ok(())
    }

    /// Sets the guest's lock keys (`KEY_MODIFIERS`).
    pub fn set_key_modifiers(&mut self, modifiers: KeyboardModifiers) -> Result<(), SessionError> {
        let (_, io) = self.inputs()?;
        io.send(&ClientMessage::Inputs(
            pinputs::ClientMessage::KeyModifiers { modifiers },
        ))?;
        Ok(())
    }

    /// The guest's lock keys as last reported by the server.
    pub fn key_modifiers(&self) -> Option<KeyboardModifiers> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Inputs(i) => i.modifiers,
            _ => None,
        })
    }

    /// Relative mouse motion (server mouse mode). While 8 or more motion messages are
    /// unacknowledged, motion is accumulated and sent with the next `MOUSE_MOTION_ACK`.
    pub fn mouse_motion(&mut self, dx: i32, dy: i32) -> Result<(), SessionError> {
        let (st, io) = self.inputs()?;
        st.pending_dx = st.pending_dx.saturating_add(dx);
        st.pending_dy = st.pending_dy.saturating_add(dy);
        Self::flush_motion(st, io)?;
        Ok(())
    }

    /// Absolute mouse position (client mouse mode) on display `display_id`. Bunched like
    /// [`Session::mouse_motion`]: only the latest position is kept while waiting.
    pub fn mouse_position(&mut self, x: u32, y: u32, display_id: u8) -> Result<(), SessionError> {
        let (st, io) = self.inputs()?;
        st.pending_position = Some((x, y, display_id));
        Self::flush_motion(st, io)?;
        Ok(())
    }

    /// A button press (`MOUSE_PRESS`); the button state includes it afterwards.
    pub fn mouse_press(&mut self, button: MouseButton) -> Result<(), SessionError> {
        let (st, io) = self.inputs()?;
        // Pending motion goes first so the press lands where the pointer is.
        Self::flush_motion(st, io)?;
        if let Some(m) = button.mask() {
            st.buttons |= m;
        }
        io.send(&ClientMessage::Inputs(pinputs::ClientMessage::MousePress {
            button,
            buttons_state: st.buttons,
        }))?;
        Ok(())
    }

    /// A button release (`MOUSE_RELEASE`).
    pub fn mouse_release(&mut self, button: MouseButton) -> Result<(), SessionError> {
        let (st, io) = self.inputs()?;
        Self::flush_motion(st, io)?;
        if let Some(m) = button.mask() {
            st.buttons.remove(m);
        }
        io.send(&ClientMessage::Inputs(
            pinputs::ClientMessage::MouseRelease {
                button,
                buttons_state: st.buttons,
            },
        ))?;
        Ok(())
    }

    /// Motion/position messages sent and not yet acknowledged.
    pub fn unacked_motion(&self) -> u32 {
        self.conns
            .iter()
            .find_map(|c| match &c.kind {
                Kind::Inputs(i) => Some(i.motion_count),
                _ => None,
            })
            .unwrap_or(0)
    }

    // ------------------------------------------------------------------------------------
    // Display API
    // ------------------------------------------------------------------------------------

    fn display(&self, display: u8) -> Option<&DisplayChannel> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Display(d) if c.channel_id == display => Some(&**d),
            _ => None,
        })
    }

    /// The display channel state of instance `display` (surfaces, streams).
    pub fn display_channel(&self, display: u8) -> Option<&DisplayChannel> {
        self.display(display)
    }

    /// The session-wide display state shared by all display channels (caches, GLZ window).
    pub fn display_shared(&self) -> &DisplayShared {
        &self.display_shared
    }

    /// Surface `surface_id` of display channel `display` (pixels `0xAARRGGBB`).
    pub fn surface(&self, display: u8, surface_id: u32) -> Option<&spice_canvas::Surface> {
        self.display(display)?.surface(surface_id)
    }

    /// Shared cursor shape cache of the cursor channel, if linked.
    pub fn cursor_cache(&self) -> Option<&CursorCache> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Cursor(cc) => Some(cc),
            _ => None,
        })
    }
}

// ----------------------------------------------------------------------------------------
// Audio API
// ----------------------------------------------------------------------------------------

impl Session {
    /// Sends captured audio on the record channel: interleaved S16 samples in the format
    /// of the last [`Event::RecordStart`] (any amount; complete 480-sample frames are
    /// coded raw or Opus as negotiated and sent, the rest waits for more). Fails with
    /// [`SessionError::NotActive`] outside `RECORD_START` / `RECORD_STOP`.
    pub fn send_record_pcm(&mut self, pcm: &[i16], now: Instant) -> Result<(), SessionError> {
        let mm_now = self.mm_time(now).unwrap_or(0);
        let c = self.find(ChannelType::RECORD)?;
        match &mut c.kind {
            Kind::Record(r) => r.send_pcm(pcm, mm_now, &mut c.io),
            _ => Err(SessionError::NotConnected(ChannelType::RECORD)),
        }
    }

    /// The playback channel's state, if linked.
    pub fn playback_channel(&self) -> Option<&PlaybackChannel> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Playback(p) if c.is_open() => Some(&**p),
            _ => None,
        })
    }

    /// The record channel's state, if linked.
    pub fn record_channel(&self) -> Option<&RecordChannel> {
        self.conns.iter().find_map(|c| match &c.kind {
            Kind::Record(r) if c.is_open() => Some(&**r),
            _ => None,
        })
    }
}

/// Shared handle type for cursor shapes in events.
pub type SharedCursor = Arc<crate::cursor::CursorShape>;

#[allow(dead_code)]
/// Passthrough channels (usbredir, smartcard, port, webdav); see [`crate::spicevmc`].
impl Session {
    /// The connection of passthrough channel (`channel_type`, `channel_id`) once linked.
    pub fn passthrough_conn(&self, channel_type: ChannelType, channel_id: u8) -> Option<ConnId> {
        self.conns
            .iter()
            .position(|c| {
                c.channel_type() == channel_type
                    && c.channel_id == channel_id
                    && c.is_open()
                    && matches!(c.kind, Kind::Vmc(_))
            })
            .map(|i| ConnId(i as u32))
    }

    fn vmc(
        &mut self,
        conn: ConnId,
    ) -> Result<(&mut crate::spicevmc::VmcState, &mut ConnIo), SessionError> {
        let c = self
            .conns
            .get_mut(conn.0 as usize)
            .ok_or(SessionError::UnknownConnection(conn))?;
        let ty = c.channel_type();
        match (&c.link, &mut c.kind) {
            (LinkStage::Open(_), Kind::Vmc(v)) => Ok((v, &mut c.io)),
            _ => Err(SessionError::NotConnected(ty)),
        }
    }

    /// Writes device data on a usbredir, port or webdav connection: queued in messages of
    /// at most [`crate::spicevmc::SEND_CHUNK`] bytes, LZ4-compressed when the server has the
    /// cap and it pays off. Takes only what keeps the connection's unsent output under
    /// [`crate::spicevmc::MAX_PENDING_OUTPUT`]; returns the bytes taken (0: transmit first).
    pub fn vmc_write(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SessionError> {
        let (v, io) = self.vmc(conn)?;
        if io.channel_type == ChannelType::SMARTCARD {
            return Err(SessionError::NotConnected(ChannelType::USBREDIR));
        }
        Ok(v.write(io, data)?)
    }

    /// Sends `PORT_EVENT` (opened, closed, break) on a port or webdav connection.
    pub fn port_event(
        &mut self,
        conn: ConnId,
        event: spice_proto::spicevmc::PortEvent,
    ) -> Result<(), SessionError> {
        let (v, io) = self.vmc(conn)?;
        if !matches!(io.channel_type, ChannelType::PORT | ChannelType::WEBDAV) {
            return Err(SessionError::NotConnected(ChannelType::PORT));
        }
        Ok(v.port_event(io, event)?)
    }

    /// The port's name and guest open state (after `PORT_INIT`).
    pub fn port_state(&self, conn: ConnId) -> Option<&crate::spicevmc::PortState> {
        match &self.conns.get(conn.0 as usize)?.kind {
            Kind::Vmc(v) => v.port.as_ref(),
            _ => None,
        }
    }

    /// True when the server agreed to LZ4 `COMPRESSED_DATA` on this passthrough connection.
    pub fn vmc_lz4(&self, conn: ConnId) -> bool {
        matches!(self.conns.get(conn.0 as usize).map(|c| &c.kind), Some(Kind::Vmc(v)) if v.lz4)
    }

    /// The counters of a passthrough connection.
    pub fn vmc_stats(&self, conn: ConnId) -> Option<crate::spicevmc::VmcStats> {
        match &self.conns.get(conn.0 as usize)?.kind {
            Kind::Vmc(v) => Some(v.stats),
            _ => None,
        }
    }

    /// Unsent bytes queued on a connection.
    pub fn pending_output(&self, conn: ConnId) -> usize {
        self.conns
            .get(conn.0 as usize)
            .map_or(0, |c| c.io.out.len())
    }

    /// Sends one VSC message (`msg_type`, `reader_id`, payload) on a smartcard connection.
    pub fn smartcard_send(
        &mut self,
        conn: ConnId,
        msg_type: u32,
        reader_id: u32,
        data: &[u8],
    ) -> Result<(), SessionError> {
        let (_, io) = self.vmc(conn)?;
        if io.channel_type != ChannelType::SMARTCARD {
            return Err(SessionError::NotConnected(ChannelType::SMARTCARD));
        }
        Ok(crate::spicevmc::smartcard_send(
            io, msg_type, reader_id, data,
        )?)
    }
}

fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Session>();
}
