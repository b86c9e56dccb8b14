//! The QXL device model: guest memory with checked address translation, QXL commands and rings.
//!
//! - [`abi`]: the device ABI structures of spice-protocol's `qxl_dev.h`, byte for byte.
//! - [`memory`]: the [`GuestMemory`] trait the host implements, [`VecMemory`] for tests and the
//!   demo, and [`MemSlotTable`], the checked translation of QXL addresses.
//! - [`parse`]: commands read out of guest memory into owned, validated values
//!   ([`ParsedCommand`], [`ParsedDrawable`], [`ParsedImage`], ...), with caps from the host.
//! - [`convert`]: parsed drawables and cursor commands turned into spice-proto display and
//!   cursor messages ([`ConvertedDrawable`], [`ConvertedCursor`]), each image left in an
//!   [`ImageSlot`] for the server to encode or take from a cache per client.
//! - [`ring`]: the producer/consumer/notify rings.
//! - [`device`]: [`QxlDevice`], the device (ROM, RAM header, I/O ports, interrupts, release
//!   chains) and [`QxlInterface`], the hooks a SPICE server calls (spice-server's
//!   `QXLInterface`).
//! - [`guest`]: [`GuestDriver`], a small guest driver (allocator inside a memory slot, command
//!   builders, release collection) for tests and the demo desktop.
//!
//! Nothing a guest writes can make this crate panic, loop without bound or allocate more than
//! the host's [`ParseLimits`]: see `tests/hostile.rs` and the `qxl_commands` fuzz target
//! ([`fuzz::fuzz_commands`]).

#![forbid(unsafe_code)]

pub mod abi;
pub mod convert;
pub mod device;
pub mod fuzz;
pub mod guest;
pub mod memory;
pub mod parse;
pub mod ring;

pub use convert::{
    ConvertError, ConvertedCursor, ConvertedDrawable, CursorCaching, ImageRole, ImageSlot,
    SlotContent,
};
pub use device::{
    BarLayout, ClientHead, DevInitInfo, DeviceConfig, DeviceError, DeviceMode, IoRequest,
    PrimarySurface, QxlDevice, QxlInterface,
};
pub use guest::{GuestDriver, GuestError};
pub use memory::{
    GuestMemory, MemSlot, MemSlotTable, MemoryError, SlotLayout, TranslateError, VecMemory,
};
pub use parse::{
    Brush, Clip, CommandError, CommandExt, CursorOp, DrawOp, ImageKind, ParseError, ParseLimits,
    ParsedBitmap, ParsedCommand, ParsedDrawable, ParsedImage, ReleaseInfoExt,
};
pub use ring::{RingError, RingLayout};
