//! Two async drivers against each other over an in-memory async pipe, in virtual time: a
//! small executor runs each runner and the test's body as tasks of their own, polls a task
//! only when its waker was called (a missing wake-up stalls the test) and, when no task can
//! move, jumps the clock to the earliest armed timer and wakes it. Deterministic; no thread,
//! no real time.

use core::convert::Infallible;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::task::{Context, Poll, Waker};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use peerpipe_core::wire::Item;
use peerpipe_core::{
    Config, Duration, Endpoint, Error, Event, FailReason, GoneReason, Instant, Message, MsgId,
    NoSource, PartKind, Source,
};

use super::{new, Clock, Handle, RequestError, State};

/// Virtual time: `at` futures complete once the executor moved `now` past them.
#[derive(Default)]
struct MockClock {
    now: Cell<u64>,
    /// The armed timers: deadline and the waker of the task waiting for it.
    timers: RefCell<Vec<(u64, Waker)>>,
}

impl Clock for MockClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.now.get())
    }

    fn at(&self, deadline: Instant) -> impl Future<Output = ()> {
        poll_fn(move |cx| {
            let d = deadline.as_micros();
            if self.now.get() >= d {
                return Poll::Ready(());
            }
            self.timers.borrow_mut().push((d, cx.waker().clone()));
            Poll::Pending
        })
    }
}

impl MockClock {
    /// Waits `millis` of virtual time.
    async fn sleep(&self, millis: u64) {
        self.at(self.now() + Duration::from_millis(millis)).await
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A task that never ends (a runner).
type Background<'a> = Pin<&'a mut dyn Future<Output = Infallible>>;

/// Runs `main` to completion in virtual time (at most one virtual hour), with the
/// `background` tasks beside it. Each task is polled only after its waker was called.
fn block_on<F: Future>(clock: &MockClock, main: F, background: &mut [Background<'_>]) -> F::Output {
    let flags: Vec<Arc<Flag>> = (0..=background.len())
        .map(|_| Arc::new(Flag(AtomicBool::new(true))))
        .collect();
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut main = pin!(main);
    loop {
        let mut ran = false;
        if flags[0].0.swap(false, Ordering::SeqCst) {
            ran = true;
            if let Poll::Ready(out) = main.as_mut().poll(&mut Context::from_waker(&wakers[0])) {
                return out;
            }
        }
        for (task, (flag, waker)) in background.iter_mut().zip(flags.iter().zip(&wakers).skip(1)) {
            if flag.0.swap(false, Ordering::SeqCst) {
                ran = true;
                let _ = task.as_mut().poll(&mut Context::from_waker(waker));
            }
        }
        if ran {
            continue;
        }
        // Nothing can move: time jumps to the earliest timer, which is woken.
        let mut timers = clock.timers.borrow_mut();
        let next = timers
            .iter()
            .map(|(d, _)| *d)
            .min()
            .expect("stalled: no task was woken and no timer is armed");
        assert!(next < 3_600_000_000, "still running after a virtual hour");
        clock.now.set(next);
        timers.retain(|(d, waker)| {
            if *d <= next {
                waker.wake_by_ref();
            }
            *d > next
        });
    }
}

/// One direction of an in-memory byte pipe with room for `cap` bytes.
#[derive(Default)]
struct Lane {
    bytes: VecDeque<u8>,
    cap: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The transmitting end was dropped: reads return 0 once the bytes are taken.
    closed: bool,
}

impl Drop for PipeTx {
    fn drop(&mut self) {
        let mut lane = self.0.borrow_mut();
        lane.closed = true;
        if let Some(w) = lane.reader.take() {
            w.wake();
        }
    }
}

struct PipeRx(Rc<RefCell<Lane>>);
struct PipeTx(Rc<RefCell<Lane>>);

fn pipe(cap: usize) -> (PipeTx, PipeRx) {
    let lane = Rc::new(RefCell::new(Lane {
        cap,
        ..Lane::default()
    }));
    (PipeTx(lane.clone()), PipeRx(lane))
}

impl embedded_io_async::ErrorType for PipeRx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::ErrorType for PipeTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for PipeRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        poll_fn(|cx| {
            let mut lane = self.0.borrow_mut();
            if lane.bytes.is_empty() {
                if lane.closed {
                    return Poll::Ready(Ok(0));
                }
                lane.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(lane.bytes.len());
            for (dst, src) in buf.iter_mut().zip(lane.bytes.drain(..n)) {
                *dst = src;
            }
            if let Some(w) = lane.writer.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl embedded_io_async::Write for PipeTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        poll_fn(|cx| {
            let mut lane = self.0.borrow_mut();
            let room = lane.cap - lane.bytes.len();
            if room == 0 {
                lane.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(room);
            lane.bytes.extend(&buf[..n]);
            if let Some(w) = lane.reader.take() {
                w.wake();
            }
            Poll::Ready(Ok(n))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A port whose transmitter takes nothing, ever, and whose receiver never receives.
struct Dead;

impl embedded_io_async::ErrorType for Dead {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Dead {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }
}

impl embedded_io_async::Write for Dead {
    async fn write(&mut self, _: &[u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        core::future::pending().await
    }
}

/// A port half that fails its first call, then is `inner`.
struct FailsOnce<P> {
    inner: P,
    failed: bool,
}

#[derive(Debug)]
struct PortError;

impl core::fmt::Display for PortError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("port error")
    }
}

impl core::error::Error for PortError {}

impl embedded_io_async::Error for PortError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

impl<P> embedded_io_async::ErrorType for FailsOnce<P> {
    type Error = PortError;
}

impl<P> FailsOnce<P> {
    fn new(inner: P) -> Self {
        FailsOnce {
            inner,
            failed: false,
        }
    }

    fn fail(&mut self) -> Result<(), PortError> {
        if self.failed {
            Ok(())
        } else {
            self.failed = true;
            Err(PortError)
        }
    }
}

impl<P: embedded_io_async::Read> embedded_io_async::Read for FailsOnce<P> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PortError> {
        self.fail()?;
        Ok(self.inner.read(buf).await.unwrap_or(0))
    }
}

impl<P: embedded_io_async::Write> embedded_io_async::Write for FailsOnce<P> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, PortError> {
        self.fail()?;
        Ok(self.inner.write(buf).await.unwrap_or(0))
    }

    async fn flush(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

type H<'a> = Handle<'a, NoopRawMutex, MockClock>;

fn config() -> Config {
    Config {
        heartbeat_interval: core::time::Duration::from_millis(100),
        heartbeat_timeout: core::time::Duration::from_millis(500),
        resend_interval: Some(core::time::Duration::from_millis(50)),
        // Resends until the send's timeout (a receiver that holds the sender back for long
        // must not make it give up).
        max_resends: None,
        default_request_timeout: core::time::Duration::from_millis(2_000),
        max_message: 1 << 20,
    }
}

fn endpoint(session: u32) -> Endpoint {
    Endpoint::new(config(), session, Instant::ZERO).unwrap()
}

/// Byte `i` of the streamed test messages.
fn byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// Makes the bytes of every sourced message on the fly: byte `i` is [`byte`]`(i)`.
struct Counting {
    buf: [u8; 128],
    asked: u64,
}

impl Source for Counting {
    fn read(&mut self, _: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let out = self.buf.get_mut(..len)?;
        for (i, b) in out.iter_mut().enumerate() {
            *b = byte(offset + i as u64);
        }
        self.asked += len as u64;
        Some(out)
    }
}

/// Drivers A and B over two pipes of 64 bytes each way; B's runner reads sourced messages
/// from `source_b`. Runs `body` until it returns (the runners are dropped then).
fn pair<T>(
    source_b: &mut dyn Source,
    body: impl for<'a> AsyncFnOnce(H<'a>, H<'a>, &'a MockClock) -> T,
) -> T {
    let clock = MockClock::default();
    let (a_tx, b_rx) = pipe(64);
    let (b_tx, a_rx) = pipe(64);
    let sa: State<NoopRawMutex> = State::new(endpoint(1));
    let sb: State<NoopRawMutex> = State::new(endpoint(2));
    let (mut ra, ha) = new(&sa, &clock);
    let (mut rb, hb) = new(&sb, &clock);
    let mut none = NoSource;
    let a = pin!(ra.run(a_rx, a_tx, &mut none));
    let b = pin!(rb.run(b_rx, b_tx, source_b));
    block_on(&clock, body(ha, hb, &clock), &mut [a, b])
}

/// Answers every request in one frame with its data reversed, under the same topic.
async fn reverse_server(h: H<'_>) {
    loop {
        if let Event::Message(m) = h.receive().await {
            if m.is_request() {
                let mut data = m.data().to_vec();
                data.reverse();
                h.send(m.reply_to(&data).unwrap(), None).unwrap();
            }
        }
    }
}

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

#[test]
fn a_large_message_streams_both_ways() {
    const LONG: u64 = 20_000;
    let mut source = Counting {
        buf: [0; 128],
        asked: 0,
    };
    pair(&mut source, async |a, b, _| {
        // B answers `gen` with a long reply from its runner's source; A's request is told the
        // reply comes in parts, which arrive through `receive`.
        let server = async {
            loop {
                match b.receive().await {
                    Event::Message(m) if m.topic() == "gen" => {
                        let item = Item::Reply {
                            topic: "gen",
                            req_id: m.id().0,
                        };
                        b.send_from(item, LONG, None).unwrap();
                    }
                    Event::Part(part) if part.kind() == PartKind::Request => {
                        for (k, &x) in part.data().iter().enumerate() {
                            assert_eq!(x, byte(part.offset() + k as u64));
                        }
                        if part.is_last() {
                            let total = part.total().to_le_bytes();
                            b.send(Message::reply("big", &total, part.id()).unwrap(), None)
                                .unwrap();
                        }
                    }
                    _ => {}
                }
            }
        };
        let client = async {
            let id = match a.request(Message::request("gen", b"").unwrap(), None).await {
                Err(RequestError::ReplyInParts(id)) => id,
                other => panic!("{other:?}"),
            };
            let mut next = 0u64;
            while next < LONG {
                match a.receive().await {
                    Event::Part(part) => {
                        assert_eq!(part.kind(), PartKind::Reply { req_id: id });
                        assert_eq!((part.offset(), part.total()), (next, LONG));
                        for (k, &x) in part.data().iter().enumerate() {
                            assert_eq!(x, byte(next + k as u64));
                        }
                        next += part.data().len() as u64;
                        assert_eq!(part.is_last(), next == LONG);
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        select(client, server).await;
    });
    assert!(
        source.asked >= LONG,
        "every byte came from the source ({})",
        source.asked
    );
}

#[test]
fn a_large_message_from_a_handle_streams_to_the_peer() {
    const LONG: u64 = 30_000;
    let clock = MockClock::default();
    let (a_tx, b_rx) = pipe(64);
    let (b_tx, a_rx) = pipe(64);
    let sa: State<NoopRawMutex> = State::new(endpoint(1));
    let sb: State<NoopRawMutex> = State::new(endpoint(2));
    let (mut ra, a) = new(&sa, &clock);
    let (mut rb, b) = new(&sb, &clock);
    let mut source = Counting {
        buf: [0; 128],
        asked: 0,
    };
    let mut none = NoSource;
    let test = async {
        let id = a
            .send_from(Item::Request { topic: "big" }, LONG, None)
            .unwrap();
        let mut next = 0;
        loop {
            match b.receive().await {
                Event::Part(part) => {
                    assert_eq!(part.id(), id);
                    assert_eq!(part.offset(), next);
                    for (k, &x) in part.data().iter().enumerate() {
                        assert_eq!(x, byte(next + k as u64));
                    }
                    next += part.data().len() as u64;
                    if part.is_last() {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(next, LONG);
    };
    {
        let a = pin!(ra.run(a_rx, a_tx, &mut source));
        let b = pin!(rb.run(b_rx, b_tx, &mut none));
        block_on(&clock, test, &mut [a, b]);
    }
    assert!(source.asked >= LONG);
}

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
