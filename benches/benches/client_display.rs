//! spice-client-core: a 1920x1080 DRAW_COPY per frame fed as wire bytes into a linked
//! session's display channel (framing, message decode, image decode, render, events): a QUIC
//! image (desktop-like and photo-like), and a GLZ sequence of 8 frames sharing the session's
//! window (per-frame figures: time / 8).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spice_client_core::testing::{Linked, linked_session, server_message};
use spice_client_core::{Event, Session, SessionConfig};
use spice_codecs::quic::{self, ImageType, RowOrder};
use spice_proto::display::{DrawCopy, ServerMessage as DisplayMessage, SurfaceCreate};
use spice_proto::header::HeaderKind;
use spice_proto::messages::ServerMessage;
use spice_proto::types::{
    DisplayBase, Image, ImageBody, ImageFlags, ImageScaleMode, QMask, Rect, Ropd, SurfaceFlags,
    SurfaceFormat,
};

use spice_benches::images;

const W: u32 = 1920;
const H: u32 = 1080;
const GLZ_WINDOW: usize = 1 << 24;

fn full() -> Rect {
    Rect {
        top: 0,
        left: 0,
        bottom: H as i32,
        right: W as i32,
    }
}

fn copy_bytes(id: u64, body: ImageBody<'_>) -> Vec<u8> {
    let msg = ServerMessage::Display(DisplayMessage::DrawCopy(DrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: full(),
            clip: spice_proto::types::Clip::None,
        },
        src_bitmap: Some(Image {
            id,
            flags: ImageFlags::empty(),
            width: W,
            height: H,
            body,
        }),
        src_area: full(),
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: ImageScaleMode::NEAREST,
        mask: QMask::default(),
    }));
    server_message(HeaderKind::Mini, 0, &msg)
}

/// A linked session with a 1080p primary surface.
fn session() -> (Session, Linked) {
    let now = Instant::now();
    // The GLZ window the server's dictionary may use (below) is what DISPLAY_INIT announces.
    let config = SessionConfig {
        glz_window_pixels: GLZ_WINDOW as i32,
        ..SessionConfig::default()
    };
    let (mut s, l) = linked_session(config, now);
    let create = ServerMessage::Display(DisplayMessage::SurfaceCreate(SurfaceCreate {
        surface_id: 0,
        width: W,
        height: H,
        format: SurfaceFormat::FMT_32_XRGB,
        flags: SurfaceFlags::PRIMARY,
    }));
    s.receive(
        l.display,
        &server_message(HeaderKind::Mini, 0, &create),
        now,
    )
    .unwrap();
    while s.poll_event().is_some() {}
    (s, l)
}

/// Feeds one message and checks it was rendered.
fn feed(s: &mut Session, l: &Linked, bytes: &[u8], now: Instant) {
    s.receive(l.display, black_box(bytes), now).unwrap();
    let mut drawn = false;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::RegionChanged { .. } => drawn = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(drawn);
}

/// Frame `i` of the GLZ sequence: the desktop with a 400x300 "window" moved by frame.
fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_display");
    g.throughput(Throughput::Elements(1));
    let now = Instant::now();
    for (name, px) in [("desktop", images::desktop()), ("photo", images::photo())] {
        let stream = quic::encode(&quic::Image {
            image_type: ImageType::Rgb32,
            width: W,
            height: H,
            stride: W as usize * 4,
            row_order: RowOrder::TopDown,
            data: &px,
        })
        .unwrap();
        let bytes = copy_bytes(1, ImageBody::Quic(&stream));
        let (mut s, l) = session();
        g.bench_function(format!("quic_copy_1080p/{name}"), |b| {
            b.iter(|| feed(&mut s, &l, &bytes, now))
        });
    }

    // GLZ: 8 frames encoded against one dictionary; each iteration feeds the whole
    // sequence to a fresh session (fresh GLZ window).
    let streams = images::glz_sequence(8, GLZ_WINDOW);
    let msgs: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| copy_bytes(0, ImageBody::GlzRgb(s)))
        .collect();
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("glz_copy_1080p/sequence_of_8", |b| {
        b.iter_batched_ref(
            session,
            |(s, l)| {
                for m in &msgs {
                    feed(s, l, m, now);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
