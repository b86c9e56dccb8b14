//! spice-canvas: decode + render of a full 1920x1080 DRAW_COPY per frame, as the client
//! core does for every screen update: a QUIC image (desktop-like and photo-like), and a
//! GLZ sequence of 8 frames sharing one window (per-frame figures: time / 8).

//!
//! Figures (2026-11-21, 2-vCPU VM at load average 9-17 from other builds, so wall-clock
//! times are inflated; the `ref_*` rows are the codec alone in the same run):
//!
//! | bench | time per 1080p frame |
//! |---|---|
//! | quic_copy_1080p/desktop | 22.9 ms (ref_quic_decode_only 20.9 ms) |
//! | quic_copy_1080p/photo | 99 ms (ref 98 ms) |
//! | glz_copy_1080p/sequence_of_8 | 183 ms / 8 = 22.9 ms (ref_glz_window_decode_only 14.2 ms) |
//!
//! The 5 ms target is not met: the QUIC and GLZ decoders themselves take longer than
//! that on this machine; the canvas adds ~10% to QUIC (decoded straight into the
//! surface) and a copy plus an alpha pass to GLZ (the window keeps its own copy).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spice_canvas::{Canvas, ImageLimits, new_glz_window};
use spice_codecs::quic::{self, ImageType, RowOrder};
use spice_proto::display::{DrawCopy, ServerMessage};
use spice_proto::types::{
    DisplayBase, Image, ImageBody, ImageFlags, ImageScaleMode, QMask, Rect, Ropd, SurfaceFormat,
};
use std::hint::black_box;

use spice_benches::images;

const W: u32 = 1920;
const H: u32 = 1080;

fn full() -> Rect {
    Rect {
        top: 0,
        left: 0,
        bottom: H as i32,
        right: W as i32,
    }
}

fn copy(id: u64, body: ImageBody<'_>) -> ServerMessage<'_> {
    ServerMessage::DrawCopy(DrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: full(),
            clip: spice_proto::types::Clip::None,
        },
        src_bitmap: Some(Image {
            id,
            flags: ImageFlags::empty(),
            width: W,
            height: H,
            body,
        }),
        src_area: full(),
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask::default(),
    })
}

fn canvas() -> Canvas {
    let mut c = Canvas::new(
        1 << 23,
        ImageLimits {
            max_image_pixels: 1 << 22,
            cache_pixels: 1 << 22,
        },
        new_glz_window(1 << 24),
    );
    c.surfaces
        .create(0, W, H, SurfaceFormat::FMT_32_XRGB)
        .unwrap();
    c
}

/// Frame `i` of the GLZ sequence: the desktop with a 400x300 "window" moved by frame.
fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("canvas");
    g.throughput(Throughput::Elements(1));
    for (name, px) in [("desktop", images::desktop()), ("photo", images::photo())] {
        let stream = quic::encode(&quic::Image {
            image_type: ImageType::Rgb32,
            width: W,
            height: H,
            stride: W as usize * 4,
            row_order: RowOrder::TopDown,
            data: &px,
        })
        .unwrap();
        let msg = copy(1, ImageBody::Quic(&stream));
        let mut cv = canvas();
        g.bench_function(format!("quic_copy_1080p/{name}"), |b| {
            b.iter(|| cv.apply(black_box(&msg)).unwrap())
        });
        // Reference: the codec alone, into a reused buffer (what the canvas adds is the
        // difference: allocation of the pixmap and the copy into the surface).
        let mut out = vec![0u8; W as usize * H as usize * 4];
        g.bench_function(format!("ref_quic_decode_only/{name}"), |b| {
            b.iter(|| {
                quic::decode(
                    black_box(&stream),
                    &mut out,
                    W as usize * 4,
                    quic::PixelFormat::Rgba,
                    RowOrder::TopDown,
                    &quic::DecodeLimits::default(),
                )
                .unwrap()
            })
        });
    }

    // GLZ: 8 frames encoded against one dictionary; each iteration decodes and renders
    // the whole sequence into a fresh window.
    let streams = images::glz_sequence(8, 1 << 24);
    eprintln!(
        "glz sequence sizes: {:?}",
        streams.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let msgs: Vec<ServerMessage<'_>> = streams
        .iter()
        .map(|s| copy(0, ImageBody::GlzRgb(s)))
        .collect();
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("glz_copy_1080p/sequence_of_8", |b| {
        b.iter_batched_ref(
            canvas,
            |cv| {
                for m in &msgs {
                    cv.apply(black_box(m)).unwrap();
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("ref_glz_window_decode_only/sequence_of_8", |b| {
        b.iter_batched_ref(
            || spice_codecs::glz::GlzWindow::new(1 << 24),
            |w| {
                for st in &streams {
                    w.decode(black_box(st)).unwrap();
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
