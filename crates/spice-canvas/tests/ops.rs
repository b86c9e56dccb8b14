//! Expected pixels of TEXT, STROKE, COMPOSITE, ALPHA_BLEND, TRANSPARENT, ROP3, OPAQUE,
//! stream frames and the surface formats.

mod common;

use common::*;
use spice_canvas::{Applied, Pixmap, Surfaces, draw_stream_frame, rop3};
use spice_proto::display::{
    DrawAlphaBlend, DrawComposite, DrawOpaque, DrawRop3, DrawStroke, DrawText, DrawTransparent,
    ServerMessage,
};
use spice_proto::types::{
    AlphaFlags, Brush, Clip, CompositeFlags, ImageFlags, ImageScaleMode, LineAttr, LineFlags, Path,
    PathFlags, PathSegment, Point, Point16, PointFix, QMask, RasterGlyph, Ropd, SpiceString,
    StringFlags, SurfaceFormat, Transform,
};

fn drawn(a: Applied) -> Option<spice_proto::types::Rect> {
    match a {
        Applied::Drawn { rect, .. } => rect,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rop3_table_matches_named_codes() {
    let (p, s, d) = (0xf0f0_f0f0u32, 0xcccc_ccccu32, 0xaaaa_aaaau32);
    assert_eq!(rop3(0xcc, p, s, d), s); // SRCCOPY
    assert_eq!(rop3(0xf0, p, s, d), p); // PATCOPY
    assert_eq!(rop3(0xaa, p, s, d), d); // D
    assert_eq!(rop3(0x66, p, s, d), s ^ d); // SRCINVERT
    assert_eq!(rop3(0x88, p, s, d), s & d); // SRCAND
    assert_eq!(rop3(0xee, p, s, d), s | d); // SRCPAINT
    assert_eq!(rop3(0x5a, p, s, d), p ^ d); // PATINVERT
    assert_eq!(rop3(0x33, p, s, d), !s); // NOTSRCCOPY
    assert_eq!(rop3(0x00, p, s, d), 0);
    assert_eq!(rop3(0xff, p, s, d), !0);
    assert_eq!(rop3(0xb8, p, s, d), (p & !s) | (d & s)); // PSDPxax
    // The table and the bits agree for every code.
    for code in 0..=255u8 {
        for (pp, ss, dd) in [(0u32, 0u32, 0u32), (!0, 0, !0), (0, !0, 0), (!0, !0, !0)] {
            let i = ((pp & 1) << 2) | ((ss & 1) << 1) | (dd & 1);
            let bit = (code >> i) & 1;
            assert_eq!(rop3(code, pp, ss, dd) & 1, u32::from(bit));
        }
    }
}

#[test]
fn draw_rop3_uses_brush_source_and_dest() {
    let mut c = canvas(2, 1, 0x0000ff);
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[0x00ff00, 0x00ff00]);
    let m = ServerMessage::DrawRop3(DrawRop3 {
        base: base(0, rect(0, 0, 2, 1)),
        src_bitmap: Some(img),
        src_area: rect(0, 0, 2, 1),
        brush: Brush::Solid(0xff0000),
        rop3: 0xfe, // P | S | D
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask::default(),
    });
    c.apply(&m).unwrap();
    assert_eq!(rgb(&c), vec![0xffffff, 0xffffff]);
}

#[test]
fn opaque_image_then_brush_rop() {
    let mut c = canvas(2, 1, 0);
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[0x0000f0, 0x00f000]);
    let m = ServerMessage::DrawOpaque(DrawOpaque {
        base: base(0, rect(0, 0, 2, 1)),
        src_bitmap: Some(img),
        src_area: rect(0, 0, 2, 1),
        brush: Brush::Solid(0x00000f),
        rop_descriptor: Ropd::OP_OR,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask::default(),
    });
    c.apply(&m).unwrap();
    assert_eq!(rgb(&c), vec![0x0000ff, 0x00f00f]);
}

#[test]
fn transparent_skips_key_colour() {
    let mut c = canvas(3, 1, 0x777777);
    let img = bitmap32(
        1,
        ImageFlags::empty(),
        3,
        1,
        &[0x010203, 0xff00ff, 0x040506],
    );
    let m = ServerMessage::DrawTransparent(DrawTransparent {
        base: base(0, rect(0, 0, 3, 1)),
        src_bitmap: Some(img),
        src_area: rect(0, 0, 3, 1),
        src_color: 0xff00ff,
        true_color: 0xff00ff,
    });
    c.apply(&m).unwrap();
    assert_eq!(rgb(&c), vec![0x010203, 0x777777, 0x040506]);
}

#[test]
fn alpha_blend_global_and_per_pixel() {
    let mut c = canvas(2, 1, 0x000000);
    // Opaque source at global alpha 0x80: half way.
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[0xffffff, 0x00ff00]);
    let m = ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
        base: base(0, rect(0, 0, 2, 1)),
        alpha_flags: AlphaFlags::empty(),
        alpha: 0x80,
        src_bitmap: Some(img),
        src_area: rect(0, 0, 2, 1),
    });
    c.apply(&m).unwrap();
    assert_eq!(rgb(&c), vec![0x808080, 0x008000]);
    // Premultiplied source with alpha 0x80 over white at full global alpha.
    let mut c = canvas(1, 1, 0xffffff);
    let rgba = spice_proto::types::Image {
        id: 0,
        flags: ImageFlags::empty(),
        width: 1,
        height: 1,
        body: spice_proto::types::ImageBody::Bitmap(spice_proto::types::Bitmap {
            format: spice_proto::types::BitmapFormat::RGBA,
            flags: spice_proto::types::BitmapFlags::TOP_DOWN,
            x: 1,
            y: 1,
            stride: 4,
            palette: spice_proto::types::PaletteSource::None,
            data: leak(vec![0, 0, 0x80, 0x80]),
        }),
    };
    let m = ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
        base: base(0, rect(0, 0, 1, 1)),
        alpha_flags: AlphaFlags::SRC_SURFACE_HAS_ALPHA,
        alpha: 0xff,
        src_bitmap: Some(rgba),
        src_area: rect(0, 0, 1, 1),
    });
    c.apply(&m).unwrap();
    // r = 0x80 + 0xff * 0x7f / 255 = 0xff; g, b = 0x7f.
    assert_eq!(rgb(&c), vec![0xff7f7f]);
}

fn glyph(x: i32, y: i32, w: u16, h: u16, data: Vec<u8>) -> RasterGlyph<'static> {
    RasterGlyph {
        render_pos: Point { x, y },
        glyph_origin: Point { x: 0, y: 0 },
        width: w,
        height: h,
        data: leak(data),
    }
}

#[test]
fn text_a1_with_background() {
    let mut c = canvas(4, 2, 0);
    let m = ServerMessage::DrawText(DrawText {
        base: base(0, rect(0, 0, 4, 2)),
        text: SpiceString {
            flags: StringFlags::RASTER_A1 | StringFlags::RASTER_TOP_DOWN,
            // 3 wide, 2 rows, MSB first: "#.#" / ".#."
            glyphs: vec![glyph(1, 0, 3, 2, vec![0b1010_0000, 0b0100_0000])],
        },
        back_area: rect(0, 0, 4, 1),
        fore_brush: Brush::Solid(0xff0000),
        back_brush: Brush::Solid(0x0000ff),
        fore_mode: Ropd::OP_PUT.bits(),
        back_mode: Ropd::OP_PUT.bits(),
    });
    let r = drawn(c.apply(&m).unwrap());
    assert_eq!(r, Some(rect(0, 0, 4, 2)));
    #[rustfmt::skip]
    assert_eq!(rgb(&c), vec![
        0x0000ff, 0xff0000, 0x0000ff, 0xff0000,
        0, 0, 0xff0000, 0,
    ]);
}

#[test]
fn text_a4_a8_blend_and_bottom_up() {
    let mut c = canvas(2, 2, 0);
    let m = ServerMessage::DrawText(DrawText {
        base: base(0, rect(0, 0, 2, 2)),
        text: SpiceString {
            flags: StringFlags::RASTER_A4,
            // Bottom-up: first memory row is the bottom row. High nibble first.
            glyphs: vec![glyph(0, 0, 2, 2, vec![0xf0, 0x08])],
        },
        back_area: rect(0, 0, 0, 0),
        fore_brush: Brush::Solid(0xffffff),
        back_brush: Brush::None,
        fore_mode: Ropd::OP_PUT.bits(),
        back_mode: 0,
    });
    c.apply(&m).unwrap();
    // Top row = memory row 1 (0x08: 0, 8*17=136); bottom = memory row 0 (255, 0).
    assert_eq!(rgb(&c), vec![0, 0x888888, 0xffffff, 0]);
    let mut c = canvas(1, 1, 0);
    let m = ServerMessage::DrawText(DrawText {
        base: base(0, rect(0, 0, 1, 1)),
        text: SpiceString {
            flags: StringFlags::RASTER_A8 | StringFlags::RASTER_TOP_DOWN,
            glyphs: vec![glyph(0, 0, 1, 1, vec![0x40])],
        },
        back_area: rect(0, 0, 0, 0),
        fore_brush: Brush::Solid(0xff00ff),
        back_brush: Brush::None,
        fore_mode: Ropd::OP_PUT.bits(),
        back_mode: 0,
    });
    c.apply(&m).unwrap();
    assert_eq!(rgb(&c), vec![0x400040]);
}

fn fix(x: i32, y: i32) -> PointFix {
    PointFix {
        x: x * 16,
        y: y * 16,
    }
}

fn stroke(
    points: Vec<PointFix>,
    flags: PathFlags,
    attr: LineAttr,
    mode: Ropd,
) -> ServerMessage<'static> {
    ServerMessage::DrawStroke(DrawStroke {
        base: base(0, rect(0, 0, 5, 5)),
        path: Path {
            segments: vec![PathSegment { flags, points }],
        },
        attr,
        brush: Brush::Solid(1),
        fore_mode: mode.bits(),
        back_mode: 0,
    })
}

fn solid() -> LineAttr {
    LineAttr {
        flags: LineFlags::empty(),
        style_nseg: 0,
        style: None,
    }
}

fn plot(c: &spice_canvas::Canvas) -> Vec<String> {
    let s = c.surfaces.get(0).unwrap();
    (0..s.height())
        .map(|y| {
            s.row(y)
                .unwrap()
                .iter()
                .map(|&p| if p & 0xffffff != 0 { '#' } else { '.' })
                .collect()
        })
        .collect()
}

#[test]
fn stroke_lines_diagonal_and_closed_box() {
    let mut c = canvas(5, 5, 0);
    c.apply(&stroke(
        vec![fix(0, 0), fix(4, 4)],
        PathFlags::BEGIN | PathFlags::END,
        solid(),
        Ropd::OP_PUT,
    ))
    .unwrap();
    // Cosmetic lines do not draw their last point (CapNotLast).
    assert_eq!(plot(&c), ["#....", ".#...", "..#..", "...#.", "....."]);
    // A closed square drawn with XOR: corners are touched by two lines but drawn once.
    let mut c = canvas(5, 5, 0);
    c.apply(&stroke(
        vec![fix(1, 1), fix(3, 1), fix(3, 3), fix(1, 3)],
        PathFlags::BEGIN | PathFlags::CLOSE | PathFlags::END,
        solid(),
        Ropd::OP_XOR,
    ))
    .unwrap();
    assert_eq!(plot(&c), [".....", ".###.", ".#.#.", ".###.", "....."]);
}

#[test]
fn stroke_dashes_and_bezier() {
    let mut c = canvas(5, 5, 0);
    let dashed = LineAttr {
        flags: LineFlags::STYLED,
        style_nseg: 2,
        style: Some(vec![16, 16]),
    };
    c.apply(&stroke(
        vec![fix(0, 2), fix(4, 2)],
        PathFlags::BEGIN | PathFlags::END,
        dashed,
        Ropd::OP_PUT,
    ))
    .unwrap();
    assert_eq!(plot(&c)[2], "#.#..");
    let mut c = canvas(5, 5, 0);
    // A "curve" whose control points lie on a straight line is that line.
    c.apply(&ServerMessage::DrawStroke(DrawStroke {
        base: base(0, rect(0, 0, 5, 5)),
        path: Path {
            segments: vec![
                PathSegment {
                    flags: PathFlags::BEGIN,
                    points: vec![fix(0, 1)],
                },
                PathSegment {
                    flags: PathFlags::BEZIER | PathFlags::END,
                    points: vec![fix(1, 1), fix(3, 1), fix(4, 1)],
                },
            ],
        },
        attr: solid(),
        brush: Brush::Solid(1),
        fore_mode: Ropd::OP_PUT.bits(),
        back_mode: 0,
    }))
    .unwrap();
    assert_eq!(plot(&c), [".....", "####.", ".....", ".....", "....."]);
}

#[test]
fn stroke_huge_coordinates_are_clipped() {
    let mut c = canvas(5, 5, 0);
    c.apply(&stroke(
        vec![
            PointFix {
                x: i32::MIN,
                y: 2 * 16,
            },
            PointFix {
                x: i32::MAX,
                y: 2 * 16,
            },
        ],
        PathFlags::BEGIN | PathFlags::END,
        solid(),
        Ropd::OP_PUT,
    ))
    .unwrap();
    assert_eq!(plot(&c)[2], "#####");
}

fn composite(
    op: u32,
    src: spice_proto::types::Image<'static>,
    t: Option<Transform>,
) -> ServerMessage<'static> {
    let mut flags = CompositeFlags::from_bits_retain(op);
    flags.set(CompositeFlags::HAS_SRC_TRANSFORM, t.is_some());
    ServerMessage::DrawComposite(DrawComposite {
        base: base(0, rect(0, 0, 2, 1)),
        flags,
        src_bitmap: Some(src),
        mask_bitmap: None,
        src_transform: t,
        mask_transform: None,
        src_origin: Point16 { x: 0, y: 0 },
        mask_origin: Point16 { x: 0, y: 0 },
    })
}

#[test]
fn composite_operators() {
    let rgba = |px: &[u32]| {
        let mut i = bitmap32(1, ImageFlags::empty(), px.len() as u32, 1, px);
        if let spice_proto::types::ImageBody::Bitmap(b) = &mut i.body {
            b.format = spice_proto::types::BitmapFormat::RGBA;
        }
        i
    };
    // OVER (3) with a half-transparent premultiplied red over blue.
    let mut c = canvas(2, 1, 0x0000ff);
    c.apply(&composite(3, rgba(&[0x8080_0000, 0x0000_0000]), None))
        .unwrap();
    assert_eq!(rgb(&c), vec![0x80007f, 0x0000ff]);
    // SRC (1) copies even transparent pixels.
    let mut c = canvas(2, 1, 0x0000ff);
    c.apply(&composite(1, rgba(&[0x8080_0000, 0x0000_0000]), None))
        .unwrap();
    assert_eq!(rgb(&c), vec![0x800000, 0]);
    // ADD (12).
    let mut c = canvas(2, 1, 0x010101);
    c.apply(&composite(
        12,
        bitmap32(1, ImageFlags::empty(), 2, 1, &[0x010203, 0xffffff]),
        None,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![0x020304, 0xffffff]);
    // MULTIPLY (0x30) of opaque pixels.
    let mut c = canvas(2, 1, 0x808080);
    c.apply(&composite(
        0x30,
        bitmap32(1, ImageFlags::empty(), 2, 1, &[0xff0000, 0x808080]),
        None,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![0x800000, 0x404040]);
    // A transform (x flipped: x' = -x + 2) with SRC and repeat NONE.
    let mut c = canvas(2, 1, 0);
    let t = Transform {
        t00: (-65536i32) as u32,
        t01: 0,
        t02: 2 << 16,
        t10: 0,
        t11: 1 << 16,
        t12: 0,
    };
    c.apply(&composite(
        1,
        bitmap32(1, ImageFlags::empty(), 2, 1, &[1, 2]),
        Some(t),
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![2, 1]);
}

#[test]
fn stream_frame_scaled_and_flipped() {
    let mut s = Surfaces::new(1 << 16);
    s.create(0, 4, 2, SurfaceFormat::FMT_32_XRGB).unwrap();
    let frame = Pixmap::from_pixels(2, 1, false, vec![0xff00_0001, 0xff00_0002]).unwrap();
    let r = draw_stream_frame(
        &mut s,
        0,
        &frame,
        2,
        1,
        &rect(0, 0, 4, 2),
        &Clip::None,
        true,
    )
    .unwrap();
    assert_eq!(r, Some(rect(0, 0, 4, 2)));
    let px: Vec<u32> = s
        .get(0)
        .unwrap()
        .pixels()
        .iter()
        .map(|p| p & 0xff)
        .collect();
    // Bilinear with truncated weights: 1 * 0.25 + 2 * 0.75 = 1.75 → 1.
    assert_eq!(px, vec![1, 1, 1, 2, 1, 1, 1, 2]);
    let frame = Pixmap::from_pixels(1, 2, false, vec![0xff00_0001, 0xff00_0002]).unwrap();
    draw_stream_frame(
        &mut s,
        0,
        &frame,
        1,
        2,
        &rect(0, 0, 1, 2),
        &Clip::None,
        false,
    )
    .unwrap();
    assert_eq!(s.get(0).unwrap().pixel(0, 0).map(|p| p & 0xff), Some(2));
    assert_eq!(s.get(0).unwrap().pixel(0, 1).map(|p| p & 0xff), Some(1));
}

#[test]
fn surface_formats_keep_their_precision() {
    let mut s = Surfaces::new(1 << 16);
    for (fmt, want) in [
        (SurfaceFormat::FMT_32_XRGB, 0x00123456),
        (SurfaceFormat::FMT_32_ARGB, 0x80123456),
        (SurfaceFormat::FMT_16_555, 0xff10_3152),
        (SurfaceFormat::FMT_16_565, 0xff10_3452),
        (SurfaceFormat::FMT_8_A, 0x8000_0000),
        (SurfaceFormat::FMT_1_A, 0xff00_0000),
    ] {
        s.create(0, 2, 1, fmt).unwrap();
        let mut c = spice_canvas::Canvas {
            surfaces: s,
            images: spice_canvas::ImageContext::new(
                Default::default(),
                spice_canvas::new_glz_window(16),
            ),
        };
        c.apply(&ServerMessage::DrawFill(spice_proto::display::DrawFill {
            base: base(0, rect(0, 0, 1, 1)),
            brush: Brush::Solid(0x8012_3456),
            rop_descriptor: Ropd::OP_PUT,
            mask: QMask::default(),
        }))
        .unwrap();
        let p = c.surfaces.get(0).unwrap().pixel(0, 0).unwrap();
        let p = if fmt == SurfaceFormat::FMT_32_XRGB {
            p & 0xffffff
        } else {
            p
        };
        assert_eq!(p, want, "{fmt:?}");
        s = c.surfaces;
    }
    assert!(s.create(1, 2, 2, SurfaceFormat(7)).is_err());
    assert!(s.create(1, 0, 2, SurfaceFormat::FMT_32_XRGB).is_err());
    assert!(s.create(1, 1 << 20, 1, SurfaceFormat::FMT_32_XRGB).is_err());
    assert!(matches!(
        s.create(1, 300, 300, SurfaceFormat::FMT_32_XRGB),
        Err(spice_canvas::CanvasError::SurfacePixelsOverCap { .. })
    ));
    s.destroy(0).unwrap();
    assert_eq!(s.total_pixels(), 0);
    assert!(s.destroy(0).is_err());
}

#[test]
fn to_rgb24_reads_back() {
    let mut s = Surfaces::new(16);
    s.create(0, 2, 1, SurfaceFormat::FMT_32_XRGB)
        .unwrap()
        .pixels_mut()
        .copy_from_slice(&[0x00010203, 0xff0a0b0c]);
    assert_eq!(s.get(0).unwrap().to_rgb24(), vec![1, 2, 3, 10, 11, 12]);
}

#[test]
fn alpha_blend_from_surface_honours_src_surface_has_alpha() {
    for (flags, want) in [
        (AlphaFlags::empty(), 0x000080),
        (AlphaFlags::SRC_SURFACE_HAS_ALPHA, 0x7f7fff),
    ] {
        let mut c = canvas(1, 1, 0xffffff);
        // An xRGB surface whose bytes hold premultiplied alpha 0x80 blue.
        c.surfaces
            .create(1, 1, 1, SurfaceFormat::FMT_32_XRGB)
            .unwrap()
            .pixels_mut()[0] = 0x8000_0080;
        let m = ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
            base: base(0, rect(0, 0, 1, 1)),
            alpha_flags: flags,
            alpha: 0xff,
            src_bitmap: Some(spice_proto::types::Image {
                id: 0,
                flags: ImageFlags::empty(),
                width: 1,
                height: 1,
                body: spice_proto::types::ImageBody::Surface(1),
            }),
            src_area: rect(0, 0, 1, 1),
        });
        c.apply(&m).unwrap();
        assert_eq!(rgb(&c), vec![want], "{flags:?}");
    }
}

#[test]
fn mjpeg_frame_decodes_and_is_capped() {
    let (w, h) = (8u32, 4u32);
    let px: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 100, 50, 0]).collect();
    let mut jpg = Vec::new();
    spice_codecs::jpeg::encode(
        &spice_codecs::jpeg::JpegSource {
            data: &px,
            width: w,
            height: h,
            stride: w as usize * 4,
            format: spice_codecs::jpeg::JpegSourceFormat::Bgrx32,
            top_down: true,
        },
        90,
        &mut jpg,
    )
    .unwrap();
    let f = spice_canvas::decode_mjpeg_frame(&jpg, 64, 64).unwrap();
    assert_eq!((f.width(), f.height()), (w, h));
    let p = f.pixel(3, 2).unwrap();
    assert!(((p & 0xff) as i32 - 200).abs() <= 4 && ((p >> 16 & 0xff) as i32 - 50).abs() <= 4);
    assert!(spice_canvas::decode_mjpeg_frame(&jpg, 4, 4).is_err());
    assert!(spice_canvas::decode_mjpeg_frame(&[0xff, 0xd8, 0], 64, 64).is_err());
}

#[test]
fn composite_component_alpha_uses_per_channel_alpha() {
    let rgba1 = |p: u32| {
        let mut i = bitmap32(0, ImageFlags::empty(), 1, 1, &[p]);
        if let spice_proto::types::ImageBody::Bitmap(b) = &mut i.body {
            b.format = spice_proto::types::BitmapFormat::RGBA;
        }
        i
    };
    for (ca, want) in [(true, 0xff00ff), (false, 0xffffff)] {
        let mut c = canvas(1, 1, 0x0000ff);
        let mut flags = CompositeFlags::from_bits_retain(3) | CompositeFlags::HAS_MASK;
        flags.set(CompositeFlags::COMPONENT_ALPHA, ca);
        c.apply(&ServerMessage::DrawComposite(DrawComposite {
            base: base(0, rect(0, 0, 1, 1)),
            flags,
            src_bitmap: Some(rgba1(0xffff_ffff)),
            mask_bitmap: Some(rgba1(0xffff_0000)),
            src_transform: None,
            mask_transform: None,
            src_origin: Point16 { x: 0, y: 0 },
            mask_origin: Point16 { x: 0, y: 0 },
        }))
        .unwrap();
        assert_eq!(rgb(&c), vec![want], "component alpha {ca}");
    }
}
