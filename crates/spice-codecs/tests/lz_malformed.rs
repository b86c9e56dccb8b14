//! Malformed LZ streams give typed errors (never panics), and the fuzz corpus
//! of `lz_decode` replays through `lz::fuzz_decode`.

use spice_codecs::lz::{self, LzDecodeOptions, LzError, LzHeader, LzImageType, LzOutputFormat};

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!v.is_empty(), "empty corpus {dir:?}");
    v.sort();
    v
}

fn sample() -> Vec<u8> {
    let img: Vec<u8> = (0..23 * 9 * 4).map(|i| (i * 7 % 13) as u8).collect();
    let mut out = Vec::new();
    lz::encode_image(LzImageType::Rgba, 23, 9, 92, true, &img, &mut out).unwrap();
    out
}

#[test]
fn fuzz_corpus_replays() {
    for data in corpus("lz_decode") {
        let _ = lz::fuzz_decode(&data);
    }
    // The seeds are valid streams.
    assert!(
        corpus("lz_decode")
            .iter()
            .any(|d| lz::fuzz_decode(d).is_ok() || LzHeader::parse(d).is_ok())
    );
}

#[test]
fn every_truncation_is_an_error() {
    let s = sample();
    for cut in 0..s.len() {
        assert!(
            lz::decode_to_vec(&s[..cut], LzOutputFormat::Native, None, 1 << 20).is_err(),
            "cut {cut}"
        );
    }
    assert!(lz::decode_to_vec(&s, LzOutputFormat::Native, None, 1 << 20).is_ok());
    let mut long = s.clone();
    long.push(0);
    assert_eq!(
        lz::decode_to_vec(&long, LzOutputFormat::Native, None, 1 << 20).unwrap_err(),
        LzError::TrailingBytes(1)
    );
}

#[test]
fn corrupted_bytes_never_panic() {
    let s = sample();
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut c = s.clone();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let i = LzHeader::SIZE + (seed >> 8) as usize % (c.len() - LzHeader::SIZE);
            c[i] = (seed >> 24) as u8;
        }
        let _ = lz::fuzz_decode(&c);
    }
}

#[test]
fn header_errors_are_typed() {
    let s = sample();
    let mut bad = s.clone();
    bad[0] = 0;
    assert!(matches!(LzHeader::parse(&bad), Err(LzError::BadMagic(_))));
    let mut bad = s.clone();
    bad[7] = 2;
    assert!(matches!(LzHeader::parse(&bad), Err(LzError::BadVersion(_))));
    let mut bad = s.clone();
    bad[11] = 12;
    assert!(matches!(
        LzHeader::parse(&bad),
        Err(LzError::BadImageType(12))
    ));
    let mut bad = s.clone();
    bad[23] ^= 1; // stride
    assert!(matches!(
        LzHeader::parse(&bad),
        Err(LzError::BadStride { .. })
    ));
    assert!(matches!(
        LzHeader::parse(&s[..10]),
        Err(LzError::ShortHeader(10))
    ));
    // Huge declared images are refused by the caller cap before any work.
    let mut huge = Vec::new();
    LzHeader {
        image_type: LzImageType::Rgb32,
        width: 16384,
        height: 16383,
        stride: 65536,
        top_down: true,
    }
    .write(&mut huge);
    huge.push(0);
    assert!(matches!(
        lz::decode_to_vec(&huge, LzOutputFormat::Native, None, 1 << 24),
        Err(LzError::TooLarge { .. })
    ));
    // A too-small caller buffer is refused.
    let mut small = [0u8; 10];
    assert!(matches!(
        lz::decode(&s, &mut small, &LzDecodeOptions::default()),
        Err(LzError::OutputTooSmall { .. })
    ));
}

#[test]
fn bad_references_are_typed() {
    // RGB32 1x8: literal of 1 pixel then a match with offset 2 (> 1 decoded).
    let mut s = Vec::new();
    LzHeader {
        image_type: LzImageType::Rgb32,
        width: 8,
        height: 1,
        stride: 32,
        top_down: true,
    }
    .write(&mut s);
    s.extend_from_slice(&[0, 1, 2, 3, 0x20, 1]);
    assert!(matches!(
        lz::decode_to_vec(&s, LzOutputFormat::Native, None, 1 << 20),
        Err(LzError::BadReference(_))
    ));
    // A match running past the end.
    let mut s2 = s[..LzHeader::SIZE].to_vec();
    s2.extend_from_slice(&[0, 1, 2, 3, 0xe0, 20, 0]);
    assert!(matches!(
        lz::decode_to_vec(&s2, LzOutputFormat::Native, None, 1 << 20),
        Err(LzError::Overrun(_))
    ));
    // A palette image to 32 bits without a palette.
    let mut p = Vec::new();
    lz::encode_image(LzImageType::Plt8, 4, 4, 4, true, &[1; 16], &mut p).unwrap();
    assert!(matches!(
        lz::decode_to_vec(&p, LzOutputFormat::Bgrx32, None, 1 << 20),
        Err(LzError::BadPalette { .. })
    ));
    assert!(matches!(
        lz::decode_to_vec(&p, LzOutputFormat::Bgrx32, Some(&[0]), 1 << 20),
        Err(LzError::BadPalette { .. })
    ));
}
