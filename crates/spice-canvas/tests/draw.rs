//! Expected pixels of the draw operations on small surfaces.

mod common;

use common::*;
use spice_canvas::{Applied, CanvasError, DrawOp, draw};
use spice_proto::display::{CopyBits, DrawCopy, DrawFill, DrawMask, ServerMessage};
use spice_proto::types::{
    Brush, ImageFlags, ImageScaleMode, MaskFlags, Pattern, Point, QMask, Ropd,
};

fn fill(
    c: &mut spice_canvas::Canvas,
    b: spice_proto::types::DisplayBase,
    brush: Brush<'static>,
    rop: Ropd,
) -> Option<spice_proto::types::Rect> {
    let m = ServerMessage::DrawFill(DrawFill {
        base: b,
        brush,
        rop_descriptor: rop,
        mask: QMask::default(),
    });
    match c.apply(&m).unwrap() {
        Applied::Drawn { rect, .. } => rect,
        other => panic!("{other:?}"),
    }
}

#[test]
fn solid_fill_is_clipped_to_surface() {
    let mut c = canvas(4, 3, 0);
    let r = fill(
        &mut c,
        base(0, rect(-5, 1, 2, 100)),
        Brush::Solid(0x123456),
        Ropd::OP_PUT,
    );
    assert_eq!(r, Some(rect(0, 1, 2, 3)));
    #[rustfmt::skip]
    assert_eq!(rgb(&c), vec![
        0, 0, 0, 0,
        0x123456, 0x123456, 0, 0,
        0x123456, 0x123456, 0, 0,
    ]);
}

#[test]
fn fill_outside_surface_changes_nothing() {
    let mut c = canvas(4, 3, 7);
    let r = fill(
        &mut c,
        base(0, rect(10, 10, 20, 20)),
        Brush::Solid(1),
        Ropd::OP_PUT,
    );
    assert_eq!(r, None);
    let r = fill(
        &mut c,
        base(0, rect(3, 3, 1, 1)),
        Brush::Solid(1),
        Ropd::OP_PUT,
    );
    assert_eq!(r, None);
    assert!(rgb(&c).iter().all(|&p| p == 7));
}

#[test]
fn fill_with_overlapping_clip_xors_once() {
    let mut c = canvas(4, 1, 0x0f0f0f);
    let b = clipped(
        0,
        rect(0, 0, 4, 1),
        vec![rect(0, 0, 3, 1), rect(1, 0, 2, 1), rect(2, 0, 3, 1)],
    );
    let r = fill(&mut c, b, Brush::Solid(0xffffff), Ropd::OP_XOR);
    assert_eq!(r, Some(rect(0, 0, 3, 1)));
    assert_eq!(rgb(&c), vec![0xf0f0f0, 0xf0f0f0, 0xf0f0f0, 0x0f0f0f]);
}

#[test]
fn rop_descriptor_table() {
    let d = 0x00cc_aa55u32;
    let s = 0x0033_0ff0u32;
    let cases: &[(Ropd, u32)] = &[
        (Ropd::OP_PUT, s),
        (Ropd::OP_OR, s | d),
        (Ropd::OP_AND, s & d),
        (Ropd::OP_XOR, s ^ d),
        (Ropd::OP_BLACKNESS, 0),
        (Ropd::OP_WHITENESS, 0xffffff),
        (Ropd::OP_INVERS, !d),
        (Ropd::OP_PUT | Ropd::INVERS_BRUSH, !s),
        (Ropd::OP_PUT | Ropd::INVERS_SRC, s), // INVERS_SRC does not apply to a brush
        (Ropd::OP_PUT | Ropd::INVERS_RES, !s),
        (Ropd::OP_OR | Ropd::INVERS_DEST, s | !d),
        (
            Ropd::OP_AND | Ropd::INVERS_BRUSH | Ropd::INVERS_RES,
            !(!s & d),
        ),
        (
            Ropd::OP_XOR | Ropd::INVERS_DEST | Ropd::INVERS_BRUSH,
            !s ^ !d,
        ),
        (Ropd::empty(), d),
        (Ropd::OP_PUT | Ropd::OP_XOR, s), // the first operation wins
    ];
    for (rop, want) in cases {
        let mut c = canvas(1, 1, d);
        fill(&mut c, base(0, rect(0, 0, 1, 1)), Brush::Solid(s), *rop);
        assert_eq!(rgb(&c)[0], want & 0xffffff, "{rop:?}");
    }
}

#[test]
fn pattern_brush_tiles_from_pos() {
    let mut c = canvas(4, 2, 0);
    let pat = bitmap32(1, ImageFlags::empty(), 2, 1, &[0xa, 0xb]);
    fill(
        &mut c,
        base(0, rect(0, 0, 4, 2)),
        Brush::Pattern(Pattern {
            pat,
            pos: Point { x: 1, y: 0 },
        }),
        Ropd::OP_PUT,
    );
    assert_eq!(rgb(&c), vec![0xb, 0xa, 0xb, 0xa, 0xb, 0xa, 0xb, 0xa]);
}

#[test]
fn mask_limits_fill_and_invers_flips_it() {
    for (invers, want) in [
        (false, vec![1, 0, 0, 1, 0, 0]),
        (true, vec![0, 1, 0, 0, 1, 0]),
    ] {
        let mut c = canvas(3, 2, 0);
        let m = ServerMessage::DrawFill(DrawFill {
            base: base(0, rect(0, 0, 3, 2)),
            brush: Brush::Solid(1),
            rop_descriptor: Ropd::OP_PUT,
            // The mask is 2 wide: column 2 is outside it and never drawn.
            mask: QMask {
                flags: if invers {
                    MaskFlags::INVERS
                } else {
                    MaskFlags::empty()
                },
                pos: Point { x: 0, y: 0 },
                bitmap: Some(mask_bitmap(&["#.", "#."])),
            },
        });
        c.apply(&m).unwrap();
        assert_eq!(rgb(&c), want, "invers {invers}");
    }
}

fn copy_msg(
    b: spice_proto::types::DisplayBase,
    img: spice_proto::types::Image<'static>,
    src: spice_proto::types::Rect,
    mode: ImageScaleMode,
) -> ServerMessage<'static> {
    ServerMessage::DrawCopy(DrawCopy {
        base: b,
        src_bitmap: Some(img),
        src_area: src,
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: mode,
        mask: QMask::default(),
    })
}

#[test]
fn copy_places_src_area() {
    let mut c = canvas(3, 2, 0);
    let img = bitmap32(1, ImageFlags::empty(), 3, 2, &[1, 2, 3, 4, 5, 6]);
    c.apply(&copy_msg(
        base(0, rect(1, 0, 3, 2)),
        img,
        rect(1, 0, 3, 2),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![0, 2, 3, 0, 5, 6]);
}

#[test]
fn copy_src_outside_image_reads_black() {
    let mut c = canvas(3, 1, 9);
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[1, 2]);
    c.apply(&copy_msg(
        base(0, rect(0, 0, 3, 1)),
        img,
        rect(0, 0, 3, 1),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![1, 2, 0]);
}

#[test]
fn copy_scaled_nearest_and_interpolate() {
    let mut c = canvas(4, 1, 0);
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[0x000000, 0x0000ff]);
    c.apply(&copy_msg(
        base(0, rect(0, 0, 4, 1)),
        img.clone(),
        rect(0, 0, 2, 1),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![0, 0, 0xff, 0xff]);
    c.apply(&copy_msg(
        base(0, rect(0, 0, 4, 1)),
        img,
        rect(0, 0, 2, 1),
        ImageScaleMode::INTERPOLATE,
    ))
    .unwrap();
    // Centres at source x = -0.25, 0.25, 0.75, 1.25; outside the image is transparent
    // black (pixman repeat NONE), so the edges darken; weights truncated like pixman.
    assert_eq!(rgb(&c), vec![0, 0x3f, 0xbf, 0xbf]);
}

#[test]
fn copy_with_cache_me_then_from_cache() {
    let mut c = canvas(2, 1, 0);
    let img = bitmap32(42, ImageFlags::CACHE_ME, 2, 1, &[7, 8]);
    // Off-surface: nothing drawn, but the image is cached all the same.
    c.apply(&copy_msg(
        base(0, rect(50, 50, 52, 51)),
        img,
        rect(0, 0, 2, 1),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    assert!(c.images.cached(42).is_some());
    let from_cache = spice_proto::types::Image {
        id: 42,
        flags: ImageFlags::empty(),
        width: 2,
        height: 1,
        body: spice_proto::types::ImageBody::FromCache,
    };
    c.apply(&copy_msg(
        base(0, rect(0, 0, 2, 1)),
        from_cache.clone(),
        rect(0, 0, 2, 1),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    assert_eq!(rgb(&c), vec![7, 8]);
    c.apply(&ServerMessage::InvalList(vec![
        spice_proto::types::ResourceId {
            resource_type: spice_proto::types::ResourceType::PIXMAP,
            id: 42,
        },
    ]))
    .unwrap();
    let e = c
        .apply(&copy_msg(
            base(0, rect(0, 0, 2, 1)),
            from_cache,
            rect(0, 0, 2, 1),
            ImageScaleMode::NEAREST,
        ))
        .unwrap_err();
    assert!(matches!(e, CanvasError::NotInCache(42)), "{e}");
}

#[test]
fn copy_bits_overlapping_moves_right() {
    let mut c = canvas(5, 1, 0);
    c.surfaces
        .get_mut(0)
        .unwrap()
        .pixels_mut()
        .copy_from_slice(&[1, 2, 3, 4, 5]);
    let op = CopyBits {
        base: base(0, rect(1, 0, 5, 1)),
        src_pos: Point { x: 0, y: 0 },
    };
    let r = draw(&mut c.surfaces, &mut c.images, &DrawOp::CopyBits(&op)).unwrap();
    assert_eq!(r, Some(rect(1, 0, 5, 1)));
    assert_eq!(rgb(&c), vec![1, 1, 2, 3, 4]);
}

#[test]
fn copy_bits_from_outside_keeps_destination() {
    let mut c = canvas(3, 2, 0);
    c.surfaces
        .get_mut(0)
        .unwrap()
        .pixels_mut()
        .copy_from_slice(&[1, 2, 3, 4, 5, 6]);
    let op = CopyBits {
        base: base(0, rect(0, 0, 3, 2)),
        src_pos: Point { x: 1, y: 1 },
    };
    draw(&mut c.surfaces, &mut c.images, &DrawOp::CopyBits(&op)).unwrap();
    assert_eq!(rgb(&c), vec![5, 6, 3, 4, 5, 6]);
}

#[test]
fn blackness_whiteness_invers() {
    let mut c = canvas(3, 1, 0x102030);
    let dm = |x0, x1| DrawMask {
        base: base(0, rect(x0, 0, x1, 1)),
        mask: QMask::default(),
    };
    c.apply(&ServerMessage::DrawBlackness(dm(0, 1))).unwrap();
    c.apply(&ServerMessage::DrawWhiteness(dm(1, 2))).unwrap();
    c.apply(&ServerMessage::DrawInvers(dm(2, 3))).unwrap();
    assert_eq!(rgb(&c), vec![0, 0xffffff, 0xefdfcf]);
}

#[test]
fn unknown_surface_is_an_error() {
    let mut c = canvas(2, 2, 0);
    let m = ServerMessage::DrawFill(DrawFill {
        base: base(9, rect(0, 0, 1, 1)),
        brush: Brush::Solid(1),
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask::default(),
    });
    assert!(matches!(c.apply(&m), Err(CanvasError::UnknownSurface(9))));
}

#[test]
fn none_brush_fills_with_zero_through_the_rop() {
    let mut c = canvas(2, 1, 0x00f0f0);
    fill(&mut c, base(0, rect(0, 0, 1, 1)), Brush::None, Ropd::OP_PUT);
    fill(
        &mut c,
        base(0, rect(1, 0, 2, 1)),
        Brush::None,
        Ropd::OP_OR | Ropd::INVERS_BRUSH,
    );
    assert_eq!(rgb(&c), vec![0, 0xffffff]);
}

#[test]
fn clip_and_mask_combine() {
    // Box 4x2, clip keeps columns 1..4, the mask (at pos 1,0) keeps "#.#" per row.
    let mut c = canvas(4, 2, 0);
    let m = ServerMessage::DrawFill(DrawFill {
        base: clipped(0, rect(0, 0, 4, 2), vec![rect(1, 0, 4, 2)]),
        brush: Brush::Solid(9),
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask {
            flags: MaskFlags::empty(),
            pos: Point { x: 1, y: 0 },
            bitmap: Some(mask_bitmap(&["##.#", "#.#."])),
        },
    });
    let r = match c.apply(&m).unwrap() {
        Applied::Drawn { rect, .. } => rect,
        other => panic!("{other:?}"),
    };
    assert_eq!(r, Some(rect(1, 0, 4, 2)));
    // Surface x maps to mask x + 1: row 0 mask "##.#" → x0:'#'(clipped) x1:'.' x2:'#' x3: outside.
    assert_eq!(rgb(&c), vec![0, 0, 9, 0, 0, 9, 0, 0]);
}

#[test]
fn copy_with_rop_mask_and_scaling() {
    let mut c = canvas(4, 1, 0x0f0f0f);
    let img = bitmap32(1, ImageFlags::empty(), 2, 1, &[0xff0000, 0x00ff00]);
    let m = ServerMessage::DrawCopy(DrawCopy {
        base: base(0, rect(0, 0, 4, 1)),
        src_bitmap: Some(img),
        src_area: rect(0, 0, 2, 1),
        rop_descriptor: Ropd::OP_XOR | Ropd::INVERS_SRC,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask {
            flags: MaskFlags::empty(),
            pos: Point { x: 0, y: 0 },
            bitmap: Some(mask_bitmap(&["##.#"])),
        },
    });
    c.apply(&m).unwrap();
    let x = |s: u32| (!s ^ 0x0f0f0f) & 0xffffff;
    assert_eq!(
        rgb(&c),
        vec![x(0xff0000), x(0xff0000), 0x0f0f0f, x(0x00ff00)]
    );
}

#[test]
fn pattern_with_inverted_brush_and_negative_offset() {
    let mut c = canvas(3, 1, 0);
    let pat = bitmap32(1, ImageFlags::empty(), 3, 1, &[1, 2, 3]);
    fill(
        &mut c,
        base(0, rect(0, 0, 3, 1)),
        Brush::Pattern(Pattern {
            pat,
            pos: Point { x: -1, y: 5 },
        }),
        Ropd::OP_PUT | Ropd::INVERS_BRUSH,
    );
    // x = 0 reads tile column (0 - (-1)) mod 3 = 1.
    assert_eq!(rgb(&c), vec![!2 & 0xffffff, !3 & 0xffffff, !1 & 0xffffff]);
}

#[test]
fn inval_all_pixmaps_empties_cache() {
    let mut c = canvas(1, 1, 0);
    c.apply(&copy_msg(
        base(0, rect(0, 0, 1, 1)),
        bitmap32(77, ImageFlags::CACHE_ME, 1, 1, &[0x42]),
        rect(0, 0, 1, 1),
        ImageScaleMode::NEAREST,
    ))
    .unwrap();
    c.apply(&ServerMessage::InvalAllPixmaps(vec![])).unwrap();
    assert!(c.images.cached(77).is_none());
}
