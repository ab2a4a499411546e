//! The send queue on its own: slots and fragment records taken, freed and taken again.

use crate::wire::Ack;

use super::*;

#[test]
fn slots_are_reused_in_place_and_outcomes_leave_lowest_id_first() {
    let mut q = SendQueue::<8, 8, 2>::new();
    let far = Instant::from_micros(1_000);
    let a = q.push(Item::End, Payload::Inline(b"first"), far).unwrap();
    let b = q
        .push(Item::Abort, Payload::Inline(b"second"), far)
        .unwrap();
    assert_eq!(
        q.push(Item::End, Payload::Inline(b""), far),
        Err(Error::SendQueueFull)
    );
    q.fail(b.0, FailReason::Stopped);
    q.fail(a.0, FailReason::TimedOut);
    assert_eq!(
        q.pop_outcome(),
        Some((a, Outcome::Failed(FailReason::TimedOut)))
    );
    // The freed slot takes the next message, with its own bytes only.
    let c = q.push(Item::End, Payload::Inline(b"3"), far).unwrap();
    assert_eq!(q.pending(), 1);
    assert_eq!(q.progress(c), Some((0, 1)));
    assert_eq!(
        q.pop_outcome(),
        Some((b, Outcome::Failed(FailReason::Stopped)))
    );
    assert_eq!(q.pop_outcome(), None);
    assert!(q.waiting());
}

#[test]
fn a_reused_slot_says_only_its_new_message() {
    let mut q = SendQueue::<8, 8, 1>::new();
    let far = Instant::from_micros(1_000);
    let reply = Item::Reply {
        topic: "longer",
        req_id: 7,
    };
    let a = q.push(reply, Payload::Inline(b"12345678"), far).unwrap();
    q.fail(a.0, FailReason::Stopped);
    assert!(q.pop_outcome().is_some());
    q.push(Item::Request { topic: "t" }, Payload::Inline(b"x"), far)
        .unwrap();
    let head = q.msgs.first().map(|m| m.out.head.item());
    assert_eq!(head, Some(Item::Request { topic: "t" }));
    q.fail(a.0 + 1, FailReason::Stopped);
    assert!(q.pop_outcome().is_some());
    q.push(Item::End, Payload::Inline(b""), far).unwrap();
    assert_eq!(q.msgs.first().map(|m| m.out.head.item()), Some(Item::End));
}

#[test]
fn fragment_slots_are_freed_by_acks_and_failures_and_taken_again() {
    let mut q = SendQueue::<4, 8, 2>::new();
    let far = Instant::from_micros(1_000);
    let caps = Some(Caps {
        max_payload: 4,
        max_topic: 8,
        max_message: 0,
    });
    // 10 bytes in fragments of 4: two slots, so two fragments at a time.
    let big = q.push(Item::End, Payload::Sourced(10), far).unwrap();
    q.cut(caps, 4);
    assert_eq!((q.in_flight().count(), q.floor()), (2, 0));
    let ack = Ack {
        to_session: 0,
        next: 1,
        bitmap: 0,
        room: 1,
        window: 8,
        retry: false,
    };
    let timing = crate::Config::default().timing().unwrap();
    q.ack(&ack, far, &timing);
    assert_eq!((q.in_flight().count(), q.floor()), (1, 1));
    q.cut(caps, 4);
    assert_eq!(q.in_flight().map(|f| f.seq).max(), Some(2));
    assert_eq!(q.progress(big), Some((4, 10)));
    q.fail(big.0, FailReason::Stopped);
    assert_eq!((q.in_flight().count(), q.floor()), (0, 3));
}
