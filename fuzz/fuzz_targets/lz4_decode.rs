#![no_main]
//! LZ4 image payloads (after a u16 width and u16 height) decoded to BGRX.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_codecs::lz4::fuzz_decode(data);
});
