//! Clocks from the counters microcontrollers have.

use peerpipe_core::Instant;

/// Turns a wrapping 32-bit millisecond counter (a SysTick handler's tick count, an RTOS's
/// `u32` tick, a HAL's `millis()`) into a monotonic [`Instant`].
///
/// A `u32` of milliseconds wraps after 49.7 days; the endpoint's deadlines must not jump back
/// then. Each [`instant`](Self::instant) compares the counter with the value it saw last: a
/// smaller value means the counter wrapped, and the instant keeps counting on from 2^32 ms.
/// So read it at least once per wrap period (every 49 days; a main loop that polls at the
/// endpoint's deadlines does, the heartbeat is one). The counter may start anywhere: the
/// first instant is its value in milliseconds.
///
/// Keep one `WrappingMillis` per counter (it is not `Copy`: a copy would miss wraps the
/// original saw). A closure around it is a [`Clock`](crate::Clock):
///
/// ```
/// use peerpipe_embedded::{Clock, Instant, WrappingMillis};
///
/// # let mut counter = u32::MAX - 1;
/// # let mut ticks = move || { counter = counter.wrapping_add(1); counter };
/// // `ticks()`: the millisecond counter, u32::MAX then 0 here.
/// let mut millis = WrappingMillis::new();
/// let mut clock = move || millis.instant(ticks());
/// let before = clock.now();
/// let after = clock.now(); // the counter wrapped in between
/// assert_eq!(before, Instant::from_millis(u64::from(u32::MAX)));
/// assert_eq!(after, Instant::from_millis(1 << 32));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WrappingMillis {
    /// The counter's value at the last reading.
    last: u32,
    /// How many times the counter wrapped: the high 32 bits of the milliseconds.
    wraps: u32,
}

impl WrappingMillis {
    /// A clock that has seen no wrap yet.
    pub const fn new() -> Self {
        WrappingMillis { last: 0, wraps: 0 }
    }

    /// The instant of the counter's current value `ticks` (milliseconds). Never before the
    /// instant of the previous call, as long as calls are less than 2^32 ms apart.
    pub fn instant(&mut self, ticks: u32) -> Instant {
        if ticks < self.last {
            self.wraps = self.wraps.wrapping_add(1);
        }
        self.last = ticks;
        Instant::from_millis((u64::from(self.wraps) << 32) | u64::from(ticks))
    }
}
