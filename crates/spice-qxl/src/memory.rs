//! Guest memory and memory slots: the only way the device touches what the guest wrote.
//!
//! The host (a VMM, or [`VecMemory`] in tests and the demo) exposes the device's memory as one
//! flat space of byte offsets through [`GuestMemory`]; every access is bounds-checked there.
//! Above it, [`MemSlotTable`] translates QXL addresses: the top `slot_id_bits` of a 64-bit QXL
//! address name a slot, the next `slot_gen_bits` its generation, and the rest is an offset that
//! the slot's `addr_delta` turns into a host offset, which must lie inside the slot's
//! `[virt_start, virt_end)` for the whole length of the access.

use thiserror::Error;

use crate::abi::QxlPhysical;

/// An access outside the host's memory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// `len` bytes at `offset` do not fit in a memory of `size` bytes.
    #[error(
        "guest memory access of {len} bytes at {offset:#x} is outside the {size:#x}-byte memory"
    )]
    OutOfRange {
        /// Host offset.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the memory.
        size: u64,
    },
}

/// The memory the device reads commands from and writes rings to, as the host provides it.
///
/// Offsets are "host virtual" addresses in the sense of spice-server's memslots: the same space
/// memory slots map into. Implementations must check every access against their size and fail
/// with [`MemoryError`] rather than panic.
pub trait GuestMemory {
    /// Size of the memory in bytes.
    fn size(&self) -> u64;
    /// Copy `buf.len()` bytes at `offset` into `buf`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Copy `data` to `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError>;
    /// Append the `len` bytes at `offset` to `out`; on error `out` is left as it was.
    ///
    /// The provided method zero-extends `out` and then [`read`](Self::read)s into it;
    /// implementations that can borrow their bytes should override it to copy once.
    fn read_append(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MemoryError> {
        let size = self.size();
        let err = MemoryError::OutOfRange {
            offset,
            len: len as u64,
            size,
        };
        // Check the range before allocating: `len` may come from a hostile guest.
        let fits = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= size);
        let start = out.len();
        let Some(new_len) = start.checked_add(len).filter(|_| fits) else {
            return Err(err);
        };
        out.resize(new_len, 0);
        let r = self.read(offset, &mut out[start..]);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }
}

/// A plain in-process memory: a byte vector.
#[derive(Debug, Clone, Default)]
pub struct VecMemory {
    bytes: Vec<u8>,
}

impl VecMemory {
    /// A zeroed memory of `size` bytes.
    pub fn new(size: usize) -> Self {
        VecMemory {
            bytes: vec![0; size],
        }
    }

    /// A memory holding `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        VecMemory { bytes }
    }

    /// The whole memory.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, MemoryError> {
        let err = || MemoryError::OutOfRange {
            offset,
            len: len as u64,
            size: self.bytes.len() as u64,
        };
        let start = usize::try_from(offset).map_err(|_| err())?;
        let end = start.checked_add(len).ok_or_else(err)?;
        if end > self.bytes.len() {
            return Err(err());
        }
        Ok(start..end)
    }
}

impl GuestMemory for VecMemory {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn read_append(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MemoryError> {
        let r = self.range(offset, len)?;
        out.extend_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError> {
        let r = self.range(offset, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
}

impl<M: GuestMemory + ?Sized> GuestMemory for &mut M {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(offset, buf)
    }
    fn read_append(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MemoryError> {
        (**self).read_append(offset, len, out)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError> {
        (**self).write(offset, data)
    }
}

/// Read a fixed ABI structure at a host offset.
pub fn read_struct<T: zerocopy::FromBytes + zerocopy::IntoBytes, M: GuestMemory + ?Sized>(
    mem: &M,
    offset: u64,
) -> Result<T, MemoryError> {
    let mut v = T::new_zeroed();
    mem.read(offset, v.as_mut_bytes())?;
    Ok(v)
}

/// Write a fixed ABI structure at a host offset.
pub fn write_struct<T: zerocopy::IntoBytes + zerocopy::Immutable, M: GuestMemory + ?Sized>(
    mem: &mut M,
    offset: u64,
    value: &T,
) -> Result<(), MemoryError> {
    mem.write(offset, value.as_bytes())
}

/// Read a little-endian u32 at a host offset.
pub fn read_u32<M: GuestMemory + ?Sized>(mem: &M, offset: u64) -> Result<u32, MemoryError> {
    let mut b = [0; 4];
    mem.read(offset, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Write a little-endian u32 at a host offset.
pub fn write_u32<M: GuestMemory + ?Sized>(
    mem: &mut M,
    offset: u64,
    v: u32,
) -> Result<(), MemoryError> {
    mem.write(offset, &v.to_le_bytes())
}

/// Read a little-endian u64 at a host offset.
pub fn read_u64<M: GuestMemory + ?Sized>(mem: &M, offset: u64) -> Result<u64, MemoryError> {
    let mut b = [0; 8];
    mem.read(offset, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Write a little-endian u64 at a host offset.
pub fn write_u64<M: GuestMemory + ?Sized>(
    mem: &mut M,
    offset: u64,
    v: u64,
) -> Result<(), MemoryError> {
    mem.write(offset, &v.to_le_bytes())
}

/// How QXL addresses are split, and how many slots and groups exist (`QXLDevInitInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout {
    /// Number of slot groups (QEMU: 2, host and guest).
    pub num_groups: u32,
    /// Number of slots per group (QEMU: 8).
    pub num_slots: u32,
    /// Bits of generation (the ROM's `slot_gen_bits`, QEMU: 8).
    pub gen_bits: u8,
    /// Bits of slot id (the ROM's `slot_id_bits`, QEMU: 8).
    pub id_bits: u8,
}

impl SlotLayout {
    /// The layout QEMU's QXL device announces: 2 groups of 8 slots, 8 id and 8 generation bits.
    pub const QEMU: SlotLayout = SlotLayout {
        num_groups: 2,
        num_slots: 8,
        gen_bits: 8,
        id_bits: 8,
    };

    fn offset_bits(&self) -> u32 {
        64 - u32::from(self.id_bits) - u32::from(self.gen_bits)
    }

    /// The slot id encoded in a QXL address.
    pub fn slot_id(&self, addr: QxlPhysical) -> u32 {
        if self.id_bits == 0 {
            return 0;
        }
        (addr >> (64 - u32::from(self.id_bits))) as u32
    }

    /// The generation encoded in a QXL address.
    pub fn generation(&self, addr: QxlPhysical) -> u32 {
        if self.gen_bits == 0 {
            return 0;
        }
        ((addr >> self.offset_bits()) & ((1u64 << self.gen_bits) - 1)) as u32
    }

    /// The offset part of a QXL address (below the id and generation bits).
    pub fn clean(&self, addr: QxlPhysical) -> u64 {
        let bits = self.offset_bits();
        if bits == 64 {
            addr
        } else {
            addr & ((1u64 << bits) - 1)
        }
    }

    /// The QXL address of `offset` in slot `slot_id` of generation `generation` (what a guest
    /// driver computes).
    pub fn encode(&self, slot_id: u32, generation: u32, offset: u64) -> QxlPhysical {
        let high = (u64::from(slot_id) << self.gen_bits) | u64::from(generation);
        let bits = self.offset_bits();
        if bits == 64 {
            offset
        } else {
            (high << bits) | self.clean(offset)
        }
    }
}

/// Why a [`SlotLayout`] or a slot registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SlotError {
    /// The id and generation bits leave no room for an offset, or a count is zero.
    #[error("invalid memory slot layout {0:?}")]
    BadLayout(SlotLayout),
    /// A slot id that does not exist in the layout.
    #[error("memory slot {group}:{slot} does not exist")]
    NoSuchSlot {
        /// Group.
        group: u32,
        /// Slot.
        slot: u32,
    },
    /// A slot whose end is before its start.
    #[error("memory slot range {start:#x}..{end:#x} is inverted")]
    BadRange {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// A generation that does not fit in the layout's generation bits.
    #[error("generation {0} does not fit the slot layout")]
    BadGeneration(u32),
}

/// Why a QXL address could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TranslateError {
    /// The group does not exist.
    #[error("memory slot group {0} does not exist")]
    BadGroup(u32),
    /// The slot id bits name a slot beyond the table.
    #[error("QXL address {addr:#x} names slot {slot}, beyond the slot table")]
    SlotIdTooBig {
        /// The address.
        addr: QxlPhysical,
        /// The slot id in it.
        slot: u32,
    },
    /// The slot was never registered or was deleted.
    #[error("QXL address {addr:#x} names unregistered slot {group}:{slot}")]
    SlotNotRegistered {
        /// The address.
        addr: QxlPhysical,
        /// Group.
        group: u32,
        /// Slot.
        slot: u32,
    },
    /// The generation bits do not match the slot's current generation.
    #[error("QXL address {addr:#x} has stale generation {got} (slot has {expected})")]
    StaleGeneration {
        /// The address.
        addr: QxlPhysical,
        /// Generation in the address.
        got: u32,
        /// Generation of the slot.
        expected: u32,
    },
    /// The access does not lie inside the slot.
    #[error("QXL address {addr:#x} + {len} bytes is outside its memory slot")]
    OutOfSlot {
        /// The address.
        addr: QxlPhysical,
        /// Length of the access.
        len: u64,
    },
    /// A null address where a structure was required.
    #[error("null QXL address")]
    Null,
}

/// One registered memory slot (`QXLDevMemSlot`): host range and address delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSlot {
    /// Generation the slot's addresses must carry.
    pub generation: u32,
    /// First host offset of the slot.
    pub virt_start: u64,
    /// Host offset one past the slot.
    pub virt_end: u64,
    /// Added (wrapping) to the clean part of an address to give the host offset.
    pub addr_delta: u64,
}

/// The memory slots of all groups, and the address translation they define.
#[derive(Debug, Clone)]
pub struct MemSlotTable {
    layout: SlotLayout,
    slots: Vec<Option<MemSlot>>,
}

impl MemSlotTable {
    /// An empty table for a layout. The layout must leave at least one offset bit, and have at
    /// least one group and one slot (at most 256 of each).
    pub fn new(layout: SlotLayout) -> Result<Self, SlotError> {
        let bits = u32::from(layout.id_bits) + u32::from(layout.gen_bits);
        if bits >= 64
            || layout.num_groups == 0
            || layout.num_slots == 0
            || layout.num_groups > 256
            || layout.num_slots > 256
            || (layout.id_bits < 32 && u64::from(layout.num_slots) > (1u64 << layout.id_bits))
        {
            return Err(SlotError::BadLayout(layout));
        }
        let n = (layout.num_groups * layout.num_slots) as usize;
        Ok(MemSlotTable {
            layout,
            slots: vec![None; n],
        })
    }

    /// The layout.
    pub fn layout(&self) -> SlotLayout {
        self.layout
    }

    fn index(&self, group: u32, slot: u32) -> Option<usize> {
        (group < self.layout.num_groups && slot < self.layout.num_slots)
            .then(|| (group * self.layout.num_slots + slot) as usize)
    }

    /// Register (or replace) a slot.
    pub fn add(&mut self, group: u32, slot_id: u32, slot: MemSlot) -> Result<(), SlotError> {
        let i = self.index(group, slot_id).ok_or(SlotError::NoSuchSlot {
            group,
            slot: slot_id,
        })?;
        if slot.virt_end < slot.virt_start {
            return Err(SlotError::BadRange {
                start: slot.virt_start,
                end: slot.virt_end,
            });
        }
        if self.layout.gen_bits < 32 && u64::from(slot.generation) >= (1u64 << self.layout.gen_bits)
        {
            return Err(SlotError::BadGeneration(slot.generation));
        }
        self.slots[i] = Some(slot);
        Ok(())
    }

    /// Remove a slot (its addresses stop translating).
    pub fn remove(&mut self, group: u32, slot_id: u32) -> Result<(), SlotError> {
        let i = self.index(group, slot_id).ok_or(SlotError::NoSuchSlot {
            group,
            slot: slot_id,
        })?;
        self.slots[i] = None;
        Ok(())
    }

    /// Remove every slot.
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    /// The slot registered at `group:slot_id`.
    pub fn get(&self, group: u32, slot_id: u32) -> Option<&MemSlot> {
        self.index(group, slot_id)
            .and_then(|i| self.slots[i].as_ref())
    }

    fn slot_for(&self, group: u32, addr: QxlPhysical) -> Result<&MemSlot, TranslateError> {
        if group >= self.layout.num_groups {
            return Err(TranslateError::BadGroup(group));
        }
        let slot = self.layout.slot_id(addr);
        let i = self
            .index(group, slot)
            .ok_or(TranslateError::SlotIdTooBig { addr, slot })?;
        let s = self.slots[i]
            .as_ref()
            .ok_or(TranslateError::SlotNotRegistered { addr, group, slot })?;
        let got = self.layout.generation(addr);
        if got != s.generation {
            return Err(TranslateError::StaleGeneration {
                addr,
                got,
                expected: s.generation,
            });
        }
        Ok(s)
    }

    /// Translate `len` bytes at QXL address `addr` in `group` to a host offset, checking slot
    /// id, generation and that the whole range lies inside the slot.
    pub fn translate(
        &self,
        group: u32,
        addr: QxlPhysical,
        len: u64,
    ) -> Result<u64, TranslateError> {
        let s = self.slot_for(group, addr)?;
        let host = self.layout.clean(addr).wrapping_add(s.addr_delta);
        let end = host
            .checked_add(len)
            .ok_or(TranslateError::OutOfSlot { addr, len })?;
        if host < s.virt_start || end > s.virt_end {
            return Err(TranslateError::OutOfSlot { addr, len });
        }
        Ok(host)
    }

    /// Like [`translate`](Self::translate) for `offset + len` bytes at `addr`, returning the host
    /// offset of `addr + offset`: for data that follows a structure in the same slot.
    pub fn translate_at(
        &self,
        group: u32,
        addr: QxlPhysical,
        offset: u64,
        len: u64,
    ) -> Result<u64, TranslateError> {
        let total = offset
            .checked_add(len)
            .ok_or(TranslateError::OutOfSlot { addr, len })?;
        Ok(self.translate(group, addr, total)? + offset)
    }

    /// Bytes from `addr` to the end of its slot (0 if `addr` is outside it).
    pub fn max_size(&self, group: u32, addr: QxlPhysical) -> Result<u64, TranslateError> {
        let s = self.slot_for(group, addr)?;
        let host = self.layout.clean(addr).wrapping_add(s.addr_delta);
        if host < s.virt_start || host > s.virt_end {
            return Ok(0);
        }
        Ok(s.virt_end - host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory with only the required methods, to exercise the provided `read_append`.
    struct Plain(VecMemory);

    impl GuestMemory for Plain {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            self.0.read(offset, buf)
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), MemoryError> {
            self.0.write(offset, data)
        }
    }

    #[test]
    fn read_append_appends_or_leaves_the_buffer_alone() {
        let mem = VecMemory::from_bytes((0..16).collect());
        let plain = Plain(mem.clone());
        let by_ref = &mut mem.clone();
        let impls: [&dyn GuestMemory; 3] = [&mem, &plain, by_ref];
        for m in impls {
            let mut out = vec![0xaa];
            m.read_append(4, 3, &mut out).unwrap();
            assert_eq!(out, [0xaa, 4, 5, 6]);
            m.read_append(16, 0, &mut out).unwrap();
            assert_eq!(out.len(), 4);
            for (offset, len) in [(14, 3), (16, 1), (u64::MAX, 1), (1, usize::MAX)] {
                assert_eq!(
                    m.read_append(offset, len, &mut out),
                    Err(MemoryError::OutOfRange {
                        offset,
                        len: len as u64,
                        size: 16
                    })
                );
                assert_eq!(out, [0xaa, 4, 5, 6]);
            }
        }
    }
}
