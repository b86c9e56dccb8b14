//! The display pipeline: the display worker of one QXL device and the per-client display
//! channel.
//!
//! - [`encode`]: images out per the compression mode (spice-codecs), with fallbacks.
//! - [`cache`]: the mirrors of a client's pixmap and palette caches (server-driven LRU).
//! - [`glz`]: one GLZ dictionary per client, shared by its display channels.
//! - [`tree`]: the per-surface list of pending drawables (hidden ones dropped).
//! - [`worker`]: [`DisplayWorker`], the display worker of one QXL device.
//! - `framebuffer` (private): the worker's own rendering, kept lazily (rendered when read).
//! - [`client`]: one client's queue, encoder, caches and streams inside the worker.
//! - [`channel`]: the display channel as a plug-in of the channel layer
//!   ([`channel::DisplayChannelFactory`]).
//!
//! Wiring (see `tests/display_server.rs`):
//!
//! ```text
//! let worker = Arc::new(Mutex::new(DisplayWorker::new(qxl_device, DisplayConfig::from_server_config(&cfg))));
//! worker.lock().set_cursor_feed(cursor_feed.clone());
//! ServerBuilder::new(cfg).add_channel(Arc::new(DisplayChannelFactory::new(worker.clone(), 0, epoch)))
//! // the device's driver: after the guest pushed commands (or every ~20 ms for stream
//! // timeouts): worker.lock().process(millis_since(epoch, Instant::now()));
//! // port writes: worker.lock().handle_io(request, now_ms);
//! ```

pub mod cache;
pub mod channel;
pub mod client;
pub mod demo;
pub mod encode;
mod framebuffer;
pub mod fuzz;
pub mod glz;
pub mod tree;
pub mod worker;

pub use channel::{DisplayChannelFactory, SharedWorker, millis_since};
pub use client::{ClientId, ClientOptions, ClientStats, DisplayClientCaps, DrawJob};
pub use worker::{
    DisplayConfig, DisplayDevice, DisplayError, DisplaySink, DisplayWorker, WorkerStats,
};
