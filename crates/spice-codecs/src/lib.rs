//! SPICE image and video codecs, in safe Rust.
//!
//! - [`quic`]: QUIC (lossless, context-modelled Golomb coding), all five image types.
//! - [`lz`]: LZ (spice-common lz.c), every image type.
//! - [`glz`]: GLZ with a global dictionary shared by encoders, and the client's window.
//! - [`zlib_glz`]: ZLIB_GLZ_RGB (GLZ wrapped in zlib).
//! - [`lz4`]: the LZ4 image framing.
//! - [`jpeg`]: JPEG images; [`jpeg_alpha`]: JPEG_ALPHA (JPEG colour + LZ XXXA alpha).
//! - [`mjpeg`]: MJPEG video streams with rate control.
//! - [`stream_detect`]: the server's video-region detector.
//! - [`audio`]: playback / record audio: raw S16LE and Opus (48 kHz, 480-sample frames).
//! - [`classify`]: the image graduality classifier behind auto_glz / auto_lz.

pub mod audio;
pub mod classify;
pub mod glz;
pub mod jpeg;
pub mod jpeg_alpha;
pub mod lz;
pub mod lz4;
pub mod mjpeg;
pub mod quic;
pub mod stream_detect;
pub mod vmc_lz4;
pub mod zlib_glz;
