//! Display channel golden bytes, derived by hand from the layouts in protocol.md §2.3/§3
//! (little-endian, packed; pointers are offsets from the start of the body).

use spice_proto::display::{
    DrawCopy, DrawFill, MonitorsConfig, ServerMessage, StreamCreate, SurfaceCreate,
};
use spice_proto::types::*;
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn check(m: &ServerMessage<'_>, golden: &[u8]) {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    assert_eq!(v, golden, "encode {}", m.name());
    let back = ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type(), golden).unwrap();
    assert_eq!(&back, m, "decode {}", m.name());
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn surface_create_primary() {
    let m = ServerMessage::SurfaceCreate(SurfaceCreate {
        surface_id: 0,
        width: 1024,
        height: 768,
        format: SurfaceFormat::FMT_32_XRGB,
        flags: SurfaceFlags::PRIMARY,
    });
    check(&m, &hex("00000000 00040000 00030000 20000000 01000000"));
}

#[test]
fn draw_fill_solid_with_clip_rects() {
    let r = Rect {
        top: 10,
        left: 20,
        bottom: 30,
        right: 40,
    };
    let m = ServerMessage::DrawFill(DrawFill {
        base: DisplayBase {
            surface_id: 0,
            bbox: r,
            clip: Clip::Rects(ClipRects { rects: vec![r] }),
        },
        brush: Brush::Solid(0x00ff_0000),
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask::default(),
    });
    let golden = hex("00000000 0a000000 14000000 1e000000 28000000 \
         01 01000000 0a000000 14000000 1e000000 28000000 \
         01 0000ff00 \
         0800 \
         00 00000000 00000000 00000000");
    assert_eq!(golden.len(), 61);
    check(&m, &golden);
}

#[test]
fn draw_copy_quic() {
    let m = ServerMessage::DrawCopy(DrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: Rect {
                top: 0,
                left: 0,
                bottom: 2,
                right: 2,
            },
            clip: Clip::None,
        },
        src_bitmap: Some(Image {
            id: 0x1122_3344_5566_7788,
            flags: ImageFlags::CACHE_ME,
            width: 2,
            height: 2,
            body: ImageBody::Quic(&[0xde, 0xad, 0xbe, 0xef]),
        }),
        src_area: Rect {
            top: 0,
            left: 0,
            bottom: 2,
            right: 2,
        },
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::INTERPOLATE,
        mask: QMask::default(),
    });
    let golden = hex(
        // DisplayBase: surface 0, box (0,0,2,2), clip NONE
        "00000000 00000000 00000000 02000000 02000000 00 \
         39000000 \
         00000000 00000000 02000000 02000000 \
         0800 00 \
         00 00000000 00000000 00000000 \
         8877665544332211 01 01 02000000 02000000 \
         04000000 deadbeef",
    );
    // The fixed part is 57 bytes, so the image pointer is 57 = 0x39.
    assert_eq!(golden.len(), 57 + 18 + 8);
    check(&m, &golden);
}

/// spice-server order: fixed part, then the source image (with its inline bitmap rows), then
/// the mask image, then the source's palette (its sub-marshaller is created last).
#[test]
fn draw_copy_bitmap_palette_and_mask_order() {
    let pal = Palette {
        unique: 7,
        ents: vec![0, 0x00ff_ffff],
    };
    let m = ServerMessage::DrawCopy(DrawCopy {
        base: DisplayBase::default(),
        src_bitmap: Some(Image {
            id: 1,
            flags: ImageFlags::empty(),
            width: 2,
            height: 1,
            body: ImageBody::Bitmap(Bitmap {
                format: BitmapFormat::BIT8,
                flags: BitmapFlags::empty(),
                x: 2,
                y: 1,
                stride: 2,
                palette: PaletteSource::Inline(pal),
                data: &[1, 2],
            }),
        }),
        src_area: Rect {
            top: 0,
            left: 0,
            bottom: 1,
            right: 2,
        },
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask {
            flags: MaskFlags::INVERS,
            pos: Point { x: 0, y: 0 },
            bitmap: Some(Image {
                id: 2,
                flags: ImageFlags::empty(),
                width: 1,
                height: 1,
                body: ImageBody::Bitmap(Bitmap {
                    format: BitmapFormat::BIT1_BE,
                    flags: BitmapFlags::TOP_DOWN,
                    x: 1,
                    y: 1,
                    stride: 1,
                    palette: PaletteSource::None,
                    data: &[0x80],
                }),
            }),
        },
    });
    let golden = hex(
        // 0: DisplayBase (21 bytes, all zero, clip NONE)
        "00000000 00000000 00000000 00000000 00000000 00 \
         39000000 \
         00000000 00000000 01000000 02000000 \
         0800 01 \
         01 00000000 00000000 5f000000 \
         0100000000000000 00 00 02000000 01000000 \
         05 00 02000000 01000000 02000000 84000000 0102 \
         0200000000000000 00 00 01000000 01000000 \
         02 04 01000000 01000000 01000000 00000000 80 \
         0700000000000000 0200 00000000 ffffff00",
    );
    // src image at 57 (0x39) is 18+14+4+2 = 38 bytes -> mask image at 95 (0x5f), 37 bytes ->
    // palette at 132 (0x84), 18 bytes.
    assert_eq!(golden.len(), 150);
    check(&m, &golden);
}

#[test]
fn stream_create_mjpeg() {
    let m = ServerMessage::StreamCreate(StreamCreate {
        surface_id: 0,
        id: 3,
        flags: StreamFlags::TOP_DOWN,
        codec_type: VideoCodecType::MJPEG,
        stamp: 0,
        stream_width: 640,
        stream_height: 480,
        src_width: 640,
        src_height: 480,
        dest: Rect {
            top: 0,
            left: 0,
            bottom: 480,
            right: 640,
        },
        clip: Clip::None,
    });
    let golden = hex("00000000 03000000 01 01 0000000000000000 \
         80020000 e0010000 80020000 e0010000 \
         00000000 00000000 e0010000 80020000 00");
    assert_eq!(golden.len(), 51);
    check(&m, &golden);
}

#[test]
fn monitors_config_one_head() {
    let m = ServerMessage::MonitorsConfig(MonitorsConfig {
        max_allowed: 4,
        heads: vec![Head {
            monitor_id: 0,
            surface_id: 0,
            width: 1024,
            height: 768,
            x: 0,
            y: 0,
            flags: 0,
        }],
    });
    check(
        &m,
        &hex("0100 0400 00000000 00000000 00040000 00030000 00000000 00000000 00000000"),
    );
}

#[test]
fn draw_stroke_path_then_style_then_pattern() {
    use spice_proto::display::DrawStroke;
    let m = ServerMessage::DrawStroke(DrawStroke {
        base: DisplayBase::default(),
        path: Path {
            segments: vec![PathSegment {
                flags: PathFlags::BEGIN | PathFlags::END,
                points: vec![PointFix { x: 16, y: 32 }],
            }],
        },
        attr: LineAttr {
            flags: LineFlags::STYLED,
            style_nseg: 1,
            style: Some(vec![0x40]),
        },
        brush: Brush::Pattern(Pattern {
            pat: Image {
                id: 9,
                flags: ImageFlags::empty(),
                width: 0,
                height: 0,
                body: ImageBody::FromCache,
            },
            pos: Point { x: 1, y: 2 },
        }),
        fore_mode: 8,
        back_mode: 0,
    });
    // Fixed: 21 + path ptr 4 + attr 6 + brush 13 + modes 4 = 48 (0x30).
    // path at 48: 4 + 5 + 8 = 17 -> style at 65 (0x41): 4 -> pattern image at 69 (0x45): 18.
    let golden = hex("00000000 00000000 00000000 00000000 00000000 00 \
         30000000 \
         08 01 41000000 \
         02 45000000 01000000 02000000 \
         0800 0000 \
         01000000 03 01000000 10000000 20000000 \
         40000000 \
         0900000000000000 67 00 00000000 00000000");
    assert_eq!(golden.len(), 87);
    check(&m, &golden);
}
