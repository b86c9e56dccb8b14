//! Helpers shared by the per-channel message tests: body encoding, the fuzz-corpus
//! replay and the encode/decode round trip of the proptest properties.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

/// The encoded body of `m`.
pub fn enc<'a>(m: &impl ChannelMessage<'a>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).unwrap();
    v
}

/// Runs `f` over every file of the committed fuzz corpus `target`; fails if the corpus
/// is missing or empty.
pub fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        f(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

/// `m` encoded and decoded on channel `ch` gives `m` back, re-encodes to the same
/// bytes, and its name matches the name table.
pub fn roundtrip<M: ChannelMessage<'static> + PartialEq + std::fmt::Debug>(ch: ChannelType, m: &M) {
    let bytes: &'static [u8] = Vec::leak(enc(m));
    let back = M::decode_body(ch, m.msg_type(), bytes).unwrap();
    assert_eq!(&back, m);
    assert_eq!(enc(&back), bytes);
    assert_eq!(M::name_of(ch, m.msg_type()), Some(m.name()));
}
