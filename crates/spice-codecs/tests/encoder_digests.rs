//! Digests of LZ and GLZ encoder outputs on generated images, taken from the
//! encoders before their optimisation pass (commit b421dc9): a change in the
//! output bytes (chunked LZ and GLZ are not covered by the golden vectors)
//! fails here.

use spice_codecs::glz::{GlzDictionary, GlzInput};
use spice_codecs::lz::{self, LzImage, LzImageType};

const W: usize = 203;
const H: usize = 97;

fn xs(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Integer-only B,G,R,A test images: flat areas, glyph-like strokes, a
/// gradient, noise and varying alpha.
fn image(seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut img = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let v = xs(&mut s);
            let px = if y < 9 {
                [(x * 255 / W) as u8, 80, (255 - x * 255 / W) as u8]
            } else if (20..120).contains(&x) && (15..80).contains(&y) {
                if (x % 7 + y % 5 + (x / 7 + y / 11) % 3) % 4 == 0 {
                    [20, 20, 20]
                } else {
                    [255, 255, 255]
                }
            } else if (130..190).contains(&x) && (30..70).contains(&y) {
                [v as u8, (v >> 8) as u8, (v >> 16) as u8]
            } else if x > 150 {
                let n = (v % 5) as u8;
                [(x / 2) as u8 + n, (y * 2) as u8 + n, 100 + n]
            } else {
                [90, 110, 140]
            };
            let a = if x % 50 < 25 {
                255
            } else {
                (v >> 24) as u8 & 0xc0
            };
            img[(y * W + x) * 4..][..4].copy_from_slice(&[px[0], px[1], px[2], a]);
        }
    }
    img
}

fn fnv(d: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in d {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a digests of LZ outputs (several types and chunkings) and of GLZ
/// sequences with references into earlier images and evictions.
fn digests() -> Vec<(String, usize, u64)> {
    let mut res = Vec::new();
    let imgs = [image(1), image(2), image(1)];
    for (k, img) in imgs.iter().enumerate().take(2) {
        let rgb24: Vec<u8> = img.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let rgb16: Vec<u8> = img
            .chunks(4)
            .flat_map(|p| {
                let v =
                    u16::from(p[2] >> 3) << 10 | u16::from(p[1] >> 3) << 5 | u16::from(p[0] >> 3);
                v.to_le_bytes()
            })
            .collect();
        let plt8: Vec<u8> = img.chunks(4).map(|p| p[0] ^ p[1]).collect();
        let cases: [(LzImageType, &[u8], usize); 6] = [
            (LzImageType::Rgb32, img, 4),
            (LzImageType::Rgba, img, 4),
            (LzImageType::Rgb24, &rgb24, 3),
            (LzImageType::Rgb16, &rgb16, 2),
            (LzImageType::Plt8, &plt8, 1),
            (LzImageType::A8, &plt8, 1),
        ];
        for (t, data, bpp) in cases {
            let stride = W * bpp;
            for rows in [H, 10, 1] {
                let chunks: Vec<&[u8]> = data.chunks(stride * rows).collect();
                let mut out = Vec::new();
                let image = LzImage {
                    image_type: t,
                    width: W as u32,
                    height: H as u32,
                    stride: stride as u32,
                    top_down: true,
                    chunks: &chunks,
                };
                lz::encode(&image, &mut out).unwrap();
                res.push((format!("lz {k} {t:?} rows {rows}"), out.len(), fnv(&out)));
            }
        }
    }
    for t in [LzImageType::Rgb32, LzImageType::Rgba] {
        let mut dict = GlzDictionary::new(W * H * 2 + 10).unwrap();
        for (k, img) in imgs.iter().chain(imgs.iter()).enumerate() {
            let mut out = Vec::new();
            let input = GlzInput {
                image_type: t,
                width: W as u32,
                height: H as u32,
                stride: W * 4,
                top_down: true,
                data: img,
            };
            dict.encode(0, &input, &mut out).unwrap();
            res.push((format!("glz {t:?} {k}"), out.len(), fnv(&out)));
        }
    }
    res
}

#[test]
fn encoder_outputs_are_unchanged() {
    let want: &[(&str, usize, u64)] = &[
        ("lz 0 Rgb32 rows 97", 19173, 0x778b7ed10f3439a9),
        ("lz 0 Rgb32 rows 10", 19173, 0x778b7ed10f3439a9),
        ("lz 0 Rgb32 rows 1", 19269, 0xa2533e6375dea527),
        ("lz 0 Rgba rows 97", 27789, 0xac06514957ce3560),
        ("lz 0 Rgba rows 10", 27851, 0xeedc527b6a65dec9),
        ("lz 0 Rgba rows 1", 28338, 0x4f0f613446cf6f6d),
        ("lz 0 Rgb24 rows 97", 19173, 0xd169d2e0c0c8da74),
        ("lz 0 Rgb24 rows 10", 19173, 0xd169d2e0c0c8da74),
        ("lz 0 Rgb24 rows 1", 19269, 0xc40db5987206793a),
        ("lz 0 Rgb16 rows 97", 10388, 0xacc0e0fc03b39b0e),
        ("lz 0 Rgb16 rows 10", 10432, 0x0715565c25673d0d),
        ("lz 0 Rgb16 rows 1", 10945, 0x174df789d7b41b84),
        ("lz 0 Plt8 rows 97", 6099, 0xe70816e7d78b662f),
        ("lz 0 Plt8 rows 10", 6115, 0x01bb6f4aca492351),
        ("lz 0 Plt8 rows 1", 6280, 0xefe32fa6bd019c0a),
        ("lz 0 A8 rows 97", 6099, 0x7afc5a81ae0d1a3d),
        ("lz 0 A8 rows 10", 6115, 0x3348f205b4608383),
        ("lz 0 A8 rows 1", 6280, 0x1bd034d69109daa0),
        ("lz 1 Rgb32 rows 97", 19192, 0x64a9cb5cc6084dea),
        ("lz 1 Rgb32 rows 10", 19192, 0x64a9cb5cc6084dea),
        ("lz 1 Rgb32 rows 1", 19285, 0x0d4e51124bb9f8e2),
        ("lz 1 Rgba rows 97", 27894, 0x2f47d056648a6393),
        ("lz 1 Rgba rows 10", 27943, 0x8dfc9c624c09f227),
        ("lz 1 Rgba rows 1", 28427, 0xe540cab5eb301858),
        ("lz 1 Rgb24 rows 97", 19192, 0xbae6325af5f25db9),
        ("lz 1 Rgb24 rows 10", 19192, 0xbae6325af5f25db9),
        ("lz 1 Rgb24 rows 1", 19285, 0xbcc995229ee7e973),
        ("lz 1 Rgb16 rows 97", 10326, 0x237cf42085ff3475),
        ("lz 1 Rgb16 rows 10", 10448, 0x08421e215ba70292),
        ("lz 1 Rgb16 rows 1", 11023, 0xed9fc76a7d931926),
        ("lz 1 Plt8 rows 97", 6077, 0x8528892c0c7c99a1),
        ("lz 1 Plt8 rows 10", 6119, 0x9e1b3f28ae9e4e23),
        ("lz 1 Plt8 rows 1", 6334, 0xf46ab01578cab500),
        ("lz 1 A8 rows 97", 6077, 0xda9c1d9d8d8296db),
        ("lz 1 A8 rows 10", 6119, 0x053456103ec8c901),
        ("lz 1 A8 rows 1", 6334, 0x7795f7c44d187246),
        ("glz Rgb32 0", 20136, 0xaf376e66d99f5f52),
        ("glz Rgb32 1", 18738, 0x88a842fbd15f5fc6),
        ("glz Rgb32 2", 18695, 0x8479b2a5f20314b2),
        ("glz Rgb32 3", 129, 0x54cfa95efdcb876a),
        ("glz Rgb32 4", 19544, 0xf346844a9bf9421d),
        ("glz Rgb32 5", 18695, 0xe977adec659f1a2e),
        ("glz Rgba 0", 30686, 0x06b1ee00bf239ee3),
        ("glz Rgba 1", 29365, 0x6ca9d119dca306b5),
        ("glz Rgba 2", 29247, 0x9ba119864c663330),
        ("glz Rgba 3", 10682, 0x6893502e51ae5bf7),
        ("glz Rgba 4", 30171, 0x4567858ec0acdfd4),
        ("glz Rgba 5", 29247, 0xe0bf0ff885844238),
    ];
    let got = digests();
    assert_eq!(got.len(), want.len());
    for ((name, len, hash), (wname, wlen, whash)) in got.iter().zip(want) {
        assert_eq!(name, wname);
        assert_eq!((*len, *hash), (*wlen, *whash), "{name}: output changed");
    }
}
