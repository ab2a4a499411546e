//! `Endpoint::set_spare_room` and `Endpoint::handle_bytes_until_full`: a driver that takes
//! events into a queue of its own lets the peer send past the endpoint's receive slots, and
//! none of it is refused.

use peerpipe_core::wire::{Body, Decoder};
use peerpipe_core::{Endpoint, Event, Instant, Message};

/// 4 receive slots (room 3 announced without spare room), 16 send slots.
type Ep = Endpoint<128, 32, 4, 16>;

const NOW: Instant = Instant::ZERO;

/// The bytes of every frame `from` has to send now, one after the other.
fn transmit(from: &mut Ep) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; Ep::MAX_FRAME_LEN];
    while let Some(n) = from.poll_transmit(NOW, &mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Two endpoints that know each other's capabilities.
fn pair() -> (Ep, Ep) {
    let mut a = Ep::new(Default::default(), 1, NOW).unwrap();
    let mut b = Ep::new(Default::default(), 2, NOW).unwrap();
    b.handle_bytes(NOW, &transmit(&mut a));
    a.handle_bytes(NOW, &transmit(&mut b));
    // A's ACK of B's heartbeat and so on: nothing is due any more.
    b.handle_bytes(NOW, &transmit(&mut a));
    (a, b)
}

/// A's DATA frames for `count` requests, as far as the room B announced lets them go (the
/// outcomes of earlier sends taken first, so that their send slots are free).
fn send(a: &mut Ep, count: u8) -> Vec<u8> {
    while a.poll_event().is_some() {}
    for i in 0..count {
        a.send(NOW, Message::request("t", &[i]).unwrap(), None)
            .unwrap();
    }
    transmit(a)
}

/// The room and window of the ACKs in `bytes`.
fn acks(bytes: &[u8]) -> Vec<(u32, u32)> {
    let mut decoder = Decoder::<{ Ep::MAX_FRAME_LEN }>::new();
    let mut rest = bytes;
    let mut found = Vec::new();
    while !rest.is_empty() {
        let (used, frame) = decoder.feed(rest);
        if let Some(Ok(frame)) = frame {
            if let Body::Ack(ack) = frame.body {
                found.push((ack.room, ack.window));
            }
        }
        rest = &rest[used..];
    }
    found
}

/// The data byte of every message among `b`'s events.
fn take_messages(b: &mut Ep) -> Vec<u8> {
    core::iter::from_fn(|| b.poll_event())
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.data()[0]),
            _ => None,
        })
        .collect()
}

/// A pair whose B announced spare room for 12 more messages in the ACK of a first one
/// (taken, so that B's slots are free).
fn pair_with_spare_room() -> (Ep, Ep) {
    let (mut a, mut b) = pair();
    b.set_spare_room(12, 12 * 128);
    b.handle_bytes(NOW, &send(&mut a, 1));
    assert_eq!(take_messages(&mut b), [0]);
    let ack = transmit(&mut b);
    assert_eq!(acks(&ack), [(15, 3 * 128 + 12 * 128)]);
    a.handle_bytes(NOW, &ack);
    (a, b)
}

#[test]
fn without_spare_room_the_peer_sends_as_many_as_the_slots_hold() {
    let (mut a, mut b) = pair();
    let frames = send(&mut a, 16);
    b.handle_bytes(NOW, &frames);
    // Room 3 beyond the next in-order item: four go out, four are accepted.
    assert_eq!(a.stats().data_sent, 4);
    assert_eq!(b.stats().accepted, 4);
    assert_eq!(b.stats().refused_full, 0);
}

#[test]
fn spare_room_lets_the_peer_send_past_the_slots_and_nothing_is_refused() {
    let (mut a, mut b) = pair_with_spare_room();
    // Room 15: the next 16 go out at once, without waiting for an ACK.
    let frames = send(&mut a, 16);
    assert_eq!(a.stats().data_sent, 17);
    // B stops when its four slots are full and goes on once they are taken.
    let mut rest = &frames[..];
    let mut got = Vec::new();
    let mut stops = 0;
    while !rest.is_empty() {
        let used = b.handle_bytes_until_full(NOW, rest);
        stops += usize::from(used < rest.len());
        rest = &rest[used..];
        got.extend(take_messages(&mut b));
    }
    assert_eq!(got, (0..16).collect::<Vec<u8>>());
    assert_eq!(stops, 3);
    assert_eq!(b.stats().refused_full, 0);
    // One ACK covers all of them.
    a.handle_bytes(NOW, &transmit(&mut b));
    assert_eq!(a.pending_sends(), 0);
}

#[test]
fn spare_room_is_no_use_to_a_driver_that_does_not_take_events_meanwhile() {
    let (mut a, mut b) = pair_with_spare_room();
    let frames = send(&mut a, 16);
    // Fed at once: what does not fit in the four slots is refused (and resent later).
    b.handle_bytes(NOW, &frames);
    assert_eq!(b.stats().accepted, 1 + 4);
    assert_eq!(b.stats().refused_full, 12);
    // Fed until full without taking events: it stops, and the rest waits with the driver.
    let (mut a, mut b) = pair_with_spare_room();
    let frames = send(&mut a, 16);
    let used = b.handle_bytes_until_full(NOW, &frames);
    assert!(used < frames.len());
    assert_eq!(b.handle_bytes_until_full(NOW, &frames[used..]), 0);
    assert_eq!(b.stats().refused_full, 0);
}

#[test]
fn slots_waiting_for_a_gap_do_not_stop_the_input() {
    let (mut a, mut b) = pair_with_spare_room();
    let frames = send(&mut a, 16);
    // The first frame is lost: the others wait for it, nothing can be taken, and feeding
    // must go on (the gap's resend comes behind them): what does not fit is refused.
    let first_end = frames.iter().position(|&x| x == 0).unwrap() + 1;
    let rest = &frames[first_end..];
    assert_eq!(b.handle_bytes_until_full(NOW, rest), rest.len());
    assert_eq!(take_messages(&mut b), Vec::<u8>::new());
    assert!(b.stats().refused_full > 0);
}

#[test]
fn room_given_back_by_the_driver_is_announced_at_once() {
    let (mut a, mut b) = pair();
    // B's application does not read: after four requests B announces no room.
    let frames = send(&mut a, 4);
    b.handle_bytes(NOW, &frames);
    assert_eq!(acks(&transmit(&mut b)), [(0, 0)]);
    assert!(acks(&transmit(&mut b)).is_empty());
    // Its driver makes room of its own: an ACK says so without waiting for anything else.
    b.set_spare_room(8, 1024);
    assert_eq!(acks(&transmit(&mut b)), [(8, 1024)]);
}
