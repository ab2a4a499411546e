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
mod state;
pub(crate) use reconnect::{first_frame, route};

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::Sender;
use peerpipe_core::{Config, Instant, MsgId, PeerState};

use crate::transport::Chunk;
use crate::{CoreEndpoint, Error, HandlerStats, Item, Message, Progress, Status, Transfer};
use callback::{Callback, CallbackFn};
pub(crate) use io_thread::Io;
pub(crate) use sends::{Done, GaveUp, Outgoing, ReplyTo, SendReq};
use state::{Out, State};

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
/// what became due (the ACK): about eight fragments' frames, a quarter of the window a peer
/// sends ahead (up to 32 fragments: the receive slots and the application queue's room), so
/// that the peer sends the next fragments while this thread takes the ones that came.
/// Measured with `bulk --size 268435456` (2-core machine, quiet, three runs alternated, share
/// of the bare copy): two fragments (one ACK per two DATA frames) moved 71-74 % in memory,
/// 60-61 % over TCP and 61-75 % over Unix sockets; eight moved 74-75 %, 76-80 % and 55-81 %
/// (the bare Unix copy itself varied most). Sixteen was worse in memory (54 %). Small
/// messages never fill it.
const FEED_AT_ONCE: usize = 8 * crate::FRAGMENT;

/// Something the I/O thread tells a waiting thread once it released the lock (a woken
/// thread that wants the lock at once must not find it taken), or an item for the
/// application, in the order the endpoint reported them.
pub(crate) enum Act {
    Done(Done, Result<MsgId, Error>),
    Reply(ReplyTo, Result<Message, Error>),
    Item(Item),
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

    /// The application took an item from its queue: the I/O thread may go on if it waited
    /// for room.
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
