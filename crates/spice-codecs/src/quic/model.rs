//! QUIC constant tables, the Golomb code family and the adaptive model state.
use super::swar::LaneTable;

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

/// `(pixels, state)` after `k` one bits from melcode state `s`: entry `[s][k]`
/// (see [`State::melc_ones`]).
static MELC_ONES: [[(u32, u8); 33]; 32] = {
    let mut t = [[(0u32, 0u8); 33]; 32];
    let mut s = 0;
    while s < 32 {
        let (mut n, mut st) = (0u32, s);
        let mut k = 0;
        while k <= 32 {
            t[s][k] = (n, st as u8);
            n += 1 << MELC_J[st];
            if st < 31 {
                st += 1;
            }
            k += 1;
        }
        s += 1;
    }
    t
};

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

pub(crate) struct Family {
    /// Zero-prefix length that marks an escape code, per code index (256 entries,
    /// so a code index read from a byte table needs no bounds check; only the first
    /// `BPC` are used).
    pub(crate) alt: [u32; 256],
    /// First residual coded with an escape, per code index (as `alt`).
    pub(crate) ngr: [u32; 256],
    /// Length of an escape codeword, per code index (as `alt`).
    pub(crate) esc_len: [u32; 256],
    /// Codeword per (code index, residual): `bits | len << 16`.
    pub(crate) codes: [[u32; 256]; 8],
    /// Code length per (code index, residual), for the model counters.
    pub(crate) lens: [[u8; 256]; 8],
    /// `lens` transposed: the code lengths of residual `m` under every code index,
    /// side by side for the model update (0 past `BPC`).
    pub(crate) lens_by_m: [[u8; 8]; 256],
    /// Codeword bits per `code index * 256 + residual` (see [`Model::code_base`]).
    pub(crate) bits: [u16; 2048],
    /// Context (previous residual) → bucket.
    pub(crate) bucket_of: [u8; 256],
    /// Contexts `start..end` of each bucket (within 0..256).
    pub(crate) bucket_range: [(u16, u16); 8],
    /// Modular residual → zig-zag mapped residual.
    pub(crate) u2l: [u8; 256],
    /// Zig-zag mapped residual → modular residual.
    pub(crate) l2u: [u8; 256],
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
        alt: [0; 256],
        ngr: [0; 256],
        esc_len: [0; 256],
        codes: [[0; 256]; 8],
        lens: [[0; 256]; 8],
        lens_by_m: [[0; 8]; 256],
        bits: [0; 2048],
        bucket_of: [0; 256],
        bucket_range: [(0, 0); 8],
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
            f.lens_by_m[m as usize][l as usize] = len as u8;
            f.bits[(l * 256 + m) as usize] = bits as u16;
            m += 1;
        }
        l += 1;
    }
    let nbuckets = bpc;
    let mut ctx = 0;
    while ctx < 256 {
        let lg = 31 - (ctx + 1u32).leading_zeros();
        let b = if lg < nbuckets - 1 { lg } else { nbuckets - 1 };
        f.bucket_of[ctx as usize] = b as u8;
        if f.bucket_range[b as usize].1 == 0 {
            f.bucket_range[b as usize].0 = ctx as u16;
        }
        f.bucket_range[b as usize].1 = ctx as u16 + 1;
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
pub(crate) fn family<const BPC: u32>() -> &'static Family {
    if BPC == 8 { &FAMILY8 } else { &FAMILY5 }
}

// ---------------------------------------------------------------------------------
// Model and adaptation state.

#[derive(Clone, Copy)]
pub(crate) struct Bucket {
    pub(crate) counters: [u32; 8],
    pub(crate) best: u32,
}

/// Per-channel model: one bucket per context class.
#[derive(Clone, Copy)]
pub(crate) struct Model {
    pub(crate) buckets: [Bucket; 8],
    /// `buckets[bucket_of[ctx]].best` for every context, kept in step by
    /// [`Model::update`], so coding a value costs one lookup.
    pub(crate) best_of: [u8; 256],
    /// `256 * best_of[ctx]`: where the context's codes start in [`Family::bits`] and
    /// the flattened [`Family::lens`].
    pub(crate) code_base: [u16; 256],
    /// The decoder's view of `best_of[ctx]` as the values its Golomb step uses
    /// (see [`DecodeParams`]), one table each so every one is a single byte load.
    pub(crate) dec: DecodeParams,
    /// The channel's lane lookups for the decoder's SSE loop (set by 8-bit R,G,B
    /// planes; zeros otherwise).
    pub(crate) lane: LaneTable,
}

/// Per-context decoding parameters of a [`Model`], derived from the context's code
/// index `l`: kept in step with `best_of` by [`Model::update`].
#[derive(Clone, Copy)]
pub(crate) struct DecodeParams {
    /// The zero-prefix length that marks an escape code (`Family::alt[l]`).
    pub(crate) alt: [u8; 256],
    /// `63 - l`: the shift that leaves a codeword's leading one and its `l` low bits.
    pub(crate) low_shift: [u8; 256],
    /// `l + 1`: the bits after the zero prefix.
    pub(crate) tail: [u8; 256],
    /// `1 << l`: the codeword's leading one after the shift by `low_shift`, and the
    /// weight of each prefix zero in the residual.
    pub(crate) one: [u8; 256],
}

impl DecodeParams {
    fn fill(&mut self, range: core::ops::Range<usize>, bpc: u32, l: u32) {
        let fam = if bpc == 8 { &FAMILY8 } else { &FAMILY5 };
        self.alt[range.clone()].fill(fam.alt[l as usize] as u8);
        self.low_shift[range.clone()].fill((63 - l) as u8);
        self.tail[range.clone()].fill((l + 1) as u8);
        self.one[range].fill((1u32 << l) as u8);
    }
}

impl Model {
    pub(crate) fn new(bpc: u32) -> Self {
        let mut dec = DecodeParams {
            alt: [0; 256],
            low_shift: [0; 256],
            tail: [0; 256],
            one: [0; 256],
        };
        dec.fill(0..256, bpc, bpc - 1);
        Self {
            buckets: [Bucket {
                counters: [0; 8],
                best: bpc - 1,
            }; 8],
            best_of: [(bpc - 1) as u8; 256],
            code_base: [(bpc as u16 - 1) * 256; 256],
            dec,
            lane: LaneTable::EMPTY,
        }
    }

    /// Updates the bucket of context `ctx` with the residual `m` just coded.
    #[inline(always)]
    pub(crate) fn update<const BPC: u32>(&mut self, ctx: u8, m: u8, trigger: u32) {
        let fam = family::<BPC>();
        let b = usize::from(fam.bucket_of[usize::from(ctx)] & 7);
        let bucket = &mut self.buckets[b];
        let old = bucket.best;
        update_bucket::<BPC>(bucket, m, trigger);
        if bucket.best != old {
            let (start, end) = fam.bucket_range[b];
            let range = usize::from(start)..usize::from(end);
            self.best_of[range.clone()].fill(bucket.best as u8);
            self.code_base[range.clone()].fill(bucket.best as u16 * 256);
            self.dec.fill(range, BPC, bucket.best);
        }
    }
}

/// Coding state shared by the channels coded together (R,G,B; gray; alpha).
pub(crate) struct State {
    pub(crate) waitcnt: u32,
    pub(crate) seed: u8,
    pub(crate) wmidx: u32,
    pub(crate) wmileft: u32,
    pub(crate) wm_trigger: u32,
    pub(crate) melcstate: u32,
    pub(crate) melclen: u32,
    pub(crate) melcorder: u32,
}

impl State {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn tabrand(&mut self) -> u32 {
        self.seed = self.seed.wrapping_add(1);
        TABRAND[usize::from(self.seed)]
    }

    /// Counts `k` (`<= 32`) one bits of a run length: the pixels they stand for
    /// (each the current order, stepping the melcode state up after it), from a table
    /// instead of a loop of `k` steps.
    #[inline(always)]
    pub(crate) fn melc_ones(&mut self, k: u32) -> usize {
        let step = MELC_ONES[self.melcstate as usize][k as usize];
        self.melcstate = u32::from(step.1);
        self.melclen = u32::from(MELC_J[self.melcstate as usize]);
        self.melcorder = 1 << self.melclen;
        step.0 as usize
    }

    #[inline(always)]
    pub(crate) fn melc_up(&mut self) {
        if self.melcstate < 31 {
            self.melcstate += 1;
            self.melclen = u32::from(MELC_J[self.melcstate as usize]);
            self.melcorder = 1 << self.melclen;
        }
    }

    #[inline(always)]
    pub(crate) fn melc_down(&mut self) {
        if self.melcstate > 0 {
            self.melcstate -= 1;
            self.melclen = u32::from(MELC_J[self.melcstate as usize]);
            self.melcorder = 1 << self.melclen;
        }
    }

    /// The next segment `(begin, end, waitmask)` of the row walked by `seg`: the row
    /// is split where the wait mask grows. The growth after a segment is applied at
    /// the next call, so the segment is coded with its own threshold.
    #[inline(always)]
    pub(crate) fn next_segment(&mut self, seg: &mut RowSegments) -> Option<(usize, usize, u32)> {
        loop {
            if seg.bump {
                seg.bump = false;
                self.wmidx += 1;
                self.wm_trigger = BESTTRIG[self.wmidx as usize];
                self.wmileft = WMI_NEXT;
            }
            let mask = (1 << self.wmidx) - 1;
            if self.wmidx < WMI_MAX && self.wmileft as usize <= seg.left {
                let n = self.wmileft as usize;
                seg.bump = true;
                if n > 0 {
                    let begin = seg.pos;
                    seg.left -= n;
                    seg.pos += n;
                    return Some((begin, begin + n, mask));
                }
            } else if seg.left > 0 {
                let (begin, n) = (seg.pos, seg.left);
                if self.wmidx < WMI_MAX {
                    self.wmileft -= n as u32;
                }
                seg.left = 0;
                seg.pos += n;
                return Some((begin, begin + n, mask));
            } else {
                return None;
            }
        }
    }
}

/// The walk of one row's segments (see [`State::next_segment`]).
pub(crate) struct RowSegments {
    pos: usize,
    left: usize,
    bump: bool,
}

impl RowSegments {
    /// A walk over a row of `width` pixels.
    pub(crate) fn new(width: usize) -> Self {
        Self {
            pos: 0,
            left: width,
            bump: false,
        }
    }
}

/// Updates one bucket with the residual `m` just coded.
///
/// Every code index's counter grows by the length `m`'s codeword would have had with
/// it; the new best index is the one with the smallest counter, the highest index
/// among equals; past the trigger all counters halve. The eight counters are done
/// side by side without a branch: each gets the key `counter * 8 + (7 - index)`, so
/// the smallest key names the smallest counter and, among equals, the highest index
/// (counters stay far below 2^28: they halve once the smallest passes the trigger,
/// and none grows by more than 26 an update). LLVM turns the lanes into vector
/// adds and a minimum.
#[inline(always)]
pub(crate) fn update_bucket<const BPC: u32>(bucket: &mut Bucket, m: u8, trigger: u32) {
    let fam = family::<BPC>();
    let lens = &fam.lens_by_m[usize::from(m)];
    let mut key = [u32::MAX; 8];
    for l in 0..8 {
        let c = bucket.counters[l] + u32::from(lens[l]);
        bucket.counters[l] = c;
        // Indices past BPC never win (their counters stay 0 and are never read).
        key[l] = if (l as u32) < BPC {
            (c << 3) | (7 - l as u32)
        } else {
            u32::MAX
        };
    }
    let best_key = key.iter().fold(u32::MAX, |a, &k| a.min(k));
    bucket.best = 7 - (best_key & 7);
    if best_key >> 3 > trigger {
        for c in &mut bucket.counters {
            *c >>= 1;
        }
    }
}
