//! Image decoding and the client-side caches: pixmap cache, palette cache, GLZ window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use spice_codecs::glz::{GlzHeader, GlzWindow};
use spice_codecs::jpeg::JpegLimits;
use spice_codecs::lz::{self, LzHeader, LzImageType, LzOutputFormat};
use spice_codecs::lz4::{self, Lz4Format, Lz4Limits, Lz4Output};
use spice_codecs::{jpeg, quic, zlib_glz};
use spice_proto::types::{
    Bitmap, BitmapFlags, BitmapFormat, Image, ImageBody, ImageFlags, ImageType, LzPlt,
    PaletteSource, ResourceId, ResourceType,
};
use tracing::{debug, warn};

use crate::error::CanvasError;
use crate::surface::{MAX_DIMENSION, Pixmap, Surfaces};

/// The GLZ window of one session, shared by all its display channels.
pub type SharedGlzWindow = Arc<Mutex<GlzWindow>>;

/// Creates a [`SharedGlzWindow`] holding up to `max_pixels` pixels of images (the
/// `glz_dictionary_window_size` the client announced in DISPLAY_INIT, or more).
pub fn new_glz_window(max_pixels: usize) -> SharedGlzWindow {
    Arc::new(Mutex::new(GlzWindow::new(max_pixels)))
}

/// Most palettes kept in the palette cache; further PAL_CACHE_ME palettes are used but
/// not cached (with a warning).
pub const MAX_CACHED_PALETTES: usize = 4096;

/// Caps applied to images before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest `width * height` of one image.
    pub max_image_pixels: u64,
    /// Pixmap cache size in pixels (DISPLAY_INIT's `pixmap_cache_size`).
    pub cache_pixels: u64,
}

impl Default for ImageLimits {
    /// 16 Mi pixels per image and a 20 Mi-pixel pixmap cache; a client should set
    /// `cache_pixels` to the `pixmap_cache_size` it announces in DISPLAY_INIT.
    fn default() -> Self {
        Self {
            max_image_pixels: 1 << 24,
            cache_pixels: 20 << 20,
        }
    }
}

#[derive(Debug, Clone)]
struct CacheEntry {
    pixmap: Arc<Pixmap>,
    lossy: bool,
}

/// Decoded-image state of a display channel: the pixmap cache (`CACHE_ME` / `FROM_CACHE`),
/// the palette cache and the session's GLZ window.
///
/// spice-gtk shares the pixmap cache between the display channels of a session; a client
/// with several display channels can share one `ImageContext` behind a mutex.
#[derive(Debug)]
pub struct ImageContext {
    limits: ImageLimits,
    cache: HashMap<u64, CacheEntry>,
    cache_pixels: u64,
    palettes: HashMap<u64, Arc<[u32]>>,
    glz: SharedGlzWindow,
}

/// A decoded image and whether it came from a lossy stream (JPEG, JPEG_ALPHA, or a lossy
/// cache entry).
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels.
    pub pixmap: Arc<Pixmap>,
    /// True for JPEG / JPEG_ALPHA images.
    pub lossy: bool,
}

impl ImageContext {
    /// An empty context with `limits` that decodes GLZ into `glz`.
    pub fn new(limits: ImageLimits, glz: SharedGlzWindow) -> Self {
        Self {
            limits,
            cache: HashMap::new(),
            cache_pixels: 0,
            palettes: HashMap::new(),
            glz,
        }
    }

    /// The caps in use.
    pub fn limits(&self) -> ImageLimits {
        self.limits
    }

    /// Changes the pixmap cache size (a new DISPLAY_INIT); entries are kept.
    pub fn set_cache_pixels(&mut self, pixels: u64) {
        self.limits.cache_pixels = pixels;
    }

    /// The shared GLZ window.
    pub fn glz_window(&self) -> &SharedGlzWindow {
        &self.glz
    }

    /// The cached image `id`, if any.
    pub fn cached(&self, id: u64) -> Option<&Arc<Pixmap>> {
        self.cache.get(&id).map(|e| &e.pixmap)
    }

    /// True when image `id` is cached from a lossy stream.
    pub fn cached_is_lossy(&self, id: u64) -> Option<bool> {
        self.cache.get(&id).map(|e| e.lossy)
    }

    /// Pixels held by the pixmap cache.
    pub fn cache_pixels(&self) -> u64 {
        self.cache_pixels
    }

    /// Number of cached images.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Stores `pixmap` under `id` (replacing any entry). Refused (with a warning, returning
    /// false) when it would pass the cache size: the server mirrors the cache and evicts
    /// first, so only a misbehaving server gets here.
    pub fn cache_insert(&mut self, id: u64, pixmap: Arc<Pixmap>, lossy: bool) -> bool {
        self.cache_remove(id);
        let px = pixmap.pixel_count();
        if self.cache_pixels + px > self.limits.cache_pixels {
            warn!(
                id,
                px,
                used = self.cache_pixels,
                "image cache full, image not cached"
            );
            return false;
        }
        self.cache_pixels += px;
        self.cache.insert(id, CacheEntry { pixmap, lossy });
        true
    }

    /// Drops image `id` from the cache; true if it was there.
    pub fn cache_remove(&mut self, id: u64) -> bool {
        match self.cache.remove(&id) {
            Some(e) => {
                self.cache_pixels -= e.pixmap.pixel_count();
                true
            }
            None => false,
        }
    }

    /// INVAL_LIST: drops every PIXMAP resource of the list (other types are ignored).
    pub fn invalidate_list(&mut self, ids: &[ResourceId]) {
        for r in ids {
            if r.resource_type == ResourceType::PIXMAP {
                self.cache_remove(r.id);
            }
        }
    }

    /// INVAL_ALL_PIXMAPS: empties the pixmap cache.
    pub fn invalidate_all_pixmaps(&mut self) {
        self.cache.clear();
        self.cache_pixels = 0;
    }

    /// The cached palette `id`.
    pub fn palette(&self, id: u64) -> Option<&Arc<[u32]>> {
        self.palettes.get(&id)
    }

    /// Caches palette `id` (refused past [`MAX_CACHED_PALETTES`]).
    pub fn palette_insert(&mut self, id: u64, ents: &[u32]) {
        if self.palettes.len() >= MAX_CACHED_PALETTES && !self.palettes.contains_key(&id) {
            warn!(id, "palette cache full, palette not cached");
            return;
        }
        self.palettes.insert(id, ents.into());
    }

    /// INVAL_PALETTE.
    pub fn invalidate_palette(&mut self, id: u64) {
        self.palettes.remove(&id);
    }

    /// INVAL_ALL_PALETTES.
    pub fn invalidate_all_palettes(&mut self) {
        self.palettes.clear();
    }

    /// [`Self::check_size`] of the size a stream's header declares, which must also be the
    /// image descriptor's `w` x `h`.
    fn check_stream_size(
        &self,
        width: u32,
        height: u32,
        w: u32,
        h: u32,
    ) -> Result<(), CanvasError> {
        self.check_size(width, height)?;
        size_matches(width, height, w, h)
    }

    fn check_size(&self, width: u32, height: u32) -> Result<(), CanvasError> {
        let px = u64::from(width) * u64::from(height);
        if width == 0
            || height == 0
            || width > MAX_DIMENSION
            || height > MAX_DIMENSION
            || px > self.limits.max_image_pixels
        {
            return Err(CanvasError::ImageTooLarge {
                width,
                height,
                limit: self.limits.max_image_pixels,
            });
        }
        Ok(())
    }

    fn resolve_palette(
        &mut self,
        flags: BitmapFlags,
        src: &PaletteSource,
    ) -> Result<Arc<[u32]>, CanvasError> {
        match src {
            PaletteSource::FromCache(id) => self
                .palettes
                .get(id)
                .cloned()
                .ok_or(CanvasError::MissingPalette(Some(*id))),
            PaletteSource::Inline(p) => {
                if flags.contains(BitmapFlags::PAL_CACHE_ME) {
                    self.palette_insert(p.unique, &p.ents);
                }
                Ok(p.ents.as_slice().into())
            }
            PaletteSource::None => Err(CanvasError::MissingPalette(None)),
        }
    }

    /// Decodes any image of a draw message into 32-bit pixels, honouring the cache flags:
    /// `CACHE_ME` stores the result under the descriptor id (lossy for JPEG and
    /// JPEG_ALPHA), `CACHE_REPLACE_ME` replaces a lossy entry, FROM_CACHE fetches,
    /// FROM_CACHE_LOSSLESS fetches only a lossless entry, and `HIGH_BITS_SET` sets every
    /// alpha byte. SURFACE images copy the named surface of `surfaces`.
    ///
    /// A GLZ image whose reference has not been decoded yet gives
    /// [`CanvasError::GlzMissingImage`] and changes nothing: retry it later.
    pub fn decode(
        &mut self,
        image: &Image<'_>,
        surfaces: &Surfaces,
    ) -> Result<Decoded, CanvasError> {
        self.decode_inner(image, surfaces, false)
    }

    /// Like [`ImageContext::decode`] for a mask (QMask bitmap): 1-bit BITMAPs become
    /// `0xffffffff` for set bits and 0 for clear ones, whatever their palette (the
    /// reference canvas reads mask bits directly).
    pub fn decode_mask(
        &mut self,
        image: &Image<'_>,
        surfaces: &Surfaces,
    ) -> Result<Decoded, CanvasError> {
        self.decode_inner(image, surfaces, true)
    }

    fn decode_inner(
        &mut self,
        image: &Image<'_>,
        surfaces: &Surfaces,
        mask: bool,
    ) -> Result<Decoded, CanvasError> {
        let id = image.id;
        match &image.body {
            ImageBody::FromCache => {
                let e = self.cache.get(&id).ok_or(CanvasError::NotInCache(id))?;
                return Ok(Decoded {
                    pixmap: e.pixmap.clone(),
                    lossy: e.lossy,
                });
            }
            ImageBody::FromCacheLossless => {
                let e = self.cache.get(&id).ok_or(CanvasError::NotInCache(id))?;
                if e.lossy {
                    return Err(CanvasError::CachedLossy(id));
                }
                return Ok(Decoded {
                    pixmap: e.pixmap.clone(),
                    lossy: false,
                });
            }
            _ => {}
        }
        let (mut pixmap, lossy) = self.decode_body(image, surfaces, mask)?;
        if image.flags.contains(ImageFlags::HIGH_BITS_SET) {
            for p in pixmap.pixels_mut() {
                *p |= 0xff00_0000;
            }
        }
        let pixmap = Arc::new(pixmap);
        if image.flags.contains(ImageFlags::CACHE_ME) {
            self.cache_insert(id, pixmap.clone(), lossy);
        } else if image.flags.contains(ImageFlags::CACHE_REPLACE_ME)
            && self.cache.get(&id).is_some_and(|e| e.lossy)
            && !lossy
        {
            self.cache_insert(id, pixmap.clone(), false);
        }
        Ok(Decoded { pixmap, lossy })
    }

    fn decode_body(
        &mut self,
        image: &Image<'_>,
        surfaces: &Surfaces,
        mask: bool,
    ) -> Result<(Pixmap, bool), CanvasError> {
        let (w, h) = (image.width, image.height);
        let mismatch = |gw: u32, gh: u32| size_matches(gw, gh, w, h);
        match &image.body {
            ImageBody::Bitmap(b) => {
                self.check_size(b.x, b.y)?;
                mismatch(b.x, b.y)?;
                Ok((self.decode_bitmap(b, mask)?, false))
            }
            ImageBody::Quic(data) => {
                let hdr = quic::decode_header(data)?;
                self.check_size(hdr.width, hdr.height)?;
                mismatch(hdr.width, hdr.height)?;
                let limits = quic::DecodeLimits {
                    max_pixels: self.limits.max_image_pixels,
                    max_bytes: self.limits.max_image_pixels * 4,
                };
                let mut px = PixelBuf::new(hdr.width, hdr.height);
                quic::decode(
                    data,
                    px.bytes(),
                    hdr.width as usize * 4,
                    quic::PixelFormat::Rgba,
                    quic::RowOrder::TopDown,
                    &limits,
                )?;
                // Rgba output writes A = 255 for types without alpha.
                let alpha = hdr.image_type == quic::ImageType::Rgba;
                Ok((px.finish(alpha, true), false))
            }
            ImageBody::LzRgb(data) => {
                let hdr = LzHeader::parse(data)?;
                if hdr.image_type.is_palette() || hdr.image_type == LzImageType::Xxxa {
                    return Err(CanvasError::StreamKindMismatch { what: "LZ_RGB" });
                }
                Ok((self.decode_lz(data, &hdr, None, w, h)?, false))
            }
            ImageBody::LzPlt(LzPlt {
                flags,
                palette,
                data,
            }) => {
                let hdr = LzHeader::parse(data)?;
                if !hdr.image_type.is_palette() {
                    return Err(CanvasError::StreamKindMismatch { what: "LZ_PLT" });
                }
                let pal = self.resolve_palette(*flags, palette)?;
                Ok((self.decode_lz(data, &hdr, Some(&pal), w, h)?, false))
            }
            ImageBody::GlzRgb(data) => Ok((self.decode_glz(data, w, h)?, false)),
            ImageBody::ZlibGlzRgb(z) => {
                let cap = (self.limits.max_image_pixels as usize)
                    .saturating_mul(8)
                    .saturating_add(GlzHeader::SIZE + 1024);
                let glz = zlib_glz::unwrap(z.data, z.glz_data_size as usize, cap)?;
                Ok((self.decode_glz(&glz, w, h)?, false))
            }
            ImageBody::Jpeg(data) => {
                self.check_size(w, h)?;
                let limits = JpegLimits {
                    max_width: w,
                    max_height: h,
                };
                let mut px = PixelBuf::new(w, h);
                jpeg::decode_image(data, w, h, px.bytes(), w as usize * 4, &limits)?;
                Ok((px.finish(false, false), true))
            }
            ImageBody::JpegAlpha(ja) => {
                self.check_size(w, h)?;
                Ok((decode_jpeg_alpha(ja, w, h)?, true))
            }
            ImageBody::Lz4(data) => {
                self.check_size(w, h)?;
                let hdr = lz4::read_header(data)?;
                let limits = Lz4Limits {
                    max_width: w,
                    max_height: h,
                    max_bytes: self.limits.max_image_pixels as usize * 4,
                };
                let mut px = PixelBuf::new(w, h);
                lz4::decode(
                    data,
                    w,
                    h,
                    px.bytes(),
                    w as usize * 4,
                    Lz4Output::Bgrx,
                    &limits,
                )?;
                Ok((px.finish(hdr.format == Lz4Format::Rgba, false), false))
            }
            ImageBody::Surface(sid) => {
                let s = surfaces.get(*sid)?;
                Ok((s.to_pixmap(), false))
            }
            ImageBody::FromCache | ImageBody::FromCacheLossless => {
                Err(CanvasError::UnsupportedImageType(image.body.image_type()))
            }
        }
    }

    fn decode_lz(
        &self,
        data: &[u8],
        hdr: &LzHeader,
        palette: Option<&[u32]>,
        w: u32,
        h: u32,
    ) -> Result<Pixmap, CanvasError> {
        self.check_stream_size(hdr.width, hdr.height, w, h)?;
        let max = self.limits.max_image_pixels as usize * 4 + 64;
        let lay = hdr.layout(LzOutputFormat::Bgrx32, 0)?;
        if lay.buffer_len > max {
            return Err(lz::LzError::TooLarge {
                bytes: lay.buffer_len as u64,
                limit: max as u64,
            }
            .into());
        }
        // The decoder may need a little more than the placed rows (whole palette bytes).
        let mut px = PixelBuf::with_len(hdr.width, hdr.height, lay.buffer_len.div_ceil(4));
        let opts = lz::LzDecodeOptions {
            format: LzOutputFormat::Bgrx32,
            stride: 0,
            palette,
            max_bytes: max,
        };
        lz::decode(data, px.bytes(), &opts)?;
        let alpha = hdr.image_type == LzImageType::Rgba || hdr.image_type == LzImageType::A8;
        let mut pm = px.finish(alpha, false);
        if !hdr.top_down {
            flip_rows(&mut pm);
        }
        Ok(pm)
    }

    /// Decodes GLZ stream `data` (descriptor size `w` x `h`) into the shared window and
    /// hands the decoded image to `f`.
    fn with_glz<R>(
        &self,
        data: &[u8],
        w: u32,
        h: u32,
        f: impl FnOnce(&spice_codecs::glz::GlzImage) -> R,
    ) -> Result<R, CanvasError> {
        let hdr = GlzHeader::parse(data)?;
        self.check_stream_size(hdr.width, hdr.height, w, h)?;
        // A poisoned lock only means another channel panicked mid-decode; the window's
        // state is still consistent (decode commits at the end), so keep going.
        let mut win = self.glz.lock().unwrap_or_else(|e| e.into_inner());
        let hdr = win.decode(data)?;
        let img = win.image(hdr.id).ok_or(CanvasError::Glz(
            spice_codecs::glz::GlzError::ReleasedImage {
                id: hdr.id,
                released: hdr.id,
            },
        ))?;
        debug!(id = hdr.id, "GLZ image decoded");
        Ok(f(img))
    }

    /// Decodes GLZ stream `data` (descriptor size `w` x `h`) into the shared window and
    /// writes its pixels top-down into `dst` (rows `stride` pixels apart; the caller
    /// checked that `dst` holds them) while decoding, as they are produced (see
    /// [`spice_codecs::glz::GlzWindow::decode_to`]: a missing image of the window gives
    /// its error before any pixel is written).
    fn glz_into(
        &self,
        data: &[u8],
        w: u32,
        h: u32,
        dst: &mut [u32],
        stride: usize,
    ) -> Result<(), CanvasError> {
        let hdr = GlzHeader::parse(data)?;
        self.check_stream_size(hdr.width, hdr.height, w, h)?;
        let or = if hdr.image_type == LzImageType::Rgba {
            0
        } else {
            0xff00_0000
        };
        let (wu, hu) = (w as usize, h as usize);
        let mut sink = |first: usize, mut bytes: &[u8]| {
            let mut p = first;
            while !bytes.is_empty() {
                let (i, x) = (p / wu, p % wu);
                if i >= hu {
                    break;
                }
                let k = (wu - x).min(bytes.len() / 4);
                if k == 0 {
                    break;
                }
                let y = if hdr.top_down { i } else { hu - 1 - i };
                let at = y * stride + x;
                bgrx_row_into(&mut dst[at..at + k], &bytes[..k * 4], or);
                bytes = &bytes[k * 4..];
                p += k;
            }
        };
        // A poisoned lock only means another channel panicked mid-decode; the window's
        // state is still consistent (decode commits at the end), so keep going.
        let mut win = self.glz.lock().unwrap_or_else(|e| e.into_inner());
        let hdr = win.decode_to(data, &mut sink)?;
        debug!(id = hdr.id, "GLZ image decoded");
        Ok(())
    }

    fn decode_glz(&self, data: &[u8], w: u32, h: u32) -> Result<Pixmap, CanvasError> {
        let hdr = GlzHeader::parse(data)?;
        if !hdr.top_down {
            let (alpha, px) = self.with_glz(data, w, h, glz_pixels)?;
            return Ok(Pixmap::from_pixels(w, h, alpha, px).expect("w*h pixels"));
        }
        // Top-down: the decoded runs arrive in pixmap order; append them while they
        // are still cached.
        self.check_stream_size(hdr.width, hdr.height, w, h)?;
        let alpha = hdr.image_type == LzImageType::Rgba;
        let or = if alpha { 0 } else { 0xff00_0000 };
        let n = w as usize * h as usize;
        let mut px: Vec<u32> = Vec::with_capacity(n);
        let mut sink = |_first: usize, bytes: &[u8]| {
            let at = px.len();
            let k = (bytes.len() / 4).min(n - at);
            px.resize(at + k, 0);
            bgrx_row_into(&mut px[at..], &bytes[..k * 4], or);
        };
        let mut win = self.glz.lock().unwrap_or_else(|e| e.into_inner());
        win.decode_to(data, &mut sink)?;
        drop(win);
        Ok(Pixmap::from_pixels(w, h, alpha, px).expect("w*h pixels"))
    }

    /// Decodes a QUIC or (ZLIB_)GLZ image without cache flags straight into `dst`, the
    /// top-left pixel of a `width` x `height` destination with rows `stride` pixels apart
    /// (the caller checked that `dst` holds them). Returns false, having done nothing,
    /// for any other image (the caller decodes it the usual way). A QUIC stream, or a
    /// GLZ stream whose window is complete, that fails part way leaves the pixels decoded
    /// so far in `dst`; a GLZ image referring to a missing image leaves `dst` untouched.
    pub(crate) fn decode_into(
        &mut self,
        image: &Image<'_>,
        dst: &mut [u32],
        stride: usize,
    ) -> Result<bool, CanvasError> {
        if image
            .flags
            .intersects(ImageFlags::CACHE_ME | ImageFlags::CACHE_REPLACE_ME)
        {
            return Ok(false);
        }
        let (w, h) = (image.width, image.height);
        let need = (h as usize).saturating_sub(1) * stride + w as usize;
        if w == 0 || h == 0 || stride < w as usize || dst.len() < need {
            return Ok(false);
        }
        let high = image.flags.contains(ImageFlags::HIGH_BITS_SET);
        if high && !matches!(image.body, ImageBody::Quic(_)) {
            return Ok(false);
        }
        match &image.body {
            ImageBody::Quic(data) => {
                let hdr = quic::decode_header(data)?;
                self.check_stream_size(hdr.width, hdr.height, w, h)?;
                let limits = quic::DecodeLimits {
                    max_pixels: self.limits.max_image_pixels,
                    max_bytes: self.limits.max_image_pixels * 4,
                };
                use zerocopy::IntoBytes;
                quic::decode(
                    data,
                    dst[..need].as_mut_bytes(),
                    stride * 4,
                    quic::PixelFormat::Rgba,
                    quic::RowOrder::TopDown,
                    &limits,
                )?;
                if cfg!(target_endian = "big") || high {
                    let or = if high { 0xff00_0000 } else { 0 };
                    for r in dst[..need].chunks_mut(stride) {
                        for p in &mut r[..w as usize] {
                            *p = u32::from_le(*p) | or;
                        }
                    }
                }
                Ok(true)
            }
            ImageBody::GlzRgb(data) => {
                self.glz_into(data, w, h, dst, stride)?;
                Ok(true)
            }
            ImageBody::ZlibGlzRgb(z) => {
                let cap = (self.limits.max_image_pixels as usize)
                    .saturating_mul(8)
                    .saturating_add(GlzHeader::SIZE + 1024);
                let glz = zlib_glz::unwrap(z.data, z.glz_data_size as usize, cap)?;
                self.glz_into(&glz, w, h, dst, stride)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn decode_bitmap(&mut self, b: &Bitmap<'_>, mask: bool) -> Result<Pixmap, CanvasError> {
        let (w, h) = (b.x as usize, b.y as usize);
        let bits = match b.format {
            BitmapFormat::BIT1_LE | BitmapFormat::BIT1_BE => 1,
            BitmapFormat::BIT4_LE | BitmapFormat::BIT4_BE => 4,
            BitmapFormat::BIT8 | BitmapFormat::BIT8_A => 8,
            BitmapFormat::BIT16 => 16,
            BitmapFormat::BIT24 => 24,
            BitmapFormat::BIT32 | BitmapFormat::RGBA => 32,
            f => return Err(CanvasError::UnsupportedBitmapFormat(f)),
        };
        let row_bytes = (w * bits).div_ceil(8);
        let stride = b.stride as usize;
        if stride < row_bytes || (b.data.len() as u64) < b.stride as u64 * b.y as u64 {
            return Err(CanvasError::BadBitmap {
                width: b.x,
                height: b.y,
                stride: b.stride,
                len: b.data.len(),
            });
        }
        let is_mask = mask && bits == 1;
        let palette: Arc<[u32]> = if bits <= 8 && b.format != BitmapFormat::BIT8_A && !is_mask {
            self.resolve_palette(b.flags, &b.palette)?
        } else {
            Arc::from(Vec::new())
        };
        let pal = |i: usize| palette.get(i).map_or(0xff00_0000, |c| c | 0xff00_0000);
        let top_down = b.flags.contains(BitmapFlags::TOP_DOWN);
        let mut out = vec![0u32; w * h];
        for y in 0..h {
            let src = &b.data[y * stride..y * stride + row_bytes];
            let dy = if top_down { y } else { h - 1 - y };
            let dst = &mut out[dy * w..(dy + 1) * w];
            match b.format {
                BitmapFormat::BIT1_LE | BitmapFormat::BIT1_BE => {
                    let be = b.format == BitmapFormat::BIT1_BE;
                    for (x, d) in dst.iter_mut().enumerate() {
                        let byte = src[x / 8];
                        let bit = if be {
                            (byte >> (7 - x % 8)) & 1
                        } else {
                            (byte >> (x % 8)) & 1
                        };
                        *d = if is_mask {
                            if bit != 0 { 0xffff_ffff } else { 0 }
                        } else {
                            pal(bit as usize)
                        };
                    }
                }
                BitmapFormat::BIT4_LE | BitmapFormat::BIT4_BE => {
                    let be = b.format == BitmapFormat::BIT4_BE;
                    for (x, d) in dst.iter_mut().enumerate() {
                        let byte = src[x / 2];
                        let hi_first = be;
                        let nib = if (x % 2 == 0) == hi_first {
                            byte >> 4
                        } else {
                            byte & 0xf
                        };
                        *d = pal(nib as usize);
                    }
                }
                BitmapFormat::BIT8 => {
                    for (d, &i) in dst.iter_mut().zip(src) {
                        *d = pal(i as usize);
                    }
                }
                BitmapFormat::BIT8_A => {
                    for (d, &a) in dst.iter_mut().zip(src) {
                        *d = u32::from(a) << 24;
                    }
                }
                BitmapFormat::BIT16 => {
                    for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                        *d = rgb555_to_32(u16::from_le_bytes([c[0], c[1]]));
                    }
                }
                BitmapFormat::BIT24 => {
                    for (d, c) in dst.iter_mut().zip(src.chunks_exact(3)) {
                        *d = 0xff00_0000
                            | u32::from(c[2]) << 16
                            | u32::from(c[1]) << 8
                            | u32::from(c[0]);
                    }
                }
                BitmapFormat::BIT32 => {
                    for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                        *d = 0xff00_0000 | u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
                _ => {
                    for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                        *d = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
            }
        }
        let alpha = matches!(b.format, BitmapFormat::RGBA | BitmapFormat::BIT8_A) || is_mask;
        Ok(Pixmap::from_pixels(b.x, b.y, alpha, out).expect("w*h pixels"))
    }
}

/// A window image's pixels top row first as `0xAARRGGBB` (alpha `0xff` unless the
/// image is RGBA), appended row by row (no zero fill first); returns whether it has
/// alpha.
fn glz_pixels(img: &spice_codecs::glz::GlzImage) -> (bool, Vec<u32>) {
    let hdr = img.header();
    let alpha = hdr.image_type == LzImageType::Rgba;
    let or = if alpha { 0 } else { 0xff00_0000 };
    let (w, h) = (hdr.width as usize, hdr.height as usize);
    let rows = img.pixels();
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        let i = if hdr.top_down { y } else { h - 1 - y };
        let src = &rows[i * w * 4..(i + 1) * w * 4];
        let at = px.len();
        px.extend_from_slice(zerocopy::FromBytes::ref_from_bytes(src).unwrap_or(&[][..]));
        if px.len() == at + w {
            if cfg!(target_endian = "big") || or != 0 {
                for p in &mut px[at..] {
                    *p = u32::from_le(*p) | or;
                }
            }
        } else {
            // Unaligned window buffer: convert byte-wise.
            px.extend(
                src.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) | or),
            );
        }
    }
    (alpha, px)
}

/// Writes the little-endian B,G,R,X/A pixels of `src` (`4 * d.len()` bytes) into `d`
/// as `0xAARRGGBB` words ORed with `or`.
fn bgrx_row_into(d: &mut [u32], src: &[u8], or: u32) {
    if cfg!(target_endian = "little") {
        // Word-aligned source (the usual case: a heap buffer): one pass that reads and
        // writes each byte once (vectorises).
        use zerocopy::FromBytes;
        if let Ok(s) = <[u32]>::ref_from_bytes(src) {
            if or == 0 {
                d.copy_from_slice(s);
            } else {
                for (p, &v) in d.iter_mut().zip(s) {
                    *p = v | or;
                }
            }
            return;
        }
    }
    // A memcpy then an in-place pass over the (cache-hot) row; both vectorise.
    {
        use zerocopy::IntoBytes;
        d.as_mut_bytes().copy_from_slice(src);
    }
    if cfg!(target_endian = "big") || or != 0 {
        for p in d.iter_mut() {
            *p = u32::from_le(*p) | or;
        }
    }
}

/// Widens a little-endian x1r5g5b5 pixel like spice-gtk (`v << 3 | v >> 2`).
pub(crate) fn rgb555_to_32(p: u16) -> u32 {
    let c = |s: u16| {
        let v = u32::from((p >> s) & 0x1f);
        (v << 3) | (v >> 2)
    };
    0xff00_0000 | c(10) << 16 | c(5) << 8 | c(0)
}

/// A pixel buffer the byte-oriented decoders write B,G,R,X/A into directly (viewed as
/// bytes through zerocopy), turned into `0xAARRGGBB` words by [`PixelBuf::finish`].
struct PixelBuf {
    w: u32,
    h: u32,
    px: Vec<u32>,
}

impl PixelBuf {
    /// `w * h` pixels; the caller checked the size against its caps.
    fn new(w: u32, h: u32) -> Self {
        Self::with_len(w, h, w as usize * h as usize)
    }

    fn with_len(w: u32, h: u32, len: usize) -> Self {
        Self {
            w,
            h,
            px: vec![0; len.max(w as usize * h as usize)],
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        use zerocopy::IntoBytes;
        self.px.as_mut_bytes()
    }

    /// Converts the little-endian B,G,R,X/A bytes in place to `0xAARRGGBB` (a no-op on
    /// little-endian hosts) and, unless `alpha`, sets the alpha byte. `opaque_already`
    /// tells that the decoder wrote alpha 0xff itself.
    fn finish(mut self, alpha: bool, opaque_already: bool) -> Pixmap {
        self.px.truncate(self.w as usize * self.h as usize);
        let or = if alpha || opaque_already {
            0
        } else {
            0xff00_0000
        };
        if cfg!(target_endian = "big") || or != 0 {
            for p in &mut self.px {
                *p = u32::from_le(*p) | or;
            }
        }
        Pixmap::from_pixels(self.w, self.h, alpha, self.px).expect("w*h pixels")
    }
}

fn from_bgrx(w: u32, h: u32, alpha: bool, bytes: &[u8]) -> Pixmap {
    // The decoders produced exactly w*h*4 bytes (checked by them against w and h).
    Pixmap::from_bgrx(w, h, alpha, &bytes[..w as usize * h as usize * 4])
        .expect("decoder output is w*h*4 bytes")
}

fn flip_rows(pm: &mut Pixmap) {
    let w = pm.width() as usize;
    let h = pm.height() as usize;
    let px = pm.pixels_mut();
    for y in 0..h / 2 {
        let (a, b) = px.split_at_mut((h - 1 - y) * w);
        a[y * w..(y + 1) * w].swap_with_slice(&mut b[..w]);
    }
}

fn decode_jpeg_alpha(
    ja: &spice_proto::types::JpegAlpha<'_>,
    w: u32,
    h: u32,
) -> Result<Pixmap, CanvasError> {
    let js = ja.jpeg_size as usize;
    if js > ja.data.len() {
        return Err(CanvasError::Jpeg(jpeg::JpegError::Decode(format!(
            "jpeg_size {js} past the {} data bytes",
            ja.data.len()
        ))));
    }
    let (jpeg_part, alpha_part) = ja.data.split_at(js);
    let limits = JpegLimits {
        max_width: w,
        max_height: h,
    };
    let stride = w as usize * 4;
    let mut buf = vec![0u8; stride * h as usize];
    jpeg::decode_image(jpeg_part, w, h, &mut buf, stride, &limits)?;
    let hdr = LzHeader::parse(alpha_part)?;
    let top_down = ja
        .flags
        .contains(spice_proto::types::JpegAlphaFlags::TOP_DOWN);
    if hdr.image_type != LzImageType::Xxxa
        || hdr.width != w
        || hdr.height != h
        || hdr.top_down != top_down
    {
        return Err(CanvasError::StreamKindMismatch {
            what: "JPEG_ALPHA alpha plane",
        });
    }
    let mut alpha = vec![0u8; stride * h as usize];
    lz::decode_alpha(alpha_part, &mut alpha, stride)?;
    let (wu, hu) = (w as usize, h as usize);
    for i in 0..hu {
        let y = if top_down { i } else { hu - 1 - i };
        for x in 0..wu {
            buf[y * stride + x * 4 + 3] = alpha[i * stride + x * 4 + 3];
        }
    }
    Ok(from_bgrx(w, h, true, &buf))
}

/// Image types the canvas decodes (every type but RESERVED).
pub const DECODABLE_IMAGE_TYPES: [ImageType; 12] = [
    ImageType::BITMAP,
    ImageType::QUIC,
    ImageType::LZ_PLT,
    ImageType::LZ_RGB,
    ImageType::GLZ_RGB,
    ImageType::FROM_CACHE,
    ImageType::SURFACE,
    ImageType::JPEG,
    ImageType::FROM_CACHE_LOSSLESS,
    ImageType::ZLIB_GLZ_RGB,
    ImageType::JPEG_ALPHA,
    ImageType::LZ4,
];

/// A stream declaring `got_width` x `got_height` for an image descriptor of `w` x `h`.
fn size_matches(got_width: u32, got_height: u32, w: u32, h: u32) -> Result<(), CanvasError> {
    if got_width != w || got_height != h {
        return Err(CanvasError::ImageSizeMismatch {
            width: w,
            height: h,
            got_width,
            got_height,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bgrx_row_into;

    /// The aligned one-pass copy and the unaligned memcpy-then-OR fallback give the
    /// pixels of a plain per-pixel conversion.
    #[test]
    fn bgrx_rows_aligned_and_unaligned() {
        let words: Vec<u32> = (0..97u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let mut bytes = Vec::new();
        for w in &words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let n = 96;
        for shift in 0..4 {
            let src = &bytes[shift..shift + n * 4];
            for or in [0, 0xff00_0000] {
                let want: Vec<u32> = src
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) | or)
                    .collect();
                let mut got = vec![0x1234_5678u32; n];
                bgrx_row_into(&mut got, src, or);
                assert_eq!(got, want, "shift {shift} or {or:#x}");
            }
        }
    }
}
