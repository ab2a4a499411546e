//! The round-trip time estimate behind the resend timeout (RFC 6298's, in whole microseconds).

use crate::time::Duration;

/// The longest resend timeout the estimate gives, in microseconds (RFC 6298 allows an upper
/// bound of at least 60 s); a configured `resend_interval` above it still applies.
const MAX_RTO: u32 = 60_000_000;

/// The least margin over the smoothed RTT (RFC 6298's clock granularity `G`): a steady RTT
/// makes the variance vanish, and a timeout at exactly the RTT would race the ACK.
const GRANULARITY: u32 = 1_000;

/// Smoothed RTT and its mean deviation, from acknowledgements of fragments transmitted once.
///
/// In `u32` microseconds: samples are cut to [`MAX_RTO`] (60 s, which the timeout never
/// passes anyway), so `srtt + 4 rttvar` stays below 2^32 and a microcontroller without 64-bit
/// arithmetic does it in single instructions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RttEstimate {
    /// `(srtt, rttvar)` in microseconds; `None` before the first sample.
    smoothed: Option<(u32, u32)>,
}

impl RttEstimate {
    pub(crate) const fn new() -> Self {
        RttEstimate { smoothed: None }
    }

    /// Takes one sample: `srtt = 7/8 srtt + 1/8 r`, `rttvar = 3/4 rttvar + 1/4 |srtt - r|`
    /// (the first sets `srtt = r`, `rttvar = r/2`).
    pub(crate) fn sample(&mut self, rtt: Duration) {
        let r = u32::try_from(rtt.as_micros()).map_or(MAX_RTO, |r| r.min(MAX_RTO));
        self.smoothed = Some(match self.smoothed {
            None => (r, r / 2),
            Some((srtt, var)) => {
                let dev = srtt.abs_diff(r);
                // All at most MAX_RTO: no overflow.
                let var = var - var / 4 + dev / 4;
                let srtt = srtt - srtt / 8 + r / 8;
                (srtt, var)
            }
        });
    }

    /// The smoothed RTT, once sampled.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.smoothed
            .map(|(srtt, _)| Duration::from_micros(u64::from(srtt)))
    }

    /// How long after its transmission an unacknowledged fragment is resent: `srtt +
    /// max(G, 4 rttvar)`, at most [`MAX_RTO`], and never below `min` (the configured
    /// `resend_interval`, which is all there is before the first sample).
    pub(crate) fn rto(&self, min: Duration) -> Duration {
        // At most 60 s + 4 · 60 s: no overflow.
        let estimate = self
            .smoothed
            .map_or(0, |(srtt, var)| srtt + (var * 4).max(GRANULARITY));
        Duration::from_micros(u64::from(estimate.min(MAX_RTO))).max(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(2);

    #[test]
    fn before_a_sample_the_configured_interval() {
        let e = RttEstimate::new();
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rto(MIN), MIN);
    }

    #[test]
    fn rfc_6298_smoothing() {
        let mut e = RttEstimate::new();
        e.sample(Duration::from_millis(800));
        // srtt 800 ms, rttvar 400 ms: 800 + 1,600.
        assert_eq!(e.srtt(), Some(Duration::from_millis(800)));
        assert_eq!(e.rto(MIN), Duration::from_millis(2_400));
        e.sample(Duration::from_millis(1_600));
        // rttvar 300 + 200 = 500 ms; srtt 700 + 200 = 900 ms.
        assert_eq!(e.srtt(), Some(Duration::from_millis(900)));
        assert_eq!(e.rto(MIN), Duration::from_millis(2_900));
        // A fast link stays at the configured minimum.
        let mut fast = RttEstimate::new();
        fast.sample(Duration::from_millis(2));
        assert_eq!(fast.rto(MIN), MIN);
    }

    #[test]
    fn a_steady_rtt_keeps_a_margin_and_the_bound_holds() {
        let mut e = RttEstimate::new();
        for _ in 0..200 {
            e.sample(Duration::from_secs(3));
        }
        assert_eq!(e.rto(MIN), Duration::from_micros(3_001_000));
        for _ in 0..10 {
            e.sample(Duration::from_micros(u64::MAX));
        }
        assert_eq!(e.rto(MIN), Duration::from_secs(60));
        assert_eq!(e.rto(Duration::from_secs(90)), Duration::from_secs(90));
    }
}
