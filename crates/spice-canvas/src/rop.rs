//! Raster operations: the ROP descriptor (`ropd`) of most draws and the ternary `rop3`.

use spice_proto::types::Ropd;

/// The binary operation a ROP descriptor selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopKind {
    /// `OP_PUT`: the source.
    Put,
    /// `OP_OR`.
    Or,
    /// `OP_AND`.
    And,
    /// `OP_XOR`.
    Xor,
    /// `OP_BLACKNESS`: all zero bits.
    Blackness,
    /// `OP_WHITENESS`: all one bits.
    Whiteness,
    /// `OP_INVERS`: the inverted destination.
    Invers,
    /// No operation bit: the destination is left as it is.
    Noop,
}

/// A resolved raster operation: `r = op(s ^ src_xor, d ^ dest_xor) ^ res_xor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rop {
    /// The operation.
    pub kind: RopKind,
    /// `!0` when the source input is inverted.
    pub src_xor: u32,
    /// `!0` when the destination is inverted before the operation.
    pub dest_xor: u32,
    /// `!0` when the result is inverted.
    pub res_xor: u32,
}

impl Rop {
    /// Plain copy.
    pub const COPY: Rop = Rop {
        kind: RopKind::Put,
        src_xor: 0,
        dest_xor: 0,
        res_xor: 0,
    };

    /// Resolves `ropd` as the reference canvas does: the operation is the first of PUT,
    /// OR, AND, XOR, BLACKNESS, WHITENESS, INVERS that is set; the source input is
    /// inverted by `src_invert` (INVERS_SRC for image draws, INVERS_BRUSH for brush
    /// draws), the destination by `dest_invert` (INVERS_DEST, or INVERS_SRC for the image
    /// under DRAW_OPAQUE's brush), the result by INVERS_RES.
    pub fn from_ropd(ropd: Ropd, src_invert: Ropd, dest_invert: Ropd) -> Rop {
        let kind = if ropd.contains(Ropd::OP_PUT) {
            RopKind::Put
        } else if ropd.contains(Ropd::OP_OR) {
            RopKind::Or
        } else if ropd.contains(Ropd::OP_AND) {
            RopKind::And
        } else if ropd.contains(Ropd::OP_XOR) {
            RopKind::Xor
        } else if ropd.contains(Ropd::OP_BLACKNESS) {
            RopKind::Blackness
        } else if ropd.contains(Ropd::OP_WHITENESS) {
            RopKind::Whiteness
        } else if ropd.contains(Ropd::OP_INVERS) {
            RopKind::Invers
        } else {
            RopKind::Noop
        };
        let m = |b: bool| if b { !0u32 } else { 0 };
        Rop {
            kind,
            src_xor: m(ropd.intersects(src_invert)),
            dest_xor: m(ropd.intersects(dest_invert)),
            res_xor: m(ropd.contains(Ropd::INVERS_RES)),
        }
    }

    /// True for a plain copy (the fast path).
    pub fn is_copy(&self) -> bool {
        *self == Rop::COPY
    }

    /// True when the destination is never changed.
    pub fn is_noop(&self) -> bool {
        self.kind == RopKind::Noop
    }

    /// Applies the operation to source `s` and destination `d`.
    #[inline]
    pub fn apply(&self, s: u32, d: u32) -> u32 {
        let s = s ^ self.src_xor;
        let dd = d ^ self.dest_xor;
        let r = match self.kind {
            RopKind::Put => s,
            RopKind::Or => s | dd,
            RopKind::And => s & dd,
            RopKind::Xor => s ^ dd,
            RopKind::Blackness => 0,
            RopKind::Whiteness => !0,
            RopKind::Invers => !dd,
            RopKind::Noop => return d,
        };
        r ^ self.res_xor
    }
}

/// The ternary raster operation `code` (Windows ROP3 numbering: bit `4p + 2s + d` of the
/// code is the result for pattern bit `p`, source bit `s`, destination bit `d`), applied
/// bitwise to pattern `p`, source `s` and destination `d`.
#[inline]
pub fn rop3(code: u8, p: u32, s: u32, d: u32) -> u32 {
    let mut r = 0u32;
    for i in 0..8u32 {
        if code & (1 << i) != 0 {
            let pp = if i & 4 != 0 { p } else { !p };
            let ss = if i & 2 != 0 { s } else { !s };
            let dd = if i & 1 != 0 { d } else { !d };
            r |= pp & ss & dd;
        }
    }
    r
}
