//! QUIC round trips of generated images: every type, awkward sizes, padded strides,
//! both row orders.

use proptest::prelude::*;
use spice_codecs::quic::{self, DecodeLimits, Image, ImageType, PixelFormat, RowOrder};

const TYPES: [ImageType; 5] = [
    ImageType::Gray,
    ImageType::Rgb16,
    ImageType::Rgb24,
    ImageType::Rgb32,
    ImageType::Rgba,
];

/// Bytes that the decoder cannot reproduce: bit 15 of RGB16 pixels, X of RGB32 pixels.
fn significant(ty: ImageType, byte_index: usize) -> u8 {
    match ty {
        ImageType::Rgb16 if byte_index % 2 == 1 => 0x7f,
        ImageType::Rgb32 if byte_index % 4 == 3 => 0,
        _ => 0xff,
    }
}

/// A deterministic image: `kind` 0 = noise, 1 = few colours (runs), 2 = gradient + noise.
fn make_pixels(ty: ImageType, width: usize, height: usize, kind: u8, seed: u64) -> Vec<u8> {
    let bpp = ty.natural_format().bytes_per_pixel();
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let palette: Vec<u64> = (0..3).map(|_| next()).collect();
    let mut out = Vec::with_capacity(width * height * bpp);
    for y in 0..height {
        for x in 0..width {
            let v = match kind {
                0 => next(),
                1 => {
                    if next() % 16 == 0 {
                        palette[(next() % 3) as usize]
                    } else {
                        palette[(x / 5 + y / 3) % 3]
                    }
                }
                _ => {
                    let g = (x * 3 + y * 5) as u64 + next() % 4;
                    (g & 0xff) * 0x0101_0101_0101_0101
                }
            };
            out.extend_from_slice(&v.to_le_bytes()[..bpp]);
        }
    }
    out
}

fn round_trip(
    ty: ImageType,
    width: usize,
    height: usize,
    pad: usize,
    order: RowOrder,
    kind: u8,
    seed: u64,
) {
    let format = ty.natural_format();
    let bpp = format.bytes_per_pixel();
    let row = width * bpp;
    let tight = make_pixels(ty, width, height, kind, seed);
    // Lay the rows out in the requested order and stride, padding with junk.
    let stride = row + pad;
    let mut input = vec![0xc3; stride * height];
    for (y, src) in tight.chunks_exact(row).enumerate() {
        let at = match order {
            RowOrder::TopDown => y,
            RowOrder::BottomUp => height - 1 - y,
        } * stride;
        input[at..at + row].copy_from_slice(src);
    }
    let image = Image {
        image_type: ty,
        width: width as u32,
        height: height as u32,
        stride,
        row_order: order,
        data: &input[..stride * (height - 1) + row],
    };
    let stream = quic::encode(&image).unwrap();
    assert_eq!(stream.len() % 4, 0);
    // The same image, tightly packed and top-down, codes to the same bytes.
    let tight_image = Image {
        stride: row,
        row_order: RowOrder::TopDown,
        data: &tight,
        ..image
    };
    assert_eq!(quic::encode(&tight_image).unwrap(), stream);

    // Junk where the rows go: the decoder must not read what it has not written.
    let mut out = vec![0x5a; stride * height];
    let header = quic::decode(
        &stream,
        &mut out,
        stride,
        format,
        order,
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(
        (header.image_type, header.width, header.height),
        (ty, width as u32, height as u32)
    );
    for y in 0..height {
        let at = match order {
            RowOrder::TopDown => y,
            RowOrder::BottomUp => height - 1 - y,
        } * stride;
        let got = &out[at..at + row];
        let want = &tight[y * row..(y + 1) * row];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let m = significant(ty, i);
            assert_eq!(g & m, w & m, "{ty:?} {width}x{height} row {y} byte {i}");
        }
    }
}

fn order_of(b: bool) -> RowOrder {
    if b {
        RowOrder::BottomUp
    } else {
        RowOrder::TopDown
    }
}

#[test]
fn awkward_sizes_every_type() {
    for ty in TYPES {
        for (w, h) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (1, 7),
            (7, 1),
            (5, 4),
            (33, 3),
            (4097, 3),
        ] {
            for kind in 0..3 {
                round_trip(ty, w, h, 0, RowOrder::TopDown, kind, (w * 31 + h) as u64);
                round_trip(ty, w, h, 3, RowOrder::BottomUp, kind, (w * 17 + h) as u64);
            }
        }
    }
}

#[test]
fn large_images_reach_the_slowest_update_rate() {
    // 200x100 = 20000 pixels: past pixel 12288 the model updates every 1..=64 pixels.
    for ty in TYPES {
        for kind in 0..3 {
            round_trip(ty, 200, 100, 4, RowOrder::TopDown, kind, 99);
        }
    }
}

#[test]
fn rgb16_and_gray_to_display_formats() {
    let limits = DecodeLimits::default();
    for ty in TYPES {
        let pixels = make_pixels(ty, 19, 5, 2, 7);
        let image = Image {
            image_type: ty,
            width: 19,
            height: 5,
            stride: 19 * ty.natural_format().bytes_per_pixel(),
            row_order: RowOrder::TopDown,
            data: &pixels,
        };
        let stream = quic::encode(&image).unwrap();
        let (_, rgb32) = quic::decode_to_vec(&stream, PixelFormat::Rgb32, &limits).unwrap();
        let (_, rgb24) = quic::decode_to_vec(&stream, PixelFormat::Rgb24, &limits).unwrap();
        let (_, rgba) = quic::decode_to_vec(&stream, PixelFormat::Rgba, &limits).unwrap();
        for ((p32, p24), pa) in rgb32
            .chunks_exact(4)
            .zip(rgb24.chunks_exact(3))
            .zip(rgba.chunks_exact(4))
        {
            assert_eq!(&p32[..3], p24);
            assert_eq!(&pa[..3], p24);
            assert_eq!(p32[3], 0);
        }
        // The same into a padded, bottom-up buffer full of junk: every row, alpha too.
        let stride = 19 * 4 + 8;
        let mut flipped = vec![0x5a; stride * 5];
        quic::decode(
            &stream,
            &mut flipped,
            stride,
            PixelFormat::Rgba,
            RowOrder::BottomUp,
            &limits,
        )
        .unwrap();
        for y in 0..5 {
            let at = (4 - y) * stride;
            assert_eq!(
                &flipped[at..at + 19 * 4],
                &rgba[y * 19 * 4..(y + 1) * 19 * 4]
            );
        }
        if ty == ImageType::Rgba {
            let alpha: Vec<u8> = pixels.chunks_exact(4).map(|p| p[3]).collect();
            let got: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
            assert_eq!(got, alpha);
        } else {
            assert!(rgba.chunks_exact(4).all(|p| p[3] == 255));
        }
        let unsupported = match ty {
            ImageType::Gray => PixelFormat::Rgb16,
            _ => PixelFormat::Gray8,
        };
        assert!(matches!(
            quic::decode_to_vec(&stream, unsupported, &limits),
            Err(quic::QuicError::UnsupportedFormat { .. })
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_images_round_trip(
        ty in prop::sample::select(TYPES.to_vec()),
        width in 1usize..70,
        height in 1usize..6,
        pad in 0usize..9,
        bottom_up in any::<bool>(),
        kind in 0u8..3,
        seed in any::<u64>(),
    ) {
        round_trip(ty, width, height, pad, order_of(bottom_up), kind, seed);
    }

    #[test]
    fn wide_images_round_trip(
        ty in prop::sample::select(TYPES.to_vec()),
        width in 2040usize..2600,
        kind in 0u8..3,
        seed in any::<u64>(),
    ) {
        round_trip(ty, width, 3, 1, RowOrder::TopDown, kind, seed);
    }
}
