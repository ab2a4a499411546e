//! What other tasks hold: sending, requests, events.

use core::future::poll_fn;
use core::task::Poll;

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::RawMutex;
use peerpipe_core::wire::Item;
use peerpipe_core::{Duration, Endpoint, Error, Event, FailReason, Message, MsgId, PeerState};

use super::state::{Wait, Waiter};
use super::{Clock, RequestError, State};
use crate::DriverStats;

/// The application's side of an async driver: made by [`new`](super::new); `Copy`, so every
/// task may have one. Each call takes the state's lock for a moment and wakes the runner;
/// nothing polls or allocates.
pub struct Handle<
    'a,
    M: RawMutex,
    C: Clock,
    const PAYLOAD: usize = 128,
    const TOPIC: usize = 32,
    const RX: usize = 4,
    const TX: usize = 4,
    const FRAME: usize = 223,
    const EVENTS: usize = 4,
> {
    pub(crate) state: &'a State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    pub(crate) clock: &'a C,
}

impl<
        M: RawMutex,
        C: Clock,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const EVENTS: usize,
    > Clone for Handle<'_, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<
        M: RawMutex,
        C: Clock,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const EVENTS: usize,
    > Copy for Handle<'_, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>
{
}

/// Frees a waiter slot when the waiting future ends or is dropped (cancelled).
struct Slot<
    's,
    M: RawMutex,
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
    const E: usize,
> {
    state: &'s State<M, P, T, RX, TX, F, E>,
    index: usize,
}

impl<
        M: RawMutex,
        const P: usize,
        const T: usize,
        const RX: usize,
        const TX: usize,
        const F: usize,
        const E: usize,
    > Drop for Slot<'_, M, P, T, RX, TX, F, E>
{
    fn drop(&mut self) {
        self.state.free(self.index);
    }
}

impl<
        'a,
        M: RawMutex,
        C: Clock,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const EVENTS: usize,
    > Handle<'a, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>
{
    /// Sends `message` and returns its id at once; its outcome is not reported (use
    /// [`deliver`](Self::deliver) or [`request`](Self::request) to await one). Errors as
    /// [`Endpoint::send`]: [`Error::SendQueueFull`] when all `TX` send slots are taken
    /// (back-pressure: try again after an outcome, nothing was queued).
    pub fn send(
        &self,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<Duration>,
    ) -> Result<MsgId, Error> {
        let now = self.clock.now();
        let sent = self
            .state
            .lock(|inner| inner.endpoint.send(now, message, timeout));
        self.state.wake();
        sent
    }

    /// Sends a message of `len` bytes whose bytes the runner reads from the source given to
    /// [`Runner::run`](super::Runner::run), fragment by fragment (see
    /// [`Endpoint::send_from`]); returns its id at once, its outcome is not reported. The
    /// source must supply the same bytes each time it is asked, until the send is settled.
    pub fn send_from(
        &self,
        item: Item<'_>,
        len: u64,
        timeout: Option<Duration>,
    ) -> Result<MsgId, Error> {
        let now = self.clock.now();
        let sent = self
            .state
            .lock(|inner| inner.endpoint.send_from(now, item, len, timeout));
        self.state.wake();
        sent
    }

    /// Sends `message` and waits until the peer's endpoint accepted it (`Ok`) or the send
    /// failed. Dropping the future stops the wait, not the send.
    pub async fn deliver(
        &self,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<Duration>,
    ) -> Result<(), RequestError> {
        let (waiting, _) = self.enqueue(message, timeout, false)?;
        match poll_fn(|cx| self.state.poll_waiter(waiting.slot.index, cx)).await {
            Wait::Failed(reason) => Err(RequestError::Failed(reason)),
            _ => Ok(()),
        }
    }

    /// Sends the request `message` and waits for its reply, at most `timeout` (`None`: the
    /// endpoint's `default_request_timeout`), which bounds the delivery too. A reply that
    /// comes in parts goes to [`receive`](Self::receive) as [`Event::Part`]s and the request
    /// ends with [`RequestError::ReplyInParts`]. Dropping the future stops the wait (a late
    /// reply then goes to `receive`).
    pub async fn request(
        &self,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<Duration>,
    ) -> Result<Message<PAYLOAD, TOPIC>, RequestError> {
        let (slot, deadline) = self.enqueue(message, timeout, true)?;
        let id = slot.id;
        let wait = poll_fn(|cx| self.state.poll_waiter(slot.slot.index, cx));
        match select(wait, self.clock.at(deadline)).await {
            Either::First(Wait::Replied(reply)) => Ok(reply),
            Either::First(Wait::Failed(reason)) => Err(RequestError::Failed(reason)),
            Either::First(Wait::InParts) => Err(RequestError::ReplyInParts(id)),
            Either::First(_) | Either::Second(()) => Err(RequestError::TimedOut),
        }
    }

    /// Ends the conversation: END with `data`, after every message sent before it (see
    /// [`Endpoint::notify_end`]).
    pub fn notify_end(&self, data: &[u8]) -> Result<MsgId, Error> {
        let now = self.clock.now();
        let id = self
            .state
            .lock(|inner| inner.endpoint.notify_end(now, data));
        self.state.wake();
        id
    }

    /// Aborts the conversation: ABORT with `data` (see [`Endpoint::notify_abort`]).
    pub fn notify_abort(&self, data: &[u8]) -> Result<MsgId, Error> {
        let now = self.clock.now();
        let id = self
            .state
            .lock(|inner| inner.endpoint.notify_abort(now, data));
        self.state.wake();
        id
    }

    /// The next event: a message or a part of one from the peer (replies that a
    /// [`request`](Self::request) waits for excepted), a cut, END, ABORT, GONE, a peer
    /// restart. Events wait in the endpoint while the channel is full: a task that does not
    /// receive holds the peer back (its sends wait for room), nothing is dropped.
    pub async fn receive(&self) -> Event<PAYLOAD, TOPIC> {
        let event = self.state.events.receive().await;
        // Room in the channel: the runner moves the next events on.
        self.state.wake();
        event
    }

    /// The next event if one is waiting (see [`receive`](Self::receive)).
    pub fn try_receive(&self) -> Option<Event<PAYLOAD, TOPIC>> {
        let event = self.state.events.try_receive().ok();
        if event.is_some() {
            self.state.wake();
        }
        event
    }

    /// Waits until at least `slots` of the `TX` send slots are free (at most `TX` are
    /// waited for): a task that must answer without being refused waits here first. Slots
    /// free as sends are settled; one task at a time should wait here (a second one takes
    /// the wake-up over, and the first is polled again only when its executor polls it).
    pub async fn room(&self, slots: usize) {
        poll_fn(|cx| {
            self.state.lock(|inner| {
                if TX.saturating_sub(inner.endpoint.pending_sends()) >= slots.min(TX) {
                    Poll::Ready(())
                } else {
                    inner.room.register(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// Where the peer stands.
    pub fn peer_state(&self) -> PeerState {
        self.state.lock(|inner| inner.endpoint.peer_state())
    }

    /// Sends not yet settled (at most `TX`).
    pub fn pending_sends(&self) -> usize {
        self.state.lock(|inner| inner.endpoint.pending_sends())
    }

    /// Byte counts and port errors of the runner.
    pub fn stats(&self) -> DriverStats {
        self.state.lock(|inner| inner.stats)
    }

    /// Runs `f` on the endpoint (its statistics, [`Endpoint::progress`], anything this
    /// handle does not offer), then wakes the runner.
    pub fn with_endpoint<R>(
        &self,
        f: impl FnOnce(&mut Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>) -> R,
    ) -> R {
        let r = self.state.lock(|inner| f(&mut inner.endpoint));
        self.state.wake();
        r
    }

    /// Puts a new endpoint in place (after END or ABORT, to start a new conversation) and
    /// returns the old one. Tasks still waiting on the old one's sends fail with
    /// [`FailReason::Stopped`]; events of the old one already in the channel stay there. A
    /// frame of the old one being written is finished first.
    pub fn replace_endpoint(
        &self,
        endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>,
    ) -> Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME> {
        let old = self.state.lock(|inner| {
            inner.fail_all(FailReason::Stopped);
            inner.room.wake();
            core::mem::replace(&mut inner.endpoint, endpoint)
        });
        self.state.wake();
        old
    }

    /// Sends `message` with a waiter slot for its outcome (and reply); returns the slot and
    /// the instant the wait ends.
    fn enqueue(
        &self,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<Duration>,
        reply: bool,
    ) -> Result<
        (
            Waiting<'a, M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
            peerpipe_core::Instant,
        ),
        RequestError,
    > {
        let now = self.clock.now();
        let (index, id, span) = self.state.lock(|inner| {
            let index = inner
                .free_waiter()
                .ok_or(RequestError::Send(Error::SendQueueFull))?;
            let id = inner
                .endpoint
                .send(now, message, timeout)
                .map_err(RequestError::Send)?;
            if let Some(w) = inner.waiters.get_mut(index) {
                *w = Waiter {
                    id: Some(id),
                    reply,
                    ..Waiter::FREE
                };
            }
            let default = inner.endpoint.config().default_request_timeout;
            let span = timeout.unwrap_or(Duration::from_micros(
                u64::try_from(default.as_micros()).unwrap_or(u64::MAX),
            ));
            Ok((index, id, span))
        })?;
        self.state.wake();
        Ok((
            Waiting {
                slot: Slot {
                    state: self.state,
                    index,
                },
                id,
            },
            now + span,
        ))
    }
}

/// A taken waiter slot and the id of the send it waits for.
struct Waiting<
    's,
    M: RawMutex,
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
    const E: usize,
> {
    slot: Slot<'s, M, P, T, RX, TX, F, E>,
    id: MsgId,
}
