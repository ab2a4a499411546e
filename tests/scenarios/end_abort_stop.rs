//! END, ABORT and a local stop: what reaches the peer, what each side refuses afterwards.

use std::collections::VecDeque;

use peerpipe_core::{
    CloseReason, Config, Duration, Error, Event, FailReason, GoneReason, Message, MsgId, Outcome,
    PeerState,
};
use peerpipe_sim::{LinkConfig, Side};

use crate::support::*;

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
        assert_eq!(check_payload(m.data(), REQ_SALT), m.id().0);
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
        default_request_timeout: secs(600).into(),
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
    let gone_at = clock.last[1] + Duration::from(fast().heartbeat_timeout);
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
