//! LZ round trips of random images of every type, awkward sizes, row chunks,
//! padded output strides, both orientation flags, and the 32-bit display path.

use proptest::prelude::*;
use spice_codecs::lz::{self, LzDecodeOptions, LzImage, LzImageType, LzOutputFormat};

const TYPES: [LzImageType; 11] = [
    LzImageType::Plt1Le,
    LzImageType::Plt1Be,
    LzImageType::Plt4Le,
    LzImageType::Plt4Be,
    LzImageType::Plt8,
    LzImageType::Rgb16,
    LzImageType::Rgb24,
    LzImageType::Rgb32,
    LzImageType::Rgba,
    LzImageType::Xxxa,
    LzImageType::A8,
];

fn stride_of(t: LzImageType, w: u32) -> u32 {
    if t.is_palette() {
        w.div_ceil(t.pixels_per_byte() as u32)
    } else {
        w * t.bytes_per_pixel() as u32
    }
}

/// Deterministic image with runs, repeats and noise (`mode` picks the mix).
fn make_image(len: usize, seed: u64, mode: u8) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let r = next();
        match (mode + (r % 4) as u8) % 4 {
            0 => v.extend(std::iter::repeat_n(
                (r >> 8) as u8,
                (r >> 16) as usize % 40 + 1,
            )),
            1 if v.len() > 8 => {
                let back = (r >> 8) as usize % v.len().min(70000) + 1;
                let n = (r >> 32) as usize % 64 + 1;
                for _ in 0..n {
                    v.push(v[v.len() - back]);
                }
            }
            2 => v.push((r >> 24) as u8 & 0x3),
            _ => v.push((r >> 40) as u8),
        }
    }
    v.truncate(len);
    v
}

fn check_native(t: LzImageType, w: u32, raw: &[u8], out: &[u8]) {
    match t {
        LzImageType::Rgb32 => {
            for (a, b) in out.chunks(4).zip(raw.chunks(4)) {
                assert_eq!(&a[..3], &b[..3]);
                assert_eq!(a[3], 0);
            }
        }
        LzImageType::Rgb16 => {
            for (a, b) in out.chunks(2).zip(raw.chunks(2)) {
                assert_eq!((a[0], a[1] & 0x7f), (b[0], b[1] & 0x7f));
            }
        }
        LzImageType::Xxxa => {
            for (a, b) in out.chunks(4).zip(raw.chunks(4)) {
                assert_eq!(a[3], b[3]);
            }
        }
        _ => assert_eq!(out, raw, "{t:?} width {w}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn round_trip(
    t: LzImageType,
    w: u32,
    h: u32,
    seed: u64,
    mode: u8,
    rows_per_chunk: u32,
    pad: usize,
    top_down: bool,
) {
    let stride = stride_of(t, w);
    let raw = make_image((stride * h) as usize, seed, mode);
    let chunks: Vec<&[u8]> = raw
        .chunks((stride * rows_per_chunk.max(1)) as usize)
        .collect();
    let mut enc = Vec::new();
    lz::encode(
        &LzImage {
            image_type: t,
            width: w,
            height: h,
            stride,
            top_down,
            chunks: &chunks,
        },
        &mut enc,
    )
    .unwrap();
    // Packed native decode.
    let (hdr, out) = if t == LzImageType::Xxxa {
        let mut out = vec![0u8; raw.len()];
        let hdr = lz::decode_alpha(&enc, &mut out, 0).unwrap();
        (hdr, out)
    } else {
        lz::decode_to_vec(&enc, LzOutputFormat::Native, None, 1 << 28).unwrap()
    };
    assert_eq!(
        (
            hdr.width,
            hdr.height,
            hdr.stride,
            hdr.top_down,
            hdr.image_type
        ),
        (w, h, stride, top_down, t)
    );
    check_native(t, w, &raw, &out);
    // Padded stride decode keeps the rows.
    let row = hdr.layout(LzOutputFormat::Native, 0).unwrap().row_bytes;
    let ostride = row + pad;
    let lay = hdr.layout(LzOutputFormat::Native, ostride).unwrap();
    let mut padded = vec![0u8; lay.buffer_len];
    lz::decode(
        &enc,
        &mut padded,
        &LzDecodeOptions {
            stride: ostride,
            ..Default::default()
        },
    )
    .unwrap();
    for r in 0..h as usize {
        let a = &padded[r * ostride..r * ostride + row];
        let b = &out[r * row..(r + 1) * row];
        assert_eq!(a, b, "row {r} with stride {ostride}");
    }
    // 32-bit display decode.
    if t != LzImageType::Xxxa {
        let pal: Vec<u32> = (0..256u32)
            .map(|i| i.wrapping_mul(0x9e3779b1) & 0xffffff)
            .collect();
        let opts = LzDecodeOptions {
            format: LzOutputFormat::Bgrx32,
            stride: w as usize * 4 + pad,
            palette: Some(&pal),
            ..Default::default()
        };
        let lay = hdr.layout(LzOutputFormat::Bgrx32, opts.stride).unwrap();
        let mut wide = vec![0u8; lay.buffer_len];
        lz::decode(&enc, &mut wide, &opts).unwrap();
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = &wide[y * opts.stride + x * 4..][..4];
                let expect: [u8; 4] = match t {
                    LzImageType::Rgb32 | LzImageType::Rgb24 => {
                        let bpp = t.bytes_per_pixel();
                        let s = &raw[(y * w as usize + x) * bpp..];
                        [s[0], s[1], s[2], 0]
                    }
                    LzImageType::Rgba => {
                        let s = &raw[(y * w as usize + x) * 4..];
                        [s[0], s[1], s[2], s[3]]
                    }
                    LzImageType::A8 => [0, 0, 0, raw[y * w as usize + x]],
                    LzImageType::Rgb16 => {
                        let v = u16::from_le_bytes([
                            out[(y * w as usize + x) * 2],
                            out[(y * w as usize + x) * 2 + 1],
                        ]);
                        let (r5, g5, b5) = ((v >> 10) & 31, (v >> 5) & 31, v & 31);
                        let e = |c: u16| ((c << 3) | (c >> 2)) as u8;
                        [e(b5), e(g5), e(r5), 0]
                    }
                    _ => {
                        let ppb = t.pixels_per_byte();
                        let byte = raw[y * stride as usize + x / ppb];
                        let k = x % ppb;
                        let idx = match t {
                            LzImageType::Plt1Le => (byte >> k) & 1,
                            LzImageType::Plt1Be => (byte >> (7 - k)) & 1,
                            LzImageType::Plt4Le => (byte >> (4 * k)) & 15,
                            LzImageType::Plt4Be => (byte >> (4 * (1 - k))) & 15,
                            _ => byte,
                        };
                        let e = pal[idx as usize];
                        [e as u8, (e >> 8) as u8, (e >> 16) as u8, 0]
                    }
                };
                assert_eq!(p, &expect, "{t:?} pixel ({x},{y})");
            }
        }
    }
}

#[test]
fn awkward_sizes_every_type() {
    for t in TYPES {
        for (w, h) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (4097, 3),
            (5, 1),
            (7, 2),
            (9, 5),
            (33, 7),
            (1, 40),
        ] {
            for mode in 0..4 {
                round_trip(t, w, h, (w * 131 + h) as u64, mode, h, 0, mode % 2 == 0);
                round_trip(t, w, h, (w * 7 + h) as u64 + 99, mode, 1, 3, true);
            }
        }
    }
}

#[test]
fn far_references() {
    // Repeats 8192..73725 pixels back exercise the far (16-bit) distance form.
    for t in [
        LzImageType::Rgb32,
        LzImageType::Rgb16,
        LzImageType::Plt8,
        LzImageType::Rgba,
    ] {
        let w = 20000u32;
        round_trip(t, w, 3, 5, 1, 3, 0, true);
        round_trip(t, w, 3, 5, 1, 1, 0, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn random_images_round_trip(
        ti in 0usize..11,
        w in 1u32..70,
        h in 1u32..12,
        seed in any::<u64>(),
        mode in 0u8..4,
        rows_per_chunk in 1u32..5,
        pad in 0usize..9,
        top_down in any::<bool>(),
    ) {
        round_trip(TYPES[ti], w, h, seed, mode, rows_per_chunk, pad, top_down);
    }
}
