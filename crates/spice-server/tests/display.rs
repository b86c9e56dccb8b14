//! The display pipeline end to end, in process: a guest driver pushes commands through
//! spice-qxl's rings, the display worker renders them and queues them for its clients, and
//! fake clients decode what the channel sends with spice-proto and render it with
//! spice-canvas. Each must end with exactly the server's framebuffer.

use std::sync::Arc;

use spice_canvas::{Canvas, ImageLimits, SharedGlzWindow, new_glz_window};
use spice_codecs::classify::{ImageCompression, WanCompression};
use spice_codecs::stream_detect::StreamingVideo;
use spice_proto::display::{ClientMessage, Init, ServerMessage};
use spice_proto::types::{ImageBody, ImageCompression as WireCompression};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};
use spice_qxl::abi;
use spice_qxl::guest::{GuestBitmap, drawable};
use spice_qxl::parse::Rect;
use spice_qxl::{GuestDriver, QxlDevice, VecMemory};
use spice_server::display::glz::GlzRegistry;
use spice_server::display::{
    ClientId, ClientOptions, DisplayClientCaps, DisplayConfig, DisplayError, DisplaySink,
    DisplayWorker,
};
use zerocopy::{FromZeros, IntoBytes};

const W: u32 = 160;
const H: u32 = 120;

/// Collects encoded messages (type, body), with an optional send budget.
struct VecSink {
    msgs: Vec<(u16, Vec<u8>)>,
    budget: usize,
}

impl VecSink {
    fn new() -> Self {
        VecSink {
            msgs: Vec::new(),
            budget: usize::MAX,
        }
    }
}

impl DisplaySink for VecSink {
    fn can_send(&self) -> bool {
        self.msgs.len() < self.budget
    }

    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        let mut body = Vec::new();
        msg.encode_body(&mut WriteBuf::new(&mut body))
            .map_err(|e| DisplayError::Send(e.to_string()))?;
        self.msgs.push((msg.msg_type(), body));
        Ok(())
    }
}

/// A client: decodes with spice-proto, renders with spice-canvas.
struct FakeClient {
    id: ClientId,
    canvas: Canvas,
    /// Message type → count.
    seen: std::collections::BTreeMap<&'static str, usize>,
    /// Image type names of the images received.
    images: std::collections::BTreeMap<&'static str, usize>,
}

fn image_name(b: &ImageBody<'_>) -> &'static str {
    match b {
        ImageBody::Bitmap(_) => "bitmap",
        ImageBody::Quic(_) => "quic",
        ImageBody::LzPlt(_) => "lz_plt",
        ImageBody::LzRgb(_) => "lz_rgb",
        ImageBody::GlzRgb(_) => "glz_rgb",
        ImageBody::FromCache => "from_cache",
        ImageBody::Surface(_) => "surface",
        ImageBody::Jpeg(_) => "jpeg",
        ImageBody::FromCacheLossless => "from_cache_lossless",
        ImageBody::ZlibGlzRgb(_) => "zlib_glz_rgb",
        ImageBody::JpegAlpha(_) => "jpeg_alpha",
        ImageBody::Lz4(_) => "lz4",
    }
}

impl FakeClient {
    fn new(id: ClientId, glz: SharedGlzWindow) -> Self {
        FakeClient {
            id,
            canvas: Canvas::new(1 << 26, ImageLimits::default(), glz),
            seen: Default::default(),
            images: Default::default(),
        }
    }

    fn apply(&mut self, msgs: &[(u16, Vec<u8>)]) {
        for (t, body) in msgs {
            let m = ServerMessage::decode_body(ChannelType::DISPLAY, *t, body)
                .unwrap_or_else(|e| panic!("message {t} does not decode: {e}"));
            *self.seen.entry(m.name()).or_default() += 1;
            if let ServerMessage::DrawCopy(c) = &m
                && let Some(img) = &c.src_bitmap
            {
                *self.images.entry(image_name(&img.body)).or_default() += 1;
            }
            self.canvas
                .apply(&m)
                .unwrap_or_else(|e| panic!("{} does not render: {e}", m.name()));
        }
    }

    fn count(&self, name: &str) -> usize {
        self.seen.get(name).copied().unwrap_or(0)
    }
}

struct Harness {
    worker: DisplayWorker<QxlDevice<VecMemory>>,
    guest: GuestDriver,
    now: u64,
    glz: Arc<GlzRegistry>,
}

fn harness(cfg: DisplayConfig) -> Harness {
    let (mut worker, mut guest) = spice_server::testing::display_worker(8 << 20, cfg);
    spice_server::testing::create_primary(&mut worker, &mut guest, W, H);
    Harness {
        worker,
        guest,
        now: 0,
        glz: Arc::new(GlzRegistry::new()),
    }
}

fn lossless(compression: ImageCompression) -> DisplayConfig {
    DisplayConfig {
        compression,
        jpeg_wan: WanCompression::Never,
        zlib_glz_wan: WanCompression::Never,
        streaming: StreamingVideo::Off,
        ..DisplayConfig::default()
    }
}

impl Harness {
    fn client_with(&mut self, session: u32, cache_pixels: i64, glz: SharedGlzWindow) -> FakeClient {
        let id = self.worker.add_client(ClientOptions {
            session_id: session,
            caps: DisplayClientCaps::spice_gtk(),
            glz: self.glz.clone(),
            waker: None,
            bit_rate: None,
        });
        self.worker
            .client_message(
                id,
                &ClientMessage::Init(Init {
                    pixmap_cache_id: 1,
                    pixmap_cache_size: cache_pixels,
                    glz_dictionary_id: 1,
                    glz_dictionary_window_size: 1 << 20,
                }),
                self.now,
            )
            .unwrap();
        FakeClient::new(id, glz)
    }

    /// A client of its own session (its own GLZ dictionary and window).
    fn client(&mut self) -> FakeClient {
        let session = 100 + self.worker.client_count() as u32;
        self.client_with(session, 1 << 20, new_glz_window(1 << 22))
    }

    /// Lets the worker take the guest's commands and the guest collect its releases.
    fn step(&mut self) {
        self.now += 40;
        self.worker.process(self.now);
        self.collect();
    }

    fn collect(&mut self) {
        self.worker.flush_releases();
        self.guest
            .collect_releases(self.worker.device_mut().memory_mut())
            .unwrap();
    }

    fn poll(&mut self, c: &mut FakeClient) -> usize {
        let mut sink = VecSink::new();
        let n = self.worker.client_poll(c.id, &mut sink, self.now).unwrap();
        c.apply(&sink.msgs);
        self.collect();
        n
    }

    fn fill(&mut self, bbox: Rect, color: u32) {
        self.guest
            .fill(self.worker.device_mut().memory_mut(), 0, bbox, color, None)
            .unwrap();
        self.step();
    }

    fn fill_clipped(&mut self, bbox: Rect, color: u32, clip: &[Rect]) {
        self.guest
            .fill(
                self.worker.device_mut().memory_mut(),
                0,
                bbox,
                color,
                Some(clip),
            )
            .unwrap();
        self.step();
    }

    fn copy(&mut self, surface_id: u32, at: (i32, i32), b: &GuestBitmap<'_>) {
        let mem = self.worker.device_mut().memory_mut();
        let mut cb = self.guest.builder();
        let img = cb.bitmap_image(mem, b).unwrap();
        let mut c = abi::QxlCopy::new_zeroed();
        c.src_bitmap = img.into();
        c.src_area = abi::QxlRect::new(0, 0, b.height as i32, b.width as i32);
        c.rop_descriptor = (1u16 << 3).into();
        let none = abi::QxlClip {
            ty: abi::clip_type::NONE.into(),
            data: 0.into(),
        };
        let bbox = Rect::new(at.0, at.1, at.0 + b.width as i32, at.1 + b.height as i32);
        let d = drawable(surface_id, abi::draw_type::COPY, bbox, none, c.as_bytes());
        cb.submit_draw(mem, &d).unwrap();
        self.step();
    }

    /// Copies `area` of surface `src` to `at` on the primary (a SURFACE image).
    fn copy_surface(&mut self, src: u32, src_size: (u32, u32), area: Rect, at: (i32, i32)) {
        let mem = self.worker.device_mut().memory_mut();
        let mut cb = self.guest.builder();
        let img = cb
            .surface_image(mem, 0, src, src_size.0, src_size.1)
            .unwrap();
        let mut c = abi::QxlCopy::new_zeroed();
        c.src_bitmap = img.into();
        c.src_area = abi::QxlRect::new(area.top, area.left, area.bottom, area.right);
        c.rop_descriptor = (1u16 << 3).into();
        let none = abi::QxlClip {
            ty: abi::clip_type::NONE.into(),
            data: 0.into(),
        };
        let (w, h) = (area.right - area.left, area.bottom - area.top);
        let bbox = Rect::new(at.0, at.1, at.0 + w, at.1 + h);
        let mut d = drawable(0, abi::draw_type::COPY, bbox, none, c.as_bytes());
        d.surfaces_dest[0] = (src as i32).into();
        d.surfaces_rects[0] = abi::QxlRect::new(area.top, area.left, area.bottom, area.right);
        cb.submit_draw(mem, &d).unwrap();
        self.step();
    }

    fn assert_same(&self, c: &FakeClient) {
        for sid in self.worker.surface_ids() {
            let ours = self.worker.surface(sid).unwrap();
            let theirs = c.canvas.surfaces.get(sid).expect("client has the surface");
            assert_eq!(
                (ours.width(), ours.height()),
                (theirs.width(), theirs.height())
            );
            let mask = if ours.has_alpha() {
                u32::MAX
            } else {
                0x00ff_ffff
            };
            let diff = ours
                .pixels()
                .iter()
                .zip(theirs.pixels())
                .filter(|(a, b)| (*a & mask) != (*b & mask))
                .count();
            assert_eq!(diff, 0, "surface {sid}: {diff} pixels differ");
        }
    }
}

/// Photo-like: a smooth gradient with a little texture.
fn gradient(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let n = (x * 7 + y * 13 + seed) % 5;
            v.extend_from_slice(&[
                (x * 255 / w.max(1)) as u8 ^ n as u8,
                (y * 255 / h.max(1)) as u8,
                ((x + y + seed) * 2) as u8,
                0,
            ]);
        }
    }
    v
}

/// Desktop-like: flat colours and text-ish stripes.
fn desktop(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let ink = (x / 3 + y / 5 + seed) % 7 == 0 && y % 8 < 6;
            let px = if ink {
                [20, 20, 20, 0]
            } else {
                [0xf0, 0xe8, (seed * 40) as u8, 0]
            };
            v.extend_from_slice(&px);
        }
    }
    v
}

/// The same scene for every mode: fills, clipped fills, photo and desktop bitmaps, a
/// bottom-up bitmap, a cached icon drawn twice, a palette bitmap, an off-screen surface
/// copied to the primary.
fn scene(h: &mut Harness, client: &mut FakeClient) {
    h.fill(Rect::new(0, 0, W as i32, H as i32), 0x00336699);
    h.fill(Rect::new(10, 10, 70, 50), 0x00ff8800);
    h.fill_clipped(
        Rect::new(0, 60, 160, 120),
        0x0000cc44,
        &[Rect::new(5, 65, 40, 100), Rect::new(50, 70, 150, 80)],
    );
    let photo = gradient(64, 48, 3);
    h.copy(0, (80, 4), &GuestBitmap::xrgb32(11, 64, 48, &photo));
    h.poll(client);
    let desk = desktop(72, 40, 1);
    h.copy(0, (4, 70), &GuestBitmap::xrgb32(12, 72, 40, &desk));
    // Bottom-up rows.
    let mut bu = GuestBitmap::xrgb32(13, 40, 20, &desk[..40 * 20 * 4]);
    bu.top_down = false;
    h.copy(0, (110, 90), &bu);
    // A cached icon, twice.
    let icon = desktop(16, 16, 5);
    let mut ib = GuestBitmap::xrgb32(0x1c0, 16, 16, &icon);
    ib.image_flags = abi::image_flags::CACHE;
    h.copy(0, (2, 2), &ib);
    h.poll(client);
    h.copy(0, (30, 2), &ib);
    // A palette bitmap.
    let pal: Vec<u32> = (0..16)
        .map(|i| 0x00100000 * i + 0x0000ff00 - i * 0x1000)
        .collect();
    let idx: Vec<u8> = (0..24 * 12).map(|i| (i % 16) as u8).collect();
    let pb = GuestBitmap {
        id: 14,
        image_flags: 0,
        format: abi::bitmap_fmt::EIGHT_BIT,
        width: 24,
        height: 12,
        stride: 24,
        top_down: true,
        data: &idx,
        palette: Some((0x9a1, &pal)),
        chunk_size: usize::MAX,
    };
    h.copy(0, (120, 60), &pb);
    h.copy(0, (120, 74), &pb);
    // An off-screen surface, drawn on and copied to the primary.
    h.guest
        .surface_create(h.worker.device_mut().memory_mut(), 1, 32, 24)
        .unwrap();
    h.step();
    h.guest
        .fill(
            h.worker.device_mut().memory_mut(),
            1,
            Rect::new(0, 0, 32, 24),
            0x00aa00aa,
            None,
        )
        .unwrap();
    h.step();
    let small = gradient(16, 12, 9);
    h.copy(1, (8, 6), &GuestBitmap::xrgb32(15, 16, 12, &small));
    h.copy_surface(1, (32, 24), Rect::new(0, 0, 32, 24), (60, 60));
    h.poll(client);
}

fn run_mode(compression: ImageCompression, zlib: bool) -> FakeClient {
    let mut cfg = lossless(compression);
    if zlib {
        cfg.zlib_glz_wan = WanCompression::Always;
    }
    let mut h = harness(cfg);
    let mut c = h.client();
    scene(&mut h, &mut c);
    h.poll(&mut c);
    h.assert_same(&c);
    assert_eq!(c.count("mark"), 1);
    assert!(c.count("surface_create") >= 2);
    // Everything sent: every drawable released, only the off-screen surface's create held.
    assert_eq!(h.worker.pending_drawables(), 0);
    assert_eq!(h.worker.outstanding_resources(), 1);
    h.worker.shutdown();
    h.collect();
    assert_eq!(h.worker.outstanding_resources(), 0);
    assert_eq!(
        h.guest.outstanding(),
        0,
        "the guest got every resource back"
    );
    c
}

#[test]
fn off_sends_raw_bitmaps() {
    let c = run_mode(ImageCompression::Off, false);
    assert!(c.images["bitmap"] > 0);
    assert!(!c.images.contains_key("quic") && !c.images.contains_key("lz_rgb"));
}

#[test]
fn quic_mode_matches() {
    let c = run_mode(ImageCompression::Quic, false);
    assert!(c.images["quic"] > 0, "{:?}", c.images);
}

#[test]
fn lz_mode_matches() {
    let c = run_mode(ImageCompression::Lz, false);
    assert!(c.images["lz_rgb"] > 0, "{:?}", c.images);
    assert!(c.images.contains_key("lz_plt"), "{:?}", c.images);
}

#[test]
fn glz_mode_matches() {
    let c = run_mode(ImageCompression::Glz, false);
    assert!(c.images["glz_rgb"] > 0, "{:?}", c.images);
}

#[test]
fn zlib_glz_matches() {
    let c = run_mode(ImageCompression::Glz, true);
    assert!(c.images["zlib_glz_rgb"] > 0, "{:?}", c.images);
}

#[test]
fn auto_glz_uses_the_classifier() {
    let c = run_mode(ImageCompression::AutoGlz, false);
    assert!(c.images["quic"] > 0, "photo → QUIC: {:?}", c.images);
    assert!(c.images["glz_rgb"] > 0, "desktop → GLZ: {:?}", c.images);
}

#[test]
fn auto_lz_uses_the_classifier() {
    let c = run_mode(ImageCompression::AutoLz, false);
    assert!(c.images["quic"] > 0, "{:?}", c.images);
    assert!(c.images["lz_rgb"] > 0, "{:?}", c.images);
}

#[test]
fn lz4_mode_matches() {
    let c = run_mode(ImageCompression::Lz4, false);
    assert!(c.images["lz4"] > 0, "{:?}", c.images);
}

#[test]
fn cached_icon_is_sent_from_cache() {
    let c = run_mode(ImageCompression::Lz, false);
    assert_eq!(c.images.get("from_cache"), Some(&1), "{:?}", c.images);
}

#[test]
fn jpeg_when_wan_applies() {
    let mut cfg = lossless(ImageCompression::AutoGlz);
    cfg.jpeg_wan = WanCompression::Always;
    let mut h = harness(cfg);
    let mut c = h.client();
    let photo = gradient(64, 48, 3);
    h.copy(0, (80, 4), &GuestBitmap::xrgb32(11, 64, 48, &photo));
    h.poll(&mut c);
    assert_eq!(c.images.get("jpeg"), Some(&1), "{:?}", c.images);
    // Lossy: close to the framebuffer, not equal.
    let ours = h.worker.surface(0).unwrap();
    let theirs = c.canvas.surfaces.get(0).unwrap();
    let total: u64 = ours
        .pixels()
        .iter()
        .zip(theirs.pixels())
        .map(|(a, b)| {
            (0..3)
                .map(|s| u64::from(((a >> (8 * s)) & 0xff).abs_diff((b >> (8 * s)) & 0xff)))
                .sum::<u64>()
        })
        .sum();
    let mean = total as f64 / (3.0 * ours.pixels().len() as f64);
    assert!(mean > 0.0 && mean < 4.0, "JPEG mean error {mean}");
}

#[test]
fn preferred_compression_switches_codec() {
    let mut h = harness(lossless(ImageCompression::Off));
    let mut c = h.client();
    h.worker
        .client_message(
            c.id,
            &ClientMessage::PreferredCompression(WireCompression(6)),
            0,
        )
        .unwrap();
    assert_eq!(
        h.worker.client_compression(c.id),
        Some(ImageCompression::Lz)
    );
    let desk = desktop(72, 40, 1);
    h.copy(0, (4, 70), &GuestBitmap::xrgb32(12, 72, 40, &desk));
    h.poll(&mut c);
    assert_eq!(c.images.get("lz_rgb"), Some(&1), "{:?}", c.images);
    h.assert_same(&c);
}

#[test]
fn late_client_gets_the_framebuffer() {
    let mut h = harness(lossless(ImageCompression::AutoGlz));
    let mut first = h.client();
    scene(&mut h, &mut first);
    let mut late = h.client();
    h.poll(&mut late);
    h.assert_same(&late);
    // Both see later drawing.
    h.fill(Rect::new(20, 20, 60, 60), 0x00123456);
    h.poll(&mut first);
    h.poll(&mut late);
    h.assert_same(&first);
    h.assert_same(&late);
}

#[test]
fn nothing_before_display_init() {
    let mut h = harness(lossless(ImageCompression::Lz));
    let id = h.worker.add_client(ClientOptions {
        session_id: 1,
        caps: DisplayClientCaps::default(),
        glz: h.glz.clone(),
        waker: None,
        bit_rate: None,
    });
    h.fill(Rect::new(0, 0, 10, 10), 1);
    let mut sink = VecSink::new();
    assert_eq!(h.worker.client_poll(id, &mut sink, 0).unwrap(), 0);
    assert!(sink.msgs.is_empty());
    // The drawable waits for nobody: no client has initialised, its queue holds a refresh.
    assert_eq!(h.worker.pending_drawables(), 0);
}

#[test]
fn pixmap_cache_eviction_is_server_driven() {
    let mut h = harness(lossless(ImageCompression::Lz));
    // Room for two 16x16 icons.
    let mut c = h.client_with(1, 600, new_glz_window(1 << 20));
    h.poll(&mut c);
    let icons: Vec<Vec<u8>> = (0..3).map(|i| desktop(16, 16, i)).collect();
    for round in 0..2 {
        for (i, px) in icons.iter().enumerate() {
            let mut b = GuestBitmap::xrgb32(0x100 + i as u64, 16, 16, px);
            b.image_flags = abi::image_flags::CACHE;
            h.copy(0, (20 * i as i32, 20 * round), &b);
            h.poll(&mut c);
        }
    }
    // LRU with room for 2 of 3 cycling icons: every add evicts the oldest, no hit ever.
    assert_eq!(c.count("inval_list"), 4, "{:?}", c.seen);
    assert_eq!(c.images.get("from_cache"), None);
    let (entries, used) = h.worker.client_pixmap_cache(c.id).unwrap();
    assert_eq!((entries, used), (2, 512));
    assert_eq!(
        c.canvas.images.cache_len(),
        2,
        "client cache mirrors the server's"
    );
    // Now reuse the most recent one: a hit.
    let mut b = GuestBitmap::xrgb32(0x102, 16, 16, &icons[2]);
    b.image_flags = abi::image_flags::CACHE;
    h.copy(0, (100, 100), &b);
    h.poll(&mut c);
    assert_eq!(c.images.get("from_cache"), Some(&1));
    h.assert_same(&c);
}

#[test]
fn glz_dictionary_shared_by_a_clients_channels() {
    let reg = GlzRegistry::new();
    let (a, _) = reg.encoder(7, 1, 1 << 20).unwrap();
    let (b, _) = reg.encoder(7, 1, 1 << 20).unwrap();
    let (other, _) = reg.encoder(8, 1, 1 << 20).unwrap();
    assert!(Arc::ptr_eq(a.dictionary(), b.dictionary()));
    assert!(!Arc::ptr_eq(a.dictionary(), other.dictionary()));
    assert_eq!(reg.live(), 2);
    drop((a, b));
    assert_eq!(reg.live(), 1);

    // Two display channels of one session encode into one dictionary; the client decodes
    // both into one window, and both end with the framebuffer.
    let mut h = harness(lossless(ImageCompression::Glz));
    let window = new_glz_window(1 << 22);
    let mut c1 = h.client_with(5, 1 << 20, window.clone());
    let mut c2 = h.client_with(5, 1 << 20, window.clone());
    h.poll(&mut c1);
    h.poll(&mut c2);
    let desk = desktop(72, 40, 1);
    h.copy(0, (4, 70), &GuestBitmap::xrgb32(12, 72, 40, &desk));
    h.copy(0, (60, 10), &GuestBitmap::xrgb32(13, 72, 40, &desk));
    h.poll(&mut c1);
    h.poll(&mut c2);
    h.assert_same(&c1);
    h.assert_same(&c2);
    assert!(c1.images["glz_rgb"] >= 2 && c2.images["glz_rgb"] >= 2);
    // The window holds images of both channels: ids are unique across them.
    let ids = window.lock().unwrap().image_ids().count();
    assert!(ids >= 6, "{ids} images in the shared window");
}

#[test]
fn hidden_drawables_are_dropped_and_released() {
    let mut h = harness(lossless(ImageCompression::Lz));
    let mut c = h.client();
    h.poll(&mut c);
    let before = h.guest.released();
    let desk = desktop(40, 40, 2);
    h.copy(0, (10, 10), &GuestBitmap::xrgb32(1, 40, 40, &desk));
    h.fill(Rect::new(20, 20, 30, 30), 0x00ff0000);
    // Covers both: they are dropped before the client ever sees them.
    h.fill(Rect::new(0, 0, 100, 100), 0x0000ff00);
    assert_eq!(h.worker.stats().hidden_dropped, 2);
    assert_eq!(
        h.guest.released() - before,
        2,
        "released through the release ring"
    );
    let n = h.poll(&mut c);
    assert_eq!(n, 1);
    h.assert_same(&c);
    assert_eq!(h.guest.released() - before, 3);
    // A clipped cover only hides what its clip rects cover.
    h.fill(Rect::new(0, 0, 10, 10), 1);
    h.fill(Rect::new(50, 50, 60, 60), 2);
    h.fill_clipped(Rect::new(0, 0, 100, 100), 3, &[Rect::new(0, 0, 40, 40)]);
    assert_eq!(h.worker.stats().hidden_dropped, 3);
    h.poll(&mut c);
    h.assert_same(&c);
}

#[test]
fn slow_client_memory_is_bounded() {
    let mut cfg = lossless(ImageCompression::Lz);
    cfg.max_pipe_bytes = 32 << 10;
    let mut h = harness(cfg);
    let mut slow = h.client();
    let mut fast = h.client();
    h.poll(&mut slow);
    h.poll(&mut fast);
    let mut max_seen = 0;
    for i in 0..300u32 {
        // Non-overlapping, so nothing is hidden: only the bound can help.
        let px = desktop(8, 8, i);
        let at = ((i % 20) as i32 * 8, (i / 20) as i32 * 8);
        h.copy(0, at, &GuestBitmap::xrgb32(1000 + u64::from(i), 8, 8, &px));
        h.poll(&mut fast);
        let (_, bytes) = h.worker.client_queue(slow.id).unwrap();
        max_seen = max_seen.max(bytes);
    }
    assert!(
        max_seen <= (32 << 10) + 8 * 8 * 4 + 256,
        "queue reached {max_seen}"
    );
    assert!(h.worker.stats().collapses >= 1);
    // The slow client's queue holds no guest resource: the guest got everything back.
    assert_eq!(h.worker.pending_drawables(), 0);
    assert_eq!(h.guest.outstanding(), 0);
    // When it reads again it catches up from the framebuffer.
    h.poll(&mut slow);
    h.assert_same(&slow);
    h.assert_same(&fast);
    assert!(
        slow.count("draw_copy") < 20,
        "collapsed, not replayed: {:?}",
        slow.seen
    );
}

#[test]
fn ack_window_stops_and_resumes() {
    let mut h = harness(lossless(ImageCompression::Lz));
    let mut c = h.client();
    h.poll(&mut c);
    for i in 0..10 {
        h.fill(Rect::new(i * 10, 0, i * 10 + 5, 5), 0x10 * i as u32);
    }
    let mut sink = VecSink::new();
    sink.budget = 4;
    assert_eq!(h.worker.client_poll(c.id, &mut sink, 0).unwrap(), 4);
    c.apply(&sink.msgs);
    assert_eq!(h.worker.client_queue(c.id).unwrap().0, 6);
    h.poll(&mut c);
    h.assert_same(&c);
}

#[test]
fn video_region_becomes_an_mjpeg_stream() {
    let mut cfg = lossless(ImageCompression::AutoGlz);
    cfg.streaming = StreamingVideo::All;
    let mut h = harness(cfg);
    let mut c = h.client();
    h.poll(&mut c);
    for i in 0..40u32 {
        let px = gradient(64, 64, i * 3);
        h.copy(
            0,
            (40, 30),
            &GuestBitmap::xrgb32(2000 + u64::from(i), 64, 64, &px),
        );
        h.poll(&mut c);
    }
    assert_eq!(h.worker.stats().streams_created, 1);
    assert_eq!(c.count("stream_create"), 1);
    assert_eq!(c.count("stream_activate_report"), 1);
    assert!(c.count("stream_data") >= 1, "{:?}", c.seen);
    let stats = h.worker.client_stats(c.id).unwrap();
    assert!(stats.stream_frames >= 1);
    // The region goes quiet: after the timeout the stream ends and the client gets the
    // area again, losslessly.
    h.now += 2000;
    h.step();
    h.poll(&mut c);
    assert_eq!(c.count("stream_destroy"), 1);
    assert_eq!(h.worker.stream_count(), 0);
    h.assert_same(&c);
    assert_eq!(h.worker.pending_drawables(), 0);
}

#[test]
fn update_area_writes_back_to_guest_memory() {
    let mut h = harness(lossless(ImageCompression::Off));
    h.fill(Rect::new(0, 0, 8, 8), 0x00abcdef);
    h.guest
        .update(
            h.worker.device_mut().memory_mut(),
            0,
            Rect::new(0, 0, 8, 8),
            7,
        )
        .unwrap();
    h.step();
    assert_eq!(
        h.worker
            .surface(0)
            .unwrap()
            .pixel(3, 3)
            .map(|p| p & 0xffffff),
        Some(0xabcdef)
    );
    assert_eq!(h.worker.stats().bad_commands, 0);
}

#[test]
fn dump_frame_is_a_ppm_of_the_primary() {
    let mut h = harness(lossless(ImageCompression::Off));
    h.fill(Rect::new(0, 0, 1, 1), 0x00102030);
    let ppm = h.worker.primary_ppm().unwrap();
    let header = format!("P6\n{W} {H}\n255\n");
    assert!(ppm.starts_with(header.as_bytes()));
    assert_eq!(ppm.len(), header.len() + (W * H * 3) as usize);
    assert_eq!(&ppm[header.len()..header.len() + 3], &[0x10, 0x20, 0x30]);
}

/// Every draw type (with clips, pattern brushes, glyphs, paths, a self-bitmap rop3 and a
/// copy-bits) renders on the client exactly as on the server.
#[test]
fn every_draw_type_renders_identically() {
    use spice_qxl::abi::draw_type;
    use spice_qxl::guest::GuestGlyph;
    for compression in [ImageCompression::Off, ImageCompression::AutoGlz] {
        let mut h = harness(lossless(compression));
        let mut c = h.client();
        h.poll(&mut c);
        let photo = gradient(64, 48, 1);
        h.copy(0, (0, 0), &GuestBitmap::xrgb32(1, 64, 48, &photo));
        let px = desktop(8, 8, 3);
        let glyph = [0b1010_0000u8, 0b0101_0000, 0b1111_0000, 0b1001_0000];
        for ty in 1..=14u8 {
            let (ox, oy) = ((ty as i32 % 5) * 30 + 4, (ty as i32 / 5) * 34 + 4);
            let mem = h.worker.device_mut().memory_mut();
            let mut b = h.guest.builder();
            let img = b
                .bitmap_image(mem, &GuestBitmap::xrgb32(100 + u64::from(ty), 8, 8, &px))
                .unwrap();
            let pat = b
                .bitmap_image(mem, &GuestBitmap::xrgb32(200, 4, 4, &px[..64]))
                .unwrap();
            let clip = b
                .clip(
                    mem,
                    Some(&[
                        Rect::new(ox, oy, ox + 12, oy + 12),
                        Rect::new(ox + 14, oy + 2, ox + 24, oy + 24),
                    ]),
                )
                .unwrap();
            let mut pattern = abi::QxlBrush::new_zeroed();
            pattern.ty = abi::brush_type::PATTERN.into();
            pattern.u[..8].copy_from_slice(&pat.to_le_bytes());
            pattern.u[8..12].copy_from_slice(&3i32.to_le_bytes());
            let mut solid = abi::QxlBrush::new_zeroed();
            solid.ty = abi::brush_type::SOLID.into();
            solid.u[..4].copy_from_slice(&0x00abcdefu32.to_le_bytes());
            let area = abi::QxlRect::new(0, 0, 8, 8);
            let put: u16 = 1 << 3;
            let u: Vec<u8> = match ty {
                draw_type::FILL => {
                    let mut f = abi::QxlFill::new_zeroed();
                    f.brush = pattern;
                    f.rop_descriptor = put.into();
                    f.as_bytes().to_vec()
                }
                draw_type::OPAQUE => {
                    let mut o = abi::QxlOpaque::new_zeroed();
                    o.src_bitmap = img.into();
                    o.src_area = area;
                    o.brush = pattern;
                    o.rop_descriptor = put.into();
                    o.as_bytes().to_vec()
                }
                draw_type::COPY | draw_type::BLEND => {
                    let mut c = abi::QxlCopy::new_zeroed();
                    c.src_bitmap = img.into();
                    c.src_area = area;
                    c.rop_descriptor = if ty == draw_type::BLEND { 1 << 6 } else { put }.into();
                    c.as_bytes().to_vec()
                }
                draw_type::COPY_BITS => abi::QxlCopyBits {
                    src_pos: abi::QxlPoint {
                        x: 3.into(),
                        y: 5.into(),
                    },
                }
                .as_bytes()
                .to_vec(),
                draw_type::BLACKNESS | draw_type::WHITENESS | draw_type::INVERS => {
                    abi::QxlBlackness::new_zeroed().as_bytes().to_vec()
                }
                draw_type::ROP3 => {
                    let mut o = abi::QxlRop3::new_zeroed();
                    o.src_bitmap = img.into();
                    o.src_area = area;
                    o.brush = solid;
                    o.rop3 = 0xca;
                    o.as_bytes().to_vec()
                }
                draw_type::STROKE => {
                    let pts: &[(i32, i32)] = &[
                        ((ox + 1) << 4, (oy + 1) << 4),
                        ((ox + 20) << 4, (oy + 22) << 4),
                    ];
                    let path = b.path(mem, &[(1 | 2, pts)], 64).unwrap();
                    let mut s = abi::QxlStroke::new_zeroed();
                    s.path = path.into();
                    s.brush = solid;
                    s.fore_mode = put.into();
                    s.back_mode = put.into();
                    s.as_bytes().to_vec()
                }
                draw_type::TEXT => {
                    let glyphs = [
                        GuestGlyph {
                            render_pos: (ox + 2, oy + 6),
                            glyph_origin: (0, -2),
                            width: 4,
                            height: 4,
                            data: &glyph,
                        },
                        GuestGlyph {
                            render_pos: (ox + 8, oy + 6),
                            glyph_origin: (0, -2),
                            width: 4,
                            height: 4,
                            data: &glyph,
                        },
                    ];
                    let flags = abi::string_flags::RASTER_A1 | abi::string_flags::RASTER_TOP_DOWN;
                    let st = b.string(mem, flags, &glyphs, 64).unwrap();
                    let mut t = abi::QxlText::new_zeroed();
                    t.str = st.into();
                    t.back_area = abi::QxlRect::new(oy, ox, oy + 10, ox + 20);
                    t.fore_brush = solid;
                    t.back_brush = pattern;
                    t.fore_mode = put.into();
                    t.back_mode = put.into();
                    t.as_bytes().to_vec()
                }
                draw_type::TRANSPARENT => {
                    let mut t = abi::QxlTransparent::new_zeroed();
                    t.src_bitmap = img.into();
                    t.src_area = area;
                    t.src_color = 0x00f0e828.into();
                    t.true_color = 0x00f0e828.into();
                    t.as_bytes().to_vec()
                }
                draw_type::ALPHA_BLEND => {
                    let mut a = abi::QxlAlphaBlend::new_zeroed();
                    a.alpha = 0x80;
                    a.src_bitmap = img.into();
                    a.src_area = area;
                    a.as_bytes().to_vec()
                }
                draw_type::COMPOSITE => {
                    let mut c = abi::QxlComposite::new_zeroed();
                    c.flags = 3.into();
                    c.src = img.into();
                    c.src_origin = abi::QxlPoint16 {
                        x: 1.into(),
                        y: 2.into(),
                    };
                    c.as_bytes().to_vec()
                }
                _ => unreachable!(),
            };
            let bbox = Rect::new(ox, oy, ox + 24, oy + 24);
            let mut d = drawable(0, ty, bbox, clip, &u);
            if ty == draw_type::ROP3 {
                // The rop3 also asks for its own area as source (self bitmap).
                let mut o = abi::QxlRop3::new_zeroed();
                o.rop3 = 0x55;
                o.src_area = abi::QxlRect::new(0, 0, 8, 8);
                d = drawable(0, ty, Rect::new(ox, oy, ox + 8, oy + 8), clip, o.as_bytes());
                d.self_bitmap = 1;
                d.self_bitmap_area = abi::QxlRect::new(oy, ox, oy + 8, ox + 8);
            }
            b.submit_draw(mem, &d).unwrap();
            h.step();
            if ty % 4 == 0 {
                h.poll(&mut c);
            }
        }
        h.poll(&mut c);
        assert_eq!(h.worker.stats().bad_commands, 0, "{:?}", h.worker.stats());
        assert_eq!(h.worker.stats().rendered, 15);
        h.assert_same(&c);
        for name in [
            "draw_fill",
            "draw_text",
            "draw_stroke",
            "draw_rop3",
            "copy_bits",
            "draw_composite",
        ] {
            assert_eq!(c.count(name), 1, "{name}: {:?}", c.seen);
        }
    }
}
