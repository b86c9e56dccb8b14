//! Malformed GLZ and ZLIB_GLZ streams give typed errors; the fuzz corpora of
//! `glz_decode` and `zlib_glz_decode` replay through the fuzz functions.
//! `cargo test -- --ignored regenerate_corpus` rewrites the seed files.

use spice_codecs::glz::{self, GlzDictionary, GlzError, GlzInput, GlzWindow};
use spice_codecs::lz::LzImageType;
use spice_codecs::zlib_glz;

fn corpus_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name)
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!v.is_empty(), "empty corpus {dir:?}");
    v
}

/// Two small frames of `t`, the second referring to the first.
fn two_frames(t: LzImageType) -> (Vec<u8>, Vec<u8>) {
    let (w, h) = (24usize, 10usize);
    let b = t.bytes_per_pixel();
    let f: Vec<u8> = (0..w * h * b)
        .map(|i| ((i / b) % 9 * 20 + i % b * 3) as u8)
        .collect();
    let mut g = f.clone();
    g[..b * 5].fill(200);
    let mut dict = GlzDictionary::new(4096).unwrap();
    let mut out = (Vec::new(), Vec::new());
    let input = GlzInput {
        image_type: t,
        width: w as u32,
        height: h as u32,
        stride: w * b,
        top_down: true,
        data: &f,
    };
    dict.encode(0, &input, &mut out.0).unwrap();
    dict.encode(0, &GlzInput { data: &g, ..input }, &mut out.1)
        .unwrap();
    (out.0, out.1)
}

#[test]
#[ignore]
fn regenerate_corpus() {
    let marker = [0xff, 0, 0xff, 0];
    for (i, t) in [
        LzImageType::Rgb32,
        LzImageType::Rgba,
        LzImageType::Rgb16,
        LzImageType::Rgb24,
    ]
    .into_iter()
    .enumerate()
    {
        let (a, b) = two_frames(t);
        let mut seq = a.clone();
        seq.extend_from_slice(&marker);
        seq.extend_from_slice(&b);
        std::fs::write(corpus_dir("glz_decode").join(format!("seq{i}")), &seq).unwrap();
        let z = zlib_glz::wrap(&a).unwrap_or_else(|| {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(3));
            std::io::Write::write_all(&mut e, &a).unwrap();
            e.finish().unwrap()
        });
        let mut zf = (a.len() as u32).to_le_bytes().to_vec();
        zf.extend_from_slice(&z);
        std::fs::write(corpus_dir("zlib_glz_decode").join(format!("img{i}")), &zf).unwrap();
    }
}

#[test]
fn fuzz_corpora_replay() {
    let glz_ok = corpus("glz_decode")
        .iter()
        .filter(|d| glz::fuzz_decode(d).is_ok())
        .count();
    assert!(glz_ok > 0, "no valid GLZ seed");
    let z_ok = corpus("zlib_glz_decode")
        .iter()
        .filter(|d| zlib_glz::fuzz_decode(d).is_ok())
        .count();
    assert!(z_ok > 0, "no valid ZLIB_GLZ seed");
}

#[test]
fn truncations_and_corruptions_never_panic() {
    for t in [LzImageType::Rgb32, LzImageType::Rgba, LzImageType::Rgb16] {
        let (a, b) = two_frames(t);
        for cut in 0..a.len() {
            assert!(GlzWindow::new(1 << 16).decode(&a[..cut]).is_err());
        }
        let mut seed = 99u32;
        for _ in 0..1500 {
            let mut win = GlzWindow::new(1 << 16);
            let _ = win.decode(&a);
            let mut c = b.clone();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let i = 33 + (seed >> 8) as usize % (c.len() - 33);
            c[i] = (seed >> 24) as u8;
            let _ = win.decode(&c);
        }
    }
}

#[test]
fn header_and_reference_errors_are_typed() {
    let (a, b) = two_frames(LzImageType::Rgb32);
    let mut bad = a.clone();
    bad[8] = 5; // PLT8
    assert!(matches!(
        GlzWindow::new(1 << 16).decode(&bad),
        Err(GlzError::UnsupportedType(LzImageType::Plt8))
    ));
    bad[8] = 0;
    assert!(matches!(
        GlzWindow::new(1 << 16).decode(&bad),
        Err(GlzError::BadImageType(0))
    ));
    // Over the window cap.
    assert!(matches!(
        GlzWindow::new(100).decode(&a),
        Err(GlzError::TooLarge { .. })
    ));
    // Second frame before the first: missing, and once released: released.
    let mut win = GlzWindow::new(1 << 16);
    assert_eq!(
        win.decode(&b),
        Err(GlzError::MissingImage { id: 1, missing: 0 })
    );
    // Same stream with id 0: refers to image -1.
    let mut self_ref = b.clone();
    self_ref[21..29].copy_from_slice(&0u64.to_be_bytes());
    assert!(matches!(
        win.decode(&self_ref),
        Err(GlzError::BadReference { .. })
    ));
    // Id 5 referring to image 4 after the window released everything below 5.
    let mut later = a.clone();
    later[21..29].copy_from_slice(&6u64.to_be_bytes());
    later[29..33].copy_from_slice(&0u32.to_be_bytes());
    let mut win = GlzWindow::new(1 << 16);
    win.decode(&later).unwrap();
    let mut b5 = b.clone();
    b5[21..29].copy_from_slice(&5u64.to_be_bytes());
    assert_eq!(
        win.decode(&b5),
        Err(GlzError::ReleasedImage { id: 5, released: 4 })
    );
}
