#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_server::server::fuzz_server_channel(data));
