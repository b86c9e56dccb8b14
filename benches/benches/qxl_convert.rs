//! Converting a parsed QXL drawable into a spice-proto message and encoding it: a full-HD
//! bitmap copy (the raw-bitmap path of a full-screen update) and a text drawable.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_qxl::abi::{self, draw_type};
use spice_qxl::convert::{ConvertedDrawable, encode_display};
use spice_qxl::guest::{GuestBitmap, GuestGlyph, drawable};
use spice_qxl::parse::{ParsedCommand, Rect};
use spice_qxl::{BarLayout, DeviceConfig, GuestDriver, QxlDevice, QxlInterface, VecMemory};
use zerocopy::{FromZeros, IntoBytes};

fn setup() -> (QxlDevice<VecMemory>, GuestDriver) {
    let bars = BarLayout::contiguous(24 << 20, 64 * 1024);
    let mut dev = QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .unwrap();
    let g = GuestDriver::attach(&mut dev, 1).unwrap();
    (dev, g)
}

fn none() -> abi::QxlClip {
    abi::QxlClip {
        ty: abi::clip_type::NONE.into(),
        data: 0.into(),
    }
}

fn convert_copy_full_hd(c: &mut Criterion) {
    let (mut dev, mut g) = setup();
    let (w, h) = (1920u32, 1080u32);
    let px: Vec<u8> = (0..w * h * 4).map(|i| (i * 7) as u8).collect();
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let img = b
        .bitmap_image(
            mem,
            &GuestBitmap {
                chunk_size: 64 << 10,
                ..GuestBitmap::xrgb32(1, w, h, &px)
            },
        )
        .unwrap();
    let mut cp = abi::QxlCopy::new_zeroed();
    cp.src_bitmap = img.into();
    cp.src_area = abi::QxlRect::new(0, 0, h as i32, w as i32);
    cp.rop_descriptor = 8.into();
    let bbox = Rect {
        top: 0,
        left: 0,
        bottom: h as i32,
        right: w as i32,
    };
    b.submit_draw(
        mem,
        &drawable(0, draw_type::COPY, bbox, none(), cp.as_bytes()),
    )
    .unwrap();
    let ext = dev.get_command().unwrap();
    let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
        panic!()
    };
    let mut group = c.benchmark_group("qxl_convert");
    group.throughput(Throughput::Bytes(px.len() as u64));
    group.sample_size(20);
    group.bench_function("copy_1920x1080_convert_encode_raw", |bn| {
        bn.iter(|| {
            let conv = ConvertedDrawable::new((*d).clone()).unwrap();
            encode_display(&conv.raw_message().unwrap()).unwrap().len()
        })
    });
    group.bench_function("copy_1920x1080_parse_convert_encode_raw", |bn| {
        bn.iter(|| {
            let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
                panic!()
            };
            let conv = ConvertedDrawable::new(*d).unwrap();
            encode_display(&conv.raw_message().unwrap()).unwrap().len()
        })
    });
    group.finish();
}

fn convert_text(c: &mut Criterion) {
    let (mut dev, mut g) = setup();
    let glyph = [0xaau8; 2 * 14];
    let glyphs: Vec<GuestGlyph<'_>> = (0..40)
        .map(|i| GuestGlyph {
            render_pos: (i * 12, 0),
            glyph_origin: (0, 0),
            width: 10,
            height: 14,
            data: &glyph,
        })
        .collect();
    let mem = dev.memory_mut();
    let mut b = g.builder();
    let s = b
        .string(mem, abi::string_flags::RASTER_A1, &glyphs, 4096)
        .unwrap();
    let mut t = abi::QxlText::new_zeroed();
    t.str = s.into();
    t.fore_brush.ty = abi::brush_type::SOLID.into();
    t.fore_mode = 8.into();
    let bbox = Rect {
        top: 0,
        left: 0,
        bottom: 14,
        right: 480,
    };
    b.submit_draw(
        mem,
        &drawable(0, draw_type::TEXT, bbox, none(), t.as_bytes()),
    )
    .unwrap();
    let ext = dev.get_command().unwrap();
    let mut group = c.benchmark_group("qxl_convert");
    group.throughput(Throughput::Elements(40));
    group.bench_function("text_40_glyphs_parse_convert_encode", |bn| {
        bn.iter(|| {
            let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
                panic!()
            };
            let conv = ConvertedDrawable::new(*d).unwrap();
            encode_display(&conv.raw_message().unwrap()).unwrap().len()
        })
    });
    group.finish();
}

criterion_group!(benches, convert_copy_full_hd, convert_text);
criterion_main!(benches);
