#![no_main]
//! The server-side agent relay parsers: the client stream filter and the device dechunker.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_server::agent::fuzz_agent_stream(data);
});
