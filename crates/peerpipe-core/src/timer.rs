//! The endpoint's connection-level timers, in one table.

use crate::time::{earliest, Instant};

/// A connection-level timer. Per-send timers (resend, timeout) live with their send slot and
/// join this table's minimum in [`Endpoint::poll_timeout`](crate::Endpoint::poll_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// When the next heartbeat is due (off while one is waiting to be transmitted).
    Heartbeat = 0,
    /// When the peer counts as gone unless a frame arrives first.
    Silence = 1,
}

/// A fixed array of optional deadlines, one per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; 2],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        if let Some(slot) = self.deadlines.get_mut(timer as usize) {
            *slot = at;
        }
    }

    /// Whether `timer` is armed and due at `now`; a due timer is disarmed.
    pub(crate) fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        match self.deadlines.get_mut(timer as usize) {
            Some(slot) if slot.is_some_and(|at| at <= now) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.deadlines = [None; 2];
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let [a, b] = self.deadlines;
        earliest(a, b)
    }
}
