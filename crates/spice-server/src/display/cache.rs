//! The server's mirrors of a client's caches: the pixmap (image) cache, sized in pixels by
//! the client's DISPLAY_INIT and evicted by the server in LRU order (the client drops what
//! INVAL_LIST tells it), and the palette cache (128 entries, INVAL_PALETTE).

use std::collections::{BTreeMap, HashMap};

/// Palette cache entries spice-server assumes a client keeps (`CLIENT_PALETTE_CACHE_SIZE`).
pub const CLIENT_PALETTE_CACHE_SIZE: usize = 128;

#[derive(Debug, Clone, Copy)]
struct PixmapEntry {
    pixels: u64,
    lossy: bool,
    stamp: u64,
}

/// What a pixmap-cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHit {
    /// The client holds a lossless copy.
    Lossless,
    /// The client holds a lossy (JPEG) copy.
    Lossy,
}

/// Mirror of one client's pixmap cache with server-driven LRU eviction.
#[derive(Debug, Clone, Default)]
pub struct PixmapCache {
    capacity: u64,
    used: u64,
    entries: HashMap<u64, PixmapEntry>,
    lru: BTreeMap<u64, u64>,
    next_stamp: u64,
}

impl PixmapCache {
    /// A cache of `capacity_pixels` pixels (the client's `pixmap_cache_size`; negative → 0).
    pub fn new(capacity_pixels: i64) -> Self {
        PixmapCache {
            capacity: u64::try_from(capacity_pixels).unwrap_or(0),
            ..Default::default()
        }
    }

    /// Capacity in pixels.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Pixels in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is cached, without touching it.
    pub fn contains(&self, id: u64) -> bool {
        self.entries.contains_key(&id)
    }

    /// Looks `id` up and marks it most recently used.
    pub fn lookup(&mut self, id: u64) -> Option<CacheHit> {
        let stamp = self.next_stamp;
        let e = self.entries.get_mut(&id)?;
        self.lru.remove(&e.stamp);
        e.stamp = stamp;
        self.lru.insert(stamp, id);
        self.next_stamp += 1;
        Some(if e.lossy {
            CacheHit::Lossy
        } else {
            CacheHit::Lossless
        })
    }

    /// Adds `id` of `pixels` pixels, evicting least recently used entries to make room.
    /// Returns the evicted ids (to send in INVAL_LIST before the message that caches `id`),
    /// or `None` when the image can never fit (then it must not be sent with CACHE_ME).
    /// Re-adding an id replaces it (CACHE_REPLACE_ME).
    pub fn add(&mut self, id: u64, pixels: u64, lossy: bool) -> Option<Vec<u64>> {
        if pixels > self.capacity {
            return None;
        }
        if let Some(old) = self.entries.remove(&id) {
            self.lru.remove(&old.stamp);
            self.used -= old.pixels;
        }
        let mut evicted = Vec::new();
        while self.used + pixels > self.capacity {
            let (_, victim) = self.lru.pop_first()?;
            if let Some(e) = self.entries.remove(&victim) {
                self.used -= e.pixels;
            }
            evicted.push(victim);
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.entries.insert(
            id,
            PixmapEntry {
                pixels,
                lossy,
                stamp,
            },
        );
        self.lru.insert(stamp, id);
        self.used += pixels;
        Some(evicted)
    }

    /// Forgets everything (INVAL_ALL_PIXMAPS).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
        self.used = 0;
    }
}

/// Mirror of one client's palette cache (LRU, fixed entry count).
#[derive(Debug, Clone)]
pub struct PaletteCache {
    capacity: usize,
    entries: HashMap<u64, u64>,
    lru: BTreeMap<u64, u64>,
    next_stamp: u64,
}

impl Default for PaletteCache {
    fn default() -> Self {
        PaletteCache::new(CLIENT_PALETTE_CACHE_SIZE)
    }
}

/// What to do with a palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaletteUse {
    /// Send its id (`PAL_FROM_CACHE`).
    FromCache,
    /// Send it inline with `PAL_CACHE_ME`; first invalidate these ids (INVAL_PALETTE).
    CacheMe {
        /// Evicted palette ids.
        evicted: Vec<u64>,
    },
    /// Send it inline, uncached (unique id 0).
    Inline,
}

impl PaletteCache {
    /// A cache of `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        PaletteCache {
            capacity,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides how palette `unique` goes out and updates the mirror.
    pub fn use_palette(&mut self, unique: u64) -> PaletteUse {
        if unique == 0 || self.capacity == 0 {
            return PaletteUse::Inline;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(old) = self.entries.insert(unique, stamp) {
            self.lru.remove(&old);
            self.lru.insert(stamp, unique);
            return PaletteUse::FromCache;
        }
        self.lru.insert(stamp, unique);
        let mut evicted = Vec::new();
        while self.entries.len() > self.capacity {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            self.entries.remove(&victim);
            evicted.push(victim);
        }
        PaletteUse::CacheMe { evicted }
    }

    /// Forgets everything (INVAL_ALL_PALETTES).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixmap_lru_evicts_oldest_first() {
        let mut c = PixmapCache::new(100);
        assert_eq!(c.add(1, 40, false), Some(vec![]));
        assert_eq!(c.add(2, 40, false), Some(vec![]));
        // Touch 1 so 2 is the oldest.
        assert_eq!(c.lookup(1), Some(CacheHit::Lossless));
        assert_eq!(c.add(3, 40, true), Some(vec![2]));
        assert_eq!(c.used(), 80);
        assert_eq!(c.lookup(3), Some(CacheHit::Lossy));
        assert_eq!(c.lookup(2), None);
        // Too large ever to fit.
        assert_eq!(c.add(4, 101, false), None);
        // Needs everything out.
        assert_eq!(c.add(5, 100, false), Some(vec![1, 3]));
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.used(), 0);
    }

    #[test]
    fn pixmap_replace_keeps_accounting() {
        let mut c = PixmapCache::new(50);
        c.add(7, 30, true);
        assert_eq!(c.add(7, 30, false), Some(vec![]));
        assert_eq!(c.used(), 30);
        assert_eq!(c.lookup(7), Some(CacheHit::Lossless));
        assert_eq!(PixmapCache::new(-5).capacity(), 0);
    }

    #[test]
    fn palette_cache_lru() {
        let mut p = PaletteCache::new(2);
        assert_eq!(p.use_palette(0), PaletteUse::Inline);
        assert_eq!(p.use_palette(10), PaletteUse::CacheMe { evicted: vec![] });
        assert_eq!(p.use_palette(11), PaletteUse::CacheMe { evicted: vec![] });
        assert_eq!(p.use_palette(10), PaletteUse::FromCache);
        assert_eq!(p.use_palette(12), PaletteUse::CacheMe { evicted: vec![11] });
        assert_eq!(p.len(), 2);
        p.clear();
        assert!(p.is_empty());
    }
}
