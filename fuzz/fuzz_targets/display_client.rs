#![no_main]
//! display channel client messages: 2 bytes LE message type, then the body; decode, and if
//! that succeeds re-encode and decode again (see `spice_proto::display::fuzz_client`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spice_proto::display::fuzz_client(data);
});
