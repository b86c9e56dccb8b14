#![no_main]
//! The QXL device over hostile guest RAM: rings, commands, releases and port reads.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_qxl::fuzz::fuzz_commands(data);
});
