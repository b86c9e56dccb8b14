//! Link stage: link header/message/reply decoders and both link state machines.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_proto::link::fuzz_link_stage(data));
