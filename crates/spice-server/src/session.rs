//! Sessions: one per connected client. The main channel creates it (its id is the
//! `session_id` of `MAIN_INIT`); the client's other channels link with that id as their
//! connection id and join it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::channel::Waker;

use spice_proto::main::MouseMode;

/// Locks a mutex, ignoring poisoning (a panicked holder leaves plain data behind).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One client's session: its id, its current mouse mode, and typed slots where channels
/// keep per-client state shared between them (e.g. one GLZ dictionary for all of the
/// client's display channels: `session.shared(|| GlzState::new())`).
pub struct Session {
    id: u32,
    mouse_mode: Mutex<MouseMode>,
    slots: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    closed: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("mouse_mode", &self.mouse_mode())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with this id, in server mouse mode.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            mouse_mode: Mutex::new(MouseMode::SERVER),
            slots: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// The session id (`MAIN_INIT.session_id`, the connection id of other channels).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The current mouse mode (server or client).
    pub fn mouse_mode(&self) -> MouseMode {
        *lock(&self.mouse_mode)
    }

    /// Sets the mouse mode (the main channel does this on `MOUSE_MODE_REQUEST`).
    pub fn set_mouse_mode(&self, mode: MouseMode) {
        *lock(&self.mouse_mode) = mode;
    }

    /// Ends the session: every channel of the client is woken and closes (spice-server
    /// drops a client's channels when its main channel goes).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for w in wakers {
            w.wake();
        }
    }

    /// True once [`Session::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Registers a channel's waker, woken when the session closes.
    pub fn add_waker(&self, waker: Waker) {
        if self.is_closed() {
            waker.wake();
        } else {
            lock(&self.wakers).push(waker);
        }
    }

    /// The session's shared value of type `T`, created by `init` on first use.
    pub fn shared<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut slots = lock(&self.slots);
        if let Some(v) = slots.get(&TypeId::of::<T>()) {
            if let Ok(v) = Arc::clone(v).downcast::<T>() {
                return v;
            }
        }
        // Absent (or, impossibly, of another type under T's TypeId): create it.
        let v = Arc::new(init());
        slots.insert(TypeId::of::<T>(), v.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_slots_are_per_type_and_created_once() {
        let s = Session::new(7);
        let a = s.shared(|| Mutex::new(1u32));
        *lock(&a) += 1;
        let b = s.shared(|| Mutex::new(100u32));
        assert_eq!(*lock(&b), 2);
        let c = s.shared(|| 5u64);
        assert_eq!(*c, 5);
        assert_eq!(s.mouse_mode(), MouseMode::SERVER);
        s.set_mouse_mode(MouseMode::CLIENT);
        assert_eq!(s.mouse_mode(), MouseMode::CLIENT);
    }
}
