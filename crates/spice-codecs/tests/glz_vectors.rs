//! GLZ golden vectors: every sequence in the shared `vectors/glz` directory
//! decodes to its frames exactly, with a window of the size it was made with.

use spice_codecs::glz::{GlzError, GlzWindow};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SPICE_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in manifest.ancestors() {
        let c = a.join("shared/vectors");
        if c.is_dir() {
            return c;
        }
    }
    panic!("shared/vectors not found above {manifest:?}; set SPICE_VECTORS_DIR");
}

fn run_sequence(prefix: &str, frame: &str, count: usize, window: usize, alpha: bool) -> usize {
    let dir = vectors_dir().join("glz");
    let mut win = GlzWindow::new(window);
    for i in 0..count {
        let stream = std::fs::read(dir.join(format!("{prefix}_{i:03}.glz"))).unwrap();
        let raw = std::fs::read(dir.join(format!("{frame}{i}.bgrx"))).unwrap();
        let hdr = win
            .decode(&stream)
            .unwrap_or_else(|e| panic!("{prefix}_{i:03}: {e}"));
        assert_eq!(hdr.id, i as u64);
        assert_eq!((hdr.width, hdr.height), (640, 480));
        let img = win.image(hdr.id).unwrap();
        let px = img.pixels();
        assert_eq!(px.len(), raw.len());
        let same = if alpha {
            px == &raw[..]
        } else {
            px.chunks(4)
                .zip(raw.chunks(4))
                .all(|(a, b)| a[..3] == b[..3])
        };
        assert!(same, "{prefix}_{i:03}: decoded frame differs");
        // Images still held never exceed what the header said may be referenced.
        let head = hdr.id - u64::from(hdr.win_head_dist);
        assert!(
            win.image_ids().all(|id| id >= head),
            "{prefix}_{i:03}: stale image kept"
        );
    }
    count
}

#[test]
fn big_window_sequence() {
    assert_eq!(run_sequence("big", "f", 8, 16_777_216, false), 8);
}

#[test]
fn small_window_sequence_releases_images() {
    run_sequence("small", "f", 8, 614_400 * 2, false);
    // With a 614400-pixel window (two 640x480 frames), frame 7 may only refer to 6.
    let dir = vectors_dir().join("glz");
    let s7 = std::fs::read(dir.join("small_007.glz")).unwrap();
    let hdr = spice_codecs::glz::GlzHeader::parse(&s7).unwrap();
    assert!(hdr.win_head_dist <= 1, "head dist {}", hdr.win_head_dist);
}

#[test]
fn alpha_sequence() {
    assert_eq!(run_sequence("alpha", "a", 4, 16_777_216, true), 4);
}

#[test]
fn out_of_order_image_is_reported_missing_then_decodes() {
    let dir = vectors_dir().join("glz");
    let s0 = std::fs::read(dir.join("big_000.glz")).unwrap();
    let s1 = std::fs::read(dir.join("big_001.glz")).unwrap();
    let mut win = GlzWindow::new(16_777_216);
    assert_eq!(
        win.decode(&s1),
        Err(GlzError::MissingImage { id: 1, missing: 0 })
    );
    assert_eq!(win.image_ids().count(), 0);
    win.decode(&s0).unwrap();
    win.decode(&s1).unwrap();
    let raw = std::fs::read(dir.join("f1.bgrx")).unwrap();
    let px = win.image(1).unwrap().pixels();
    assert!(
        px.chunks(4)
            .zip(raw.chunks(4))
            .all(|(a, b)| a[..3] == b[..3])
    );
}

#[test]
fn truncated_and_trailing_streams_are_rejected() {
    let dir = vectors_dir().join("glz");
    let s0 = std::fs::read(dir.join("big_000.glz")).unwrap();
    let mut win = GlzWindow::new(16_777_216);
    for cut in [0, 10, 33, 34, s0.len() / 2, s0.len() - 1] {
        assert!(win.decode(&s0[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = s0.clone();
    long.push(0);
    assert!(win.decode(&long).is_err());
    assert_eq!(win.image_ids().count(), 0);
}
