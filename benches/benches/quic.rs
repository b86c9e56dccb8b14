//! QUIC encode/decode throughput on 1920x1080 32-bit images, generated deterministically:
//! a desktop-like image (flat windows, text-like glyphs, gradients; 5.83:1), a photo-like
//! one (smooth fields plus noise; 2.26:1), and the flatter desktop the canvas and client
//! benches draw (`spice_benches::images::desktop`, 10.85:1, near the 9.7:1 desktop of the
//! reference figures in `reference/codecs.md`). Throughput counts bytes of 32-bit
//! input/output.

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use spice_codecs::quic::{self, DecodeLimits, Image, ImageType, PixelFormat, RowOrder};

const W: usize = 1920;
const H: usize = 1080;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fill(img: &mut [u8], x0: usize, y0: usize, w: usize, h: usize, bgrx: [u8; 4]) {
    for y in y0..(y0 + h).min(H) {
        for x in x0..(x0 + w).min(W) {
            img[(y * W + x) * 4..][..4].copy_from_slice(&bgrx);
        }
    }
}

/// Desktop: a wallpaper gradient, overlapping windows with title-bar gradients, and
/// lines of text-like glyphs.
fn desktop() -> Vec<u8> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut img = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let v = (x * 96 / W + y * 64 / H) as u8;
            img[(y * W + x) * 4..][..4].copy_from_slice(&[120 + v, 60 + v / 2, 20, 0]);
        }
    }
    for _ in 0..12 {
        let (wx, wy) = (rng.below(W - 500), rng.below(H - 400));
        let (ww, wh) = (300 + rng.below(900), 200 + rng.below(600));
        let bg = if rng.below(3) == 0 {
            [43, 43, 43, 0]
        } else {
            [250, 250, 250, 0]
        };
        let ink = if bg[0] > 128 {
            [30, 30, 30, 0]
        } else {
            [220, 220, 220, 0]
        };
        fill(&mut img, wx, wy, ww, wh, bg);
        // Title bar: horizontal gradient.
        for y in wy..(wy + 28).min(H) {
            for x in wx..(wx + ww).min(W) {
                let t = ((x - wx) * 80 / ww) as u8;
                img[(y * W + x) * 4..][..4].copy_from_slice(&[200 - t, 120 + t / 2, 60, 0]);
            }
        }
        // Text lines: glyphs of 1-2 px strokes in 8x14 cells with gaps between words.
        let mut y = wy + 40;
        while y + 14 < (wy + wh).min(H) {
            let mut x = wx + 10;
            let line_end = (wx + ww - 10 - rng.below(ww / 3 + 1)).min(W);
            while x + 8 < line_end {
                if rng.below(6) == 0 {
                    x += 8;
                    continue;
                }
                let glyph = rng.next();
                for gy in 0..12 {
                    for gx in 0..7 {
                        if glyph >> ((gy * 7 + gx) % 61) & 1 == 1 && (gx + gy) % 3 != 0 {
                            let p = ((y + gy) * W + x + gx) * 4;
                            img[p..p + 4].copy_from_slice(&ink);
                        }
                    }
                }
                x += 8;
            }
            y += 18;
        }
    }
    img
}

/// Photo: smooth colour fields (sums of slow waves) with per-pixel noise.
fn photo() -> Vec<u8> {
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let mut img = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let (fx, fy) = (x as f32, y as f32);
            let base = [
                (fx * 0.011).sin() * 60.0
                    + (fy * 0.017).cos() * 50.0
                    + ((fx + fy) * 0.003).sin() * 20.0,
                (fx * 0.007 + 1.0).sin() * 70.0 + (fy * 0.013).sin() * 40.0,
                ((fx - fy) * 0.009).cos() * 60.0 + (fy * 0.021 + 2.0).sin() * 45.0,
            ];
            let n = rng.next();
            let p = (y * W + x) * 4;
            for c in 0..3 {
                let noise = ((n >> (c * 8)) & 15) as f32 - 7.5;
                img[p + c] = (128.0 + base[c] + noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
    img
}

fn bench_quic(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    for (name, pixels) in [
        ("desktop", desktop()),
        ("photo", photo()),
        ("desktop_flat", spice_benches::images::desktop()),
    ] {
        let image = Image {
            image_type: ImageType::Rgb32,
            width: W as u32,
            height: H as u32,
            stride: W * 4,
            row_order: RowOrder::TopDown,
            data: &pixels,
        };
        let stream = quic::encode(&image).unwrap();
        eprintln!(
            "quic {name}: {} bytes -> {} bytes, ratio {:.2}:1",
            pixels.len(),
            stream.len(),
            pixels.len() as f64 / stream.len() as f64
        );
        let mut group = c.benchmark_group(format!("quic/{name}"));
        group.throughput(Throughput::Bytes(pixels.len() as u64));
        let mut out = Vec::with_capacity(stream.len() + 64);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                quic::encode_into(black_box(&image), &mut out).unwrap();
                black_box(out.len())
            })
        });
        let mut decoded = vec![0u8; W * H * 4];
        group.bench_function("decode", |b| {
            b.iter(|| {
                quic::decode(
                    black_box(&stream),
                    &mut decoded,
                    W * 4,
                    PixelFormat::Rgb32,
                    RowOrder::TopDown,
                    &limits,
                )
                .unwrap();
                black_box(decoded[0])
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_quic);
criterion_main!(benches);
