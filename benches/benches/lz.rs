//! LZ encode/decode throughput on 1920x1080 32-bit images (bytes of 32-bit input).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::lz::{self, LzDecodeOptions, LzImageType};
use std::hint::black_box;

use spice_benches::images::{H, W, desktop, photo};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lz");
    g.throughput(Throughput::Bytes((W * H * 4) as u64));
    for (name, img) in [("desktop", desktop()), ("photo", photo())] {
        let mut enc = Vec::with_capacity(W * H * 4);
        lz::encode_image(
            LzImageType::Rgb32,
            W as u32,
            H as u32,
            (W * 4) as u32,
            true,
            &img,
            &mut enc,
        )
        .unwrap();
        eprintln!(
            "lz {name}: {} -> {} bytes ({:.2}:1)",
            img.len(),
            enc.len(),
            img.len() as f64 / enc.len() as f64
        );
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                enc.clear();
                lz::encode_image(
                    LzImageType::Rgb32,
                    W as u32,
                    H as u32,
                    (W * 4) as u32,
                    true,
                    black_box(&img),
                    &mut enc,
                )
                .unwrap();
            })
        });
        let mut out = vec![0u8; W * H * 4];
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| lz::decode(black_box(&enc), &mut out, &LzDecodeOptions::default()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
