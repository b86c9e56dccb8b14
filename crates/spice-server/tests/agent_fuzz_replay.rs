//! Replays the `agent_stream` fuzz corpus through the relay's parsers.

#[test]
fn agent_stream_corpus_replays() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/agent_stream"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = spice_server::agent::fuzz_agent_stream(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus missing ({n} files)");
}
