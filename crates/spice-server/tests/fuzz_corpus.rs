//! Replays fuzz/corpus/server_channel through the fuzz target's function.

#[test]
fn server_channel_corpus_replays() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/server_channel"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        spice_server::server::fuzz_server_channel(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus has only {n} files");
}
