//! Start, stop, END, ABORT, restart: the handler's life and the conversation's.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use peerpipe_std::{
    memory_pair, CloseReason, Config, ConfigError, Error, FailReason, Message, PeerState,
    PipeHandler, Status,
};

fn msg(topic: &str, data: &[u8]) -> Message {
    Message::request(topic, data.to_vec()).unwrap()
}

#[test]
fn invalid_config_is_refused() {
    let ok = config();
    let zero = Duration::ZERO;
    let cases = [
        (
            Config {
                heartbeat_interval: zero,
                ..ok
            },
            ConfigError::ZeroHeartbeatInterval,
        ),
        (
            Config {
                heartbeat_timeout: ok.heartbeat_interval,
                ..ok
            },
            ConfigError::HeartbeatTimeoutNotAboveInterval,
        ),
        (
            Config {
                resend_interval: Some(zero),
                ..ok
            },
            ConfigError::ZeroResendInterval,
        ),
        (
            Config {
                default_request_timeout: zero,
                ..ok
            },
            ConfigError::ZeroRequestTimeout,
        ),
    ];
    for (config, want) in cases {
        let (a, _b) = memory_pair();
        match PipeHandler::new(a, config) {
            Err(Error::Config(e)) => assert_eq!(e, want),
            other => panic!("{config:?}: expected {want:?}, got {:?}", other.err()),
        }
    }
    // A zero heartbeat_timeout turns the GONE check off: valid.
    let (a, _b) = memory_pair();
    assert!(PipeHandler::new(
        a,
        Config {
            heartbeat_timeout: zero,
            ..ok
        }
    )
    .is_ok());
}

/// NotStarted before start, AlreadyStarted on a second start, Stopped after stop; nothing
/// to receive once stopped. None of it takes long, dropping an unstarted handler included.
#[test]
fn start_after_stop_says_stopped() {
    let (a, _b) = memory_pair();
    let a = PipeHandler::new(a, config()).unwrap();
    a.stop(true);
    assert!(matches!(a.start(), Err(Error::Stopped)));
}

#[test]
fn calls_out_of_order_are_refused() {
    let t0 = Instant::now();
    let (a, b) = memory_pair();
    let a = PipeHandler::new(a, config()).unwrap();
    let b = PipeHandler::new(b, config()).unwrap();
    assert!(matches!(
        a.send_to_peer(msg("x", b""), None, None),
        Err(Error::NotStarted)
    ));
    assert!(matches!(
        a.send_no_wait(msg("x", b"")),
        Err(Error::NotStarted)
    ));
    assert!(matches!(
        a.request(msg("x", b""), None, None),
        Err(Error::NotStarted)
    ));
    assert!(matches!(
        a.notify_end(b"x".to_vec()),
        Err(Error::NotStarted)
    ));
    assert!(matches!(
        a.notify_abort(b"x".to_vec()),
        Err(Error::NotStarted)
    ));
    assert!(a.get_next().is_none());
    assert_eq!(a.peer_state(), PeerState::NotSeen);

    a.start().unwrap();
    b.start().unwrap();
    assert!(matches!(a.start(), Err(Error::AlreadyStarted)));
    a.send_to_peer(msg("x", b"1"), Some(STEP), None).unwrap();
    assert_eq!(next_message(&b, STEP).data(), b"1");

    a.stop(true);
    assert!(matches!(
        a.send_to_peer(msg("x", b""), None, None),
        Err(Error::Stopped)
    ));
    assert!(matches!(a.send_no_wait(msg("x", b"")), Err(Error::Stopped)));
    assert!(matches!(
        a.request(msg("x", b""), None, None),
        Err(Error::Stopped)
    ));
    assert!(matches!(a.notify_end(b"x".to_vec()), Err(Error::Stopped)));
    // Started and stopped: start again says stopped, not "already started".
    assert!(matches!(a.start(), Err(Error::Stopped)));
    assert!(a.get_next().is_none());
    assert!(a.recv().is_none());
    assert!(a.recv_timeout(Duration::from_millis(50)).is_none());
    a.stop(true); // twice is fine
    b.stop(true);

    // A handler that never started stops and drops at once.
    let (c, _d) = memory_pair();
    let c = PipeHandler::new(c, config()).unwrap();
    let t1 = Instant::now();
    c.stop(false);
    drop(c);
    let (e, _f) = memory_pair();
    drop(PipeHandler::new(e, config()).unwrap());
    assert!(
        t1.elapsed() < Duration::from_secs(1),
        "stopping and dropping unstarted handlers took {:?}",
        t1.elapsed()
    );
    assert!(t0.elapsed() < STEP, "took {:?}", t0.elapsed());
}

#[derive(Clone, Copy, Debug)]
enum Close {
    End,
    Abort,
}

impl Close {
    fn send(self, h: &PipeHandler, data: &[u8]) -> Result<(), Error> {
        match self {
            Close::End => h.notify_end(data.to_vec()),
            Close::Abort => h.notify_abort(data.to_vec()),
        }
    }

    fn status(self, data: &[u8]) -> Status {
        match self {
            Close::End => Status::End(data.to_vec()),
            Close::Abort => Status::Abort(data.to_vec()),
        }
    }

    fn peer_state(self) -> PeerState {
        match self {
            Close::End => PeerState::Ended,
            Close::Abort => PeerState::Aborted,
        }
    }

    fn fail(self) -> FailReason {
        match self {
            Close::End => FailReason::PeerEnded,
            Close::Abort => FailReason::PeerAborted,
        }
    }

    fn peer_closed(self) -> CloseReason {
        match self {
            Close::End => CloseReason::PeerEnded,
            Close::Abort => CloseReason::PeerAborted,
        }
    }

    fn local_closed(self) -> CloseReason {
        match self {
            Close::End => CloseReason::LocalEnd,
            Close::Abort => CloseReason::LocalAbort,
        }
    }
}

/// Fills `to`'s receive room from `from` (nobody reads at `to`): blocking sends with a short
/// timeout until one times out. Returns how many were acknowledged.
fn fill(from: &PipeHandler, topic: &str) -> usize {
    for n in 0.. {
        match from.send_to_peer(msg(topic, &[1; 16]), Some(Duration::from_millis(300)), None) {
            Ok(_) => {}
            Err(Error::Failed(FailReason::TimedOut)) => return n,
            Err(e) => panic!("filling: {e}"),
        }
        assert!(n < 1000, "the receiver never stopped accepting");
    }
    unreachable!()
}

/// END or ABORT from `closer` reaches `other` through its queue with its data; what
/// `other` was waiting for fails with the peer's reason: a request the closer read but did
/// not answer, and a send the closer had no room for (the closer was not reading); later
/// sends on both sides are refused with Closed.
fn close_via_queue(kind: Close, closer: &PipeHandler, other: &PipeHandler) {
    let asking = {
        let other = other.clone();
        std::thread::spawn(move || {
            other.request(msg("q", b""), Some(Duration::from_secs(20)), None)
        })
    };
    assert_eq!(next_message(closer, STEP).topic(), "q");
    fill(other, "filler");
    let pending = {
        let other = other.clone();
        std::thread::spawn(move || {
            other.send_to_peer(msg("stuck", b""), Some(Duration::from_secs(20)), None)
        })
    };
    // No event says that the stuck send reached other's I/O thread: give it a moment. Should
    // it come later, it is refused with Closed instead, which is right too.
    std::thread::sleep(Duration::from_millis(100));
    kind.send(closer, b"the end").unwrap();
    assert_eq!(next_status(other, STEP), kind.status(b"the end"));
    assert_eq!(other.peer_state(), kind.peer_state());
    match asking.join().unwrap() {
        Err(Error::Failed(r)) => assert_eq!(r, kind.fail()),
        r => panic!("{kind:?}: the unanswered request gave {r:?}"),
    }
    match pending.join().unwrap() {
        Err(Error::Failed(r)) => assert_eq!(r, kind.fail()),
        Err(Error::Closed(r)) => assert_eq!(r, kind.peer_closed()),
        r => panic!("{kind:?}: the pending send gave {r:?}"),
    }
    match other.send_to_peer(msg("late", b""), Some(STEP), None) {
        Err(Error::Closed(r)) => assert_eq!(r, kind.peer_closed()),
        r => panic!("{kind:?}: a later send gave {r:?}"),
    }
    match closer.send_to_peer(msg("late", b""), Some(STEP), None) {
        Err(Error::Closed(r)) => assert_eq!(r, kind.local_closed()),
        r => panic!("{kind:?}: the closer's later send gave {r:?}"),
    }
    assert!(matches!(kind.send(closer, b"again"), Err(Error::Closed(_))));
    // Nothing follows END/ABORT in the queue.
    assert!(other.recv_timeout(Duration::from_millis(200)).is_none());
}

#[test]
fn end_and_abort_both_ways_via_queue() {
    for kind in [Close::End, Close::Abort] {
        for a_closes in [true, false] {
            let (a, b) = memory_pair();
            let (a, b) = start_pair(a, b, config());
            if a_closes {
                close_via_queue(kind, &a, &b);
            } else {
                close_via_queue(kind, &b, &a);
            }
            a.stop(true);
            b.stop(true);
        }
    }
}

#[test]
fn end_and_abort_both_ways_via_status_callback() {
    for kind in [Close::End, Close::Abort] {
        for a_closes in [true, false] {
            let (a, b) = memory_pair();
            let (a, b) = start_pair(a, b, config());
            let (closer, other) = if a_closes { (&a, &b) } else { (&b, &a) };
            let (tx, rx) = crossbeam_channel::unbounded();
            other.set_status_cb(move |s| tx.send(s).unwrap());
            closer
                .send_to_peer(msg("before", b"1"), Some(STEP), None)
                .unwrap();
            kind.send(closer, &[0, 1, 2]).unwrap();
            assert_eq!(rx.recv_timeout(STEP).unwrap(), kind.status(&[0, 1, 2]));
            // The message sent before END/ABORT came first, through the queue; the status
            // went only to the callback.
            assert_eq!(next_message(other, STEP).data(), b"1");
            assert!(other.get_next().is_none());
            assert!(matches!(
                other.send_to_peer(msg("late", b""), Some(STEP), None),
                Err(Error::Closed(_))
            ));
            a.stop(true);
            b.stop(true);
            assert!(rx.try_recv().is_err(), "no status after the close");
        }
    }
}

/// A peer handler stopped without closing its pipe, replaced by a new handler (a new
/// session) on the same link: the survivor reports the restart and the conversation goes on.
#[test]
fn restarted_peer_is_reported_and_the_conversation_goes_on() {
    let (wa, wb) = wire_pair();
    let (a1, b) = start_pair(wa.clone(), wb, config());
    exercise(&a1, &b);
    assert!(b.get_next().is_none());

    a1.stop(false);
    let a2 = PipeHandler::new(wa, config()).unwrap();
    assert_ne!(a2.session(), a1.session());
    a2.start().unwrap();
    assert_eq!(next_status(&b, STEP), Status::PeerRestarted);
    assert_eq!(b.peer_state(), PeerState::Up);
    exercise(&a2, &b);
    // The newcomer met b for the first time: no restart on its side; and nothing more at b.
    assert!(a2.get_next().is_none());
    assert!(b.get_next().is_none());
    a2.stop(true);
    b.stop(true);
}

/// Callbacks set, the peer sending all the time: once `stop` returns, no callback runs
/// and nothing is received, whether the pipe is closed or not.
#[test]
fn no_callback_after_stop() {
    for close in [true, false] {
        let (a, b) = memory_pair();
        let (a, b) = start_pair(a, b, config());
        let stopped = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let late = Arc::new(Mutex::new(Vec::new()));
        {
            let (stopped, calls, late) = (stopped.clone(), calls.clone(), late.clone());
            a.set_message_cb(move |m| {
                calls.fetch_add(1, Ordering::SeqCst);
                if stopped.load(Ordering::SeqCst) {
                    late.lock().unwrap().push(format!("message {}", m.topic()));
                }
            });
        }
        {
            let (stopped, late) = (stopped.clone(), late.clone());
            a.set_status_cb(move |s| {
                if stopped.load(Ordering::SeqCst) {
                    late.lock().unwrap().push(format!("status {s:?}"));
                }
            });
        }
        let sending = Arc::new(AtomicBool::new(true));
        let sender = {
            let (b, sending) = (b.clone(), sending.clone());
            std::thread::spawn(move || {
                let mut n = 0u32;
                while sending.load(Ordering::SeqCst) {
                    let _ = b.send_to_peer(
                        msg("flood", &n.to_le_bytes()),
                        Some(Duration::from_millis(200)),
                        None,
                    );
                    n += 1;
                }
            })
        };
        assert!(wait_until(STEP, || calls.load(Ordering::SeqCst) >= 50));
        a.stop(close);
        stopped.store(true, Ordering::SeqCst);
        let at_stop = calls.load(Ordering::SeqCst);
        // Let the peer go on a while: it either keeps sending or learns that a is gone.
        let keep = Instant::now() + Duration::from_millis(300);
        while Instant::now() < keep && !sender.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        sending.store(false, Ordering::SeqCst);
        sender.join().unwrap();
        assert!(
            late.lock().unwrap().is_empty(),
            "{:?}",
            late.lock().unwrap()
        );
        assert_eq!(calls.load(Ordering::SeqCst), at_stop);
        assert!(a.get_next().is_none());
        assert!(a.recv().is_none());
        assert!(a.recv_timeout(Duration::from_millis(10)).is_none());
        b.stop(true);
    }
}

/// The queue, the peer sending all the time, a thread blocked in `recv`: `stop` wakes it
/// with `None`, and nothing is received afterwards, though items were waiting.
#[test]
fn nothing_received_after_stop() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (b, sending) = (b.clone(), sending.clone());
        std::thread::spawn(move || {
            while sending.load(Ordering::SeqCst) {
                let _ = b.send_no_wait(msg("flood", b"x"));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    for _ in 0..20 {
        assert_eq!(next_message(&a, STEP).topic(), "flood");
    }
    // Let the queue fill up behind us.
    assert!(wait_until(STEP, || a.get_next().is_some()));
    sending.store(false, Ordering::SeqCst);
    sender.join().unwrap();

    let (c, d) = memory_pair();
    let (c, _d) = start_pair(c, d, config());
    let blocked = {
        let c = c.clone();
        std::thread::spawn(move || c.recv())
    };
    let blocked_timeout = {
        let c = c.clone();
        std::thread::spawn(move || c.recv_timeout(Duration::from_secs(30)))
    };
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    a.stop(false);
    c.stop(false);
    assert!(blocked.join().unwrap().is_none());
    assert!(blocked_timeout.join().unwrap().is_none());
    assert!(t0.elapsed() < STEP);
    assert!(a.get_next().is_none());
    assert!(a.recv().is_none());
    assert!(a.recv_timeout(Duration::from_millis(10)).is_none());
    b.stop(true);
}

/// Stopping from inside a callback (e.g. on the peer's END) neither deadlocks nor panics,
/// and no callback runs after it.
#[test]
fn stop_from_a_callback() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    let after = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    {
        let (me, stopped, after) = (a.clone(), stopped.clone(), after.clone());
        a.set_status_cb(move |s| {
            if stopped.load(Ordering::SeqCst) {
                after.fetch_add(1, Ordering::SeqCst);
            }
            if matches!(s, Status::End(_)) {
                me.stop(true);
                stopped.store(true, Ordering::SeqCst);
            }
        });
    }
    {
        let (stopped, after) = (stopped.clone(), after.clone());
        a.set_message_cb(move |_| {
            if stopped.load(Ordering::SeqCst) {
                after.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let t0 = Instant::now();
    b.notify_end(b"bye".to_vec()).unwrap();
    assert!(wait_until(STEP, || stopped.load(Ordering::SeqCst)));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "stop in a callback took {:?}",
        t0.elapsed()
    );
    assert!(matches!(
        a.send_to_peer(msg("x", b""), None, None),
        Err(Error::Stopped)
    ));
    // The I/O thread finishes: the peer sees the pipe closed.
    match next_status(&b, STEP) {
        Status::Gone { .. } => {}
        s => panic!("expected GONE at b, got {s:?}"),
    }
    a.stop(true);
    assert_eq!(after.load(Ordering::SeqCst), 0);
    b.stop(true);
}

/// `stop` releases the callbacks, and with them any handle they hold (a callback that
/// answers through a clone of its own handler would otherwise keep it alive forever).
#[test]
fn stop_releases_the_callbacks() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    let token = Arc::new(());
    {
        let (me, token) = (a.clone(), token.clone());
        a.set_message_cb(move |m| {
            let _ = &token;
            let _ = me.send_no_wait(m.reply_to(vec![]).unwrap());
        });
    }
    {
        let token = token.clone();
        a.set_status_cb(move |_| {
            let _ = &token;
        });
    }
    b.request(msg("q", b""), Some(STEP), None).unwrap();
    assert_eq!(Arc::strong_count(&token), 3);
    a.stop(true);
    assert_eq!(Arc::strong_count(&token), 1);
    b.stop(true);
}
