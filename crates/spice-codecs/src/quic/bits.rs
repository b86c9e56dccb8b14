//! QUIC bit I/O: the stream is a sequence of little-endian `u32` words whose bits are
//! filled most significant first.

/// Appends codewords to a byte vector, one row at a time (see [`Self::row`]).
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bytes of `out` holding complete words; anything after it is scratch.
    pos: usize,
    /// Pending bits in the low `nbits` bits (older bits above, possibly stale).
    acc: u64,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    /// Writes after the current end of `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        let pos = out.len();
        Self {
            out,
            pos,
            acc: 0,
            nbits: 0,
        }
    }

    /// A [`RowWriter`] that can take at least `max_bytes` bytes of codewords; hand
    /// its state back with [`Self::set_state`]. The row writer lives in locals, so the
    /// hot loop keeps its state in registers instead of reloading it after every store.
    #[inline(always)]
    pub(crate) fn row(&mut self, max_bytes: usize) -> RowWriter<'_> {
        let need = self.pos + max_bytes + 8;
        if self.out.len() < need {
            let grow = need.max(self.out.len() + self.out.len() / 2);
            self.out.resize(grow, 0);
        }
        RowWriter {
            out: &mut self.out[..need],
            pos: self.pos,
            acc: self.acc,
            nbits: self.nbits,
        }
    }

    /// Takes back the state of a writer made by [`Self::row`].
    #[inline(always)]
    pub(crate) fn set_state(&mut self, (pos, acc, nbits): (usize, u64, u32)) {
        (self.pos, self.acc, self.nbits) = (pos, acc, nbits);
    }

    /// Pads the partial word with zeros, writes the trailing zero word and trims the
    /// scratch from the output.
    pub(crate) fn flush(mut self) {
        let mut w = self.row(8);
        if w.nbits > 0 {
            w.put(0, 32 - w.nbits);
        }
        w.put(0, 32);
        let state = w.state();
        self.set_state(state);
        self.out.truncate(self.pos);
    }
}

/// The writer of one row: a slice with room for every codeword the row can produce.
pub(crate) struct RowWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
}

impl RowWriter<'_> {
    /// The position state, for [`BitWriter::set_state`].
    #[inline(always)]
    pub(crate) fn state(&self) -> (usize, u64, u32) {
        (self.pos, self.acc, self.nbits)
    }

    /// Appends the low `len` bits of `code`; `len <= 32` and no bit of `code` at or
    /// above `len` may be set.
    ///
    /// Complete words are stored without a data-dependent branch: the candidate word is
    /// always written at `pos`, and `pos` only advances when the word is complete.
    /// [`BitWriter::row`] sized the slice for the row's worst case, so the index is
    /// always in bounds.
    #[inline(always)]
    pub(crate) fn put(&mut self, code: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || code >> len == 0));
        self.acc = (self.acc << len) | u64::from(code);
        self.nbits += len;
        self.flush_word();
    }

    /// Appends three codes `(bits, len)` whose lengths add up to at most 32, with one
    /// word flush.
    #[inline(always)]
    pub(crate) fn put3(&mut self, a: (u32, u32), b: (u32, u32), c: (u32, u32)) {
        debug_assert!(a.1 + b.1 + c.1 <= 32);
        // nbits <= 31 on entry, so the accumulator holds all 63 bits.
        self.acc = (self.acc << a.1) | u64::from(a.0);
        self.acc = (self.acc << b.1) | u64::from(b.0);
        self.acc = (self.acc << c.1) | u64::from(c.0);
        self.nbits += a.1 + b.1 + c.1;
        self.flush_word();
    }

    /// Stores the complete word if there is one (`nbits` in `0..64`).
    #[inline(always)]
    fn flush_word(&mut self) {
        // When nbits >= 32 the complete word is acc >> (nbits - 32) = acc >> (nbits & 31).
        let word = (self.acc >> (self.nbits & 31)) as u32;
        self.out[self.pos..self.pos + 4].copy_from_slice(&word.to_le_bytes());
        self.pos += 4 * (self.nbits >> 5) as usize;
        self.nbits &= 31;
    }
}

/// Reads codewords from a QUIC payload.
///
/// The payload's whole words are copied once with their bytes reversed, which turns
/// the stream into one big-endian bit string: a peek is then a single 8-byte load.
/// Bits past the end read as zero; [`Self::overrun`] tells whether any were consumed.
pub(crate) struct BitReader {
    /// The payload's words with their bytes reversed, then two zero words.
    buf: Vec<[u8; 4]>,
    /// Bits in the real payload.
    len_bits: u64,
    /// Bits consumed.
    pos: u64,
}

impl BitReader {
    /// A reader over the whole words of `data` (1-3 trailing bytes are ignored).
    pub(crate) fn new(data: &[u8]) -> Self {
        let words = data.len() / 4;
        // One pass, with no zero fill first, into this thread's buffer from the last
        // decode (a fresh multi-megabyte buffer per image costs a page fault per 4 KiB):
        // each word with its bytes reversed, then the 8 zero bytes that let a peek
        // read past the end.
        let mut buf = SCRATCH.with(|c| c.take());
        buf.clear();
        buf.reserve(words + 2);
        swap_words_into(&mut buf, &data[..words * 4]);
        buf.extend([[0; 4]; 2]);
        let len_bits = words as u64 * 32;
        Self {
            buf,
            len_bits,
            pos: 0,
        }
    }

    /// A cursor over this reader in locals; store its position back with [`Self::seek`].
    #[inline(always)]
    pub(crate) fn local(&self) -> BitCursor<'_> {
        BitCursor {
            buf: self.buf.as_flattened(),
            pos: self.pos,
        }
    }

    /// Moves to bit `pos` (from a [`BitCursor`]).
    #[inline(always)]
    pub(crate) fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Whether more bits were consumed than the stream holds.
    pub(crate) fn overrun(&self) -> bool {
        self.pos > self.len_bits
    }
}

impl Drop for BitReader {
    fn drop(&mut self) {
        // Keep the buffer for the next decode on this thread, unless it is big
        // enough that holding it on to would matter.
        if self.buf.capacity() <= SCRATCH_KEEP_WORDS {
            let buf = core::mem::take(&mut self.buf);
            SCRATCH.with(|c| c.replace(buf));
        }
    }
}

/// Appends the 4-byte words of `src` to `dst` with their bytes reversed (`dst` has
/// room for them).
fn swap_words_into(dst: &mut Vec<[u8; 4]>, src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("ssse3") {
        let n = src.len() / 16 * 16;
        let start = dst.len();
        let spare = &mut dst.spare_capacity_mut()[..n / 4];
        // SAFETY: the CPU has SSSE3 (checked above).
        unsafe { swap_words_ssse3(spare, &src[..n]) };
        // SAFETY: `swap_words_ssse3` wrote all `n / 4` words of `spare`, the first
        // `n / 4` of the spare capacity.
        unsafe { dst.set_len(start + n / 4) };
        dst.extend(src[n..].chunks_exact(4).map(|w| [w[3], w[2], w[1], w[0]]));
        return;
    }
    dst.extend(src.chunks_exact(4).map(|w| [w[3], w[2], w[1], w[0]]));
}

/// [`swap_words_into`] 16 bytes a step: `src` is `4 * dst.len()` bytes, a multiple of
/// 16, and every word of `dst` is written.
///
/// # Safety
/// The CPU must have SSSE3.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn swap_words_ssse3(dst: &mut [core::mem::MaybeUninit<[u8; 4]>], src: &[u8]) {
    use core::arch::x86_64::{_mm_loadu_si128, _mm_setr_epi8, _mm_shuffle_epi8, _mm_storeu_si128};
    debug_assert!(src.len() == dst.len() * 4 && src.len() % 16 == 0);
    let reverse = _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(16)) {
        // SAFETY: `s` is 16 readable bytes and `d` 16 writable ones (four 4-byte
        // words); neither access needs alignment.
        unsafe {
            let v = _mm_loadu_si128(s.as_ptr().cast());
            _mm_storeu_si128(d.as_mut_ptr().cast(), _mm_shuffle_epi8(v, reverse));
        }
    }
}

/// Largest [`BitReader`] buffer kept for the next decode: 16 MiB.
const SCRATCH_KEEP_WORDS: usize = 4 << 20;

std::thread_local! {
    /// The buffer of this thread's last [`BitReader`], reused by the next one.
    static SCRATCH: core::cell::Cell<Vec<[u8; 4]>> = const { core::cell::Cell::new(Vec::new()) };
}

/// A read position over a [`BitReader`]'s buffer, kept in locals by the hot loops.
pub(crate) struct BitCursor<'a> {
    buf: &'a [u8],
    pub(crate) pos: u64,
}

impl<'a> BitCursor<'a> {
    /// The next 64 bits, most significant first; at least 57 of them are stream bits
    /// (or zeros past the end).
    #[inline(always)]
    pub(crate) fn peek(&self) -> u64 {
        // Past the end, the clamp reads the 8 zero bytes of padding: zeros either way.
        let byte = ((self.pos >> 3) as usize).min(self.buf.len() - 8);
        let s: &[u8; 8] = self.buf[byte..byte + 8].try_into().expect("8 bytes");
        u64::from_be_bytes(*s) << (self.pos & 7)
    }

    /// Drops `n` bits.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.pos += u64::from(n);
    }

    /// A register window starting at this position; store its position back with
    /// [`Self::set_pos`].
    #[inline(always)]
    pub(crate) fn window(&self) -> BitWindow<'a> {
        let mut w = BitWindow {
            buf: self.buf,
            ptr: (self.pos >> 3) as usize,
            bits: 0,
            cnt: 0,
        };
        w.refill();
        w.consume((self.pos & 7) as u32);
        w
    }

    /// Moves to the position of a window made by [`Self::window`].
    #[inline(always)]
    pub(crate) fn set_pos(&mut self, w: &BitWindow<'_>) {
        self.pos = w.pos();
    }

    /// Reads `n` bits, `1 <= n <= 32`.
    #[inline(always)]
    pub(crate) fn read(&mut self, n: u32) -> u32 {
        let v = (self.peek() >> (64 - n)) as u32;
        self.consume(n);
        v
    }
}

/// Stream bits held in a register, refilled without a branch.
///
/// A refill loads the 8 bytes after the ones already in the window and keeps whole
/// bytes, so the window holds 56 to 63 bits afterwards. The load's address only
/// depends on the previous refill, not on the codes read since, so the processor
/// can issue it early: reading a pixel's codes does not wait for memory.
pub(crate) struct BitWindow<'a> {
    buf: &'a [u8],
    /// Next byte not yet in the window.
    ptr: usize,
    /// The next `cnt` stream bits, most significant first; the bits below them are
    /// zero or (after a refill) the following stream bits.
    bits: u64,
    cnt: u32,
}

impl BitWindow<'_> {
    /// Tops the window up to at least 56 bits.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        // Past the end, the clamp reads the 8 zero bytes of padding: zeros either way.
        let p = self.ptr.min(self.buf.len() - 8);
        let s: &[u8; 8] = self.buf[p..p + 8].try_into().expect("8 bytes");
        self.bits |= u64::from_be_bytes(*s) >> self.cnt;
        self.ptr += ((63 - self.cnt) >> 3) as usize;
        self.cnt |= 56;
    }

    /// [`Self::refill`] without the clamp at the end of the buffer.
    ///
    /// # Safety
    /// The 8 bytes from the window's next byte must be in the buffer. They are while
    /// the stream position has not moved more than `8 * (n - 16)` bits past where
    /// [`Self::unchecked_room`] returned `n` (the window's next byte is at most 8 bytes
    /// past the stream position).
    #[inline(always)]
    pub(crate) unsafe fn refill_unchecked(&mut self) {
        debug_assert!(self.ptr + 8 <= self.buf.len());
        // SAFETY: the caller guarantees `ptr + 8 <= buf.len()`.
        let s = unsafe { self.buf.get_unchecked(self.ptr..self.ptr + 8) };
        let s: &[u8; 8] = s.try_into().expect("8 bytes");
        self.bits |= u64::from_be_bytes(*s) >> self.cnt;
        self.ptr += ((63 - self.cnt) >> 3) as usize;
        self.cnt |= 56;
    }

    /// Bytes of the buffer after the window's next byte (see
    /// [`Self::refill_unchecked`]).
    #[inline(always)]
    pub(crate) fn unchecked_room(&self) -> usize {
        self.buf.len().saturating_sub(self.ptr)
    }

    /// The window: `cnt()` valid bits, most significant first.
    #[inline(always)]
    pub(crate) fn bits(&self) -> u64 {
        self.bits
    }

    /// The stream position of the window's first bit.
    #[inline(always)]
    fn pos(&self) -> u64 {
        self.ptr as u64 * 8 - u64::from(self.cnt)
    }

    /// Bits in the window.
    #[inline(always)]
    pub(crate) fn cnt(&self) -> u32 {
        self.cnt
    }

    /// Keeps `cnt <= cnt()` bits, given the window already shifted past the others.
    #[inline(always)]
    pub(crate) fn advance_to(&mut self, shifted: u64, cnt: u32) {
        debug_assert!(cnt <= self.cnt && shifted == self.bits << (self.cnt - cnt));
        self.bits = shifted;
        self.cnt = cnt;
    }

    /// Drops `n <= cnt()` bits.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.cnt);
        self.bits <<= n;
        self.cnt -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_swap_reverses_every_word() {
        // Lengths around the 16-byte steps, so the vector part and the tail both run.
        for words in [0usize, 1, 3, 4, 5, 8, 15, 16, 17, 33] {
            let src: Vec<u8> = (0..words * 4).map(|i| (i * 7 + 3) as u8).collect();
            let mut dst = vec![[9u8; 4]; 2];
            dst.reserve(words);
            swap_words_into(&mut dst, &src);
            assert_eq!(dst.len(), 2 + words);
            assert_eq!(dst[..2], [[9; 4]; 2]);
            for (d, s) in dst[2..].iter().zip(src.chunks_exact(4)) {
                assert_eq!(*d, [s[3], s[2], s[1], s[0]]);
            }
        }
    }
}
