//! Record channel (6): audio from the client to the server (spice.proto `RecordChannel`,
//! protocol.md §2.7, §7.4). The audio types live in [`crate::playback`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::playback::{AudioDataMode, AudioFormat, AudioVolume};
use crate::wire::{ReadCursor, WriteBuf};

/// Server → client record messages. Nothing here borrows the body, so the enum has no
/// lifetime; use it through the [`ServerMessage`] alias like every other channel's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordServerMessage {
    /// 101 `START`: start capturing.
    Start {
        /// Number of channels (2).
        channels: u32,
        /// Sample format.
        format: AudioFormat,
        /// Sample rate in Hz.
        frequency: u32,
    },
    /// 102 `STOP`: stop capturing.
    Stop,
    /// 103 `VOLUME` (`RECORD_CAP_VOLUME`).
    Volume(AudioVolume),
    /// 104 `MUTE` (`RECORD_CAP_VOLUME`): non-zero = muted.
    Mute {
        /// Mute flag as sent.
        mute: u8,
    },
}

/// Server → client record messages, named like every other channel's (`ServerMessage<'a>`).
pub type ServerMessage<'a> = RecordServerMessage;

impl RecordServerMessage {
    /// 101
    pub const START: u16 = 101;
    /// 102
    pub const STOP: u16 = 102;
    /// 103
    pub const VOLUME: u16 = 103;
    /// 104
    pub const MUTE: u16 = 104;
}

impl<'a> ChannelMessage<'a> for RecordServerMessage {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Start { .. } => Self::START,
            Self::Stop => Self::STOP,
            Self::Volume(_) => Self::VOLUME,
            Self::Mute { .. } => Self::MUTE,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::RECORD, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::START => {
                // u32 channels + u16 format + u32 frequency
                r.ensure(4 + 2 + 4, "record start")?;
                Self::Start {
                    channels: r.read_u32("record start.channels")?,
                    format: AudioFormat(r.read_u16("record start.format")?),
                    frequency: r.read_u32("record start.frequency")?,
                }
            }
            Self::STOP => Self::Stop,
            Self::VOLUME => Self::Volume(AudioVolume::decode(&mut r)?),
            Self::MUTE => Self::Mute {
                mute: r.read_u8("record mute.mute")?,
            },
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("record server message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Start {
                channels,
                format,
                frequency,
            } => {
                w.write_u32(*channels);
                w.write_u16(format.0);
                w.write_u32(*frequency);
            }
            Self::Stop => {}
            Self::Volume(v) => v.encode(w)?,
            Self::Mute { mute } => w.write_u8(*mute),
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::START => "start",
            Self::STOP => "stop",
            Self::VOLUME => "volume",
            Self::MUTE => "mute",
            _ => return None,
        })
    }
}

/// Client → server record messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// 101 `DATA`: one captured frame (RAW PCM or one Opus packet).
    Data {
        /// Multimedia time of the frame (ms).
        time: u32,
        /// The coded audio (rest of the message), borrowed.
        data: &'a [u8],
    },
    /// 102 `MODE`: the coding of the following data; sent before the first data.
    Mode {
        /// Multimedia time (ms).
        time: u32,
        /// The coding.
        mode: AudioDataMode,
        /// Codec-specific data (empty in practice).
        data: &'a [u8],
    },
    /// 103 `START_MARK`: the time of the first captured frame.
    StartMark {
        /// Multimedia time (ms).
        time: u32,
    },
}

impl ClientMessage<'_> {
    /// 101
    pub const DATA: u16 = 101;
    /// 102
    pub const MODE: u16 = 102;
    /// 103
    pub const START_MARK: u16 = 103;
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Data { .. } => Self::DATA,
            Self::Mode { .. } => Self::MODE,
            Self::StartMark { .. } => Self::START_MARK,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::RECORD, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::DATA => Self::Data {
                time: r.read_u32("record data.time")?,
                data: r.read_rest(),
            },
            Self::MODE => {
                // u32 time + u16 mode
                r.ensure(4 + 2, "record mode")?;
                Self::Mode {
                    time: r.read_u32("record mode.time")?,
                    mode: AudioDataMode(r.read_u16("record mode.mode")?),
                    data: r.read_rest(),
                }
            }
            Self::START_MARK => Self::StartMark {
                time: r.read_u32("record start_mark.time")?,
            },
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("record client message")?;
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
            Self::StartMark { time } => w.write_u32(*time),
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::DATA => "data",
            Self::MODE => "mode",
            Self::START_MARK => "start_mark",
            _ => return None,
        })
    }
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a server record message.
#[doc(hidden)]
pub fn fuzz_server(data: &[u8]) {
    crate::message::fuzz_roundtrip!(RecordServerMessage, ChannelType::RECORD, data);
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a client record message.
#[doc(hidden)]
pub fn fuzz_client(data: &[u8]) {
    crate::message::fuzz_roundtrip!(ClientMessage, ChannelType::RECORD, data);
}

/// proptest strategies covering every message of both directions.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::message::strategies::leaked_bytes;
    use proptest::prelude::*;

    /// Every server record message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            (any::<u32>(), any::<u16>(), any::<u32>()).prop_map(|(channels, f, frequency)| {
                RecordServerMessage::Start {
                    channels,
                    format: AudioFormat(f),
                    frequency,
                }
            }),
            Just(RecordServerMessage::Stop),
            crate::playback::strategies::audio_volume().prop_map(RecordServerMessage::Volume),
            any::<u8>().prop_map(|mute| RecordServerMessage::Mute { mute }),
        ]
        .boxed()
    }

    /// Every client record message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            (any::<u32>(), leaked_bytes(0..64))
                .prop_map(|(time, data)| ClientMessage::Data { time, data }),
            (any::<u32>(), any::<u16>(), leaked_bytes(0..8)).prop_map(|(time, m, data)| {
                ClientMessage::Mode {
                    time,
                    mode: AudioDataMode(m),
                    data,
                }
            }),
            any::<u32>().prop_map(|time| ClientMessage::StartMark { time }),
        ]
        .boxed()
    }
}
