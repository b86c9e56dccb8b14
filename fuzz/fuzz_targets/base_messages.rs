//! Base messages, both directions: first 2 bytes = message type, rest = body.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_proto::base::fuzz_base_messages(data));
