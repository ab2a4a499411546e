//! The port adapters: `Split` halves and a `TxOnly` transmitter carry a driver's traffic, and
//! cost nothing in size.

use embedded_hal_nb::serial::Error as _;
use peerpipe_core::Outcome;

use super::*;

#[test]
fn split_halves_carry_requests_and_replies() {
    for tx_per_poll in [None, Some(3)] {
        let (a, b) = pair(tx_per_poll);
        let (rx, tx) = halves(a);
        let mut a: SerialDriver<Split<MockSerial, MockSerial>> =
            SerialDriver::new_split(rx, tx, Config::default(), 0xA, Instant::ZERO).unwrap();
        let mut b = Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap();
        let id = a
            .endpoint_mut()
            .send(
                Instant::ZERO,
                Message::request("split", b"halves").unwrap(),
                None,
            )
            .unwrap();
        let events = run(&mut a, &mut b, 0, 1000);
        assert!(events.contains(&Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.data() == b"sevlah")));
        assert_eq!(a.stats().tx_bytes, b.stats().rx_bytes);
        assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
        // Nothing went through the unconnected directions.
        let (_, Split { rx, tx }) = a.into_parts();
        assert!(rx.tx.borrow().is_empty());
        assert_eq!(tx.errors, 0);
    }
}

#[test]
fn split_errors_say_which_half() {
    let (a, _b) = pair(None);
    let (mut rx, tx) = halves(a);
    rx.errors = 2;
    let mut port = Split::new(rx, tx);
    let err = serial::Read::read(&mut port).unwrap_err();
    assert!(matches!(err, nb::Error::Other(SplitError::Rx(MockError))));
    let mut a: SerialDriver<_> =
        SerialDriver::new(port, Config::default(), 0xA, Instant::ZERO).unwrap();
    a.poll(Instant::ZERO);
    assert_eq!(a.stats().rx_errors, 1);
    let e: SplitError<MockError, MockError> = SplitError::Tx(MockError);
    assert_eq!(e.kind(), ErrorKind::Overrun);
}

#[test]
fn tx_only_reads_nothing_and_takes_fed_bytes() {
    let (a, b) = pair(Some(5));
    let mut a: SerialDriver<TxOnly<MockSerial>> =
        SerialDriver::new(TxOnly::new(a), Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut b = Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap();
    let id = a
        .endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("tx", b"only").unwrap(),
            None,
        )
        .unwrap();
    let mut events = Vec::new();
    for ms in 0..1000 {
        // The "interrupt handler": takes what b sent off the wire and feeds it.
        let received: Vec<u8> = a.serial().0.rx.borrow_mut().drain(..).collect();
        a.feed(Instant::from_millis(ms), &received);
        events.extend(run(&mut a, &mut b, ms, 1));
        // poll never reads: the wire keeps what b sent until the next feed.
        assert_eq!(a.stats().rx_errors, 0);
    }
    assert!(events.contains(&Event::SendOutcome {
        id,
        outcome: Outcome::Delivered
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.data() == b"ylno")));
    assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
    let mut port = a.into_parts().1;
    port.0.rx.borrow_mut().push_back(1);
    assert!(matches!(
        serial::Read::read(&mut port),
        Err(nb::Error::WouldBlock)
    ));
    assert_eq!(port.into_inner().rx.borrow().len(), 1);
}

#[test]
fn sizes() {
    // Printed for the record (`cargo test -p peerpipe-embedded -- --nocapture sizes`).
    println!(
        "size_of: Endpoint {} B, SerialDriver {} B",
        core::mem::size_of::<Endpoint>(),
        core::mem::size_of::<SerialDriver<MockSerial>>()
    );
    // The adapters add nothing around zero-sized halves.
    assert_eq!(
        core::mem::size_of::<Split<TxOnly<()>, ()>>(),
        0,
        "Split and TxOnly are zero-cost wrappers"
    );
}
