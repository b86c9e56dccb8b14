//! LZ4 and JPEG image codecs on a deterministic 1920x1080 photo-like BGRX image.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::jpeg::{self, JpegLimits, JpegSource, JpegSourceFormat};
use spice_codecs::lz4::{self, Lz4Format, Lz4Header, Lz4Limits, Lz4Output};
use std::hint::black_box;

const W: u32 = 1920;
const H: u32 = 1080;

/// Smooth gradients, a few soft shapes and mild noise: photo-like, deterministic.
fn photo() -> Vec<u8> {
    let mut state = 0x1234_5678u32;
    let mut v = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state % 7) as i32 - 3;
            let (fx, fy) = (x as f32 / W as f32, y as f32 / H as f32);
            let blob = ((fx - 0.6).powi(2) + (fy - 0.4).powi(2)).sqrt();
            let c = |base: f32| (base as i32 + n).clamp(0, 255) as u8;
            v.extend_from_slice(&[
                c(40.0 + 150.0 * fx + 40.0 * (fy * 9.0).sin()),
                c(60.0 + 120.0 * fy + 60.0 * (1.0 - blob).max(0.0)),
                c(90.0 + 100.0 * (1.0 - blob).max(0.0) + 30.0 * (fx * 13.0).cos()),
                0,
            ]);
        }
    }
    v
}

fn media(c: &mut Criterion) {
    let img = photo();
    let stride = W as usize * 4;
    let mut g = c.benchmark_group("media_1920x1080");
    g.throughput(Throughput::Bytes(img.len() as u64));
    g.sample_size(20);

    let header = Lz4Header {
        top_down: true,
        format: Lz4Format::Rgb32,
    };
    let mut lz4_out = Vec::new();
    lz4::encode(&img, W, H, stride, header, H as usize, &mut lz4_out).unwrap();
    g.bench_function("lz4_encode", |b| {
        let mut out = Vec::with_capacity(img.len() + img.len() / 8);
        b.iter(|| {
            out.clear();
            lz4::encode(black_box(&img), W, H, stride, header, H as usize, &mut out).unwrap();
        })
    });
    let mut dst = vec![0u8; img.len()];
    g.bench_function("lz4_decode", |b| {
        b.iter(|| {
            lz4::decode(
                black_box(&lz4_out),
                W,
                H,
                &mut dst,
                stride,
                Lz4Output::Native,
                &Lz4Limits::default(),
            )
            .unwrap()
        })
    });

    let src = JpegSource {
        data: &img,
        width: W,
        height: H,
        stride,
        format: JpegSourceFormat::Bgrx32,
        top_down: true,
    };
    let mut jpeg_out = Vec::new();
    jpeg::encode(&src, 80, &mut jpeg_out).unwrap();
    g.bench_function("jpeg_encode_q80", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            jpeg::encode(black_box(&src), 80, &mut out).unwrap();
        })
    });
    g.bench_function("jpeg_decode_q80", |b| {
        b.iter(|| {
            jpeg::decode(
                black_box(&jpeg_out),
                &mut dst,
                stride,
                &JpegLimits::default(),
            )
            .unwrap()
        })
    });
    g.finish();
    eprintln!(
        "media sizes: raw {} B, lz4 {} B ({:.2}:1), jpeg q80 {} B ({:.1}:1)",
        img.len(),
        lz4_out.len(),
        img.len() as f64 / lz4_out.len() as f64,
        jpeg_out.len(),
        img.len() as f64 / jpeg_out.len() as f64
    );
}

criterion_group!(benches, media);
criterion_main!(benches);
