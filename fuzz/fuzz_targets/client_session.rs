#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_client_core::testing::fuzz_session(data));
