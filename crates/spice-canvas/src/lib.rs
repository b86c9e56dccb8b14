//! The software canvas shared by the SPICE server and client core: surfaces, every draw
//! operation of the display channel, image decoding through spice-codecs, and the image,
//! palette and GLZ caches.
//!
//! # Entry points
//!
//! - [`Surfaces`] / [`Surface`]: SURFACE_CREATE / SURFACE_DESTROY under a cap on the
//!   pixels of all surfaces; pixels as `u32` `0xAARRGGBB` (see [`Surface`] for each
//!   format), read back with [`Surface::pixels`], [`Surface::row`], [`Surface::pixel`],
//!   [`Surface::to_rgb24`] (PPM order) and [`Surface::to_bgrx`].
//! - [`ImageContext`]: decodes any [`spice_proto::types::Image`] to a [`Pixmap`]
//!   ([`ImageContext::decode`]) and keeps the pixmap cache (`CACHE_ME`, FROM_CACHE,
//!   FROM_CACHE_LOSSLESS, `CACHE_REPLACE_ME`, lossy tracking, INVAL_LIST /
//!   INVAL_ALL_PIXMAPS), the palette cache and the session's [`SharedGlzWindow`] (create
//!   one with [`new_glz_window`] per session and give it to every display channel's
//!   context). A GLZ image whose reference has not arrived gives
//!   [`CanvasError::GlzMissingImage`]: keep the message and retry it later.
//! - [`draw`]: renders one [`DrawOp`] (every DRAW_* message and COPY_BITS, built with
//!   [`DrawOp::from_message`]) and returns the rectangle that may have changed (for a
//!   "region changed" event); [`decode_mjpeg_frame`] and [`draw_stream_frame`] put a
//!   video stream frame on a surface.
//! - [`Canvas`]: surfaces and image context together; [`Canvas::apply`] takes a display
//!   [`ServerMessage`] and handles surfaces, draws and cache invalidations.
//! - [`fuzz_draw`]: the `canvas_draw` fuzz target.
//!
//! Every coordinate from the network may be anything: draws are clipped to the box, the
//! clip rectangles and the surface; images are checked against [`ImageLimits`] before any
//! allocation; errors are [`CanvasError`] values, never panics.
//!
//! # Fidelity
//!
//! Exact (pixel for pixel with spice-common's software canvas): every image decoder, the
//! pixmap/palette caches, DRAW_COPY / DRAW_BLEND / DRAW_OPAQUE / DRAW_FILL / DRAW_ROP3 /
//! DRAW_TRANSPARENT / BLACKNESS / WHITENESS / INVERS and COPY_BITS without scaling, with
//! clip rectangles, QMask masks (1-bpp, INVERS, pos), solid and pattern brushes and
//! every ROP descriptor and rop3 code; ALPHA_BLEND without scaling; A1 text.
//!
//! Approximations, documented where implemented:
//! - scaling: as the reference (pixman, repeat NONE), NEAREST samples the image at the
//!   destination pixel centre and INTERPOLATE is bilinear with 7-bit weights reading
//!   transparent black outside the image; the source offset is not rounded through
//!   the scale factor as the reference does, so a sample may shift by a fraction of a
//!   pixel; stream frames repeat their edge pixels instead;
//! - A4/A8 text coverage rounding (OVER with coverage `v * 17` / `v`) may differ by one
//!   level from pixman's; pattern fore brushes tile from surface coordinates;
//! - DRAW_STROKE: a DDA instead of the X server's `mi` zero-width line code (a pixel may
//!   differ on some slopes), approximate dash phase for START_WITH_GAP and clipped
//!   lines, Béziers flattened to at most 256 lines;
//! - DRAW_COMPOSITE: exact Porter-Duff operators and separable blend modes in float;
//!   DISJOINT_* / CONJOINT_* computed as their plain counterparts, COLOR_DODGE,
//!   COLOR_BURN, SOFT_LIGHT and the HSL modes as OVER; blend modes ignore
//!   COMPONENT_ALPHA (the Porter-Duff operators honour it); filters other than 0 are
//!   bilinear; float arithmetic may differ from pixman's integer rounding by one;
//! - surfaces of 16-bit, A8 and A1 formats are drawn in 32 bits and reduced to the
//!   format's precision after each draw (pixman works in the format directly; results
//!   agree except where intermediate rounding differs).

mod composite;
mod draw;
mod error;
mod image;
mod region;
mod rop;
mod stroke;
mod surface;
mod text;

pub use draw::{DrawOp, decode_mjpeg_frame, draw, draw_stream_frame};
pub use error::CanvasError;
pub use image::{
    DECODABLE_IMAGE_TYPES, Decoded, ImageContext, ImageLimits, MAX_CACHED_PALETTES,
    SharedGlzWindow, new_glz_window,
};
pub use region::MAX_CLIP_RECTS;
pub use rop::{Rop, RopKind, rop3};
pub use surface::{MAX_DIMENSION, Pixmap, Surface, Surfaces};

use spice_proto::display::ServerMessage;
use spice_proto::types::{Rect, SurfaceFlags, SurfaceFormat};

/// What [`Canvas::apply`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// A draw on `surface_id`; `rect` bounds the pixels that may have changed (`None`:
    /// nothing visible changed).
    Drawn {
        /// Target surface.
        surface_id: u32,
        /// Changed area.
        rect: Option<Rect>,
    },
    /// SURFACE_CREATE.
    SurfaceCreated {
        /// Surface id.
        surface_id: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Format.
        format: SurfaceFormat,
        /// True for the primary surface.
        primary: bool,
    },
    /// SURFACE_DESTROY.
    SurfaceDestroyed(u32),
    /// An image or palette cache invalidation.
    CacheInvalidated,
    /// A message the canvas has nothing to do with (streams, monitors, marks, GL, ...).
    NotForCanvas,
}

/// Surfaces and image state of one display channel.
#[derive(Debug)]
pub struct Canvas {
    /// The surfaces.
    pub surfaces: Surfaces,
    /// Caches and GLZ window.
    pub images: ImageContext,
}

impl Canvas {
    /// A canvas with no surfaces. `max_surface_pixels` caps the pixels of all surfaces.
    pub fn new(max_surface_pixels: u64, limits: ImageLimits, glz: SharedGlzWindow) -> Self {
        Self {
            surfaces: Surfaces::new(max_surface_pixels),
            images: ImageContext::new(limits, glz),
        }
    }

    /// Applies a display-channel message: surface creation and destruction, every draw,
    /// COPY_BITS and the cache invalidations (INVAL_LIST, INVAL_ALL_PIXMAPS,
    /// INVAL_PALETTE, INVAL_ALL_PALETTES). Other messages give [`Applied::NotForCanvas`].
    ///
    /// INVAL_ALL_PIXMAPS's wait list is the caller's business (it must wait for the other
    /// channels' serials first).
    pub fn apply(&mut self, msg: &ServerMessage<'_>) -> Result<Applied, CanvasError> {
        if let Some(op) = DrawOp::from_message(msg) {
            let rect = draw(&mut self.surfaces, &mut self.images, &op)?;
            return Ok(Applied::Drawn {
                surface_id: op.base().surface_id,
                rect,
            });
        }
        Ok(match msg {
            ServerMessage::SurfaceCreate(c) => {
                self.surfaces
                    .create(c.surface_id, c.width, c.height, c.format)?;
                Applied::SurfaceCreated {
                    surface_id: c.surface_id,
                    width: c.width,
                    height: c.height,
                    format: c.format,
                    primary: c.flags.contains(SurfaceFlags::PRIMARY),
                }
            }
            ServerMessage::SurfaceDestroy(id) => {
                self.surfaces.destroy(*id)?;
                Applied::SurfaceDestroyed(*id)
            }
            ServerMessage::InvalList(list) => {
                self.images.invalidate_list(list);
                Applied::CacheInvalidated
            }
            ServerMessage::InvalAllPixmaps(_) => {
                self.images.invalidate_all_pixmaps();
                Applied::CacheInvalidated
            }
            ServerMessage::InvalPalette(id) => {
                self.images.invalidate_palette(*id);
                Applied::CacheInvalidated
            }
            ServerMessage::InvalAllPalettes => {
                self.images.invalidate_all_palettes();
                Applied::CacheInvalidated
            }
            _ => Applied::NotForCanvas,
        })
    }
}

/// Fuzzing entry point (`canvas_draw`): `data` is a display server message (2 bytes
/// little-endian type, then the body). It is decoded with spice-proto and applied to a
/// canvas holding a 64x48 xRGB primary surface and a 16x16 ARGB surface 1, with small
/// caps (4096-pixel images). Never panics; errors are ignored.
pub fn fuzz_draw(data: &[u8]) {
    use spice_proto::ChannelMessage as _;
    if data.len() < 2 {
        return;
    }
    let ty = u16::from_le_bytes([data[0], data[1]]);
    let Ok(msg) = ServerMessage::decode_body(spice_proto::ChannelType::DISPLAY, ty, &data[2..])
    else {
        return;
    };
    let mut canvas = fuzz_canvas();
    let _ = canvas.apply(&msg);
    // Apply twice: the second run sees whatever the first cached.
    let _ = canvas.apply(&msg);
}

fn fuzz_canvas() -> Canvas {
    let mut c = Canvas::new(
        1 << 16,
        ImageLimits {
            max_image_pixels: 4096,
            cache_pixels: 1 << 14,
        },
        new_glz_window(1 << 16),
    );
    // Sizes are within the caps just given.
    let _ = c.surfaces.create(0, 64, 48, SurfaceFormat::FMT_32_XRGB);
    let _ = c.surfaces.create(1, 16, 16, SurfaceFormat::FMT_32_ARGB);
    c
}
