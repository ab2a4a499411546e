//! Backpressure: a receiver that does not read, refused items and their retries.

use std::collections::VecDeque;

use peerpipe_core::{Config, Error, Event, FailReason, Message, MsgId, Outcome};
use peerpipe_sim::Side;

use crate::support::*;

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
        assert_eq!(check_payload(m.data(), REQ_SALT), m.id().0);
    }
}

/// A DATA frame refused for a full receive queue goes out again as soon as the receiver has
/// room (its ACK asks for a retry), not when the sender's resend timer fires.
#[test]
fn a_refused_item_goes_again_as_soon_as_the_receiver_has_room() {
    let config = Config {
        resend_interval: Some(secs(2).into()),
        default_request_timeout: secs(60).into(),
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
        assert_eq!(check_payload(m.data(), REQ_SALT), m.id().0);
    }
}
