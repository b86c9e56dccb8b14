//! Golden sizes and field offsets of the device ABI, as a C compiler lays out spice-protocol's
//! `spice/qxl_dev.h` (packed structures).

use core::mem::{offset_of, size_of};

use spice_qxl::abi::*;

#[test]
fn structure_sizes() {
    let sizes = [
        ("QXLCommand", size_of::<QxlCommand>(), 16),
        ("QXLCommandExt", size_of::<QxlCommandExt>(), 24),
        ("QXLRect", size_of::<QxlRect>(), 16),
        ("QXLPoint", size_of::<QxlPoint>(), 8),
        ("QXLPoint16", size_of::<QxlPoint16>(), 4),
        ("QXLRom", size_of::<QxlRom>(), 1160),
        ("QXLMode", size_of::<QxlMode>(), 32),
        ("QXLRam", size_of::<QxlRam>(), 5348),
        ("QXLDataChunk", size_of::<QxlDataChunk>(), 20),
        ("QXLReleaseInfo", size_of::<QxlReleaseInfo>(), 8),
        ("QXLUpdateCmd", size_of::<QxlUpdateCmd>(), 32),
        ("QXLCompatUpdateCmd", size_of::<QxlCompatUpdateCmd>(), 28),
        ("QXLMessage", size_of::<QxlMessage>(), 8),
        ("QXLCursorHeader", size_of::<QxlCursorHeader>(), 18),
        ("QXLCursor", size_of::<QxlCursor>(), 42),
        ("QXLCursorCmd", size_of::<QxlCursorCmd>(), 150),
        ("QXLBrush", size_of::<QxlBrush>(), 20),
        ("QXLQMask", size_of::<QxlQMask>(), 17),
        ("QXLFill", size_of::<QxlFill>(), 39),
        ("QXLOpaque", size_of::<QxlOpaque>(), 64),
        ("QXLCopy", size_of::<QxlCopy>(), 44),
        ("QXLTransparent", size_of::<QxlTransparent>(), 32),
        ("QXLAlphaBlend", size_of::<QxlAlphaBlend>(), 27),
        ("QXLCompatAlphaBlend", size_of::<QxlCompatAlphaBlend>(), 25),
        ("QXLRop3", size_of::<QxlRop3>(), 63),
        ("QXLLineAttr", size_of::<QxlLineAttr>(), 20),
        ("QXLStroke", size_of::<QxlStroke>(), 52),
        ("QXLText", size_of::<QxlText>(), 68),
        ("QXLBlackness", size_of::<QxlBlackness>(), 17),
        ("QXLClip", size_of::<QxlClip>(), 12),
        ("QXLComposite", size_of::<QxlComposite>(), 44),
        ("QXLTransform", size_of::<QxlTransform>(), 24),
        ("QXLCompatDrawable", size_of::<QxlCompatDrawable>(), 128),
        ("QXLDrawable", size_of::<QxlDrawable>(), 191),
        ("QXLSurface", size_of::<QxlSurface>(), 24),
        ("QXLSurfaceCmd", size_of::<QxlSurfaceCmd>(), 41),
        ("QXLClipRects", size_of::<QxlClipRects>(), 24),
        ("QXLPathSeg", size_of::<QxlPathSeg>(), 8),
        ("QXLPath", size_of::<QxlPath>(), 24),
        ("QXLImageDescriptor", size_of::<QxlImageDescriptor>(), 18),
        ("QXLPalette", size_of::<QxlPalette>(), 10),
        ("QXLBitmap", size_of::<QxlBitmap>(), 30),
        ("QXLImage", size_of::<QxlImage>(), 48),
        ("QXLHead", size_of::<QxlHead>(), 28),
        ("QXLMonitorsConfig", size_of::<QxlMonitorsConfig>(), 4),
        ("QXLRasterGlyph", size_of::<QxlRasterGlyph>(), 20),
        ("QXLString", size_of::<QxlString>(), 28),
        ("QXLSurfaceCreate", size_of::<QxlSurfaceCreate>(), 40),
        ("QXLMemSlot", size_of::<QxlMemSlot>(), 16),
        ("QXLCommandRing", size_of::<QxlCommandRing>(), 532),
        ("QXLReleaseRing", size_of::<QxlReleaseRing>(), 84),
        ("QXLPattern", size_of::<QxlPattern>(), 16),
    ];
    for (name, got, want) in sizes {
        assert_eq!(got, want, "sizeof({name})");
    }
}

#[test]
fn rom_offsets() {
    assert_eq!(offset_of!(QxlRom, magic), 0);
    assert_eq!(offset_of!(QxlRom, update_id), 8);
    assert_eq!(offset_of!(QxlRom, mode), 20);
    assert_eq!(offset_of!(QxlRom, modes_offset), 24);
    assert_eq!(offset_of!(QxlRom, ram_header_offset), 44);
    assert_eq!(offset_of!(QxlRom, n_surfaces), 52);
    assert_eq!(offset_of!(QxlRom, flags), 56);
    assert_eq!(offset_of!(QxlRom, slots_start), 64);
    assert_eq!(offset_of!(QxlRom, slot_gen_bits), 66);
    assert_eq!(offset_of!(QxlRom, slot_id_bits), 67);
    assert_eq!(offset_of!(QxlRom, slot_generation), 68);
    assert_eq!(offset_of!(QxlRom, client_present), 69);
    assert_eq!(offset_of!(QxlRom, client_capabilities), 70);
    assert_eq!(offset_of!(QxlRom, client_monitors_config_crc), 128);
    assert_eq!(offset_of!(QxlRom, client_monitors_config), 132);
}

#[test]
fn ram_offsets_match_the_header() {
    assert_eq!(
        offset_of!(QxlRam, int_pending) as u64,
        ram_offsets::INT_PENDING
    );
    assert_eq!(offset_of!(QxlRam, int_mask) as u64, ram_offsets::INT_MASK);
    assert_eq!(offset_of!(QxlRam, log_buf) as u64, ram_offsets::LOG_BUF);
    assert_eq!(offset_of!(QxlRam, cmd_ring) as u64, ram_offsets::CMD_RING);
    assert_eq!(ram_offsets::CMD_RING, 4108);
    assert_eq!(
        offset_of!(QxlRam, cursor_ring) as u64,
        ram_offsets::CURSOR_RING
    );
    assert_eq!(ram_offsets::CURSOR_RING, 4640);
    assert_eq!(
        offset_of!(QxlRam, release_ring) as u64,
        ram_offsets::RELEASE_RING
    );
    assert_eq!(ram_offsets::RELEASE_RING, 5172);
    assert_eq!(
        offset_of!(QxlRam, update_area) as u64,
        ram_offsets::UPDATE_AREA
    );
    assert_eq!(
        offset_of!(QxlRam, update_surface) as u64,
        ram_offsets::UPDATE_SURFACE
    );
    assert_eq!(offset_of!(QxlRam, mem_slot) as u64, ram_offsets::MEM_SLOT);
    assert_eq!(
        offset_of!(QxlRam, create_surface) as u64,
        ram_offsets::CREATE_SURFACE
    );
    assert_eq!(offset_of!(QxlRam, flags) as u64, ram_offsets::FLAGS);
    assert_eq!(
        offset_of!(QxlRam, monitors_config) as u64,
        ram_offsets::MONITORS_CONFIG
    );
    assert_eq!(offset_of!(QxlCommandRing, items), 20);
    assert_eq!(offset_of!(QxlReleaseRing, items), 20);
}

#[test]
fn drawable_offsets() {
    assert_eq!(offset_of!(QxlDrawable, surface_id), 8);
    assert_eq!(offset_of!(QxlDrawable, effect), 12);
    assert_eq!(offset_of!(QxlDrawable, ty), 13);
    assert_eq!(offset_of!(QxlDrawable, self_bitmap), 14);
    assert_eq!(offset_of!(QxlDrawable, self_bitmap_area), 15);
    assert_eq!(offset_of!(QxlDrawable, bbox), 31);
    assert_eq!(offset_of!(QxlDrawable, clip), 47);
    assert_eq!(offset_of!(QxlDrawable, mm_time), 59);
    assert_eq!(offset_of!(QxlDrawable, surfaces_dest), 63);
    assert_eq!(offset_of!(QxlDrawable, surfaces_rects), 75);
    assert_eq!(offset_of!(QxlDrawable, u), 123);
    assert_eq!(offset_of!(QxlCompatDrawable, effect), 8);
    assert_eq!(offset_of!(QxlCompatDrawable, bitmap_offset), 10);
    assert_eq!(offset_of!(QxlCompatDrawable, bitmap_area), 12);
    assert_eq!(offset_of!(QxlCompatDrawable, bbox), 28);
    assert_eq!(offset_of!(QxlCompatDrawable, clip), 44);
    assert_eq!(offset_of!(QxlCompatDrawable, mm_time), 56);
    assert_eq!(offset_of!(QxlCompatDrawable, u), 60);
}

#[test]
fn other_offsets() {
    assert_eq!(offset_of!(QxlCursorCmd, ty), 8);
    assert_eq!(offset_of!(QxlCursorCmd, u), 9);
    assert_eq!(offset_of!(QxlCursorCmd, device_data), 22);
    assert_eq!(offset_of!(QxlCursor, data_size), 18);
    assert_eq!(offset_of!(QxlCursor, chunk), 22);
    assert_eq!(offset_of!(QxlSurfaceCmd, surface_id), 8);
    assert_eq!(offset_of!(QxlSurfaceCmd, ty), 12);
    assert_eq!(offset_of!(QxlSurfaceCmd, flags), 13);
    assert_eq!(offset_of!(QxlSurfaceCmd, u), 17);
    assert_eq!(offset_of!(QxlImage, u), 18);
    assert_eq!(offset_of!(QxlBitmap, palette), 14);
    assert_eq!(offset_of!(QxlBitmap, data), 22);
    assert_eq!(offset_of!(QxlOpaque, brush), 24);
    assert_eq!(offset_of!(QxlOpaque, rop_descriptor), 44);
    assert_eq!(offset_of!(QxlOpaque, mask), 47);
    assert_eq!(offset_of!(QxlStroke, attr), 8);
    assert_eq!(offset_of!(QxlStroke, brush), 28);
    assert_eq!(offset_of!(QxlText, fore_brush), 24);
    assert_eq!(offset_of!(QxlComposite, src), 4);
    assert_eq!(offset_of!(QxlComposite, src_origin), 36);
    assert_eq!(offset_of!(QxlString, chunk), 8);
    assert_eq!(offset_of!(QxlDataChunk, prev_chunk), 4);
    assert_eq!(offset_of!(QxlDataChunk, next_chunk), 12);
    assert_eq!(offset_of!(QxlAlphaBlend, src_bitmap), 3);
    assert_eq!(offset_of!(QxlRop3, rop3), 44);
    assert_eq!(offset_of!(QxlCopy, mask), 27);
    // The union of a drawable is as large as its largest member (QXLText).
    assert_eq!(QXL_DRAWABLE_UNION_SIZE, size_of::<QxlText>());
    assert_eq!(QXL_IMAGE_UNION_SIZE, size_of::<QxlBitmap>());
}

#[test]
fn magics() {
    assert_eq!(QXL_ROM_MAGIC.to_le_bytes(), *b"QXRO");
    assert_eq!(QXL_RAM_MAGIC, 0x4152_5851);
    assert_eq!(QXL_ROM_MAGIC, 0x4f52_5851);
}
