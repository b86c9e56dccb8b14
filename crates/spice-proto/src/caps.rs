//! Capability sets exchanged in the link stage.
//!
//! Capabilities travel as arrays of little-endian `u32` words: capability `n` is bit `n % 32`
//! of word `n / 32`. Each side sends two arrays, the *common* caps (shared by every channel:
//! authentication and the mini header) and the *channel* caps (meaning depends on the channel
//! type). [`Caps`] keeps every bit and the exact number of words it was decoded with, so a
//! decode/encode round trip is byte-identical even for bits this crate does not know.
//!
//! Named capability numbers live in the sub-modules [`common`], [`main`], [`display`],
//! [`inputs`], [`playback`], [`record`] and [`spicevmc`].

use crate::error::{DecodeError, EncodeError};
use crate::wire::{ReadCursor, WriteBuf};

/// The most words one capability array may have. spice-server refuses link messages with
/// more (`INVALID_DATA`), calling it a guard against denial of service.
pub const MAX_CAP_WORDS: u32 = 1024;

/// Common capability numbers (`SPICE_COMMON_CAP_*`), valid on every channel.
pub mod common {
    /// The peer understands the auth mechanism word (`SpiceLinkAuthMechanism`).
    pub const PROTOCOL_AUTH_SELECTION: u32 = 0;
    /// RSA ticket ("SPICE") authentication. Also the mechanism word's value for it.
    pub const AUTH_SPICE: u32 = 1;
    /// SASL authentication. Also the mechanism word's value for it.
    pub const AUTH_SASL: u32 = 2;
    /// The 6-byte mini data header; used only when both sides advertise it.
    pub const MINI_HEADER: u32 = 3;
}

/// Main channel capability numbers (`SPICE_MAIN_CAP_*`).
pub mod main {
    /// Semi-seamless migration (`MIGRATE_BEGIN` / `MIGRATE_END`).
    pub const SEMI_SEAMLESS_MIGRATE: u32 = 0;
    /// The server may send `NAME` and `UUID`.
    pub const NAME_AND_UUID: u32 = 1;
    /// The server sends `AGENT_CONNECTED_TOKENS` instead of `AGENT_CONNECTED`.
    pub const AGENT_CONNECTED_TOKENS: u32 = 2;
    /// Seamless migration.
    pub const SEAMLESS_MIGRATE: u32 = 3;
}

/// Display channel capability numbers (`SPICE_DISPLAY_CAP_*`).
pub mod display {
    /// `STREAM_DATA_SIZED` may be used.
    pub const SIZED_STREAM: u32 = 0;
    /// `MONITORS_CONFIG` may be sent.
    pub const MONITORS_CONFIG: u32 = 1;
    /// `DRAW_COMPOSITE` may be sent.
    pub const COMPOSITE: u32 = 2;
    /// A8 surfaces are supported.
    pub const A8_SURFACE: u32 = 3;
    /// The client sends `STREAM_REPORT`.
    pub const STREAM_REPORT: u32 = 4;
    /// LZ4 image compression is understood.
    pub const LZ4_COMPRESSION: u32 = 5;
    /// The client may send `PREFERRED_COMPRESSION`.
    pub const PREF_COMPRESSION: u32 = 6;
    /// `GL_SCANOUT_UNIX` / `GL_DRAW` (UNIX socket clients only).
    pub const GL_SCANOUT: u32 = 7;
    /// Several video codecs; the codec caps below are meaningful.
    pub const MULTI_CODEC: u32 = 8;
    /// MJPEG video streams.
    pub const CODEC_MJPEG: u32 = 9;
    /// VP8 video streams.
    pub const CODEC_VP8: u32 = 10;
    /// H.264 video streams.
    pub const CODEC_H264: u32 = 11;
    /// The client may send `PREFERRED_VIDEO_CODEC_TYPE`.
    pub const PREF_VIDEO_CODEC_TYPE: u32 = 12;
    /// VP9 video streams.
    pub const CODEC_VP9: u32 = 13;
    /// H.265 video streams.
    pub const CODEC_H265: u32 = 14;
    /// `GL_SCANOUT2_UNIX` (post-2021 addition, spice-server 0.15.3).
    pub const GL_SCANOUT2: u32 = 15;
}

/// Inputs channel capability numbers (`SPICE_INPUTS_CAP_*`).
pub mod inputs {
    /// The client may send `KEY_SCANCODE`.
    pub const KEY_SCANCODE: u32 = 0;
}

/// Playback channel capability numbers (`SPICE_PLAYBACK_CAP_*`).
pub mod playback {
    /// CELT 0.5.1 audio (deprecated, removed upstream).
    pub const CELT_0_5_1: u32 = 0;
    /// `VOLUME` / `MUTE` messages.
    pub const VOLUME: u32 = 1;
    /// `LATENCY` messages.
    pub const LATENCY: u32 = 2;
    /// Opus audio.
    pub const OPUS: u32 = 3;
}

/// Record channel capability numbers (`SPICE_RECORD_CAP_*`).
pub mod record {
    /// CELT 0.5.1 audio (deprecated, removed upstream).
    pub const CELT_0_5_1: u32 = 0;
    /// `VOLUME` / `MUTE` messages.
    pub const VOLUME: u32 = 1;
    /// Opus audio.
    pub const OPUS: u32 = 2;
}

/// SpiceVMC channel capability numbers (usbredir, port, webdav; `SPICE_SPICEVMC_CAP_*`).
pub mod spicevmc {
    /// `COMPRESSED_DATA` with LZ4 may be used.
    pub const DATA_COMPRESS_LZ4: u32 = 0;
}

bitflags::bitflags! {
    /// The first word of the common caps as flags (every common cap defined so far lives
    /// there). Unknown bits are kept with [`CommonCaps::from_bits_retain`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CommonCaps: u32 {
        /// See [`common::PROTOCOL_AUTH_SELECTION`].
        const PROTOCOL_AUTH_SELECTION = 1 << common::PROTOCOL_AUTH_SELECTION;
        /// See [`common::AUTH_SPICE`].
        const AUTH_SPICE = 1 << common::AUTH_SPICE;
        /// See [`common::AUTH_SASL`].
        const AUTH_SASL = 1 << common::AUTH_SASL;
        /// See [`common::MINI_HEADER`].
        const MINI_HEADER = 1 << common::MINI_HEADER;
    }
}

/// A capability bitmap: `u32` words, bit `n % 32` of word `n / 32` is capability `n`.
///
/// Unknown bits and the exact word count (including trailing zero words) are kept, so
/// decoding then encoding gives back the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Caps {
    words: Vec<u32>,
}

impl Caps {
    /// An empty set (zero words on the wire).
    pub fn new() -> Self {
        Self::default()
    }

    /// A set with exactly these words.
    pub fn from_words(words: Vec<u32>) -> Self {
        Self { words }
    }

    /// A set with the given capability numbers, using as few words as possible.
    pub fn from_caps(caps: &[u32]) -> Self {
        let mut c = Self::new();
        for &cap in caps {
            c.set(cap);
        }
        c
    }

    /// The words, as they go on the wire.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Number of words (the `num_*_caps` field of the link messages).
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// True when capability `cap` is set. Bits past the last word are unset.
    pub fn has(&self, cap: u32) -> bool {
        let (w, b) = ((cap / 32) as usize, cap % 32);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    /// Sets capability `cap`, growing the word array if needed.
    pub fn set(&mut self, cap: u32) {
        let (w, b) = ((cap / 32) as usize, cap % 32);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    /// Builder form of [`Caps::set`].
    #[must_use]
    pub fn with(mut self, cap: u32) -> Self {
        self.set(cap);
        self
    }

    /// Clears capability `cap` (the word count does not change).
    pub fn clear(&mut self, cap: u32) {
        let (w, b) = ((cap / 32) as usize, cap % 32);
        if let Some(word) = self.words.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    /// Every capability number that is set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..32u32)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| w as u32 * 32 + b)
        })
    }

    /// The first word as [`CommonCaps`] flags (meaningful for the common caps array).
    pub fn common_flags(&self) -> CommonCaps {
        CommonCaps::from_bits_retain(self.words.first().copied().unwrap_or(0))
    }

    /// Reads `count` words. The count is checked against the bytes that remain before
    /// anything is allocated.
    pub fn decode_words(
        r: &mut ReadCursor<'_>,
        count: u32,
        ctx: &'static str,
    ) -> Result<Self, DecodeError> {
        let n = r.check_count(u64::from(count), 4, ctx)?;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(r.read_u32(ctx)?);
        }
        Ok(Self { words })
    }

    /// Writes the words (not the count).
    pub fn encode_words(&self, w: &mut WriteBuf<'_>) {
        for &word in &self.words {
            w.write_u32(word);
        }
    }

    /// The word count as the wire's `u32`, failing above [`MAX_CAP_WORDS`].
    pub fn wire_count(&self, ctx: &'static str) -> Result<u32, EncodeError> {
        let n: u32 = WriteBuf::len_as(self.words.len(), ctx)?;
        if n > MAX_CAP_WORDS {
            return Err(EncodeError::TooLarge {
                field: ctx,
                value: u64::from(n),
            });
        }
        Ok(n)
    }
}

impl From<CommonCaps> for Caps {
    fn from(f: CommonCaps) -> Self {
        Self::from_words(vec![f.bits()])
    }
}

/// The common caps spice-server and this crate's server advertise by default:
/// `PROTOCOL_AUTH_SELECTION | AUTH_SPICE | MINI_HEADER` (word `0x0b`).
pub fn default_server_common_caps() -> Caps {
    Caps::from(
        CommonCaps::PROTOCOL_AUTH_SELECTION | CommonCaps::AUTH_SPICE | CommonCaps::MINI_HEADER,
    )
}

/// The common caps a ticket-only client advertises by default:
/// `PROTOCOL_AUTH_SELECTION | AUTH_SPICE | MINI_HEADER`.
pub fn default_client_common_caps() -> Caps {
    default_server_common_caps()
}

/// True when the mini header is used: both sides advertised [`common::MINI_HEADER`].
pub fn negotiate_mini_header(local_common: &Caps, remote_common: &Caps) -> bool {
    local_common.has(common::MINI_HEADER) && remote_common.has(common::MINI_HEADER)
}

/// Proptest strategies for capability sets.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::Caps;
    use proptest::prelude::*;

    /// Any capability set of 0 to 4 words (unknown bits and zero words included).
    pub fn caps() -> BoxedStrategy<Caps> {
        proptest::collection::vec(any::<u32>(), 0..=4)
            .prop_map(Caps::from_words)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_matches_the_wire() {
        let mut c = Caps::new();
        c.set(display::GL_SCANOUT2);
        c.set(33);
        assert_eq!(c.words(), &[1 << 15, 1 << 1]);
        assert!(c.has(15) && c.has(33) && !c.has(0) && !c.has(1000));
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![15, 33]);
        c.clear(33);
        assert_eq!(c.words(), &[1 << 15, 0]);
        assert_eq!(default_server_common_caps().words(), &[0x0b]);
    }

    #[test]
    fn unknown_bits_and_word_count_survive() {
        let bytes = [0x0d, 0, 0, 0x80, 0, 0, 0, 0];
        let mut r = ReadCursor::new(&bytes);
        let c = Caps::decode_words(&mut r, 2, "caps").unwrap();
        assert_eq!(c.word_count(), 2);
        assert!(c.common_flags().contains(CommonCaps::MINI_HEADER));
        assert_eq!(c.common_flags().bits() & 0x8000_0000, 0x8000_0000);
        let mut out = Vec::new();
        c.encode_words(&mut WriteBuf::new(&mut out));
        assert_eq!(out, bytes);
        assert!(Caps::decode_words(&mut ReadCursor::new(&bytes), 3, "caps").is_err());
    }

    #[test]
    fn mini_header_needs_both_sides() {
        let both = Caps::from_caps(&[common::MINI_HEADER]);
        let none = Caps::from_caps(&[common::AUTH_SPICE]);
        assert!(negotiate_mini_header(&both, &both));
        assert!(!negotiate_mini_header(&both, &none));
        assert!(!negotiate_mini_header(&Caps::new(), &both));
    }
}
