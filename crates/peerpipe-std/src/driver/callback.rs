//! The application's callbacks for messages and statuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// An application callback taking items of type `T`.
pub(crate) type CallbackFn<T> = Box<dyn FnMut(T) + Send>;

/// An application callback for items of one kind (messages or statuses), and whether one
/// is set (read on every dispatch without taking the lock).
pub(crate) struct Callback<T> {
    cb: Mutex<Option<CallbackFn<T>>>,
    set: AtomicBool,
}

impl<T> Callback<T> {
    pub(crate) const fn new() -> Self {
        Callback {
            cb: Mutex::new(None),
            set: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sets or clears the callback; the old one is dropped outside the lock.
    pub(crate) fn replace(&self, cb: Option<CallbackFn<T>>) {
        let set = cb.is_some();
        let old = self
            .cb
            .lock()
            .map(|mut slot| std::mem::replace(&mut *slot, cb))
            .ok()
            .flatten();
        self.set.store(set, Ordering::SeqCst);
        drop(old);
    }

    /// Gives `value` to the callback if one is set; otherwise hands it back.
    pub(crate) fn call(&self, value: T) -> Option<T> {
        match self.cb.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            Some(cb) => {
                cb(value);
                None
            }
            None => Some(value),
        }
    }
}
