//! The demo desktop ([`crate::demo::DemoDesktop`]) as the display worker's device, and the
//! thread that animates it: each tick steps the demo to the frame due, hands the worker the
//! port requests the guest caused, lets the worker take the rings, and lets the demo push
//! what was waiting for room. With `--demo-frames N` the demo freezes; once everything is
//! drawn the worker's framebuffer can be written as a PPM (`--dump-frame`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spice_qxl::QxlInterface;
use spice_qxl::device::{ClientHead, DevInitInfo};
use spice_qxl::memory::{GuestMemory, MemoryError};
use spice_qxl::parse::{CommandError, CommandExt, ParsedCommand, Rect, ReleaseInfoExt};

use super::channel::{DisplayChannelFactory, SharedWorker, millis_since};
use super::worker::{DisplayConfig, DisplayDevice, DisplayWorker};
use crate::cursor::CursorFeed;
use crate::demo::{DemoConfig, DemoDesktop, DemoError};
use crate::session::lock;

impl QxlInterface for DemoDesktop {
    fn init_info(&self) -> DevInitInfo {
        self.device().init_info()
    }
    fn get_command(&mut self) -> Option<CommandExt> {
        self.device_mut().get_command()
    }
    fn req_cmd_notification(&mut self) -> bool {
        self.device_mut().req_cmd_notification()
    }
    fn release_resource(&mut self, release: ReleaseInfoExt) {
        self.device_mut().release_resource(release)
    }
    fn get_cursor_command(&mut self) -> Option<CommandExt> {
        self.device_mut().get_cursor_command()
    }
    fn req_cursor_notification(&mut self) -> bool {
        self.device_mut().req_cursor_notification()
    }
    fn notify_update(&mut self, update_id: u32) {
        self.device_mut().notify_update(update_id)
    }
    fn flush_resources(&mut self) -> u32 {
        self.device_mut().flush_resources()
    }
    fn async_complete(&mut self, cookie: u64) {
        self.device_mut().async_complete(cookie)
    }
    fn update_area_complete(&mut self, surface_id: u32, rects: &[Rect]) {
        self.device_mut().update_area_complete(surface_id, rects)
    }
    fn set_client_capabilities(&mut self, client_present: bool, caps: &[u8]) {
        self.device_mut()
            .set_client_capabilities(client_present, caps)
    }
    fn client_monitors_config(&mut self, heads: Option<&[ClientHead]>) -> bool {
        self.device_mut().client_monitors_config(heads)
    }
    fn parse_command(&self, ext: &CommandExt) -> Result<ParsedCommand, CommandError> {
        self.device().parse_command(ext)
    }
    fn set_mm_time(&mut self, mm_time: u32) {
        self.device_mut().set_mm_time(mm_time)
    }
}

impl DisplayDevice for DemoDesktop {
    fn write_guest(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.device_mut().memory_mut().write(offset, data)
    }

    fn oom_done(&mut self) {
        self.device_mut().oom_done();
    }
}

/// Tick period of the demo thread while frozen (stream timeouts, releases).
const IDLE_TICK: Duration = Duration::from_millis(50);

/// What the demo thread reports.
#[derive(Debug, Default)]
struct Status {
    /// Frozen, every command pushed, taken and rendered.
    settled: bool,
    /// The thread ended with this error.
    error: Option<String>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoStartError {
    /// The demo desktop refused its configuration.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// The thread could not be started.
    #[error("starting the demo thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running demo desktop with its display worker.
pub struct DemoRunner {
    worker: SharedWorker<DemoDesktop>,
    epoch: Instant,
    status: Arc<(Mutex<Status>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DemoRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoRunner").finish_non_exhaustive()
    }
}

impl DemoRunner {
    /// The demo desktop as `builder`'s display, as `spice-server --demo` serves it: the
    /// display worker configured from the builder's settings, its cursor ring feeding the
    /// cursor channel, one epoch for the display and the multimedia clock (lip-sync), and the
    /// demo guest's agent (clipboard, file transfer, monitors configs resizing the desktop)
    /// as the host's agent device. Replaces the builder's [`crate::host::Host`]; add other
    /// host devices (a playback device, ...) afterwards.
    pub fn attach(
        builder: crate::server::ServerBuilder,
        demo: DemoConfig,
    ) -> Result<(crate::server::ServerBuilder, Self), DemoStartError> {
        let epoch = Instant::now();
        let feed = CursorFeed::new();
        let display = DisplayConfig::from_server_config(builder.config());
        let runner = Self::start(demo, display, feed.clone(), epoch)?;
        let builder = builder
            .mm_epoch(epoch)
            .cursor(feed)
            .add_channel(runner.factory())
            .host(crate::demo_agent::demo_host_with_display(
                runner.worker().clone(),
                epoch,
            ));
        Ok((builder, runner))
    }

    /// Builds the demo and its worker (cursor ring → `cursor`) and starts animating it.
    /// `epoch` is the clock the display channel counts from (give the same to
    /// [`DemoRunner::factory`]'s users).
    pub fn start(
        demo: DemoConfig,
        display: DisplayConfig,
        cursor: Arc<CursorFeed>,
        epoch: Instant,
    ) -> Result<Self, DemoStartError> {
        let desktop = DemoDesktop::new(demo)?;
        let mut w = DisplayWorker::new(desktop, display);
        w.set_cursor_feed(cursor);
        let reqs = w.device_mut().take_io_requests();
        for r in reqs {
            w.handle_io(r, 0);
        }
        let worker = Arc::new(Mutex::new(w));
        let status = Arc::new((Mutex::new(Status::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (worker, status, stop) = (worker.clone(), status.clone(), stop.clone());
            std::thread::Builder::new()
                .name("spice-demo".into())
                .spawn(move || run(worker, status, stop, epoch))?
        };
        Ok(DemoRunner {
            worker,
            epoch,
            status,
            stop,
            thread: Some(thread),
        })
    }

    /// The worker (shared with the display channel).
    pub fn worker(&self) -> &SharedWorker<DemoDesktop> {
        &self.worker
    }

    /// The display channel (id 0) of this demo, to add to the server.
    pub fn factory(&self) -> Arc<DisplayChannelFactory<DemoDesktop>> {
        Arc::new(DisplayChannelFactory::new(
            self.worker.clone(),
            0,
            self.epoch,
        ))
    }

    /// Waits until the frozen demo is completely drawn (all commands taken and rendered),
    /// at most `timeout`. False on timeout or when the demo never freezes.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let (m, cv) = &*self.status;
        let deadline = Instant::now() + timeout;
        let mut st = lock(m);
        while !st.settled && st.error.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cv
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.settled
    }

    /// The server's framebuffer as a PPM.
    pub fn primary_ppm(&self) -> Option<Vec<u8>> {
        lock(&self.worker).primary_ppm()
    }

    /// Once settled, writes the framebuffer to `path` (`--dump-frame`).
    pub fn dump_frame(&self, path: &PathBuf, timeout: Duration) -> std::io::Result<()> {
        if !self.wait_settled(timeout) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the demo did not settle (is --demo-frames set?)",
            ));
        }
        let ppm = self
            .primary_ppm()
            .ok_or_else(|| std::io::Error::other("no primary surface"))?;
        std::fs::write(path, ppm)
    }

    /// Stops the demo thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DemoRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    worker: SharedWorker<DemoDesktop>,
    status: Arc<(Mutex<Status>, Condvar)>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) {
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let now_ms = millis_since(epoch, now);
        let (settled, interval, err) = {
            let mut w = lock(&worker);
            let frame = w.device().frame_at(now.duration_since(start));
            let mut err = w.device_mut().step(frame).err();
            let reqs = w.device_mut().take_io_requests();
            for r in reqs {
                w.handle_io(r, now_ms);
            }
            // Take, render, release; then let the demo push what waited for room.
            for _ in 0..64 {
                w.process(now_ms);
                match w.device_mut().pump() {
                    Ok(o) if o.pushed > 0 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            w.process(now_ms);
            let d = w.device();
            let settled = d.is_frozen() && d.is_idle();
            (settled, d.frame_interval(), err)
        };
        {
            let (m, cv) = &*status;
            let mut st = lock(m);
            st.settled = settled;
            if let Some(e) = err {
                tracing::error!(error = %e, "demo desktop failed");
                st.error = Some(e.to_string());
                cv.notify_all();
                return;
            }
            cv.notify_all();
        }
        std::thread::sleep(if settled { IDLE_TICK } else { interval });
    }
}
