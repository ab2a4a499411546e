//! Deterministic scenarios: each behaviour of the original PipeHandler, and each improvement
//! peerpipe promises, run over the simulated links with virtual time.
//!
//! Every instant asserted here follows from the protocol (docs/PROTOCOL.md): the perfect link
//! delays each frame by exactly 1 ms, and `Pair` handles every deadline at its exact instant.

use std::collections::VecDeque;

use peerpipe_core::wire::{Body, Decoder};
use peerpipe_core::{
    CloseReason, Config, ConfigError, Duration, Error, Event, FailReason, GoneReason, Instant,
    Message, MsgId, Outcome, PeerState, RESERVED_TOPICS,
};
use peerpipe_sim::{LinkConfig, Pair, Rng, Side, SimEndpoint};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

const US: Duration = Duration::from_micros(1);

/// One instant before `t`.
fn before(t: Instant) -> Instant {
    Instant::from_micros(t.as_micros() - 1)
}

/// Heartbeats every second, gone after 3 s of silence, resends every 100 ms without limit,
/// sends time out after 60 s.
fn fast() -> Config {
    Config {
        heartbeat_interval: secs(1),
        heartbeat_timeout: secs(3),
        resend_interval: Some(ms(100)),
        max_resends: None,
        default_request_timeout: secs(60),
    }
}

const SESSION_A: u32 = 0xA;
const SESSION_B: u32 = 0xB;

fn endpoint(config: Config, session: u32, now: Instant) -> SimEndpoint {
    SimEndpoint::new(config, session, now).expect("valid config")
}

fn pair_with(a: Config, b: Config, link: LinkConfig, seed: u64) -> Pair {
    Pair::new(
        endpoint(a, SESSION_A, Instant::ZERO),
        endpoint(b, SESSION_B, Instant::ZERO),
        link,
        seed,
    )
}

fn pair(config: Config) -> Pair {
    pair_with(config, config, LinkConfig::PERFECT, 1)
}

/// A payload that names its id and carries a pattern derived from it, so that any corruption
/// that slipped through would be seen.
fn payload(id: u64, salt: u8) -> Vec<u8> {
    let extra = (id % 57) as usize;
    let mut v = id.to_le_bytes().to_vec();
    v.extend((0..extra).map(|i| (id as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ salt));
    v
}

/// The id a payload names, after checking the whole payload against it.
fn check_payload(bytes: &[u8], salt: u8) -> u64 {
    assert!(bytes.len() >= 8, "payload too short: {bytes:?}");
    let id = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(bytes, payload(id, salt), "corrupt payload delivered");
    id
}

const REQ_SALT: u8 = 0x5A;

fn req(id: u64) -> Message {
    Message::request("req", &payload(id, REQ_SALT)).unwrap()
}

fn is_gone(e: &Event) -> bool {
    matches!(e, Event::Gone(_))
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn outcomes(events: &[Event]) -> Vec<(MsgId, Outcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SendOutcome { id, outcome } => Some((*id, *outcome)),
            _ => None,
        })
        .collect()
}

fn delivered(events: &[Event]) -> Vec<MsgId> {
    let mut ids: Vec<MsgId> = outcomes(events)
        .into_iter()
        .filter(|(_, o)| *o == Outcome::Delivered)
        .map(|(id, _)| id)
        .collect();
    // Outcomes come lowest id first among those settled; ACKs may settle later ids first.
    ids.sort();
    ids
}

fn messages(events: &[Event]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn message_ids(events: &[Event]) -> Vec<u64> {
    messages(events).iter().map(|m| m.id().0).collect()
}

fn ids(range: std::ops::Range<u64>) -> Vec<MsgId> {
    range.map(MsgId).collect()
}

fn strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Remembers the last instant each side received a valid frame.
#[derive(Default)]
struct RxClock {
    seen: [u64; 2],
    last: [Instant; 2],
}

impl RxClock {
    fn observe(&mut self, p: &Pair) {
        let now = p.now();
        for (i, n) in [p.a.stats().frames_received, p.b.stats().frames_received]
            .into_iter()
            .enumerate()
        {
            if n != self.seen[i] {
                self.seen[i] = n;
                self.last[i] = now;
            }
        }
    }

    fn run(&mut self, p: &mut Pair, limit: Instant) {
        p.run_until(limit, |p| {
            self.observe(p);
            false
        });
    }
}

/// Sends what `queue` holds from `side` while slots are free, and transmits at once (as a
/// driver drains `poll_transmit` after every command).
fn top_up(p: &mut Pair, side: Side, queue: &mut VecDeque<Message>) -> Vec<MsgId> {
    let now = p.now();
    let mut sent = Vec::new();
    while let Some(m) = queue.front() {
        match p.endpoint(side).send(now, m.clone(), None) {
            Ok(id) => {
                sent.push(id);
                queue.pop_front();
            }
            Err(Error::SendQueueFull) => break,
            Err(e) => panic!("send: {e:?}"),
        }
    }
    if !sent.is_empty() {
        p.step();
    }
    sent
}

/// The events of both sides, where each side answers every request it receives with a reply
/// carrying the same payload.
#[derive(Default)]
struct Echo {
    a: Vec<Event>,
    b: Vec<Event>,
    /// Messages (replies, and requests the test queues) waiting for a free send slot.
    outbox: [VecDeque<Message>; 2],
}

impl Echo {
    fn pump(&mut self, p: &mut Pair) {
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            for e in p.take_events(side) {
                if let Event::Message(m) = &e {
                    if m.is_request() {
                        self.outbox[i].push_back(m.reply_with(m.payload()).unwrap());
                    }
                }
                match side {
                    Side::A => self.a.push(e),
                    Side::B => self.b.push(e),
                }
            }
            top_up(p, side, &mut self.outbox[i]);
        }
    }

    fn run(&mut self, p: &mut Pair, limit: Instant, done: impl Fn(&Self) -> bool) -> bool {
        p.run_until(limit, |p| {
            self.pump(p);
            done(self)
        })
    }
}

/// The replies among `events`, as (request id, payload id).
fn replies(events: &[Event]) -> Vec<(u64, u64)> {
    messages(events)
        .into_iter()
        .filter_map(|m| {
            m.req_id()
                .map(|r| (r.0, check_payload(m.payload(), REQ_SALT)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Liveness: GONE, heartbeats, pause and resume
// ---------------------------------------------------------------------------------------------

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

    let gone_at = clock.last[0] + fast().heartbeat_timeout;
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
        heartbeat_timeout: Duration::ZERO,
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
    let duration = fast().heartbeat_timeout.saturating_mul(100);
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
        heartbeat_timeout: secs(10),
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
    let gone_at = resumed + fast().heartbeat_timeout;
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

// ---------------------------------------------------------------------------------------------
// END, ABORT and stop
// ---------------------------------------------------------------------------------------------

/// END or ABORT reaches the peer after every message sent before it, with its data; the
/// peer's pending sends fail; both sides refuse new sends.
fn end_or_abort(abort: bool) {
    let (peer_reason, fail, local_reason) = if abort {
        (
            CloseReason::PeerAborted,
            FailReason::PeerAborted,
            CloseReason::LocalAbort,
        )
    } else {
        (
            CloseReason::PeerEnded,
            FailReason::PeerEnded,
            CloseReason::LocalEnd,
        )
    };
    let mut p = pair(fast());
    p.run_for(ms(500));
    // B's sends stay pending: nothing from B reaches A (ACKs neither).
    p.ba.set_cut(true);
    let b0 = p.b.send(p.now(), req(100), None).unwrap();
    let b1 = p.b.send(p.now(), req(101), None).unwrap();
    let now = p.now();
    for i in 0..5 {
        assert_eq!(p.a.send(now, req(i), None), Ok(MsgId(i)));
    }
    let end = if abort {
        p.a.notify_abort(now, b"stop now").unwrap()
    } else {
        p.a.notify_end(now, b"bye").unwrap()
    };
    assert_eq!(end, MsgId(5));
    assert_eq!(
        p.a.send(now, req(9), None),
        Err(Error::Closed(local_reason))
    );
    assert_eq!(p.a.notify_end(now, b""), Err(Error::Closed(local_reason)));
    assert_eq!(p.a.notify_abort(now, b""), Err(Error::Closed(local_reason)));

    p.run_for(ms(50));
    let events = p.take_events(Side::B);
    let items: Vec<&Event> = events
        .iter()
        .filter(|e| !matches!(e, Event::SendOutcome { .. }))
        .collect();
    assert_eq!(items.len(), 6);
    assert_eq!(message_ids(&events), [0, 1, 2, 3, 4]);
    for m in messages(&events) {
        assert_eq!(check_payload(m.payload(), REQ_SALT), m.id().0);
    }
    match (abort, items[5]) {
        (true, Event::Abort(data)) => assert_eq!(data.as_slice(), b"stop now"),
        (false, Event::End(data)) => assert_eq!(data.as_slice(), b"bye"),
        (_, other) => panic!("END/ABORT must come after the messages, got {other:?}"),
    }
    assert_eq!(
        outcomes(&events),
        [(b0, Outcome::Failed(fail)), (b1, Outcome::Failed(fail))]
    );
    assert_eq!(p.b.pending_sends(), 0);
    assert_eq!(
        p.b.peer_state(),
        if abort {
            PeerState::Aborted
        } else {
            PeerState::Ended
        }
    );
    assert_eq!(
        p.b.send(p.now(), req(7), None),
        Err(Error::Closed(peer_reason))
    );
    assert_eq!(
        p.b.notify_end(p.now(), b""),
        Err(Error::Closed(peer_reason))
    );
    assert_eq!(
        p.b.notify_abort(p.now(), b""),
        Err(Error::Closed(peer_reason))
    );

    // B's ACKs come through again: everything A sent, END included, is delivered.
    p.ba.set_cut(false);
    p.run_for(ms(200));
    assert_eq!(delivered(&p.take_events(Side::A)), ids(0..6));
    assert!(
        p.b.stats().duplicates > 0,
        "A resent while the ACKs were lost"
    );
    assert_eq!(p.b.stats().accepted, 6);

    // B checks no silence after END; A, whose peer did not end, still does.
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    p.run_for(secs(60));
    assert!(p.take_events(Side::B).is_empty());
    assert_eq!(p.take_events(Side::A), [Event::Gone(GoneReason::Silence)]);
}

#[test]
fn end_reaches_the_peer_after_earlier_messages() {
    end_or_abort(false);
}

#[test]
fn abort_reaches_the_peer_after_earlier_messages() {
    end_or_abort(true);
}

/// END is delivered even over a lossy, reordering link: after all 30 messages, in order.
#[test]
fn end_is_delivered_over_a_lossy_link() {
    let config = Config {
        default_request_timeout: secs(600),
        ..fast()
    };
    for seed in 1..=8 {
        let mut p = pair_with(config, config, LinkConfig::lossy(0.3, 0.1, 0.02), seed);
        let mut queue: VecDeque<Message> = (0..30).map(req).collect();
        let mut end = None;
        let done = p.run_until(at_ms(600_000), |p| {
            top_up(p, Side::A, &mut queue);
            if queue.is_empty() && end.is_none() {
                match p.a.notify_end(p.now(), b"the end") {
                    Ok(id) => end = Some(id),
                    Err(Error::SendQueueFull) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            delivered(&p.events_a).len() == 31
                && p.events_b.iter().any(|e| matches!(e, Event::End(_)))
        });
        assert!(done, "seed {seed}");
        assert_eq!(end, Some(MsgId(30)));
        let a = p.take_events(Side::A);
        assert_eq!(outcomes(&a).len(), 31, "seed {seed}: {a:?}");
        let b = p.take_events(Side::B);
        assert_eq!(message_ids(&b), (0..30).collect::<Vec<_>>(), "seed {seed}");
        assert!(
            matches!(b.last(), Some(Event::End(data)) if data.as_slice() == b"the end"),
            "seed {seed}: {:?}",
            b.last()
        );
        assert_eq!(b.len(), 31, "seed {seed}");
    }
}

/// A local stop sends nothing and tells the peer nothing: the stopping side gets only the
/// `Stopped` outcomes of its in-flight sends, its unread items are discarded, and the peer
/// reports GONE by silence, exactly one timeout after the last frame it got.
#[test]
fn local_stop_emits_nothing() {
    let mut p = pair(fast());
    p.auto_poll.0 = false;
    let mut clock = RxClock::default();
    clock.run(&mut p, at_ms(1_200));
    // Three messages B→A, accepted by A but not read by its application.
    for i in 0..3 {
        p.b.send(p.now(), req(i), None).unwrap();
    }
    clock.run(&mut p, at_ms(1_300));
    assert_eq!(p.a.received_len(), 3);
    // Two messages A→B whose ACKs are lost: in flight when A stops.
    p.ba.set_cut(true);
    let a0 = p.a.send(p.now(), req(10), None).unwrap();
    let a1 = p.a.send(p.now(), req(11), None).unwrap();
    clock.run(&mut p, at_ms(1_350));
    assert_eq!(message_ids(&p.take_events(Side::B)), [0, 1]);

    p.a.stop();
    assert!(p.a.is_stopped());
    let mut stop_events = Vec::new();
    while let Some(e) = p.a.poll_event() {
        stop_events.push(e);
    }
    assert_eq!(
        stop_events,
        [
            Event::SendOutcome {
                id: a0,
                outcome: Outcome::Failed(FailReason::Stopped)
            },
            Event::SendOutcome {
                id: a1,
                outcome: Outcome::Failed(FailReason::Stopped)
            },
        ]
    );
    assert_eq!(p.a.stats().discarded_on_stop, 3);
    assert_eq!(p.a.received_len(), 0);
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.a.send(p.now(), req(12), None), Err(Error::Stopped));
    assert_eq!(p.a.notify_end(p.now(), b""), Err(Error::Stopped));
    assert_eq!(p.a.notify_abort(p.now(), b""), Err(Error::Stopped));

    let a_stats = *p.a.stats();
    let ab_frames = p.ab.stats().frames;
    p.ba.set_cut(false);
    let b_send = p.b.send(p.now(), req(3), None).unwrap();
    let gone_at = clock.last[1] + fast().heartbeat_timeout;
    // A's last frames were the two DATA frames at 1.3 s, which arrived 1 ms later.
    assert_eq!(gone_at, at_ms(4_301));
    assert!(!p.run_until(before(gone_at), |p| !p.events_b.is_empty()));
    assert!(p.run_until(gone_at, |p| !p.events_b.is_empty()));
    assert_eq!(p.now(), gone_at);
    assert_eq!(
        p.take_events(Side::B),
        [
            Event::SendOutcome {
                id: b_send,
                outcome: Outcome::Failed(FailReason::PeerGone)
            },
            Event::Gone(GoneReason::Silence)
        ]
    );
    p.run_for(secs(30));
    assert!(p.take_events(Side::B).is_empty());
    assert!(p.a.poll_event().is_none());
    // Nothing left A after the stop, nothing arriving was even counted.
    assert_eq!(*p.a.stats(), a_stats);
    assert_eq!(p.ab.stats().frames, ab_frames);
}

// ---------------------------------------------------------------------------------------------
// Resends and timeouts
// ---------------------------------------------------------------------------------------------

/// Runs until `side` reports an event; returns the instant it appeared.
fn first_event_at(p: &mut Pair, side: Side, limit: Instant) -> Instant {
    let reported = p.run_until(limit, |p| match side {
        Side::A => !p.events_a.is_empty(),
        Side::B => !p.events_b.is_empty(),
    });
    assert!(reported, "no event by {limit:?}");
    p.now()
}

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
            heartbeat_timeout: secs(10),
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
        default_request_timeout: secs(2),
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

// ---------------------------------------------------------------------------------------------
// Validation errors
// ---------------------------------------------------------------------------------------------

#[test]
fn every_config_error() {
    let ok = Config::default();
    let cases = [
        (
            Config {
                heartbeat_interval: Duration::ZERO,
                ..ok
            },
            ConfigError::ZeroHeartbeatInterval,
        ),
        (
            Config {
                heartbeat_timeout: ok.heartbeat_interval,
                ..ok
            },
            ConfigError::HeartbeatTimeoutNotAboveInterval,
        ),
        (
            Config {
                heartbeat_timeout: US,
                ..ok
            },
            ConfigError::HeartbeatTimeoutNotAboveInterval,
        ),
        (
            Config {
                resend_interval: Some(Duration::ZERO),
                ..ok
            },
            ConfigError::ZeroResendInterval,
        ),
        (
            Config {
                default_request_timeout: Duration::ZERO,
                ..ok
            },
            ConfigError::ZeroRequestTimeout,
        ),
    ];
    for (config, err) in cases {
        assert_eq!(SimEndpoint::new(config, 1, Instant::ZERO).unwrap_err(), err);
    }
    let edge = Config {
        heartbeat_timeout: ok.heartbeat_interval + US,
        resend_interval: None,
        max_resends: None,
        ..ok
    };
    assert!(SimEndpoint::new(edge, 1, Instant::ZERO).is_ok());
    let off = Config {
        heartbeat_timeout: Duration::ZERO,
        ..ok
    };
    assert!(SimEndpoint::new(off, 1, Instant::ZERO).is_ok());
}

#[test]
fn every_message_error() {
    for topic in ["", "a b", "a-b", "é", "x.y", "tab\t"] {
        assert_eq!(
            Message::<128, 32>::request(topic, b"").unwrap_err(),
            Error::InvalidTopic,
            "{topic:?}"
        );
        assert_eq!(
            Message::<128, 32>::reply(topic, b"", MsgId(0)).unwrap_err(),
            Error::InvalidTopic
        );
    }
    for topic in RESERVED_TOPICS {
        assert_eq!(
            Message::<128, 32>::request(topic, b"").unwrap_err(),
            Error::ReservedTopic
        );
    }
    let long = "t".repeat(33);
    assert_eq!(
        Message::<128, 32>::request(&long, b"").unwrap_err(),
        Error::TopicTooLong
    );
    assert!(Message::<128, 32>::request(&long[..32], b"").is_ok());
    assert_eq!(
        Message::<128, 32>::request("t", &[0; 129]).unwrap_err(),
        Error::PayloadTooLarge
    );
    assert!(Message::<128, 32>::request("t", &[0; 128]).is_ok());
    let ok = Message::<128, 32>::request("t", b"").unwrap();
    assert_eq!(
        ok.reply_with(&[1; 129]).unwrap_err(),
        Error::PayloadTooLarge
    );

    // END and ABORT data too large: refused, and the conversation stays open.
    let mut a = endpoint(fast(), 1, Instant::ZERO);
    assert_eq!(
        a.notify_end(Instant::ZERO, &[0; 129]),
        Err(Error::PayloadTooLarge)
    );
    assert_eq!(
        a.notify_abort(Instant::ZERO, &[0; 129]),
        Err(Error::PayloadTooLarge)
    );
    assert_eq!(a.send(Instant::ZERO, ok, None), Ok(MsgId(0)));
}

#[test]
fn every_send_error() {
    let mut p = pair(fast());
    p.auto_poll.0 = false;
    let now = p.now();
    assert_eq!(
        p.a.send(now, req(0), Some(Duration::ZERO)),
        Err(Error::ZeroTimeout)
    );
    // TX = 8 slots; a refused send takes no id.
    for i in 0..8 {
        assert_eq!(p.a.send(now, req(i), None), Ok(MsgId(i)));
    }
    assert_eq!(p.a.send(now, req(8), None), Err(Error::SendQueueFull));
    assert_eq!(p.a.notify_end(now, b""), Err(Error::SendQueueFull));
    assert_eq!(p.a.pending_sends(), 8);
    // Delivered, but a slot is freed only when its outcome is taken.
    p.run_for(ms(10));
    assert_eq!(p.a.pending_sends(), 0);
    assert_eq!(p.a.send(p.now(), req(8), None), Err(Error::SendQueueFull));
    assert_eq!(
        p.a.poll_event(),
        Some(Event::SendOutcome {
            id: MsgId(0),
            outcome: Outcome::Delivered
        })
    );
    // The failed notify_end did not close the conversation.
    assert_eq!(p.a.send(p.now(), req(8), None), Ok(MsgId(8)));
    assert_eq!(p.a.send(p.now(), req(9), None), Err(Error::SendQueueFull));

    // Closed(LocalEnd) / Closed(LocalAbort) / Stopped.
    let mut e = endpoint(fast(), 1, Instant::ZERO);
    e.notify_end(Instant::ZERO, b"").unwrap();
    assert_eq!(
        e.send(Instant::ZERO, req(0), None),
        Err(Error::Closed(CloseReason::LocalEnd))
    );
    let mut e = endpoint(fast(), 1, Instant::ZERO);
    e.notify_abort(Instant::ZERO, b"").unwrap();
    assert_eq!(
        e.send(Instant::ZERO, req(0), None),
        Err(Error::Closed(CloseReason::LocalAbort))
    );
    e.stop();
    assert_eq!(e.send(Instant::ZERO, req(0), None), Err(Error::Stopped));
    // Closed(PeerEnded), Closed(PeerAborted) and Closed(PeerGone) are checked in the END,
    // ABORT and GONE scenarios.
}

/// A buffer too small for the frame gives `BufferTooSmall` and the frame stays queued.
#[test]
fn buffer_too_small_keeps_the_frame() {
    let mut a = endpoint(fast(), 1, Instant::ZERO);
    let id = a.send(Instant::ZERO, req(56), None).unwrap();
    let mut big = [0u8; SimEndpoint::MAX_FRAME_LEN];
    for size in [0, 1, 4, 16, 60] {
        let mut small = vec![0u8; size];
        assert_eq!(
            a.poll_transmit(Instant::ZERO, &mut small),
            Err(Error::BufferTooSmall),
            "{size}"
        );
    }
    assert_eq!(a.stats().frames_sent, 0);
    // The DATA frame (then the start heartbeat) still comes out whole.
    let n = a.poll_transmit(Instant::ZERO, &mut big).unwrap().unwrap();
    let mut d = Decoder::<{ SimEndpoint::MAX_FRAME_LEN }>::new();
    let (used, frame) = d.feed(&big[..n]);
    assert_eq!(used, n);
    match frame.unwrap().unwrap().body {
        Body::Data(data) => {
            assert_eq!(data.seq, id.0);
            assert_eq!(check_payload(data.payload, REQ_SALT), 56);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.stats().data_sent, 1);
    let n = a.poll_transmit(Instant::ZERO, &mut big).unwrap().unwrap();
    assert!(n < 16);
    assert_eq!(a.stats().heartbeats_sent, 1);
    assert_eq!(a.poll_transmit(Instant::ZERO, &mut big), Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Duplicates and order
// ---------------------------------------------------------------------------------------------

/// While B's ACKs are lost A resends; B acknowledges every copy but delivers once.
#[test]
fn resent_duplicates_are_acknowledged_again_but_delivered_once() {
    let mut p = pair(fast());
    p.run_for(ms(10));
    p.ba.set_cut(true);
    let t0 = p.now();
    let id = p.a.send(t0, req(7), None).unwrap();
    // Transmissions at t0 + k·100 ms, k = 0..=9, all accepted or counted as duplicates.
    p.run_until(t0 + ms(950), |_| false);
    assert!(p.events_a.is_empty());
    assert_eq!(p.a.stats().data_sent, 10);
    p.ba.set_cut(false);
    let at = first_event_at(&mut p, Side::A, t0 + secs(5));
    // The 11th transmission at t0 + 1 s reaches B 1 ms later; its ACK 1 ms after that.
    assert_eq!(at, t0 + ms(1_002));
    assert_eq!(
        p.take_events(Side::A),
        [Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }]
    );
    let b = p.take_events(Side::B);
    assert_eq!(message_ids(&b), [0]);
    assert_eq!(check_payload(messages(&b)[0].payload(), REQ_SALT), 7);
    let s = p.b.stats();
    assert_eq!((s.accepted, s.duplicates, s.acks_sent), (1, 10, 11));
    assert_eq!(p.a.stats().resends, 10);
}

/// Every frame duplicated by the link: each message delivered once, each copy counted.
#[test]
fn link_duplicates_are_delivered_once() {
    let link = LinkConfig {
        duplicate: 1.0,
        ..LinkConfig::PERFECT
    };
    let mut p = pair_with(fast(), fast(), link, 3);
    let mut queue: VecDeque<Message> = (0..50).map(req).collect();
    let done = p.run_until(at_ms(60_000), |p| {
        top_up(p, Side::A, &mut queue);
        delivered(&p.events_a).len() == 50
    });
    assert!(done);
    assert_eq!(message_ids(&p.events_b), (0..50).collect::<Vec<_>>());
    let (a, b) = (p.a.stats(), p.b.stats());
    assert_eq!(a.resends, 0);
    assert_eq!((b.accepted, b.duplicates), (50, a.data_sent));
    assert_eq!(a.data_sent, 50);
}

/// A message the sender gave up on does not block later ones: seq 0 never arrives, seq 1..4
/// are held out of order, and become deliverable, in order, once seq 0 is given up.
#[test]
fn an_abandoned_message_does_not_block_later_ones() {
    let mut p = pair(fast());
    p.run_for(ms(100));
    let t0 = p.now();
    p.ab.set_cut(true);
    let lost = p.a.send(t0, req(0), Some(ms(500))).unwrap();
    p.step(); // seq 0's first transmission is lost
    p.ab.set_cut(false);
    for i in 1..5 {
        p.a.send(t0, req(i), None).unwrap();
    }
    p.run_until(t0 + ms(5), |_| false);
    assert_eq!(delivered(&p.take_events(Side::A)), ids(1..5));
    assert!(p.events_b.is_empty(), "held behind the gap");
    assert_eq!(p.b.received_len(), 4);
    // Keep seq 0 from ever arriving; restore the link at the instant it is given up, when A
    // announces the new floor.
    p.ab.set_cut(true);
    let give_up = t0 + ms(500);
    p.run_until(before(give_up), |_| false);
    assert!(p.events_b.is_empty());
    p.ab.set_cut(false);
    let at = first_event_at(&mut p, Side::B, give_up + secs(1));
    assert_eq!(at, give_up + ms(1), "the floor travels at once");
    let b = p.take_events(Side::B);
    assert_eq!(message_ids(&b), [1, 2, 3, 4]);
    for m in messages(&b) {
        assert_eq!(check_payload(m.payload(), REQ_SALT), m.id().0);
    }
    assert_eq!(
        outcomes(&p.take_events(Side::A)),
        [(lost, Outcome::Failed(FailReason::TimedOut))]
    );
    // The conversation goes on.
    p.a.send(p.now(), req(5), None).unwrap();
    p.run_for(ms(10));
    assert_eq!(message_ids(&p.take_events(Side::B)), [5]);
    assert_eq!(p.b.stats().accepted, 5);
}

// ---------------------------------------------------------------------------------------------
// Restarts
// ---------------------------------------------------------------------------------------------

/// Per peer session, the ids of the messages received are strictly increasing.
fn check_order_per_session(events: &[Event]) {
    let mut ids = Vec::new();
    for e in events {
        match e {
            Event::Message(m) => ids.push(m.id().0),
            Event::PeerRestarted => {
                assert!(strictly_increasing(&ids), "{ids:?}");
                ids.clear();
            }
            _ => {}
        }
    }
    assert!(strictly_increasing(&ids), "{ids:?}");
}

/// B restarts while A's messages are in flight: A reports PeerRestarted once; the new B gets
/// the in-flight messages and everything after; replies flow both ways.
#[test]
fn receiver_restart_mid_conversation() {
    let mut p = pair(fast());
    let mut echo = Echo::default();
    for i in 0..5 {
        p.a.send(p.now(), req(i), None).unwrap();
    }
    assert!(echo.run(&mut p, at_ms(10_000), |e| replies(&e.a).len() == 5));
    // Three more go out; B restarts while they are on the link.
    let t = p.now();
    for i in 5..8 {
        p.a.send(t, req(i), None).unwrap();
    }
    p.step();
    echo.pump(&mut p);
    p.set_now(t + Duration::from_micros(500));
    p.replace(Side::B, endpoint(fast(), 0xB2, p.now()));
    echo.b.clear();
    assert!(echo.run(&mut p, at_ms(20_000), |e| replies(&e.a).len() == 8));
    let restart_at = echo
        .a
        .iter()
        .position(|e| *e == Event::PeerRestarted)
        .expect("restart reported");
    assert_eq!(replies(&echo.a[restart_at..]), [(5, 5), (6, 6), (7, 7)]);

    // The conversation goes on both ways.
    echo.outbox[0].extend((8..18).map(req));
    echo.outbox[1].extend((100..105).map(req));
    assert!(
        echo.run(&mut p, at_ms(60_000), |e| replies(&e.a).len() == 18
            && replies(&e.b).len() == 5)
    );
    p.run_for(secs(30));
    echo.pump(&mut p);
    assert_eq!(count(&echo.a, |e| *e == Event::PeerRestarted), 1);
    assert_eq!(count(&echo.a, is_gone) + count(&echo.b, is_gone), 0);
    assert_eq!(
        count(&echo.b, |e| *e == Event::PeerRestarted),
        0,
        "first contact"
    );
    assert_eq!(
        replies(&echo.a).iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..18).collect::<Vec<_>>()
    );
    // The new B got A's messages 5..17 and its own 5 replies back.
    let new_b_requests: Vec<u64> = messages(&echo.b)
        .into_iter()
        .filter(|m| m.is_request())
        .map(|m| m.id().0)
        .collect();
    assert_eq!(new_b_requests, (5..18).collect::<Vec<_>>());
    check_order_per_session(&echo.a);
    check_order_per_session(&echo.b);
    let failed = outcomes(&echo.a)
        .into_iter()
        .chain(outcomes(&echo.b))
        .filter(|(_, o)| *o != Outcome::Delivered)
        .count();
    assert_eq!(failed, 0);
}

/// A, the side that was sending, restarts while B's requests are in flight to it: B reports
/// PeerRestarted once, its pending sends reach the new A, and the new A's sequence numbers,
/// starting again at 0, are delivered.
#[test]
fn sender_restart_mid_conversation() {
    let mut p = pair(fast());
    let mut echo = Echo::default();
    for i in 0..5 {
        p.a.send(p.now(), req(i), None).unwrap();
    }
    assert!(echo.run(&mut p, at_ms(10_000), |e| replies(&e.a).len() == 5));
    let t = p.now();
    let pending: Vec<MsgId> = (200..203)
        .map(|i| p.b.send(t, req(i), None).unwrap())
        .collect();
    p.step();
    echo.pump(&mut p);
    p.set_now(t + Duration::from_micros(500));
    p.replace(Side::A, endpoint(fast(), 0xA2, p.now()));
    echo.a.clear();
    for i in 0..5 {
        p.a.send(p.now(), req(i), None).unwrap();
    }
    assert!(echo.run(&mut p, at_ms(60_000), |e| replies(&e.a).len() == 5
        && replies(&e.b).len() == 3));
    p.run_for(secs(30));
    echo.pump(&mut p);

    assert_eq!(count(&echo.b, |e| *e == Event::PeerRestarted), 1);
    assert_eq!(count(&echo.a, |e| *e == Event::PeerRestarted), 0);
    assert_eq!(count(&echo.a, is_gone) + count(&echo.b, is_gone), 0);
    // B's requests in flight at the restart reached the new A and were answered by it.
    let b_outcomes = outcomes(&echo.b);
    for id in &pending {
        assert!(b_outcomes.contains(&(*id, Outcome::Delivered)), "{id:?}");
    }
    assert_eq!(
        replies(&echo.b).iter().map(|r| r.1).collect::<Vec<_>>(),
        [200, 201, 202]
    );
    // After the restart B got the new A's requests 0..4, in order.
    let restart_at = echo
        .b
        .iter()
        .position(|e| *e == Event::PeerRestarted)
        .unwrap();
    let after: Vec<u64> = messages(&echo.b[restart_at..])
        .into_iter()
        .filter(|m| m.is_request())
        .map(|m| check_payload(m.payload(), REQ_SALT))
        .collect();
    assert_eq!(after, [0, 1, 2, 3, 4]);
    assert_eq!(
        replies(&echo.a).iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    check_order_per_session(&echo.b);
    check_order_per_session(&echo.a);
}

/// A peer declared gone comes back with a new session: it is reported as a restart and the
/// conversation reopens.
#[test]
fn restart_after_gone_revives_the_conversation() {
    let mut p = pair(fast());
    p.run_for(secs(2));
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    p.run_for(secs(10));
    assert_eq!(p.take_events(Side::B), [Event::Gone(GoneReason::Silence)]);
    assert_eq!(
        p.b.send(p.now(), req(0), None),
        Err(Error::Closed(CloseReason::PeerGone))
    );
    p.replace(Side::A, endpoint(fast(), 0xA2, p.now()));
    p.events_a.clear();
    p.ab.set_cut(false);
    p.ba.set_cut(false);
    let mut echo = Echo::default();
    let limit = p.now() + ms(10);
    echo.run(&mut p, limit, |_| false);
    assert_eq!(echo.b, [Event::PeerRestarted]);
    assert_eq!(p.b.peer_state(), PeerState::Up);
    assert_eq!(p.b.peer_session(), Some(0xA2));
    for i in 0..4 {
        p.a.send(p.now(), req(i), None).unwrap();
        p.b.send(p.now(), req(100 + i), None).unwrap();
    }
    let limit = p.now() + secs(10);
    assert!(echo.run(&mut p, limit, |e| replies(&e.a).len() == 4
        && replies(&e.b).len() == 4));
    p.run_for(secs(30));
    echo.pump(&mut p);
    assert_eq!(count(&echo.b, |e| *e == Event::PeerRestarted), 1);
    assert_eq!(count(&echo.a, |e| *e == Event::PeerRestarted), 0);
    assert_eq!(count(&echo.a, is_gone) + count(&echo.b, is_gone), 0);
    check_order_per_session(&echo.b);
}

/// Items accepted out of order (and so acknowledged) are not lost when the peer goes or
/// restarts: they are delivered, before the status event, and the gap is skipped.
#[test]
fn held_items_are_delivered_on_gone_and_on_restart() {
    for restart in [false, true] {
        let mut p = pair(fast());
        p.run_for(ms(100));
        let t0 = p.now();
        p.ab.set_cut(true);
        let lost = p.a.send(t0, req(0), None).unwrap();
        p.step();
        p.ab.set_cut(false);
        for i in 1..4 {
            p.a.send(t0, req(i), None).unwrap();
        }
        p.run_until(t0 + ms(5), |_| false);
        assert_eq!(delivered(&p.take_events(Side::A)), ids(1..4));
        assert_eq!(p.b.received_len(), 3);
        assert!(p.events_b.is_empty());
        if restart {
            p.replace(Side::A, endpoint(fast(), 0xA2, p.now()));
            p.a.send(p.now(), req(50), None).unwrap();
            p.run_for(ms(10));
            let b = p.take_events(Side::B);
            assert_eq!(b.len(), 5, "{b:?}");
            assert_eq!(message_ids(&b[..3]), [1, 2, 3]);
            assert_eq!(b[3], Event::PeerRestarted);
            assert_eq!(message_ids(&b[4..]), [0], "the new session starts at 0");
            assert_eq!(check_payload(messages(&b[4..])[0].payload(), REQ_SALT), 50);
        } else {
            p.ab.set_cut(true);
            p.ba.set_cut(true);
            p.run_for(secs(10));
            let b = p.take_events(Side::B);
            assert_eq!(message_ids(&b), [1, 2, 3]);
            assert_eq!(b.last(), Some(&Event::Gone(GoneReason::Silence)));
            assert_eq!(b.len(), 4);
            assert_eq!(
                p.take_events(Side::A),
                [
                    Event::SendOutcome {
                        id: lost,
                        outcome: Outcome::Failed(FailReason::PeerGone)
                    },
                    Event::Gone(GoneReason::Silence)
                ]
            );
        }
    }
}

/// An application that does not poll still learns, when it does, that the peer is gone,
/// however many restarts came before: GONE is never merged away.
#[test]
fn gone_is_not_lost_behind_unpolled_restarts() {
    for restarts in [1u32, 3, 4, 5, 10] {
        let mut p = pair(fast());
        p.auto_poll.1 = false;
        p.run_for(secs(1));
        for i in 0..restarts {
            p.replace(Side::A, endpoint(fast(), 0xA0 + i, p.now()));
            // A message between some restarts puts the markers at different places.
            if i % 2 == 1 {
                p.a.send(p.now(), req(u64::from(i)), None).unwrap();
            }
            p.run_for(secs(1));
        }
        p.ab.set_cut(true);
        p.run_for(secs(10));
        assert_eq!(p.b.peer_state(), PeerState::Gone);
        let mut events = Vec::new();
        while let Some(e) = p.b.poll_event() {
            events.push(e);
        }
        assert_eq!(
            events.last(),
            Some(&Event::Gone(GoneReason::Silence)),
            "{restarts} restarts: {events:?}"
        );
        assert_eq!(count(&events, is_gone), 1);
        let restarted = count(&events, |e| *e == Event::PeerRestarted) as u64;
        assert!(restarted >= 1, "{restarts} restarts: {events:?}");
        // Every restart is reported or counted as merged into another status event.
        assert_eq!(
            restarted + p.b.stats().status_coalesced,
            u64::from(restarts),
            "{restarts} restarts: {events:?}"
        );
        // Every message is delivered, each after a restart notice.
        assert_eq!(
            messages(&events).len(),
            (restarts / 2) as usize,
            "{restarts} restarts: {events:?}"
        );
        assert_eq!(events.first(), Some(&Event::PeerRestarted));
    }
}

/// Late frames of a replaced session are stale: they neither restart nor feed the
/// conversation.
#[test]
fn late_frames_of_a_replaced_session_are_stale() {
    let mut p = pair(fast());
    p.run_for(secs(2));
    let mut old = p.a.clone();
    p.replace(Side::A, endpoint(fast(), 0xA2, p.now()));
    p.run_for(ms(10));
    assert_eq!(p.take_events(Side::B), [Event::PeerRestarted]);
    // The old incarnation lives on (its peer not yet gone for it) and sends with its old
    // session: a message, resent every 100 ms.
    let stale = p.b.stats().stale;
    let mut buf = [0u8; SimEndpoint::MAX_FRAME_LEN];
    let mut now = p.now();
    old.send(now, req(0), None).unwrap();
    let mut fed = 0;
    for _ in 0..5 {
        old.handle_timeout(now);
        while let Some(n) = old.poll_transmit(now, &mut buf).unwrap() {
            p.b.handle_bytes(p.now(), &buf[..n]);
            fed += 1;
        }
        now = now + ms(100);
    }
    assert_eq!(old.stats().data_sent, 5);
    assert_eq!(fed, 5);
    p.run_for(secs(1));
    assert!(p.take_events(Side::B).is_empty());
    assert_eq!(p.b.stats().stale, stale + fed);
    assert_eq!(p.b.peer_session(), Some(0xA2));
    assert_eq!(p.b.stats().accepted, 0);
}

// ---------------------------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------------------------

/// B's application does not read: B's queue fills to RX and stays there, A's further sends are
/// refused (not acknowledged); when B reads again everything is delivered, in order, once.
#[test]
fn backpressure_from_a_slow_consumer() {
    let mut p = pair(fast());
    p.auto_poll.1 = false;
    let mut queue: VecDeque<Message> = (0..40).map(req).collect();
    let mut max_held = 0;
    p.run_until(at_ms(5_000), |p| {
        top_up(p, Side::A, &mut queue);
        max_held = max_held.max(p.b.received_len());
        false
    });
    assert_eq!(max_held, 8);
    assert_eq!(p.b.received_len(), 8);
    assert_eq!(delivered(&p.events_a), ids(0..8));
    assert_eq!(p.a.pending_sends(), 8);
    let s = *p.b.stats();
    assert_eq!(s.accepted, 8);
    // B advertises no room, so A keeps only its lowest pending item on the wire as a probe,
    // resent every 100 ms for 4.9 s, instead of flooding B with all eight.
    assert!((45..=50).contains(&s.refused_full), "{s:?}");
    assert!(
        (45..=50).contains(&p.a.stats().resends),
        "{:?}",
        p.a.stats()
    );
    assert!(p.events_b.is_empty());
    assert_eq!(count(&p.events_a, is_gone), 0);

    p.auto_poll.1 = true;
    let done = p.run_until(at_ms(60_000), |p| {
        top_up(p, Side::A, &mut queue);
        max_held = max_held.max(p.b.received_len());
        outcomes(&p.events_a).len() == 40
    });
    assert!(done);
    assert_eq!(max_held, 8);
    assert_eq!(delivered(&p.events_a), ids(0..40));
    let b = p.take_events(Side::B);
    assert_eq!(message_ids(&b), (0..40).collect::<Vec<_>>());
    assert_eq!(b.len(), 40);
    for m in messages(&b) {
        assert_eq!(check_payload(m.payload(), REQ_SALT), m.id().0);
    }
}

/// A DATA frame refused for a full receive queue goes out again as soon as the receiver has
/// room (its ACK asks for a retry), not when the sender's resend timer fires.
#[test]
fn a_refused_item_goes_again_as_soon_as_the_receiver_has_room() {
    let config = Config {
        resend_interval: Some(secs(2)),
        default_request_timeout: secs(60),
        ..fast()
    };
    let mut p = pair(config);
    p.auto_poll.1 = false;
    let mut queue: VecDeque<Message> = (0..9).map(req).collect();
    p.run_until(at_ms(400), |p| {
        top_up(p, Side::A, &mut queue);
        false
    });
    // B holds 8 and refused the ninth, which A sent once, as its lowest pending item.
    assert_eq!(p.b.received_len(), 8);
    assert_eq!(delivered(&p.events_a), ids(0..8));
    assert_eq!(p.b.stats().refused_full, 1);
    assert_eq!(p.a.stats().resends, 0);

    // At 400 ms B's application takes one item: B's ACK (at 400 ms) asks for a retry, A sends
    // the ninth again on its arrival (401 ms), B accepts it (402 ms), and A learns it at
    // 403 ms: 1.6 s before the resend timer would have fired.
    assert!(matches!(p.b.poll_event(), Some(Event::Message(_))));
    let done = p.run_until(at_ms(1_000), |p| delivered(&p.events_a).len() == 9);
    assert!(done);
    assert_eq!(p.now(), at_ms(403));
    assert_eq!(delivered(&p.events_a), ids(0..9));
    assert_eq!(p.a.stats().resends, 1);
    assert_eq!(p.b.stats().refused_full, 1);
}

/// As above, but A's sends time out while B does not read: those are given up, everything
/// acknowledged is still delivered, in order, and nothing is delivered twice.
#[test]
fn backpressure_with_sends_given_up() {
    let mut p = pair(fast());
    p.auto_poll.1 = false;
    let mut queue: VecDeque<Message> = (0..60).map(req).collect();
    let mut sent: Vec<MsgId> = Vec::new();
    p.run_until(at_ms(3_000), |p| {
        let now = p.now();
        while let Some(m) = queue.front() {
            match p.a.send(now, m.clone(), Some(ms(1_000))) {
                Ok(id) => {
                    sent.push(id);
                    queue.pop_front();
                }
                Err(Error::SendQueueFull) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(p.b.received_len() <= 8);
        false
    });
    let timed_out = outcomes(&p.events_a)
        .iter()
        .filter(|(_, o)| *o == Outcome::Failed(FailReason::TimedOut))
        .count();
    assert!(timed_out >= 16, "{timed_out}");
    p.auto_poll.1 = true;
    let done = p.run_until(at_ms(60_000), |p| {
        top_up(p, Side::A, &mut queue);
        assert!(p.b.received_len() <= 8);
        outcomes(&p.events_a).len() == 60
    });
    assert!(done);
    let got = message_ids(&p.events_b);
    assert!(strictly_increasing(&got));
    let acked: Vec<u64> = delivered(&p.events_a).iter().map(|id| id.0).collect();
    for id in &acked {
        assert!(got.binary_search(id).is_ok(), "acknowledged {id} lost");
    }
    // Whatever B got that A did not see delivered was accepted as its timeout ran out (the
    // acknowledgement came too late): a failed send may still have arrived.
    let failed: Vec<u64> = outcomes(&p.events_a)
        .iter()
        .filter(|(_, o)| *o == Outcome::Failed(FailReason::TimedOut))
        .map(|(id, _)| id.0)
        .collect();
    for id in got.iter().filter(|id| !acked.contains(id)) {
        assert!(failed.contains(id), "{id} delivered without any outcome");
    }
    assert!(got.len() >= 8 && got.len() < 60);
    for m in messages(&p.events_b) {
        assert_eq!(check_payload(m.payload(), REQ_SALT), m.id().0);
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage and corruption
// ---------------------------------------------------------------------------------------------

/// A link that corrupts and prefixes garbage to a third of its frames: nothing corrupt is
/// delivered, order and exactly-once hold, and the receivers count the damage.
#[test]
fn garbage_and_corruption_are_never_delivered() {
    let link = LinkConfig {
        drop: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        corrupt: 0.3,
        garbage: 0.3,
        min_delay: ms(1),
        max_delay: ms(20),
        rechunk: true,
    };
    let config = Config {
        default_request_timeout: secs(600),
        heartbeat_timeout: secs(10),
        ..fast()
    };
    for seed in 1..=3 {
        let mut p = pair_with(config, config, link, seed);
        let mut echo = Echo::default();
        let mut queue: VecDeque<Message> = (0..2_000).map(req).collect();
        let (mut counted, mut acked, mut answered) = (0, 0, 0);
        let done = p.run_until(at_ms(3_600_000), |p| {
            top_up(p, Side::A, &mut queue);
            echo.pump(p);
            for e in &echo.a[counted..] {
                match e {
                    Event::SendOutcome {
                        outcome: Outcome::Delivered,
                        ..
                    } => acked += 1,
                    Event::Message(m) if m.req_id().is_some() => answered += 1,
                    _ => {}
                }
            }
            counted = echo.a.len();
            acked == 2_000 && answered == 2_000
        });
        assert!(done, "seed {seed}");
        let requests: Vec<u64> = messages(&echo.b)
            .into_iter()
            .map(|m| {
                let id = check_payload(m.payload(), REQ_SALT);
                assert_eq!(id, m.id().0);
                id
            })
            .collect();
        assert_eq!(requests, (0..2_000).collect::<Vec<_>>(), "seed {seed}");
        let answered: Vec<u64> = replies(&echo.a).iter().map(|r| r.1).collect();
        assert_eq!(answered, (0..2_000).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(count(&echo.a, is_gone) + count(&echo.b, is_gone), 0);
        for (name, s, link) in [
            ("B", p.b.stats(), p.ab.stats()),
            ("A", p.a.stats(), p.ba.stats()),
        ] {
            assert!(
                s.crc_errors > 0 && s.cobs_errors > 0,
                "{name} seed {seed}: {s:?}"
            );
            let errors = s.crc_errors + s.cobs_errors + s.oversize + s.malformed + s.bad_version;
            // Damage to a delimiter can merge two frames into one error, never hide one.
            assert!(
                2 * errors >= link.corrupted.max(link.garbage),
                "{name} seed {seed}: {errors} errors, {link:?}"
            );
        }
    }
}

/// Every single-bit and every double-bit flip of a DATA frame is detected: nothing is
/// delivered, every damaged copy is counted; the intact frame is then delivered once.
#[test]
fn every_one_and_two_bit_flip_is_detected() {
    let mut a = endpoint(fast(), SESSION_A, Instant::ZERO);
    let mut b = endpoint(fast(), SESSION_B, Instant::ZERO);
    a.send(Instant::ZERO, req(40), None).unwrap();
    let mut buf = [0u8; SimEndpoint::MAX_FRAME_LEN];
    let n = a.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
    let frame = buf[..n].to_vec();
    assert!(frame.len() > 50);
    let bits = frame.len() * 8;
    let errors = |b: &SimEndpoint| {
        let s = b.stats();
        s.crc_errors + s.cobs_errors + s.oversize + s.malformed + s.bad_version
    };
    let mut copies = 0u64;
    let mut feed = |b: &mut SimEndpoint, flips: &[usize]| {
        let mut damaged = frame.clone();
        for &bit in flips {
            damaged[bit / 8] ^= 1 << (bit % 8);
        }
        // A leading delimiter ends whatever a damaged delimiter left open.
        b.handle_bytes(Instant::ZERO, &[0]);
        b.handle_bytes(Instant::ZERO, &damaged);
        copies += 1;
    };
    for i in 0..bits {
        feed(&mut b, &[i]);
        for j in i + 1..bits {
            feed(&mut b, &[i, j]);
        }
    }
    b.handle_bytes(Instant::ZERO, &[0]);
    assert_eq!(copies as usize, bits + bits * (bits - 1) / 2);
    assert!(
        errors(&b) >= copies,
        "{} errors for {copies} copies",
        errors(&b)
    );
    assert_eq!(b.stats().frames_received, 0);
    assert_eq!(b.peer_session(), None);
    assert!(b.poll_event().is_none());
    b.handle_bytes(Instant::ZERO, &frame);
    b.handle_bytes(Instant::ZERO, &frame);
    assert_eq!(b.stats().frames_received, 2);
    let Some(Event::Message(m)) = b.poll_event() else {
        panic!("intact frame not delivered")
    };
    assert_eq!(check_payload(m.payload(), REQ_SALT), 40);
    assert!(b.poll_event().is_none());
    assert_eq!(b.stats().duplicates, 1);
}

/// Bursts of random bytes, runs longer than any frame, and lone delimiters injected into
/// both receivers during a conversation: counted, never delivered, and the conversation
/// carries on.
#[test]
fn injected_garbage_bursts_are_survived() {
    let config = Config {
        default_request_timeout: secs(600),
        ..fast()
    };
    let mut p = pair_with(config, config, LinkConfig::lossy(0.05, 0.0, 0.0), 9);
    let mut rng = Rng::new(99);
    let mut queue: VecDeque<Message> = (0..500).map(req).collect();
    let mut bursts = 0;
    let done = p.run_until(at_ms(3_600_000), |p| {
        top_up(p, Side::A, &mut queue);
        if rng.chance(0.2) {
            bursts += 1;
            let len = match rng.below(4) {
                0 => rng.range(1, 8),
                1 => rng.range(8, 64),
                2 => rng.range(300, 1_000),
                _ => 1,
            } as usize;
            let zeros = rng.chance(0.5);
            let burst: Vec<u8> = (0..len)
                .map(|_| {
                    let b = rng.next_u64() as u8;
                    if zeros || b != 0 {
                        b
                    } else {
                        1
                    }
                })
                .collect();
            let now = p.now();
            let side = if rng.chance(0.5) { Side::A } else { Side::B };
            p.endpoint(side).handle_bytes(now, &burst);
            p.endpoint(side).handle_bytes(now, &[0]);
        }
        outcomes(&p.events_a).len() == 500
    });
    assert!(done);
    assert!(bursts > 100);
    assert_eq!(delivered(&p.events_a), ids(0..500));
    let got: Vec<u64> = messages(&p.events_b)
        .into_iter()
        .map(|m| check_payload(m.payload(), REQ_SALT))
        .collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    assert_eq!(p.events_b.len(), 500);
    for s in [p.a.stats(), p.b.stats()] {
        assert!(
            s.oversize > 0 && s.cobs_errors + s.crc_errors + s.malformed > 0,
            "{s:?}"
        );
    }
}
