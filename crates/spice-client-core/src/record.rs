//! The record channel: audio captured by the embedder, sent to the server raw or
//! Opus-coded (protocol.md §7.4).
//!
//! The session advertises `RECORD_CAP_VOLUME` and (with [`AudioConfig::opus`])
//! `RECORD_CAP_OPUS`. When the server sends `START`, [`Event::RecordStart`] tells the
//! embedder to capture in that format and hand the samples to
//! [`crate::Session::send_record_pcm`] (any amount; cut into 480-sample frames). Before
//! the first frame the session sends `MODE` (Opus when the server has `RECORD_CAP_OPUS`,
//! the format is Opus-capable and Opus is enabled; raw otherwise) and `START_MARK`.

use std::collections::VecDeque;

use spice_codecs::audio::{AudioEncoder, AudioMode, FRAME_SAMPLES, opus_supported};
use spice_proto::caps::{self, Caps};
use spice_proto::messages::ClientMessage;
use spice_proto::playback::{AudioDataMode, AudioFormat};
use spice_proto::record::{ClientMessage as RecordClient, RecordServerMessage as M};
use spice_proto::{ChannelMessage, ChannelType};

use crate::error::{ChannelError, SessionError};
use crate::event::Event;
use crate::playback::{AudioConfig, MAX_CHANNELS};
use crate::session::ConnIo;

/// The caps the session advertises on the record channel.
pub fn record_caps(config: &AudioConfig) -> Caps {
    let mut c = Caps::from_caps(&[caps::record::VOLUME]);
    if config.opus {
        c.set(caps::record::OPUS);
    }
    c
}

/// Record channel state.
#[derive(Debug)]
pub struct RecordChannel {
    opus_allowed: bool,
    server_opus: bool,
    format: Option<(u32, u8)>,
    mode: AudioMode,
    encoder: Option<AudioEncoder>,
    pending: Vec<i16>,
    next_time: Option<u32>,
    frames_sent: u64,
    buf: Vec<u8>,
}

impl RecordChannel {
    /// A record channel; `opus_allowed` from [`AudioConfig::opus`].
    pub fn new(opus_allowed: bool) -> Self {
        Self {
            opus_allowed,
            server_opus: false,
            format: None,
            mode: AudioMode::Raw,
            encoder: None,
            pending: Vec::new(),
            next_time: None,
            frames_sent: 0,
            buf: Vec::new(),
        }
    }

    /// Called once linked with the server's record caps.
    pub(crate) fn on_linked(&mut self, server_caps: &Caps) {
        self.server_opus = server_caps.has(caps::record::OPUS);
    }

    /// True between the server's `START` and `STOP`.
    pub fn is_active(&self) -> bool {
        self.format.is_some()
    }

    /// Rate and channels asked for by the server.
    pub fn format(&self) -> Option<(u32, u8)> {
        self.format
    }

    /// The mode used for the current capture (meaningful once active).
    pub fn mode(&self) -> AudioMode {
        self.mode
    }

    /// `DATA` messages sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    fn protocol(msg: &'static str, detail: String) -> ChannelError {
        ChannelError::Protocol {
            channel: ChannelType::RECORD,
            msg,
            detail,
        }
    }

    /// Handles one record message from the server.
    pub(crate) fn handle(
        &mut self,
        msg: M,
        events: &mut VecDeque<Event>,
    ) -> Result<(), ChannelError> {
        match msg {
            M::Start {
                channels,
                format,
                frequency,
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
                self.mode =
                    if self.opus_allowed && self.server_opus && opus_supported(frequency, ch) {
                        AudioMode::Opus
                    } else {
                        AudioMode::Raw
                    };
                // The encoder (and MODE / START_MARK) come with the first samples.
                self.encoder = None;
                self.pending.clear();
                self.next_time = None;
                events.push_back(Event::RecordStart {
                    format,
                    channels: ch,
                    rate: frequency,
                });
            }
            M::Stop => {
                self.format = None;
                self.encoder = None;
                self.pending.clear();
                events.push_back(Event::RecordStop);
            }
            M::Volume(v) => events.push_back(Event::RecordVolume(v.volumes)),
            M::Mute { mute } => events.push_back(Event::RecordMute(mute != 0)),
            other => tracing::debug!(msg = other.name(), "unhandled record message"),
        }
        Ok(())
    }

    /// Queues captured samples (interleaved S16 in the server's format); complete frames
    /// are coded and sent with multimedia time stamps starting at `mm_now`.
    pub(crate) fn send_pcm(
        &mut self,
        pcm: &[i16],
        mm_now: u32,
        io: &mut ConnIo,
    ) -> Result<(), SessionError> {
        let Some((rate, ch)) = self.format else {
            return Err(SessionError::NotActive(ChannelType::RECORD));
        };
        if self.encoder.is_none() {
            let enc = AudioEncoder::new(self.mode, rate, ch)
                .map_err(|e| SessionError::Config(format!("record encoder: {e}")))?;
            io.send(&ClientMessage::Record(RecordClient::Mode {
                time: mm_now,
                mode: AudioDataMode(self.mode.to_wire()),
                data: &[],
            }))?;
            io.send(&ClientMessage::Record(RecordClient::StartMark {
                time: mm_now,
            }))?;
            self.encoder = Some(enc);
            self.next_time = Some(mm_now);
        }
        let frame_len = FRAME_SAMPLES * usize::from(ch);
        let frame_ms = (FRAME_SAMPLES as u64 * 1000 / u64::from(rate)) as u32;
        self.pending.extend_from_slice(pcm);
        let mut start = 0;
        while self.pending.len() - start >= frame_len {
            let Some(enc) = &mut self.encoder else {
                break;
            };
            self.buf.clear();
            enc.encode_frame(&self.pending[start..start + frame_len], &mut self.buf)
                .map_err(|e| SessionError::Config(format!("record encoder: {e}")))?;
            start += frame_len;
            let time = self.next_time.unwrap_or(mm_now);
            io.send(&ClientMessage::Record(RecordClient::Data {
                time,
                data: &self.buf,
            }))?;
            self.next_time = Some(time.wrapping_add(frame_ms));
            self.frames_sent += 1;
        }
        self.pending.drain(..start);
        Ok(())
    }
}
