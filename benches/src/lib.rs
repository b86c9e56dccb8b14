//! Shared inputs of the criterion benches in `benches/`: deterministic 1920x1080 images and
//! the GLZ sequence the canvas and client benches decode.

/// Generated test images.
pub mod images {
    use spice_codecs::glz::{GlzDictionary, GlzInput};
    use spice_codecs::lz::LzImageType;

    /// Width of the generated images.
    pub const W: usize = 1920;
    /// Height of the generated images.
    pub const H: usize = 1080;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// Desktop-like: flat window areas, text-like glyph edges, a gradient title bar.
    /// A deterministic desktop-like 1920x1080 BGRX image (flat windows, text-like glyphs,
    /// gradients).
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

    /// `desk` with a 400x300 gradient window at a position that moves with `i`.
    pub fn moving_window(desk: &[u8], i: usize) -> Vec<u8> {
        let mut f = desk.to_vec();
        let (x0, y0) = (100 + i * 120, 80 + i * 60);
        for y in y0..y0 + 300 {
            for x in x0..x0 + 400 {
                let p = (y * W + x) * 4;
                f[p..p + 4].copy_from_slice(&[(x - x0) as u8, (y - y0) as u8, i as u8 * 30, 0]);
            }
        }
        f
    }

    /// `n` frames of the desktop with a moving window, GLZ-encoded against one dictionary of
    /// `window` pixels (image ids 0..n).
    pub fn glz_sequence(n: usize, window: usize) -> Vec<Vec<u8>> {
        let desk = desktop();
        let mut dict = GlzDictionary::new(window).expect("dictionary");
        (0..n)
            .map(|i| {
                let f = moving_window(&desk, i);
                let mut out = Vec::new();
                dict.encode(
                    0,
                    &GlzInput {
                        image_type: LzImageType::Rgb32,
                        width: W as u32,
                        height: H as u32,
                        stride: W * 4,
                        top_down: true,
                        data: &f,
                    },
                    &mut out,
                )
                .expect("GLZ encode");
                out
            })
            .collect()
    }
}

/// CPU time of the calling thread.
#[cfg(unix)]
pub fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
