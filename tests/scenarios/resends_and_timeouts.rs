//! Resends and timeouts: how many transmissions a send gets and when it fails.

use peerpipe_core::{Config, Duration, FailReason, Instant, Outcome};
use peerpipe_sim::Side;

use crate::support::*;

/// Sends one message from A over a cut A→B link at 500 ms; returns its single outcome, the
/// instant it was reported, and how many DATA frames A sent.
fn send_into_the_void(config: Config, timeout: Option<Duration>) -> (Outcome, Instant, u64) {
    let mut p = pair(config);
    p.run_for(ms(500));
    p.ab.set_cut(true);
    let id = p.a.send(p.now(), req(0), timeout).unwrap();
    let at = first_event_at(&mut p, Side::A, at_ms(100_000));
    let events = p.take_events(Side::A);
    assert_eq!(events.len(), 1, "{events:?}");
    let (got, outcome) = outcomes(&events)[0];
    assert_eq!(got, id);
    let s = p.a.stats();
    assert_eq!(s.resends, s.data_sent.saturating_sub(1));
    assert_eq!(p.b.stats().accepted, 0);
    (outcome, at, s.data_sent)
}

/// `max_resends + 1` transmissions exactly; the send fails one resend interval after the last.
#[test]
fn transmissions_are_max_resends_plus_one() {
    for max in [0u32, 1, 3, 5, 20] {
        let config = Config {
            max_resends: Some(max),
            heartbeat_timeout: secs(10).into(),
            ..fast()
        };
        let (outcome, at, sent) = send_into_the_void(config, None);
        assert_eq!(
            outcome,
            Outcome::Failed(FailReason::ResendsExhausted),
            "max {max}"
        );
        assert_eq!(sent, u64::from(max) + 1, "max {max}");
        // Transmissions at 500 ms + k·100 ms for k = 0..=max; failure 100 ms after the last.
        assert_eq!(at, at_ms(500 + 100 * (u64::from(max) + 1)), "max {max}");
    }
}

/// Without a resend interval a message is sent once and times out at its deadline.
#[test]
fn no_resend_interval_sends_once_then_times_out() {
    let config = Config {
        resend_interval: None,
        max_resends: Some(5),
        default_request_timeout: secs(2).into(),
        ..fast()
    };
    let (outcome, at, sent) = send_into_the_void(config, Some(ms(700)));
    assert_eq!(
        (outcome, at, sent),
        (Outcome::Failed(FailReason::TimedOut), at_ms(1_200), 1)
    );
    let (outcome, at, sent) = send_into_the_void(config, None);
    assert_eq!(
        (outcome, at, sent),
        (Outcome::Failed(FailReason::TimedOut), at_ms(2_500), 1)
    );
}

/// With `max_resends = None` a message is resent until its deadline, which wins over a resend
/// due at the same instant.
#[test]
fn unlimited_resends_until_the_timeout() {
    for (timeout, transmissions) in [(1_000, 10), (1_050, 11), (950, 10), (100, 1), (101, 2)] {
        let (outcome, at, sent) = send_into_the_void(fast(), Some(ms(timeout)));
        assert_eq!(outcome, Outcome::Failed(FailReason::TimedOut), "{timeout}");
        assert_eq!(at, at_ms(500 + timeout), "{timeout}");
        assert_eq!(sent, transmissions, "{timeout}");
    }
}

/// The original's defaults: resend every 2 s, but the 5 s timeout comes first: three
/// transmissions (0, 2, 4 s), then TimedOut at 5 s.
#[test]
fn default_config_times_out_after_three_transmissions() {
    let (outcome, at, sent) = send_into_the_void(Config::default(), None);
    assert_eq!(
        (outcome, at, sent),
        (Outcome::Failed(FailReason::TimedOut), at_ms(5_500), 3)
    );
}

/// The RTT estimate takes acknowledgements of messages transmitted once only (Karn's rule):
/// one that was resent gives no sample, one sent once gives the link's 2 ms round trip; on
/// this fast link the resend timeout stays the configured interval.
#[test]
fn rtt_is_sampled_from_messages_sent_once_only() {
    let mut p = pair(fast());
    p.run_for(ms(500));
    assert_eq!(p.a.rtt(), None);
    p.ab.set_cut(true);
    p.a.send(p.now(), req(0), None).unwrap();
    p.run_for(ms(50));
    p.ab.set_cut(false);
    assert!(p.run_until(at_ms(2_000), |p| !delivered(&p.events_a).is_empty()));
    assert_eq!(p.a.stats().resends, 1);
    assert_eq!(p.a.rtt(), None);
    p.a.send(p.now(), req(1), None).unwrap();
    assert!(p.run_until(at_ms(4_000), |p| delivered(&p.events_a).len() == 2));
    assert_eq!(p.a.stats().resends, 1);
    assert_eq!(p.a.rtt(), Some(ms(2)));
    assert_eq!(p.a.resend_timeout(), Some(ms(100)));
}
