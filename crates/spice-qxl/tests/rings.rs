//! A guest driver and a server pass thousands of commands with random lifetimes through the
//! rings: every resource comes back through the release ring exactly once, rings wrap, and a
//! full ring pushes back instead of overwriting.

use std::collections::HashMap;

use spice_qxl::abi;
use spice_qxl::parse::{
    CursorOp, DrawOp, ImageKind, ParsedCommand, Rect, ReleaseInfoExt, SurfaceOp,
};
use spice_qxl::{
    BarLayout, DeviceConfig, GuestDriver, GuestError, IoRequest, QxlDevice, QxlInterface, VecMemory,
};

/// xorshift64*: a small deterministic generator for the model.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn setup(ram: u64) -> (QxlDevice<VecMemory>, GuestDriver) {
    let bars = BarLayout::contiguous(ram, 64 * 1024);
    let mem = VecMemory::new(bars.total_size() as usize);
    let mut dev = QxlDevice::new(mem, DeviceConfig::new(bars)).unwrap();
    let guest = GuestDriver::attach(&mut dev, 1).unwrap();
    (dev, guest)
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Fill(u32),
    Copy(u32, u32, u8),
    Update(u32),
    Message(String),
    SurfaceCreate(u32),
    SurfaceDestroy(u32),
    CursorSet(u16),
    CursorMove(i16, i16),
}

fn check(cmd: &ParsedCommand, want: &Expect) {
    match (cmd, want) {
        (ParsedCommand::Draw(d), Expect::Fill(color)) => match &d.op {
            DrawOp::Fill {
                brush: spice_qxl::Brush::Solid(c),
                ..
            } => assert_eq!(c, color),
            other => panic!("expected fill, got {other:?}"),
        },
        (ParsedCommand::Draw(d), Expect::Copy(w, h, seed)) => match &d.op {
            DrawOp::Copy(c) => match &c.src.kind {
                ImageKind::Bitmap(b) => {
                    assert_eq!((b.width, b.height), (*w, *h));
                    assert_eq!(b.data, pixels(*w, *h, *seed));
                }
                other => panic!("expected bitmap, got {other:?}"),
            },
            other => panic!("expected copy, got {other:?}"),
        },
        (ParsedCommand::Update(u), Expect::Update(id)) => assert_eq!(u.update_id, *id),
        (ParsedCommand::Message(m), Expect::Message(t)) => assert_eq!(m.text, t.as_bytes()),
        (ParsedCommand::Surface(s), Expect::SurfaceCreate(id)) => {
            assert_eq!(s.surface_id, *id);
            assert!(matches!(s.op, SurfaceOp::Create(_)));
        }
        (ParsedCommand::Surface(s), Expect::SurfaceDestroy(id)) => {
            assert_eq!(s.surface_id, *id);
            assert_eq!(s.op, SurfaceOp::Destroy);
        }
        (ParsedCommand::Cursor(c), Expect::CursorSet(w)) => match &c.op {
            CursorOp::Set { shape, .. } => {
                assert_eq!(shape.width, *w);
                assert_eq!(shape.data.len(), usize::from(*w) * usize::from(*w) * 4);
            }
            other => panic!("expected cursor set, got {other:?}"),
        },
        (ParsedCommand::Cursor(c), Expect::CursorMove(x, y)) => {
            assert_eq!(
                c.op,
                CursorOp::Move {
                    position: spice_qxl::parse::Point16 { x: *x, y: *y }
                }
            )
        }
        (cmd, want) => panic!("expected {want:?}, got {cmd:?}"),
    }
}

fn pixels(w: u32, h: u32, seed: u8) -> Vec<u8> {
    (0..w * h * 4)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Push one random command; returns its id and expectation, or the error.
fn push_random(
    rng: &mut Rng,
    dev: &mut QxlDevice<VecMemory>,
    g: &mut GuestDriver,
    live_surfaces: &mut Vec<u32>,
    next_surface: &mut u32,
) -> Result<(u64, Expect), GuestError> {
    let m = dev.memory_mut();
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 8,
        right: 8,
    };
    match rng.below(9) {
        0 | 1 => {
            let color = rng.next() as u32;
            let clip = [
                Rect {
                    top: 1,
                    left: 1,
                    bottom: 4,
                    right: 4,
                },
                Rect {
                    top: 5,
                    left: 5,
                    bottom: 7,
                    right: 7,
                },
            ];
            let clip = if rng.below(2) == 0 {
                Some(&clip[..])
            } else {
                None
            };
            g.fill(m, 0, r, color, clip)
                .map(|id| (id, Expect::Fill(color)))
        }
        2 | 3 => {
            let (w, h) = (1 + rng.below(12) as u32, 1 + rng.below(12) as u32);
            let seed = rng.next() as u8;
            let chunk = 1 + rng.below(200) as usize;
            g.copy_bitmap(m, 0, r, w, h, &pixels(w, h, seed), chunk)
                .map(|id| (id, Expect::Copy(w, h, seed)))
        }
        4 => {
            let uid = rng.next() as u32;
            g.update(m, 0, r, uid).map(|id| (id, Expect::Update(uid)))
        }
        5 => {
            let t = format!("hello {}", rng.below(1000));
            g.message(m, &t).map(|id| (id, Expect::Message(t)))
        }
        6 => {
            if !live_surfaces.is_empty() && rng.below(2) == 0 {
                let i = rng.below(live_surfaces.len() as u64) as usize;
                let s = live_surfaces[i];
                let res = g
                    .surface_destroy(m, s)
                    .map(|id| (id, Expect::SurfaceDestroy(s)));
                if res.is_ok() {
                    live_surfaces.swap_remove(i);
                }
                res
            } else {
                let s = *next_surface;
                let res = g
                    .surface_create(m, s, 4, 4)
                    .map(|id| (id, Expect::SurfaceCreate(s)));
                if res.is_ok() {
                    *next_surface += 1;
                    live_surfaces.push(s);
                }
                res
            }
        }
        7 => {
            let w = 1 + rng.below(8) as u16;
            let data = vec![0xab; usize::from(w) * usize::from(w) * 4];
            g.cursor_set(m, 3, 4, 0, w, w, &data)
                .map(|id| (id, Expect::CursorSet(w)))
        }
        _ => {
            let (x, y) = (rng.below(100) as i16, rng.below(100) as i16);
            g.cursor_move(m, x, y)
                .map(|id| (id, Expect::CursorMove(x, y)))
        }
    }
}

fn run_model(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let (mut dev, mut g) = setup(1 << 20);
    assert!(matches!(
        g.create_primary(&mut dev, 64, 48).unwrap(),
        IoRequest::CreatePrimary { .. }
    ));
    let mut expect: HashMap<u64, Expect> = HashMap::new();
    let mut pushed = 0u64;
    let mut held: Vec<(usize, ReleaseInfoExt)> = Vec::new();
    let mut full_seen = 0;
    let mut live_surfaces = Vec::new();
    let mut next_surface = 1;

    for step in 0..steps {
        // Guest: push a burst.
        for _ in 0..rng.below(6) {
            match push_random(
                &mut rng,
                &mut dev,
                &mut g,
                &mut live_surfaces,
                &mut next_surface,
            ) {
                Ok((id, e)) => {
                    assert!(
                        expect.insert(id, e).is_none(),
                        "id {id:#x} reused while outstanding"
                    );
                    pushed += 1;
                }
                Err(GuestError::RingFull) => {
                    full_seen += 1;
                    // The full ring holds exactly its size: nothing was overwritten.
                    for ring in [dev.cmd_ring(), dev.cursor_ring()] {
                        let i = ring.indices(dev.memory()).unwrap();
                        assert!(i.prod.wrapping_sub(i.cons) <= ring.num_items);
                    }
                }
                Err(e) => panic!("guest push failed: {e}"),
            }
        }
        // Server: stalls for a while every so often, so the rings fill up.
        let stalled = (step / 40) % 4 == 3;
        if !stalled && rng.below(4) != 0 {
            for _ in 0..rng.below(12) {
                let ext = if rng.below(3) == 0 {
                    dev.get_cursor_command()
                } else {
                    dev.get_command()
                };
                let Some(ext) = ext else { continue };
                let cmd = dev.parse_command(&ext).unwrap();
                let rel = cmd.release_info();
                let id = u64::from_le_bytes(
                    dev.memory().as_bytes()[rel.info_offset as usize..][..8]
                        .try_into()
                        .unwrap(),
                );
                check(&cmd, expect.get(&id).expect("command with unknown id"));
                held.push((step + rng.below(40) as usize, rel));
            }
        }
        // Server: release what expired.
        let (done, keep): (Vec<_>, Vec<_>) = held.into_iter().partition(|(t, _)| *t <= step);
        held = keep;
        for (_, r) in done {
            dev.release_resource(r);
        }
        if rng.below(10) == 0 {
            dev.flush_resources();
        }
        // Guest: collect.
        if rng.below(3) == 0 {
            for id in g.collect_releases(dev.memory_mut()).unwrap() {
                // An id comes back once per push: a second release (or garbage) is not in
                // `expect` any more. (Ids are addresses, so they are reused after release.)
                assert!(
                    expect.remove(&id).is_some(),
                    "released twice or unknown: {id:#x}"
                );
            }
        }
        assert!(!dev.guest_bug());
    }
    // Drain: the server takes and releases everything, the guest collects everything.
    loop {
        let mut any = false;
        while let Some(ext) = dev.get_command().or_else(|| dev.get_cursor_command()) {
            any = true;
            let cmd = dev.parse_command(&ext).unwrap();
            dev.release_resource(cmd.release_info());
        }
        for (_, r) in held.drain(..) {
            any = true;
            dev.release_resource(r);
        }
        // The release ring may be full: collect and flush until all is back.
        for _ in 0..100 {
            dev.flush_resources();
            for id in g.collect_releases(dev.memory_mut()).unwrap() {
                assert!(
                    expect.remove(&id).is_some(),
                    "released twice or unknown: {id:#x}"
                );
            }
            if g.outstanding() == 0 {
                break;
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(g.outstanding(), 0);
    assert!(expect.is_empty());
    assert_eq!(g.released(), pushed);
    assert!(full_seen > 0, "the model never filled a ring");
    assert!(pushed > 1000, "only {pushed} commands");
    // Only the primary surface and live surfaces' pixels remain allocated.
    let live = live_surfaces.len() as u64 * 4 * 4 * 4;
    assert_eq!(g.memory_used(), 64 * 48 * 4 + live);
    let i = dev.cmd_ring().indices(dev.memory()).unwrap();
    assert!(i.prod > 32 * 10, "the command ring wrapped many times");
}

#[test]
fn thousands_of_commands_every_resource_released_once() {
    run_model(0x5eed_1234_5678_9abc, 1500);
}

#[test]
fn model_with_other_seeds() {
    for seed in [1, 2, 3] {
        run_model(seed, 600);
    }
}

#[test]
fn full_command_ring_pushes_back_and_asks_for_notification() {
    let (mut dev, mut g) = setup(1 << 20);
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    let mut ids = Vec::new();
    for i in 0..32 {
        ids.push(g.fill(dev.memory_mut(), 0, r, i, None).unwrap());
    }
    let before = dev.memory().as_bytes().to_vec();
    assert_eq!(
        g.fill(dev.memory_mut(), 0, r, 99, None),
        Err(GuestError::RingFull)
    );
    // Only notify_on_cons changed: no item was overwritten.
    let ring = dev.cmd_ring();
    let diff: Vec<usize> = before
        .iter()
        .zip(dev.memory().as_bytes())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    let noc = (ring.offset + 16) as usize;
    assert!(
        diff.iter().all(|&i| (noc..noc + 4).contains(&i)),
        "{diff:?}"
    );
    assert_eq!(
        u32::from_le_bytes(dev.memory().as_bytes()[noc..noc + 4].try_into().unwrap()),
        1
    );
    // Popping the first item reaches notify_on_cons: the device raises the display interrupt.
    let first = dev.get_command().unwrap();
    assert_eq!(first.addr, ids[0]);
    assert_ne!(
        g.take_interrupts(dev.memory_mut()).unwrap() & abi::interrupt::DISPLAY,
        0
    );
    // Now there is room again.
    g.fill(dev.memory_mut(), 0, r, 99, None).unwrap();
}

#[test]
fn consumer_notification_semantics() {
    let (mut dev, mut g) = setup(1 << 20);
    // Empty ring: the server waits and asked for a notification on the next push.
    assert!(dev.req_cmd_notification());
    let ring = dev.cmd_ring();
    let nop = |d: &QxlDevice<VecMemory>| {
        u32::from_le_bytes(
            d.memory().as_bytes()[(ring.offset + 8) as usize..][..4]
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(nop(&dev), 1);
    g.message(dev.memory_mut(), "x").unwrap();
    // Commands present: no wait.
    assert!(!dev.req_cmd_notification());
    assert!(dev.get_command().is_some());
    assert!(dev.get_command().is_none());
    assert!(dev.req_cmd_notification());
    assert_eq!(nop(&dev), 2);
    // Cursor ring alike.
    assert!(dev.req_cursor_notification());
    g.cursor_move(dev.memory_mut(), 1, 1).unwrap();
    assert!(!dev.req_cursor_notification());
}

#[test]
fn indices_wrap_around_u32() {
    let (mut dev, mut g) = setup(1 << 20);
    let start = u32::MAX - 40;
    for ring in [dev.cmd_ring(), dev.release_ring()] {
        let m = dev.memory_mut();
        for field in [4u64, 8, 12, 16] {
            spice_qxl::memory::write_u32(m, ring.offset + field, start).unwrap();
        }
    }
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    let mut total = 0;
    for round in 0..10 {
        for i in 0..20 {
            g.fill(dev.memory_mut(), 0, r, round * 100 + i, None)
                .unwrap();
        }
        for i in 0..20 {
            let ext = dev.get_command().unwrap();
            match dev.parse_command(&ext).unwrap() {
                ParsedCommand::Draw(d) => {
                    assert!(
                        matches!(d.op, DrawOp::Fill { brush: spice_qxl::Brush::Solid(c), .. } if c == round * 100 + i)
                    );
                    dev.release_resource(d.release);
                }
                other => panic!("{other:?}"),
            }
        }
        dev.flush_resources();
        total += g.collect_releases(dev.memory_mut()).unwrap().len();
    }
    assert_eq!(total, 200);
    let i = dev.cmd_ring().indices(dev.memory()).unwrap();
    assert!(i.prod < start, "prod wrapped past u32::MAX");
    assert!(!dev.guest_bug());
}

#[test]
fn release_chains_link_through_next() {
    let (mut dev, mut g) = setup(1 << 20);
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    let ids: Vec<u64> = (0..5)
        .map(|i| g.fill(dev.memory_mut(), 0, r, i, None).unwrap())
        .collect();
    let rels: Vec<_> = (0..5)
        .map(|_| {
            let ext = dev.get_command().unwrap();
            dev.parse_command(&ext).unwrap().release_info()
        })
        .collect();
    for r in &rels {
        dev.release_resource(*r);
    }
    // Fewer than a bunch: nothing pushed yet.
    assert!(g.collect_releases(dev.memory_mut()).unwrap().is_empty());
    // The chain: head in the ring slot, each info's next naming the following id, last 0.
    let mem = dev.memory().as_bytes();
    let rd = |off: u64| u64::from_le_bytes(mem[off as usize..][..8].try_into().unwrap());
    let ring = dev.release_ring();
    assert_eq!(rd(ring.slot_offset(0)), ids[0]);
    for k in 0..4 {
        assert_eq!(rd(rels[k].info_offset), ids[k + 1]);
    }
    assert_eq!(rd(rels[4].info_offset), 0);
    assert_eq!(dev.flush_resources(), 5);
    assert_eq!(g.collect_releases(dev.memory_mut()).unwrap(), ids);
}

#[test]
fn release_bunches_push_automatically() {
    let (mut dev, mut g) = setup(1 << 20);
    let r = Rect {
        top: 0,
        left: 0,
        bottom: 1,
        right: 1,
    };
    let mut n = 0;
    for round in 0..4 {
        for i in 0..16 {
            g.fill(dev.memory_mut(), 0, r, round * 16 + i, None)
                .unwrap();
        }
        while let Some(ext) = dev.get_command() {
            let rel = dev.parse_command(&ext).unwrap().release_info();
            dev.release_resource(rel);
        }
        n += g.collect_releases(dev.memory_mut()).unwrap().len();
    }
    // 64 releases = two bunches of 32 pushed without any flush.
    assert_eq!(n, 64);
}
