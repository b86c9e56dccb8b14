//! LZ golden vectors: every `*.lz` in the shared `vectors/quic-lz` directory is
//! re-encoded byte for byte from its raw image and decoded back to it.

use spice_codecs::lz::{self, LzDecodeOptions, LzImageType, LzOutputFormat};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SPICE_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in manifest.ancestors() {
        let c = a.join("shared/vectors");
        if c.is_dir() {
            return c;
        }
    }
    panic!("shared/vectors not found above {manifest:?}; set SPICE_VECTORS_DIR");
}

fn dims(dir: &std::path::Path, name: &str) -> (u32, u32) {
    let s = std::fs::read_to_string(dir.join(format!("{name}.dims"))).unwrap();
    let mut it = s.split_whitespace().map(|v| v.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn every_lz_vector_encodes_and_decodes_exactly() {
    let dir = vectors_dir().join("quic-lz");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".lz"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "only {} LZ vectors found", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let mut parts = f.split('.');
        let name = parts.next().unwrap();
        let kind = parts.next().unwrap();
        let golden = std::fs::read(dir.join(f)).unwrap();
        let (w, h) = dims(&dir, name);
        let (t, raw_ext, bpp) = match kind {
            "rgb32" => (LzImageType::Rgb32, "bgrx", 4),
            "rgb24" => (LzImageType::Rgb24, "rgb24", 3),
            "rgb16" => (LzImageType::Rgb16, "rgb16", 2),
            "rgba" => (LzImageType::Rgba, "rgba", 4),
            "xxxa" => (LzImageType::Xxxa, "rgba", 4),
            "plt8" => (LzImageType::Plt8, "plt8", 1),
            "a8" => (LzImageType::A8, "a8", 1),
            other => panic!("unknown vector kind {other}"),
        };
        let raw_path = dir.join(format!("{name}.{raw_ext}"));
        let raw_path = if raw_path.exists() {
            raw_path
        } else {
            dir.join(format!("{name}.gray"))
        };
        let raw = std::fs::read(&raw_path).unwrap();
        assert_eq!(raw.len(), (w * h) as usize * bpp, "{f}: raw size");
        let mut enc = Vec::new();
        lz::encode_image(t, w, h, w * bpp as u32, true, &raw, &mut enc).unwrap();
        if enc != golden {
            let at = enc.iter().zip(&golden).position(|(a, b)| a != b);
            failures.push(format!(
                "{f}: encoded {} bytes vs {} (first diff at {at:?})",
                enc.len(),
                golden.len()
            ));
        }
        // Decode the golden stream.
        let ok = if t == LzImageType::Xxxa {
            let mut out = vec![0u8; raw.len()];
            lz::decode_alpha(&golden, &mut out, 0).unwrap();
            out.chunks(4)
                .zip(raw.chunks(4))
                .all(|(a, b)| a[3] == b[3] && a[..3] == [0, 0, 0])
        } else {
            let (hdr, out) =
                lz::decode_to_vec(&golden, LzOutputFormat::Native, None, 1 << 26).unwrap();
            assert_eq!(
                (hdr.width, hdr.height, hdr.image_type, hdr.top_down),
                (w, h, t, true)
            );
            match t {
                LzImageType::Rgb32 => out
                    .chunks(4)
                    .zip(raw.chunks(4))
                    .all(|(a, b)| a[..3] == b[..3] && a[3] == 0),
                LzImageType::Rgb16 => out
                    .chunks(2)
                    .zip(raw.chunks(2))
                    .all(|(a, b)| a[0] == b[0] && a[1] & 0x7f == b[1] & 0x7f),
                _ => out == raw,
            }
        };
        if !ok {
            failures.push(format!("{f}: decoded image differs"));
        }
        // 32-bit display decode agrees with the native one.
        if matches!(
            t,
            LzImageType::Rgb24 | LzImageType::Rgb32 | LzImageType::Rgba
        ) {
            let mut out = vec![0u8; (w * h * 4) as usize];
            let opts = LzDecodeOptions {
                format: LzOutputFormat::Bgrx32,
                ..Default::default()
            };
            lz::decode(&golden, &mut out, &opts).unwrap();
            let src = if t == LzImageType::Rgb24 { 3 } else { 4 };
            assert!(
                out.chunks(4)
                    .zip(raw.chunks(src))
                    .all(|(a, b)| a[..3] == b[..3]),
                "{f}: bgrx32"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
