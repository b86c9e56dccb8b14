//! Image encoding for the display channel: one bitmap in, one `SpiceImage` body out, per the
//! compression mode (off, quic, lz, glz, auto_glz, auto_lz, lz4), with JPEG / JPEG_ALPHA when
//! jpeg-wan applies and ZLIB_GLZ_RGB when zlib-glz-wan applies.
//!
//! The choice is spice-codecs' [`choose_codec`] (the reference server's rules, including the
//! graduality classifier of the auto modes); this module runs the chosen codec, falls back as
//! spice-server does (QUIC/JPEG larger than the raw bitmap → raw, GLZ failure → LZ, LZ failure
//! → raw) and owns the encoded bytes.

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
        classify::choose_codec(&input, || graduality_of(bm))
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
