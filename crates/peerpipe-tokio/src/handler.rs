//! The async `PipeHandler`: NVFlare's API for async Rust, backed by the sans-IO core in one
//! task per pipe.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use peerpipe_core::{
    Config, Duration as CoreDuration, FailReason, Instant as CoreInstant, MsgId, PeerState,
};
use peerpipe_host::{Error, HandlerStats, Item, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant as TokioInstant;

use crate::guards::{Ticket, Waiting};
use crate::outgoing::Outgoing;
use crate::reconnect::Redial;
use crate::state::{Shared, State, Wait};
use crate::task::PipeTask;
use crate::{Progress, Transfer};

/// What giving an item to the endpoint returns: its id, or why not.
type CoreResult = Result<MsgId, peerpipe_core::Error>;

/// Monitors a pipe to the peer: the async counterpart of NVFlare's `PipeHandler` (and of
/// `peerpipe_std::PipeHandler`).
///
/// [`start`](Self::start) it on any `AsyncRead + AsyncWrite` (a `TcpStream`, a `UnixStream`,
/// one end of `tokio::io::duplex`, a serial port); it spawns one task that drives the pipe.
/// Send with [`send_to_peer`](Self::send_to_peer) (resolves when the peer's endpoint accepted
/// the message, or says why not) or [`request`](Self::request) (resolves with the reply);
/// receive messages and status changes (END, ABORT, GONE, restart) from
/// [`events`](Self::events), a [`Stream`], or [`recv`](Self::recv).
///
/// **Cancel-safe:** dropping any of its futures (a `select!` branch that lost, a timeout)
/// never corrupts the link. A message handed to the endpoint is still sent, acknowledged
/// and resent; only its outcome is no longer reported. A dropped call waiting for a send
/// slot leaves the queue; a dropped request's reply, should it come, is dropped and counted
/// ([`HandlerStats::late_replies`]), never queued.
///
/// **Capacities** are const generics, as in the core: `FRAGMENT`, the most message bytes
/// in one frame (a message of any length up to [`MAX_PAYLOAD`](crate::MAX_PAYLOAD) goes
/// in fragments), and `TOPIC`, the longest topic; `RX` and `TX`, the receive and send
/// slots; `FRAME`, which must be
/// [`max_encoded_len(FRAGMENT, TOPIC)`](peerpipe_core::wire::max_encoded_len) or more
/// (checked at compile time). The defaults are 1 KiB fragments, `peerpipe_std`'s 64-byte
/// topics and 8 slots each way: an endpoint of 12.75 KiB, about `RX * (FRAGMENT + TOPIC)`
/// plus a frame. Either side's fragments suit the other (each sends the smaller). The
/// crate docs weigh memory against throughput.
///
/// The handler is a cheap handle ([`Clone`]); the pipe stops when [`stop`](Self::stop) is
/// called or the last handle (including [`Events`] streams) is dropped.
///
/// ```
/// use peerpipe_tokio::{Config, Item, Message, PipeHandler};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerpipe_tokio::Error> {
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let client: PipeHandler = PipeHandler::start(a, Config::default())?;
/// let server: PipeHandler = PipeHandler::start(b, Config::default())?;
///
/// // The server answers every request.
/// tokio::spawn(async move {
///     while let Some(item) = server.recv().await {
///         if let Item::Message(req) = item {
///             let _ = server.send_to_peer(req.reply_to(b"pong".to_vec())?, None).await;
///         }
///     }
///     Ok::<(), peerpipe_tokio::Error>(())
/// });
///
/// let reply = client.request(Message::request("ping", b"hi".to_vec())?, None).await?;
/// assert_eq!(reply.data(), b"pong");
/// client.notify_end(b"bye".to_vec(), None).await?;
/// client.stop();
/// # Ok(())
/// # }
/// ```
pub struct PipeHandler<
    const FRAGMENT: usize = { crate::DEFAULT_FRAGMENT },
    const TOPIC: usize = { crate::DEFAULT_TOPIC },
    const RX: usize = { crate::DEFAULT_SLOTS },
    const TX: usize = { crate::DEFAULT_SLOTS },
    const FRAME: usize = { crate::DEFAULT_FRAME },
> {
    inner: Arc<Inner<FRAGMENT, TOPIC, RX, TX, FRAME>>,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Clone
    for PipeHandler<P, T, RX, TX, F>
{
    fn clone(&self) -> Self {
        PipeHandler {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> {
    shared: Arc<Shared<P, T, RX, TX, F>>,
    config: Config,
    session: u32,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Drop
    for Inner<P, T, RX, TX, F>
{
    fn drop(&mut self) {
        self.shared.lock().stop();
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeHandler<P, T, RX, TX, F>
{
    /// Starts a handler on `io` with these parameters (validated like the original's): the
    /// endpoint's clock starts now, a heartbeat announces it, and a task spawned on the
    /// current tokio runtime drives the pipe.
    ///
    /// On TCP, call `set_nodelay(true)` on the stream first: the task already gathers every
    /// frame that is due into one write, and Nagle's algorithm would only hold small frames
    /// back (about 40 ms per round trip against delayed ACKs).
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn start<S>(io: S, config: Config) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        Self::launch(io, config, None, |_| None)
    }

    /// Starts a handler on `io` whose pipe task gets a new connection from the
    /// [`Redial`] that `redial` makes when `io` breaks; `give_up_after` as in
    /// [`Reconnect`](crate::Reconnect).
    pub(crate) fn launch<S, R>(
        io: S,
        config: Config,
        give_up_after: Option<Duration>,
        redial: impl FnOnce(Arc<Shared<P, T, RX, TX, F>>) -> R,
    ) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
        R: Into<Option<Redial<S>>>,
    {
        let session = peerpipe_host::new_session_id();
        let mut state = State::new(config, session)?;
        state.give_up_after = give_up_after;
        let shared = Arc::new(Shared::new(state));
        let redial = redial(Arc::clone(&shared)).into();
        tokio::spawn(PipeTask::new(Arc::clone(&shared), io, redial));
        Ok(PipeHandler {
            inner: Arc::new(Inner {
                shared,
                config,
                session,
            }),
        })
    }

    /// Feeds bytes already read from the connection (a newcomer's first frame) to the
    /// endpoint, before anything the task reads.
    pub(crate) fn take_input(&self, input: &[u8]) {
        let mut st = self.inner.shared.lock();
        let now = st.now();
        st.ep.handle_bytes(now, input);
        st.wake_task();
    }

    /// Sends `msg` and resolves to its id when the peer's endpoint accepted (acknowledged)
    /// it. `timeout` (default `default_request_timeout`) bounds the whole call: waiting for
    /// a send slot, then sending and resending until acknowledged.
    ///
    /// While every send slot is taken the call waits its turn: callers waiting for a slot
    /// (sends, requests, END and ABORT alike) are served first come, first served.
    ///
    /// # Errors
    /// - [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`: the timeout passed while it waited
    ///   for a send slot; nothing was sent.
    /// - [`Error::Failed`]`(`[`FailReason::TimedOut`]`)`: sent, but not acknowledged in
    ///   time (the peer may or may not have it); [`FailReason::TooLarge`]: longer than the
    ///   peer accepts (its `max_message`), at once; other [`FailReason`]s: resends
    ///   exhausted, the peer gone, ended, aborted or restarted before acknowledging it.
    /// - [`Error::Closed`]: the conversation is over (END or ABORT sent or received, peer
    ///   gone), before or while it waited for a slot.
    /// - [`Error::Stopped`]: the handler was stopped.
    /// - [`Error::Invalid`]: the topic is longer than `TOPIC`, or the timeout is zero;
    ///   never because the handler is busy (checked before any wait).
    pub async fn send_to_peer(
        &self,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<MsgId, Error> {
        let deadline = self.deadline(timeout)?;
        let out = Outgoing::message::<T>(msg)?;
        let id = self
            .enqueue(deadline, Wait::Outcome, |st, now, left| {
                st.send(now, &out, Some(left))
            })
            .await?;
        let guard = Waiting::new(&self.inner.shared, id, Wait::Outcome);
        match tokio::time::timeout_at(deadline, guard.outcome()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Failed(FailReason::TimedOut)),
        }
    }

    /// Sends `msg` without waiting for a slot or for its outcome (it is still acknowledged
    /// and resent, for `default_request_timeout`); returns its id, or refuses at once.
    ///
    /// It never queues: at most `TX` sends are held (the send slots), so a peer that does
    /// not read bounds what this call can pile up.
    ///
    /// # Errors
    /// - [`Error::QueueFull`]: every send slot is taken, or other calls already wait for
    ///   one (it does not overtake them). Nothing was sent; try again later, or use
    ///   [`send_to_peer`](Self::send_to_peer), which waits its turn.
    /// - [`Error::Closed`], [`Error::Stopped`], [`Error::Invalid`]: as for
    ///   [`send_to_peer`](Self::send_to_peer).
    pub fn send_no_wait(&self, msg: Message) -> Result<MsgId, Error> {
        let mut st = self.inner.shared.lock();
        st.check_running()?;
        let out = Outgoing::message::<T>(msg)?;
        if !st.room.is_empty() {
            return Err(Error::QueueFull);
        }
        let now = st.now();
        match st.send(now, &out, None) {
            Err(peerpipe_core::Error::SendQueueFull) => Err(Error::QueueFull),
            Err(e) => Err(st.refused(e)),
            Ok(id) => {
                st.wake_task();
                Ok(id)
            }
        }
    }

    /// Sends a request and resolves with its reply, within `timeout` overall (default
    /// `default_request_timeout`): waiting for a send slot, delivery and the reply.
    ///
    /// The request's id is the reply's [`req_id`](Message::req_id) on success, and is in
    /// [`Error::NoReply`] when no reply came; log it to match the peer's logs.
    ///
    /// A reply that arrives after this call gave up (it timed out, failed, or its future
    /// was dropped) is dropped and counted in [`HandlerStats::late_replies`]: it never
    /// takes a place in the application's queue. The last
    /// [`ABANDONED_REQUESTS`](crate::ABANDONED_REQUESTS) requests that gave up are
    /// remembered for this.
    ///
    /// # Errors
    /// - [`Error::NoReply`]`{ request }`: the request was delivered (the peer's endpoint
    ///   acknowledged it) but no reply came in time.
    /// - [`Error::Failed`]`(`[`FailReason::TimedOut`]`)`: the request was sent but not
    ///   acknowledged in time: the peer may never have received it.
    /// - [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`: the timeout passed while it waited
    ///   for a send slot; nothing was sent.
    /// - [`Error::Failed`] with another reason: not delivered (resends exhausted, peer
    ///   gone), or delivered and then the peer ended, aborted or went away before replying.
    /// - [`Error::Closed`], [`Error::Stopped`]: as for [`send_to_peer`](Self::send_to_peer).
    /// - [`Error::Invalid`]: `msg` is not a request, or is invalid, or the timeout is zero.
    pub async fn request(&self, msg: Message, timeout: Option<Duration>) -> Result<Message, Error> {
        if !msg.is_request() {
            return Err(Error::Invalid(peerpipe_core::Error::InvalidTopic));
        }
        let deadline = self.deadline(timeout)?;
        let out = Outgoing::message::<T>(msg)?;
        let id = self
            .enqueue(deadline, Wait::Reply, |st, now, left| {
                st.send(now, &out, Some(left))
            })
            .await?;
        let mut guard = Waiting::new(&self.inner.shared, id, Wait::Reply);
        let r = match tokio::time::timeout_at(deadline, guard.reply()).await {
            Ok(r) => r,
            Err(_) if self.inner.shared.lock().delivered(id) => Err(Error::NoReply { request: id }),
            Err(_) => Err(Error::Failed(FailReason::TimedOut)),
        };
        guard.answered = r.is_ok();
        r
    }

    /// Sends END with `data`, reliably and after everything sent before, and resolves when
    /// the peer's endpoint accepted it. Later sends are refused with
    /// [`Error::Closed`]. `timeout` (`None`: `default_request_timeout`) bounds the whole
    /// call: like any send, END waits its turn for a send slot (first come, first served)
    /// and is then resent until acknowledged.
    ///
    /// # Errors
    /// As for [`send_to_peer`](Self::send_to_peer): [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`
    /// when no slot came free in time (END was not sent, and the conversation stays open),
    /// [`Error::Failed`]`(`[`FailReason::TimedOut`]`)` when END was sent but not
    /// acknowledged in time, [`Error::Closed`] when the conversation was already over,
    /// [`Error::Stopped`], and [`Error::Invalid`] only for `data` beyond
    /// [`MAX_PAYLOAD`](crate::MAX_PAYLOAD) or a zero timeout. A busy send queue is never
    /// `Invalid`. END data of any length goes in fragments, like a message.
    ///
    /// An error does not prove that the peer missed the END: when the connection breaks
    /// after the peer took it but before its acknowledgement came back, the peer, whose
    /// conversation is over, takes no new connection, and the call fails with the peer
    /// gone or timed out.
    pub async fn notify_end(
        &self,
        data: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        self.close_with(Outgoing::close(true, data.into()), timeout)
            .await
    }

    /// Sends ABORT with `data`, like [`notify_end`](Self::notify_end) (same timeout and
    /// errors).
    pub async fn notify_abort(
        &self,
        data: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        self.close_with(Outgoing::close(false, data.into()), timeout)
            .await
    }

    /// Stops sending heartbeats and checking the peer's silence. Messages still flow.
    pub fn pause(&self) {
        let mut st = self.inner.shared.lock();
        let now = st.now();
        st.ep.pause(now);
        st.wake_task();
    }

    /// Restarts heartbeats (one at once) and the silence check.
    pub fn resume(&self) {
        let mut st = self.inner.shared.lock();
        let now = st.now();
        st.ep.resume(now);
        st.wake_task();
    }

    /// Stops the handler and closes the transport. Nothing more is sent (send END first to
    /// tell the peer); pending sends and requests fail with [`Error::Stopped`]; items not yet
    /// received are discarded and the event stream ends. (The original's `close_pipe` choice
    /// does not apply: the task owns the transport, and closes it.)
    pub fn stop(&self) {
        self.inner.shared.lock().stop();
    }

    /// Resolves when the pipe task has ended and the transport is closed: after
    /// [`stop`](Self::stop), or when the transport broke.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            if st.finished {
                return Poll::Ready(());
            }
            st.wait_closed(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next message or status change; `None` once the handler stopped or its transport
    /// closed and every item was taken. Cancel-safe.
    pub async fn recv(&self) -> Option<Item> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is ready, without waiting; `None` when none is (the original's
    /// `get_next`).
    pub fn get_next(&self) -> Option<Item> {
        let waker = std::task::Waker::noop();
        match self.inner.shared.lock().next_item(waker) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }

    /// Messages and status changes as a [`Stream`]. Several streams (and [`recv`](Self::recv)
    /// callers) share one queue: each item goes to one of them.
    pub fn events(&self) -> Events<P, T, RX, TX, F> {
        Events {
            handler: self.clone(),
        }
    }

    /// Where the peer stands.
    pub fn peer_state(&self) -> PeerState {
        self.inner.shared.lock().ep.peer_state()
    }

    /// This handler's session id (new at every start).
    pub fn session(&self) -> u32 {
        self.inner.session
    }

    /// The parameters it was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// What the handler did and holds: the endpoint's counters (frames, resends,
    /// duplicates, wire errors, refusals), the calls waiting for a send slot
    /// (`waiting_sends`), the items waiting for the application (`queued_items`: in its
    /// queue, and held back in the endpoint while that is full; `queued_bytes`: the data
    /// and topics of those in its queue, which stops taking more at
    /// [`QUEUE_BYTES`](crate::QUEUE_BYTES)), the replies dropped
    /// because their request had given up (`late_replies`), and the encoded bytes the
    /// transport has not taken yet (`unsent_bytes`, never more than
    /// [`UNSENT_LIMIT`](crate::UNSENT_LIMIT) plus one frame).
    pub fn stats(&self) -> HandlerStats {
        self.inner.shared.lock().stats()
    }

    /// How far the oldest send under way and the message arriving have got (see
    /// [`Progress`]): for a progress bar, from another task (a caller waiting in
    /// [`send_to_peer`](Self::send_to_peer) learns its message's id only when it returns).
    ///
    /// ```
    /// use std::time::Duration;
    /// use peerpipe_tokio::{Config, Message, PipeHandler, DEFAULT_FRAGMENT};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peerpipe_tokio::Error> {
    /// let (a, b) = tokio::io::duplex(64 * 1024);
    /// let a: PipeHandler = PipeHandler::start(a, Config::default())?;
    /// let b: PipeHandler = PipeHandler::start(b, Config::default())?;
    /// let data = vec![7u8; 64 * DEFAULT_FRAGMENT];
    /// let send = tokio::spawn({
    ///     let a = a.clone();
    ///     async move { a.send_to_peer(Message::request("file", data)?, None).await }
    /// });
    /// let receive = tokio::spawn(async move { b.recv().await });
    /// // Meanwhile another task watches (a real program would draw a bar).
    /// while !send.is_finished() {
    ///     if let Some(t) = a.progress().sending {
    ///         assert!(t.done <= t.total && t.total == 64 * DEFAULT_FRAGMENT as u64);
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    /// }
    /// send.await.unwrap()?;
    /// assert!(receive.await.unwrap().is_some());
    /// assert_eq!(a.progress().sending, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn progress(&self) -> Progress {
        let st = self.inner.shared.lock();
        Progress::new(
            st.sending.iter().find_map(|&id| st.transfer(id)),
            st.receiving(),
        )
    }

    /// Every message handed to the endpoint whose outcome is not known yet (at most `TX`),
    /// oldest first, with the bytes the peer has acknowledged: find an id from
    /// [`send_no_wait`](Self::send_no_wait) among them. Calls still waiting for a send slot
    /// are not among them. Acknowledged bytes grow fragment by fragment and reach the
    /// length just before the outcome: delivered.
    pub fn sending(&self) -> Vec<Transfer> {
        let st = self.inner.shared.lock();
        st.sending
            .iter()
            .filter_map(|&id| st.transfer(id))
            .collect()
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.inner.shared.lock().next_item(cx.waker())
    }

    /// The deadline of a call with this `timeout` (`None`: `default_request_timeout`).
    fn deadline(&self, timeout: Option<Duration>) -> Result<TokioInstant, Error> {
        let st = self.inner.shared.lock();
        st.check_running()?;
        st.deadline(timeout)
    }

    /// END or ABORT: waits its turn for a send slot, then for its outcome, by `timeout`.
    async fn close_with(
        &self,
        out: Result<Outgoing, Error>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        let deadline = self.deadline(timeout)?;
        // Refused before it queues: a bad argument is not reported after a wait.
        let out = out?;
        let id = self
            .enqueue(deadline, Wait::Outcome, |st, now, left| {
                st.send(now, &out, Some(left))
            })
            .await?;
        let guard = Waiting::new(&self.inner.shared, id, Wait::Outcome);
        match tokio::time::timeout_at(deadline, guard.outcome()).await {
            Ok(r) => r.map(drop),
            Err(_) => Err(Error::Failed(FailReason::TimedOut)),
        }
    }

    /// Gives an item to the endpoint with `give` (with the time left until `deadline`) once
    /// it is this caller's turn and a send slot is free, and registers the wait for its
    /// outcome or reply. Its caller puts a [`Waiting`] guard on the id at once (no await in
    /// between), so a dropped future leaves nothing behind. Callers are served first come,
    /// first served; [`Error::Failed`]`(`[`FailReason::NoSlot`]`)` when `deadline` passes
    /// first.
    async fn enqueue(
        &self,
        deadline: TokioInstant,
        wait: Wait,
        mut give: impl FnMut(&mut State<P, T, RX, TX, F>, CoreInstant, CoreDuration) -> CoreResult,
    ) -> Result<MsgId, Error> {
        let mut ticket = Ticket::new(&self.inner.shared);
        let queued = poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            st.check_running()?;
            if !st.room.is_turn(ticket.number) {
                st.room.wait(&mut ticket.number, cx.waker());
                return Poll::Pending;
            }
            let now = st.now();
            let left = CoreDuration::from(deadline.saturating_duration_since(TokioInstant::now()));
            let r = if left.is_zero() {
                Err(Error::Failed(FailReason::NoSlot))
            } else {
                match give(&mut st, now, left) {
                    Err(peerpipe_core::Error::SendQueueFull) => {
                        st.room.wait(&mut ticket.number, cx.waker());
                        return Poll::Pending;
                    }
                    r => r.map_err(|e| st.refused(e)),
                }
            };
            if let Some(t) = ticket.number.take() {
                st.room.leave(t);
            }
            if let Ok(id) = r {
                st.wait_for(id, wait);
                st.wake_task();
            }
            Poll::Ready(r)
        });
        match tokio::time::timeout_at(deadline, queued).await {
            Ok(r) => r,
            Err(_) => Err(Error::Failed(FailReason::NoSlot)),
        }
    }
}

/// The handler's messages and status changes as a [`Stream`]; from
/// [`PipeHandler::events`]. Ends once the handler stopped or its transport closed and every
/// item was taken. Keeps the pipe alive while it exists.
pub struct Events<
    const FRAGMENT: usize = { crate::DEFAULT_FRAGMENT },
    const TOPIC: usize = { crate::DEFAULT_TOPIC },
    const RX: usize = { crate::DEFAULT_SLOTS },
    const TX: usize = { crate::DEFAULT_SLOTS },
    const FRAME: usize = { crate::DEFAULT_FRAME },
> {
    handler: PipeHandler<FRAGMENT, TOPIC, RX, TX, FRAME>,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Stream
    for Events<P, T, RX, TX, F>
{
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.handler.poll_recv(cx)
    }
}
