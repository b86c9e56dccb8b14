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
