//! LZ encode/decode throughput on 1920x1080 32-bit images (bytes of 32-bit input).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::lz::{self, LzDecodeOptions, LzImageType};
use std::hint::black_box;

const W: usize = 1920;
const H: usize = 1080;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Desktop-like: flat window areas, text-like glyph edges, a gradient title bar.
pub fn desktop() -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut img = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let p = &mut img[(y * W + x) * 4..][..4];
            let (b, g, r) = if y < 30 {
                ((x * 255 / W) as u8, 80, (255 - x * 255 / W) as u8)
            } else if (200..900).contains(&x) && (100..800).contains(&y) {
                // A text window: white with dark glyph strokes.
                let gx = (x - 200) % 9;
                let gy = (y - 100) % 16;
                let glyph = (x / 9 * 31 + y / 16 * 17) % 7;
                if gy < 11 && gx < 7 && (gx * 3 + gy + glyph) % 5 == 0 {
                    (20, 20, 20)
                } else {
                    (255, 255, 255)
                }
            } else if (1000..1800).contains(&x) && (150..600).contains(&y) {
                ((x / 40 * 20) as u8, (y / 30 * 15) as u8, 128)
            } else {
                (90, 110, 140)
            };
            p.copy_from_slice(&[b, g, r, 0]);
        }
    }
    // A few icons of noise.
    for i in 0..12 {
        let (x0, y0) = (20 + (i % 2) * 70, 60 + (i / 2) * 80);
        for y in y0..y0 + 48 {
            for x in x0..x0 + 48 {
                let v = xorshift(&mut s);
                img[(y * W + x) * 4..][..3].copy_from_slice(&[
                    v as u8,
                    (v >> 8) as u8,
                    (v >> 16) as u8,
                ]);
            }
        }
    }
    img
}

/// Photo-like: smooth gradients with low-amplitude noise.
pub fn photo() -> Vec<u8> {
    let mut s = 0x0fed_cba9_8765_4321u64;
    let mut img = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let n = xorshift(&mut s);
            let fx = x as f32 / W as f32;
            let fy = y as f32 / H as f32;
            let base = [
                (128.0 + 100.0 * (fx * 6.0).sin() * (fy * 3.0).cos()) as i32,
                (128.0 + 90.0 * (fx * 2.0 + fy * 5.0).sin()) as i32,
                (128.0 + 80.0 * (fy * 7.0).cos()) as i32,
            ];
            let p = &mut img[(y * W + x) * 4..][..4];
            for c in 0..3 {
                p[c] = (base[c] + ((n >> (c * 8)) & 7) as i32 - 3).clamp(0, 255) as u8;
            }
        }
    }
    img
}

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
