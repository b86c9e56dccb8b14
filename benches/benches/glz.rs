//! GLZ encode throughput on 1920x1080 32-bit images (bytes of 32-bit input):
//! a first frame into an empty dictionary, and a repeated frame.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::glz::{GlzDictionary, GlzFrame, GlzInput, GlzPixels, GlzWindow};
use spice_codecs::lz::LzImageType;
use std::hint::black_box;
use std::sync::Arc;

use spice_benches::images;

use spice_benches::images::{H, W};

fn input(img: &[u8]) -> GlzInput<'_> {
    GlzInput {
        image_type: LzImageType::Rgb32,
        width: W as u32,
        height: H as u32,
        stride: W * 4,
        top_down: true,
        data: img,
    }
}

/// The same image handed over as a shared buffer (kept without a copy).
fn shared(img: &Arc<[u8]>) -> GlzFrame<'static> {
    GlzFrame {
        image_type: LzImageType::Rgb32,
        width: W as u32,
        height: H as u32,
        stride: W * 4,
        top_down: true,
        pixels: GlzPixels::Shared(Arc::clone(img)),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("glz");
    g.throughput(Throughput::Bytes((W * H * 4) as u64));
    let desk = images::desktop();
    let mut out = Vec::with_capacity(W * H * 4);
    // First frame: a fresh dictionary each time (its creation is included).
    g.bench_function("encode_first/desktop", |b| {
        b.iter(|| {
            let mut d = GlzDictionary::new(1 << 23).unwrap();
            out.clear();
            d.encode(0, &input(black_box(&desk)), &mut out).unwrap();
        })
    });
    // Repeated frame: the dictionary holds the same image already.
    let mut d = GlzDictionary::new(1 << 23).unwrap();
    let mut first = Vec::new();
    d.encode(0, &input(&desk), &mut first).unwrap();
    g.bench_function("encode_repeat/desktop", |b| {
        b.iter(|| {
            out.clear();
            d.encode(0, &input(black_box(&desk)), &mut out).unwrap();
        })
    });
    // The same with the image handed over as a shared buffer (no copy into
    // the dictionary, as the reference encoder keeps the drawable instead).
    let desk_arc: Arc<[u8]> = desk.clone().into();
    g.bench_function("encode_first_shared/desktop", |b| {
        b.iter(|| {
            let mut d = GlzDictionary::new(1 << 23).unwrap();
            out.clear();
            d.encode_frame(0, &shared(black_box(&desk_arc)), &mut out)
                .unwrap();
        })
    });
    // Two buffers of equal content, used in turn, so that the frame and the
    // one it repeats are in different memory as they would be in a server.
    let desk_arc2: Arc<[u8]> = desk.clone().into();
    let mut ds = GlzDictionary::new(1 << 23).unwrap();
    ds.encode_frame(0, &shared(&desk_arc2), &mut Vec::new())
        .unwrap();
    let mut turn = false;
    g.bench_function("encode_repeat_shared/desktop", |b| {
        b.iter(|| {
            turn = !turn;
            let img = if turn { &desk_arc } else { &desk_arc2 };
            out.clear();
            ds.encode_frame(0, &shared(black_box(img)), &mut out)
                .unwrap();
        })
    });
    eprintln!(
        "glz desktop: first {} bytes, repeat {} bytes",
        first.len(),
        out.len()
    );
    // Decode of the first frame.
    g.bench_function("decode_first/desktop", |b| {
        b.iter(|| {
            let mut w = GlzWindow::new(1 << 23);
            w.decode(black_box(&first)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
