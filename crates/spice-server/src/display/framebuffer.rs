//! The server's own rendering of the surfaces, kept lazily.
//!
//! The worker needs its framebuffer only when something reads it: a client joining or
//! collapsing its queue (full refresh), a stream ending (its area is sent again), a
//! drawable whose source is its own destination, the guest asking for an update area, or an
//! embedder looking at a surface. Like the reference server (which renders only when the
//! guest reads back or resources run short), drawables are therefore queued here and
//! rendered when a reader comes; a queued drawable wholly covered by a later opaque one
//! on the same surface is dropped unrendered. Full-screen updates then cost no rendering
//! at all.
//!
//! Drawables that read a surface (surface sources, self bitmaps, COPY_BITS) are rendered
//! at once, after everything queued before them, so the canvas they read is up to date and
//! the queue only ever holds drawables whose result depends on nothing but the pixels
//! beneath them on their own surface. Dropping one of those when a later opaque drawable
//! covers its whole bounding box leaves the final pixels unchanged: it paints only inside
//! that box, and whatever a drawable in between read from that area is painted over too.
//!
//! Memory: the queue holds references to drawables the clients may have sent already; it is
//! rendered once it holds more than [`MAX_QUEUED`] drawables or [`MAX_QUEUED_BYTES`].

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::sync::Arc;

use spice_canvas::{Canvas, ImageLimits, Surface, new_glz_window};
use spice_qxl::parse::Rect;

use super::tree;
use super::worker::DrawEntry;

/// Drawables queued unrendered at most.
pub const MAX_QUEUED: usize = 256;
/// Estimated bytes of queued drawables at most.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

struct Queued {
    surface_id: u32,
    bbox: Rect,
    entry: Arc<DrawEntry>,
}

/// The lazily rendered framebuffer (see the module docs).
pub(crate) struct Framebuffer {
    canvas: RefCell<Canvas>,
    queue: RefCell<VecDeque<Queued>>,
    queued_bytes: Cell<usize>,
    rendered: Cell<u64>,
    failed: Cell<u64>,
    skipped: Cell<u64>,
}

impl std::fmt::Debug for Framebuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framebuffer")
            .field("queued", &self.queue.borrow().len())
            .field("rendered", &self.rendered.get())
            .finish_non_exhaustive()
    }
}

impl Framebuffer {
    /// An empty framebuffer of at most `max_surface_pixels` pixels.
    pub(crate) fn new(max_surface_pixels: u64) -> Self {
        Framebuffer {
            canvas: RefCell::new(Canvas::new(
                max_surface_pixels,
                ImageLimits::default(),
                new_glz_window(1),
            )),
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            rendered: Cell::new(0),
            failed: Cell::new(0),
            skipped: Cell::new(0),
        }
    }

    /// Drawables rendered so far.
    pub(crate) fn rendered(&self) -> u64 {
        self.rendered.get()
    }

    /// Drawables that failed to render.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.get()
    }

    /// Queued drawables dropped unrendered (covered by later ones).
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.get()
    }

    fn render(&self, canvas: &mut Canvas, entry: &DrawEntry) {
        match entry.conv.raw_message() {
            Ok(msg) => match canvas.apply(&msg) {
                Ok(_) => self.rendered.set(self.rendered.get() + 1),
                Err(e) => {
                    tracing::warn!(error = %e, "drawable did not render");
                    self.failed.set(self.failed.get() + 1);
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "drawable without raw form");
                self.failed.set(self.failed.get() + 1);
            }
        }
    }

    /// Renders everything queued. Callable through `&self`: while a [`Framebuffer::surface`]
    /// borrow is alive the queue is empty (queuing needs `&mut self`), so this never
    /// conflicts with it.
    pub(crate) fn flush(&self) {
        if self.queue.borrow().is_empty() {
            return;
        }
        let mut canvas = self.canvas.borrow_mut();
        let mut queue = self.queue.borrow_mut();
        while let Some(q) = queue.pop_front() {
            self.render(&mut canvas, &q.entry);
        }
        self.queued_bytes.set(0);
    }

    /// Queues `entry` (a drawable on `surface_id` within `bbox` that reads no surface),
    /// first dropping queued drawables of that surface that `cover` (its opaque area)
    /// wholly hides.
    pub(crate) fn defer(
        &mut self,
        surface_id: u32,
        bbox: Rect,
        cover: Option<&[Rect]>,
        entry: Arc<DrawEntry>,
    ) {
        let q = self.queue.get_mut();
        if let Some(cover) = cover {
            let mut freed = 0;
            let mut dropped = 0;
            q.retain(|e| {
                if e.surface_id == surface_id && tree::region_covers(cover, &e.bbox) {
                    freed += e.entry.cost;
                    dropped += 1;
                    false
                } else {
                    true
                }
            });
            self.queued_bytes.set(self.queued_bytes.get() - freed);
            self.skipped.set(self.skipped.get() + dropped);
        }
        self.queued_bytes.set(self.queued_bytes.get() + entry.cost);
        q.push_back(Queued {
            surface_id,
            bbox,
            entry,
        });
        if q.len() > MAX_QUEUED || self.queued_bytes.get() > MAX_QUEUED_BYTES {
            self.flush();
        }
    }

    /// Renders `entry` now, after everything queued (it reads a surface).
    pub(crate) fn render_now(&mut self, entry: &DrawEntry) {
        self.flush();
        let mut canvas = self.canvas.borrow_mut();
        self.render(&mut canvas, entry);
    }

    /// The canvas, up to date.
    pub(crate) fn canvas(&self) -> Ref<'_, Canvas> {
        self.flush();
        self.canvas.borrow()
    }

    /// The canvas, up to date, to change it (surface create / destroy).
    pub(crate) fn canvas_mut(&mut self) -> RefMut<'_, Canvas> {
        self.flush();
        self.canvas.borrow_mut()
    }

    /// Surface `id`, up to date.
    pub(crate) fn surface(&self, id: u32) -> Option<Ref<'_, Surface>> {
        Ref::filter_map(self.canvas(), |c| c.surfaces.get(id).ok()).ok()
    }
}

#[cfg(test)]
mod tests {
    use spice_qxl::{GuestDriver, QxlDevice, VecMemory};

    use super::super::worker::{DisplayConfig, DisplayWorker};
    use super::*;

    const W: u32 = 64;
    const H: u32 = 48;

    fn setup() -> (DisplayWorker<QxlDevice<VecMemory>>, GuestDriver) {
        let (mut w, mut guest) = crate::testing::display_worker(4 << 20, DisplayConfig::default());
        crate::testing::create_primary(&mut w, &mut guest, W, H);
        (w, guest)
    }

    fn image(seed: u8) -> Vec<u8> {
        (0..W * H)
            .flat_map(|i| [i as u8, seed, (i >> 8) as u8, 0])
            .collect()
    }

    #[test]
    fn covered_drawables_are_never_rendered_and_reads_see_the_rest() {
        let (mut w, mut g) = setup();
        let (a, b) = (image(1), image(2));
        let full = Rect::new(0, 0, W as i32, H as i32);
        let mem = w.device_mut().memory_mut();
        g.copy_bitmap(mem, 0, full, W, H, &a, 4096).unwrap();
        g.copy_bitmap(mem, 0, full, W, H, &b, 4096).unwrap();
        g.fill(mem, 0, Rect::new(4, 5, 10, 9), 0x00ab_cdef, None)
            .unwrap();
        w.process(1);
        // Nothing read the framebuffer: nothing rendered; the first copy is covered.
        assert_eq!(w.fb.rendered(), 0);
        assert_eq!(w.fb.skipped(), 1);
        let want: Vec<u32> = b
            .chunks(4)
            .enumerate()
            .map(|(i, p)| {
                let (x, y) = (i as u32 % W, i as u32 / W);
                if (4..10).contains(&x) && (5..9).contains(&y) {
                    0x00ab_cdef
                } else {
                    u32::from_le_bytes([p[0], p[1], p[2], 0])
                }
            })
            .collect();
        let got: Vec<u32> = w
            .surface(0)
            .unwrap()
            .pixels()
            .iter()
            .map(|p| p & 0x00ff_ffff)
            .collect();
        assert_eq!(got, want);
        assert_eq!(w.fb.rendered(), 2);
        let s = w.stats();
        assert_eq!((s.rendered, s.render_skipped, s.bad_commands), (2, 1, 0));
        assert_eq!(w.outstanding_resources(), 0, "every drawable released");
    }

    #[test]
    fn guest_update_area_renders_what_is_queued() {
        let (mut w, mut g) = setup();
        let mem = w.device_mut().memory_mut();
        g.fill(
            mem,
            0,
            Rect::new(0, 0, W as i32, H as i32),
            0x0012_3456,
            None,
        )
        .unwrap();
        w.process(1);
        assert_eq!(w.fb.rendered(), 0);
        let mem = w.device_mut().memory_mut();
        g.update(mem, 0, Rect::new(0, 0, 8, 8), 7).unwrap();
        w.process(2);
        assert_eq!(w.fb.rendered(), 1, "the update area read the framebuffer");
    }

    #[test]
    fn the_queue_is_bounded() {
        let (mut w, mut g) = setup();
        // Small fills that cover nothing before them pile up to the bound, then render.
        let mut pushed = 0;
        while pushed <= MAX_QUEUED {
            let mem = w.device_mut().memory_mut();
            let (x, y) = ((pushed % W as usize) as i32, (pushed / W as usize) as i32);
            match g.fill(mem, 0, Rect::new(x, y, x + 1, y + 1), 1, None) {
                Ok(_) => pushed += 1,
                Err(_) => {
                    w.process(1);
                    let mem = w.device_mut().memory_mut();
                    g.collect_releases(mem).unwrap();
                }
            }
        }
        w.process(1);
        assert!(
            w.fb.rendered() > 0,
            "rendered once the queue passed its bound"
        );
        assert!(w.fb.queue.borrow().len() <= MAX_QUEUED);
    }
}
