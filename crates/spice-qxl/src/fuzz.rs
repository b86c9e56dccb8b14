//! Entry point of the `qxl_commands` fuzz target (and of the corpus replay test): the device
//! over hostile guest RAM, and every command that parses converted into spice-proto messages
//! ([`crate::convert`]), encoded and decoded back.

use crate::abi::{self, memslot_group};
use crate::device::{BarLayout, DeviceConfig, QxlDevice, QxlInterface};
use crate::memory::{GuestMemory, MemSlot, VecMemory};
use crate::parse::{ParseLimits, parse_command};

/// Size of the RAM BAR of the fuzzed device: guest data in the first 4 KiB, the RAM header
/// (rings included) from offset 4096.
pub const FUZZ_RAM_SIZE: u64 = 12 * 1024;
/// Size of the VRAM BAR of the fuzzed device.
pub const FUZZ_VRAM_SIZE: u64 = 4096;
/// Memory slot (guest group, generation 0) over the whole RAM BAR; slot 2 covers the VRAM.
pub const FUZZ_SLOT: u32 = 1;

/// What one fuzz run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FuzzSummary {
    /// Commands taken from the command and cursor rings.
    pub commands: usize,
    /// Of those, parsed without error (native layouts).
    pub parsed: usize,
    /// Of those, converted into spice-proto messages that encode and decode back the same
    /// (commands that become no message, such as updates or NOP drawables, count too).
    pub converted: usize,
    /// Whether the device was in the guest-bug state after the rings were processed.
    pub guest_bug: bool,
}

/// The device layout the fuzz target uses (the seed generator uses the same).
pub fn fuzz_bars() -> BarLayout {
    BarLayout::contiguous(FUZZ_RAM_SIZE, FUZZ_VRAM_SIZE)
}

/// Build a device whose RAM BAR holds `data` (rings, commands and all, as a hostile guest
/// would write them), then drive it as a server does: take every command from both rings
/// (bounded), parse each with the native and the compat layouts, release each resource, ask
/// for notifications, flush releases, and handle the ports that read guest memory.
/// Must never panic, loop without bound or allocate beyond its small caps; panics only when
/// a parsed command does not convert and round-trip (a bug of this crate).
pub fn fuzz_commands(data: &[u8]) -> FuzzSummary {
    let bars = fuzz_bars();
    let mut cfg = DeviceConfig::new(bars);
    cfg.limits = ParseLimits {
        max_chunks: 64,
        max_command_bytes: 256 * 1024,
    };
    cfg.modes = vec![(16, 16)];
    let mem = VecMemory::new(bars.total_size() as usize);
    let mut summary = FuzzSummary::default();
    let Ok(mut dev) = QxlDevice::new(mem, cfg) else {
        return summary;
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
            return summary;
        }
    }
    let n = data.len().min(FUZZ_RAM_SIZE as usize);
    if dev.memory_mut().write(bars.ram_offset, &data[..n]).is_err() {
        return summary;
    }
    for cursor in [false, true] {
        for _ in 0..64 {
            let ext = if cursor {
                dev.get_cursor_command()
            } else {
                dev.get_command()
            };
            let Some(ext) = ext else { break };
            summary.commands += 1;
            let compat = crate::parse::CommandExt {
                flags: abi::QXL_COMMAND_FLAG_COMPAT | abi::QXL_COMMAND_FLAG_COMPAT_16BPP,
                ..ext
            };
            let _ = parse_command(dev.memory(), dev.slots(), dev.config().limits, &compat);
            let release = match dev.parse_command(&ext) {
                Ok(cmd) => {
                    summary.parsed += 1;
                    let release = cmd.release_info();
                    // Whatever parses must convert and survive a spice-proto round trip: a
                    // failure here is a bug in the conversion, not in the guest.
                    if let Err(e) = crate::convert::encode_roundtrip(cmd) {
                        panic!("conversion of a parsed command failed: {e}");
                    }
                    summary.converted += 1;
                    Some(release)
                }
                Err(e) => e.release,
            };
            if let Some(r) = release {
                dev.release_resource(r);
            }
        }
        let _ = if cursor {
            dev.req_cursor_notification()
        } else {
            dev.req_cmd_notification()
        };
    }
    dev.flush_resources();
    summary.guest_bug = dev.guest_bug();
    for port in [
        abi::io::UPDATE_AREA,
        abi::io::CREATE_PRIMARY,
        abi::io::MONITORS_CONFIG_ASYNC,
        abi::io::LOG,
    ] {
        let _ = dev.io_write(port, 0);
    }
    let _ = dev.irq_level();
    summary
}
