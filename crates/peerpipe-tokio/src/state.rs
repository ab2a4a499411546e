//! What the pipe task and the handles share: the endpoint, its clock, the waiting callers and
//! the queue of items for the application, behind one lock.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use peerpipe_core::{Config, Endpoint, Instant, MsgId, PeerState};
use peerpipe_host::{Assembler, Error, HandlerStats, Item, Message, Outbox};
use tokio::time::Instant as TokioInstant;

use crate::waiters::{enlist, set_waker, wake_all, RoomQueue, Waiters};
use crate::Transfer;

/// Which waiters an id belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// A send waiting for its outcome.
    Outcome,
    /// A request waiting for its reply.
    Reply,
}

/// The state behind the lock.
pub(crate) struct State<
    const FRAGMENT: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
> {
    /// No inline storage (`INLINE` = 0): every message is sent from the outbox.
    pub(crate) ep: Box<Endpoint<FRAGMENT, TOPIC, RX, TX, FRAME, 0>>,
    /// The data of every message handed to the endpoint, until its outcome is taken.
    pub(crate) outbox: Outbox,
    /// The ids of those messages, oldest first (at most `TX`).
    pub(crate) sending: Vec<MsgId>,
    /// The message arriving in parts, put together.
    pub(crate) assembler: Assembler,
    /// The request the message arriving in parts replies to, if it is a reply.
    pub(crate) reply_in_parts: Option<MsgId>,
    /// The tokio instant of the endpoint's `Instant::ZERO`.
    origin: TokioInstant,
    /// The last instant handed to the endpoint: its clock never goes back.
    last: Instant,
    /// Items for the application, at most `RX` and, beyond one item, about
    /// [`QUEUE_BYTES`](crate::QUEUE_BYTES) bytes (then the endpoint holds the rest,
    /// and the peer's resends cover what it cannot take).
    pub(crate) inbox: VecDeque<Item>,
    /// Data bytes of the items in `inbox` (a message's with its topic).
    pub(crate) inbox_bytes: usize,
    /// The connection's statuses in `inbox` (`Reconnecting`, `Reconnected`): they take no
    /// room from the endpoint's items (see `report_link`).
    pub(crate) link_statuses: usize,
    /// Readers waiting for an item.
    pub(crate) readers: Vec<Waker>,
    pub(crate) outcomes: Waiters<Result<MsgId, Error>>,
    pub(crate) replies: Waiters<Result<Message, Error>>,
    /// Callers waiting for a free send slot, first come, first served.
    pub(crate) room: RoomQueue,
    /// Requests whose caller gave up: their late replies are dropped and counted.
    pub(crate) abandoned: peerpipe_host::AbandonedRequests,
    /// Replies dropped because their request had given up.
    pub(crate) late_replies: u64,
    /// Encoded bytes the pipe task holds that the transport has not taken yet.
    pub(crate) unsent: usize,
    /// The pipe task, to be woken when there may be frames to send or a stop to act on.
    task: Option<Waker>,
    /// Why the transport broke, for [`Status::Gone`](peerpipe_host::Status::Gone).
    pub(crate) gone_cause: Option<peerpipe_host::IoCause>,
    /// [`stop`](crate::PipeHandler::stop) was called.
    pub(crate) stopping: bool,
    /// The pipe task ended: the transport is closed.
    pub(crate) finished: bool,
    /// Callers of [`closed`](crate::PipeHandler::closed).
    closed: Vec<Waker>,
    /// The connection broke, when, and why, while a new one is awaited (a handler that
    /// reconnects).
    pub(crate) down: Option<(TokioInstant, peerpipe_host::IoCause)>,
    /// `Reconnect::give_up_after`.
    pub(crate) give_up_after: Option<std::time::Duration>,
    /// Connections that took the place of a broken one.
    pub(crate) reconnects: u64,
    /// Connections a listening end closed: they did not prove to be the peer.
    pub(crate) refused_connections: u64,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    State<P, T, RX, TX, F>
{
    /// A new endpoint whose clock starts now.
    pub(crate) fn new(config: Config, session: u32) -> Result<Self, Error> {
        let ep = Endpoint::new(config, session, Instant::ZERO).map_err(Error::Config)?;
        Ok(State {
            ep: Box::new(ep),
            outbox: Outbox::default(),
            sending: Vec::new(),
            assembler: Assembler::default(),
            reply_in_parts: None,
            origin: TokioInstant::now(),
            last: Instant::ZERO,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            link_statuses: 0,
            readers: Vec::new(),
            outcomes: Waiters::new(),
            replies: Waiters::new(),
            room: RoomQueue::new(),
            abandoned: Default::default(),
            late_replies: 0,
            unsent: 0,
            task: None,
            gone_cause: None,
            stopping: false,
            finished: false,
            closed: Vec::new(),
            down: None,
            give_up_after: None,
            reconnects: 0,
            refused_connections: 0,
        })
    }

    /// The endpoint's clock, from tokio's (so that paused time in tests is virtual time here).
    pub(crate) fn now(&mut self) -> Instant {
        let us = TokioInstant::now()
            .saturating_duration_since(self.origin)
            .as_micros();
        self.last = self
            .last
            .max(Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX)));
        self.last
    }

    /// The tokio instant of an endpoint instant.
    pub(crate) fn to_tokio(&self, t: Instant) -> TokioInstant {
        self.origin + std::time::Duration::from_micros(t.as_micros())
    }

    /// The tokio instant `timeout` from now; [`Error::Invalid`] for a zero timeout.
    pub(crate) fn deadline(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<TokioInstant, Error> {
        let timeout = timeout.unwrap_or(self.ep.config().default_request_timeout);
        if timeout.is_zero() {
            return Err(Error::Invalid(peerpipe_core::Error::ZeroTimeout));
        }
        Ok(TokioInstant::now() + timeout)
    }

    /// Registers the pipe task's waker.
    pub(crate) fn set_task(&mut self, waker: &Waker) {
        set_waker(&mut self.task, waker);
    }

    /// Wakes the pipe task: the endpoint may have frames to send, or a stop to act on.
    pub(crate) fn wake_task(&mut self) {
        if let Some(w) = &self.task {
            w.wake_by_ref();
        }
    }

    /// Refused at once when the handler was stopped. (After a broken transport the endpoint
    /// itself refuses sends: the peer is gone.)
    pub(crate) fn check_running(&self) -> Result<(), Error> {
        if self.stopping {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Starts waiting for `id`.
    pub(crate) fn wait_for(&mut self, id: MsgId, wait: Wait) {
        match wait {
            Wait::Outcome => self.outcomes.register(id),
            Wait::Reply => self.replies.register(id),
        }
    }

    /// Stops waiting for `id`: the caller has its value, or gave up (`answered` false for a
    /// request that got no reply: timed out, failed, or its future was dropped). A request
    /// that gave up is remembered, so that its reply, should it still come, is dropped and
    /// counted rather than queued for the application; one whose reply came but was never
    /// taken counts as a late reply.
    pub(crate) fn forget(&mut self, id: MsgId, wait: Wait, answered: bool) {
        match wait {
            Wait::Outcome => drop(self.outcomes.remove(id)),
            Wait::Reply => {
                let slot = self.replies.remove(id);
                if answered {
                    return;
                }
                if let Some(Some(Ok(_))) = slot.map(|s| s.value) {
                    self.late_replies = self.late_replies.wrapping_add(1);
                } else {
                    self.abandoned.insert(id);
                }
            }
        }
    }

    /// The outcome of send `id` if known, else registers `waker`.
    pub(crate) fn take_outcome(
        &mut self,
        id: MsgId,
        waker: &Waker,
    ) -> Option<Result<MsgId, Error>> {
        self.outcomes.take(id, waker)
    }

    /// The reply to request `id` (or why there is none) if known, else registers `waker`.
    pub(crate) fn take_reply(
        &mut self,
        id: MsgId,
        waker: &Waker,
    ) -> Option<Result<Message, Error>> {
        self.replies.take(id, waker)
    }

    /// Whether request `id` was acknowledged by the peer's endpoint.
    pub(crate) fn delivered(&mut self, id: MsgId) -> bool {
        self.replies.get_mut(id).is_some_and(|s| s.delivered)
    }

    /// The handler's statistics.
    pub(crate) fn stats(&self) -> HandlerStats {
        let mut s = HandlerStats::default();
        s.core = *self.ep.stats();
        s.waiting_sends = self.room.len();
        s.queued_items = self.inbox.len() + self.ep.received_len();
        s.queued_bytes = self.inbox_bytes;
        s.late_replies = self.late_replies;
        s.unsent_bytes = self.unsent;
        s.reconnects = self.reconnects;
        s.refused_connections = self.refused_connections;
        s
    }

    /// Registers a caller of `closed`.
    pub(crate) fn wait_closed(&mut self, waker: &Waker) {
        enlist(&mut self.closed, waker);
    }

    /// How far the send `id` got: bytes the peer acknowledged, of its length; `None` once
    /// its outcome is known (or for an unknown id).
    pub(crate) fn transfer(&self, id: MsgId) -> Option<Transfer> {
        let (done, total) = self.ep.progress(id)?;
        self.sending
            .contains(&id)
            .then_some(Transfer { id, done, total })
    }

    /// The endpoint refused a call: the error, naming the broken transport if that is why.
    pub(crate) fn refused(&self, e: peerpipe_core::Error) -> Error {
        Error::from(e).or_transport_lost(self.gone_cause.as_ref())
    }

    /// The transport broke: the peer is gone, with the error as the cause.
    pub(crate) fn lose_transport(&mut self, cause: &std::io::Error) {
        log::warn!("peerpipe-tokio: transport lost: {cause}");
        self.gone_cause.get_or_insert_with(|| cause.into());
        self.ep.transport_lost();
        self.dispatch();
    }

    /// Whether the conversation may take a new connection: not stopped or ended, the peer
    /// not gone, ended or aborted, and this side's END or ABORT not gone through (then there
    /// is nothing left to say).
    pub(crate) fn accepts_links(&self) -> bool {
        let said_all = self.ep.local_close().is_some() && self.ep.pending_sends() == 0;
        !self.stopping
            && !self.finished
            && !self.ep.is_stopped()
            && matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up)
            && !said_all
    }

    /// Whether a new connection is wanted now: the connection broke and the conversation
    /// goes on.
    pub(crate) fn wants_link(&self) -> bool {
        self.down.is_some() && self.accepts_links()
    }

    /// When a broken connection is given up (`Reconnect::give_up_after`).
    pub(crate) fn give_up_at(&self) -> Option<TokioInstant> {
        let (since, _) = self.down.as_ref()?;
        Some(*since + self.give_up_after?)
    }

    /// The connection broke and a new one is awaited: reported as
    /// [`Status::Reconnecting`](peerpipe_host::Status::Reconnecting).
    pub(crate) fn lose_connection(&mut self, cause: &std::io::Error) {
        log::warn!("peerpipe-tokio: connection lost, reconnecting: {cause}");
        self.unsent = 0;
        self.down = Some((TokioInstant::now(), cause.into()));
        self.report_link(peerpipe_host::Status::Reconnecting {
            cause: cause.into(),
        });
    }

    /// A new connection took the place of the broken one (`replaced`: of a live one, whose
    /// break this end had not seen): the endpoint sends again at once what was not
    /// acknowledged, then takes `input`, the bytes already read from the new connection.
    pub(crate) fn restore_connection(&mut self, input: &[u8], replaced: bool) {
        let now = self.now();
        self.ep.transport_restored(now);
        self.ep.handle_bytes(now, input);
        self.reconnects += 1;
        self.unsent = 0;
        if replaced {
            let cause =
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the peer reconnected");
            self.report_link(peerpipe_host::Status::Reconnecting {
                cause: (&cause).into(),
            });
        }
        self.down = None;
        self.report_link(peerpipe_host::Status::Reconnected);
        log::info!("peerpipe-tokio: reconnected");
    }

    /// No connection comes back (or the conversation is over): with the peer still there,
    /// it is gone with the break's cause.
    pub(crate) fn give_up_connection(&mut self) {
        let Some((_, cause)) = self.down.take() else {
            return;
        };
        if matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up) {
            log::warn!("peerpipe-tokio: no connection came back: {cause}");
            self.gone_cause.get_or_insert(cause);
            self.ep.transport_lost();
        }
        self.dispatch();
    }

    /// Stops the endpoint: sends in flight fail, waiting requests fail, the inbox empties
    /// (nothing is reported after a stop), every waiter wakes.
    pub(crate) fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.ep.stop();
        self.dispatch();
        self.inbox.clear();
        self.inbox_bytes = 0;
        self.link_statuses = 0;
        self.assembler = Assembler::default();
        self.reply_in_parts = None;
        self.replies.fail_all(|| Err(Error::Stopped));
        self.wake_everyone();
    }

    /// The pipe task ended: the transport is closed.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.task = None;
        self.wake_everyone();
    }

    pub(crate) fn wake_everyone(&mut self) {
        self.outcomes.wake_all();
        self.replies.wake_all();
        wake_all(&mut self.readers);
        self.room.wake_all();
        wake_all(&mut self.closed);
        self.wake_task();
    }
}

/// The lock around [`State`]; a poisoned lock is taken anyway (the state stays consistent:
/// nothing in it panics halfway through an update).
pub(crate) struct Shared<
    const FRAGMENT: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
>(Mutex<State<FRAGMENT, TOPIC, RX, TX, FRAME>>);

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    Shared<P, T, RX, TX, F>
{
    pub(crate) fn new(state: State<P, T, RX, TX, F>) -> Self {
        Shared(Mutex::new(state))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<P, T, RX, TX, F>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
