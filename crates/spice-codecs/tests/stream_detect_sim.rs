//! Video-region detection with simulated drawing sequences and a simulated clock.

use spice_codecs::classify::Graduality;
use spice_codecs::stream_detect::{
    Detection, DrawCandidate, MAX_STREAMS, Rect, StreamDetector, StreamingVideo,
};

fn cand(x: i32, y: i32, w: u32, h: u32) -> DrawCandidate {
    DrawCandidate {
        bbox: Rect {
            left: x,
            top: y,
            right: x + w as i32,
            bottom: y + h as i32,
        },
        src_width: w,
        src_height: h,
        top_down: true,
        streamable_op: true,
    }
}

fn high() -> Option<Graduality> {
    Some(Graduality::High)
}

/// Feeds `n` frames every `dt` ms from `t0`; returns the detections.
fn feed(
    d: &mut StreamDetector,
    c: &DrawCandidate,
    t0: u64,
    dt: u64,
    n: usize,
    grad: impl Fn(usize) -> Option<Graduality>,
) -> Vec<Detection> {
    (0..n)
        .map(|i| d.on_draw(c, t0 + i as u64 * dt, || grad(i)))
        .collect()
}

#[test]
fn stream_starts_at_the_21st_update() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let c = cand(10, 20, 320, 240);
    let dets = feed(&mut d, &c, 1000, 40, 21, |_| high());
    for (i, det) in dets[..20].iter().enumerate() {
        assert_eq!(
            *det,
            Detection::Candidate {
                frames: i as u32,
                gradual_frames: i as u32
            }
        );
    }
    let Detection::StreamCreated(info) = dets[20] else {
        panic!("{:?}", dets[20]);
    };
    assert_eq!(info.id, 0);
    assert_eq!(info.dest, c.bbox);
    assert_eq!((info.width, info.height), (320, 240));
    assert!(info.top_down);
    assert_eq!(info.input_fps, 25); // 20 frames in 800 ms
    assert_eq!(d.streams().count(), 1);
    // Next frame belongs to the stream.
    assert_eq!(
        d.on_draw(&c, 1000 + 21 * 40, high),
        Detection::StreamFrame { id: 0 }
    );
}

#[test]
fn fast_sources_are_estimated_at_30_fps() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let dets = feed(&mut d, &cand(0, 0, 200, 200), 0, 10, 21, |_| high());
    let Detection::StreamCreated(info) = dets[20] else {
        panic!()
    };
    assert_eq!(info.input_fps, 30);
}

#[test]
fn gaps_rect_changes_and_other_drawings_break_the_chain() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let c = cand(0, 0, 200, 200);
    feed(&mut d, &c, 0, 100, 10, |_| high());
    // 201 ms later: new chain.
    assert_eq!(
        d.on_draw(&c, 900 + 201, high),
        Detection::Candidate {
            frames: 0,
            gradual_frames: 0
        }
    );
    // Exactly 200 ms later: chained.
    assert_eq!(
        d.on_draw(&c, 1101 + 200, high),
        Detection::Candidate {
            frames: 1,
            gradual_frames: 1
        }
    );
    // Same bbox, different source size: new chain.
    let mut scaled = c;
    scaled.src_width = 100;
    scaled.src_height = 100;
    assert_eq!(
        d.on_draw(&scaled, 1400, high),
        Detection::Candidate {
            frames: 0,
            gradual_frames: 0
        }
    );
    // A non-streamable drawing over the rectangle resets it.
    feed(&mut d, &c, 2000, 40, 5, |_| high());
    let mut other = c;
    other.streamable_op = false;
    assert_eq!(d.on_draw(&other, 2200, high), Detection::NotStreamable);
    assert_eq!(
        d.on_draw(&c, 2240, high),
        Detection::Candidate {
            frames: 0,
            gradual_frames: 0
        }
    );
}

#[test]
fn filter_needs_size_and_gradual_frames() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    // 95x96 is below the minimum area.
    let small = cand(0, 0, 95, 96);
    assert!(
        feed(&mut d, &small, 0, 40, 30, |_| high())
            .iter()
            .all(|x| *x == Detection::NotStreamable)
    );
    // Desktop-like (Low) frames never start a stream.
    let c = cand(0, 0, 96, 96);
    let dets = feed(&mut d, &c, 0, 40, 60, |_| Some(Graduality::Low));
    assert!(dets.iter().all(|x| matches!(
        x,
        Detection::Candidate {
            gradual_frames: 0,
            ..
        }
    )));
    // Exactly 20 % gradual (every 5th counted frame) starts it at frame 20.
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let dets = feed(&mut d, &c, 0, 40, 21, |i| {
        if i % 5 == 0 {
            high()
        } else {
            Some(Graduality::Low)
        }
    });
    assert!(
        matches!(dets[20], Detection::StreamCreated(_)),
        "{:?}",
        dets[20]
    );
    // Unclassifiable bitmaps (None) count as gradual; Medium too.
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let dets = feed(&mut d, &c, 0, 40, 21, |i| {
        if i % 2 == 0 {
            None
        } else {
            Some(Graduality::Medium)
        }
    });
    assert!(matches!(dets[20], Detection::StreamCreated(_)));
}

#[test]
fn long_runs_without_gradual_frames_restart_the_counts() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let c = cand(0, 0, 100, 100);
    // One gradual frame (count 1), then 100 Low frames, then a gradual one at count 102.
    let dets = feed(&mut d, &c, 0, 40, 103, |i| {
        if i == 1 || i == 102 {
            high()
        } else {
            Some(Graduality::Low)
        }
    });
    assert_eq!(
        dets[1],
        Detection::Candidate {
            frames: 1,
            gradual_frames: 1
        }
    );
    assert_eq!(
        dets[101],
        Detection::Candidate {
            frames: 101,
            gradual_frames: 1
        }
    );
    assert_eq!(
        dets[102],
        Detection::Candidate {
            frames: 1,
            gradual_frames: 1
        }
    );
}

#[test]
fn all_mode_ignores_size_and_content_off_mode_streams_nothing() {
    let mut d = StreamDetector::new(StreamingVideo::All);
    let c = cand(0, 0, 20, 20);
    let dets = feed(&mut d, &c, 0, 40, 21, |_| {
        panic!("no graduality in All mode")
    });
    assert!(matches!(dets[20], Detection::StreamCreated(_)));

    let mut d = StreamDetector::new(StreamingVideo::Off);
    assert!(
        feed(&mut d, &cand(0, 0, 300, 300), 0, 40, 40, |_| high())
            .iter()
            .all(|x| *x == Detection::NotStreamable)
    );
}

#[test]
fn existing_streams_accept_close_frames_and_time_out() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let c = cand(100, 100, 200, 200);
    feed(&mut d, &c, 0, 40, 21, |_| high());
    let t = 20 * 40;
    // Larger rectangle containing the stream, up to twice its area: same stream.
    let bigger = cand(100, 100, 200, 400);
    assert_eq!(
        d.on_draw(&bigger, t + 900, high),
        Detection::StreamFrame { id: 0 }
    );
    // More than twice the area: not this stream.
    let huge = cand(50, 50, 400, 400);
    assert!(matches!(
        d.on_draw(&huge, t + 950, high),
        Detection::Candidate { .. }
    ));
    // Different row order: not this stream.
    let mut flipped = c;
    flipped.top_down = false;
    assert!(matches!(
        d.on_draw(&flipped, t + 960, high),
        Detection::Candidate { .. }
    ));
    assert_eq!(d.next_timeout(), Some(t + 900 + 1000));
    assert!(d.poll_timeouts(t + 1899).is_empty());
    assert_eq!(d.poll_timeouts(t + 1900), vec![0]);
    assert_eq!(d.streams().count(), 0);
    assert_eq!(d.next_timeout(), None);
    assert!(!d.destroy_stream(0));
}

#[test]
fn input_fps_is_remeasured_every_five_seconds() {
    let mut d = StreamDetector::new(StreamingVideo::Filter);
    let c = cand(0, 0, 128, 128);
    feed(&mut d, &c, 0, 40, 21, |_| high());
    // 10 fps for 5 s.
    let start = 20 * 40;
    for i in 1..=50u64 {
        assert_eq!(
            d.on_draw(&c, start + i * 100, high),
            Detection::StreamFrame { id: 0 }
        );
    }
    assert_eq!(d.streams().next().unwrap().input_fps, 10);
}

#[test]
fn at_most_fifty_streams() {
    let mut d = StreamDetector::new(StreamingVideo::All);
    let mut created = 0;
    for k in 0..(MAX_STREAMS as i32 + 3) {
        let c = cand(k * 1000, 0, 100, 100);
        let dets = feed(&mut d, &c, 0, 40, 21, |_| None);
        created += usize::from(matches!(dets[20], Detection::StreamCreated(_)));
    }
    assert_eq!(created, MAX_STREAMS);
    let ids: std::collections::BTreeSet<u32> = d.streams().map(|s| s.id).collect();
    assert_eq!(ids.len(), MAX_STREAMS);
    assert!(d.destroy_stream(7));
    let dets = feed(&mut d, &cand(99_000, 0, 100, 100), 2000, 40, 21, |_| None);
    let Detection::StreamCreated(info) = dets[20] else {
        panic!()
    };
    assert_eq!(info.id, 7, "freed id is reused");
}
