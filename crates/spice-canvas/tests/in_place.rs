//! The in-place DRAW_COPY path (QUIC / GLZ decoded straight into the surface) against
//! the general path (decoded to a pixmap, then sampled), and both against the image's
//! own pixels: random sizes, positions (partly or wholly outside the surface), clips,
//! row orders and alpha.

mod common;

use common::*;
use proptest::prelude::*;
use spice_codecs::glz::{GlzDictionary, GlzInput};
use spice_codecs::lz::LzImageType;
use spice_codecs::quic;
use spice_proto::display::{DrawCopy, ServerMessage};
use spice_proto::types::{
    Clip, ClipRects, DisplayBase, Image, ImageBody, ImageFlags, ImageScaleMode, QMask, Ropd,
};

const SW: u32 = 64;
const SH: u32 = 48;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// `w * h` pixels (B,G,R,A bytes, top row first) with runs and noise, so the encoders
/// produce literals, matches and long runs.
fn pixels(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let v = if (x / 5 + y / 3) % 3 == 0 {
                xorshift(&mut s) as u32
            } else {
                0x4080_c0ff ^ ((y as u32) << 8)
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn draw_copy(
    img: Image<'static>,
    x: i32,
    y: i32,
    clip: Option<Vec<spice_proto::types::Rect>>,
) -> ServerMessage<'static> {
    let (w, h) = (img.width as i32, img.height as i32);
    ServerMessage::DrawCopy(DrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: rect(x, y, x + w, y + h),
            clip: match clip {
                Some(rects) => Clip::Rects(ClipRects { rects }),
                None => Clip::None,
            },
        },
        src_bitmap: Some(img),
        src_area: rect(0, 0, w, h),
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask::default(),
    })
}

/// The encoded image and its expected `0xAARRGGBB` pixels, top row first.
fn encoded(
    glz: bool,
    alpha: bool,
    top_down: bool,
    w: u32,
    h: u32,
    seed: u64,
) -> (ImageBody<'static>, Vec<u32>) {
    let raw = pixels(w as usize, h as usize, seed);
    let want: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) | if alpha { 0 } else { 0xff00_0000 })
        .collect();
    let stride = w as usize * 4;
    // The stream carries the rows in its own order; the decoders put them top-down.
    let stream_rows: Vec<u8> = if top_down {
        raw.clone()
    } else {
        raw.chunks_exact(stride).rev().flatten().copied().collect()
    };
    let body = if glz {
        let mut dict = GlzDictionary::new(1 << 16).unwrap();
        let mut out = Vec::new();
        dict.encode(
            0,
            &GlzInput {
                image_type: if alpha {
                    LzImageType::Rgba
                } else {
                    LzImageType::Rgb32
                },
                width: w,
                height: h,
                stride,
                top_down,
                data: &stream_rows,
            },
            &mut out,
        )
        .unwrap();
        ImageBody::GlzRgb(leak(out))
    } else {
        let out = quic::encode(&quic::Image {
            image_type: if alpha {
                quic::ImageType::Rgba
            } else {
                quic::ImageType::Rgb32
            },
            width: w,
            height: h,
            stride,
            row_order: if top_down {
                quic::RowOrder::TopDown
            } else {
                quic::RowOrder::BottomUp
            },
            data: &stream_rows,
        })
        .unwrap();
        ImageBody::Quic(leak(out))
    };
    (body, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn in_place_copy_equals_general_path(
        glz in any::<bool>(),
        alpha in any::<bool>(),
        top_down in any::<bool>(),
        w in 1u32..40,
        h in 1u32..30,
        x in -12i32..60,
        y in -12i32..44,
        clip in proptest::option::of((-5i32..70, -5i32..50, 0i32..40, 0i32..30)),
        seed in any::<u64>(),
    ) {
        let (body, want) = encoded(glz, alpha, top_down, w, h, seed);
        let clip = clip.map(|(cx, cy, cw, ch)| vec![rect(cx, cy, cx + cw, cy + ch)]);
        let fill = 0x0012_3456;
        // No cache flag: the in-place path when the copy is whole, unclipped and inside.
        let mut a = canvas(SW, SH, fill);
        let ra = a.apply(&draw_copy(img_of(1, ImageFlags::empty(), w, h, body.clone()), x, y, clip.clone()));
        // CACHE_ME: always the general path (pixmap, cached, then sampled).
        let mut b = canvas(SW, SH, fill);
        let rb = b.apply(&draw_copy(img_of(1, ImageFlags::CACHE_ME, w, h, body), x, y, clip.clone()));
        prop_assert_eq!(ra.unwrap(), rb.unwrap());
        let (pa, pb) = (a.surfaces.get(0).unwrap().pixels(), b.surfaces.get(0).unwrap().pixels());
        prop_assert!(pa == pb, "in-place and general paths differ");
        // Both hold the image inside box ∩ clip ∩ surface and the fill elsewhere.
        for sy in 0..SH as i32 {
            for sx in 0..SW as i32 {
                let (ix, iy) = (sx - x, sy - y);
                let in_img = ix >= 0 && iy >= 0 && ix < w as i32 && iy < h as i32;
                let in_clip = clip.as_ref().is_none_or(|c| {
                    c.iter().any(|r| sx >= r.left && sx < r.right && sy >= r.top && sy < r.bottom)
                });
                let expect = if in_img && in_clip {
                    want[(iy * w as i32 + ix) as usize]
                } else {
                    fill
                };
                prop_assert_eq!(pa[(sy * SW as i32 + sx) as usize], expect, "pixel ({}, {})", sx, sy);
            }
        }
    }
}

fn img_of(id: u64, flags: ImageFlags, w: u32, h: u32, body: ImageBody<'static>) -> Image<'static> {
    Image {
        id,
        flags,
        width: w,
        height: h,
        body,
    }
}

/// Large GLZ images, decoded into the surface while decoding (runs of a few thousand
/// pixels that end mid-row): two frames of one dictionary (the second refers to the
/// first), both row orders, against the general path and the source pixels.
#[test]
fn streamed_glz_frames_equal_general_path() {
    let (sw, sh) = (420u32, 120u32);
    for top_down in [true, false] {
        for (w, h) in [(333u32, 100u32), (397, 41)] {
            let stride = w as usize * 4;
            let f0 = pixels(w as usize, h as usize, 7);
            let mut f1 = f0.clone();
            // Frame 1: frame 0 with a band changed (the rest refers to frame 0).
            for b in &mut f1[stride * 10..stride * 20] {
                *b = b.wrapping_add(91);
            }
            let mut dict = GlzDictionary::new(1 << 20).unwrap();
            let mut a = canvas(sw, sh, 0x0055_5555);
            let mut b = canvas(sw, sh, 0x0055_5555);
            for raw in [&f0, &f1] {
                let rows: Vec<u8> = if top_down {
                    raw.to_vec()
                } else {
                    raw.chunks_exact(stride).rev().flatten().copied().collect()
                };
                let mut out = Vec::new();
                dict.encode(
                    0,
                    &GlzInput {
                        image_type: LzImageType::Rgb32,
                        width: w,
                        height: h,
                        stride,
                        top_down,
                        data: &rows,
                    },
                    &mut out,
                )
                .unwrap();
                let data = leak(out);
                let (x, y) = (5, 9);
                a.apply(&draw_copy(
                    img_of(0, ImageFlags::empty(), w, h, ImageBody::GlzRgb(data)),
                    x,
                    y,
                    None,
                ))
                .unwrap();
                // The second canvas decodes the same stream into its own window through
                // the pixmap path.
                b.apply(&draw_copy(
                    img_of(9, ImageFlags::CACHE_ME, w, h, ImageBody::GlzRgb(data)),
                    x,
                    y,
                    None,
                ))
                .unwrap();
                let (pa, pb) = (
                    a.surfaces.get(0).unwrap().pixels(),
                    b.surfaces.get(0).unwrap().pixels(),
                );
                assert!(pa == pb, "paths differ ({w}x{h}, top_down {top_down})");
                for iy in 0..h as usize {
                    for ix in 0..w as usize {
                        let c = &raw[(iy * w as usize + ix) * 4..][..4];
                        let want = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) | 0xff00_0000;
                        let got = pa[(iy + y as usize) * sw as usize + ix + x as usize];
                        assert_eq!(got, want, "({ix}, {iy}) of {w}x{h}, top_down {top_down}");
                    }
                }
            }
        }
    }
}
