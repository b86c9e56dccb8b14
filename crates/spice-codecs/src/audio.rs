//! Audio of the playback and record channels (protocol.md §7): raw S16LE PCM and Opus.
//!
//! SPICE sends one frame per `DATA` message: [`FRAME_SAMPLES`] (480) samples per channel,
//! interleaved signed 16-bit. In [`AudioMode::Raw`] the message carries those samples as
//! little-endian bytes; in [`AudioMode::Opus`] it carries one Opus packet (spice-common's
//! `snd_codec`: `OPUS_APPLICATION_AUDIO`, 2 channels, at most [`OPUS_MAX_PACKET`] bytes).
//!
//! Opus comes from the `opus-rs` crate (a pure Rust port of libopus 1.6: no C toolchain,
//! no `unsafe` on our side, packets interoperate with libopus as spice-gtk and QEMU's
//! spice-server use it). Like libopus, its decoder output lags the encoder input by
//! [`OPUS_DELAY_SAMPLES`] samples per channel at 48 kHz.
//!
//! Bad input (odd-sized raw data, an Opus packet the decoder refuses, an oversized packet)
//! is an [`AudioError`], never a panic.

use opus_rs::{Application, OpusDecoder, OpusEncoder};

/// Samples per channel in one frame (spice-common `SND_CODEC_OPUS_FRAME_SIZE`; 10 ms at
/// 48 kHz).
pub const FRAME_SAMPLES: usize = 480;

/// Largest Opus packet the encoder produces (spice-common
/// `SND_CODEC_MAX_COMPRESSED_BYTES`).
pub const OPUS_MAX_PACKET: usize = 480;

/// Largest Opus packet the decoder accepts (libopus' recommended maximum packet size).
pub const OPUS_MAX_INPUT: usize = 4000;

/// Largest raw data message accepted (bytes): 120 ms of 48 kHz stereo S16, ample for one
/// frame of any rate.
pub const RAW_MAX_INPUT: usize = 5760 * 2 * 2;

/// The encoder's lookahead: decoded audio lags the input by this many samples per channel
/// at 48 kHz (libopus: 2.5 ms of CELT overlap + 4 ms of delay compensation).
pub const OPUS_DELAY_SAMPLES: usize = 312;

/// The default sample rate of SPICE audio (what spice-server asks QEMU for).
pub const DEFAULT_RATE: u32 = 48_000;

/// The default number of channels.
pub const DEFAULT_CHANNELS: u8 = 2;

/// Most samples per channel one Opus packet can hold (120 ms at 48 kHz).
const OPUS_MAX_FRAME_48K: usize = 5760;

/// Opus bit rate used by [`AudioEncoder`] (bits per second). Near libopus' automatic
/// choice for 10 ms stereo frames (~102 kb/s), rounded up for music.
pub const OPUS_BITRATE: i32 = 128_000;

/// How the data of audio messages is coded (`audio_data_mode` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioMode {
    /// `SPICE_AUDIO_DATA_MODE_RAW` (1): interleaved S16LE PCM.
    Raw,
    /// `SPICE_AUDIO_DATA_MODE_OPUS` (3): one Opus packet per message.
    Opus,
}

impl AudioMode {
    /// The wire value (`SPICE_AUDIO_DATA_MODE_*`).
    pub fn to_wire(self) -> u16 {
        match self {
            Self::Raw => 1,
            Self::Opus => 3,
        }
    }

    /// The mode for a wire value; CELT (2), invalid (0) and unknown values are
    /// [`AudioError::UnsupportedMode`].
    pub fn from_wire(v: u16) -> Result<Self, AudioError> {
        match v {
            1 => Ok(Self::Raw),
            3 => Ok(Self::Opus),
            other => Err(AudioError::UnsupportedMode(other)),
        }
    }
}

/// True when Opus can code `rate` Hz / `channels` with [`FRAME_SAMPLES`]-sample frames
/// (480 samples must be a valid Opus frame duration: 48, 24, 12 or 8 kHz; 1 or 2 channels).
pub fn opus_supported(rate: u32, channels: u8) -> bool {
    matches!(rate, 48_000 | 24_000 | 12_000 | 8_000) && matches!(channels, 1 | 2)
}

/// What was wrong with audio data or parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// A data mode this implementation does not code (CELT, invalid, unknown).
    #[error("unsupported audio data mode {0}")]
    UnsupportedMode(u16),
    /// A rate / channel count the chosen mode cannot code.
    #[error("unsupported audio format: {rate} Hz, {channels} channels, {mode:?}")]
    UnsupportedFormat {
        /// Samples per second.
        rate: u32,
        /// Channels.
        channels: u8,
        /// The mode asked for.
        mode: AudioMode,
    },
    /// Raw data whose length is not a whole number of interleaved samples.
    #[error("raw audio of {len} bytes is not a multiple of {frame_bytes} bytes")]
    RawLength {
        /// Bytes received.
        len: usize,
        /// Bytes per interleaved sample (2 × channels).
        frame_bytes: usize,
    },
    /// Data larger than the decoder accepts.
    #[error("audio data of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty Opus packet (SPICE never sends packet-loss placeholders).
    #[error("empty Opus packet")]
    EmptyPacket,
    /// The Opus decoder refused the packet.
    #[error("Opus packet refused: {0}")]
    OpusDecode(&'static str),
    /// The Opus encoder failed.
    #[error("Opus encoder: {0}")]
    OpusEncode(&'static str),
    /// PCM handed to the encoder was not exactly one frame.
    #[error("PCM frame of {got} samples, expected {expected}")]
    FrameLength {
        /// Interleaved samples given.
        got: usize,
        /// Interleaved samples expected ([`FRAME_SAMPLES`] × channels).
        expected: usize,
    },
}

fn check_format(mode: AudioMode, rate: u32, channels: u8) -> Result<(), AudioError> {
    let ok = match mode {
        AudioMode::Raw => rate > 0 && channels > 0,
        AudioMode::Opus => opus_supported(rate, channels),
    };
    if ok {
        Ok(())
    } else {
        Err(AudioError::UnsupportedFormat {
            rate,
            channels,
            mode,
        })
    }
}

/// Codes PCM frames for `DATA` messages in one [`AudioMode`].
pub struct AudioEncoder {
    mode: AudioMode,
    channels: u8,
    rate: u32,
    opus: Option<Box<OpusEncoder>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("mode", &self.mode)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl AudioEncoder {
    /// An encoder for `rate` Hz, `channels` interleaved channels.
    pub fn new(mode: AudioMode, rate: u32, channels: u8) -> Result<Self, AudioError> {
        check_format(mode, rate, channels)?;
        let opus = match mode {
            AudioMode::Raw => None,
            AudioMode::Opus => {
                let rate_i = i32::try_from(rate).map_err(|_| AudioError::UnsupportedFormat {
                    rate,
                    channels,
                    mode,
                })?;
                let mut e = OpusEncoder::new(rate_i, channels.into(), Application::Audio)
                    .map_err(AudioError::OpusEncode)?;
                e.bitrate_bps = OPUS_BITRATE;
                Some(Box::new(e))
            }
        };
        Ok(Self {
            mode,
            channels,
            rate,
            opus,
            scratch: vec![0; OPUS_MAX_PACKET],
        })
    }

    /// The mode.
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// Interleaved samples per frame ([`FRAME_SAMPLES`] × channels).
    pub fn frame_len(&self) -> usize {
        FRAME_SAMPLES * usize::from(self.channels)
    }

    /// Codes one frame (`pcm`: exactly [`AudioEncoder::frame_len`] interleaved samples),
    /// appending the message data to `out`.
    pub fn encode_frame(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), AudioError> {
        if pcm.len() != self.frame_len() {
            return Err(AudioError::FrameLength {
                got: pcm.len(),
                expected: self.frame_len(),
            });
        }
        match &mut self.opus {
            None => {
                out.reserve(pcm.len() * 2);
                for s in pcm {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            Some(enc) => {
                let n = enc
                    .encode_i16(pcm, FRAME_SAMPLES, &mut self.scratch)
                    .map_err(AudioError::OpusEncode)?;
                let packet = self
                    .scratch
                    .get(..n)
                    .ok_or(AudioError::OpusEncode("packet length out of range"))?;
                out.extend_from_slice(packet);
            }
        }
        Ok(())
    }
}

/// Decodes `DATA` messages of one [`AudioMode`] into interleaved S16 PCM.
pub struct AudioDecoder {
    mode: AudioMode,
    channels: u8,
    rate: u32,
    opus: Option<Box<OpusDecoder>>,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("mode", &self.mode)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl AudioDecoder {
    /// A decoder for `rate` Hz, `channels` interleaved channels.
    pub fn new(mode: AudioMode, rate: u32, channels: u8) -> Result<Self, AudioError> {
        check_format(mode, rate, channels)?;
        let (opus, scratch) = match mode {
            AudioMode::Raw => (None, Vec::new()),
            AudioMode::Opus => {
                let rate_i = i32::try_from(rate).map_err(|_| AudioError::UnsupportedFormat {
                    rate,
                    channels,
                    mode,
                })?;
                let d =
                    OpusDecoder::new(rate_i, channels.into()).map_err(AudioError::OpusDecode)?;
                (
                    Some(Box::new(d)),
                    vec![0f32; Self::max_frame(rate) * usize::from(channels)],
                )
            }
        };
        Ok(Self {
            mode,
            channels,
            rate,
            opus,
            scratch,
        })
    }

    fn max_frame(rate: u32) -> usize {
        // 120 ms at `rate` (rate is one of the Opus rates, so this divides exactly).
        OPUS_MAX_FRAME_48K * (rate as usize) / 48_000
    }

    /// The mode.
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// Channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Samples per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one message's data, appending interleaved samples to `out`; returns the
    /// number of samples per channel appended.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<i16>) -> Result<usize, AudioError> {
        let ch = usize::from(self.channels);
        match &mut self.opus {
            None => {
                if data.len() > RAW_MAX_INPUT {
                    return Err(AudioError::TooLarge {
                        len: data.len(),
                        max: RAW_MAX_INPUT,
                    });
                }
                let frame_bytes = 2 * ch;
                if data.len() % frame_bytes != 0 {
                    return Err(AudioError::RawLength {
                        len: data.len(),
                        frame_bytes,
                    });
                }
                out.extend(
                    data.chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
                Ok(data.len() / frame_bytes)
            }
            Some(dec) => {
                if data.is_empty() {
                    return Err(AudioError::EmptyPacket);
                }
                if data.len() > OPUS_MAX_INPUT {
                    return Err(AudioError::TooLarge {
                        len: data.len(),
                        max: OPUS_MAX_INPUT,
                    });
                }
                let max = Self::max_frame(self.rate);
                let n = dec
                    .decode(data, max, &mut self.scratch)
                    .map_err(AudioError::OpusDecode)?;
                let pcm = self
                    .scratch
                    .get(..n.saturating_mul(ch))
                    .ok_or(AudioError::OpusDecode("decoded length out of range"))?;
                out.extend(pcm.iter().map(|&x| f32_to_i16(x)));
                Ok(n)
            }
        }
    }
}

/// Converts a float sample (±1.0 full scale, libopus' convention) to S16, rounding and
/// saturating.
pub fn f32_to_i16(x: f32) -> i16 {
    let v = (x * 32768.0).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(-32768.0, 32767.0) as i16
    }
}

/// Fuzz entry: the first byte picks raw (even) or Opus (odd) at 48 kHz stereo, the rest is
/// fed to [`AudioDecoder::decode`] in chunks separated by `0xff 0xfe` (a stream of packets
/// through one decoder). Never panics.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mode = if sel & 1 == 0 {
        AudioMode::Raw
    } else {
        AudioMode::Opus
    };
    let Ok(mut dec) = AudioDecoder::new(mode, DEFAULT_RATE, DEFAULT_CHANNELS) else {
        return;
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i <= rest.len() {
        let at_sep = i + 1 < rest.len() && rest[i] == 0xff && rest[i + 1] == 0xfe;
        if at_sep || i == rest.len() {
            out.clear();
            let _ = dec.decode(&rest[start..i], &mut out);
            if i == rest.len() {
                break;
            }
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, frames: usize, channels: usize, amp: f64) -> Vec<i16> {
        let n = frames * FRAME_SAMPLES;
        let mut v = Vec::with_capacity(n * channels);
        for i in 0..n {
            let s = (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin()).round()
                as i16;
            for _ in 0..channels {
                v.push(s);
            }
        }
        v
    }

    #[test]
    fn raw_round_trip_is_exact() {
        let pcm: Vec<i16> = (0..FRAME_SAMPLES * 2)
            .map(|i| (i as i16).wrapping_mul(77))
            .collect();
        let mut enc = AudioEncoder::new(AudioMode::Raw, 48_000, 2).unwrap();
        let mut bytes = Vec::new();
        enc.encode_frame(&pcm, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 1920);
        assert_eq!(&bytes[..4], &[0, 0, 77, 0]);
        let mut dec = AudioDecoder::new(AudioMode::Raw, 48_000, 2).unwrap();
        let mut out = Vec::new();
        assert_eq!(dec.decode(&bytes, &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(out, pcm);
    }

    #[test]
    fn opus_tone_survives_with_high_snr() {
        let frames = 50;
        let pcm = tone(440.0, frames, 2, 12_000.0);
        let mut enc = AudioEncoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        let mut dec = AudioDecoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        let mut out = Vec::new();
        for f in pcm.chunks(FRAME_SAMPLES * 2) {
            let mut pkt = Vec::new();
            enc.encode_frame(f, &mut pkt).unwrap();
            assert!(!pkt.is_empty() && pkt.len() <= OPUS_MAX_PACKET);
            assert_eq!(dec.decode(&pkt, &mut out).unwrap(), FRAME_SAMPLES);
        }
        assert_eq!(out.len(), pcm.len());
        let snr = snr_db(&pcm, &out, OPUS_DELAY_SAMPLES * 2, 10 * FRAME_SAMPLES * 2);
        assert!(snr > 20.0, "SNR {snr:.1} dB");
    }

    /// SNR of `got` (delayed by `delay` interleaved samples) against `want`, skipping the
    /// first `skip` samples of `want`.
    fn snr_db(want: &[i16], got: &[i16], delay: usize, skip: usize) -> f64 {
        let (mut sig, mut noise) = (0f64, 0f64);
        for i in skip..want.len() - delay {
            let w = f64::from(want[i]);
            let g = f64::from(got[i + delay]);
            sig += w * w;
            noise += (w - g) * (w - g);
        }
        10.0 * (sig / noise.max(1.0)).log10()
    }

    #[test]
    fn bad_input_is_typed() {
        let mut dec = AudioDecoder::new(AudioMode::Raw, 48_000, 2).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            dec.decode(&[0; 6], &mut out),
            Err(AudioError::RawLength {
                len: 6,
                frame_bytes: 4
            })
        );
        assert!(matches!(
            dec.decode(&vec![0; RAW_MAX_INPUT + 4], &mut out),
            Err(AudioError::TooLarge { .. })
        ));
        let mut dec = AudioDecoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        assert_eq!(dec.decode(&[], &mut out), Err(AudioError::EmptyPacket));
        assert!(matches!(
            dec.decode(&vec![0; OPUS_MAX_INPUT + 1], &mut out),
            Err(AudioError::TooLarge { .. })
        ));
        assert_eq!(AudioMode::from_wire(2), Err(AudioError::UnsupportedMode(2)));
        assert_eq!(AudioMode::from_wire(3), Ok(AudioMode::Opus));
        assert!(matches!(
            AudioEncoder::new(AudioMode::Opus, 44_100, 2),
            Err(AudioError::UnsupportedFormat { .. })
        ));
        let mut enc = AudioEncoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        assert!(matches!(
            enc.encode_frame(&[0; 10], &mut Vec::new()),
            Err(AudioError::FrameLength { .. })
        ));
    }

    #[test]
    fn garbage_packets_do_not_panic() {
        let mut dec = AudioDecoder::new(AudioMode::Opus, 48_000, 2).unwrap();
        let mut out = Vec::new();
        let mut x = 0x1234_5678u32;
        for len in 1..200usize {
            let pkt: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = dec.decode(&pkt, &mut out);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn raw_round_trip_any_pcm(pcm in proptest::collection::vec(proptest::prelude::any::<i16>(), FRAME_SAMPLES * 2)) {
            let mut enc = AudioEncoder::new(AudioMode::Raw, 48_000, 2).unwrap();
            let mut bytes = Vec::new();
            enc.encode_frame(&pcm, &mut bytes).unwrap();
            let mut dec = AudioDecoder::new(AudioMode::Raw, 48_000, 2).unwrap();
            let mut out = Vec::new();
            dec.decode(&bytes, &mut out).unwrap();
            proptest::prop_assert_eq!(out, pcm);
        }

        #[test]
        fn opus_decoder_survives_any_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut dec = AudioDecoder::new(AudioMode::Opus, 48_000, 2).unwrap();
            let mut out = Vec::new();
            if let Ok(n) = dec.decode(&data, &mut out) {
                proptest::prop_assert_eq!(out.len(), n * 2);
                proptest::prop_assert!(n <= 5760);
            }
        }
    }

    #[test]
    fn fuzz_corpus_replays() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/audio_opus_decode"
        );
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            fuzz_decode(&data);
            n += 1;
        }
        assert!(n >= 3, "corpus has {n} files");
    }
}
