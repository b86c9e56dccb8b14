#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_codecs::audio::fuzz_decode(data));
