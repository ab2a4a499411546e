//! The engine of a handler: the endpoint and everything around it behind one lock.
//!
//! Two kinds of threads work it, so that a message crosses as few threads as possible:
//!
//! - **The application's threads send themselves**: under the lock they give the message to
//!   the endpoint, encode the frames that are due and write them to the link (sockets and
//!   pipes are non-blocking: what does not fit is left for the I/O thread). No hand-off to
//!   another thread on the way out.
//! - **The I/O thread** waits for input (polling a socket or pipe itself, or receiving from a
//!   channel), the endpoint's next deadline, or a wake-up; it feeds the endpoint, settles
//!   senders, hands replies to the requesters waiting for them and runs the callbacks (with
//!   the lock released: a callback may send), then writes what became due: the ACK of a
//!   request leaves in the same write as a reply sent from the message callback.
//!
//! The I/O thread sleeps until the endpoint's next deadline, but at most `wake_period` (the
//! shortest of the resend interval, the heartbeat interval and the default timeout): a send
//! then needs no wake-up for its own resend deadline, which is always later. A sending thread
//! wakes the I/O thread only when it made a deadline earlier than the one slept toward, left
//! bytes a non-blocking write could not take, or lost the link.
//!
//! Wake-ups are what a round trip costs on a small virtual machine (an inter-processor
//! interrupt each, tens of microseconds when the other CPU is idle), so the design avoids
//! them: the I/O thread polls its link for [`POLL`] before it sleeps, blocked callers poll
//! their result (see `signal.rs`), replies and outcomes are handed over after the lock is
//! released, and the ACK of a reply is held back for the requester's next send to carry
//! ([`ACK_HOLD`]). None of this changes the wire protocol or the endpoint: it decides which
//! thread writes what the endpoint has due and, for a held ACK, up to 200 µs later.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use peerpipe_core::{
    Config, Duration, Event, FailReason, GoneReason, Instant, MsgId, Outcome, PeerState,
};

use crate::signal::Promise;
use crate::transport::{Chunk, FdRead, FdWrite, Link, LinkIo, Transport};
use crate::{CoreEndpoint, Error, Item, Message, Status, RX};

/// An application callback taking items of type `T`.
type CallbackFn<T> = Box<dyn FnMut(T) + Send>;

/// An application callback for items of one kind (messages or statuses), and whether one
/// is set (read on every dispatch without taking the lock).
struct Callback<T> {
    cb: Mutex<Option<CallbackFn<T>>>,
    set: AtomicBool,
}

impl<T> Callback<T> {
    const fn new() -> Self {
        Callback {
            cb: Mutex::new(None),
            set: AtomicBool::new(false),
        }
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sets or clears the callback; the old one is dropped outside the lock.
    fn replace(&self, cb: Option<CallbackFn<T>>) {
        let set = cb.is_some();
        let old = self
            .cb
            .lock()
            .map(|mut slot| std::mem::replace(&mut *slot, cb))
            .ok()
            .flatten();
        self.set.store(set, Ordering::SeqCst);
        drop(old);
    }

    /// Gives `value` to the callback if one is set; otherwise hands it back.
    fn call(&self, value: T) -> Option<T> {
        match self.cb.lock().ok().as_deref_mut().and_then(Option::as_mut) {
            Some(cb) => {
                cb(value);
                None
            }
            None => Some(value),
        }
    }
}
pub(crate) type Done = Promise<Result<MsgId, Error>>;
pub(crate) type ReplyTo = Promise<Result<Message, Error>>;

/// How long the I/O thread holds back the ACK of a reply it handed to a waiting requester,
/// for the requester's next send to carry it. The peer learns that its reply was delivered
/// at most this much later; a requester that sends again within it saves the peer a wake-up
/// and a separate write per round trip.
const ACK_HOLD: StdDuration = StdDuration::from_micros(200);
/// How long the I/O thread polls its link (without sleeping, yielding its CPU to any other
/// runnable thread between polls) before it sleeps. A sleeping thread costs a wake-up (an
/// inter-processor interrupt, expensive on a virtual machine) when bytes come; the answer to
/// what it just sent usually comes sooner than this.
const POLL: StdDuration = StdDuration::from_micros(20);
/// Bytes the I/O thread reads from a descriptor at once.
const READ_BUF: usize = 64 * 1024;
/// Chunks taken from a channel link before they are fed to the endpoint.
const CHUNKS_AT_ONCE: usize = 64;

/// A send waiting for a free slot in the endpoint.
pub(crate) struct SendReq {
    pub(crate) msg: Message,
    pub(crate) deadline: StdInstant,
    /// Told the outcome of the send.
    pub(crate) done: Option<Done>,
    /// Told the reply (or why the request failed).
    pub(crate) reply: Option<ReplyTo>,
}

/// Something the I/O thread tells a waiting thread once it released the lock (a woken
/// thread that wants the lock at once must not find it taken), or an item for the
/// application, in the order the endpoint reported them.
enum Act {
    Done(Done, Result<MsgId, Error>),
    Reply(ReplyTo, Result<Message, Error>),
    Item(Item),
}

/// Where outgoing bytes go.
enum Out {
    /// The transport is not open yet: frames stay due in the endpoint.
    Opening,
    /// A writer that may block (an in-memory channel, a reader-thread stream).
    Blocking(Box<dyn Write + Send>),
    /// A non-blocking descriptor; what it does not take waits in `State::out`.
    Fd(Box<dyn FdWrite>),
    /// The link broke or the handler stopped: frames are dropped.
    Lost,
}

/// Everything the lock protects.
pub(crate) struct State {
    pub(crate) ep: Box<CoreEndpoint>,
    origin: StdInstant,
    last: Instant,
    link: Out,
    /// Encoded bytes not yet taken by a non-blocking descriptor.
    out: Vec<u8>,
    frame: Box<[u8]>,
    waiters: HashMap<MsgId, Done>,
    reply_waiters: HashMap<MsgId, ReplyTo>,
    backlog: VecDeque<SendReq>,
    gone_cause: Option<String>,
    /// Events were made outside the I/O thread (a write failed): it must take them.
    dispatch_needed: bool,
    /// The I/O thread is awake and will look at everything before it sleeps again.
    io_busy: bool,
    /// When the sleeping I/O thread wakes by itself.
    io_until: Option<StdInstant>,
    /// Whether the sleeping I/O thread waits for room in the descriptor.
    io_polls_out: bool,
    /// The I/O thread holds back its frames until then (see [`ACK_HOLD`]); any other
    /// thread's transmission sends them.
    hold_until: Option<StdInstant>,
    /// `stop` was asked for, with this `close_pipe`.
    stop: Option<bool>,
    /// The I/O thread is opening the transport (it may block there: accept, connect).
    pub(crate) opening: bool,
}

fn tell(done: Option<Done>, reply: Option<ReplyTo>, e: Error) {
    match (done, reply) {
        (Some(d), _) => drop(d.send(Err(e))),
        (None, Some(r)) => drop(r.send(Err(e))),
        (None, None) => {}
    }
}

impl State {
    pub(crate) fn new(ep: Box<CoreEndpoint>) -> Self {
        State {
            ep,
            origin: StdInstant::now(),
            last: Instant::ZERO,
            link: Out::Opening,
            out: Vec::new(),
            frame: vec![0; CoreEndpoint::MAX_FRAME_LEN].into_boxed_slice(),
            waiters: HashMap::new(),
            reply_waiters: HashMap::new(),
            backlog: VecDeque::new(),
            gone_cause: None,
            dispatch_needed: false,
            io_busy: true,
            io_until: None,
            io_polls_out: false,
            hold_until: None,
            stop: None,
            opening: false,
        }
    }

    /// Puts a new endpoint in place at `start`: its clock starts now.
    pub(crate) fn restart(&mut self, config: Config, session: u32) -> Result<(), Error> {
        let mut ep = crate::new_endpoint(config, session).map_err(Error::Config)?;
        if self.ep.is_paused() {
            ep.pause(Instant::ZERO);
        }
        self.ep = ep;
        self.origin = StdInstant::now();
        self.last = Instant::ZERO;
        self.opening = true;
        Ok(())
    }

    /// The endpoint's clock: never backwards, whichever thread holds the lock.
    pub(crate) fn now(&mut self) -> Instant {
        let t = Instant::from_micros(
            u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        self.last = self.last.max(t);
        self.last
    }

    fn std_instant(&self, t: Instant) -> StdInstant {
        self.origin + StdDuration::from_micros(t.as_micros())
    }

    /// Gives a send to the endpoint, after those already waiting for a slot.
    pub(crate) fn submit(&mut self, req: SendReq, now: Instant) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(req);
        } else if let Some(req) = self.try_send(req, now) {
            self.backlog.push_back(req);
        }
    }

    /// Gives a send to the endpoint; hands it back when every slot is taken.
    fn try_send(&mut self, req: SendReq, now: Instant) -> Option<SendReq> {
        let left = Duration::from(req.deadline.saturating_duration_since(StdInstant::now()));
        if left.is_zero() {
            tell(req.done, req.reply, Error::Failed(FailReason::TimedOut));
            return None;
        }
        let core = match req.msg.to_core() {
            Ok(core) => core,
            Err(e) => {
                tell(req.done, req.reply, e);
                return None;
            }
        };
        match self.ep.send(now, core, Some(left)) {
            Err(peerpipe_core::Error::SendQueueFull) => Some(req),
            r => {
                self.register(r.map_err(Error::from), req.done, req.reply);
                None
            }
        }
    }

    /// Moves waiting sends into the endpoint while it has free slots.
    fn feed_backlog(&mut self, now: Instant) {
        while let Some(req) = self.backlog.pop_front() {
            if let Some(req) = self.try_send(req, now) {
                self.backlog.push_front(req);
                return;
            }
        }
    }

    pub(crate) fn register(
        &mut self,
        r: Result<MsgId, Error>,
        done: Option<Done>,
        reply: Option<ReplyTo>,
    ) {
        match r {
            Ok(id) => {
                if let Some(d) = done {
                    self.waiters.insert(id, d);
                }
                if let Some(r) = reply {
                    self.reply_waiters.insert(id, r);
                }
            }
            Err(e) => tell(done, reply, e),
        }
    }

    /// Settles a send: its waiter learns the outcome; a request that failed learns it too
    /// (a delivered request waits on for its reply).
    fn outcome(&mut self, id: MsgId, outcome: Outcome, acts: &mut Vec<Act>) {
        let result = match outcome {
            Outcome::Delivered => Ok(id),
            Outcome::Failed(r) => Err(Error::from(r)),
        };
        if let Some(d) = self.waiters.remove(&id) {
            acts.push(Act::Done(d, result));
        } else if let Err(e) = result {
            if let Some(r) = self.reply_waiters.remove(&id) {
                acts.push(Act::Reply(r, Err(e)));
            }
        }
    }

    fn settle(&mut self, acts: &mut Vec<Act>) {
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            self.outcome(id, outcome, acts);
        }
    }

    /// The peer will send nothing more (its replies came before its END, ABORT or GONE):
    /// requests still waiting for a reply fail now rather than at their timeout.
    fn fail_replies(&mut self, reason: FailReason, acts: &mut Vec<Act>) {
        for (_, r) in self.reply_waiters.drain() {
            acts.push(Act::Reply(r, Err(Error::Failed(reason))));
        }
    }

    /// Turns one endpoint event into what to do about it: a reply someone waits for goes to
    /// them, items go to the application. Returns whether it is an item.
    fn act(
        &mut self,
        event: &Event<{ crate::MAX_PAYLOAD }, { crate::MAX_TOPIC }>,
        acts: &mut Vec<Act>,
    ) -> bool {
        let item = match event {
            &Event::SendOutcome { id, outcome } => {
                self.outcome(id, outcome, acts);
                return false;
            }
            Event::Message(m) => {
                let m = Message::from_core(m);
                if let Some(waiter) = m.req_id().and_then(|r| self.reply_waiters.remove(&r)) {
                    acts.push(Act::Reply(waiter, Ok(m)));
                    return false;
                }
                Item::Message(m)
            }
            Event::End(data) => {
                self.fail_replies(FailReason::PeerEnded, acts);
                Item::Status(Status::End(data.to_vec()))
            }
            Event::Abort(data) => {
                self.fail_replies(FailReason::PeerAborted, acts);
                Item::Status(Status::Abort(data.to_vec()))
            }
            &Event::Gone(reason) => {
                self.fail_replies(FailReason::PeerGone, acts);
                let cause = if reason == GoneReason::TransportLost {
                    self.gone_cause.clone()
                } else {
                    None
                };
                Item::Status(Status::Gone { reason, cause })
            }
            Event::PeerRestarted => Item::Status(Status::PeerRestarted),
            _ => return false,
        };
        acts.push(Act::Item(item));
        true
    }

    fn lose_link(&mut self, e: &io::Error) {
        if matches!(self.link, Out::Lost) {
            return;
        }
        log::warn!("peerpipe: transport lost: {e}");
        self.link = Out::Lost;
        self.out = Vec::new();
        self.gone_cause.get_or_insert_with(|| e.to_string());
        self.ep.transport_lost();
        self.dispatch_needed = true;
    }

    /// Encodes every frame that is due and writes them, in one write when the link takes it.
    pub(crate) fn transmit(&mut self, now: Instant) {
        self.hold_until = None;
        match self.link {
            Out::Opening => return,
            Out::Lost => {
                while let Ok(Some(_)) = self.ep.poll_transmit(now, &mut self.frame) {}
                return;
            }
            Out::Blocking(_) | Out::Fd(_) => {}
        }
        while let Ok(Some(n)) = self.ep.poll_transmit(now, &mut self.frame) {
            self.out
                .extend_from_slice(self.frame.get(..n).unwrap_or(&[]));
        }
        if self.out.is_empty() {
            return;
        }
        let r = match &mut self.link {
            Out::Blocking(w) => {
                let r = w.write_all(&self.out).and_then(|()| w.flush());
                self.out.clear();
                r
            }
            Out::Fd(w) => write_some(w, &mut self.out),
            Out::Opening | Out::Lost => Ok(()),
        };
        if let Err(e) = r {
            self.lose_link(&e);
        }
    }

    /// Whether a thread other than the I/O thread must wake it after what it just did; if
    /// so, the I/O thread counts as awake from now on.
    pub(crate) fn needs_wake(&mut self) -> bool {
        if self.io_busy {
            return false;
        }
        let earlier = self.ep.poll_timeout().is_some_and(|t| {
            let t = self.std_instant(t);
            self.io_until.is_none_or(|u| t < u)
        });
        let wake = earlier
            || self.dispatch_needed
            || self.stop.is_some()
            || (matches!(self.link, Out::Fd(_)) && !self.out.is_empty() && !self.io_polls_out);
        if wake {
            self.io_busy = true;
        }
        wake
    }

    pub(crate) fn request_stop(&mut self, close: bool) {
        self.stop.get_or_insert(close);
    }
}

/// Writes what a non-blocking descriptor takes now; keeps the rest.
fn write_some(w: &mut Box<dyn FdWrite>, out: &mut Vec<u8>) -> io::Result<()> {
    let mut done = 0;
    while done < out.len() {
        match w.write(out.get(done..).unwrap_or(&[])) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if done == out.len() {
        out.clear();
    } else {
        out.drain(..done);
    }
    Ok(())
}

/// How to wake the I/O thread, once it waits on its link.
enum WakeVia {
    /// A byte into the socket pair it polls with the link's descriptors.
    Pipe(UnixStream),
    /// An empty chunk into the channel it receives the link's chunks from.
    Chunk(Sender<Chunk>),
    /// A token into a channel of its own (no link).
    Token(Sender<()>),
}

/// Wakes the I/O thread. Until it waits on a link it needs no wake-up: it looks at the
/// state once the link is open, before it first sleeps.
pub(crate) struct Waker(OnceLock<WakeVia>);

impl Waker {
    pub(crate) fn wake(&self) {
        match self.0.get() {
            // Non-blocking: a full pipe or channel already holds a wake-up.
            Some(WakeVia::Pipe(p)) => drop((&*p).write(&[1])),
            Some(WakeVia::Chunk(tx)) => drop(tx.try_send(Ok(Vec::new()))),
            Some(WakeVia::Token(tx)) => drop(tx.try_send(())),
            None => {}
        }
    }
}

/// State shared between the handles and the I/O thread.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) waker: Waker,
    pub(crate) stopped: AtomicBool,
    /// The I/O thread holds items because the application's queue is full.
    want_room: AtomicBool,
    peer_state: AtomicU8,
    message_cb: Callback<Message>,
    status_cb: Callback<Status>,
    /// The longest the I/O thread sleeps.
    wake_period: StdDuration,
}

impl Shared {
    /// Shared state around `ep`.
    pub(crate) fn new(ep: Box<CoreEndpoint>, config: &Config) -> Self {
        let mut period =
            StdDuration::from(config.heartbeat_interval).min(config.default_request_timeout.into());
        if let Some(r) = config.resend_interval {
            period = period.min(r.into());
        }
        Shared {
            state: Mutex::new(State::new(ep)),
            waker: Waker(OnceLock::new()),
            stopped: AtomicBool::new(false),
            want_room: AtomicBool::new(false),
            peer_state: AtomicU8::new(0),
            message_cb: Callback::new(),
            status_cb: Callback::new(),
            wake_period: period.max(StdDuration::from_millis(1)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state from an application thread, writes what became due, and wakes
    /// the I/O thread if it must act sooner than it planned.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut st = self.lock();
        let now = st.now();
        let r = f(&mut st, now);
        st.transmit(now);
        let wake = st.needs_wake();
        drop(st);
        if wake {
            self.waker.wake();
        }
        r
    }

    /// The application took an item from its queue: the I/O thread may go on if it waited
    /// for room.
    pub(crate) fn took_item(&self) {
        fence(Ordering::SeqCst);
        if self.want_room.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    pub(crate) fn set_peer_state(&self, state: PeerState) {
        let v = match state {
            PeerState::NotSeen => 0,
            PeerState::Up => 1,
            PeerState::Gone => 2,
            PeerState::Ended => 3,
            _ => 4,
        };
        self.peer_state.store(v, Ordering::Relaxed);
    }

    pub(crate) fn peer_state(&self) -> PeerState {
        match self.peer_state.load(Ordering::Relaxed) {
            0 => PeerState::NotSeen,
            1 => PeerState::Up,
            2 => PeerState::Gone,
            3 => PeerState::Ended,
            _ => PeerState::Aborted,
        }
    }

    pub(crate) fn set_message_cb(&self, cb: Option<CallbackFn<Message>>) {
        self.message_cb.replace(cb);
    }

    pub(crate) fn set_status_cb(&self, cb: Option<CallbackFn<Status>>) {
        self.status_cb.replace(cb);
    }

    /// Drops the callbacks (at stop: a callback may hold a clone of its own handler).
    pub(crate) fn clear_callbacks(&self) {
        self.set_message_cb(None);
        self.set_status_cb(None);
    }

    /// Gives the item to its callback, if one is set; otherwise hands it back for the queue.
    /// Once stopped (e.g. by an earlier callback), the item is dropped.
    fn callback(&self, item: Item) -> Option<Item> {
        if self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        match item {
            Item::Message(m) => self.message_cb.call(m).map(Item::Message),
            Item::Status(st) => self.status_cb.call(st).map(Item::Status),
        }
    }
}

/// What the I/O thread waits on.
enum Wait {
    /// Nothing but wake-ups (the transport failed to open).
    Token(Receiver<()>),
    /// The link's channel: chunks, and empty chunks that only wake.
    Channel(Receiver<Chunk>),
    /// The link's descriptors, while it is up, and the wake-up socket pair.
    Fd {
        reader: Option<Box<dyn FdRead>>,
        writer_fd: RawFd,
        wake: UnixStream,
        buf: Vec<u8>,
        len: usize,
    },
}

/// The I/O thread.
pub(crate) struct Io {
    shared: std::sync::Arc<Shared>,
    queue_tx: Sender<Item>,
    wait: Wait,
    closer: Option<Box<dyn FnOnce() + Send>>,
    /// Chunks received from a channel link, not yet fed to the endpoint.
    chunks: Vec<Vec<u8>>,
    /// The link broke (after the input above).
    lost: Option<io::Error>,
    /// Items for the application's queue that did not fit.
    pending: VecDeque<Item>,
    /// A reply went to a thread waiting in `request` this round.
    served_reply: bool,
}

impl Io {
    pub(crate) fn new(shared: std::sync::Arc<Shared>, queue_tx: Sender<Item>) -> Self {
        Io {
            shared,
            queue_tx,
            wait: Wait::Token(crossbeam_channel::never()),
            closer: None,
            chunks: Vec::new(),
            lost: None,
            pending: VecDeque::new(),
            served_reply: false,
        }
    }

    /// Opens the transport, then works until stopped.
    pub(crate) fn run(mut self, transport: Box<dyn Transport>) {
        let opened = transport.open().and_then(|link| self.attach(link));
        if opened.is_err() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = self.shared.waker.0.set(WakeVia::Token(tx));
            self.wait = Wait::Token(rx);
        }
        {
            let mut st = self.shared.lock();
            st.opening = false;
            match opened {
                Ok(out) => st.link = out,
                Err(e) => st.lose_link(&e),
            }
        }
        let mut acts = Vec::new();
        let shared = self.shared.clone();
        loop {
            let mut st = shared.lock();
            st.io_busy = true;
            if let Some(close) = st.stop {
                self.stop(st, close);
                return;
            }
            let now = st.now();
            self.feed(&mut st, now);
            if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                st.ep.handle_timeout(now);
            }
            st.dispatch_needed = false;
            st.settle(&mut acts);
            st.feed_backlog(now);
            let mut more = self.collect(&mut st, &mut acts);
            // Before the items go out: whoever reads END, ABORT or GONE sees the state too.
            self.shared.set_peer_state(st.ep.peer_state());
            drop(st);
            more |= self.deliver(&mut acts);

            let mut st = shared.lock();
            let now = st.now();
            if std::mem::take(&mut self.served_reply) {
                // The requester that just got its reply will likely send again at once: its
                // write will carry the reply's ACK too (one wake-up of the peer, not two).
                st.hold_until.get_or_insert(StdInstant::now() + ACK_HOLD);
            }
            if st.hold_until.is_none_or(|h| h <= StdInstant::now()) {
                st.transmit(now);
            }
            self.shared.set_peer_state(st.ep.peer_state());
            if matches!(st.link, Out::Lost) {
                if let Wait::Fd { reader, .. } = &mut self.wait {
                    *reader = None;
                }
            }
            if more || st.dispatch_needed || st.stop.is_some() {
                continue;
            }
            let cap = StdInstant::now() + self.shared.wake_period;
            let mut until = st
                .ep
                .poll_timeout()
                .map_or(cap, |t| st.std_instant(t).min(cap));
            if let Some(h) = st.hold_until {
                until = until.min(h);
            }
            let polls_out = !st.out.is_empty();
            st.io_until = Some(until);
            st.io_polls_out = polls_out;
            st.io_busy = false;
            drop(st);
            self.sleep(until, polls_out);
        }
    }

    /// Takes the link apart: the output for the state, the input for this thread.
    fn attach(&mut self, link: Link) -> io::Result<Out> {
        self.closer = link.closer;
        match link.io {
            LinkIo::Channel {
                incoming,
                wake,
                writer,
            } => {
                let _ = self.shared.waker.0.set(WakeVia::Chunk(wake));
                self.wait = Wait::Channel(incoming);
                Ok(Out::Blocking(writer))
            }
            LinkIo::Fd { reader, writer } => {
                let (wake, waker) = UnixStream::pair()?;
                wake.set_nonblocking(true)?;
                waker.set_nonblocking(true)?;
                let _ = self.shared.waker.0.set(WakeVia::Pipe(waker));
                self.wait = Wait::Fd {
                    reader: Some(reader),
                    writer_fd: writer.as_raw_fd(),
                    wake,
                    buf: vec![0; READ_BUF],
                    len: 0,
                };
                Ok(Out::Fd(writer))
            }
        }
    }

    /// Feeds what arrived to the endpoint, then a broken link.
    fn feed(&mut self, st: &mut State, now: Instant) {
        for chunk in self.chunks.drain(..) {
            st.ep.handle_bytes(now, &chunk);
        }
        if let Wait::Fd { buf, len, .. } = &mut self.wait {
            if *len > 0 {
                st.ep.handle_bytes(now, buf.get(..*len).unwrap_or(&[]));
                *len = 0;
            }
        }
        if let Some(e) = self.lost.take() {
            st.lose_link(&e);
        }
    }

    /// Takes events from the endpoint: outcomes and replies for their waiters, items for the
    /// application, as many as its queue has room for (unless callbacks take them). Returns
    /// whether more events may be waiting.
    fn collect(&mut self, st: &mut State, acts: &mut Vec<Act>) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let callbacks = self.shared.message_cb.is_set() && self.shared.status_cb.is_set();
        let mut room = if callbacks {
            usize::MAX
        } else {
            RX.saturating_sub(self.queue_tx.len())
        };
        if room == 0 {
            self.shared.want_room.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            room = RX.saturating_sub(self.queue_tx.len());
            if room == 0 {
                return false;
            }
        }
        while room > 0 {
            let Some(event) = st.ep.poll_event() else {
                return false;
            };
            if st.act(&event, acts) {
                room -= 1;
            }
        }
        true
    }

    /// Tells the waiters and hands items to the callbacks or the application's queue, in
    /// order. Returns whether the queue has room again for items that did not fit.
    fn deliver(&mut self, acts: &mut Vec<Act>) -> bool {
        let mut queue = std::mem::take(&mut self.pending);
        for act in acts.drain(..) {
            let item = match act {
                Act::Done(d, r) => {
                    let _ = d.send(r);
                    continue;
                }
                Act::Reply(w, r) => match w.send(r) {
                    Ok(()) => {
                        self.served_reply = true;
                        continue;
                    }
                    // The requester gave up: deliver the reply like any message.
                    Err(Ok(m)) => Item::Message(m),
                    Err(Err(_)) => continue,
                },
                Act::Item(item) => item,
            };
            if !queue.is_empty() {
                queue.push_back(item);
                continue;
            }
            if let Some(item) = self.shared.callback(item) {
                match self.queue_tx.try_send(item) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(item)) => queue.push_back(item),
                }
            }
        }
        // Items held back from an earlier round: try them again, in order.
        while let Some(item) = queue.pop_front() {
            if let Some(item) = self.shared.callback(item) {
                match self.queue_tx.try_send(item) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(item)) => {
                        queue.push_front(item);
                        break;
                    }
                }
            }
        }
        self.pending = queue;
        if self.pending.is_empty() {
            return false;
        }
        self.shared.want_room.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.queue_tx.len() < RX
    }

    /// Sleeps until `until`, input, room to write (if `polls_out`) or a wake-up.
    fn sleep(&mut self, until: StdInstant, polls_out: bool) {
        match &mut self.wait {
            Wait::Token(rx) => {
                let _ = rx.recv_deadline(until);
            }
            Wait::Channel(rx) => {
                // Poll first, yielding the CPU between polls (see `POLL`), then block.
                let poll_until = (StdInstant::now() + POLL).min(until);
                let mut next = rx.try_recv();
                while matches!(next, Err(TryRecvError::Empty)) && StdInstant::now() < poll_until {
                    std::thread::yield_now();
                    next = rx.try_recv();
                }
                if matches!(next, Err(TryRecvError::Empty)) {
                    next = rx.recv_deadline(until).map_err(|e| match e {
                        RecvTimeoutError::Timeout => TryRecvError::Empty,
                        RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                    });
                }
                loop {
                    match next {
                        Ok(Ok(bytes)) if bytes.is_empty() => {}
                        Ok(Ok(bytes)) => self.chunks.push(bytes),
                        Ok(Err(e)) => {
                            self.lost = Some(e);
                            return;
                        }
                        Err(TryRecvError::Disconnected) => {
                            self.lost = Some(io::Error::new(
                                io::ErrorKind::BrokenPipe,
                                "transport closed",
                            ));
                            return;
                        }
                        Err(TryRecvError::Empty) => return,
                    }
                    if self.chunks.len() >= CHUNKS_AT_ONCE {
                        return;
                    }
                    next = rx.try_recv();
                }
            }
            Wait::Fd {
                reader,
                writer_fd,
                wake,
                buf,
                len,
            } => {
                let mut fds = [
                    libc::pollfd {
                        fd: wake.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: reader.as_ref().map_or(-1, |r| r.as_raw_fd()),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        // Only while the link is up: a lost link drops its pending bytes.
                        fd: if polls_out { *writer_fd } else { -1 },
                        events: libc::POLLOUT,
                        revents: 0,
                    },
                ];
                // Poll without sleeping for a moment first: the answer to what this thread
                // just sent usually comes within it, and is then taken without the cost of
                // a sleep and a wake-up (high on virtual machines).
                let poll_until = (StdInstant::now() + POLL).min(until);
                let mut ready = poll(&mut fds, StdInstant::now());
                while ready == 0 && StdInstant::now() < poll_until {
                    std::thread::yield_now();
                    ready = poll(&mut fds, StdInstant::now());
                }
                if ready == 0 {
                    ready = poll(&mut fds, until);
                }
                if ready <= 0 {
                    return;
                }
                if fds[0].revents != 0 {
                    let mut sink = [0u8; 64];
                    while matches!((&*wake).read(&mut sink), Ok(n) if n > 0) {}
                }
                let Some(reader) = reader.as_mut().filter(|_| fds[1].revents != 0) else {
                    return;
                };
                loop {
                    let free = buf.get_mut(*len..).unwrap_or(&mut []);
                    let free_len = free.len();
                    if free_len == 0 {
                        return;
                    }
                    match reader.read(free) {
                        Ok(0) => {
                            self.lost = Some(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "transport closed by the peer",
                            ));
                            return;
                        }
                        Ok(n) => {
                            *len += n;
                            // A short read took everything there was: the next poll says
                            // when more comes (saves a read that would only say EAGAIN).
                            if n < free_len {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) => {
                            self.lost = Some(e);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Stops: fails every waiter, closes the link, releases the callbacks.
    fn stop(mut self, mut st: MutexGuard<'_, State>, close: bool) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        st.ep.stop();
        let mut acts = Vec::new();
        st.settle(&mut acts);
        for req in std::mem::take(&mut st.backlog) {
            tell(req.done, req.reply, Error::Stopped);
        }
        for (_, r) in st.reply_waiters.drain() {
            acts.push(Act::Reply(r, Err(Error::Stopped)));
        }
        let link = std::mem::replace(&mut st.link, Out::Lost);
        st.out = Vec::new();
        drop(st);
        for act in acts {
            match act {
                Act::Done(d, r) => drop(d.send(r)),
                Act::Reply(w, r) => drop(w.send(r)),
                Act::Item(_) => {}
            }
        }
        // Both directions closed before the closer runs (a child sees EOF on its stdin).
        drop(link);
        self.wait = Wait::Token(crossbeam_channel::never());
        if close {
            if let Some(closer) = self.closer.take() {
                closer();
            }
        }
        self.pending.clear();
        self.shared.clear_callbacks();
    }
}

/// poll(2) until `until`, with a precise timeout where the platform has ppoll(2).
fn poll(fds: &mut [libc::pollfd; 3], until: StdInstant) -> i32 {
    let left = until.saturating_duration_since(StdInstant::now());
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        // SAFETY: `fds` is a valid array of 3 pollfd; `ts` outlives the call; no signal mask.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 3, &ts, std::ptr::null()) }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of 3 pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 3, ms) }
    }
}
