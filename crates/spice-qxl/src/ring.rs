//! The shared-memory rings (`SPICE_RING_DECLARE` in spice-protocol's `ipc_ring.h`).
//!
//! A ring is a header `{num_items, prod, notify_on_prod, cons, notify_on_cons}` and a
//! power-of-two array of items. `prod` and `cons` run freely (wrapping u32) and are masked to
//! index the array; the ring is empty when they are equal and full when they are `num_items`
//! apart. A producer that pushes item `prod` notifies the other side when the new `prod` equals
//! `notify_on_prod`; a consumer notifies when the new `cons` equals `notify_on_cons`. A side
//! that finds the ring empty (or full) sets the other side's notify index to one past the current
//! position before re-checking, so it is woken when work (or room) appears.
//!
//! Both sides here take the ring's geometry from the device ABI, never from the guest-writable
//! `num_items`, and treat `prod - cons > num_items` as a corrupted ring ([`RingError::Corrupt`]).
//! Every index is masked, so no value a guest writes can move an access outside the ring.

use thiserror::Error;

use crate::memory::{GuestMemory, MemoryError, read_u32, write_u32};

/// Offsets of the header fields.
const NUM_ITEMS: u64 = 0;
const PROD: u64 = 4;
const NOTIFY_ON_PROD: u64 = 8;
const CONS: u64 = 12;
const NOTIFY_ON_CONS: u64 = 16;
/// Size of the ring header; items follow.
pub const RING_HEADER_SIZE: u64 = 20;

/// A ring's place and shape in host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Host offset of the ring header.
    pub offset: u64,
    /// Number of items (a power of two).
    pub num_items: u32,
    /// Size of one item slot in bytes.
    pub item_size: u64,
}

/// A ring operation that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RingError {
    /// `prod` and `cons` are further apart than the ring is long: the guest broke the ring.
    #[error("ring at {offset:#x} is corrupt: prod {prod}, cons {cons}, size {size}")]
    Corrupt {
        /// Host offset of the ring.
        offset: u64,
        /// Producer index.
        prod: u32,
        /// Consumer index.
        cons: u32,
        /// Ring size.
        size: u32,
    },
    /// The ring is full: the producer must wait for the consumer (it was asked to notify).
    #[error("ring is full")]
    Full,
    /// Memory access failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The indices of a ring at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingIndices {
    /// Producer index.
    pub prod: u32,
    /// Consumer index.
    pub cons: u32,
}

impl RingLayout {
    fn mask(&self) -> u32 {
        self.num_items - 1
    }

    fn item_offset(&self, index: u32) -> u64 {
        self.offset + RING_HEADER_SIZE + u64::from(index & self.mask()) * self.item_size
    }

    /// Write a fresh header: `num_items`, indices 0, `notify_on_prod = 1`, `notify_on_cons = 0`
    /// (`SPICE_RING_INIT`).
    pub fn init<M: GuestMemory + ?Sized>(&self, mem: &mut M) -> Result<(), MemoryError> {
        write_u32(mem, self.offset + NUM_ITEMS, self.num_items)?;
        write_u32(mem, self.offset + PROD, 0)?;
        write_u32(mem, self.offset + CONS, 0)?;
        write_u32(mem, self.offset + NOTIFY_ON_PROD, 1)?;
        write_u32(mem, self.offset + NOTIFY_ON_CONS, 0)
    }

    /// Read and check the indices.
    pub fn indices<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<RingIndices, RingError> {
        let prod = read_u32(mem, self.offset + PROD)?;
        let cons = read_u32(mem, self.offset + CONS)?;
        if prod.wrapping_sub(cons) > self.num_items {
            return Err(RingError::Corrupt {
                offset: self.offset,
                prod,
                cons,
                size: self.num_items,
            });
        }
        Ok(RingIndices { prod, cons })
    }

    /// Consumer: copy the next item into `item` and advance `cons`. Returns `None` if the ring
    /// is empty, else whether the consumer must notify the producer.
    pub fn pop<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        item: &mut [u8],
    ) -> Result<Option<bool>, RingError> {
        let RingIndices { prod, cons } = self.indices(mem)?;
        if prod == cons {
            return Ok(None);
        }
        let n = item.len().min(self.item_size as usize);
        mem.read(self.item_offset(cons), &mut item[..n])?;
        let cons = cons.wrapping_add(1);
        write_u32(mem, self.offset + CONS, cons)?;
        Ok(Some(cons == read_u32(mem, self.offset + NOTIFY_ON_CONS)?))
    }

    /// Consumer found the ring empty: ask to be notified on the next push
    /// (`SPICE_RING_CONS_WAIT`). Returns true if the ring is still empty (wait for the
    /// notification), false if items arrived meanwhile.
    pub fn cons_wait<M: GuestMemory + ?Sized>(&self, mem: &mut M) -> Result<bool, RingError> {
        let i = self.indices(mem)?;
        if i.prod != i.cons {
            return Ok(false);
        }
        write_u32(mem, self.offset + NOTIFY_ON_PROD, i.prod.wrapping_add(1))?;
        let i = self.indices(mem)?;
        Ok(i.prod == i.cons)
    }

    /// Producer: write `item` at `prod` and advance it. Fails with [`RingError::Full`] (after
    /// asking the consumer to notify, `SPICE_RING_PROD_WAIT`) instead of overwriting. Returns
    /// whether the producer must notify the consumer.
    pub fn push<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        item: &[u8],
    ) -> Result<bool, RingError> {
        let RingIndices { prod, cons } = self.indices(mem)?;
        if prod.wrapping_sub(cons) == self.num_items {
            write_u32(mem, self.offset + NOTIFY_ON_CONS, cons.wrapping_add(1))?;
            // Re-check: the consumer may have popped meanwhile.
            let again = self.indices(mem)?;
            if again.prod.wrapping_sub(again.cons) == self.num_items {
                return Err(RingError::Full);
            }
        }
        let n = item.len().min(self.item_size as usize);
        mem.write(self.item_offset(prod), &item[..n])?;
        let prod = prod.wrapping_add(1);
        write_u32(mem, self.offset + PROD, prod)?;
        Ok(prod == read_u32(mem, self.offset + NOTIFY_ON_PROD)?)
    }

    /// Host offset of the item slot `index` (masked).
    pub fn slot_offset(&self, index: u32) -> u64 {
        self.item_offset(index)
    }

    /// Set `prod` directly (the device's release ring push, which fills the slot first).
    pub fn set_prod<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        prod: u32,
    ) -> Result<bool, MemoryError> {
        write_u32(mem, self.offset + PROD, prod)?;
        Ok(prod == read_u32(mem, self.offset + NOTIFY_ON_PROD)?)
    }
}
