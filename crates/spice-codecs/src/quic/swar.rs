//! The per-pixel arithmetic of the three colour channels done at once, in the byte
//! lanes of one `u32` (SIMD within a register).
//!
//! A pixel word holds B in bits 0-7, G in 8-15, R in 16-23 and 0 in 24-31 (the
//! little-endian reading of a stored `[B, G, R, 0]`). Every lane holds a value
//! `<= MASK = 2^BPC - 1` and every function keeps lane 3 at 0. The lanes never carry
//! into each other, so each lane gives exactly the scalar result of
//! [`super::model::family`]'s tables and of the predictor; the tests below check that
//! over every value pair.

/// `v` in lanes 0, 1 and 2.
const fn lanes(v: u32) -> u32 {
    v * 0x0001_0101
}

/// High bit of each 8-bit lane (lanes 0-2).
const H: u32 = lanes(0x80);
/// Low 7 bits of each 8-bit lane (lanes 0-2).
const L7: u32 = lanes(0x7f);

/// `MASK` of a `BPC`-bit channel in lanes 0-2.
#[inline(always)]
const fn mask<const BPC: u32>() -> u32 {
    lanes((1 << BPC) - 1)
}

/// Predictor `(a + b) >> 1` per lane.
#[inline(always)]
pub(crate) const fn avg(a: u32, b: u32) -> u32 {
    (a & b) + (((a ^ b) >> 1) & L7)
}

/// `(a - b) mod 2^BPC` per lane.
#[inline(always)]
pub(crate) const fn sub<const BPC: u32>(a: u32, b: u32) -> u32 {
    if BPC == 8 {
        // Set each lane's top bit of `a` and clear it in `b` so no lane borrows from
        // the next one, then put the top bit's true difference back.
        ((a | H) - (b & L7)) ^ ((a ^ !b) & H)
    } else {
        // a + 2^BPC - b is in 1..2^(BPC+1) <= 256: no borrow.
        ((a + lanes(1 << BPC)) - b) & mask::<BPC>()
    }
}

/// `(a + b) mod 2^BPC` per lane.
#[inline(always)]
pub(crate) const fn add<const BPC: u32>(a: u32, b: u32) -> u32 {
    if BPC == 8 {
        ((a & L7) + (b & L7)) ^ ((a ^ b) & H)
    } else {
        (a + b) & mask::<BPC>()
    }
}

/// Modular residual → zig-zag mapped residual (the `u2l` table) per lane.
#[inline(always)]
pub(crate) const fn zigzag<const BPC: u32>(e: u32) -> u32 {
    // e <= MASK/2 maps to 2e; above, to 2(MASK - e) + 1 = (2e ^ MASK) & MASK.
    let sign = (e >> (BPC - 1)) & lanes(1);
    ((e & lanes((1 << (BPC - 1)) - 1)) << 1) ^ (sign * ((1 << BPC) - 1))
}

/// Zig-zag mapped residual → modular residual (the `l2u` table) per lane.
#[inline(always)]
pub(crate) const fn unzigzag<const BPC: u32>(m: u32) -> u32 {
    // Even m maps to m / 2, odd m to MASK - m / 2 = (m / 2) ^ MASK. A lane's MASK
    // (or 0) is `(b + MASK/2) ^ MASK/2` of its low bit b: an add and a xor, no shift
    // (the shift ports are the decoder's busiest).
    let half = lanes((1 << (BPC - 1)) - 1);
    ((m >> 1) & half) ^ (((m & lanes(1)) + half) ^ half)
}

/// One channel's lookups for the decoder's x86-64-v3 stretch loop: its residual `m`
/// and `-unzigzag(m)` placed in the channel's lane of a pixel word, by a load instead
/// of shifts (that loop's shift ports are its busiest; the other loops are better off
/// with the shifts). Each [`super::model::Model`] of an 8-bit R,G,B plane carries the table
/// of its channel, so the loop reaches it from the same base as the model.
#[derive(Clone, Copy)]
pub(crate) struct LaneTable {
    /// `m` in the lane.
    pub(crate) placed: [u32; 256],
    /// `-unzigzag(m) mod 2^BPC` in the lane (for the decoder's complemented sums).
    pub(crate) neg_unzig: [u32; 256],
}

impl LaneTable {
    /// A table of zeros, for models that never use it.
    pub(crate) const EMPTY: Self = Self {
        placed: [0; 256],
        neg_unzig: [0; 256],
    };

    /// The table of the 8-bit lane at bit `shift`.
    const fn new(shift: u32) -> Self {
        let mut t = Self::EMPTY;
        let mut m = 0;
        while m < 256 {
            let u = unzigzag::<8>(m as u32);
            t.neg_unzig[m] = (u.wrapping_neg() & 0xff) << shift;
            t.placed[m] = (m as u32) << shift;
            m += 1;
        }
        t
    }

    /// The table of lane `lane` (0 = B, 1 = G, 2 = R) for 8-bit channels (the only
    /// ones the SSE loop decodes).
    pub(crate) fn get(lane: usize) -> &'static Self {
        &LANE_TABLES_8[lane]
    }
}

static LANE_TABLES_8: [LaneTable; 3] = [LaneTable::new(0), LaneTable::new(8), LaneTable::new(16)];

#[cfg(test)]
mod tests {
    use super::super::model::family;
    use super::*;

    /// Puts `v` in all three lanes and checks each lane against `want`.
    fn check3(got: u32, want: u32) {
        assert_eq!(got, lanes(want), "lanes {got:#08x}, want {want:#x} each");
    }

    fn exhaustive<const BPC: u32>() {
        let fam = family::<BPC>();
        let max = 1u32 << BPC;
        for a in 0..max {
            // Different values per lane too, so a carry between lanes would show.
            let a3 = a | ((max - 1 - a) << 8) | ((a ^ 5 & (max - 1)) << 16);
            let m = u32::from(fam.u2l[a as usize]);
            check3(zigzag::<BPC>(lanes(a)), m);
            check3(unzigzag::<BPC>(lanes(m)), a);
            assert_eq!(unzigzag::<BPC>(zigzag::<BPC>(a3)), a3);
            for b in 0..max {
                let b3 = b | ((b ^ 3 & (max - 1)) << 8) | ((max - 1 - b) << 16);
                check3(avg(lanes(a), lanes(b)), (a + b) >> 1);
                check3(
                    sub::<BPC>(lanes(a), lanes(b)),
                    a.wrapping_sub(b) & (max - 1),
                );
                check3(add::<BPC>(lanes(a), lanes(b)), (a + b) & (max - 1));
                assert_eq!(add::<BPC>(sub::<BPC>(a3, b3), b3), a3);
                let s = sub::<BPC>(a3, b3);
                for k in 0..3 {
                    let (x, y) = ((a3 >> (8 * k)) & 0xff, (b3 >> (8 * k)) & 0xff);
                    assert_eq!((s >> (8 * k)) & 0xff, x.wrapping_sub(y) & (max - 1));
                    assert_eq!((avg(a3, b3) >> (8 * k)) & 0xff, (x + y) >> 1);
                }
                assert_eq!(s >> 24, 0);
            }
        }
    }

    #[test]
    fn lane_tables_match_the_scalar_tables() {
        let fam = family::<8>();
        let mask = 0xffu32;
        for lane in 0..3 {
            let t = LaneTable::get(lane);
            let shift = 8 * lane as u32;
            for m in 0..=mask {
                let u = u32::from(fam.l2u[m as usize]);
                assert_eq!(t.placed[m as usize], m << shift);
                let neg = t.neg_unzig[m as usize];
                assert_eq!(neg & !(mask << shift), 0);
                assert_eq!(((neg >> shift) + u) & mask, 0, "lane {lane} m {m}");
            }
        }
    }

    /// The decoder's SSE step relies on `floor((a + b) / 2) = ~avg_up(~a, ~b)` for
    /// bytes, with `avg_up(x, y) = (x + y + 1) >> 1` (`pavgb`).
    #[test]
    fn floor_average_is_the_complement_of_the_rounded_up_one() {
        for a in 0..=255u32 {
            for b in 0..=255u32 {
                assert_eq!(255 - ((255 - a + 255 - b + 1) >> 1), (a + b) >> 1);
            }
        }
    }

    #[test]
    fn lanes_match_the_scalar_tables_8bit() {
        exhaustive::<8>();
    }

    #[test]
    fn lanes_match_the_scalar_tables_5bit() {
        exhaustive::<5>();
    }
}
