//! Test-only helpers that drive **real** SPICE peers.
//!
//! Everything here runs on `127.0.0.1` with ports picked free at run time; every process started
//! is killed when its handle is dropped and every temporary directory is removed.
//!
//! * [`qemu::Qemu`] / [`qemu::QemuBuilder`]: QEMU with the real spice-server, plus a QMP client
//!   ([`qmp::Qmp`]) for `stop`, `cont`, `screendump` and `send-key`.
//! * [`spicy::spicy_screenshot`]: spice-gtk's `spicy-screenshot` with a time limit.
//! * [`gtk_client::GtkScenario`]: a scripted client on spice-gtk's GObject library (Python):
//!   primary surface, key and mouse input, playback capture, agent state.
//! * [`remote_viewer::RemoteViewer`]: remote-viewer under its own Xvfb, with screenshots and
//!   a search for the expected guest picture in them.
//! * [`html5::html5_screenshot`]: spice-html5 in headless Chromium (playwright-core), reading
//!   the pixels of the surface canvas.
//! * [`tls::TestPki`]: a throw-away CA and server certificate in the x509-dir layout.
//! * [`ppm`]: P6 parsing and pixel-exact comparison with a readable diff.
//! * [`proxy::RecordingProxy`]: a TCP proxy that records both directions of every connection
//!   into a [`recording::Recording`], which can be saved to and loaded from a simple file format.
//!
//! # The "peer missing" rule
//!
//! A real-peer test never skips and never passes silently. Every helper that needs an external
//! program calls [`require_program`], which **panics** with the program's name, its Debian
//! package and the install command when it is missing.

pub mod analyse;
pub mod error;
pub mod gtk_client;
pub mod html5;
pub mod net;
pub mod ppm;
pub mod process;
pub mod proxy;
pub mod qemu;
pub mod qmp;
pub mod recording;
pub mod remote_viewer;
pub mod spicy;
pub mod tls;

pub use error::PeerError;
pub use process::{find_program, require_program};
