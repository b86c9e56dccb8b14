//! GLZ encoder round trips through the client window: random frame sequences,
//! a small window forcing eviction, and two encoders sharing one dictionary.

use proptest::prelude::*;
use spice_codecs::glz::{GlzDictionary, GlzEncoder, GlzError, GlzInput, GlzWindow};
use spice_codecs::lz::LzImageType;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// A frame derived from `base` with a few random rectangles changed.
fn mutate(base: &[u8], w: usize, h: usize, bpp: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut f = base.to_vec();
    for _ in 0..(xorshift(&mut s) % 4) {
        let x0 = (xorshift(&mut s) as usize) % w;
        let y0 = (xorshift(&mut s) as usize) % h;
        let x1 = (x0 + 1 + (xorshift(&mut s) as usize) % w).min(w);
        let y1 = (y0 + 1 + (xorshift(&mut s) as usize) % h).min(h);
        let noisy = xorshift(&mut s) % 2 == 0;
        let c = xorshift(&mut s);
        for y in y0..y1 {
            for x in x0..x1 {
                for k in 0..bpp {
                    let v = if noisy {
                        xorshift(&mut s)
                    } else {
                        c >> (8 * k)
                    };
                    f[(y * w + x) * bpp + k] = v as u8;
                }
            }
        }
    }
    f
}

fn first_frame(w: usize, h: usize, bpp: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut f = vec![0u8; w * h * bpp];
    for y in 0..h {
        for x in 0..w {
            for k in 0..bpp {
                f[(y * w + x) * bpp + k] = if (x / 7 + y / 3) % 3 == 0 {
                    xorshift(&mut s) as u8
                } else {
                    (x * 3 + k * 50 + y) as u8
                };
            }
        }
    }
    f
}

fn expected_bgrx(t: LzImageType, raw: &[u8]) -> Vec<u8> {
    match t {
        LzImageType::Rgb32 => raw.chunks(4).flat_map(|p| [p[0], p[1], p[2], 0]).collect(),
        LzImageType::Rgba => raw.to_vec(),
        LzImageType::Rgb24 => raw.chunks(3).flat_map(|p| [p[0], p[1], p[2], 0]).collect(),
        LzImageType::Rgb16 => raw
            .chunks(2)
            .flat_map(|p| {
                let v = u16::from_le_bytes([p[0], p[1]]);
                let e = |c: u16| ((c << 3) | (c >> 2)) as u8;
                [e(v & 31), e((v >> 5) & 31), e((v >> 10) & 31), 0]
            })
            .collect(),
        _ => unreachable!(),
    }
}

fn bpp(t: LzImageType) -> usize {
    t.bytes_per_pixel()
}

fn sequence(t: LzImageType, w: usize, h: usize, frames: usize, window: usize, seed: u64) {
    let mut dict = GlzDictionary::new(window).unwrap();
    let mut win = GlzWindow::new(window * 2);
    let b = bpp(t);
    let mut frame = first_frame(w, h, b, seed);
    let mut evicted_total = 0;
    for i in 0..frames {
        let mut out = Vec::new();
        let input = GlzInput {
            image_type: t,
            width: w as u32,
            height: h as u32,
            stride: w * b,
            top_down: i % 2 == 0,
            data: &frame,
        };
        let enc = dict.encode(0, &input, &mut out).unwrap();
        assert_eq!(enc.id, i as u64);
        evicted_total += dict.take_evicted().len();
        assert!(dict.window_pixels() <= window);
        let hdr = win.decode(&out).unwrap();
        assert_eq!(hdr.id, enc.id);
        assert_eq!(
            win.image(hdr.id).unwrap().pixels(),
            &expected_bgrx(t, &frame)[..],
            "{t:?} frame {i}"
        );
        frame = mutate(&frame, w, h, b, seed.wrapping_add(i as u64 * 7919));
    }
    if window < w * h * frames {
        assert!(evicted_total > 0, "window {window} never evicted");
    }
}

#[test]
fn every_type_sequences() {
    for t in [
        LzImageType::Rgb32,
        LzImageType::Rgb24,
        LzImageType::Rgb16,
        LzImageType::Rgba,
    ] {
        sequence(t, 64, 40, 6, 1 << 20, 1);
        sequence(t, 1, 1, 3, 16, 2);
        sequence(t, 97, 3, 5, 97 * 3 * 2, 3);
    }
}

#[test]
fn small_window_evicts_and_still_round_trips() {
    sequence(LzImageType::Rgb32, 50, 50, 12, 50 * 50 * 2 + 10, 9);
    let mut dict = GlzDictionary::new(1000).unwrap();
    let img = vec![7u8; 30 * 30 * 4];
    let input = GlzInput {
        image_type: LzImageType::Rgb32,
        width: 30,
        height: 30,
        stride: 120,
        top_down: true,
        data: &img,
    };
    for _ in 0..3 {
        dict.encode(3, &input, &mut Vec::new()).unwrap();
    }
    let ev = dict.take_evicted();
    assert_eq!(
        ev.iter().map(|e| (e.id, e.encoder_id)).collect::<Vec<_>>(),
        vec![(0, 3), (1, 3)]
    );
    assert_eq!(dict.image_ids().collect::<Vec<_>>(), vec![2]);
    // Larger than the window: refused, dictionary unchanged.
    let big = vec![0u8; 40 * 40 * 4];
    let too_big = GlzInput {
        width: 40,
        height: 40,
        stride: 160,
        data: &big,
        ..input
    };
    assert!(matches!(
        dict.encode(0, &too_big, &mut Vec::new()),
        Err(GlzError::TooLarge { .. })
    ));
    assert_eq!(dict.next_id(), 3);
}

#[test]
fn two_encoders_share_one_dictionary_across_threads() {
    let dict = GlzDictionary::new_shared(1 << 20).unwrap();
    let (w, h) = (80usize, 30usize);
    let base = first_frame(w, h, 4, 42);
    let outputs = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for ch in 0..2u32 {
            let mut enc = GlzEncoder::new(ch, dict.clone());
            let outputs = &outputs;
            let base = &base;
            s.spawn(move || {
                let mut frame = base.clone();
                for i in 0..6 {
                    let mut out = Vec::new();
                    let input = GlzInput {
                        image_type: LzImageType::Rgb32,
                        width: w as u32,
                        height: h as u32,
                        stride: w * 4,
                        top_down: true,
                        data: &frame,
                    };
                    let r = enc.encode(&input, &mut out).unwrap();
                    outputs.lock().unwrap().push((r.id, out, frame.clone()));
                    frame = mutate(&frame, w, h, 4, u64::from(ch) * 1000 + i);
                }
            });
        }
    });
    let mut all = outputs.into_inner().unwrap();
    assert_eq!(all.len(), 12);
    // Decode in id order, and also with an out-of-order arrival.
    all.sort_by_key(|a| a.0);
    let mut win = GlzWindow::new(1 << 21);
    let (first, rest) = all.split_first().unwrap();
    let (second, rest) = rest.split_first().unwrap();
    match win.decode(&second.1) {
        Ok(_) => {}
        Err(GlzError::MissingImage { id: 1, missing: 0 }) => {}
        Err(e) => panic!("{e}"),
    }
    win.decode(&first.1).unwrap();
    if win.image(1).is_none() {
        win.decode(&second.1).unwrap();
    }
    for (id, s, _) in rest {
        assert_eq!(win.decode(s).unwrap().id, *id);
    }
    for (id, _, frame) in &all {
        assert_eq!(
            win.image(*id).unwrap().pixels(),
            &expected_bgrx(LzImageType::Rgb32, frame)[..]
        );
    }
}

#[test]
fn cross_image_references_are_used() {
    // An identical second frame must compress to a tiny stream.
    let mut dict = GlzDictionary::new(1 << 20).unwrap();
    let f = first_frame(200, 100, 4, 5);
    let input = GlzInput {
        image_type: LzImageType::Rgb32,
        width: 200,
        height: 100,
        stride: 800,
        top_down: true,
        data: &f,
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    dict.encode(0, &input, &mut a).unwrap();
    dict.encode(0, &input, &mut b).unwrap();
    assert!(
        b.len() < 200,
        "repeat frame took {} bytes (first {})",
        b.len(),
        a.len()
    );
    let mut win = GlzWindow::new(1 << 20);
    win.decode(&a).unwrap();
    win.decode(&b).unwrap();
    assert_eq!(
        win.image(1).unwrap().pixels(),
        &expected_bgrx(LzImageType::Rgb32, &f)[..]
    );
    // Without image 0 the second stream reports what it waits for.
    let mut fresh = GlzWindow::new(1 << 20);
    assert_eq!(
        fresh.decode(&b),
        Err(GlzError::MissingImage { id: 1, missing: 0 })
    );
}

#[test]
fn unsupported_types_are_refused() {
    let mut dict = GlzDictionary::new(1000).unwrap();
    let d = [0u8; 16];
    for t in [LzImageType::Plt8, LzImageType::A8, LzImageType::Xxxa] {
        let input = GlzInput {
            image_type: t,
            width: 4,
            height: 4,
            stride: 4 * t.bytes_per_pixel(),
            top_down: true,
            data: &d,
        };
        assert!(matches!(
            dict.encode(0, &input, &mut Vec::new()),
            Err(GlzError::UnsupportedType(_))
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_sequences(ti in 0usize..4, w in 1usize..40, h in 1usize..20, frames in 1usize..6, wmul in 1usize..4, seed in any::<u64>()) {
        let t = [LzImageType::Rgb32, LzImageType::Rgb24, LzImageType::Rgb16, LzImageType::Rgba][ti];
        sequence(t, w, h, frames, w * h * wmul, seed);
    }
}
