//! `PipeHandler::send_pipelined`: each ticket tells what `send_to_peer` would have returned
//! (the outcome of its own message, in order; the same errors), its timeout bounds the
//! whole send, the sends waiting for a slot are bounded, and a dropped ticket neither
//! blocks nor keeps anything.
//!
//! Real time: bounds are generous (a timeout of 300 ms must end the wait within a second).

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, gone_config, handler_with_raw_peer, wait_until, MARGIN, STEP};
use peerpipe_std::{
    memory_pair, Config, Error, FailReason, Message, MsgId, PendingSend, PipeHandler, MAX_WAITING,
    TX,
};

const SHORT: Duration = Duration::from_millis(300);
/// How late a wait bounded by [`SHORT`] may return on a loaded machine.
const LATE: Duration = Duration::from_millis(700);

fn msg(i: usize) -> Message {
    Message::request("load", (i as u32).to_le_bytes().to_vec()).expect("message")
}

fn long_timeouts() -> Config {
    Config {
        default_request_timeout: Duration::from_secs(20),
        ..config()
    }
}

/// The id and data of every message a server took, in order.
type Seen = Arc<Mutex<Vec<(MsgId, Vec<u8>)>>>;

/// A started pair whose server records the id and data of every message it takes.
fn recording_pair() -> (PipeHandler, PipeHandler, Seen) {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let seen = Arc::new(Mutex::new(Vec::new()));
    server.set_message_cb({
        let seen = seen.clone();
        move |m| seen.lock().unwrap().push((m.id(), m.data().to_vec()))
    });
    (client, server, seen)
}

/// Each ticket returns the id of its own message, in the order sent, with more sends in
/// flight than there are send slots (the rest wait for a slot).
#[test]
fn each_ticket_tells_its_own_messages_outcome_in_order() {
    let (client, server, seen) = recording_pair();
    let count = 2_000;
    let window = TX + 8;
    let mut tickets = VecDeque::new();
    let mut ids = Vec::new();
    for i in 0..count {
        if tickets.len() == window {
            let t: PendingSend = tickets.pop_front().unwrap();
            ids.push(t.wait().expect("delivered"));
        }
        tickets.push_back(client.send_pipelined(msg(i), Some(STEP)).expect("send"));
    }
    ids.extend(tickets.into_iter().map(|t| t.wait().expect("delivered")));
    assert!(wait_until(STEP, || seen.lock().unwrap().len() == count));
    let seen = seen.lock().unwrap();
    for (i, (id, (seen_id, data))) in ids.iter().zip(seen.iter()).enumerate() {
        assert_eq!(id, seen_id, "message {i}");
        assert_eq!(data, &(i as u32).to_le_bytes(), "message {i}");
    }
    client.stop(true);
    server.stop(true);
}

/// `try_outcome` does not block, returns `None` until the outcome comes, then the same
/// outcome every time.
#[test]
fn try_outcome_polls_and_keeps_the_outcome() {
    let (client, server, _seen) = recording_pair();
    let mut t = client.send_pipelined(msg(1), Some(STEP)).expect("send");
    let started = Instant::now();
    let outcome = loop {
        if let Some(o) = t.try_outcome() {
            break o;
        }
        assert!(started.elapsed() < STEP, "no outcome");
        std::thread::yield_now();
    };
    let id = outcome.expect("delivered");
    assert_eq!(t.try_outcome().map(Result::unwrap), Some(id));
    assert_eq!(t.wait().expect("delivered"), id);
    client.stop(true);
    server.stop(true);
}

/// A send the peer never acknowledges fails with `TimedOut` at its timeout, like
/// `send_to_peer`.
#[test]
fn an_unacknowledged_send_times_out() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    let started = Instant::now();
    let t = h.send_pipelined(msg(0), Some(SHORT)).expect("send");
    let r = t.wait();
    let took = started.elapsed();
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    assert!(took >= SHORT && took < SHORT + LATE, "took {took:?}");
    h.stop(true);
}

/// The timeout counts from `send_pipelined`, the wait for a slot included: a send that gets
/// no slot fails with `NoSlot` at its deadline, through `try_outcome` or `wait`, and no
/// longer waits.
#[test]
fn the_timeout_bounds_the_wait_for_a_slot() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    for i in 0..TX {
        h.send_no_wait(msg(i)).expect("fill a slot");
    }
    let started = Instant::now();
    let mut polled = h.send_pipelined(msg(100), Some(SHORT)).expect("send");
    let waited = h.send_pipelined(msg(101), Some(SHORT)).expect("send");
    assert_eq!(h.stats().waiting_sends, 2);
    assert!(
        polled.try_outcome().is_none(),
        "an outcome before the deadline"
    );
    let r = waited.wait();
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Failed(FailReason::NoSlot))), "{r:?}");
    assert!(took >= SHORT && took < SHORT + LATE, "took {took:?}");
    let r = polled.try_outcome();
    assert!(
        matches!(r, Some(Err(Error::Failed(FailReason::NoSlot)))),
        "{r:?}"
    );
    assert_eq!(h.stats().waiting_sends, 0);
    h.stop(true);
}

/// Pipelined sends waiting for a slot count against `MAX_WAITING`: one more is refused with
/// `QueueFull`, and nothing of it is sent.
#[test]
fn pipelined_sends_are_bounded() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), false);
    let mut tickets = Vec::new();
    let refused = loop {
        match h.send_pipelined(msg(tickets.len()), None) {
            Ok(t) => tickets.push(t),
            Err(e) => break e,
        }
        assert!(tickets.len() <= 50_000, "never refused");
    };
    assert!(matches!(refused, Error::QueueFull), "{refused:?}");
    assert_eq!(tickets.len(), TX + MAX_WAITING);
    assert_eq!(h.stats().waiting_sends, MAX_WAITING);
    // They share the bound with `send_no_wait`.
    assert!(matches!(h.send_no_wait(msg(0)), Err(Error::QueueFull)));
    h.stop(true);
}

/// A dropped ticket withdraws nothing (the message is still delivered) and blocks nothing;
/// dropped tickets of sends waiting for a slot leave the queue once their deadline passed.
#[test]
fn dropping_a_ticket_blocks_nothing_and_keeps_nothing() {
    let (client, server, seen) = recording_pair();
    let started = Instant::now();
    for i in 0..100 {
        drop(client.send_pipelined(msg(i), Some(STEP)).expect("send"));
    }
    assert!(started.elapsed() < STEP);
    assert!(wait_until(STEP, || seen.lock().unwrap().len() == 100));
    client
        .send_to_peer(msg(100), Some(STEP), None)
        .expect("a later send");
    client.stop(true);
    server.stop(true);

    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    for i in 0..TX + 10 {
        drop(h.send_pipelined(msg(i), Some(SHORT)).expect("send"));
    }
    assert_eq!(h.stats().waiting_sends, 10);
    assert!(
        wait_until(SHORT + LATE, || h.stats().waiting_sends == 0),
        "dropped sends still wait"
    );
    // The slots came free: a new send gets one (and times out, never acknowledged).
    let r = h.send_pipelined(msg(0), Some(SHORT)).expect("send").wait();
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    h.stop(true);
}

/// `stop` while sends are in flight and waiting for a slot: every ticket tells
/// `Error::Stopped`, at once, as `send_to_peer` does.
#[test]
fn stop_fails_every_pending_send_with_stopped() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    let tickets: Vec<PendingSend> = (0..TX + 5)
        .map(|i| h.send_pipelined(msg(i), None).expect("send"))
        .collect();
    let blocked = std::thread::spawn({
        let h = h.clone();
        move || h.send_to_peer(msg(99), None, None)
    });
    assert!(wait_until(STEP, || h.stats().waiting_sends == 6));
    let started = Instant::now();
    h.stop(true);
    for t in tickets {
        let r = t.wait();
        assert!(matches!(r, Err(Error::Stopped)), "{r:?}");
    }
    let r = blocked.join().unwrap();
    assert!(matches!(r, Err(Error::Stopped)), "send_to_peer: {r:?}");
    assert!(started.elapsed() < STEP);
    assert!(matches!(
        h.send_pipelined(msg(0), None),
        Err(Error::Stopped)
    ));
}

/// The peer goes silent: the sends in flight fail as `send_to_peer`'s does, with the peer
/// gone, before their own timeout.
#[test]
fn peer_gone_fails_pending_sends_like_send_to_peer() {
    let cfg = Config {
        default_request_timeout: Duration::from_secs(20),
        ..gone_config()
    };
    let (h, _peer) = handler_with_raw_peer(cfg, true);
    let tickets: Vec<PendingSend> = (0..8)
        .map(|i| h.send_pipelined(msg(i), None).expect("send"))
        .collect();
    let blocked = std::thread::spawn({
        let h = h.clone();
        move || h.send_to_peer(msg(99), None, None)
    });
    let started = Instant::now();
    let expected = blocked.join().unwrap();
    assert!(
        matches!(expected, Err(Error::Failed(FailReason::PeerGone))),
        "send_to_peer: {expected:?}"
    );
    for t in tickets {
        let r = t.wait();
        assert_eq!(format!("{r:?}"), format!("{expected:?}"));
    }
    assert!(started.elapsed() < common::GONE_AFTER + MARGIN + STEP);
    h.stop(true);
}

/// From a callback `send_pipelined` works, and `wait` refuses to wait for itself.
#[test]
fn a_callback_may_send_pipelined_but_not_wait() {
    let (a, b) = memory_pair();
    let (client, server) = common::start_pair(a, b, config());
    let result = Arc::new(Mutex::new(None));
    server.set_message_cb({
        let (server, result) = (server.clone(), result.clone());
        move |m| {
            let t = server.send_pipelined(m.reply_to(b"ok".to_vec()).unwrap(), None);
            *result.lock().unwrap() = Some(t.map(PendingSend::wait));
        }
    });
    let reply = client.request(msg(0), Some(STEP), None).expect("reply");
    assert_eq!(reply.data(), b"ok");
    let r = result.lock().unwrap().take().expect("the callback ran");
    assert!(matches!(r, Ok(Err(Error::InCallback))), "{r:?}");
    client.stop(true);
    server.stop(true);
}

/// A ticket may move to another thread: the thread that waits on it is the one woken.
#[test]
fn a_ticket_waited_on_by_another_thread_gets_its_outcome() {
    let (h, _peer) = handler_with_raw_peer(long_timeouts(), true);
    let t = h.send_pipelined(msg(0), Some(SHORT)).expect("send");
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || tx.send(t.wait()));
    // Without the hand-over of its wake-up, the waiter sleeps on after the outcome came.
    let r = rx
        .recv_timeout(SHORT + LATE)
        .expect("the waiting thread was never woken");
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    h.stop(true);
}

/// A send whose timeout is shorter than the I/O thread's longest sleep (here 2 s: resends,
/// heartbeats and the default timeout all slower) wakes it: the send fails at its own
/// deadline, not when the I/O thread next wakes by itself.
#[test]
fn a_short_timeout_wakes_a_sleeping_io_thread() {
    let slow_timers = Config {
        heartbeat_interval: Duration::from_secs(5),
        heartbeat_timeout: Duration::from_secs(30),
        resend_interval: Some(Duration::from_secs(2)),
        default_request_timeout: Duration::from_secs(20),
        ..config()
    };
    let (h, _peer) = handler_with_raw_peer(slow_timers, true);
    // Let the I/O thread go to sleep.
    std::thread::sleep(Duration::from_millis(50));
    for t in [SHORT, SHORT / 2] {
        let started = Instant::now();
        let r = h.send_pipelined(msg(0), Some(t)).expect("send").wait();
        let took = started.elapsed();
        assert!(
            matches!(r, Err(Error::Failed(FailReason::TimedOut))),
            "{r:?}"
        );
        assert!(took >= t && took < t + LATE, "took {took:?}");
    }
    h.stop(true);
}
