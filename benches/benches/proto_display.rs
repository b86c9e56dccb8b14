//! Display-channel message codec: decode (borrowing, so nearly free per byte) and
//! decode + encode of a DRAW_COPY carrying a 1 MiB BITMAP image.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use spice_proto::display::{DrawCopy, ServerMessage};
use spice_proto::types::{
    Bitmap, BitmapFlags, BitmapFormat, Clip, DisplayBase, Image, ImageBody, ImageFlags,
    ImageScaleMode, PaletteSource, QMask, Rect, Ropd,
};
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn draw_copy_body() -> Vec<u8> {
    const W: u32 = 512;
    const H: u32 = 512;
    // Deterministic pixel data.
    let pixels: Vec<u8> = (0..W * H * 4)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let area = Rect {
        top: 0,
        left: 0,
        bottom: H as i32,
        right: W as i32,
    };
    let m = ServerMessage::DrawCopy(DrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: area,
            clip: Clip::None,
        },
        src_bitmap: Some(Image {
            id: 1,
            flags: ImageFlags::empty(),
            width: W,
            height: H,
            body: ImageBody::Bitmap(Bitmap {
                format: BitmapFormat::BIT32,
                flags: BitmapFlags::TOP_DOWN,
                x: W,
                y: H,
                stride: W * 4,
                palette: PaletteSource::None,
                data: &pixels,
            }),
        }),
        src_area: area,
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::INTERPOLATE,
        mask: QMask::default(),
    });
    let mut out = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut out)).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let body = draw_copy_body();
    let mut g = c.benchmark_group("proto_display");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("draw_copy_1MiB_bitmap/decode", |b| {
        b.iter(|| {
            let m =
                ServerMessage::decode_body(ChannelType::DISPLAY, 304, black_box(&body)).unwrap();
            black_box(m);
        })
    });
    let mut out = Vec::with_capacity(body.len());
    g.bench_function("draw_copy_1MiB_bitmap/decode_encode", |b| {
        b.iter(|| {
            let m =
                ServerMessage::decode_body(ChannelType::DISPLAY, 304, black_box(&body)).unwrap();
            out.clear();
            m.encode_body(&mut WriteBuf::new(&mut out)).unwrap();
            black_box(out.len());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
