//! Errors of the canvas.

use spice_proto::types::{BitmapFormat, ImageType, SurfaceFormat};

/// Why a surface operation, an image decode or a draw was refused.
///
/// Every value comes from bytes the peer sent (or from a caller cap); none of them is a bug
/// of the canvas.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanvasError {
    /// A draw or image named a surface that does not exist.
    #[error("unknown surface {0}")]
    UnknownSurface(u32),
    /// SURFACE_CREATE with a format the protocol does not define.
    #[error("unsupported surface format {0:?}")]
    UnsupportedSurfaceFormat(SurfaceFormat),
    /// A surface of zero width or height, or wider / taller than [`crate::MAX_DIMENSION`].
    #[error("bad surface size {width}x{height}")]
    BadSurfaceSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// Creating the surface would pass the caller's cap on the pixels of all surfaces.
    #[error("surfaces would hold {requested} pixels, over the cap of {limit}")]
    SurfacePixelsOverCap {
        /// Pixels after the creation.
        requested: u64,
        /// The cap given to [`crate::Surfaces::new`].
        limit: u64,
    },
    /// An image larger than the caller's cap, or with a zero dimension.
    #[error("image of {width}x{height} refused (cap {limit} pixels)")]
    ImageTooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The cap in pixels.
        limit: u64,
    },
    /// The decoded stream's size disagrees with the image descriptor.
    #[error("image descriptor says {width}x{height}, stream holds {got_width}x{got_height}")]
    ImageSizeMismatch {
        /// Descriptor width.
        width: u32,
        /// Descriptor height.
        height: u32,
        /// Stream width.
        got_width: u32,
        /// Stream height.
        got_height: u32,
    },
    /// An image type the canvas cannot draw (RESERVED or unknown).
    #[error("unsupported image type {0:?}")]
    UnsupportedImageType(ImageType),
    /// A BITMAP format the canvas cannot decode.
    #[error("unsupported bitmap format {0:?}")]
    UnsupportedBitmapFormat(BitmapFormat),
    /// A BITMAP whose stride or data are too short for its width and rows.
    #[error("bitmap of {width}x{height} with stride {stride} has {len} bytes")]
    BadBitmap {
        /// Width.
        width: u32,
        /// Rows.
        height: u32,
        /// Stride.
        stride: u32,
        /// Bytes present.
        len: usize,
    },
    /// A palette image without palette, or naming a palette that is not cached.
    #[error("palette {0:?} is not available")]
    MissingPalette(Option<u64>),
    /// FROM_CACHE for an id that is not in the image cache.
    #[error("image {0} is not in the cache")]
    NotInCache(u64),
    /// FROM_CACHE_LOSSLESS for an image cached from a lossy (JPEG) stream.
    #[error("image {0} is cached lossy but was asked for lossless")]
    CachedLossy(u64),
    /// A GLZ image refers to an image that has not been decoded yet. Decode the missing
    /// image (another display channel's message may carry it), then retry this one.
    #[error("GLZ image {id} needs image {missing}, not decoded yet")]
    GlzMissingImage {
        /// The image being decoded.
        id: u64,
        /// The image it refers to.
        missing: u64,
    },
    /// An LZ / LZ_PLT stream of the wrong kind for its image type.
    #[error("{what}: stream kind does not match the image type")]
    StreamKindMismatch {
        /// Which image type.
        what: &'static str,
    },
    /// A clip with more rectangles than the canvas handles ([`crate::MAX_CLIP_RECTS`]).
    #[error("clip with {0} rectangles is too complex")]
    ClipTooComplex(usize),
    /// A stroke whose path or pixel count is over the canvas's limits.
    #[error("stroke too complex: {0}")]
    StrokeTooComplex(&'static str),
    /// QUIC decoding failed.
    #[error("QUIC: {0}")]
    Quic(#[from] spice_codecs::quic::QuicError),
    /// LZ decoding failed.
    #[error("LZ: {0}")]
    Lz(#[from] spice_codecs::lz::LzError),
    /// GLZ decoding failed (other than a missing image).
    #[error("GLZ: {0}")]
    Glz(spice_codecs::glz::GlzError),
    /// ZLIB_GLZ inflation failed.
    #[error("ZLIB_GLZ: {0}")]
    ZlibGlz(spice_codecs::zlib_glz::ZlibGlzError),
    /// JPEG / JPEG_ALPHA decoding failed.
    #[error("JPEG: {0}")]
    Jpeg(#[from] spice_codecs::jpeg::JpegError),
    /// LZ4 decoding failed.
    #[error("LZ4: {0}")]
    Lz4(#[from] spice_codecs::lz4::Lz4Error),
}

impl From<spice_codecs::glz::GlzError> for CanvasError {
    fn from(e: spice_codecs::glz::GlzError) -> Self {
        match e {
            spice_codecs::glz::GlzError::MissingImage { id, missing } => {
                CanvasError::GlzMissingImage { id, missing }
            }
            e => CanvasError::Glz(e),
        }
    }
}

impl From<spice_codecs::zlib_glz::ZlibGlzError> for CanvasError {
    fn from(e: spice_codecs::zlib_glz::ZlibGlzError) -> Self {
        match e {
            spice_codecs::zlib_glz::ZlibGlzError::Glz(g) => g.into(),
            e => CanvasError::ZlibGlz(e),
        }
    }
}
