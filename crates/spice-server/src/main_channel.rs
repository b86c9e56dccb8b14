//! The main channel: `MAIN_INIT`, `CHANNELS_LIST`, mouse modes, multimedia time, and the
//! agent data, relayed by [`crate::agent::AgentLink`].
//!
//! # Multimedia time
//!
//! As spice-server does, the server stamps video stream frames and playback packets with its
//! raw multimedia clock ([`ServerContext::mm_time`]) but tells the client a clock that runs
//! [`MM_TIME_DELTA`] behind it (`MAIN_INIT.multi_media_time` and `MULTI_MEDIA_TIME` are
//! `mm_time(now) - MM_TIME_DELTA`). A client that presents each frame and each audio packet
//! when its own copy of the clock reaches the stamp (spice-gtk does) thus plays both with the
//! same 400 ms of buffering, in sync. The latency grows when a video stream needs more, and
//! hands over to the client's audio while it plays ([`MmTimeControl`]).

use std::sync::{Arc, Weak};
use std::time::Instant;

use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::link::LinkErr;
use spice_proto::main::{ClientMessage, Init, MouseMode, ServerMessage};
use spice_proto::messages;

use crate::channel::{
    ChannelError, ChannelFactory, ChannelHandler, ChannelInfo, OpenContext, Outbox,
};
use crate::server::ServerContext;
use crate::session::Session;

/// Agent data tokens granted to the client in `MAIN_INIT` (spice-server's
/// `REDS_AGENT_WINDOW_SIZE`).
pub const AGENT_TOKENS: u32 = 10;

/// How far the clock sent to clients runs behind the server's multimedia clock (ms):
/// spice-server's `MM_TIME_DELTA`, the latency clients get to buffer video and audio.
pub const MM_TIME_DELTA: u32 = 400;

/// The multimedia time to send to a client at `now`: the server's clock minus
/// [`MM_TIME_DELTA`] (wrapping like the u32 clock).
pub fn client_mm_time(server: &ServerContext, now: Instant) -> u32 {
    server.mm_time(now).wrapping_sub(MM_TIME_DELTA)
}

/// One client's multimedia-clock control, shared by its main, playback and display
/// channels (`Session::shared`): spice-server's `mm_time_enabled` / `mm_time_latency`
/// (`reds_enable_mm_time`, `reds_disable_mm_time`, `reds_set_client_mm_time_latency`),
/// kept per client.
///
/// - While no audio plays, the main channel owns the client's clock: it runs
///   [`MmTimeControl::latency`] behind the server's (400 ms at first). When a video stream
///   needs more ([`MmTimeControl::stream_latency`], from the stream's rate control), the
///   latency grows and the main channel sends `MULTI_MEDIA_TIME` again.
/// - While audio plays, the client follows the audio (spice-gtk sets its clock from the
///   audio device's delay): a larger latency goes to the playback channel as
///   `PLAYBACK_LATENCY` (the client buffers that much audio) instead.
/// - When the audio stops, the latency is back to [`MM_TIME_DELTA`] and the main channel
///   sends `MULTI_MEDIA_TIME`, putting the client's clock back on the server's.
#[derive(Debug)]
pub struct MmTimeControl {
    st: std::sync::Mutex<MmState>,
}

#[derive(Debug)]
struct MmState {
    latency: u32,
    playing: u32,
    resend: bool,
    /// The latest latency for the playback channels, with a generation they compare.
    playback_latency: Option<(u64, u32)>,
    main_waker: Option<crate::channel::Waker>,
    playback_wakers: Vec<crate::channel::Waker>,
}

impl Default for MmTimeControl {
    fn default() -> Self {
        Self::new()
    }
}

impl MmTimeControl {
    /// The control of a new client: no audio, latency [`MM_TIME_DELTA`].
    pub fn new() -> Self {
        Self {
            st: std::sync::Mutex::new(MmState {
                latency: MM_TIME_DELTA,
                playing: 0,
                resend: false,
                playback_latency: None,
                main_waker: None,
                playback_wakers: Vec::new(),
            }),
        }
    }

    /// How far the clock the main channel sends runs behind the server's (ms).
    pub fn latency(&self) -> u32 {
        crate::session::lock(&self.st).latency
    }

    /// True while the main channel owns the client's clock (no audio playing).
    pub fn enabled(&self) -> bool {
        crate::session::lock(&self.st).playing == 0
    }

    /// A playback channel of the client started playing (`reds_disable_mm_time`).
    pub fn playback_started(&self) {
        crate::session::lock(&self.st).playing += 1;
    }

    /// A playback channel stopped (or went away while playing): with no audio left the
    /// main channel owns the clock again, at [`MM_TIME_DELTA`], and resends it
    /// (`reds_enable_mm_time`).
    pub fn playback_stopped(&self) {
        let mut st = crate::session::lock(&self.st);
        st.playing = st.playing.saturating_sub(1);
        if st.playing == 0 {
            st.latency = MM_TIME_DELTA;
            st.resend = true;
            if let Some(w) = &st.main_waker {
                w.wake();
            }
        }
    }

    /// A video stream of the client needs `latency_ms` of buffering
    /// (`reds_set_client_mm_time_latency`): without audio the clock's latency grows to it
    /// (never shrinks) and is resent; with audio the playback channels tell the client.
    pub fn stream_latency(&self, latency_ms: u32) {
        let mut st = crate::session::lock(&self.st);
        if st.playing == 0 {
            if latency_ms > st.latency {
                st.latency = latency_ms;
                st.resend = true;
                if let Some(w) = &st.main_waker {
                    w.wake();
                }
            }
        } else {
            let generation = st.playback_latency.map_or(1, |(g, _)| g + 1);
            st.playback_latency = Some((generation, latency_ms));
            for w in &st.playback_wakers {
                w.wake();
            }
        }
    }

    /// Registers the main channel's waker.
    pub fn set_main_waker(&self, waker: crate::channel::Waker) {
        crate::session::lock(&self.st).main_waker = Some(waker);
    }

    /// Registers a playback channel's waker.
    pub fn add_playback_waker(&self, waker: crate::channel::Waker) {
        crate::session::lock(&self.st).playback_wakers.push(waker);
    }

    /// The latency to send as `MULTI_MEDIA_TIME`, once per change.
    pub fn take_resend(&self) -> Option<u32> {
        let mut st = crate::session::lock(&self.st);
        std::mem::take(&mut st.resend).then_some(st.latency)
    }

    /// The playback latency newer than generation `seen`, with its generation.
    pub fn playback_latency_since(&self, seen: u64) -> Option<(u64, u32)> {
        crate::session::lock(&self.st)
            .playback_latency
            .filter(|(g, _)| *g > seen)
    }
}

/// Creates [`MainChannel`]s (built into every server).
#[derive(Debug)]
pub struct MainChannelFactory {
    ctx: Weak<ServerContext>,
}

impl MainChannelFactory {
    /// A factory over the server's context.
    pub fn new(ctx: Weak<ServerContext>) -> Self {
        Self { ctx }
    }
}

impl ChannelFactory for MainChannelFactory {
    fn channel_type(&self) -> ChannelType {
        ChannelType::MAIN
    }
    fn channel_id(&self) -> u8 {
        0
    }
    fn caps(&self) -> Caps {
        Caps::from_caps(&[
            caps::main::SEMI_SEAMLESS_MIGRATE,
            caps::main::NAME_AND_UUID,
            caps::main::AGENT_CONNECTED_TOKENS,
        ])
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        let server = self.ctx.upgrade().ok_or(LinkErr::ERROR)?;
        let mm = ctx.session.shared(MmTimeControl::new);
        mm.set_main_waker(ctx.waker.clone());
        Ok(Box::new(MainChannel {
            mm,
            session: ctx.session.clone(),
            info: ctx.info.clone(),
            agent: crate::agent::AgentLink::new(
                server.agent().cloned(),
                ctx.waker.clone(),
                AGENT_TOKENS,
                ctx.info
                    .peer_channel_caps
                    .has(caps::main::AGENT_CONNECTED_TOKENS),
            ),
            server,
        }))
    }
}

/// The main channel of one client.
pub struct MainChannel {
    server: Arc<ServerContext>,
    /// The client's multimedia clock control.
    mm: Arc<MmTimeControl>,
    session: Arc<Session>,
    info: ChannelInfo,
    /// The agent data relay and its tokens.
    agent: crate::agent::AgentLink,
}

impl std::fmt::Debug for MainChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MainChannel")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

impl MainChannel {
    fn supported_modes(&self) -> MouseMode {
        if self.server.client_mouse_allowed() {
            MouseMode::SERVER | MouseMode::CLIENT
        } else {
            MouseMode::SERVER
        }
    }

    /// Agent tokens the server holds for sending agent data to the client.
    pub fn server_tokens(&self) -> u32 {
        self.agent.server_tokens()
    }

    /// The agent side of this channel.
    pub fn agent(&self) -> &crate::agent::AgentLink {
        &self.agent
    }

    fn protocol(&self, what: String) -> ChannelError {
        ChannelError::Protocol {
            channel: ChannelType::MAIN,
            what,
        }
    }
}

impl ChannelHandler for MainChannel {
    fn on_connect(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let agent = self.agent.agent_connected();
        out.send(&ServerMessage::Init(Init {
            session_id: self.session.id(),
            display_channels_hint: self.server.display_channel_count(),
            supported_mouse_modes: self.supported_modes(),
            current_mouse_mode: self.session.mouse_mode(),
            agent_connected: u32::from(agent),
            agent_tokens: AGENT_TOKENS,
            multi_media_time: client_mm_time(&self.server, now),
            ram_hint: self.server.config().ram_hint,
        }))?;
        let has_name_cap = self.info.peer_channel_caps.has(caps::main::NAME_AND_UUID);
        if has_name_cap {
            if let Some(name) = &self.server.config().name {
                // spice-server includes the terminating NUL.
                let mut bytes = name.as_bytes().to_vec();
                bytes.push(0);
                out.send(&ServerMessage::Name(&bytes))?;
            }
            if let Some(uuid) = self.server.config().uuid {
                out.send(&ServerMessage::Uuid(uuid))?;
            }
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        msg: &messages::ClientMessage<'_>,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        let messages::ClientMessage::Main(msg) = msg else {
            return Err(self.protocol(format!("{} is not a main message", msg.name())));
        };
        match msg {
            ClientMessage::AttachChannels => {
                let list = self
                    .server
                    .channel_list()
                    .into_iter()
                    .filter(|c| c.channel_type != ChannelType::MAIN)
                    .collect();
                out.send(&ServerMessage::ChannelsList(list))?;
                // Keep the client's multimedia clock in step from the start.
                out.send(&ServerMessage::MultiMediaTime {
                    time: self.server.mm_time(now).wrapping_sub(self.mm.latency()),
                })?;
            }
            ClientMessage::MouseModeRequest { mode } => {
                let supported = self.supported_modes();
                let wanted = if *mode == MouseMode::CLIENT {
                    MouseMode::CLIENT
                } else if *mode == MouseMode::SERVER {
                    MouseMode::SERVER
                } else {
                    return Err(self.protocol(format!("mouse mode request {:#x}", mode.bits())));
                };
                if !supported.contains(wanted) {
                    // spice-server ignores a request for a mode it does not allow.
                    tracing::info!(
                        session = self.session.id(),
                        ?wanted,
                        "mouse mode not allowed"
                    );
                    return Ok(());
                }
                self.session.set_mouse_mode(wanted);
                tracing::debug!(session = self.session.id(), ?wanted, "mouse mode");
                out.send(&ServerMessage::MouseMode {
                    supported_modes: supported,
                    current_mode: wanted,
                })?;
            }
            ClientMessage::AgentStart { num_tokens } => self.agent.on_start(*num_tokens, out)?,
            ClientMessage::AgentToken { num_tokens } => self.agent.on_token(*num_tokens),
            ClientMessage::AgentData(data) => self.agent.on_data(data, out)?,
            ClientMessage::ClientInfo { .. } | ClientMessage::QualityIndicator(_) => {}
            ClientMessage::MigrateConnected
            | ClientMessage::MigrateConnectError
            | ClientMessage::MigrateEnd
            | ClientMessage::MigrateDstDoSeamless { .. }
            | ClientMessage::MigrateConnectedSeamless => {
                // This server never starts a migration.
                tracing::debug!(msg = msg_name(msg), "migration message ignored");
            }
            _ => tracing::debug!(msg = msg_name(msg), "main message ignored"),
        }
        Ok(())
    }

    fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        if let Some(latency) = self.mm.take_resend() {
            // spice-server's reds_send_mm_time.
            out.send(&ServerMessage::MultiMediaTime {
                time: self.server.mm_time(now).wrapping_sub(latency),
            })?;
        }
        self.agent.poll(now, out)?;
        if self.agent.take_state_changed() {
            self.agent_mouse_changed(out)?;
        }
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.agent.poll_timeout()
    }

    fn on_disconnect(&mut self) {
        self.agent.detach();
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl MainChannel {
    /// The agent came or went: the supported mouse modes may differ (spice-server's
    /// `reds_update_mouse_mode`); client mode without support falls back to server mode.
    fn agent_mouse_changed(&mut self, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let supported = self.supported_modes();
        let mut current = self.session.mouse_mode();
        if !supported.contains(current) {
            current = MouseMode::SERVER;
            self.session.set_mouse_mode(current);
        }
        out.send(&ServerMessage::MouseMode {
            supported_modes: supported,
            current_mode: current,
        })
    }
}

fn msg_name(m: &ClientMessage<'_>) -> &'static str {
    use spice_proto::ChannelMessage;
    m.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn mm_time_control_state_machine() {
        let c = MmTimeControl::new();
        let main_wakes = Arc::new(AtomicU32::new(0));
        let pb_wakes = Arc::new(AtomicU32::new(0));
        let (m, p) = (main_wakes.clone(), pb_wakes.clone());
        c.set_main_waker(crate::channel::Waker::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
        }));
        c.add_playback_waker(crate::channel::Waker::new(move || {
            p.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(c.enabled());
        assert_eq!((c.latency(), c.take_resend()), (MM_TIME_DELTA, None));
        c.stream_latency(MM_TIME_DELTA);
        assert_eq!(c.take_resend(), None, "not larger");
        c.stream_latency(600);
        assert_eq!(main_wakes.load(Ordering::SeqCst), 1);
        assert_eq!((c.take_resend(), c.take_resend()), (Some(600), None));
        // Two playback channels: the clock comes back only when both stopped.
        c.playback_started();
        c.playback_started();
        c.stream_latency(800);
        c.stream_latency(700);
        assert_eq!(pb_wakes.load(Ordering::SeqCst), 2);
        assert_eq!(c.playback_latency_since(0), Some((2, 700)));
        assert_eq!(c.playback_latency_since(2), None);
        assert_eq!(c.latency(), 600, "the clock's latency is left alone");
        c.playback_stopped();
        assert!(!c.enabled());
        assert_eq!(c.take_resend(), None);
        c.playback_stopped();
        assert!(c.enabled());
        assert_eq!(c.take_resend(), Some(MM_TIME_DELTA));
        assert_eq!(main_wakes.load(Ordering::SeqCst), 2);
        // A stray stop does not underflow.
        c.playback_stopped();
        assert!(c.enabled());
    }
}
