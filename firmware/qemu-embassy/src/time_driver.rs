//! embassy-time's driver on SysTick: a 64-bit count of milliseconds (the crate is built with
//! `tick-hz-1_000`) and embassy's timer queue, whose expired timers the SysTick handler wakes
//! every tick. The executor sleeps (WFE) between ticks and events.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The core clock QEMU gives the lm3s6965evb's SysTick (CLKSOURCE = processor clock).
const CORE_HZ: u32 = 12_000_000;

/// The driver: the tick count and the timer queue, behind one critical section.
pub struct SysTickDriver {
    ticks: Mutex<CriticalSectionRawMutex, Cell<u64>>,
    queue: Mutex<CriticalSectionRawMutex, RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        self.ticks.lock(Cell::get)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            if at <= self.ticks.borrow(cs).get() {
                waker.wake_by_ref();
            } else {
                // The next tick looks at the queue: no alarm to set.
                let _ = self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker);
            }
        });
    }
}

/// Starts SysTick interrupting every millisecond. Call it once, first thing.
pub fn start(mut syst: cortex_m::peripheral::SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Counts a millisecond and wakes the timers that expired: call it from the `SysTick`
/// exception handler only.
pub fn tick() {
    critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get().wrapping_add(1);
        ticks.set(now);
        let _ = DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
    });
}
