//! The software canvas shared by the SPICE server and client core: surfaces, every draw
//! operation of the display channel, image decoding through spice-codecs, and the image,
//! palette and GLZ caches.
