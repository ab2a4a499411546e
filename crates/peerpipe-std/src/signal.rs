//! An abort signal that any thread can fire, and the one-shot hand-over through which the
//! I/O thread gives a waiting caller its result.
//!
//! A waiting caller polls for a moment (spinning briefly, then yielding its CPU between
//! polls), then parks; the I/O thread wakes it only if it parked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Thread, ThreadId};
use std::time::{Duration, Instant};

/// Fires once; every clone sees it. Pass it to [`send_to_peer`](crate::PipeHandler::send_to_peer)
/// or [`request`](crate::PipeHandler::request) to give up waiting from another thread.
///
/// ```
/// let signal = peerpipe_std::AbortSignal::new();
/// let other = signal.clone();
/// std::thread::spawn(move || other.trigger()).join().unwrap();
/// assert!(signal.is_triggered());
/// ```
#[derive(Debug, Clone, Default)]
pub struct AbortSignal {
    inner: Arc<AbortInner>,
}

#[derive(Debug, Default)]
struct AbortInner {
    fired: AtomicBool,
    /// Threads waiting with this signal: woken when it fires.
    waiters: Mutex<Vec<(ThreadId, Thread)>>,
}

impl AbortSignal {
    /// A signal not yet fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        let waiters = self
            .inner
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, t) in waiters.iter() {
            t.unpark();
        }
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    fn register(&self) {
        let me = std::thread::current();
        self.inner
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((me.id(), me));
    }

    fn unregister(&self) {
        let me = std::thread::current().id();
        let mut waiters = self
            .inner
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = waiters.iter().position(|(id, _)| *id == me) {
            waiters.swap_remove(i);
        }
    }
}

/// How long a waiter polls for its result (spinning briefly, then yielding its CPU to any
/// other runnable thread) before it parks. A result that comes within it (a round trip, an
/// acknowledgement) is taken without a sleep and a wake-up: on a virtual machine a wake-up
/// costs the waking thread microseconds (an inter-processor interrupt), and the woken one
/// more. Bounded, so a long wait costs no more than this in CPU time.
const POLL_FOR: Duration = Duration::from_micros(100);

struct Slot<T> {
    value: Mutex<Option<T>>,
    /// A value is in `value`, or the sender is gone without one.
    ready: AtomicBool,
    /// The waiter gave up: a value sent now is handed back.
    abandoned: AtomicBool,
    /// The thread to wake: the one that made the one-shot, or the last one that waited on
    /// it (a pipelined send's ticket may move to another thread).
    waiter: Mutex<Thread>,
}

/// The sending half of a one-shot: dropped without a value, it wakes the waiter with none.
pub(crate) struct Promise<T>(Arc<Slot<T>>);

/// The waiting half of a one-shot; any thread may wait on it (one at a time).
pub(crate) struct Waiter<T>(Arc<Slot<T>>);

/// A one-shot for the current thread to wait on.
pub(crate) fn oneshot<T>() -> (Promise<T>, Waiter<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        ready: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        waiter: Mutex::new(std::thread::current()),
    });
    (Promise(slot.clone()), Waiter(slot))
}

impl<T> Promise<T> {
    /// Hands `value` to the waiter; gives it back if the waiter gave up.
    pub(crate) fn send(self, value: T) -> Result<(), T> {
        if self.0.abandoned.load(Ordering::SeqCst) {
            return Err(value);
        }
        *self.0.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if !self.0.ready.swap(true, Ordering::SeqCst) {
            self.0
                .waiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .unpark();
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        self.wake();
    }
}

/// How a wait ended.
pub(crate) enum Waited<T> {
    Value(T),
    /// The promise was dropped without a value.
    Dropped,
    TimedOut,
    Aborted,
}

impl<T> Waiter<T> {
    /// Waits for the value until `deadline` (if any) or until `abort` fires (if given).
    /// Polls for up to [`POLL_FOR`] first when `spin` is on.
    pub(crate) fn wait(
        &self,
        deadline: Option<Instant>,
        abort: Option<&AbortSignal>,
        spin: bool,
    ) -> Waited<T> {
        let slot = &self.0;
        let until = Instant::now() + if spin { POLL_FOR } else { Duration::ZERO };
        loop {
            for _ in 0..2 {
                if slot.ready.load(Ordering::Acquire) {
                    return self.take();
                }
                std::hint::spin_loop();
            }
            if abort.is_some_and(AbortSignal::is_triggered) {
                return Waited::Aborted;
            }
            let now = Instant::now();
            if now >= until || deadline.is_some_and(|d| now >= d) {
                break;
            }
            std::thread::yield_now();
        }
        if let Some(a) = abort {
            a.register();
        }
        {
            // Set before `ready` is read below: a promise that found the old thread had
            // set `ready` already.
            let mut waiter = slot.waiter.lock().unwrap_or_else(PoisonError::into_inner);
            if waiter.id() != std::thread::current().id() {
                *waiter = std::thread::current();
            }
        }
        let waited = loop {
            if slot.ready.load(Ordering::SeqCst) {
                break self.take();
            }
            if abort.is_some_and(AbortSignal::is_triggered) {
                break Waited::Aborted;
            }
            match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break Waited::TimedOut;
                    }
                    std::thread::park_timeout(left);
                }
                None => std::thread::park(),
            }
        };
        if let Some(a) = abort {
            a.unregister();
        }
        waited
    }

    /// The value, if it came (or the promise was dropped without one); never blocks.
    pub(crate) fn try_take(&self) -> Option<Waited<T>> {
        self.0.ready.load(Ordering::Acquire).then(|| self.take())
    }

    fn take(&self) -> Waited<T> {
        match self
            .0
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(v) => Waited::Value(v),
            None => Waited::Dropped,
        }
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::SeqCst);
    }
}
