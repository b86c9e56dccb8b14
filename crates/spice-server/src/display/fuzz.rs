//! Entry point of the `display_worker` fuzz target (and of its corpus replay test): the
//! display worker over a device whose RAM a hostile guest wrote (the layout of spice-qxl's
//! `qxl_commands` target, so its corpus seeds this one), with one client that decodes and
//! renders everything the channel sends.

use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_codecs::classify::{ImageCompression, WanCompression};
use spice_codecs::stream_detect::StreamingVideo;
use spice_proto::display::{ClientMessage, Init, ServerMessage};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};
use spice_qxl::abi::memslot_group;
use spice_qxl::fuzz::{FUZZ_RAM_SIZE, FUZZ_SLOT, fuzz_bars};
use spice_qxl::memory::{GuestMemory, MemSlot, VecMemory};
use spice_qxl::parse::ParseLimits;
use spice_qxl::{DeviceConfig, IoRequest, PrimarySurface, QxlDevice};

use super::client::{ClientOptions, DisplayClientCaps};
use super::glz::GlzRegistry;
use super::worker::{DisplayConfig, DisplayError, DisplaySink, DisplayWorker, WorkerStats};

/// A sink that marshals each message, decodes it back and renders it on a client canvas.
struct RenderSink {
    canvas: Canvas,
    buf: Vec<u8>,
    messages: usize,
}

impl DisplaySink for RenderSink {
    fn can_send(&self) -> bool {
        self.messages < 4096
    }

    fn send(&mut self, msg: &ServerMessage<'_>) -> Result<(), DisplayError> {
        self.messages += 1;
        self.buf.clear();
        msg.encode_body(&mut WriteBuf::new(&mut self.buf))
            .map_err(|e| DisplayError::Send(e.to_string()))?;
        // What the server sends must decode (a failure is a bug of the server side).
        let back = ServerMessage::decode_body(ChannelType::DISPLAY, msg.msg_type(), &self.buf)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", msg.name()));
        let _ = self.canvas.apply(&back);
        Ok(())
    }
}

/// Runs the worker over `data` as the guest's RAM (see the module docs). Never panics on any
/// input; panics only on a bug of the display pipeline: a message that does not decode, or a
/// guest resource not released exactly once. Returns what the worker did.
pub fn fuzz_worker(data: &[u8]) -> WorkerStats {
    let bars = fuzz_bars();
    let mut cfg = DeviceConfig::new(bars);
    cfg.limits = ParseLimits {
        max_chunks: 64,
        max_command_bytes: 256 * 1024,
    };
    let Ok(mut dev) = QxlDevice::new(VecMemory::new(bars.total_size() as usize), cfg) else {
        return WorkerStats::default();
    };
    let slots = [
        (FUZZ_SLOT, bars.ram_offset, bars.ram_size),
        (FUZZ_SLOT + 1, bars.vram_offset, bars.vram_size),
    ];
    for (id, start, size) in slots {
        let slot = MemSlot {
            generation: 0,
            virt_start: start,
            virt_end: start + size,
            addr_delta: start,
        };
        if dev.slots_mut().add(memslot_group::GUEST, id, slot).is_err() {
            return WorkerStats::default();
        }
    }
    let modes = [
        ImageCompression::Off,
        ImageCompression::AutoGlz,
        ImageCompression::AutoLz,
        ImageCompression::Quic,
        ImageCompression::Glz,
        ImageCompression::Lz,
        ImageCompression::Lz4,
    ];
    let compression = modes[data.len() % modes.len()];
    let mut w = DisplayWorker::new(
        dev,
        DisplayConfig {
            compression,
            jpeg_wan: WanCompression::Never,
            zlib_glz_wan: WanCompression::Always,
            streaming: StreamingVideo::All,
            max_pipe_bytes: 64 << 10,
            max_pipe_items: 64,
            max_surface_pixels: 1 << 16,
            max_commands_per_process: 64,
        },
    );
    // A 32x32 primary in the VRAM BAR.
    w.handle_io(
        IoRequest::CreatePrimary {
            surface: PrimarySurface {
                width: 32,
                height: 32,
                stride: 128,
                format: 32,
                position: 0,
                mouse_mode: 0,
                flags: 0,
                surface_type: 0,
                mem: 0,
                mem_offset: bars.vram_offset,
                group_id: memslot_group::GUEST,
            },
            cookie: None,
        },
        0,
    );
    let client = w.add_client(ClientOptions {
        session_id: 1,
        caps: DisplayClientCaps::spice_gtk(),
        glz: std::sync::Arc::new(GlzRegistry::new()),
        waker: None,
        bit_rate: None,
    });
    let init = ClientMessage::Init(Init {
        pixmap_cache_id: 1,
        pixmap_cache_size: 4096,
        glz_dictionary_id: 1,
        glz_dictionary_window_size: 1 << 16,
    });
    if w.client_message(client, &init, 0).is_err() {
        return w.stats();
    }
    let mut sink = RenderSink {
        canvas: Canvas::new(
            1 << 16,
            ImageLimits {
                max_image_pixels: 1 << 16,
                cache_pixels: 4096,
            },
            new_glz_window(1 << 16),
        ),
        buf: Vec::new(),
        messages: 0,
    };
    let n = data.len().min(FUZZ_RAM_SIZE as usize);
    if w.device_mut()
        .memory_mut()
        .write(bars.ram_offset, &data[..n])
        .is_err()
    {
        return w.stats();
    }
    for now in [0, 40, 2000] {
        w.process(now);
        let _ = w.client_poll(client, &mut sink, now);
    }
    w.remove_client(client);
    w.shutdown();
    assert_eq!(
        w.outstanding_resources(),
        0,
        "every guest resource taken must be released"
    );
    w.stats()
}
