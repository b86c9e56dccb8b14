//! The server's display pipeline, encode side: full-screen 1920x1080 changes pushed by a
//! guest through the QXL rings, taken and rendered by the display worker, then encoded and
//! marshalled for one client per compression mode. Only the server's work is timed (the
//! guest writing its bitmap is not); bytes per frame are printed once per mode.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use spice_benches::thread_cpu;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::classify::{ImageCompression, WanCompression};
use spice_codecs::stream_detect::StreamingVideo;
use spice_proto::display::{ClientMessage, Init, ServerMessage};
use spice_proto::{ChannelMessage, WriteBuf};
use spice_qxl::parse::Rect;
use spice_qxl::{GuestDriver, QxlDevice, VecMemory};
use spice_server::display::glz::GlzRegistry;
use spice_server::display::{
    ClientId, ClientOptions, DisplayClientCaps, DisplayConfig, DisplayError, DisplaySink,
    DisplayWorker,
};

const W: u32 = 1920;
const H: u32 = 1080;

/// Marshals every message like the channel layer would and counts the bytes.
struct CountingSink {
    buf: Vec<u8>,
    bytes: u64,
}

impl DisplaySink for CountingSink {
    fn can_send(&self) -> bool {
        true
    }
    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        self.buf.clear();
        msg.encode_body(&mut WriteBuf::new(&mut self.buf))
            .map_err(|e| DisplayError::Send(e.to_string()))?;
        self.bytes += 6 + self.buf.len() as u64;
        Ok(())
    }
}

/// A desktop-like full screen: flat panels, text-like runs, a gradient band; `seed` moves
/// everything so consecutive frames differ everywhere.
fn frame(seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            let px: [u8; 4] = if y < 40 {
                [0x30, 0x30, 0x38, 0]
            } else if (y / 200 + x / 300 + seed).is_multiple_of(3) {
                [(x + seed * 7) as u8, (y / 4) as u8, 0x80, 0]
            } else if (x / 4 + y / 9 + seed).is_multiple_of(6) && y % 18 < 12 {
                [0x10, 0x10, 0x10, 0]
            } else {
                [0xf4, 0xf0, (0xe0 + seed * 3) as u8, 0]
            };
            v.extend_from_slice(&px);
        }
    }
    v
}

struct Pipeline {
    worker: DisplayWorker<QxlDevice<VecMemory>>,
    guest: GuestDriver,
    client: ClientId,
    sink: CountingSink,
    now: u64,
    /// Thread CPU time of the server's work, and frames.
    cpu: Duration,
    frames: u64,
}

fn pipeline(compression: ImageCompression) -> Pipeline {
    let cfg = DisplayConfig {
        compression,
        jpeg_wan: WanCompression::Never,
        zlib_glz_wan: WanCompression::Never,
        streaming: StreamingVideo::Off,
        ..DisplayConfig::default()
    };
    let (mut worker, mut guest) = spice_server::testing::display_worker(48 << 20, cfg);
    spice_server::testing::create_primary(&mut worker, &mut guest, W, H);
    let client = worker.add_client(ClientOptions {
        session_id: 1,
        caps: DisplayClientCaps::spice_gtk(),
        glz: std::sync::Arc::new(GlzRegistry::new()),
        waker: None,
        bit_rate: None,
    });
    worker
        .client_message(
            client,
            &ClientMessage::Init(Init {
                pixmap_cache_id: 1,
                pixmap_cache_size: 20 << 20,
                glz_dictionary_id: 1,
                glz_dictionary_window_size: 1 << 24,
            }),
            0,
        )
        .unwrap();
    let mut sink = CountingSink {
        buf: Vec::new(),
        bytes: 0,
    };
    worker.client_poll(client, &mut sink, 0).unwrap();
    Pipeline {
        worker,
        guest,
        client,
        sink,
        now: 0,
        cpu: Duration::ZERO,
        frames: 0,
    }
}

impl Pipeline {
    /// Pushes one full-screen frame (untimed), then times the server's work.
    fn frame(&mut self, px: &[u8]) -> Duration {
        let full = Rect {
            top: 0,
            left: 0,
            bottom: H as i32,
            right: W as i32,
        };
        self.guest
            .copy_bitmap(
                self.worker.device_mut().memory_mut(),
                0,
                full,
                W,
                H,
                px,
                1 << 20,
            )
            .unwrap();
        self.now += 16;
        let t = Instant::now();
        let c = thread_cpu();
        self.worker.process(self.now);
        self.worker
            .client_poll(self.client, &mut self.sink, self.now)
            .unwrap();
        self.cpu += thread_cpu() - c;
        self.frames += 1;
        let d = t.elapsed();
        self.guest
            .collect_releases(self.worker.device_mut().memory_mut())
            .unwrap();
        d
    }
}

fn full_screen(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = (0..4).map(frame).collect();
    let mut group = c.benchmark_group("server_display_1080p");
    group.throughput(Throughput::Bytes(u64::from(W * H * 4)));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (name, mode) in [
        ("off", ImageCompression::Off),
        ("auto_glz", ImageCompression::AutoGlz),
        ("auto_lz", ImageCompression::AutoLz),
        ("glz", ImageCompression::Glz),
        ("lz", ImageCompression::Lz),
        ("quic", ImageCompression::Quic),
        ("lz4", ImageCompression::Lz4),
    ] {
        let mut p = pipeline(mode);
        // Bytes per frame, once.
        let before = p.sink.bytes;
        let mut t = Duration::ZERO;
        for f in &frames {
            t += p.frame(f);
        }
        let per_frame = (p.sink.bytes - before) / frames.len() as u64;
        eprintln!(
            "server_display_1080p/{name}: {per_frame} bytes/frame ({:.1}:1), {:.1} ms/frame warm-up",
            f64::from(W * H * 4) / per_frame as f64,
            t.as_secs_f64() * 1000.0 / frames.len() as f64
        );
        let mut i = 0;
        let (cpu0, frames0) = (p.cpu, p.frames);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += p.frame(&frames[i % frames.len()]);
                    i += 1;
                }
                total
            })
        });
        let n = (p.frames - frames0).max(1);
        eprintln!(
            "server_display_1080p/{name}: {:.2} ms thread CPU per frame over {n} frames",
            (p.cpu - cpu0).as_secs_f64() * 1000.0 / n as f64
        );
    }
    group.finish();
}

criterion_group!(benches, full_screen);
criterion_main!(benches);
