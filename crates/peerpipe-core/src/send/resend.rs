//! Transmissions and their acknowledgements: a fragment's transmission recorded (its resend
//! timer started), what an ACK settles (and the RTT sample it gives), fragments made due again
//! (a retry after the peer refused them, a resend after a new connection or at their timer),
//! and the deadlines at which messages are given up.

use crate::config::Timing;
use crate::error::FailReason;
use crate::event::Outcome;
use crate::time::{earliest, Duration, Instant};
use crate::wire::Ack;

use super::{Fragment, SendQueue};

impl<const P: usize, const T: usize, const TX: usize> SendQueue<P, T, TX> {
    /// Records that fragment `index` was transmitted at `now`; returns whether it was a resend.
    pub(crate) fn mark_sent(&mut self, index: usize, now: Instant) -> bool {
        let Some(f) = self.frags.get_mut(index).filter(|f| f.live) else {
            return false;
        };
        let replaces_lost = f.restored;
        if !replaces_lost {
            f.sent = f.sent.saturating_add(1);
        }
        f.due = false;
        f.retry = false;
        f.restored = false;
        let resend = replaces_lost || f.sent > 1;
        f.resent |= resend;
        (f.timed, f.sent_at) = (true, now);
        resend
    }

    /// Settles every fragment the ACK covers, and the messages they complete. The newest
    /// of them transmitted only once gives an RTT sample, taken at `now`, and a new resend
    /// timeout.
    pub(crate) fn ack(&mut self, ack: &Ack, now: Instant, config: &Timing) {
        let mut newest: Option<Instant> = None;
        for i in 0..TX {
            let Some(f) = self
                .frags
                .get_mut(i)
                .filter(|f| f.live && ack.covers(f.seq))
            else {
                continue;
            };
            f.live = false;
            let f = *f;
            if !f.resent {
                newest = newest.max(f.timed.then_some(f.sent_at));
            }
            if let Some(m) = self.msg_mut(f.id) {
                m.in_flight = m.in_flight.saturating_sub(1);
                m.acked += u64::from(f.len);
                if m.outcome.is_none() && !m.uncut() && m.in_flight == 0 {
                    m.outcome = Some(Outcome::Delivered);
                }
            }
        }
        if let Some(sent) = newest {
            self.rtt.sample(now - sent);
            self.rto = config.resend_interval.map(|min| self.rtt.rto(min));
        }
    }

    /// The peer refused some of what it was sent for lack of room and has room now: every
    /// transmitted fragment the ACK does not cover becomes due at once (within the peer's
    /// window), instead of waiting for its resend timer, if it may still be resent at all.
    /// Such a retry counts as a resend.
    pub(crate) fn retry(&mut self, ack: &Ack, config: &Timing) {
        if config.resend_interval.is_none() {
            return;
        }
        for f in self.frags.iter_mut().filter(|f| f.live) {
            let left = config.max_resends.is_none_or(|max| f.sent <= max);
            if f.sent > 0 && !f.due && left && !ack.covers(f.seq) {
                f.due = true;
                f.retry = true;
                f.timed = false;
            }
        }
    }

    /// The transport was replaced by a new connection: what went out on the old one may be
    /// lost with it. Every transmitted fragment not yet acknowledged becomes due at once (with
    /// the retry flag, so it goes within the peer's window like a first transmission), even
    /// one whose last allowed transmission is out: that transmission may be what was lost,
    /// so this one replaces it and does not count against `max_resends` (a message fails
    /// because the peer did not take it, not because the connection was cut). It still
    /// counts in the `resends` statistic.
    pub(crate) fn resend_all_now(&mut self, config: &Timing) {
        if config.resend_interval.is_none() {
            return;
        }
        for f in self.frags.iter_mut().filter(|f| f.live) {
            if f.sent > 0 && !f.due {
                f.due = true;
                f.retry = true;
                f.restored = true;
                f.timed = false;
            }
        }
    }

    /// Acts on due deadlines: timeouts fail, due resends are marked for transmission,
    /// messages whose fragment's last allowed transmission went unanswered fail. Returns
    /// whether any message was given up.
    pub(crate) fn handle_timeout(&mut self, now: Instant, config: &Timing) -> bool {
        let mut gave_up = false;
        let rto = self.rto;
        let expired = |f: &Fragment| resend_at(f, rto).is_some_and(|at| at <= now);
        loop {
            // Timeouts first, then fragments whose last allowed transmission went unanswered.
            let exhausted =
                |f: &Fragment| expired(f) && config.max_resends.is_some_and(|max| f.sent > max);
            let failure = self
                .live()
                .find(|m| m.outcome.is_none() && m.deadline <= now)
                .map(|m| (m.id, FailReason::TimedOut))
                .or_else(|| {
                    self.in_flight()
                        .find(|f| exhausted(f))
                        .map(|f| (f.id, FailReason::ResendsExhausted))
                });
            let Some((id, reason)) = failure else {
                break;
            };
            self.fail(id, reason);
            gave_up = true;
        }
        for f in self.frags.iter_mut().filter(|f| f.live) {
            if expired(f) {
                f.due = true;
                f.retry = false;
                f.timed = false;
            }
        }
        gave_up
    }

    /// The earliest resend or timeout deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // One fold per table.
        let resends = self
            .in_flight()
            .fold(None, |next, f| earliest(next, resend_at(f, self.rto)));
        self.live()
            .filter(|m| m.outcome.is_none())
            .fold(resends, |next, m| earliest(next, Some(m.deadline)))
    }
}

fn resend_at(f: &Fragment, rto: Option<Duration>) -> Option<Instant> {
    rto.filter(|_| f.timed).map(|rto| f.sent_at + rto)
}
