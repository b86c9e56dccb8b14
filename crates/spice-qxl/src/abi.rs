//! The QXL device ABI: every fixed structure the guest driver and the device share, laid out
//! byte for byte as spice-protocol's `spice/qxl_dev.h` declares them (all packed, little endian).
//!
//! Every structure here is plain bytes (`zerocopy` `FromBytes`/`IntoBytes`, alignment 1), so a
//! value can be copied out of untrusted guest memory with no validation beyond its length:
//! meaning is given to the fields only by the parsers in [`crate::parse`]. Unions of the C header
//! are kept as byte arrays of the union's size; the parsers read the member that the
//! discriminating field selects.
//!
//! Sizes and offsets are asserted in `tests/layout.rs` against the values a C compiler gives for
//! the header.

use zerocopy::little_endian::{I16, I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A QXL "physical" address: slot id and generation in the top bits, the offset inside the slot
/// below them (see [`crate::memory::SlotLayout`]).
pub type QxlPhysical = u64;

/// Red Hat's PCI vendor id, used by the QXL device.
pub const REDHAT_PCI_VENDOR_ID: u16 = 0x1b36;
/// PCI device id of the stable QXL device.
pub const QXL_DEVICE_ID_STABLE: u16 = 0x0100;
/// PCI revision of the QXL device this model implements (qxl-4, "stable v12").
pub const QXL_REVISION_STABLE_V12: u8 = 0x04;

/// `QXL_ROM_MAGIC`: "QXRO" as a little-endian u32.
pub const QXL_ROM_MAGIC: u32 = u32::from_le_bytes(*b"QXRO");
/// `QXL_RAM_MAGIC`: "QXRA" as a little-endian u32.
pub const QXL_RAM_MAGIC: u32 = u32::from_le_bytes(*b"QXRA");

/// Number of entries of the command ring.
pub const QXL_COMMAND_RING_SIZE: u32 = 32;
/// Number of entries of the cursor ring.
pub const QXL_CURSOR_RING_SIZE: u32 = 32;
/// Number of entries of the release ring.
pub const QXL_RELEASE_RING_SIZE: u32 = 8;
/// Size of the log buffer at the start of the RAM header.
pub const QXL_LOG_BUF_SIZE: usize = 4096;
/// Size of the opaque device data that follows a cursor command.
pub const QXL_CURSOR_DEVICE_DATA_SIZE: usize = 128;
/// Number of monitor heads the ROM's client monitors config can hold.
pub const QXL_ROM_MAX_HEADS: usize = 64;
/// Size of the client capabilities array in the ROM.
pub const QXL_ROM_CLIENT_CAPS_SIZE: usize = 58;

/// I/O port offsets of the QXL device (`QXL_IO_*`), relative to the I/O BAR.
pub mod io {
    /// The guest pushed to the command ring and wants the server woken.
    pub const NOTIFY_CMD: u32 = 0;
    /// The guest pushed to the cursor ring and wants the server woken.
    pub const NOTIFY_CURSOR: u32 = 1;
    /// Render `ram.update_area` of `ram.update_surface` now (synchronous).
    pub const UPDATE_AREA: u32 = 2;
    /// Recompute the interrupt line from `int_pending & int_mask`.
    pub const UPDATE_IRQ: u32 = 3;
    /// The guest ran out of memory: flush every pending release.
    pub const NOTIFY_OOM: u32 = 4;
    /// Reset the device.
    pub const RESET: u32 = 5;
    /// qxl-1: set a mode from the ROM's mode list (compat mode).
    pub const SET_MODE: u32 = 6;
    /// Log the NUL-terminated text in `ram.log_buf`.
    pub const LOG: u32 = 7;
    /// Register memory slot `val` from `ram.mem_slot`.
    pub const MEMSLOT_ADD: u32 = 8;
    /// Remove memory slot `val`.
    pub const MEMSLOT_DEL: u32 = 9;
    /// Detach the primary surface (before a mode change).
    pub const DETACH_PRIMARY: u32 = 10;
    /// Re-attach the primary surface.
    pub const ATTACH_PRIMARY: u32 = 11;
    /// Create the primary surface described by `ram.create_surface`.
    pub const CREATE_PRIMARY: u32 = 12;
    /// Destroy the primary surface.
    pub const DESTROY_PRIMARY: u32 = 13;
    /// Destroy surface `val` and wait.
    pub const DESTROY_SURFACE_WAIT: u32 = 14;
    /// Destroy every surface.
    pub const DESTROY_ALL_SURFACES: u32 = 15;
    /// Asynchronous [`UPDATE_AREA`].
    pub const UPDATE_AREA_ASYNC: u32 = 16;
    /// Asynchronous [`MEMSLOT_ADD`].
    pub const MEMSLOT_ADD_ASYNC: u32 = 17;
    /// Asynchronous [`CREATE_PRIMARY`].
    pub const CREATE_PRIMARY_ASYNC: u32 = 18;
    /// Asynchronous [`DESTROY_PRIMARY`].
    pub const DESTROY_PRIMARY_ASYNC: u32 = 19;
    /// Asynchronous surface destruction.
    pub const DESTROY_SURFACE_ASYNC: u32 = 20;
    /// Asynchronous [`DESTROY_ALL_SURFACES`].
    pub const DESTROY_ALL_SURFACES_ASYNC: u32 = 21;
    /// Render every pending command of every surface (asynchronous).
    pub const FLUSH_SURFACES_ASYNC: u32 = 22;
    /// Push the release chain being built to the release ring now.
    pub const FLUSH_RELEASE: u32 = 23;
    /// Read the guest's monitors config at `ram.monitors_config` (asynchronous).
    pub const MONITORS_CONFIG_ASYNC: u32 = 24;
    /// Number of I/O ports.
    pub const RANGE_SIZE: u32 = 25;
}

/// Interrupt bits of `ram.int_pending` / `ram.int_mask` (`QXL_INTERRUPT_*`).
pub mod interrupt {
    /// The display (command or release) ring needs the guest's attention.
    pub const DISPLAY: u32 = 1 << 0;
    /// The cursor ring needs the guest's attention.
    pub const CURSOR: u32 = 1 << 1;
    /// An asynchronous I/O completed.
    pub const IO_CMD: u32 = 1 << 2;
    /// The device found a guest bug.
    pub const ERROR: u32 = 1 << 3;
    /// A client connected or disconnected (`rom.client_present` changed).
    pub const CLIENT: u32 = 1 << 4;
    /// The client's monitors config in the ROM changed.
    pub const CLIENT_MONITORS_CONFIG: u32 = 1 << 5;
}

/// Command types of [`QxlCommand::ty`] (`QXLCmdType`).
pub mod cmd_type {
    /// No operation.
    pub const NOP: u32 = 0;
    /// A `QXLDrawable`.
    pub const DRAW: u32 = 1;
    /// A `QXLUpdateCmd`.
    pub const UPDATE: u32 = 2;
    /// A `QXLCursorCmd` (cursor ring only).
    pub const CURSOR: u32 = 3;
    /// A `QXLMessage`.
    pub const MESSAGE: u32 = 4;
    /// A `QXLSurfaceCmd`.
    pub const SURFACE: u32 = 5;
}

/// `QXL_COMMAND_FLAG_COMPAT`: the command uses the qxl-1 (compat) layouts.
pub const QXL_COMMAND_FLAG_COMPAT: u32 = 1 << 0;
/// `QXL_COMMAND_FLAG_COMPAT_16BPP`: colours are 16 bpp (x1r5g5b5) and must be widened.
pub const QXL_COMMAND_FLAG_COMPAT_16BPP: u32 = 2;

/// Draw types of `QXLDrawable::type` (`QXL_DRAW_*`).
pub mod draw_type {
    /// No drawing (the drawable still has a bbox and clip).
    pub const NOP: u8 = 0;
    /// Fill with a brush.
    pub const FILL: u8 = 1;
    /// Copy an image combined with a brush.
    pub const OPAQUE: u8 = 2;
    /// Copy an image.
    pub const COPY: u8 = 3;
    /// Copy a screen area to another place.
    pub const COPY_BITS: u8 = 4;
    /// Blend an image.
    pub const BLEND: u8 = 5;
    /// Paint black.
    pub const BLACKNESS: u8 = 6;
    /// Paint white.
    pub const WHITENESS: u8 = 7;
    /// Invert.
    pub const INVERS: u8 = 8;
    /// Ternary raster operation.
    pub const ROP3: u8 = 9;
    /// Stroke a path.
    pub const STROKE: u8 = 10;
    /// Draw glyphs.
    pub const TEXT: u8 = 11;
    /// Copy an image with a transparent colour key.
    pub const TRANSPARENT: u8 = 12;
    /// Copy an image with constant alpha.
    pub const ALPHA_BLEND: u8 = 13;
    /// Render-style composite.
    pub const COMPOSITE: u8 = 14;
}

/// Image types of `QXLImageDescriptor::type` (`SPICE_IMAGE_TYPE_*`).
pub mod image_type {
    /// A raw bitmap (`QXLBitmap`).
    pub const BITMAP: u8 = 0;
    /// QUIC-compressed data (`QXLQUICData`).
    pub const QUIC: u8 = 1;
    /// LZ with palette (not accepted from a guest).
    pub const LZ_PLT: u8 = 100;
    /// LZ RGB (not accepted from a guest).
    pub const LZ_RGB: u8 = 101;
    /// Another surface (`QXLSurfaceId`).
    pub const SURFACE: u8 = 104;
}

/// Flags of `QXLImageDescriptor::flags` (`QXLImageFlags`).
pub mod image_flags {
    /// The server may cache the image under its id.
    pub const CACHE: u8 = 1 << 0;
    /// The image has meaningful high (alpha) bits.
    pub const HIGH_BITS_SET: u8 = 1 << 1;
}

/// Flags of `QXLBitmap::flags` (`QXLBitmapFlags`).
pub mod bitmap_flags {
    /// `data` points straight at the pixels, not at a `QXLDataChunk` chain.
    pub const DIRECT: u8 = 1 << 0;
    /// The guest may still change the pixels.
    pub const UNSTABLE: u8 = 1 << 1;
    /// Rows are stored top row first.
    pub const TOP_DOWN: u8 = 1 << 2;
}

/// Bitmap formats of `QXLBitmap::format` (`SPICE_BITMAP_FMT_*`).
pub mod bitmap_fmt {
    /// Invalid.
    pub const INVALID: u8 = 0;
    /// 1 bpp, palette, little-endian bit order.
    pub const ONE_BIT_LE: u8 = 1;
    /// 1 bpp, palette, big-endian bit order.
    pub const ONE_BIT_BE: u8 = 2;
    /// 4 bpp, palette, low nibble first.
    pub const FOUR_BIT_LE: u8 = 3;
    /// 4 bpp, palette, high nibble first.
    pub const FOUR_BIT_BE: u8 = 4;
    /// 8 bpp, palette.
    pub const EIGHT_BIT: u8 = 5;
    /// 16 bpp x1r5g5b5.
    pub const SIXTEEN_BIT: u8 = 6;
    /// 24 bpp.
    pub const TWENTY_FOUR_BIT: u8 = 7;
    /// 32 bpp xRGB.
    pub const THIRTY_TWO_BIT: u8 = 8;
    /// 32 bpp ARGB.
    pub const RGBA: u8 = 9;
    /// 8 bpp alpha only.
    pub const EIGHT_BIT_A: u8 = 10;

    /// Bits per pixel of a format, `None` for an invalid or unknown one.
    pub fn bits_per_pixel(format: u8) -> Option<u32> {
        match format {
            ONE_BIT_LE | ONE_BIT_BE => Some(1),
            FOUR_BIT_LE | FOUR_BIT_BE => Some(4),
            EIGHT_BIT | EIGHT_BIT_A => Some(8),
            SIXTEEN_BIT => Some(16),
            TWENTY_FOUR_BIT => Some(24),
            THIRTY_TWO_BIT | RGBA => Some(32),
            _ => None,
        }
    }

    /// Whether a format carries its colours itself (no palette needed).
    pub fn is_rgb(format: u8) -> bool {
        matches!(
            format,
            SIXTEEN_BIT | TWENTY_FOUR_BIT | THIRTY_TWO_BIT | RGBA | EIGHT_BIT_A
        )
    }
}

/// Surface formats (`SPICE_SURFACE_FMT_*`).
pub mod surface_fmt {
    /// 1 bpp alpha.
    pub const A1: u32 = 1;
    /// 8 bpp alpha.
    pub const A8: u32 = 8;
    /// 16 bpp x1r5g5b5.
    pub const RGB555: u32 = 16;
    /// 32 bpp xRGB.
    pub const XRGB32: u32 = 32;
    /// 16 bpp r5g6b5.
    pub const RGB565: u32 = 80;
    /// 32 bpp ARGB.
    pub const ARGB32: u32 = 96;

    /// Bits per pixel of a surface format, `None` if unknown.
    pub fn bits_per_pixel(format: u32) -> Option<u32> {
        match format {
            A1 => Some(1),
            A8 => Some(8),
            RGB555 | RGB565 => Some(16),
            XRGB32 | ARGB32 => Some(32),
            _ => None,
        }
    }
}

/// Brush types of `QXLBrush::type` (`SPICE_BRUSH_TYPE_*`).
pub mod brush_type {
    /// No brush.
    pub const NONE: u32 = 0;
    /// A solid colour.
    pub const SOLID: u32 = 1;
    /// An image pattern.
    pub const PATTERN: u32 = 2;
}

/// Clip types of `QXLClip::type` (`SPICE_CLIP_TYPE_*`).
pub mod clip_type {
    /// No clipping.
    pub const NONE: u32 = 0;
    /// `data` points at a `QXLClipRects`.
    pub const RECTS: u32 = 1;
}

/// Line flags of `QXLLineAttr::flags` (`SPICE_LINE_FLAGS_*`).
pub mod line_flags {
    /// The line starts with a gap.
    pub const START_WITH_GAP: u8 = 1 << 2;
    /// The line is dashed: `style` points at `style_nseg` fixed-point lengths.
    pub const STYLED: u8 = 1 << 3;
}

/// Glyph raster flags of `QXLString::flags` (`SPICE_STRING_FLAGS_*`).
pub mod string_flags {
    /// 1 bit per glyph pixel.
    pub const RASTER_A1: u16 = 1 << 0;
    /// 4 bits per glyph pixel.
    pub const RASTER_A4: u16 = 1 << 1;
    /// 8 bits per glyph pixel.
    pub const RASTER_A8: u16 = 1 << 2;
    /// Glyph rows top row first.
    pub const RASTER_TOP_DOWN: u16 = 1 << 3;
}

/// Cursor command types of `QXLCursorCmd::type`.
pub mod cursor_cmd {
    /// Set the cursor shape and position.
    pub const SET: u8 = 0;
    /// Move the cursor.
    pub const MOVE: u8 = 1;
    /// Hide the cursor.
    pub const HIDE: u8 = 2;
    /// Set the cursor trail.
    pub const TRAIL: u8 = 3;
}

/// Surface command types of `QXLSurfaceCmd::type`.
pub mod surface_cmd {
    /// Create a surface.
    pub const CREATE: u8 = 0;
    /// Destroy a surface.
    pub const DESTROY: u8 = 1;
}

/// Memory slot groups as QEMU's QXL device uses them.
pub mod memslot_group {
    /// Slots of host memory (the VGA-mode framebuffer).
    pub const HOST: u32 = 0;
    /// Slots the guest registers.
    pub const GUEST: u32 = 1;
    /// Number of groups.
    pub const COUNT: u32 = 2;
}

/// `QXL_SURF_TYPE_PRIMARY`.
pub const QXL_SURF_TYPE_PRIMARY: u32 = 0;
/// `QXL_SURF_FLAG_KEEP_DATA`.
pub const QXL_SURF_FLAG_KEEP_DATA: u32 = 1 << 0;

macro_rules! abi_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
        #[repr(C, packed)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
    };
}

abi_struct! {
    /// `QXLPoint`: a point in pixels.
    pub struct QxlPoint { /** x */ pub x: I32, /** y */ pub y: I32 }
}
abi_struct! {
    /// `QXLPoint16`: a 16-bit point.
    pub struct QxlPoint16 { /** x */ pub x: I16, /** y */ pub y: I16 }
}
abi_struct! {
    /// `QXLPointFix`: a point in 28.4 fixed point.
    pub struct QxlPointFix { /** x */ pub x: I32, /** y */ pub y: I32 }
}
abi_struct! {
    /// `QXLRect`: top, left, bottom, right (in that order).
    pub struct QxlRect {
        /** top */ pub top: I32, /** left */ pub left: I32,
        /** bottom */ pub bottom: I32, /** right */ pub right: I32,
    }
}
abi_struct! {
    /// `QXLURect`: an unsigned rectangle (monitor heads in the ROM).
    pub struct QxlURect {
        /** top */ pub top: U32, /** left */ pub left: U32,
        /** bottom */ pub bottom: U32, /** right */ pub right: U32,
    }
}
abi_struct! {
    /// The client monitors config block inside [`QxlRom`].
    pub struct QxlRomMonitorsConfig {
        /** number of valid heads */ pub count: U16,
        /** padding */ pub padding: U16,
        /** heads */ pub heads: [QxlURect; QXL_ROM_MAX_HEADS],
    }
}
abi_struct! {
    /// `QXLRom`: the read-only BAR the device fills for the guest.
    pub struct QxlRom {
        /** [`QXL_ROM_MAGIC`] */ pub magic: U32,
        /** device id */ pub id: U32,
        /** bumped after each update-area */ pub update_id: U32,
        /** compression level */ pub compression_level: U32,
        /** log level */ pub log_level: U32,
        /** current mode (qxl-1) */ pub mode: U32,
        /** offset of the [`QxlModes`] list in the ROM */ pub modes_offset: U32,
        /** pages of RAM */ pub num_pages: U32,
        /** qxl-1 */ pub pages_offset: U32,
        /** qxl-1 */ pub draw_area_offset: U32,
        /** size of the primary surface area at the start of VRAM */ pub surface0_area_size: U32,
        /** offset of [`QxlRam`] inside the RAM BAR */ pub ram_header_offset: U32,
        /** multimedia clock */ pub mm_clock: U32,
        /** number of surfaces */ pub n_surfaces: U32,
        /** flags */ pub flags: U64,
        /** first usable slot */ pub slots_start: u8,
        /** last usable slot */ pub slots_end: u8,
        /** bits of generation in a QXL address */ pub slot_gen_bits: u8,
        /** bits of slot id in a QXL address */ pub slot_id_bits: u8,
        /** generation given to newly added slots */ pub slot_generation: u8,
        /** a client is connected */ pub client_present: u8,
        /** the client's capabilities */ pub client_capabilities: [u8; QXL_ROM_CLIENT_CAPS_SIZE],
        /** CRC-32 of `client_monitors_config` */ pub client_monitors_config_crc: U32,
        /** the client's monitors */ pub client_monitors_config: QxlRomMonitorsConfig,
    }
}
abi_struct! {
    /// `QXLMode`: one display mode of the ROM's mode list.
    pub struct QxlMode {
        /** mode id */ pub id: U32, /** width */ pub x_res: U32, /** height */ pub y_res: U32,
        /** bits per pixel */ pub bits: U32, /** stride */ pub stride: U32,
        /** width in mm */ pub x_mili: U32, /** height in mm */ pub y_mili: U32,
        /** orientation */ pub orientation: U32,
    }
}
abi_struct! {
    /// `QXLModes` header: `n_modes` [`QxlMode`]s follow.
    pub struct QxlModes { /** number of modes */ pub n_modes: U32 }
}
abi_struct! {
    /// `QXLCommand`: one entry of the command and cursor rings.
    pub struct QxlCommand {
        /** QXL address of the command structure */ pub data: U64,
        /** [`cmd_type`] */ pub ty: U32,
        /** padding */ pub padding: U32,
    }
}
abi_struct! {
    /// `QXLCommandExt`: a command with the slot group and flags the device adds.
    pub struct QxlCommandExt {
        /** the command */ pub cmd: QxlCommand,
        /** memory slot group */ pub group_id: U32,
        /** `QXL_COMMAND_FLAG_*` */ pub flags: U32,
    }
}
abi_struct! {
    /// `QXLMemSlot`: guest physical range for `QXL_IO_MEMSLOT_ADD`.
    pub struct QxlMemSlot { /** start */ pub mem_start: U64, /** end (exclusive) */ pub mem_end: U64 }
}
abi_struct! {
    /// `QXLSurfaceCreate`: the primary surface for `QXL_IO_CREATE_PRIMARY`.
    pub struct QxlSurfaceCreate {
        /** width */ pub width: U32, /** height */ pub height: U32,
        /** stride (negative: bottom-up) */ pub stride: I32,
        /** [`surface_fmt`] */ pub format: U32, /** position */ pub position: U32,
        /** mouse mode */ pub mouse_mode: U32, /** flags */ pub flags: U32,
        /** [`QXL_SURF_TYPE_PRIMARY`] */ pub ty: U32,
        /** QXL address of the pixels */ pub mem: U64,
    }
}
abi_struct! {
    /// The header shared by every ring (`SPICE_RING_DECLARE`).
    pub struct QxlRingHeader {
        /** number of items (power of two) */ pub num_items: U32,
        /** producer index (free running) */ pub prod: U32,
        /** producer notifies when `prod` reaches this */ pub notify_on_prod: U32,
        /** consumer index (free running) */ pub cons: U32,
        /** consumer notifies when `cons` reaches this */ pub notify_on_cons: U32,
    }
}
abi_struct! {
    /// `QXLCommandRing` (and `QXLCursorRing`, the same shape).
    pub struct QxlCommandRing {
        /** indices */ pub hdr: QxlRingHeader,
        /** items */ pub items: [QxlCommand; QXL_COMMAND_RING_SIZE as usize],
    }
}
abi_struct! {
    /// `QXLReleaseRing`: release ids.
    pub struct QxlReleaseRing {
        /** indices */ pub hdr: QxlRingHeader,
        /** items */ pub items: [U64; QXL_RELEASE_RING_SIZE as usize],
    }
}
abi_struct! {
    /// `QXLRam`: the RAM header at `rom.ram_header_offset` of the RAM BAR.
    pub struct QxlRam {
        /** [`QXL_RAM_MAGIC`] */ pub magic: U32,
        /** [`interrupt`] bits pending */ pub int_pending: U32,
        /** [`interrupt`] bits enabled */ pub int_mask: U32,
        /** text for `QXL_IO_LOG` */ pub log_buf: [u8; QXL_LOG_BUF_SIZE],
        /** command ring */ pub cmd_ring: QxlCommandRing,
        /** cursor ring */ pub cursor_ring: QxlCommandRing,
        /** release ring */ pub release_ring: QxlReleaseRing,
        /** area for `QXL_IO_UPDATE_AREA` */ pub update_area: QxlRect,
        /** surface for `QXL_IO_UPDATE_AREA` */ pub update_surface: U32,
        /** slot for `QXL_IO_MEMSLOT_ADD` */ pub mem_slot: QxlMemSlot,
        /** surface for `QXL_IO_CREATE_PRIMARY` */ pub create_surface: QxlSurfaceCreate,
        /** flags */ pub flags: U64,
        /** QXL address of a [`QxlMonitorsConfig`] */ pub monitors_config: U64,
    }
}
abi_struct! {
    /// `QXLReleaseInfo`: the first field of every command; `id` in, `next` out.
    pub struct QxlReleaseInfo { /** id (guest) / next id (device) */ pub id: U64 }
}
abi_struct! {
    /// `QXLDataChunk` header; `data_size` bytes of data follow it.
    pub struct QxlDataChunk {
        /** bytes of data after the header */ pub data_size: U32,
        /** previous chunk (ignored by the device) */ pub prev_chunk: U64,
        /** next chunk, 0 ends the chain */ pub next_chunk: U64,
    }
}
abi_struct! {
    /// `QXLMessage`: a NUL-terminated text follows.
    pub struct QxlMessage { /** release info */ pub release_info: QxlReleaseInfo }
}
abi_struct! {
    /// `QXLUpdateCmd`.
    pub struct QxlUpdateCmd {
        /** release info */ pub release_info: QxlReleaseInfo,
        /** area */ pub area: QxlRect,
        /** id echoed by `notify_update` */ pub update_id: U32,
        /** surface */ pub surface_id: U32,
    }
}
abi_struct! {
    /// `QXLCompatUpdateCmd` (qxl-1: no surface id).
    pub struct QxlCompatUpdateCmd {
        /** release info */ pub release_info: QxlReleaseInfo,
        /** area */ pub area: QxlRect,
        /** id echoed by `notify_update` */ pub update_id: U32,
    }
}
abi_struct! {
    /// `QXLCursorHeader`.
    pub struct QxlCursorHeader {
        /** cache id */ pub unique: U64, /** `SPICE_CURSOR_TYPE_*` */ pub ty: U16,
        /** width */ pub width: U16, /** height */ pub height: U16,
        /** hot spot x */ pub hot_spot_x: U16, /** hot spot y */ pub hot_spot_y: U16,
    }
}
abi_struct! {
    /// `QXLCursor`: a cursor shape; its first data chunk is inline.
    pub struct QxlCursor {
        /** header */ pub header: QxlCursorHeader,
        /** declared size of the shape data */ pub data_size: U32,
        /** first chunk */ pub chunk: QxlDataChunk,
    }
}
abi_struct! {
    /// `QXLCursorCmd`.
    pub struct QxlCursorCmd {
        /** release info */ pub release_info: QxlReleaseInfo,
        /** [`cursor_cmd`] */ pub ty: u8,
        /** union: [`QxlCursorSet`], [`QxlCursorTrail`] or a [`QxlPoint16`] */ pub u: [u8; 13],
        /** opaque */ pub device_data: [u8; QXL_CURSOR_DEVICE_DATA_SIZE],
    }
}
abi_struct! {
    /// The `set` member of `QXLCursorCmd`'s union.
    pub struct QxlCursorSet {
        /** position */ pub position: QxlPoint16, /** visible */ pub visible: u8,
        /** QXL address of a [`QxlCursor`] */ pub shape: U64,
    }
}
abi_struct! {
    /// The `trail` member of `QXLCursorCmd`'s union.
    pub struct QxlCursorTrail { /** length */ pub length: U16, /** frequency */ pub frequency: U16 }
}
abi_struct! {
    /// `QXLRasterGlyph` header; the glyph's pixels follow.
    pub struct QxlRasterGlyph {
        /** render position */ pub render_pos: QxlPoint,
        /** origin */ pub glyph_origin: QxlPoint,
        /** width */ pub width: U16, /** height */ pub height: U16,
    }
}
abi_struct! {
    /// `QXLString`: glyphs in a chunk chain whose first chunk is inline.
    pub struct QxlString {
        /** bytes of glyph data */ pub data_size: U32, /** number of glyphs */ pub length: U16,
        /** [`string_flags`] */ pub flags: U16, /** first chunk */ pub chunk: QxlDataChunk,
    }
}
abi_struct! {
    /// `QXLCopyBits`.
    pub struct QxlCopyBits { /** source position */ pub src_pos: QxlPoint }
}
abi_struct! {
    /// `QXLPattern`: the pattern member of a brush.
    pub struct QxlPattern { /** QXL address of a [`QxlImage`] */ pub pat: U64, /** origin */ pub pos: QxlPoint }
}
abi_struct! {
    /// `QXLBrush`.
    pub struct QxlBrush {
        /** [`brush_type`] */ pub ty: U32,
        /** union: colour (u32) or [`QxlPattern`] */ pub u: [u8; 16],
    }
}
abi_struct! {
    /// `QXLQMask`.
    pub struct QxlQMask {
        /** `SPICE_MASK_FLAGS_*` */ pub flags: u8, /** position */ pub pos: QxlPoint,
        /** QXL address of a [`QxlImage`], 0 for none */ pub bitmap: U64,
    }
}
abi_struct! {
    /// `QXLFill`.
    pub struct QxlFill { /** brush */ pub brush: QxlBrush, /** rop */ pub rop_descriptor: U16, /** mask */ pub mask: QxlQMask }
}
abi_struct! {
    /// `QXLOpaque`.
    pub struct QxlOpaque {
        /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
        /** brush */ pub brush: QxlBrush, /** rop */ pub rop_descriptor: U16,
        /** scale mode */ pub scale_mode: u8, /** mask */ pub mask: QxlQMask,
    }
}
abi_struct! {
    /// `QXLCopy` (and `QXLBlend`, the same layout).
    pub struct QxlCopy {
        /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
        /** rop */ pub rop_descriptor: U16, /** scale mode */ pub scale_mode: u8,
        /** mask */ pub mask: QxlQMask,
    }
}
abi_struct! {
    /// `QXLTransparent`.
    pub struct QxlTransparent {
        /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
        /** colour key */ pub src_color: U32, /** true colour */ pub true_color: U32,
    }
}
abi_struct! {
    /// `QXLAlphaBlend`.
    pub struct QxlAlphaBlend {
        /** `SPICE_ALPHA_FLAGS_*` */ pub alpha_flags: U16, /** alpha */ pub alpha: u8,
        /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
    }
}
abi_struct! {
    /// `QXLCompatAlphaBlend` (qxl-1: no flags).
    pub struct QxlCompatAlphaBlend {
        /** alpha */ pub alpha: u8, /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
    }
}
abi_struct! {
    /// `QXLRop3`.
    pub struct QxlRop3 {
        /** image */ pub src_bitmap: U64, /** source area */ pub src_area: QxlRect,
        /** brush */ pub brush: QxlBrush, /** ternary rop */ pub rop3: u8,
        /** scale mode */ pub scale_mode: u8, /** mask */ pub mask: QxlQMask,
    }
}
abi_struct! {
    /// `QXLLineAttr`.
    pub struct QxlLineAttr {
        /** [`line_flags`] */ pub flags: u8, /** join */ pub join_style: u8,
        /** end */ pub end_style: u8, /** dash segments */ pub style_nseg: u8,
        /** width (28.4) */ pub width: I32, /** miter limit (28.4) */ pub miter_limit: I32,
        /** QXL address of `style_nseg` 28.4 values */ pub style: U64,
    }
}
abi_struct! {
    /// `QXLStroke`.
    pub struct QxlStroke {
        /** QXL address of a [`QxlPath`] */ pub path: U64, /** line attributes */ pub attr: QxlLineAttr,
        /** brush */ pub brush: QxlBrush, /** fore mode */ pub fore_mode: U16, /** back mode */ pub back_mode: U16,
    }
}
abi_struct! {
    /// `QXLText`.
    pub struct QxlText {
        /** QXL address of a [`QxlString`] */ pub str: U64, /** background area */ pub back_area: QxlRect,
        /** foreground */ pub fore_brush: QxlBrush, /** background */ pub back_brush: QxlBrush,
        /** fore mode */ pub fore_mode: U16, /** back mode */ pub back_mode: U16,
    }
}
abi_struct! {
    /// `QXLBlackness` (and `QXLInvers`, `QXLWhiteness`).
    pub struct QxlBlackness { /** mask */ pub mask: QxlQMask }
}
abi_struct! {
    /// `QXLClip`.
    pub struct QxlClip { /** [`clip_type`] */ pub ty: U32, /** QXL address of a [`QxlClipRects`] */ pub data: U64 }
}
abi_struct! {
    /// `QXLTransform`: a 2x3 matrix of 16.16 fixed values.
    pub struct QxlTransform { /** t00, t01, t02, t10, t11, t12 */ pub t: [U32; 6] }
}
abi_struct! {
    /// `QXLComposite`.
    pub struct QxlComposite {
        /** operator and filters */ pub flags: U32, /** source image */ pub src: U64,
        /** source transform, may be 0 */ pub src_transform: U64, /** mask image, may be 0 */ pub mask: U64,
        /** mask transform, may be 0 */ pub mask_transform: U64,
        /** source origin */ pub src_origin: QxlPoint16, /** mask origin */ pub mask_origin: QxlPoint16,
    }
}
/// Size of the draw-type union at the end of a drawable.
pub const QXL_DRAWABLE_UNION_SIZE: usize = 68;
abi_struct! {
    /// `QXLCompatDrawable` (qxl-1 layout).
    pub struct QxlCompatDrawable {
        /** release info */ pub release_info: QxlReleaseInfo, /** effect */ pub effect: u8,
        /** [`draw_type`] */ pub ty: u8, /** bitmap offset */ pub bitmap_offset: U16,
        /** bitmap area */ pub bitmap_area: QxlRect, /** bounding box */ pub bbox: QxlRect,
        /** clip */ pub clip: QxlClip, /** time */ pub mm_time: U32,
        /** draw-type union */ pub u: [u8; QXL_DRAWABLE_UNION_SIZE],
    }
}
abi_struct! {
    /// `QXLDrawable`.
    pub struct QxlDrawable {
        /** release info */ pub release_info: QxlReleaseInfo, /** target surface */ pub surface_id: U32,
        /** effect */ pub effect: u8, /** [`draw_type`] */ pub ty: u8, /** self bitmap */ pub self_bitmap: u8,
        /** self bitmap area */ pub self_bitmap_area: QxlRect, /** bounding box */ pub bbox: QxlRect,
        /** clip */ pub clip: QxlClip, /** time */ pub mm_time: U32,
        /** surfaces this drawable reads */ pub surfaces_dest: [I32; 3],
        /** areas read from them */ pub surfaces_rects: [QxlRect; 3],
        /** draw-type union */ pub u: [u8; QXL_DRAWABLE_UNION_SIZE],
    }
}
abi_struct! {
    /// `QXLSurface`: the create member of a surface command.
    pub struct QxlSurface {
        /** [`surface_fmt`] */ pub format: U32, /** width */ pub width: U32, /** height */ pub height: U32,
        /** stride */ pub stride: I32, /** QXL address of the pixels */ pub data: U64,
    }
}
abi_struct! {
    /// `QXLSurfaceCmd`.
    pub struct QxlSurfaceCmd {
        /** release info */ pub release_info: QxlReleaseInfo, /** surface */ pub surface_id: U32,
        /** [`surface_cmd`] */ pub ty: u8, /** flags */ pub flags: U32, /** create data */ pub u: QxlSurface,
    }
}
abi_struct! {
    /// `QXLClipRects`: `num_rects` rectangles in a chunk chain whose first chunk is inline.
    pub struct QxlClipRects { /** number of rectangles */ pub num_rects: U32, /** first chunk */ pub chunk: QxlDataChunk }
}
abi_struct! {
    /// `QXLPathSeg` header; `count` [`QxlPointFix`] follow.
    pub struct QxlPathSeg { /** `SPICE_PATH_*` */ pub flags: U32, /** points */ pub count: U32 }
}
abi_struct! {
    /// `QXLPath`: segments in a chunk chain whose first chunk is inline.
    pub struct QxlPath { /** declared data size */ pub data_size: U32, /** first chunk */ pub chunk: QxlDataChunk }
}
abi_struct! {
    /// `QXLImageDescriptor`.
    pub struct QxlImageDescriptor {
        /** cache id (group | unique << 32) */ pub id: U64, /** [`image_type`] */ pub ty: u8,
        /** [`image_flags`] */ pub flags: u8, /** width */ pub width: U32, /** height */ pub height: U32,
    }
}
abi_struct! {
    /// `QXLPalette` header; `num_ents` u32 colours follow.
    pub struct QxlPalette { /** cache id */ pub unique: U64, /** entries */ pub num_ents: U16 }
}
abi_struct! {
    /// `QXLBitmap`.
    pub struct QxlBitmap {
        /** [`bitmap_fmt`] */ pub format: u8, /** [`bitmap_flags`] */ pub flags: u8,
        /** width */ pub x: U32, /** height */ pub y: U32, /** bytes per row */ pub stride: U32,
        /** QXL address of a [`QxlPalette`], 0 for none */ pub palette: U64,
        /** QXL address of the pixels or of a chunk chain */ pub data: U64,
    }
}
/// Size of the variable union of [`QxlImage`] (the size of [`QxlBitmap`]).
pub const QXL_IMAGE_UNION_SIZE: usize = 30;
abi_struct! {
    /// `QXLImage`.
    pub struct QxlImage {
        /** descriptor */ pub descriptor: QxlImageDescriptor,
        /** union: [`QxlBitmap`], QUIC `data_size` + inline chunk, or a surface id */
        pub u: [u8; QXL_IMAGE_UNION_SIZE],
    }
}
abi_struct! {
    /// `QXLHead`: one monitor of the guest's monitors config.
    pub struct QxlHead {
        /** id */ pub id: U32, /** surface */ pub surface_id: U32, /** width */ pub width: U32,
        /** height */ pub height: U32, /** x */ pub x: U32, /** y */ pub y: U32, /** flags */ pub flags: U32,
    }
}
abi_struct! {
    /// `QXLMonitorsConfig` header; `count` [`QxlHead`]s follow.
    pub struct QxlMonitorsConfig { /** heads */ pub count: U16, /** 0: no limit */ pub max_allowed: U16 }
}

/// Byte offsets inside [`QxlRam`] that the device and the guest touch individually.
pub mod ram_offsets {
    /// `int_pending`.
    pub const INT_PENDING: u64 = 4;
    /// `int_mask`.
    pub const INT_MASK: u64 = 8;
    /// `log_buf`.
    pub const LOG_BUF: u64 = 12;
    /// `cmd_ring`.
    pub const CMD_RING: u64 = 4108;
    /// `cursor_ring`.
    pub const CURSOR_RING: u64 = 4640;
    /// `release_ring`.
    pub const RELEASE_RING: u64 = 5172;
    /// `update_area`.
    pub const UPDATE_AREA: u64 = 5256;
    /// `update_surface`.
    pub const UPDATE_SURFACE: u64 = 5272;
    /// `mem_slot`.
    pub const MEM_SLOT: u64 = 5276;
    /// `create_surface`.
    pub const CREATE_SURFACE: u64 = 5292;
    /// `flags`.
    pub const FLAGS: u64 = 5332;
    /// `monitors_config`.
    pub const MONITORS_CONFIG: u64 = 5340;
}

impl QxlRect {
    /// A rectangle from its four edges.
    pub fn new(top: i32, left: i32, bottom: i32, right: i32) -> Self {
        QxlRect {
            top: top.into(),
            left: left.into(),
            bottom: bottom.into(),
            right: right.into(),
        }
    }
}

impl QxlPoint {
    /// A point.
    pub fn new(x: i32, y: i32) -> Self {
        QxlPoint {
            x: x.into(),
            y: y.into(),
        }
    }
}
