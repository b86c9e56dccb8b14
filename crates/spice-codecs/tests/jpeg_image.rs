//! JPEG and JPEG_ALPHA: round trips (PSNR), layouts, caps, malformed input, corpus replay.

use spice_codecs::jpeg::{
    self, AlphaSource, JpegAlphaHeader, JpegError, JpegLimits, JpegSource, JpegSourceFormat,
};

/// Smooth photo-like BGRX image.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let b = (x * 255 / w.max(1)) as u8;
            let g = (y * 255 / h.max(1)) as u8;
            let r = (((x + y) * 3) % 256) as u8 / 2 + 64;
            v.extend_from_slice(&[b, g, r, 0]);
        }
    }
    v
}

/// PSNR over the B,G,R channels of two BGRX buffers.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mut se = 0f64;
    let mut n = 0f64;
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = f64::from(pa[c]) - f64::from(pb[c]);
            se += d * d;
            n += 1.0;
        }
    }
    if se == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / (se / n)).log10()
}

fn src(data: &[u8], w: u32, h: u32, stride: usize, format: JpegSourceFormat) -> JpegSource<'_> {
    JpegSource {
        data,
        width: w,
        height: h,
        stride,
        format,
        top_down: true,
    }
}

fn decode_bgrx(data: &[u8]) -> (jpeg::JpegInfo, Vec<u8>) {
    let info = jpeg::read_info(data, &JpegLimits::default()).unwrap();
    let mut out = vec![0u8; (info.width * info.height * 4) as usize];
    jpeg::decode(
        data,
        &mut out,
        info.width as usize * 4,
        &JpegLimits::default(),
    )
    .unwrap();
    (info, out)
}

#[test]
fn bgrx_round_trip_quality_85_is_close() {
    let (w, h) = (97, 61);
    let img = photo(w, h);
    let mut enc = Vec::new();
    let n = jpeg::encode(
        &src(&img, w, h, w as usize * 4, JpegSourceFormat::Bgrx32),
        85,
        &mut enc,
    )
    .unwrap();
    assert_eq!(n, enc.len());
    assert_eq!(&enc[..2], &[0xFF, 0xD8], "SOI marker");
    let (info, out) = decode_bgrx(&enc);
    assert_eq!((info.width, info.height), (w, h));
    assert!(out.chunks_exact(4).all(|p| p[3] == 0xFF), "X byte is 0xFF");
    let p = psnr(&img, &out);
    assert!(p > 32.0, "PSNR {p}");
}

#[test]
fn quality_orders_size_and_fidelity() {
    let (w, h) = (128, 96);
    let mut img = photo(w, h);
    // Add texture so quality matters.
    for (i, b) in img.iter_mut().enumerate() {
        *b = b.wrapping_add(((i * 7919) % 23) as u8);
    }
    let s = src(&img, w, h, w as usize * 4, JpegSourceFormat::Bgrx32);
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    jpeg::encode(&s, 20, &mut lo).unwrap();
    jpeg::encode(&s, 80, &mut hi).unwrap();
    assert!(lo.len() < hi.len(), "q20 {} >= q80 {}", lo.len(), hi.len());
    assert!(psnr(&img, &decode_bgrx(&lo).1) < psnr(&img, &decode_bgrx(&hi).1));
}

#[test]
fn rgb16_bgr24_stride_and_bottom_up_sources_match_bgrx() {
    let (w, h) = (40u32, 30u32);
    let img = photo(w, h);
    let mut reference = Vec::new();
    jpeg::encode(
        &src(&img, w, h, w as usize * 4, JpegSourceFormat::Bgrx32),
        90,
        &mut reference,
    )
    .unwrap();
    let ref_px = decode_bgrx(&reference).1;

    // 24-bit with padded stride.
    let stride24 = w as usize * 3 + 5;
    let mut img24 = vec![0xAAu8; stride24 * h as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let s = &img[(y * w as usize + x) * 4..][..3];
            img24[y * stride24 + x * 3..][..3].copy_from_slice(s);
        }
    }
    let mut e24 = Vec::new();
    jpeg::encode(
        &src(&img24, w, h, stride24, JpegSourceFormat::Bgr24),
        90,
        &mut e24,
    )
    .unwrap();
    assert!(psnr(&ref_px, &decode_bgrx(&e24).1) > 40.0);

    // Bottom-up 32-bit: rows stored backwards, the JPEG must still be top row first.
    let row = w as usize * 4;
    let flipped: Vec<u8> = img.chunks_exact(row).rev().flatten().copied().collect();
    let mut eflip = Vec::new();
    let mut s = src(&flipped, w, h, row, JpegSourceFormat::Bgrx32);
    s.top_down = false;
    jpeg::encode(&s, 90, &mut eflip).unwrap();
    assert!(psnr(&ref_px, &decode_bgrx(&eflip).1) > 40.0);

    // 16-bit: quantised to 5 bits per channel, so compare against the quantised image.
    let mut img16 = Vec::new();
    let mut quant = Vec::new();
    for p in img.chunks_exact(4) {
        let (b, g, r) = (
            u16::from(p[0] >> 3),
            u16::from(p[1] >> 3),
            u16::from(p[2] >> 3),
        );
        img16.extend_from_slice(&(b | (g << 5) | (r << 10) | 0x8000).to_le_bytes());
        let e = |v: u16| ((v << 3) | (v >> 2)) as u8;
        quant.extend_from_slice(&[e(b), e(g), e(r), 0]);
    }
    let mut e16 = Vec::new();
    jpeg::encode(
        &src(&img16, w, h, w as usize * 2, JpegSourceFormat::Rgb16),
        90,
        &mut e16,
    )
    .unwrap();
    assert!(psnr(&quant, &decode_bgrx(&e16).1) > 35.0);
}

#[test]
fn decode_honours_destination_stride() {
    let (w, h) = (16u32, 8u32);
    let img = photo(w, h);
    let mut enc = Vec::new();
    jpeg::encode(&src(&img, w, h, 64, JpegSourceFormat::Bgrx32), 85, &mut enc).unwrap();
    let mut out = vec![0x11u8; 80 * 8];
    jpeg::decode(&enc, &mut out, 80, &JpegLimits::default()).unwrap();
    for y in 0..8 {
        assert!(out[y * 80 + 64..y * 80 + 80].iter().all(|&b| b == 0x11));
    }
    let packed: Vec<u8> = out
        .chunks_exact(80)
        .flat_map(|r| r[..64].to_vec())
        .collect();
    assert!(psnr(&img, &packed) > 30.0);
}

#[test]
fn caps_and_malformed_inputs_are_errors() {
    let (w, h) = (64u32, 48u32);
    let img = photo(w, h);
    let mut enc = Vec::new();
    jpeg::encode(
        &src(&img, w, h, 256, JpegSourceFormat::Bgrx32),
        85,
        &mut enc,
    )
    .unwrap();
    let small = JpegLimits {
        max_width: 32,
        max_height: 1000,
    };
    assert!(matches!(
        jpeg::read_info(&enc, &small),
        Err(JpegError::TooLarge { .. } | JpegError::Decode(_))
    ));
    let mut out = vec![0u8; 10];
    assert!(matches!(
        jpeg::decode(&enc, &mut out, 256, &JpegLimits::default()),
        Err(JpegError::DestinationTooSmall { .. })
    ));
    let mut out = vec![0u8; (w * h * 4) as usize];
    assert!(matches!(
        jpeg::decode_image(&enc, 10, 10, &mut out, 256, &JpegLimits::default()),
        Err(JpegError::DimensionMismatch { .. })
    ));
    assert!(jpeg::decode(&[], &mut out, 256, &JpegLimits::default()).is_err());
    assert!(jpeg::decode(&[0xFF, 0xD8, 0xFF], &mut out, 256, &JpegLimits::default()).is_err());
    // Truncated after the headers: an error or a (partially grey) image, never a panic.
    for cut in [20, enc.len() / 2, enc.len() - 3] {
        let _ = jpeg::decode(&enc[..cut], &mut out, 256, &JpegLimits::default());
    }
    // Encoder argument checks.
    let mut e = Vec::new();
    assert!(matches!(
        jpeg::encode(&src(&img, 0, 4, 256, JpegSourceFormat::Bgrx32), 85, &mut e),
        Err(JpegError::EmptyImage { .. })
    ));
    assert!(matches!(
        jpeg::encode(
            &src(&img, 70000, 1, 280000, JpegSourceFormat::Bgrx32),
            85,
            &mut e
        ),
        Err(JpegError::TooLarge { .. })
    ));
    assert!(matches!(
        jpeg::encode(
            &src(&img[..100], 64, 48, 256, JpegSourceFormat::Bgrx32),
            85,
            &mut e
        ),
        Err(JpegError::SourceTooSmall { .. })
    ));
}

// ---- JPEG_ALPHA with a stand-in alpha codec ----

#[derive(Debug, thiserror::Error)]
#[error("alpha codec: {0}")]
struct AlphaErr(&'static str);

/// Stand-in for LZ XXXA: `u32 w, u32 h, u8 top_down` then run-length pairs (count, value).
fn rle_encode(src: &AlphaSource<'_>, out: &mut Vec<u8>) -> Result<(), AlphaErr> {
    out.extend_from_slice(&src.width.to_le_bytes());
    out.extend_from_slice(&src.height.to_le_bytes());
    out.push(u8::from(src.top_down));
    let plane = src.alpha_plane();
    let mut i = 0;
    while i < plane.len() {
        let v = plane[i];
        let mut n = 1;
        while i + n < plane.len() && plane[i + n] == v && n < 255 {
            n += 1;
        }
        out.extend_from_slice(&[n as u8, v]);
        i += n;
    }
    Ok(())
}

fn rle_decode(data: &[u8], w: u32, h: u32, top_down: bool) -> Result<Vec<u8>, AlphaErr> {
    if data.len() < 9 {
        return Err(AlphaErr("short header"));
    }
    let sw = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let sh = u32::from_le_bytes(data[4..8].try_into().unwrap());
    if (sw, sh, data[8] != 0) != (w, h, top_down) {
        return Err(AlphaErr("header mismatch"));
    }
    let mut plane = Vec::new();
    for pair in data[9..].chunks_exact(2) {
        plane.extend(std::iter::repeat_n(pair[1], pair[0] as usize));
        if plane.len() > (w * h) as usize {
            return Err(AlphaErr("too long"));
        }
    }
    Ok(plane)
}

fn rgba(w: u32, h: u32) -> Vec<u8> {
    let mut img = photo(w, h);
    for (i, p) in img.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        p[3] = if x < w / 2 { 255 } else { (y * 255 / h) as u8 };
    }
    img
}

#[test]
fn jpeg_alpha_round_trip_both_orientations() {
    let (w, h) = (48u32, 32u32);
    let img = rgba(w, h);
    let row = w as usize * 4;
    for top_down in [true, false] {
        let mem: Vec<u8> = if top_down {
            img.clone()
        } else {
            img.chunks_exact(row).rev().flatten().copied().collect()
        };
        let a = AlphaSource {
            data: &mem,
            width: w,
            height: h,
            stride: row,
            top_down,
        };
        let mut body = Vec::new();
        let hdr = jpeg::encode_jpeg_alpha(&a, 85, rle_encode, &mut body).unwrap();
        assert_eq!(body[0], u8::from(top_down));
        assert_eq!(body.len(), JpegAlphaHeader::SIZE + hdr.data_size as usize);
        let parts = jpeg::split_jpeg_alpha(&body).unwrap();
        assert_eq!(parts.header, hdr);
        assert_eq!(&parts.jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(parts.alpha[8], u8::from(top_down));

        let mut out = vec![0u8; row * h as usize];
        jpeg::decode_jpeg_alpha(
            &body,
            w,
            h,
            &mut out,
            row,
            &JpegLimits::default(),
            rle_decode,
        )
        .unwrap();
        // Alpha is lossless and in visual order; colour is close.
        let alpha_out: Vec<u8> = out.chunks_exact(4).map(|p| p[3]).collect();
        let alpha_in: Vec<u8> = img.chunks_exact(4).map(|p| p[3]).collect();
        assert_eq!(alpha_out, alpha_in);
        assert!(psnr(&img, &out) > 32.0);
    }
}

#[test]
fn jpeg_alpha_malformed_bodies() {
    assert!(matches!(
        jpeg::split_jpeg_alpha(&[1, 2, 3]),
        Err(JpegError::AlphaHeaderTruncated(3))
    ));
    let mut b = Vec::new();
    JpegAlphaHeader {
        top_down: true,
        jpeg_size: 5,
        data_size: 4,
    }
    .write(&mut b);
    b.extend_from_slice(&[0; 4]);
    assert!(matches!(
        jpeg::split_jpeg_alpha(&b),
        Err(JpegError::AlphaJpegSizeOverrun { .. })
    ));
    let mut b = Vec::new();
    JpegAlphaHeader {
        top_down: false,
        jpeg_size: 1,
        data_size: 100,
    }
    .write(&mut b);
    assert!(matches!(
        jpeg::split_jpeg_alpha(&b),
        Err(JpegError::AlphaDataTruncated { .. })
    ));
    // Alpha codec error and wrong plane size propagate as typed errors.
    let (w, h) = (8u32, 8u32);
    let img = rgba(w, h);
    let a = AlphaSource {
        data: &img,
        width: w,
        height: h,
        stride: 32,
        top_down: true,
    };
    let mut body = Vec::new();
    jpeg::encode_jpeg_alpha(&a, 85, rle_encode, &mut body).unwrap();
    let mut out = vec![0u8; 256];
    let lim = JpegLimits::default();
    assert!(matches!(
        jpeg::decode_jpeg_alpha(&body, w, h, &mut out, 32, &lim, |_, _, _, _| Err::<
            Vec<u8>,
            _,
        >(
            AlphaErr("bad")
        )),
        Err(JpegError::Alpha(_))
    ));
    assert!(matches!(
        jpeg::decode_jpeg_alpha(&body, w, h, &mut out, 32, &lim, |_, _, _, _| Ok::<
            _,
            AlphaErr,
        >(
            vec![0; 3]
        )),
        Err(JpegError::AlphaPlaneSize {
            got: 3,
            expected: 64
        })
    ));
}

#[test]
fn fuzz_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/jpeg_decode");
    let mut n = 0;
    let mut ok = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        ok += usize::from(jpeg::fuzz_decode(&data).is_ok());
        n += 1;
    }
    assert!(n >= 3 && ok >= 2, "{n} files, {ok} decoded");
}

/// Regenerates the seed corpus: `cargo test --test jpeg_image -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes files; run by hand to regenerate fuzz/corpus/jpeg_decode"]
fn write_seed_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/jpeg_decode");
    std::fs::create_dir_all(dir).unwrap();
    for (name, w, h, q) in [
        ("q85_16x16", 16, 16, 85u8),
        ("q20_33x17", 33, 17, 20),
        ("q80_8x40", 8, 40, 80),
    ] {
        let img = photo(w, h);
        let mut enc = Vec::new();
        jpeg::encode(
            &src(&img, w, h, w as usize * 4, JpegSourceFormat::Bgrx32),
            q,
            &mut enc,
        )
        .unwrap();
        std::fs::write(format!("{dir}/{name}"), &enc).unwrap();
        if name == "q85_16x16" {
            std::fs::write(format!("{dir}/truncated"), &enc[..enc.len() / 2]).unwrap();
        }
    }
}
