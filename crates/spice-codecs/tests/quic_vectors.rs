//! QUIC against the golden vectors of the reference encoder (/work/shared/vectors/quic-lz):
//! our encoder must reproduce every `*.quic` byte for byte, our decoder the raw image.

use std::path::{Path, PathBuf};

use spice_codecs::quic::{self, DecodeLimits, Image, ImageType, PixelFormat, RowOrder};

fn vector_dir() -> PathBuf {
    let dir = std::env::var_os("SPICE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/vectors"));
    dir.join("quic-lz")
}

struct Vector {
    name: String,
    image_type: ImageType,
    width: u32,
    height: u32,
    raw: Vec<u8>,
    stream: Vec<u8>,
}

fn type_of(tag: &str) -> ImageType {
    match tag {
        "gray" => ImageType::Gray,
        "rgb16" => ImageType::Rgb16,
        "rgb24" => ImageType::Rgb24,
        "rgb32" => ImageType::Rgb32,
        "rgba" => ImageType::Rgba,
        other => panic!("unknown vector type {other}"),
    }
}

fn raw_file(dir: &Path, base: &str, tag: &str) -> PathBuf {
    let ext = match tag {
        "rgb32" => "bgrx",
        other => other,
    };
    dir.join(format!("{base}.{ext}"))
}

fn vectors() -> Vec<Vector> {
    let dir = vector_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("vector dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".quic"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let mut parts = name.split('.');
            let base = parts.next().unwrap();
            let tag = parts.next().unwrap();
            let dims = std::fs::read_to_string(dir.join(format!("{base}.dims"))).unwrap();
            let mut it = dims.split_whitespace().map(|v| v.parse::<u32>().unwrap());
            let (width, height) = (it.next().unwrap(), it.next().unwrap());
            Vector {
                image_type: type_of(tag),
                width,
                height,
                raw: std::fs::read(raw_file(&dir, base, tag)).unwrap(),
                stream: std::fs::read(dir.join(&name)).unwrap(),
                name,
            }
        })
        .collect()
}

/// Whether two raw images agree, ignoring bit 15 of RGB16 pixels and X of RGB32.
fn same_pixels(ty: ImageType, a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && match ty {
            ImageType::Rgb16 => a
                .chunks_exact(2)
                .zip(b.chunks_exact(2))
                .all(|(x, y)| x[0] == y[0] && (x[1] & 0x7f) == (y[1] & 0x7f)),
            ImageType::Rgb32 => a
                .chunks_exact(4)
                .zip(b.chunks_exact(4))
                .all(|(x, y)| x[..3] == y[..3]),
            _ => a == b,
        }
}

#[test]
fn all_vector_files_present() {
    // 5 types x 7 images + deskC (rgb32 only) + 6 tiny images (rgb32 only).
    assert_eq!(vectors().len(), 42);
}

#[test]
fn encoder_matches_reference_bytes() {
    let mut failed = Vec::new();
    for v in vectors() {
        let bpp = v.image_type.natural_format().bytes_per_pixel();
        let image = Image {
            image_type: v.image_type,
            width: v.width,
            height: v.height,
            stride: v.width as usize * bpp,
            row_order: RowOrder::TopDown,
            data: &v.raw,
        };
        let out = quic::encode(&image).unwrap();
        if out != v.stream {
            let first = out.iter().zip(&v.stream).position(|(a, b)| a != b);
            failed.push(format!(
                "{}: {} bytes vs {} expected, first difference at {first:?}",
                v.name,
                out.len(),
                v.stream.len()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "encoder mismatches:\n{}",
        failed.join("\n")
    );
}

#[test]
fn encoder_bottom_up_matches_reference_bytes() {
    for v in vectors() {
        let bpp = v.image_type.natural_format().bytes_per_pixel();
        let row = v.width as usize * bpp;
        // Flip the rows and add 5 bytes of padding per row.
        let stride = row + 5;
        let mut flipped = vec![0xa5; stride * v.height as usize];
        for (y, src) in v.raw.chunks_exact(row).enumerate() {
            let dst = (v.height as usize - 1 - y) * stride;
            flipped[dst..dst + row].copy_from_slice(src);
        }
        let image = Image {
            image_type: v.image_type,
            width: v.width,
            height: v.height,
            stride,
            row_order: RowOrder::BottomUp,
            data: &flipped,
        };
        assert_eq!(quic::encode(&image).unwrap(), v.stream, "{}", v.name);
    }
}

#[test]
fn decoder_reproduces_reference_images() {
    let limits = DecodeLimits::default();
    let mut failed = Vec::new();
    for v in vectors() {
        let format = v.image_type.natural_format();
        let (header, out) = quic::decode_to_vec(&v.stream, format, &limits).unwrap();
        assert_eq!(
            (header.image_type, header.width, header.height),
            (v.image_type, v.width, v.height)
        );
        if !same_pixels(v.image_type, &out, &v.raw) {
            failed.push(v.name.clone());
        }
    }
    assert!(failed.is_empty(), "decoder mismatches: {failed:?}");
}

#[test]
fn decoder_rgb32_output_of_every_type() {
    let limits = DecodeLimits::default();
    let dir = vector_dir();
    for v in vectors() {
        let (_, out) = quic::decode_to_vec(&v.stream, PixelFormat::Rgb32, &limits).unwrap();
        let base = v.name.split('.').next().unwrap();
        let expected: Vec<u8> = match v.image_type {
            ImageType::Gray => v.raw.iter().flat_map(|&g| [g, g, g, 0]).collect(),
            ImageType::Rgb16 => v
                .raw
                .chunks_exact(2)
                .flat_map(|p| {
                    let px = u16::from_le_bytes([p[0], p[1]]);
                    let e = |c: u16| {
                        let c = (c & 31) as u8;
                        (c << 3) | (c >> 2)
                    };
                    [e(px), e(px >> 5), e(px >> 10), 0]
                })
                .collect(),
            ImageType::Rgb24 => v
                .raw
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 0])
                .collect(),
            ImageType::Rgb32 | ImageType::Rgba => {
                let bgrx = std::fs::read(dir.join(format!("{base}.bgrx"))).unwrap();
                bgrx.chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2], 0])
                    .collect()
            }
        };
        assert_eq!(out, expected, "{}", v.name);
    }
}

#[test]
fn decoder_bottom_up_with_padding() {
    let limits = DecodeLimits::default();
    for v in vectors() {
        let format = v.image_type.natural_format();
        let row = v.width as usize * format.bytes_per_pixel();
        let stride = row + 3;
        let h = v.height as usize;
        let mut out = vec![0x5a; stride * h];
        quic::decode(
            &v.stream,
            &mut out,
            stride,
            format,
            RowOrder::BottomUp,
            &limits,
        )
        .unwrap();
        for y in 0..h {
            let got = &out[(h - 1 - y) * stride..][..row];
            assert!(
                same_pixels(v.image_type, got, &v.raw[y * row..][..row]),
                "{} row {y}",
                v.name
            );
            assert_eq!(
                &out[(h - 1 - y) * stride + row..][..3],
                &[0x5a; 3],
                "padding touched"
            );
        }
    }
}
