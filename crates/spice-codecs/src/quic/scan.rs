//! The row pre-pass of the R,G,B encoder.
//!
//! Everything about a pixel that does not depend on the coding state is worked out for
//! the whole row first: its mapped residual word and, as bit masks, whether it equals
//! its left neighbour in this row and in the previous row. This pass has no
//! dependencies from pixel to pixel, so it runs four pixels at a time in SSE2 on
//! x86-64 (baseline there, no detection needed); a portable scalar version with the
//! same results does the rest, other targets and 5-bit channels. The coding loop then
//! jumps from run start to run start with the masks and only visits coded pixels.

use super::swar;

/// The instruction set of the scan's vector part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// Pixel by pixel only (targets other than x86-64, and the tests).
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    None,
    /// Four pixels a step (x86-64 baseline).
    Sse2,
    /// Eight pixels a step; the row loops compiled for x86-64-v3 (AVX2, BMI1, BMI2,
    /// LZCNT).
    Avx2,
}

impl Simd {
    /// The best level this CPU has.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("bmi1")
                && std::is_x86_feature_detected!("bmi2")
                && std::is_x86_feature_detected!("lzcnt")
            {
                Self::Avx2
            } else {
                Self::Sse2
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::None
        }
    }

    /// Every level this CPU can run, for the tests.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        let mut v = vec![Self::None];
        if cfg!(target_arch = "x86_64") {
            v.push(Self::Sse2);
        }
        if Self::detect() == Self::Avx2 {
            v.push(Self::Avx2);
        }
        v
    }
}

/// The pre-pass results of one row.
#[derive(Default)]
pub(crate) struct RowScan {
    /// Mapped residuals of pixel x (x >= 1) as lane words (see [`swar`]).
    pub(crate) resid: Vec<u32>,
    /// Bit x: pixel x equals pixel x - 1.
    eq_left: Vec<u64>,
    /// Bit x: previous row's pixel x equals its pixel x - 1.
    eq_up: Vec<u64>,
    /// Bit x: a run may start at pixel x (x > 2, previous row's x - 1 and x equal,
    /// current row's x - 2 and x - 1 equal).
    cand: Vec<u64>,
}

#[inline(always)]
fn word(row: &[u8], x: usize) -> u32 {
    u32::from_le_bytes([row[4 * x], row[4 * x + 1], row[4 * x + 2], row[4 * x + 3]])
}

impl RowScan {
    pub(crate) fn new(width: usize) -> Self {
        let words = width.div_ceil(64) + 1;
        Self {
            resid: vec![0; width],
            eq_left: vec![0; words],
            eq_up: vec![0; words],
            cand: vec![0; words],
        }
    }

    /// Fills the scan of the row `cur` (B,G,R,0 pixels, `BPC`-bit channels) over
    /// `prev`, the row of the previous call (ignored when `first`), with the
    /// instruction set `simd` (which the CPU must have).
    pub(crate) fn fill_with<const BPC: u32>(
        &mut self,
        prev: &[u8],
        cur: &[u8],
        first: bool,
        simd: Simd,
    ) {
        let width = cur.len() / 4;
        debug_assert!(prev.len() == cur.len() && self.resid.len() == width);
        // The previous row's "equals its left neighbour" is this row's "above equals
        // above-left".
        core::mem::swap(&mut self.eq_up, &mut self.eq_left);
        self.eq_left.fill(0);
        let (lo, hi) = if BPC == 8 {
            self.fill_simd8(prev, cur, first, simd)
        } else {
            (width, width)
        };
        for x in (1..lo).chain(hi..width) {
            self.fill_one::<BPC>(prev, cur, first, x);
        }
        let mut carry = 0;
        for (k, ((cand, &eql), &equp)) in self
            .cand
            .iter_mut()
            .zip(&self.eq_left)
            .zip(&self.eq_up)
            .enumerate()
        {
            // A run may start at x when x - 1 equals x - 2 (eq_left bit x - 1).
            let mut c = ((eql << 1) | carry) & equp;
            carry = eql >> 63;
            if k == 0 {
                c &= !0b111;
            }
            *cand = if first { 0 } else { c };
        }
    }

    /// The scan of pixel `x >= 1`, one at a time.
    #[inline(always)]
    fn fill_one<const BPC: u32>(&mut self, prev: &[u8], cur: &[u8], first: bool, x: usize) {
        let (a, c, b) = (word(cur, x - 1), word(cur, x), word(prev, x));
        let pred = if first { a } else { swar::avg(a, b) };
        self.resid[x] = swar::zigzag::<BPC>(swar::sub::<BPC>(c, pred));
        self.eq_left[x >> 6] |= u64::from(c == a) << (x & 63);
    }

    /// The vector part of the scan (8-bit channels): returns the pixels `lo..hi` it
    /// did; the caller does `1..lo` and `hi..width` one at a time.
    #[cfg(target_arch = "x86_64")]
    fn fill_simd8(&mut self, prev: &[u8], cur: &[u8], first: bool, simd: Simd) -> (usize, usize) {
        match simd {
            // SAFETY: Simd::Avx2 is only chosen when the CPU has AVX2 (`Simd::detect`,
            // or a test that checked it).
            Simd::Avx2 => unsafe { self.fill_avx2(prev, cur, first) },
            // SAFETY: SSE2 is part of the x86-64 baseline, always present.
            Simd::Sse2 => unsafe { self.fill_sse2(prev, cur, first) },
            Simd::None => (cur.len() / 4, cur.len() / 4),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fill_simd8(&mut self, _: &[u8], cur: &[u8], _: bool, _: Simd) -> (usize, usize) {
        (cur.len() / 4, cur.len() / 4)
    }

    /// Four pixels a step from pixel 4.
    ///
    /// # Safety
    /// The CPU must have SSE2 (every x86-64 CPU has).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    #[allow(unused_unsafe)]
    unsafe fn fill_sse2(&mut self, prev: &[u8], cur: &[u8], first: bool) -> (usize, usize) {
        // SAFETY: the caller guarantees the CPU feature this function enables; every
        // load and store below goes through a slice of exactly its size. (One block for
        // the body: the intrinsics are unsafe to call before Rust 1.87.)
        unsafe {
            use core::arch::x86_64::{
                __m128i, _mm_add_epi8, _mm_and_si128, _mm_avg_epu8, _mm_castsi128_ps,
                _mm_cmpeq_epi32, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_ps, _mm_set1_epi8,
                _mm_setzero_si128, _mm_storeu_si128, _mm_sub_epi8, _mm_xor_si128,
            };
            #[inline(always)]
            fn load(s: &[u8]) -> __m128i {
                let s: &[u8; 16] = s.try_into().expect("16 bytes");
                // SAFETY: `s` is 16 readable bytes; the load has no alignment requirement.
                unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
            }
            const STEP: usize = 4;
            let width = cur.len() / 4;
            let one = _mm_set1_epi8(1);
            let zero = _mm_setzero_si128();
            let lo = width.min(STEP);
            let mut x = lo;
            let mut eql = 0u64;
            while x + STEP <= width {
                let (p, q) = (4 * x, 4 * x - 4);
                let c = load(&cur[p..p + 4 * STEP]);
                let a = load(&cur[q..q + 4 * STEP]);
                let pred = if first {
                    a
                } else {
                    let b = load(&prev[p..p + 4 * STEP]);
                    // pavgb rounds up; take the dropped half back where a + b is odd.
                    _mm_sub_epi8(_mm_avg_epu8(a, b), _mm_and_si128(_mm_xor_si128(a, b), one))
                };
                let e = _mm_sub_epi8(c, pred);
                // Zig-zag: 2e, inverted where e >= 128.
                let m = _mm_xor_si128(_mm_add_epi8(e, e), _mm_cmpgt_epi8(zero, e));
                let dst: &mut [u32; STEP] =
                    (&mut self.resid[x..x + STEP]).try_into().expect("words");
                // SAFETY: `dst` is 16 writable bytes; the store has no alignment requirement.
                unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), m) };
                eql |=
                    (_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(c, a))) as u64) << (x & 63);
                x += STEP;
                if x & 63 == 0 {
                    self.eq_left[(x >> 6) - 1] = eql;
                    eql = 0;
                }
            }
            self.eq_left[(x - 1) >> 6] |= eql;
            (lo, x)
        }
    }

    /// Eight pixels a step from pixel 8.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(unused_unsafe)]
    unsafe fn fill_avx2(&mut self, prev: &[u8], cur: &[u8], first: bool) -> (usize, usize) {
        // SAFETY: the caller guarantees the CPU feature this function enables; every
        // load and store below goes through a slice of exactly its size. (One block for
        // the body: the intrinsics are unsafe to call before Rust 1.87.)
        unsafe {
            use core::arch::x86_64::{
                __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_avg_epu8, _mm256_castsi256_ps,
                _mm256_cmpeq_epi32, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_ps,
                _mm256_set1_epi8, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi8,
                _mm256_xor_si256,
            };
            #[inline(always)]
            fn load(s: &[u8]) -> __m256i {
                let s: &[u8; 32] = s.try_into().expect("32 bytes");
                // SAFETY: `s` is 32 readable bytes; the load has no alignment requirement.
                unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
            }
            const STEP: usize = 8;
            let width = cur.len() / 4;
            let one = _mm256_set1_epi8(1);
            let zero = _mm256_setzero_si256();
            let lo = width.min(STEP);
            let mut x = lo;
            let mut eql = 0u64;
            while x + STEP <= width {
                let (p, q) = (4 * x, 4 * x - 4);
                let c = load(&cur[p..p + 4 * STEP]);
                let a = load(&cur[q..q + 4 * STEP]);
                let pred = if first {
                    a
                } else {
                    let b = load(&prev[p..p + 4 * STEP]);
                    _mm256_sub_epi8(
                        _mm256_avg_epu8(a, b),
                        _mm256_and_si256(_mm256_xor_si256(a, b), one),
                    )
                };
                let e = _mm256_sub_epi8(c, pred);
                let m = _mm256_xor_si256(_mm256_add_epi8(e, e), _mm256_cmpgt_epi8(zero, e));
                let dst: &mut [u32; STEP] =
                    (&mut self.resid[x..x + STEP]).try_into().expect("words");
                // SAFETY: `dst` is 32 writable bytes; the store has no alignment requirement.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), m) };
                let eq = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(c, a)));
                eql |= (eq as u64) << (x & 63);
                x += STEP;
                if x & 63 == 0 {
                    self.eq_left[(x >> 6) - 1] = eql;
                    eql = 0;
                }
            }
            self.eq_left[(x - 1) >> 6] |= eql;
            (lo, x)
        }
    }

    /// First run start in `from..end`, or `end`.
    #[inline(always)]
    pub(crate) fn next_cand(&self, from: usize, end: usize) -> usize {
        next_one(&self.cand, from, end)
    }

    /// Length of the run of pixels equal to their left neighbour from `from`, at most
    /// up to `end`.
    #[inline(always)]
    pub(crate) fn run_len(&self, from: usize, end: usize) -> usize {
        ones_len(&self.eq_left, from, end)
    }
}

/// The first set bit of `mask` in `from..end` (bit x is bit `x % 64` of word `x / 64`),
/// or `end`. `mask` covers at least `end` bits.
#[inline(always)]
pub(crate) fn next_one(mask: &[u64], from: usize, end: usize) -> usize {
    let mut w = from >> 6;
    let mut bits = mask[w] & (u64::MAX << (from & 63));
    loop {
        if bits != 0 {
            return ((w << 6) + bits.trailing_zeros() as usize).min(end);
        }
        w += 1;
        if w << 6 >= end {
            return end;
        }
        bits = mask[w];
    }
}

/// How many bits of `mask` from bit `from` on are set, at most `end - from`.
#[inline(always)]
pub(crate) fn ones_len(mask: &[u64], from: usize, end: usize) -> usize {
    let mut w = from >> 6;
    let mut n = (mask[w] >> (from & 63)).trailing_ones() as usize;
    if n == 64 - (from & 63) {
        loop {
            w += 1;
            if w << 6 >= end {
                break;
            }
            let t = mask[w].trailing_ones() as usize;
            n += t;
            if t < 64 {
                break;
            }
        }
    }
    n.min(end - from)
}

/// How many bits of `mask` in `from..end` are set (`from <= end`).
#[inline(always)]
pub(crate) fn count_ones(mask: &[u64], from: usize, end: usize) -> usize {
    if from >= end {
        return 0;
    }
    let (w0, w1) = (from >> 6, (end - 1) >> 6);
    let lo = u64::MAX << (from & 63);
    let hi = u64::MAX >> (63 - ((end - 1) & 63));
    if w0 == w1 {
        return (mask[w0] & lo & hi).count_ones() as usize;
    }
    let mut n = (mask[w0] & lo).count_ones() + (mask[w1] & hi).count_ones();
    for w in &mask[w0 + 1..w1] {
        n += w.count_ones();
    }
    n as usize
}

/// Sets bit x of `mask` (x >= 1) when pixel x of `row` equals pixel x - 1; bit 0 and
/// the bits past the row are clear. `mask` holds at least `row.len() / 64 + 1` words.
#[inline(always)]
pub(crate) fn fill_eq_left<const S: usize>(mask: &mut [u64], row: &[[u8; S]]) {
    mask.fill(0);
    if row.len() < 2 {
        return;
    }
    // Bit x compares pixels x - 1 and x: chunks of 64 pairs, in a form LLVM turns
    // into vector compares and mask extraction.
    let pairs = row.len() - 1;
    let (left, right) = (&row[..pairs], &row[1..]);
    for (k, (l, r)) in left.chunks(64).zip(right.chunks(64)).enumerate() {
        let mut m = 0u64;
        for (j, (a, b)) in l.iter().zip(r).enumerate() {
            m |= u64::from(a == b) << j;
        }
        // Pair j of chunk k is bit 64k + j + 1.
        mask[k] |= m << 1;
        mask[k + 1] |= m >> 63;
    }
}

/// Copies BGRX pixels from `src` into `dst` with X cleared to 0 (`src` holds at
/// least `4 * dst.len()` bytes).
pub(crate) fn copy_clear_x(dst: &mut [[u8; 4]], src: &[u8]) {
    let whole = dst.len() / 4 * 4;
    let (dst4, rest) = dst.split_at_mut(whole);
    // Four pixels at a time as one u128: LLVM keeps this in vector registers.
    for (d, s) in dst4
        .as_flattened_mut()
        .chunks_exact_mut(16)
        .zip(src.chunks_exact(16))
    {
        let s: &[u8; 16] = s.try_into().expect("16 bytes");
        let v = u128::from_le_bytes(*s) & 0x00ff_ffff_00ff_ffff_00ff_ffff_00ff_ffff;
        d.copy_from_slice(&v.to_le_bytes());
    }
    for (d, s) in rest.iter_mut().zip(src[4 * whole..].chunks_exact(4)) {
        *d = [s[0], s[1], s[2], 0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(width: usize, seed: u64, mask: u8) -> (Vec<u8>, Vec<u8>) {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut gen_row = |palette: bool| {
            let mut row = Vec::with_capacity(width * 4);
            let mut last = [0u8; 4];
            for _ in 0..width {
                let v = next();
                // Repeats (runs), a small palette, or noise.
                if !(palette && v % 3 == 0) {
                    last = if v % 5 == 0 {
                        [(v >> 8) as u8 & 1, 0, 1, 0]
                    } else {
                        [(v >> 16) as u8, (v >> 24) as u8, (v >> 32) as u8, 0]
                    };
                    last.iter_mut().take(3).for_each(|b| *b &= mask);
                }
                row.extend_from_slice(&last);
            }
            row
        };
        (gen_row(true), gen_row(seed % 2 == 0))
    }

    fn same<const BPC: u32>(width: usize, seed: u64) {
        let mask = ((1u32 << BPC) - 1) as u8;
        let (prev, cur) = rows(width, seed, mask);
        let mut scans: Vec<RowScan> = Simd::available()
            .into_iter()
            .map(|simd| {
                let mut s = RowScan::new(width);
                // The previous row first (its eq_left becomes this row's eq_up).
                s.fill_with::<BPC>(&prev, &prev, true, simd);
                s.fill_with::<BPC>(&prev, &cur, false, simd);
                s
            })
            .collect();
        let slow = scans.remove(0);
        for fast in &scans {
            assert_eq!(
                fast.resid[1..],
                slow.resid[1..],
                "width {width} seed {seed}"
            );
            assert_eq!(fast.eq_left, slow.eq_left);
            assert_eq!(fast.eq_up, slow.eq_up);
            assert_eq!(fast.cand, slow.cand);
        }
        // And against the definitions, pixel by pixel.
        let c = |x: usize| word(&cur, x);
        let p = |x: usize| word(&prev, x);
        for x in 1..width {
            let pred = swar::avg(c(x - 1), p(x));
            assert_eq!(
                slow.resid[x],
                swar::zigzag::<BPC>(swar::sub::<BPC>(c(x), pred))
            );
            assert_eq!(slow.eq_left[x >> 6] >> (x & 63) & 1 == 1, c(x) == c(x - 1));
            let cand = x > 2 && p(x) == p(x - 1) && c(x - 1) == c(x - 2);
            assert_eq!(slow.cand[x >> 6] >> (x & 63) & 1 == 1, cand);
        }
        // A first row: left prediction, no runs.
        for simd in Simd::available() {
            let mut s = RowScan::new(width);
            s.fill_with::<BPC>(&prev, &cur, true, simd);
            for x in 1..width {
                assert_eq!(
                    s.resid[x],
                    swar::zigzag::<BPC>(swar::sub::<BPC>(c(x), c(x - 1)))
                );
            }
            assert!(s.cand.iter().all(|&w| w == 0));
        }
    }

    #[test]
    fn simd_and_scalar_scans_agree() {
        for width in [
            1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 66, 72, 127, 128, 130, 200,
        ] {
            for seed in 0..4 {
                same::<8>(width, seed * 7919 + width as u64);
                same::<5>(width, seed * 7919 + width as u64);
            }
        }
    }

    #[test]
    fn copy_clears_x() {
        for width in [0, 1, 3, 4, 5, 9] {
            let src: Vec<u8> = (0..4 * width as u8)
                .map(|v| v.wrapping_mul(37) | 1)
                .collect();
            let mut dst = vec![[9u8; 4]; width];
            copy_clear_x(&mut dst, &src);
            for (d, s) in dst.iter().zip(src.chunks_exact(4)) {
                assert_eq!(*d, [s[0], s[1], s[2], 0]);
            }
        }
    }

    #[test]
    fn mask_helpers_match_a_bit_by_bit_reading() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for width in [1usize, 2, 3, 63, 64, 65, 127, 128, 129, 200, 1000] {
            // Rows of runs of a few values, so equal neighbours come in clusters of
            // every length, across word boundaries too.
            let mut row = vec![[0u8; 4]; width];
            let mut v = 0u8;
            for px in row.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if seed % 5 < 2 {
                    v = (seed >> 32) as u8 % 3;
                }
                *px = [v, v ^ 1, 0, 0];
            }
            let mut mask = vec![!0u64; width / 64 + 2];
            fill_eq_left(&mut mask, &row);
            let bit = |x: usize| mask[x >> 6] >> (x & 63) & 1 == 1;
            for x in 0..(width / 64 + 2) * 64 {
                let want = x >= 1 && x < width && row[x] == row[x - 1];
                assert_eq!(bit(x), want, "width {width} bit {x}");
            }
            for from in 0..=width {
                for end in (from..=width).step_by(7).chain([width]) {
                    let next = (from..end).find(|&x| bit(x)).unwrap_or(end);
                    assert_eq!(next_one(&mask, from, end), next, "{width} {from} {end}");
                    let ones = (from..end).take_while(|&x| bit(x)).count();
                    assert_eq!(ones_len(&mask, from, end), ones, "{width} {from} {end}");
                    let count = (from..end).filter(|&x| bit(x)).count();
                    assert_eq!(count_ones(&mask, from, end), count, "{width} {from} {end}");
                }
            }
        }
    }

    #[test]
    fn run_len_and_next_cand_cross_mask_words() {
        let width = 300;
        let mut cur = vec![0u8; width * 4];
        // Pixels 0..=9 differ; 10..=200 equal; 201.. differ.
        for x in (0..10).chain(201..width) {
            cur[4 * x] = x as u8;
            cur[4 * x + 1] = (x >> 8) as u8;
        }
        let prev = vec![7u8; width * 4];
        let mut s = RowScan::new(width);
        s.fill_with::<8>(&prev, &prev, true, Simd::detect());
        s.fill_with::<8>(&prev, &cur, false, Simd::detect());
        // Pixel 12 is the first whose two left neighbours (10 and 11) are equal.
        assert_eq!(s.next_cand(0, width), 12);
        assert_eq!(s.next_cand(13, width), 13);
        assert_eq!(s.next_cand(202, width), width);
        assert_eq!(s.next_cand(202, 250), 250);
        assert_eq!(s.run_len(12, width), 189);
        assert_eq!(s.run_len(12, 100), 88);
        assert_eq!(s.run_len(64, width), 137);
        assert_eq!(s.run_len(201, width), 0);
    }
}
