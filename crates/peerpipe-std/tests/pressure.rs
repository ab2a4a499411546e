//! Promises kept under pressure: each test drives the handler as an adversarial user would
//! (a peer that reads and never acknowledges, one that never reads, full send slots, late
//! replies, a flood of sends that do not wait) and checks the documented bound or error.
//!
//! Real time: bounds are generous (a timeout of 300 ms must end the call within a second,
//! not within the seconds the defects took).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, handler_with_raw_peer, wait_until, STEP};
use peerpipe_std::{
    memory_pair, Error, FailReason, Item, Message, MsgId, PipeHandler, Status, TcpTransport,
    FRAGMENT, FRAME, MAX_WAITING, TX, UNSENT_LIMIT,
};

const SHORT: Duration = Duration::from_millis(300);
/// How late a call bounded by [`SHORT`] may return on a loaded machine.
const LATE: Duration = Duration::from_millis(700);

fn long_timeouts() -> peerpipe_std::Config {
    peerpipe_std::Config {
        default_request_timeout: Duration::from_secs(20),
        ..config()
    }
}

fn msg(i: usize) -> Message {
    Message::request("load", vec![i as u8; 64]).expect("message")
}

/// Observation 1: a request the peer never acknowledged is not "NoReply".
#[test]
fn a_request_never_acknowledged_fails_as_not_delivered() {
    let (h, _peer) = handler_with_raw_peer(config(), true);
    let started = Instant::now();
    let r = h.request(msg(0), Some(SHORT), None);
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    assert!(started.elapsed() < SHORT + LATE);
    h.stop(true);
}

/// Observation 1, the other half: an acknowledged request without a reply is `NoReply`,
/// and the error names the request as the peer saw it.
#[test]
fn an_acknowledged_request_without_reply_is_no_reply_with_its_id() {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let seen = Arc::new(Mutex::new(Vec::new()));
    server.set_message_cb({
        let seen = seen.clone();
        move |m| seen.lock().unwrap().push(m.id())
    });
    let r = client.request(msg(0), Some(SHORT), None);
    let Err(Error::NoReply { request }) = r else {
        panic!("expected NoReply, got {r:?}");
    };
    assert_eq!(seen.lock().unwrap().as_slice(), &[request]);
    assert!(Error::NoReply { request }.is_timeout());
    client.stop(true);
    server.stop(true);
}

/// On success the reply names the request: its id is the request's.
#[test]
fn the_reply_names_the_request_id() {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let seen = Arc::new(Mutex::new(MsgId(0)));
    server.set_message_cb({
        let server = server.clone();
        let seen = seen.clone();
        move |m| {
            *seen.lock().unwrap() = m.id();
            let _ = server.send_no_wait(m.reply_to(b"ok".to_vec()).unwrap());
        }
    });
    let reply = client.request(msg(0), Some(STEP), None).expect("reply");
    assert_eq!(reply.req_id(), Some(*seen.lock().unwrap()));
    client.stop(true);
    server.stop(true);
}

/// Fills every send slot with sends that stay unacknowledged for 20 s.
fn fill_slots(h: &PipeHandler) {
    for i in 0..TX {
        h.send_no_wait(msg(i)).expect("async send");
    }
}

/// Observation 2: a send waiting for a slot keeps its own timeout, and says why it failed.
#[test]
fn a_send_waiting_for_a_slot_keeps_its_timeout() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    fill_slots(&h);
    let started = Instant::now();
    let r = h.send_to_peer(msg(99), Some(SHORT), None);
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Failed(FailReason::NoSlot))), "{r:?}");
    assert!(took >= SHORT && took < SHORT + LATE, "took {took:?}");
    // The same for a request, and the withdrawn sends no longer wait.
    let r = h.request(msg(100), Some(SHORT), None);
    assert!(matches!(r, Err(Error::Failed(FailReason::NoSlot))), "{r:?}");
    assert_eq!(h.stats().waiting_sends, 0);
    h.stop(true);
}

/// Observation 3: END behind busy slots waits its turn, and goes after everything sent
/// before it.
#[test]
fn notify_end_waits_its_turn_behind_busy_slots() {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let n = TX + 100;
    for i in 0..n {
        client.send_no_wait(msg(i)).expect("async send");
    }
    assert!(client.stats().waiting_sends > 0, "the slots should be busy");
    let reader = std::thread::spawn({
        let server = server.clone();
        move || {
            let mut messages = 0;
            loop {
                match server.recv_timeout(STEP) {
                    Some(Item::Message(_)) => messages += 1,
                    Some(Item::Status(Status::End(data))) => {
                        assert_eq!(data, b"bye");
                        return messages;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    });
    client
        .notify_end(b"bye".to_vec())
        .expect("END waits its turn");
    let messages = reader.join().unwrap();
    assert_eq!(messages, n);
    client.stop(true);
    server.stop(true);
}

/// Observation 3, bounded: END behind slots that never free fails with `NoSlot` within its
/// timeout (`default_request_timeout`), and is never `Invalid`.
#[test]
fn notify_end_behind_a_frozen_peer_is_bounded_by_its_timeout() {
    let config = peerpipe_std::Config {
        default_request_timeout: Duration::from_millis(600),
        ..config()
    };
    let (h, _peer) = handler_with_raw_peer(config, true);
    // Slots held by blocked senders whose timeout (10 s) outlives END's.
    let senders: Vec<_> = (0..TX)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || h.send_to_peer(msg(i), Some(Duration::from_secs(10)), None))
        })
        .collect();
    assert!(wait_until(STEP, || h.stats().core.data_sent >= TX as u64));
    let started = Instant::now();
    let r = h.notify_end(Vec::new());
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Failed(FailReason::NoSlot))), "{r:?}");
    assert!(took < Duration::from_millis(600) + LATE, "took {took:?}");
    h.stop(true);
    for s in senders {
        assert!(matches!(s.join().unwrap(), Err(Error::Stopped)));
    }
}

/// Observation 4: replies that come after their request gave up are dropped and counted;
/// an application that only uses `request` keeps working.
#[test]
fn late_replies_never_wedge_request() {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let late = 40u32;
    let count = Arc::new(AtomicU32::new(0));
    server.set_message_cb({
        let server = server.clone();
        let count = count.clone();
        move |m| {
            let reply = m.reply_to(m.data().to_vec()).unwrap();
            if count.fetch_add(1, Ordering::SeqCst) < late {
                let server = server.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = server.send_no_wait(reply);
                });
            } else {
                let _ = server.send_no_wait(reply);
            }
        }
    });
    for i in 0..late as usize {
        let r = client.request(msg(i), Some(Duration::from_millis(50)), None);
        assert!(matches!(r, Err(Error::NoReply { .. })), "{r:?}");
    }
    assert!(wait_until(STEP, || client.stats().late_replies == u64::from(late)));
    for i in 0..64 {
        let reply = client
            .request(msg(i), Some(STEP), None)
            .expect("reply in time");
        assert_eq!(reply.data(), msg(i).data());
    }
    let stats = client.stats();
    assert_eq!(stats.queued_items, 0, "late replies must not be queued");
    assert_eq!(stats.late_replies, u64::from(late));
    client.stop(true);
    server.stop(true);
}

/// Two handlers on TCP through a relay the test controls: once `frozen` is set, the relay
/// stops reading what `a` sends (its socket buffers fill, as with a peer that stalled),
/// while `b`'s heartbeats still reach `a` (the peer looks alive, its window open).
fn pair_through_a_relay(
    config: peerpipe_std::Config,
) -> (PipeHandler, PipeHandler, Arc<AtomicBool>) {
    let start = |t: TcpTransport| {
        let addr = t.local_addr().expect("addr");
        let h = PipeHandler::new(t, config).expect("config");
        h.start().expect("start");
        (h, TcpStream::connect(addr).expect("connect"))
    };
    let (a, to_a) = start(TcpTransport::listen("127.0.0.1:0").expect("listen"));
    let (b, to_b) = start(TcpTransport::listen("127.0.0.1:0").expect("listen"));
    let frozen = Arc::new(AtomicBool::new(false));
    let relay = |mut from: TcpStream, mut to: TcpStream, frozen: Option<Arc<AtomicBool>>| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                match from.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
    };
    relay(
        to_a.try_clone().unwrap(),
        to_b.try_clone().unwrap(),
        Some(frozen.clone()),
    );
    relay(to_b, to_a, None);
    (a, b, frozen)
}

/// Observation 5a: with a peer that is alive but does not read, resends do not pile up in
/// the output buffer (less than `UNSENT_LIMIT` (64 KiB) plus one frame waits there).
#[test]
fn a_stalled_peer_does_not_grow_the_output_buffer() {
    let config = peerpipe_std::Config {
        resend_interval: Some(Duration::from_millis(10)),
        heartbeat_timeout: Duration::ZERO,
        ..long_timeouts()
    };
    let (a, b, frozen) = pair_through_a_relay(config);
    // The link works, and `a` knows the peer's window.
    let _rx = common::echo_server(&b);
    let echo = Message::request("echo", b"hi".to_vec()).unwrap();
    a.request(echo, Some(STEP), None).expect("echo");
    frozen.store(true, Ordering::SeqCst);
    let big = vec![0xA5u8; 4 * FRAGMENT];
    for _ in 0..TX {
        a.send_no_wait(Message::request("big", big.clone()).unwrap())
            .expect("async send");
    }
    let bound = UNSENT_LIMIT + FRAME;
    let mut worst = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        worst = worst.max(a.stats().unsent_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = a.stats();
    assert!(
        stats.core.resends > 100,
        "the test must make resends: {stats:?}"
    );
    assert!(
        worst <= bound,
        "unsent bytes grew to {worst} (bound {bound})"
    );
    a.stop(true);
    b.stop(true);
}

/// Observation 5b: sends that do not wait are refused once the queue holds its bound.
#[test]
fn sends_that_do_not_wait_are_bounded() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), false);
    let mut accepted = 0;
    let refused = loop {
        match h.send_no_wait(msg(accepted)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 50_000, "never refused");
    };
    assert!(matches!(refused, Error::QueueFull), "{refused:?}");
    assert_eq!(accepted, TX + MAX_WAITING);
    assert_eq!(h.stats().waiting_sends, MAX_WAITING);
    h.stop(true);
}
