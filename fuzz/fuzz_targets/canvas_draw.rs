#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_canvas::fuzz_draw(data));
