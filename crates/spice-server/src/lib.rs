//! A reference SPICE server composed from spice-proto, spice-codecs and spice-qxl.

pub mod demo;
