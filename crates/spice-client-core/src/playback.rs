//! The playback channel: audio from the server, decoded to interleaved S16 PCM
//! (protocol.md §7.3). Raw and Opus data; `VOLUME`/`MUTE`/`LATENCY` become events.
//!
//! The session advertises `PLAYBACK_CAP_VOLUME`, `PLAYBACK_CAP_LATENCY` and (when
//! [`AudioConfig::opus`] is on) `PLAYBACK_CAP_OPUS`. Events, in order:
//! [`Event::PlaybackStart`], one [`Event::PlaybackData`] per `DATA` message (the decoded
//! frame and its multimedia time), [`Event::PlaybackStop`], and [`Event::PlaybackVolume`],
//! [`Event::PlaybackMute`], [`Event::PlaybackLatency`] as they come.

use std::collections::VecDeque;

use spice_codecs::audio::{AudioDecoder, AudioMode};
use spice_proto::caps::{self, Caps};
use spice_proto::playback::{AudioFormat, ServerMessage as M};
use spice_proto::{ChannelMessage, ChannelType};

use crate::error::ChannelError;
use crate::event::Event;

/// Audio settings of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// Open the playback channel when the server lists it.
    pub playback: bool,
    /// Open the record channel when the server lists it.
    pub record: bool,
    /// Offer / use Opus (else raw PCM only).
    pub opus: bool,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            playback: true,
            record: true,
            opus: true,
        }
    }
}

/// The caps the session advertises on the playback channel.
pub fn playback_caps(config: &AudioConfig) -> Caps {
    let mut c = Caps::from_caps(&[caps::playback::VOLUME, caps::playback::LATENCY]);
    if config.opus {
        c.set(caps::playback::OPUS);
    }
    c
}

/// Largest channel count accepted in `START` (SPICE uses 2).
pub const MAX_CHANNELS: u32 = 8;

/// Playback channel state.
#[derive(Debug)]
pub struct PlaybackChannel {
    mode: AudioMode,
    format: Option<(u32, u8)>,
    decoder: Option<AudioDecoder>,
    frames: u64,
    last_time: Option<u32>,
    pcm: Vec<i16>,
}

impl Default for PlaybackChannel {
    fn default() -> Self {
        Self::new()
    }
}

impl PlaybackChannel {
    /// A channel before `MODE` (raw until told otherwise).
    pub fn new() -> Self {
        Self {
            mode: AudioMode::Raw,
            format: None,
            decoder: None,
            frames: 0,
            last_time: None,
            pcm: Vec::new(),
        }
    }

    /// The data mode the server announced.
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// Rate and channels of the current stream (between `START` and `STOP`).
    pub fn format(&self) -> Option<(u32, u8)> {
        self.format
    }

    /// `DATA` messages decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Multimedia time of the last frame.
    pub fn last_time(&self) -> Option<u32> {
        self.last_time
    }

    fn protocol(msg: &'static str, detail: String) -> ChannelError {
        ChannelError::Protocol {
            channel: ChannelType::PLAYBACK,
            msg,
            detail,
        }
    }

    fn make_decoder(&mut self, msg: &'static str) -> Result<(), ChannelError> {
        self.decoder = match self.format {
            Some((rate, ch)) => Some(
                AudioDecoder::new(self.mode, rate, ch)
                    .map_err(|e| Self::protocol(msg, e.to_string()))?,
            ),
            None => None,
        };
        Ok(())
    }

    /// Handles one playback message.
    pub(crate) fn handle(
        &mut self,
        msg: M<'_>,
        events: &mut VecDeque<Event>,
    ) -> Result<(), ChannelError> {
        match msg {
            M::Mode { mode, .. } => {
                self.mode = AudioMode::from_wire(mode.0)
                    .map_err(|e| Self::protocol("mode", e.to_string()))?;
                self.make_decoder("mode")?;
                events.push_back(Event::PlaybackMode(self.mode));
            }
            M::Start {
                channels,
                format,
                frequency,
                time,
            } => {
                if format != AudioFormat::S16 {
                    return Err(Self::protocol(
                        "start",
                        format!("unsupported sample format {}", format.0),
                    ));
                }
                let ch = u8::try_from(channels)
                    .ok()
                    .filter(|c| (1..=MAX_CHANNELS).contains(&u32::from(*c)))
                    .ok_or_else(|| Self::protocol("start", format!("{channels} channels")))?;
                if frequency == 0 || frequency > 384_000 {
                    return Err(Self::protocol("start", format!("rate {frequency} Hz")));
                }
                self.format = Some((frequency, ch));
                self.make_decoder("start")?;
                events.push_back(Event::PlaybackStart {
                    format,
                    channels: ch,
                    rate: frequency,
                    time,
                });
            }
            M::Data { time, data } => {
                let Some(dec) = &mut self.decoder else {
                    return Err(Self::protocol("data", "data before start".into()));
                };
                self.pcm.clear();
                dec.decode(data, &mut self.pcm)
                    .map_err(|e| Self::protocol("data", e.to_string()))?;
                self.frames += 1;
                self.last_time = Some(time);
                events.push_back(Event::PlaybackData {
                    pcm: std::mem::take(&mut self.pcm),
                    mm_time: time,
                });
            }
            M::Stop => {
                self.format = None;
                self.decoder = None;
                events.push_back(Event::PlaybackStop);
            }
            M::Volume(v) => events.push_back(Event::PlaybackVolume(v.volumes)),
            M::Mute { mute } => events.push_back(Event::PlaybackMute(mute != 0)),
            M::Latency { latency_ms } => events.push_back(Event::PlaybackLatency(latency_ms)),
            other => tracing::debug!(msg = other.name(), "unhandled playback message"),
        }
        Ok(())
    }
}
