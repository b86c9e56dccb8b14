//! Graduality classifier on synthetic images and table tests of the codec choice.

use spice_codecs::classify::{
    self, BitmapDesc, BitmapFormat, CachedGraduality, ChoiceInput, ClassifyImage, Codec,
    GradualFormat, Graduality, ImageCompression, WanCompression,
};

fn img32(data: &[u8], w: u32, h: u32) -> ClassifyImage<'_> {
    ClassifyImage {
        data,
        width: w,
        height: h,
        stride: w as usize * 4,
        format: GradualFormat::Rgb32,
    }
}

struct Rng(u32);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// A desktop: flat background, window frames, blocks of "text".
fn desktop(w: u32, h: u32) -> Vec<u8> {
    let mut v = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let mut px = [0xA0, 0x60, 0x30, 0];
            if (40..w - 40).contains(&x) && (30..h - 30).contains(&y) {
                px = [0xF0, 0xF0, 0xF0, 0];
                if y < 50 {
                    px = [0x80, 0x40, 0x10, 0];
                }
                // Text: 1-pixel black strokes on a 3-pixel grid.
                if y > 60 && (x % 3 == 0 || y % 4 == 0) && (x / 40 + y / 12) % 2 == 0 {
                    px = [0, 0, 0, 0];
                }
            }
            v[((y * w + x) * 4) as usize..][..4].copy_from_slice(&px);
        }
    }
    v
}

/// A photo: smooth gradients with slight sensor noise.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut rng = Rng(12345);
    let mut v = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let n = (rng.next() % 5) as i32 - 2;
            let c = |base: u32| (base as i32 + n).clamp(0, 255) as u8;
            v.extend_from_slice(&[
                c(x * 200 / w + 20),
                c(y * 180 / h + 30),
                c((x + y) * 100 / (w + h) + 60),
                0,
            ]);
        }
    }
    v
}

#[test]
fn desktop_is_low_photo_is_high_noise_is_low() {
    let (w, h) = (320, 200);
    let d = desktop(w, h);
    assert_eq!(classify::graduality(&img32(&d, w, h)), Graduality::Low);
    let p = photo(w, h);
    let score = classify::graduality_score(&img32(&p, w, h)).unwrap();
    assert!(score < -0.03, "photo score {score}");
    assert_eq!(classify::graduality(&img32(&p, w, h)), Graduality::High);
    let mut rng = Rng(99);
    let noise: Vec<u8> = (0..w * h * 4).map(|_| rng.next() as u8).collect();
    assert_eq!(classify::graduality(&img32(&noise, w, h)), Graduality::Low);
    // A perfectly flat image scores 0: Medium.
    let flat = vec![7u8; (w * h * 4) as usize];
    assert_eq!(classify::graduality_score(&img32(&flat, w, h)), Some(0.0));
    assert_eq!(
        classify::graduality(&img32(&flat, w, h)),
        Graduality::Medium
    );
}

#[test]
fn exact_score_of_one_sample() {
    // 4x3: one sample at (row 0, col 2) against (0,3), (1,2), (1,3).
    let mut d = vec![0u8; 4 * 3 * 4];
    let mut set = |r: usize, c: usize, rgb: [u8; 3]| {
        d[(r * 4 + c) * 4..][..3].copy_from_slice(&[rgb[2], rgb[1], rgb[0]]);
    };
    set(0, 2, [100, 100, 100]);
    set(0, 3, [100, 100, 100]); // same: +0.5
    set(1, 2, [101, 100, 100]); // smooth: -0.25
    set(1, 3, [100, 100, 160]); // contrast (60): +1.0
    let s = classify::graduality_score(&img32(&d, 4, 3)).unwrap();
    assert!((s - 1.25 / 3.0).abs() < 1e-12, "{s}");
    assert_eq!(
        classify::level_for_score(s, GradualFormat::Rgb32),
        Graduality::Low
    );
}

#[test]
fn rgb16_uses_five_bit_channels_and_its_thresholds() {
    // 4x3 RGB16: the pairs differ by 7 (smooth) in red's 5-bit channel, and bit 15 is junk.
    let px = |r: u16| (r << 10 | 0x8000).to_le_bytes();
    let mut d = Vec::new();
    for r in 0..3u16 {
        for c in 0..4u16 {
            d.extend_from_slice(&px(if r == 0 && c == 2 { 0 } else { 7 }));
        }
    }
    let img = ClassifyImage {
        data: &d,
        width: 4,
        height: 3,
        stride: 8,
        format: GradualFormat::Rgb16,
    };
    assert_eq!(classify::graduality_score(&img), Some(-0.25));
    assert_eq!(classify::graduality(&img), Graduality::High);
    assert_eq!(
        classify::level_for_score(-0.01, GradualFormat::Rgb16),
        Graduality::High
    );
    assert_eq!(
        classify::level_for_score(-0.01, GradualFormat::Rgb32),
        Graduality::Medium
    );
}

#[test]
fn degenerate_and_chunked_images() {
    let d = vec![1u8; 64];
    assert_eq!(classify::graduality_score(&img32(&d, 1, 16)), Some(1.0));
    assert_eq!(classify::graduality(&img32(&d, 16, 1)), Graduality::Low);
    // A buffer too small for the declared size is not read.
    assert_eq!(classify::graduality_score(&img32(&d, 100, 100)), None);
    assert_eq!(classify::graduality(&img32(&d, 100, 100)), Graduality::Low);
    // Chunks are scored separately: two 1-row chunks each score 1 (not sampleable).
    let p: Vec<u8> = (0..2u32)
        .flat_map(|y| (0..32u32).flat_map(move |x| [(x * 3 + y * 5) as u8, 9, 9, 0]))
        .collect();
    assert_eq!(
        classify::graduality_score_chunked(&img32(&p, 32, 2), &[1, 1]),
        Some(1.0)
    );
    assert_eq!(
        classify::graduality_score_chunked(&img32(&p, 32, 2), &[2]),
        Some(-0.25)
    );
}

// ---- choice table ----

fn bitmap(format: BitmapFormat, w: u32, h: u32) -> BitmapDesc {
    BitmapDesc {
        format,
        width: w,
        height: h,
        stride: format.row_bytes(w) as u32,
        unstable: false,
    }
}

fn input(preferred: ImageCompression, bm: BitmapDesc) -> ChoiceInput {
    ChoiceInput {
        preferred,
        bitmap: bm,
        has_drawable: true,
        cached_graduality: CachedGraduality::NotComputed,
        can_lossy: false,
        jpeg_enabled: false,
        glz_dictionary_pixels: 16 << 20,
        glz_frozen: false,
        client_lz4: true,
        unix_socket: false,
    }
}

#[test]
fn choice_table() {
    use BitmapFormat::*;
    use Codec::*;
    use ImageCompression as C;
    let rgb = bitmap(Rgb32, 100, 100);
    let padded = BitmapDesc { stride: 404, ..rgb };
    let rgba = bitmap(Rgba, 100, 100);
    let plt = bitmap(EightBit, 100, 100);
    let a8 = bitmap(A8, 100, 100);
    let hi = || Graduality::High;
    let lo = || Graduality::Low;
    let never = || -> Graduality { panic!("graduality must not be computed") };

    type Case = (&'static str, ChoiceInput, Option<Graduality>, Codec);
    let with = |f: &dyn Fn(&mut ChoiceInput), base: ChoiceInput| {
        let mut i = base;
        f(&mut i);
        i
    };
    let cases: Vec<Case> = vec![
        (
            "unix socket",
            with(&|i| i.unix_socket = true, input(C::AutoGlz, rgb)),
            None,
            Raw,
        ),
        ("tiny", input(C::AutoGlz, bitmap(Rgb32, 13, 1)), None, Raw),
        ("off", input(C::Off, rgb), None, Raw),
        ("quic", input(C::Quic, rgb), None, Quic),
        ("quic palette", input(C::Quic, plt), None, Raw),
        (
            "quic 2 rows",
            input(C::Quic, bitmap(Rgb32, 100, 2)),
            None,
            Raw,
        ),
        (
            "quic lossy jpeg",
            with(
                &|i| {
                    i.can_lossy = true;
                    i.jpeg_enabled = true;
                },
                input(C::Quic, rgb),
            ),
            None,
            Jpeg,
        ),
        (
            "quic lossy, jpeg off",
            with(&|i| i.can_lossy = true, input(C::Quic, rgb)),
            None,
            Quic,
        ),
        (
            "quic rgba lossy",
            with(
                &|i| {
                    i.can_lossy = true;
                    i.jpeg_enabled = true;
                },
                input(C::Quic, rgba),
            ),
            None,
            JpegAlpha,
        ),
        (
            "quic rgba padded lossy",
            with(
                &|i| {
                    i.can_lossy = true;
                    i.jpeg_enabled = true;
                    i.bitmap.stride = 500;
                },
                input(C::Quic, rgba),
            ),
            None,
            Quic,
        ),
        (
            "quic a8 lossy",
            with(
                &|i| {
                    i.can_lossy = true;
                    i.jpeg_enabled = true;
                },
                input(C::Quic, a8),
            ),
            None,
            Raw,
        ),
        (
            "auto_glz photo",
            input(C::AutoGlz, rgb),
            Some(Graduality::High),
            Quic,
        ),
        (
            "auto_glz desktop",
            input(C::AutoGlz, rgb),
            Some(Graduality::Low),
            Glz,
        ),
        (
            "auto_glz medium",
            input(C::AutoGlz, rgb),
            Some(Graduality::Medium),
            Glz,
        ),
        (
            "auto_lz desktop",
            input(C::AutoLz, rgb),
            Some(Graduality::Low),
            Lz,
        ),
        (
            "auto_glz photo on WAN",
            with(
                &|i| {
                    i.can_lossy = true;
                    i.jpeg_enabled = true;
                },
                input(C::AutoGlz, rgb),
            ),
            Some(Graduality::High),
            Jpeg,
        ),
        (
            "auto_glz no drawable",
            with(&|i| i.has_drawable = false, input(C::AutoGlz, rgb)),
            Some(Graduality::Low),
            Lz,
        ),
        (
            "auto_glz cached high",
            with(
                &|i| i.cached_graduality = CachedGraduality::Level(Graduality::High),
                input(C::AutoGlz, rgb),
            ),
            None,
            Quic,
        ),
        (
            "auto_glz cached low",
            with(
                &|i| i.cached_graduality = CachedGraduality::Level(Graduality::Low),
                input(C::AutoGlz, rgb),
            ),
            None,
            Glz,
        ),
        (
            "auto_glz cached low padded",
            with(
                &|i| {
                    i.cached_graduality = CachedGraduality::Level(Graduality::Low);
                    i.bitmap = padded;
                },
                input(C::AutoGlz, rgb),
            ),
            None,
            Quic,
        ),
        (
            "auto_glz not available padded",
            with(
                &|i| {
                    i.cached_graduality = CachedGraduality::NotAvailable;
                    i.bitmap = padded;
                },
                input(C::AutoGlz, rgb),
            ),
            None,
            Quic,
        ),
        (
            "auto_glz fresh low padded",
            with(&|i| i.bitmap = padded, input(C::AutoGlz, rgb)),
            Some(Graduality::Low),
            Raw,
        ),
        ("auto_glz palette", input(C::AutoGlz, plt), None, Lz),
        ("auto_glz a8", input(C::AutoGlz, a8), None, Lz),
        (
            "glz too big for dictionary",
            with(&|i| i.glz_dictionary_pixels = 10_000, input(C::Glz, rgb)),
            None,
            Lz,
        ),
        (
            "glz fits",
            with(&|i| i.glz_dictionary_pixels = 10_001, input(C::Glz, rgb)),
            None,
            Glz,
        ),
        (
            "glz frozen",
            with(&|i| i.glz_frozen = true, input(C::Glz, rgb)),
            None,
            Lz,
        ),
        (
            "lz unstable",
            with(&|i| i.bitmap.unstable = true, input(C::Lz, rgb)),
            None,
            Raw,
        ),
        ("lz4", input(C::Lz4, rgb), None, Lz4),
        (
            "lz4 without client cap",
            with(&|i| i.client_lz4 = false, input(C::Lz4, rgb)),
            None,
            Lz,
        ),
        ("lz4 palette", input(C::Lz4, plt), None, Lz),
        (
            "lz4 a8 (rgb in the reference's sense)",
            input(C::Lz4, a8),
            None,
            Lz4,
        ),
    ];
    for (name, inp, grad, want) in cases {
        let got = match grad {
            Some(Graduality::High) => classify::choose_codec(&inp, hi),
            Some(Graduality::Low) => classify::choose_codec(&inp, lo),
            Some(g) => classify::choose_codec(&inp, move || g),
            None => classify::choose_codec(&inp, never),
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn wan_settings_and_wire_values() {
    assert!(classify::jpeg_enabled(WanCompression::Always, None));
    assert!(!classify::jpeg_enabled(WanCompression::Never, Some(1)));
    assert!(classify::jpeg_enabled(WanCompression::Auto, Some(5 << 20)));
    assert!(!classify::jpeg_enabled(
        WanCompression::Auto,
        Some(100 << 20)
    ));
    assert!(!classify::jpeg_enabled(WanCompression::Auto, None));
    for v in 1..=7u8 {
        assert_eq!(ImageCompression::from_u8(v).unwrap() as u8, v);
    }
    assert_eq!(ImageCompression::from_u8(0), None);
    for v in 1..=10u8 {
        assert_eq!(BitmapFormat::from_u8(v).unwrap() as u8, v);
    }
    assert_eq!(BitmapFormat::from_u8(11), None);
    assert_eq!(BitmapFormat::OneBitLe.row_bytes(9), 2);
    assert_eq!(BitmapFormat::FourBitBe.row_bytes(3), 2);
}
