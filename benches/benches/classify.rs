//! The image graduality classifier on a 1920x1080 32-bit desktop frame (the e2e bench's
//! content), as spice-server's codec choice runs it once per full-screen DRAW_COPY.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use spice_benches::images;
use spice_codecs::classify::{self, ClassifyImage, GradualFormat};

fn bench(c: &mut Criterion) {
    let frame = images::moving_window(&images::desktop(), 3);
    let img = ClassifyImage {
        data: &frame,
        width: images::W as u32,
        height: images::H as u32,
        stride: images::W * 4,
        format: GradualFormat::Rgb32,
    };
    c.bench_function("classify/graduality_1080p_rgb32", |b| {
        b.iter(|| classify::graduality_score(std::hint::black_box(&img)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
