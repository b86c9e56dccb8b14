//! GLZ ("global LZ"): LZ whose matches may also point into earlier images of a
//! dictionary shared by all display channels of a client (`codecs.md` §5).
//!
//! - [`GlzDictionary`]: the server's per-client dictionary: a window of recent
//!   images measured in pixels, the match hash table and the image ids.
//!   **Ownership**: one dictionary per client, shared by that client's display
//!   channels. Use [`SharedGlzDictionary`] (`Arc<Mutex<GlzDictionary>>`) and one
//!   [`GlzEncoder`] per channel: an encoder holds the lock for the duration of
//!   one image, so images of several channels are serialised and every image is
//!   coded against a consistent window (ids are assigned in lock order). A
//!   single-threaded user may call [`GlzDictionary::encode`] on a `&mut`.
//!   The dictionary keeps the pixels of the images in its window: it copies
//!   them ([`GlzDictionary::encode`], or [`GlzDictionary::encode_frame`] with
//!   row chunks), or keeps a shared buffer handed over with
//!   [`GlzPixels::Shared`] without a copy (the cheapest for large images).
//!   Images leaving the window are reported by [`GlzDictionary::take_evicted`]
//!   so the server can release what it kept for them.
//! - [`GlzWindow`]: the client's window of decoded images (one per session,
//!   shared by its display channels). [`GlzWindow::decode`] returns
//!   [`GlzError::MissingImage`] when the stream refers to an image that has not
//!   arrived yet (images of different channels can arrive out of order): the
//!   window is unchanged and the caller retries after decoding that image.
//! - [`GlzHeader`]: the 33-byte big-endian header.
//!
//! Supported image types: RGB16, RGB24, RGB32 and RGBA (the server uses GLZ
//! only for these). Decoded images are 32 bits per pixel (B,G,R,X or B,G,R,A).

use crate::lz::{
    self, AlphaPx, LZ_MAGIC, LZ_VERSION, LzError, LzImageType, Pixel, Reader, Rgb16Px, Rgb24Px,
    Rgb32Px,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Largest dictionary window (pixels), `LZ_MAX_WINDOW_SIZE`.
pub const MAX_WINDOW_PIXELS: usize = 1 << 25;
/// Largest pixel offset a token can carry (exclusive).
const MAX_PIXEL_OFS: usize = 1 << 25;
/// Largest image distance a token can carry.
const MAX_IMAGE_DIST: u64 = (1 << 24) - 1;
const HASH_LOG: u32 = 20;
const HASH_SIZE: usize = 1 << HASH_LOG;
const HASH_MASK: u32 = (HASH_SIZE as u32) - 1;
/// Evicted image buffers kept for reuse.
const SPARE_BUFFERS: usize = 2;

/// Errors of GLZ encoding and decoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GlzError {
    /// Header or token error shared with LZ.
    #[error(transparent)]
    Lz(#[from] LzError),
    /// The image type cannot be used with GLZ here.
    #[error("GLZ does not support {0:?} images")]
    UnsupportedType(LzImageType),
    /// Bad numeric type in the header.
    #[error("invalid GLZ image type {0}")]
    BadImageType(u8),
    /// The image is larger than the window or the caller's cap.
    #[error("GLZ image of {pixels} pixels is over the limit of {limit}")]
    TooLarge {
        /// Pixels in the image.
        pixels: u64,
        /// Limit applied.
        limit: u64,
    },
    /// The stream refers to an image that has not been decoded yet: wait for
    /// it, decode it, then decode this stream again.
    #[error("GLZ image {id} refers to image {missing} that has not arrived")]
    MissingImage {
        /// Image being decoded.
        id: u64,
        /// Image it needs.
        missing: u64,
    },
    /// The stream refers to an image the window has already released.
    #[error("GLZ image {id} refers to released image {released}")]
    ReleasedImage {
        /// Image being decoded.
        id: u64,
        /// Image it needs.
        released: u64,
    },
    /// A reference into another image is invalid (distance past image 0,
    /// different pixel size, or out of that image's pixels).
    #[error("GLZ image {id}: bad reference at byte {at}")]
    BadReference {
        /// Image being decoded.
        id: u64,
        /// Offset of the token in the stream.
        at: usize,
    },
    /// The dictionary window size is zero or over 2^25 pixels.
    #[error("bad GLZ window size {0}")]
    BadWindow(usize),
}

/// The 33-byte big-endian GLZ header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlzHeader {
    /// Image type (low 4 bits of byte 8).
    pub image_type: LzImageType,
    /// Top-down flag (bit 4 of byte 8).
    pub top_down: bool,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Stride in bytes of the source bitmap.
    pub stride: u32,
    /// Image id within the dictionary.
    pub id: u64,
    /// `id - id of the oldest image still in the window`.
    pub win_head_dist: u32,
}

impl GlzHeader {
    /// Size on the wire.
    pub const SIZE: usize = 33;

    /// Parses a header; checks magic, version and type.
    pub fn parse(data: &[u8]) -> Result<Self, GlzError> {
        if data.len() < Self::SIZE {
            return Err(LzError::ShortHeader(data.len()).into());
        }
        let w = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        if w(0) != LZ_MAGIC {
            return Err(LzError::BadMagic(w(0)).into());
        }
        if w(4) != LZ_VERSION {
            return Err(LzError::BadVersion(w(4)).into());
        }
        let t = data[8] & 0x0f;
        let image_type = LzImageType::from_u32(u32::from(t)).ok_or(GlzError::BadImageType(t))?;
        Ok(GlzHeader {
            image_type,
            top_down: data[8] & 0x10 != 0,
            width: w(9),
            height: w(13),
            stride: w(17),
            id: u64::from(w(21)) << 32 | u64::from(w(25)),
            win_head_dist: w(29),
        })
    }

    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&LZ_MAGIC.to_be_bytes());
        out.extend_from_slice(&LZ_VERSION.to_be_bytes());
        out.push((self.image_type as u8 & 0x0f) | if self.top_down { 0x10 } else { 0 });
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.stride.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.win_head_dist.to_be_bytes());
    }

    /// Pixels of the image.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

fn check_type(t: LzImageType) -> Result<(), GlzError> {
    match t {
        LzImageType::Rgb16 | LzImageType::Rgb24 | LzImageType::Rgb32 | LzImageType::Rgba => Ok(()),
        other => Err(GlzError::UnsupportedType(other)),
    }
}

// ---------------------------------------------------------------------------
// Encoder side
// ---------------------------------------------------------------------------

/// An image to GLZ-encode: `height` rows of `stride` bytes in memory order.
#[derive(Debug, Clone, Copy)]
pub struct GlzInput<'a> {
    /// RGB16, RGB24, RGB32 or RGBA.
    pub image_type: LzImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Stride in bytes (at least `width * bytes per pixel`).
    pub stride: usize,
    /// Top-down flag written to the header.
    pub top_down: bool,
    /// Pixel rows.
    pub data: &'a [u8],
}

/// Where the pixels of a [`GlzFrame`] are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GlzPixels<'a> {
    /// `height` rows of `stride` bytes in one buffer (copied into the
    /// dictionary; a packed buffer is copied while it is encoded).
    Rows(&'a [u8]),
    /// Row chunks in memory order (the QXL bitmap chunks), each holding whole
    /// rows of `stride` bytes, `height` rows in all (packed into the
    /// dictionary). Unlike LZ, the chunking does not change the output.
    Chunks(&'a [&'a [u8]]),
    /// Packed rows (`stride == width * bytes per pixel`) that the dictionary
    /// keeps as they are, without a copy, until the image leaves the window.
    Shared(Arc<[u8]>),
}

/// An image to GLZ-encode, its pixels given in any of the [`GlzPixels`] forms.
#[derive(Debug, Clone)]
pub struct GlzFrame<'a> {
    /// RGB16, RGB24, RGB32 or RGBA.
    pub image_type: LzImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Stride in bytes (at least `width * bytes per pixel`).
    pub stride: usize,
    /// Top-down flag written to the header.
    pub top_down: bool,
    /// The pixels.
    pub pixels: GlzPixels<'a>,
}

/// What [`GlzDictionary::encode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlzEncoded {
    /// Id given to the image.
    pub id: u64,
    /// Window head distance written to the header.
    pub win_head_dist: u32,
    /// Bytes appended to the output.
    pub size: usize,
}

/// An image that left the dictionary window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlzEvicted {
    /// Its id.
    pub id: u64,
    /// The encoder (channel) that added it.
    pub encoder_id: u32,
}

struct DictImage {
    id: u64,
    /// Global position of its first pixel.
    pos: u64,
    n: usize,
    image_type: LzImageType,
    encoder_id: u32,
    /// Packed pixels in the source format.
    data: Pixels,
}

/// The pixels a dictionary image keeps.
enum Pixels {
    /// Copied by the dictionary (the buffer is reused once evicted).
    Owned(Vec<u8>),
    /// Handed over by the caller ([`GlzPixels::Shared`]).
    Shared(Arc<[u8]>),
}

impl Pixels {
    fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Owned(v) => v,
            Pixels::Shared(a) => a,
        }
    }
}

/// The server's GLZ dictionary of one client. See the module docs for how it
/// is shared.
pub struct GlzDictionary {
    limit: usize,
    images: VecDeque<DictImage>,
    window_pixels: usize,
    next_id: u64,
    next_pos: u64,
    /// Hash slots of the RGB pass: 0 when empty, else `position + 1 - hash_base`.
    hash: Vec<u32>,
    /// Hash slots of the alpha pass, same encoding.
    hash_alpha: Vec<u32>,
    /// Global position that slot value 1 stands for.
    hash_base: u64,
    evicted: Vec<GlzEvicted>,
    /// Pixel buffers of evicted images, reused for new ones.
    spare: Vec<Vec<u8>>,
}

impl std::fmt::Debug for GlzDictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlzDictionary")
            .field("limit", &self.limit)
            .field("images", &self.images.len())
            .field("window_pixels", &self.window_pixels)
            .field("next_id", &self.next_id)
            .finish()
    }
}

/// A dictionary shared by the encoders of several display channels.
pub type SharedGlzDictionary = Arc<Mutex<GlzDictionary>>;

impl GlzDictionary {
    /// Creates a dictionary whose window holds `window_pixels` pixels (the
    /// client's `glz_dictionary_window_size`, at most 2^25).
    pub fn new(window_pixels: usize) -> Result<Self, GlzError> {
        if window_pixels == 0 || window_pixels > MAX_WINDOW_PIXELS {
            return Err(GlzError::BadWindow(window_pixels));
        }
        Ok(Self {
            limit: window_pixels,
            images: VecDeque::new(),
            window_pixels: 0,
            next_id: 0,
            next_pos: 0,
            hash: Vec::new(),
            hash_alpha: Vec::new(),
            hash_base: 0,
            evicted: Vec::new(),
            spare: Vec::new(),
        })
    }

    /// Creates a dictionary ready to be shared by several [`GlzEncoder`]s.
    pub fn new_shared(window_pixels: usize) -> Result<SharedGlzDictionary, GlzError> {
        Ok(Arc::new(Mutex::new(Self::new(window_pixels)?)))
    }

    /// Window size in pixels.
    pub fn window_size(&self) -> usize {
        self.limit
    }

    /// Pixels of the images now in the window.
    pub fn window_pixels(&self) -> usize {
        self.window_pixels
    }

    /// Ids of the images now in the window, oldest first.
    pub fn image_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.images.iter().map(|i| i.id)
    }

    /// Id the next image will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Takes the list of images that left the window since the last call.
    pub fn take_evicted(&mut self) -> Vec<GlzEvicted> {
        std::mem::take(&mut self.evicted)
    }

    /// Empties the window and restarts ids at 0 (dictionary reset, e.g. on
    /// reconnection); the dropped images are reported as evicted.
    pub fn reset(&mut self) {
        while let Some(img) = self.images.pop_front() {
            self.retire(img);
        }
        self.window_pixels = 0;
        self.next_id = 0;
        // Positions keep growing: hash slots pointing before the (new) window
        // head are never used, so the tables need no clearing.
    }

    /// Reports `img` as evicted and keeps its buffer for reuse.
    fn retire(&mut self, img: DictImage) {
        tracing::trace!(id = img.id, "GLZ image leaves the window");
        self.evicted.push(GlzEvicted {
            id: img.id,
            encoder_id: img.encoder_id,
        });
        if let Pixels::Owned(v) = img.data
            && self.spare.len() < SPARE_BUFFERS
        {
            self.spare.push(v);
        }
    }

    /// Makes sure positions up to `end` (the end of the image at `cur`) fit the `u32` hash slots, moving the
    /// slot base to the window head when needed (slots before it are emptied:
    /// they could not be used anyway).
    fn rebase_hash(&mut self, cur: u64, end: u64) {
        if end - self.hash_base < u64::from(u32::MAX) {
            return;
        }
        let head = self.images.front().map_or(cur, |i| i.pos);
        let shift = head - self.hash_base;
        for table in [&mut self.hash, &mut self.hash_alpha] {
            for v in table.iter_mut() {
                *v = if u64::from(*v) > shift {
                    (u64::from(*v) - shift) as u32
                } else {
                    0
                };
            }
        }
        self.hash_base = head;
    }

    /// Encodes `img` as the next image of the dictionary, appending the GLZ
    /// stream to `out`. `encoder_id` is reported back on eviction.
    pub fn encode(
        &mut self,
        encoder_id: u32,
        img: &GlzInput<'_>,
        out: &mut Vec<u8>,
    ) -> Result<GlzEncoded, GlzError> {
        let frame = GlzFrame {
            image_type: img.image_type,
            width: img.width,
            height: img.height,
            stride: img.stride,
            top_down: img.top_down,
            pixels: GlzPixels::Rows(img.data),
        };
        self.encode_frame(encoder_id, &frame, out)
    }

    /// Like [`encode`](Self::encode), for pixels in any [`GlzPixels`] form
    /// (row chunks, or a shared buffer the dictionary keeps without a copy).
    pub fn encode_frame(
        &mut self,
        encoder_id: u32,
        img: &GlzFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<GlzEncoded, GlzError> {
        let t = img.image_type;
        check_type(t)?;
        let bpp = t.bytes_per_pixel();
        let w = img.width as usize;
        let h = img.height as usize;
        if w == 0 || h == 0 {
            return Err(LzError::EmptyImage {
                width: img.width,
                height: img.height,
            }
            .into());
        }
        let n = w * h;
        if n > self.limit {
            return Err(GlzError::TooLarge {
                pixels: n as u64,
                limit: self.limit as u64,
            });
        }
        let row = w * bpp;
        let stride = img.stride;
        let bad_stride = || LzError::BadStride {
            image_type: t,
            width: img.width,
            stride: u32::try_from(stride).unwrap_or(u32::MAX),
        };
        if stride < row {
            return Err(bad_stride().into());
        }
        let bad_input = |got: usize, expected: usize| LzError::BadInput { got, expected };
        // Check the input before the window changes.
        match &img.pixels {
            GlzPixels::Rows(data) => {
                let need = stride * (h - 1) + row;
                if data.len() < need {
                    return Err(bad_input(data.len(), need).into());
                }
            }
            GlzPixels::Chunks(chunks) => {
                let need = stride * h;
                let mut total = 0usize;
                for c in chunks.iter() {
                    if c.len() % stride != 0 {
                        return Err(bad_input(c.len(), need).into());
                    }
                    total += c.len();
                }
                if total != need {
                    return Err(bad_input(total, need).into());
                }
            }
            GlzPixels::Shared(data) => {
                if stride != row {
                    return Err(bad_stride().into());
                }
                if data.len() < n * bpp {
                    return Err(bad_input(data.len(), n * bpp).into());
                }
            }
        }
        // Make room, oldest first.
        while self.window_pixels + n > self.limit {
            let Some(old) = self.images.pop_front() else {
                break;
            };
            self.window_pixels -= old.n;
            self.retire(old);
        }
        let mut data = match &img.pixels {
            GlzPixels::Shared(_) => Vec::new(),
            _ => {
                let mut v = self.spare.pop().unwrap_or_default();
                v.clear();
                v.reserve(n * bpp);
                v
            }
        };
        // A packed buffer is read in place and copied into the dictionary as
        // the encoder goes (while its bytes are in cache); rows with padding
        // and chunks are packed first.
        let mut in_place: Option<&[u8]> = None;
        let mut shared = None;
        match &img.pixels {
            GlzPixels::Rows(src) if stride == row => in_place = Some(&src[..n * bpp]),
            GlzPixels::Rows(src) => {
                for r in src.chunks(stride).take(h) {
                    data.extend_from_slice(&r[..row]);
                }
            }
            GlzPixels::Chunks(chunks) => {
                for r in chunks.iter().flat_map(|c| c.chunks_exact(stride)) {
                    data.extend_from_slice(&r[..row]);
                }
            }
            GlzPixels::Shared(a) => shared = Some(Arc::clone(a)),
        }
        let id = self.next_id;
        let head = self.images.front().map_or(id, |i| i.id);
        let win_head_dist = u32::try_from(id - head).unwrap_or(u32::MAX);
        let cur = Current {
            id,
            pos: self.next_pos,
            n,
            image_type: t,
        };
        let start = out.len();
        GlzHeader {
            image_type: t,
            top_down: img.top_down,
            width: img.width,
            height: img.height,
            stride: row as u32,
            id,
            win_head_dist,
        }
        .write(out);
        self.rebase_hash(cur.pos, cur.pos + n as u64);
        if self.hash.is_empty() {
            self.hash = vec![0; HASH_SIZE];
        }
        let mut hash = std::mem::take(&mut self.hash);
        {
            let (src, mut copy) = match (&shared, in_place) {
                (Some(a), _) => (&a[..n * bpp], Copier::none()),
                (None, Some(src)) => (src, Copier::new(src, &mut data)),
                (None, None) => (data.as_slice(), Copier::none()),
            };
            match t {
                LzImageType::Rgb16 => {
                    self.compress::<Rgb16Px>(&cur, src, &mut copy, &mut hash, out)
                }
                LzImageType::Rgb24 => {
                    self.compress::<Rgb24Px>(&cur, src, &mut copy, &mut hash, out)
                }
                LzImageType::Rgb32 => {
                    self.compress::<Rgb32Px>(&cur, src, &mut copy, &mut hash, out)
                }
                _ => {
                    self.compress::<Rgb32Px>(&cur, src, &mut copy, &mut hash, out);
                    copy.finish();
                    if self.hash_alpha.is_empty() {
                        self.hash_alpha = vec![0; HASH_SIZE];
                    }
                    let mut ha = std::mem::take(&mut self.hash_alpha);
                    self.compress::<AlphaPx>(&cur, src, &mut Copier::none(), &mut ha, out);
                    self.hash_alpha = ha;
                }
            }
            copy.finish();
        }
        self.hash = hash;
        self.images.push_back(DictImage {
            id,
            pos: cur.pos,
            n,
            image_type: t,
            encoder_id,
            data: match shared {
                Some(a) => Pixels::Shared(a),
                None => Pixels::Owned(data),
            },
        });
        self.next_id += 1;
        self.next_pos += n as u64;
        self.window_pixels += n;
        Ok(GlzEncoded {
            id,
            win_head_dist,
            size: out.len() - start,
        })
    }

    /// Finds the live image holding global position `p` (index into `images`).
    #[inline]
    fn find(&self, p: u64) -> Option<usize> {
        let first = self.images.front()?;
        if p < first.pos {
            return None;
        }
        let i = self.images.partition_point(|im| im.pos <= p) - 1;
        let im = &self.images[i];
        (p < im.pos + im.n as u64).then_some(i)
    }

    /// Encodes the pixels `d` of `cur` (not yet in `images`), handing them to
    /// `copy` as it goes.
    fn compress<P: GlzPixel>(
        &self,
        cur: &Current,
        d: &[u8],
        copy: &mut Copier<'_>,
        hash: &mut [u32],
        out: &mut Vec<u8>,
    ) {
        let n = cur.n;
        let base = cur.pos;
        let hash_base = self.hash_base;
        // Slot value of position `p` (p >= hash_base, checked by `rebase_hash`).
        let slot = |p: u64| (p - hash_base + 1) as u32;
        let cur_id = cur.id;
        let t = cur.image_type;
        let mut lits = Literals::new(out);
        let mut ip = 0usize;
        // Hashes of `hpos..hpos + 4`, computed four at a time while literals
        // follow each other (one at a time after a match).
        let mut hcache = [0u32; 4];
        let mut hpos = usize::MAX - 4;
        let mut after_literal = false;
        while ip < n {
            copy.upto(ip * P::BYTES);
            // Run of the previous pixel.
            if ip > 0 && ip + 2 < n {
                let k = P::key(d, ip - 1);
                if k == P::key(d, ip) && k == P::key(d, ip + 1) && k == P::key(d, ip + 2) {
                    let len = 3 + in_pieces::<P>(copy, ip + 3, n - ip - 3, |at, m| {
                        P::run_len(d, at, k, m)
                    });
                    if len >= P::GLZ_MIN {
                        lits.flush();
                        emit_glz_match(lits.out, len - P::GLZ_BIAS, 0, 0);
                        ip += len;
                        after_literal = false;
                        continue;
                    }
                }
            }
            if ip + 2 >= n {
                lits.push::<P>(d, ip);
                ip += 1;
                continue;
            }
            let hv = if ip.wrapping_sub(hpos) < 4 {
                hcache[ip - hpos]
            } else if after_literal && ip + 6 <= n {
                hpos = ip;
                hcache = P::hash4(d, ip, HASH_MASK);
                hcache[0]
            } else {
                P::hash(d, ip, HASH_MASK)
            } as usize;
            let g = base + ip as u64;
            let cand_slot = std::mem::replace(&mut hash[hv], slot(g));
            let cand = (hash_base + u64::from(cand_slot)).wrapping_sub(1);
            let mut best: Option<(usize, usize, u64)> = None; // (len, pofs, idist)
            if cand_slot != 0 && cand < g {
                // The reference: this image, or a live older one.
                let rimg = if cand >= base {
                    Some((d, base, None))
                } else {
                    self.find(cand).map(|ri| &self.images[ri]).and_then(|im| {
                        (im.image_type == t).then_some((im.data.bytes(), im.pos, Some(im)))
                    })
                };
                if let Some((rdata, rpos, older)) = rimg {
                    {
                        let roff = (cand - rpos) as usize;
                        let (pofs, idist, rlimit) = match older {
                            None => ((g - cand - 1) as usize, 0, n),
                            Some(im) => (roff, cur_id - im.id, im.n),
                        };
                        if pofs < MAX_PIXEL_OFS && idist <= MAX_IMAGE_DIST {
                            let max = (rlimit - roff).min(n - ip);
                            let len = in_pieces::<P>(copy, ip, max, |at, m| {
                                P::match_len(rdata, roff + (at - ip), d, at, m)
                            });
                            if len >= P::GLZ_MIN && len * P::LIT_BYTES > ref_size(pofs, idist) {
                                best = Some((len, pofs, idist));
                            }
                        }
                    }
                }
            }
            after_literal = best.is_none();
            match best {
                Some((len, pofs, idist)) => {
                    lits.flush();
                    emit_glz_match(lits.out, len - P::GLZ_BIAS, pofs, idist);
                    let end = ip + len;
                    // Index the last positions of the match.
                    for j in end.saturating_sub(2).max(ip + 1)..end {
                        if j + 2 < n {
                            hash[P::hash(d, j, HASH_MASK) as usize] = slot(base + j as u64);
                        }
                    }
                    ip = end;
                }
                None => {
                    lits.push::<P>(d, ip);
                    ip += 1;
                }
            }
        }
        lits.flush();
    }
}

/// Encoded size of a reference (after the first byte and length extension).
fn ref_size(pofs: usize, idist: u64) -> usize {
    if pofs < 4096 {
        2 + if idist < 64 {
            0
        } else if idist < 1 << 14 {
            1
        } else if idist < 1 << 22 {
            2
        } else {
            3
        }
    } else {
        let k = if idist == 0 {
            0
        } else if idist < 256 {
            1
        } else if idist < 65536 {
            2
        } else {
            3
        };
        2 + k + usize::from(pofs >= 1 << 17)
    }
}

/// Writes a GLZ match token.
fn emit_glz_match(out: &mut Vec<u8>, len_code: usize, pofs: usize, idist: u64) {
    debug_assert!(len_code >= 1);
    let len3 = len_code.min(7) as u8;
    let far = pofs >= 4096;
    out.push(len3 << 5 | if far { 0x10 } else { 0 } | (pofs & 0x0f) as u8);
    if len_code >= 7 {
        let mut l = len_code - 7;
        while l >= 255 {
            out.push(255);
            l -= 255;
        }
        out.push(l as u8);
    }
    out.push((pofs >> 4) as u8);
    if !far {
        let k: u8 = if idist < 64 {
            0
        } else if idist < 1 << 14 {
            1
        } else if idist < 1 << 22 {
            2
        } else {
            3
        };
        out.push(k << 6 | (idist & 0x3f) as u8);
        for i in 0..k {
            out.push((idist >> (6 + 8 * u32::from(i))) as u8);
        }
    } else {
        let k: u8 = if idist == 0 {
            0
        } else if idist < 256 {
            1
        } else if idist < 65536 {
            2
        } else {
            3
        };
        let long = pofs >= 1 << 17;
        out.push(k << 6 | u8::from(long) << 5 | ((pofs >> 12) & 0x1f) as u8);
        for i in 0..k {
            out.push((idist >> (8 * u32::from(i))) as u8);
        }
        if long {
            out.push((pofs >> 17) as u8);
        }
    }
}

/// Literal run accumulator (control byte + up to 32 literal pixels).
struct Literals<'a> {
    out: &'a mut Vec<u8>,
    ctrl: usize,
    count: usize,
}

impl<'a> Literals<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            ctrl: 0,
            count: 0,
        }
    }
    #[inline(always)]
    fn push<P: Pixel>(&mut self, d: &[u8], i: usize) {
        if self.count == 0 {
            self.ctrl = self.out.len();
            self.out.push(0);
        }
        P::emit(d, i, self.out);
        self.count += 1;
        if self.count == 32 {
            self.flush();
        }
    }
    #[inline(always)]
    fn flush(&mut self) {
        if self.count > 0 {
            self.out[self.ctrl] = (self.count - 1) as u8;
            self.count = 0;
        }
    }
}

/// The image being encoded (it joins the dictionary afterwards).
struct Current {
    id: u64,
    pos: u64,
    n: usize,
    image_type: LzImageType,
}

/// Copies the bytes of the image being encoded into its dictionary buffer a
/// block at a time, right behind the encoder (so they are read from cache).
struct Copier<'a> {
    src: &'a [u8],
    dst: Option<&'a mut Vec<u8>>,
    done: usize,
}

/// Bytes copied at a time.
const COPY_BLOCK: usize = 16 * 1024;

impl<'a> Copier<'a> {
    fn new(src: &'a [u8], dst: &'a mut Vec<u8>) -> Self {
        Self {
            src,
            dst: Some(dst),
            done: 0,
        }
    }
    /// A copier with nothing to do.
    fn none() -> Self {
        Self {
            src: &[],
            dst: None,
            done: 0,
        }
    }
    /// Copies whole blocks up to byte `end`.
    #[inline(always)]
    fn upto(&mut self, end: usize) {
        if end >= self.done + COPY_BLOCK {
            self.copy_to(end / COPY_BLOCK * COPY_BLOCK);
        }
    }
    #[inline(never)]
    fn copy_to(&mut self, end: usize) {
        if let Some(dst) = self.dst.as_deref_mut() {
            let end = end.min(self.src.len());
            if end > self.done {
                dst.extend_from_slice(&self.src[self.done..end]);
                self.done = end;
            }
        }
    }
    /// Copies the rest.
    fn finish(&mut self) {
        self.copy_to(self.src.len());
    }
}

/// Runs `len(at, max)` (a count of equal units from unit `at`, at most `max`)
/// over `ip..ip + max` in pieces, copying behind each piece; returns the total.
#[inline(always)]
fn in_pieces<P: Pixel>(
    copy: &mut Copier<'_>,
    ip: usize,
    max: usize,
    mut len: impl FnMut(usize, usize) -> usize,
) -> usize {
    let piece = COPY_BLOCK / P::BYTES;
    let mut total = 0;
    loop {
        let m = (max - total).min(piece);
        let got = len(ip + total, m);
        total += got;
        if got < m || total == max {
            return total;
        }
        copy.upto((ip + total) * P::BYTES);
    }
}

/// GLZ-specific constants of a pixel kind.
trait GlzPixel: Pixel {
    /// `count = len_code + GLZ_BIAS` in the decoder.
    const GLZ_BIAS: usize;
    /// Shortest match worth a token (at least `GLZ_BIAS + 1`).
    const GLZ_MIN: usize;
    /// Literal bytes per pixel.
    const LIT_BYTES: usize;
}

impl GlzPixel for Rgb32Px {
    const GLZ_BIAS: usize = 0;
    const GLZ_MIN: usize = 1;
    const LIT_BYTES: usize = 3;
}
impl GlzPixel for Rgb24Px {
    const GLZ_BIAS: usize = 0;
    const GLZ_MIN: usize = 1;
    const LIT_BYTES: usize = 3;
}
impl GlzPixel for Rgb16Px {
    const GLZ_BIAS: usize = 1;
    const GLZ_MIN: usize = 2;
    const LIT_BYTES: usize = 2;
}
impl GlzPixel for AlphaPx {
    const GLZ_BIAS: usize = 2;
    const GLZ_MIN: usize = 3;
    const LIT_BYTES: usize = 1;
}

/// One display channel's GLZ encoder over a shared dictionary.
#[derive(Debug, Clone)]
pub struct GlzEncoder {
    id: u32,
    dict: SharedGlzDictionary,
}

impl GlzEncoder {
    /// Creates the encoder of channel `id` over `dict`.
    pub fn new(id: u32, dict: SharedGlzDictionary) -> Self {
        Self { id, dict }
    }

    /// The shared dictionary.
    pub fn dictionary(&self) -> &SharedGlzDictionary {
        &self.dict
    }

    /// Encodes one image (holding the dictionary lock meanwhile).
    pub fn encode(
        &mut self,
        img: &GlzInput<'_>,
        out: &mut Vec<u8>,
    ) -> Result<GlzEncoded, GlzError> {
        // A poisoned lock only means another thread panicked elsewhere; the
        // dictionary is updated before any output is written, so it is usable.
        let mut d = self.dict.lock().unwrap_or_else(|e| e.into_inner());
        d.encode(self.id, img, out)
    }

    /// Encodes one image given in any [`GlzPixels`] form (see
    /// [`GlzDictionary::encode_frame`]).
    pub fn encode_frame(
        &mut self,
        img: &GlzFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<GlzEncoded, GlzError> {
        let mut d = self.dict.lock().unwrap_or_else(|e| e.into_inner());
        d.encode_frame(self.id, img, out)
    }
}

// ---------------------------------------------------------------------------
// Decoder side
// ---------------------------------------------------------------------------

/// A decoded image kept by the window.
#[derive(Debug, Clone)]
pub struct GlzImage {
    header: GlzHeader,
    pixels: Vec<u8>,
}

impl GlzImage {
    /// Its header.
    pub fn header(&self) -> &GlzHeader {
        &self.header
    }

    /// Pixels in stream (memory) order, 4 bytes each: B,G,R,X (X as decoded,
    /// normally 0) or B,G,R,A for RGBA images. Row 0 is the top row if
    /// `header().top_down`.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Copies the pixels to `out` with rows `stride` bytes apart, top row first.
    pub fn copy_to(&self, out: &mut [u8], stride: usize) -> Result<(), GlzError> {
        let row = self.header.width as usize * 4;
        let h = self.header.height as usize;
        let stride = stride.max(row);
        let need = stride * (h - 1) + row;
        if out.len() < need {
            return Err(LzError::OutputTooSmall {
                got: out.len(),
                need,
            }
            .into());
        }
        for (r, src) in self.pixels.chunks_exact(row).enumerate() {
            let dr = if self.header.top_down { r } else { h - 1 - r };
            out[dr * stride..dr * stride + row].copy_from_slice(src);
        }
        Ok(())
    }
}

/// The client's window of decoded GLZ images (one per session).
#[derive(Debug)]
pub struct GlzWindow {
    images: BTreeMap<u64, GlzImage>,
    /// Lowest id not yet received in the contiguous run of received ids.
    tail_gap: u64,
    /// Every id below this has been released.
    released_below: u64,
    stored_pixels: usize,
    max_pixels: usize,
    /// Buffers of released images, reused by the next images.
    spare: Vec<Vec<u8>>,
}

/// Buffers of released images a [`GlzWindow`] keeps for reuse.
const MAX_SPARE_BUFFERS: usize = 2;

/// Where [`GlzWindow::decode_to`] hands decoded pixels: `(first_pixel, bytes)`.
type PixelSink<'s> = dyn FnMut(usize, &[u8]) + 's;

/// Pixels [`GlzWindow::decode_to`] hands over at a time while decoding (32 KiB: still
/// in the first-level cache).
const SINK_RUN: usize = 8192;

impl GlzWindow {
    /// Creates an empty window keeping at most `max_pixels` pixels of images
    /// (the window size the client announced, or more). An image larger than
    /// this is refused; when the total grows past it the oldest images are
    /// dropped (a well-behaved server never needs that). The buffers of up to two
    /// released images are kept besides, for the next images to reuse.
    pub fn new(max_pixels: usize) -> Self {
        Self {
            images: BTreeMap::new(),
            tail_gap: 0,
            released_below: 0,
            stored_pixels: 0,
            max_pixels,
            spare: Vec::new(),
        }
    }

    /// Drops every image (reconnection, dictionary reset, migration).
    pub fn clear(&mut self) {
        self.images.clear();
        self.spare.clear();
        self.tail_gap = 0;
        self.released_below = 0;
        self.stored_pixels = 0;
    }

    /// The decoded image `id`, if still held.
    pub fn image(&self, id: u64) -> Option<&GlzImage> {
        self.images.get(&id)
    }

    /// Ids now held, oldest first.
    pub fn image_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.images.keys().copied()
    }

    /// Pixels now held.
    pub fn stored_pixels(&self) -> usize {
        self.stored_pixels
    }

    /// Decodes a GLZ stream, stores the image in the window (releasing images
    /// no longer referenced by the reference client's rule) and returns its
    /// header. On [`GlzError::MissingImage`] nothing changes: decode the
    /// missing image first, then this one again.
    pub fn decode(&mut self, stream: &[u8]) -> Result<GlzHeader, GlzError> {
        self.decode_inner(stream, None)
    }

    /// Like [`GlzWindow::decode`], and hands the decoded pixels (4 bytes each, as
    /// [`GlzImage::pixels`]) to `sink` as `(first_pixel, bytes)` runs: every pixel
    /// exactly once, in stream order.
    ///
    /// For an RGB16/24/32 image whose window (from the header's window head up to the
    /// image) the window holds entirely, the runs are handed over while decoding, a
    /// few thousand pixels at a time, while they are still in the CPU cache; a
    /// malformed stream may then have handed over some runs before its error.
    /// Otherwise (RGBA, or an image of the window missing) the whole image is handed
    /// over once decoded, so [`GlzError::MissingImage`] never reaches `sink`.
    pub fn decode_to(
        &mut self,
        stream: &[u8],
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<GlzHeader, GlzError> {
        self.decode_inner(stream, Some(sink))
    }

    /// True when every image from `hdr`'s window head up to `hdr.id` is held.
    fn holds_window_of(&self, hdr: &GlzHeader) -> bool {
        let id = hdr.id;
        let head = id.saturating_sub(u64::from(hdr.win_head_dist));
        id - head <= self.images.len() as u64
            && self.images.range(head..id).count() as u64 == id - head
    }

    fn decode_inner(
        &mut self,
        stream: &[u8],
        mut sink: Option<&mut PixelSink<'_>>,
    ) -> Result<GlzHeader, GlzError> {
        let hdr = GlzHeader::parse(stream)?;
        check_type(hdr.image_type)?;
        if hdr.width == 0 || hdr.height == 0 {
            return Err(LzError::EmptyImage {
                width: hdr.width,
                height: hdr.height,
            }
            .into());
        }
        let n64 = hdr.pixels();
        if n64 > self.max_pixels as u64 || n64 > MAX_WINDOW_PIXELS as u64 {
            return Err(GlzError::TooLarge {
                pixels: n64,
                limit: self.max_pixels.min(MAX_WINDOW_PIXELS) as u64,
            });
        }
        let n = n64 as usize;
        // The RGB pass appends every pixel exactly once (no zero fill of a buffer it
        // overwrites anyway); a buffer of a released image is reused when one fits.
        let mut pixels = self.take_spare(n * 4);
        let mut r = Reader {
            data: stream,
            pos: GlzHeader::SIZE,
        };
        // Runs go to the sink while decoding only when nothing can be missing and one
        // pass produces the final pixels.
        let streaming =
            sink.is_some() && hdr.image_type != LzImageType::Rgba && self.holds_window_of(&hdr);
        let mut during = if streaming { sink.take() } else { None };
        let res = match hdr.image_type {
            LzImageType::Rgb16 => {
                self.decode_pass::<RgbPass<2>>(&hdr, &mut r, n, &mut pixels, &mut during)
            }
            LzImageType::Rgba => self
                .decode_pass::<RgbPass<3>>(&hdr, &mut r, n, &mut pixels, &mut None)
                .and_then(|()| {
                    self.decode_pass::<AlphaPass>(&hdr, &mut r, n, &mut pixels, &mut None)
                }),
            _ => self.decode_pass::<RgbPass<3>>(&hdr, &mut r, n, &mut pixels, &mut during),
        };
        let res = res.and_then(|()| {
            if r.pos != stream.len() {
                Err(LzError::TrailingBytes(stream.len() - r.pos).into())
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            self.keep_spare(pixels);
            return Err(e);
        }
        debug_assert_eq!(pixels.len(), n * 4);
        if let Some(sink) = sink {
            sink(0, &pixels);
        }
        self.insert(GlzImage {
            header: hdr,
            pixels,
        });
        Ok(hdr)
    }

    /// An empty buffer with room for `bytes`: a kept buffer of a released image if one
    /// is large enough (and not wastefully larger), else a new allocation.
    fn take_spare(&mut self, bytes: usize) -> Vec<u8> {
        if let Some(i) = self
            .spare
            .iter()
            .position(|b| b.capacity() >= bytes && b.capacity() / 2 <= bytes)
        {
            let mut b = self.spare.swap_remove(i);
            b.clear();
            return b;
        }
        Vec::with_capacity(bytes)
    }

    /// Keeps the buffer of a released image for a later image (at most
    /// [`MAX_SPARE_BUFFERS`], the largest kept).
    fn keep_spare(&mut self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        if self.spare.len() < MAX_SPARE_BUFFERS {
            self.spare.push(buf);
        } else if let Some(small) = self
            .spare
            .iter_mut()
            .min_by_key(|b| b.capacity())
            .filter(|b| b.capacity() < buf.capacity())
        {
            *small = buf;
        }
    }

    fn insert(&mut self, img: GlzImage) {
        let id = img.header.id;
        let head = id.saturating_sub(u64::from(img.header.win_head_dist));
        if self.images.is_empty() && self.tail_gap < head {
            // First image of a window that starts late (ids need not start at 0).
            self.tail_gap = head;
            self.released_below = self.released_below.max(head);
        }
        self.stored_pixels += img.pixels.len() / 4;
        if let Some(old) = self.images.insert(id, img) {
            tracing::warn!(id, "GLZ image id received twice; replacing");
            self.stored_pixels -= old.pixels.len() / 4;
            self.keep_spare(old.pixels);
        }
        while self.images.contains_key(&self.tail_gap) {
            self.tail_gap += 1;
        }
        if let Some(last) = self
            .tail_gap
            .checked_sub(1)
            .and_then(|t| self.images.get(&t))
        {
            let oldest = last
                .header
                .id
                .saturating_sub(u64::from(last.header.win_head_dist));
            self.release_below(oldest);
        }
        while self.stored_pixels > self.max_pixels {
            let Some((&first, _)) = self.images.iter().next() else {
                break;
            };
            tracing::warn!(id = first, "GLZ window over its cap; dropping oldest image");
            self.release_below(first + 1);
        }
    }

    fn release_below(&mut self, bound: u64) {
        if bound <= self.released_below {
            return;
        }
        let keep = self.images.split_off(&bound);
        for img in std::mem::replace(&mut self.images, keep).into_values() {
            self.stored_pixels -= img.pixels.len() / 4;
            self.keep_spare(img.pixels);
        }
        self.released_below = bound;
    }

    fn lookup(&self, id: u64, idist: u64, at: usize) -> Result<&GlzImage, GlzError> {
        let rid = id
            .checked_sub(idist)
            .ok_or(GlzError::BadReference { id, at })?;
        if let Some(img) = self.images.get(&rid) {
            return Ok(img);
        }
        if rid < self.released_below {
            Err(GlzError::ReleasedImage { id, released: rid })
        } else {
            Err(GlzError::MissingImage { id, missing: rid })
        }
    }

    /// One pass over the `n` pixels of the image: [`RgbPass`] appends them to the
    /// empty `out` (room for `n * 4` bytes reserved), [`AlphaPass`] sets the alpha
    /// bytes of the `n * 4` bytes the RGB pass produced.
    ///
    /// With a `sink`, finished pixels are handed to it every [`SINK_RUN`] pixels or
    /// so, and the rest at the end (output before `op` never changes again).
    fn decode_pass<K: Pass>(
        &self,
        hdr: &GlzHeader,
        r: &mut Reader<'_>,
        n: usize,
        out: &mut Vec<u8>,
        sink: &mut Option<&mut PixelSink<'_>>,
    ) -> Result<(), GlzError> {
        let id = hdr.id;
        let mut op = 0usize;
        let mut sent = 0usize;
        let mut next_send = if sink.is_some() { SINK_RUN } else { usize::MAX };
        while op < n {
            if op >= next_send {
                if let Some(f) = sink {
                    f(sent, &out[sent * 4..op * 4]);
                }
                sent = op;
                next_send = op + SINK_RUN;
            }
            let at = r.pos;
            let ctrl = r.byte()?;
            if ctrl >= 32 {
                let mut len = usize::from(ctrl >> 5);
                let pflag = ctrl & 0x10 != 0;
                let mut pofs = usize::from(ctrl & 0x0f);
                if len == 7 {
                    loop {
                        let c = r.byte()?;
                        len += usize::from(c);
                        if c != 255 {
                            break;
                        }
                    }
                }
                pofs += usize::from(r.byte()?) << 4;
                let code = r.byte()?;
                let iflag = code >> 6;
                let mut idist: u64;
                if !pflag {
                    idist = u64::from(code & 0x3f);
                    for i in 0..iflag {
                        idist += u64::from(r.byte()?) << (6 + 8 * u32::from(i));
                    }
                } else {
                    pofs += usize::from(code & 0x1f) << 12;
                    idist = 0;
                    for i in 0..iflag {
                        idist += u64::from(r.byte()?) << (8 * u32::from(i));
                    }
                    if code & 0x20 != 0 {
                        pofs += usize::from(r.byte()?) << 17;
                    }
                }
                let len = len + K::BIAS;
                if len > n - op {
                    return Err(LzError::Overrun(at).into());
                }
                let src = if idist == 0 {
                    if pofs + 1 > op {
                        return Err(LzError::BadReference(at).into());
                    }
                    None
                } else {
                    let img = self.lookup(id, idist, at)?;
                    let rn = img.pixels.len() / 4;
                    if pofs > rn || len > rn - pofs {
                        return Err(GlzError::BadReference { id, at });
                    }
                    Some(&img.pixels)
                };
                // A long match (a whole frame repeated) is copied in pieces, each handed
                // to the sink while it is still cached.
                let mut done = 0;
                while done < len {
                    let c = (len - done).min(SINK_RUN);
                    match src {
                        None => K::copy_same(out, op + done, pofs + 1, c),
                        Some(px) => K::copy_from(px, pofs + done, out, op + done, c),
                    }
                    done += c;
                    if op + done >= next_send {
                        if let Some(f) = sink {
                            f(sent, &out[sent * 4..(op + done) * 4]);
                        }
                        sent = op + done;
                        next_send = sent + SINK_RUN;
                    }
                }
                op += len;
            } else {
                let cnt = usize::from(ctrl) + 1;
                if cnt > n - op {
                    return Err(LzError::Overrun(at).into());
                }
                let inp = r.take(cnt * K::IN)?;
                K::literals(inp, out, op);
                op += cnt;
            }
        }
        if let Some(f) = sink {
            f(sent, &out[sent * 4..op * 4]);
        }
        Ok(())
    }
}

/// One decoding pass over 32-bit output pixels; `op` is the pixel being produced.
trait Pass {
    const IN: usize;
    const BIAS: usize;
    /// `inp` holds at most 32 literals.
    fn literals(inp: &[u8], out: &mut Vec<u8>, op: usize);
    fn copy_same(out: &mut Vec<u8>, op: usize, ofs: usize, len: usize);
    fn copy_from(src: &[u8], sp: usize, out: &mut Vec<u8>, op: usize, len: usize);
}

/// RGB pass: `B == 3` for RGB24/32 literals, `B == 2` for RGB16 (widened). Appends
/// to `out`, which holds exactly `op` pixels.
struct RgbPass<const B: usize>;

impl<const B: usize> Pass for RgbPass<B> {
    const IN: usize = B;
    const BIAS: usize = 3 - B;
    #[inline(always)]
    fn literals(inp: &[u8], out: &mut Vec<u8>, _op: usize) {
        // At most 32 literals per control byte: build them on the stack, append once.
        let mut buf = [0u8; 32 * 4];
        let n = inp.len() / B;
        for (i, o) in inp.chunks_exact(B).zip(buf.chunks_exact_mut(4)) {
            if B == 3 {
                o[..3].copy_from_slice(&i[..3]);
            } else {
                lz::widen_rgb16(i[0], i[1], o);
            }
        }
        out.extend_from_slice(&buf[..n * 4]);
    }
    #[inline(always)]
    fn copy_same(out: &mut Vec<u8>, op: usize, ofs: usize, len: usize) {
        // Pixels `ofs` back, repeating when the match overlaps itself: the bytes from
        // `start` on are periodic (period `ofs` pixels), so each append may copy all of
        // them, doubling the run.
        debug_assert_eq!(out.len(), op * 4);
        let start = (op - ofs) * 4;
        let mut left = len * 4;
        while left > 0 {
            let c = (out.len() - start).min(left);
            out.extend_from_within(start..start + c);
            left -= c;
        }
    }
    #[inline(always)]
    fn copy_from(src: &[u8], sp: usize, out: &mut Vec<u8>, _op: usize, len: usize) {
        out.extend_from_slice(&src[sp * 4..(sp + len) * 4]);
    }
}

/// Alpha pass of RGBA: byte 3 only.
struct AlphaPass;

impl Pass for AlphaPass {
    const IN: usize = 1;
    const BIAS: usize = 2;
    #[inline(always)]
    fn literals(inp: &[u8], out: &mut Vec<u8>, op: usize) {
        for (&a, o) in inp.iter().zip(out[op * 4..].chunks_exact_mut(4)) {
            o[3] = a;
        }
    }
    #[inline(always)]
    fn copy_same(out: &mut Vec<u8>, op: usize, ofs: usize, len: usize) {
        for i in op..op + len {
            out[i * 4 + 3] = out[(i - ofs) * 4 + 3];
        }
    }
    #[inline(always)]
    fn copy_from(src: &[u8], sp: usize, out: &mut Vec<u8>, op: usize, len: usize) {
        for k in 0..len {
            out[(op + k) * 4 + 3] = src[(sp + k) * 4 + 3];
        }
    }
}

/// Fuzzing entry point: splits `data` at `0xFF 0x00 0xFF 0x00` markers into
/// streams and decodes them in order into one window capped at 2^20 pixels,
/// alternately with [`GlzWindow::decode`] and [`GlzWindow::decode_to`] (whose runs
/// must follow each other; checked by a debug assertion). Never panics.
pub fn fuzz_decode(data: &[u8]) -> Result<(), GlzError> {
    let mut win = GlzWindow::new(1 << 20);
    let mut rest = data;
    let mut with_sink = false;
    let decode = |win: &mut GlzWindow, part: &[u8], with_sink: bool| {
        if with_sink {
            let mut next = 0;
            win.decode_to(part, &mut |first, bytes| {
                debug_assert_eq!(first, next, "runs follow each other");
                next = first + bytes.len() / 4;
            })
        } else {
            win.decode(part)
        }
    };
    loop {
        let split = rest.windows(4).position(|w| w == [0xff, 0, 0xff, 0]);
        let (part, next) = match split {
            Some(p) => (&rest[..p], &rest[p + 4..]),
            None => return decode(&mut win, rest, with_sink).map(|_| ()),
        };
        // Errors of earlier parts are expected with fuzzed input; keep going.
        let _ = decode(&mut win, part, with_sink);
        with_sink = !with_sink;
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::{GlzDictionary, GlzError, GlzFrame, GlzInput, GlzPixels, GlzWindow};
    use crate::lz::LzImageType;

    /// `decode_to` hands over every pixel once, in order, in runs (several for a large
    /// image, ending mid-row), equal to the stored image; RGBA and images whose window
    /// is incomplete are handed over whole, after decoding, and a missing image hands
    /// over nothing.
    #[test]
    fn decode_to_hands_over_runs() {
        let (w, h) = (301usize, 97usize);
        // Noise every few pixels, so no single match covers the image.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let img: Vec<u8> = (0..w * h * 4)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if (i / 4) % 5 == 0 {
                    seed as u8
                } else {
                    (i % 4 * 50) as u8
                }
            })
            .collect();
        let mut dict = GlzDictionary::new(w * h * 8).unwrap();
        let mut streams = Vec::new();
        for t in [LzImageType::Rgb32, LzImageType::Rgb32, LzImageType::Rgba] {
            let mut out = Vec::new();
            let input = GlzInput {
                image_type: t,
                width: w as u32,
                height: h as u32,
                stride: w * 4,
                top_down: false,
                data: &img,
            };
            dict.encode(0, &input, &mut out).unwrap();
            streams.push(out);
        }
        // Image 1 without image 0: refused before any pixel is handed over.
        let mut win = GlzWindow::new(w * h * 8);
        let mut calls = 0;
        let r = win.decode_to(&streams[1], &mut |_, _| calls += 1);
        assert!(matches!(r, Err(GlzError::MissingImage { .. })), "{r:?}");
        assert_eq!(calls, 0);
        for (i, s) in streams.iter().enumerate() {
            let mut runs: Vec<(usize, Vec<u8>)> = Vec::new();
            let hdr = win
                .decode_to(s, &mut |first, bytes| runs.push((first, bytes.to_vec())))
                .unwrap();
            let mut next = 0;
            let mut all = Vec::new();
            for (first, bytes) in &runs {
                assert_eq!(*first, next);
                next += bytes.len() / 4;
                all.extend_from_slice(bytes);
            }
            assert_eq!(all, win.image(hdr.id).unwrap().pixels(), "image {i}");
            if i < 2 {
                assert!(runs.len() > 2, "image {i}: {} runs", runs.len());
            } else {
                assert_eq!(runs.len(), 1, "RGBA: one run");
            }
        }
    }

    /// The dictionary keeps exact copies of packed and padded inputs, long
    /// matches and runs included (copied block by block while encoding).
    #[test]
    fn dictionary_holds_the_input_pixels() {
        let (w, h) = (300usize, 70usize);
        let mut img: Vec<u8> = (0..w * h * 4).map(|i| (i / 4 % 251) as u8).collect();
        // A long run in the middle, and a long stretch repeating earlier rows.
        img[w * 4 * 10..w * 4 * 30].fill(7);
        img.copy_within(0..w * 4 * 20, w * 4 * 40);
        let mut dict = GlzDictionary::new(w * h * 4).unwrap();
        for t in [LzImageType::Rgb32, LzImageType::Rgba, LzImageType::Rgb32] {
            let mut out = Vec::new();
            let input = GlzInput {
                image_type: t,
                width: w as u32,
                height: h as u32,
                stride: w * 4,
                top_down: true,
                data: &img,
            };
            dict.encode(0, &input, &mut out).unwrap();
            assert_eq!(dict.images.back().unwrap().data.bytes(), img);
        }
        // Padded rows are packed.
        let mut out = Vec::new();
        let input = GlzInput {
            image_type: LzImageType::Rgb32,
            width: (w - 1) as u32,
            height: h as u32,
            stride: w * 4,
            top_down: true,
            data: &img,
        };
        dict.encode(0, &input, &mut out).unwrap();
        let packed: Vec<u8> = img
            .chunks(w * 4)
            .flat_map(|r| r[..(w - 1) * 4].iter().copied())
            .collect();
        assert_eq!(dict.images.back().unwrap().data.bytes(), packed);
    }

    /// Row chunks and shared buffers give the bytes of the plain input, and
    /// later images may refer into them.
    #[test]
    fn chunks_and_shared_pixels_encode_like_rows() {
        let (w, h) = (90usize, 40usize);
        let imgs: Vec<Vec<u8>> = (0..4u32)
            .map(|k| {
                (0..w * h * 4)
                    .map(|i| ((i as u32 / 4 % 17) * (k % 2 + 1) % 9 * 25) as u8)
                    .collect()
            })
            .collect();
        fn frame(w: usize, h: usize, pixels: GlzPixels<'_>) -> GlzFrame<'_> {
            GlzFrame {
                image_type: LzImageType::Rgba,
                width: w as u32,
                height: h as u32,
                stride: w * 4,
                top_down: true,
                pixels,
            }
        }
        let mut plain = GlzDictionary::new(w * h * 3).unwrap();
        let mut other = GlzDictionary::new(w * h * 3).unwrap();
        for (k, img) in imgs.iter().enumerate() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            plain
                .encode_frame(0, &frame(w, h, GlzPixels::Rows(img)), &mut a)
                .unwrap();
            let rows: Vec<&[u8]> = img.chunks(w * 4 * 7).collect();
            let pixels = if k % 2 == 0 {
                GlzPixels::Chunks(&rows)
            } else {
                GlzPixels::Shared(img.clone().into())
            };
            other.encode_frame(0, &frame(w, h, pixels), &mut b).unwrap();
            assert_eq!(a, b, "image {k}");
        }
        // Chunks must hold whole rows, `height` in all; shared buffers packed rows.
        let rows: Vec<&[u8]> = vec![&imgs[0][..w * 4 * 3 + 4]];
        assert!(
            other
                .encode_frame(0, &frame(w, h, GlzPixels::Chunks(&rows)), &mut Vec::new())
                .is_err()
        );
        let rows: Vec<&[u8]> = vec![&imgs[0][..w * 4 * 3]];
        assert!(
            other
                .encode_frame(0, &frame(w, h, GlzPixels::Chunks(&rows)), &mut Vec::new())
                .is_err()
        );
        let mut f = frame(w, h, GlzPixels::Shared(imgs[0].clone().into()));
        f.stride += 4;
        assert!(other.encode_frame(0, &f, &mut Vec::new()).is_err());
        let f = frame(w, h, GlzPixels::Shared(imgs[0][..100].to_vec().into()));
        assert!(other.encode_frame(0, &f, &mut Vec::new()).is_err());
    }

    /// Positions close to the `u32` limit of the hash slots force a rebase in
    /// the middle of a sequence; the output must not change.
    #[test]
    fn hash_rebase_keeps_output() {
        let (w, h) = (64usize, 16usize);
        let img = |seed: u32| -> Vec<u8> {
            (0..w * h * 4)
                .map(|i| ((i as u32 / 4 % 13) * seed % 7 * 40) as u8)
                .collect()
        };
        let imgs = [img(1), img(3), img(1), img(5), img(3)];
        let run = |dict: &mut GlzDictionary| -> Vec<Vec<u8>> {
            imgs.iter()
                .map(|d| {
                    let mut out = Vec::new();
                    let input = GlzInput {
                        image_type: LzImageType::Rgba,
                        width: w as u32,
                        height: h as u32,
                        stride: w * 4,
                        top_down: true,
                        data: d,
                    };
                    dict.encode(0, &input, &mut out).unwrap();
                    out
                })
                .collect()
        };
        let mut fresh = GlzDictionary::new(w * h * 3).unwrap();
        let want = run(&mut fresh);
        let mut late = GlzDictionary::new(w * h * 3).unwrap();
        late.next_pos = u64::from(u32::MAX) - (w * h * 2) as u64;
        assert_eq!(run(&mut late), want);
        assert!(late.hash_base > 0, "no rebase happened");
        // A reset dictionary encodes like a fresh one.
        late.reset();
        let mut fresh = GlzDictionary::new(w * h * 3).unwrap();
        assert_eq!(run(&mut late), run(&mut fresh));
    }
}
