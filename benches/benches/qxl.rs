//! QXL device: parsing a bitmap copy gathered from chunks, and a command's round trip through
//! the rings (push, pop, parse, release, collect).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spice_qxl::parse::Rect;
use spice_qxl::{BarLayout, DeviceConfig, GuestDriver, QxlDevice, QxlInterface, VecMemory};

fn setup() -> (QxlDevice<VecMemory>, GuestDriver) {
    let bars = BarLayout::contiguous(4 << 20, 64 * 1024);
    let mut dev = QxlDevice::new(
        VecMemory::new(bars.total_size() as usize),
        DeviceConfig::new(bars),
    )
    .unwrap();
    let g = GuestDriver::attach(&mut dev, 1).unwrap();
    (dev, g)
}

fn parse_copy(c: &mut Criterion) {
    let (mut dev, mut g) = setup();
    let (w, h) = (256u32, 256u32);
    let px: Vec<u8> = (0..w * h * 4).map(|i| i as u8).collect();
    g.copy_bitmap(
        dev.memory_mut(),
        0,
        Rect {
            top: 0,
            left: 0,
            bottom: 256,
            right: 256,
        },
        w,
        h,
        &px,
        4096,
    )
    .unwrap();
    let ext = dev.get_command().unwrap();
    let mut group = c.benchmark_group("qxl");
    group.throughput(Throughput::Bytes(px.len() as u64));
    group.bench_function("parse_copy_256x256_4k_chunks", |b| {
        b.iter(|| dev.parse_command(&ext).unwrap())
    });
    group.finish();
}

fn ring_round_trip(c: &mut Criterion) {
    let (mut dev, mut g) = setup();
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 8,
        right: 8,
    };
    let mut group = c.benchmark_group("qxl");
    group.throughput(Throughput::Elements(16));
    group.bench_function("fill_round_trip_x16", |b| {
        b.iter(|| {
            for i in 0..16 {
                g.fill(dev.memory_mut(), 0, r, i, None).unwrap();
            }
            while let Some(ext) = dev.get_command() {
                let rel = dev.parse_command(&ext).unwrap().release_info();
                dev.release_resource(rel);
            }
            dev.flush_resources();
            g.collect_releases(dev.memory_mut()).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, parse_copy, ring_round_trip);
criterion_main!(benches);
