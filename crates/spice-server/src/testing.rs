//! Building blocks for tests and benches of this server and of what embeds it: the demo
//! desktop on a local port, a display worker over a QXL device in plain memory and its
//! clients, a channel opened without a socket, and playback and record devices that keep
//! what the channels give them.
//!
//! These panic on failure (they set up a test, not production state).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use spice_codecs::classify::ImageCompression;

use spice_proto::caps::Caps;
use spice_proto::header::HeaderKind;
use spice_qxl::{BarLayout, DeviceConfig, GuestDriver, QxlDevice, VecMemory};

use crate::channel::{
    ChannelCore, ChannelFactory, ChannelHandler, ChannelInfo, CoreConfig, OpenContext, Waker,
};
use crate::config::{ServerConfig, StreamingVideo};
use crate::demo::DemoConfig;
use crate::display::client::{ClientId, ClientOptions, DisplayClientCaps};
use crate::display::demo::DemoRunner;
use crate::display::glz::GlzRegistry;
use crate::display::worker::{DisplayConfig, DisplayDevice, DisplayWorker};
use crate::host::{AudioFormat, PlaybackDevice, RecordDevice};
use crate::playback::PlaybackSink;
use crate::record::RecordControl;
use crate::server::{Server, ServerBuilder};
use crate::session::{Session, lock};

/// A display worker over a QXL device whose guest memory is a `ram_bytes` RAM bar (and
/// a 1 MiB VRAM bar) in a `Vec`, with the guest driver attached in slot 1. The primary
/// surface is not created yet (see [`create_primary`]), so the caller can set a cursor
/// feed first.
pub fn display_worker(
    ram_bytes: u64,
    config: DisplayConfig,
) -> (DisplayWorker<QxlDevice<VecMemory>>, GuestDriver) {
    let bars = BarLayout::contiguous(ram_bytes, 1 << 20);
    let mut dev = QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .expect("QXL device");
    let guest = GuestDriver::attach(&mut dev, 1).expect("guest driver");
    (DisplayWorker::new(dev, config), guest)
}

/// The guest creates a `width` x `height` primary surface and the worker handles it (at
/// time 0).
pub fn create_primary(
    worker: &mut DisplayWorker<QxlDevice<VecMemory>>,
    guest: &mut GuestDriver,
    width: u32,
    height: u32,
) {
    let req = guest
        .create_primary(worker.device_mut(), width, height)
        .expect("create primary");
    worker.handle_io(req, 0);
}

/// The demo desktop served on a free port of 127.0.0.1 without a ticket, in image
/// compression `mode` with video streaming off; the desktop stops changing after 3 frames
/// so a client's picture settles. Returns the server, its address and the demo.
pub fn demo_server(mode: ImageCompression) -> (Server, SocketAddr, DemoRunner) {
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().expect("address"))
        .disable_ticketing()
        .image_compression(mode)
        .streaming_video(StreamingVideo::Off)
        .build()
        .expect("server config");
    let demo = DemoConfig {
        freeze_after: Some(3),
        ..DemoConfig::default()
    };
    let (builder, demo) = DemoRunner::attach(ServerBuilder::new(cfg), demo).expect("demo");
    let server = builder.start().expect("server starts");
    let addr = server.local_addrs()[0];
    (server, addr, demo)
}

/// Adds a display client with spice-gtk's caps in session `session_id` (sharing `glz`'s
/// dictionaries) and sends its DISPLAY_INIT at `now_ms`: a 1 MiB pixmap cache and GLZ
/// window.
pub fn add_client<D: DisplayDevice>(
    worker: &mut DisplayWorker<D>,
    session_id: u32,
    glz: Arc<GlzRegistry>,
    now_ms: u64,
) -> ClientId {
    let id = worker.add_client(ClientOptions {
        session_id,
        caps: DisplayClientCaps::spice_gtk(),
        glz,
        waker: None,
        bit_rate: None,
    });
    let init = spice_proto::display::ClientMessage::Init(spice_proto::display::Init {
        pixmap_cache_id: 1,
        pixmap_cache_size: 1 << 20,
        glz_dictionary_id: 1,
        glz_dictionary_window_size: 1 << 20,
    });
    worker
        .client_message(id, &init, now_ms)
        .expect("DISPLAY_INIT");
    id
}

/// Opens `factory`'s channel in `session` at `now` as if a client with channel caps
/// `caps` had linked it (mini header, no ping, no ACK window), and starts it: the core's
/// output holds what the channel sends on connect.
pub fn open_channel(
    server: &Server,
    factory: &dyn ChannelFactory,
    session: &Arc<Session>,
    caps: Caps,
    now: Instant,
) -> (ChannelCore, Box<dyn ChannelHandler>) {
    let info = ChannelInfo {
        channel_type: factory.channel_type(),
        channel_id: factory.channel_id(),
        session_id: session.id(),
        header: HeaderKind::Mini,
        peer_common_caps: Caps::new(),
        peer_channel_caps: caps,
        secure: false,
        websocket: false,
    };
    let mut handler = factory
        .open(OpenContext {
            info: &info,
            session,
            waker: Waker::noop(),
            server: server.context(),
        })
        .expect("channel opens");
    let cfg = CoreConfig {
        ping_interval: None,
        ack_window: 0,
        ..CoreConfig::default()
    };
    let mut core = ChannelCore::new(info, &cfg, now);
    core.start(&mut *handler, now).expect("channel starts");
    (core, handler)
}

/// A 48 kHz stereo [`PlaybackDevice`] that keeps the sink the playback channel attaches.
#[derive(Default)]
pub struct TestPlayback(Mutex<Option<PlaybackSink>>);

impl TestPlayback {
    /// The sink attached last, if any.
    pub fn sink(&self) -> Option<PlaybackSink> {
        lock(&self.0).clone()
    }
}

impl PlaybackDevice for TestPlayback {
    fn format(&self) -> AudioFormat {
        AudioFormat {
            frequency: 48_000,
            channels: 2,
        }
    }
    fn attach(&self, sink: PlaybackSink) {
        *lock(&self.0) = Some(sink);
    }
}

/// A 48 kHz stereo [`RecordDevice`] that keeps the control the record channel attaches
/// and every sample it delivers.
#[derive(Default)]
pub struct TestRecord {
    control: Mutex<Option<RecordControl>>,
    got: Mutex<Vec<i16>>,
}

impl TestRecord {
    /// The control attached last, if any.
    pub fn control(&self) -> Option<RecordControl> {
        lock(&self.control).clone()
    }

    /// The samples delivered so far (interleaved stereo).
    pub fn samples(&self) -> Vec<i16> {
        lock(&self.got).clone()
    }

    /// How many samples have been delivered so far.
    pub fn sample_count(&self) -> usize {
        lock(&self.got).len()
    }
}

impl RecordDevice for TestRecord {
    fn format(&self) -> AudioFormat {
        AudioFormat {
            frequency: 48_000,
            channels: 2,
        }
    }
    fn attach(&self, control: RecordControl) {
        *lock(&self.control) = Some(control);
    }
    fn samples(&self, samples: &[i16]) {
        lock(&self.got).extend_from_slice(samples);
    }
}
