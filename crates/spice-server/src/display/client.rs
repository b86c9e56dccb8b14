//! One client's display channel inside the worker: its queue of items, its image encoder
//! (compression mode, GLZ encoder over the client's shared dictionary), the mirrors of its
//! pixmap and palette caches, its video streams (MJPEG with rate control), and the sending
//! of each item as display messages.
//!
//! Memory bound: the queue holds references to drawables (shared between clients) and small
//! items; when its estimated bytes exceed [`DisplayConfig::max_pipe_bytes`] (or its length
//! [`DisplayConfig::max_pipe_items`]) it collapses into one [`PipeItem::Refresh`] that, when
//! finally sent, re-synchronises the client from the framebuffer. While a refresh is queued
//! every new item is absorbed (the refresh will carry its effect), so a client that stops
//! reading holds at most the bound plus one item.
//!
//! [`DisplayConfig::max_pipe_bytes`]: super::worker::DisplayConfig::max_pipe_bytes
//! [`DisplayConfig::max_pipe_items`]: super::worker::DisplayConfig::max_pipe_items

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use spice_codecs::classify::{self, BitmapFormat, ImageCompression};
use spice_codecs::jpeg::{JpegSource, JpegSourceFormat};
use spice_codecs::mjpeg::{self, MjpegConfig, MjpegEncoder};
use spice_proto::caps::{self, Caps};
use spice_proto::display::{
    ClientMessage, DrawCopy, MonitorsConfig, ServerMessage, StreamActivateReport, StreamCreate,
    StreamData, SurfaceCreate,
};
use spice_proto::types::{
    BitmapFlags, Clip, DisplayBase, Image, ImageFlags, ImageScaleMode, Palette as PPalette,
    PaletteSource, QMask, Rect as PRect, ResourceId, ResourceType, Ropd, StreamDataHeader,
    StreamFlags, VideoCodecType,
};
use spice_qxl::convert::{ImageRole, ImageSlot};
use spice_qxl::parse::{ImageKind, ParsedBitmap};

use super::cache::{CacheHit, PaletteCache, PaletteUse, PixmapCache};
use super::encode::{BitmapView, EncodeRequest, EncodedImage, EncoderSettings, ImageEncoder};
use super::glz::GlzRegistry;
use super::worker::{
    DisplayDevice, DisplayError, DisplaySink, DisplayWorker, DrawEntry, GradualityCell, Snapshot,
};
use crate::session::lock;

/// A display client of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// The display caps of a client that matter to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisplayClientCaps {
    /// `MONITORS_CONFIG`.
    pub monitors_config: bool,
    /// `LZ4_COMPRESSION`.
    pub lz4: bool,
    /// `STREAM_REPORT`.
    pub stream_report: bool,
    /// `PREF_COMPRESSION`.
    pub pref_compression: bool,
    /// The client decodes MJPEG streams (no `MULTI_CODEC`, or `MULTI_CODEC` + `CODEC_MJPEG`).
    pub mjpeg: bool,
}

impl DisplayClientCaps {
    /// From the caps the client sent in its link message.
    pub fn from_caps(c: &Caps) -> Self {
        DisplayClientCaps {
            monitors_config: c.has(caps::display::MONITORS_CONFIG),
            lz4: c.has(caps::display::LZ4_COMPRESSION),
            stream_report: c.has(caps::display::STREAM_REPORT),
            pref_compression: c.has(caps::display::PREF_COMPRESSION),
            mjpeg: !c.has(caps::display::MULTI_CODEC) || c.has(caps::display::CODEC_MJPEG),
        }
    }

    /// What spice-gtk advertises (for tests).
    pub fn spice_gtk() -> Self {
        DisplayClientCaps {
            monitors_config: true,
            lz4: true,
            stream_report: true,
            pref_compression: true,
            mjpeg: true,
        }
    }
}

/// How a client joins a worker.
#[derive(Clone)]
pub struct ClientOptions {
    /// The client's session id (GLZ dictionaries are shared per session).
    pub session_id: u32,
    /// Its caps.
    pub caps: DisplayClientCaps,
    /// The session's GLZ dictionaries (one registry per client session).
    pub glz: Arc<GlzRegistry>,
    /// Called when the client has new items to send (from the worker's thread).
    pub waker: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The link's measured bit rate (main channel net test), if any: decides the WAN
    /// options in `auto`.
    pub bit_rate: Option<u64>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("session_id", &self.session_id)
            .field("caps", &self.caps)
            .field("bit_rate", &self.bit_rate)
            .finish_non_exhaustive()
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Messages sent.
    pub messages: u64,
    /// Drawables sent.
    pub draws: u64,
    /// Stream frames sent.
    pub stream_frames: u64,
    /// Stream frames the rate control dropped.
    pub stream_frames_dropped: u64,
    /// Images sent from the client's cache.
    pub cache_hits: u64,
    /// Pixmaps invalidated.
    pub invalidated: u64,
    /// Full refreshes sent.
    pub refreshes: u64,
    /// Largest queue estimate seen, in bytes.
    pub max_pipe_bytes: usize,
}

/// An item queued for a client.
#[derive(Debug, Clone)]
pub(crate) enum PipeItem {
    /// Re-synchronise everything from the framebuffer.
    Refresh,
    /// A surface was created.
    SurfaceCreate(SurfaceCreate),
    /// A surface was destroyed.
    SurfaceDestroy(u32),
    /// A drawable.
    Draw { seq: u64, entry: Arc<DrawEntry> },
    /// A drawable that is a frame of a video stream.
    StreamFrame {
        seq: u64,
        stream_id: u32,
        mm_time: u32,
        entry: Arc<DrawEntry>,
    },
    /// A stream ended; `redraw` is its area from the framebuffer at that point.
    StreamDestroy {
        stream_id: u32,
        redraw: Option<Arc<Snapshot>>,
    },
    /// The guest's monitors config.
    MonitorsConfig(Arc<MonitorsConfig>),
    /// The primary surface is complete.
    Mark,
}

impl PipeItem {
    fn cost(&self) -> usize {
        match self {
            PipeItem::Draw { entry, .. } | PipeItem::StreamFrame { entry, .. } => entry.cost,
            PipeItem::StreamDestroy {
                redraw: Some(s), ..
            } => 64 + s.bitmap.data.len(),
            _ => 64,
        }
    }

    fn seq(&self) -> Option<u64> {
        match self {
            PipeItem::Draw { seq, .. } | PipeItem::StreamFrame { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

struct ClientStream {
    encoder: MjpegEncoder,
    width: u32,
    height: u32,
}

/// The state of one display client (see the module docs).
pub(crate) struct ClientState {
    session: u32,
    caps: DisplayClientCaps,
    init: bool,
    pipe: VecDeque<PipeItem>,
    pipe_bytes: usize,
    /// Shared with [`DrawJob`]s, which encode without the worker's lock.
    encoder: Arc<Mutex<ImageEncoder>>,
    pixmaps: PixmapCache,
    palettes: PaletteCache,
    known_surfaces: BTreeSet<u32>,
    streams: BTreeMap<u32, ClientStream>,
    waker: Option<Arc<dyn Fn() + Send + Sync>>,
    glz: Arc<GlzRegistry>,
    bit_rate: Option<u64>,
    stats: ClientStats,
}

impl ClientState {
    pub(crate) fn refresh_pending(&self) -> bool {
        self.pipe.iter().any(|i| matches!(i, PipeItem::Refresh))
    }

    pub(crate) fn push(&mut self, item: PipeItem) {
        self.pipe_bytes += item.cost();
        self.stats.max_pipe_bytes = self.stats.max_pipe_bytes.max(self.pipe_bytes);
        self.pipe.push_back(item);
    }

    pub(crate) fn pipe_len(&self) -> usize {
        self.pipe.len()
    }

    pub(crate) fn pipe_bytes(&self) -> usize {
        self.pipe_bytes
    }

    /// Takes drawable `seq` out of the queue (it was hidden); true when it was queued.
    pub(crate) fn remove_seq(&mut self, seq: u64) -> bool {
        let before = self.pipe.len();
        let mut freed = 0;
        self.pipe.retain(|i| {
            if i.seq() == Some(seq) {
                freed += i.cost();
                false
            } else {
                true
            }
        });
        self.pipe_bytes -= freed;
        self.pipe.len() != before
    }

    /// Empties the queue; returns the drawables it referenced.
    pub(crate) fn clear_pipe(&mut self) -> Vec<u64> {
        let seqs = self.pipe.iter().filter_map(PipeItem::seq).collect();
        self.pipe.clear();
        self.pipe_bytes = 0;
        seqs
    }

    fn pop(&mut self) -> Option<PipeItem> {
        let i = self.pipe.pop_front()?;
        self.pipe_bytes -= i.cost();
        Some(i)
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }
}

/// A drawable taken from a client's queue to be encoded and sent without the worker's lock
/// (see [`DisplayWorker::client_poll_split`]).
pub struct DrawJob {
    seq: u64,
    entry: Arc<DrawEntry>,
    encoder: Arc<Mutex<ImageEncoder>>,
}

impl std::fmt::Debug for DrawJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrawJob")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl DrawJob {
    /// Encodes the drawable's images per the client's settings and sends the drawable
    /// (what [`DisplayWorker::client_poll`] would send for it). `Ok(false)`: an image could
    /// not be provided and the drawable was skipped.
    pub fn send(&self, sink: &mut dyn DisplaySink) -> Result<bool, DisplayError> {
        let conv = &self.entry.conv;
        let mut encoder = lock(&self.encoder);
        let mut prepared: Vec<Option<EncodedImage>> = Vec::with_capacity(conv.images().len());
        for (i, slot) in conv.images().iter().enumerate() {
            let enc = match slot.guest_image().map(|img| (img, &img.kind)) {
                Some((img, ImageKind::Bitmap(b))) => view_of(b).and_then(|view| {
                    let mut req = EncodeRequest::new(img.id);
                    req.flags = slot.wire_flags();
                    req.can_lossy = encoder.settings().jpeg;
                    req.graduality = self.entry.graduality.get(i).cloned();
                    let surely_raw = encoder.settings().compression == ImageCompression::Off
                        || u64::from(b.height) * u64::from(b.stride)
                            < classify::MIN_SIZE_TO_COMPRESS;
                    if surely_raw {
                        None
                    } else {
                        encoder.encode(&view, &req).ok()
                    }
                }),
                _ => None,
            };
            prepared.push(enc);
        }
        drop(encoder);
        let mut images: Vec<Image<'_>> = Vec::with_capacity(prepared.len());
        for (slot, p) in conv.images().iter().zip(&prepared) {
            let img = match p {
                Some(e) => Some(e.image()),
                None if slot.guest_image().is_none() => slot.raw_with(ImageFlags::empty(), None),
                None => slot.raw_with(slot.wire_flags(), None),
            };
            let Some(img) = img else {
                tracing::warn!("drawable with an image the server could not provide: skipped");
                return Ok(false);
            };
            images.push(img);
        }
        let msg = conv
            .message(images)
            .map_err(|e| DisplayError::Protocol(e.to_string()))?;
        sink.send(&msg)?;
        Ok(true)
    }
}

/// An image prepared for one slot of a drawable.
enum Prepared {
    /// The slot's raw form (guest QUIC passed through, uncompressed bitmap).
    Raw(ImageFlags, Option<(PaletteSource, BitmapFlags)>),
    /// Encoded here.
    Encoded(EncodedImage),
    /// From the client's cache.
    FromCache,
    /// A surface of this size.
    Surface(u32, u32),
}

fn view_of(b: &ParsedBitmap) -> Option<BitmapView<'_>> {
    let v = BitmapView {
        format: BitmapFormat::from_u8(b.format)?,
        width: b.width,
        height: b.height,
        stride: b.stride,
        top_down: b.top_down(),
        data: &b.data,
    };
    v.validate().ok()?;
    Some(v)
}

fn send(
    sink: &mut dyn DisplaySink,
    c: &mut ClientState,
    msg: &ServerMessage<'_>,
) -> Result<(), DisplayError> {
    sink.send(msg)?;
    c.stats.messages += 1;
    Ok(())
}

fn rect(r: &spice_qxl::parse::Rect) -> PRect {
    PRect {
        top: r.top,
        left: r.left,
        bottom: r.bottom,
        right: r.right,
    }
}

impl<D: DisplayDevice> DisplayWorker<D> {
    /// Adds a display client. Nothing is sent before its DISPLAY_INIT; then it gets the
    /// current framebuffer (a client joining late sees the same picture as the others).
    pub fn add_client(&mut self, opts: ClientOptions) -> ClientId {
        let id = ClientId(self.next_client);
        self.next_client += 1;
        let jpeg = classify::jpeg_enabled(self.cfg.jpeg_wan, opts.bit_rate);
        let zlib = classify::jpeg_enabled(self.cfg.zlib_glz_wan, opts.bit_rate);
        let settings = EncoderSettings {
            compression: self.cfg.compression,
            jpeg,
            zlib_glz: zlib,
            client_lz4: opts.caps.lz4,
        };
        let mut c = ClientState {
            session: opts.session_id,
            caps: opts.caps,
            init: false,
            pipe: VecDeque::new(),
            pipe_bytes: 0,
            encoder: Arc::new(Mutex::new(ImageEncoder::new(settings))),
            pixmaps: PixmapCache::new(0),
            palettes: PaletteCache::default(),
            known_surfaces: BTreeSet::new(),
            streams: BTreeMap::new(),
            waker: opts.waker,
            glz: opts.glz,
            bit_rate: opts.bit_rate,
            stats: ClientStats::default(),
        };
        c.push(PipeItem::Refresh);
        self.clients.insert(id, c);
        tracing::debug!(?id, session = opts.session_id, "display client added");
        id
    }

    /// The largest playback delay (ms) the client's video streams asked for since the
    /// last call (their rate control's `update_client_playback_delay`), if any: the
    /// display channel hands it to the client's multimedia clock
    /// ([`crate::main_channel::MmTimeControl::stream_latency`]).
    pub fn take_playback_delay(&mut self, id: ClientId) -> Option<u32> {
        let c = self.clients.get_mut(&id)?;
        c.streams
            .values_mut()
            .filter_map(|s| s.encoder.take_playback_delay())
            .max()
    }

    /// Removes a client, letting go of everything it held.
    pub fn remove_client(&mut self, id: ClientId) {
        if let Some(mut c) = self.clients.remove(&id) {
            for seq in c.clear_pipe() {
                self.unref_seq(seq);
            }
            self.flush_releases();
        }
    }

    /// Clients attached.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Client `id`'s counters.
    pub fn client_stats(&self, id: ClientId) -> Option<ClientStats> {
        self.clients.get(&id).map(|c| c.stats)
    }

    /// Client `id`'s queue: items and estimated bytes.
    pub fn client_queue(&self, id: ClientId) -> Option<(usize, usize)> {
        self.clients
            .get(&id)
            .map(|c| (c.pipe_len(), c.pipe_bytes()))
    }

    /// Client `id`'s pixmap cache mirror: entries and pixels used.
    pub fn client_pixmap_cache(&self, id: ClientId) -> Option<(usize, u64)> {
        self.clients
            .get(&id)
            .map(|c| (c.pixmaps.len(), c.pixmaps.used()))
    }

    /// The image compression client `id` gets now.
    pub fn client_compression(&self, id: ClientId) -> Option<ImageCompression> {
        self.clients
            .get(&id)
            .map(|c| lock(&c.encoder).settings().compression)
    }

    /// Handles one display-channel message from client `id`.
    pub fn client_message(
        &mut self,
        id: ClientId,
        msg: &ClientMessage<'_>,
        now_ms: u64,
    ) -> Result<(), DisplayError> {
        let c = self
            .clients
            .get_mut(&id)
            .ok_or(DisplayError::UnknownClient(id))?;
        match msg {
            ClientMessage::Init(init) => {
                c.pixmaps = PixmapCache::new(init.pixmap_cache_size);
                match c.glz.encoder(
                    c.session,
                    init.glz_dictionary_id,
                    i64::from(init.glz_dictionary_window_size),
                ) {
                    Ok((enc, window)) => lock(&c.encoder).set_glz(enc, window),
                    Err(e) => tracing::warn!(error = %e, "no GLZ dictionary for this client"),
                }
                c.init = true;
                c.wake();
            }
            ClientMessage::PreferredCompression(v) => match ImageCompression::from_u8(v.0) {
                Some(comp) => {
                    let mut e = lock(&c.encoder);
                    let mut s = e.settings();
                    s.compression = comp;
                    e.set_settings(s);
                }
                None => tracing::debug!(value = v.0, "invalid preferred compression ignored"),
            },
            ClientMessage::StreamReport(r) => {
                if let Some(s) = c.streams.get_mut(&r.stream_id) {
                    s.encoder.client_report(
                        &mjpeg::StreamReport {
                            num_frames: r.num_frames,
                            num_drops: r.num_drops,
                            start_frame_mm_time: r.start_frame_mm_time,
                            end_frame_mm_time: r.end_frame_mm_time,
                            last_frame_delay: r.last_frame_delay,
                            audio_delay: r.audio_delay,
                        },
                        now_ms,
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends client `id`'s queued items while `sink` can take them. Returns the number of
    /// items sent. Nothing is sent before the client's DISPLAY_INIT.
    pub fn client_poll(
        &mut self,
        id: ClientId,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
    ) -> Result<usize, DisplayError> {
        let mut c = self
            .clients
            .remove(&id)
            .ok_or(DisplayError::UnknownClient(id))?;
        let r = self.poll_inner(&mut c, sink, now_ms);
        self.clients.insert(id, c);
        self.flush_releases();
        r
    }

    /// Like [`DisplayWorker::client_poll`], but stops at the first drawable whose images
    /// only need encoding (no cache, palette or surface involved) and hands it back as a
    /// [`DrawJob`]: the caller encodes and sends it with [`DrawJob::send`] *without* holding
    /// the worker (so the device thread goes on taking commands meanwhile), then calls
    /// [`DisplayWorker::client_finish`], then polls again. `Ok(None)`: nothing more to
    /// send now.
    pub fn client_poll_split(
        &mut self,
        id: ClientId,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
    ) -> Result<Option<DrawJob>, DisplayError> {
        let mut c = self
            .clients
            .remove(&id)
            .ok_or(DisplayError::UnknownClient(id))?;
        let mut job = None;
        let r = self.poll_loop(&mut c, sink, now_ms, Some(&mut job));
        self.clients.insert(id, c);
        self.flush_releases();
        r.map(|_| job)
    }

    /// Ends a [`DrawJob`] of client `id` (`sent`: it went out).
    pub fn client_finish(&mut self, id: ClientId, job: DrawJob, sent: bool) {
        if sent && let Some(c) = self.clients.get_mut(&id) {
            c.stats.draws += 1;
            c.stats.messages += 1;
        }
        self.unref_seq(job.seq);
        self.flush_releases();
    }

    /// A job for `entry` when all its images can be prepared by the encoder alone.
    fn job_for(&self, c: &ClientState, seq: u64, entry: &Arc<DrawEntry>) -> Option<DrawJob> {
        if !c.known_surfaces.contains(&entry.conv.base.surface_id) {
            return None;
        }
        for slot in entry.conv.images() {
            let Some(img) = slot.guest_image() else {
                continue;
            };
            match &img.kind {
                ImageKind::Quic(_) => {}
                ImageKind::Bitmap(b) => {
                    if b.palette.is_some()
                        || slot.role() == ImageRole::Mask
                        || (slot.cache_me() && img.id != 0)
                    {
                        return None;
                    }
                }
                ImageKind::Surface(_) => return None,
            }
        }
        Some(DrawJob {
            seq,
            entry: entry.clone(),
            encoder: c.encoder.clone(),
        })
    }

    fn poll_inner(
        &mut self,
        c: &mut ClientState,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
    ) -> Result<usize, DisplayError> {
        self.poll_loop(c, sink, now_ms, None)
    }

    fn poll_loop(
        &mut self,
        c: &mut ClientState,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
        mut job: Option<&mut Option<DrawJob>>,
    ) -> Result<usize, DisplayError> {
        if !c.init {
            return Ok(0);
        }
        let mut n = 0;
        while sink.can_send() {
            let Some(item) = c.pop() else { break };
            n += 1;
            if let (Some(out), PipeItem::Draw { seq, entry }) = (job.as_deref_mut(), &item)
                && let Some(j) = self.job_for(c, *seq, entry)
            {
                *out = Some(j);
                break;
            }
            let seq = item.seq();
            let r = self.send_item(c, item, sink, now_ms);
            if let Some(seq) = seq {
                self.unref_seq(seq);
            }
            r?;
        }
        Ok(n)
    }

    fn send_item(
        &mut self,
        c: &mut ClientState,
        item: PipeItem,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
    ) -> Result<(), DisplayError> {
        match item {
            PipeItem::Refresh => self.send_refresh(c, sink),
            PipeItem::SurfaceCreate(sc) => {
                c.known_surfaces.insert(sc.surface_id);
                send(sink, c, &ServerMessage::SurfaceCreate(sc))
            }
            PipeItem::SurfaceDestroy(id) => {
                if c.known_surfaces.remove(&id) {
                    send(sink, c, &ServerMessage::SurfaceDestroy(id))
                } else {
                    Ok(())
                }
            }
            PipeItem::Draw { entry, .. } => self.send_draw(c, &entry, sink),
            PipeItem::StreamFrame {
                stream_id,
                mm_time,
                entry,
                ..
            } => self.send_stream_frame(c, stream_id, mm_time, &entry, sink, now_ms),
            PipeItem::StreamDestroy { stream_id, redraw } => {
                if c.streams.remove(&stream_id).is_some() {
                    send(sink, c, &ServerMessage::StreamDestroy(stream_id))?;
                    if let Some(s) = redraw {
                        self.send_snapshot(c, &s, sink)?;
                    }
                }
                Ok(())
            }
            PipeItem::MonitorsConfig(m) => {
                if c.caps.monitors_config {
                    send(sink, c, &ServerMessage::MonitorsConfig((*m).clone()))
                } else {
                    Ok(())
                }
            }
            PipeItem::Mark => {
                if c.known_surfaces.contains(&0) {
                    send(sink, c, &ServerMessage::Mark)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Re-synchronises the client: surfaces, their pixels, monitors, MARK.
    fn send_refresh(
        &mut self,
        c: &mut ClientState,
        sink: &mut dyn DisplaySink,
    ) -> Result<(), DisplayError> {
        c.stats.refreshes += 1;
        if !c.streams.is_empty() {
            c.streams.clear();
            send(sink, c, &ServerMessage::StreamDestroyAll)?;
        }
        let creates = self.surface_creates();
        let gone: Vec<u32> = c
            .known_surfaces
            .iter()
            .copied()
            .filter(|id| !self.surfaces.contains_key(id))
            .collect();
        for id in gone {
            c.known_surfaces.remove(&id);
            send(sink, c, &ServerMessage::SurfaceDestroy(id))?;
        }
        for sc in &creates {
            if c.known_surfaces.insert(sc.surface_id) {
                send(sink, c, &ServerMessage::SurfaceCreate(*sc))?;
            }
        }
        for sc in &creates {
            let full = spice_qxl::parse::Rect {
                top: 0,
                left: 0,
                bottom: sc.height as i32,
                right: sc.width as i32,
            };
            if let Some(s) = self.snapshot(sc.surface_id, full) {
                self.send_snapshot(c, &s, sink)?;
            }
        }
        if c.caps.monitors_config
            && let Some(m) = &self.monitors
        {
            send(sink, c, &ServerMessage::MonitorsConfig((**m).clone()))?;
        }
        if self.surfaces.contains_key(&0) {
            send(sink, c, &ServerMessage::Mark)?;
        }
        Ok(())
    }

    /// A DRAW_COPY of a captured area, encoded per the client's mode.
    fn send_snapshot(
        &mut self,
        c: &mut ClientState,
        s: &Snapshot,
        sink: &mut dyn DisplaySink,
    ) -> Result<(), DisplayError> {
        let Some(view) = view_of(&s.bitmap) else {
            return Ok(());
        };
        let mut enc = lock(&c.encoder);
        let mut req = EncodeRequest::new(0);
        req.can_lossy = enc.settings().jpeg;
        let img = enc
            .encode(&view, &req)
            .map_err(|e| DisplayError::Protocol(e.to_string()))?;
        drop(enc);
        let msg = ServerMessage::DrawCopy(DrawCopy {
            base: DisplayBase {
                surface_id: s.surface_id,
                bbox: rect(&s.area),
                clip: Clip::None,
            },
            src_bitmap: Some(img.image()),
            src_area: PRect {
                top: 0,
                left: 0,
                bottom: s.bitmap.height as i32,
                right: s.bitmap.width as i32,
            },
            rop_descriptor: Ropd::OP_PUT,
            scale_mode: ImageScaleMode::NEAREST,
            mask: QMask::default(),
        });
        send(sink, c, &msg)
    }

    /// Classifies `entry`'s images now (on the device's thread) for the clients whose
    /// codec choice will need their graduality, so their connection threads only encode:
    /// the classifier reads the whole bitmap, as much work as a GLZ pass. Only clients with
    /// no other drawable waiting count; cacheable images are left to the sending (a cache
    /// hit needs no choice).
    pub(crate) fn classify_ahead(&self, entry: &DrawEntry) {
        for (slot, cell) in entry.conv.images().iter().zip(&entry.graduality) {
            if cell.get().is_some() || slot.role() == ImageRole::Mask || slot.cache_me() {
                continue;
            }
            let Some(view) = slot.bitmap().and_then(view_of) else {
                continue;
            };
            for c in self.clients.values() {
                // Only for a client that will send it next: one that is behind may never
                // send it (a later drawable hiding it first), and then the work is wasted.
                let draws = c
                    .pipe
                    .iter()
                    .filter(|i| matches!(i, PipeItem::Draw { .. } | PipeItem::StreamFrame { .. }))
                    .count();
                if !c.init || draws > 1 || c.refresh_pending() {
                    continue;
                }
                // A connection thread encoding holds its encoder: it classifies itself then.
                let Ok(enc) = c.encoder.try_lock() else {
                    continue;
                };
                let mut req = EncodeRequest::new(0);
                req.can_lossy = enc.settings().jpeg;
                req.graduality = Some(cell.clone());
                let _ = enc.choose(&view, &req);
                if cell.get().is_some() {
                    break;
                }
            }
        }
    }

    fn prepare_slot(
        &self,
        c: &mut ClientState,
        slot: &ImageSlot,
        graduality: Option<&GradualityCell>,
        inval_pixmaps: &mut Vec<u64>,
        inval_palettes: &mut Vec<u64>,
    ) -> Prepared {
        let Some(img) = slot.guest_image() else {
            return Prepared::Raw(ImageFlags::empty(), None);
        };
        let b = match &img.kind {
            ImageKind::Surface(sid) => {
                return match self.surfaces.get(sid) {
                    Some(s) => Prepared::Surface(s.create.width, s.create.height),
                    None => Prepared::Raw(ImageFlags::empty(), None),
                };
            }
            ImageKind::Quic(_) => return Prepared::Raw(slot.wire_flags(), None),
            ImageKind::Bitmap(b) => b,
        };
        // Palette cache.
        let palette = b
            .palette
            .as_ref()
            .map(|p| match c.palettes.use_palette(p.unique) {
                PaletteUse::FromCache => (
                    PaletteSource::FromCache(p.unique),
                    BitmapFlags::PAL_FROM_CACHE,
                ),
                PaletteUse::CacheMe { evicted } => {
                    inval_palettes.extend(evicted);
                    (
                        PaletteSource::Inline(PPalette {
                            unique: p.unique,
                            ents: p.entries.clone(),
                        }),
                        BitmapFlags::PAL_CACHE_ME,
                    )
                }
                PaletteUse::Inline => (
                    PaletteSource::Inline(PPalette {
                        unique: p.unique,
                        ents: p.entries.clone(),
                    }),
                    BitmapFlags::empty(),
                ),
            });
        if slot.role() == ImageRole::Mask {
            return Prepared::Raw(slot.wire_flags(), palette);
        }
        let cacheable = slot.cache_me() && img.id != 0;
        if cacheable && let Some(hit) = c.pixmaps.lookup(img.id) {
            c.stats.cache_hits += 1;
            let _ = hit == CacheHit::Lossy;
            return Prepared::FromCache;
        }
        let Some(view) = view_of(b) else {
            return Prepared::Raw(slot.wire_flags(), palette);
        };
        let mut req = EncodeRequest::new(img.id);
        req.flags = slot.wire_flags();
        let mut encoder = lock(&c.encoder);
        req.can_lossy = encoder.settings().jpeg;
        req.graduality = graduality.cloned();
        if let Some((src, f)) = &palette {
            req.palette = src.clone();
            req.palette_flags = *f;
        }
        // Sent raw: borrow the guest's rows instead of copying them (unless it is cached,
        // which needs the flags of an encoded image).
        let surely_raw = encoder.settings().compression == ImageCompression::Off
            || u64::from(b.height) * u64::from(b.stride) < classify::MIN_SIZE_TO_COMPRESS;
        if !cacheable && surely_raw {
            return Prepared::Raw(slot.wire_flags(), palette);
        }
        let encoded = encoder.encode(&view, &req);
        drop(encoder);
        let Ok(mut enc) = encoded else {
            return Prepared::Raw(slot.wire_flags(), palette);
        };
        if cacheable
            && let Some(evicted) =
                c.pixmaps
                    .add(img.id, u64::from(b.width) * u64::from(b.height), enc.lossy)
        {
            c.stats.invalidated += evicted.len() as u64;
            inval_pixmaps.extend(evicted);
            enc.flags |= ImageFlags::CACHE_ME;
        }
        Prepared::Encoded(enc)
    }

    fn send_draw(
        &mut self,
        c: &mut ClientState,
        entry: &DrawEntry,
        sink: &mut dyn DisplaySink,
    ) -> Result<(), DisplayError> {
        let conv = &entry.conv;
        if !c.known_surfaces.contains(&conv.base.surface_id) {
            return Ok(());
        }
        let mut inval_pixmaps = Vec::new();
        let mut inval_palettes = Vec::new();
        let prepared: Vec<Prepared> = conv
            .images()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let g = entry.graduality.get(i);
                self.prepare_slot(c, s, g, &mut inval_pixmaps, &mut inval_palettes)
            })
            .collect();
        let mut images: Vec<Image<'_>> = Vec::with_capacity(prepared.len());
        for (slot, p) in conv.images().iter().zip(&prepared) {
            let img = match p {
                Prepared::Raw(flags, pal) => slot.raw_with(*flags, pal.clone()),
                Prepared::Encoded(e) => Some(e.image()),
                Prepared::FromCache => Some(slot.from_cache(false)),
                Prepared::Surface(w, h) => slot.surface(*w, *h),
            };
            let Some(img) = img else {
                tracing::warn!("drawable with an image the server could not provide: skipped");
                return Ok(());
            };
            images.push(img);
        }
        for id in inval_palettes {
            send(sink, c, &ServerMessage::InvalPalette(id))?;
        }
        if !inval_pixmaps.is_empty() {
            let list = inval_pixmaps
                .into_iter()
                .map(|id| ResourceId {
                    resource_type: ResourceType::PIXMAP,
                    id,
                })
                .collect();
            send(sink, c, &ServerMessage::InvalList(list))?;
        }
        let msg = conv
            .message(images)
            .map_err(|e| DisplayError::Protocol(e.to_string()))?;
        c.stats.draws += 1;
        send(sink, c, &msg)
    }

    fn send_stream_frame(
        &mut self,
        c: &mut ClientState,
        stream_id: u32,
        mm_time: u32,
        entry: &DrawEntry,
        sink: &mut dyn DisplaySink,
        now_ms: u64,
    ) -> Result<(), DisplayError> {
        let conv = &entry.conv;
        let Some((slot_idx, area)) = conv.source() else {
            return self.send_draw(c, entry, sink);
        };
        let Some(b) = conv.images().get(slot_idx).and_then(|s| s.bitmap()) else {
            return self.send_draw(c, entry, sink);
        };
        let (w, h) = (
            (area.right - area.left).max(0) as u32,
            (area.bottom - area.top).max(0) as u32,
        );
        let fits = b.format == spice_qxl::abi::bitmap_fmt::THIRTY_TWO_BIT
            && area.left >= 0
            && area.top >= 0
            && area.right as u32 <= b.width
            && area.bottom as u32 <= b.height
            && w > 0
            && h > 0;
        if !c.caps.mjpeg || !fits || !c.known_surfaces.contains(&0) {
            return self.send_draw(c, entry, sink);
        }
        if let Some(s) = c.streams.get(&stream_id)
            && (s.width != w || s.height != h)
        {
            return self.send_draw(c, entry, sink);
        }
        if !c.streams.contains_key(&stream_id) {
            let rate = c.bit_rate.unwrap_or(MjpegConfig::default().start_bit_rate);
            let encoder = MjpegEncoder::new(
                MjpegConfig {
                    start_bit_rate: rate * 8 / 10,
                    ..MjpegConfig::default()
                },
                now_ms,
            );
            c.streams.insert(
                stream_id,
                ClientStream {
                    encoder,
                    width: w,
                    height: h,
                },
            );
            let top_down = b.top_down();
            send(
                sink,
                c,
                &ServerMessage::StreamCreate(StreamCreate {
                    surface_id: 0,
                    id: stream_id,
                    flags: if top_down {
                        StreamFlags::TOP_DOWN
                    } else {
                        StreamFlags::empty()
                    },
                    codec_type: VideoCodecType::MJPEG,
                    stamp: 0,
                    stream_width: w,
                    stream_height: h,
                    src_width: w,
                    src_height: h,
                    dest: conv.base.bbox,
                    clip: Clip::None,
                }),
            )?;
            if c.caps.stream_report {
                send(
                    sink,
                    c,
                    &ServerMessage::StreamActivateReport(StreamActivateReport {
                        stream_id,
                        unique_id: stream_id,
                        max_window_size: 5,
                        timeout_ms: 1000,
                    }),
                )?;
            }
        }
        // The frame: the source area in the bitmap's memory row order.
        let stride = b.stride as usize;
        let first_row = if b.top_down() {
            area.top as usize
        } else {
            (b.height as i32 - area.bottom) as usize
        };
        let start = first_row * stride + area.left as usize * 4;
        let end = start + (h as usize - 1) * stride + w as usize * 4;
        let Some(data) = b.data.get(start..end) else {
            return self.send_draw(c, entry, sink);
        };
        let src = JpegSource {
            data,
            width: w,
            height: h,
            stride,
            format: JpegSourceFormat::Bgrx32,
            top_down: true,
        };
        let Some(stream) = c.streams.get_mut(&stream_id) else {
            return Ok(());
        };
        match stream.encoder.encode_frame(&src, mm_time, now_ms) {
            Ok(Some(frame)) => {
                c.stats.stream_frames += 1;
                send(
                    sink,
                    c,
                    &ServerMessage::StreamData(StreamData {
                        header: StreamDataHeader {
                            id: stream_id,
                            multi_media_time: mm_time,
                        },
                        data: &frame.data,
                    }),
                )
            }
            Ok(None) => {
                c.stats.stream_frames_dropped += 1;
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "MJPEG frame failed; sending the drawable");
                self.send_draw(c, entry, sink)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use spice_qxl::parse::Rect;

    use super::super::worker::DisplayConfig;
    use super::*;

    struct Discard;

    impl DisplaySink for Discard {
        fn can_send(&self) -> bool {
            true
        }
        fn send(&mut self, _: &ServerMessage<'_>) -> Result<(), DisplayError> {
            Ok(())
        }
    }

    #[test]
    fn graduality_is_classified_once_for_all_clients() {
        // The encoder's own path fills the shared cell too.
        let mut enc = ImageEncoder::new(super::super::encode::EncoderSettings::default());
        let px: Vec<u8> = (0..64 * 64u32).flat_map(|i| [i as u8, 3, 4, 0]).collect();
        let view = BitmapView {
            format: BitmapFormat::Rgb32,
            width: 64,
            height: 64,
            stride: 256,
            top_down: true,
            data: &px,
        };
        let mut req = EncodeRequest::new(0);
        let cell = GradualityCell::default();
        req.graduality = Some(cell.clone());
        enc.encode(&view, &req).unwrap();
        assert!(cell.get().is_some(), "auto_glz classified through the cell");

        let (mut w, mut g) = crate::testing::display_worker(4 << 20, DisplayConfig::default());
        crate::testing::create_primary(&mut w, &mut g, 128, 96);
        let glz = Arc::new(GlzRegistry::new());
        let ids: Vec<ClientId> = (0..2)
            .map(|_| {
                let id = crate::testing::add_client(&mut w, 1, glz.clone(), 0);
                w.client_poll(id, &mut Discard, 0).unwrap();
                id
            })
            .collect();
        let px: Vec<u8> = (0..128 * 96u32)
            .flat_map(|i| [(i % 128) as u8, (i / 128) as u8, 9, 0])
            .collect();
        let full = Rect {
            top: 0,
            left: 0,
            bottom: 96,
            right: 128,
        };
        g.copy_bitmap(w.device_mut().memory_mut(), 0, full, 128, 96, &px, 4096)
            .unwrap();
        w.process(1);
        let entry = |w: &DisplayWorker<_>, id: ClientId| {
            w.clients[&id].pipe.iter().find_map(|i| match i {
                PipeItem::Draw { entry, .. } => Some(entry.clone()),
                _ => None,
            })
        };
        // Classified once, on the device's thread, for both clients.
        let e = entry(&w, ids[1]).expect("queued for the second client");
        assert!(e.graduality[0].get().is_some(), "classified ahead");
        assert!(Arc::ptr_eq(&e, &entry(&w, ids[0]).unwrap()));
        w.client_poll(ids[0], &mut Discard, 1).unwrap();
        w.client_poll(ids[1], &mut Discard, 1).unwrap();
        assert_eq!(w.client_stats(ids[1]).unwrap().draws, 1);
    }
}

#[cfg(test)]
mod split_tests {
    use spice_proto::WriteBuf;
    use spice_qxl::parse::Rect;

    use super::super::worker::DisplayConfig;
    use super::*;

    /// Records every message's type and body.
    #[derive(Default)]
    struct Record(Vec<(u16, Vec<u8>)>);

    impl DisplaySink for Record {
        fn can_send(&self) -> bool {
            true
        }
        fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
            use spice_proto::ChannelMessage;
            let mut body = Vec::new();
            msg.encode_body(&mut WriteBuf::new(&mut body))
                .map_err(|e| DisplayError::Send(e.to_string()))?;
            self.0.push((msg.msg_type(), body));
            Ok(())
        }
    }

    /// The same guest commands, sent by `client_poll` or by split jobs: same bytes.
    fn run(split: bool, compression: ImageCompression) -> (Vec<(u16, Vec<u8>)>, ClientStats) {
        let cfg = DisplayConfig {
            compression,
            ..DisplayConfig::default()
        };
        let (mut w, mut g) = crate::testing::display_worker(4 << 20, cfg);
        crate::testing::create_primary(&mut w, &mut g, 160, 120);
        let id = crate::testing::add_client(&mut w, 1, Arc::new(GlzRegistry::new()), 0);
        let mut rec = Record::default();
        let poll = |w: &mut DisplayWorker<_>, rec: &mut Record| {
            if split {
                while let Some(job) = w.client_poll_split(id, rec, 1).unwrap() {
                    let sent = job.send(rec).unwrap();
                    w.client_finish(id, job, sent);
                }
            } else {
                w.client_poll(id, rec, 1).unwrap();
            }
        };
        poll(&mut w, &mut rec);
        for i in 0..4u32 {
            let (bw, bh) = (160 - i * 30, 120 - i * 20);
            let px: Vec<u8> = (0..bw * bh)
                .flat_map(|p| [(p % bw) as u8 ^ i as u8, (p / bw) as u8, 7, 0])
                .collect();
            let bbox = Rect {
                top: 0,
                left: 0,
                bottom: bh as i32,
                right: bw as i32,
            };
            let mem = w.device_mut().memory_mut();
            g.copy_bitmap(mem, 0, bbox, bw, bh, &px, 4096).unwrap();
            g.fill(
                mem,
                0,
                Rect {
                    top: 3,
                    left: 3,
                    bottom: 9,
                    right: 40,
                },
                0x112233,
                None,
            )
            .unwrap();
            w.process(1);
            poll(&mut w, &mut rec);
        }
        assert_eq!(w.outstanding_resources(), 0, "everything released");
        (rec.0, w.client_stats(id).unwrap())
    }

    #[test]
    fn split_jobs_send_what_client_poll_sends() {
        for mode in [
            ImageCompression::AutoGlz,
            ImageCompression::Lz,
            ImageCompression::Quic,
            ImageCompression::Off,
        ] {
            let (a, sa) = run(false, mode);
            let (b, sb) = run(true, mode);
            assert!(a.len() > 8, "{mode:?}");
            assert_eq!(a, b, "{mode:?}");
            assert_eq!(sa, sb, "{mode:?}");
        }
    }
}
