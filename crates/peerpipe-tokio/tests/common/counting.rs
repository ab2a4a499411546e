//! A global allocator that counts the live heap bytes of each thread, and their peak: the
//! memory tests run on a current-thread runtime, so a handler's whole memory shows on the
//! test's thread. Included with `#[path]` by the tests that measure memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards every call to `System` unchanged, and counts.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|c| {
        let live = c.get() + delta;
        c.set(live);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
    });
}

/// Heap bytes allocated minus freed on this thread.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// The most [`live_bytes`] reached since the last [`reset_peak`].
#[allow(dead_code)]
pub fn peak_bytes() -> isize {
    PEAK.with(Cell::get)
}

/// Starts a new peak from the live bytes now; returns them.
#[allow(dead_code)]
pub fn reset_peak() -> isize {
    let live = live_bytes();
    PEAK.with(|p| p.set(live));
    live
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}
