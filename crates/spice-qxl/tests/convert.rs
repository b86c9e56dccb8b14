//! Conversion of what the guest driver writes into spice-proto display and cursor messages:
//! golden bytes for fill, copy and cursor set, every draw type, image substitution, cursor
//! commands, and the spice-server rules (flags, masks, strings, composite bits).

use spice_proto::ChannelMessage;
use spice_proto::channel::ChannelType;
use spice_proto::cursor;
use spice_proto::display::{self, ServerMessage as M};
use spice_proto::types::{
    self, BitmapFlags, Brush as PBrush, CompositeFlags, CursorFlags, ImageBody, ImageFlags,
    LineFlags, PaletteSource, StringFlags,
};
use spice_qxl::abi::{self, draw_type};
use spice_qxl::convert::{
    ConvertError, ConvertedCursor, ConvertedDrawable, CursorCaching, ImageRole, SlotContent,
    cursor_data_size, encode_cursor, encode_display, encode_roundtrip,
};
use spice_qxl::guest::{CommandBuilder, GuestBitmap, GuestGlyph, drawable};
use spice_qxl::parse::{CommandExt, ParseLimits, ParsedCommand, Rect, parse_command};
use spice_qxl::{BarLayout, DeviceConfig, GuestDriver, QxlDevice, QxlInterface, VecMemory};
use zerocopy::{FromZeros, IntoBytes};

fn setup() -> (QxlDevice<VecMemory>, GuestDriver) {
    let bars = BarLayout::contiguous(1 << 20, 1 << 20);
    let mut dev = QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .unwrap();
    let g = GuestDriver::attach(&mut dev, 1).unwrap();
    (dev, g)
}

fn r(top: i32, left: i32, bottom: i32, right: i32) -> Rect {
    Rect {
        top,
        left,
        bottom,
        right,
    }
}

fn none_clip() -> abi::QxlClip {
    abi::QxlClip {
        ty: abi::clip_type::NONE.into(),
        data: 0.into(),
    }
}

fn next_cmd(dev: &mut QxlDevice<VecMemory>) -> ParsedCommand {
    let ext = dev.get_command().expect("a command");
    dev.parse_command(&ext).expect("parses")
}

fn next_draw(dev: &mut QxlDevice<VecMemory>) -> ConvertedDrawable {
    let ParsedCommand::Draw(d) = next_cmd(dev) else {
        panic!("not a drawable")
    };
    ConvertedDrawable::new(*d).expect("converts")
}

fn next_cursor(dev: &mut QxlDevice<VecMemory>) -> ConvertedCursor {
    let ext = dev.get_cursor_command().expect("a cursor command");
    let ParsedCommand::Cursor(c) = dev.parse_command(&ext).unwrap() else {
        panic!()
    };
    ConvertedCursor::from(c)
}

/// Encode, decode again, and check both agree; returns the bytes.
fn roundtrip(m: &M<'_>) -> Vec<u8> {
    let bytes = encode_display(m).unwrap();
    let back = M::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes).unwrap();
    assert_eq!(&back, m);
    bytes
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn rect_bytes(t: i32, l: i32, b: i32, rt: i32) -> Vec<u8> {
    [t, l, b, rt].iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn fill_golden_bytes() {
    let (mut dev, mut g) = setup();
    g.fill(
        dev.memory_mut(),
        0,
        r(0, 0, 4, 4),
        0xff0000,
        Some(&[r(0, 0, 2, 2)]),
    )
    .unwrap();
    let c = next_draw(&mut dev);
    assert!(c.images().is_empty());
    assert_eq!(c.msg_type(), display::msg::DRAW_FILL);
    let m = c.raw_message().unwrap();
    let bytes = roundtrip(&m);
    let mut want = Vec::new();
    want.extend(le32(0)); // surface
    want.extend(rect_bytes(0, 0, 4, 4)); // box
    want.push(1); // clip RECTS
    want.extend(le32(1));
    want.extend(rect_bytes(0, 0, 2, 2));
    want.push(1); // brush SOLID
    want.extend(le32(0xff0000));
    want.extend(8u16.to_le_bytes()); // OP_PUT
    want.push(0); // mask flags
    want.extend([0; 8]); // mask pos
    want.extend(le32(0)); // mask bitmap NULL
    assert_eq!(bytes, want);
}

#[test]
fn copy_golden_bytes_and_image_flags() {
    let (mut dev, mut g) = setup();
    let px: Vec<u8> = (0..16).collect();
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let mut bmp = GuestBitmap::xrgb32(0x77, 2, 2, &px);
    bmp.image_flags = abi::image_flags::CACHE | abi::image_flags::HIGH_BITS_SET;
    bmp.chunk_size = 5; // rows split across four chunks
    let img = b.bitmap_image(mem, &bmp).unwrap();
    let mut c = abi::QxlCopy::new_zeroed();
    c.src_bitmap = img.into();
    c.src_area = abi::QxlRect::new(0, 0, 2, 2);
    c.rop_descriptor = 8.into();
    let d = drawable(
        0,
        draw_type::COPY,
        r(10, 20, 12, 22),
        none_clip(),
        c.as_bytes(),
    );
    b.submit_draw(mem, &d).unwrap();

    let conv = next_draw(&mut dev);
    assert_eq!(conv.msg_type(), display::msg::DRAW_COPY);
    let slots = conv.images();
    assert_eq!(slots.len(), 1);
    let s = &slots[0];
    assert_eq!(s.role(), ImageRole::Source);
    assert!(s.cache_me() && s.high_bits_set());
    assert_eq!(s.id(), 0x77);
    assert_eq!(
        s.parsed_flags(),
        ImageFlags::CACHE_ME | ImageFlags::HIGH_BITS_SET
    );
    assert_eq!(s.wire_flags(), ImageFlags::HIGH_BITS_SET);
    let b = s.bitmap().unwrap();
    assert_eq!((b.width, b.height, b.stride), (2, 2, 8));
    assert!(b.top_down());
    assert_eq!(b.data, px);
    assert_eq!(
        conv.source(),
        Some((
            0,
            types::Rect {
                top: 0,
                left: 0,
                bottom: 2,
                right: 2
            }
        ))
    );

    let m = conv.raw_message().unwrap();
    let bytes = roundtrip(&m);
    let mut want = Vec::new();
    want.extend(le32(0));
    want.extend(rect_bytes(10, 20, 12, 22));
    want.push(0); // no clip
    want.extend(le32(57)); // image pointer: after the 57-byte fixed part
    want.extend(rect_bytes(0, 0, 2, 2));
    want.extend(8u16.to_le_bytes());
    want.push(0); // scale mode
    want.push(0);
    want.extend([0; 8]);
    want.extend(le32(0));
    assert_eq!(want.len(), 57);
    want.extend(0x77u64.to_le_bytes());
    want.push(0); // BITMAP
    want.push(2); // HIGH_BITS_SET only: CACHE_ME is the server's cache decision
    want.extend(le32(2));
    want.extend(le32(2));
    want.push(8); // 32BIT
    want.push(4); // TOP_DOWN
    want.extend(le32(2));
    want.extend(le32(2));
    want.extend(le32(8));
    want.extend(le32(0)); // no palette
    want.extend(&px);
    assert_eq!(bytes, want);
}

#[test]
fn images_can_be_substituted() {
    let (mut dev, mut g) = setup();
    let px = [0u8; 64];
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let img = b
        .bitmap_image(mem, &GuestBitmap::xrgb32(5, 4, 4, &px))
        .unwrap();
    let mask_bits = [0xf0u8; 4];
    let mask = b
        .bitmap_image(
            mem,
            &GuestBitmap {
                id: 6,
                image_flags: 0,
                format: abi::bitmap_fmt::ONE_BIT_BE,
                width: 4,
                height: 4,
                stride: 1,
                top_down: false,
                data: &mask_bits,
                palette: None,
                chunk_size: 0,
            },
        )
        .unwrap();
    let mut c = abi::QxlCopy::new_zeroed();
    c.src_bitmap = img.into();
    c.src_area = abi::QxlRect::new(0, 0, 4, 4);
    c.rop_descriptor = 8.into();
    c.mask.bitmap = mask.into();
    c.mask.flags = 1;
    c.mask.pos = abi::QxlPoint {
        x: 1.into(),
        y: 2.into(),
    };
    let d = drawable(
        0,
        draw_type::BLEND,
        r(0, 0, 4, 4),
        none_clip(),
        c.as_bytes(),
    );
    b.submit_draw(mem, &d).unwrap();

    let conv = next_draw(&mut dev);
    let roles: Vec<_> = conv.images().iter().map(|s| s.role()).collect();
    assert_eq!(roles, [ImageRole::Source, ImageRole::Mask]);
    let mbmp = conv.images()[1].bitmap().unwrap();
    assert!(!mbmp.top_down());
    assert_eq!(mbmp.data, mask_bits);
    assert_eq!(mbmp.row_bytes(), 1);
    assert_eq!(mbmp.rows().count(), 4);

    // Wrong count.
    assert_eq!(
        conv.message(vec![]).unwrap_err(),
        ConvertError::ImageCount {
            expected: 2,
            given: 0
        }
    );
    // The source as a (fake) QUIC stream with CACHE_ME, the mask from the cache.
    let quic = [1u8, 2, 3, 4, 5];
    let src = conv.images()[0].encoded(ImageFlags::CACHE_ME, ImageBody::Quic(&quic));
    let m = conv
        .message(vec![src, conv.images()[1].from_cache(false)])
        .unwrap();
    let M::DrawBlend(dc) = &m else { panic!() };
    let s = dc.src_bitmap.as_ref().unwrap();
    assert_eq!((s.id, s.width, s.height), (5, 4, 4));
    assert_eq!(s.body, ImageBody::Quic(&quic));
    assert_eq!(dc.mask.bitmap.as_ref().unwrap().body, ImageBody::FromCache);
    assert_eq!(dc.mask.pos, types::Point { x: 1, y: 2 });
    let bytes = roundtrip(&m);
    // Source pointee first, then the mask's: 18 + 4 + 5 bytes, then an 18-byte descriptor.
    assert_eq!(bytes.len(), 57 + 27 + 18);
}

#[test]
fn palette_bitmaps_and_palette_caching() {
    let (mut dev, mut g) = setup();
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let idx = [0u8, 1, 9, 2, 3, 9];
    let pal = [0x000000u32, 0xffffff];
    let img = b
        .bitmap_image(
            mem,
            &GuestBitmap {
                id: 9,
                image_flags: 0,
                format: abi::bitmap_fmt::EIGHT_BIT,
                width: 2,
                height: 2,
                stride: 3,
                top_down: false,
                data: &idx,
                palette: Some((0xabc, &pal)),
                chunk_size: 3,
            },
        )
        .unwrap();
    let mut o = abi::QxlOpaque::new_zeroed();
    o.src_bitmap = img.into();
    o.src_area = abi::QxlRect::new(0, 0, 2, 2);
    o.brush.ty = abi::brush_type::SOLID.into();
    o.brush.u[..4].copy_from_slice(&0x123456u32.to_le_bytes());
    o.rop_descriptor = 8.into();
    o.scale_mode = 1;
    let d = drawable(
        0,
        draw_type::OPAQUE,
        r(0, 0, 2, 2),
        none_clip(),
        o.as_bytes(),
    );
    b.submit_draw(mem, &d).unwrap();
    let conv = next_draw(&mut dev);
    // Bottom-up rows with a padding byte: rows() cuts the padding, rows_top_down() reverses.
    let pb = conv.images()[0].bitmap().unwrap();
    assert_eq!(pb.rows().collect::<Vec<_>>(), [&[0u8, 1][..], &[2, 3]]);
    assert_eq!(
        pb.rows_top_down().collect::<Vec<_>>(),
        [&[2u8, 3][..], &[0, 1]]
    );
    let raw = conv.images()[0].raw().unwrap();
    let ImageBody::Bitmap(bm) = &raw.body else {
        panic!()
    };
    assert_eq!(
        bm.palette,
        PaletteSource::Inline(types::Palette {
            unique: 0xabc,
            ents: pal.to_vec()
        })
    );
    roundtrip(&conv.raw_message().unwrap());
    // The palette taken from the client's palette cache.
    let cached = conv.images()[0]
        .raw_with(
            ImageFlags::empty(),
            Some((PaletteSource::FromCache(0xabc), BitmapFlags::PAL_FROM_CACHE)),
        )
        .unwrap();
    let m = conv.message(vec![cached]).unwrap();
    let M::DrawOpaque(op) = &m else { panic!() };
    assert_eq!(op.brush, PBrush::Solid(0x123456));
    assert_eq!(op.scale_mode, types::ImageScaleMode::NEAREST);
    let bytes = roundtrip(&m);
    // No palette pointee: the palette id is inline.
    assert!(bytes.ends_with(&idx));
}

/// Push one drawable of each draw type, convert each, check what it became.
#[test]
fn every_draw_type() {
    let (mut dev, mut g) = setup();
    let px: Vec<u8> = (0..64).collect();
    let glyph = [0b1010_0000u8, 0b0101_0000];
    let mut want = Vec::new();
    for ty in 1..=14u8 {
        let mem = dev.memory_mut();
        let mut b = g.builder();
        let img = b
            .bitmap_image(mem, &GuestBitmap::xrgb32(100 + u64::from(ty), 4, 4, &px))
            .unwrap();
        let pat = b
            .bitmap_image(mem, &GuestBitmap::xrgb32(200, 2, 2, &px[..16]))
            .unwrap();
        let clip = b.clip(mem, Some(&[r(0, 0, 2, 2), r(2, 2, 4, 4)])).unwrap();
        let mut pattern = abi::QxlBrush::new_zeroed();
        pattern.ty = abi::brush_type::PATTERN.into();
        pattern.u[..8].copy_from_slice(&pat.to_le_bytes());
        pattern.u[8..12].copy_from_slice(&3i32.to_le_bytes());
        let mut solid = abi::QxlBrush::new_zeroed();
        solid.ty = abi::brush_type::SOLID.into();
        solid.u[..4].copy_from_slice(&0xabcdefu32.to_le_bytes());
        let area = abi::QxlRect::new(0, 0, 4, 4);
        let u: Vec<u8> = match ty {
            draw_type::FILL => {
                let mut f = abi::QxlFill::new_zeroed();
                f.brush = pattern;
                f.rop_descriptor = 8.into();
                f.as_bytes().to_vec()
            }
            draw_type::OPAQUE => {
                let mut o = abi::QxlOpaque::new_zeroed();
                o.src_bitmap = img.into();
                o.src_area = area;
                o.brush = pattern;
                o.as_bytes().to_vec()
            }
            draw_type::COPY | draw_type::BLEND => {
                let mut c = abi::QxlCopy::new_zeroed();
                c.src_bitmap = img.into();
                c.src_area = area;
                c.as_bytes().to_vec()
            }
            draw_type::COPY_BITS => abi::QxlCopyBits {
                src_pos: abi::QxlPoint {
                    x: 5.into(),
                    y: 6.into(),
                },
            }
            .as_bytes()
            .to_vec(),
            draw_type::BLACKNESS | draw_type::WHITENESS | draw_type::INVERS => {
                abi::QxlBlackness::new_zeroed().as_bytes().to_vec()
            }
            draw_type::ROP3 => {
                let mut o = abi::QxlRop3::new_zeroed();
                o.src_bitmap = img.into();
                o.src_area = area;
                o.brush = solid;
                o.rop3 = 0xca;
                o.as_bytes().to_vec()
            }
            draw_type::STROKE => {
                let pts: &[(i32, i32)] = &[(0, 0), (64, 64)];
                let path = b.path(mem, &[(1 | 2, pts), (8, &[(16, 0)])], 7).unwrap();
                let style = b.write(mem, [16i32, 32].as_bytes()).unwrap();
                let mut s = abi::QxlStroke::new_zeroed();
                s.path = path.into();
                s.attr.flags = abi::line_flags::STYLED;
                s.attr.style_nseg = 2;
                s.attr.style = style.into();
                s.attr.width = 16.into();
                s.brush = solid;
                s.fore_mode = 8.into();
                s.back_mode = 8.into();
                s.as_bytes().to_vec()
            }
            draw_type::TEXT => {
                let glyphs = [
                    GuestGlyph {
                        render_pos: (1, 2),
                        glyph_origin: (0, -2),
                        width: 4,
                        height: 2,
                        data: &glyph,
                    },
                    GuestGlyph {
                        render_pos: (5, 2),
                        glyph_origin: (0, -2),
                        width: 4,
                        height: 2,
                        data: &glyph,
                    },
                ];
                // A1 and A4 both set: the A1 depth wins, the A4 bit is not sent.
                let flags = abi::string_flags::RASTER_A1
                    | abi::string_flags::RASTER_A4
                    | abi::string_flags::RASTER_TOP_DOWN;
                let st = b.string(mem, flags, &glyphs, 10).unwrap();
                let mut t = abi::QxlText::new_zeroed();
                t.str = st.into();
                t.back_area = area;
                t.fore_brush = solid;
                t.back_brush = pattern;
                t.fore_mode = 8.into();
                t.as_bytes().to_vec()
            }
            draw_type::TRANSPARENT => {
                let mut t = abi::QxlTransparent::new_zeroed();
                t.src_bitmap = img.into();
                t.src_area = area;
                t.src_color = 0xff00ff.into();
                t.true_color = 0xff00ff.into();
                t.as_bytes().to_vec()
            }
            draw_type::ALPHA_BLEND => {
                let mut a = abi::QxlAlphaBlend::new_zeroed();
                a.alpha_flags = 0x0102.into();
                a.alpha = 0x80;
                a.src_bitmap = img.into();
                a.src_area = area;
                a.as_bytes().to_vec()
            }
            draw_type::COMPOSITE => {
                let t = b
                    .write(mem, abi::QxlTransform::new_zeroed().as_bytes())
                    .unwrap();
                let mut c = abi::QxlComposite::new_zeroed();
                // Operator 3 plus a stray HAS_MASK_TRANSFORM bit the guest should not set.
                c.flags = (3 | (1 << 21)).into();
                c.src = img.into();
                c.src_transform = t.into();
                c.mask = pat.into();
                c.src_origin = abi::QxlPoint16 {
                    x: 1.into(),
                    y: 2.into(),
                };
                c.as_bytes().to_vec()
            }
            _ => unreachable!(),
        };
        let d = drawable(0, ty, r(0, 0, 4, 4), clip, &u);
        b.submit_draw(mem, &d).unwrap();
        want.push(ty);
        let conv = next_draw(&mut dev);
        assert_eq!(
            conv.base.clip,
            spice_qxl::convert::clip(&spice_qxl::parse::Clip::Rects(vec![
                r(0, 0, 2, 2),
                r(2, 2, 4, 4)
            ]))
        );
        let m = conv.raw_message().unwrap();
        assert_eq!(m.msg_type(), conv.msg_type());
        roundtrip(&m);
        let roles: Vec<_> = conv.images().iter().map(|s| s.role()).collect();
        use ImageRole::*;
        match m {
            M::DrawFill(f) => {
                assert_eq!(roles, [BrushPattern]);
                let PBrush::Pattern(p) = f.brush else {
                    panic!()
                };
                assert_eq!(p.pat.id, 200);
                assert_eq!(p.pos, types::Point { x: 3, y: 0 });
            }
            M::DrawOpaque(_) => assert_eq!(roles, [Source, BrushPattern]),
            M::DrawCopy(c) | M::DrawBlend(c) => {
                assert_eq!(roles, [Source]);
                assert_eq!(c.src_bitmap.unwrap().id, 100 + u64::from(ty));
            }
            M::CopyBits(c) => {
                assert!(roles.is_empty());
                assert_eq!(c.src_pos, types::Point { x: 5, y: 6 });
            }
            M::DrawBlackness(_) | M::DrawWhiteness(_) | M::DrawInvers(_) => {
                assert!(roles.is_empty())
            }
            M::DrawRop3(o) => {
                assert_eq!(roles, [Source]);
                assert_eq!(o.rop3, 0xca);
                assert_eq!(o.brush, PBrush::Solid(0xabcdef));
            }
            M::DrawStroke(s) => {
                assert!(roles.is_empty());
                assert_eq!(s.path.segments.len(), 2);
                assert_eq!(
                    s.path.segments[0].points[1],
                    types::PointFix { x: 64, y: 64 }
                );
                assert_eq!(s.path.segments[1].flags.bits(), 8);
                assert_eq!(s.attr.flags, LineFlags::STYLED);
                assert_eq!(s.attr.style, Some(vec![16, 32]));
            }
            M::DrawText(t) => {
                assert_eq!(roles, [BackBrushPattern]);
                assert_eq!(
                    t.text.flags,
                    StringFlags::RASTER_A1 | StringFlags::RASTER_TOP_DOWN
                );
                assert_eq!(t.text.glyphs.len(), 2);
                assert_eq!(t.text.glyphs[1].render_pos, types::Point { x: 5, y: 2 });
                assert_eq!(t.text.glyphs[1].data, glyph);
                assert_eq!(t.fore_brush, PBrush::Solid(0xabcdef));
            }
            M::DrawTransparent(t) => {
                assert_eq!(roles, [Source]);
                assert_eq!(t.src_color, 0xff00ff);
            }
            M::DrawAlphaBlend(a) => {
                assert_eq!(roles, [Source]);
                // The wire's flags are a u8.
                assert_eq!(a.alpha_flags.bits(), 0x02);
                assert_eq!(a.alpha, 0x80);
            }
            M::DrawComposite(c) => {
                assert_eq!(roles, [Source, CompositeMask]);
                assert_eq!(
                    c.flags,
                    CompositeFlags::from_bits_retain(3)
                        | CompositeFlags::HAS_SRC_TRANSFORM
                        | CompositeFlags::HAS_MASK
                );
                assert!(c.src_transform.is_some() && c.mask_transform.is_none());
                assert_eq!(c.src_origin, types::Point16 { x: 1, y: 2 });
            }
            other => panic!("unexpected {other:?}"),
        }
        dev.release_resource(conv.release);
    }
    assert_eq!(want.len(), 14);
    dev.flush_resources();
    g.collect_releases(dev.memory_mut()).unwrap();
    assert_eq!(g.outstanding(), 0);
    assert_eq!(g.memory_used(), 0);
}

#[test]
fn nop_self_bitmap_and_surface_images() {
    let (mut dev, mut g) = setup();
    let mem = dev.memory_mut();
    let b = g.builder();
    let d = drawable(0, draw_type::NOP, r(0, 0, 1, 1), none_clip(), &[]);
    b.submit_draw(mem, &d).unwrap();
    let ParsedCommand::Draw(d) = next_cmd(&mut dev) else {
        panic!()
    };
    assert_eq!(ConvertedDrawable::new(*d).unwrap_err(), ConvertError::Nop);

    // A rop3 without source asking for its own area.
    let mem = dev.memory_mut();
    let b = g.builder();
    let mut o = abi::QxlRop3::new_zeroed();
    o.rop3 = 0x55;
    let mut d = drawable(0, draw_type::ROP3, r(0, 0, 8, 8), none_clip(), o.as_bytes());
    d.self_bitmap = 1;
    d.self_bitmap_area = abi::QxlRect::new(0, 0, 8, 8);
    b.submit_draw(mem, &d).unwrap();
    let conv = next_draw(&mut dev);
    assert_eq!(
        conv.images()[0].content(),
        &SlotContent::SelfBitmap {
            area: r(0, 0, 8, 8)
        }
    );
    assert_eq!(
        conv.raw_message().unwrap_err(),
        ConvertError::NeedsSelfBitmap(r(0, 0, 8, 8))
    );
    let rendered = [0u8; 256];
    let img = conv.images()[0].encoded(
        ImageFlags::empty(),
        ImageBody::Bitmap(types::Bitmap {
            format: types::BitmapFormat::BIT32,
            flags: BitmapFlags::TOP_DOWN,
            x: 8,
            y: 8,
            stride: 32,
            palette: PaletteSource::None,
            data: &rendered,
        }),
    );
    assert_eq!((img.width, img.height), (8, 8));
    roundtrip(&conv.message(vec![img]).unwrap());

    // A copy from surface 3.
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let img = b.surface_image(mem, 42, 3, 16, 16).unwrap();
    let mut c = abi::QxlCopy::new_zeroed();
    c.src_bitmap = img.into();
    c.src_area = abi::QxlRect::new(0, 0, 4, 4);
    let d = drawable(0, draw_type::COPY, r(0, 0, 4, 4), none_clip(), c.as_bytes());
    b.submit_draw(mem, &d).unwrap();
    let conv = next_draw(&mut dev);
    assert_eq!(conv.images()[0].surface_id(), Some(3));
    let s = conv.images()[0].surface(640, 480).unwrap();
    assert_eq!(
        (s.width, s.height, s.flags, s.body.clone()),
        (640, 480, ImageFlags::empty(), ImageBody::Surface(3))
    );
    roundtrip(&conv.message(vec![s]).unwrap());
    roundtrip(&conv.raw_message().unwrap());

    // A QUIC image from the guest passes through.
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let q: Vec<u8> = (0..40).collect();
    let img = b.quic_image(mem, 43, 4, 4, &q, 16).unwrap();
    let mut c = abi::QxlCopy::new_zeroed();
    c.src_bitmap = img.into();
    c.src_area = abi::QxlRect::new(0, 0, 4, 4);
    let d = drawable(0, draw_type::COPY, r(0, 0, 4, 4), none_clip(), c.as_bytes());
    b.submit_draw(mem, &d).unwrap();
    let conv = next_draw(&mut dev);
    let raw = conv.images()[0].raw().unwrap();
    assert_eq!(raw.body, ImageBody::Quic(&q));
}

#[test]
fn compat_16bpp_colours_are_widened() {
    let (mut dev, mut g) = setup();
    g.fill(dev.memory_mut(), 0, r(0, 0, 1, 1), 0x7c00, None)
        .unwrap();
    let ext = dev.get_command().unwrap();
    let ext = CommandExt {
        flags: abi::QXL_COMMAND_FLAG_COMPAT_16BPP,
        ..ext
    };
    let ParsedCommand::Draw(d) =
        parse_command(dev.memory(), dev.slots(), ParseLimits::default(), &ext).unwrap()
    else {
        panic!()
    };
    let conv = ConvertedDrawable::new(*d).unwrap();
    let M::DrawFill(f) = conv.raw_message().unwrap() else {
        panic!()
    };
    assert_eq!(f.brush, PBrush::Solid(0xff0000));
}

fn push_cursor(g: &mut GuestDriver, dev: &mut QxlDevice<VecMemory>, ty: u8, u: &[u8]) {
    let mut c = abi::QxlCursorCmd::new_zeroed();
    c.ty = ty;
    c.u[..u.len()].copy_from_slice(u);
    g.builder().submit_cursor(dev.memory_mut(), &c).unwrap();
}

#[test]
fn cursor_commands() {
    let (mut dev, mut g) = setup();
    // Every cursor type, with exactly the data size spice-gtk expects.
    for ty in 0..=6u16 {
        let size = cursor_data_size(ty, 5, 3).unwrap() as usize;
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mem = dev.memory_mut();
        let mut b: CommandBuilder<'_> = g.builder();
        let shape = b
            .cursor_shape(
                mem,
                abi::QxlCursorHeader {
                    unique: (u64::from(ty) + 1).into(),
                    ty: ty.into(),
                    width: 5.into(),
                    height: 3.into(),
                    hot_spot_x: 2.into(),
                    hot_spot_y: 1.into(),
                },
                &data,
                50,
            )
            .unwrap();
        let set = abi::QxlCursorSet {
            position: abi::QxlPoint16 {
                x: 10.into(),
                y: (-1).into(),
            },
            visible: 1,
            shape: shape.into(),
        };
        let mut c = abi::QxlCursorCmd::new_zeroed();
        c.ty = abi::cursor_cmd::SET;
        c.u.copy_from_slice(set.as_bytes());
        b.submit_cursor(mem, &c).unwrap();
        let conv = next_cursor(&mut dev);
        assert_eq!(conv.cache_id(), Some(u64::from(ty) + 1));
        let m = conv.message(CursorCaching::Uncached);
        let bytes = encode_cursor(&m).unwrap();
        let mut want = vec![10, 0, 0xff, 0xff, 1, 0, 0];
        want.extend((u64::from(ty) + 1).to_le_bytes());
        want.push(ty as u8);
        for v in [5u16, 3, 2, 1] {
            want.extend(v.to_le_bytes());
        }
        want.extend(&data);
        assert_eq!(bytes, want, "cursor type {ty}");
        let cursor::ServerMessage::Set(s) = conv.message(CursorCaching::FromCache) else {
            panic!()
        };
        assert_eq!(s.cursor.flags, CursorFlags::FROM_CACHE);
        assert!(s.cursor.data.is_empty() && s.cursor.header.is_some());
        let cursor::ServerMessage::Set(s) = conv.message(CursorCaching::CacheMe) else {
            panic!()
        };
        assert_eq!(s.cursor.flags, CursorFlags::CACHE_ME);
        for caching in [
            CursorCaching::Uncached,
            CursorCaching::CacheMe,
            CursorCaching::FromCache,
        ] {
            let m = conv.message(caching);
            let bytes = encode_cursor(&m).unwrap();
            let back =
                cursor::ServerMessage::decode_body(ChannelType::CURSOR, m.msg_type(), &bytes)
                    .unwrap();
            assert_eq!(back, m);
        }
    }
    push_cursor(&mut g, &mut dev, abi::cursor_cmd::MOVE, &[3, 0, 4, 0]);
    assert_eq!(
        next_cursor(&mut dev).message(CursorCaching::Uncached),
        cursor::ServerMessage::Move(types::Point16 { x: 3, y: 4 })
    );
    push_cursor(&mut g, &mut dev, abi::cursor_cmd::HIDE, &[]);
    assert_eq!(
        next_cursor(&mut dev).message(CursorCaching::Uncached),
        cursor::ServerMessage::Hide
    );
    push_cursor(&mut g, &mut dev, abi::cursor_cmd::TRAIL, &[5, 0, 6, 0]);
    let c = next_cursor(&mut dev);
    assert_eq!(c.cache_id(), None);
    assert_eq!(
        c.message(CursorCaching::Uncached),
        cursor::ServerMessage::Trail {
            length: 5,
            frequency: 6
        }
    );
    assert_eq!(
        encode_cursor(&c.message(CursorCaching::Uncached)).unwrap(),
        [5, 0, 6, 0]
    );
}

#[test]
fn surface_commands_convert() {
    let (mut dev, mut g) = setup();
    g.surface_create(dev.memory_mut(), 2, 8, 4).unwrap();
    g.surface_destroy(dev.memory_mut(), 2).unwrap();
    let ParsedCommand::Surface(s) = next_cmd(&mut dev) else {
        panic!()
    };
    let spice_qxl::parse::SurfaceOp::Create(c) = &s.op else {
        panic!()
    };
    let m = spice_qxl::convert::surface_create(s.surface_id, c, false);
    assert_eq!((m.surface_id, m.width, m.height), (2, 8, 4));
    assert_eq!(m.format, types::SurfaceFormat::FMT_32_XRGB);
    assert_eq!(
        encode_roundtrip(ParsedCommand::Surface(s)).unwrap().len(),
        1
    );
    let cmd = next_cmd(&mut dev);
    assert_eq!(
        encode_roundtrip(cmd).unwrap(),
        vec![2u32.to_le_bytes().to_vec()]
    );
}

#[test]
fn hostile_drawables_give_typed_errors() {
    let (mut dev, mut g) = setup();
    // A copy whose image pointer is outside every slot.
    let mem = dev.memory_mut();
    let b = g.builder();
    let mut c = abi::QxlCopy::new_zeroed();
    c.src_bitmap = 0xdead_0000_0000_0000u64.into();
    let d = drawable(0, draw_type::COPY, r(0, 0, 4, 4), none_clip(), c.as_bytes());
    b.submit_draw(mem, &d).unwrap();
    let ext = dev.get_command().unwrap();
    let e = dev.parse_command(&ext).unwrap_err();
    assert!(e.release.is_some());
    // A brush of an unknown type.
    let mem = dev.memory_mut();
    let b = g.builder();
    let mut f = abi::QxlFill::new_zeroed();
    f.brush.ty = 9.into();
    let d = drawable(0, draw_type::FILL, r(0, 0, 4, 4), none_clip(), f.as_bytes());
    b.submit_draw(mem, &d).unwrap();
    let ext = dev.get_command().unwrap();
    assert_eq!(
        dev.parse_command(&ext).unwrap_err().error,
        spice_qxl::ParseError::UnknownBrushType(9)
    );
    // A builder dropped without submitting frees what it allocated.
    let before = g.memory_used();
    {
        let mem = dev.memory_mut();
        let mut b = g.builder();
        b.write(mem, &[0; 1000]).unwrap();
    }
    assert_eq!(g.memory_used(), before);
}

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Bmp {
        format: u8,
        width: u32,
        height: u32,
        top_down: bool,
        flags: u8,
        chunk: usize,
        palette: Option<Vec<u32>>,
        data: Vec<u8>,
    }

    fn bmp() -> impl Strategy<Value = Bmp> {
        (
            prop_oneof![
                Just(abi::bitmap_fmt::THIRTY_TWO_BIT),
                Just(abi::bitmap_fmt::EIGHT_BIT),
                Just(abi::bitmap_fmt::ONE_BIT_BE),
                Just(abi::bitmap_fmt::TWENTY_FOUR_BIT),
            ],
            1u32..9,
            1u32..9,
            any::<bool>(),
            0u8..4,
            0usize..40,
            proptest::collection::vec(any::<u32>(), 2..8),
            any::<u64>(),
        )
            .prop_map(
                |(format, width, height, top_down, flags, chunk, pal, seed)| {
                    let bpp = match format {
                        abi::bitmap_fmt::THIRTY_TWO_BIT => 32,
                        abi::bitmap_fmt::TWENTY_FOUR_BIT => 24,
                        abi::bitmap_fmt::EIGHT_BIT => 8,
                        _ => 1,
                    };
                    let stride = (width * bpp).div_ceil(8) + (seed % 3) as u32;
                    let data = (0..stride * height)
                        .map(|i| (seed.wrapping_mul(u64::from(i) + 7) >> 13) as u8)
                        .collect();
                    let palette = (bpp <= 8).then_some(pal);
                    Bmp {
                        format,
                        width,
                        height,
                        top_down,
                        flags,
                        chunk,
                        palette,
                        data,
                    }
                },
            )
    }

    fn rect() -> impl Strategy<Value = Rect> {
        (0i32..50, 0i32..50, 1i32..30, 1i32..30).prop_map(|(t, l, h, w)| r(t, l, t + h, l + w))
    }

    #[derive(Debug, Clone)]
    struct Spec {
        ty: u8,
        bbox: Rect,
        clip: Vec<Rect>,
        img: Bmp,
        rop: u16,
        glyphs: Vec<(u16, u16, Vec<u8>)>,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            prop_oneof![
                Just(draw_type::FILL),
                Just(draw_type::OPAQUE),
                Just(draw_type::COPY),
                Just(draw_type::BLEND),
                Just(draw_type::ROP3),
                Just(draw_type::TRANSPARENT),
                Just(draw_type::ALPHA_BLEND),
                Just(draw_type::TEXT),
                Just(draw_type::INVERS),
            ],
            rect(),
            proptest::collection::vec(rect(), 0..4),
            bmp(),
            any::<u16>(),
            proptest::collection::vec((1u16..13, 1u16..10, any::<u8>()), 1..4),
        )
            .prop_map(|(ty, bbox, clip, img, rop, gl)| Spec {
                ty,
                bbox,
                clip,
                img,
                rop,
                glyphs: gl
                    .into_iter()
                    .map(|(w, h, b)| {
                        let n = usize::from(w.div_ceil(8)) * usize::from(h);
                        (w, h, vec![b; n])
                    })
                    .collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random drawables laid out by the guest driver parse, convert, and encode to
        /// messages that decode back equal and carry exactly the guest's values.
        #[test]
        fn random_drawables_roundtrip(s in spec()) {
            let (mut dev, mut g) = setup();
            let mem = dev.memory_mut();
            let mut b = g.builder();
            let pal = s.img.palette.clone();
            let gb = GuestBitmap {
                id: 0x1234,
                image_flags: s.img.flags,
                format: s.img.format,
                width: s.img.width,
                height: s.img.height,
                stride: s.img.data.len() as u32 / s.img.height,
                top_down: s.img.top_down,
                data: &s.img.data,
                palette: pal.as_deref().map(|p| (99u64, p)),
                chunk_size: s.img.chunk,
            };
            let img = b.bitmap_image(mem, &gb).unwrap();
            let clip = b.clip(mem, (!s.clip.is_empty()).then_some(&s.clip[..])).unwrap();
            let mut pattern = abi::QxlBrush::new_zeroed();
            pattern.ty = abi::brush_type::PATTERN.into();
            pattern.u[..8].copy_from_slice(&img.to_le_bytes());
            let area = abi::QxlRect::new(0, 0, s.img.height as i32, s.img.width as i32);
            let u: Vec<u8> = match s.ty {
                draw_type::FILL => {
                    let mut f = abi::QxlFill::new_zeroed();
                    f.brush = pattern;
                    f.rop_descriptor = s.rop.into();
                    f.as_bytes().to_vec()
                }
                draw_type::OPAQUE => {
                    let mut o = abi::QxlOpaque::new_zeroed();
                    o.src_bitmap = img.into();
                    o.src_area = area;
                    o.brush = pattern;
                    o.rop_descriptor = s.rop.into();
                    o.as_bytes().to_vec()
                }
                draw_type::COPY | draw_type::BLEND => {
                    let mut c = abi::QxlCopy::new_zeroed();
                    c.src_bitmap = img.into();
                    c.src_area = area;
                    c.rop_descriptor = s.rop.into();
                    c.mask.bitmap = img.into();
                    c.as_bytes().to_vec()
                }
                draw_type::ROP3 => {
                    let mut o = abi::QxlRop3::new_zeroed();
                    o.src_bitmap = img.into();
                    o.src_area = area;
                    o.brush = pattern;
                    o.rop3 = s.rop as u8;
                    o.as_bytes().to_vec()
                }
                draw_type::TRANSPARENT => {
                    let mut t = abi::QxlTransparent::new_zeroed();
                    t.src_bitmap = img.into();
                    t.src_area = area;
                    t.src_color = u32::from(s.rop).into();
                    t.as_bytes().to_vec()
                }
                draw_type::ALPHA_BLEND => {
                    let mut a = abi::QxlAlphaBlend::new_zeroed();
                    a.src_bitmap = img.into();
                    a.src_area = area;
                    a.alpha = s.rop as u8;
                    a.as_bytes().to_vec()
                }
                draw_type::TEXT => {
                    let glyphs: Vec<GuestGlyph<'_>> = s
                        .glyphs
                        .iter()
                        .enumerate()
                        .map(|(i, (w, h, d))| GuestGlyph {
                            render_pos: (i as i32 * 13, 3),
                            glyph_origin: (0, -(i as i32)),
                            width: *w,
                            height: *h,
                            data: d,
                        })
                        .collect();
                    let st = b
                        .string(mem, abi::string_flags::RASTER_A1, &glyphs, 1 + s.img.chunk)
                        .unwrap();
                    let mut t = abi::QxlText::new_zeroed();
                    t.str = st.into();
                    t.fore_brush = pattern;
                    t.as_bytes().to_vec()
                }
                _ => {
                    let mut m = abi::QxlBlackness::new_zeroed();
                    m.mask.bitmap = img.into();
                    m.mask.flags = 1;
                    m.as_bytes().to_vec()
                }
            };
            let d = drawable(0, s.ty, s.bbox, clip, &u);
            b.submit_draw(mem, &d).unwrap();

            let conv = next_draw(&mut dev);
            let m = conv.raw_message().unwrap();
            let bytes = encode_display(&m).unwrap();
            let back = M::decode_body(ChannelType::DISPLAY, m.msg_type(), &bytes).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.msg_type(), conv.msg_type());
            let want_clip = spice_qxl::convert::clip(&if s.clip.is_empty() {
                spice_qxl::parse::Clip::None
            } else {
                spice_qxl::parse::Clip::Rects(s.clip.clone())
            });
            prop_assert_eq!(&conv.base.clip, &want_clip);
            prop_assert_eq!(conv.base.bbox, spice_qxl::convert::rect(s.bbox));
            prop_assert!(!conv.images().is_empty());
            for slot in conv.images() {
                let raw = slot.raw().unwrap();
                let want_flags = if s.img.flags & abi::image_flags::HIGH_BITS_SET != 0 {
                    ImageFlags::HIGH_BITS_SET
                } else {
                    ImageFlags::empty()
                };
                prop_assert_eq!(raw.flags, want_flags);
                prop_assert_eq!(slot.cache_me(), s.img.flags & abi::image_flags::CACHE != 0);
                let ImageBody::Bitmap(bm) = &raw.body else { panic!() };
                prop_assert_eq!(bm.data, &s.img.data[..]);
                prop_assert_eq!(bm.flags.contains(BitmapFlags::TOP_DOWN), s.img.top_down);
                prop_assert_eq!(bm.flags - BitmapFlags::TOP_DOWN, BitmapFlags::empty());
                match (&bm.palette, &s.img.palette) {
                    (PaletteSource::Inline(p), Some(want)) => prop_assert_eq!(&p.ents, want),
                    (PaletteSource::None, None) => {}
                    (got, want) => prop_assert!(false, "palette {got:?} vs {want:?}"),
                }
            }
            if let M::DrawText(t) = &back {
                prop_assert_eq!(t.text.glyphs.len(), s.glyphs.len());
                for (g, (w, h, d)) in t.text.glyphs.iter().zip(&s.glyphs) {
                    prop_assert_eq!((g.width, g.height, g.data), (*w, *h, &d[..]));
                }
            }
        }
    }
}
