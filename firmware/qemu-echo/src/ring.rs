//! A single-producer single-consumer byte ring for an RX interrupt handler (producer) and the
//! main loop (consumer). Only atomic loads and stores: works on Cortex-M0 too.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Capacity in bytes (one slot stays free).
pub const RING: usize = 256;

/// The ring; a `static`.
pub struct Ring {
    buf: UnsafeCell<[u8; RING]>,
    head: AtomicUsize,
    tail: AtomicUsize,
    /// Bytes dropped because the ring was full.
    overflows: AtomicUsize,
}

// SAFETY: one producer (`push`, the interrupt handler) and one consumer (`pop`, the main
// loop); each slot is written before `head` publishes it and read before `tail` frees it.
unsafe impl Sync for Ring {}

impl Ring {
    /// An empty ring.
    pub const fn new() -> Self {
        Ring {
            buf: UnsafeCell::new([0; RING]),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            overflows: AtomicUsize::new(0),
        }
    }

    /// Producer side: false (and the byte counted as lost) when full.
    pub fn push(&self, byte: u8) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let next = (head + 1) % RING;
        if next == self.tail.load(Ordering::Acquire) {
            let lost = self.overflows.load(Ordering::Relaxed);
            self.overflows
                .store(lost.wrapping_add(1), Ordering::Relaxed);
            return false;
        }
        // SAFETY: slot `head` is not visible to the consumer until `head` moves.
        unsafe {
            if let Some(slot) = (*self.buf.get()).get_mut(head) {
                *slot = byte;
            }
        }
        self.head.store(next, Ordering::Release);
        true
    }

    /// Consumer side: the oldest byte.
    pub fn pop(&self) -> Option<u8> {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail == self.head.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: slot `tail` was published by the producer and is not reused until `tail`
        // moves.
        let byte = unsafe { (*self.buf.get()).get(tail).copied() };
        self.tail.store((tail + 1) % RING, Ordering::Release);
        byte
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Relaxed) == self.head.load(Ordering::Acquire)
    }

    /// Whether a push would fail.
    pub fn is_full(&self) -> bool {
        (self.head.load(Ordering::Relaxed) + 1) % RING == self.tail.load(Ordering::Acquire)
    }

    /// Bytes lost because the ring was full.
    pub fn overflows(&self) -> usize {
        self.overflows.load(Ordering::Relaxed)
    }
}

impl Default for Ring {
    fn default() -> Self {
        Self::new()
    }
}
