//! End to end: full-screen 1920x1080 changes pushed by a guest through the QXL rings of a
//! spice-server [`Server`] listening on 127.0.0.1, delivered to a spice-client-core
//! [`Session`] on loopback TCP that links main + display, decodes and draws every frame.
//!
//! Each frame is a new 1920x1080 DRAW_COPY covering the whole primary surface (the desktop
//! with a window at one of eight positions, `spice_benches::images::moving_window`), with
//! the frame number stamped into it as a row of black/white 16x16 blocks (survives MJPEG).
//! The guest keeps at most [`IN_FLIGHT`] frames ahead of what the client has drawn, so
//! frames flow through guest → server → client as a pipeline; a frame the server drops
//! because the next one hides it before it was sent (as spice-server does) just never
//! shows.
//!
//! Timed (criterion `iter_custom`): from submitting the first of N frames until the client
//! has drawn the last. Printed per mode, per frame the client drew: frames/s, wire bytes per
//! frame (bytes the client's sockets read), and the server's CPU time per frame = CPU time of
//! the server's own threads (`spice-*`: accept, connection, socket readers; from
//! `/proc/self/task/*/schedstat`; not the RSA key pool, which works once per link) plus the
//! thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) of the display worker's `process` calls, which
//! run on the guest's thread as in the demo's driver. The guest writing its bitmaps and the
//! client are not counted there; they are printed apart, with the frame rate an idle machine
//! would allow given each stage's CPU per frame.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_benches::images::{self, H, W};
use spice_benches::thread_cpu;
use spice_client_core::{ChannelSelection, ConnId, Event, Session, SessionConfig};
use spice_codecs::classify::ImageCompression;
use spice_qxl::parse::Rect;
use spice_qxl::{GuestDriver, QxlDevice, VecMemory};
use spice_server::config::{ServerConfig, StreamingVideo};
use spice_server::cursor::CursorFeed;
use spice_server::display::{DisplayChannelFactory, DisplayConfig, DisplayWorker, millis_since};
use spice_server::server::{Server, ServerBuilder};

/// Frames the guest may push ahead of the last one the client drew.
const IN_FLIGHT: u32 = 2;
/// Bits of the frame stamp; blocks of `STAMP_BLOCK` pixels in the top-left corner.
const STAMP_BITS: u32 = 24;
const STAMP_BLOCK: usize = 16;
/// Distinct window positions cycled through.
const VARIANTS: usize = 8;

type Worker = Arc<Mutex<DisplayWorker<QxlDevice<VecMemory>>>>;

/// CPU time of the server's threads: this process's threads named `spice-...` (this bench's
/// own are not), except `spice-keys`, the pool that pre-computes link RSA keys after each
/// link (a per-connection cost, not a per-frame one).
fn server_threads_cpu() -> Duration {
    threads_cpu(|comm| comm.starts_with("spice-") && !comm.starts_with("spice-keys"))
}

/// CPU time of the client's threads (its session thread and socket readers).
fn client_threads_cpu() -> Duration {
    threads_cpu(|comm| comm.starts_with("e2e-"))
}

/// CPU time of this process's threads whose name `pick` accepts.
fn threads_cpu(pick: impl Fn(&str) -> bool) -> Duration {
    let mut total = Duration::ZERO;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for t in dir.flatten() {
        let p = t.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else {
            continue;
        };
        if !pick(comm.trim_end()) {
            continue;
        }
        // schedstat: ns on CPU first.
        if let Ok(s) = std::fs::read_to_string(p.join("schedstat"))
            && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
        {
            total += Duration::from_nanos(ns);
            continue;
        }
        // Fallback: utime + stime in clock ticks (assumed 100 Hz).
        if let Ok(s) = std::fs::read_to_string(p.join("stat"))
            && let Some(rest) = s.rsplit(')').next()
        {
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() > 12 {
                total += Duration::from_millis((f[11] + f[12]) * 10);
            }
        }
    }
    total
}

fn stamp(px: &mut [u8], n: u32) {
    for bit in 0..STAMP_BITS as usize {
        let v = if n >> bit & 1 == 1 { 255 } else { 0 };
        for y in 0..STAMP_BLOCK {
            let row = (y * W + bit * STAMP_BLOCK) * 4;
            for p in px[row..row + STAMP_BLOCK * 4].chunks_mut(4) {
                p.copy_from_slice(&[v, v, v, 0]);
            }
        }
    }
}

fn read_stamp(s: &spice_client_core::Surface) -> Option<u32> {
    let row = s.row(STAMP_BLOCK as u32 / 2)?;
    let mut n = 0;
    for bit in 0..STAMP_BITS as usize {
        let p = *row.get(bit * STAMP_BLOCK + STAMP_BLOCK / 2)?;
        if (p >> 8) & 0xff > 128 {
            n |= 1 << bit;
        }
    }
    Some(n)
}

/// What the client thread shares with the guest.
#[derive(Default)]
struct Progress {
    /// Stamp of the last frame drawn, and how many full-screen frames were drawn.
    drawn: Mutex<(Option<u32>, u64)>,
    cond: Condvar,
    bytes: AtomicU64,
    stop: AtomicBool,
    linked: AtomicBool,
}

fn reader(conn: ConnId, mut s: TcpStream, tx: mpsc::Sender<(ConnId, Vec<u8>)>, p: Arc<Progress>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                p.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if tx.send((conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

/// The client: a sans-IO session over loopback sockets (main + display only).
fn client(addr: SocketAddr, p: Arc<Progress>) {
    let mut session = Session::new(SessionConfig {
        channels: ChannelSelection {
            display: true,
            inputs: false,
            cursor: false,
        },
        agent: false,
        ..SessionConfig::default()
    })
    .expect("session");
    let (tx, rx) = mpsc::channel();
    let mut socks: HashMap<ConnId, TcpStream> = HashMap::new();
    let mut out = Vec::new();
    while !p.stop.load(Ordering::Relaxed) {
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::OpenChannel { conn, .. } => {
                    let s = TcpStream::connect(addr).expect("connect");
                    let _ = s.set_nodelay(true);
                    let (r, tx, p) = (s.try_clone().expect("clone"), tx.clone(), p.clone());
                    std::thread::Builder::new()
                        .name(format!("e2e-read-{}", conn.0))
                        .spawn(move || reader(conn, r, tx, p))
                        .expect("reader thread");
                    socks.insert(conn, s);
                }
                Event::PrimaryMarked { .. } => p.linked.store(true, Ordering::SeqCst),
                Event::RegionChanged {
                    surface_id: 0,
                    rect,
                    ..
                } => {
                    // Every full-screen draw is one frame; the stamp tells how far the
                    // picture is (several frames may be drawn before their events are seen).
                    let full = rect.left == 0
                        && rect.top == 0
                        && rect.right == W as i32
                        && rect.bottom == H as i32;
                    let n = session.surface(0, 0).and_then(read_stamp);
                    let mut d = p.drawn.lock().unwrap();
                    d.0 = n.or(d.0);
                    d.1 += u64::from(full);
                    p.cond.notify_all();
                }
                Event::Disconnected => return,
                _ => {}
            }
        }
        for (conn, s) in &mut socks {
            out.clear();
            session.transmit(*conn, &mut out);
            if !out.is_empty() && s.write_all(&out).is_err() {
                return;
            }
        }
        let now = Instant::now();
        let wait = session
            .next_deadline()
            .map_or(Duration::from_millis(50), |d| {
                d.saturating_duration_since(now)
            })
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok((conn, bytes)) => {
                let now = Instant::now();
                let _ = session.receive(conn, &bytes, now);
                while let Ok((conn, bytes)) = rx.try_recv() {
                    let _ = session.receive(conn, &bytes, now);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if session.next_deadline().is_some_and(|d| d <= now) {
            session.handle_timeout(now);
        }
    }
    for s in socks.values() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Totals over every timed run of one mode.
#[derive(Default)]
struct Totals {
    frames: u64,
    drawn: u64,
    wall: Duration,
    bytes: u64,
    server_cpu: Duration,
    /// Of which the worker's `process` on the device (guest) thread.
    process_cpu: Duration,
    client_cpu: Duration,
    /// The guest thread besides `process` (writing bitmaps into guest memory, waiting).
    guest_cpu: Duration,
    lock_wait: Duration,
}

struct Rig {
    worker: Worker,
    guest: GuestDriver,
    epoch: Instant,
    frames: Vec<Vec<u8>>,
    next: u32,
    progress: Arc<Progress>,
    client: Option<JoinHandle<()>>,
    server: Option<Server>,
    /// CPU time of `process` on the guest thread.
    process_cpu: Duration,
    /// Wall time the guest waited for the worker's lock before writing a frame (held by a
    /// connection thread while it encodes).
    lock_wait: Duration,
}

impl Rig {
    fn new(compression: ImageCompression, streaming: StreamingVideo, frames: &[Vec<u8>]) -> Self {
        let cfg = ServerConfig::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .disable_ticketing()
            .image_compression(compression)
            .streaming_video(streaming)
            .build()
            .unwrap();
        let epoch = Instant::now();
        let (mut w, mut guest) = spice_server::testing::display_worker(
            64 << 20,
            DisplayConfig::from_server_config(&cfg),
        );
        let feed = CursorFeed::new();
        w.set_cursor_feed(feed.clone());
        spice_server::testing::create_primary(&mut w, &mut guest, W as u32, H as u32);
        let worker = Arc::new(Mutex::new(w));
        let server = ServerBuilder::new(cfg)
            .cursor(feed)
            .add_channel(Arc::new(DisplayChannelFactory::new(
                worker.clone(),
                0,
                epoch,
            )))
            .start()
            .unwrap();
        let addr = server.local_addrs()[0];
        let progress = Arc::new(Progress::default());
        let client = {
            let p = progress.clone();
            std::thread::Builder::new()
                .name("e2e-client".into())
                .spawn(move || client(addr, p))
                .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !progress.linked.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "client never linked");
            std::thread::sleep(Duration::from_millis(5));
        }
        Rig {
            worker,
            guest,
            epoch,
            frames: frames.to_vec(),
            next: 1,
            progress,
            client: Some(client),
            server: Some(server),
            process_cpu: Duration::ZERO,
            lock_wait: Duration::ZERO,
        }
    }

    fn drawn(&self) -> (Option<u32>, u64) {
        *self.progress.drawn.lock().unwrap()
    }

    /// Pushes frame `self.next` (waiting for ring or memory room as needed).
    fn push(&mut self) {
        let n = self.next;
        self.next += 1;
        let px = &mut self.frames[n as usize % VARIANTS];
        stamp(px, n);
        let full = Rect {
            top: 0,
            left: 0,
            bottom: H as i32,
            right: W as i32,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let asked = Instant::now();
            let mut w = self.worker.lock().unwrap();
            self.lock_wait += asked.elapsed();
            self.guest
                .collect_releases(w.device_mut().memory_mut())
                .unwrap();
            match self.guest.copy_bitmap(
                w.device_mut().memory_mut(),
                0,
                full,
                W as u32,
                H as u32,
                px,
                1 << 20,
            ) {
                Ok(_) => {
                    let t = thread_cpu();
                    w.process(millis_since(self.epoch, Instant::now()));
                    self.process_cpu += thread_cpu() - t;
                    return;
                }
                Err(
                    spice_qxl::guest::GuestError::RingFull
                    | spice_qxl::guest::GuestError::OutOfMemory(_),
                ) => {
                    drop(w);
                    assert!(Instant::now() < deadline, "guest starved of memory");
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("guest: {e}"),
            }
        }
    }

    /// Waits until the client drew frame `n` or later (false after `timeout`). Meanwhile
    /// the worker runs every 20 ms, as a device driver's timer would (video streams end
    /// on a timeout, and their last frame is then sent losslessly).
    fn wait_drawn(&mut self, n: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let d = self.progress.drawn.lock().unwrap();
                let left = deadline.saturating_duration_since(Instant::now());
                let (d, _) = self
                    .progress
                    .cond
                    .wait_timeout_while(d, left.min(Duration::from_millis(20)), |d| {
                        d.0.is_none_or(|v| v < n)
                    })
                    .unwrap();
                if d.0.is_some_and(|v| v >= n) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            let mut w = self.worker.lock().unwrap();
            let t = thread_cpu();
            w.process(millis_since(self.epoch, Instant::now()));
            self.process_cpu += thread_cpu() - t;
        }
    }

    /// Pushes `count` frames, at most `IN_FLIGHT` ahead of the client; returns the time
    /// until the last was drawn and adds to `t`.
    fn run(&mut self, count: u64, t: &mut Totals) -> Duration {
        let bytes0 = self.progress.bytes.load(Ordering::Relaxed);
        let drawn0 = self.drawn().1;
        let cpu0 = server_threads_cpu() + self.process_cpu;
        let (proc0, client0, guest0) = (self.process_cpu, client_threads_cpu(), thread_cpu());
        let wait0 = self.lock_wait;
        let start = Instant::now();
        for _ in 0..count {
            let n = self.next;
            if n > IN_FLIGHT {
                // A frame the server dropped (hidden before it was sent, or skipped by the
                // video rate control) never shows: a later one does, or the guest goes on
                // after a while as a real one would.
                self.wait_drawn(n - IN_FLIGHT, Duration::from_millis(100));
            }
            self.push();
        }
        let last = self.next - 1;
        if !self.wait_drawn(last, Duration::from_secs(10)) {
            eprintln!(
                "e2e: frame {last} never drawn (last drawn {:?})",
                self.drawn()
            );
        }
        let wall = start.elapsed();
        t.frames += count;
        t.drawn += self.drawn().1 - drawn0;
        t.wall += wall;
        t.bytes += self.progress.bytes.load(Ordering::Relaxed) - bytes0;
        t.server_cpu += server_threads_cpu() + self.process_cpu - cpu0;
        t.process_cpu += self.process_cpu - proc0;
        t.lock_wait += self.lock_wait - wait0;
        t.client_cpu += client_threads_cpu() - client0;
        t.guest_cpu += (thread_cpu() - guest0).saturating_sub(self.process_cpu - proc0);
        wall
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        if let Some(c) = self.client.take() {
            let _ = c.join();
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Criterion's name filter: the first argument that is neither an option nor an option's
/// value.
fn name_filter() -> String {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--profile-time",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--color",
        "--format",
        "--output-format",
        "--plotting-backend",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return a;
        }
    }
    String::new()
}

fn e2e(c: &mut Criterion) {
    let desk = images::desktop();
    let frames: Vec<Vec<u8>> = (0..VARIANTS)
        .map(|i| images::moving_window(&desk, i))
        .collect();
    let mut group = c.benchmark_group("e2e_1080p");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let modes = [
        ("auto_glz", ImageCompression::AutoGlz, StreamingVideo::Off),
        ("glz", ImageCompression::Glz, StreamingVideo::Off),
        ("lz", ImageCompression::Lz, StreamingVideo::Off),
        ("auto_lz", ImageCompression::AutoLz, StreamingVideo::Off),
        ("quic", ImageCompression::Quic, StreamingVideo::Off),
        ("lz4", ImageCompression::Lz4, StreamingVideo::Off),
        ("off", ImageCompression::Off, StreamingVideo::Off),
        ("mjpeg_all", ImageCompression::AutoGlz, StreamingVideo::All),
    ];
    // Criterion's name filter (the first free argument), applied before building a rig.
    let filter = name_filter();
    for (name, mode, streaming) in modes {
        let id = format!("e2e_1080p/{name}");
        // Alternatives of a regex filter (`a|b`) as plain substrings.
        if !filter.split('|').any(|f| id.contains(f)) {
            continue;
        }
        let mut rig = Rig::new(mode, streaming, &frames);
        // Warm up: the first frames fill the GLZ window and start streams.
        rig.run(10, &mut Totals::default());
        let mut t = Totals::default();
        group.bench_function(name, |b| b.iter_custom(|iters| rig.run(iters, &mut t)));
        // Per frame drawn by the client (frames the server dropped unsent are not counted).
        let f = t.drawn.max(1) as f64;
        let hidden = rig.worker.lock().unwrap().stats().hidden_dropped;
        eprintln!(
            "e2e_1080p/{name}: {:.1} frames/s drawn ({} pushed, {} drawn; {hidden} hidden \
             before sending, warm-up included), {:.0} wire bytes/frame, \
             server CPU {:.2} ms/frame ({:.2} cores), load average {}",
            t.drawn as f64 / t.wall.as_secs_f64(),
            t.frames,
            t.drawn,
            t.bytes as f64 / f,
            t.server_cpu.as_secs_f64() * 1000.0 / f,
            t.server_cpu.as_secs_f64() / t.wall.as_secs_f64(),
            load_average(),
        );
        // Load-independent view: CPU per drawn frame of each stage. On an idle machine the
        // pipeline runs at most as fast as its busiest thread allows, and all of it shares
        // the cores.
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / f;
        let (server, process, client, guest) = (
            ms(t.server_cpu),
            ms(t.process_cpu),
            ms(t.client_cpu),
            ms(t.guest_cpu),
        );
        let conn = server - process;
        let busiest = conn.max(process + guest).max(client);
        eprintln!(
            "e2e_1080p/{name}: CPU ms per drawn frame: server {server:.2} (device thread \
             {process:.2}, connection threads {conn:.2}), client {client:.2}, guest writing \
             bitmaps {guest:.2}; idle-machine bound {:.0} frames/s (busiest thread), {:.0} \
             frames/s (all on 2 cores); the guest waited {:.2} ms per frame for the worker's lock",
            1000.0 / busiest,
            2000.0 / (server + client + guest),
            ms(t.lock_wait),
        );
    }
    group.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
