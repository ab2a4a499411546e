//! Duplicates and order: each message is delivered once and in order, whatever the link
//! repeats or loses.

use std::collections::VecDeque;

use peerpipe_core::{Event, FailReason, Message, Outcome};
use peerpipe_sim::{LinkConfig, Side};

use crate::support::*;

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
    assert_eq!(check_payload(messages(&b)[0].data(), REQ_SALT), 7);
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
        assert_eq!(check_payload(m.data(), REQ_SALT), m.id().0);
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
