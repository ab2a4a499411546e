//! Full send slots, `room`, events not received holding the peer back, port errors, the
//! end of input.

use super::*;

#[test]
fn full_send_slots_refuse_with_a_typed_error() {
    let clock = MockClock::default();
    let state: State<NoopRawMutex> = State::new(endpoint(1));
    let (mut runner, a) = new(&state, &clock);
    let test = async {
        // The peer was never seen: nothing leaves, the four send slots stay taken.
        for i in 0..4 {
            a.send(Message::request("q", &[i]).unwrap(), None).unwrap();
        }
        assert_eq!(
            a.send(Message::request("q", b"5").unwrap(), None),
            Err(Error::SendQueueFull)
        );
        let refused = a.request(Message::request("q", b"6").unwrap(), None).await;
        assert_eq!(refused, Err(RequestError::Send(Error::SendQueueFull)));
    };
    block_on(
        &clock,
        test,
        &mut [pin!(runner.run(Dead, Dead, &mut NoSource))],
    );
}

#[test]
fn room_waits_for_settled_sends() {
    pair(&mut NoSource, async |a, b, _| {
        for i in 0..4 {
            a.send(Message::request("q", &[i]).unwrap(), None).unwrap();
        }
        assert_eq!(
            a.send(Message::request("q", b"5").unwrap(), None),
            Err(Error::SendQueueFull)
        );
        assert!(embassy_futures::poll_once(a.room(1)).is_pending());
        a.room(4).await;
        assert_eq!(a.pending_sends(), 0);
        a.send(Message::request("q", b"5").unwrap(), None).unwrap();
        for _ in 0..5 {
            assert!(matches!(b.receive().await, Event::Message(_)));
        }
    });
}

#[test]
fn events_not_received_hold_the_peer_back_and_none_is_lost() {
    const N: u8 = 30;
    pair(&mut NoSource, async |a, b, clock| {
        let sent = Cell::new(0u8);
        // B sends N messages as fast as its slots allow, retrying on SendQueueFull.
        let sender = async {
            for i in 0..N {
                loop {
                    match b.send(
                        Message::request("n", &[i]).unwrap(),
                        Some(Duration::from_secs(600)),
                    ) {
                        Ok(_) => break,
                        Err(Error::SendQueueFull) => clock.sleep(10).await,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                sent.set(i + 1);
            }
        };
        // A takes nothing for 5 s: its channel (4) and receive queue (4) fill, B waits.
        let receiver = async {
            clock.sleep(5_000).await;
            let held = sent.get();
            assert!(held < N, "B was held back ({held} of {N} accepted)");
            for i in 0..N {
                match a.receive().await {
                    Event::Message(m) => assert_eq!(m.data(), &[i]),
                    other => panic!("{other:?}"),
                }
            }
        };
        embassy_futures::join::join(sender, receiver).await;
        assert_eq!(a.with_endpoint(|ep| ep.stats().discarded_on_stop), 0);
    });
}

#[test]
fn port_errors_are_counted_and_survived() {
    // A's first read and first write fail: the error is counted, reading goes on, the frame
    // that failed is lost and the protocol sends what it carried again.
    let clock = MockClock::default();
    let (a_tx, b_rx) = pipe(64);
    let (b_tx, a_rx) = pipe(64);
    let sa: State<NoopRawMutex> = State::new(endpoint(1));
    let sb: State<NoopRawMutex> = State::new(endpoint(2));
    let (mut ra, a) = new(&sa, &clock);
    let (mut rb, b) = new(&sb, &clock);
    let (mut none_a, mut none_b) = (NoSource, NoSource);
    let test = async {
        let client = async {
            let reply = a
                .request(Message::request("echo", b"abc").unwrap(), None)
                .await
                .unwrap();
            assert_eq!(reply.data(), b"cba");
        };
        select(client, reverse_server(b)).await;
        let stats = a.stats();
        assert_eq!((stats.rx_errors, stats.tx_errors), (1, 1));
    };
    let a_run = pin!(ra.run(FailsOnce::new(a_rx), FailsOnce::new(a_tx), &mut none_a));
    let b_run = pin!(rb.run(b_rx, b_tx, &mut none_b));
    block_on(&clock, test, &mut [a_run, b_run]);
}

#[test]
fn the_end_of_input_is_a_lost_transport() {
    let clock = MockClock::default();
    let (tx, rx) = pipe(64);
    drop(tx);
    let state: State<NoopRawMutex> = State::new(endpoint(1));
    let (mut runner, a) = new(&state, &clock);
    let test = async {
        assert_eq!(a.receive().await, Event::Gone(GoneReason::TransportLost));
        assert_eq!(
            clock.now(),
            Instant::ZERO,
            "at once, not after the heartbeat timeout"
        );
    };
    block_on(
        &clock,
        test,
        &mut [pin!(runner.run(rx, Dead, &mut NoSource))],
    );
}
