//! The display channel as a plug-in of the channel layer: a [`ChannelFactory`] that joins
//! each client linking the display channel to the device's [`DisplayWorker`], and the
//! [`ChannelHandler`] that feeds it the client's messages and pulls its queue while the ACK
//! window is open.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::display::ServerMessage;
use spice_proto::link::LinkErr;
use spice_proto::messages::ClientMessage;

use super::client::{ClientId, ClientOptions, DisplayClientCaps};
use super::glz::GlzRegistry;
use super::worker::{DisplayDevice, DisplayError, DisplaySink, DisplayWorker};
use crate::channel::{ChannelError, ChannelFactory, ChannelHandler, OpenContext, Outbox};
use crate::main_channel::MmTimeControl;
use crate::session::lock;

/// A display worker shared by its channel handlers and whoever drives the device.
pub type SharedWorker<D> = Arc<Mutex<DisplayWorker<D>>>;

/// Milliseconds since `epoch` (the worker's clock).
pub fn millis_since(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64
}

impl DisplaySink for Outbox<'_> {
    fn can_send(&self) -> bool {
        Outbox::can_send(self)
    }

    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        Outbox::send(self, msg).map_err(|e| DisplayError::Send(e.to_string()))
    }
}

/// The display channel of one QXL device (channel id `channel_id`).
pub struct DisplayChannelFactory<D: DisplayDevice> {
    worker: SharedWorker<D>,
    channel_id: u8,
    epoch: Instant,
}

impl<D: DisplayDevice> std::fmt::Debug for DisplayChannelFactory<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayChannelFactory")
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

impl<D: DisplayDevice> DisplayChannelFactory<D> {
    /// The factory for `worker`'s display channel `channel_id`; `epoch` is the instant the
    /// worker's millisecond clock counts from (the same the device driver uses).
    pub fn new(worker: SharedWorker<D>, channel_id: u8, epoch: Instant) -> Self {
        DisplayChannelFactory {
            worker,
            channel_id,
            epoch,
        }
    }

    /// The caps the server advertises (spice-server: monitors config, preferred
    /// compression, stream report).
    pub fn server_caps() -> Caps {
        Caps::new()
            .with(caps::display::MONITORS_CONFIG)
            .with(caps::display::PREF_COMPRESSION)
            .with(caps::display::STREAM_REPORT)
    }
}

impl<D: DisplayDevice + Send + 'static> ChannelFactory for DisplayChannelFactory<D> {
    fn channel_type(&self) -> ChannelType {
        ChannelType::DISPLAY
    }

    fn channel_id(&self) -> u8 {
        self.channel_id
    }

    fn caps(&self) -> Caps {
        Self::server_caps()
    }

    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        let glz = ctx.session.shared(GlzRegistry::new);
        let waker = ctx.waker.clone();
        let opts = ClientOptions {
            session_id: ctx.info.session_id,
            caps: DisplayClientCaps::from_caps(&ctx.info.peer_channel_caps),
            glz,
            waker: Some(Arc::new(move || waker.wake())),
            bit_rate: None,
        };
        let id = lock(&self.worker).add_client(opts);
        Ok(Box::new(DisplayChannelHandler {
            worker: self.worker.clone(),
            id,
            epoch: self.epoch,
            mm: ctx.session.shared(MmTimeControl::new),
        }))
    }
}

/// One client's display channel.
pub struct DisplayChannelHandler<D: DisplayDevice> {
    worker: SharedWorker<D>,
    id: ClientId,
    epoch: Instant,
    /// The client's multimedia clock control: stream latency needs go there.
    mm: Arc<MmTimeControl>,
}

impl<D: DisplayDevice> std::fmt::Debug for DisplayChannelHandler<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayChannelHandler")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<D: DisplayDevice> DisplayChannelHandler<D> {
    /// Sends the client's queue while the ACK window allows. Drawables that only need
    /// encoding are encoded with the worker unlocked, so the device thread can take the
    /// next commands meanwhile.
    fn send_queued(&mut self, now_ms: u64, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        loop {
            let job = lock(&self.worker)
                .client_poll_split(self.id, out, now_ms)
                .map_err(host_err)?;
            let Some(job) = job else {
                return Ok(());
            };
            let sent = job.send(out);
            lock(&self.worker).client_finish(self.id, job, matches!(sent, Ok(true)));
            sent.map_err(host_err)?;
        }
    }

    /// The worker's id of this client.
    pub fn client_id(&self) -> ClientId {
        self.id
    }

    /// A stream's playback delay goes to the client's multimedia clock (spice-server's
    /// `update_client_playback_delay` → `reds_set_client_mm_time_latency`).
    fn report_pending_delay(&self) {
        let delay = lock(&self.worker).take_playback_delay(self.id);
        self.report_delay(delay);
    }

    /// See [`Self::report_pending_delay`].
    fn report_delay(&self, delay: Option<u32>) {
        if let Some(d) = delay {
            tracing::debug!(client = ?self.id, delay_ms = d, "stream playback delay");
            self.mm.stream_latency(d);
        }
    }
}

fn host_err(e: DisplayError) -> ChannelError {
    ChannelError::Host {
        channel: ChannelType::DISPLAY,
        what: e.to_string(),
    }
}

impl<D: DisplayDevice + Send + 'static> ChannelHandler for DisplayChannelHandler<D> {
    fn on_connect(&mut self, _now: Instant, _out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        // Nothing before the client's DISPLAY_INIT (spice-server waits for it too).
        Ok(())
    }

    fn handle_message(
        &mut self,
        msg: &ClientMessage<'_>,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        let ClientMessage::Display(m) = msg else {
            return Ok(());
        };
        let now_ms = millis_since(self.epoch, now);
        lock(&self.worker)
            .client_message(self.id, m, now_ms)
            .map_err(host_err)?;
        self.send_queued(now_ms, out)?;
        self.report_pending_delay();
        Ok(())
    }

    fn poll(&mut self, now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.send_queued(millis_since(self.epoch, now), out)?;
        self.report_pending_delay();
        Ok(())
    }

    fn on_disconnect(&mut self) {
        lock(&self.worker).remove_client(self.id);
    }
}
