//! The application's callbacks for messages and statuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// An application callback taking items of type `T`.
pub(crate) type CallbackFn<T> = Box<dyn FnMut(T) + Send>;

/// An application callback for items of one kind (messages or statuses), and whether one
/// is set (read on every dispatch without taking the lock).
///
/// The callback runs outside the lock, so that it may call any method of its handler,
/// this one's `replace` included: it is taken out of its slot for the call and put back
/// afterwards unless it was replaced meanwhile.
pub(crate) struct Callback<T> {
    slot: Mutex<Slot<T>>,
    set: AtomicBool,
}

struct Slot<T> {
    cb: Option<CallbackFn<T>>,
    /// Counts replacements: a callback taken out for a call goes back only if none happened.
    generation: u64,
}

impl<T> Callback<T> {
    pub(crate) const fn new() -> Self {
        Callback {
            slot: Mutex::new(Slot {
                cb: None,
                generation: 0,
            }),
            set: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sets or clears the callback; the old one is dropped outside the lock.
    pub(crate) fn replace(&self, cb: Option<CallbackFn<T>>) {
        let set = cb.is_some();
        let old = {
            let mut slot = self.lock();
            slot.generation += 1;
            self.set.store(set, Ordering::SeqCst);
            std::mem::replace(&mut slot.cb, cb)
        };
        drop(old);
    }

    /// Gives `value` to the callback if one is set; otherwise hands it back. Called by one
    /// thread only (the I/O thread).
    pub(crate) fn call(&self, value: T) -> Option<T> {
        let (mut cb, generation) = {
            let mut slot = self.lock();
            match slot.cb.take() {
                Some(cb) => (cb, slot.generation),
                None => return Some(value),
            }
        };
        cb(value);
        let mut slot = self.lock();
        if slot.generation == generation {
            slot.cb = Some(cb);
        } else {
            drop(slot);
            drop(cb);
        }
        None
    }
}
