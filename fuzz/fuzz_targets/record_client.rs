#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_proto::record::fuzz_client(data));
