//! Bad input, a slow consumer, silence, aborts and concurrency.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use peerpipe_core::Error as CoreError;
use peerpipe_std::{
    memory_pair, AbortSignal, CloseReason, Error, FailReason, GoneReason, Item, Message, MsgId,
    PeerState, PipeHandler, Status, TcpTransport, FRAGMENT, MAX_PAYLOAD, MAX_TOPIC, QUEUE_ITEMS,
    RX,
};

fn msg(topic: &str, data: &[u8]) -> Message {
    Message::request(topic, data.to_vec()).unwrap()
}

fn invalid(r: Result<Message, Error>) -> CoreError {
    match r {
        Err(Error::Invalid(e)) => e,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn invalid_messages_are_refused_with_clear_errors() {
    assert_eq!(
        invalid(Message::request("", vec![])),
        CoreError::InvalidTopic
    );
    assert_eq!(
        invalid(Message::request("has space", vec![])),
        CoreError::InvalidTopic
    );
    assert_eq!(
        invalid(Message::request("dash-ed", vec![])),
        CoreError::InvalidTopic
    );
    assert_eq!(
        invalid(Message::request("é", vec![])),
        CoreError::InvalidTopic
    );
    for reserved in [
        "_END_",
        "_ABORT_",
        "_HEARTBEAT_",
        "_PEER_GONE_",
        "_STREAM_PROGRESS_",
    ] {
        assert_eq!(
            invalid(Message::request(reserved, vec![])),
            CoreError::ReservedTopic
        );
        assert_eq!(
            invalid(Message::reply(reserved, vec![], MsgId(1))),
            CoreError::ReservedTopic
        );
    }
    assert_eq!(
        invalid(Message::request("t".repeat(MAX_TOPIC + 1), vec![])),
        CoreError::TopicTooLong {
            len: MAX_TOPIC + 1,
            max: MAX_TOPIC
        }
    );
    assert!(Message::request("t".repeat(MAX_TOPIC), vec![]).is_ok());
    assert_eq!(
        invalid(Message::request("big", vec![0; MAX_PAYLOAD + 1])),
        CoreError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        }
    );
    // (`vec![0; n]` of 4 GiB costs address space only: its pages are never touched.)
    let err = Message::request("big", vec![0; MAX_PAYLOAD + 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid: payload of 4294967297 bytes is larger than the 4294967296 allowed"
    );

    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    let _notes = echo_server(&b);
    // A zero timeout; a reply passed to `request`; END/ABORT data too large.
    assert!(matches!(
        a.send_to_peer(msg("x", b""), Some(Duration::ZERO), None),
        Err(Error::Invalid(CoreError::ZeroTimeout))
    ));
    let reply = Message::reply("x", vec![], MsgId(0)).unwrap();
    assert!(matches!(
        a.request(reply, Some(STEP), None),
        Err(Error::Invalid(_))
    ));
    match a.notify_end(vec![0; MAX_PAYLOAD + 1]) {
        Err(Error::Invalid(e)) => assert_eq!(
            e,
            CoreError::PayloadTooLarge {
                len: MAX_PAYLOAD + 1,
                max: MAX_PAYLOAD
            }
        ),
        r => panic!("oversize END: {r:?}"),
    }
    match a.notify_abort(vec![0; MAX_PAYLOAD + 1]) {
        Err(Error::Invalid(e)) => assert_eq!(
            e,
            CoreError::PayloadTooLarge {
                len: MAX_PAYLOAD + 1,
                max: MAX_PAYLOAD
            }
        ),
        r => panic!("oversize ABORT: {r:?}"),
    }
    // None of it hurt the conversation.
    let r = a
        .request(msg("echo", &[7; 3 * FRAGMENT]), Some(STEP), None)
        .unwrap();
    assert_eq!(r.data(), &[7; 3 * FRAGMENT][..]);
    a.stop(true);
    b.stop(true);
}

/// Garbage written between frames, in both directions, zeros (frame delimiters) included:
/// every exchange still succeeds, exactly once.
#[test]
fn garbage_between_frames_is_skipped() {
    let (wa, wb) = wire_pair();
    let (a, b) = start_pair(wa.clone(), wb.clone(), quick_resend_config());
    let notes_at_b = echo_server(&b);
    let _notes_at_a = echo_server(&a);
    let mut rng = Rng(7);
    for i in 0..60u32 {
        let n = 1 + rng.below(200) as usize;
        wa.inject(&rng.bytes(n));
        let n = 1 + rng.below(200) as usize;
        wb.inject(&rng.bytes(n));
        if i % 10 == 0 {
            // A lone delimiter, a run of them, a truncated frame.
            wa.inject(&[0]);
            wb.inject(&[0; 17]);
            wa.inject(&[5, 1, 2, 3]);
        }
        let (from, data) = if i % 2 == 0 {
            (&a, i.to_le_bytes())
        } else {
            (&b, i.to_le_bytes())
        };
        let r = from.request(msg("echo", &data), Some(STEP), None).unwrap();
        assert_eq!(r.data(), &data[..]);
        a.send_to_peer(msg("note", &data), Some(STEP), None)
            .unwrap();
        assert_eq!(notes_at_b.recv_timeout(STEP).unwrap().data(), &data[..]);
    }
    assert!(notes_at_b.try_recv().is_err());
    assert!(
        a.get_next().is_none() && b.get_next().is_none(),
        "no status change"
    );
    a.stop(true);
    b.stop(true);
}

/// A noisy line (bits flipped, garbage spliced into frames, bytes lost) both ways: what
/// the sender had confirmed arrives exactly once and in order, and nothing else does.
#[test]
fn noisy_line_loses_nothing_confirmed() {
    let (wa, wb) = wire_pair();
    wa.set_noise(60);
    wb.set_noise(60);
    let (a, b) = start_pair(wa, wb, quick_resend_config());
    let notes = echo_server(&b);
    for i in 0..150u32 {
        if i % 5 == 0 {
            let r = a
                .request(msg("echo", &i.to_le_bytes()), Some(STEP), None)
                .unwrap();
            assert_eq!(r.data(), i.to_le_bytes());
        }
        let note = Message::request("note", i.to_le_bytes().repeat(50)).unwrap();
        a.send_to_peer(note, Some(STEP), None).unwrap();
    }
    for i in 0..150u32 {
        let m = notes
            .recv_timeout(STEP)
            .expect("every confirmed note arrives");
        assert_eq!(m.data(), &i.to_le_bytes().repeat(50)[..]);
    }
    assert!(notes.try_recv().is_err(), "a note arrived twice");
    assert!(
        a.get_next().is_none() && b.get_next().is_none(),
        "no status change"
    );
    a.stop(true);
    b.stop(true);
}

/// A raw TCP client that first writes garbage, then speaks through a handler on the same
/// connection.
#[test]
fn tcp_garbage_before_the_first_frame() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let b = PipeHandler::new(server, config()).unwrap();
    b.start().unwrap();
    let mut raw = TcpStream::connect(addr).unwrap();
    let mut rng = Rng(99);
    raw.write_all(&rng.bytes(3000)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n\0\0").unwrap();
    let a = PipeHandler::new(StreamTransport(raw.try_clone().unwrap(), raw), config()).unwrap();
    a.start().unwrap();
    exercise(&a, &b);
    assert!(b.get_next().is_none(), "no status change at the server");
    a.stop(true);
    b.stop(true);
}

/// The receiver does not read for a while. The sender's sends stop being confirmed (they
/// time out) once the receiver's bounded queues are full, instead of piling up there. Then
/// everything confirmed, and only that, arrives exactly once, in order, and the
/// conversation goes on.
#[test]
fn slow_consumer_bounded_and_lossless() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    let mut confirmed = Vec::new();
    let mut timed_out = 0;
    let mut i = 0u32;
    while timed_out < 3 {
        let t0 = Instant::now();
        match a.send_to_peer(
            msg("n", &i.to_le_bytes()),
            Some(Duration::from_millis(300)),
            None,
        ) {
            Ok(_) => confirmed.push(i),
            Err(Error::Failed(FailReason::TimedOut)) => {
                timed_out += 1;
                assert!(t0.elapsed() < Duration::from_millis(300) + MARGIN);
            }
            Err(e) => panic!("send {i}: {e}"),
        }
        i += 1;
        // The application's queue, the items held back and the endpoint's receive slots.
        assert!(
            confirmed.len() <= QUEUE_ITEMS + RX + 2,
            "the receiver accepted {} items without reading",
            confirmed.len()
        );
    }
    assert!(
        confirmed.len() >= QUEUE_ITEMS,
        "only {} confirmed",
        confirmed.len()
    );

    // Read everything: exactly what was confirmed, in order; a failed send never shows up.
    let mut got = Vec::new();
    while let Some(item) = b.recv_timeout(Duration::from_millis(500)) {
        match item {
            Item::Message(m) => got.push(u32::from_le_bytes(m.data().try_into().unwrap())),
            Item::Status(s) => panic!("unexpected {s:?}"),
        }
        assert!(got.len() <= confirmed.len(), "more received than confirmed");
    }
    assert_eq!(got, confirmed);

    // And the conversation goes on, with a reader this time.
    let reader = {
        let b = b.clone();
        std::thread::spawn(move || {
            (0..200)
                .map(|_| next_message(&b, STEP).data().to_vec())
                .collect::<Vec<_>>()
        })
    };
    for j in 0..200u32 {
        a.send_to_peer(msg("m", &j.to_le_bytes()), Some(STEP), None)
            .unwrap();
    }
    let more = reader.join().unwrap();
    assert!(more
        .iter()
        .enumerate()
        .all(|(j, d)| d == &(j as u32).to_le_bytes()));
    a.stop(true);
    b.stop(true);
}

/// A receiver that does not read while a pipelined flood keeps its queue full, for longer
/// than the heartbeat timeout: its endpoint announced the room of the application's queue
/// too, and what it cannot take now waits in its driver, but the heartbeats behind that data
/// are read all the same, so neither side takes the other for gone; nothing is lost.
#[test]
fn a_flood_to_a_receiver_that_does_not_read_is_not_taken_for_silence() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, gone_config());
    let count = 4 * QUEUE_ITEMS as u32;
    let tickets: Vec<_> = (0..count)
        .map(|i| {
            a.send_pipelined(msg("n", &i.to_le_bytes()), Some(Duration::from_secs(30)))
                .unwrap()
        })
        .collect();
    std::thread::sleep(GONE_AFTER * 4);
    assert_eq!(a.peer_state(), PeerState::Up);
    assert_eq!(b.peer_state(), PeerState::Up);
    assert!(b.stats().queued_items <= QUEUE_ITEMS);

    let mut got = Vec::new();
    while got.len() < count as usize {
        match b.recv_timeout(Duration::from_secs(10)) {
            Some(Item::Message(m)) => got.push(u32::from_le_bytes(m.data().try_into().unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, (0..count).collect::<Vec<_>>());
    for t in tickets {
        t.wait().unwrap();
    }
    a.stop(true);
    b.stop(true);
}

/// Silence: a peer that pauses stops sending heartbeats, and is GONE after heartbeat_timeout
/// (plus a margin); later sends are refused.
#[test]
fn paused_peer_is_gone_by_silence() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, gone_config());
    assert!(wait_until(STEP, || b.peer_state() == PeerState::Up));
    let t0 = Instant::now();
    a.pause();
    let s = next_status(&b, GONE_AFTER + MARGIN);
    assert_eq!(
        s,
        Status::Gone {
            reason: GoneReason::Silence,
            cause: None
        }
    );
    assert!(t0.elapsed() < GONE_AFTER + MARGIN);
    assert_eq!(b.peer_state(), PeerState::Gone);
    assert!(matches!(
        b.send_to_peer(msg("x", b""), Some(STEP), None),
        Err(Error::Closed(CloseReason::PeerGone))
    ));
    a.stop(true);
    b.stop(true);
}

/// Both sides paused longer than heartbeat_timeout, then resumed: no GONE (the silence
/// clock restarts at resume), and the conversation goes on.
#[test]
fn long_pause_then_resume_is_not_gone() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, gone_config());
    let _ = echo_server(&b);
    a.request(msg("echo", b"1"), Some(STEP), None).unwrap();
    a.pause();
    b.pause();
    std::thread::sleep(GONE_AFTER * 2);
    a.resume();
    b.resume();
    assert_eq!(
        a.request(msg("echo", b"2"), Some(STEP), None)
            .unwrap()
            .data(),
        b"2"
    );
    // Heartbeats are flowing again: still no GONE after another timeout's worth.
    assert!(a.recv_timeout(GONE_AFTER * 2).is_none());
    assert!(b.get_next().is_none());
    assert_eq!(a.peer_state(), PeerState::Up);
    a.stop(true);
    b.stop(true);
}

/// An abort signal fired from another thread ends a blocked `send_to_peer` (and `request`)
/// with `Aborted`, long before its timeout.
#[test]
fn abort_signal_ends_a_blocked_send() {
    let (a, b) = memory_pair();
    let a = PipeHandler::new(a, config()).unwrap();
    // The peer's handler exists but never starts: nothing is ever confirmed.
    let _b = PipeHandler::new(b, config()).unwrap();
    a.start().unwrap();
    for use_request in [false, true] {
        let signal = AbortSignal::new();
        let firing = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                signal.trigger();
            })
        };
        let t0 = Instant::now();
        let m = msg("x", b"");
        let r = if use_request {
            a.request(m, Some(Duration::from_secs(20)), Some(&signal))
                .map(drop)
        } else {
            a.send_to_peer(m, Some(Duration::from_secs(20)), Some(&signal))
                .map(drop)
        };
        assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
        assert!(t0.elapsed() < STEP, "{:?}", t0.elapsed());
        firing.join().unwrap();
    }
    // A signal fired before the call ends it at once.
    let fired = AbortSignal::new();
    fired.trigger();
    assert!(matches!(
        a.send_to_peer(msg("x", b""), Some(Duration::from_secs(20)), Some(&fired)),
        Err(Error::Aborted)
    ));
    a.stop(true);
}

/// Many threads calling `send_to_peer` at once, more than the sends in flight allowed: all
/// succeed, and each thread's messages arrive once, in its order.
#[test]
fn concurrent_senders_all_succeed() {
    const THREADS: u32 = 40;
    const EACH: u32 = 15;
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let client = TcpTransport::connect(server.local_addr().unwrap()).unwrap();
    let (a, b) = start_pair(client, server, config());
    let start = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, start) = (a.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for k in 0..EACH {
                    let data = [t.to_le_bytes(), k.to_le_bytes()].concat();
                    a.send_to_peer(msg("c", &data), Some(Duration::from_secs(20)), None)
                        .unwrap_or_else(|e| panic!("thread {t} message {k}: {e}"));
                }
            })
        })
        .collect();
    let mut next: HashMap<u32, u32> = HashMap::new();
    for _ in 0..THREADS * EACH {
        let m = next_message(&b, STEP);
        let t = u32::from_le_bytes(m.data()[..4].try_into().unwrap());
        let k = u32::from_le_bytes(m.data()[4..].try_into().unwrap());
        let want = next.entry(t).or_default();
        assert_eq!(k, *want, "thread {t}: out of order or duplicated");
        *want += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    assert!(next.values().all(|&k| k == EACH));
    assert!(b.recv_timeout(Duration::from_millis(100)).is_none());
    a.stop(true);
    b.stop(true);
}
