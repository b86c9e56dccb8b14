//! The device's ports, modes, ROM and the server-facing interface.

use spice_qxl::abi::{self, interrupt, io, memslot_group, ram_offsets};
use spice_qxl::device::client_monitors_config_crc;
use spice_qxl::memory::{GuestMemory, MemSlot, read_struct, write_u32};
use spice_qxl::parse::{CommandExt, DrawOp, ParsedCommand, Rect};
use spice_qxl::{
    BarLayout, ClientHead, DeviceConfig, DeviceMode, GuestDriver, IoRequest, QxlDevice,
    QxlInterface, VecMemory,
};
use zerocopy::{FromZeros, IntoBytes};

fn device() -> QxlDevice<VecMemory> {
    let bars = BarLayout::contiguous(1 << 20, 4 << 20);
    QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .unwrap()
}

#[test]
fn rom_and_ram_header_after_init() {
    let dev = device();
    let rom = dev.rom().unwrap();
    assert_eq!(rom.magic.get(), abi::QXL_ROM_MAGIC);
    assert_eq!(
        (
            rom.slot_id_bits,
            rom.slot_gen_bits,
            rom.slots_start,
            rom.slots_end
        ),
        (8, 8, 0, 7)
    );
    assert_eq!(rom.n_surfaces.get(), 1024);
    let bars = dev.config().bars;
    assert_eq!(u64::from(rom.ram_header_offset.get()), bars.ram_size - 8192);
    // Modes: those whose framebuffer fits 4 MiB of VRAM (1280x1024 and 1920x1080 do not).
    let modes = dev.modes();
    assert_eq!(modes.len(), 4);
    let n = spice_qxl::memory::read_u32(
        dev.memory(),
        bars.rom_offset + u64::from(rom.modes_offset.get()),
    )
    .unwrap();
    assert_eq!(n, 4);
    let m: abi::QxlMode = read_struct(
        dev.memory(),
        bars.rom_offset + u64::from(rom.modes_offset.get()) + 4 + 32 * 2,
    )
    .unwrap();
    assert_eq!(
        (m.x_res.get(), m.y_res.get(), m.bits.get(), m.stride.get()),
        (1024, 768, 32, 4096)
    );
    let ram: abi::QxlRam = read_struct(dev.memory(), dev.ram_header_offset()).unwrap();
    assert_eq!(ram.magic.get(), abi::QXL_RAM_MAGIC);
    assert_eq!(ram.cmd_ring.hdr.num_items.get(), 32);
    assert_eq!(ram.cursor_ring.hdr.num_items.get(), 32);
    assert_eq!(ram.release_ring.hdr.num_items.get(), 8);
    assert_eq!(ram.cmd_ring.hdr.notify_on_prod.get(), 1);
    let info = dev.init_info();
    assert_eq!(info.slots.num_slots, 8);
    assert_eq!(info.internal_groupslot_id, memslot_group::HOST);
}

#[test]
fn native_primary_and_draw() {
    let mut dev = device();
    let mut g = GuestDriver::attach(&mut dev, 1).unwrap();
    assert_eq!(dev.mode(), DeviceMode::Undefined);
    let IoRequest::CreatePrimary {
        surface,
        cookie: None,
    } = g.create_primary(&mut dev, 320, 200).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (surface.width, surface.height, surface.stride),
        (320, 200, 1280)
    );
    assert_eq!(dev.mode(), DeviceMode::Native);
    assert_eq!(dev.primary(), Some(&surface));
    g.fill(
        dev.memory_mut(),
        0,
        Rect {
            top: 0,
            left: 0,
            bottom: 10,
            right: 10,
        },
        0x123456,
        None,
    )
    .unwrap();
    assert_eq!(dev.io_write(io::NOTIFY_CMD, 0).unwrap(), IoRequest::Wakeup);
    let ext = dev.get_command().unwrap();
    assert_eq!(ext.flags, 0);
    let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
        panic!()
    };
    assert!(matches!(d.op, DrawOp::Fill { .. }));
    assert_eq!(d.surface_deps, [-1, -1, -1]);
    assert_eq!(
        dev.io_write(io::DESTROY_PRIMARY, 0).unwrap(),
        IoRequest::DestroyPrimary { cookie: None }
    );
    assert_eq!(dev.mode(), DeviceMode::Undefined);
}

#[test]
fn update_area_async_and_interrupts() {
    let mut dev = device();
    let _g = GuestDriver::attach(&mut dev, 1).unwrap();
    let h = dev.ram_header_offset();
    dev.memory_mut()
        .write(
            h + ram_offsets::UPDATE_AREA,
            abi::QxlRect::new(1, 2, 3, 4).as_bytes(),
        )
        .unwrap();
    write_u32(dev.memory_mut(), h + ram_offsets::UPDATE_SURFACE, 5).unwrap();
    let area = Rect {
        top: 1,
        left: 2,
        bottom: 3,
        right: 4,
    };
    assert_eq!(
        dev.io_write(io::UPDATE_AREA, 0).unwrap(),
        IoRequest::UpdateArea {
            surface_id: 5,
            area,
            cookie: None
        }
    );
    let IoRequest::UpdateArea {
        cookie: Some(c), ..
    } = dev.io_write(io::UPDATE_AREA_ASYNC, 0).unwrap()
    else {
        panic!()
    };
    assert!(!dev.irq_level());
    dev.update_area_complete(5, &[area]);
    dev.async_complete(c);
    assert!(dev.irq_level());
    let pending = spice_qxl::memory::read_u32(dev.memory(), h + ram_offsets::INT_PENDING).unwrap();
    assert_eq!(pending & interrupt::IO_CMD, interrupt::IO_CMD);
    // The guest acknowledges; the line drops.
    write_u32(dev.memory_mut(), h + ram_offsets::INT_PENDING, 0).unwrap();
    assert_eq!(dev.io_write(io::UPDATE_IRQ, 0).unwrap(), IoRequest::None);
    assert!(!dev.irq_level());
    // An unknown cookie is ignored.
    dev.async_complete(999);
    assert!(!dev.irq_level());
}

#[test]
fn vga_mode_uses_host_commands() {
    let mut dev = device();
    let surface = dev.enter_vga_mode(512, 384).unwrap();
    assert_eq!(dev.mode(), DeviceMode::Vga);
    assert_eq!(surface.group_id, memslot_group::HOST);
    assert_eq!(surface.mem_offset, dev.config().bars.ram_offset);
    // A host-built update command in host memory (group HOST, slot 0 covers everything).
    let off = dev.config().bars.vram_offset + 0x100;
    let mut u = abi::QxlUpdateCmd::new_zeroed();
    u.update_id = 42.into();
    dev.memory_mut().write(off, u.as_bytes()).unwrap();
    let ext = CommandExt {
        addr: off,
        cmd_type: abi::cmd_type::UPDATE,
        group_id: memslot_group::HOST,
        flags: 0,
    };
    dev.queue_host_command(ext);
    assert!(dev.req_cmd_notification());
    let got = dev.get_command().unwrap();
    let ParsedCommand::Update(p) = dev.parse_command(&got).unwrap() else {
        panic!()
    };
    assert_eq!(p.update_id, 42);
    // Releasing a host command does not touch the guest release ring.
    dev.release_resource(p.release);
    assert_eq!(dev.flush_resources(), 0);
    assert!(dev.get_command().is_none());
    // Guest ring writes are ignored in VGA mode.
    assert_eq!(dev.io_write(io::NOTIFY_CMD, 0).unwrap(), IoRequest::None);
    // A too-large VGA mode is refused.
    assert!(dev.enter_vga_mode(100_000, 100_000).is_err());
}

#[test]
fn compat_mode_sets_compat_flags() {
    let mut dev = device();
    let IoRequest::CreatePrimary { surface, .. } = dev.io_write(io::SET_MODE, 1).unwrap() else {
        panic!()
    };
    assert_eq!(
        (surface.width, surface.height, surface.stride),
        (800, 600, -3200)
    );
    assert_eq!(dev.mode(), DeviceMode::Compat);
    assert_eq!(dev.rom().unwrap().mode.get(), 1);
    assert!(dev.io_write(io::SET_MODE, 99).is_err());
    // A compat drawable in VRAM slot 0.
    let vram = dev.config().bars.vram_offset;
    let mut d = abi::QxlCompatDrawable::new_zeroed();
    d.ty = abi::draw_type::FILL;
    d.u[0] = abi::brush_type::SOLID as u8;
    d.u[4..8].copy_from_slice(&0x7c00u32.to_le_bytes());
    dev.memory_mut().write(vram + 0x1000, d.as_bytes()).unwrap();
    let ring = dev.cmd_ring();
    let cmd = abi::QxlCommand {
        data: 0x1000.into(),
        ty: abi::cmd_type::DRAW.into(),
        padding: 0.into(),
    };
    ring.push(dev.memory_mut(), cmd.as_bytes()).unwrap();
    let ext = dev.get_command().unwrap();
    assert_eq!(ext.flags, abi::QXL_COMMAND_FLAG_COMPAT);
    let ParsedCommand::Draw(p) = dev.parse_command(&ext).unwrap() else {
        panic!()
    };
    assert!(matches!(
        p.op,
        DrawOp::Fill {
            brush: spice_qxl::Brush::Solid(0x7c00),
            ..
        }
    ));
    let ext16 = CommandExt {
        flags: abi::QXL_COMMAND_FLAG_COMPAT | abi::QXL_COMMAND_FLAG_COMPAT_16BPP,
        ..ext
    };
    let ParsedCommand::Draw(p) = dev.parse_command(&ext16).unwrap() else {
        panic!()
    };
    assert!(matches!(
        p.op,
        DrawOp::Fill {
            brush: spice_qxl::Brush::Solid(0xff0000),
            ..
        }
    ));
}

#[test]
fn client_monitors_config_and_capabilities_in_rom() {
    let mut dev = device();
    let h = dev.ram_header_offset();
    write_u32(dev.memory_mut(), h + ram_offsets::INT_MASK, u32::MAX).unwrap();
    assert!(dev.client_monitors_config(None));
    let heads = [
        ClientHead {
            x: 0,
            y: 0,
            width: 1024,
            height: 768,
        },
        ClientHead {
            x: 1024,
            y: 0,
            width: 800,
            height: 600,
        },
    ];
    assert!(dev.client_monitors_config(Some(&heads)));
    let rom = dev.rom().unwrap();
    let cfg = rom.client_monitors_config;
    assert_eq!(cfg.count.get(), 2);
    assert_eq!(
        (
            cfg.heads[1].left.get(),
            cfg.heads[1].right.get(),
            cfg.heads[1].bottom.get()
        ),
        (1024, 1824, 600)
    );
    assert_eq!(
        rom.client_monitors_config_crc.get(),
        client_monitors_config_crc(&cfg)
    );
    assert!(dev.irq_level());
    // The CRC is CRC-32 (reflected 0xedb88320) from a zero register, without final inversion.
    let mut z = abi::QxlRomMonitorsConfig::new_zeroed();
    assert_eq!(client_monitors_config_crc(&z), 0);
    z.count = 1.into();
    assert_ne!(client_monitors_config_crc(&z), 0);
    dev.set_client_capabilities(true, &[1, 2, 3]);
    let rom = dev.rom().unwrap();
    assert_eq!(rom.client_present, 1);
    assert_eq!(&rom.client_capabilities[..4], &[1, 2, 3, 0]);
    dev.notify_update(77);
    assert_eq!(dev.rom().unwrap().update_id.get(), 77);
}

#[test]
fn oom_log_and_reset() {
    let mut dev = device();
    let mut g = GuestDriver::attach(&mut dev, 1).unwrap();
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    g.fill(dev.memory_mut(), 0, r, 1, None).unwrap();
    let ext = dev.get_command().unwrap();
    let rel = dev.parse_command(&ext).unwrap().release_info();
    dev.release_resource(rel);
    assert_eq!(dev.io_write(io::NOTIFY_OOM, 0).unwrap(), IoRequest::Oom);
    dev.oom_done();
    assert_eq!(g.collect_releases(dev.memory_mut()).unwrap().len(), 1);
    let h = dev.ram_header_offset();
    dev.memory_mut()
        .write(h + ram_offsets::LOG_BUF, b"hello\0junk")
        .unwrap();
    assert_eq!(
        dev.io_write(io::LOG, 0).unwrap(),
        IoRequest::Log(b"hello".to_vec())
    );
    // Reset forgets the slots.
    assert_eq!(dev.io_write(io::RESET, 0).unwrap(), IoRequest::Reset);
    assert!(dev.slots().get(memslot_group::GUEST, 1).is_none());
    assert!(g.fill(dev.memory_mut(), 0, r, 1, None).is_ok());
    let ext = dev.get_command().unwrap();
    assert!(dev.parse_command(&ext).is_err());
    // A VMM may register slots directly.
    let b = dev.config().bars;
    dev.slots_mut()
        .add(
            1,
            1,
            MemSlot {
                generation: 0,
                virt_start: b.ram_offset,
                virt_end: b.ram_offset + 4096,
                addr_delta: b.ram_offset,
            },
        )
        .unwrap();
}

#[test]
fn destroy_and_recreate_primary_frees_its_memory() {
    let mut dev = device();
    let mut g = GuestDriver::attach(&mut dev, 1).unwrap();
    let free0 = g.largest_free_block();
    g.create_primary(&mut dev, 320, 200).unwrap();
    assert_eq!(g.primary_size(), 320 * 200 * 4);
    assert_eq!(g.memory_used(), 320 * 200 * 4);
    assert_eq!(
        g.destroy_primary(&mut dev).unwrap(),
        IoRequest::DestroyPrimary { cookie: None }
    );
    assert_eq!(dev.primary(), None);
    assert_eq!(dev.mode(), DeviceMode::Undefined);
    assert_eq!((g.primary_size(), g.memory_used()), (0, 0));
    assert_eq!(g.largest_free_block(), free0);
    // A different size takes its place.
    let IoRequest::CreatePrimary { surface, .. } = g.create_primary(&mut dev, 400, 300).unwrap()
    else {
        panic!()
    };
    assert_eq!((surface.width, surface.height), (400, 300));
    assert_eq!(dev.primary(), Some(&surface));
    assert_eq!(g.memory_used(), 400 * 300 * 4);
    // Destroying twice is harmless on the guest side.
    g.destroy_primary(&mut dev).unwrap();
    g.destroy_primary(&mut dev).unwrap();
    assert_eq!(g.memory_used(), 0);
}
