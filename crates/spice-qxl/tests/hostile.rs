//! Hostile guest memory: every bad pointer, generation, chain, size and ring gives a typed
//! error, never a panic, an endless loop or a huge allocation.

use spice_qxl::abi::{self, *};
use spice_qxl::memory::{
    GuestMemory, MemSlot, MemSlotTable, SlotLayout, TranslateError, VecMemory, write_u32,
};
use spice_qxl::parse::{CommandExt, ParseError, ParseLimits, ParsedCommand, parse_command};
use spice_qxl::{BarLayout, DeviceConfig, DeviceError, QxlDevice, QxlInterface};
use zerocopy::{FromZeros, Immutable, IntoBytes};

const SLOT_START: u64 = 0x1000;
const SLOT_SIZE: u64 = 0x10000;
const GEN: u32 = 3;
const GROUP: u32 = 1;

struct World {
    mem: VecMemory,
    slots: MemSlotTable,
    limits: ParseLimits,
}

impl World {
    fn new() -> Self {
        let mut slots = MemSlotTable::new(SlotLayout::QEMU).unwrap();
        slots
            .add(
                GROUP,
                1,
                MemSlot {
                    generation: GEN,
                    virt_start: SLOT_START,
                    virt_end: SLOT_START + SLOT_SIZE,
                    addr_delta: SLOT_START,
                },
            )
            .unwrap();
        World {
            mem: VecMemory::new(0x20000),
            slots,
            limits: ParseLimits {
                max_chunks: 100,
                max_command_bytes: 1 << 20,
            },
        }
    }

    /// QXL address of slot offset `off`.
    fn a(&self, off: u64) -> u64 {
        SlotLayout::QEMU.encode(1, GEN, off)
    }

    fn put<T: IntoBytes + Immutable>(&mut self, off: u64, v: &T) {
        self.mem.write(SLOT_START + off, v.as_bytes()).unwrap();
    }

    fn put_bytes(&mut self, off: u64, b: &[u8]) {
        self.mem.write(SLOT_START + off, b).unwrap();
    }

    fn parse(&self, ty: u32, addr: u64) -> Result<ParsedCommand, ParseError> {
        self.parse_flags(ty, addr, 0)
    }

    fn parse_flags(&self, ty: u32, addr: u64, flags: u32) -> Result<ParsedCommand, ParseError> {
        let ext = CommandExt {
            addr,
            cmd_type: ty,
            group_id: GROUP,
            flags,
        };
        parse_command(&self.mem, &self.slots, self.limits, &ext).map_err(|e| e.error)
    }

    /// A copy drawable at `off` whose source image is at slot offset `img`.
    fn copy_drawable(&mut self, off: u64, img: u64) {
        let mut c = QxlCopy::new_zeroed();
        c.src_bitmap = self.a(img).into();
        c.src_area = QxlRect::new(0, 0, 1, 1);
        let mut d = QxlDrawable::new_zeroed();
        d.ty = draw_type::COPY;
        d.u[..size_of::<QxlCopy>()].copy_from_slice(c.as_bytes());
        self.put(off, &d);
    }

    /// A bitmap image at `off`, 32 bpp, `x`×`y`, stride `stride`, data (chunk) at `data` (an
    /// address).
    fn bitmap_image(&mut self, off: u64, x: u32, y: u32, stride: u32, flags: u8, data: u64) {
        let mut img = QxlImage::new_zeroed();
        img.descriptor.ty = image_type::BITMAP;
        let b = QxlBitmap {
            format: bitmap_fmt::THIRTY_TWO_BIT,
            flags,
            x: x.into(),
            y: y.into(),
            stride: stride.into(),
            palette: 0.into(),
            data: data.into(),
        };
        img.u.copy_from_slice(b.as_bytes());
        self.put(off, &img);
    }

    fn chunk(&mut self, off: u64, size: u32, next: u64) {
        self.put(
            off,
            &QxlDataChunk {
                data_size: size.into(),
                prev_chunk: 0.into(),
                next_chunk: next.into(),
            },
        );
    }
}

fn translate_err(e: ParseError) -> TranslateError {
    match e {
        ParseError::Translate { source, .. } => source,
        other => panic!("expected a translation error, got {other:?}"),
    }
}

#[test]
fn valid_copy_parses() {
    let mut w = World::new();
    w.copy_drawable(0x100, 0x200);
    let a = w.a(0x300);
    w.bitmap_image(0x200, 2, 2, 8, 0, a);
    w.chunk(0x300, 16, 0);
    w.put_bytes(0x314, &[7; 16]);
    let ParsedCommand::Draw(d) = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap() else {
        panic!()
    };
    let spice_qxl::DrawOp::Copy(c) = &d.op else {
        panic!()
    };
    let spice_qxl::ImageKind::Bitmap(b) = &c.src.kind else {
        panic!()
    };
    assert_eq!(b.data, vec![7; 16]);
    assert_eq!(d.release.info_offset, SLOT_START + 0x100);
}

#[test]
fn pointer_outside_its_slot() {
    let mut w = World::new();
    // The drawable itself straddles the slot end.
    let e = w.parse(cmd_type::DRAW, w.a(SLOT_SIZE - 100)).unwrap_err();
    assert!(matches!(translate_err(e), TranslateError::OutOfSlot { .. }));
    // A sub-pointer beyond the slot.
    w.copy_drawable(0x100, SLOT_SIZE + 0x1000);
    let e = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err();
    assert!(matches!(translate_err(e), TranslateError::OutOfSlot { .. }));
    // A chunk whose data runs past the slot.
    w.copy_drawable(0x100, 0x200);
    let a = w.a(SLOT_SIZE - 40);
    w.bitmap_image(0x200, 16, 16, 64, 0, a);
    w.chunk(SLOT_SIZE - 40, 1024, 0);
    let e = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err();
    assert!(matches!(translate_err(e), TranslateError::OutOfSlot { .. }));
    // A direct bitmap whose pixels run past the slot.
    let a = w.a(SLOT_SIZE - 8);
    w.bitmap_image(0x200, 4, 4, 16, bitmap_flags::DIRECT, a);
    let e = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err();
    assert!(matches!(translate_err(e), TranslateError::OutOfSlot { .. }));
}

#[test]
fn bad_slot_ids_and_stale_generation() {
    let mut w = World::new();
    w.put(0x100, &QxlUpdateCmd::new_zeroed());
    assert!(w.parse(cmd_type::UPDATE, w.a(0x100)).is_ok());
    let l = SlotLayout::QEMU;
    let stale = l.encode(1, GEN + 1, 0x100);
    assert_eq!(
        translate_err(w.parse(cmd_type::UPDATE, stale).unwrap_err()),
        TranslateError::StaleGeneration {
            addr: stale,
            got: GEN + 1,
            expected: GEN
        }
    );
    let unregistered = l.encode(2, GEN, 0x100);
    assert!(matches!(
        translate_err(w.parse(cmd_type::UPDATE, unregistered).unwrap_err()),
        TranslateError::SlotNotRegistered { slot: 2, .. }
    ));
    let too_big = l.encode(200, GEN, 0x100);
    assert!(matches!(
        translate_err(w.parse(cmd_type::UPDATE, too_big).unwrap_err()),
        TranslateError::SlotIdTooBig { slot: 200, .. }
    ));
    assert_eq!(
        translate_err(w.parse(cmd_type::UPDATE, 0).unwrap_err()),
        TranslateError::Null
    );
    let ext = CommandExt {
        addr: w.a(0x100),
        cmd_type: cmd_type::UPDATE,
        group_id: 9,
        flags: 0,
    };
    let e = parse_command(&w.mem, &w.slots, w.limits, &ext)
        .unwrap_err()
        .error;
    assert_eq!(translate_err(e), TranslateError::BadGroup(9));
    // A deleted slot stops translating.
    w.slots.remove(GROUP, 1).unwrap();
    assert!(matches!(
        translate_err(w.parse(cmd_type::UPDATE, w.a(0x100)).unwrap_err()),
        TranslateError::SlotNotRegistered { .. }
    ));
}

#[test]
fn address_arithmetic_overflow() {
    let mut slots = MemSlotTable::new(SlotLayout::QEMU).unwrap();
    // A delta that makes host offsets wrap around u64.
    slots
        .add(
            1,
            1,
            MemSlot {
                generation: 0,
                virt_start: 0,
                virt_end: u64::MAX,
                addr_delta: u64::MAX - 10,
            },
        )
        .unwrap();
    let addr = SlotLayout::QEMU.encode(1, 0, 5);
    assert!(matches!(
        slots.translate(1, addr, 100),
        Err(TranslateError::OutOfSlot { .. })
    ));
    assert!(slots.translate_at(1, addr, u64::MAX, 2).is_err());
    // Layouts that leave no offset bits are refused.
    let bad = SlotLayout {
        num_groups: 1,
        num_slots: 1,
        gen_bits: 32,
        id_bits: 32,
    };
    assert!(MemSlotTable::new(bad).is_err());
    assert!(
        slots
            .add(
                1,
                1,
                MemSlot {
                    generation: 0,
                    virt_start: 10,
                    virt_end: 5,
                    addr_delta: 0
                }
            )
            .is_err()
    );
    assert!(
        slots
            .add(
                1,
                1,
                MemSlot {
                    generation: 256,
                    virt_start: 0,
                    virt_end: 5,
                    addr_delta: 0
                }
            )
            .is_err()
    );
}

#[test]
fn chunk_chain_that_loops() {
    let mut w = World::new();
    w.copy_drawable(0x100, 0x200);
    let a = w.a(0x300);
    w.bitmap_image(0x200, 4, 4, 16, 0, a);
    // Self loop, with data.
    w.chunk(0x300, 4, a);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::TooManyChunks { limit: 100, .. })
    ));
    // Two-chunk cycle of empty chunks.
    let b = w.a(0x400);
    w.chunk(0x300, 0, b);
    w.chunk(0x400, 0, a);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::TooManyChunks { .. })
    ));
}

#[test]
fn clip_rect_chain_that_loops() {
    let mut w = World::new();
    let mut d = QxlDrawable::new_zeroed();
    d.ty = draw_type::NOP;
    d.clip = QxlClip {
        ty: clip_type::RECTS.into(),
        data: w.a(0x200).into(),
    };
    w.put(0x100, &d);
    // QXLClipRects with its inline first chunk pointing back at itself.
    let inline = w.a(0x204);
    w.put(
        0x200,
        &QxlClipRects {
            num_rects: 1.into(),
            chunk: QxlDataChunk {
                data_size: 16.into(),
                prev_chunk: 0.into(),
                next_chunk: inline.into(),
            },
        },
    );
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::TooManyChunks { .. })
    ));
    // Valid: 2 rects, one per chunk.
    let next = w.a(0x300);
    w.put(
        0x200,
        &QxlClipRects {
            num_rects: 2.into(),
            chunk: QxlDataChunk {
                data_size: 16.into(),
                prev_chunk: 0.into(),
                next_chunk: next.into(),
            },
        },
    );
    w.put(0x218, &QxlRect::new(1, 2, 3, 4));
    w.chunk(0x300, 16, 0);
    w.put(0x314, &QxlRect::new(5, 6, 7, 8));
    let ParsedCommand::Draw(d) = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap() else {
        panic!()
    };
    let spice_qxl::Clip::Rects(r) = &d.clip else {
        panic!()
    };
    assert_eq!(r.len(), 2);
    assert_eq!((r[1].top, r[1].right), (5, 8));
    // num_rects disagreeing with the data size.
    w.put(
        0x200,
        &QxlClipRects {
            num_rects: 0x4000_0000.into(),
            chunk: QxlDataChunk {
                data_size: 16.into(),
                prev_chunk: 0.into(),
                next_chunk: next.into(),
            },
        },
    );
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::SizeMismatch { .. })
    ));
    // Unknown clip type.
    let mut d = QxlDrawable::new_zeroed();
    d.clip.ty = 7.into();
    w.put(0x100, &d);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::UnknownClipType(7)
    );
}

#[test]
fn sizes_that_overflow_or_exceed_caps() {
    let mut w = World::new();
    w.copy_drawable(0x100, 0x200);
    let a = w.a(0x300);
    // y * stride = ~2^64: refused before any allocation.
    w.bitmap_image(0x200, 0xffff_ffff / 4, 0xffff_ffff, 0xffff_ffff, 0, a);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::DataTooLarge { .. })
    ));
    // Stride too small for the width.
    w.bitmap_image(0x200, 100, 1, 10, 0, a);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::StrideTooSmall { .. })
    ));
    // Zero area.
    w.bitmap_image(0x200, 0, 1, 10, 0, a);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::ZeroAreaBitmap
    );
    // Chunk with data_size 0xffffffff.
    w.bitmap_image(0x200, 1, 1, 4, 0, a);
    w.chunk(0x300, u32::MAX, 0);
    assert!(matches!(
        translate_err(w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err()),
        TranslateError::OutOfSlot { .. }
    ));
    // Chunks that together exceed the command budget: 100 chunks of 0x100 bytes > 0x4000,
    // behind a bitmap that declares only 0x100 bytes (the budget stops the gathering).
    w.limits.max_command_bytes = 0x4000;
    w.limits.max_chunks = 1000;
    for i in 0..100u64 {
        let next = if i == 99 {
            0
        } else {
            w.a(0x1000 + (i + 1) * 0x200)
        };
        w.chunk(0x1000 + i * 0x200, 0x100, next);
    }
    let first = w.a(0x1000);
    w.bitmap_image(0x200, 0x40, 1, 0x100, 0, first);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::DataTooLarge { .. })
    ));
    w.limits.max_command_bytes = 1 << 20;
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::SizeMismatch { .. })
    ));
    w.bitmap_image(0x200, 0x40, 100, 0x100, 0, first);
    assert!(w.parse(cmd_type::DRAW, w.a(0x100)).is_ok());
    // A declared size beyond the budget is refused before reading any chunk.
    w.limits.max_command_bytes = 0x4000;
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::DataTooLarge { .. })
    ));
    w.limits.max_command_bytes = 1 << 20;
    // Data size disagreeing with y * stride.
    w.bitmap_image(0x200, 0x40, 99, 0x100, 0, first);
    assert!(matches!(
        w.parse(cmd_type::DRAW, w.a(0x100)),
        Err(ParseError::SizeMismatch { .. })
    ));
}

#[test]
fn palettes_and_formats() {
    let mut w = World::new();
    w.copy_drawable(0x100, 0x200);
    let data = w.a(0x300);
    w.chunk(0x300, 4, 0);
    let mut img = QxlImage::new_zeroed();
    img.descriptor.ty = image_type::BITMAP;
    let mut b = QxlBitmap {
        format: bitmap_fmt::EIGHT_BIT,
        flags: 0,
        x: 4.into(),
        y: 1.into(),
        stride: 4.into(),
        palette: 0.into(),
        data: data.into(),
    };
    img.u.copy_from_slice(b.as_bytes());
    w.put(0x200, &img);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::MissingPalette(bitmap_fmt::EIGHT_BIT)
    );
    // A palette whose entries run past the slot.
    b.palette = w.a(SLOT_SIZE - 100).into();
    img.u.copy_from_slice(b.as_bytes());
    w.put(0x200, &img);
    w.put(
        SLOT_SIZE - 100,
        &QxlPalette {
            unique: 1.into(),
            num_ents: 0xffff.into(),
        },
    );
    assert!(matches!(
        translate_err(w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err()),
        TranslateError::OutOfSlot { .. }
    ));
    // A good palette, with 16 bpp compat colours widened.
    b.palette = w.a(0x500).into();
    img.u.copy_from_slice(b.as_bytes());
    w.put(0x200, &img);
    w.put(
        0x500,
        &QxlPalette {
            unique: 1.into(),
            num_ents: 2.into(),
        },
    );
    w.put_bytes(0x50a, &[0xff, 0x7f, 0, 0, 0x1f, 0, 0, 0]);
    let ParsedCommand::Draw(d) = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap() else {
        panic!()
    };
    let spice_qxl::DrawOp::Copy(c) = &d.op else {
        panic!()
    };
    let spice_qxl::ImageKind::Bitmap(bm) = &c.src.kind else {
        panic!()
    };
    assert_eq!(bm.palette.as_ref().unwrap().entries, vec![0x7fff, 0x1f]);
    assert_eq!(spice_qxl::parse::color_16_to_32(0x7fff), 0x00ff_ffff);
    assert_eq!(spice_qxl::parse::color_16_to_32(0x001f), 0x0000_00ff);
    // Unknown format / image type.
    b.format = 42;
    img.u.copy_from_slice(b.as_bytes());
    w.put(0x200, &img);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::UnknownBitmapFormat(42)
    );
    img.descriptor.ty = image_type::LZ_RGB;
    w.put(0x200, &img);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::UnknownImageType(image_type::LZ_RGB)
    );
}

#[test]
fn copy_source_area_outside_bitmap() {
    let mut w = World::new();
    let mut c = QxlCopy::new_zeroed();
    c.src_bitmap = w.a(0x200).into();
    c.src_area = QxlRect::new(0, 0, 5, 5);
    let mut d = QxlDrawable::new_zeroed();
    d.ty = draw_type::COPY;
    d.u[..44].copy_from_slice(c.as_bytes());
    w.put(0x100, &d);
    let a = w.a(0x300);
    w.bitmap_image(0x200, 2, 2, 8, 0, a);
    w.chunk(0x300, 16, 0);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::BadSourceArea
    );
}

#[test]
fn paths_glyphs_and_strings() {
    let mut w = World::new();
    let mut s = QxlStroke::new_zeroed();
    s.path = w.a(0x200).into();
    let mut d = QxlDrawable::new_zeroed();
    d.ty = draw_type::STROKE;
    d.u[..52].copy_from_slice(s.as_bytes());
    w.put(0x100, &d);
    // One segment claiming 2^32-1 points.
    w.put(
        0x200,
        &QxlPath {
            data_size: 24.into(),
            chunk: QxlDataChunk {
                data_size: 24.into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        },
    );
    w.put(
        0x218,
        &QxlPathSeg {
            flags: 1.into(),
            count: u32::MAX.into(),
        },
    );
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::BadPathSegment
    );
    w.put(
        0x218,
        &QxlPathSeg {
            flags: 1.into(),
            count: 2.into(),
        },
    );
    let ParsedCommand::Draw(p) = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap() else {
        panic!()
    };
    let spice_qxl::DrawOp::Stroke { path, .. } = &p.op else {
        panic!()
    };
    assert_eq!(path[0].points.len(), 2);
    // Styled line whose style array is outside the slot.
    s.attr.flags = line_flags::STYLED;
    s.attr.style_nseg = 255;
    s.attr.style = w.a(SLOT_SIZE - 4).into();
    d.u[..52].copy_from_slice(s.as_bytes());
    w.put(0x100, &d);
    assert!(matches!(
        translate_err(w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err()),
        TranslateError::OutOfSlot { .. }
    ));

    // Text: a glyph larger than the data.
    let mut t = QxlText::new_zeroed();
    t.str = w.a(0x400).into();
    let mut d = QxlDrawable::new_zeroed();
    d.ty = draw_type::TEXT;
    d.u[..68].copy_from_slice(t.as_bytes());
    w.put(0x100, &d);
    let glyph = QxlRasterGlyph {
        render_pos: QxlPoint::new(0, 0),
        glyph_origin: QxlPoint::new(0, 0),
        width: 0xffff.into(),
        height: 0xffff.into(),
    };
    w.put(
        0x400,
        &QxlString {
            data_size: 24.into(),
            length: 1.into(),
            flags: string_flags::RASTER_A8.into(),
            chunk: QxlDataChunk {
                data_size: 24.into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        },
    );
    w.put(0x41c, &glyph);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::BadGlyph
    );
    // A 2x2 A8 glyph: 4 bytes; length field disagreeing.
    let glyph = QxlRasterGlyph {
        width: 2.into(),
        height: 2.into(),
        ..glyph
    };
    w.put(0x41c, &glyph);
    w.put(
        0x400,
        &QxlString {
            data_size: 24.into(),
            length: 3.into(),
            flags: string_flags::RASTER_A8.into(),
            chunk: QxlDataChunk {
                data_size: 24.into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        },
    );
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::GlyphCountMismatch {
            declared: 3,
            actual: 1
        }
    );
    w.put(
        0x400,
        &QxlString {
            data_size: 24.into(),
            length: 1.into(),
            flags: 0.into(),
            chunk: QxlDataChunk {
                data_size: 24.into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        },
    );
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::BadStringFlags(0)
    );
    w.put(
        0x400,
        &QxlString {
            data_size: 24.into(),
            length: 1.into(),
            flags: string_flags::RASTER_A8.into(),
            chunk: QxlDataChunk {
                data_size: 24.into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        },
    );
    let ParsedCommand::Draw(p) = w.parse(cmd_type::DRAW, w.a(0x100)).unwrap() else {
        panic!()
    };
    let spice_qxl::DrawOp::Text { string, .. } = &p.op else {
        panic!()
    };
    assert_eq!(string.glyphs[0].data.len(), 4);
}

#[test]
fn surfaces_messages_cursors_and_unknown_types() {
    let mut w = World::new();
    let mut s = QxlSurfaceCmd::new_zeroed();
    s.ty = surface_cmd::CREATE;
    s.u = QxlSurface {
        format: surface_fmt::XRGB32.into(),
        width: 16.into(),
        height: 16.into(),
        stride: i32::MIN.into(),
        data: w.a(0x1000).into(),
    };
    w.put(0x100, &s);
    let ext = CommandExt {
        addr: w.a(0x100),
        cmd_type: cmd_type::SURFACE,
        group_id: GROUP,
        flags: 0,
    };
    let err = parse_command(&w.mem, &w.slots, w.limits, &ext).unwrap_err();
    assert!(matches!(err.error, ParseError::InvalidSurface { .. }));
    // The release location is known even though the contents were bad.
    assert_eq!(err.release.unwrap().info_offset, SLOT_START + 0x100);
    // Pixels that do not fit the slot.
    s.u.stride = 64.into();
    s.u.height = 0x1000.into();
    w.put(0x100, &s);
    assert!(matches!(
        translate_err(w.parse(cmd_type::SURFACE, w.a(0x100)).unwrap_err()),
        TranslateError::OutOfSlot { .. }
    ));
    s.u.format = 3.into();
    w.put(0x100, &s);
    assert!(matches!(
        w.parse(cmd_type::SURFACE, w.a(0x100)),
        Err(ParseError::InvalidSurface { .. })
    ));
    s.ty = 9;
    w.put(0x100, &s);
    assert_eq!(
        w.parse(cmd_type::SURFACE, w.a(0x100)).unwrap_err(),
        ParseError::UnknownSurfaceCmd(9)
    );

    // A message with no NUL before the slot end.
    w.put_bytes(SLOT_SIZE - 64, &[b'x'; 64]);
    assert_eq!(
        w.parse(cmd_type::MESSAGE, w.a(SLOT_SIZE - 64)).unwrap_err(),
        ParseError::UnterminatedMessage
    );

    // Cursor: shape chunk loop, unknown type.
    let mut c = QxlCursorCmd::new_zeroed();
    c.ty = cursor_cmd::SET;
    let set = QxlCursorSet {
        position: QxlPoint16 {
            x: 1.into(),
            y: 2.into(),
        },
        visible: 1,
        shape: w.a(0x300).into(),
    };
    c.u.copy_from_slice(set.as_bytes());
    w.put(0x200, &c);
    let mut cur = QxlCursor::new_zeroed();
    cur.chunk.next_chunk = w.a(0x300 + 22).into();
    w.put(0x300, &cur);
    assert!(matches!(
        w.parse(cmd_type::CURSOR, w.a(0x200)),
        Err(ParseError::TooManyChunks { .. })
    ));
    c.ty = 77;
    w.put(0x200, &c);
    assert_eq!(
        w.parse(cmd_type::CURSOR, w.a(0x200)).unwrap_err(),
        ParseError::UnknownCursorCmd(77)
    );

    assert_eq!(
        w.parse(99, w.a(0x200)).unwrap_err(),
        ParseError::UnknownCommandType(99)
    );
    let mut d = QxlDrawable::new_zeroed();
    d.ty = 99;
    w.put(0x100, &d);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::UnknownDrawType(99)
    );
    d.ty = draw_type::FILL;
    d.u[0] = 9;
    w.put(0x100, &d);
    assert_eq!(
        w.parse(cmd_type::DRAW, w.a(0x100)).unwrap_err(),
        ParseError::UnknownBrushType(9)
    );
    // Composite does not exist in the compat layout.
    let mut cd = QxlCompatDrawable::new_zeroed();
    cd.ty = draw_type::COMPOSITE;
    w.put(0x100, &cd);
    assert_eq!(
        w.parse_flags(cmd_type::DRAW, w.a(0x100), QXL_COMMAND_FLAG_COMPAT)
            .unwrap_err(),
        ParseError::UnknownDrawType(draw_type::COMPOSITE)
    );
}

fn device() -> QxlDevice<VecMemory> {
    let bars = BarLayout::contiguous(1 << 16, 1 << 16);
    QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .unwrap()
}

#[test]
fn ring_with_prod_and_cons_far_apart() {
    let mut dev = device();
    let ring = dev.cmd_ring();
    write_u32(dev.memory_mut(), ring.offset + 4, 1000).unwrap();
    write_u32(dev.memory_mut(), ring.offset + 8 + 4, 3).unwrap();
    let h = dev.ram_header_offset();
    write_u32(dev.memory_mut(), h + abi::ram_offsets::INT_MASK, u32::MAX).unwrap();
    assert!(dev.get_command().is_none());
    assert!(dev.guest_bug());
    assert!(dev.irq_level(), "the error interrupt is raised");
    // Stopped until reset: even a fixed ring yields nothing.
    write_u32(dev.memory_mut(), ring.offset + 4, 3).unwrap();
    assert!(dev.get_command().is_none());
    assert_eq!(
        dev.io_write(abi::io::NOTIFY_CMD, 0),
        Err(DeviceError::GuestBug)
    );
    dev.io_write(abi::io::RESET, 0).unwrap();
    assert!(!dev.guest_bug());
    assert!(dev.get_command().is_none());
    // The same on the cursor ring, with cons ahead of prod.
    let ring = dev.cursor_ring();
    write_u32(dev.memory_mut(), ring.offset + 12, 5).unwrap();
    assert!(dev.get_cursor_command().is_none());
    assert!(dev.guest_bug());
}

#[test]
fn hostile_release_ring_does_not_break_the_device() {
    let mut dev = device();
    let ring = dev.release_ring();
    // cons far from prod.
    write_u32(dev.memory_mut(), ring.offset + 12, 0x8000_0000).unwrap();
    // A release info inside memory.
    let info = spice_qxl::ReleaseInfoExt {
        info_offset: dev.ram_header_offset() - 64,
        group_id: 1,
    };
    dev.release_resource(info);
    assert_eq!(dev.flush_resources(), 0);
    assert!(dev.guest_bug());
    // A release info outside memory.
    dev.reset().unwrap();
    dev.release_resource(spice_qxl::ReleaseInfoExt {
        info_offset: u64::MAX - 3,
        group_id: 1,
    });
    assert!(dev.guest_bug());
}

#[test]
fn memslot_add_outside_the_bars() {
    let mut dev = device();
    let h = dev.ram_header_offset();
    let bars = dev.config().bars;
    // Beyond the RAM BAR.
    let ms = QxlMemSlot {
        mem_start: bars.ram_guest_phys.into(),
        mem_end: (bars.ram_guest_phys + bars.ram_size + 1).into(),
    };
    dev.memory_mut()
        .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())
        .unwrap();
    assert!(matches!(
        dev.io_write(io::MEMSLOT_ADD, 1),
        Err(DeviceError::SlotOutsideBars { .. })
    ));
    assert!(dev.guest_bug());
    dev.reset().unwrap();
    // Inverted.
    let ms = QxlMemSlot {
        mem_start: (bars.ram_guest_phys + 10).into(),
        mem_end: bars.ram_guest_phys.into(),
    };
    dev.memory_mut()
        .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())
        .unwrap();
    assert!(dev.io_write(io::MEMSLOT_ADD, 1).is_err());
    dev.reset().unwrap();
    // Slot id beyond the table.
    let ms = QxlMemSlot {
        mem_start: bars.ram_guest_phys.into(),
        mem_end: (bars.ram_guest_phys + 4096).into(),
    };
    dev.memory_mut()
        .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())
        .unwrap();
    assert!(matches!(
        dev.io_write(io::MEMSLOT_ADD, 8),
        Err(DeviceError::Slot(_))
    ));
    dev.reset().unwrap();
    dev.memory_mut()
        .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())
        .unwrap();
    dev.io_write(io::MEMSLOT_ADD, 7).unwrap();
    assert_eq!(dev.slots().get(1, 7).unwrap().virt_start, bars.ram_offset);
}

#[test]
fn hostile_primary_surface_and_monitors_config() {
    let mut dev = device();
    let h = dev.ram_header_offset();
    let mut c = QxlSurfaceCreate::new_zeroed();
    c.width = 100000.into();
    c.height = 100000.into();
    c.stride = 400000.into();
    c.format = surface_fmt::XRGB32.into();
    dev.memory_mut()
        .write(h + ram_offsets::CREATE_SURFACE, c.as_bytes())
        .unwrap();
    assert!(matches!(
        dev.io_write(io::CREATE_PRIMARY, 0),
        Err(DeviceError::Surface(_))
    ));
    dev.reset().unwrap();
    // Monitors config with too many heads.
    let bars = dev.config().bars;
    let ms = QxlMemSlot {
        mem_start: bars.ram_guest_phys.into(),
        mem_end: (bars.ram_guest_phys + 4096).into(),
    };
    dev.memory_mut()
        .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())
        .unwrap();
    dev.io_write(io::MEMSLOT_ADD, 1).unwrap();
    let addr = SlotLayout::QEMU.encode(1, 0, 0x100);
    dev.memory_mut()
        .write(
            bars.ram_offset + 0x100,
            QxlMonitorsConfig {
                count: 1000.into(),
                max_allowed: 0.into(),
            }
            .as_bytes(),
        )
        .unwrap();
    dev.memory_mut()
        .write(h + ram_offsets::MONITORS_CONFIG, &addr.to_le_bytes())
        .unwrap();
    assert!(matches!(
        dev.io_write(io::MONITORS_CONFIG_ASYNC, 0),
        Err(DeviceError::MonitorsConfig(ParseError::TooManyHeads { .. }))
    ));
    // The failed async op does not block the next one.
    dev.memory_mut()
        .write(
            bars.ram_offset + 0x100,
            QxlMonitorsConfig {
                count: 2.into(),
                max_allowed: 4.into(),
            }
            .as_bytes(),
        )
        .unwrap();
    match dev.io_write(io::MONITORS_CONFIG_ASYNC, 0).unwrap() {
        spice_qxl::IoRequest::MonitorsConfig { config, cookie } => {
            assert_eq!(config.heads.len(), 2);
            // A second async I/O while one is pending is refused.
            assert!(matches!(
                dev.io_write(io::FLUSH_SURFACES_ASYNC, 0),
                Err(DeviceError::AsyncPending { .. })
            ));
            dev.async_complete(cookie);
            assert!(matches!(
                dev.io_write(io::FLUSH_SURFACES_ASYNC, 0),
                Ok(spice_qxl::IoRequest::FlushSurfaces { .. })
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dev.io_write(77, 0), Err(DeviceError::UnknownPort(77)));
}
