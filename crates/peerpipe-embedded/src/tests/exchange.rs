//! Requests and replies between two drivers: `poll` and `pump`, ports that take a few bytes per
//! poll, and bytes fed from an interrupt handler.

use peerpipe_core::{Outcome, PeerState};

use super::*;

/// `pump` moves bytes and acts on deadlines as `poll` does: two pairs, one driven by each,
/// see the same events (heartbeats, a request, its acknowledgement).
#[test]
fn pump_does_what_poll_does_without_the_next_deadline() {
    let (mut a, mut b) = drivers(None);
    let (mut c, mut d) = drivers(None);
    let request = Message::request("echo", b"hi").unwrap();
    a.endpoint_mut()
        .send(Instant::ZERO, request.clone(), None)
        .unwrap();
    c.endpoint_mut().send(Instant::ZERO, request, None).unwrap();
    for ms in 0..3_000 {
        let now = Instant::from_millis(ms);
        for x in [&mut a, &mut b, &mut c, &mut d] {
            x.serial_mut().refill();
        }
        a.poll(now);
        b.poll(now);
        c.pump(now);
        d.pump(now);
    }
    let events =
        |x: &mut Driver| core::iter::from_fn(|| x.endpoint_mut().poll_event()).collect::<Vec<_>>();
    let got = events(&mut b);
    assert!(
        matches!(got.as_slice(), [Event::Message(m)] if m.data() == b"hi"),
        "{got:?}"
    );
    assert_eq!(got, events(&mut d));
    assert_eq!(events(&mut a), events(&mut c));
    assert_eq!(a.endpoint().stats(), c.endpoint().stats());
}

fn request_and_reply(tx_per_poll: Option<usize>, len: usize) {
    let (mut a, mut b) = drivers(tx_per_poll);
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let id = a
        .endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("echo", &data).unwrap(),
            None,
        )
        .unwrap();
    let events = run(&mut a, &mut b, 0, 1000);
    assert!(
        events.contains(&Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }),
        "{events:?}"
    );
    let reply = events
        .iter()
        .find_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a reply");
    assert_eq!(reply.topic(), "echo");
    assert_eq!(reply.req_id(), Some(id));
    let mut reversed = data.clone();
    reversed.reverse();
    assert_eq!(reply.data(), &reversed[..]);
    assert_eq!(a.endpoint().peer_state(), PeerState::Up);
    assert!(!a.tx_blocked() && !b.tx_blocked());
    assert_eq!(a.stats().tx_bytes, b.stats().rx_bytes);
    assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
}

#[test]
fn request_and_reply_over_a_fast_port() {
    for len in [0, 8, 64, 128] {
        request_and_reply(None, len);
    }
}

#[test]
fn request_and_reply_when_tx_takes_three_bytes_per_poll() {
    for len in [0, 8, 64, 128] {
        request_and_reply(Some(3), len);
    }
}

#[test]
fn a_blocked_frame_is_continued_on_the_next_poll() {
    let (mut a, mut b) = drivers(Some(1));
    a.endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("t", b"0123456789").unwrap(),
            None,
        )
        .unwrap();
    a.poll(Instant::ZERO);
    assert!(a.tx_blocked());
    assert_eq!(a.stats().tx_bytes, 1);
    let events = run(&mut a, &mut b, 0, 2000);
    assert!(events.iter().any(|e| matches!(e, Event::Message(_))));
}

#[test]
fn many_requests_both_ways_with_a_slow_port() {
    let (mut a, mut b) = drivers(Some(7));
    let mut replies = 0;
    let mut next = 0u64;
    let mut ms = 0u64;
    while replies < 20 && ms < 60_000 {
        if a.endpoint().pending_sends() < 2 {
            let payload = next.to_le_bytes();
            if a.endpoint_mut()
                .send(
                    Instant::from_millis(ms),
                    Message::request("n", &payload).unwrap(),
                    None,
                )
                .is_ok()
            {
                next += 1;
            }
        }
        for e in run(&mut a, &mut b, ms, 10) {
            match e {
                Event::Message(m) => {
                    assert_eq!(m.data().len(), 8);
                    replies += 1;
                }
                Event::SendOutcome { outcome, .. } => assert_eq!(outcome, Outcome::Delivered),
                other => panic!("unexpected {other:?}"),
            }
        }
        ms += 10;
    }
    assert_eq!(replies, 20);
}

#[test]
fn bytes_fed_from_an_interrupt_reach_the_endpoint() {
    let (a_port, b_port) = pair(None);
    let mut a = Driver::new(a_port, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut b = Driver::new(b_port, Config::default(), 0xB, Instant::ZERO).unwrap();
    a.endpoint_mut()
        .send(Instant::ZERO, Message::request("irq", b"x").unwrap(), None)
        .unwrap();
    // No DATA goes out before the peer's capabilities are known: b's start-up heartbeat
    // reaches a first (a's poll reads it, then sends its own heartbeat and the request).
    b.poll(Instant::ZERO);
    a.poll(Instant::ZERO);
    assert_eq!(a.endpoint().peer_state(), PeerState::Up);
    // An "interrupt handler" takes the bytes off the wire before b's poll could read them.
    let received: Vec<u8> = b.serial().rx.borrow_mut().drain(..).collect();
    assert!(!received.is_empty());
    for chunk in received.chunks(5) {
        b.feed(Instant::from_millis(1), chunk);
    }
    let mut got = None;
    while let Some(e) = b.endpoint_mut().poll_event() {
        if let Event::Message(m) = e {
            got = Some(m);
        }
    }
    assert_eq!(got.unwrap().topic(), "irq");
    assert_eq!(b.stats().rx_bytes as usize, received.len());
}
