//! The QXL device: ROM, RAM header, rings, memory slots, I/O ports and interrupts, and the
//! server-facing interface (`QXLInterface` of spice-server's `spice-qxl.h`) as the
//! [`QxlInterface`] trait.
//!
//! The device is sans-IO: the VMM forwards the guest's port writes to [`QxlDevice::io_write`],
//! which returns an [`IoRequest`] saying what the SPICE server must now do (wake up, create the
//! primary surface, update an area, ...); the server pulls commands through [`QxlInterface`],
//! and the VMM raises the guest's interrupt line when [`QxlDevice::irq_level`] says so.
//!
//! Everything the guest wrote is read through [`GuestMemory`] with checks; a guest that breaks
//! the protocol (a corrupt ring, a bad slot, an async I/O while one is pending) puts the device
//! in the "guest bug" state, which raises `QXL_INTERRUPT_ERROR` and stops command processing
//! until the guest resets the device, as QEMU's device does.

use std::collections::VecDeque;

use thiserror::Error;
use zerocopy::{FromZeros, IntoBytes};

use crate::abi::{self, QxlPhysical, interrupt, io, memslot_group, ram_offsets};
use crate::memory::{
    GuestMemory, MemSlot, MemSlotTable, MemoryError, SlotError, SlotLayout, read_struct, read_u32,
    read_u64, write_u32, write_u64,
};
use crate::parse::{
    self, CommandError, CommandExt, MonitorsConfig, ParseError, ParseLimits, ParsedCommand, Rect,
    ReleaseInfoExt,
};
use crate::ring::{RingError, RingLayout};

/// Releases collected before the chain is pushed to the release ring (QEMU's bunch size).
pub const RELEASE_BUNCH_SIZE: u32 = 32;
/// Most monitor heads accepted from a guest monitors config.
pub const MAX_MONITOR_HEADS: u16 = 64;

/// Where the device's BARs live in the host memory and at which guest physical addresses the
/// guest sees the RAM and VRAM BARs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarLayout {
    /// Host offset of the ROM BAR.
    pub rom_offset: u64,
    /// Size of the ROM BAR.
    pub rom_size: u64,
    /// Host offset of the RAM BAR (VGA framebuffer, then guest RAM, then the RAM header).
    pub ram_offset: u64,
    /// Size of the RAM BAR.
    pub ram_size: u64,
    /// Host offset of the VRAM BAR (surfaces).
    pub vram_offset: u64,
    /// Size of the VRAM BAR.
    pub vram_size: u64,
    /// Guest physical address of the RAM BAR.
    pub ram_guest_phys: u64,
    /// Guest physical address of the VRAM BAR.
    pub vram_guest_phys: u64,
}

impl BarLayout {
    /// A compact layout in one memory: ROM (8 KiB) at 0, RAM after it, VRAM after that; the
    /// guest sees RAM at 0x8000_0000 and VRAM at 0x9000_0000 (for tests and the demo host).
    pub fn contiguous(ram_size: u64, vram_size: u64) -> Self {
        let rom_size = 8192;
        BarLayout {
            rom_offset: 0,
            rom_size,
            ram_offset: rom_size,
            ram_size,
            vram_offset: rom_size + ram_size,
            vram_size,
            ram_guest_phys: 0x8000_0000,
            vram_guest_phys: 0x9000_0000,
        }
    }

    /// Bytes of host memory the layout needs.
    pub fn total_size(&self) -> u64 {
        [
            self.rom_offset + self.rom_size,
            self.ram_offset + self.ram_size,
            self.vram_offset + self.vram_size,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Offset of the RAM header inside the RAM BAR (at its end, page aligned, as QEMU puts it).
    pub fn ram_header_offset(&self) -> u64 {
        let hdr = (size_of::<abi::QxlRam>() as u64).div_ceil(4096) * 4096;
        self.ram_size.saturating_sub(hdr)
    }
}

/// Device configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// BAR placement.
    pub bars: BarLayout,
    /// Memory slot layout announced in the ROM.
    pub slots: SlotLayout,
    /// Number of surfaces announced in the ROM.
    pub n_surfaces: u32,
    /// Display modes announced in the ROM, `(width, height)` at 32 bpp; modes whose framebuffer
    /// does not fit the VRAM are left out.
    pub modes: Vec<(u32, u32)>,
    /// Caps on what one command may make the device copy.
    pub limits: ParseLimits,
    /// Device id written to the ROM.
    pub id: u32,
}

impl DeviceConfig {
    /// A configuration with QEMU's defaults for the given BARs.
    pub fn new(bars: BarLayout) -> Self {
        DeviceConfig {
            bars,
            slots: SlotLayout::QEMU,
            n_surfaces: 1024,
            modes: vec![
                (640, 480),
                (800, 600),
                (1024, 768),
                (1280, 720),
                (1280, 1024),
                (1920, 1080),
            ],
            limits: ParseLimits::default(),
            id: 0,
        }
    }
}

/// The device's mode (QEMU's `qxl_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceMode {
    /// After reset: no primary surface.
    Undefined,
    /// Legacy VGA: the host renders the framebuffer and queues its own commands.
    Vga,
    /// qxl-1: a mode set through `QXL_IO_SET_MODE`; commands use the compat layouts.
    Compat,
    /// qxl-2+: a primary surface created through `QXL_IO_CREATE_PRIMARY`.
    Native,
}

/// The primary surface the server must create (`QXLDevSurfaceCreate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimarySurface {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Stride (negative: bottom-up).
    pub stride: i32,
    /// [`abi::surface_fmt`].
    pub format: u32,
    /// Position.
    pub position: u32,
    /// Mouse mode.
    pub mouse_mode: u32,
    /// Flags.
    pub flags: u32,
    /// Type.
    pub surface_type: u32,
    /// QXL address of the pixels.
    pub mem: QxlPhysical,
    /// Host offset of the pixels (validated for `height * |stride|` bytes).
    pub mem_offset: u64,
    /// Memory slot group.
    pub group_id: u32,
}

/// What the server must do after a port write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoRequest {
    /// Nothing more.
    None,
    /// New commands: `spice_qxl_wakeup`.
    Wakeup,
    /// Render an area now (`spice_qxl_update_area`, or its async form with `cookie`).
    UpdateArea {
        /// Surface.
        surface_id: u32,
        /// Area.
        area: Rect,
        /// Async cookie.
        cookie: Option<u64>,
    },
    /// The guest is out of memory: `spice_qxl_oom` (then call [`QxlDevice::oom_done`]).
    Oom,
    /// The device was reset: destroy surfaces, reset memslots, image cache and cursor.
    Reset,
    /// Create the primary surface.
    CreatePrimary {
        /// The surface.
        surface: PrimarySurface,
        /// Async cookie.
        cookie: Option<u64>,
    },
    /// Destroy the primary surface.
    DestroyPrimary {
        /// Async cookie.
        cookie: Option<u64>,
    },
    /// Destroy a surface.
    DestroySurface {
        /// Surface.
        surface_id: u32,
        /// Async cookie.
        cookie: Option<u64>,
    },
    /// Destroy every surface.
    DestroyAllSurfaces {
        /// Async cookie.
        cookie: Option<u64>,
    },
    /// Render every pending command (`spice_qxl_flush_surfaces_async`).
    FlushSurfaces {
        /// Async cookie.
        cookie: u64,
    },
    /// The guest's monitors config changed.
    MonitorsConfig {
        /// The config.
        config: MonitorsConfig,
        /// Async cookie.
        cookie: u64,
    },
    /// A log line from the guest.
    Log(Vec<u8>),
}

/// A port write the device refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No such port.
    #[error("unknown QXL I/O port {0}")]
    UnknownPort(u32),
    /// An async I/O while another is pending.
    #[error("async I/O {port} while another is pending")]
    AsyncPending {
        /// Port.
        port: u32,
    },
    /// The device is in the guest-bug state until reset.
    #[error("device stopped after a guest bug; reset required")]
    GuestBug,
    /// A memory slot registration was refused.
    #[error("memory slot: {0}")]
    Slot(#[from] SlotError),
    /// A memory slot range outside the RAM and VRAM BARs.
    #[error("memory slot {start:#x}..{end:#x} is outside the device BARs")]
    SlotOutsideBars {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// A primary surface that is invalid or outside its slot.
    #[error("primary surface: {0}")]
    Surface(ParseError),
    /// A mode id not in the ROM's list.
    #[error("unknown mode {0}")]
    UnknownMode(u32),
    /// A monitors config that could not be read.
    #[error("monitors config: {0}")]
    MonitorsConfig(ParseError),
    /// A ring is corrupt.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// Memory access failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// What the server learns at attach time (`QXLDevInitInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevInitInfo {
    /// Slot layout (groups, slots, bits).
    pub slots: SlotLayout,
    /// Size of the RAM BAR.
    pub qxl_ram_size: u64,
    /// Group the device uses for its own (VGA) commands.
    pub internal_groupslot_id: u32,
    /// Number of surfaces.
    pub n_surfaces: u32,
}

/// One monitor of the client's config, written to the ROM for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHead {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The device as the SPICE server sees it: spice-server's `QXLInterface`, plus access to the
/// command structures in guest memory.
pub trait QxlInterface {
    /// What the server needs to set up its memslots and surfaces.
    fn init_info(&self) -> DevInitInfo;
    /// The next display command, if any (non-blocking).
    fn get_command(&mut self) -> Option<CommandExt>;
    /// Ask to be woken when a command arrives; false if commands are already there.
    fn req_cmd_notification(&mut self) -> bool;
    /// The server is done with a command: give its resource back to the guest.
    fn release_resource(&mut self, release: ReleaseInfoExt);
    /// The next cursor command, if any.
    fn get_cursor_command(&mut self) -> Option<CommandExt>;
    /// Ask to be woken when a cursor command arrives; false if some are already there.
    fn req_cursor_notification(&mut self) -> bool;
    /// An update command's area has been rendered (qxl-1 guests wait for this).
    fn notify_update(&mut self, update_id: u32);
    /// Push pending releases to the guest now; returns how many were pushed.
    fn flush_resources(&mut self) -> u32;
    /// An async I/O finished.
    fn async_complete(&mut self, cookie: u64);
    /// An update-area finished; `rects` were rendered.
    fn update_area_complete(&mut self, surface_id: u32, rects: &[Rect]);
    /// A client connected (with its capabilities) or left.
    fn set_client_capabilities(&mut self, client_present: bool, caps: &[u8]);
    /// The client's monitors; returns false if the guest cannot take them. `None` only asks
    /// whether the interface is supported.
    fn client_monitors_config(&mut self, heads: Option<&[ClientHead]>) -> bool;
    /// Read and validate the command `ext` points at.
    fn parse_command(&self, ext: &CommandExt) -> Result<ParsedCommand, CommandError>;
    /// The server's multimedia time (ms), which guests copy into their drawables' `mm_time`
    /// (spice-server stamps stream frames with it). The default does nothing.
    fn set_mm_time(&mut self, mm_time: u32) {
        let _ = mm_time;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingAsync {
    cookie: u64,
    port: u32,
}

/// The QXL device model over a host memory `M`.
#[derive(Debug)]
pub struct QxlDevice<M: GuestMemory> {
    mem: M,
    cfg: DeviceConfig,
    slots: MemSlotTable,
    mode: DeviceMode,
    ram_header: u64,
    cmd_ring: RingLayout,
    cursor_ring: RingLayout,
    release_ring: RingLayout,
    last_release: Option<u64>,
    num_free_res: u32,
    oom_running: bool,
    guest_bug: bool,
    pending_async: Option<PendingAsync>,
    next_cookie: u64,
    primary: Option<PrimarySurface>,
    host_cmds: VecDeque<CommandExt>,
    host_cursor_cmds: VecDeque<CommandExt>,
    cmd_flags: u32,
    rom_modes: Vec<abi::QxlMode>,
}

fn crc32_qxl(data: &[u8]) -> u32 {
    // Reflected CRC-32 (polynomial 0xedb88320), register starting at 0, no final inversion:
    // what QEMU stores and the guest drivers check for the client monitors config.
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

impl<M: GuestMemory> QxlDevice<M> {
    /// A device over `mem`: writes the ROM (with the mode list) and a fresh RAM header.
    pub fn new(mem: M, cfg: DeviceConfig) -> Result<Self, DeviceError> {
        let slots = MemSlotTable::new(cfg.slots)?;
        let b = cfg.bars;
        if mem.size() < b.total_size() {
            return Err(MemoryError::OutOfRange {
                offset: 0,
                len: b.total_size(),
                size: mem.size(),
            }
            .into());
        }
        let ram_header = b.ram_offset + b.ram_header_offset();
        let ring = |off: u64, n: u32, size: u64| RingLayout {
            offset: ram_header + off,
            num_items: n,
            item_size: size,
        };
        let mut dev = QxlDevice {
            mem,
            slots,
            mode: DeviceMode::Undefined,
            ram_header,
            cmd_ring: ring(ram_offsets::CMD_RING, abi::QXL_COMMAND_RING_SIZE, 16),
            cursor_ring: ring(ram_offsets::CURSOR_RING, abi::QXL_CURSOR_RING_SIZE, 16),
            release_ring: ring(ram_offsets::RELEASE_RING, abi::QXL_RELEASE_RING_SIZE, 8),
            last_release: None,
            num_free_res: 0,
            oom_running: false,
            guest_bug: false,
            pending_async: None,
            next_cookie: 1,
            primary: None,
            host_cmds: VecDeque::new(),
            host_cursor_cmds: VecDeque::new(),
            cmd_flags: 0,
            rom_modes: Vec::new(),
            cfg,
        };
        dev.init_rom()?;
        dev.init_ram()?;
        Ok(dev)
    }

    fn init_rom(&mut self) -> Result<(), DeviceError> {
        let b = self.cfg.bars;
        let mut rom = abi::QxlRom::new_zeroed();
        rom.magic = abi::QXL_ROM_MAGIC.into();
        rom.id = self.cfg.id.into();
        rom.log_level = 0.into();
        rom.compression_level = 2.into();
        rom.modes_offset = (size_of::<abi::QxlRom>() as u32).into();
        rom.num_pages = ((b.ram_header_offset() / 4096) as u32).into();
        rom.surface0_area_size = (b.ram_header_offset() as u32).into();
        rom.ram_header_offset = (b.ram_header_offset() as u32).into();
        rom.n_surfaces = self.cfg.n_surfaces.into();
        rom.slots_start = 0;
        rom.slots_end = (self.cfg.slots.num_slots - 1) as u8;
        rom.slot_gen_bits = self.cfg.slots.gen_bits;
        rom.slot_id_bits = self.cfg.slots.id_bits;
        rom.slot_generation = 0;
        let max_modes = (b
            .rom_size
            .saturating_sub(size_of::<abi::QxlRom>() as u64 + 4)
            / 32) as usize;
        self.rom_modes = self
            .cfg
            .modes
            .iter()
            .filter(|(w, h)| u64::from(*w) * u64::from(*h) * 4 <= b.vram_size)
            .take(max_modes)
            .enumerate()
            .map(|(i, &(w, h))| abi::QxlMode {
                id: (i as u32).into(),
                x_res: w.into(),
                y_res: h.into(),
                bits: 32.into(),
                stride: (w * 4).into(),
                x_mili: (w * 2937 / 10000).into(),
                y_mili: (h * 2937 / 10000).into(),
                orientation: 0.into(),
            })
            .collect();
        let rom_bytes = rom.as_bytes().len() as u64;
        if b.rom_size < rom_bytes + 4 {
            return Err(MemoryError::OutOfRange {
                offset: b.rom_offset,
                len: rom_bytes + 4,
                size: b.rom_size,
            }
            .into());
        }
        self.mem.write(b.rom_offset, rom.as_bytes())?;
        write_u32(
            &mut self.mem,
            b.rom_offset + rom_bytes,
            self.rom_modes.len() as u32,
        )?;
        for (i, m) in self.rom_modes.iter().enumerate() {
            self.mem
                .write(b.rom_offset + rom_bytes + 4 + 32 * i as u64, m.as_bytes())?;
        }
        Ok(())
    }

    fn init_ram(&mut self) -> Result<(), DeviceError> {
        let zero = abi::QxlRam::new_zeroed();
        self.mem.write(self.ram_header, zero.as_bytes())?;
        write_u32(&mut self.mem, self.ram_header, abi::QXL_RAM_MAGIC)?;
        self.cmd_ring.init(&mut self.mem)?;
        self.cursor_ring.init(&mut self.mem)?;
        self.release_ring.init(&mut self.mem)?;
        // The release ring's producer slot starts empty (the chain being built).
        write_u64(&mut self.mem, self.release_ring.slot_offset(0), 0)?;
        self.last_release = None;
        self.num_free_res = 0;
        Ok(())
    }

    /// The host memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The host memory, mutably (the guest side writes through this in tests and the demo).
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// The memory slots.
    pub fn slots(&self) -> &MemSlotTable {
        &self.slots
    }

    /// The memory slots, mutably (a VMM registering slots directly, as spice_qxl_add_memslot).
    pub fn slots_mut(&mut self) -> &mut MemSlotTable {
        &mut self.slots
    }

    /// The current mode.
    pub fn mode(&self) -> DeviceMode {
        self.mode
    }

    /// The current primary surface.
    pub fn primary(&self) -> Option<&PrimarySurface> {
        self.primary.as_ref()
    }

    /// Whether the device stopped on a guest bug.
    pub fn guest_bug(&self) -> bool {
        self.guest_bug
    }

    /// Host offset of the RAM header.
    pub fn ram_header_offset(&self) -> u64 {
        self.ram_header
    }

    /// The ROM as currently written in memory.
    pub fn rom(&self) -> Result<abi::QxlRom, MemoryError> {
        read_struct(&self.mem, self.cfg.bars.rom_offset)
    }

    /// The modes announced in the ROM.
    pub fn modes(&self) -> &[abi::QxlMode] {
        &self.rom_modes
    }

    /// The command ring's layout.
    pub fn cmd_ring(&self) -> RingLayout {
        self.cmd_ring
    }

    /// The cursor ring's layout.
    pub fn cursor_ring(&self) -> RingLayout {
        self.cursor_ring
    }

    /// The release ring's layout.
    pub fn release_ring(&self) -> RingLayout {
        self.release_ring
    }

    fn set_guest_bug(&mut self, why: &dyn std::fmt::Display) {
        tracing::warn!(target: "spice_qxl", "guest bug: {why}");
        self.guest_bug = true;
        self.send_events(interrupt::ERROR);
    }

    /// Set interrupt bits in `ram.int_pending` (`qxl_send_events`).
    pub fn send_events(&mut self, bits: u32) {
        let off = self.ram_header + ram_offsets::INT_PENDING;
        let result = read_u32(&self.mem, off).and_then(|p| write_u32(&mut self.mem, off, p | bits));
        if let Err(e) = result {
            tracing::error!(target: "spice_qxl", "interrupt register: {e}");
        }
    }

    /// Level of the interrupt line: any pending bit that the guest enabled.
    pub fn irq_level(&self) -> bool {
        let pending = read_u32(&self.mem, self.ram_header + ram_offsets::INT_PENDING).unwrap_or(0);
        let mask = read_u32(&self.mem, self.ram_header + ram_offsets::INT_MASK).unwrap_or(0);
        pending & mask != 0
    }

    fn start_async(&mut self, port: u32) -> Result<u64, DeviceError> {
        if self.pending_async.is_some() {
            self.send_events(interrupt::ERROR);
            return Err(DeviceError::AsyncPending { port });
        }
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        self.pending_async = Some(PendingAsync { cookie, port });
        Ok(cookie)
    }

    /// Handle a guest write of `val` to I/O port `port` (an offset in the I/O BAR).
    pub fn io_write(&mut self, port: u32, val: u32) -> Result<IoRequest, DeviceError> {
        if self.guest_bug && port != io::RESET {
            return Err(DeviceError::GuestBug);
        }
        if self.mode == DeviceMode::Vga
            && !matches!(
                port,
                io::RESET
                    | io::CREATE_PRIMARY
                    | io::CREATE_PRIMARY_ASYNC
                    | io::MEMSLOT_ADD
                    | io::MEMSLOT_ADD_ASYNC
                    | io::MEMSLOT_DEL
                    | io::SET_MODE
                    | io::LOG
            )
        {
            // QEMU ignores the other ports until the guest leaves VGA mode.
            return Ok(IoRequest::None);
        }
        let is_async = matches!(
            port,
            io::UPDATE_AREA_ASYNC
                | io::MEMSLOT_ADD_ASYNC
                | io::CREATE_PRIMARY_ASYNC
                | io::DESTROY_PRIMARY_ASYNC
                | io::DESTROY_SURFACE_ASYNC
                | io::DESTROY_ALL_SURFACES_ASYNC
                | io::FLUSH_SURFACES_ASYNC
                | io::MONITORS_CONFIG_ASYNC
        );
        let cookie = if is_async {
            Some(self.start_async(port)?)
        } else {
            None
        };
        let result = self.io_dispatch(port, val, cookie);
        if result.is_err() && cookie.is_some() {
            // The async operation never started; complete it so the guest is not left waiting.
            self.pending_async = None;
            self.send_events(interrupt::IO_CMD);
        }
        result
    }

    fn io_dispatch(
        &mut self,
        port: u32,
        val: u32,
        cookie: Option<u64>,
    ) -> Result<IoRequest, DeviceError> {
        let h = self.ram_header;
        match port {
            io::NOTIFY_CMD | io::NOTIFY_CURSOR => Ok(IoRequest::Wakeup),
            io::UPDATE_AREA | io::UPDATE_AREA_ASYNC => {
                let area: abi::QxlRect = read_struct(&self.mem, h + ram_offsets::UPDATE_AREA)?;
                let surface_id = read_u32(&self.mem, h + ram_offsets::UPDATE_SURFACE)?;
                Ok(IoRequest::UpdateArea {
                    surface_id,
                    area: area.into(),
                    cookie,
                })
            }
            io::UPDATE_IRQ => Ok(IoRequest::None),
            io::NOTIFY_OOM => {
                let idx = self.release_ring.indices(&self.mem)?;
                if idx.prod != idx.cons {
                    // The guest still has releases to collect.
                    return Ok(IoRequest::None);
                }
                self.oom_running = true;
                Ok(IoRequest::Oom)
            }
            io::RESET => {
                self.reset()?;
                Ok(IoRequest::Reset)
            }
            io::SET_MODE => self.set_compat_mode(val),
            io::LOG => {
                let mut buf = vec![0u8; abi::QXL_LOG_BUF_SIZE];
                self.mem.read(h + ram_offsets::LOG_BUF, &mut buf)?;
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                buf.truncate(end);
                tracing::debug!(target: "spice_qxl", "guest log: {}", String::from_utf8_lossy(&buf));
                Ok(IoRequest::Log(buf))
            }
            io::MEMSLOT_ADD | io::MEMSLOT_ADD_ASYNC => {
                let r = self.memslot_add_from_ram(val);
                if let Some(c) = cookie {
                    // Registration is immediate here; complete the async form right away.
                    self.async_complete_inner(c);
                }
                if let Err(e) = &r {
                    self.set_guest_bug(e);
                }
                r.map(|_| IoRequest::None)
            }
            io::MEMSLOT_DEL => {
                self.slots.remove(memslot_group::GUEST, val)?;
                Ok(IoRequest::None)
            }
            io::CREATE_PRIMARY | io::CREATE_PRIMARY_ASYNC => {
                let surface = self
                    .create_primary_from_ram()
                    .inspect_err(|e| self.set_guest_bug(e))?;
                Ok(IoRequest::CreatePrimary { surface, cookie })
            }
            io::DESTROY_PRIMARY | io::DESTROY_PRIMARY_ASYNC => {
                self.primary = None;
                self.mode = DeviceMode::Undefined;
                Ok(IoRequest::DestroyPrimary { cookie })
            }
            io::DESTROY_SURFACE_WAIT | io::DESTROY_SURFACE_ASYNC => Ok(IoRequest::DestroySurface {
                surface_id: val,
                cookie,
            }),
            io::DESTROY_ALL_SURFACES | io::DESTROY_ALL_SURFACES_ASYNC => {
                self.primary = None;
                self.mode = DeviceMode::Undefined;
                Ok(IoRequest::DestroyAllSurfaces { cookie })
            }
            io::FLUSH_SURFACES_ASYNC => Ok(IoRequest::FlushSurfaces {
                cookie: cookie.unwrap_or(0),
            }),
            io::FLUSH_RELEASE => {
                self.push_free_res(true)?;
                Ok(IoRequest::None)
            }
            io::MONITORS_CONFIG_ASYNC => {
                let addr = read_u64(&self.mem, h + ram_offsets::MONITORS_CONFIG)?;
                let config = parse::parse_monitors_config(
                    &self.mem,
                    &self.slots,
                    memslot_group::GUEST,
                    addr,
                    MAX_MONITOR_HEADS,
                )
                .map_err(DeviceError::MonitorsConfig)?;
                Ok(IoRequest::MonitorsConfig {
                    config,
                    cookie: cookie.unwrap_or(0),
                })
            }
            io::DETACH_PRIMARY | io::ATTACH_PRIMARY => Ok(IoRequest::None),
            other => Err(DeviceError::UnknownPort(other)),
        }
    }

    /// `QXL_IO_MEMSLOT_ADD`: register guest slot `slot_id` from `ram.mem_slot`, which must lie
    /// inside the RAM or VRAM BAR. QXL addresses of the slot are offsets from its start.
    fn memslot_add_from_ram(&mut self, slot_id: u32) -> Result<(), DeviceError> {
        let ms: abi::QxlMemSlot = read_struct(&self.mem, self.ram_header + ram_offsets::MEM_SLOT)?;
        let (start, end) = (ms.mem_start.get(), ms.mem_end.get());
        let b = self.cfg.bars;
        let bars = [
            (b.ram_guest_phys, b.ram_size, b.ram_offset),
            (b.vram_guest_phys, b.vram_size, b.vram_offset),
        ];
        let (gp, _, host) = bars
            .into_iter()
            .find(|&(gp, size, _)| start >= gp && start <= end && end <= gp.saturating_add(size))
            .ok_or(DeviceError::SlotOutsideBars { start, end })?;
        let virt_start = host + (start - gp);
        let virt_end = host + (end - gp);
        let generation = u32::from(self.rom()?.slot_generation);
        self.slots.add(
            memslot_group::GUEST,
            slot_id,
            MemSlot {
                generation,
                virt_start,
                virt_end,
                addr_delta: virt_start,
            },
        )?;
        Ok(())
    }

    fn create_primary_from_ram(&mut self) -> Result<PrimarySurface, DeviceError> {
        let c: abi::QxlSurfaceCreate =
            read_struct(&self.mem, self.ram_header + ram_offsets::CREATE_SURFACE)?;
        let (width, height, stride, format) = (
            c.width.get(),
            c.height.get(),
            c.stride.get(),
            c.format.get(),
        );
        let size =
            parse::validate_surface(width, height, stride, format).map_err(DeviceError::Surface)?;
        let mem = c.mem.get();
        let mem_offset = self
            .slots
            .translate(memslot_group::GUEST, mem, size)
            .map_err(|source| {
                DeviceError::Surface(ParseError::Translate {
                    what: "primary surface",
                    source,
                })
            })?;
        let surface = PrimarySurface {
            width,
            height,
            stride,
            format,
            position: c.position.get(),
            mouse_mode: c.mouse_mode.get(),
            flags: c.flags.get(),
            surface_type: c.ty.get(),
            mem,
            mem_offset,
            group_id: memslot_group::GUEST,
        };
        self.primary = Some(surface);
        self.mode = DeviceMode::Native;
        self.cmd_flags = 0;
        Ok(surface)
    }

    /// qxl-1 `QXL_IO_SET_MODE`: the primary is the start of VRAM in the mode's geometry
    /// (bottom-up, as QEMU sets it), commands use the compat layouts.
    fn set_compat_mode(&mut self, mode_id: u32) -> Result<IoRequest, DeviceError> {
        let m = *self
            .rom_modes
            .get(mode_id as usize)
            .ok_or(DeviceError::UnknownMode(mode_id))?;
        let b = self.cfg.bars;
        // QEMU registers slot 0 of the guest group over VRAM for compat guests.
        self.slots.add(
            memslot_group::GUEST,
            0,
            MemSlot {
                generation: 0,
                virt_start: b.vram_offset,
                virt_end: b.vram_offset + b.vram_size,
                addr_delta: b.vram_offset,
            },
        )?;
        let stride = m.stride.get() as i32;
        let surface = PrimarySurface {
            width: m.x_res.get(),
            height: m.y_res.get(),
            stride: -stride,
            format: abi::surface_fmt::XRGB32,
            position: 0,
            mouse_mode: 1,
            flags: 0,
            surface_type: abi::QXL_SURF_TYPE_PRIMARY,
            mem: 0,
            mem_offset: b.vram_offset,
            group_id: memslot_group::GUEST,
        };
        self.primary = Some(surface);
        self.mode = DeviceMode::Compat;
        self.cmd_flags = abi::QXL_COMMAND_FLAG_COMPAT;
        let rom_mode_off = self.cfg.bars.rom_offset + 20;
        write_u32(&mut self.mem, rom_mode_off, mode_id)?;
        Ok(IoRequest::CreatePrimary {
            surface,
            cookie: None,
        })
    }

    /// Enter VGA mode: the host renders the legacy framebuffer at the start of the RAM BAR.
    /// The host slot (group [`memslot_group::HOST`], slot 0) covers the whole host memory as
    /// in QEMU, and commands come from [`queue_host_command`](Self::queue_host_command) instead
    /// of the guest ring. Returns the primary surface to create.
    pub fn enter_vga_mode(
        &mut self,
        width: u32,
        height: u32,
    ) -> Result<PrimarySurface, DeviceError> {
        let size = self.mem.size();
        self.slots.add(
            memslot_group::HOST,
            0,
            MemSlot {
                generation: 0,
                virt_start: 0,
                virt_end: size,
                addr_delta: 0,
            },
        )?;
        let stride = width
            .checked_mul(4)
            .and_then(|s| i32::try_from(s).ok())
            .ok_or(DeviceError::Surface(ParseError::InvalidSurface {
                width,
                height,
                stride: 0,
                format: abi::surface_fmt::XRGB32,
            }))?;
        let bytes = parse::validate_surface(width, height, stride, abi::surface_fmt::XRGB32)
            .map_err(DeviceError::Surface)?;
        let b = self.cfg.bars;
        if bytes > b.ram_header_offset() {
            return Err(DeviceError::Surface(ParseError::InvalidSurface {
                width,
                height,
                stride,
                format: abi::surface_fmt::XRGB32,
            }));
        }
        let surface = PrimarySurface {
            width,
            height,
            stride,
            format: abi::surface_fmt::XRGB32,
            position: 0,
            mouse_mode: 0,
            flags: 0,
            surface_type: abi::QXL_SURF_TYPE_PRIMARY,
            mem: b.ram_offset,
            mem_offset: b.ram_offset,
            group_id: memslot_group::HOST,
        };
        self.primary = Some(surface);
        self.mode = DeviceMode::Vga;
        self.host_cmds.clear();
        Ok(surface)
    }

    /// In VGA mode, queue a command the host built in host memory (group
    /// [`memslot_group::HOST`]).
    pub fn queue_host_command(&mut self, cmd: CommandExt) {
        if cmd.cmd_type == abi::cmd_type::CURSOR {
            self.host_cursor_cmds.push_back(cmd);
        } else {
            self.host_cmds.push_back(cmd);
        }
    }

    /// The server finished handling [`IoRequest::Oom`].
    pub fn oom_done(&mut self) {
        self.oom_running = false;
        if let Err(e) = self.push_free_res(true) {
            tracing::warn!(target: "spice_qxl", "release ring after oom: {e}");
        }
    }

    /// Reset the device: slots gone, rings re-initialised, mode undefined.
    pub fn reset(&mut self) -> Result<(), DeviceError> {
        self.slots.reset();
        self.mode = DeviceMode::Undefined;
        self.primary = None;
        self.guest_bug = false;
        self.pending_async = None;
        self.oom_running = false;
        self.cmd_flags = 0;
        self.host_cmds.clear();
        self.host_cursor_cmds.clear();
        self.init_rom()?;
        self.init_ram()
    }

    fn pop_ring(&mut self, cursor: bool) -> Option<CommandExt> {
        if self.guest_bug {
            return None;
        }
        if self.mode == DeviceMode::Vga {
            let q = if cursor {
                &mut self.host_cursor_cmds
            } else {
                &mut self.host_cmds
            };
            return q.pop_front();
        }
        let ring = if cursor {
            self.cursor_ring
        } else {
            self.cmd_ring
        };
        let mut item = abi::QxlCommand::new_zeroed();
        match ring.pop(&mut self.mem, item.as_mut_bytes()) {
            Ok(None) => None,
            Ok(Some(notify)) => {
                if notify {
                    self.send_events(if cursor {
                        interrupt::CURSOR
                    } else {
                        interrupt::DISPLAY
                    });
                }
                Some(CommandExt {
                    addr: item.data.get(),
                    cmd_type: item.ty.get(),
                    group_id: memslot_group::GUEST,
                    flags: self.cmd_flags,
                })
            }
            Err(e) => {
                self.set_guest_bug(&e);
                None
            }
        }
    }

    fn req_notification(&mut self, cursor: bool) -> bool {
        if self.mode == DeviceMode::Vga || self.guest_bug {
            return true;
        }
        let ring = if cursor {
            self.cursor_ring
        } else {
            self.cmd_ring
        };
        match ring.cons_wait(&mut self.mem) {
            Ok(wait) => wait,
            Err(e) => {
                self.set_guest_bug(&e);
                true
            }
        }
    }

    fn release_inner(&mut self, release: ReleaseInfoExt) -> Result<(), DeviceError> {
        if release.group_id == memslot_group::HOST {
            // Device-built (VGA) commands live in host memory: nothing to give back.
            return Ok(());
        }
        let id = read_u64(&self.mem, release.info_offset)?;
        let prod = read_u32(&self.mem, self.release_ring.offset + 4)?;
        let item = self.release_ring.slot_offset(prod);
        match self.last_release {
            Some(last) if read_u64(&self.mem, item)? != 0 => write_u64(&mut self.mem, last, id)?,
            _ => write_u64(&mut self.mem, item, id)?,
        }
        write_u64(&mut self.mem, release.info_offset, 0)?;
        self.last_release = Some(release.info_offset);
        self.num_free_res += 1;
        self.push_free_res(false)
    }

    /// Push the chain being built (`qxl_push_free_res`): when `flush`, or once
    /// [`RELEASE_BUNCH_SIZE`] releases are collected, unless the ring is full.
    fn push_free_res(&mut self, flush: bool) -> Result<(), DeviceError> {
        if self.num_free_res == 0 {
            return Ok(());
        }
        let ring = self.release_ring;
        let prod = read_u32(&self.mem, ring.offset + 4)?;
        let cons = read_u32(&self.mem, ring.offset + 12)?;
        let used = prod.wrapping_sub(cons);
        if used > ring.num_items {
            return Err(RingError::Corrupt {
                offset: ring.offset,
                prod,
                cons,
                size: ring.num_items,
            }
            .into());
        }
        if used + 1 >= ring.num_items {
            // Full: keep growing the current chain until the guest collects.
            return Ok(());
        }
        if !flush && (self.oom_running || self.num_free_res < RELEASE_BUNCH_SIZE) {
            return Ok(());
        }
        let prod = prod.wrapping_add(1);
        if ring.set_prod(&mut self.mem, prod)? {
            self.send_events(interrupt::DISPLAY);
        }
        write_u64(&mut self.mem, ring.slot_offset(prod), 0)?;
        self.num_free_res = 0;
        self.last_release = None;
        Ok(())
    }

    fn async_complete_inner(&mut self, cookie: u64) {
        match self.pending_async {
            Some(p) if p.cookie == cookie => {
                self.pending_async = None;
                self.send_events(interrupt::IO_CMD);
            }
            _ => tracing::warn!(target: "spice_qxl", "async_complete for unknown cookie {cookie}"),
        }
    }
}

impl<M: GuestMemory> QxlInterface for QxlDevice<M> {
    fn init_info(&self) -> DevInitInfo {
        DevInitInfo {
            slots: self.cfg.slots,
            qxl_ram_size: self.cfg.bars.ram_size,
            internal_groupslot_id: memslot_group::HOST,
            n_surfaces: self.cfg.n_surfaces,
        }
    }

    fn get_command(&mut self) -> Option<CommandExt> {
        self.pop_ring(false)
    }

    fn req_cmd_notification(&mut self) -> bool {
        self.req_notification(false)
    }

    fn release_resource(&mut self, release: ReleaseInfoExt) {
        if let Err(e) = self.release_inner(release) {
            self.set_guest_bug(&e);
        }
    }

    fn get_cursor_command(&mut self) -> Option<CommandExt> {
        self.pop_ring(true)
    }

    fn req_cursor_notification(&mut self) -> bool {
        self.req_notification(true)
    }

    fn set_mm_time(&mut self, mm_time: u32) {
        // Guests read rom.mm_clock.
        let off = self.cfg.bars.rom_offset + std::mem::offset_of!(abi::QxlRom, mm_clock) as u64;
        if let Err(e) = write_u32(&mut self.mem, off, mm_time) {
            tracing::error!(target: "spice_qxl", "set_mm_time: {e}");
        }
    }

    fn notify_update(&mut self, update_id: u32) {
        // qxl-1 guests poll rom.update_id.
        let off = self.cfg.bars.rom_offset + 8;
        if let Err(e) = write_u32(&mut self.mem, off, update_id) {
            tracing::error!(target: "spice_qxl", "notify_update: {e}");
        }
    }

    fn flush_resources(&mut self) -> u32 {
        let n = self.num_free_res;
        if let Err(e) = self.push_free_res(true) {
            self.set_guest_bug(&e);
            return 0;
        }
        n - self.num_free_res
    }

    fn async_complete(&mut self, cookie: u64) {
        self.async_complete_inner(cookie);
    }

    fn update_area_complete(&mut self, surface_id: u32, rects: &[Rect]) {
        tracing::trace!(target: "spice_qxl", "update area complete: surface {surface_id}, {} rects", rects.len());
    }

    fn set_client_capabilities(&mut self, client_present: bool, caps: &[u8]) {
        let off = self.cfg.bars.rom_offset;
        let mut rom = match self.rom() {
            Ok(r) => r,
            Err(e) => return tracing::error!(target: "spice_qxl", "rom: {e}"),
        };
        rom.client_present = client_present.into();
        rom.client_capabilities = [0; abi::QXL_ROM_CLIENT_CAPS_SIZE];
        let n = caps.len().min(abi::QXL_ROM_CLIENT_CAPS_SIZE);
        rom.client_capabilities[..n].copy_from_slice(&caps[..n]);
        if self.mem.write(off, rom.as_bytes()).is_ok() {
            self.send_events(interrupt::CLIENT);
        }
    }

    fn client_monitors_config(&mut self, heads: Option<&[ClientHead]>) -> bool {
        let Some(heads) = heads else { return true };
        let mut rom = match self.rom() {
            Ok(r) => r,
            Err(_) => return false,
        };
        let mut cfg = abi::QxlRomMonitorsConfig::new_zeroed();
        let n = heads.len().min(abi::QXL_ROM_MAX_HEADS);
        cfg.count = (n as u16).into();
        for (dst, h) in cfg.heads.iter_mut().zip(heads) {
            *dst = abi::QxlURect {
                top: h.y.into(),
                left: h.x.into(),
                bottom: h.y.saturating_add(h.height).into(),
                right: h.x.saturating_add(h.width).into(),
            };
        }
        rom.client_monitors_config = cfg;
        rom.client_monitors_config_crc = crc32_qxl(cfg.as_bytes()).into();
        if self
            .mem
            .write(self.cfg.bars.rom_offset, rom.as_bytes())
            .is_err()
        {
            return false;
        }
        self.send_events(interrupt::CLIENT_MONITORS_CONFIG);
        true
    }

    fn parse_command(&self, ext: &CommandExt) -> Result<ParsedCommand, CommandError> {
        parse::parse_command(&self.mem, &self.slots, self.cfg.limits, ext)
    }
}

/// The CRC-32 the device stores for the client monitors config (for guests and tests).
pub fn client_monitors_config_crc(cfg: &abi::QxlRomMonitorsConfig) -> u32 {
    crc32_qxl(cfg.as_bytes())
}
