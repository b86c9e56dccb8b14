//! MJPEG stream encoder: rate control under a simulated clock, and frame decoding.

use spice_codecs::jpeg::{self, JpegLimits, JpegSource, JpegSourceFormat};
use spice_codecs::mjpeg::{self, MjpegConfig, MjpegEncoder, QUALITY_LADDER, StreamReport};

const W: u32 = 160;
const H: u32 = 120;

/// A textured, slowly moving BGRX frame (sizes vary little from frame to frame).
fn frame(n: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            let t = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (x * y);
            let b = ((x + n) * 2) as u8 ^ (t as u8 & 0x1f);
            let g = (y * 2) as u8 ^ ((t >> 3) as u8 & 0x1f);
            let r = ((x + y + n) % 256) as u8 ^ ((t >> 5) as u8 & 0x1f);
            v.extend_from_slice(&[b, g, r, 0]);
        }
    }
    v
}

fn source(data: &[u8]) -> JpegSource<'_> {
    JpegSource {
        data,
        width: W,
        height: H,
        stride: W as usize * 4,
        format: JpegSourceFormat::Bgrx32,
        top_down: true,
    }
}

fn size_at(quality: u8) -> u64 {
    let f = frame(0);
    let mut out = Vec::new();
    jpeg::encode(&source(&f), quality, &mut out).unwrap() as u64
}

/// Offers frames every `interval_ms` in [from, to); returns (frames sent, bytes sent).
fn run(
    enc: &mut MjpegEncoder,
    from: u64,
    to: u64,
    interval_ms: u64,
    frames: &[Vec<u8>],
) -> (u32, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut t = from;
    let mut i = 0usize;
    while t < to {
        let f = &frames[i % frames.len()];
        if let Some(e) = enc.encode_frame(&source(f), (t + 1000) as u32, t).unwrap() {
            assert!(QUALITY_LADDER.contains(&e.quality));
            n += 1;
            bytes += e.data.len() as u64;
        }
        t += interval_ms;
        i += 1;
    }
    (n, bytes)
}

fn frames() -> Vec<Vec<u8>> {
    (0..4).map(frame).collect()
}

#[test]
fn starts_at_median_quality_and_five_fps() {
    let enc = MjpegEncoder::new(MjpegConfig::default(), 1000);
    assert_eq!(enc.quality(), 50);
    assert_eq!(enc.fps(), 5);
    assert!(enc.evaluating());
    assert_eq!(enc.bit_rate(), 10 * 1024 * 1024);
}

#[test]
fn frame_rate_is_capped_at_25_or_configured() {
    let fr = frames();
    let mut enc = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: 1 << 30,
            max_fps: 25,
        },
        0,
    );
    // Source at 100 fps.
    run(&mut enc, 0, 3000, 10, &fr);
    assert_eq!(enc.quality(), 80, "plenty of bandwidth: best quality");
    assert_eq!(enc.fps(), 25);
    let (n, _) = run(&mut enc, 3000, 8000, 10, &fr);
    let rate = f64::from(n) / 5.0;
    assert!((20.0..=26.0).contains(&rate), "sent {rate} fps");

    let mut enc = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: 1 << 30,
            max_fps: 10,
        },
        0,
    );
    run(&mut enc, 0, 3000, 10, &fr);
    assert_eq!(enc.fps(), 10);
    let (n, _) = run(&mut enc, 3000, 8000, 10, &fr);
    let rate = f64::from(n) / 5.0;
    assert!((8.0..=11.0).contains(&rate), "sent {rate} fps");
}

#[test]
fn quality_drops_when_the_budget_is_tight() {
    let fr = frames();
    // Budget for 6 frames per second at quality 80: fewer than 10 fps at high quality is
    // refused, so the evaluation must settle on a lower quality.
    let byte_rate = size_at(80) * 6;
    let mut enc = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: byte_rate * 8,
            max_fps: 25,
        },
        0,
    );
    run(&mut enc, 0, 3000, 40, &fr);
    assert!(!enc.evaluating());
    assert!(enc.quality() < 80, "quality {}", enc.quality());
    // The frames sent afterwards stay within the budget (with pacing slack).
    let (n, bytes) = run(&mut enc, 3000, 8000, 40, &fr);
    assert!(n > 0);
    assert!(
        bytes as f64 <= byte_rate as f64 * 5.0 * 1.35,
        "{bytes} bytes in 5 s over a budget of {byte_rate}/s"
    );
    // A larger budget settles on a higher quality.
    let mut rich = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: byte_rate * 8 * 8,
            max_fps: 25,
        },
        0,
    );
    run(&mut rich, 0, 3000, 40, &fr);
    assert!(
        rich.quality() > enc.quality(),
        "{} vs {}",
        rich.quality(),
        enc.quality()
    );
}

#[test]
fn negative_reports_lower_and_positive_reports_raise_the_rate() {
    let fr = frames();
    let mut enc = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: size_at(80) * 8 * 12,
            max_fps: 25,
        },
        0,
    );
    enc.set_source_fps(25);
    run(&mut enc, 0, 4000, 10, &fr);
    let (q0, rate0) = (enc.quality(), enc.bit_rate());

    // A report during warm-up is ignored.
    let mut early = MjpegEncoder::new(MjpegConfig::default(), 0);
    run(&mut early, 0, 1000, 10, &fr);
    let before = early.bit_rate();
    early.client_report(&late_report(1000, 2000), 2000);
    assert_eq!(early.bit_rate(), before);

    // Late frames (delay < -15 ms) after warm-up: the rate goes down, then quality follows.
    let mut t = 4000;
    for _ in 0..5 {
        enc.client_report(&late_report(t - 1000 + 1000, t + 1000), t);
        run(&mut enc, t, t + 1000, 10, &fr);
        t += 1000;
    }
    let (q_low, rate_low) = (enc.quality(), enc.bit_rate());
    assert!(rate_low < rate0, "rate {rate_low} !< {rate0}");
    assert!(q_low <= q0);
    assert!(q_low < 80);

    // Then healthy reports (no drops, comfortable delay) every second: the rate climbs.
    for _ in 0..40 {
        run(&mut enc, t, t + 1000, 10, &fr);
        t += 1000;
        enc.client_report(
            &StreamReport {
                num_frames: 10,
                num_drops: 0,
                start_frame_mm_time: (t - 1000 + 1000) as u32,
                end_frame_mm_time: (t + 1000) as u32,
                last_frame_delay: 1000,
                audio_delay: u32::MAX,
            },
            t,
        );
    }
    run(&mut enc, t, t + 2000, 10, &fr);
    assert!(
        enc.bit_rate() > rate_low,
        "rate {} !> {rate_low}",
        enc.bit_rate()
    );
    assert!(
        enc.quality() > q_low,
        "quality {} !> {q_low}",
        enc.quality()
    );
}

fn late_report(start_mm: u64, end_mm: u64) -> StreamReport {
    StreamReport {
        num_frames: 10,
        num_drops: 3,
        start_frame_mm_time: start_mm as u32,
        end_frame_mm_time: end_mm as u32,
        last_frame_delay: -100,
        audio_delay: u32::MAX,
    }
}

#[test]
fn server_side_drops_lower_the_rate() {
    let fr = frames();
    let mut enc = MjpegEncoder::new(
        MjpegConfig {
            start_bit_rate: size_at(80) * 8 * 30,
            max_fps: 25,
        },
        0,
    );
    run(&mut enc, 0, 4000, 40, &fr);
    let rate0 = enc.bit_rate();
    let mut t = 4000;
    for _ in 0..20 {
        run(&mut enc, t, t + 100, 40, &fr);
        enc.notify_server_frame_drop(t + 100);
        t += 100;
    }
    assert!(enc.bit_rate() < rate0);
}

#[test]
fn frames_decode_with_the_jpeg_codec() {
    let fr = frames();
    let mut enc = MjpegEncoder::new(MjpegConfig::default(), 0);
    let e = enc.encode_frame(&source(&fr[0]), 1, 0).unwrap().unwrap();
    assert_eq!(e.quality, 50);
    let mut out = vec![0u8; (W * H * 4) as usize];
    let info =
        mjpeg::decode_frame(&e.data, &mut out, W as usize * 4, &JpegLimits::default()).unwrap();
    assert_eq!((info.width, info.height), (W, H));
    assert!(
        mjpeg::decode_frame(
            &e.data[..10],
            &mut out,
            W as usize * 4,
            &JpegLimits::default()
        )
        .is_err()
    );
    assert!(enc.take_playback_delay().is_none());
}
