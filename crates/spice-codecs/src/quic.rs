//! QUIC: the lossless image codec of SPICE (`SPICE_IMAGE_TYPE_QUIC`).
//!
//! QUIC is derived from SFALIC: each channel is predicted from its left and upper
//! neighbours (`(a + b) >> 1`), the modular residual is zig-zag mapped and written with
//! one of a family of length-limited Golomb–Rice codes, chosen per context bucket by
//! running code-length counters. Flat areas are coded as runs with the JPEG-LS melcode.
//! The stream is a sequence of little-endian `u32` words whose bits are filled MSB
//! first; it opens with a 20-byte header (`"QUIC"`, version 0, type, width, height)
//! and ends with one all-zero word.
//!
//! The encoder reproduces the reference encoder of spice-common byte for byte. The
//! decoder accepts every stream the reference decoder accepts, and rejects malformed
//! streams with a [`QuicError`] (it never panics, never reads outside the input and
//! never allocates more than the header declares, bounded by [`DecodeLimits`]).
//!
//! Encoding: [`encode`] / [`encode_into`] over an [`Image`] (caller's pixel buffer,
//! any stride, either row order). Decoding: [`decode_header`], then [`decode`] into a
//! caller's buffer with a caller-chosen stride, row order and [`PixelFormat`], or
//! [`decode_to_vec`].

use thiserror::Error;

/// Magic word at offset 0 (`"QUIC"` as little-endian bytes).
pub const MAGIC: u32 = 0x4349_5551;
/// The only stream version (major 0, minor 0).
pub const VERSION: u32 = 0;
/// Size of the stream header in bytes.
pub const HEADER_SIZE: usize = 20;
/// Largest `width * height` the reference decoder accepts (2^29 - 1).
pub const MAX_PIXELS_REFERENCE: u64 = (1 << 29) - 1;

/// The image type stored in a QUIC header (`QuicImageType`, a `u32` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageType {
    /// One 8-bit channel (1 byte per input pixel). Not accepted by spice-gtk.
    Gray = 1,
    /// Three 5-bit channels from a little-endian x1r5g5b5 `u16` (bit 15 ignored).
    Rgb16 = 2,
    /// Three 8-bit channels from B, G, R bytes.
    Rgb24 = 3,
    /// Three 8-bit channels from B, G, R, X bytes (X ignored).
    Rgb32 = 4,
    /// Three 8-bit channels plus alpha, from B, G, R, A bytes.
    Rgba = 5,
}

impl ImageType {
    /// The type for a header word, if it names one of the five types.
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Gray,
            2 => Self::Rgb16,
            3 => Self::Rgb24,
            4 => Self::Rgb32,
            5 => Self::Rgba,
            _ => return None,
        })
    }

    /// The header word of this type.
    pub fn to_u32(self) -> u32 {
        self as u32
    }

    /// The pixel layout the encoder reads for this type, and the decoder's exact output.
    pub fn natural_format(self) -> PixelFormat {
        match self {
            Self::Gray => PixelFormat::Gray8,
            Self::Rgb16 => PixelFormat::Rgb16,
            Self::Rgb24 => PixelFormat::Rgb24,
            Self::Rgb32 => PixelFormat::Rgb32,
            Self::Rgba => PixelFormat::Rgba,
        }
    }
}

/// A pixel layout in memory (encoder input, decoder output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 1 byte per pixel: the gray level.
    Gray8,
    /// 2 bytes per pixel: little-endian x1r5g5b5; the decoder writes bit 15 as 0.
    Rgb16,
    /// 3 bytes per pixel: B, G, R.
    Rgb24,
    /// 4 bytes per pixel: B, G, R, X; the decoder writes X as 0.
    Rgb32,
    /// 4 bytes per pixel: B, G, R, A; the decoder writes A = 255 for types without alpha.
    Rgba,
}

impl PixelFormat {
    /// Bytes per pixel of this layout.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 | Self::Rgba => 4,
        }
    }
}

/// Order of the rows in a caller's buffer. QUIC streams always hold the top row first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowOrder {
    /// The first row in memory is the top row.
    #[default]
    TopDown,
    /// The first row in memory is the bottom row.
    BottomUp,
}

/// The 20-byte header of a QUIC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuicHeader {
    /// Image type (channels and bit depth).
    pub image_type: ImageType,
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
}

/// Caps a decoder applies before allocating or writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `width * height` accepted (never more than [`MAX_PIXELS_REFERENCE`]).
    pub max_pixels: u64,
    /// Largest output buffer [`decode_to_vec`] allocates, in bytes.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// 64 Mi pixels and 256 MiB.
    fn default() -> Self {
        Self {
            max_pixels: 1 << 26,
            max_bytes: 1 << 28,
        }
    }
}

/// An image to encode: pixels in the caller's buffer, in `image_type`'s natural layout
/// ([`ImageType::natural_format`]).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// What to code, and the layout of `data`.
    pub image_type: ImageType,
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
    /// Bytes from the start of one row to the start of the next in memory.
    pub stride: usize,
    /// Whether `data` starts with the top or the bottom row.
    pub row_order: RowOrder,
    /// The pixels: at least `stride * (height - 1) + width * bytes_per_pixel` bytes.
    pub data: &'a [u8],
}

/// Why a QUIC stream could not be decoded or an image could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuicError {
    /// Fewer than 20 bytes: no complete header.
    #[error("QUIC stream of {0} bytes is shorter than the 20-byte header")]
    HeaderTruncated(usize),
    /// The first word is not `"QUIC"`.
    #[error("bad QUIC magic {0:#010x}")]
    BadMagic(u32),
    /// The version word is not 0.
    #[error("unsupported QUIC version {0:#010x}")]
    BadVersion(u32),
    /// The type word is not in 1..=5.
    #[error("unknown QUIC image type {0}")]
    BadImageType(u32),
    /// Width or height is 0, or their product exceeds the reference limit of 2^29 - 1.
    #[error("invalid QUIC image size {width}x{height}")]
    BadDimensions {
        /// Width from the header or the caller.
        width: u32,
        /// Height from the header or the caller.
        height: u32,
    },
    /// The image is larger than the caller's [`DecodeLimits`].
    #[error("QUIC image of {pixels} pixels / {bytes} bytes exceeds the caller's limit")]
    TooLarge {
        /// `width * height`.
        pixels: u64,
        /// Bytes the output would need.
        bytes: u64,
    },
    /// The requested output layout cannot represent this image type exactly.
    #[error("cannot decode a QUIC {image_type:?} image to {format:?}")]
    UnsupportedFormat {
        /// The stream's image type.
        image_type: ImageType,
        /// The requested output layout.
        format: PixelFormat,
    },
    /// The stride is smaller than one row of pixels.
    #[error("stride {stride} is smaller than a row of {row_bytes} bytes")]
    StrideTooSmall {
        /// The caller's stride.
        stride: usize,
        /// `width * bytes_per_pixel`.
        row_bytes: usize,
    },
    /// The caller's pixel buffer is too small for the image.
    #[error("pixel buffer of {got} bytes, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The coded data ended before the last pixel.
    #[error("QUIC stream truncated")]
    Truncated,
    /// An escape code named a residual outside the channel's range.
    #[error("QUIC escape code out of range")]
    BadResidual,
    /// A run went past the end of its row segment ("wrong RLE" in the reference).
    #[error("QUIC run longer than the rest of the row")]
    RunTooLong,
}

/// Result alias of this module.
pub type Result<T, E = QuicError> = core::result::Result<T, E>;

// ---------------------------------------------------------------------------------
// Constant tables (quic-tables.txt): the update-interval randomiser, the melcode
// state table, and the counter-halving thresholds of evolution setting 3.

const TABRAND: [u32; 256] = [
    0x02c57542, 0x35427717, 0x2f5a2153, 0x9244f155, 0x7bd26d07, 0x354c6052, 0x57329b28, 0x2993868e,
    0x6cd8808c, 0x147b46e0, 0x99db66af, 0xe32b4cac, 0x1b671264, 0x9d433486, 0x62a4c192, 0x06089a4b,
    0x9e3dce44, 0xdaabee13, 0x222425ea, 0xa46f331d, 0xcd589250, 0x8bb81d7f, 0xc8b736b9, 0x35948d33,
    0xd7ac7fd0, 0x5fbe2803, 0x2cfbc105, 0x013dbc4e, 0x7a37820f, 0x39f88e9e, 0xedd58794, 0xc5076689,
    0xfcada5a4, 0x64c2f46d, 0xb3ba3243, 0x8974b4f9, 0x5a05aebd, 0x20afcd00, 0x39e2b008, 0x88a18a45,
    0x600bde29, 0xf3971ace, 0xf37b0a6b, 0x7041495b, 0x70b707ab, 0x06beffbb, 0x4206051f, 0xe13c4ee3,
    0xc1a78327, 0x91aa067c, 0x8295f72a, 0x732917a6, 0x1d871b4d, 0x4048f136, 0xf1840e7e, 0x6a6048c1,
    0x696cb71a, 0x7ff501c3, 0x0fc6310b, 0x57e0f83d, 0x8cc26e74, 0x11a525a2, 0x946934c7, 0x7cd888f0,
    0x8f9d8604, 0x4f86e73b, 0x04520316, 0xdeeea20c, 0xf1def496, 0x67687288, 0xf540c5b2, 0x22401484,
    0x3478658a, 0xc2385746, 0x01979c2c, 0x5dad73c8, 0x0321f58b, 0xf0fedbee, 0x92826ddf, 0x284bec73,
    0x5b1a1975, 0x03df1e11, 0x20963e01, 0xa17cf12b, 0x740d776e, 0xa7a6bf3c, 0x01b5cce4, 0x1118aa76,
    0xfc6fac0a, 0xce927e9b, 0x00bf2567, 0x806f216c, 0xbca69056, 0x795bd3e9, 0xc9dc4557, 0x8929b6c2,
    0x789d52ec, 0x3f3fbf40, 0xb9197368, 0xa38c15b5, 0xc3b44fa8, 0xca8333b0, 0xb7e8d590, 0xbe807feb,
    0xbf5f8360, 0xd99e2f5c, 0x372928e1, 0x7c757c4c, 0x0db5b154, 0xc01ede02, 0x1fc86e78, 0x1f3985be,
    0xb4805c77, 0x00c880fa, 0x974c1b12, 0x35ab0214, 0xb2dc840d, 0x5b00ae37, 0xd313b026, 0xb260969d,
    0x7f4c8879, 0x1734c4d3, 0x49068631, 0xb9f6a021, 0x6b863e6f, 0xcee5debf, 0x29f8c9fb, 0x53dd6880,
    0x72b61223, 0x1f67a9fd, 0x0a0f6993, 0x13e59119, 0x11cca12e, 0xfe6b6766, 0x16b6effc, 0x97918fc4,
    0xc2b8a563, 0x94f2f741, 0x0bfa8c9a, 0xd1537ae8, 0xc1da349c, 0x873c60ca, 0x95005b85, 0x9b5c080e,
    0xbc8abbd9, 0xe1eab1d2, 0x6dac9070, 0x4ea9ebf1, 0xe0cf30d4, 0x1ef5bd7b, 0xd161043e, 0x5d2fa2e2,
    0xff5d3cae, 0x86ed9f87, 0x2aa1daa1, 0xbd731a34, 0x9e8f4b22, 0xb1c2c67a, 0xc21758c9, 0xa182215d,
    0xccb01948, 0x8d168df7, 0x04238cfe, 0x368c3dbc, 0x0aeadca5, 0xbad21c24, 0x0a71fee5, 0x9fc5d872,
    0x54c152c6, 0xfc329483, 0x6783384a, 0xeddb3e1c, 0x65f90e30, 0x884ad098, 0xce81675a, 0x4b372f7d,
    0x68bf9a39, 0x43445f1e, 0x40f8d8cb, 0x90d5acb6, 0x4cd07282, 0x349eeb06, 0x0c9d5332, 0x520b24ef,
    0x80020447, 0x67976491, 0x2f931ca3, 0xfe9b0535, 0xfcd30220, 0x61a9e6cc, 0xa487d8d7, 0x3f7c5dd1,
    0x7d0127c5, 0x48f51d15, 0x60dea871, 0xc9a91cb7, 0x58b53bb3, 0x9d5e0b2d, 0x624a78b4, 0x30dbee1b,
    0x9bdf22e7, 0x1df5c299, 0x2d5643a7, 0xf4dd35ff, 0x03ca8fd6, 0x53b47ed8, 0x6f2c19aa, 0xfeb0c1f4,
    0x49e54438, 0x2f2577e6, 0xbf876969, 0x72440ea9, 0xfa0bafb8, 0x74f5b3a0, 0x7dd357cd, 0x89ce1358,
    0x6ef2cdda, 0x1e7767f3, 0xa6be9fdb, 0x4f5f88f8, 0xba994a3a, 0x08ca6b65, 0xe0893818, 0x9e00a16a,
    0xf42bfc8f, 0x9972eedc, 0x749c8b51, 0x32c05f5e, 0xd706805f, 0x6bfbb7cf, 0xd9210a10, 0x31a1db97,
    0x923a9559, 0x37a7a1f6, 0x059f8861, 0xca493e62, 0x65157e81, 0x8f6467dd, 0xab85ff9f, 0x9331aff2,
    0x8616b9f5, 0xedbd5695, 0xee7e29b1, 0x313ac44f, 0xb903112f, 0x432ef649, 0xdc0a36c0, 0x61cf2bba,
    0x81474925, 0xa8b6c7ad, 0xee5931de, 0xb2f8158d, 0x59fb7409, 0x2e3dfaed, 0x9af25a3f, 0xe1fed4d5,
];

/// melcode state → remainder length (JPEG-LS `J` table).
const MELC_J: [u8; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// Counter-halving threshold for each wait-mask index (evolution 3).
const BESTTRIG: [u32; 7] = [110, 550, 900, 800, 550, 400, 350];
/// Largest wait-mask index (updates every 1..=64 pixels).
const WMI_MAX: u32 = 6;
/// Pixels coded between two wait-mask index increments.
const WMI_NEXT: u32 = 2048;
/// Longest codeword of the Golomb family.
const MAX_CODE_LEN: u32 = 26;

// ---------------------------------------------------------------------------------
// Golomb family tables, built at compile time for 8 and 5 bits per channel.

struct Family {
    /// Zero-prefix length that marks an escape code, per code index.
    alt: [u32; 8],
    /// First residual coded with an escape, per code index.
    ngr: [u32; 8],
    /// Length of an escape codeword, per code index.
    esc_len: [u32; 8],
    /// Codeword per (code index, residual): `bits | len << 16`.
    codes: [[u32; 256]; 8],
    /// Code length per (code index, residual), for the model counters.
    lens: [[u8; 256]; 8],
    /// Context (previous residual) → bucket.
    bucket_of: [u8; 256],
    /// Modular residual → zig-zag mapped residual.
    u2l: [u8; 256],
    /// Zig-zag mapped residual → modular residual.
    l2u: [u8; 256],
}

const fn ceil_log2(v: u32) -> u32 {
    if v <= 1 {
        0
    } else {
        32 - (v - 1).leading_zeros()
    }
}

const fn build_family(bpc: u32) -> Family {
    let mut f = Family {
        alt: [0; 8],
        ngr: [0; 8],
        esc_len: [0; 8],
        codes: [[0; 256]; 8],
        lens: [[0; 256]; 8],
        bucket_of: [0; 256],
        u2l: [0; 256],
        l2u: [0; 256],
    };
    let size = 1u32 << bpc;
    let mask = size - 1;
    let mut l = 0;
    while l < bpc {
        let a = MAX_CODE_LEN - bpc;
        let b = (1u32 << (bpc - l)) - 1;
        let alt = if a < b { a } else { b };
        let ngr = alt << l;
        let suffix = ceil_log2(size - ngr);
        f.alt[l as usize] = alt;
        f.ngr[l as usize] = ngr;
        f.esc_len[l as usize] = alt + suffix;
        let mut m = 0;
        while m < size {
            let (bits, len) = if m < ngr {
                ((1 << l) | (m & ((1 << l) - 1)), (m >> l) + l + 1)
            } else {
                (m - ngr, alt + suffix)
            };
            f.codes[l as usize][m as usize] = bits | (len << 16);
            f.lens[l as usize][m as usize] = len as u8;
            m += 1;
        }
        l += 1;
    }
    let nbuckets = bpc;
    let mut ctx = 0;
    while ctx < 256 {
        let lg = 31 - (ctx + 1u32).leading_zeros();
        f.bucket_of[ctx as usize] = if lg < nbuckets - 1 { lg } else { nbuckets - 1 } as u8;
        ctx += 1;
    }
    let mut e = 0;
    while e < size {
        f.u2l[e as usize] = if e <= mask >> 1 {
            2 * e
        } else {
            2 * (mask - e) + 1
        } as u8;
        f.l2u[e as usize] = if e & 1 == 0 { e >> 1 } else { mask - (e >> 1) } as u8;
        e += 1;
    }
    f
}

static FAMILY8: Family = build_family(8);
static FAMILY5: Family = build_family(5);

#[inline(always)]
fn family<const BPC: u32>() -> &'static Family {
    if BPC == 8 { &FAMILY8 } else { &FAMILY5 }
}

// ---------------------------------------------------------------------------------
// Bit I/O: 32-bit little-endian words, bits MSB first.

struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Pending bits in the low `nbits` bits (older bits above).
    acc: u64,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Appends the low `len` bits of `code` (no bits above `len` may be set), `len <= 32`.
    #[inline(always)]
    fn put(&mut self, code: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || code >> len == 0));
        self.acc = (self.acc << len) | u64::from(code);
        self.nbits += len;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let word = (self.acc >> self.nbits) as u32;
            self.out.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// Pads the partial word with zeros, then writes the trailing zero word.
    fn flush(mut self) {
        if self.nbits > 0 {
            self.put(0, 32 - self.nbits);
        }
        self.put(0, 32);
    }
}

struct BitReader<'a> {
    /// The coded words (whole words only; trailing bytes are ignored).
    data: &'a [u8],
    pos: usize,
    /// Look-ahead, left aligned: the next bit is bit 63.
    acc: u64,
    /// Valid bits in `acc`; always > 32 between calls.
    count: u32,
    /// Zero words supplied past the end of `data`.
    padded: u64,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        let whole = data.len() & !3;
        let mut r = Self {
            data: &data[..whole],
            pos: 0,
            acc: 0,
            count: 0,
            padded: 0,
        };
        r.refill();
        r.refill();
        r
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.count <= 32 {
            let word = match self.data.get(self.pos..self.pos + 4) {
                Some(w) => {
                    self.pos += 4;
                    u32::from_le_bytes([w[0], w[1], w[2], w[3]])
                }
                None => {
                    self.padded += 1;
                    0
                }
            };
            self.acc |= u64::from(word) << (32 - self.count);
            self.count += 32;
        }
    }

    #[inline(always)]
    fn peek32(&self) -> u32 {
        (self.acc >> 32) as u32
    }

    /// Drops `n <= 32` bits.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= 32);
        self.acc <<= n;
        self.count -= n;
        self.refill();
    }

    /// Reads `n` bits, `1 <= n <= 32`.
    #[inline(always)]
    fn read(&mut self, n: u32) -> u32 {
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// Whether more bits were consumed than the stream holds.
    fn overrun(&self) -> bool {
        // Bits loaded = 32 * (words read + zero words); unread = count.
        self.padded * 32 > u64::from(self.count)
    }
}

// ---------------------------------------------------------------------------------
// Model and adaptation state.

#[derive(Clone, Copy)]
struct Bucket {
    counters: [u32; 8],
    best: u32,
}

/// Per-channel model: one bucket per context class.
#[derive(Clone, Copy)]
struct Model {
    buckets: [Bucket; 8],
}

impl Model {
    fn new(bpc: u32) -> Self {
        Self {
            buckets: [Bucket {
                counters: [0; 8],
                best: bpc - 1,
            }; 8],
        }
    }
}

/// Coding state shared by the channels coded together (R,G,B; gray; alpha).
struct State {
    waitcnt: u32,
    seed: u8,
    wmidx: u32,
    wmileft: u32,
    wm_trigger: u32,
    melcstate: u32,
    melclen: u32,
    melcorder: u32,
}

impl State {
    fn new() -> Self {
        Self {
            waitcnt: 0,
            seed: 0xff,
            wmidx: 0,
            wmileft: WMI_NEXT,
            wm_trigger: BESTTRIG[0],
            melcstate: 0,
            melclen: 0,
            melcorder: 1,
        }
    }

    #[inline(always)]
    fn tabrand(&mut self) -> u32 {
        self.seed = self.seed.wrapping_add(1);
        TABRAND[usize::from(self.seed)]
    }

    #[inline(always)]
    fn melc_up(&mut self) {
        if self.melcstate < 31 {
            self.melcstate += 1;
            self.melclen = u32::from(MELC_J[self.melcstate as usize]);
            self.melcorder = 1 << self.melclen;
        }
    }

    #[inline(always)]
    fn melc_down(&mut self) {
        if self.melcstate > 0 {
            self.melcstate -= 1;
            self.melclen = u32::from(MELC_J[self.melcstate as usize]);
            self.melcorder = 1 << self.melclen;
        }
    }

    /// Splits a row of `width` pixels into segments at the points where the wait mask
    /// grows, calling `f(state, begin, end, waitmask)` for each.
    #[inline(always)]
    fn for_each_segment(
        &mut self,
        width: usize,
        mut f: impl FnMut(&mut Self, usize, usize, u32) -> Result<()>,
    ) -> Result<()> {
        let mut pos = 0;
        let mut left = width;
        while self.wmidx < WMI_MAX && self.wmileft as usize <= left {
            let seg = self.wmileft as usize;
            if seg > 0 {
                f(self, pos, pos + seg, (1 << self.wmidx) - 1)?;
                left -= seg;
                pos += seg;
            }
            self.wmidx += 1;
            self.wm_trigger = BESTTRIG[self.wmidx as usize];
            self.wmileft = WMI_NEXT;
        }
        if left > 0 {
            f(self, pos, pos + left, (1 << self.wmidx) - 1)?;
            if self.wmidx < WMI_MAX {
                self.wmileft -= left as u32;
            }
        }
        Ok(())
    }
}

/// Updates one bucket with the residual `m` just coded.
#[inline(always)]
fn update_bucket<const BPC: u32>(bucket: &mut Bucket, m: u8, trigger: u32) {
    let fam = family::<BPC>();
    let mut best = BPC - 1;
    let mut best_len = u32::MAX;
    for l in (0..BPC as usize).rev() {
        let c = bucket.counters[l].wrapping_add(u32::from(fam.lens[l][usize::from(m)]));
        bucket.counters[l] = c;
        if c < best_len {
            best_len = c;
            best = l as u32;
        }
    }
    bucket.best = best;
    if best_len > trigger {
        for c in &mut bucket.counters[..BPC as usize] {
            *c >>= 1;
        }
    }
}

/// One plane: the channels coded with one [`State`] (N = 3 for R,G,B, 1 for gray or
/// alpha), with its models, its residual row and its current and previous rows.
struct Plane<const N: usize, const BPC: u32> {
    state: State,
    models: [Model; N],
    /// Residuals of the current row; slot 0 is the "x = -1" context, pixel x is slot x+1.
    /// Slots of run pixels keep values from earlier rows (reference behaviour).
    corr: Vec<[u8; N]>,
    prev: Vec<[u8; N]>,
    cur: Vec<[u8; N]>,
    first_row: bool,
}

impl<const N: usize, const BPC: u32> Plane<N, BPC> {
    const MASK: u32 = (1 << BPC) - 1;

    fn new(width: usize) -> Self {
        Self {
            state: State::new(),
            models: [Model::new(BPC); N],
            corr: vec![[0; N]; width + 1],
            prev: vec![[0; N]; width],
            cur: vec![[0; N]; width],
            first_row: true,
        }
    }

    /// Makes the current row the previous one.
    fn next_row(&mut self) {
        core::mem::swap(&mut self.prev, &mut self.cur);
        self.first_row = false;
    }

    fn width(&self) -> usize {
        self.cur.len()
    }

    #[inline(always)]
    fn update_all(models: &mut [Model; N], corr: &[[u8; N]], x: usize, trigger: u32) {
        for c in 0..N {
            let ctx = corr[x][c];
            let m = corr[x + 1][c];
            let b = usize::from(family::<BPC>().bucket_of[usize::from(ctx)]);
            update_bucket::<BPC>(&mut models[c].buckets[b], m, trigger);
        }
    }

    #[inline(always)]
    fn run_allowed(
        first_row: bool,
        prev: &[[u8; N]],
        cur: &[[u8; N]],
        i: usize,
        run_index: usize,
    ) -> bool {
        !first_row && i > 2 && run_index != i && prev[i - 1] == prev[i] && cur[i - 1] == cur[i - 2]
    }

    #[inline(always)]
    fn predict(first_row: bool, prev: &[[u8; N]], cur: &[[u8; N]], i: usize, c: usize) -> u32 {
        if first_row {
            if i == 0 { 0 } else { u32::from(cur[i - 1][c]) }
        } else if i == 0 {
            u32::from(prev[0][c])
        } else {
            (u32::from(cur[i - 1][c]) + u32::from(prev[i][c])) >> 1
        }
    }

    // ----- encoder -----

    #[inline(always)]
    fn encode_pixel(
        first_row: bool,
        prev: &[[u8; N]],
        cur: &[[u8; N]],
        corr: &mut [[u8; N]],
        models: &[Model; N],
        w: &mut BitWriter<'_>,
        i: usize,
    ) {
        let fam = family::<BPC>();
        for c in 0..N {
            let pred = Self::predict(first_row, prev, cur, i, c);
            let e = u32::from(cur[i][c]).wrapping_sub(pred) & Self::MASK;
            let m = fam.u2l[e as usize];
            let b = usize::from(fam.bucket_of[usize::from(corr[i][c])]);
            let l = models[c].buckets[b].best as usize;
            let code = fam.codes[l][usize::from(m)];
            w.put(code & 0xffff, code >> 16);
            corr[i + 1][c] = m;
        }
    }

    fn encode_run(state: &mut State, w: &mut BitWriter<'_>, mut n: usize) {
        let mut hits = 0u32;
        while n >= state.melcorder as usize {
            hits += 1;
            n -= state.melcorder as usize;
            state.melc_up();
        }
        while hits >= 32 {
            w.put(u32::MAX, 32);
            hits -= 32;
        }
        if hits > 0 {
            w.put((1u32 << hits) - 1, hits);
        }
        // n < melcorder = 2^melclen: a 0 terminator, then melclen bits of remainder.
        w.put(n as u32, state.melclen + 1);
        state.melc_down();
    }

    /// Codes the current row (`self.cur`).
    fn encode_row(&mut self, w: &mut BitWriter<'_>) {
        let width = self.width();
        if !self.first_row {
            self.corr[0] = self.corr[1];
        }
        let Self {
            state,
            models,
            corr,
            prev,
            cur,
            first_row,
        } = self;
        let first_row = *first_row;
        let (prev, cur) = (&prev[..], &cur[..]);
        let _ = state.for_each_segment(width, |st, begin, end, waitmask| {
            Self::encode_segment(
                st, models, corr, first_row, prev, cur, w, begin, end, waitmask,
            );
            Ok(())
        });
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn encode_segment(
        st: &mut State,
        models: &mut [Model; N],
        corr: &mut [[u8; N]],
        first_row: bool,
        prev: &[[u8; N]],
        cur: &[[u8; N]],
        w: &mut BitWriter<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) {
        let mut run_index = 0;
        let mut stop;
        if i == 0 {
            Self::encode_pixel(first_row, prev, cur, corr, models, w, 0);
            if st.waitcnt > 0 {
                st.waitcnt -= 1;
            } else {
                st.waitcnt = st.tabrand() & waitmask;
                Self::update_all(models, corr, 0, st.wm_trigger);
            }
            i = 1;
            stop = 1 + st.waitcnt as usize;
        } else {
            stop = i + st.waitcnt as usize;
        }
        loop {
            'run: {
                while stop < end {
                    while i <= stop {
                        if Self::run_allowed(first_row, prev, cur, i, run_index) {
                            break 'run;
                        }
                        Self::encode_pixel(first_row, prev, cur, corr, models, w, i);
                        i += 1;
                    }
                    Self::update_all(models, corr, stop, st.wm_trigger);
                    stop = i + (st.tabrand() & waitmask) as usize;
                }
                while i < end {
                    if Self::run_allowed(first_row, prev, cur, i, run_index) {
                        break 'run;
                    }
                    Self::encode_pixel(first_row, prev, cur, corr, models, w, i);
                    i += 1;
                }
                st.waitcnt = (stop - end) as u32;
                return;
            }
            // Run mode: pixels equal to their left neighbour.
            run_index = i;
            st.waitcnt = (stop - i) as u32;
            let start = i;
            let value = cur[i - 1];
            while i < end && cur[i] == value {
                i += 1;
            }
            Self::encode_run(st, w, i - start);
            if i == end {
                return;
            }
            stop = i + st.waitcnt as usize;
        }
    }

    // ----- decoder -----

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn decode_pixel(
        first_row: bool,
        prev: &[[u8; N]],
        cur: &mut [[u8; N]],
        corr: &mut [[u8; N]],
        models: &[Model; N],
        r: &mut BitReader<'_>,
        i: usize,
    ) -> Result<()> {
        let fam = family::<BPC>();
        let mut px = [0u8; N];
        for c in 0..N {
            let b = usize::from(fam.bucket_of[usize::from(corr[i][c])]);
            let l = models[c].buckets[b].best;
            let acc = r.acc;
            let z = ((acc >> 32) as u32).leading_zeros();
            let m = if z < fam.alt[l as usize] {
                let len = z + 1 + l;
                let low = (acc >> (64 - len)) as u32 & ((1 << l) - 1);
                r.consume(len);
                (z << l) | low
            } else {
                let len = fam.esc_len[l as usize];
                let m = (acc >> (64 - len)) as u32 + fam.ngr[l as usize];
                if m > Self::MASK {
                    return Err(QuicError::BadResidual);
                }
                r.consume(len);
                m
            };
            corr[i + 1][c] = m as u8;
            let pred = Self::predict(first_row, prev, cur, i, c);
            px[c] = ((u32::from(fam.l2u[m as usize]) + pred) & Self::MASK) as u8;
        }
        cur[i] = px;
        Ok(())
    }

    fn decode_run(state: &mut State, r: &mut BitReader<'_>, max: usize) -> Result<usize> {
        let mut n = 0usize;
        loop {
            let ones = (!r.peek32()).leading_zeros();
            for _ in 0..ones {
                n += state.melcorder as usize;
                state.melc_up();
            }
            if n > max {
                return Err(QuicError::RunTooLong);
            }
            if ones < 32 {
                r.consume(ones + 1);
                break;
            }
            r.consume(32);
        }
        if state.melclen > 0 {
            n += r.read(state.melclen) as usize;
            if n > max {
                return Err(QuicError::RunTooLong);
            }
        }
        state.melc_down();
        Ok(n)
    }

    /// Decodes one row into `self.cur`.
    fn decode_row(&mut self, r: &mut BitReader<'_>) -> Result<()> {
        let width = self.width();
        if !self.first_row {
            self.corr[0] = self.corr[1];
        }
        let Self {
            state,
            models,
            corr,
            prev,
            cur,
            first_row,
        } = self;
        let first_row = *first_row;
        let prev = &prev[..];
        state.for_each_segment(width, |st, begin, end, waitmask| {
            Self::decode_segment(
                st, models, corr, first_row, prev, cur, r, begin, end, waitmask,
            )
        })?;
        if r.overrun() {
            return Err(QuicError::Truncated);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_segment(
        st: &mut State,
        models: &mut [Model; N],
        corr: &mut [[u8; N]],
        first_row: bool,
        prev: &[[u8; N]],
        cur: &mut [[u8; N]],
        r: &mut BitReader<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) -> Result<()> {
        let mut run_index = 0;
        let mut stop;
        if i == 0 {
            Self::decode_pixel(first_row, prev, cur, corr, models, r, 0)?;
            if st.waitcnt > 0 {
                st.waitcnt -= 1;
            } else {
                st.waitcnt = st.tabrand() & waitmask;
                Self::update_all(models, corr, 0, st.wm_trigger);
            }
            i = 1;
            stop = 1 + st.waitcnt as usize;
        } else {
            stop = i + st.waitcnt as usize;
        }
        loop {
            'run: {
                while stop < end {
                    while i <= stop {
                        if Self::run_allowed(first_row, prev, cur, i, run_index) {
                            break 'run;
                        }
                        Self::decode_pixel(first_row, prev, cur, corr, models, r, i)?;
                        i += 1;
                    }
                    Self::update_all(models, corr, stop, st.wm_trigger);
                    stop = i + (st.tabrand() & waitmask) as usize;
                }
                while i < end {
                    if Self::run_allowed(first_row, prev, cur, i, run_index) {
                        break 'run;
                    }
                    Self::decode_pixel(first_row, prev, cur, corr, models, r, i)?;
                    i += 1;
                }
                st.waitcnt = (stop - end) as u32;
                return Ok(());
            }
            run_index = i;
            st.waitcnt = (stop - i) as u32;
            let n = Self::decode_run(st, r, end - i)?;
            let value = cur[i - 1];
            cur[i..i + n].fill(value);
            i += n;
            if i == end {
                return Ok(());
            }
            stop = i + st.waitcnt as usize;
        }
    }
}

// ---------------------------------------------------------------------------------
// Header.

fn check_dimensions(width: u32, height: u32) -> Result<u64> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || pixels > MAX_PIXELS_REFERENCE {
        return Err(QuicError::BadDimensions { width, height });
    }
    Ok(pixels)
}

/// Parses and checks the 20-byte header of a QUIC stream (magic, version 0, type,
/// non-zero size within the reference limit of 2^29 - 1 pixels).
pub fn decode_header(data: &[u8]) -> Result<QuicHeader> {
    let Some(head) = data.get(..HEADER_SIZE) else {
        return Err(QuicError::HeaderTruncated(data.len()));
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(0) != MAGIC {
        return Err(QuicError::BadMagic(word(0)));
    }
    if word(4) != VERSION {
        return Err(QuicError::BadVersion(word(4)));
    }
    let image_type = ImageType::from_u32(word(8)).ok_or(QuicError::BadImageType(word(8)))?;
    let (width, height) = (word(12), word(16));
    check_dimensions(width, height)?;
    Ok(QuicHeader {
        image_type,
        width,
        height,
    })
}

/// Checks `stride` and the buffer length for `height` rows of `row_bytes`.
fn check_buffer(len: usize, stride: usize, row_bytes: usize, height: u32) -> Result<()> {
    if stride < row_bytes {
        return Err(QuicError::StrideTooSmall { stride, row_bytes });
    }
    let needed = (height as usize - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .ok_or(QuicError::BufferTooSmall {
            needed: usize::MAX,
            got: len,
        })?;
    if len < needed {
        return Err(QuicError::BufferTooSmall { needed, got: len });
    }
    Ok(())
}

/// Byte offset of stream row `y` (0 = top) in a caller's buffer.
#[inline(always)]
fn row_offset(y: usize, height: usize, stride: usize, order: RowOrder) -> usize {
    match order {
        RowOrder::TopDown => y * stride,
        RowOrder::BottomUp => (height - 1 - y) * stride,
    }
}

// ---------------------------------------------------------------------------------
// Encoder.

/// Encodes `image` as a QUIC stream (header, coded rows, trailing zero word).
///
/// The output equals the reference encoder's byte for byte; its length is a multiple
/// of 4 (the `data_size` of a `SpiceQUICData`).
pub fn encode(image: &Image<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(image, &mut out)?;
    Ok(out)
}

/// Appends the QUIC stream of `image` to `out`; returns the number of bytes appended.
/// On error nothing is appended.
pub fn encode_into(image: &Image<'_>, out: &mut Vec<u8>) -> Result<usize> {
    let &Image {
        image_type,
        width,
        height,
        stride,
        row_order,
        data,
    } = image;
    check_dimensions(width, height)?;
    let bpp = image_type.natural_format().bytes_per_pixel();
    let row_bytes = width as usize * bpp;
    check_buffer(data.len(), stride, row_bytes, height)?;
    let start = out.len();
    // A rough guess to avoid most reallocations: a quarter of the input.
    out.reserve(HEADER_SIZE + (row_bytes * height as usize) / 4 + 8);
    for word in [MAGIC, VERSION, image_type.to_u32(), width, height] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let mut w = BitWriter::new(out);
    let (wd, ht) = (width as usize, height as usize);
    let rows = (0..ht).map(|y| {
        let off = row_offset(y, ht, stride, row_order);
        &data[off..off + row_bytes]
    });
    match image_type {
        ImageType::Gray => {
            let mut p = Plane::<1, 8>::new(wd);
            for row in rows {
                for (d, s) in p.cur.iter_mut().zip(row) {
                    *d = [*s];
                }
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgb16 => {
            let mut p = Plane::<3, 5>::new(wd);
            for row in rows {
                for (d, s) in p.cur.iter_mut().zip(row.chunks_exact(2)) {
                    let v = u16::from_le_bytes([s[0], s[1]]);
                    *d = [(v >> 10) as u8 & 31, (v >> 5) as u8 & 31, v as u8 & 31];
                }
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgb24 | ImageType::Rgb32 => {
            let mut p = Plane::<3, 8>::new(wd);
            for row in rows {
                for (d, s) in p.cur.iter_mut().zip(row.chunks_exact(bpp)) {
                    *d = [s[2], s[1], s[0]];
                }
                p.encode_row(&mut w);
                p.next_row();
            }
        }
        ImageType::Rgba => {
            let mut p = Plane::<3, 8>::new(wd);
            let mut a = Plane::<1, 8>::new(wd);
            for row in rows {
                for ((d, da), s) in p
                    .cur
                    .iter_mut()
                    .zip(a.cur.iter_mut())
                    .zip(row.chunks_exact(4))
                {
                    *d = [s[2], s[1], s[0]];
                    *da = [s[3]];
                }
                p.encode_row(&mut w);
                a.encode_row(&mut w);
                p.next_row();
                a.next_row();
            }
        }
    }
    w.flush();
    Ok(out.len() - start)
}

// ---------------------------------------------------------------------------------
// Decoder.

fn check_format(image_type: ImageType, format: PixelFormat) -> Result<()> {
    let ok = match format {
        PixelFormat::Gray8 => image_type == ImageType::Gray,
        PixelFormat::Rgb16 => image_type == ImageType::Rgb16,
        PixelFormat::Rgb24 | PixelFormat::Rgb32 | PixelFormat::Rgba => true,
    };
    if ok {
        Ok(())
    } else {
        Err(QuicError::UnsupportedFormat { image_type, format })
    }
}

#[inline(always)]
fn expand5(v: u8) -> u8 {
    (v << 3) | (v >> 2)
}

/// Writes a decoded gray row in `format`.
fn store_gray(src: &[[u8; 1]], format: PixelFormat, dst: &mut [u8]) {
    match format {
        PixelFormat::Gray8 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s[0];
            }
        }
        PixelFormat::Rgb24 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&[s[0]; 3]);
            }
        }
        PixelFormat::Rgb32 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[s[0], s[0], s[0], 0]);
            }
        }
        PixelFormat::Rgba => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[s[0], s[0], s[0], 255]);
            }
        }
        PixelFormat::Rgb16 => {}
    }
}

/// Writes a decoded 5-bit R,G,B row in `format`.
fn store_rgb5(src: &[[u8; 3]], format: PixelFormat, dst: &mut [u8]) {
    match format {
        PixelFormat::Rgb16 => {
            for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                let v = (u16::from(s[0]) << 10) | (u16::from(s[1]) << 5) | u16::from(s[2]);
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        PixelFormat::Rgb24 => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&[expand5(s[2]), expand5(s[1]), expand5(s[0])]);
            }
        }
        PixelFormat::Rgb32 | PixelFormat::Rgba => {
            let x = if format == PixelFormat::Rgba { 255 } else { 0 };
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[expand5(s[2]), expand5(s[1]), expand5(s[0]), x]);
            }
        }
        PixelFormat::Gray8 => {}
    }
}

/// Writes a decoded 8-bit R,G,B row (plus alpha, if any) in `format`.
fn store_rgb8(src: &[[u8; 3]], alpha: Option<&[[u8; 1]]>, format: PixelFormat, dst: &mut [u8]) {
    match (format, alpha) {
        (PixelFormat::Rgb24, _) => {
            for (d, s) in dst.chunks_exact_mut(3).zip(src) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        }
        (PixelFormat::Rgba, Some(alpha)) => {
            for ((d, s), a) in dst.chunks_exact_mut(4).zip(src).zip(alpha) {
                d.copy_from_slice(&[s[2], s[1], s[0], a[0]]);
            }
        }
        (PixelFormat::Rgb32 | PixelFormat::Rgba, _) => {
            let x = if format == PixelFormat::Rgba { 255 } else { 0 };
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[s[2], s[1], s[0], x]);
            }
        }
        (PixelFormat::Gray8 | PixelFormat::Rgb16, _) => {}
    }
}

/// Decodes a QUIC stream into `out`: row `y` of the image (0 = top) lands at
/// `y * stride` ([`RowOrder::TopDown`]) or `(height - 1 - y) * stride`
/// ([`RowOrder::BottomUp`]), in `format`. Bytes between rows are left untouched.
///
/// Formats: every type decodes to [`PixelFormat::Rgb24`], [`PixelFormat::Rgb32`]
/// (X = 0) and [`PixelFormat::Rgba`] (A = 255 unless the type is RGBA); GRAY also to
/// [`PixelFormat::Gray8`], RGB16 also to [`PixelFormat::Rgb16`]. 5-bit channels widen as
/// `v << 3 | v >> 2`, like spice-gtk.
///
/// Whole 32-bit words are read (1–3 trailing bytes are ignored, like the reference);
/// data after the last coded symbol is ignored. On error `out` may hold a partial image.
pub fn decode(
    data: &[u8],
    out: &mut [u8],
    stride: usize,
    format: PixelFormat,
    row_order: RowOrder,
    limits: &DecodeLimits,
) -> Result<QuicHeader> {
    let header = decode_header(data)?;
    let QuicHeader {
        image_type,
        width,
        height,
    } = header;
    check_format(image_type, format)?;
    let pixels = u64::from(width) * u64::from(height);
    let row_bytes = width as usize * format.bytes_per_pixel();
    if pixels > limits.max_pixels {
        return Err(QuicError::TooLarge {
            pixels,
            bytes: pixels * format.bytes_per_pixel() as u64,
        });
    }
    check_buffer(out.len(), stride, row_bytes, height)?;
    let mut r = BitReader::new(&data[HEADER_SIZE..]);
    let (wd, ht) = (width as usize, height as usize);
    let dst = |y: usize| {
        let off = row_offset(y, ht, stride, row_order);
        // In bounds: check_buffer verified (height - 1) * stride + row_bytes <= len.
        off..off + row_bytes
    };
    match image_type {
        ImageType::Gray => {
            let mut p = Plane::<1, 8>::new(wd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_gray(&p.cur, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgb16 => {
            let mut p = Plane::<3, 5>::new(wd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_rgb5(&p.cur, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgb24 | ImageType::Rgb32 => {
            let mut p = Plane::<3, 8>::new(wd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                store_rgb8(&p.cur, None, format, &mut out[dst(y)]);
                p.next_row();
            }
        }
        ImageType::Rgba => {
            let mut p = Plane::<3, 8>::new(wd);
            let mut a = Plane::<1, 8>::new(wd);
            for y in 0..ht {
                p.decode_row(&mut r)?;
                a.decode_row(&mut r)?;
                store_rgb8(&p.cur, Some(&a.cur), format, &mut out[dst(y)]);
                p.next_row();
                a.next_row();
            }
        }
    }
    Ok(header)
}

/// Decodes a QUIC stream into a new top-down buffer with rows tightly packed in
/// `format`, after checking its size against `limits`.
pub fn decode_to_vec(
    data: &[u8],
    format: PixelFormat,
    limits: &DecodeLimits,
) -> Result<(QuicHeader, Vec<u8>)> {
    let header = decode_header(data)?;
    check_format(header.image_type, format)?;
    let pixels = u64::from(header.width) * u64::from(header.height);
    let bytes = pixels * format.bytes_per_pixel() as u64;
    if pixels > limits.max_pixels || bytes > limits.max_bytes {
        return Err(QuicError::TooLarge { pixels, bytes });
    }
    let stride = header.width as usize * format.bytes_per_pixel();
    let mut out = vec![0; bytes as usize];
    decode(data, &mut out, stride, format, RowOrder::TopDown, limits)?;
    Ok((header, out))
}

/// Fuzzing entry point: decodes `data` (images up to 2^20 pixels) in its natural format
/// and as RGB32, discarding the result. Never panics.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits {
        max_pixels: 1 << 20,
        max_bytes: 1 << 22,
    };
    let Ok(header) = decode_header(data) else {
        return;
    };
    let natural = header.image_type.natural_format();
    let _ = decode_to_vec(data, natural, &limits);
    if natural != PixelFormat::Rgb32 {
        let _ = decode_to_vec(data, PixelFormat::Rgb32, &limits);
    }
}
