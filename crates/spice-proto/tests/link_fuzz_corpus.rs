//! Replays every file of fuzz/corpus/link_stage/ through the fuzz target's function.

#[test]
fn replay_link_stage_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/link_stage");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        spice_proto::link::fuzz_link_stage(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus");
}
