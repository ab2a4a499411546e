//! An abort signal that any thread can fire, and any waiter can select on.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

/// Fires once; every clone sees it. Pass it to [`send_to_peer`](crate::PipeHandler::send_to_peer)
/// or [`request`](crate::PipeHandler::request) to give up waiting from another thread.
///
/// ```
/// let signal = peerpipe_std::AbortSignal::new();
/// let other = signal.clone();
/// std::thread::spawn(move || other.trigger()).join().unwrap();
/// assert!(signal.is_triggered());
/// ```
#[derive(Debug, Clone)]
pub struct AbortSignal {
    trigger: Arc<Mutex<Option<Sender<()>>>>,
    fired: Receiver<()>,
}

impl Default for AbortSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl AbortSignal {
    /// A signal not yet fired.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        AbortSignal {
            trigger: Arc::new(Mutex::new(Some(tx))),
            fired: rx,
        }
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        if let Ok(mut t) = self.trigger.lock() {
            t.take();
        }
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.trigger.lock().map(|t| t.is_none()).unwrap_or(true)
    }

    /// A channel that disconnects when the signal fires: select on it.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.fired
    }
}
