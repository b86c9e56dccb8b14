//! Replays the `display_worker` fuzz corpus through the same entry point.

#[test]
fn display_worker_corpus_replays() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/display_worker"
    );
    let mut n = 0;
    let mut rendered = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let stats = spice_server::display::fuzz::fuzz_worker(&data);
        assert_eq!(stats.released, stats.commands, "{path:?}: {stats:?}");
        rendered += stats.rendered;
        n += 1;
    }
    assert!(n > 0, "empty corpus");
    assert!(rendered > 0, "the valid seeds draw");
    // Hostile bytes of every shape as well.
    for len in [0usize, 1, 100, 4096, 9384] {
        let _ = spice_server::display::fuzz::fuzz_worker(&vec![0xa5; len]);
    }
}
