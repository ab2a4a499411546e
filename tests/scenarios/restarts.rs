//! Restarts: a peer that comes back with a new session, in flight or after GONE; stale frames.

use peerpipe_core::{
    CloseReason, Duration, Error, Event, FailReason, GoneReason, MsgId, Outcome, PeerState,
};
use peerpipe_sim::{Side, SimEndpoint};

use crate::support::*;

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
        .map(|m| check_payload(m.data(), REQ_SALT))
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
            assert_eq!(check_payload(messages(&b[4..])[0].data(), REQ_SALT), 50);
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
