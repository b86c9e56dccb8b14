//! Replays fuzz/corpus/canvas_draw through `fuzz_draw`; with `SPICE_CANVAS_WRITE_CORPUS=1`
//! first (re)writes the seed files from the messages below.

mod common;

use common::*;
use spice_proto::ChannelMessage as _;
use spice_proto::WriteBuf;
use spice_proto::display::{
    CopyBits, DrawAlphaBlend, DrawComposite, DrawCopy, DrawFill, DrawStroke, DrawText,
    ServerMessage,
};
use spice_proto::types::{
    AlphaFlags, Brush, CompositeFlags, Image, ImageBody, ImageFlags, ImageScaleMode, LineAttr,
    LineFlags, MaskFlags, Path, PathFlags, PathSegment, Pattern, Point, Point16, PointFix, QMask,
    RasterGlyph, Ropd, SpiceString, StringFlags,
};

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/canvas_draw")
}

fn seeds() -> Vec<(&'static str, ServerMessage<'static>)> {
    // The 5x3 QUIC golden vector (shared/vectors), when it can be found.
    let quic = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/vectors/quic-lz/rand.rgb32.quic"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    let quic = leak(quic);
    vec![
        (
            "fill_pattern_mask",
            ServerMessage::DrawFill(DrawFill {
                base: clipped(
                    0,
                    rect(2, 2, 40, 30),
                    vec![rect(0, 0, 20, 20), rect(10, 10, 30, 30)],
                ),
                brush: Brush::Pattern(Pattern {
                    pat: bitmap32(7, ImageFlags::CACHE_ME, 2, 2, &[1, 2, 3, 4]),
                    pos: Point { x: 1, y: 1 },
                }),
                rop_descriptor: Ropd::OP_XOR,
                mask: QMask {
                    flags: MaskFlags::INVERS,
                    pos: Point { x: 0, y: 0 },
                    bitmap: Some(mask_bitmap(&["#.#.", ".#.#"])),
                },
            }),
        ),
        (
            "copy_scaled",
            ServerMessage::DrawCopy(DrawCopy {
                base: base(0, rect(0, 0, 30, 20)),
                src_bitmap: Some(bitmap32(8, ImageFlags::empty(), 3, 2, &[1, 2, 3, 4, 5, 6])),
                src_area: rect(0, 0, 3, 2),
                rop_descriptor: Ropd::OP_PUT,
                scale_mode: ImageScaleMode::INTERPOLATE,
                mask: QMask::default(),
            }),
        ),
        (
            "copy_quic",
            ServerMessage::DrawCopy(DrawCopy {
                base: base(0, rect(1, 1, 6, 4)),
                src_bitmap: Some(Image {
                    id: 9,
                    flags: ImageFlags::CACHE_ME,
                    width: 5,
                    height: 3,
                    body: ImageBody::Quic(quic),
                }),
                src_area: rect(0, 0, 5, 3),
                rop_descriptor: Ropd::OP_PUT,
                scale_mode: ImageScaleMode::NEAREST,
                mask: QMask::default(),
            }),
        ),
        (
            "copy_bits",
            ServerMessage::CopyBits(CopyBits {
                base: base(0, rect(4, 4, 40, 40)),
                src_pos: Point { x: 0, y: 2 },
            }),
        ),
        (
            "text_a1",
            ServerMessage::DrawText(DrawText {
                base: base(0, rect(0, 0, 20, 10)),
                text: SpiceString {
                    flags: StringFlags::RASTER_A1 | StringFlags::RASTER_TOP_DOWN,
                    glyphs: vec![RasterGlyph {
                        render_pos: Point { x: 2, y: 2 },
                        glyph_origin: Point { x: 0, y: 0 },
                        width: 8,
                        height: 2,
                        data: leak(vec![0xa5, 0x5a]),
                    }],
                },
                back_area: rect(0, 0, 20, 10),
                fore_brush: Brush::Solid(0xffffff),
                back_brush: Brush::Solid(0x000080),
                fore_mode: Ropd::OP_PUT.bits(),
                back_mode: Ropd::OP_PUT.bits(),
            }),
        ),
        (
            "stroke_dashed",
            ServerMessage::DrawStroke(DrawStroke {
                base: base(0, rect(0, 0, 64, 48)),
                path: Path {
                    segments: vec![
                        PathSegment {
                            flags: PathFlags::BEGIN,
                            points: vec![PointFix { x: 16, y: 16 }, PointFix { x: 500, y: 300 }],
                        },
                        PathSegment {
                            flags: PathFlags::BEZIER | PathFlags::CLOSE | PathFlags::END,
                            points: vec![
                                PointFix { x: 600, y: 0 },
                                PointFix { x: 0, y: 600 },
                                PointFix { x: 100, y: 100 },
                            ],
                        },
                    ],
                },
                attr: LineAttr {
                    flags: LineFlags::STYLED,
                    style_nseg: 2,
                    style: Some(vec![48, 16]),
                },
                brush: Brush::Solid(0xff00),
                fore_mode: Ropd::OP_PUT.bits(),
                back_mode: 0,
            }),
        ),
        (
            "alpha_blend_surface",
            ServerMessage::DrawAlphaBlend(DrawAlphaBlend {
                base: base(0, rect(0, 0, 32, 32)),
                alpha_flags: AlphaFlags::SRC_SURFACE_HAS_ALPHA,
                alpha: 0x80,
                src_bitmap: Some(Image {
                    id: 0,
                    flags: ImageFlags::empty(),
                    width: 16,
                    height: 16,
                    body: ImageBody::Surface(1),
                }),
                src_area: rect(0, 0, 16, 16),
            }),
        ),
        (
            "composite_over",
            ServerMessage::DrawComposite(DrawComposite {
                base: base(0, rect(0, 0, 10, 10)),
                flags: CompositeFlags::from_bits_retain(3 | (1 << 8) | (1 << 14)),
                src_bitmap: Some(bitmap32(0, ImageFlags::empty(), 2, 2, &[1, 2, 3, 4])),
                mask_bitmap: None,
                src_transform: None,
                mask_transform: None,
                src_origin: Point16 { x: 1, y: 1 },
                mask_origin: Point16 { x: 0, y: 0 },
            }),
        ),
    ]
}

#[test]
fn replay_corpus() {
    let dir = corpus_dir();
    if std::env::var_os("SPICE_CANVAS_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, m) in seeds() {
            let mut out = m.msg_type().to_le_bytes().to_vec();
            m.encode_body(&mut WriteBuf::new(&mut out)).unwrap();
            std::fs::write(dir.join(name), out).unwrap();
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            spice_canvas::fuzz_draw(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n >= 5, "corpus has {n} files");
}

/// Every seed is a valid draw: it decodes and renders without error on the fuzz canvas's
/// layout (64x48 primary, 16x16 ARGB surface 1).
#[test]
fn seeds_render() {
    for (name, m) in seeds() {
        let mut body = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut body)).unwrap();
        let back =
            ServerMessage::decode_body(spice_proto::ChannelType::DISPLAY, m.msg_type(), &body)
                .unwrap();
        let mut c = canvas(64, 48, 0x202020);
        c.surfaces
            .create(1, 16, 16, spice_proto::types::SurfaceFormat::FMT_32_ARGB)
            .unwrap();
        match c.apply(&back) {
            Ok(spice_canvas::Applied::Drawn { rect: Some(_), .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}
