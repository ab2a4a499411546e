//! What the link survives and how it ends: garbage and read errors on the wire, deadlines and
//! a silent peer, an END and a restarted endpoint.

use super::*;

#[test]
fn garbage_and_read_errors_are_survived() {
    let (mut a, mut b) = drivers(None);
    b.serial_mut()
        .rx
        .borrow_mut()
        .extend((0..=255u8).cycle().take(3000));
    b.serial_mut().errors = 3;
    // More garbage than one poll reads: the RX budget keeps poll from running forever.
    b.poll(Instant::ZERO);
    assert_eq!(b.stats().rx_errors, 3);
    assert!(b.stats().rx_bytes as usize <= RX_BUDGET);
    a.endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("after", b"garbage").unwrap(),
            None,
        )
        .unwrap();
    let events = run(&mut a, &mut b, 0, 5000);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.topic() == "after")));
    let s = b.endpoint().stats();
    assert!(s.cobs_errors + s.crc_errors + s.malformed + s.oversize + s.bad_version > 0);
}

#[test]
fn deadlines_are_reported_and_a_silent_peer_goes() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut gone = false;
    for _ in 0..100 {
        let Some(next) = a.poll(now) else { break };
        assert!(next >= now);
        now = next;
        while let Some(e) = a.endpoint_mut().poll_event() {
            gone |= matches!(e, Event::Gone(_));
        }
        if gone {
            break;
        }
    }
    assert!(gone);
    assert!(now >= Instant::from_millis(30_000));
}

#[test]
fn end_closes_and_a_new_endpoint_is_seen_as_a_restart() {
    let (mut a, mut b) = drivers(Some(4));
    a.endpoint_mut().notify_end(Instant::ZERO, b"bye").unwrap();
    let mut ended = false;
    for ms in 0..100 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(e) = b.endpoint_mut().poll_event() {
            ended |= matches!(e, Event::End(ref d) if d.as_slice() == b"bye");
        }
        while a.endpoint_mut().poll_event().is_some() {}
    }
    assert!(ended);
    // a starts over with a new session; b sees a restart.
    a.replace_endpoint(Endpoint::new(Config::default(), 0xA2, Instant::from_millis(100)).unwrap());
    let mut restarted = false;
    for ms in 100..400 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(e) = b.endpoint_mut().poll_event() {
            restarted |= e == Event::PeerRestarted;
        }
        while a.endpoint_mut().poll_event().is_some() {}
    }
    assert!(restarted);
}
