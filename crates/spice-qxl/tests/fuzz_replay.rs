//! Replays fuzz/corpus/qxl_commands through the fuzz entry point, and (ignored) regenerates the
//! seed corpus from the guest driver.

use std::path::PathBuf;

use spice_qxl::fuzz::{FUZZ_RAM_SIZE, FUZZ_SLOT, fuzz_bars, fuzz_commands};
use spice_qxl::memory::{GuestMemory, write_u32};
use spice_qxl::parse::Rect;
use spice_qxl::{DeviceConfig, GuestDriver, QxlDevice, VecMemory};

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

    let (mut dev, mut g) = fresh();
    g.message(dev.memory_mut(), "ring").unwrap();
    let ring = dev.cmd_ring();
    write_u32(dev.memory_mut(), ring.offset + 4, 0x1000).unwrap();
    std::fs::write(dir.join("bad-ring-far-apart"), snapshot(&dev)).unwrap();
}
