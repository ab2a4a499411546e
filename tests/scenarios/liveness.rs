//! Liveness: GONE by silence or by a lost transport, heartbeats on an idle link, pause and resume.

use peerpipe_core::{
    CloseReason, Config, Duration, Error, Event, FailReason, GoneReason, Outcome, PeerState,
};
use peerpipe_sim::{LinkConfig, Side};

use crate::support::*;

/// GONE fires exactly `heartbeat_timeout` after the last valid frame arrived, not an instant
/// earlier, on both sides; the send pending at that moment fails with `PeerGone`.
#[test]
fn gone_exactly_at_last_frame_plus_timeout() {
    let mut p = pair(fast());
    let mut clock = RxClock::default();
    clock.run(&mut p, at_ms(10_500));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    // Heartbeats go every second from t = 0; each arrives 1 ms later.
    assert_eq!(clock.last, [at_ms(10_001), at_ms(10_001)]);
    assert_eq!(p.a.stats().heartbeats_sent, 11);

    p.ab.set_cut(true);
    p.ba.set_cut(true);
    let id = p.a.send(p.now(), req(0), None).unwrap();

    let gone_at = clock.last[0] + Duration::from(fast().heartbeat_timeout);
    assert_eq!(gone_at, at_ms(13_001));
    let early = p.run_until(before(gone_at), |p| {
        p.events_a.iter().any(is_gone) || p.events_b.iter().any(is_gone)
    });
    assert!(!early, "GONE reported before {gone_at:?}");
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    assert_eq!(p.a.peer_state(), PeerState::Up);

    let reported = p.run_until(gone_at, |p| {
        p.events_a.iter().any(is_gone) && p.events_b.iter().any(is_gone)
    });
    assert!(reported);
    assert_eq!(p.now(), gone_at);
    assert_eq!(
        p.take_events(Side::A),
        [
            Event::SendOutcome {
                id,
                outcome: Outcome::Failed(FailReason::PeerGone)
            },
            Event::Gone(GoneReason::Silence)
        ]
    );
    assert_eq!(p.take_events(Side::B), [Event::Gone(GoneReason::Silence)]);
    // The send went out every 100 ms from 10.5 s until the peer was declared gone at 13.001 s.
    assert_eq!(p.a.stats().data_sent, 26);
    assert_eq!(p.a.pending_sends(), 0);
    assert_eq!(p.a.peer_state(), PeerState::Gone);
    assert_eq!(p.b.peer_state(), PeerState::Gone);
}

/// A peer never heard from is gone `heartbeat_timeout` after the endpoint started.
#[test]
fn gone_when_peer_never_seen() {
    let mut p = pair(fast());
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    assert!(
        !p.run_until(before(at_ms(3_000)), |p| !p.events_a.is_empty()
            || !p.events_b.is_empty())
    );
    assert!(p.run_until(at_ms(3_000), |p| !p.events_a.is_empty()));
    assert_eq!(p.now(), at_ms(3_000));
    assert_eq!(p.take_events(Side::A), [Event::Gone(GoneReason::Silence)]);
    assert_eq!(p.take_events(Side::B), [Event::Gone(GoneReason::Silence)]);
    assert_eq!(p.a.peer_session(), None);
}

/// GONE is reported once; the gone peer's session stays gone even when its frames come back,
/// and the conversation refuses new sends with `Closed(PeerGone)`.
#[test]
fn gone_reported_once_and_the_same_session_stays_gone() {
    let mut p = pair(fast());
    p.run_for(ms(2_500));
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    p.run_for(secs(300));
    assert_eq!(p.take_events(Side::A), [Event::Gone(GoneReason::Silence)]);
    assert_eq!(p.take_events(Side::B), [Event::Gone(GoneReason::Silence)]);

    // The link comes back: both keep heartbeating, but neither takes the other back.
    p.ab.set_cut(false);
    p.ba.set_cut(false);
    let ignored = p.b.stats().ignored_after_gone;
    p.run_for(secs(30));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    assert!(p.b.stats().ignored_after_gone >= ignored + 29);
    assert_eq!(p.a.peer_state(), PeerState::Gone);
    assert_eq!(
        p.a.send(p.now(), req(0), None),
        Err(Error::Closed(CloseReason::PeerGone))
    );
    assert_eq!(
        p.b.notify_end(p.now(), b"x"),
        Err(Error::Closed(CloseReason::PeerGone))
    );
    // A transport loss after GONE is not a second GONE.
    p.a.transport_lost();
    p.run_for(secs(1));
    assert!(p.events_a.is_empty());
}

/// `transport_lost` declares the peer gone at once, fails pending sends, and is reported once.
#[test]
fn transport_lost_is_an_immediate_gone_reported_once() {
    let mut p = pair(fast());
    p.run_for(ms(1_500));
    p.ab.set_cut(true);
    let id = p.a.send(p.now(), req(0), None).unwrap();
    p.step();
    p.a.transport_lost();
    p.a.transport_lost();
    p.step();
    assert_eq!(
        p.take_events(Side::A),
        [
            Event::SendOutcome {
                id,
                outcome: Outcome::Failed(FailReason::PeerGone)
            },
            Event::Gone(GoneReason::TransportLost)
        ]
    );
    p.a.transport_lost();
    p.run_for(secs(10));
    assert!(p.events_a.is_empty());
}

/// `heartbeat_timeout = 0` turns the GONE check off: an hour of silence reports nothing.
#[test]
fn zero_heartbeat_timeout_never_reports_gone() {
    let config = Config {
        heartbeat_timeout: Duration::ZERO.into(),
        ..fast()
    };
    let mut p = pair(config);
    p.run_for(secs(5));
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    p.run_for(secs(3_600));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    assert_eq!(p.a.peer_state(), PeerState::Up);
    assert_eq!(p.b.peer_state(), PeerState::Up);
    // Heartbeats still go out (into the cut link) once a second.
    assert_eq!(p.a.stats().heartbeats_sent, 3_606);
}

/// Heartbeats keep an idle link alive for 100 times the timeout: no GONE, no event at all,
/// and one heartbeat per interval.
#[test]
fn heartbeats_keep_an_idle_link_alive() {
    let mut p = pair(fast());
    let duration = Duration::from(fast().heartbeat_timeout).saturating_mul(100);
    p.run_for(duration);
    assert_eq!(p.now(), at_ms(300_000));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    for ep in [&p.a, &p.b] {
        let s = ep.stats();
        // One at start, then one per interval up to and including t = 300 s.
        assert_eq!(s.heartbeats_sent, 301);
        assert_eq!(s.frames_sent, 301);
        assert_eq!(s.data_sent + s.acks_sent, 0);
        // The heartbeat sent at 300 s is still on the link.
        assert_eq!(s.frames_received, 300);
        assert_eq!(ep.peer_state(), PeerState::Up);
    }
}

/// Over a lossy link a timeout of ten intervals keeps an idle peer alive for 1000 intervals.
#[test]
fn heartbeats_keep_an_idle_lossy_link_alive() {
    let config = Config {
        heartbeat_timeout: secs(10).into(),
        ..fast()
    };
    for seed in 1..=3 {
        let mut p = pair_with(config, config, LinkConfig::lossy(0.2, 0.05, 0.01), seed);
        p.run_for(secs(1_000));
        assert!(
            p.events_a.is_empty() && p.events_b.is_empty(),
            "seed {seed}"
        );
        let hb = p.a.stats().heartbeats_sent;
        assert!(
            (1_000..=1_001).contains(&hb),
            "seed {seed}: {hb} heartbeats"
        );
        assert!(p.b.stats().frames_received < hb, "seed {seed}: no loss?");
    }
}

/// While paused no heartbeat is sent and no GONE is reported, however long the silence;
/// messages still flow. After resume the silence clock starts at the resume instant.
#[test]
fn pause_and_resume() {
    let mut p = pair(fast());
    p.run_for(ms(5_500));
    p.a.pause(p.now());
    p.b.pause(p.now());
    assert!(p.a.is_paused() && p.b.is_paused());
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.b.poll_timeout(), None);
    let (fa, fb) = (p.a.stats().frames_sent, p.b.stats().frames_sent);
    assert_eq!(p.a.stats().heartbeats_sent, 6);

    p.run_for(secs(300));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    assert_eq!(p.a.stats().frames_sent, fa);
    assert_eq!(p.b.stats().frames_sent, fb);

    // Messages flow while paused, and bring no heartbeat back.
    let id = p.a.send(p.now(), req(1), None).unwrap();
    p.run_for(secs(100));
    assert_eq!(
        p.take_events(Side::A),
        [Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }]
    );
    assert_eq!(message_ids(&p.take_events(Side::B)), [0]);
    assert_eq!(p.a.stats().frames_sent, fa + 1);
    assert_eq!(p.b.stats().frames_sent, fb + 1);
    assert_eq!(p.a.stats().heartbeats_sent, 6);

    // A resumes; B stays paused and silent. A's silence clock starts now: GONE exactly one
    // timeout later, however long ago B's last frame was.
    let resumed = p.now();
    p.a.resume(resumed);
    assert!(!p.a.is_paused());
    let gone_at = resumed + Duration::from(fast().heartbeat_timeout);
    assert!(!p.run_until(before(gone_at), |p| !p.events_a.is_empty()));
    assert_eq!(
        p.a.stats().heartbeats_sent,
        6 + 3,
        "one at resume, then every second"
    );
    assert!(p.run_until(gone_at, |p| !p.events_a.is_empty()));
    assert_eq!(p.now(), gone_at);
    assert_eq!(p.take_events(Side::A), [Event::Gone(GoneReason::Silence)]);
    // B, paused, hears A's heartbeats but checks nothing and sends nothing.
    p.run_for(secs(60));
    assert!(p.events_b.is_empty());
    assert_eq!(p.b.stats().frames_sent, fb + 1);
    assert_eq!(p.b.peer_state(), PeerState::Up);
}

/// Both sides resume after a pause far longer than the timeout: no GONE follows.
#[test]
fn resume_after_a_long_pause_is_not_gone() {
    let mut p = pair(fast());
    p.run_for(secs(2));
    p.a.pause(p.now());
    p.b.pause(p.now());
    p.run_for(secs(1_000));
    p.a.resume(p.now());
    p.b.resume(p.now());
    // resume twice is harmless
    p.b.resume(p.now());
    let hb = p.a.stats().heartbeats_sent;
    p.run_for(secs(300));
    assert!(p.events_a.is_empty() && p.events_b.is_empty());
    assert_eq!(p.a.stats().heartbeats_sent, hb + 301);
}
