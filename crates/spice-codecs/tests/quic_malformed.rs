//! QUIC decoder on malformed input: typed errors, no panic, no overread, caps honoured.

use spice_codecs::quic::{self, DecodeLimits, Image, ImageType, PixelFormat, QuicError, RowOrder};

fn header(ty: u32, w: u32, h: u32) -> Vec<u8> {
    [quic::MAGIC, 0, ty, w, h]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn sample_stream(ty: ImageType) -> Vec<u8> {
    let bpp = ty.natural_format().bytes_per_pixel();
    let (w, h) = (37usize, 9usize);
    let data: Vec<u8> = (0..w * h * bpp)
        .map(|i| ((i * 7) ^ (i / 13)) as u8)
        .collect();
    quic::encode(&Image {
        image_type: ty,
        width: w as u32,
        height: h as u32,
        stride: w * bpp,
        row_order: RowOrder::TopDown,
        data: &data,
    })
    .unwrap()
}

const TYPES: [ImageType; 5] = [
    ImageType::Gray,
    ImageType::Rgb16,
    ImageType::Rgb24,
    ImageType::Rgb32,
    ImageType::Rgba,
];

#[test]
fn header_errors() {
    assert_eq!(
        quic::decode_header(&[0; 19]),
        Err(QuicError::HeaderTruncated(19))
    );
    let mut bad = header(4, 1, 1);
    bad[0] = b'X';
    assert!(matches!(
        quic::decode_header(&bad),
        Err(QuicError::BadMagic(_))
    ));
    let mut bad = header(4, 1, 1);
    bad[4] = 1;
    assert_eq!(quic::decode_header(&bad), Err(QuicError::BadVersion(1)));
    assert_eq!(
        quic::decode_header(&header(0, 1, 1)),
        Err(QuicError::BadImageType(0))
    );
    assert_eq!(
        quic::decode_header(&header(6, 1, 1)),
        Err(QuicError::BadImageType(6))
    );
    assert_eq!(
        quic::decode_header(&header(4, 0, 5)),
        Err(QuicError::BadDimensions {
            width: 0,
            height: 5
        })
    );
    assert_eq!(
        quic::decode_header(&header(4, 5, 0)),
        Err(QuicError::BadDimensions {
            width: 5,
            height: 0
        })
    );
    assert_eq!(
        quic::decode_header(&header(4, 1 << 15, 1 << 14)),
        Err(QuicError::BadDimensions {
            width: 1 << 15,
            height: 1 << 14
        })
    );
    let ok = quic::decode_header(&header(5, 640, 480)).unwrap();
    assert_eq!(
        (ok.image_type, ok.width, ok.height),
        (ImageType::Rgba, 640, 480)
    );
}

#[test]
fn caps_are_checked_before_allocation() {
    // Declares 16384 x 16384 (2^28 pixels, below the reference limit) with no data.
    let mut s = header(4, 1 << 14, 1 << 14);
    s.extend_from_slice(&[0; 8]);
    let limits = DecodeLimits {
        max_pixels: 1 << 20,
        max_bytes: 1 << 22,
    };
    assert!(matches!(
        quic::decode_to_vec(&s, PixelFormat::Rgb32, &limits),
        Err(QuicError::TooLarge { pixels, .. }) if pixels == 1 << 28
    ));
    let limits = DecodeLimits {
        max_pixels: 1 << 30,
        max_bytes: 1 << 20,
    };
    assert!(matches!(
        quic::decode_to_vec(&s, PixelFormat::Rgb32, &limits),
        Err(QuicError::TooLarge { .. })
    ));
    let mut out = [0u8; 64];
    assert!(matches!(
        quic::decode(
            &s,
            &mut out,
            1 << 16,
            PixelFormat::Rgb32,
            RowOrder::TopDown,
            &limits
        ),
        Err(QuicError::BufferTooSmall { .. })
    ));
}

#[test]
fn caller_buffer_errors() {
    let s = sample_stream(ImageType::Rgb32);
    let limits = DecodeLimits::default();
    let mut out = vec![0u8; 37 * 4 * 9];
    assert!(matches!(
        quic::decode(
            &s,
            &mut out,
            37 * 4 - 1,
            PixelFormat::Rgb32,
            RowOrder::TopDown,
            &limits
        ),
        Err(QuicError::StrideTooSmall { .. })
    ));
    assert!(matches!(
        quic::decode(
            &s,
            &mut out[1..],
            37 * 4,
            PixelFormat::Rgb32,
            RowOrder::TopDown,
            &limits
        ),
        Err(QuicError::BufferTooSmall { .. })
    ));
    quic::decode(
        &s,
        &mut out,
        37 * 4,
        PixelFormat::Rgb32,
        RowOrder::TopDown,
        &limits,
    )
    .unwrap();
    // Encoder input checks.
    let image = Image {
        image_type: ImageType::Rgb24,
        width: 4,
        height: 2,
        stride: 12,
        row_order: RowOrder::TopDown,
        data: &[0; 23],
    };
    assert!(matches!(
        quic::encode(&image),
        Err(QuicError::BufferTooSmall {
            needed: 24,
            got: 23
        })
    ));
    assert!(matches!(
        quic::encode(&Image {
            stride: 11,
            ..image
        }),
        Err(QuicError::StrideTooSmall { .. })
    ));
    assert!(matches!(
        quic::encode(&Image { width: 0, ..image }),
        Err(QuicError::BadDimensions { .. })
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let limits = DecodeLimits::default();
    for ty in TYPES {
        let s = sample_stream(ty);
        let format = ty.natural_format();
        // Dropping only the trailing zero word still decodes (it is padding).
        assert!(quic::decode_to_vec(&s[..s.len() - 4], format, &limits).is_ok());
        for len in 0..s.len() - 4 {
            let r = quic::decode_to_vec(&s[..len], format, &limits);
            assert!(r.is_err(), "{ty:?} truncated to {len} bytes decoded");
        }
    }
}

fn runs_stream(ty: ImageType) -> Vec<u8> {
    let bpp = ty.natural_format().bytes_per_pixel();
    let (w, h) = (40usize, 6usize);
    let data: Vec<u8> = (0..w * h)
        .flat_map(|i| std::iter::repeat_n(((i % w) / 9 * 40) as u8, bpp))
        .collect();
    quic::encode(&Image {
        image_type: ty,
        width: w as u32,
        height: h as u32,
        stride: w * bpp,
        row_order: RowOrder::TopDown,
        data: &data,
    })
    .unwrap()
}

#[test]
fn corrupted_streams_never_panic() {
    let limits = DecodeLimits::default();
    let mut seen = Vec::new();
    for ty in TYPES {
        for s in [sample_stream(ty), runs_stream(ty)] {
            for i in quic::HEADER_SIZE..s.len() {
                for bit in 0..8 {
                    let mut c = s.clone();
                    c[i] ^= 1 << bit;
                    if let Err(e) = quic::decode_to_vec(&c, ty.natural_format(), &limits) {
                        if !seen.contains(&e) {
                            seen.push(e);
                        }
                    }
                }
            }
        }
    }
    for kind in [
        QuicError::Truncated,
        QuicError::RunTooLong,
        QuicError::BadResidual,
    ] {
        assert!(
            seen.contains(&kind),
            "no single-bit flip produced {kind:?}; saw {seen:?}"
        );
    }
}

#[test]
fn garbage_payloads_never_panic() {
    let limits = DecodeLimits::default();
    for ty in 1..=5u32 {
        let image_type = ImageType::from_u32(ty).unwrap();
        for fill in [0x00u8, 0xff, 0x55, 0xaa, 0x0f] {
            for (w, h, n) in [(300, 20, 4096), (4, 4, 64), (3000, 3, 16)] {
                let mut s = header(ty, w, h);
                s.extend(std::iter::repeat_n(fill, n));
                let _ = quic::decode_to_vec(&s, image_type.natural_format(), &limits);
                quic::fuzz_decode(&s);
            }
        }
    }
}

#[test]
fn fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/quic_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        quic::fuzz_decode(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus at {}", dir.display());
}
