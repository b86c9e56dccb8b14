//! ZLIB_GLZ_RGB: wrap/unwrap round trips, the inflated-size check and the cap.

use spice_codecs::glz::{GlzDictionary, GlzInput, GlzWindow};
use spice_codecs::lz::LzImageType;
use spice_codecs::zlib_glz::{self, ZlibGlzError};

fn glz_stream() -> Vec<u8> {
    let mut dict = GlzDictionary::new(1 << 20).unwrap();
    // Pixels from a 4-colour palette in random order: GLZ keeps them mostly
    // literal, zlib shrinks them.
    let mut s = 12345u32;
    let img: Vec<u8> = (0..64 * 64)
        .flat_map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let c = (s >> 16) as u8 & 3;
            [c * 60, 255 - c * 60, c * 20, 0]
        })
        .collect();
    let input = GlzInput {
        image_type: LzImageType::Rgb32,
        width: 64,
        height: 64,
        stride: 256,
        top_down: true,
        data: &img,
    };
    let mut out = Vec::new();
    dict.encode(0, &input, &mut out).unwrap();
    out
}

#[test]
fn wrap_unwrap_decode() {
    let glz = glz_stream();
    let z = zlib_glz::wrap(&glz).expect("compressible");
    assert!(z.len() < glz.len());
    assert_eq!(zlib_glz::unwrap(&z, glz.len(), 1 << 20).unwrap(), glz);
    let mut win = GlzWindow::new(1 << 20);
    let hdr = zlib_glz::decode(&mut win, &z, glz.len(), 1 << 20).unwrap();
    assert_eq!((hdr.width, hdr.height, hdr.id), (64, 64, 0));
}

#[test]
fn small_streams_are_not_wrapped() {
    assert!(zlib_glz::wrap(&[1, 2, 3]).is_none());
}

#[test]
fn size_mismatch_and_cap_are_errors() {
    let glz = glz_stream();
    let z = zlib_glz::wrap(&glz).unwrap();
    assert!(matches!(
        zlib_glz::unwrap(&z, glz.len() + 1, 1 << 20),
        Err(ZlibGlzError::Short { .. })
    ));
    assert!(matches!(
        zlib_glz::unwrap(&z, glz.len() - 1, 1 << 20),
        Err(ZlibGlzError::Overlong { .. })
    ));
    assert!(matches!(
        zlib_glz::unwrap(&z, glz.len(), glz.len() - 1),
        Err(ZlibGlzError::TooLarge { .. })
    ));
    assert!(matches!(
        zlib_glz::unwrap(&z[..z.len() / 2], glz.len(), 1 << 20),
        Err(ZlibGlzError::Short { .. })
    ));
    let mut trailing = z.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert!(matches!(
        zlib_glz::unwrap(&trailing, glz.len(), 1 << 20),
        Err(ZlibGlzError::TrailingBytes(2))
    ));
    let mut bad = z.clone();
    bad[0] ^= 0xff;
    assert!(zlib_glz::unwrap(&bad, glz.len(), 1 << 20).is_err());
    // A huge declared size is refused before allocating.
    assert!(matches!(
        zlib_glz::unwrap(&z, usize::MAX / 2, 1 << 24),
        Err(ZlibGlzError::TooLarge { .. })
    ));
}
