//! A single-producer single-consumer byte ring for an RX interrupt handler (producer) and the
//! main loop (consumer). Only atomic loads and stores: works on Cortex-M0 too.
//!
//! Every slot is an atomic byte, so neither side ever holds a reference to memory the other
//! may be writing: no `unsafe`, and sound by construction (an earlier version took a `&mut`
//! to the whole buffer from the interrupt handler while the main loop read it).

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Capacity in bytes (one slot stays free).
pub const RING: usize = 256;

/// The ring; a `static`.
pub struct Ring {
    buf: [AtomicU8; RING],
    head: AtomicUsize,
    tail: AtomicUsize,
    /// Bytes dropped because the ring was full.
    overflows: AtomicUsize,
}

impl Ring {
    /// An empty ring.
    pub const fn new() -> Self {
        Ring {
            buf: [const { AtomicU8::new(0) }; RING],
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
        // Slot `head` is not read by the consumer until the Release store of `head`.
        if let Some(slot) = self.buf.get(head) {
            slot.store(byte, Ordering::Relaxed);
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
        // Slot `tail` was published by the producer's Release store of `head` (Acquired
        // above) and is not reused until `tail` moves.
        let byte = self.buf.get(tail).map(|b| b.load(Ordering::Relaxed));
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
