//! Property tests: random draw messages on small surfaces never panic, and every changed
//! rectangle lies inside the surface.

mod common;

use common::*;
use proptest::prelude::*;
use spice_canvas::{Applied, fuzz_draw};
use spice_proto::ChannelMessage as _;
use spice_proto::WriteBuf;
use spice_proto::display::{DrawCopy, DrawFill, ServerMessage};
use spice_proto::types::{
    Brush, ImageFlags, ImageScaleMode, MaskFlags, Pattern, Point, QMask, Rect, Ropd,
};

fn small_rect() -> impl Strategy<Value = Rect> {
    (-8i32..72, -8i32..56, -8i32..72, -8i32..56).prop_map(|(l, t, r, b)| rect(l, t, r, b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any display message spice-proto can encode, retargeted to surfaces 0-2 and to a box
    /// near the 64x48 fuzz surface, goes through `fuzz_draw` without panicking.
    #[test]
    fn any_message_through_fuzz_draw(
        msg in spice_proto::display::strategies::server_message(),
        sid in 0u32..3,
        bbox in small_rect(),
    ) {
        let mut body = Vec::new();
        if msg.encode_body(&mut WriteBuf::new(&mut body)).is_ok() {
            let mut data = msg.msg_type().to_le_bytes().to_vec();
            let is_draw = matches!(msg.msg_type(), 104 | 302..=313 | 318);
            if is_draw && body.len() >= 20 {
                body[0..4].copy_from_slice(&sid.to_le_bytes());
                for (i, v) in [bbox.top, bbox.left, bbox.bottom, bbox.right].iter().enumerate() {
                    body[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_le_bytes());
                }
            }
            data.extend_from_slice(&body);
            fuzz_draw(&data);
        }
    }

    /// Valid copies with any geometry, ROP, scale mode and mask stay inside the surface.
    #[test]
    fn copies_and_fills_stay_inside(
        (w, h) in (1u32..6, 1u32..6),
        bbox in small_rect(),
        src in (-3i32..8, -3i32..8, -3i32..8, -3i32..8),
        rop in any::<u16>(),
        scale in 0u8..3,
        masked in any::<bool>(),
        mpos in (-4i32..4, -4i32..4),
        pat in any::<bool>(),
    ) {
        let mut c = canvas(64, 48, 0x123456);
        let px: Vec<u32> = (0..w * h).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let img = bitmap32(5, ImageFlags::CACHE_ME, w, h, &px);
        let mask = if masked {
            QMask {
                flags: MaskFlags::INVERS,
                pos: Point { x: mpos.0, y: mpos.1 },
                bitmap: Some(mask_bitmap(&["#.#", ".#.", "##."])),
            }
        } else {
            QMask::default()
        };
        let copy = ServerMessage::DrawCopy(DrawCopy {
            base: base(0, bbox),
            src_bitmap: Some(img.clone()),
            src_area: rect(src.0, src.1, src.2, src.3),
            rop_descriptor: Ropd::from_bits_retain(rop),
            scale_mode: ImageScaleMode(scale),
            mask: mask.clone(),
        });
        let brush = if pat {
            Brush::Pattern(Pattern { pat: img, pos: Point { x: mpos.0, y: mpos.1 } })
        } else {
            Brush::Solid(0xabcdef)
        };
        let fill = ServerMessage::DrawFill(DrawFill {
            base: base(0, bbox),
            brush,
            rop_descriptor: Ropd::from_bits_retain(rop),
            mask,
        });
        for m in [copy, fill] {
            match c.apply(&m) {
                Ok(Applied::Drawn { rect: Some(r), .. }) => {
                    prop_assert!(r.left >= 0 && r.top >= 0 && r.right <= 64 && r.bottom <= 48);
                    prop_assert!(r.left < r.right && r.top < r.bottom);
                }
                Ok(_) => {}
                Err(e) => prop_assert!(false, "valid draw refused: {e}"),
            }
        }
    }
}
