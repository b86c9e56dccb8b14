//! Criterion benches for the SPICE crates live in `benches/`; this library is empty.
