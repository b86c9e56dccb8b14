//! One GLZ dictionary per client, shared by that client's display channels.
//!
//! spice-server keys the dictionary by the client and the `glz_dictionary_id` each display
//! channel sends in DISPLAY_INIT; the channels of one client that send the same id encode
//! into one dictionary (the client decodes them into one window). The registry holds weak
//! references: a dictionary lives as long as one of its channels does.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use spice_codecs::glz::{
    GlzDictionary, GlzEncoder, GlzError, MAX_WINDOW_PIXELS, SharedGlzDictionary,
};

type DictMap = HashMap<(u32, u8), Weak<Mutex<GlzDictionary>>>;

/// Shared dictionaries keyed by (client session, dictionary id).
#[derive(Debug, Default)]
pub struct GlzRegistry {
    dicts: Mutex<DictMap>,
    next_encoder: Mutex<u32>,
}

impl GlzRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dictionary of `session`'s `dictionary_id`, created with `window_pixels` (clamped
    /// to 1..=2^25) if none is alive; returns it with a new encoder over it and the window
    /// size in force.
    pub fn encoder(
        &self,
        session: u32,
        dictionary_id: u8,
        window_pixels: i64,
    ) -> Result<(GlzEncoder, u64), GlzError> {
        let window = usize::try_from(window_pixels.max(1))
            .unwrap_or(MAX_WINDOW_PIXELS)
            .min(MAX_WINDOW_PIXELS);
        let mut dicts = self.dicts.lock().unwrap_or_else(|e| e.into_inner());
        dicts.retain(|_, w| w.strong_count() > 0);
        let dict: SharedGlzDictionary =
            match dicts.get(&(session, dictionary_id)).and_then(Weak::upgrade) {
                Some(d) => d,
                None => {
                    let d = GlzDictionary::new_shared(window)?;
                    dicts.insert((session, dictionary_id), std::sync::Arc::downgrade(&d));
                    d
                }
            };
        let size = dict.lock().unwrap_or_else(|e| e.into_inner()).window_size() as u64;
        let mut n = self.next_encoder.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.wrapping_add(1);
        Ok((GlzEncoder::new(*n, dict), size))
    }

    /// Dictionaries alive.
    pub fn live(&self) -> usize {
        let dicts = self.dicts.lock().unwrap_or_else(|e| e.into_inner());
        dicts.values().filter(|w| w.strong_count() > 0).count()
    }
}
