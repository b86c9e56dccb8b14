//! Playback channel (5): audio from the server to the client (spice.proto `PlaybackChannel`,
//! protocol.md §2.6, §7). Server → client only.
//!
//! Also home of the audio types shared with [`crate::record`]: [`AudioDataMode`],
//! [`AudioFormat`] and [`AudioVolume`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::wire::{ReadCursor, WriteBuf};

/// `audio_data_mode` (u16): how audio data is coded. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioDataMode(pub u16);

impl AudioDataMode {
    /// 0: invalid.
    pub const INVALID: Self = Self(0);
    /// 1: raw PCM in the negotiated [`AudioFormat`].
    pub const RAW: Self = Self(1);
    /// 2: CELT 0.5.1, deprecated and no longer supported by spice-common.
    pub const CELT_0_5_1: Self = Self(2);
    /// 3: Opus, one packet per data message.
    pub const OPUS: Self = Self(3);
}

/// `audio_fmt` (u16): the PCM sample format. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat(pub u16);

impl AudioFormat {
    /// 0: invalid.
    pub const INVALID: Self = Self(0);
    /// 1: signed 16-bit little-endian, channels interleaved.
    pub const S16: Self = Self(1);
}

/// `AudioVolume`: `u8 nchannels; u16 volume[nchannels]` (0..=65535 per channel).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioVolume {
    /// One volume per channel (at most 255 channels fit the wire).
    pub volumes: Vec<u16>,
}

impl AudioVolume {
    /// Reads `u8 nchannels; u16 volume[nchannels]`, checking the count against the body first.
    pub fn decode(r: &mut ReadCursor<'_>) -> Result<Self, DecodeError> {
        let n = r.read_u8("audio volume.nchannels")?;
        let n = r.check_count(n.into(), 2, "audio volume.volume")?;
        let mut volumes = Vec::with_capacity(n);
        for _ in 0..n {
            volumes.push(r.read_u16("audio volume.volume")?);
        }
        Ok(Self { volumes })
    }

    /// Writes the volume; more than 255 channels is [`EncodeError::TooLarge`].
    pub fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u8(WriteBuf::len_as(
            self.volumes.len(),
            "audio volume.nchannels",
        )?);
        for v in &self.volumes {
            w.write_u16(*v);
        }
        Ok(())
    }
}

/// Server → client playback messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// 101 `DATA`: one frame (RAW PCM or one Opus packet) to play at multimedia time `time`.
    Data {
        /// Multimedia time of the frame (ms).
        time: u32,
        /// The coded audio (rest of the message), borrowed.
        data: &'a [u8],
    },
    /// 102 `MODE`: the coding of the following data.
    Mode {
        /// Multimedia time (ms).
        time: u32,
        /// The coding.
        mode: AudioDataMode,
        /// Codec-specific data (empty in practice).
        data: &'a [u8],
    },
    /// 103 `START`: the guest starts playing.
    Start {
        /// Number of channels (2).
        channels: u32,
        /// Sample format.
        format: AudioFormat,
        /// Sample rate in Hz.
        frequency: u32,
        /// Multimedia time (ms).
        time: u32,
    },
    /// 104 `STOP`: the guest stopped playing.
    Stop,
    /// 105 `VOLUME` (`PLAYBACK_CAP_VOLUME`).
    Volume(AudioVolume),
    /// 106 `MUTE` (`PLAYBACK_CAP_VOLUME`): non-zero = muted.
    Mute {
        /// Mute flag as sent.
        mute: u8,
    },
    /// 107 `LATENCY` (`PLAYBACK_CAP_LATENCY`): minimum buffering the server asks for.
    Latency {
        /// Milliseconds.
        latency_ms: u32,
    },
}

impl ServerMessage<'_> {
    /// 101
    pub const DATA: u16 = 101;
    /// 102
    pub const MODE: u16 = 102;
    /// 103
    pub const START: u16 = 103;
    /// 104
    pub const STOP: u16 = 104;
    /// 105
    pub const VOLUME: u16 = 105;
    /// 106
    pub const MUTE: u16 = 106;
    /// 107
    pub const LATENCY: u16 = 107;
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Data { .. } => Self::DATA,
            Self::Mode { .. } => Self::MODE,
            Self::Start { .. } => Self::START,
            Self::Stop => Self::STOP,
            Self::Volume(_) => Self::VOLUME,
            Self::Mute { .. } => Self::MUTE,
            Self::Latency { .. } => Self::LATENCY,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::PLAYBACK, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::DATA => Self::Data {
                time: r.read_u32("playback data.time")?,
                data: r.read_rest(),
            },
            Self::MODE => {
                // u32 time + u16 mode
                r.ensure(4 + 2, "playback mode")?;
                Self::Mode {
                    time: r.read_u32("playback mode.time")?,
                    mode: AudioDataMode(r.read_u16("playback mode.mode")?),
                    data: r.read_rest(),
                }
            }
            Self::START => {
                // u32 channels + u16 format + u32 frequency + u32 time
                r.ensure(4 + 2 + 4 + 4, "playback start")?;
                Self::Start {
                    channels: r.read_u32("playback start.channels")?,
                    format: AudioFormat(r.read_u16("playback start.format")?),
                    frequency: r.read_u32("playback start.frequency")?,
                    time: r.read_u32("playback start.time")?,
                }
            }
            Self::STOP => Self::Stop,
            Self::VOLUME => Self::Volume(AudioVolume::decode(&mut r)?),
            Self::MUTE => Self::Mute {
                mute: r.read_u8("playback mute.mute")?,
            },
            Self::LATENCY => Self::Latency {
                latency_ms: r.read_u32("playback latency.latency_ms")?,
            },
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("playback server message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Data { time, data } => {
                w.write_u32(*time);
                w.write_slice(data);
            }
            Self::Mode { time, mode, data } => {
                w.write_u32(*time);
                w.write_u16(mode.0);
                w.write_slice(data);
            }
            Self::Start {
                channels,
                format,
                frequency,
                time,
            } => {
                w.write_u32(*channels);
                w.write_u16(format.0);
                w.write_u32(*frequency);
                w.write_u32(*time);
            }
            Self::Stop => {}
            Self::Volume(v) => v.encode(w)?,
            Self::Mute { mute } => w.write_u8(*mute),
            Self::Latency { latency_ms } => w.write_u32(*latency_ms),
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::DATA => "data",
            Self::MODE => "mode",
            Self::START => "start",
            Self::STOP => "stop",
            Self::VOLUME => "volume",
            Self::MUTE => "mute",
            Self::LATENCY => "latency",
            _ => return None,
        })
    }
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a server playback message.
#[doc(hidden)]
pub fn fuzz_server(data: &[u8]) {
    crate::message::fuzz_roundtrip!(ServerMessage, ChannelType::PLAYBACK, data);
}

/// proptest strategies covering every message.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::prelude::*;

    /// Any audio volume (0..8 channels).
    pub fn audio_volume() -> BoxedStrategy<AudioVolume> {
        proptest::collection::vec(any::<u16>(), 0..8)
            .prop_map(|volumes| AudioVolume { volumes })
            .boxed()
    }

    /// Every server playback message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            (any::<u32>(), leaked_bytes(0..64))
                .prop_map(|(time, data)| ServerMessage::Data { time, data }),
            (any::<u32>(), any::<u16>(), leaked_bytes(0..8)).prop_map(|(time, m, data)| {
                ServerMessage::Mode {
                    time,
                    mode: AudioDataMode(m),
                    data,
                }
            }),
            (any::<u32>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
                |(channels, f, frequency, time)| {
                    ServerMessage::Start {
                        channels,
                        format: AudioFormat(f),
                        frequency,
                        time,
                    }
                }
            ),
            Just(ServerMessage::Stop),
            audio_volume().prop_map(ServerMessage::Volume),
            any::<u8>().prop_map(|mute| ServerMessage::Mute { mute }),
            any::<u32>().prop_map(|latency_ms| ServerMessage::Latency { latency_ms }),
        ]
        .boxed()
    }
}
