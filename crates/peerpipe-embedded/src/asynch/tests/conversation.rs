//! Requests and replies, order, END and ABORT, a silent peer, a request without reply.

use super::*;

#[test]
fn requests_get_their_replies() {
    pair(&mut NoSource, async |a, b, _| {
        let client = async {
            for len in [0usize, 1, 64, 128] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let reply = a
                    .request(Message::request("echo", &data).unwrap(), None)
                    .await
                    .unwrap();
                assert_eq!(reply.topic(), "echo");
                assert!(reply.data().iter().rev().eq(data.iter()), "{len} B");
            }
            // Two tasks at once: each gets its own reply.
            let (x, y) = embassy_futures::join::join(
                a.request(Message::request("x", b"12").unwrap(), None),
                a.request(Message::request("y", b"34").unwrap(), None),
            )
            .await;
            assert_eq!(x.unwrap().data(), b"21");
            assert_eq!(y.unwrap().data(), b"43");
        };
        select(client, reverse_server(b)).await;
    });
}

#[test]
fn sent_messages_arrive_in_order_and_deliver_awaits_the_outcome() {
    pair(&mut NoSource, async |a, b, _| {
        a.send(Message::request("one", b"1").unwrap(), None)
            .unwrap();
        a.deliver(Message::request("two", b"2").unwrap(), None)
            .await
            .unwrap();
        for topic in ["one", "two"] {
            match b.receive().await {
                Event::Message(m) => assert_eq!(m.topic(), topic),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(a.pending_sends(), 0, "settled sends free their slots");
        assert!(a.stats().tx_bytes > 0 && b.stats().rx_bytes == a.stats().tx_bytes);
    });
}

#[test]
fn end_and_abort_reach_the_peer_and_fail_a_waiting_request() {
    pair(&mut NoSource, async |a, b, _| {
        // B never answers: A's request waits, then B ends the conversation.
        let request = a.request(Message::request("q", b"?").unwrap(), None);
        let peer = async {
            assert!(matches!(b.receive().await, Event::Message(_)));
            b.notify_end(b"bye").unwrap();
        };
        let (result, ()) = embassy_futures::join::join(request, peer).await;
        assert_eq!(result, Err(RequestError::Failed(FailReason::PeerEnded)));
        assert!(matches!(a.receive().await, Event::End(data) if data == b"bye"));
        // After END nothing more is sent.
        assert_eq!(
            a.send(Message::request("late", b"").unwrap(), None),
            Err(Error::Closed(peerpipe_core::CloseReason::PeerEnded))
        );
    });
    pair(&mut NoSource, async |a, b, _| {
        a.notify_abort(b"stop").unwrap();
        assert!(matches!(b.receive().await, Event::Abort(data) if data == b"stop"));
    });
}

#[test]
fn a_silent_peer_is_gone_after_the_heartbeat_timeout() {
    let clock = MockClock::default();
    let state: State<NoopRawMutex> = State::new(endpoint(1));
    let (mut runner, a) = new(&state, &clock);
    let test = async {
        // The port takes nothing (the first heartbeat never leaves): deadlines are kept all
        // the same.
        let request = a.request(
            Message::request("q", b"?").unwrap(),
            Some(Duration::from_secs(10)),
        );
        let (result, event) = embassy_futures::join::join(request, a.receive()).await;
        assert_eq!(event, Event::Gone(GoneReason::Silence));
        assert_eq!(result, Err(RequestError::Failed(FailReason::PeerGone)));
        assert_eq!(
            clock.now(),
            Instant::from_millis(500),
            "gone at heartbeat_timeout"
        );
    };
    block_on(
        &clock,
        test,
        &mut [pin!(runner.run(Dead, Dead, &mut NoSource))],
    );
}

#[test]
fn a_request_without_reply_times_out() {
    pair(&mut NoSource, async |a, b, clock| {
        let start = clock.now();
        let wait = a.request(
            Message::request("q", b"?").unwrap(),
            Some(Duration::from_millis(300)),
        );
        let (result, _) = embassy_futures::join::join(wait, b.receive()).await;
        assert_eq!(result, Err(RequestError::TimedOut));
        assert_eq!(clock.now() - start, Duration::from_millis(300));
    });
}
