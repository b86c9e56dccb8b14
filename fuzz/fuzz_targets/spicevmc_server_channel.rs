#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spice_server::spicevmc::fuzz_channel(data);
});
