//! The image graduality classifier and spice-server's codec choice for a bitmap.
//!
//! *Graduality* (`bitmap_get_graduality_level`) says how photo-like an image is: it samples
//! every 15th pixel and compares it with its right, lower and lower-right neighbours. A pair
//! scores +0.5 when identical, +1.0 when "contrasting" (some channel differs by 60 or more;
//! 8 or more on the 5-bit channels of 16-bit images) and −0.25 otherwise; a sample whose
//! three pairs are all identical scores 0. The mean over all pairs is below −0.03 (below 0
//! for 16-bit) for [`Graduality::High`] (gradients, photos: QUIC or JPEG), below 0.002 for
//! [`Graduality::Medium`], else [`Graduality::Low`] (flat desktop content, text, or noise:
//! LZ/GLZ).
//!
//! [`choose_codec`] reproduces the decision of `dcc.cpp` (`get_compression_for_bitmap` and
//! `dcc_compress_image`): the client's/server's image-compression preference, the bitmap's
//! format, size and stride, the graduality, whether the drawing may be lossy and JPEG is
//! enabled on this link (WAN), the GLZ dictionary size and the client's LZ4 capability.

/// How photo-like an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Graduality {
    /// Few smooth transitions: desktop content, text, flat colour, or pure noise.
    Low,
    /// In between (also counts as "gradual" for video-stream detection).
    Medium,
    /// Mostly small neighbour differences: photos, gradients, video.
    High,
}

/// Pixel layouts the classifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradualFormat {
    /// Little-endian x1r5g5b5, 2 bytes per pixel.
    Rgb16,
    /// B, G, R.
    Rgb24,
    /// B, G, R, X (or A; the fourth byte is ignored).
    Rgb32,
}

impl GradualFormat {
    fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 => 4,
        }
    }
}

/// A borrowed bitmap to classify.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyImage<'a> {
    /// Rows, `stride` bytes apart.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Pixel layout.
    pub format: GradualFormat,
}

impl ClassifyImage<'_> {
    fn fits(&self) -> bool {
        let row = self.width as usize * self.format.bytes_per_pixel();
        self.height == 0
            || (self.stride >= row
                && self
                    .stride
                    .checked_mul(self.height as usize - 1)
                    .and_then(|n| n.checked_add(row))
                    .is_some_and(|n| n <= self.data.len()))
    }
}

const SAMPLE_JUMP: usize = 15;
const HIGH_TH_RGB24: f64 = -0.03;
const HIGH_TH_RGB16: f64 = 0.0;
const MEDIUM_TH: f64 = 0.002;

// Pair scores in quarters: identical +0.5, contrasting +1.0, smooth −0.25. Every partial sum
// of quarter multiples is exact in an f64 (far below 2^53), so counting in integers and
// dividing once gives the same bits as the reference's f64 running sum.
const SAME_Q: i64 = 2;
const CONTRAST_Q: i64 = 4;
const SMOOTH_Q: i64 = -1;
/// Score of a chunk too small to sample (the reference's 1.0 over one "pair").
const TINY_CHUNK_Q: i64 = 4;
/// A channel difference this large (either way) makes a pair contrasting: 8-bit channels.
const CONTRAST_TH_8BIT: i32 = 60;
/// The same for the 5-bit channels of 16-bit pixels.
const CONTRAST_TH_5BIT: i32 = 8;

/// One pixel layout: how to load a pixel as packed channels and compare two of them.
trait Layout {
    const BPP: usize;
    /// The pixel at byte `off` of `data`, channels packed in the low bits, padding cleared.
    fn load(data: &[u8], off: usize) -> u32;
    /// The pixels at byte `off` and the next one, as [`load`](Self::load) gives them.
    #[inline(always)]
    fn load_pair(data: &[u8], off: usize) -> (u32, u32) {
        (Self::load(data, off), Self::load(data, off + Self::BPP))
    }
    /// The pair's score in quarters, and whether the two pixels are identical.
    fn pair(a: u32, b: u32) -> (i64, bool);
}

#[inline(always)]
fn pair_8bit(a: u32, b: u32, th: i32) -> (i64, bool) {
    if a == b {
        return (SAME_Q, true);
    }
    for shift in [0, 8, 16] {
        let d = ((a >> shift) & 0xff) as i32 - ((b >> shift) & 0xff) as i32;
        if d.abs() >= th {
            return (CONTRAST_Q, false);
        }
    }
    (SMOOTH_Q, false)
}

struct Bgrx;
impl Layout for Bgrx {
    const BPP: usize = 4;
    #[inline(always)]
    fn load(data: &[u8], off: usize) -> u32 {
        let p: [u8; 4] = data[off..off + 4].try_into().unwrap_or([0; 4]);
        u32::from_le_bytes(p) & 0x00ff_ffff
    }
    #[inline(always)]
    fn load_pair(data: &[u8], off: usize) -> (u32, u32) {
        let p: [u8; 8] = data[off..off + 8].try_into().unwrap_or([0; 8]);
        let v = u64::from_le_bytes(p);
        (v as u32 & 0x00ff_ffff, (v >> 32) as u32 & 0x00ff_ffff)
    }
    #[inline(always)]
    fn pair(a: u32, b: u32) -> (i64, bool) {
        pair_8bit(a, b, CONTRAST_TH_8BIT)
    }
}

struct Bgr;
impl Layout for Bgr {
    const BPP: usize = 3;
    #[inline(always)]
    fn load(data: &[u8], off: usize) -> u32 {
        let p = &data[off..off + 3];
        u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16
    }
    #[inline(always)]
    fn pair(a: u32, b: u32) -> (i64, bool) {
        pair_8bit(a, b, CONTRAST_TH_8BIT)
    }
}

struct X1r5g5b5;
impl Layout for X1r5g5b5 {
    const BPP: usize = 2;
    #[inline(always)]
    fn load(data: &[u8], off: usize) -> u32 {
        let p = &data[off..off + 2];
        u32::from(u16::from_le_bytes([p[0], p[1]])) & 0x7fff
    }
    #[inline(always)]
    fn pair(a: u32, b: u32) -> (i64, bool) {
        if a == b {
            return (SAME_Q, true);
        }
        for shift in [0, 5, 10] {
            let d = ((a >> shift) & 0x1f) as i32 - ((b >> shift) & 0x1f) as i32;
            if d.abs() >= CONTRAST_TH_5BIT {
                return (CONTRAST_Q, false);
            }
        }
        (SMOOTH_Q, false)
    }
}

/// Score (in quarters) and number of pairs of one chunk of `rows` rows starting at
/// `first_row`. The caller has checked that the image [`fits`](ClassifyImage::fits) and that
/// the chunk lies within its height.
fn chunk_score<L: Layout>(img: &ClassifyImage<'_>, first_row: usize, rows: usize) -> (i64, usize) {
    let w = img.width as usize;
    if w <= 1 || rows <= 1 {
        return (TINY_CHUNK_Q, 1);
    }
    let jump = if SAMPLE_JUMP % w != 0 {
        SAMPLE_JUMP
    } else {
        SAMPLE_JUMP - 1
    };
    let data = img.data;
    let stride = img.stride;
    let (mut quarters, mut samples) = (0i64, 0usize);
    // The sample index `row * w + col` of the reference, walked as (row, col).
    let (mut r, mut c) = (0usize, w / 2);
    let mut base = first_row * stride;
    while r < rows - 1 {
        if c + 1 == w {
            // Last pixel of a row has no right neighbour: use its left neighbour.
            c -= 1;
        }
        let off = base + c * L::BPP;
        let (p, right) = L::load_pair(data, off);
        let (down, diag) = L::load_pair(data, off + stride);
        let (q0, s0) = L::pair(p, right);
        let (q1, s1) = L::pair(p, down);
        let (q2, s2) = L::pair(p, diag);
        if !(s0 && s1 && s2) {
            quarters += q0 + q1 + q2;
        }
        samples += 1;
        c += jump;
        if c >= w {
            r += c / w;
            c %= w;
            base = (first_row + r) * stride;
        }
    }
    (quarters, samples * 3)
}

/// The graduality score of an image split into chunks of `chunk_rows` rows (spice-server
/// scores each chunk of the guest bitmap on its own; one chunk of `height` rows is the
/// common case). Rows not covered by `chunk_rows` are ignored. `None` if the buffer is too
/// small for the declared size or nothing was sampled.
pub fn graduality_score_chunked(img: &ClassifyImage<'_>, chunk_rows: &[u32]) -> Option<f64> {
    if !img.fits() {
        return None;
    }
    let chunk = match img.format {
        GradualFormat::Rgb16 => chunk_score::<X1r5g5b5>,
        GradualFormat::Rgb24 => chunk_score::<Bgr>,
        GradualFormat::Rgb32 => chunk_score::<Bgrx>,
    };
    let (mut quarters, mut samples) = (0i64, 0usize);
    let mut row = 0usize;
    for &rows in chunk_rows {
        let rows = (rows as usize).min(img.height as usize - row.min(img.height as usize));
        if rows == 0 {
            continue;
        }
        let (q, n) = chunk(img, row, rows);
        quarters += q;
        samples += n;
        row += rows;
    }
    (samples > 0).then(|| quarters as f64 / 4.0 / samples as f64)
}

/// The graduality score of an image taken as one chunk. See [`graduality_score_chunked`].
pub fn graduality_score(img: &ClassifyImage<'_>) -> Option<f64> {
    graduality_score_chunked(img, &[img.height])
}

/// Maps a score to a level with the reference thresholds for the format.
pub fn level_for_score(score: f64, format: GradualFormat) -> Graduality {
    let high = match format {
        GradualFormat::Rgb16 => HIGH_TH_RGB16,
        _ => HIGH_TH_RGB24,
    };
    if score < high {
        Graduality::High
    } else if score < MEDIUM_TH {
        Graduality::Medium
    } else {
        Graduality::Low
    }
}

/// Classifies an image taken as one chunk. Images too small to sample (width or height
/// ≤ 1) and malformed views are [`Graduality::Low`], as the reference's score of 1 is.
pub fn graduality(img: &ClassifyImage<'_>) -> Graduality {
    graduality_score(img).map_or(Graduality::Low, |s| level_for_score(s, img.format))
}

// ---------------------------------------------------------------------------------------
// Codec choice

/// `SpiceImageCompression`: the image-compression preference (wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ImageCompression {
    /// No compression.
    Off = 1,
    /// QUIC for photo-like images, GLZ otherwise (server default).
    AutoGlz = 2,
    /// QUIC for photo-like images, LZ otherwise.
    AutoLz = 3,
    /// Always QUIC where possible.
    Quic = 4,
    /// Always GLZ where possible.
    Glz = 5,
    /// Always LZ where possible.
    Lz = 6,
    /// Always LZ4 where possible (needs the client's LZ4 capability).
    Lz4 = 7,
}

impl ImageCompression {
    /// Parses a wire value (`None` for INVALID = 0 and unknown values).
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Off,
            2 => Self::AutoGlz,
            3 => Self::AutoLz,
            4 => Self::Quic,
            5 => Self::Glz,
            6 => Self::Lz,
            7 => Self::Lz4,
            _ => return None,
        })
    }
}

/// `SpiceBitmapFmt` (wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BitmapFormat {
    /// 1 bit per pixel, palette, little-endian bit order.
    OneBitLe = 1,
    /// 1 bit per pixel, palette, big-endian bit order.
    OneBitBe = 2,
    /// 4 bits per pixel, palette, little-endian.
    FourBitLe = 3,
    /// 4 bits per pixel, palette, big-endian.
    FourBitBe = 4,
    /// 8 bits per pixel, palette.
    EightBit = 5,
    /// x1r5g5b5.
    Rgb16 = 6,
    /// B, G, R.
    Rgb24 = 7,
    /// B, G, R, X.
    Rgb32 = 8,
    /// B, G, R, A.
    Rgba = 9,
    /// 8-bit alpha only.
    A8 = 10,
}

impl BitmapFormat {
    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::OneBitLe,
            2 => Self::OneBitBe,
            3 => Self::FourBitLe,
            4 => Self::FourBitBe,
            5 => Self::EightBit,
            6 => Self::Rgb16,
            7 => Self::Rgb24,
            8 => Self::Rgb32,
            9 => Self::Rgba,
            10 => Self::A8,
            _ => return None,
        })
    }

    /// Palette formats (QUIC cannot carry them).
    pub fn is_palette(self) -> bool {
        (self as u8) <= 5
    }

    /// "RGB" formats in the reference's sense: 16/24/32-bit, RGBA and A8.
    pub fn is_rgb(self) -> bool {
        !self.is_palette()
    }

    /// Formats the graduality classifier reads: the RGB formats except A8.
    pub fn has_graduality(self) -> bool {
        self.gradual_format().is_some()
    }

    /// The classifier layout for this format, if any.
    pub fn gradual_format(self) -> Option<GradualFormat> {
        match self {
            Self::Rgb16 => Some(GradualFormat::Rgb16),
            Self::Rgb24 => Some(GradualFormat::Rgb24),
            Self::Rgb32 | Self::Rgba => Some(GradualFormat::Rgb32),
            _ => None,
        }
    }

    /// Bytes of one row of `width` pixels without padding.
    pub fn row_bytes(self, width: u32) -> u64 {
        let w = u64::from(width);
        match self {
            Self::OneBitLe | Self::OneBitBe => w.div_ceil(8),
            Self::FourBitLe | Self::FourBitBe => w.div_ceil(2),
            Self::EightBit | Self::A8 => w,
            Self::Rgb16 => w * 2,
            Self::Rgb24 => w * 3,
            Self::Rgb32 | Self::Rgba => w * 4,
        }
    }
}

/// The bitmap facts the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapDesc {
    /// Pixel format.
    pub format: BitmapFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row in guest memory.
    pub stride: u32,
    /// The guest may change the bitmap while it is encoded (`SPICE_CHUNKS_FLAGS_UNSTABLE`).
    pub unstable: bool,
}

impl BitmapDesc {
    /// Rows are padded beyond the pixel bytes.
    pub fn has_extra_stride(&self) -> bool {
        self.format.row_bytes(self.width) < u64::from(self.stride)
    }
}

/// A drawable's cached graduality (`copy_bitmap_graduality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedGraduality {
    /// Not computed (INVALID): the choice computes it from the pixels.
    NotComputed,
    /// Cannot be computed for this bitmap (NOT_AVAIL: padded, unstable or no RGB).
    NotAvailable,
    /// The computed level.
    Level(Graduality),
}

/// Everything [`choose_codec`] needs besides the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChoiceInput {
    /// The client's preferred compression (or the server's setting).
    pub preferred: ImageCompression,
    /// The bitmap.
    pub bitmap: BitmapDesc,
    /// Whether the image belongs to a drawable (GLZ needs one; its graduality is cached).
    pub has_drawable: bool,
    /// The drawable's cached graduality (ignored without a drawable).
    pub cached_graduality: CachedGraduality,
    /// The drawing may be sent lossy (no later operation needs exact pixels).
    pub can_lossy: bool,
    /// JPEG is enabled on this link (see [`jpeg_enabled`]).
    pub jpeg_enabled: bool,
    /// Size of the GLZ dictionary window in pixels.
    pub glz_dictionary_pixels: u64,
    /// The GLZ dictionary is frozen (migration).
    pub glz_frozen: bool,
    /// The client advertised `SPICE_DISPLAY_CAP_LZ4_COMPRESSION`.
    pub client_lz4: bool,
    /// The client is connected over a UNIX socket (never compressed).
    pub unix_socket: bool,
}

/// The codec chosen for a bitmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Send the raw bitmap.
    Raw,
    /// QUIC.
    Quic,
    /// LZ (or LZ_PLT for palettes).
    Lz,
    /// GLZ (possibly wrapped in zlib on WAN by the GLZ sender).
    Glz,
    /// LZ4.
    Lz4,
    /// JPEG (lossy).
    Jpeg,
    /// JPEG of the colour + LZ XXXA of the alpha (lossy colour).
    JpegAlpha,
}

/// Bitmaps below this many bytes (`height * stride`) are sent raw.
pub const MIN_SIZE_TO_COMPRESS: u64 = 54;
/// QUIC needs at least this many pixels in each direction.
pub const MIN_DIMENSION_TO_QUIC: u32 = 3;

/// The `jpeg-wan-compression` / `zlib-glz-wan-compression` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanCompression {
    /// Only on low-bandwidth links.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Bit rate below which a link is "low bandwidth" (main channel network test).
pub const LOW_BANDWIDTH_BIT_RATE: u64 = 10 * 1024 * 1024;

/// Whether JPEG (or zlib over GLZ) is enabled for a link with the given setting and
/// measured bit rate (`None`: not measured, treated as not low-bandwidth).
pub fn jpeg_enabled(setting: WanCompression, measured_bit_rate: Option<u64>) -> bool {
    match setting {
        WanCompression::Always => true,
        WanCompression::Never => false,
        WanCompression::Auto => measured_bit_rate.is_some_and(|r| r < LOW_BANDWIDTH_BIT_RATE),
    }
}

/// Chooses the codec for a bitmap as spice-server does. `graduality` is called (at most
/// once) only when the decision needs a fresh graduality of the bitmap's pixels, e.g.
/// `|| classify::graduality(&img)`.
///
/// The result is the first choice; spice-server falls back to raw when the QUIC or JPEG
/// output is larger than the bitmap, and GLZ encoders may wrap their output in zlib.
pub fn choose_codec(input: &ChoiceInput, graduality: impl FnOnce() -> Graduality) -> Codec {
    let bm = &input.bitmap;
    if input.unix_socket {
        return Codec::Raw;
    }
    let can_quic = !bm.format.is_palette()
        && bm.width >= MIN_DIMENSION_TO_QUIC
        && bm.height >= MIN_DIMENSION_TO_QUIC;
    let can_lz = !bm.has_extra_stride() && !bm.unstable;
    let first = first_choice(input, can_quic, can_lz, graduality);
    match first {
        Codec::Quic => {
            let jpeg_ok = input.can_lossy
                && input.jpeg_enabled
                && (bm.format != BitmapFormat::Rgba || !bm.has_extra_stride());
            if !jpeg_ok {
                Codec::Quic
            } else {
                match bm.format {
                    BitmapFormat::Rgb16 | BitmapFormat::Rgb24 | BitmapFormat::Rgb32 => Codec::Jpeg,
                    BitmapFormat::Rgba => Codec::JpegAlpha,
                    // The JPEG encoder refuses other formats and the bitmap goes out raw.
                    _ => Codec::Raw,
                }
            }
        }
        Codec::Glz => {
            let pixels = u64::from(bm.width) * u64::from(bm.height);
            if pixels < input.glz_dictionary_pixels && !input.glz_frozen {
                Codec::Glz
            } else {
                Codec::Lz
            }
        }
        Codec::Lz4 if !input.client_lz4 => Codec::Lz,
        other => other,
    }
}

fn first_choice(
    input: &ChoiceInput,
    can_quic: bool,
    can_lz: bool,
    graduality: impl FnOnce() -> Graduality,
) -> Codec {
    let bm = &input.bitmap;
    if u64::from(bm.height) * u64::from(bm.stride) < MIN_SIZE_TO_COMPRESS {
        return Codec::Raw;
    }
    let mut pref = match input.preferred {
        ImageCompression::Off => return Codec::Raw,
        ImageCompression::Quic => return if can_quic { Codec::Quic } else { Codec::Raw },
        ImageCompression::AutoGlz | ImageCompression::AutoLz => {
            if can_quic {
                let cached = if input.has_drawable {
                    input.cached_graduality
                } else {
                    CachedGraduality::NotComputed
                };
                match cached {
                    CachedGraduality::NotComputed => {
                        if bm.format.has_graduality() && graduality() == Graduality::High {
                            return Codec::Quic;
                        }
                    }
                    CachedGraduality::NotAvailable | CachedGraduality::Level(_) => {
                        if !can_lz || cached == CachedGraduality::Level(Graduality::High) {
                            return Codec::Quic;
                        }
                    }
                }
            }
            if input.preferred == ImageCompression::AutoLz {
                Codec::Lz
            } else {
                Codec::Glz
            }
        }
        ImageCompression::Glz => Codec::Glz,
        ImageCompression::Lz => Codec::Lz,
        ImageCompression::Lz4 => Codec::Lz4,
    };
    if pref == Codec::Glz && (!input.has_drawable || !bm.format.has_graduality()) {
        pref = Codec::Lz;
    }
    if pref == Codec::Lz4 && !bm.format.is_rgb() {
        pref = Codec::Lz;
    }
    if can_lz { pref } else { Codec::Raw }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward implementation the fast one replaced, kept to check it.
    mod reference {
        use super::super::{ClassifyImage, GradualFormat, SAMPLE_JUMP};

        fn rgb(img: &ClassifyImage<'_>, row: usize, col: usize) -> [i32; 3] {
            let bpp = img.format.bytes_per_pixel();
            let i = row * img.stride + col * bpp;
            let p = &img.data[i..i + bpp];
            match img.format {
                GradualFormat::Rgb16 => {
                    let v = i32::from(u16::from_le_bytes([p[0], p[1]]));
                    [(v >> 10) & 0x1f, (v >> 5) & 0x1f, v & 0x1f]
                }
                _ => [i32::from(p[2]), i32::from(p[1]), i32::from(p[0])],
            }
        }

        #[derive(Clone, Copy, PartialEq, Eq)]
        enum PairKind {
            Same,
            Contrast,
            Smooth,
        }

        fn compare(a: [i32; 3], b: [i32; 3], th: i32) -> PairKind {
            let mut any = false;
            for c in 0..3 {
                let d = a[c] - b[c];
                if d <= -th || d >= th {
                    return PairKind::Contrast;
                }
                any |= d != 0;
            }
            if any {
                PairKind::Smooth
            } else {
                PairKind::Same
            }
        }

        fn chunk_score(img: &ClassifyImage<'_>, first_row: usize, rows: usize) -> (f64, usize) {
            let w = img.width as usize;
            if w <= 1 || rows <= 1 {
                return (1.0, 1);
            }
            let jump = if SAMPLE_JUMP % w != 0 {
                SAMPLE_JUMP
            } else {
                SAMPLE_JUMP - 1
            };
            let th = match img.format {
                GradualFormat::Rgb16 => 8,
                _ => 60,
            };
            let last_line = (rows - 1) * w;
            let (mut sum, mut samples) = (0.0, 0usize);
            let mut idx = w / 2;
            while idx < last_line {
                if (idx + 1) % w == 0 {
                    idx -= 1;
                }
                let (r, c) = (first_row + idx / w, idx % w);
                let p = rgb(img, r, c);
                let pairs = [
                    compare(p, rgb(img, r, c + 1), th),
                    compare(p, rgb(img, r + 1, c), th),
                    compare(p, rgb(img, r + 1, c + 1), th),
                ];
                if pairs.iter().any(|&k| k != PairKind::Same) {
                    sum += pairs
                        .iter()
                        .map(|k| match k {
                            PairKind::Same => 0.5,
                            PairKind::Contrast => 1.0,
                            PairKind::Smooth => -0.25,
                        })
                        .sum::<f64>();
                }
                samples += 1;
                idx += jump;
            }
            (sum, samples * 3)
        }

        pub fn graduality_score_chunked(
            img: &ClassifyImage<'_>,
            chunk_rows: &[u32],
        ) -> Option<f64> {
            if !img.fits() {
                return None;
            }
            let (mut sum, mut samples) = (0.0, 0usize);
            let mut row = 0usize;
            for &rows in chunk_rows {
                let rows = (rows as usize).min(img.height as usize - row.min(img.height as usize));
                if rows == 0 {
                    continue;
                }
                let (s, n) = chunk_score(img, row, rows);
                sum += s;
                samples += n;
                row += rows;
            }
            (samples > 0).then(|| sum / samples as f64)
        }
    }

    fn format() -> impl Strategy<Value = GradualFormat> {
        prop_oneof![
            Just(GradualFormat::Rgb16),
            Just(GradualFormat::Rgb24),
            Just(GradualFormat::Rgb32),
        ]
    }

    /// Pixels drawn from a small palette of close and far values so that identical,
    /// smooth and contrasting pairs all occur.
    fn image_bytes(len: usize, seed: u64, levels: u8) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x >> 32) as u8;
                match levels {
                    0 => v,
                    1 => v % 4,
                    2 => [0u8, 3, 7, 8, 59, 60, 61, 200][usize::from(v % 8)],
                    _ => (v % 3) * 70,
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn fast_score_is_bit_identical_to_reference(
            format in format(),
            width in 0u32..70,
            height in 0u32..40,
            pad in 0usize..9,
            extra in 0usize..5,
            seed in any::<u64>(),
            levels in 0u8..4,
            short in any::<bool>(),
            chunks in proptest::collection::vec(0u32..20, 0..5),
        ) {
            let stride = width as usize * format.bytes_per_pixel() + pad;
            let mut len = stride * height as usize + extra;
            if short && len > 0 {
                len -= 1 + pad.min(len - 1);
            }
            let data = image_bytes(len, seed, levels);
            let img = ClassifyImage { data: &data, width, height, stride, format };
            let mut all = chunks.clone();
            all.push(height);
            for c in [&chunks[..], &all[..], &[height][..]] {
                let fast = graduality_score_chunked(&img, c);
                let slow = reference::graduality_score_chunked(&img, c);
                prop_assert_eq!(fast.map(f64::to_bits), slow.map(f64::to_bits));
            }
        }
    }

    #[test]
    fn wide_images_match_reference() {
        for format in [
            GradualFormat::Rgb16,
            GradualFormat::Rgb24,
            GradualFormat::Rgb32,
        ] {
            for (width, height, levels) in
                [(1920, 64, 0), (1921, 33, 2), (1023, 17, 3), (15, 90, 1)]
            {
                let stride = width as usize * format.bytes_per_pixel() + 4;
                let data = image_bytes(stride * height as usize, u64::from(width), levels);
                let img = ClassifyImage {
                    data: &data,
                    width,
                    height,
                    stride,
                    format,
                };
                for chunks in [&[height][..], &[7, 0, 30, 100][..], &[1, 1, 2][..]] {
                    assert_eq!(
                        graduality_score_chunked(&img, chunks).map(f64::to_bits),
                        reference::graduality_score_chunked(&img, chunks).map(f64::to_bits),
                        "{format:?} {width}x{height} {chunks:?}"
                    );
                }
            }
        }
    }
}
