//! Replays every file of fuzz/corpus/base_messages/ through the fuzz target's function.

#[test]
fn replay_base_messages_corpus() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/base_messages"
    );
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        spice_proto::base::fuzz_base_messages(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus");
}
