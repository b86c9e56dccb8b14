//! Image encoding for the display channel: one bitmap in, one `SpiceImage` body out, per the
//! compression mode (off, quic, lz, glz, auto_glz, auto_lz, lz4), with JPEG / JPEG_ALPHA when
//! jpeg-wan applies and ZLIB_GLZ_RGB when zlib-glz-wan applies.
//!
//! The choice is spice-codecs' [`choose_codec`] (the reference server's rules, including the
//! graduality classifier of the auto modes); this module runs the chosen codec, falls back as
//! spice-server does (QUIC/JPEG larger than the raw bitmap → raw, GLZ failure → LZ, LZ failure
//! → raw) and owns the encoded bytes.

use std::sync::{Arc, OnceLock};

use spice_codecs::classify::{
    self, BitmapDesc, BitmapFormat, CachedGraduality, ChoiceInput, ClassifyImage, Codec,
    Graduality, ImageCompression,
};
use spice_codecs::glz::{GlzEncoder, GlzInput};
use spice_codecs::lz::{self, LzImageType};
use spice_codecs::lz4::{self, Lz4Format, Lz4Header};
use spice_codecs::{jpeg, jpeg_alpha, quic, zlib_glz};
use spice_proto::types::{
    Bitmap, BitmapFlags, Image, ImageBody, ImageFlags, JpegAlpha, JpegAlphaFlags, LzPlt,
    PaletteSource, ZlibGlzRgb,
};

/// A bitmap to encode, borrowed: `height` rows of `stride` bytes in memory order.
#[derive(Debug, Clone, Copy)]
pub struct BitmapView<'a> {
    /// Pixel format.
    pub format: BitmapFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes from one row to the next (at least the row's pixel bytes).
    pub stride: u32,
    /// Whether the first row in memory is the top row.
    pub top_down: bool,
    /// `stride * height` bytes.
    pub data: &'a [u8],
}

impl BitmapView<'_> {
    /// Checks that the geometry is consistent with the data.
    pub fn validate(&self) -> Result<(), ImageEncodeError> {
        let row = self.format.row_bytes(self.width);
        let need = u64::from(self.stride) * u64::from(self.height);
        if self.width == 0
            || self.height == 0
            || row > u64::from(self.stride)
            || (self.data.len() as u64) < need
        {
            return Err(ImageEncodeError::BadBitmap {
                width: self.width,
                height: self.height,
                stride: self.stride,
                len: self.data.len(),
            });
        }
        Ok(())
    }

    fn byte_len(&self) -> usize {
        self.stride as usize * self.height as usize
    }
}

/// Why an image could not be encoded at all (codec failures fall back instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageEncodeError {
    /// The bitmap's geometry disagrees with its data.
    #[error("bitmap {width}x{height} stride {stride} with {len} bytes")]
    BadBitmap {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Stride.
        stride: u32,
        /// Bytes present.
        len: usize,
    },
}

/// The encoder's link settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// The image-compression preference in force (server setting or client preference).
    pub compression: ImageCompression,
    /// JPEG may replace QUIC for lossy-capable drawings (jpeg-wan applies).
    pub jpeg: bool,
    /// GLZ output is wrapped in zlib when smaller (zlib-glz-wan applies).
    pub zlib_glz: bool,
    /// The client advertised `SPICE_DISPLAY_CAP_LZ4_COMPRESSION`.
    pub client_lz4: bool,
}

impl Default for EncoderSettings {
    /// spice-server's defaults: auto_glz, no WAN options, no LZ4.
    fn default() -> Self {
        EncoderSettings {
            compression: ImageCompression::AutoGlz,
            jpeg: false,
            zlib_glz: false,
            client_lz4: false,
        }
    }
}

/// An owned image body (the owned counterpart of spice-proto's [`ImageBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodedBody {
    /// Raw pixels.
    Bitmap {
        /// Format.
        format: BitmapFormat,
        /// TOP_DOWN and palette flags.
        flags: BitmapFlags,
        /// Width.
        width: u32,
        /// Rows.
        height: u32,
        /// Stride.
        stride: u32,
        /// Palette.
        palette: PaletteSource,
        /// `stride * height` bytes.
        data: Vec<u8>,
    },
    /// QUIC stream (also a guest's QUIC image passed through).
    Quic(Vec<u8>),
    /// LZ with a palette.
    LzPlt {
        /// TOP_DOWN and palette flags.
        flags: BitmapFlags,
        /// Palette.
        palette: PaletteSource,
        /// LZ stream.
        data: Vec<u8>,
    },
    /// LZ RGB stream.
    LzRgb(Vec<u8>),
    /// GLZ stream.
    GlzRgb(Vec<u8>),
    /// zlib over a GLZ stream.
    ZlibGlzRgb {
        /// GLZ bytes after inflating.
        glz_data_size: u32,
        /// zlib stream.
        data: Vec<u8>,
    },
    /// JPEG.
    Jpeg(Vec<u8>),
    /// JPEG colour + LZ alpha.
    JpegAlpha {
        /// Top-down.
        top_down: bool,
        /// JPEG bytes at the start of `data`.
        jpeg_size: u32,
        /// JPEG ‖ LZ XXXA.
        data: Vec<u8>,
    },
    /// LZ4 payload.
    Lz4(Vec<u8>),
    /// The client's cached copy.
    FromCache,
    /// The client's cached copy, which must be lossless.
    FromCacheLossless,
    /// Another surface.
    Surface(u32),
}

/// An encoded image ready to be put into a draw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedImage {
    /// Descriptor id (cache id).
    pub id: u64,
    /// Descriptor flags (CACHE_ME, ...).
    pub flags: ImageFlags,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Body.
    pub body: EncodedBody,
    /// The client gets a lossy copy (JPEG).
    pub lossy: bool,
}

impl EncodedImage {
    /// The spice-proto view of this image, borrowing the bytes.
    pub fn image(&self) -> Image<'_> {
        let body = match &self.body {
            EncodedBody::Bitmap {
                format,
                flags,
                width,
                height,
                stride,
                palette,
                data,
            } => ImageBody::Bitmap(Bitmap {
                format: spice_proto::types::BitmapFormat(*format as u8),
                flags: *flags,
                x: *width,
                y: *height,
                stride: *stride,
                palette: palette.clone(),
                data,
            }),
            EncodedBody::Quic(d) => ImageBody::Quic(d),
            EncodedBody::LzPlt {
                flags,
                palette,
                data,
            } => ImageBody::LzPlt(LzPlt {
                flags: *flags,
                palette: palette.clone(),
                data,
            }),
            EncodedBody::LzRgb(d) => ImageBody::LzRgb(d),
            EncodedBody::GlzRgb(d) => ImageBody::GlzRgb(d),
            EncodedBody::ZlibGlzRgb {
                glz_data_size,
                data,
            } => ImageBody::ZlibGlzRgb(ZlibGlzRgb {
                glz_data_size: *glz_data_size,
                data,
            }),
            EncodedBody::Jpeg(d) => ImageBody::Jpeg(d),
            EncodedBody::JpegAlpha {
                top_down,
                jpeg_size,
                data,
            } => ImageBody::JpegAlpha(JpegAlpha {
                flags: if *top_down {
                    JpegAlphaFlags::TOP_DOWN
                } else {
                    JpegAlphaFlags::empty()
                },
                jpeg_size: *jpeg_size,
                data,
            }),
            EncodedBody::Lz4(d) => ImageBody::Lz4(d),
            EncodedBody::FromCache => ImageBody::FromCache,
            EncodedBody::FromCacheLossless => ImageBody::FromCacheLossless,
            EncodedBody::Surface(id) => ImageBody::Surface(*id),
        };
        Image {
            id: self.id,
            flags: self.flags,
            width: self.width,
            height: self.height,
            body,
        }
    }

    /// Bytes the body carries (what it costs on the wire, roughly).
    pub fn payload_len(&self) -> usize {
        match &self.body {
            EncodedBody::Bitmap { data, .. }
            | EncodedBody::Quic(data)
            | EncodedBody::LzPlt { data, .. }
            | EncodedBody::LzRgb(data)
            | EncodedBody::GlzRgb(data)
            | EncodedBody::ZlibGlzRgb { data, .. }
            | EncodedBody::Jpeg(data)
            | EncodedBody::JpegAlpha { data, .. }
            | EncodedBody::Lz4(data) => data.len(),
            EncodedBody::FromCache | EncodedBody::FromCacheLossless | EncodedBody::Surface(_) => 0,
        }
    }

    /// The image type this body goes out as.
    pub fn codec_name(&self) -> &'static str {
        match &self.body {
            EncodedBody::Bitmap { .. } => "bitmap",
            EncodedBody::Quic(_) => "quic",
            EncodedBody::LzPlt { .. } => "lz_plt",
            EncodedBody::LzRgb(_) => "lz_rgb",
            EncodedBody::GlzRgb(_) => "glz_rgb",
            EncodedBody::ZlibGlzRgb { .. } => "zlib_glz_rgb",
            EncodedBody::Jpeg(_) => "jpeg",
            EncodedBody::JpegAlpha { .. } => "jpeg_alpha",
            EncodedBody::Lz4(_) => "lz4",
            EncodedBody::FromCache => "from_cache",
            EncodedBody::FromCacheLossless => "from_cache_lossless",
            EncodedBody::Surface(_) => "surface",
        }
    }
}

/// Per-bitmap facts besides its pixels.
#[derive(Debug, Clone)]
pub struct EncodeRequest {
    /// Descriptor id.
    pub id: u64,
    /// Descriptor flags to send (CACHE_ME is decided by the caller's cache).
    pub flags: ImageFlags,
    /// Palette as it goes on the wire (from the caller's palette cache), with the
    /// `PAL_CACHE_ME` / `PAL_FROM_CACHE` flags it implies.
    pub palette: PaletteSource,
    /// Palette flags matching `palette`.
    pub palette_flags: BitmapFlags,
    /// The image belongs to a drawable (GLZ needs one).
    pub has_drawable: bool,
    /// The drawing may be sent lossy.
    pub can_lossy: bool,
    /// The guest may change the bitmap meanwhile.
    pub unstable: bool,
    /// Where the bitmap's graduality is kept once computed (the reference keeps it in the
    /// drawable): shared by every client sending the same drawable, so the classifier runs
    /// once per image.
    pub graduality: Option<Arc<OnceLock<Graduality>>>,
}

impl EncodeRequest {
    /// A request for an image of a drawable with no palette, not cached.
    pub fn new(id: u64) -> Self {
        EncodeRequest {
            id,
            flags: ImageFlags::empty(),
            palette: PaletteSource::None,
            palette_flags: BitmapFlags::empty(),
            has_drawable: true,
            can_lossy: false,
            unstable: false,
            graduality: None,
        }
    }
}

/// Counters of what an encoder produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Images encoded.
    pub images: u64,
    /// Raw bytes in.
    pub raw_bytes: u64,
    /// Payload bytes out.
    pub encoded_bytes: u64,
    /// Images that fell back to another codec.
    pub fallbacks: u64,
}

/// One display channel's image encoder.
#[derive(Debug)]
pub struct ImageEncoder {
    settings: EncoderSettings,
    glz: Option<GlzEncoder>,
    glz_window_pixels: u64,
    stats: EncoderStats,
    /// Scratch for row repacking.
    scratch: Vec<u8>,
}

fn lz_type(format: BitmapFormat) -> LzImageType {
    match format {
        BitmapFormat::OneBitLe => LzImageType::Plt1Le,
        BitmapFormat::OneBitBe => LzImageType::Plt1Be,
        BitmapFormat::FourBitLe => LzImageType::Plt4Le,
        BitmapFormat::FourBitBe => LzImageType::Plt4Be,
        BitmapFormat::EightBit => LzImageType::Plt8,
        BitmapFormat::Rgb16 => LzImageType::Rgb16,
        BitmapFormat::Rgb24 => LzImageType::Rgb24,
        BitmapFormat::Rgb32 => LzImageType::Rgb32,
        BitmapFormat::Rgba => LzImageType::Rgba,
        BitmapFormat::A8 => LzImageType::A8,
    }
}

fn quic_type(format: BitmapFormat) -> Option<quic::ImageType> {
    match format {
        BitmapFormat::Rgb16 => Some(quic::ImageType::Rgb16),
        BitmapFormat::Rgb24 => Some(quic::ImageType::Rgb24),
        BitmapFormat::Rgb32 => Some(quic::ImageType::Rgb32),
        BitmapFormat::Rgba => Some(quic::ImageType::Rgba),
        _ => None,
    }
}

fn jpeg_format(format: BitmapFormat) -> Option<jpeg::JpegSourceFormat> {
    match format {
        BitmapFormat::Rgb16 => Some(jpeg::JpegSourceFormat::Rgb16),
        BitmapFormat::Rgb24 => Some(jpeg::JpegSourceFormat::Bgr24),
        BitmapFormat::Rgb32 => Some(jpeg::JpegSourceFormat::Bgrx32),
        _ => None,
    }
}

impl ImageEncoder {
    /// An encoder with `settings`; GLZ needs [`ImageEncoder::set_glz`].
    pub fn new(settings: EncoderSettings) -> Self {
        ImageEncoder {
            settings,
            glz: None,
            glz_window_pixels: 0,
            stats: EncoderStats::default(),
            scratch: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Changes the settings (e.g. the client's PREFERRED_COMPRESSION).
    pub fn set_settings(&mut self, settings: EncoderSettings) {
        self.settings = settings;
    }

    /// Uses `glz` (an encoder over the client's shared dictionary) of a window of
    /// `window_pixels` pixels for GLZ images.
    pub fn set_glz(&mut self, glz: GlzEncoder, window_pixels: u64) {
        self.glz = Some(glz);
        self.glz_window_pixels = window_pixels;
    }

    /// The GLZ encoder, if any.
    pub fn glz(&self) -> Option<&GlzEncoder> {
        self.glz.as_ref()
    }

    /// What was produced so far.
    pub fn stats(&self) -> EncoderStats {
        self.stats
    }

    /// The codec [`choose_codec`] picks for `bm` (the classifier runs for the auto modes).
    pub fn choose(&self, bm: &BitmapView<'_>, req: &EncodeRequest) -> Codec {
        let input = ChoiceInput {
            preferred: self.settings.compression,
            bitmap: BitmapDesc {
                format: bm.format,
                width: bm.width,
                height: bm.height,
                stride: bm.stride,
                unstable: req.unstable,
            },
            has_drawable: req.has_drawable,
            cached_graduality: CachedGraduality::NotComputed,
            can_lossy: req.can_lossy,
            jpeg_enabled: self.settings.jpeg,
            glz_dictionary_pixels: if self.glz.is_some() {
                self.glz_window_pixels
            } else {
                0
            },
            glz_frozen: false,
            client_lz4: self.settings.client_lz4,
            unix_socket: false,
        };
        classify::choose_codec(&input, || match &req.graduality {
            Some(cell) => *cell.get_or_init(|| graduality_of(bm)),
            None => graduality_of(bm),
        })
    }

    /// Encodes `bm` per the settings.
    pub fn encode(
        &mut self,
        bm: &BitmapView<'_>,
        req: &EncodeRequest,
    ) -> Result<EncodedImage, ImageEncodeError> {
        bm.validate()?;
        let codec = self.choose(bm, req);
        let (body, fell_back) = self.run(codec, bm, req);
        let lossy = matches!(body, EncodedBody::Jpeg(_) | EncodedBody::JpegAlpha { .. });
        let img = EncodedImage {
            id: req.id,
            flags: req.flags,
            width: bm.width,
            height: bm.height,
            body,
            lossy,
        };
        self.stats.images += 1;
        self.stats.raw_bytes += bm.byte_len() as u64;
        self.stats.encoded_bytes += img.payload_len() as u64;
        if fell_back {
            self.stats.fallbacks += 1;
        }
        tracing::trace!(
            id = req.id,
            codec = img.codec_name(),
            raw = bm.byte_len(),
            out = img.payload_len(),
            "image encoded"
        );
        Ok(img)
    }

    fn raw(bm: &BitmapView<'_>, req: &EncodeRequest) -> EncodedBody {
        let mut flags = req.palette_flags;
        if bm.top_down {
            flags |= BitmapFlags::TOP_DOWN;
        }
        EncodedBody::Bitmap {
            format: bm.format,
            flags,
            width: bm.width,
            height: bm.height,
            stride: bm.stride,
            palette: req.palette.clone(),
            data: bm.data[..bm.byte_len()].to_vec(),
        }
    }

    /// Runs `codec`, falling back as spice-server does. Returns the body and whether a
    /// fallback happened.
    fn run(
        &mut self,
        codec: Codec,
        bm: &BitmapView<'_>,
        req: &EncodeRequest,
    ) -> (EncodedBody, bool) {
        let raw_len = bm.byte_len();
        match codec {
            Codec::Raw => (Self::raw(bm, req), false),
            Codec::Quic => match self.quic(bm) {
                Some(d) if d.len() <= raw_len => (EncodedBody::Quic(d), false),
                _ => (Self::raw(bm, req), true),
            },
            Codec::Jpeg => match self.jpeg(bm) {
                Some(d) if d.len() <= raw_len => (EncodedBody::Jpeg(d), false),
                _ => (Self::raw(bm, req), true),
            },
            Codec::JpegAlpha => match self.jpeg_alpha(bm) {
                Some(b) => (b, false),
                None => match self.quic(bm) {
                    Some(d) if d.len() <= raw_len => (EncodedBody::Quic(d), true),
                    _ => (Self::raw(bm, req), true),
                },
            },
            Codec::Glz => match self.glz_body(bm) {
                Some(b) => (b, false),
                None => self.lz_or_raw(bm, req, true),
            },
            Codec::Lz4 => match self.lz4(bm) {
                Some(d) => (EncodedBody::Lz4(d), false),
                None => self.lz_or_raw(bm, req, true),
            },
            Codec::Lz => self.lz_or_raw(bm, req, false),
        }
    }

    fn lz_or_raw(
        &mut self,
        bm: &BitmapView<'_>,
        req: &EncodeRequest,
        fell_back: bool,
    ) -> (EncodedBody, bool) {
        let t = lz_type(bm.format);
        let mut out = Vec::new();
        let data = self.packed(bm);
        let stride = if t.is_palette() {
            bm.stride
        } else {
            (bm.format.row_bytes(bm.width)) as u32
        };
        let data: &[u8] = if t.is_palette() {
            &bm.data[..bm.byte_len()]
        } else {
            &data
        };
        match lz::encode_image(t, bm.width, bm.height, stride, bm.top_down, data, &mut out) {
            Ok(_) if t.is_palette() => {
                if matches!(req.palette, PaletteSource::None) {
                    return (Self::raw(bm, req), true);
                }
                let mut flags = req.palette_flags;
                if bm.top_down {
                    flags |= BitmapFlags::TOP_DOWN;
                }
                (
                    EncodedBody::LzPlt {
                        flags,
                        palette: req.palette.clone(),
                        data: out,
                    },
                    fell_back,
                )
            }
            Ok(_) => (EncodedBody::LzRgb(out), fell_back),
            Err(e) => {
                tracing::debug!(error = %e, "LZ failed, sending raw");
                (Self::raw(bm, req), true)
            }
        }
    }

    /// The bitmap's rows without stride padding (RGB formats).
    fn packed(&mut self, bm: &BitmapView<'_>) -> Vec<u8> {
        let row = bm.format.row_bytes(bm.width) as usize;
        let stride = bm.stride as usize;
        if row == stride {
            return bm.data[..bm.byte_len()].to_vec();
        }
        self.scratch.clear();
        for r in 0..bm.height as usize {
            self.scratch
                .extend_from_slice(&bm.data[r * stride..r * stride + row]);
        }
        std::mem::take(&mut self.scratch)
    }

    fn quic(&mut self, bm: &BitmapView<'_>) -> Option<Vec<u8>> {
        let image_type = quic_type(bm.format)?;
        let img = quic::Image {
            image_type,
            width: bm.width,
            height: bm.height,
            stride: bm.stride as usize,
            row_order: if bm.top_down {
                quic::RowOrder::TopDown
            } else {
                quic::RowOrder::BottomUp
            },
            data: &bm.data[..bm.byte_len()],
        };
        match quic::encode(&img) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::debug!(error = %e, "QUIC failed");
                None
            }
        }
    }

    fn jpeg(&mut self, bm: &BitmapView<'_>) -> Option<Vec<u8>> {
        let format = jpeg_format(bm.format)?;
        let src = jpeg::JpegSource {
            data: &bm.data[..bm.byte_len()],
            width: bm.width,
            height: bm.height,
            stride: bm.stride as usize,
            format,
            top_down: bm.top_down,
        };
        let mut out = Vec::new();
        match jpeg::encode(&src, jpeg::IMAGE_QUALITY, &mut out) {
            Ok(_) => Some(out),
            Err(e) => {
                tracing::debug!(error = %e, "JPEG failed");
                None
            }
        }
    }

    fn jpeg_alpha(&mut self, bm: &BitmapView<'_>) -> Option<EncodedBody> {
        if bm.format != BitmapFormat::Rgba {
            return None;
        }
        let src = jpeg::AlphaSource {
            data: &bm.data[..bm.byte_len()],
            width: bm.width,
            height: bm.height,
            stride: bm.stride as usize,
            top_down: bm.top_down,
        };
        let mut out = Vec::new();
        match jpeg_alpha::encode(&src, jpeg::IMAGE_QUALITY, &mut out) {
            Ok(h) => {
                let data = out.get(jpeg::JpegAlphaHeader::SIZE..)?.to_vec();
                Some(EncodedBody::JpegAlpha {
                    top_down: h.top_down,
                    jpeg_size: h.jpeg_size,
                    data,
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "JPEG_ALPHA failed");
                None
            }
        }
    }

    fn glz_body(&mut self, bm: &BitmapView<'_>) -> Option<EncodedBody> {
        let t = lz_type(bm.format);
        let zlib = self.settings.zlib_glz;
        let glz = self.glz.as_mut()?;
        let input = GlzInput {
            image_type: t,
            width: bm.width,
            height: bm.height,
            stride: bm.stride as usize,
            top_down: bm.top_down,
            data: &bm.data[..bm.byte_len()],
        };
        let mut out = Vec::new();
        if let Err(e) = glz.encode(&input, &mut out) {
            tracing::debug!(error = %e, "GLZ failed, trying LZ");
            return None;
        }
        if zlib && let Some(z) = zlib_glz::wrap(&out) {
            return Some(EncodedBody::ZlibGlzRgb {
                glz_data_size: u32::try_from(out.len()).ok()?,
                data: z,
            });
        }
        Some(EncodedBody::GlzRgb(out))
    }

    fn lz4(&mut self, bm: &BitmapView<'_>) -> Option<Vec<u8>> {
        let format = Lz4Format::from_u8(bm.format as u8)?;
        let mut out = Vec::new();
        match lz4::encode(
            &bm.data[..bm.byte_len()],
            bm.width,
            bm.height,
            bm.stride as usize,
            Lz4Header {
                top_down: bm.top_down,
                format,
            },
            bm.height as usize,
            &mut out,
        ) {
            Ok(()) => Some(out),
            Err(e) => {
                tracing::debug!(error = %e, "LZ4 failed");
                None
            }
        }
    }
}

/// The graduality of a bitmap (LOW when the classifier cannot read the format).
pub fn graduality_of(bm: &BitmapView<'_>) -> Graduality {
    let Some(format) = bm.format.gradual_format() else {
        return Graduality::Low;
    };
    let img = ClassifyImage {
        format,
        width: bm.width,
        height: bm.height,
        stride: bm.stride as usize,
        data: &bm.data[..bm.byte_len()],
    };
    classify::graduality(&img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_canvas::{ImageContext, ImageLimits, Surfaces, new_glz_window};
    use spice_codecs::glz::GlzDictionary;

    fn desktop(w: u32, h: u32, bpp: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let ink = (x / 3 + y / 5) % 7 == 0;
                let px: [u8; 4] = if ink {
                    [20, 20, 20, 255]
                } else {
                    [0xf0, 0xe8, 0x40, 255]
                };
                v.extend_from_slice(&px[..bpp]);
            }
        }
        v
    }

    fn photo(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8, 0]);
            }
        }
        v
    }

    fn view(data: &[u8], format: BitmapFormat, w: u32, h: u32, stride: u32) -> BitmapView<'_> {
        BitmapView {
            format,
            width: w,
            height: h,
            stride,
            top_down: true,
            data,
        }
    }

    fn enc(compression: ImageCompression) -> ImageEncoder {
        ImageEncoder::new(EncoderSettings {
            compression,
            ..EncoderSettings::default()
        })
    }

    /// Decodes with the shared canvas and returns the xRGB pixels.
    fn decode(img: &EncodedImage, glz: &spice_canvas::SharedGlzWindow) -> Vec<u32> {
        let mut ctx = ImageContext::new(ImageLimits::default(), glz.clone());
        let d = ctx.decode(&img.image(), &Surfaces::new(1 << 20)).unwrap();
        d.pixmap.pixels().iter().map(|p| p & 0x00ff_ffff).collect()
    }

    fn xrgb(data: &[u8]) -> Vec<u32> {
        data.chunks(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 0]))
            .collect()
    }

    #[test]
    fn each_mode_picks_its_codec_and_round_trips() {
        let glz_window = new_glz_window(1 << 20);
        let d = desktop(40, 30, 4);
        let p = photo(40, 30);
        let cases = [
            (ImageCompression::Off, &d, "bitmap"),
            (ImageCompression::Quic, &d, "quic"),
            (ImageCompression::Lz, &d, "lz_rgb"),
            (ImageCompression::Glz, &d, "glz_rgb"),
            (ImageCompression::AutoGlz, &d, "glz_rgb"),
            (ImageCompression::AutoGlz, &p, "quic"),
            (ImageCompression::AutoLz, &d, "lz_rgb"),
            (ImageCompression::AutoLz, &p, "quic"),
            // No LZ4 capability: LZ.
            (ImageCompression::Lz4, &d, "lz_rgb"),
        ];
        for (mode, data, want) in cases {
            let mut e = enc(mode);
            let dict = GlzDictionary::new_shared(1 << 20).unwrap();
            e.set_glz(GlzEncoder::new(1, dict), 1 << 20);
            let img = e
                .encode(
                    &view(data, BitmapFormat::Rgb32, 40, 30, 160),
                    &EncodeRequest::new(9),
                )
                .unwrap();
            assert_eq!(img.codec_name(), want, "{mode:?}");
            assert_eq!(decode(&img, &glz_window), xrgb(data), "{mode:?}");
        }
        let mut e = ImageEncoder::new(EncoderSettings {
            compression: ImageCompression::Lz4,
            client_lz4: true,
            ..EncoderSettings::default()
        });
        let img = e
            .encode(
                &view(&d, BitmapFormat::Rgb32, 40, 30, 160),
                &EncodeRequest::new(9),
            )
            .unwrap();
        assert_eq!(img.codec_name(), "lz4");
        assert_eq!(decode(&img, &glz_window), xrgb(&d));
        assert_eq!(e.stats().images, 1);
    }

    #[test]
    fn fallbacks() {
        let d = desktop(40, 30, 4);
        // GLZ without a dictionary: LZ.
        let img = enc(ImageCompression::Glz)
            .encode(
                &view(&d, BitmapFormat::Rgb32, 40, 30, 160),
                &EncodeRequest::new(1),
            )
            .unwrap();
        assert_eq!(img.codec_name(), "lz_rgb");
        // Tiny: raw.
        let img = enc(ImageCompression::Quic)
            .encode(
                &view(&d[..12 * 4], BitmapFormat::Rgb32, 4, 3, 16),
                &EncodeRequest::new(1),
            )
            .unwrap();
        assert_eq!(img.codec_name(), "bitmap");
        // Padded rows: QUIC is fine, LZ is not (raw).
        let mut padded = Vec::new();
        for row in d.chunks(160) {
            padded.extend_from_slice(row);
            padded.extend_from_slice(&[0; 8]);
        }
        let v = view(&padded, BitmapFormat::Rgb32, 40, 30, 168);
        assert_eq!(
            enc(ImageCompression::Lz)
                .encode(&v, &EncodeRequest::new(1))
                .unwrap()
                .codec_name(),
            "bitmap"
        );
        let q = enc(ImageCompression::Quic)
            .encode(&v, &EncodeRequest::new(1))
            .unwrap();
        assert_eq!(q.codec_name(), "quic");
        assert_eq!(decode(&q, &new_glz_window(1)), xrgb(&d));
        // Noise: QUIC would be larger than the bitmap → raw.
        let mut x = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..40 * 30 * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let mut e = enc(ImageCompression::Quic);
        let img = e
            .encode(
                &view(&noise, BitmapFormat::Rgb24, 40, 30, 120),
                &EncodeRequest::new(1),
            )
            .unwrap();
        assert_eq!(img.codec_name(), "bitmap");
        assert_eq!(e.stats().fallbacks, 1);
        // Inconsistent geometry is an error, not a panic.
        assert!(matches!(
            enc(ImageCompression::Lz).encode(
                &view(&d[..100], BitmapFormat::Rgb32, 40, 30, 160),
                &EncodeRequest::new(1)
            ),
            Err(ImageEncodeError::BadBitmap { .. })
        ));
        assert!(
            view(&d, BitmapFormat::Rgb32, 40, 30, 100)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn other_formats_round_trip() {
        let glz = new_glz_window(1 << 20);
        let d24 = desktop(40, 30, 3);
        let img = enc(ImageCompression::Lz)
            .encode(
                &view(&d24, BitmapFormat::Rgb24, 40, 30, 120),
                &EncodeRequest::new(1),
            )
            .unwrap();
        assert_eq!(img.codec_name(), "lz_rgb");
        let want: Vec<u32> = d24
            .chunks(3)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 0]))
            .collect();
        assert_eq!(decode(&img, &glz), want);
        // A palette bitmap goes LZ_PLT with its palette.
        let idx: Vec<u8> = (0..40 * 30).map(|i| (i % 4) as u8).collect();
        let ents = vec![0x00ff_0000, 0x0000_ff00, 0x0000_00ff, 0x00ff_ffff];
        let mut req = EncodeRequest::new(1);
        req.palette = PaletteSource::Inline(spice_proto::types::Palette {
            unique: 5,
            ents: ents.clone(),
        });
        for mode in [
            ImageCompression::Lz,
            ImageCompression::AutoGlz,
            ImageCompression::Quic,
        ] {
            let img = enc(mode)
                .encode(&view(&idx, BitmapFormat::EightBit, 40, 30, 40), &req)
                .unwrap();
            let want_codec = if mode == ImageCompression::Quic {
                "bitmap"
            } else {
                "lz_plt"
            };
            assert_eq!(img.codec_name(), want_codec, "{mode:?}");
            let want: Vec<u32> = idx.iter().map(|&i| ents[i as usize]).collect();
            assert_eq!(decode(&img, &glz), want, "{mode:?}");
        }
        // RGBA with JPEG on: JPEG_ALPHA, alpha exact.
        let mut rgba = photo(40, 30);
        for (i, p) in rgba.chunks_mut(4).enumerate() {
            p[3] = (i % 251) as u8;
        }
        let mut e = ImageEncoder::new(EncoderSettings {
            compression: ImageCompression::AutoGlz,
            jpeg: true,
            ..EncoderSettings::default()
        });
        let mut req = EncodeRequest::new(1);
        req.can_lossy = true;
        let img = e
            .encode(&view(&rgba, BitmapFormat::Rgba, 40, 30, 160), &req)
            .unwrap();
        assert_eq!(img.codec_name(), "jpeg_alpha");
        assert!(img.lossy);
        let mut ctx = ImageContext::new(ImageLimits::default(), glz.clone());
        let px = ctx.decode(&img.image(), &Surfaces::new(1 << 20)).unwrap();
        assert!(px.lossy);
        let alphas: Vec<u8> = px.pixmap.pixels().iter().map(|p| (p >> 24) as u8).collect();
        let want: Vec<u8> = rgba.chunks(4).map(|p| p[3]).collect();
        assert_eq!(alphas, want);
    }
}
