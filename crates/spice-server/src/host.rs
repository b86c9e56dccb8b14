//! Host interfaces: what the server delivers input to and takes devices from, as traits
//! (libspice's `SpiceKbdInterface`, `SpiceMouseInterface`, `SpiceTabletInterface`,
//! `SpicePlaybackInterface`, `SpiceRecordInterface`, `SpiceCharDeviceInterface`).
//!
//! Methods take `&self`: several clients may deliver input at once, so implementations use
//! interior mutability. Calls for one client's inputs channel come in the order the client
//! sent them, from that connection's thread.
//!
//! The keyboard, mouse and tablet are used by the inputs channel ([`crate::inputs`]).
//! [`PlaybackDevice`] and [`RecordDevice`] are served by the playback and record channels
//! ([`crate::playback`], [`crate::record`]); an agent [`CharDevice`] is relayed by the main
//! channel ([`crate::agent`]); the other [`CharDevice`] kinds are declared for the
//! passthrough channels.

use std::sync::Arc;

use spice_proto::inputs::{KeyboardModifiers, MouseButtonMask};

use crate::channel::Waker;

/// A PS/2 keyboard (libspice `SpiceKbdInterface`).
pub trait Keyboard: Send + Sync {
    /// One set-1 scancode byte (make or break, `0xe0` prefixes included), in order.
    fn push_scancode(&self, byte: u8);
    /// The guest's lock-key LEDs (scroll, num, caps), sent in `INPUTS_INIT` and
    /// `KEY_MODIFIERS`. Call [`crate::server::Server::keyboard_leds_changed`] when they
    /// change.
    fn leds(&self) -> KeyboardModifiers;
}

/// A relative mouse (libspice `SpiceMouseInterface`), used in server mouse mode.
pub trait Mouse: Send + Sync {
    /// Relative motion `dx`, `dy`, wheel `dz` (negative: up), with the buttons held.
    fn motion(&self, dx: i32, dy: i32, dz: i32, buttons: MouseButtonMask);
    /// The buttons held changed.
    fn buttons(&self, buttons: MouseButtonMask);
}

/// An absolute pointing device (libspice `SpiceTabletInterface`), used in client mouse
/// mode. Its presence makes client mouse mode available.
pub trait Tablet: Send + Sync {
    /// The size positions are relative to (the primary surface).
    fn set_logical_size(&self, width: u32, height: u32);
    /// An absolute position on display `display_id`, with the buttons held.
    fn position(&self, x: u32, y: u32, buttons: MouseButtonMask, display_id: u8);
    /// Wheel motion (negative: up), with the buttons held.
    fn wheel(&self, dz: i32, buttons: MouseButtonMask);
    /// The buttons held changed.
    fn buttons(&self, buttons: MouseButtonMask);
}

/// PCM audio format of playback and record streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub frequency: u32,
    /// Interleaved channels (2 for stereo).
    pub channels: u8,
}

/// Audio played by the guest, sent to clients on the playback channel (libspice
/// `SpicePlaybackInterface`). The server serves one playback channel per device.
pub trait PlaybackDevice: Send + Sync {
    /// The format of the samples the device produces (S16, interleaved).
    fn format(&self) -> AudioFormat;
    /// Called once when the server starts: the device writes its PCM, start/stop,
    /// volume, mute and latency to `sink` from then on (from any thread).
    fn attach(&self, sink: crate::playback::PlaybackSink);
}

/// Audio captured by clients, delivered to the guest (libspice `SpiceRecordInterface`).
/// The server serves one record channel per device.
pub trait RecordDevice: Send + Sync {
    /// The format the device wants (S16, interleaved).
    fn format(&self) -> AudioFormat;
    /// Called once when the server starts: the device starts and stops capture on
    /// clients, and sets their capture volume and mute, through `control`.
    fn attach(&self, control: crate::record::RecordControl);
    /// Interleaved signed 16-bit samples from a client, in order (one frame per call).
    fn samples(&self, samples: &[i16]);
}

/// The kind of a character device, which decides the channel it is served on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CharDeviceKind {
    /// The guest agent (`vdagent`, main channel agent data).
    Agent,
    /// A USB redirection device (usbredir channel).
    UsbRedir,
    /// A smartcard reader (smartcard channel).
    Smartcard,
    /// A named port (port channel), e.g. `org.qemu.monitor.qmp.0`.
    Port {
        /// The port name.
        name: String,
    },
    /// The WebDAV port (`org.spice-space.webdav.0`).
    Webdav,
}

/// A byte-stream device between the guest and one client channel (libspice
/// `SpiceCharDeviceInterface`; declared for the agent / usbredir / smartcard / port issue).
pub trait CharDevice: Send + Sync {
    /// What the device is.
    fn kind(&self) -> CharDeviceKind;
    /// Writes client data to the guest; returns how many bytes were taken.
    fn write(&self, data: &[u8]) -> usize;
    /// Reads guest data into `buf`; returns how many bytes were read (0: none now).
    fn read(&self, buf: &mut [u8]) -> usize;
    /// A client opened (true) or closed (false) the device's channel.
    fn state(&self, connected: bool);

    /// Gives the device the waker of the channel serving it (`None` when the client
    /// leaves). The device calls [`Waker::wake`] when it has data to read, when it takes
    /// writes again after a short write, and when its port open state changes. Return true
    /// when the device will do so; the default returns false and the server then polls the
    /// device every few milliseconds instead.
    fn set_waker(&self, waker: Option<Waker>) -> bool {
        let _ = waker;
        false
    }

    /// For ports (and webdav): whether the guest side of the port is open, sent in
    /// `PORT_INIT` and, when it changes, as `PORT_EVENT` (libspice
    /// `spice_server_port_event`). Defaults to open.
    fn port_opened(&self) -> bool {
        true
    }

    /// For ports (and webdav): the client sent `PORT_EVENT` (0 opened, 1 closed, 2 break;
    /// libspice `SpiceCharDeviceInterface.event`). Defaults to ignoring it.
    fn port_event(&self, event: u8) {
        let _ = event;
    }

    /// True while the guest side is open (for the agent: an agent is running). Default true.
    fn guest_connected(&self) -> bool {
        true
    }
}

/// The host devices a server delivers to. Absent devices are `None`; the inputs channel
/// then drops that kind of input (logged), as libspice does without the interface.
#[derive(Clone, Default)]
pub struct Host {
    /// The keyboard.
    pub keyboard: Option<Arc<dyn Keyboard>>,
    /// The relative mouse.
    pub mouse: Option<Arc<dyn Mouse>>,
    /// The tablet (enables client mouse mode).
    pub tablet: Option<Arc<dyn Tablet>>,
    /// Playback devices (one playback channel each, ids in order).
    pub playback: Vec<Arc<dyn PlaybackDevice>>,
    /// Record devices (one record channel each, ids in order).
    pub record: Vec<Arc<dyn RecordDevice>>,
    /// Character devices (declared; not served yet).
    pub char_devices: Vec<Arc<dyn CharDevice>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("keyboard", &self.keyboard.is_some())
            .field("mouse", &self.mouse.is_some())
            .field("tablet", &self.tablet.is_some())
            .field("playback", &self.playback.len())
            .field("record", &self.record.len())
            .field("char_devices", &self.char_devices.len())
            .finish()
    }
}

impl Host {
    /// True when an agent character device is present.
    pub fn has_agent(&self) -> bool {
        self.char_devices
            .iter()
            .any(|d| d.kind() == CharDeviceKind::Agent)
    }
}
