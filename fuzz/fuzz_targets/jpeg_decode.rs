#![no_main]
//! JPEG images (and the JPEG_ALPHA body split) decoded to BGRX.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_codecs::jpeg::fuzz_decode(data);
});
