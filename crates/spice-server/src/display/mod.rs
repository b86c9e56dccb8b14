//! The display pipeline: the display worker of one QXL device and the per-client display
//! channel.
//!
//! - [`encode`]: images out per the compression mode (spice-codecs), with fallbacks.
//! - [`cache`]: the mirrors of a client's pixmap and palette caches (server-driven LRU).
//! - [`glz`]: one GLZ dictionary per client, shared by its display channels.

pub mod cache;
pub mod channel;
pub mod client;
pub mod encode;
pub mod glz;
pub mod tree;
pub mod worker;

pub use client::{ClientId, ClientOptions, ClientStats, DisplayClientCaps};
pub use worker::{DisplayConfig, DisplayError, DisplaySink, DisplayWorker, WorkerStats};
