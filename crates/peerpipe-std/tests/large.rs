//! Messages of any size: large messages through the in-memory pair, TCP and Unix sockets
//! (the child-process transport is in `child.rs`), requests with large replies, END with
//! large data, a peer that takes less (`TooLarge` at once), the bound of the receiving
//! queue in bytes with a slow consumer, and progress on both sides.
//!
//! Real time, generous bounds. The sizes stay in the tens of MiB: the tests run
//! unoptimized, where encoding and checking cost far more per byte than in a release build.

mod common;

use std::time::{Duration, Instant};

use common::*;
use peerpipe_std::{
    memory_pair, Config, Error, FailReason, Message, PipeHandler, Progress, Status, TcpTransport,
    FRAGMENT, QUEUE_BYTES, RX,
};

/// Bound on a large transfer in an unoptimized build on a loaded machine.
const LONG: Duration = Duration::from_secs(120);

fn long_config() -> Config {
    Config {
        default_request_timeout: LONG,
        ..config()
    }
}

const MIB: usize = 1 << 20;

/// Sends `data` from `a` to `b` (whose queue the test reads) as a one-way message, then
/// the same back from `b` to `a` as the reply to a request; checks both.
fn both_ways(a: &PipeHandler, b: &PipeHandler, data: &[u8]) {
    let _echo = echo_server(b);
    let reply = a
        .request(
            Message::request("echo", data.to_vec()).expect("request"),
            Some(LONG),
            None,
        )
        .unwrap_or_else(|e| panic!("echo of {} bytes: {e}", data.len()));
    assert!(
        reply.data() == data,
        "the echo of {} bytes differs",
        data.len()
    );
}

fn tcp_pair(config: Config) -> (PipeHandler, PipeHandler) {
    let server = TcpTransport::listen("127.0.0.1:0").expect("listen");
    let addr = server.local_addr().expect("addr");
    start_pair(
        TcpTransport::connect(addr).expect("connect"),
        server,
        config,
    )
}

#[test]
fn sixteen_mib_each_way_over_memory() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let t0 = Instant::now();
    both_ways(&a, &b, &pattern(16 * MIB, 16));
    eprintln!("memory: 2 x 16 MiB in {:?}", t0.elapsed());
    a.stop(true);
    b.stop(true);
}

#[test]
fn sixteen_mib_each_way_over_tcp() {
    let (a, b) = tcp_pair(long_config());
    let t0 = Instant::now();
    both_ways(&a, &b, &pattern(16 * MIB, 17));
    eprintln!("tcp: 2 x 16 MiB in {:?}", t0.elapsed());
    a.stop(true);
    b.stop(true);
}

#[cfg(unix)]
#[test]
fn sixteen_mib_each_way_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.sock");
    let server = peerpipe_std::UnixTransport::listen(&path).expect("listen");
    let client = peerpipe_std::UnixTransport::connect(&path);
    let (a, b) = start_pair(client, server, long_config());
    both_ways(&a, &b, &pattern(16 * MIB, 18));
    a.stop(true);
    b.stop(true);
}

/// Sizes around the fragment length, one-way and as replies, over TCP (the other
/// transports run them in `exercise`).
#[test]
fn sizes_around_the_fragment_over_tcp() {
    let (a, b) = tcp_pair(long_config());
    for len in [
        0,
        1,
        FRAGMENT - 1,
        FRAGMENT,
        FRAGMENT + 1,
        3 * FRAGMENT,
        3 * FRAGMENT + 7,
    ] {
        both_ways(&a, &b, &pattern(len, len as u64));
    }
    a.stop(true);
    b.stop(true);
}

/// A small request whose reply is large: the requester gets it whole, matched by id.
#[test]
fn a_small_request_gets_a_large_reply() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let big = pattern(20 * MIB + 3, 5);
    b.set_message_cb({
        let b = b.clone();
        let big = big.clone();
        move |m| {
            let _ = b.send_no_wait(m.reply_to(big.clone()).expect("reply"));
        }
    });
    let req = Message::request("give", b"please".to_vec()).expect("request");
    let reply = a.request(req, Some(LONG), None).expect("a large reply");
    assert_eq!(reply.data().len(), big.len());
    assert!(reply.data() == &big[..]);
    // Nothing else reached the application's queue.
    assert!(a.get_next().is_none());
    a.stop(true);
    b.stop(true);
}

/// END carries 1 MiB of data (in parts), after everything sent before it.
#[test]
fn end_with_one_mib_of_data() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let before = pattern(3 * FRAGMENT, 1);
    a.send_to_peer(
        Message::request("before", before.clone()).unwrap(),
        Some(LONG),
        None,
    )
    .expect("sent");
    let data = pattern(MIB, 2);
    a.notify_end(data.clone()).expect("END acknowledged");
    assert_eq!(next_message(&b, STEP).data(), &before[..]);
    match next_status(&b, STEP) {
        Status::End(got) => assert!(got == data, "END data differs"),
        s => panic!("expected END, got {s:?}"),
    }
    assert!(matches!(
        a.send_no_wait(Message::request("after", vec![]).unwrap()),
        Err(Error::Closed(_))
    ));
    a.stop(true);
    b.stop(true);
}

/// ABORT with data of several fragments: the same.
#[test]
fn abort_with_data_in_parts() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let data = pattern(5 * FRAGMENT + 1, 3);
    a.notify_abort(data.clone()).expect("ABORT acknowledged");
    assert_eq!(next_status(&b, STEP), Status::Abort(data));
    a.stop(true);
    b.stop(true);
}

/// A peer that accepts messages of at most 1 MiB (`max_message`): a longer send fails at
/// once with `TooLarge` (not at its timeout), and the conversation goes on.
#[test]
fn a_send_longer_than_the_peer_takes_fails_at_once() {
    let (x, y) = memory_pair();
    let a = PipeHandler::new(x, long_config()).unwrap();
    let b = PipeHandler::new(
        y,
        Config {
            max_message: MIB as u64,
            ..long_config()
        },
    )
    .unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let t0 = Instant::now();
    let r = a.send_to_peer(
        Message::request("big", vec![1; MIB + 1]).unwrap(),
        Some(LONG),
        None,
    );
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TooLarge))),
        "{r:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The same for a request, and for END's data.
    let r = a.request(
        Message::request("big", vec![1; MIB + 1]).unwrap(),
        Some(LONG),
        None,
    );
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TooLarge))),
        "{r:?}"
    );
    // Exactly the limit goes.
    let _echo = echo_server(&b);
    let data = pattern(MIB, 9);
    a.send_to_peer(
        Message::request("fits", data.clone()).unwrap(),
        Some(LONG),
        None,
    )
    .expect("1 MiB fits");
    assert_eq!(_echo.recv_timeout(STEP).expect("arrived").data(), &data[..]);
    let r = a.notify_end(vec![0; MIB + 1]);
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TooLarge))),
        "{r:?}"
    );
    a.stop(true);
    b.stop(true);
}

/// A flood of 4 MiB messages to an application that does not read: the receiver holds at
/// most `QUEUE_BYTES` (plus one fragment) of them, the rest waits at the sender, whose
/// sends are acknowledged as the application reads; everything arrives once, in order.
#[test]
fn a_flood_of_large_messages_to_a_slow_consumer_is_bounded_in_bytes() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let size = 4 * MIB;
    let count = 12;
    let sender = std::thread::spawn({
        let a = a.clone();
        move || {
            for i in 0..count {
                let m = Message::request("flood", pattern(size, i as u64)).unwrap();
                a.send_to_peer(m, Some(LONG), None).expect("sent");
            }
        }
    });
    // Not reading: the queue fills to its bound in bytes (far fewer than QUEUE_ITEMS
    // messages) and stays there.
    let bound = QUEUE_BYTES + FRAGMENT;
    let held = |p: Progress, queued: usize| queued + p.receiving.map_or(0, |t| t.done as usize);
    assert!(
        wait_until(LONG, || b.stats().queued_bytes >= QUEUE_BYTES - size),
        "the queue never filled: {:?}",
        b.stats()
    );
    let mut worst = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let stats = b.stats();
        worst = worst.max(held(b.progress(), stats.queued_bytes));
        assert!(stats.queued_items < count, "{stats:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("held at most {worst} bytes (bound {bound})");
    assert!(worst <= bound, "held {worst} bytes, bound {bound}");
    assert!(
        !sender.is_finished(),
        "every send was acknowledged without a reader"
    );

    // A slow reader gets everything, in order, and the bound holds throughout.
    for i in 0..count {
        let m = next_message(&b, LONG);
        assert!(
            m.data() == &pattern(size, i as u64)[..],
            "message {i} differs"
        );
        worst = worst.max(held(b.progress(), b.stats().queued_bytes));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(worst <= bound, "held {worst} bytes, bound {bound}");
    sender.join().unwrap();
    assert!(b.get_next().is_none());
    a.stop(true);
    b.stop(true);
}

/// One message longer than `QUEUE_BYTES` still gets through (alone), and the one after it
/// waits until the application took it (one longer than the endpoint's `RX` receive slots:
/// a shorter one fits in them, and they count as taken).
#[test]
fn a_message_longer_than_the_queue_bound_gets_through_alone() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let big = pattern(QUEUE_BYTES + 3 * FRAGMENT, 7);
    a.send_to_peer(
        Message::request("big", big.clone()).unwrap(),
        Some(LONG),
        None,
    )
    .expect("delivered into the empty queue");
    let next = a.send_to_peer(
        Message::request("next", pattern((RX + 2) * FRAGMENT, 8)).unwrap(),
        Some(Duration::from_millis(500)),
        None,
    );
    assert!(
        matches!(next, Err(Error::Failed(FailReason::TimedOut))),
        "{next:?}"
    );
    assert!(next_message(&b, STEP).data() == &big[..]);
    a.send_to_peer(Message::request("next", vec![8]).unwrap(), Some(STEP), None)
        .expect("room again");
    assert_eq!(next_message(&b, STEP).data(), &[8]);
    a.stop(true);
    b.stop(true);
}

/// Progress: the sender sees the bytes the peer acknowledged grow to the total, the
/// receiver the bytes that came; both are `None` before and after.
#[test]
fn progress_on_both_sides() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    assert_eq!(a.progress(), Progress::default());
    let size = 16 * MIB;
    let sender = std::thread::spawn({
        let a = a.clone();
        move || {
            let m = Message::request("file", pattern(size, 4)).unwrap();
            a.send_to_peer(m, Some(LONG), None)
        }
    });
    let (mut sent, mut came) = (Vec::new(), Vec::new());
    while !sender.is_finished() {
        if let Some(t) = a.progress().sending {
            assert_eq!(t.total, size as u64);
            sent.push(t.done);
        }
        if let Some(t) = b.progress().receiving {
            assert_eq!(t.total, size as u64);
            came.push(t.done);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let id = sender.join().unwrap().expect("sent");
    let m = next_message(&b, STEP);
    assert_eq!(m.id(), id);
    for (name, seen) in [("sent", &sent), ("came", &came)] {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{name} went backwards"
        );
        assert!(
            seen.iter().any(|&d| d > 0 && d < size as u64),
            "{name}: no value between 0 and the total in {} samples",
            seen.len()
        );
    }
    assert_eq!(a.progress(), Progress::default());
    assert_eq!(b.progress(), Progress::default());
    a.stop(true);
    b.stop(true);
}

/// The peer stops (closing its transport) in the middle of a message it sends: GONE, and
/// nothing of that message reaches the application.
#[test]
fn a_peer_that_stops_mid_message_delivers_no_part_of_it() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    let sender = std::thread::spawn({
        let b = b.clone();
        move || {
            let m = Message::request("big", pattern(64 * MIB, 1)).unwrap();
            b.send_to_peer(m, Some(LONG), None)
        }
    });
    assert!(
        wait_until(LONG, || a
            .progress()
            .receiving
            .is_some_and(|t| t.done >= 2 * MIB as u64)),
        "the message never started arriving"
    );
    b.stop(true);
    match next_status(&a, STEP) {
        Status::Gone { .. } => {}
        s => panic!("expected GONE, got {s:?}"),
    }
    assert!(matches!(sender.join().unwrap(), Err(Error::Stopped)));
    assert_eq!(a.get_next(), None, "something more arrived");
    assert_eq!(
        a.progress().receiving,
        None,
        "the partial message is dropped"
    );
    assert_eq!(a.stats().queued_bytes, 0);
    a.stop(true);
}

/// A send's timeout bounds the whole message: one that cannot be moved in time fails at
/// its timeout (not when its last fragment would have gone), and the receiver, told by the
/// sender's floor, drops what arrived of it; the conversation goes on.
#[test]
fn a_large_send_that_runs_out_of_time_fails_in_time_and_delivers_nothing() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, long_config());
    // Slowed by a reader that takes its time: the receiver's queue is full of small items.
    for i in 0..peerpipe_std::QUEUE_ITEMS {
        a.send_to_peer(
            Message::request("small", vec![i as u8]).unwrap(),
            Some(STEP),
            None,
        )
        .expect("small");
    }
    let timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let r = a.send_to_peer(
        Message::request("big", pattern(8 * MIB, 3)).unwrap(),
        Some(timeout),
        None,
    );
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    assert!(took < timeout + Duration::from_millis(700), "took {took:?}");
    for i in 0..peerpipe_std::QUEUE_ITEMS {
        assert_eq!(next_message(&b, STEP).data(), &[i as u8]);
    }
    let m = Message::request("after", pattern(3 * FRAGMENT, 4)).unwrap();
    a.send_to_peer(m.clone(), Some(STEP), None).expect("after");
    let got = next_message(&b, STEP);
    assert_eq!((got.topic(), got.data()), ("after", m.data()));
    assert_eq!(b.get_next(), None, "a part of the big message arrived");
    assert_eq!(b.progress().receiving, None);
    a.stop(true);
    b.stop(true);
}
