//! Audio frame coding: one 10 ms frame (480 stereo samples at 48 kHz) encoded and decoded,
//! raw and Opus. Real time needs well under 10 ms per frame per client.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_codecs::audio::{AudioDecoder, AudioEncoder, AudioMode, FRAME_SAMPLES};
use std::hint::black_box;

/// 100 frames (1 s) of a two-tone stereo signal.
fn music() -> Vec<i16> {
    (0..48_000)
        .flat_map(|i| {
            let t = i as f64 / 48_000.0;
            let l = 9000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin();
            let r = 8000.0 * (2.0 * std::f64::consts::PI * 660.0 * t).sin();
            [l as i16, r as i16]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pcm = music();
    let frames: Vec<&[i16]> = pcm.chunks(FRAME_SAMPLES * 2).collect();
    let mut g = c.benchmark_group("audio_frame");
    g.throughput(Throughput::Elements(1));
    for mode in [AudioMode::Raw, AudioMode::Opus] {
        let mut enc = AudioEncoder::new(mode, 48_000, 2).unwrap();
        let mut out = Vec::new();
        let mut i = 0;
        g.bench_function(format!("encode_{mode:?}"), |b| {
            b.iter(|| {
                out.clear();
                enc.encode_frame(black_box(frames[i % frames.len()]), &mut out)
                    .unwrap();
                i += 1;
            })
        });
        // Packets of the whole second, decoded in order (the decoder keeps state).
        let mut enc = AudioEncoder::new(mode, 48_000, 2).unwrap();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                enc.encode_frame(f, &mut p).unwrap();
                p
            })
            .collect();
        let mut dec = AudioDecoder::new(mode, 48_000, 2).unwrap();
        let mut pcm_out = Vec::new();
        let mut j = 0;
        g.bench_function(format!("decode_{mode:?}"), |b| {
            b.iter(|| {
                pcm_out.clear();
                dec.decode(black_box(&packets[j % packets.len()]), &mut pcm_out)
                    .unwrap();
                j += 1;
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
