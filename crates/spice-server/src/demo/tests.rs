//! The demo desktop driven by a minimal display worker: pull, parse, convert, encode, release.

use spice_proto::display::{self, ServerMessage as M};
use spice_proto::types::{ImageBody, StringFlags};
use spice_proto::{ChannelMessage, cursor};
use spice_qxl::convert::{ConvertedCursor, ConvertedDrawable, CursorCaching, encode_roundtrip};
use spice_qxl::parse::ParsedCommand;

use super::*;

/// One message the fake worker produced: channel (true = cursor), type, encoded body.
type Sent = (bool, u16, Vec<u8>);

/// Pull everything from both rings, convert and encode it (checking the round trip),
/// release it, flush the releases; returns what was "sent".
fn drain(demo: &mut DemoDesktop) -> Vec<Sent> {
    let mut out = Vec::new();
    let dev = demo.device_mut();
    for cursor in [false, true] {
        loop {
            let ext = if cursor {
                dev.get_cursor_command()
            } else {
                dev.get_command()
            };
            let Some(ext) = ext else { break };
            let cmd = dev.parse_command(&ext).expect("demo commands parse");
            let release = cmd.release_info();
            let ty = match &cmd {
                ParsedCommand::Draw(d) => ConvertedDrawable::new((**d).clone())
                    .expect("converts")
                    .msg_type(),
                ParsedCommand::Cursor(c) => ConvertedCursor::from(c.clone())
                    .message(CursorCaching::Uncached)
                    .msg_type(),
                other => panic!("unexpected command {other:?}"),
            };
            let bytes = encode_roundtrip(cmd).expect("encodes and decodes back");
            out.push((cursor, ty, bytes.into_iter().next().unwrap()));
            dev.release_resource(release);
        }
    }
    dev.flush_resources();
    out
}

/// Step frame `f` and keep pumping and draining until the demo is idle.
fn run_frame(demo: &mut DemoDesktop, f: u64) -> Vec<Sent> {
    demo.step(f).unwrap();
    let mut sent = drain(demo);
    for _ in 0..100 {
        if demo.is_idle() {
            break;
        }
        demo.pump().unwrap();
        sent.extend(drain(demo));
    }
    assert!(demo.is_idle(), "demo still has queued commands");
    // The guest collects what the worker released.
    demo.pump().unwrap();
    sent
}

fn small() -> DemoConfig {
    DemoConfig {
        width: 640,
        height: 480,
        video_width: 32,
        video_height: 24,
        working_memory: 2 << 20,
        ..DemoConfig::rich()
    }
}

fn decode(s: &Sent) -> M<'_> {
    assert!(!s.0);
    M::decode_body(spice_proto::ChannelType::DISPLAY, s.1, &s.2).unwrap()
}

#[test]
fn rich_scene_parses_and_converts() {
    let mut demo = DemoDesktop::new(DemoConfig::rich()).unwrap();
    let io = demo.take_io_requests();
    let [IoRequest::CreatePrimary { surface, .. }] = io.as_slice() else {
        panic!("{io:?}")
    };
    assert_eq!((surface.width, surface.height), (1024, 768));
    assert_eq!(demo.primary(), surface);
    assert!(demo.take_io_requests().is_empty());

    let sent = run_frame(&mut demo, 0);
    let count = |t: u16| sent.iter().filter(|s| !s.0 && s.1 == t).count();
    // 12 strips + the video frame.
    assert_eq!(count(display::msg::DRAW_COPY), 13);
    // Titles, body lines and the status line.
    assert_eq!(count(display::msg::DRAW_TEXT), 3 + 4 + 2 + 1);
    // Shadow, border, body per window, and four clipped bars.
    assert_eq!(count(display::msg::DRAW_FILL), 9 + 4);
    let clipped = sent
        .iter()
        .filter(|s| !s.0)
        .filter(|s| matches!(decode(s), M::DrawFill(f) if f.base.clip != spice_proto::types::Clip::None))
        .count();
    assert_eq!(clipped, 4);
    let video = demo.layout().video;
    let mut saw_video = false;
    for s in sent.iter().filter(|s| !s.0) {
        match decode(s) {
            M::DrawCopy(c) if c.base.bbox.left == video.left && c.base.bbox.top == video.top => {
                let img = c.src_bitmap.unwrap();
                assert_eq!(img.id, VIDEO_ID);
                assert_eq!((img.width, img.height), (320, 240));
                assert!(matches!(img.body, ImageBody::Bitmap(_)));
                saw_video = true;
            }
            M::DrawText(t) => {
                assert_eq!(t.text.flags, StringFlags::RASTER_A1);
                assert!(!t.text.glyphs.is_empty());
                assert!(t.back_area.right > t.back_area.left);
            }
            M::DrawFill(f) => assert!(f.base.bbox.right <= 1024 && f.base.bbox.bottom <= 768),
            _ => {}
        }
    }
    assert!(saw_video);
    let cursors: Vec<_> = sent.iter().filter(|s| s.0).collect();
    assert_eq!(cursors.len(), 2);
    let set = cursor::ServerMessage::decode_body(
        spice_proto::ChannelType::CURSOR,
        cursors[0].1,
        &cursors[0].2,
    )
    .unwrap();
    let cursor::ServerMessage::Set(set) = set else {
        panic!()
    };
    let h = set.cursor.header.unwrap();
    assert_eq!((h.unique, h.width, h.height), (CURSOR_UNIQUE, 32, 32));
    assert_eq!(set.cursor.data.len(), 32 * 32 * 4);
    assert_eq!(cursors[1].1, cursor::msg::MOVE);

    // The video frames are what spice-server's stream detector considers; nothing else is
    // drawn twice into the same rectangle.
    let dev = demo.device_mut();
    assert!(dev.get_command().is_none());

    // The next frame: video, status and a cursor move only.
    let sent = run_frame(&mut demo, 1);
    let types: Vec<_> = sent.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(
        types,
        [
            (false, display::msg::DRAW_COPY),
            (false, display::msg::DRAW_TEXT),
            (true, cursor::msg::MOVE)
        ]
    );
    assert_eq!(demo.guest().outstanding(), 0);
}

#[test]
fn default_scene_uses_only_what_every_client_draws() {
    let mut demo = DemoDesktop::new(DemoConfig::default()).unwrap();
    let sent = run_frame(&mut demo, 0);
    for s in sent.iter().filter(|s| !s.0) {
        match decode(s) {
            M::DrawCopy(c) => {
                assert_eq!(c.base.clip, spice_proto::types::Clip::None);
                let img = c.src_bitmap.unwrap();
                let ImageBody::Bitmap(b) = &img.body else {
                    panic!()
                };
                assert_eq!(b.format, spice_proto::types::BitmapFormat::BIT32);
            }
            M::DrawFill(f) => assert_eq!(f.base.clip, spice_proto::types::Clip::None),
            other => panic!("{}", other.name()),
        }
    }
    // Strips, video, three titles, six body lines, the status line.
    let copies = sent
        .iter()
        .filter(|s| s.1 == display::msg::DRAW_COPY && !s.0)
        .count();
    assert_eq!(copies, 12 + 1 + 3 + 6 + 1);
}

#[test]
fn video_frames_are_stream_candidates() {
    let mut demo = DemoDesktop::new(small()).unwrap();
    run_frame(&mut demo, 0);
    demo.step(1).unwrap();
    let video = demo.layout().video;
    let dev = demo.device_mut();
    let mut candidates = 0;
    while let Some(ext) = dev.get_command() {
        let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
            panic!()
        };
        let c = ConvertedDrawable::new(*d).unwrap();
        if c.base.bbox.left == video.left && c.base.bbox.top == video.top {
            assert!(c.stream_candidate());
            candidates += 1;
        } else {
            assert!(!c.stream_candidate());
        }
        dev.release_resource(c.release);
    }
    assert_eq!(candidates, 1);
}

#[test]
fn copies_carry_the_rom_clock() {
    let mut demo = DemoDesktop::new(small()).unwrap();
    run_frame(&mut demo, 0);
    demo.device_mut().set_mm_time(123_456);
    demo.step(1).unwrap();
    let dev = demo.device_mut();
    let ext = dev.get_command().unwrap();
    let ParsedCommand::Draw(d) = dev.parse_command(&ext).unwrap() else {
        panic!()
    };
    assert_eq!(d.mm_time, 123_456);
    assert_eq!(dev.rom().unwrap().mm_clock.get(), 123_456);
}

#[test]
fn demo_can_move_to_a_worker_thread() {
    fn send<T: Send>() {}
    send::<DemoDesktop>();
}

#[test]
fn thousands_of_frames_do_not_exhaust_guest_memory() {
    let mut demo = DemoDesktop::new(small()).unwrap();
    run_frame(&mut demo, 0);
    let base = demo.guest().memory_used();
    for f in 1..3000 {
        let sent = run_frame(&mut demo, f);
        assert_eq!(sent.len(), 3);
        // Released by the next pump at the latest.
        assert!(demo.guest().memory_used() <= base + (64 << 10), "frame {f}");
    }
    demo.pump().unwrap();
    assert_eq!(demo.guest().outstanding(), 0);
    assert_eq!(demo.guest().memory_used(), base);
}

#[test]
fn a_slow_server_makes_frames_coalesce() {
    let mut demo = DemoDesktop::new(small()).unwrap();
    // The worker drains only every 50th frame: the rings fill, memory stays bounded and
    // pending commands never pile up beyond one frame's worth plus the scene.
    let mut max_pending = 0;
    for f in 0..1000 {
        let out = demo.step(f).unwrap();
        max_pending = max_pending.max(out.pending);
        if f % 50 == 49 {
            drain(&mut demo);
        }
    }
    assert!(max_pending <= 40, "{max_pending}");
    let sent = run_frame(&mut demo, 1000);
    assert!(!sent.is_empty());
    assert_eq!(demo.guest().outstanding(), 0);
}

#[test]
fn same_frame_number_same_commands() {
    let run = |frames: &[u64]| {
        let mut demo = DemoDesktop::new(small()).unwrap();
        let mut all = Vec::new();
        for &f in frames {
            all.push(run_frame(&mut demo, f));
        }
        all
    };
    let a = run(&[0, 1, 2, 3]);
    let b = run(&[0, 1, 2, 3]);
    assert_eq!(a, b);
    // Frame 3 reached directly: its video, status and cursor commands are the same bytes.
    let c = run(&[0, 3]);
    assert_eq!(c[1], a[3]);
    assert_ne!(a[2], a[3]);
    // The scene is the same whatever frame it starts with, apart from that frame's content.
    let d = run(&[3]);
    assert_eq!(d[0].len(), a[0].len());
}

#[test]
fn freezes_after_n_frames() {
    let cfg = DemoConfig {
        freeze_after: Some(5),
        ..small()
    };
    let mut demo = DemoDesktop::new(cfg.clone()).unwrap();
    for f in 0..5 {
        assert!(!demo.is_frozen());
        run_frame(&mut demo, f);
    }
    assert!(demo.is_frozen());
    let out = demo.step(6).unwrap();
    assert_eq!((out.frame, out.frozen, out.pushed), (None, true, 0));
    assert!(drain(&mut demo).is_empty());
    assert_eq!(demo.last_frame(), Some(4));

    // Jumping past the end still draws the last frame, exactly as stepping to it does.
    let mut direct = DemoDesktop::new(cfg.clone()).unwrap();
    run_frame(&mut direct, 0);
    let late = run_frame(&mut direct, 100);
    assert_eq!(direct.last_frame(), Some(4));
    let mut stepped = DemoDesktop::new(cfg).unwrap();
    run_frame(&mut stepped, 0);
    assert_eq!(run_frame(&mut stepped, 4), late);
}

#[test]
fn bitmap_text_mode_sends_copies_with_the_same_pixels() {
    let cfg = DemoConfig {
        text_mode: TextMode::Bitmaps,
        clip_fills: true,
        ..small()
    };
    let mut demo = DemoDesktop::new(cfg).unwrap();
    let sent = run_frame(&mut demo, 7);
    assert!(sent.iter().all(|s| s.1 != display::msg::DRAW_TEXT));
    // The rendered bitmap of a text equals the glyph rasters drawn over the background.
    let t = TextItem {
        origin: (3, 2),
        text: "A1 x".to_string(),
        fg: 0xffffff,
        back: Rect {
            top: 0,
            left: 0,
            bottom: 20,
            right: 60,
        },
        bg: 0x000000,
    };
    let bbox = t.back;
    let px = render_text(&t, bbox);
    let w = (bbox.right - bbox.left) as usize;
    let adv = (font::ADVANCE * scene::FONT_SCALE) as i32;
    for (i, c) in t.text.chars().enumerate() {
        let (gw, gh, data) = font::a1_glyph(c, scene::FONT_SCALE);
        let stride = usize::from(gw).div_ceil(8);
        for gy in 0..usize::from(gh) {
            // Glyph rows are stored bottom row first.
            let row = &data[(usize::from(gh) - 1 - gy) * stride..][..stride];
            for gx in 0..usize::from(gw) {
                let bit = row[gx / 8] & (0x80 >> (gx % 8)) != 0;
                let x = (t.origin.0 + i as i32 * adv) as usize + gx - bbox.left as usize;
                let y = t.origin.1 as usize + gy - bbox.top as usize;
                let p = u32::from_le_bytes(px[(y * w + x) * 4..][..4].try_into().unwrap());
                assert_eq!(p == t.fg, bit, "{c:?} at {gx},{gy}");
            }
        }
    }
}

#[test]
fn font_rasters() {
    let (w, h, a) = font::a1_glyph('A', 1);
    assert_eq!((w, h), (5, 7));
    // Bottom row first: "10001", then up to the top row "01110".
    assert_eq!(a, [0x88, 0x88, 0x88, 0xf8, 0x88, 0x88, 0x70]);
    assert!(font::is_blank(' '));
    assert_eq!(font::a1_glyph('a', 2), font::a1_glyph('A', 2));
    assert_eq!(font::a1_glyph('a', 2).2.len(), 2 * 14);
}

#[test]
fn geometry_and_timing() {
    for (w, h) in [(320, 200), (100_000, 768)] {
        let cfg = DemoConfig {
            width: w,
            height: h,
            ..DemoConfig::default()
        };
        assert!(matches!(
            DemoDesktop::new(cfg),
            Err(DemoError::BadGeometry { .. })
        ));
    }
    let demo = DemoDesktop::new(small()).unwrap();
    assert_eq!(demo.frame_interval(), Duration::from_millis(40));
    assert_eq!(demo.frame_at(Duration::from_millis(1000)), 25);
    let big = DemoConfig {
        width: 1920,
        height: 1080,
        video_width: 32,
        video_height: 24,
        working_memory: 2 << 20,
        ..DemoConfig::default()
    };
    let mut demo = DemoDesktop::new(big).unwrap();
    run_frame(&mut demo, 0);
    // Video and status of frame 0 land inside the screen.
    let v = demo.layout().video;
    assert!(v.right <= 1920 && v.bottom <= 1080);
}

#[test]
fn plasma_and_sine_are_integer_and_bounded() {
    assert_eq!(scene::sin8(0), 0);
    assert_eq!(scene::sin8(64), 127);
    assert_eq!(scene::sin8(192), -127);
    let a = scene::video_frame(16, 8, 3);
    assert_eq!(a, scene::video_frame(16, 8, 3));
    assert_ne!(a, scene::video_frame(16, 8, 4));
    // Photo-like: many distinct colours.
    let f = scene::video_frame(64, 48, 10);
    let mut colors: Vec<_> = f.chunks(4).map(|c| [c[0], c[1], c[2]]).collect();
    colors.sort();
    colors.dedup();
    assert!(colors.len() > 500, "{}", colors.len());
}

/// Draws what the demo sent with the project's one canvas (cursor messages are skipped).
fn apply(canvas: &mut spice_canvas::Canvas, sent: &[Sent]) {
    for s in sent.iter().filter(|s| !s.0) {
        let m = decode(s);
        canvas
            .apply(&m)
            .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
    }
}

fn check_against_reference(cfg: DemoConfig, frames: &[u64]) {
    let (w, h) = (cfg.width, cfg.height);
    let mut demo = DemoDesktop::new(cfg).unwrap();
    assert!(demo.reference_frame().is_none());
    let mut canvas = spice_canvas::Canvas::new(
        u64::from(w) * u64::from(h),
        spice_canvas::ImageLimits {
            max_image_pixels: u64::from(w) * u64::from(h),
            cache_pixels: 1 << 20,
        },
        spice_canvas::new_glz_window(1 << 20),
    );
    canvas
        .surfaces
        .create(0, w, h, spice_proto::types::SurfaceFormat::FMT_32_XRGB)
        .unwrap();
    for &f in frames {
        let sent = run_frame(&mut demo, f);
        apply(&mut canvas, &sent);
        let want = demo.reference_frame().unwrap();
        let fb = canvas.surfaces.get(0).unwrap().pixels();
        let bad = fb
            .iter()
            .zip(&want)
            .position(|(a, b)| a & 0xff_ffff != b & 0xff_ffff);
        assert!(
            bad.is_none(),
            "frame {f}: first difference at pixel {:?}",
            bad.map(|i| (i as u32 % w, i as u32 / w))
        );
    }
}

#[test]
fn rendered_commands_match_the_reference_picture() {
    check_against_reference(small(), &[0, 1, 9]);
    check_against_reference(
        DemoConfig {
            working_memory: 8 << 20,
            ..DemoConfig::default()
        },
        &[0, 2],
    );
    check_against_reference(
        DemoConfig {
            text_mode: TextMode::Bitmaps,
            ..small()
        },
        &[0, 3],
    );
}

#[test]
fn resize_destroys_and_recreates_the_primary_and_redraws() {
    let mut demo = DemoDesktop::new(small()).unwrap();
    let io = demo.take_io_requests();
    assert!(matches!(io[..], [IoRequest::CreatePrimary { .. }]));
    run_frame(&mut demo, 0);
    run_frame(&mut demo, 1);
    // The same size: nothing happens.
    assert_eq!(demo.resize(640, 480).unwrap(), (640, 480));
    assert!(demo.take_io_requests().is_empty());
    // Clamped and rounded: 1003 → 1000 (multiple of 8), height kept.
    assert_eq!(demo.resize(1003, 700).unwrap(), (1000, 700));
    let io = demo.take_io_requests();
    match &io[..] {
        [
            IoRequest::DestroyPrimary { cookie: None },
            IoRequest::CreatePrimary { surface, .. },
        ] => assert_eq!((surface.width, surface.height), (1000, 700)),
        other => panic!("{other:?}"),
    }
    assert_eq!(demo.primary().width, 1000);
    assert_eq!((demo.config().width, demo.config().height), (1000, 700));
    assert_eq!(demo.layout().width, 1000);
    assert_eq!(
        demo.reference_frame(),
        None,
        "nothing drawn at the new size yet"
    );
    // The next step draws the whole scene again, within the new screen.
    let sent = run_frame(&mut demo, 2);
    let strips = 700u32.div_ceil(STRIP_ROWS) as usize;
    assert!(sent.len() > strips, "{} commands", sent.len());
    let reference = demo.reference_frame().unwrap();
    assert_eq!(reference.len(), 1000 * 700);
    assert_eq!(demo.resize_target(1, 1), (640, 480));
    assert_eq!(demo.resize_target(100_000, 100_000), MAX_SIZE);
    // Back and forth: the guest's memory in use returns to where it was.
    let used = demo.guest().memory_used();
    for (w, h) in [(640, 480), (4096, 2160), (1000, 700)] {
        assert_eq!(demo.resize(w, h).unwrap(), (w, h));
        demo.take_io_requests();
        run_frame(&mut demo, 3);
    }
    assert_eq!(demo.guest().memory_used(), used);
    assert_eq!(demo.guest().outstanding(), 0);
}

#[test]
fn resize_is_clamped_to_the_configured_maximum() {
    let mut demo = DemoDesktop::new(DemoConfig {
        max_width: 640,
        max_height: 480,
        ..small()
    })
    .unwrap();
    demo.take_io_requests();
    run_frame(&mut demo, 0);
    // Clamped to the configured maximum: nothing to do.
    assert_eq!(demo.resize(2000, 2000).unwrap(), (640, 480));
    assert!(demo.take_io_requests().is_empty());
}
