//! The display worker of one QXL device: pulls commands from the device, keeps the surfaces,
//! keeps the server's own framebuffer with spice-canvas (rendered lazily, when something
//! reads it: see the `framebuffer` module), keeps the
//! per-surface list of drawables still queued for clients (dropping those wholly hidden by
//! later opaque ones), detects video regions, and releases every guest resource exactly once
//! through the release ring.
//!
//! The worker is sans-IO and single-owner: whoever drives the device (the server's driver,
//! the demo desktop, a test) calls [`DisplayWorker::process`] when the guest has new commands
//! and [`DisplayWorker::handle_io`] with what a port write asked for. Display channel clients
//! live inside the worker ([`DisplayWorker::add_client`]); their handlers pull messages with
//! [`DisplayWorker::client_poll`]. Time comes in as milliseconds of any monotonic clock.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use spice_codecs::classify::{ImageCompression, WanCompression};
use spice_codecs::stream_detect::{self, Detection, DrawCandidate, StreamDetector, StreamingVideo};
use spice_proto::display::{MonitorsConfig, ServerMessage, SurfaceCreate};
use spice_proto::types::{Head, SurfaceFlags, SurfaceFormat};
use spice_qxl::convert::{self, ConvertError, ConvertedDrawable, SlotContent};
use spice_qxl::memory::{GuestMemory, MemoryError};
use spice_qxl::parse::{
    DrawOp, ImageKind, ParsedBitmap, ParsedCommand, ParsedDrawable, ParsedImage, Rect,
    ReleaseInfoExt, SurfaceOp,
};
use spice_qxl::{IoRequest, QxlDevice, QxlInterface, abi};

use super::client::{ClientId, ClientState, PipeItem};
use super::framebuffer::Framebuffer;
use super::tree::{self, DrawTree, Pending};
use crate::cursor::{CursorCommand, CursorFeed};

/// Settings of a display worker (libspice's image/video options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayConfig {
    /// Image compression (clients may prefer another with PREFERRED_COMPRESSION).
    pub compression: ImageCompression,
    /// `jpeg-wan-compression`.
    pub jpeg_wan: WanCompression,
    /// `zlib-glz-wan-compression`.
    pub zlib_glz_wan: WanCompression,
    /// `streaming-video`.
    pub streaming: StreamingVideo,
    /// Per client: bytes of queued drawables above which the queue collapses into one
    /// "resend everything from the framebuffer" item.
    pub max_pipe_bytes: usize,
    /// Per client: queued items above which the queue collapses likewise.
    pub max_pipe_items: usize,
    /// Pixels of all surfaces together.
    pub max_surface_pixels: u64,
    /// Commands taken from the ring per [`DisplayWorker::process`] call at most.
    pub max_commands_per_process: usize,
}

impl Default for DisplayConfig {
    /// spice-server's defaults (auto_glz, WAN options auto, streaming filter), 64 MiB and
    /// 4096 items per client queue, 64 Mi surface pixels, 1024 commands per call.
    fn default() -> Self {
        DisplayConfig {
            compression: ImageCompression::AutoGlz,
            jpeg_wan: WanCompression::Auto,
            zlib_glz_wan: WanCompression::Auto,
            streaming: StreamingVideo::Filter,
            max_pipe_bytes: 64 << 20,
            max_pipe_items: 4096,
            max_surface_pixels: 64 << 20,
            max_commands_per_process: 1024,
        }
    }
}

impl DisplayConfig {
    /// The display settings of a server configuration.
    pub fn from_server_config(c: &crate::config::ServerConfig) -> Self {
        DisplayConfig {
            compression: c.image_compression,
            jpeg_wan: c.jpeg_wan_compression,
            zlib_glz_wan: c.zlib_glz_wan_compression,
            streaming: match c.streaming_video {
                crate::config::StreamingVideo::Off => StreamingVideo::Off,
                crate::config::StreamingVideo::All => StreamingVideo::All,
                crate::config::StreamingVideo::Filter => StreamingVideo::Filter,
            },
            ..DisplayConfig::default()
        }
    }
}

/// A failure of the display pipeline (the guest's own errors are logged and its resources
/// released, never returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisplayError {
    /// No such client.
    #[error("unknown display client {0:?}")]
    UnknownClient(ClientId),
    /// A message could not be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        /// The message.
        what: &'static str,
        /// Why.
        #[source]
        source: spice_proto::EncodeError,
    },
    /// The transport refused a message.
    #[error("sending: {0}")]
    Send(String),
    /// A client message that is wrong here.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Where a client's messages go: the channel layer's outbox, or a test's buffer.
pub trait DisplaySink {
    /// True while the client's ACK window and output bound leave room.
    fn can_send(&self) -> bool;
    /// Queues one message.
    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError>;
}

/// Counters of what the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Commands taken from the command ring.
    pub commands: u64,
    /// Drawables rendered into the framebuffer.
    pub rendered: u64,
    /// Drawables never rendered because a later opaque drawable covered them before the
    /// framebuffer was needed.
    pub render_skipped: u64,
    /// Drawables dropped because a later opaque drawable hid them.
    pub hidden_dropped: u64,
    /// Guest resources released.
    pub released: u64,
    /// Commands that did not parse or render (released anyway).
    pub bad_commands: u64,
    /// Client queues collapsed into a full refresh.
    pub collapses: u64,
    /// Video streams created.
    pub streams_created: u64,
}

/// A surface as the server knows it.
#[derive(Debug, Clone)]
pub(crate) struct SurfaceInfo {
    pub(crate) create: SurfaceCreate,
    /// The creating command, released on destroy (none for the primary from the I/O port).
    pub(crate) create_release: Option<ReleaseInfoExt>,
    /// Host offset and stride of the guest's copy of the pixels (for update area).
    pub(crate) guest_mem: Option<(u64, i32)>,
}

/// A drawable with everything a client needs to send it.
#[derive(Debug)]
pub(crate) struct DrawEntry {
    pub(crate) conv: ConvertedDrawable,
    /// Rough byte cost (images + fixed part), for the per-client memory bound.
    pub(crate) cost: usize,
    /// Per image slot: its graduality once computed (by the video detector or the first
    /// client's encoder), so it is classified once whatever the number of clients.
    pub(crate) graduality: Vec<GradualityCell>,
}

/// A lazily computed graduality, shared by the clients of one drawable.
pub(crate) type GradualityCell = Arc<std::sync::OnceLock<spice_codecs::classify::Graduality>>;

/// A pixel area captured from the framebuffer (self bitmaps, stream endings).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) surface_id: u32,
    pub(crate) area: Rect,
    pub(crate) bitmap: ParsedBitmap,
}

/// The device a display worker drives: spice-qxl's [`QxlInterface`] (commands, releases,
/// notifications), plus writes into guest memory for update-area read-back.
pub trait DisplayDevice: QxlInterface {
    /// Writes `data` at host offset `offset` of guest memory.
    fn write_guest(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError>;

    /// The server handled an out-of-memory request (`QxlDevice::oom_done`).
    fn oom_done(&mut self) {}
}

impl<M: GuestMemory> DisplayDevice for QxlDevice<M> {
    fn write_guest(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.memory_mut().write(offset, data)
    }

    fn oom_done(&mut self) {
        QxlDevice::oom_done(self);
    }
}

/// The display worker of one QXL device. See the module docs.
pub struct DisplayWorker<D: DisplayDevice> {
    dev: D,
    pub(crate) cfg: DisplayConfig,
    /// The server's rendering of the surfaces, rendered lazily.
    pub(crate) fb: Framebuffer,
    pub(crate) surfaces: BTreeMap<u32, SurfaceInfo>,
    pub(crate) monitors: Option<Arc<MonitorsConfig>>,
    /// True once the guest set the monitors config itself (QXL_IO_MONITORS_CONFIG_ASYNC);
    /// until then it follows the primary surface, as spice-server does.
    monitors_from_guest: bool,
    pub(crate) tree: DrawTree,
    pub(crate) clients: BTreeMap<ClientId, ClientState>,
    detector: StreamDetector,
    /// Streams alive: id → destination.
    pub(crate) streams: BTreeMap<u32, stream_detect::StreamInfo>,
    next_seq: u64,
    pub(crate) next_client: u64,
    pub(crate) stats: WorkerStats,
    /// Guest resources taken and not yet released (each goes back exactly once).
    outstanding: HashSet<ReleaseInfoExt>,
    /// Where the cursor ring's commands go (the cursor channel).
    cursor: Option<Arc<CursorFeed>>,
}

impl<D: DisplayDevice> std::fmt::Debug for DisplayWorker<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayWorker")
            .field("surfaces", &self.surfaces.keys().collect::<Vec<_>>())
            .field("pending", &self.tree.len())
            .field("clients", &self.clients.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn to_stream_rect(r: &Rect) -> stream_detect::Rect {
    stream_detect::Rect {
        left: r.left,
        top: r.top,
        right: r.right,
        bottom: r.bottom,
    }
}

fn from_stream_rect(r: &stream_detect::Rect) -> Rect {
    Rect {
        left: r.left,
        top: r.top,
        right: r.right,
        bottom: r.bottom,
    }
}

fn image_cost(img: &ParsedImage) -> usize {
    match &img.kind {
        ImageKind::Bitmap(b) => b.data.len(),
        ImageKind::Quic(d) => d.len(),
        ImageKind::Surface(_) => 0,
    }
}

impl<D: DisplayDevice> DisplayWorker<D> {
    /// A worker over `dev`.
    pub fn new(dev: D, cfg: DisplayConfig) -> Self {
        DisplayWorker {
            dev,
            fb: Framebuffer::new(cfg.max_surface_pixels),
            cfg,
            surfaces: BTreeMap::new(),
            monitors: None,
            monitors_from_guest: false,
            tree: DrawTree::new(),
            clients: BTreeMap::new(),
            detector: StreamDetector::new(cfg.streaming),
            streams: BTreeMap::new(),
            next_seq: 1,
            next_client: 1,
            stats: WorkerStats::default(),
            outstanding: HashSet::new(),
            cursor: None,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, to drive its guest side (tests, the demo desktop).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Sends the cursor ring's commands to `feed` (the cursor channel's source); they are
    /// taken by [`DisplayWorker::process`].
    pub fn set_cursor_feed(&mut self, feed: Arc<CursorFeed>) {
        self.cursor = Some(feed);
    }

    /// The settings.
    pub fn config(&self) -> &DisplayConfig {
        &self.cfg
    }

    /// What the worker did so far (the framebuffer is brought up to date first, so
    /// `rendered` and `bad_commands` count every drawable drawn so far).
    pub fn stats(&self) -> WorkerStats {
        self.fb.flush();
        let mut s = self.stats;
        s.rendered = self.fb.rendered();
        s.render_skipped = self.fb.skipped();
        s.bad_commands += self.fb.failed();
        s
    }

    /// Drawables still queued for some client.
    pub fn pending_drawables(&self) -> usize {
        self.tree.len()
    }

    /// The server's framebuffer of surface `id` (0: the primary), brought up to date
    /// (drawables are rendered lazily, when something reads the framebuffer).
    pub fn surface(&self, id: u32) -> Option<std::cell::Ref<'_, spice_canvas::Surface>> {
        self.fb.surface(id)
    }

    /// Ids of the surfaces that exist.
    pub fn surface_ids(&self) -> Vec<u32> {
        self.surfaces.keys().copied().collect()
    }

    /// The primary surface as a binary PPM (P6), for `--dump-frame`.
    pub fn primary_ppm(&self) -> Option<Vec<u8>> {
        let s = self.surface(0)?;
        let mut out = format!("P6\n{} {}\n255\n", s.width(), s.height()).into_bytes();
        out.extend_from_slice(&s.to_rgb24());
        Some(out)
    }

    /// Active video streams.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub(crate) fn release(&mut self, r: ReleaseInfoExt) {
        if !self.outstanding.remove(&r) {
            // The same guest structure released twice would corrupt the guest's free list.
            tracing::error!(?r, "release of a resource not held: suppressed");
            return;
        }
        self.stats.released += 1;
        self.dev.release_resource(r);
    }

    /// Guest resources held (taken from the ring, not yet released).
    pub fn outstanding_resources(&self) -> usize {
        self.outstanding.len()
    }

    /// Takes up to [`DisplayConfig::max_commands_per_process`] commands from the command
    /// ring and handles them; also ends streams that timed out. Returns the number of
    /// commands taken; when it returns fewer than the cap the ring is empty and a
    /// notification was requested.
    pub fn process(&mut self, now_ms: u64) -> usize {
        self.dev.set_mm_time(now_ms as u32);
        let mut n = 0;
        let mut rechecked = false;
        while n < self.cfg.max_commands_per_process {
            let Some(ext) = self.dev.get_command() else {
                // Ask for a notification; if commands arrived meanwhile, look once more.
                if !self.dev.req_cmd_notification() && !rechecked {
                    rechecked = true;
                    continue;
                }
                break;
            };
            rechecked = false;
            n += 1;
            self.stats.commands += 1;
            match self.dev.parse_command(&ext) {
                Ok(cmd) => {
                    if !self.outstanding.insert(cmd.release_info()) {
                        // The guest pushed a structure the server still holds.
                        tracing::warn!("command reuses a resource not yet released: ignored");
                        self.stats.bad_commands += 1;
                        continue;
                    }
                    self.handle_command(cmd, now_ms)
                }
                Err(e) => {
                    self.stats.bad_commands += 1;
                    tracing::warn!(error = %e, "bad QXL command");
                    if let Some(r) = e.release
                        && self.outstanding.insert(r)
                    {
                        self.release(r);
                    }
                }
            }
        }
        self.process_cursor();
        self.poll_streams(now_ms);
        self.dev.flush_resources();
        self.wake_clients();
        n
    }

    /// Takes the cursor ring's commands to the cursor feed (if any), releasing each.
    fn process_cursor(&mut self) {
        let Some(feed) = self.cursor.clone() else {
            return;
        };
        let mut rechecked = false;
        for _ in 0..self.cfg.max_commands_per_process {
            let Some(ext) = self.dev.get_cursor_command() else {
                if !self.dev.req_cursor_notification() && !rechecked {
                    rechecked = true;
                    continue;
                }
                break;
            };
            rechecked = false;
            match self.dev.parse_command(&ext) {
                Ok(ParsedCommand::Cursor(c)) => {
                    if !self.outstanding.insert(c.release) {
                        self.stats.bad_commands += 1;
                        continue;
                    }
                    feed.push(CursorCommand::from_qxl(&c));
                    self.release(c.release);
                }
                Ok(other) => {
                    let r = other.release_info();
                    if self.outstanding.insert(r) {
                        self.release(r);
                    }
                }
                Err(e) => {
                    self.stats.bad_commands += 1;
                    tracing::warn!(error = %e, "bad QXL cursor command");
                    if let Some(r) = e.release
                        && self.outstanding.insert(r)
                    {
                        self.release(r);
                    }
                }
            }
        }
    }

    /// The next time [`DisplayWorker::process`] should run without new commands (stream
    /// timeouts).
    pub fn next_timeout(&self) -> Option<u64> {
        self.detector.next_timeout()
    }

    fn poll_streams(&mut self, now_ms: u64) {
        for id in self.detector.poll_timeouts(now_ms) {
            self.end_stream(id);
        }
    }

    fn handle_command(&mut self, cmd: ParsedCommand, now_ms: u64) {
        match cmd {
            ParsedCommand::Draw(d) => self.handle_draw(*d, now_ms),
            ParsedCommand::Update(u) => {
                self.write_back(u.surface_id, u.area);
                self.dev.notify_update(u.update_id);
                self.release(u.release);
            }
            ParsedCommand::Message(m) => {
                tracing::info!(text = %String::from_utf8_lossy(&m.text), "guest message");
                self.release(m.release);
            }
            ParsedCommand::Surface(s) => match s.op {
                SurfaceOp::Create(c) => {
                    let create = convert::surface_create(s.surface_id, &c, s.surface_id == 0);
                    let guest = Some((c.data_offset, c.stride));
                    if !self.create_surface(create, Some(s.release), guest) {
                        self.release(s.release);
                    }
                }
                SurfaceOp::Destroy => {
                    self.destroy_surface(s.surface_id);
                    self.release(s.release);
                }
            },
            ParsedCommand::Cursor(c) => {
                // Cursor commands belong to the cursor ring; one on the command ring is a
                // guest error: give it back.
                self.release(c.release);
            }
            #[allow(unreachable_patterns)]
            other => self.release(other.release_info()),
        }
    }

    /// Creates a surface; false when the canvas refused it.
    pub(crate) fn create_surface(
        &mut self,
        create: SurfaceCreate,
        create_release: Option<ReleaseInfoExt>,
        guest_mem: Option<(u64, i32)>,
    ) -> bool {
        let ok = self.create_surface_unmarked(create, create_release, guest_mem);
        if ok && create.surface_id == 0 {
            self.broadcast(|| PipeItem::Mark);
        }
        ok
    }

    /// [`DisplayWorker::create_surface`] without the `MARK` of a primary (the caller sends
    /// it after the monitors config).
    fn create_surface_unmarked(
        &mut self,
        create: SurfaceCreate,
        create_release: Option<ReleaseInfoExt>,
        guest_mem: Option<(u64, i32)>,
    ) -> bool {
        let id = create.surface_id;
        if self.surfaces.contains_key(&id) {
            self.destroy_surface(id);
        }
        let created = self
            .fb
            .canvas_mut()
            .apply(&ServerMessage::SurfaceCreate(create));
        if let Err(e) = created {
            tracing::warn!(error = %e, id, "surface create refused");
            self.stats.bad_commands += 1;
            return false;
        }
        self.surfaces.insert(
            id,
            SurfaceInfo {
                create,
                create_release,
                guest_mem,
            },
        );
        self.broadcast(|| PipeItem::SurfaceCreate(create));
        true
    }

    /// Destroys a surface (releasing its create command).
    pub(crate) fn destroy_surface(&mut self, id: u32) {
        let Some(info) = self.surfaces.remove(&id) else {
            return;
        };
        if id == 0 {
            let ids: Vec<u32> = self.streams.keys().copied().collect();
            for s in ids {
                self.end_stream(s);
            }
        }
        let _ = self.fb.canvas_mut().surfaces.destroy(id);
        self.broadcast(|| PipeItem::SurfaceDestroy(id));
        if let Some(r) = info.create_release {
            self.release(r);
        }
    }

    /// `QXL_IO_DESTROY_PRIMARY` (a resize or mode change, as spice-server's
    /// `destroy_primary_surface`): takes and draws what the guest already pushed, ends the
    /// streams (no redraw: the surface goes), drops the primary's drawables still queued for
    /// clients and gives their resources back through the release ring, then destroys the
    /// surface (`SURFACE_DESTROY` to every client). The next `CREATE_PRIMARY` sends
    /// `SURFACE_CREATE`, the monitors config of the new size and `MARK`.
    fn destroy_primary(&mut self, now_ms: u64) {
        self.process(now_ms);
        if !self.surfaces.contains_key(&0) {
            tracing::warn!("destroy of a primary surface that does not exist");
            return;
        }
        self.end_streams_for_destroy();
        self.drop_surface_drawables(0);
        self.destroy_surface(0);
        self.dev.flush_resources();
        // spice-server resets the cursor channel with the primary (cursor_channel_reset).
        if let Some(feed) = &self.cursor {
            feed.push(CursorCommand::Reset);
        }
    }

    /// Ends every stream without redrawing its area (its surface is being destroyed).
    fn end_streams_for_destroy(&mut self) {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.streams.remove(&id);
            self.detector.destroy_stream(id);
            self.broadcast(|| PipeItem::StreamDestroy {
                stream_id: id,
                redraw: None,
            });
        }
    }

    /// Takes `surface_id`'s pending drawables (those no other surface's drawable reads) out
    /// of every client's queue and releases them: the surface is going away, drawing them
    /// is pointless (spice-server's `current_remove_all` and
    /// `clear_surface_drawables_from_pipes`).
    fn drop_surface_drawables(&mut self, surface_id: u32) {
        let everything = [Rect {
            top: i32::MIN,
            left: i32::MIN,
            bottom: i32::MAX,
            right: i32::MAX,
        }];
        for (seq, p) in self.tree.take_hidden(surface_id, &everything) {
            for c in self.clients.values_mut() {
                c.remove_seq(seq);
            }
            self.release(p.release);
        }
    }

    /// Handles what a port write asked for.
    pub fn handle_io(&mut self, req: IoRequest, now_ms: u64) {
        match req {
            IoRequest::None | IoRequest::Log(_) => {}
            IoRequest::Wakeup => {
                self.process(now_ms);
            }
            IoRequest::CreatePrimary { surface, cookie } => {
                let create = convert::primary_surface_create(&surface);
                let guest = Some((surface.mem_offset, surface.stride));
                let (width, height) = (create.width, create.height);
                // As spice-server: SURFACE_CREATE, the monitors config, then MARK.
                let created = self.create_surface_unmarked(create, None, guest);
                if created && !self.monitors_from_guest {
                    // One head covering the primary: clients that take monitors configs
                    // (virt-viewer) show nothing without one.
                    let m = Arc::new(MonitorsConfig {
                        max_allowed: 1,
                        heads: vec![Head {
                            monitor_id: 0,
                            surface_id: 0,
                            width,
                            height,
                            x: 0,
                            y: 0,
                            flags: 0,
                        }],
                    });
                    self.monitors = Some(m.clone());
                    self.broadcast(|| PipeItem::MonitorsConfig(m.clone()));
                }
                if created {
                    self.broadcast(|| PipeItem::Mark);
                }
                if let Some(c) = cookie {
                    self.dev.async_complete(c);
                }
            }
            IoRequest::DestroyPrimary { cookie } => {
                self.destroy_primary(now_ms);
                if let Some(c) = cookie {
                    self.dev.async_complete(c);
                }
            }
            IoRequest::DestroySurface { surface_id, cookie } => {
                self.process(now_ms);
                self.destroy_surface(surface_id);
                if let Some(c) = cookie {
                    self.dev.async_complete(c);
                }
            }
            IoRequest::DestroyAllSurfaces { cookie } => {
                self.process(now_ms);
                let ids: Vec<u32> = self.surfaces.keys().copied().collect();
                for id in ids {
                    self.destroy_surface(id);
                }
                if let Some(c) = cookie {
                    self.dev.async_complete(c);
                }
            }
            IoRequest::UpdateArea {
                surface_id,
                area,
                cookie,
            } => {
                self.process(now_ms);
                self.write_back(surface_id, area);
                self.dev.update_area_complete(surface_id, &[area]);
                if let Some(c) = cookie {
                    self.dev.async_complete(c);
                }
            }
            IoRequest::FlushSurfaces { cookie } => {
                self.process(now_ms);
                self.dev.async_complete(cookie);
            }
            IoRequest::MonitorsConfig { config, cookie } => {
                let heads = config
                    .heads
                    .iter()
                    .map(|h| Head {
                        monitor_id: h.id,
                        surface_id: h.surface_id,
                        width: h.width,
                        height: h.height,
                        x: h.x,
                        y: h.y,
                        flags: h.flags,
                    })
                    .collect();
                let m = Arc::new(MonitorsConfig {
                    max_allowed: config.max_allowed,
                    heads,
                });
                self.monitors = Some(m.clone());
                self.monitors_from_guest = true;
                self.broadcast(|| PipeItem::MonitorsConfig(m.clone()));
                self.dev.async_complete(cookie);
            }
            IoRequest::Oom => {
                // Queued drawables hold copies of the guest's data, not guest memory: flush
                // what clients still hold by collapsing their queues, which releases them.
                self.process(now_ms);
                let ids: Vec<ClientId> = self.clients.keys().copied().collect();
                for id in ids {
                    self.collapse_pipe(id);
                }
                self.dev.flush_resources();
                self.dev.oom_done();
            }
            IoRequest::Reset => {
                let ids: Vec<u32> = self.surfaces.keys().copied().collect();
                for id in ids {
                    self.destroy_surface(id);
                }
                self.monitors = None;
                self.dev.flush_resources();
            }
            #[allow(unreachable_patterns)]
            other => tracing::debug!(?other, "I/O request not handled by the display worker"),
        }
        self.wake_clients();
    }

    /// Copies `area` of the server's rendering of `surface_id` into the guest's copy of
    /// the surface (32-bit surfaces), so a guest reading back sees what was drawn.
    fn write_back(&mut self, surface_id: u32, area: Rect) {
        let Some(info) = self.surfaces.get(&surface_id) else {
            return;
        };
        let Some((offset, stride)) = info.guest_mem else {
            return;
        };
        let canvas = self.fb.canvas();
        let Ok(s) = canvas.surfaces.get(surface_id) else {
            return;
        };
        if !matches!(
            s.format(),
            SurfaceFormat::FMT_32_XRGB | SurfaceFormat::FMT_32_ARGB
        ) {
            return;
        }
        let full = Rect {
            top: 0,
            left: 0,
            bottom: s.height() as i32,
            right: s.width() as i32,
        };
        let a = tree::rect_intersect(&area, &full);
        if tree::rect_is_empty(&a) {
            return;
        }
        let h = s.height() as i64;
        let mut rows = Vec::with_capacity((a.bottom - a.top) as usize);
        for y in a.top..a.bottom {
            let Some(row) = s.row(y as u32) else { return };
            let px = &row[a.left as usize..a.right as usize];
            let bytes: Vec<u8> = px.iter().flat_map(|p| p.to_le_bytes()).collect();
            // Negative stride: the first row in memory is the bottom one.
            let mem_row = if stride < 0 {
                h - 1 - i64::from(y)
            } else {
                i64::from(y)
            };
            let at =
                offset as i64 + mem_row * i64::from(stride.unsigned_abs()) + i64::from(a.left) * 4;
            rows.push((at as u64, bytes));
        }
        for (at, bytes) in rows {
            if let Err(e) = self.dev.write_guest(at, &bytes) {
                tracing::warn!(error = %e, "update area write-back failed");
                return;
            }
        }
    }

    /// Captures `area` of surface `surface_id` as a top-down 32-bit bitmap.
    pub(crate) fn snapshot(&self, surface_id: u32, area: Rect) -> Option<Snapshot> {
        let canvas = self.fb.canvas();
        let s = canvas.surfaces.get(surface_id).ok()?;
        let full = Rect {
            top: 0,
            left: 0,
            bottom: s.height() as i32,
            right: s.width() as i32,
        };
        let a = tree::rect_intersect(&area, &full);
        if tree::rect_is_empty(&a) {
            return None;
        }
        let (w, h) = ((a.right - a.left) as u32, (a.bottom - a.top) as u32);
        let alpha = s.has_alpha();
        let mut data = Vec::with_capacity(w as usize * h as usize * 4);
        for y in a.top..a.bottom {
            let row = s.row(y as u32)?;
            for p in &row[a.left as usize..a.right as usize] {
                let p = if alpha { *p } else { *p & 0x00ff_ffff };
                data.extend_from_slice(&p.to_le_bytes());
            }
        }
        Some(Snapshot {
            surface_id,
            area: a,
            bitmap: ParsedBitmap {
                format: if alpha {
                    abi::bitmap_fmt::RGBA
                } else {
                    abi::bitmap_fmt::THIRTY_TWO_BIT
                },
                flags: abi::bitmap_flags::TOP_DOWN,
                width: w,
                height: h,
                stride: w * 4,
                palette: None,
                data,
            },
        })
    }

    fn handle_draw(&mut self, d: ParsedDrawable, now_ms: u64) {
        let release = d.release;
        if !self.surfaces.contains_key(&d.surface_id) {
            tracing::warn!(
                surface = d.surface_id,
                "draw on a surface that does not exist"
            );
            self.stats.bad_commands += 1;
            self.release(release);
            return;
        }
        let cover = tree::opaque_cover(&d);
        let candidate = self.stream_candidate(&d);
        // Surfaces whose pending drawables this one reads (and so must not be dropped):
        // its declared dependencies, and its own surface when it moves pixels within it.
        let mut deps: Vec<u32> = d
            .surface_deps
            .iter()
            .filter(|&&s| s >= 0)
            .map(|&s| s as u32)
            .collect();
        if d.self_bitmap || matches!(d.op, DrawOp::CopyBits { .. }) {
            deps.push(d.surface_id);
        }
        let surface_id = d.surface_id;
        let bbox = d.bbox;
        let mut conv = match ConvertedDrawable::new(d) {
            Ok(c) => c,
            Err(ConvertError::Nop) => {
                self.release(release);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "drawable not convertible");
                self.stats.bad_commands += 1;
                self.release(release);
                return;
            }
        };
        // A drawable whose source is its own destination: capture it before drawing.
        if let Some(area) = conv.self_bitmap {
            let snap = self.snapshot(surface_id, area);
            for slot in conv.images_mut() {
                if matches!(slot, SlotContent::SelfBitmap { .. }) {
                    let Some(s) = &snap else { break };
                    *slot = SlotContent::Guest(ParsedImage {
                        id: 0,
                        image_type: abi::image_type::BITMAP,
                        flags: 0,
                        width: s.bitmap.width,
                        height: s.bitmap.height,
                        kind: ImageKind::Bitmap(s.bitmap.clone()),
                    });
                }
            }
        }
        deps.extend(conv.images().iter().filter_map(|s| s.surface_id()));
        let graduality: Vec<GradualityCell> = conv
            .images()
            .iter()
            .map(|_| GradualityCell::default())
            .collect();
        // Video: a stream frame, or a drawable over a stream that ends it.
        let stream_id = match candidate {
            Some(c) => self.detect(&c, &conv, graduality.first(), now_ms),
            None => None,
        };
        if stream_id.is_none() && surface_id == 0 {
            let over: Vec<u32> = self
                .streams
                .iter()
                .filter(|(_, s)| {
                    !tree::rect_is_empty(&tree::rect_intersect(&from_stream_rect(&s.dest), &bbox))
                })
                .map(|(id, _)| *id)
                .collect();
            for id in over {
                self.detector.destroy_stream(id);
                self.end_stream(id);
            }
        }
        // Drop what this drawable hides; pin what it reads.
        if let Some(cover) = &cover {
            for (seq, p) in self.tree.take_hidden(surface_id, cover) {
                self.stats.hidden_dropped += 1;
                for c in self.clients.values_mut() {
                    c.remove_seq(seq);
                }
                self.release(p.release);
            }
        }
        let deps_empty = deps.is_empty();
        for s in deps {
            self.tree.pin_surface(s);
        }
        // Queue for the clients.
        let cost = 128
            + conv
                .images()
                .iter()
                .filter_map(|s| s.guest_image())
                .map(image_cost)
                .sum::<usize>();
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Arc::new(DrawEntry {
            conv,
            cost,
            graduality,
        });
        // The server's framebuffer: rendered when read, unless this drawable reads a
        // surface itself.
        if deps_empty {
            self.fb
                .defer(surface_id, bbox, cover.as_deref(), entry.clone());
        } else {
            self.fb.render_now(&entry);
        }
        let mut refs = 0;
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            let item = match stream_id {
                Some(sid) => PipeItem::StreamFrame {
                    seq,
                    stream_id: sid,
                    // The raw multimedia clock when the drawable came in (spice-server stamps
                    // `red_drawable->mm_time = reds_get_mm_time()`); clients run
                    // `main_channel::MM_TIME_DELTA` behind it, audio is stamped alike.
                    mm_time: now_ms as u32,
                    entry: entry.clone(),
                },
                None => PipeItem::Draw {
                    seq,
                    entry: entry.clone(),
                },
            };
            if self.push_to(id, item) {
                refs += 1;
            }
        }
        if refs == 0 {
            self.release(release);
        } else {
            if stream_id.is_none() {
                self.classify_ahead(&entry);
            }
            self.tree.insert(
                seq,
                Pending {
                    release,
                    surface_id,
                    bbox,
                    refs,
                    pinned: false,
                },
            );
        }
    }

    fn stream_candidate(&self, d: &ParsedDrawable) -> Option<DrawCandidate> {
        if self.detector.mode() == StreamingVideo::Off || d.surface_id != 0 {
            return None;
        }
        let DrawOp::Copy(c) = &d.op else {
            return None;
        };
        let ImageKind::Bitmap(b) = &c.src.kind else {
            return None;
        };
        let streamable_op = d.effect == tree::QXL_EFFECT_OPAQUE
            && c.rop_descriptor == 1 << 3
            && c.mask.bitmap.is_none()
            && matches!(d.clip, spice_qxl::parse::Clip::None)
            && b.format == abi::bitmap_fmt::THIRTY_TWO_BIT;
        let w = (c.src_area.right - c.src_area.left).max(0) as u32;
        let h = (c.src_area.bottom - c.src_area.top).max(0) as u32;
        Some(DrawCandidate {
            bbox: to_stream_rect(&d.bbox),
            src_width: w,
            src_height: h,
            top_down: b.top_down(),
            streamable_op,
        })
    }

    /// Feeds the detector; returns the stream the drawable is a frame of.
    fn detect(
        &mut self,
        c: &DrawCandidate,
        conv: &ConvertedDrawable,
        cell: Option<&GradualityCell>,
        now_ms: u64,
    ) -> Option<u32> {
        let graduality = || {
            let slot = conv.images().first()?;
            let b = slot.bitmap()?;
            let view = super::encode::BitmapView {
                format: spice_codecs::classify::BitmapFormat::from_u8(b.format)?,
                width: b.width,
                height: b.height,
                stride: b.stride,
                top_down: b.top_down(),
                data: &b.data,
            };
            view.validate().ok()?;
            Some(match cell {
                Some(cell) => *cell.get_or_init(|| super::encode::graduality_of(&view)),
                None => super::encode::graduality_of(&view),
            })
        };
        match self.detector.on_draw(c, now_ms, graduality) {
            Detection::StreamCreated(info) => {
                tracing::debug!(id = info.id, ?info.dest, "video stream created");
                self.stats.streams_created += 1;
                self.streams.insert(info.id, info);
                Some(info.id)
            }
            Detection::StreamFrame { id } if self.streams.contains_key(&id) => Some(id),
            _ => None,
        }
    }

    /// Ends stream `id`: clients that had it get STREAM_DESTROY and the stream's area again,
    /// losslessly, from the framebuffer as it is now.
    fn end_stream(&mut self, id: u32) {
        let Some(info) = self.streams.remove(&id) else {
            return;
        };
        let snap = self.snapshot(0, from_stream_rect(&info.dest)).map(Arc::new);
        self.broadcast(|| PipeItem::StreamDestroy {
            stream_id: id,
            redraw: snap.clone(),
        });
    }

    /// Queues an item built by `f` for every client.
    pub(crate) fn broadcast(&mut self, f: impl Fn() -> PipeItem) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.push_to(id, f());
        }
    }

    /// Queues `item` for client `id`; false when the client absorbed it (a full refresh is
    /// pending, which will carry its effect) — draw items then hold no reference. Collapses
    /// the client's queue when it exceeds the memory bound.
    pub(crate) fn push_to(&mut self, id: ClientId, item: PipeItem) -> bool {
        let Some(c) = self.clients.get_mut(&id) else {
            return false;
        };
        if c.refresh_pending() {
            return false;
        }
        c.push(item);
        if c.pipe_bytes() > self.cfg.max_pipe_bytes || c.pipe_len() > self.cfg.max_pipe_items {
            self.collapse_pipe(id);
            return false;
        }
        true
    }

    /// Replaces client `id`'s queue by one full refresh, releasing what it held.
    pub(crate) fn collapse_pipe(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let dropped: Vec<u64> = c.clear_pipe();
        c.push(PipeItem::Refresh);
        self.stats.collapses += 1;
        tracing::debug!(
            ?id,
            dropped = dropped.len(),
            "client queue collapsed into a refresh"
        );
        for seq in dropped {
            if let Some(r) = self.tree.unref(seq) {
                self.release(r);
            }
        }
    }

    /// Wakes every client handler (new items queued).
    pub(crate) fn wake_clients(&self) {
        for c in self.clients.values() {
            if c.pipe_len() > 0 {
                c.wake();
            }
        }
    }

    /// Unused pipe-items' sequence numbers a client let go of.
    pub(crate) fn unref_seq(&mut self, seq: u64) {
        if let Some(r) = self.tree.unref(seq) {
            self.release(r);
        }
    }

    /// Flushes the releases made while clients sent (call after [`DisplayWorker::client_poll`]).
    pub fn flush_releases(&mut self) {
        self.dev.flush_resources();
    }

    /// Release the resources of everything: all clients' queues are emptied and every
    /// surface destroyed (device shutdown).
    pub fn shutdown(&mut self) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.remove_client(id);
        }
        let sids: Vec<u32> = self.surfaces.keys().copied().collect();
        for s in sids {
            self.destroy_surface(s);
        }
        self.dev.flush_resources();
    }

    /// The SURFACE_CREATE messages of the existing surfaces, primary first.
    pub(crate) fn surface_creates(&self) -> Vec<SurfaceCreate> {
        let mut v: Vec<SurfaceCreate> = self.surfaces.values().map(|s| s.create).collect();
        v.sort_by_key(|c| (!c.flags.contains(SurfaceFlags::PRIMARY), c.surface_id));
        v
    }
}
