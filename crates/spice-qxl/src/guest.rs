//! A small guest driver: what a QXL driver in the guest does, for tests and the demo desktop.
//!
//! It registers one memory slot over the guest RAM of the RAM BAR, allocates command
//! structures, images and chunk chains inside it with a first-fit free list, pushes commands to
//! the command and cursor rings (reporting [`GuestError::RingFull`] instead of blocking), and
//! collects released resources from the release ring, following each chain of release infos
//! through their `next` fields and freeing what each command used.
//!
//! The release id of a command is the QXL address of the command structure (whose first field
//! is its `QXLReleaseInfo`), as the Windows driver does.

use std::collections::HashMap;

use thiserror::Error;
use zerocopy::{FromZeros, IntoBytes};

use crate::abi::{self, QxlPhysical, cmd_type, io, memslot_group, ram_offsets};
use crate::device::{DeviceError, QxlDevice};
use crate::memory::{GuestMemory, MemoryError, SlotLayout, read_struct, read_u64, write_u32};
use crate::parse::Rect;
use crate::ring::{RingError, RingLayout};

/// What the guest driver could not do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The ring is full: collect releases / wait for the device's notification and retry.
    #[error("ring full")]
    RingFull,
    /// No room left in the memory slot.
    #[error("out of guest memory ({0} bytes requested)")]
    OutOfMemory(u64),
    /// The release ring named an id that is not outstanding (released twice, or garbage).
    #[error("release ring returned unknown id {0:#x}")]
    UnknownRelease(u64),
    /// A ring is corrupt.
    #[error(transparent)]
    Ring(RingError),
    /// The device refused a port write.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Memory access failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl From<RingError> for GuestError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Full => GuestError::RingFull,
            other => GuestError::Ring(other),
        }
    }
}

/// A block of the slot (offset relative to the slot start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alloc {
    /// Offset inside the slot.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// First-fit free-list allocator over `[0, size)`, 8-byte aligned, coalescing on free.
#[derive(Debug, Clone)]
pub struct Allocator {
    free: Vec<(u64, u64)>,
    used: u64,
}

impl Allocator {
    /// An allocator over `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        let start = start.next_multiple_of(8);
        Allocator {
            free: if end > start {
                vec![(start, end - start)]
            } else {
                Vec::new()
            },
            used: 0,
        }
    }

    /// Allocate `size` bytes.
    pub fn alloc(&mut self, size: u64) -> Option<Alloc> {
        let size = size.max(1).checked_next_multiple_of(8)?;
        let i = self.free.iter().position(|&(_, len)| len >= size)?;
        let (off, len) = self.free[i];
        if len == size {
            self.free.remove(i);
        } else {
            self.free[i] = (off + size, len - size);
        }
        self.used += size;
        Some(Alloc { offset: off, size })
    }

    /// Give a block back.
    pub fn free(&mut self, a: Alloc) {
        let i = self.free.partition_point(|&(off, _)| off < a.offset);
        self.free.insert(i, (a.offset, a.size));
        self.used -= a.size;
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }

    /// The largest free block, in bytes.
    pub fn largest_free(&self) -> u64 {
        self.free.iter().map(|&(_, len)| len).max().unwrap_or(0)
    }

    /// Bytes allocated.
    pub fn used(&self) -> u64 {
        self.used
    }
}

/// Which ring a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    Cmd,
    Cursor,
}

#[derive(Debug, Clone)]
struct Resource {
    allocs: Vec<Alloc>,
    /// Surface whose pixel memory to free with this resource (a destroy command).
    frees_surface: Option<u32>,
}

/// The guest driver.
#[derive(Debug)]
pub struct GuestDriver {
    layout: SlotLayout,
    slot_id: u32,
    generation: u32,
    base_host: u64,
    alloc: Allocator,
    cmd_ring: RingLayout,
    cursor_ring: RingLayout,
    release_ring: RingLayout,
    ram_header: u64,
    outstanding: HashMap<u64, Resource>,
    surfaces: HashMap<u32, Alloc>,
    primary: Option<Alloc>,
    released: u64,
}

impl GuestDriver {
    /// Set the driver up on a device as a qxl-2+ driver does: register memory slot `slot_id`
    /// over the RAM BAR below the RAM header (`QXL_IO_MEMSLOT_ADD`), read the slot generation
    /// and address bits from the ROM, and enable every interrupt.
    pub fn attach<M: GuestMemory>(
        dev: &mut QxlDevice<M>,
        slot_id: u32,
    ) -> Result<Self, GuestError> {
        let bars = dev.config().bars;
        let h = dev.ram_header_offset();
        let slot_len = bars.ram_header_offset();
        let ms = abi::QxlMemSlot {
            mem_start: bars.ram_guest_phys.into(),
            mem_end: (bars.ram_guest_phys + slot_len).into(),
        };
        dev.memory_mut()
            .write(h + ram_offsets::MEM_SLOT, ms.as_bytes())?;
        dev.io_write(io::MEMSLOT_ADD, slot_id)?;
        let rom = dev.rom()?;
        let layout = SlotLayout {
            num_groups: memslot_group::COUNT,
            num_slots: u32::from(rom.slots_end) + 1,
            gen_bits: rom.slot_gen_bits,
            id_bits: rom.slot_id_bits,
        };
        write_u32(dev.memory_mut(), h + ram_offsets::INT_MASK, u32::MAX)?;
        Ok(GuestDriver {
            layout,
            slot_id,
            generation: u32::from(rom.slot_generation),
            base_host: bars.ram_offset,
            // Offset 0 stays unused so no release id or address is 0.
            alloc: Allocator::new(64, slot_len),
            cmd_ring: dev.cmd_ring(),
            cursor_ring: dev.cursor_ring(),
            release_ring: dev.release_ring(),
            ram_header: h,
            outstanding: HashMap::new(),
            surfaces: HashMap::new(),
            primary: None,
            released: 0,
        })
    }

    /// The QXL address of an offset inside the driver's slot.
    pub fn addr(&self, offset: u64) -> QxlPhysical {
        self.layout.encode(self.slot_id, self.generation, offset)
    }

    fn host(&self, offset: u64) -> u64 {
        self.base_host + offset
    }

    /// Resources pushed and not yet released.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Resources released so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Bytes of the slot in use.
    pub fn memory_used(&self) -> u64 {
        self.alloc.used()
    }

    fn alloc_write<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        data: &[u8],
        allocs: &mut Vec<Alloc>,
    ) -> Result<Alloc, GuestError> {
        let a = match self.alloc.alloc(data.len() as u64) {
            Some(a) => a,
            None => {
                self.free_all(allocs);
                return Err(GuestError::OutOfMemory(data.len() as u64));
            }
        };
        allocs.push(a);
        if let Err(e) = mem.write(self.host(a.offset), data) {
            self.free_all(allocs);
            return Err(e.into());
        }
        Ok(a)
    }

    fn free_all(&mut self, allocs: &mut Vec<Alloc>) {
        for a in allocs.drain(..) {
            self.alloc.free(a);
        }
    }

    fn ring_full<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        ring: Ring,
    ) -> Result<bool, GuestError> {
        let r = if ring == Ring::Cmd {
            self.cmd_ring
        } else {
            self.cursor_ring
        };
        let i = r.indices(mem)?;
        if i.prod.wrapping_sub(i.cons) == r.num_items {
            // Ask for a notification when the device consumes (SPICE_RING_PROD_WAIT).
            write_u32(mem, r.offset + 16, i.cons.wrapping_add(1))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Push a built command; its first allocation holds the command structure.
    fn submit<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        ring: Ring,
        ty: u32,
        mut allocs: Vec<Alloc>,
        frees_surface: Option<u32>,
    ) -> Result<u64, GuestError> {
        let id = self.addr(allocs[0].offset);
        // The release info (first field) carries the id.
        if let Err(e) = mem.write(self.host(allocs[0].offset), &id.to_le_bytes()) {
            self.free_all(&mut allocs);
            return Err(e.into());
        }
        let r = if ring == Ring::Cmd {
            self.cmd_ring
        } else {
            self.cursor_ring
        };
        let cmd = abi::QxlCommand {
            data: id.into(),
            ty: ty.into(),
            padding: 0.into(),
        };
        match r.push(mem, cmd.as_bytes()) {
            Ok(_notify) => {
                self.outstanding.insert(
                    id,
                    Resource {
                        allocs,
                        frees_surface,
                    },
                );
                Ok(id)
            }
            Err(e) => {
                self.free_all(&mut allocs);
                Err(e.into())
            }
        }
    }

    /// Write a chunk chain holding `data` in chunks of at most `chunk_size` bytes; returns the
    /// offset of the first chunk.
    fn write_chunks<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        data: &[u8],
        chunk_size: usize,
        allocs: &mut Vec<Alloc>,
    ) -> Result<u64, GuestError> {
        let pieces: Vec<&[u8]> = if data.is_empty() {
            vec![data]
        } else {
            data.chunks(chunk_size.max(1)).collect()
        };
        let mut next = 0u64;
        let mut first = 0;
        for piece in pieces.iter().rev() {
            let hdr = abi::QxlDataChunk {
                data_size: (piece.len() as u32).into(),
                prev_chunk: 0.into(),
                next_chunk: next.into(),
            };
            let mut buf = hdr.as_bytes().to_vec();
            buf.extend_from_slice(piece);
            let a = self.alloc_write(mem, &buf, allocs)?;
            next = self.addr(a.offset);
            first = a.offset;
        }
        Ok(first)
    }

    fn drawable(
        surface_id: u32,
        ty: u8,
        bbox: Rect,
        clip: abi::QxlClip,
        u: &[u8],
    ) -> abi::QxlDrawable {
        let mut d = abi::QxlDrawable::new_zeroed();
        d.surface_id = surface_id.into();
        d.effect = 1; // QXL_EFFECT_OPAQUE
        d.ty = ty;
        d.bbox = abi::QxlRect::new(bbox.top, bbox.left, bbox.bottom, bbox.right);
        d.clip = clip;
        d.surfaces_dest = [(-1).into(); 3];
        d.u[..u.len()].copy_from_slice(u);
        d
    }

    fn clip<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        clip: Option<&[Rect]>,
        allocs: &mut Vec<Alloc>,
    ) -> Result<abi::QxlClip, GuestError> {
        let Some(rects) = clip else {
            return Ok(abi::QxlClip {
                ty: abi::clip_type::NONE.into(),
                data: 0.into(),
            });
        };
        let mut buf = Vec::new();
        buf.extend_from_slice(&(rects.len() as u32).to_le_bytes());
        let hdr = abi::QxlDataChunk {
            data_size: ((rects.len() * 16) as u32).into(),
            prev_chunk: 0.into(),
            next_chunk: 0.into(),
        };
        buf.extend_from_slice(hdr.as_bytes());
        for r in rects {
            buf.extend_from_slice(abi::QxlRect::new(r.top, r.left, r.bottom, r.right).as_bytes());
        }
        let a = self.alloc_write(mem, &buf, allocs)?;
        Ok(abi::QxlClip {
            ty: abi::clip_type::RECTS.into(),
            data: self.addr(a.offset).into(),
        })
    }

    /// Start building a command of any shape: allocate its structures with the returned
    /// [`CommandBuilder`] and submit it. Allocations of a builder dropped without submitting
    /// are freed.
    pub fn builder(&mut self) -> CommandBuilder<'_> {
        CommandBuilder {
            g: self,
            allocs: Vec::new(),
        }
    }

    /// Push a solid fill of `bbox` on `surface_id`, optionally clipped. Returns the release id.
    pub fn fill<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        surface_id: u32,
        bbox: Rect,
        color: u32,
        clip: Option<&[Rect]>,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let mut allocs = Vec::new();
        let cmd = self.alloc_write(mem, abi::QxlDrawable::new_zeroed().as_bytes(), &mut allocs)?;
        let clip = self.clip(mem, clip, &mut allocs)?;
        let mut f = abi::QxlFill::new_zeroed();
        f.brush.ty = abi::brush_type::SOLID.into();
        f.brush.u[..4].copy_from_slice(&color.to_le_bytes());
        f.rop_descriptor = (1u16 << 3).into(); // SPICE_ROPD_OP_PUT
        let d = Self::drawable(surface_id, abi::draw_type::FILL, bbox, clip, f.as_bytes());
        mem.write(self.host(cmd.offset), d.as_bytes())?;
        self.submit(mem, Ring::Cmd, cmd_type::DRAW, allocs, None)
    }

    /// Push a copy of a 32-bit xRGB bitmap (`width * height * 4` bytes of `pixels`, top-down)
    /// to `bbox`, its pixels in a chain of chunks of at most `chunk_size` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_bitmap<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        surface_id: u32,
        bbox: Rect,
        width: u32,
        height: u32,
        pixels: &[u8],
        chunk_size: usize,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let mut allocs = Vec::new();
        let cmd = self.alloc_write(mem, abi::QxlDrawable::new_zeroed().as_bytes(), &mut allocs)?;
        let first = self.write_chunks(mem, pixels, chunk_size, &mut allocs)?;
        let mut img = abi::QxlImage::new_zeroed();
        img.descriptor.id = (u64::from(width) << 32 | u64::from(height)).into();
        img.descriptor.ty = abi::image_type::BITMAP;
        img.descriptor.width = width.into();
        img.descriptor.height = height.into();
        let bmp = abi::QxlBitmap {
            format: abi::bitmap_fmt::THIRTY_TWO_BIT,
            flags: abi::bitmap_flags::TOP_DOWN,
            x: width.into(),
            y: height.into(),
            stride: (width * 4).into(),
            palette: 0.into(),
            data: self.addr(first).into(),
        };
        img.u.copy_from_slice(bmp.as_bytes());
        let img_a = self.alloc_write(mem, img.as_bytes(), &mut allocs)?;
        let mut c = abi::QxlCopy::new_zeroed();
        c.src_bitmap = self.addr(img_a.offset).into();
        c.src_area = abi::QxlRect::new(0, 0, height as i32, width as i32);
        c.rop_descriptor = (1u16 << 3).into();
        let none = abi::QxlClip {
            ty: abi::clip_type::NONE.into(),
            data: 0.into(),
        };
        let d = Self::drawable(surface_id, abi::draw_type::COPY, bbox, none, c.as_bytes());
        mem.write(self.host(cmd.offset), d.as_bytes())?;
        self.submit(mem, Ring::Cmd, cmd_type::DRAW, allocs, None)
    }

    /// Push an update command for `area`.
    pub fn update<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        surface_id: u32,
        area: Rect,
        update_id: u32,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let u = abi::QxlUpdateCmd {
            release_info: abi::QxlReleaseInfo { id: 0.into() },
            area: abi::QxlRect::new(area.top, area.left, area.bottom, area.right),
            update_id: update_id.into(),
            surface_id: surface_id.into(),
        };
        let mut allocs = Vec::new();
        self.alloc_write(mem, u.as_bytes(), &mut allocs)?;
        self.submit(mem, Ring::Cmd, cmd_type::UPDATE, allocs, None)
    }

    /// Push a debug message.
    pub fn message<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        text: &str,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let mut buf = vec![0u8; 8];
        buf.extend_from_slice(text.as_bytes());
        buf.push(0);
        let mut allocs = Vec::new();
        self.alloc_write(mem, &buf, &mut allocs)?;
        self.submit(mem, Ring::Cmd, cmd_type::MESSAGE, allocs, None)
    }

    /// Push a surface creation (32-bit xRGB, pixel memory allocated in the slot and kept until
    /// the matching destroy command is released).
    pub fn surface_create<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        surface_id: u32,
        width: u32,
        height: u32,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let size = u64::from(width) * u64::from(height) * 4;
        let pixels = self
            .alloc
            .alloc(size)
            .ok_or(GuestError::OutOfMemory(size))?;
        let s = abi::QxlSurfaceCmd {
            release_info: abi::QxlReleaseInfo { id: 0.into() },
            surface_id: surface_id.into(),
            ty: abi::surface_cmd::CREATE,
            flags: 0.into(),
            u: abi::QxlSurface {
                format: abi::surface_fmt::XRGB32.into(),
                width: width.into(),
                height: height.into(),
                stride: ((width * 4) as i32).into(),
                data: self.addr(pixels.offset).into(),
            },
        };
        let mut allocs = Vec::new();
        if let Err(e) = self.alloc_write(mem, s.as_bytes(), &mut allocs) {
            self.alloc.free(pixels);
            return Err(e);
        }
        match self.submit(mem, Ring::Cmd, cmd_type::SURFACE, allocs, None) {
            Ok(id) => {
                if let Some(old) = self.surfaces.insert(surface_id, pixels) {
                    self.alloc.free(old);
                }
                Ok(id)
            }
            Err(e) => {
                self.alloc.free(pixels);
                Err(e)
            }
        }
    }

    /// Push a surface destruction; the surface's pixel memory is freed when it is released.
    pub fn surface_destroy<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        surface_id: u32,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cmd)? {
            return Err(GuestError::RingFull);
        }
        let mut s = abi::QxlSurfaceCmd::new_zeroed();
        s.surface_id = surface_id.into();
        s.ty = abi::surface_cmd::DESTROY;
        let mut allocs = Vec::new();
        self.alloc_write(mem, s.as_bytes(), &mut allocs)?;
        self.submit(mem, Ring::Cmd, cmd_type::SURFACE, allocs, Some(surface_id))
    }

    /// Push a cursor shape (`cursor_type` is `SPICE_CURSOR_TYPE_*`) at a position.
    #[allow(clippy::too_many_arguments)]
    pub fn cursor_set<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        x: i16,
        y: i16,
        cursor_type: u16,
        width: u16,
        height: u16,
        data: &[u8],
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cursor)? {
            return Err(GuestError::RingFull);
        }
        let mut allocs = Vec::new();
        let cmd = self.alloc_write(mem, abi::QxlCursorCmd::new_zeroed().as_bytes(), &mut allocs)?;
        let cur = abi::QxlCursor {
            header: abi::QxlCursorHeader {
                unique: 0.into(),
                ty: cursor_type.into(),
                width: width.into(),
                height: height.into(),
                hot_spot_x: 0.into(),
                hot_spot_y: 0.into(),
            },
            data_size: (data.len() as u32).into(),
            chunk: abi::QxlDataChunk {
                data_size: (data.len() as u32).into(),
                prev_chunk: 0.into(),
                next_chunk: 0.into(),
            },
        };
        let mut buf = cur.as_bytes().to_vec();
        buf.extend_from_slice(data);
        let shape = self.alloc_write(mem, &buf, &mut allocs)?;
        let mut c = abi::QxlCursorCmd::new_zeroed();
        c.ty = abi::cursor_cmd::SET;
        let set = abi::QxlCursorSet {
            position: abi::QxlPoint16 {
                x: x.into(),
                y: y.into(),
            },
            visible: 1,
            shape: self.addr(shape.offset).into(),
        };
        c.u.copy_from_slice(set.as_bytes());
        mem.write(self.host(cmd.offset), c.as_bytes())?;
        self.submit(mem, Ring::Cursor, cmd_type::CURSOR, allocs, None)
    }

    /// Push a cursor move.
    pub fn cursor_move<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        x: i16,
        y: i16,
    ) -> Result<u64, GuestError> {
        if self.ring_full(mem, Ring::Cursor)? {
            return Err(GuestError::RingFull);
        }
        let mut c = abi::QxlCursorCmd::new_zeroed();
        c.ty = abi::cursor_cmd::MOVE;
        c.u[..4].copy_from_slice(
            abi::QxlPoint16 {
                x: x.into(),
                y: y.into(),
            }
            .as_bytes(),
        );
        let mut allocs = Vec::new();
        self.alloc_write(mem, c.as_bytes(), &mut allocs)?;
        self.submit(mem, Ring::Cursor, cmd_type::CURSOR, allocs, None)
    }

    /// Create the primary surface (`QXL_IO_CREATE_PRIMARY`), 32-bit xRGB, pixels in the slot.
    pub fn create_primary<M: GuestMemory>(
        &mut self,
        dev: &mut QxlDevice<M>,
        width: u32,
        height: u32,
    ) -> Result<crate::device::IoRequest, GuestError> {
        let size = u64::from(width) * u64::from(height) * 4;
        let pixels = self
            .alloc
            .alloc(size)
            .ok_or(GuestError::OutOfMemory(size))?;
        let c = abi::QxlSurfaceCreate {
            width: width.into(),
            height: height.into(),
            stride: ((width * 4) as i32).into(),
            format: abi::surface_fmt::XRGB32.into(),
            position: 0.into(),
            mouse_mode: 1.into(),
            flags: 0.into(),
            ty: abi::QXL_SURF_TYPE_PRIMARY.into(),
            mem: self.addr(pixels.offset).into(),
        };
        dev.memory_mut()
            .write(self.ram_header + ram_offsets::CREATE_SURFACE, c.as_bytes())?;
        match dev.io_write(io::CREATE_PRIMARY, 0) {
            Ok(r) => {
                if let Some(old) = self.primary.replace(pixels) {
                    self.alloc.free(old);
                }
                Ok(r)
            }
            Err(e) => {
                self.alloc.free(pixels);
                Err(e.into())
            }
        }
    }

    /// Destroy the primary surface (`QXL_IO_DESTROY_PRIMARY`), as a driver does before a mode
    /// change, and free its pixels. The server must handle the returned request (flushing
    /// the command ring first) before the guest creates the next primary.
    pub fn destroy_primary<M: GuestMemory>(
        &mut self,
        dev: &mut QxlDevice<M>,
    ) -> Result<crate::device::IoRequest, GuestError> {
        let r = dev.io_write(io::DESTROY_PRIMARY, 0)?;
        if let Some(old) = self.primary.take() {
            self.alloc.free(old);
        }
        Ok(r)
    }

    /// Bytes of the largest block the driver could allocate now (e.g. for a new primary).
    pub fn largest_free_block(&self) -> u64 {
        self.alloc.largest_free()
    }

    /// Bytes of the current primary surface's pixels (0 without one).
    pub fn primary_size(&self) -> u64 {
        self.primary.map_or(0, |a| a.size)
    }

    /// Collect everything on the release ring: pop each chain head, follow the chain through
    /// the release infos' `next` fields, free each resource. Returns the released ids in order.
    /// An id that is not outstanding (a double release) is an error.
    pub fn collect_releases<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Vec<u64>, GuestError> {
        let mut ids = Vec::new();
        let mut head = [0u8; 8];
        while self.release_ring.pop(mem, &mut head)?.is_some() {
            let mut id = u64::from_le_bytes(head);
            // A chain can never be longer than what is outstanding.
            let mut budget = self.outstanding.len() + 1;
            while id != 0 {
                budget = budget
                    .checked_sub(1)
                    .ok_or(GuestError::UnknownRelease(id))?;
                let res = self
                    .outstanding
                    .remove(&id)
                    .ok_or(GuestError::UnknownRelease(id))?;
                let next = read_u64(mem, self.host(res.allocs[0].offset))?;
                for a in &res.allocs {
                    self.alloc.free(*a);
                }
                if let Some(s) = res.frees_surface {
                    if let Some(px) = self.surfaces.remove(&s) {
                        self.alloc.free(px);
                    }
                }
                self.released += 1;
                ids.push(id);
                id = next;
            }
        }
        Ok(ids)
    }

    /// Ask the device to push the release chain it is building (`QXL_IO_FLUSH_RELEASE`).
    pub fn flush_release<M: GuestMemory>(
        &mut self,
        dev: &mut QxlDevice<M>,
    ) -> Result<(), GuestError> {
        dev.io_write(io::FLUSH_RELEASE, 0)?;
        Ok(())
    }

    /// The pending interrupt bits, cleared (what the guest's interrupt handler does).
    pub fn take_interrupts<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<u32, GuestError> {
        let off = self.ram_header + ram_offsets::INT_PENDING;
        let ram: u32 = read_struct::<zerocopy::little_endian::U32, M>(mem, off)?.get();
        write_u32(mem, off, 0)?;
        Ok(ram)
    }
}

/// A bitmap image to lay out in guest memory ([`CommandBuilder::bitmap_image`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBitmap<'a> {
    /// Cache id (`descriptor.id`).
    pub id: u64,
    /// [`abi::image_flags`] (`CACHE`, `HIGH_BITS_SET`).
    pub image_flags: u8,
    /// [`abi::bitmap_fmt`].
    pub format: u8,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Rows stored top row first.
    pub top_down: bool,
    /// `height * stride` bytes.
    pub data: &'a [u8],
    /// Palette (`unique`, entries) for palette formats.
    pub palette: Option<(u64, &'a [u32])>,
    /// Largest data chunk; 0 puts the rows in one flat block (`QXL_BITMAP_DIRECT`).
    pub chunk_size: usize,
}

impl<'a> GuestBitmap<'a> {
    /// A top-down 32-bit xRGB bitmap of `width` x `height` in one chunk.
    pub fn xrgb32(id: u64, width: u32, height: u32, data: &'a [u8]) -> Self {
        GuestBitmap {
            id,
            image_flags: 0,
            format: abi::bitmap_fmt::THIRTY_TWO_BIT,
            width,
            height,
            stride: width * 4,
            top_down: true,
            data,
            palette: None,
            chunk_size: usize::MAX,
        }
    }
}

/// A raster glyph to lay out in a string ([`CommandBuilder::string`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestGlyph<'a> {
    /// Render position.
    pub render_pos: (i32, i32),
    /// Origin.
    pub glyph_origin: (i32, i32),
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// `height * ceil(width * bpp / 8)` bytes.
    pub data: &'a [u8],
}

/// One command's guest memory under construction ([`GuestDriver::builder`]): every structure
/// is allocated in the driver's slot and written at once; the QXL addresses returned go into
/// the structures that point at them. [`CommandBuilder::submit_draw`] /
/// [`CommandBuilder::submit_cursor`] write the command structure and push it; everything
/// allocated is freed when the command comes back through the release ring.
#[derive(Debug)]
pub struct CommandBuilder<'g> {
    g: &'g mut GuestDriver,
    allocs: Vec<Alloc>,
}

impl Drop for CommandBuilder<'_> {
    fn drop(&mut self) {
        let mut allocs = std::mem::take(&mut self.allocs);
        self.g.free_all(&mut allocs);
    }
}

impl CommandBuilder<'_> {
    /// Allocate and write `data`; returns its QXL address.
    pub fn write<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        data: &[u8],
    ) -> Result<QxlPhysical, GuestError> {
        let a = self.g.alloc_write(mem, data, &mut self.allocs)?;
        Ok(self.g.addr(a.offset))
    }

    /// Write `data` as a chunk chain of chunks of at most `chunk_size` bytes; returns the QXL
    /// address of the first chunk header.
    pub fn chunks<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let off = self
            .g
            .write_chunks(mem, data, chunk_size, &mut self.allocs)?;
        Ok(self.g.addr(off))
    }

    /// Write `header` followed by an inline first chunk holding `data` and a chain of further
    /// chunks of at most `chunk_size` bytes (the layout of `QXLString`, `QXLPath`,
    /// `QXLClipRects`, `QXLCursor` and QUIC images).
    fn inline_chunks<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        header: &[u8],
        data: &[u8],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let chunk_size = chunk_size.max(1);
        let (first, rest) = data.split_at(data.len().min(chunk_size));
        let next = if rest.is_empty() {
            0
        } else {
            self.chunks(mem, rest, chunk_size)?
        };
        let mut buf = header.to_vec();
        buf.extend_from_slice(
            abi::QxlDataChunk {
                data_size: (first.len() as u32).into(),
                prev_chunk: 0.into(),
                next_chunk: next.into(),
            }
            .as_bytes(),
        );
        buf.extend_from_slice(first);
        self.write(mem, &buf)
    }

    /// Lay out a bitmap image (descriptor, bitmap, palette, rows); returns the image address.
    pub fn bitmap_image<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        b: &GuestBitmap<'_>,
    ) -> Result<QxlPhysical, GuestError> {
        let mut flags = 0;
        if b.top_down {
            flags |= abi::bitmap_flags::TOP_DOWN;
        }
        let data = if b.chunk_size == 0 {
            flags |= abi::bitmap_flags::DIRECT;
            self.write(mem, b.data)?
        } else {
            self.chunks(mem, b.data, b.chunk_size)?
        };
        let palette = match b.palette {
            Some((unique, ents)) => {
                let mut buf = abi::QxlPalette {
                    unique: unique.into(),
                    num_ents: (ents.len() as u16).into(),
                }
                .as_bytes()
                .to_vec();
                for e in ents {
                    buf.extend_from_slice(&e.to_le_bytes());
                }
                self.write(mem, &buf)?
            }
            None => 0,
        };
        let mut img = abi::QxlImage::new_zeroed();
        img.descriptor.id = b.id.into();
        img.descriptor.ty = abi::image_type::BITMAP;
        img.descriptor.flags = b.image_flags;
        img.descriptor.width = b.width.into();
        img.descriptor.height = b.height.into();
        let bmp = abi::QxlBitmap {
            format: b.format,
            flags,
            x: b.width.into(),
            y: b.height.into(),
            stride: b.stride.into(),
            palette: palette.into(),
            data: data.into(),
        };
        img.u.copy_from_slice(bmp.as_bytes());
        self.write(mem, img.as_bytes())
    }

    /// Lay out a `SURFACE` image referring to `surface_id`; returns the image address.
    pub fn surface_image<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: u64,
        surface_id: u32,
        width: u32,
        height: u32,
    ) -> Result<QxlPhysical, GuestError> {
        let mut img = abi::QxlImage::new_zeroed();
        img.descriptor.id = id.into();
        img.descriptor.ty = abi::image_type::SURFACE;
        img.descriptor.width = width.into();
        img.descriptor.height = height.into();
        img.u[..4].copy_from_slice(&surface_id.to_le_bytes());
        self.write(mem, img.as_bytes())
    }

    /// Lay out a `QUIC` image whose compressed `data` follows the descriptor in chunks.
    pub fn quic_image<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: u64,
        width: u32,
        height: u32,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let d = abi::QxlImageDescriptor {
            id: id.into(),
            ty: abi::image_type::QUIC,
            flags: 0,
            width: width.into(),
            height: height.into(),
        };
        let mut hdr = d.as_bytes().to_vec();
        hdr.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.inline_chunks(mem, &hdr, data, chunk_size)
    }

    /// Lay out a clip; `None` is no clipping.
    pub fn clip<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        rects: Option<&[Rect]>,
    ) -> Result<abi::QxlClip, GuestError> {
        self.g.clip(mem, rects, &mut self.allocs)
    }

    /// Lay out a `QXLString` of glyphs (`flags`: [`abi::string_flags`]) in chunks of at most
    /// `chunk_size` bytes; returns its address.
    pub fn string<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        flags: u16,
        glyphs: &[GuestGlyph<'_>],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let mut data = Vec::new();
        for g in glyphs {
            let gh = abi::QxlRasterGlyph {
                render_pos: abi::QxlPoint {
                    x: g.render_pos.0.into(),
                    y: g.render_pos.1.into(),
                },
                glyph_origin: abi::QxlPoint {
                    x: g.glyph_origin.0.into(),
                    y: g.glyph_origin.1.into(),
                },
                width: g.width.into(),
                height: g.height.into(),
            };
            data.extend_from_slice(gh.as_bytes());
            data.extend_from_slice(g.data);
        }
        let hdr = [
            &(data.len() as u32).to_le_bytes()[..],
            &(glyphs.len() as u16).to_le_bytes()[..],
            &flags.to_le_bytes()[..],
        ]
        .concat();
        self.inline_chunks(mem, &hdr, &data, chunk_size)
    }

    /// Lay out a `QXLPath` of segments (`SPICE_PATH_*` flags, 28.4 points); returns its
    /// address.
    pub fn path<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        segments: &[(u32, &[(i32, i32)])],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let mut data = Vec::new();
        for (flags, points) in segments {
            data.extend_from_slice(&flags.to_le_bytes());
            data.extend_from_slice(&(points.len() as u32).to_le_bytes());
            for (x, y) in *points {
                data.extend_from_slice(&x.to_le_bytes());
                data.extend_from_slice(&y.to_le_bytes());
            }
        }
        let hdr = (data.len() as u32).to_le_bytes();
        self.inline_chunks(mem, &hdr, &data, chunk_size)
    }

    /// Lay out a `QXLCursor` shape; returns its address.
    pub fn cursor_shape<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        header: abi::QxlCursorHeader,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<QxlPhysical, GuestError> {
        let mut hdr = header.as_bytes().to_vec();
        hdr.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.inline_chunks(mem, &hdr, data, chunk_size)
    }

    /// Write the drawable (its release info is filled in) and push it to the command ring.
    /// Returns the release id.
    pub fn submit_draw<M: GuestMemory + ?Sized>(
        self,
        mem: &mut M,
        drawable: &abi::QxlDrawable,
    ) -> Result<u64, GuestError> {
        self.submit(mem, Ring::Cmd, cmd_type::DRAW, drawable.as_bytes())
    }

    /// Write the cursor command and push it to the cursor ring. Returns the release id.
    pub fn submit_cursor<M: GuestMemory + ?Sized>(
        self,
        mem: &mut M,
        cmd: &abi::QxlCursorCmd,
    ) -> Result<u64, GuestError> {
        self.submit(mem, Ring::Cursor, cmd_type::CURSOR, cmd.as_bytes())
    }

    fn submit<M: GuestMemory + ?Sized>(
        mut self,
        mem: &mut M,
        ring: Ring,
        ty: u32,
        cmd: &[u8],
    ) -> Result<u64, GuestError> {
        if self.g.ring_full(mem, ring)? {
            return Err(GuestError::RingFull);
        }
        let mut allocs = std::mem::take(&mut self.allocs);
        let a = self.g.alloc_write(mem, cmd, &mut allocs)?;
        // The command structure must be the resource's first allocation.
        allocs.pop();
        allocs.insert(0, a);
        self.g.submit(mem, ring, ty, allocs, None)
    }
}

/// A drawable header for `draw_type` on `surface_id` with `bbox` and `clip`, effect opaque,
/// no surface dependencies, the union filled from `u` (a `QxlFill`, `QxlCopy`, ... as bytes).
pub fn drawable(
    surface_id: u32,
    draw_type: u8,
    bbox: Rect,
    clip: abi::QxlClip,
    u: &[u8],
) -> abi::QxlDrawable {
    GuestDriver::drawable(surface_id, draw_type, bbox, clip, u)
}
