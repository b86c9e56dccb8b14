//! The QXL device model: guest memory with checked address translation, QXL commands and rings.
