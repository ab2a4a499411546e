//! Time as the caller gives it: the core never reads a clock.
//!
//! Both types count microseconds in a `u64` (584,000 years of range). Arithmetic saturates, so
//! no input time can overflow or panic. Drivers convert from `std::time::Instant`, tokio time
//! or a hardware tick counter by choosing an origin and counting microseconds from it.

use core::ops::{Add, Sub};

/// A point in time, in microseconds since an origin the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Milliseconds since the origin, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(earlier.micros),
        }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// A span of time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    micros: u64,
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { micros: 0 };

    /// `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration { micros }
    }

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// The span in microseconds.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// The span in milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// Whether the span is zero.
    pub const fn is_zero(self) -> bool {
        self.micros == 0
    }

    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration {
            micros: self.micros.saturating_mul(n),
        }
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

/// Whole microseconds, rounded down; saturates at `u64::MAX` µs (584,000 years).
///
/// No 64-bit division: the seconds are multiplied, only the sub-second part (a `u32`) is
/// divided, so the conversion stays small on a microcontroller without a divider.
impl From<core::time::Duration> for Duration {
    fn from(d: core::time::Duration) -> Self {
        /// Past this many seconds the microseconds do not fit a `u64`.
        const MAX_SECS: u64 = u64::MAX / 1_000_000;
        let secs = d.as_secs();
        let micros = if secs > MAX_SECS {
            u64::MAX
        } else {
            (secs * 1_000_000).saturating_add(u64::from(d.subsec_micros()))
        };
        Duration { micros }
    }
}

/// Exact: every count of microseconds is a `core::time::Duration` (`std::time::Duration`).
impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_micros(d.micros)
    }
}

/// The earlier of two optional deadlines (`None`: not armed). Out of line: a `u64` compare
/// of two options is a few dozen bytes of Cortex-M0 code at each of its call sites.
#[inline(never)]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) if y < x => b,
        (None, _) => b,
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_of_two_optional_deadlines() {
        let (a, b) = (Some(Instant::from_micros(1)), Some(Instant::from_micros(2)));
        assert_eq!(earliest(a, b), a);
        assert_eq!(earliest(b, a), a);
        assert_eq!(earliest(None, b), b);
        assert_eq!(earliest(b, None), b);
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let far = Instant::from_micros(u64::MAX - 1);
        assert_eq!((far + Duration::from_secs(5)).as_micros(), u64::MAX);
        assert_eq!(Instant::ZERO - far, Duration::ZERO);
        assert_eq!(Duration::from_secs(u64::MAX).as_micros(), u64::MAX);
    }

    #[test]
    fn conversions() {
        assert_eq!(Duration::from_millis(1500).as_micros(), 1_500_000);
        assert_eq!(
            Duration::from(core::time::Duration::from_millis(3)),
            Duration::from_millis(3)
        );
        assert_eq!(Instant::from_millis(7).as_millis(), 7);
        let max = core::time::Duration::MAX;
        assert_eq!(Duration::from(max).as_micros(), u64::MAX);
        let edge = core::time::Duration::new(u64::MAX / 1_000_000, 999_999_999);
        assert_eq!(Duration::from(edge).as_micros(), u64::MAX);
        let d = core::time::Duration::new(3, 456_789_999);
        assert_eq!(Duration::from(d).as_micros(), 3_456_789);
        let back: core::time::Duration = Duration::from_micros(3_456_789).into();
        assert_eq!(back, core::time::Duration::from_micros(3_456_789));
        let round_trip: core::time::Duration = Duration::from_micros(u64::MAX).into();
        assert_eq!(Duration::from(round_trip).as_micros(), u64::MAX);
    }
}
