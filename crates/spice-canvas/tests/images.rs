//! Every image type decoded through the canvas: golden vectors and streams made with the
//! spice-codecs encoders; cache and palette semantics; caps.

mod common;

use std::path::PathBuf;

use common::*;
use spice_canvas::{CanvasError, ImageContext, ImageLimits, Surfaces, new_glz_window};
use spice_codecs::{jpeg, jpeg_alpha, lz, lz4, zlib_glz};
use spice_proto::types::{
    Bitmap, BitmapFlags, BitmapFormat, Image, ImageBody, ImageFlags, JpegAlpha, JpegAlphaFlags,
    LzPlt, Palette, PaletteSource, SurfaceFormat, ZlibGlzRgb,
};

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

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors_dir().join(rel)).unwrap()
}

fn ctx() -> ImageContext {
    ImageContext::new(
        ImageLimits {
            max_image_pixels: 1 << 22,
            cache_pixels: 1 << 20,
        },
        new_glz_window(1 << 24),
    )
}

fn img(id: u64, flags: ImageFlags, w: u32, h: u32, body: ImageBody<'static>) -> Image<'static> {
    Image {
        id,
        flags,
        width: w,
        height: h,
        body,
    }
}

fn bgrx_to_rgb(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 0]))
        .collect()
}

fn rgb_of(px: &[u32]) -> Vec<u32> {
    px.iter().map(|p| p & 0xffffff).collect()
}

fn bitmap(
    format: BitmapFormat,
    flags: BitmapFlags,
    w: u32,
    h: u32,
    stride: u32,
    pal: PaletteSource,
    data: Vec<u8>,
) -> Image<'static> {
    img(
        1,
        ImageFlags::empty(),
        w,
        h,
        ImageBody::Bitmap(Bitmap {
            format,
            flags,
            x: w,
            y: h,
            stride,
            palette: pal,
            data: leak(data),
        }),
    )
}

fn pal(unique: u64, ents: &[u32]) -> PaletteSource {
    PaletteSource::Inline(Palette {
        unique,
        ents: ents.to_vec(),
    })
}

#[test]
fn bitmap_every_format() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let td = BitmapFlags::TOP_DOWN;
    let p4: Vec<u32> = (0..16).map(|i| i * 0x10).collect();
    let cases: Vec<(Image<'static>, Vec<u32>)> = vec![
        // 1 bit, LE (bit 0 first) and BE (bit 7 first), 10 wide, stride 3 (padding).
        (
            bitmap(
                BitmapFormat::BIT1_LE,
                td,
                10,
                1,
                3,
                pal(0, &[0x111111, 0x222222]),
                vec![0b0000_0101, 0b10, 0xff],
            ),
            vec![
                0x222222, 0x111111, 0x222222, 0x111111, 0x111111, 0x111111, 0x111111, 0x111111,
                0x111111, 0x222222,
            ],
        ),
        (
            bitmap(
                BitmapFormat::BIT1_BE,
                td,
                3,
                1,
                1,
                pal(0, &[0x111111, 0x222222]),
                vec![0b1010_0000],
            ),
            vec![0x222222, 0x111111, 0x222222],
        ),
        (
            bitmap(
                BitmapFormat::BIT4_LE,
                td,
                3,
                1,
                2,
                pal(0, &p4),
                vec![0x21, 0x03],
            ),
            vec![0x10, 0x20, 0x30],
        ),
        (
            bitmap(
                BitmapFormat::BIT4_BE,
                td,
                3,
                1,
                2,
                pal(0, &p4),
                vec![0x12, 0x30],
            ),
            vec![0x10, 0x20, 0x30],
        ),
        (
            bitmap(
                BitmapFormat::BIT8,
                td,
                2,
                1,
                2,
                pal(0, &[5, 6, 7]),
                vec![2, 0],
            ),
            vec![7, 5],
        ),
        (
            // x1r5g5b5: pure red 0x7c00, pure blue 0x001f.
            bitmap(
                BitmapFormat::BIT16,
                td,
                2,
                1,
                4,
                PaletteSource::None,
                vec![0x00, 0x7c, 0x1f, 0x00],
            ),
            vec![0xff0000, 0x0000ff],
        ),
        (
            bitmap(
                BitmapFormat::BIT24,
                td,
                1,
                1,
                4,
                PaletteSource::None,
                vec![1, 2, 3, 0],
            ),
            vec![0x030201],
        ),
        (
            bitmap(
                BitmapFormat::BIT32,
                td,
                1,
                1,
                4,
                PaletteSource::None,
                vec![1, 2, 3, 4],
            ),
            vec![0x030201],
        ),
        (
            // Bottom-up: the first row in memory is the bottom one.
            bitmap(
                BitmapFormat::BIT32,
                BitmapFlags::empty(),
                1,
                2,
                4,
                PaletteSource::None,
                vec![1, 0, 0, 0, 2, 0, 0, 0],
            ),
            vec![2, 1],
        ),
    ];
    for (i, (image, want)) in cases.into_iter().enumerate() {
        let d = c.decode(&image, &s).unwrap();
        assert_eq!(rgb_of(d.pixmap.pixels()), want, "case {i}");
        assert!(
            d.pixmap.pixels().iter().all(|p| p >> 24 == 0xff),
            "case {i} opaque"
        );
    }
    let rgba = bitmap(
        BitmapFormat::RGBA,
        td,
        1,
        1,
        4,
        PaletteSource::None,
        vec![1, 2, 3, 0x80],
    );
    let d = c.decode(&rgba, &s).unwrap();
    assert_eq!(d.pixmap.pixels(), &[0x8003_0201]);
    assert!(d.pixmap.has_alpha());
    let a8 = bitmap(
        BitmapFormat::BIT8_A,
        td,
        2,
        1,
        2,
        PaletteSource::None,
        vec![0x10, 0xff],
    );
    assert_eq!(
        c.decode(&a8, &s).unwrap().pixmap.pixels(),
        &[0x1000_0000, 0xff00_0000]
    );
}

#[test]
fn bitmap_errors() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let short = bitmap(
        BitmapFormat::BIT32,
        BitmapFlags::TOP_DOWN,
        2,
        1,
        4,
        PaletteSource::None,
        vec![0; 4],
    );
    assert!(matches!(
        c.decode(&short, &s),
        Err(CanvasError::BadBitmap { .. })
    ));
    let nopal = bitmap(
        BitmapFormat::BIT8,
        BitmapFlags::TOP_DOWN,
        1,
        1,
        1,
        PaletteSource::None,
        vec![0],
    );
    assert!(matches!(
        c.decode(&nopal, &s),
        Err(CanvasError::MissingPalette(None))
    ));
    let bad = bitmap(
        BitmapFormat::INVALID,
        BitmapFlags::TOP_DOWN,
        1,
        1,
        1,
        PaletteSource::None,
        vec![0],
    );
    assert!(matches!(
        c.decode(&bad, &s),
        Err(CanvasError::UnsupportedBitmapFormat(_))
    ));
    let huge = img(
        1,
        ImageFlags::empty(),
        1 << 14,
        1 << 14,
        ImageBody::Quic(&[]),
    );
    assert!(matches!(
        c.decode(&huge, &s),
        Err(CanvasError::Quic(_) | CanvasError::ImageTooLarge { .. })
    ));
}

#[test]
fn palette_cache_and_invalidation() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let first = bitmap(
        BitmapFormat::BIT8,
        BitmapFlags::TOP_DOWN | BitmapFlags::PAL_CACHE_ME,
        1,
        1,
        1,
        pal(77, &[0xabcdef]),
        vec![0],
    );
    c.decode(&first, &s).unwrap();
    let again = bitmap(
        BitmapFormat::BIT8,
        BitmapFlags::TOP_DOWN | BitmapFlags::PAL_FROM_CACHE,
        1,
        1,
        1,
        PaletteSource::FromCache(77),
        vec![0],
    );
    assert_eq!(
        rgb_of(c.decode(&again, &s).unwrap().pixmap.pixels()),
        vec![0xabcdef]
    );
    c.invalidate_palette(77);
    assert!(matches!(
        c.decode(&again, &s),
        Err(CanvasError::MissingPalette(Some(77)))
    ));
    c.palette_insert(77, &[1]);
    c.invalidate_all_palettes();
    assert!(c.palette(77).is_none());
}

#[test]
fn quic_vectors() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    for name in ["deskA", "photoB"] {
        let dims = String::from_utf8(read(&format!("quic-lz/{name}.dims"))).unwrap();
        let mut it = dims.split_whitespace().map(|v| v.parse::<u32>().unwrap());
        let (w, h) = (it.next().unwrap(), it.next().unwrap());
        let want = bgrx_to_rgb(&read(&format!("quic-lz/{name}.bgrx")));
        for ty in ["rgb32", "rgb24"] {
            let data = leak(read(&format!("quic-lz/{name}.{ty}.quic")));
            let d = c
                .decode(
                    &img(1, ImageFlags::empty(), w, h, ImageBody::Quic(data)),
                    &s,
                )
                .unwrap();
            assert_eq!(rgb_of(d.pixmap.pixels()), want, "{name} {ty}");
        }
        let data = leak(read(&format!("quic-lz/{name}.rgba.quic")));
        let d = c
            .decode(
                &img(1, ImageFlags::empty(), w, h, ImageBody::Quic(data)),
                &s,
            )
            .unwrap();
        let rgba: Vec<u32> = read(&format!("quic-lz/{name}.rgba"))
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(d.pixmap.pixels(), rgba.as_slice(), "{name} rgba");
        assert!(d.pixmap.has_alpha());
        // A descriptor that disagrees with the stream is refused.
        let e = c
            .decode(
                &img(1, ImageFlags::empty(), w + 1, h, ImageBody::Quic(data)),
                &s,
            )
            .unwrap_err();
        assert!(matches!(e, CanvasError::ImageSizeMismatch { .. }), "{e}");
    }
}

#[test]
fn lz_rgb_and_plt_vectors() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let (w, h) = (64, 48);
    let want = bgrx_to_rgb(&read("quic-lz/deskA.bgrx"));
    for ty in ["rgb32", "rgb24"] {
        let data = leak(read(&format!("quic-lz/deskA.{ty}.lz")));
        let d = c
            .decode(
                &img(1, ImageFlags::empty(), w, h, ImageBody::LzRgb(data)),
                &s,
            )
            .unwrap();
        assert_eq!(rgb_of(d.pixmap.pixels()), want, "{ty}");
    }
    // LZ_PLT: 8-bit indices through a palette.
    let (_, idx) = lz::decode_to_vec(
        &read("quic-lz/deskA.plt8.lz"),
        lz::LzOutputFormat::Native,
        None,
        1 << 20,
    )
    .unwrap();
    let ents: Vec<u32> = (0..256u32).map(|i| i * 0x010101).collect();
    let data = leak(read("quic-lz/deskA.plt8.lz"));
    let d = c
        .decode(
            &img(
                1,
                ImageFlags::empty(),
                w,
                h,
                ImageBody::LzPlt(LzPlt {
                    flags: BitmapFlags::empty(),
                    palette: pal(3, &ents),
                    data,
                }),
            ),
            &s,
        )
        .unwrap();
    let want: Vec<u32> = idx.iter().map(|&i| ents[i as usize]).collect();
    assert_eq!(rgb_of(d.pixmap.pixels()), want);
    // An LZ_RGB image carrying a palette stream is refused.
    let e = c
        .decode(
            &img(1, ImageFlags::empty(), w, h, ImageBody::LzRgb(data)),
            &s,
        )
        .unwrap_err();
    assert!(matches!(e, CanvasError::StreamKindMismatch { .. }));
}

#[test]
fn lz_bottom_up_is_flipped() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let rows: Vec<u8> = [1u32, 2].iter().flat_map(|p| p.to_le_bytes()).collect();
    let mut out = Vec::new();
    lz::encode_image(lz::LzImageType::Rgb32, 1, 2, 4, false, &rows, &mut out).unwrap();
    let d = c
        .decode(
            &img(1, ImageFlags::empty(), 1, 2, ImageBody::LzRgb(leak(out))),
            &s,
        )
        .unwrap();
    assert_eq!(rgb_of(d.pixmap.pixels()), vec![2, 1]);
}

#[test]
fn glz_sequence_and_missing_dependency() {
    let s = Surfaces::new(0);
    let (w, h) = (640, 480);
    // A fresh window cannot decode frame 1 before frame 0 when frame 1 refers to it.
    let mut fresh = ctx();
    let f1 = leak(read("glz/big_001.glz"));
    match fresh.decode(
        &img(1, ImageFlags::empty(), w, h, ImageBody::GlzRgb(f1)),
        &s,
    ) {
        Err(CanvasError::GlzMissingImage { id: 1, missing: 0 }) => {}
        other => panic!("expected a missing GLZ dependency, got {other:?}"),
    }
    // Shared window: two contexts (two display channels) decode alternate frames.
    let win = new_glz_window(1 << 24);
    let mut a = ImageContext::new(ImageLimits::default(), win.clone());
    let mut b = ImageContext::new(ImageLimits::default(), win);
    for i in 0..8 {
        let data = leak(read(&format!("glz/big_{i:03}.glz")));
        let image = img(1, ImageFlags::empty(), w, h, ImageBody::GlzRgb(data));
        let d = if i % 2 == 0 { &mut a } else { &mut b }
            .decode(&image, &s)
            .unwrap();
        assert_eq!(
            rgb_of(d.pixmap.pixels()),
            bgrx_to_rgb(&read(&format!("glz/f{i}.bgrx"))),
            "frame {i}"
        );
    }
}

#[test]
fn zlib_glz_decodes() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let glz = read("glz/big_000.glz");
    let z = zlib_glz::wrap(&glz).expect("frame 0 deflates");
    let image = img(
        1,
        ImageFlags::empty(),
        640,
        480,
        ImageBody::ZlibGlzRgb(ZlibGlzRgb {
            glz_data_size: glz.len() as u32,
            data: leak(z),
        }),
    );
    let d = c.decode(&image, &s).unwrap();
    assert_eq!(rgb_of(d.pixmap.pixels()), bgrx_to_rgb(&read("glz/f0.bgrx")));
}

fn gradient(w: u32, h: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[(x * 8) as u8, (y * 8) as u8, 128, (x * 16 + y) as u8]);
        }
    }
    v
}

#[test]
fn jpeg_and_lossy_cache() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let (w, h) = (16, 8);
    let px = gradient(w, h);
    let mut out = Vec::new();
    jpeg::encode(
        &jpeg::JpegSource {
            data: &px,
            width: w,
            height: h,
            stride: w as usize * 4,
            format: jpeg::JpegSourceFormat::Bgrx32,
            top_down: true,
        },
        95,
        &mut out,
    )
    .unwrap();
    let data = leak(out);
    let d = c
        .decode(
            &img(9, ImageFlags::CACHE_ME, w, h, ImageBody::Jpeg(data)),
            &s,
        )
        .unwrap();
    assert!(d.lossy);
    for (got, want) in d.pixmap.pixels().iter().zip(px.chunks_exact(4)) {
        for (sh, i) in [(0, 0), (8, 1), (16, 2)] {
            let g = ((got >> sh) & 0xff) as i32;
            assert!((g - i32::from(want[i])).abs() <= 12, "{g} vs {}", want[i]);
        }
    }
    // Lossy cache entry: FROM_CACHE works, FROM_CACHE_LOSSLESS does not.
    assert!(
        c.decode(&img(9, ImageFlags::empty(), w, h, ImageBody::FromCache), &s)
            .is_ok()
    );
    assert!(matches!(
        c.decode(
            &img(9, ImageFlags::empty(), w, h, ImageBody::FromCacheLossless),
            &s
        ),
        Err(CanvasError::CachedLossy(9))
    ));
    // CACHE_REPLACE_ME with a lossless image replaces it.
    let lossless = common::bitmap32(9, ImageFlags::CACHE_REPLACE_ME, 1, 1, &[5]);
    c.decode(&lossless, &s).unwrap();
    let d = c
        .decode(
            &img(9, ImageFlags::empty(), 1, 1, ImageBody::FromCacheLossless),
            &s,
        )
        .unwrap();
    assert_eq!(rgb_of(d.pixmap.pixels()), vec![5]);
}

#[test]
fn jpeg_alpha_decodes_alpha_plane() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let (w, h) = (16, 8);
    let px = gradient(w, h);
    for top_down in [true, false] {
        let mut body = Vec::new();
        let hdr = jpeg_alpha::encode(
            &jpeg::AlphaSource {
                data: &px,
                width: w,
                height: h,
                stride: w as usize * 4,
                top_down,
            },
            95,
            &mut body,
        )
        .unwrap();
        let parts = jpeg::split_jpeg_alpha(&body).unwrap();
        let data = leak(body[jpeg::JpegAlphaHeader::SIZE..].to_vec());
        let image = img(
            1,
            ImageFlags::empty(),
            w,
            h,
            ImageBody::JpegAlpha(JpegAlpha {
                flags: JpegAlphaFlags::from_bits_retain(hdr.flags()),
                jpeg_size: parts.header.jpeg_size,
                data,
            }),
        );
        let d = c.decode(&image, &s).unwrap();
        assert!(d.lossy && d.pixmap.has_alpha());
        // Memory order: top-down rows as given, else the first memory row is the bottom.
        for y in 0..h as usize {
            let my = if top_down { y } else { h as usize - 1 - y };
            for x in 0..w as usize {
                let want = px[(my * w as usize + x) * 4 + 3];
                assert_eq!(
                    d.pixmap.pixel(x as u32, y as u32).unwrap() >> 24,
                    u32::from(want)
                );
            }
        }
    }
}

#[test]
fn lz4_decodes() {
    let s = Surfaces::new(0);
    let mut c = ctx();
    let (w, h) = (5, 3);
    let px = gradient(w, h);
    for (format, top_down) in [(lz4::Lz4Format::Rgb32, true), (lz4::Lz4Format::Rgba, false)] {
        let mut out = Vec::new();
        lz4::encode(
            &px,
            w,
            h,
            w as usize * 4,
            lz4::Lz4Header { top_down, format },
            2,
            &mut out,
        )
        .unwrap();
        let d = c
            .decode(
                &img(1, ImageFlags::empty(), w, h, ImageBody::Lz4(leak(out))),
                &s,
            )
            .unwrap();
        for y in 0..h as usize {
            let my = if top_down { y } else { h as usize - 1 - y };
            for x in 0..w as usize {
                let b = &px[(my * w as usize + x) * 4..][..4];
                let mut want = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if format != lz4::Lz4Format::Rgba {
                    want |= 0xff00_0000;
                }
                assert_eq!(d.pixmap.pixel(x as u32, y as u32), Some(want));
            }
        }
    }
}

#[test]
fn surface_image_and_high_bits() {
    let mut s = Surfaces::new(1 << 20);
    s.create(3, 2, 1, SurfaceFormat::FMT_32_ARGB)
        .unwrap()
        .pixels_mut()
        .copy_from_slice(&[0x1122_3344, 0]);
    let mut c = ctx();
    let d = c
        .decode(
            &img(1, ImageFlags::empty(), 2, 1, ImageBody::Surface(3)),
            &s,
        )
        .unwrap();
    assert_eq!(d.pixmap.pixels(), &[0x1122_3344, 0]);
    let d = c
        .decode(
            &img(1, ImageFlags::HIGH_BITS_SET, 2, 1, ImageBody::Surface(3)),
            &s,
        )
        .unwrap();
    assert_eq!(d.pixmap.pixels(), &[0xff22_3344, 0xff00_0000]);
    assert!(matches!(
        c.decode(
            &img(1, ImageFlags::empty(), 2, 1, ImageBody::Surface(4)),
            &s
        ),
        Err(CanvasError::UnknownSurface(4))
    ));
}

#[test]
fn cache_limits_and_invalidate_all() {
    let s = Surfaces::new(0);
    let mut c = ImageContext::new(
        ImageLimits {
            max_image_pixels: 100,
            cache_pixels: 3,
        },
        new_glz_window(1 << 16),
    );
    c.decode(
        &common::bitmap32(1, ImageFlags::CACHE_ME, 2, 1, &[1, 2]),
        &s,
    )
    .unwrap();
    assert_eq!(c.cache_pixels(), 2);
    // Over the size: not cached (the server should have evicted first).
    c.decode(
        &common::bitmap32(2, ImageFlags::CACHE_ME, 2, 1, &[1, 2]),
        &s,
    )
    .unwrap();
    assert!(c.cached(2).is_none());
    // Re-caching an id replaces its entry.
    c.decode(
        &common::bitmap32(1, ImageFlags::CACHE_ME, 3, 1, &[1, 2, 3]),
        &s,
    )
    .unwrap();
    assert_eq!(c.cache_pixels(), 3);
    c.invalidate_all_pixmaps();
    assert_eq!((c.cache_len(), c.cache_pixels()), (0, 0));
    assert!(matches!(
        c.decode(
            &common::bitmap32(1, ImageFlags::empty(), 11, 10, &[0; 110]),
            &s
        ),
        Err(CanvasError::ImageTooLarge { .. })
    ));
}

fn copy_whole(img: Image<'static>, x: i32, y: i32) -> spice_proto::display::ServerMessage<'static> {
    let (w, h) = (img.width as i32, img.height as i32);
    spice_proto::display::ServerMessage::DrawCopy(spice_proto::display::DrawCopy {
        base: base(0, rect(x, y, x + w, y + h)),
        src_bitmap: Some(img),
        src_area: rect(0, 0, w, h),
        rop_descriptor: spice_proto::types::Ropd::OP_PUT,
        scale_mode: spice_proto::types::ImageScaleMode::NEAREST,
        mask: spice_proto::types::QMask::default(),
    })
}

fn region(c: &spice_canvas::Canvas, x: u32, y: u32, w: u32, h: u32) -> Vec<u32> {
    let s = c.surfaces.get(0).unwrap();
    (y..y + h)
        .flat_map(|yy| (x..x + w).map(move |xx| (yy, xx)))
        .map(|(yy, xx)| s.pixel(xx, yy).unwrap() & 0xffffff)
        .collect()
}

/// Whole-image QUIC and GLZ copies are decoded straight into the surface; the result
/// equals the vectors, and equals the pixmap path (taken when CACHE_ME is set).
#[test]
fn in_place_copy_matches_pixmap_path() {
    let quic = leak(read("quic-lz/deskA.rgb32.quic"));
    let want = bgrx_to_rgb(&read("quic-lz/deskA.bgrx"));
    for flags in [ImageFlags::empty(), ImageFlags::CACHE_ME] {
        let mut c = canvas(100, 60, 0x555555);
        c.apply(&copy_whole(
            img(3, flags, 64, 48, ImageBody::Quic(quic)),
            10,
            5,
        ))
        .unwrap();
        assert_eq!(region(&c, 10, 5, 64, 48), want, "{flags:?}");
        assert_eq!(region(&c, 0, 0, 10, 1), vec![0x555555; 10]);
        assert_eq!(c.images.cached(3).is_some(), flags == ImageFlags::CACHE_ME);
    }
    let mut c = canvas(700, 500, 0);
    // Missing GLZ dependency: an error, and the surface is untouched.
    let f1 = leak(read("glz/big_001.glz"));
    assert!(matches!(
        c.apply(&copy_whole(
            img(0, ImageFlags::empty(), 640, 480, ImageBody::GlzRgb(f1)),
            30,
            20
        )),
        Err(CanvasError::GlzMissingImage { .. })
    ));
    assert!(region(&c, 30, 20, 640, 480).iter().all(|&p| p == 0));
    for i in 0..3 {
        let data = leak(read(&format!("glz/big_{i:03}.glz")));
        c.apply(&copy_whole(
            img(0, ImageFlags::empty(), 640, 480, ImageBody::GlzRgb(data)),
            30,
            20,
        ))
        .unwrap();
        assert_eq!(
            region(&c, 30, 20, 640, 480),
            bgrx_to_rgb(&read(&format!("glz/f{i}.bgrx"))),
            "frame {i}"
        );
    }
}
