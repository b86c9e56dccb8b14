//! A demo playback device: a continuous sine tone (440 Hz for `--demo-tone`), 48 kHz
//! stereo, written to the playback sink in real time by a small pacing thread.
//!
//! [`ToneGenerator`] is the pure part (phase-continuous frames); [`DemoTone`] is the host
//! device that runs it on a thread once the server attaches its sink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_codecs::audio::{DEFAULT_CHANNELS, DEFAULT_RATE, FRAME_SAMPLES};

use crate::host::{AudioFormat, PlaybackDevice};
use crate::playback::PlaybackSink;
use crate::session::lock;

/// Default amplitude of the demo tone (about −10 dBFS).
pub const DEFAULT_AMPLITUDE: i16 = 10_000;

/// Produces a phase-continuous sine tone in interleaved S16 frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    frequency: f64,
    amplitude: f64,
    rate: u32,
    channels: u8,
    /// Sample index (per channel) of the next sample, modulo one second.
    index: u64,
}

impl ToneGenerator {
    /// A `frequency` Hz tone of peak `amplitude` at `rate` Hz, `channels` channels.
    pub fn new(frequency: f64, amplitude: i16, rate: u32, channels: u8) -> Self {
        Self {
            frequency,
            amplitude: f64::from(amplitude),
            rate: rate.max(1),
            channels: channels.max(1),
            index: 0,
        }
    }

    /// Appends `samples` samples per channel (interleaved, the same value on every
    /// channel) to `out`.
    pub fn fill(&mut self, samples: usize, out: &mut Vec<i16>) {
        let rate = f64::from(self.rate);
        for _ in 0..samples {
            let t = self.index as f64 / rate;
            let v = (self.amplitude * (2.0 * std::f64::consts::PI * self.frequency * t).sin())
                .round() as i16;
            for _ in 0..self.channels {
                out.push(v);
            }
            // Whole seconds hold a whole number of cycles only for integer frequencies;
            // wrapping at `rate` keeps the argument small for those and is exact.
            self.index = (self.index + 1) % (u64::from(self.rate) * 1000);
        }
    }
}

/// The `--demo-tone` playback device: plays a tone from server start until the process
/// ends (or [`DemoTone::stop`]).
#[derive(Debug)]
pub struct DemoTone {
    frequency: f64,
    amplitude: i16,
    running: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DemoTone {
    /// A `frequency` Hz tone at [`DEFAULT_AMPLITUDE`].
    pub fn new(frequency: f64) -> Arc<Self> {
        Self::with_amplitude(frequency, DEFAULT_AMPLITUDE)
    }

    /// A `frequency` Hz tone of peak `amplitude`.
    pub fn with_amplitude(frequency: f64, amplitude: i16) -> Arc<Self> {
        Arc::new(Self {
            frequency,
            amplitude,
            running: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        })
    }

    /// Stops the pacing thread (the sink gets `stop`).
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl PlaybackDevice for DemoTone {
    fn format(&self) -> AudioFormat {
        AudioFormat {
            frequency: DEFAULT_RATE,
            channels: DEFAULT_CHANNELS,
        }
    }

    fn attach(&self, sink: PlaybackSink) {
        if self.running.swap(true, Ordering::SeqCst) {
            tracing::warn!("demo tone attached twice; keeping the first sink");
            return;
        }
        let running = self.running.clone();
        let mut tone_gen = ToneGenerator::new(
            self.frequency,
            self.amplitude,
            DEFAULT_RATE,
            DEFAULT_CHANNELS,
        );
        let spawned = std::thread::Builder::new()
            .name("demo-tone".into())
            .spawn(move || {
                let frame = Duration::from_micros(
                    FRAME_SAMPLES as u64 * 1_000_000 / u64::from(DEFAULT_RATE),
                );
                let mut next = Instant::now();
                let mut buf = Vec::with_capacity(FRAME_SAMPLES * usize::from(DEFAULT_CHANNELS));
                sink.start();
                while running.load(Ordering::SeqCst) {
                    buf.clear();
                    tone_gen.fill(FRAME_SAMPLES, &mut buf);
                    sink.write(&buf);
                    next += frame;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else if now - next > frame * 10 {
                        // Fell far behind (suspended): do not burst to catch up.
                        next = now;
                    }
                }
                sink.stop();
            });
        match spawned {
            Ok(t) => *lock(&self.thread) = Some(t),
            Err(e) => {
                self.running.store(false, Ordering::SeqCst);
                tracing::error!(error = %e, "cannot start the demo tone thread");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_is_continuous_and_has_the_frequency() {
        let mut g = ToneGenerator::new(440.0, 10_000, 48_000, 2);
        let mut v = Vec::new();
        for _ in 0..100 {
            g.fill(FRAME_SAMPLES, &mut v);
        }
        assert_eq!(v.len(), 48_000 * 2);
        let left: Vec<i16> = v.iter().step_by(2).copied().collect();
        assert!(v.chunks(2).all(|c| c[0] == c[1]));
        let crossings = left.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((439..=441).contains(&crossings), "{crossings}");
        assert_eq!(left.iter().map(|s| s.unsigned_abs()).max(), Some(10_000));
    }
}
