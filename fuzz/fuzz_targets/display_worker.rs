#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_server::display::fuzz::fuzz_worker(data);
});
