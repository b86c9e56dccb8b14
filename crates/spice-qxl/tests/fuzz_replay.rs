//! Replays fuzz/corpus/qxl_commands through the fuzz entry point, and (ignored) regenerates the
//! seed corpus from the guest driver.

use std::path::PathBuf;

use spice_qxl::abi::{self, draw_type};
use spice_qxl::fuzz::{FUZZ_RAM_SIZE, FUZZ_SLOT, fuzz_bars, fuzz_commands};
use spice_qxl::guest::{GuestBitmap, GuestGlyph, drawable};
use spice_qxl::memory::{GuestMemory, write_u32};
use spice_qxl::parse::Rect;
use spice_qxl::{DeviceConfig, GuestDriver, QxlDevice, VecMemory};
use zerocopy::{FromZeros, IntoBytes};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/qxl_commands")
}

#[test]
fn replay_corpus() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let s = fuzz_commands(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("valid-") {
            assert!(s.commands > 0, "{name}: no command");
            assert_eq!(s.parsed, s.commands, "{name}: {s:?}");
            assert_eq!(s.converted, s.parsed, "{name}: {s:?}");
            assert!(!s.guest_bug, "{name}");
        }
        if name.starts_with("bad-ring") {
            assert!(s.guest_bug, "{name}");
        }
        if name.starts_with("bad-chunk") {
            assert!(s.parsed < s.commands, "{name}: {s:?}");
        }
        n += 1;
    }
    assert!(n >= 5, "only {n} corpus files");
    // Degenerate inputs.
    fuzz_commands(&[]);
    fuzz_commands(&[0xff; 100]);
    fuzz_commands(&vec![0xff; 20000]);
}

fn snapshot(dev: &QxlDevice<VecMemory>) -> Vec<u8> {
    let b = fuzz_bars();
    let mut v = dev.memory().as_bytes()[b.ram_offset as usize..][..FUZZ_RAM_SIZE as usize].to_vec();
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn fresh() -> (QxlDevice<VecMemory>, GuestDriver) {
    let b = fuzz_bars();
    let mut dev = QxlDevice::new(
        VecMemory::new(b.total_size() as usize),
        DeviceConfig::new(b),
    )
    .unwrap();
    let g = GuestDriver::attach(&mut dev, FUZZ_SLOT).unwrap();
    (dev, g)
}

#[test]
#[ignore = "regenerates fuzz/corpus/qxl_commands"]
fn generate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 4,
        right: 4,
    };

    let (mut dev, mut g) = fresh();
    let m = dev.memory_mut();
    g.fill(
        m,
        0,
        r,
        0xff0000,
        Some(&[Rect {
            top: 0,
            left: 0,
            bottom: 2,
            right: 2,
        }]),
    )
    .unwrap();
    g.update(m, 0, r, 7).unwrap();
    g.message(m, "seed").unwrap();
    g.cursor_set(m, 1, 1, 0, 2, 2, &[0x55; 16]).unwrap();
    g.cursor_move(m, 5, 5).unwrap();
    std::fs::write(dir.join("valid-mixed"), snapshot(&dev)).unwrap();

    let (mut dev, mut g) = fresh();
    let px: Vec<u8> = (0..64).collect();
    let id = g
        .copy_bitmap(dev.memory_mut(), 0, r, 4, 4, &px, 20)
        .unwrap();
    std::fs::write(dir.join("valid-copy-chunks"), snapshot(&dev)).unwrap();
    // Make the last chunk point back at the first: a loop.
    let first = {
        let b = fuzz_bars();
        let mem = dev.memory().as_bytes();
        // The copy's image pointer, then the bitmap's data pointer.
        let off = |a: u64| (a & 0xffff_ffff_ffff) as usize + b.ram_offset as usize;
        let d = off(id);
        let img = u64::from_le_bytes(mem[d + 123..d + 131].try_into().unwrap());
        let bmp = off(img) + 18;
        u64::from_le_bytes(mem[bmp + 22..bmp + 30].try_into().unwrap())
    };
    let b = fuzz_bars();
    let mut chunk = (first & 0xffff_ffff_ffff) + b.ram_offset;
    loop {
        let next = u64::from_le_bytes(
            dev.memory().as_bytes()[chunk as usize + 12..][..8]
                .try_into()
                .unwrap(),
        );
        if next == 0 {
            dev.memory_mut()
                .write(chunk + 12, &first.to_le_bytes())
                .unwrap();
            break;
        }
        chunk = (next & 0xffff_ffff_ffff) + b.ram_offset;
    }
    std::fs::write(dir.join("bad-chunk-loop"), snapshot(&dev)).unwrap();

    let (mut dev, mut g) = fresh();
    let m = dev.memory_mut();
    g.surface_create(m, 1, 4, 4).unwrap();
    g.fill(m, 1, r, 0x00ff00, None).unwrap();
    g.surface_destroy(m, 1).unwrap();
    std::fs::write(dir.join("valid-surfaces"), snapshot(&dev)).unwrap();

    // Every draw type, a few per file (the fuzzed guest area is 4 KiB).
    for (i, types) in [
        [1u8, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10, 11, 12],
        [13, 14, 0, 0],
    ]
    .iter()
    .enumerate()
    {
        let (mut dev, mut g) = fresh();
        for &ty in types.iter().filter(|&&t| t != 0) {
            push_draw_type(&mut g, dev.memory_mut(), ty);
        }
        std::fs::write(dir.join(format!("valid-draw-types-{i}")), snapshot(&dev)).unwrap();
    }

    let (mut dev, mut g) = fresh();
    g.message(dev.memory_mut(), "ring").unwrap();
    let ring = dev.cmd_ring();
    write_u32(dev.memory_mut(), ring.offset + 4, 0x1000).unwrap();
    std::fs::write(dir.join("bad-ring-far-apart"), snapshot(&dev)).unwrap();
}

/// Push a small drawable of type `ty` whose images are 1x1 bitmaps.
fn push_draw_type(g: &mut GuestDriver, mem: &mut VecMemory, ty: u8) {
    let px = [1u8, 2, 3, 4];
    let mut b = g.builder();
    let img = b
        .bitmap_image(mem, &GuestBitmap::xrgb32(u64::from(ty), 1, 1, &px))
        .unwrap();
    let mut pattern = abi::QxlBrush::new_zeroed();
    pattern.ty = abi::brush_type::PATTERN.into();
    pattern.u[..8].copy_from_slice(&img.to_le_bytes());
    let mut solid = abi::QxlBrush::new_zeroed();
    solid.ty = abi::brush_type::SOLID.into();
    let mut mask = abi::QxlQMask::new_zeroed();
    mask.bitmap = img.into();
    let area = abi::QxlRect::new(0, 0, 1, 1);
    let u: Vec<u8> = match ty {
        draw_type::FILL => {
            let mut f = abi::QxlFill::new_zeroed();
            f.brush = pattern;
            f.mask = mask;
            f.as_bytes().to_vec()
        }
        draw_type::OPAQUE => {
            let mut o = abi::QxlOpaque::new_zeroed();
            o.src_bitmap = img.into();
            o.src_area = area;
            o.brush = solid;
            o.as_bytes().to_vec()
        }
        draw_type::COPY | draw_type::BLEND => {
            let mut c = abi::QxlCopy::new_zeroed();
            c.src_bitmap = img.into();
            c.src_area = area;
            c.mask = mask;
            c.as_bytes().to_vec()
        }
        draw_type::COPY_BITS => abi::QxlCopyBits::new_zeroed().as_bytes().to_vec(),
        draw_type::BLACKNESS | draw_type::WHITENESS | draw_type::INVERS => {
            let mut m = abi::QxlBlackness::new_zeroed();
            m.mask = mask;
            m.as_bytes().to_vec()
        }
        draw_type::ROP3 => {
            let mut o = abi::QxlRop3::new_zeroed();
            o.src_bitmap = img.into();
            o.src_area = area;
            o.brush = pattern;
            o.as_bytes().to_vec()
        }
        draw_type::STROKE => {
            let pts: &[(i32, i32)] = &[(0, 0), (16, 16)];
            let path = b.path(mem, &[(3, pts)], 64).unwrap();
            let mut s = abi::QxlStroke::new_zeroed();
            s.path = path.into();
            s.brush = solid;
            s.as_bytes().to_vec()
        }
        draw_type::TEXT => {
            let glyph = GuestGlyph {
                render_pos: (0, 1),
                glyph_origin: (0, -1),
                width: 3,
                height: 1,
                data: &[0xa0],
            };
            let st = b
                .string(mem, abi::string_flags::RASTER_A1, &[glyph, glyph], 64)
                .unwrap();
            let mut t = abi::QxlText::new_zeroed();
            t.str = st.into();
            t.fore_brush = solid;
            t.as_bytes().to_vec()
        }
        draw_type::TRANSPARENT => {
            let mut t = abi::QxlTransparent::new_zeroed();
            t.src_bitmap = img.into();
            t.src_area = area;
            t.as_bytes().to_vec()
        }
        draw_type::ALPHA_BLEND => {
            let mut a = abi::QxlAlphaBlend::new_zeroed();
            a.alpha = 0x80;
            a.src_bitmap = img.into();
            a.src_area = area;
            a.as_bytes().to_vec()
        }
        draw_type::COMPOSITE => {
            let mut c = abi::QxlComposite::new_zeroed();
            c.flags = 3.into();
            c.src = img.into();
            c.mask = img.into();
            c.as_bytes().to_vec()
        }
        _ => unreachable!(),
    };
    let none = abi::QxlClip {
        ty: abi::clip_type::NONE.into(),
        data: 0.into(),
    };
    let bbox = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    b.submit_draw(mem, &drawable(0, ty, bbox, none, &u))
        .unwrap();
}
