//! What the pipe task and the handles share: the endpoint, its clock, the waiting callers and
//! the queue of items for the application, behind one lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use peerpipe_core::{Config, Endpoint, Event, FailReason, GoneReason, Instant, MsgId, Outcome};
use peerpipe_std::{Error, Item, Message, Status};
use tokio::time::Instant as TokioInstant;

/// A caller waiting for one value: the value once it is known, and who to wake.
struct Slot<V> {
    value: Option<V>,
    waker: Option<Waker>,
}

impl<V> Slot<V> {
    const EMPTY: Self = Slot {
        value: None,
        waker: None,
    };

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Callers waiting on message ids.
type Waiters<V> = HashMap<MsgId, Slot<V>>;

/// Puts `value` into the waiter for `id`, if someone waits; returns whether someone did.
fn fulfil<V>(waiters: &mut Waiters<V>, id: MsgId, value: V) -> bool {
    match waiters.get_mut(&id) {
        Some(slot) => {
            slot.value = Some(value);
            slot.wake();
            true
        }
        None => false,
    }
}

/// Adds `waker` to `list` unless it would wake the same task as one already there.
fn enlist(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

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
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
> {
    pub(crate) ep: Box<Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>>,
    /// The tokio instant of the endpoint's `Instant::ZERO`.
    origin: TokioInstant,
    /// The last instant handed to the endpoint: its clock never goes back.
    last: Instant,
    /// Items for the application, at most `RX` (then the endpoint holds the rest, and the
    /// peer's resends cover what it cannot take).
    inbox: VecDeque<Item>,
    /// Readers waiting for an item.
    readers: Vec<Waker>,
    outcomes: Waiters<Result<MsgId, Error>>,
    replies: Waiters<Result<Message, Error>>,
    /// Senders waiting for a free send slot.
    room: Vec<Waker>,
    /// The pipe task, to be woken when there may be frames to send or a stop to act on.
    task: Option<Waker>,
    /// Why the transport broke, for [`Status::Gone`].
    gone_cause: Option<String>,
    /// [`stop`](crate::PipeHandler::stop) was called.
    pub(crate) stopping: bool,
    /// The pipe task ended: the transport is closed.
    pub(crate) finished: bool,
    /// Callers of [`closed`](crate::PipeHandler::closed).
    closed: Vec<Waker>,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    State<P, T, RX, TX, F>
{
    /// A new endpoint whose clock starts now.
    pub(crate) fn new(config: Config, session: u32) -> Result<Self, Error> {
        let ep = Endpoint::new(config, session, Instant::ZERO).map_err(Error::Config)?;
        Ok(State {
            ep: Box::new(ep),
            origin: TokioInstant::now(),
            last: Instant::ZERO,
            inbox: VecDeque::new(),
            readers: Vec::new(),
            outcomes: HashMap::new(),
            replies: HashMap::new(),
            room: Vec::new(),
            task: None,
            gone_cause: None,
            stopping: false,
            finished: false,
            closed: Vec::new(),
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
        let timeout = timeout.unwrap_or(self.ep.config().default_request_timeout.into());
        if timeout.is_zero() {
            return Err(Error::Invalid(peerpipe_core::Error::ZeroTimeout));
        }
        Ok(TokioInstant::now() + timeout)
    }

    /// Registers the pipe task's waker.
    pub(crate) fn set_task(&mut self, waker: &Waker) {
        if !self.task.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.task = Some(waker.clone());
        }
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
            Wait::Outcome => drop(self.outcomes.insert(id, Slot::EMPTY)),
            Wait::Reply => drop(self.replies.insert(id, Slot::EMPTY)),
        }
    }

    /// Stops waiting for `id` (the caller's future was dropped, or has its value).
    pub(crate) fn forget(&mut self, id: MsgId, wait: Wait) {
        match wait {
            Wait::Outcome => drop(self.outcomes.remove(&id)),
            Wait::Reply => drop(self.replies.remove(&id)),
        }
    }

    /// The outcome of send `id` if known, else registers `waker`.
    pub(crate) fn take_outcome(
        &mut self,
        id: MsgId,
        waker: &Waker,
    ) -> Option<Result<MsgId, Error>> {
        take(&mut self.outcomes, id, waker)
    }

    /// The reply to request `id` (or why there is none) if known, else registers `waker`.
    pub(crate) fn take_reply(
        &mut self,
        id: MsgId,
        waker: &Waker,
    ) -> Option<Result<Message, Error>> {
        take(&mut self.replies, id, waker)
    }

    /// Registers a sender waiting for a free send slot.
    pub(crate) fn wait_for_room(&mut self, waker: &Waker) {
        enlist(&mut self.room, waker);
    }

    /// The next item for the application; `Ready(None)` when none will ever come; else
    /// registers `waker`.
    pub(crate) fn next_item(&mut self, waker: &Waker) -> Poll<Option<Item>> {
        if self.inbox.is_empty() {
            self.dispatch();
        }
        match self.inbox.pop_front() {
            Some(item) => {
                // Room in the inbox: the endpoint may hand over more, and once it has, it may
                // have room to announce (a frame for the task to send).
                if self.dispatch() {
                    self.wake_task();
                }
                Poll::Ready(Some(item))
            }
            None if self.stopping || self.finished => Poll::Ready(None),
            None => {
                enlist(&mut self.readers, waker);
                Poll::Pending
            }
        }
    }

    /// Registers a caller of `closed`.
    pub(crate) fn wait_closed(&mut self, waker: &Waker) {
        enlist(&mut self.closed, waker);
    }

    /// Moves the endpoint's outcomes to their waiters and its events into the inbox (as far
    /// as it has room), routing replies to the requests that wait for them. Returns whether
    /// it took anything from the endpoint.
    pub(crate) fn dispatch(&mut self) -> bool {
        let mut settled = false;
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            self.settle(id, outcome);
            settled = true;
        }
        let mut arrived = false;
        let mut took = settled;
        while self.inbox.len() < RX.max(1) {
            let Some(event) = self.ep.poll_event() else {
                break;
            };
            took = true;
            let item = match event {
                Event::SendOutcome { id, outcome } => {
                    self.settle(id, outcome);
                    settled = true;
                    continue;
                }
                Event::Message(m) => {
                    let m = Message::from_core(&m);
                    match m.req_id() {
                        Some(r) if self.replies.contains_key(&r) => {
                            fulfil(&mut self.replies, r, Ok(m));
                            continue;
                        }
                        _ => Item::Message(m),
                    }
                }
                Event::End(data) => {
                    self.fail_replies(FailReason::PeerEnded);
                    Item::Status(Status::End(data.to_vec()))
                }
                Event::Abort(data) => {
                    self.fail_replies(FailReason::PeerAborted);
                    Item::Status(Status::Abort(data.to_vec()))
                }
                Event::Gone(reason) => {
                    self.fail_replies(FailReason::PeerGone);
                    let cause = match reason {
                        GoneReason::TransportLost => self.gone_cause.clone(),
                        _ => None,
                    };
                    Item::Status(Status::Gone { reason, cause })
                }
                Event::PeerRestarted => Item::Status(Status::PeerRestarted),
                _ => continue,
            };
            self.inbox.push_back(item);
            arrived = true;
        }
        if settled {
            wake_all(&mut self.room);
        }
        if arrived {
            wake_all(&mut self.readers);
        }
        took
    }

    /// Settles a send: its waiter learns the outcome; a request that failed learns it too
    /// (a delivered request waits on for its reply).
    fn settle(&mut self, id: MsgId, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => {
                fulfil(&mut self.outcomes, id, Ok(id));
            }
            Outcome::Failed(r) => {
                if !fulfil(&mut self.outcomes, id, Err(Error::from(r))) {
                    fulfil(&mut self.replies, id, Err(Error::from(r)));
                }
            }
        }
    }

    /// The peer will send nothing more: requests still waiting for a reply fail now.
    fn fail_replies(&mut self, reason: FailReason) {
        for slot in self.replies.values_mut() {
            if slot.value.is_none() {
                slot.value = Some(Err(Error::Failed(reason)));
                slot.wake();
            }
        }
    }

    /// The transport broke: the peer is gone, with the error as the cause.
    pub(crate) fn lose_transport(&mut self, cause: String) {
        log::warn!("peerpipe-tokio: transport lost: {cause}");
        self.gone_cause.get_or_insert(cause);
        self.ep.transport_lost();
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
        self.inbox.clear();
        self.dispatch();
        self.inbox.clear();
        for slot in self.replies.values_mut() {
            if slot.value.is_none() {
                slot.value = Some(Err(Error::Stopped));
            }
        }
        self.wake_everyone();
    }

    /// The pipe task ended: the transport is closed.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.task = None;
        self.wake_everyone();
    }

    fn wake_everyone(&mut self) {
        self.outcomes.values_mut().for_each(Slot::wake);
        self.replies.values_mut().for_each(Slot::wake);
        wake_all(&mut self.readers);
        wake_all(&mut self.room);
        wake_all(&mut self.closed);
        self.wake_task();
    }
}

fn take<V>(waiters: &mut Waiters<V>, id: MsgId, waker: &Waker) -> Option<V> {
    let slot = waiters.get_mut(&id)?;
    match slot.value.take() {
        Some(v) => {
            waiters.remove(&id);
            Some(v)
        }
        None => {
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                slot.waker = Some(waker.clone());
            }
            None
        }
    }
}

/// The lock around [`State`]; a poisoned lock is taken anyway (the state stays consistent:
/// nothing in it panics halfway through an update).
pub(crate) struct Shared<
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
>(Mutex<State<PAYLOAD, TOPIC, RX, TX, FRAME>>);

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
