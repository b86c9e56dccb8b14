//! A sans-IO SPICE client core: channels, caches, surfaces and decoding.
