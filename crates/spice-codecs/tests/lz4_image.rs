//! LZ4 image framing: hand-built streams, round trips, malformed input, corpus replay.

use proptest::prelude::*;
use spice_codecs::lz4::{self, Lz4Error, Lz4Format, Lz4Header, Lz4Limits, Lz4Output};

fn hdr(format: Lz4Format, top_down: bool) -> Lz4Header {
    Lz4Header { top_down, format }
}

/// Photo-ish deterministic pixels.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((i / 7) as u8).wrapping_add((x & 7) as u8)
        })
        .collect()
}

fn decode_native(payload: &[u8], w: u32, h: u32, bpp: usize) -> Result<Vec<u8>, Lz4Error> {
    let mut out = vec![0u8; w as usize * h as usize * bpp];
    lz4::decode(
        payload,
        w,
        h,
        &mut out,
        w as usize * bpp,
        Lz4Output::Native,
        &Lz4Limits::default(),
    )?;
    Ok(out)
}

#[test]
fn hand_built_stream_with_cross_block_match() {
    // 1x3 RGB32, top-down. Block 1: 4 literals (row 0). Block 2: a match of 4 bytes at
    // offset 4 (row 1 = row 0, taken from block 1's output) then 4 literals (row 2).
    let mut p = vec![1u8, 8];
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(&[0x40, 1, 2, 3, 4]);
    p.extend_from_slice(&8u32.to_be_bytes());
    p.extend_from_slice(&[0x00, 0x04, 0x00, 0x40, 9, 8, 7, 6]);
    let out = decode_native(&p, 1, 3, 4).unwrap();
    assert_eq!(out, [1, 2, 3, 4, 1, 2, 3, 4, 9, 8, 7, 6]);

    // The same match with nothing before it is an error, not a panic.
    let mut q = vec![1u8, 8];
    q.extend_from_slice(&8u32.to_be_bytes());
    q.extend_from_slice(&[0x00, 0x04, 0x00, 0x40, 9, 8, 7, 6]);
    assert!(matches!(
        decode_native(&q, 1, 2, 4),
        Err(Lz4Error::CorruptBlock { .. })
    ));
}

#[test]
fn bottom_up_stream_is_flipped_and_header_reported() {
    // 1x2 RGB32, bottom-up: first decoded row is the bottom row.
    let mut p = vec![0u8, 8];
    p.extend_from_slice(&9u32.to_be_bytes());
    p.extend_from_slice(&[0x80, 1, 1, 1, 1, 2, 2, 2, 2]);
    let mut out = vec![0u8; 8];
    let h = lz4::decode(
        &p,
        1,
        2,
        &mut out,
        4,
        Lz4Output::Native,
        &Lz4Limits::default(),
    )
    .unwrap();
    assert_eq!(h, hdr(Lz4Format::Rgb32, false));
    assert_eq!(out, [2, 2, 2, 2, 1, 1, 1, 1]);
}

#[test]
fn round_trip_all_formats_multi_block() {
    for format in [
        Lz4Format::Rgb16,
        Lz4Format::Rgb24,
        Lz4Format::Rgb32,
        Lz4Format::Rgba,
    ] {
        let (w, h) = (173u32, 151u32);
        let bpp = format.bytes_per_pixel();
        let img = pattern(w as usize * h as usize * bpp, format as u32);
        for rows_per_block in [1usize, 7, 1000] {
            let mut enc = Vec::new();
            lz4::encode(
                &img,
                w,
                h,
                w as usize * bpp,
                hdr(format, true),
                rows_per_block,
                &mut enc,
            )
            .unwrap();
            assert_eq!(&enc[..2], &[1, format as u8]);
            assert_eq!(decode_native(&enc, w, h, bpp).unwrap(), img);
        }
    }
}

#[test]
fn later_blocks_use_earlier_output_as_history() {
    // Every row identical: blocks after the first should be tiny because they match
    // into the previous block's rows.
    let (w, h) = (256u32, 64u32);
    let row = pattern(w as usize * 4, 3);
    let img: Vec<u8> = (0..h).flat_map(|_| row.clone()).collect();
    let mut enc = Vec::new();
    lz4::encode(
        &img,
        w,
        h,
        w as usize * 4,
        hdr(Lz4Format::Rgb32, true),
        8,
        &mut enc,
    )
    .unwrap();
    let first = u32::from_be_bytes(enc[2..6].try_into().unwrap()) as usize;
    let second_at = 6 + first;
    let second = u32::from_be_bytes(enc[second_at..second_at + 4].try_into().unwrap()) as usize;
    assert!(
        second < 64,
        "second block is {second} bytes, expected a few matches"
    );
    assert_eq!(decode_native(&enc, w, h, 4).unwrap(), img);
}

#[test]
fn stride_padding_is_dropped_and_output_stride_honoured() {
    let (w, h) = (5u32, 4u32);
    let stride = 24; // 20 bytes of pixels + 4 padding
    let mut img = pattern(stride * h as usize, 9);
    for r in 0..h as usize {
        img[r * stride + 20..r * stride + 24].copy_from_slice(&[0xEE; 4]);
    }
    let mut enc = Vec::new();
    lz4::encode(&img, w, h, stride, hdr(Lz4Format::Rgb32, true), 2, &mut enc).unwrap();
    let mut out = vec![0x55u8; 32 * h as usize];
    lz4::decode(
        &enc,
        w,
        h,
        &mut out,
        32,
        Lz4Output::Native,
        &Lz4Limits::default(),
    )
    .unwrap();
    for r in 0..h as usize {
        assert_eq!(&out[r * 32..r * 32 + 20], &img[r * stride..r * stride + 20]);
        assert!(out[r * 32 + 20..r * 32 + 32].iter().all(|&b| b == 0x55));
    }
}

#[test]
fn bgrx_output_expands_16_and_24_bit() {
    // RGB16 pixel 0x7FFF = white, 0x001F = blue 31, 0x7C00 = red 31.
    let img16 = [0xFF, 0x7F, 0x1F, 0x00, 0x00, 0x7C];
    let mut enc = Vec::new();
    lz4::encode(&img16, 3, 1, 6, hdr(Lz4Format::Rgb16, true), 1, &mut enc).unwrap();
    let mut out = vec![0u8; 12];
    lz4::decode(
        &enc,
        3,
        1,
        &mut out,
        12,
        Lz4Output::Bgrx,
        &Lz4Limits::default(),
    )
    .unwrap();
    assert_eq!(out, [255, 255, 255, 255, 255, 0, 0, 255, 0, 0, 255, 255]);
    let img24 = [1, 2, 3, 4, 5, 6];
    enc.clear();
    lz4::encode(&img24, 2, 1, 6, hdr(Lz4Format::Rgb24, false), 1, &mut enc).unwrap();
    let mut out = vec![0u8; 8];
    lz4::decode(
        &enc,
        2,
        1,
        &mut out,
        8,
        Lz4Output::Bgrx,
        &Lz4Limits::default(),
    )
    .unwrap();
    assert_eq!(out, [1, 2, 3, 255, 4, 5, 6, 255]);
}

#[test]
fn malformed_inputs_are_typed_errors() {
    let lim = Lz4Limits::default();
    let mut out = vec![0u8; 64];
    let dec = |p: &[u8], w, h, out: &mut [u8]| {
        lz4::decode(p, w, h, out, w as usize * 4, Lz4Output::Native, &lim)
    };
    assert_eq!(dec(&[1], 1, 1, &mut out), Err(Lz4Error::MissingHeader(1)));
    assert_eq!(
        dec(&[1, 5], 1, 1, &mut out),
        Err(Lz4Error::UnsupportedFormat(5))
    );
    assert_eq!(
        dec(&[1, 8], 1, 1, &mut out),
        Err(Lz4Error::TruncatedBlockLength { offset: 2 })
    );
    assert_eq!(
        dec(&[1, 8, 0, 0, 0, 9, 0x40], 1, 1, &mut out),
        Err(Lz4Error::BlockOverrun {
            offset: 2,
            len: 9,
            remaining: 1
        })
    );
    assert!(matches!(
        dec(&[1, 8, 0xFF, 0xFF, 0xFF, 0xFF], 1, 1, &mut out),
        Err(Lz4Error::BlockOverrun { .. })
    ));
    // One pixel decoded, two needed.
    assert_eq!(
        dec(&[1, 8, 0, 0, 0, 5, 0x40, 1, 2, 3, 4], 1, 2, &mut out),
        Err(Lz4Error::ShortImage {
            got: 4,
            expected: 8
        })
    );
    // More output than the image holds.
    assert!(matches!(
        dec(
            &[1, 8, 0, 0, 0, 9, 0x80, 1, 2, 3, 4, 5, 6, 7, 8],
            1,
            1,
            &mut out
        ),
        Err(Lz4Error::CorruptBlock { .. })
    ));
    // Empty block: zero bytes of output is a format error in the C client too.
    assert!(matches!(
        dec(&[1, 8, 0, 0, 0, 0], 1, 1, &mut out),
        Err(Lz4Error::EmptyBlock { offset: 2 } | Lz4Error::CorruptBlock { offset: 2, .. })
    ));
    assert_eq!(
        dec(&[1, 8, 0, 0, 0, 1, 0x40], 0, 1, &mut out),
        Err(Lz4Error::EmptyImage {
            width: 0,
            height: 1
        })
    );
    assert_eq!(
        dec(&[1, 8, 0, 0, 0, 1, 0x40], 20000, 1, &mut out),
        Err(Lz4Error::TooLarge {
            width: 20000,
            height: 1
        })
    );
    assert!(matches!(
        lz4::decode(
            &[1, 8, 0, 0, 0, 1, 0x40],
            100,
            100,
            &mut out,
            400,
            Lz4Output::Native,
            &lim
        ),
        Err(Lz4Error::DestinationTooSmall { .. })
    ));
}

#[test]
fn encode_rejects_short_source() {
    let mut enc = Vec::new();
    assert!(matches!(
        lz4::encode(&[0; 10], 2, 2, 8, hdr(Lz4Format::Rgb32, true), 1, &mut enc),
        Err(Lz4Error::SourceTooSmall { .. })
    ));
}

#[test]
fn fuzz_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/lz4_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = lz4::fuzz_decode(&data);
        n += 1;
    }
    assert!(n >= 3, "corpus has {n} files");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn prop_round_trip(w in 1u32..40, h in 1u32..40, rpb in 1usize..50, top in any::<bool>(), seed in any::<u32>()) {
        let img = pattern(w as usize * h as usize * 3, seed);
        let mut enc = Vec::new();
        lz4::encode(&img, w, h, w as usize * 3, hdr(Lz4Format::Rgb24, top), rpb, &mut enc).unwrap();
        let mut out = vec![0u8; img.len()];
        lz4::decode(&enc, w, h, &mut out, w as usize * 3, Lz4Output::Native, &Lz4Limits::default()).unwrap();
        let row = w as usize * 3;
        for r in 0..h as usize {
            let src_row = if top { r } else { h as usize - 1 - r };
            prop_assert_eq!(&out[r * row..(r + 1) * row], &img[src_row * row..(src_row + 1) * row]);
        }
    }

    #[test]
    fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = lz4::fuzz_decode(&data);
    }
}
