//! Row coding of one plane: the channels that share one adaptation [`State`].

use super::bits::{BitCursor, BitReader, BitWindow, BitWriter, RowWriter};
use super::model::{Model, RowSegments, State, family};
use super::scan::{self, RowScan, Simd};
use super::swar;
use super::{QuicError, Result};

/// One plane: the channels coded with one [`State`] (R,G,B; gray; or alpha), their
/// models, their residual row and the current and previous rows.
///
/// Pixels are stored as `[u8; S]`: `S = 1` for gray and alpha, `S = 4` for R,G,B laid
/// out as B,G,R,0 (so a whole-pixel compare is one `u32` compare and rows convert to
/// and from BGRX memory directly). `C` channels are coded per pixel, in the order
/// R, G, B; channel `c` lives in byte [`Self::byte`]`(c)`. `BPC` is 8 or 5.
pub(crate) struct Plane<const S: usize, const C: usize, const BPC: u32> {
    state: State,
    models: [Model; C],
    /// Residuals of the current row; slot 0 is the "x = -1" context, pixel x is slot
    /// x + 1. Slots of run pixels keep values from earlier rows (reference behaviour).
    corr: Vec<[u8; S]>,
    prev: Vec<[u8; S]>,
    /// The row being coded: filled by the caller before [`Self::encode_row`], by
    /// [`Self::decode_row`] otherwise. Byte 3 of 4-byte pixels must be 0.
    pub(crate) cur: Vec<[u8; S]>,
    first_row: bool,
    /// Scratch of the lane path ([`Self::LANES`]), see [`RowScan`].
    scan: RowScan,
    /// Instruction set for the row loops and the scan.
    simd: Simd,
    /// Decoder of the lane path: bit x is set when pixel x of `prev` equals pixel
    /// x - 1, the half of the run condition known before the row is decoded.
    up_eq: Vec<u64>,
}

impl<const S: usize, const C: usize, const BPC: u32> Plane<S, C, BPC> {
    const MASK: u32 = (1 << BPC) - 1;

    /// A plane using `simd` (which the CPU must have: [`Simd::detect`] or below).
    pub(crate) fn with_simd(width: usize, simd: Simd) -> Self {
        let mut models = [Model::new(BPC); C];
        if Self::LANES && BPC == 8 {
            for (c, model) in models.iter_mut().enumerate() {
                model.lane = *swar::LaneTable::get(Self::byte(c));
            }
        }
        Self {
            simd,
            state: State::new(),
            models,
            corr: vec![[0; S]; width + 1],
            prev: vec![[0; S]; width],
            cur: vec![[0; S]; width],
            first_row: true,
            scan: if S == 4 && C == 3 {
                RowScan::new(width)
            } else {
                RowScan::default()
            },
            up_eq: if S == 4 && C == 3 {
                vec![0; width / 64 + 2]
            } else {
                Vec::new()
            },
        }
    }

    /// Byte of channel `c` (0 = R, 1 = G, 2 = B) within a stored pixel.
    #[inline(always)]
    const fn byte(c: usize) -> usize {
        if S == 1 { 0 } else { 2 - c }
    }

    /// A stored pixel as a lane word (see [`swar`]); only meaningful for `S == 4`.
    #[inline(always)]
    fn word(p: &[u8; S]) -> u32 {
        let mut b = [0u8; 4];
        let n = if S < 4 { S } else { 4 };
        b[..n].copy_from_slice(&p[..n]);
        u32::from_le_bytes(b)
    }

    /// A lane word as a stored pixel; only meaningful for `S == 4`.
    #[inline(always)]
    fn unword(v: u32) -> [u8; S] {
        let mut p = [0u8; S];
        let n = if S < 4 { S } else { 4 };
        p[..n].copy_from_slice(&v.to_le_bytes()[..n]);
        p
    }

    /// Whether pixels are R,G,B words coded with the lane arithmetic of [`swar`].
    const LANES: bool = S == 4 && C == 3;

    /// Makes the current row the previous one.
    pub(crate) fn next_row(&mut self) {
        core::mem::swap(&mut self.prev, &mut self.cur);
        self.first_row = false;
    }

    #[inline(always)]
    fn update_all(models: &mut [Model; C], corr: &[[u8; S]], x: usize, trigger: u32) {
        for (c, model) in models.iter_mut().enumerate() {
            let k = Self::byte(c);
            model.update::<BPC>(corr[x][k], corr[x + 1][k], trigger);
        }
    }

    /// The model wait after pixel 0 of a segment (coded outside the segment loop):
    /// counts the pixel against the wait, or updates the models with it and draws the
    /// next wait; returns the pixel at which the wait ends.
    #[inline(always)]
    fn after_pixel0(
        st: &mut State,
        models: &mut [Model; C],
        corr: &[[u8; S]],
        waitmask: u32,
    ) -> usize {
        if st.waitcnt > 0 {
            st.waitcnt -= 1;
        } else {
            st.waitcnt = st.tabrand() & waitmask;
            Self::update_all(models, corr, 0, st.wm_trigger);
        }
        1 + st.waitcnt as usize
    }

    #[inline(always)]
    fn run_allowed<const FIRST: bool>(
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        i: usize,
        run_index: usize,
    ) -> bool {
        !FIRST && i > 2 && run_index != i && prev[i - 1] == prev[i] && cur[i - 1] == cur[i - 2]
    }

    /// Prediction of channel byte `k` of pixel `i` (`X0`: `i == 0`).
    #[inline(always)]
    fn predict<const FIRST: bool, const X0: bool>(
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        i: usize,
        k: usize,
    ) -> u32 {
        match (FIRST, X0) {
            (true, true) => 0,
            (true, false) => u32::from(cur[i - 1][k]),
            (false, true) => u32::from(prev[0][k]),
            (false, false) => (u32::from(cur[i - 1][k]) + u32::from(prev[i][k])) >> 1,
        }
    }

    // ----- encoder -----

    #[inline(always)]
    fn encode_pixel<const FIRST: bool, const X0: bool>(
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        corr: &mut [[u8; S]],
        models: &[Model; C],
        w: &mut RowWriter<'_>,
        i: usize,
    ) {
        let fam = family::<BPC>();
        let px = cur[i];
        let ctx = corr[i];
        let mut res = [0u8; S];
        // The pixel's codewords, concatenated while they fit in 32 bits (the usual
        // case), so most pixels cost one write.
        let mut bits = 0u32;
        let mut len = 0u32;
        for (c, model) in models.iter().enumerate() {
            let k = Self::byte(c);
            let pred = Self::predict::<FIRST, X0>(prev, cur, i, k);
            let e = u32::from(px[k]).wrapping_sub(pred) & Self::MASK;
            let m = fam.u2l[e as usize];
            let l = usize::from(model.best_of[usize::from(ctx[k])] & 7);
            let code = fam.codes[l][usize::from(m)];
            let (cbits, clen) = (code & 0xffff, code >> 16);
            if len + clen <= 32 {
                bits = ((u64::from(bits) << clen) as u32) | cbits;
                len += clen;
            } else {
                w.put(bits, len);
                bits = cbits;
                len = clen;
            }
            res[k] = m;
        }
        w.put(bits, len);
        corr[i + 1] = res;
    }

    /// [`Self::encode_pixel`] for R,G,B words: prediction, residual and zig-zag mapping
    /// of the three channels at once in byte lanes, then the three codewords.
    #[inline(always)]
    fn encode_pixel_rgb<const FIRST: bool, const X0: bool>(
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        corr: &mut [[u8; S]],
        models: &[Model; C],
        w: &mut RowWriter<'_>,
        i: usize,
    ) {
        let fam = family::<BPC>();
        let px = Self::word(&cur[i]);
        let pred = match (FIRST, X0) {
            (true, true) => 0,
            (true, false) => Self::word(&cur[i - 1]),
            (false, true) => Self::word(&prev[0]),
            (false, false) => swar::avg(Self::word(&cur[i - 1]), Self::word(&prev[i])),
        };
        let m = swar::zigzag::<BPC>(swar::sub::<BPC>(px, pred));
        let ctx = Self::word(&corr[i]);
        corr[i + 1] = Self::unword(m);
        let code = |c: usize| {
            let sh = 16 - 8 * c;
            let l = usize::from(models[c].best_of[((ctx >> sh) & 0xff) as usize] & 7);
            fam.codes[l][((m >> sh) & 0xff) as usize]
        };
        let (r, g, b) = (code(0), code(1), code(2));
        let (lr, lg, lb) = (r >> 16, g >> 16, b >> 16);
        let len = lr + lg + lb;
        if len <= 32 {
            // Every length is >= 1, so each shift is < 32 and the sum fits.
            w.put(
                ((r & 0xffff) << (lg + lb)) | ((g & 0xffff) << lb) | (b & 0xffff),
                len,
            );
        } else {
            w.put(r & 0xffff, lr);
            w.put(g & 0xffff, lg);
            w.put(b & 0xffff, lb);
        }
    }

    #[inline(always)]
    fn encode_run(state: &mut State, w: &mut RowWriter<'_>, mut n: usize) {
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
    pub(crate) fn encode_row(&mut self, w: &mut BitWriter<'_>) {
        #[cfg(target_arch = "x86_64")]
        if self.simd == Simd::Avx2 {
            // SAFETY: `simd` is Avx2 only when the CPU has AVX2, BMI1, BMI2 and LZCNT
            // (Simd::detect).
            return unsafe { self.encode_row_v3(w) };
        }
        self.encode_row_portable(w);
    }

    /// [`Self::encode_row_portable`] compiled for x86-64-v3 (shifts without the CL
    /// register, LZCNT, AVX2), chosen at run time.
    ///
    /// # Safety
    /// The CPU must have AVX2, BMI1, BMI2 and LZCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    unsafe fn encode_row_v3(&mut self, w: &mut BitWriter<'_>) {
        self.encode_row_portable(w);
    }

    #[inline(always)]
    fn encode_row_portable(&mut self, w: &mut BitWriter<'_>) {
        if self.first_row {
            self.encode_row_as::<true>(w);
        } else {
            self.corr[0] = self.corr[1];
            self.encode_row_as::<false>(w);
        }
    }

    /// Codes one row: the segments between model updates, each through the lane coder
    /// (R,G,B words, after the row pre-pass) or the per-channel one; `Self::LANES` is a
    /// constant, so each instantiation keeps one of them.
    #[inline(always)]
    fn encode_row_as<const FIRST: bool>(&mut self, w: &mut BitWriter<'_>) {
        let Self {
            state,
            models,
            corr,
            prev,
            cur,
            scan,
            simd,
            ..
        } = self;
        let width = cur.len();
        let (prev, cur) = (&prev[..], &cur[..]);
        if Self::LANES {
            scan.fill_with::<BPC>(prev.as_flattened(), cur.as_flattened(), FIRST, *simd);
        }
        let scan = &*scan;
        // Worst case per pixel: C codewords of <= 26 bits, plus a run terminator of
        // <= 16 bits (a run of n pixels costs <= n + 16 bits).
        let max_bytes = (width * (26 * C + 16)).div_ceil(8) + 8;
        let mut lw = w.row(max_bytes);
        let mut seg = RowSegments::new(width);
        while let Some((begin, end, waitmask)) = state.next_segment(&mut seg) {
            if Self::LANES {
                Self::encode_segment_lanes::<FIRST>(
                    state, models, corr, prev, cur, scan, &mut lw, begin, end, waitmask,
                );
            } else {
                Self::encode_segment::<FIRST>(
                    state, models, corr, prev, cur, &mut lw, begin, end, waitmask,
                );
            }
        }
        let row_state = lw.state();
        w.set_state(row_state);
    }

    /// Codes pixels `a..b` (`a > 0`) of a row whose residuals are in `resid`, none of
    /// them in a run, and records their residuals in `corr`.
    #[inline(always)]
    fn encode_stretch(
        resid: &[u32],
        corr: &mut [[u8; S]],
        models: &[Model; C],
        w: &mut RowWriter<'_>,
        a: usize,
        b: usize,
    ) {
        if a >= b {
            return;
        }
        let fam = family::<BPC>();
        let lens = fam.lens.as_flattened();
        let resid = &resid[a..b];
        // The context of a pixel is its left neighbour's residual: only the first one
        // comes from `corr` (a stale slot after a run).
        let mut ctx = Self::word(&corr[a]);
        for &m in resid {
            let code = |c: usize| {
                // Lane 3 is 0, so the R lane needs no mask.
                let sh = 16 - 8 * c;
                let base = models[c].code_base[((ctx >> sh) & 0xff) as usize];
                let k = (usize::from(base) + ((m >> sh) & 0xff) as usize) & 2047;
                (u32::from(fam.bits[k]), u32::from(lens[k]))
            };
            let (r, g, b) = (code(0), code(1), code(2));
            if r.1 + g.1 + b.1 <= 32 {
                w.put3(r, g, b);
            } else {
                w.put(r.0, r.1);
                w.put(g.0, g.1);
                w.put(b.0, b.1);
            }
            ctx = m;
        }
        for (d, &m) in corr[a + 1..b + 1].iter_mut().zip(resid) {
            *d = Self::unword(m);
        }
    }

    /// [`Self::encode_segment`] for R,G,B words: coded pixels between two run starts
    /// (from [`RowScan`]) are coded without looking at the run condition.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn encode_segment_lanes<const FIRST: bool>(
        st: &mut State,
        models: &mut [Model; C],
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        scan: &RowScan,
        w: &mut RowWriter<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) {
        let resid = &scan.resid[..];
        let mut stop;
        if i == 0 {
            Self::encode_pixel_rgb::<FIRST, true>(prev, cur, corr, models, w, 0);
            i = 1;
            stop = Self::after_pixel0(st, models, corr, waitmask);
        } else {
            stop = i + st.waitcnt as usize;
        }
        // Pixel `i` may not start a run right where the previous run ended.
        let mut from = i;
        loop {
            let next = scan.next_cand(from, end);
            while stop < next {
                Self::encode_stretch(resid, corr, models, w, i, stop + 1);
                i = stop + 1;
                Self::update_all(models, corr, stop, st.wm_trigger);
                stop = i + (st.tabrand() & waitmask) as usize;
            }
            Self::encode_stretch(resid, corr, models, w, i, next);
            i = next;
            if i == end {
                st.waitcnt = (stop - end) as u32;
                return;
            }
            // Run mode from `i` (<= stop): the model wait pauses.
            st.waitcnt = (stop - i) as u32;
            let start = i;
            i += scan.run_len(i, end);
            Self::encode_run(st, w, i - start);
            if i == end {
                return;
            }
            from = if i == start { i + 1 } else { i };
            stop = i + st.waitcnt as usize;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn encode_segment<const FIRST: bool>(
        st: &mut State,
        models: &mut [Model; C],
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &[[u8; S]],
        w: &mut RowWriter<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) {
        let mut run_index = 0;
        let mut stop;
        if i == 0 {
            Self::encode_pixel::<FIRST, true>(prev, cur, corr, models, w, 0);
            i = 1;
            stop = Self::after_pixel0(st, models, corr, waitmask);
        } else {
            stop = i + st.waitcnt as usize;
        }
        loop {
            'run: {
                while stop < end {
                    while i <= stop {
                        if Self::run_allowed::<FIRST>(prev, cur, i, run_index) {
                            break 'run;
                        }
                        Self::encode_pixel::<FIRST, false>(prev, cur, corr, models, w, i);
                        i += 1;
                    }
                    Self::update_all(models, corr, stop, st.wm_trigger);
                    stop = i + (st.tabrand() & waitmask) as usize;
                }
                while i < end {
                    if Self::run_allowed::<FIRST>(prev, cur, i, run_index) {
                        break 'run;
                    }
                    Self::encode_pixel::<FIRST, false>(prev, cur, corr, models, w, i);
                    i += 1;
                }
                st.waitcnt = (stop - end) as u32;
                return;
            }
            // Run mode: pixels equal to their left neighbour; the model wait pauses.
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
    fn decode_pixel<const FIRST: bool, const X0: bool>(
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        corr: &mut [[u8; S]],
        models: &[Model; C],
        r: &mut BitCursor<'_>,
        i: usize,
        left: &mut [u8; S],
        ctx: &mut [u8; S],
    ) -> Result<()> {
        // `left` and `ctx` carry pixel i - 1 and its residuals (or the stale slot after a
        // run) in registers, so the next pixel does not wait on a store to memory.
        let fam = family::<BPC>();
        let mut px = [0u8; S];
        let mut res = [0u8; S];
        // One 64-bit look-ahead serves several codewords (>= 57 valid bits, a codeword
        // is <= 26): re-read only when fewer than 26 unread bits remain in it.
        let mut bits = r.peek();
        let mut used = 0u32;
        for (c, model) in models.iter().enumerate() {
            let k = Self::byte(c);
            if used > 57 - 26 {
                r.consume(used);
                bits = r.peek();
                used = 0;
            }
            let mut bad = false;
            let (m, rest, next) =
                Self::decode_code_ctx(bits, model, u32::from(ctx[k]), 64 - used, &mut bad);
            if bad {
                return Err(QuicError::BadResidual);
            }
            bits = next;
            used = 64 - rest;
            res[k] = m as u8;
            let pred = match (FIRST, X0) {
                (true, true) => 0,
                (true, false) => u32::from(left[k]),
                (false, true) => u32::from(prev[0][k]),
                (false, false) => (u32::from(left[k]) + u32::from(prev[i][k])) >> 1,
            };
            px[k] = ((u32::from(fam.l2u[m as usize]) + pred) & Self::MASK) as u8;
        }
        r.consume(used);
        corr[i + 1] = res;
        cur[i] = px;
        *left = px;
        *ctx = res;
        Ok(())
    }

    /// Decodes one codeword with the code parameters of context `ctx`, read from
    /// `model`'s decoding tables, from the look-ahead `bits`; returns the mapped
    /// residual, the codeword length and the look-ahead after the codeword.
    ///
    /// There is no early return: an escape code out of range sets `bad` (checked by
    /// the caller after a stretch) and yields a residual masked into range. The
    /// Golomb step is a count of leading zeros and a few shifts, with no arithmetic
    /// on the code index, and the processor's chain from one codeword to the next is
    /// the count and two shifts.
    #[inline(always)]
    fn decode_code_ctx(
        bits: u64,
        model: &Model,
        ctx: u32,
        left: u32,
        bad: &mut bool,
    ) -> (u32, u32, u64) {
        let c = (ctx & 0xff) as usize;
        let z = bits.leading_zeros();
        if z < u32::from(model.dec.alt[c]) {
            // After z zeros: a one and l low bits; the residual is `z << l | low`.
            // The shift by `63 - l` leaves the one and the low bits, `^ 2^l` clears
            // the one, and `z * 2^l` is a multiply rather than a shift by l (the
            // shift ports are the busiest in the decoder).
            let one = u32::from(model.dec.one[c]);
            let tail = u32::from(model.dec.tail[c]);
            let t = bits << z;
            let low = ((t >> model.dec.low_shift[c]) as u32) ^ one;
            // `left - tail` does not wait for the codeword, so the bits left are one
            // subtraction after the count of zeros (kept from reassociation: see
            // `opaque`).
            (z * one + low, opaque(left - tail) - z, t << tail)
        } else {
            let (m, len, next) = Self::decode_escape(bits, u32::from(model.best_of[c]), bad);
            (m, left - len, next)
        }
    }

    /// The escape branch of [`Self::decode_code_ctx`]: alt zeros and the suffix, one
    /// field of `esc_len` bits.
    #[inline(always)]
    fn decode_escape(bits: u64, l: u32, bad: &mut bool) -> (u32, u32, u64) {
        let fam = family::<BPC>();
        let len = fam.esc_len[(l & 0xff) as usize];
        let m = (bits >> (64 - len)) as u32 + fam.ngr[(l & 0xff) as usize];
        *bad |= m > Self::MASK;
        (m & Self::MASK, len, bits << len)
    }

    #[inline(always)]
    fn decode_run(state: &mut State, r: &mut BitCursor<'_>, max: usize) -> Result<usize> {
        let mut n = 0usize;
        loop {
            let ones = (!r.peek()).leading_zeros().min(32);
            n += state.melc_ones(ones);
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

    /// [`Self::decode_run`] from a register window.
    #[inline(always)]
    fn decode_run_window(state: &mut State, r: &mut BitWindow<'_>, max: usize) -> Result<usize> {
        let mut n = 0usize;
        loop {
            r.refill();
            // At most 32 of the >= 56 bits in the window.
            let ones = (!r.bits()).leading_zeros().min(32);
            n += state.melc_ones(ones);
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
            r.refill();
            n += (r.bits() >> (64 - state.melclen)) as usize;
            r.consume(state.melclen);
            if n > max {
                return Err(QuicError::RunTooLong);
            }
        }
        state.melc_down();
        Ok(n)
    }

    /// Decodes one row into `self.cur`.
    pub(crate) fn decode_row(&mut self, r: &mut BitReader) -> Result<()> {
        let prev = core::mem::take(&mut self.prev);
        let mut cur = core::mem::take(&mut self.cur);
        let result = self.decode_row_rows(r, &prev, &mut cur);
        self.prev = prev;
        self.cur = cur;
        result
    }

    /// Decodes one row into `cur` (the plane's width) over `prev`, the row before it
    /// (ignored, and may be empty, for the first row), instead of the plane's own rows: a caller whose
    /// output has the plane's pixel layout decodes straight into it. Rows decoded
    /// this way do not go through [`Self::cur`] and need no [`Self::next_row`].
    pub(crate) fn decode_row_into(
        &mut self,
        r: &mut BitReader,
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
    ) -> Result<()> {
        let result = if self.first_row {
            let own = core::mem::take(&mut self.prev);
            let result = self.decode_row_rows(r, &own, cur);
            self.prev = own;
            result
        } else {
            self.decode_row_rows(r, prev, cur)
        };
        self.first_row = false;
        result
    }

    fn decode_row_rows(
        &mut self,
        r: &mut BitReader,
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
    ) -> Result<()> {
        debug_assert!(prev.len() == cur.len() && cur.len() + 1 == self.corr.len());
        #[cfg(target_arch = "x86_64")]
        if self.simd == Simd::Avx2 {
            // SAFETY: `simd` is Avx2 only when the CPU has AVX2, BMI1, BMI2 and LZCNT
            // (Simd::detect).
            return unsafe { self.decode_row_v3(r, prev, cur) };
        }
        self.decode_row_with::<false>(r, prev, cur)
    }

    /// [`Self::decode_row_with`] compiled for x86-64-v3, chosen at run time.
    ///
    /// # Safety
    /// The CPU must have AVX2, BMI1, BMI2 and LZCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    unsafe fn decode_row_v3(
        &mut self,
        r: &mut BitReader,
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
    ) -> Result<()> {
        self.decode_row_with::<true>(r, prev, cur)
    }

    /// Decodes one row; `V3`: the caller is compiled for x86-64-v3 (and the CPU has
    /// it), so the stretch kernel is called in its x86-64-v3 version.
    #[inline(always)]
    fn decode_row_with<const V3: bool>(
        &mut self,
        r: &mut BitReader,
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
    ) -> Result<()> {
        if self.first_row {
            self.decode_row_as::<true, false, V3>(r, prev, cur)?;
        } else {
            self.corr[0] = self.corr[1];
            if Self::LANES {
                scan::fill_eq_left(&mut self.up_eq, prev);
                // Rows where many pixels have their upper neighbours equal (flat
                // areas, text) check the run condition at every pixel; elsewhere the
                // mask leads from one possible run start to the next.
                let width = prev.len();
                if scan::count_ones(&self.up_eq, 0, width) * 4 > width {
                    self.decode_row_as::<false, true, V3>(r, prev, cur)?;
                } else {
                    self.decode_row_as::<false, false, V3>(r, prev, cur)?;
                }
            } else {
                self.decode_row_as::<false, false, V3>(r, prev, cur)?;
            }
        }
        if r.overrun() {
            return Err(QuicError::Truncated);
        }
        Ok(())
    }

    /// Decodes one row: the segments between model updates, each through the lane decoder
    /// (R,G,B words) or the per-channel one; `Self::LANES` is a constant, so each
    /// instantiation keeps one of them.
    #[inline(always)]
    fn decode_row_as<const FIRST: bool, const DENSE: bool, const V3: bool>(
        &mut self,
        r: &mut BitReader,
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
    ) -> Result<()> {
        let Self {
            state,
            models,
            corr,
            up_eq,
            ..
        } = self;
        let width = cur.len();
        let up_eq = &up_eq[..];
        let mut lr = r.local();
        let mut seg = RowSegments::new(width);
        let mut result = Ok(());
        while let Some((begin, end, waitmask)) = state.next_segment(&mut seg) {
            result = if Self::LANES {
                Self::decode_segment_lanes::<FIRST, DENSE, V3>(
                    state, models, corr, prev, cur, up_eq, &mut lr, begin, end, waitmask,
                )
            } else {
                Self::decode_segment::<FIRST>(
                    state, models, corr, prev, cur, &mut lr, begin, end, waitmask,
                )
            };
            if result.is_err() {
                break;
            }
        }
        let pos = lr.pos;
        r.seek(pos);
        result
    }

    /// Decodes one pixel (not the first of its row) from its context word `ctx` (the
    /// left pixel's residuals), its left pixel and the pixel above; returns its
    /// residual word and its value.
    #[inline(always)]
    fn decode_lanes<const FIRST: bool, const FAST: bool>(
        models: &[Model; C],
        r: &mut BitWindow<'_>,
        ctx: &mut [u32; 3],
        left: u32,
        up: u32,
        bad: &mut bool,
    ) -> (u32, u32) {
        Self::decode_residuals::<FAST>(models, r, ctx, bad);
        let [mr, mg, mb] = *ctx;
        let res = (mr << 16) | (mg << 8) | mb;
        let pred = if FIRST { left } else { swar::avg(left, up) };
        (res, swar::add::<BPC>(swar::unzigzag::<BPC>(res), pred))
    }

    /// Reads one pixel's three codewords with the contexts `ctx` (the left pixel's
    /// residuals) and replaces them with this pixel's residuals.
    #[inline(always)]
    fn decode_residuals<const FAST: bool>(
        models: &[Model; C],
        r: &mut BitWindow<'_>,
        ctx: &mut [u32; 3],
        bad: &mut bool,
    ) {
        let [cr, cg, cb] = *ctx;
        let refill = |r: &mut BitWindow<'_>| {
            if FAST {
                // SAFETY: FAST is only used for the pixels counted by
                // `Self::unchecked_pixels`, which keeps every refill inside the buffer.
                unsafe { r.refill_unchecked() }
            } else {
                r.refill()
            }
        };
        // After a refill the window holds >= 56 bits: two codewords of <= 26 bits,
        // and usually the third.
        refill(r);
        let (mr, left_r, bits) = Self::decode_code_ctx(r.bits(), &models[0], cr, r.cnt(), bad);
        let (mg, mut rem, mut bits) = Self::decode_code_ctx(bits, &models[1], cg, left_r, bad);
        if rem < 26 {
            r.advance_to(bits, rem);
            refill(r);
            bits = r.bits();
            rem = r.cnt();
        }
        let (mb, rem, bits) = Self::decode_code_ctx(bits, &models[2], cb, rem, bad);
        r.advance_to(bits, rem);
        // The next pixel's contexts as separate residuals (not the combined word), so
        // each channel's table lookups wait for its own codeword only.
        *ctx = [mr, mg, mb];
    }

    /// The R, G and B residuals of the context word `ctx`, apart.
    #[inline(always)]
    fn split(ctx: u32) -> [u32; 3] {
        [(ctx >> 16) & 0xff, (ctx >> 8) & 0xff, ctx & 0xff]
    }

    /// How many of the next `n` pixels [`Self::decode_lanes`] may decode with
    /// `FAST`: a pixel moves the stream position by at most 3 * 26 bits < 10 bytes,
    /// the window's next byte is at most 8 bytes past the stream position, and a
    /// refill reads 8 bytes from there, so the refills of `k` pixels stay below
    /// `10 * k + 16` bytes past the window's next byte.
    #[inline(always)]
    fn unchecked_pixels(win: &BitWindow<'_>, n: usize) -> usize {
        (win.unchecked_room().saturating_sub(16) / 10).min(n)
    }

    /// Decodes pixels `a..b` (`0 < a`) without looking at the run condition; `left` is
    /// pixel `a - 1` on entry and pixel `b - 1` on return.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_stretch<const FIRST: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<()> {
        if a >= b {
            return Ok(());
        }
        let fast = a + Self::unchecked_pixels(win, b - a);
        Self::decode_part::<FIRST, true>(corr, prev, cur, models, win, a, fast, left)?;
        Self::decode_part::<FIRST, false>(corr, prev, cur, models, win, fast, b, left)
    }

    /// The loop of [`Self::decode_stretch`] over `a..b`, with `FAST` refills (see
    /// [`Self::unchecked_pixels`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_part<const FIRST: bool, const FAST: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<()> {
        if a >= b {
            return Ok(());
        }
        let mut ls = Self::split(Self::word(&corr[a]));
        let mut px = *left;
        let mut bad = false;
        for ((out, res_out), up) in cur[a..b]
            .iter_mut()
            .zip(&mut corr[a + 1..b + 1])
            .zip(&prev[a..b])
        {
            let (res, value) = Self::decode_lanes::<FIRST, FAST>(
                models,
                win,
                &mut ls,
                px,
                Self::word(up),
                &mut bad,
            );
            px = value;
            *out = Self::unword(px);
            *res_out = Self::unword(res);
        }
        *left = px;
        if bad {
            return Err(QuicError::BadResidual);
        }
        Ok(())
    }

    /// [`Self::decode_part`] with `FAST` refills for 8-bit channels, its pixel
    /// arithmetic in SSE2 byte lanes.
    ///
    /// The pixel is `floor((left + up) / 2) + unzigzag(m)` per byte. With `~x = 255 -
    /// x`, `floor((a + b) / 2) = ~avg_up(~a, ~b)` (`pavgb` rounds up), so the loop
    /// keeps the left pixel complemented: `~pixel = pavgb(~left, ~up) + (-unzigzag(m))`
    /// (the table's [`swar::LaneTable::neg_unzig`]): four byte-lane operations.
    ///
    /// # Safety
    /// The CPU must have AVX2, BMI1, BMI2 and LZCNT (it is part of [`Self::kernel_v3`]).
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    #[allow(unused_unsafe)]
    unsafe fn decode_part_sse<const FIRST: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<()> {
        // SAFETY: the caller guarantees the CPU features this function enables; the
        // intrinsics touch registers only. (One block for the body: the intrinsics are
        // unsafe to call before Rust 1.87.)
        unsafe {
            use core::arch::x86_64::{
                _mm_add_epi8, _mm_avg_epu8, _mm_cvtsi32_si128, _mm_cvtsi128_si32, _mm_set1_epi8,
                _mm_xor_si128,
            };
            debug_assert!(S == 4 && BPC == 8);
            if a >= b {
                return Ok(());
            }
            let mut ls = Self::split(Self::word(&corr[a]));
            let ones = _mm_set1_epi8(-1);
            let mut nleft = _mm_cvtsi32_si128(!*left as i32);
            let mut bad = false;
            let [lr, lg, lb] = [&models[0].lane, &models[1].lane, &models[C - 1].lane];
            for ((out, res_out), up) in cur[a..b]
                .iter_mut()
                .zip(&mut corr[a + 1..b + 1])
                .zip(&prev[a..b])
            {
                Self::decode_residuals::<true>(models, win, &mut ls, &mut bad);
                let [r, g, b] = ls.map(|m| (m & 0xff) as usize);
                *res_out = Self::unword(lr.placed[r] | lg.placed[g] | lb.placed[b]);
                let v =
                    _mm_cvtsi32_si128((lr.neg_unzig[r] | lg.neg_unzig[g] | lb.neg_unzig[b]) as i32);
                let pred = if FIRST {
                    nleft
                } else {
                    let nup = _mm_xor_si128(_mm_cvtsi32_si128(Self::word(up) as i32), ones);
                    _mm_avg_epu8(nleft, nup)
                };
                nleft = _mm_add_epi8(pred, v);
                *out = Self::unword(_mm_cvtsi128_si32(_mm_xor_si128(nleft, ones)) as u32);
            }
            *left = !(_mm_cvtsi128_si32(nleft) as u32);
            if bad {
                return Err(QuicError::BadResidual);
            }
            Ok(())
        }
    }

    /// Runs [`Self::decode_stretch`] over pixels `a..b` as a function of its own, so
    /// the register allocator sees the hot loop apart from the rest of the row logic
    /// (the dense-row and run-checking loops stay inlined: their stretches are short,
    /// and a call per stretch measured slower there); returns `b`. `V3`: the
    /// x86-64-v3 version (the caller must be running on a CPU that has it).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn kernel<const FIRST: bool, const V3: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<usize> {
        if a >= b {
            return Ok(a);
        }
        #[cfg(target_arch = "x86_64")]
        if V3 {
            // SAFETY: V3 is only set on the path from `decode_row_v3`, which runs only
            // when the CPU has AVX2, BMI1, BMI2 and LZCNT.
            return unsafe { Self::kernel_v3::<FIRST>(corr, prev, cur, models, win, a, b, left) };
        }
        Self::kernel_portable::<FIRST>(corr, prev, cur, models, win, a, b, left)
    }

    /// [`Self::decode_stretch`] (returning `b`), not inlined.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn kernel_portable<const FIRST: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<usize> {
        Self::decode_stretch::<FIRST>(corr, prev, cur, models, win, a, b, left)?;
        Ok(b)
    }

    /// [`Self::kernel_portable`] compiled for x86-64-v3, with the pixel arithmetic of
    /// 8-bit R,G,B in SSE2 lanes ([`Self::decode_part_sse`]).
    ///
    /// # Safety
    /// The CPU must have AVX2, BMI1, BMI2 and LZCNT.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    unsafe fn kernel_v3<const FIRST: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<usize> {
        let fast = a + Self::unchecked_pixels(win, b - a);
        if BPC == 8 && Self::LANES {
            // SAFETY: the caller guarantees the features `decode_part_sse` needs.
            unsafe { Self::decode_part_sse::<FIRST>(corr, prev, cur, models, win, a, fast, left)? };
        } else {
            Self::decode_part::<FIRST, true>(corr, prev, cur, models, win, a, fast, left)?;
        }
        // The pixels too near the end of the stream for unchecked refills.
        Self::decode_part::<FIRST, false>(corr, prev, cur, models, win, fast, b, left)?;
        Ok(b)
    }

    /// Decodes pixels from `a` (`2 < a < b`) up to `b` or to the first pixel where a
    /// run starts, which it returns (undecoded). `FULL`: the whole run condition is
    /// checked at every pixel (the two pixels above equal, the two on the left equal);
    /// otherwise every pixel of `a..b` is known to have its upper neighbour equal to
    /// the upper-left one, and only the left two are compared. `left` is pixel `a - 1`
    /// on entry and the last decoded pixel on return.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_stretch_checked<const FULL: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        left: &mut u32,
    ) -> Result<usize> {
        let mut ls = Self::split(Self::word(&corr[a]));
        let mut px = (*left, Self::word(&cur[a - 2]), Self::word(&prev[a - 1]));
        let mut bad = false;
        let fast = a + Self::unchecked_pixels(win, b - a);
        let mut j = Self::decode_checked_part::<true, FULL>(
            corr, prev, cur, models, win, a, fast, &mut px, &mut ls, &mut bad,
        );
        if j == fast {
            j = Self::decode_checked_part::<false, FULL>(
                corr, prev, cur, models, win, j, b, &mut px, &mut ls, &mut bad,
            );
        }
        *left = px.0;
        if bad {
            return Err(QuicError::BadResidual);
        }
        Ok(j)
    }

    /// The loop of [`Self::decode_stretch_checked`] over `a..b`, with `FAST` refills
    /// (see [`Self::unchecked_pixels`]); `px` holds the last two pixels and the
    /// upper-left one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_checked_part<const FAST: bool, const FULL: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        a: usize,
        b: usize,
        px: &mut (u32, u32, u32),
        ls: &mut [u32; 3],
        bad: &mut bool,
    ) -> usize {
        let (mut p1, mut p2, mut ul) = *px;
        let mut j = a;
        for ((out, res_out), up) in cur[a..b]
            .iter_mut()
            .zip(&mut corr[a + 1..b + 1])
            .zip(&prev[a..b])
        {
            let up = Self::word(up);
            if (!FULL || up == ul) && p1 == p2 {
                break;
            }
            let (res, value) = Self::decode_lanes::<false, FAST>(models, win, ls, p1, up, bad);
            p2 = p1;
            p1 = value;
            if FULL {
                ul = up;
            }
            *out = Self::unword(p1);
            *res_out = Self::unword(res);
            j += 1;
        }
        *px = (p1, p2, ul);
        j
    }

    /// Decodes pixels from `i > 0` up to `lim` or to the first pixel where a run
    /// starts, which it returns (undecoded); `may_run` tells whether pixel `i` may
    /// start one. Stretches where the row above rules runs out are decoded without
    /// looking at the run condition.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_until_run<const DENSE: bool, const V3: bool>(
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        up_eq: &[u64],
        models: &[Model; C],
        win: &mut BitWindow<'_>,
        mut i: usize,
        lim: usize,
        may_run: bool,
        left: &mut u32,
    ) -> Result<usize> {
        // Pixels 1 and 2, and a pixel right after a run of 0, never start a run.
        let mut from = (if may_run { i } else { i + 1 }).max(3);
        if DENSE {
            // At most two pixels before the checks start: inline, not a call.
            let from = from.min(lim);
            Self::decode_stretch::<false>(corr, prev, cur, models, win, i, from, left)?;
            if from >= lim {
                return Ok(lim);
            }
            return Self::decode_stretch_checked::<true>(
                corr, prev, cur, models, win, from, lim, left,
            );
        }
        loop {
            let c = scan::next_one(up_eq, from.min(lim), lim);
            Self::kernel::<false, V3>(corr, prev, cur, models, win, i, c, left)?;
            if c >= lim {
                return Ok(lim);
            }
            let d = c + scan::ones_len(up_eq, c, lim);
            let j =
                Self::decode_stretch_checked::<false>(corr, prev, cur, models, win, c, d, left)?;
            if j < d {
                return Ok(j);
            }
            i = d;
            from = d;
        }
    }

    /// [`Self::decode_segment`] for R,G,B words: pixel values, contexts and the run
    /// condition stay in registers.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_segment_lanes<const FIRST: bool, const DENSE: bool, const V3: bool>(
        st: &mut State,
        models: &mut [Model; C],
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        up_eq: &[u64],
        r: &mut BitCursor<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) -> Result<()> {
        let mut win = r.window();
        let stop;
        let left;
        if i == 0 {
            // Pixel 0 predicts from the pixel above (0 on the first row): the lane
            // decoder's average of the pixel above with itself.
            let up = if FIRST { 0 } else { Self::word(&prev[0]) };
            let mut ctx = Self::split(Self::word(&corr[0]));
            let mut bad = false;
            let px =
                Self::decode_lanes::<FIRST, false>(models, &mut win, &mut ctx, up, up, &mut bad);
            if bad {
                return Err(QuicError::BadResidual);
            }
            cur[0] = Self::unword(px.1);
            corr[1] = Self::unword(px.0);
            left = px.1;
            i = 1;
            stop = Self::after_pixel0(st, models, corr, waitmask);
        } else {
            left = Self::word(&cur[i - 1]);
            stop = i + st.waitcnt as usize;
        }
        let result = Self::decode_segment_window::<FIRST, DENSE, V3>(
            st, models, corr, prev, cur, up_eq, &mut win, i, end, waitmask, stop, left,
        );
        r.set_pos(&win);
        result
    }

    /// The loop of [`Self::decode_segment_lanes`] from pixel `i > 0` with the wait
    /// ending at `stop`, reading from a register window.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_segment_window<const FIRST: bool, const DENSE: bool, const V3: bool>(
        st: &mut State,
        models: &mut [Model; C],
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        up_eq: &[u64],
        r: &mut BitWindow<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
        mut stop: usize,
        mut left: u32,
    ) -> Result<()> {
        // Whether pixel i may start a run (not right where a run of 0 pixels was).
        let mut may_run = true;
        loop {
            let lim = if stop < end { stop + 1 } else { end };
            let j = if FIRST {
                Self::kernel::<true, V3>(corr, prev, cur, models, r, i, lim, &mut left)?;
                lim
            } else {
                Self::decode_until_run::<DENSE, V3>(
                    corr, prev, cur, up_eq, models, r, i, lim, may_run, &mut left,
                )?
            };
            i = j;
            if j == lim {
                if stop < end {
                    Self::update_all(models, corr, stop, st.wm_trigger);
                    stop = i + (st.tabrand() & waitmask) as usize;
                    may_run = true;
                    continue;
                }
                st.waitcnt = (stop - end) as u32;
                return Ok(());
            }
            // Run mode from i (<= stop): the model wait pauses.
            st.waitcnt = (stop - i) as u32;
            let start = i;
            let n = Self::decode_run_window(st, r, end - i)?;
            cur[i..i + n].fill(Self::unword(left));
            i += n;
            if i == end {
                return Ok(());
            }
            may_run = i != start;
            stop = i + st.waitcnt as usize;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_segment<const FIRST: bool>(
        st: &mut State,
        models: &mut [Model; C],
        corr: &mut [[u8; S]],
        prev: &[[u8; S]],
        cur: &mut [[u8; S]],
        r: &mut BitCursor<'_>,
        mut i: usize,
        end: usize,
        waitmask: u32,
    ) -> Result<()> {
        let mut run_index = 0;
        let mut stop;
        let mut left = [0u8; S];
        let mut ctx = corr[i];
        if i == 0 {
            Self::decode_pixel::<FIRST, true>(prev, cur, corr, models, r, 0, &mut left, &mut ctx)?;
            i = 1;
            stop = Self::after_pixel0(st, models, corr, waitmask);
        } else {
            left = cur[i - 1];
            stop = i + st.waitcnt as usize;
        }
        loop {
            'run: {
                while stop < end {
                    while i <= stop {
                        if Self::run_allowed::<FIRST>(prev, cur, i, run_index) {
                            break 'run;
                        }
                        Self::decode_pixel::<FIRST, false>(
                            prev, cur, corr, models, r, i, &mut left, &mut ctx,
                        )?;
                        i += 1;
                    }
                    Self::update_all(models, corr, stop, st.wm_trigger);
                    stop = i + (st.tabrand() & waitmask) as usize;
                }
                while i < end {
                    if Self::run_allowed::<FIRST>(prev, cur, i, run_index) {
                        break 'run;
                    }
                    Self::decode_pixel::<FIRST, false>(
                        prev, cur, corr, models, r, i, &mut left, &mut ctx,
                    )?;
                    i += 1;
                }
                st.waitcnt = (stop - end) as u32;
                return Ok(());
            }
            run_index = i;
            st.waitcnt = (stop - i) as u32;
            let n = Self::decode_run(st, r, end - i)?;
            cur[i..i + n].fill(left);
            i += n;
            if i == end {
                return Ok(());
            }
            ctx = corr[i];
            stop = i + st.waitcnt as usize;
        }
    }
}

/// `v`, hidden from the optimiser: it cannot regroup arithmetic through the result.
///
/// The decoder computes the bits left after a codeword as `(left - tail) - zeros` so
/// that only the last subtraction waits for the count of zeros; without the barrier
/// the optimiser turns it back into `left - (tail + zeros)`, one step longer on the
/// critical path.
#[inline(always)]
fn opaque(v: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = v;
        // SAFETY: the assembly is empty: it reads and writes nothing but keeps `v` in
        // the register it names.
        unsafe {
            core::arch::asm!("/* {0:e} */", inout(reg) v, options(pure, nomem, nostack, preserves_flags));
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v
    }
}
