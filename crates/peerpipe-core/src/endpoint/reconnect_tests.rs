//! The endpoint across a broken and restored transport: what was in flight goes again at
//! once and is delivered once, resends after `transport_restored` do not count against
//! `max_resends`, half a frame from the old connection is dropped, and after GONE only the
//! decoder is reset.

use super::*;
use crate::event::Event;

type Ep = Endpoint;

fn frames(ep: &mut Ep, now: Instant) -> std::vec::Vec<std::vec::Vec<u8>> {
    let mut out = std::vec::Vec::new();
    let mut buf = [0u8; 223];
    while let Some(n) = ep.poll_transmit(now, &mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

fn pump(from: &mut Ep, to: &mut Ep, now: Instant) {
    for f in frames(from, now) {
        to.handle_bytes(now, &f);
    }
}

fn messages(ep: &mut Ep) -> std::vec::Vec<std::vec::Vec<u8>> {
    let mut out = std::vec::Vec::new();
    while let Some(e) = ep.poll_event() {
        if let Event::Message(m) = e {
            out.push(m.data().to_vec());
        }
    }
    out
}

fn pair() -> (Ep, Ep) {
    let t = Instant::ZERO;
    let mut a = Ep::new(Config::default(), 1, t).unwrap();
    let mut b = Ep::new(Config::default(), 2, t).unwrap();
    pump(&mut a, &mut b, t);
    pump(&mut b, &mut a, t);
    (a, b)
}

#[test]
fn what_was_in_flight_goes_again_at_once_and_is_delivered_once() {
    let (mut a, mut b) = pair();
    let t = Instant::from_micros(1_000);
    let first = Message::request("t", b"lost").unwrap();
    a.send(t, first, None).unwrap();
    // The DATA frame is lost with the connection.
    assert!(!frames(&mut a, t).is_empty());
    assert!(
        frames(&mut a, t).is_empty(),
        "nothing due before the resend timer"
    );
    a.transport_restored(t);
    b.transport_restored(t);
    let again = frames(&mut a, t);
    assert!(
        again.len() >= 2,
        "the DATA and a heartbeat go at once: {again:?}"
    );
    for f in &again {
        b.handle_bytes(t, f);
    }
    assert_eq!(messages(&mut b), [b"lost".to_vec()]);
    assert_eq!(a.stats().resends, 1);
    // b's ACK is lost too: after another reconnect the fragment goes again, and b
    // acknowledges the duplicate without delivering it twice.
    let _lost_ack = frames(&mut b, t);
    a.transport_restored(t);
    pump(&mut a, &mut b, t);
    assert!(messages(&mut b).is_empty());
    assert_eq!(b.stats().duplicates, 1);
    pump(&mut b, &mut a, t);
    let outcome = core::iter::from_fn(|| a.poll_event()).find_map(|e| match e {
        Event::SendOutcome { outcome, .. } => Some(outcome),
        _ => None,
    });
    assert_eq!(outcome, Some(crate::Outcome::Delivered));
    assert_eq!(a.peer_state(), PeerState::Up);
    assert_eq!(b.peer_state(), PeerState::Up);
}

#[test]
fn resends_after_a_reconnect_do_not_count_against_max_resends() {
    let (mut a, mut b) = pair();
    let interval = crate::Duration::from(a.config().resend_interval.unwrap());
    let max = a.config().max_resends.unwrap();
    let mut t = Instant::from_micros(1_000);
    // A timeout long enough for every allowed transmission and more.
    let timeout = crate::Duration::from_secs(60);
    a.send(t, Message::request("t", b"cut").unwrap(), Some(timeout))
        .unwrap();
    // The connection breaks again and again, each time before the peer could answer
    // (more times than `max_resends`): what was in flight goes again on each new
    // connection and is lost with it. Those transmissions do not use up the resends.
    assert!(!frames(&mut a, t).is_empty());
    for _ in 0..max + 3 {
        t = t + crate::Duration::from_micros(interval.as_micros() / 2);
        a.handle_timeout(t);
        a.transport_restored(t);
        assert!(
            !frames(&mut a, t).is_empty(),
            "what was in flight goes again"
        );
    }
    let gave_up =
        core::iter::from_fn(|| a.poll_event()).any(|e| matches!(e, Event::SendOutcome { .. }));
    assert!(
        !gave_up,
        "the message failed because the connection was cut"
    );
    // On a connection that holds, it is delivered.
    a.transport_restored(t);
    b.transport_restored(t);
    pump(&mut a, &mut b, t);
    assert_eq!(messages(&mut b), [b"cut".to_vec()]);
    pump(&mut b, &mut a, t);
    let outcome = core::iter::from_fn(|| a.poll_event()).find_map(|e| match e {
        Event::SendOutcome { outcome, .. } => Some(outcome),
        _ => None,
    });
    assert_eq!(outcome, Some(crate::Outcome::Delivered));
}

#[test]
fn half_a_frame_from_the_old_connection_is_dropped_silently() {
    let (mut a, mut b) = pair();
    let t = Instant::from_micros(1_000);
    a.send(t, Message::request("t", b"one").unwrap(), None)
        .unwrap();
    let f = frames(&mut a, t).remove(0);
    b.handle_bytes(t, &f[..f.len() / 2]);
    b.transport_restored(t);
    a.transport_restored(t);
    pump(&mut a, &mut b, t);
    assert_eq!(messages(&mut b), [b"one".to_vec()]);
    let s = b.stats();
    assert_eq!(s.crc_errors + s.cobs_errors + s.malformed, 0, "{s:?}");
}

#[test]
fn after_gone_only_the_decoder_is_reset() {
    let (mut a, _b) = pair();
    a.transport_lost();
    a.transport_restored(Instant::from_micros(5));
    assert!(frames(&mut a, Instant::from_micros(5)).is_empty());
    assert_eq!(a.peer_state(), PeerState::Gone);
}
