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
//!
//! What bounds its throughput (many blocked senders, one thread pipelining), as measured,
//! and what was tried: `docs/design/std-driver-throughput.md`.

mod callback;
#[cfg(unix)]
mod fd_wait;
mod io_thread;
mod out_buf;
mod reconnect;
mod sends;
pub(crate) use reconnect::{first_frame, route};

use std::io::{self, Write};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::Sender;
use peerpipe_core::{Config, Instant, MsgId, PeerState};

use crate::transport::Chunk;
#[cfg(unix)]
use crate::transport::FdWrite;
use crate::{
    CoreEndpoint, Error, HandlerStats, Item, Message, Progress, Status, Transfer, UNSENT_LIMIT,
};
use callback::{Callback, CallbackFn};
pub(crate) use io_thread::Io;
use out_buf::OutBuf;
use peerpipe_host::Assembler;
use sends::Sends;
pub(crate) use sends::{Done, GaveUp, Outgoing, ReplyTo, SendReq};

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
/// How long the I/O thread polls while a message of several fragments is on its way in
/// either direction: the next fragments or their acknowledgement come within tens of
/// microseconds, less than a sleep and a wake-up cost on a virtual machine. Measured with
/// `cargo run --release -p peerpipe-examples --example bulk -- --size 128M` (2-core machine,
/// busy): 200 µs moved about 15 % more than 20 µs over TCP, and than 400 µs or 1 ms (whose
/// polling takes the CPU from the other threads).
const POLL_LARGE: StdDuration = StdDuration::from_micros(200);
/// Chunks taken from a channel link before they are fed to the endpoint.
const CHUNKS_AT_ONCE: usize = 64;
/// Input bytes the I/O thread feeds to the endpoint before it takes the events and writes
/// what became due (the ACK): about two fragments' frames, half the window a peer sends
/// ahead ([`RX`](crate::RX) fragments), so that the peer sends the next fragments while this
/// thread takes the ones that came.
const FEED_AT_ONCE: usize = 2 * crate::FRAGMENT;

/// Something the I/O thread tells a waiting thread once it released the lock (a woken
/// thread that wants the lock at once must not find it taken), or an item for the
/// application, in the order the endpoint reported them.
pub(crate) enum Act {
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
    #[cfg(unix)]
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
    /// Encoded bytes not yet taken by the link (a non-blocking descriptor may take part).
    out: OutBuf,
    pub(crate) sends: Sends,
    /// Puts together the message arriving in parts.
    pub(crate) assembler: Assembler,
    gone_cause: Option<crate::IoCause>,
    /// Events were made outside the I/O thread (a write failed): it must take them.
    dispatch_needed: bool,
    /// The I/O thread is awake and will look at everything before it sleeps again.
    io_busy: bool,
    /// When the sleeping I/O thread wakes by itself.
    io_until: Option<StdInstant>,
    /// The I/O thread holds back its frames until then (see [`ACK_HOLD`]); any other
    /// thread's transmission sends them.
    hold_until: Option<StdInstant>,
    /// `stop` was asked for, with this `close_pipe`.
    stop: Option<bool>,
    /// The I/O thread is opening the transport (it may block there: accept, connect).
    pub(crate) opening: bool,
    /// The link can be replaced when it breaks (TCP, Unix sockets with reconnection on).
    can_reconnect: bool,
    /// The link broke, when, and why, while a new one is awaited (`link` is `Opening`:
    /// frames stay due in the endpoint).
    down: Option<(StdInstant, crate::IoCause)>,
    /// A new connection for the I/O thread to take.
    handover: Option<reconnect::Handover>,
    /// Tells the dialing thread that the link broke.
    redial_tx: Option<Sender<()>>,
    /// Statuses about the link (reconnecting, reconnected) for the application.
    link_events: Vec<Status>,
    /// `Reconnect::give_up_after`.
    give_up_after: Option<StdDuration>,
    reconnects: u64,
    /// Where a listening transport counts the connections it refuses, while it opens and
    /// while it waits for the peer to reconnect
    /// ([`Transport::refusals`](crate::Transport::refusals)).
    pub(crate) refusals: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl State {
    pub(crate) fn new(ep: Box<CoreEndpoint>) -> Self {
        State {
            ep,
            origin: StdInstant::now(),
            last: Instant::ZERO,
            link: Out::Opening,
            out: OutBuf::default(),
            sends: Sends::default(),
            assembler: Assembler::default(),
            gone_cause: None,
            dispatch_needed: false,
            io_busy: true,
            io_until: None,
            hold_until: None,
            stop: None,
            opening: false,
            can_reconnect: false,
            down: None,
            handover: None,
            redial_tx: None,
            link_events: Vec::new(),
            give_up_after: None,
            reconnects: 0,
            refusals: None,
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

    /// Reports a break, unless the application has not yet been told of the last
    /// reconnection: the break is then merged into it (it is told again when this one is
    /// over), so that these statuses stay at most two however often the link breaks.
    pub(crate) fn link_broke(&mut self, cause: crate::IoCause) {
        if self.link_events.last() == Some(&Status::Reconnected) {
            self.link_events.pop();
        } else {
            self.link_events.push(Status::Reconnecting { cause });
        }
    }

    fn lose_link(&mut self, e: &io::Error) {
        if matches!(self.link, Out::Lost) || self.down.is_some() {
            return;
        }
        if self.can_reconnect && self.accepts_links() {
            log::warn!("peerpipe: connection lost, reconnecting: {e}");
            self.link = Out::Opening;
            self.out = OutBuf::default();
            self.down = Some((StdInstant::now(), e.into()));
            self.link_broke(e.into());
            if let Some(tx) = &self.redial_tx {
                let _ = tx.try_send(());
            }
            self.dispatch_needed = true;
            return;
        }
        if matches!(self.link, Out::Opening) {
            // It never opened: a refused TLS peer, a device that is not there.
            log::warn!("peerpipe: the transport did not open: {e}");
        } else {
            log::warn!("peerpipe: transport lost: {e}");
        }
        self.link = Out::Lost;
        self.out = OutBuf::default();
        self.gone_cause.get_or_insert_with(|| e.into());
        self.ep.transport_lost();
        self.dispatch_needed = true;
    }

    /// Encodes every frame that is due and writes them, in one write when the link takes it.
    /// Frames are encoded straight into the output buffer, each fragment's bytes read from
    /// the outbox: a message's data is never copied whole.
    pub(crate) fn transmit(&mut self, now: Instant) {
        self.hold_until = None;
        match self.link {
            Out::Opening => return,
            Out::Lost => {
                // Frames are dropped (the buffer holds one at a time).
                let (ep, outbox) = (&mut self.ep, &mut self.sends.outbox);
                self.out.clear();
                while self
                    .out
                    .encode(|buf| ep.poll_transmit_from(now, buf, outbox))
                {
                    self.out.clear();
                }
                return;
            }
            #[cfg(unix)]
            Out::Fd(_) => {}
            Out::Blocking(_) => {}
        }
        let before = self.out.len();
        while self.out.len() < UNSENT_LIMIT {
            let (ep, outbox) = (&mut self.ep, &mut self.sends.outbox);
            if !self
                .out
                .encode(|buf| ep.poll_transmit_from(now, buf, outbox))
            {
                break;
            }
        }
        if self.out.is_empty() {
            return;
        }
        let made = self.out.len() - before;
        let r = match &mut self.link {
            Out::Blocking(w) => {
                let r = w.write_all(self.out.bytes()).and_then(|()| w.flush());
                self.out.clear();
                r
            }
            #[cfg(unix)]
            Out::Fd(w) => write_some(w, &mut self.out),
            Out::Opening | Out::Lost => Ok(()),
        };
        self.out.fit(made);
        if let Err(e) = r {
            self.lose_link(&e);
        }
    }

    /// Whether a message of several fragments is under way: one arriving, or a send not yet
    /// acknowledged whole.
    pub(crate) fn moving_large_message(&self) -> bool {
        self.assembler.progress().is_some()
            || self.sends.large_in_flight().any(|id| {
                self.ep
                    .progress(id)
                    .is_some_and(|(done, total)| total > crate::FRAGMENT as u64 && done < total)
            })
    }

    /// Whether a thread other than the I/O thread must wake it after what it just did; if
    /// so, the I/O thread counts as awake from now on. `send_deadline`: what was done is a
    /// send with this deadline, the only deadline it can make earlier than the I/O thread's
    /// wake-up (its resend timer is at least `wake_period` away, and a sleep is at most
    /// that long): then the endpoint's timers need no scan (which cost 1,400 instructions a
    /// send, a fifth of a pipelined sender's work: callgrind, 6,300 -> 4,600 per send).
    pub(crate) fn needs_wake(&mut self, send_deadline: Option<StdInstant>) -> bool {
        if self.io_busy {
            return false;
        }
        let earlier =
            match send_deadline {
                Some(d) => {
                    let earlier = self.io_until.is_none_or(|u| d < u);
                    // The claim above, checked in debug builds (the endpoint's clock counts whole
                    // microseconds: a millisecond of slack).
                    debug_assert!(
                        earlier
                            || !self.deadline_before(self.io_until.map(|u| {
                                u.checked_sub(StdDuration::from_millis(1)).unwrap_or(u)
                            })),
                        "a send made a deadline earlier than its own"
                    );
                    earlier
                }
                None => self.deadline_before(self.io_until),
            };
        let wake = earlier || self.dispatch_needed || self.stop.is_some();
        if wake {
            self.io_busy = true;
        }
        wake
    }

    /// Whether the endpoint's next deadline comes before `until` (or at all, without one).
    fn deadline_before(&self, until: Option<StdInstant>) -> bool {
        self.ep.poll_timeout().is_some_and(|t| {
            let t = self.std_instant(t);
            until.is_none_or(|u| t < u)
        })
    }

    /// Whether the conversation may take a new connection: not stopped, the peer not gone,
    /// ended or aborted, the link not given up.
    pub(crate) fn accepts_links(&self) -> bool {
        // After this side's END or ABORT went through, there is nothing left to say.
        let said_all = self.ep.local_close().is_some() && self.ep.pending_sends() == 0;
        self.stop.is_none()
            && !self.ep.is_stopped()
            && matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up)
            && !matches!(self.link, Out::Lost)
            && !said_all
    }

    /// Whether a connection is up.
    fn link_is_live(&self) -> bool {
        match self.link {
            Out::Blocking(_) => true,
            #[cfg(unix)]
            Out::Fd(_) => true,
            Out::Opening | Out::Lost => false,
        }
    }

    /// Whether a new connection is wanted now: the link broke and none is on its way.
    fn wants_link(&self) -> bool {
        self.down.is_some() && self.handover.is_none() && self.accepts_links()
    }

    /// No connection comes back (or the conversation is over): the link is lost for good;
    /// with the peer still there, it is gone with the break's cause.
    fn give_up_link(&mut self) {
        let Some((_, cause)) = self.down.take() else {
            return;
        };
        self.link = Out::Lost;
        self.handover = None;
        if matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up) {
            log::warn!("peerpipe: no connection came back: {cause}");
            self.gone_cause.get_or_insert(cause);
            self.ep.transport_lost();
        }
        self.dispatch_needed = true;
    }

    pub(crate) fn request_stop(&mut self, close: bool) {
        self.stop.get_or_insert(close);
    }
}

/// Writes what a non-blocking descriptor takes now; keeps the rest.
#[cfg(unix)]
fn write_some(w: &mut Box<dyn FdWrite>, out: &mut OutBuf) -> io::Result<()> {
    let mut done = 0;
    while done < out.len() {
        match w.write(out.bytes().get(done..).unwrap_or(&[])) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    out.consume(done);
    Ok(())
}

/// How to wake the I/O thread, once it waits on its link.
enum WakeVia {
    /// A byte into the socket pair it polls with the link's descriptors.
    #[cfg(unix)]
    Mio(mio::Waker),
    /// An empty chunk into the channel it receives the link's chunks from.
    Chunk(Sender<Chunk>),
    /// A token into a channel of its own (no link).
    Token(Sender<()>),
}

/// Wakes the I/O thread. Until it waits on a link it needs no wake-up: it looks at the
/// state once the link is open, before it first sleeps. A new connection brings a new way.
pub(crate) struct Waker(Mutex<Option<WakeVia>>);

impl Waker {
    fn set(&self, via: WakeVia) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(via);
    }

    pub(crate) fn wake(&self) {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            // Non-blocking: a full pipe or channel already holds a wake-up.
            #[cfg(unix)]
            Some(WakeVia::Mio(w)) => drop(w.wake()),
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
    /// Items the I/O thread holds back because the application's queue is full.
    held_items: AtomicUsize,
    /// Their data bytes.
    held_bytes: AtomicUsize,
    /// Data bytes of the items in the application's queue.
    queued_bytes: AtomicUsize,
    /// Connection statuses in the application's queue (outside `QUEUE_ITEMS`).
    queued_link: AtomicUsize,
    /// `Status::Reconnected`s among them.
    unread_reconnected: AtomicUsize,
    /// Waiting threads poll briefly before they sleep (`PipeHandler::set_spin`).
    pub(crate) spin: AtomicBool,
    /// Late replies found once the lock was released (their requester gave up just then).
    late_replies: AtomicU64,
}

impl Shared {
    /// Shared state around `ep`.
    pub(crate) fn new(ep: Box<CoreEndpoint>, config: &Config) -> Self {
        let mut period = config
            .heartbeat_interval
            .min(config.default_request_timeout);
        if let Some(r) = config.resend_interval {
            period = period.min(r);
        }
        Shared {
            state: Mutex::new(State::new(ep)),
            waker: Waker(Mutex::new(None)),
            stopped: AtomicBool::new(false),
            want_room: AtomicBool::new(false),
            peer_state: AtomicU8::new(0),
            message_cb: Callback::new(),
            status_cb: Callback::new(),
            wake_period: period.max(StdDuration::from_millis(1)),
            held_items: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            queued_link: AtomicUsize::new(0),
            unread_reconnected: AtomicUsize::new(0),
            spin: AtomicBool::new(true),
            late_replies: AtomicU64::new(0),
        }
    }

    /// The handler's counters and queue depths; `queued` is the length of the
    /// application's queue.
    pub(crate) fn stats(&self, queued: usize) -> HandlerStats {
        let st = self.lock();
        let mut stats = HandlerStats::default();
        stats.core = *st.ep.stats();
        stats.waiting_sends = st.sends.waiting();
        stats.queued_items = queued + self.held_items.load(Ordering::Relaxed);
        stats.late_replies = st.sends.late_replies + self.late_replies.load(Ordering::Relaxed);
        stats.unsent_bytes = st.out.len();
        stats.queued_bytes =
            self.queued_bytes.load(Ordering::Relaxed) + self.held_bytes.load(Ordering::Relaxed);
        stats.reconnects = st.reconnects;
        stats.refused_connections = st
            .refusals
            .as_ref()
            .map_or(0, |r| r.load(Ordering::Relaxed));
        stats
    }

    /// The send on the wire and the message arriving.
    pub(crate) fn progress(&self) -> Progress {
        let st = self.lock();
        let sending = st
            .sends
            .in_flight()
            .filter_map(|id| {
                let (done, total) = st.ep.progress(id)?;
                Some(Transfer { id, done, total })
            })
            .find(|t| t.done < t.total);
        let receiving =
            st.assembler
                .progress()
                .map(|(id, done, total)| Transfer { id, done, total });
        Progress::new(sending, receiving)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state from an application thread, writes what became due, and wakes
    /// the I/O thread if it must act sooner than it planned.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        self.with_deadline(None, f)
    }

    /// [`with`](Self::with) for a send with this deadline (see [`State::needs_wake`]).
    pub(crate) fn with_deadline<R>(
        &self,
        send_deadline: Option<StdInstant>,
        f: impl FnOnce(&mut State, Instant) -> R,
    ) -> R {
        let mut st = self.lock();
        let now = st.now();
        let r = f(&mut st, now);
        st.transmit(now);
        let wake = st.needs_wake(send_deadline);
        drop(st);
        if wake {
            self.waker.wake();
        }
        r
    }

    /// The application took an item from its queue: the I/O thread may go on if it waited
    /// for room.
    /// Counts `item`, if it is a connection status, into (`add`) or out of the
    /// application's queue.
    pub(crate) fn count_link(&self, item: &Item, add: bool) {
        let count = |n: &AtomicUsize| {
            if add {
                n.fetch_add(1, Ordering::SeqCst);
            } else {
                n.fetch_sub(1, Ordering::SeqCst);
            }
        };
        match item {
            Item::Status(Status::Reconnected) => {
                count(&self.unread_reconnected);
                count(&self.queued_link);
            }
            Item::Status(Status::Reconnecting { .. }) => count(&self.queued_link),
            _ => {}
        }
    }

    pub(crate) fn took_item(&self, item: &Item) {
        self.queued_bytes
            .fetch_sub(sends::item_bytes(item), Ordering::SeqCst);
        self.count_link(item, false);
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
