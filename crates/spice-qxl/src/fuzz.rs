pub fn fuzz_commands(_d: &[u8]) {}
