//! The async `PipeHandler`: NVFlare's API for async Rust, backed by the sans-IO core in one
//! task per pipe.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use peerpipe_core::{Config, MsgId, PeerState, Stats};
use peerpipe_std::{Error, Item, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant as TokioInstant;

use crate::state::{Shared, State, Wait};
use crate::task::PipeTask;

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
/// and resent; only its outcome is no longer reported.
///
/// **Capacities** are const generics, as in the core: `PAYLOAD` and `TOPIC` bound a message;
/// `RX` and `TX` are the receive and send slots; `FRAME` must be
/// [`max_encoded_len(PAYLOAD, TOPIC)`](peerpipe_core::wire::max_encoded_len) or more
/// (checked at compile time). The defaults match `peerpipe_std` (8 KiB payloads, 64-byte
/// topics) with 8 slots each way; an endpoint takes about `(RX + TX + 1) * PAYLOAD` bytes, so
/// a server with thousands of pipes of small messages picks smaller ones (see the
/// `many_pipes` example).
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
/// client.notify_end(b"bye".to_vec()).await?;
/// client.stop();
/// # Ok(())
/// # }
/// ```
pub struct PipeHandler<
    const PAYLOAD: usize = { crate::DEFAULT_PAYLOAD },
    const TOPIC: usize = { crate::DEFAULT_TOPIC },
    const RX: usize = { crate::DEFAULT_SLOTS },
    const TX: usize = { crate::DEFAULT_SLOTS },
    const FRAME: usize = { crate::DEFAULT_FRAME },
> {
    inner: Arc<Inner<PAYLOAD, TOPIC, RX, TX, FRAME>>,
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
        let session = peerpipe_std::new_session_id();
        let shared = Arc::new(Shared::new(State::new(config, session)?));
        tokio::spawn(PipeTask::new(Arc::clone(&shared), io));
        Ok(PipeHandler {
            inner: Arc::new(Inner {
                shared,
                config,
                session,
            }),
        })
    }

    /// Sends `msg` and resolves when the peer's endpoint accepted it (to its id) or it failed:
    /// timed out (`timeout`, default `default_request_timeout`, resends included), resends
    /// exhausted, the peer gone, ended or aborted, or the handler stopped. While every send
    /// slot is taken it waits for one (within the same timeout).
    pub async fn send_to_peer(
        &self,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<MsgId, Error> {
        let (id, deadline) = self.submit(&msg, timeout, Wait::Outcome).await?;
        let guard = Waiting::new(&self.inner.shared, id, Wait::Outcome);
        match tokio::time::timeout_at(deadline, guard.outcome()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Failed(peerpipe_core::FailReason::TimedOut)),
        }
    }

    /// Sends `msg` without waiting for its outcome (it is still acknowledged and resent);
    /// returns its id, or an error at once when it cannot be queued (every send slot taken:
    /// `Invalid(SendQueueFull)`, stopped, closed, invalid).
    pub fn send_no_wait(&self, msg: &Message) -> Result<MsgId, Error> {
        let mut st = self.inner.shared.lock();
        st.check_running()?;
        let now = st.now();
        let id = st.ep.send(now, msg.to_core()?, None)?;
        st.wake_task();
        Ok(id)
    }

    /// Sends a request and resolves with its reply (matched by `req_id`), within `timeout`
    /// overall (default `default_request_timeout`): [`Error::NoReply`] when the request was
    /// delivered but no reply came in time.
    pub async fn request(&self, msg: Message, timeout: Option<Duration>) -> Result<Message, Error> {
        if !msg.is_request() {
            return Err(Error::Invalid(peerpipe_core::Error::InvalidTopic));
        }
        let (id, deadline) = self.submit(&msg, timeout, Wait::Reply).await?;
        let guard = Waiting::new(&self.inner.shared, id, Wait::Reply);
        match tokio::time::timeout_at(deadline, guard.reply()).await {
            Ok(r) => r,
            Err(_) => Err(Error::NoReply { request: id }),
        }
    }

    /// Sends END with `data`, reliably and after everything sent before, and resolves when
    /// the peer accepted it or it failed. Later sends are refused.
    pub async fn notify_end(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        let data = data.into();
        self.close_with(|st, now| st.ep.notify_end(now, &data))
            .await
    }

    /// Sends ABORT with `data`, like [`notify_end`](Self::notify_end).
    pub async fn notify_abort(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        let data = data.into();
        self.close_with(|st, now| st.ep.notify_abort(now, &data))
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

    /// The next item if one is ready (the original's `get_next`).
    pub fn try_recv(&self) -> Option<Item> {
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

    /// The endpoint's counters (frames, resends, wire errors, ...).
    pub fn stats(&self) -> Stats {
        *self.inner.shared.lock().ep.stats()
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.inner.shared.lock().next_item(cx.waker())
    }

    /// Gives `msg` to the endpoint once a send slot is free, and starts waiting for `wait`;
    /// within `timeout` (default `default_request_timeout`), which it returns as a deadline.
    async fn submit(
        &self,
        msg: &Message,
        timeout: Option<Duration>,
        wait: Wait,
    ) -> Result<(MsgId, TokioInstant), Error> {
        let deadline = {
            let st = self.inner.shared.lock();
            st.check_running()?;
            st.deadline(timeout)?
        };
        let core = msg.to_core::<P, T>()?;
        let queued = self.enqueue(wait, |st, now| {
            let left = deadline.saturating_duration_since(TokioInstant::now());
            st.ep.send(now, core.clone(), Some(left.into()))
        });
        match tokio::time::timeout_at(deadline, queued).await {
            Ok(r) => r.map(|id| (id, deadline)),
            Err(_) => Err(Error::Failed(peerpipe_core::FailReason::TimedOut)),
        }
    }

    /// END or ABORT: queued once a send slot is free, then waits for its outcome.
    async fn close_with(
        &self,
        give: impl FnMut(
            &mut State<P, T, RX, TX, F>,
            peerpipe_core::Instant,
        ) -> Result<MsgId, peerpipe_core::Error>,
    ) -> Result<(), Error> {
        let id = self.enqueue(Wait::Outcome, give).await?;
        Waiting::new(&self.inner.shared, id, Wait::Outcome)
            .outcome()
            .await
            .map(drop)
    }

    /// Gives an item to the endpoint with `give`, waiting while every send slot is taken,
    /// and registers the wait for its outcome or reply. Its caller puts a [`Waiting`] guard
    /// on the id at once (no await in between), so a dropped future leaves nothing behind.
    async fn enqueue(
        &self,
        wait: Wait,
        mut give: impl FnMut(
            &mut State<P, T, RX, TX, F>,
            peerpipe_core::Instant,
        ) -> Result<MsgId, peerpipe_core::Error>,
    ) -> Result<MsgId, Error> {
        poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            st.check_running()?;
            let now = st.now();
            match give(&mut st, now) {
                Err(peerpipe_core::Error::SendQueueFull) => {
                    st.wait_for_room(cx.waker());
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(Error::from(e))),
                Ok(id) => {
                    st.wait_for(id, wait);
                    st.wake_task();
                    Poll::Ready(Ok(id))
                }
            }
        })
        .await
    }
}

/// A registered wait for an outcome or a reply; dropping it (a cancelled future) forgets
/// the registration, so nothing piles up.
struct Waiting<'a, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
{
    shared: &'a Shared<P, T, RX, TX, F>,
    id: MsgId,
    wait: Wait,
}

impl<'a, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    Waiting<'a, P, T, RX, TX, F>
{
    fn new(shared: &'a Shared<P, T, RX, TX, F>, id: MsgId, wait: Wait) -> Self {
        Waiting { shared, id, wait }
    }

    async fn outcome(&self) -> Result<MsgId, Error> {
        self.value(State::take_outcome).await
    }

    async fn reply(&self) -> Result<Message, Error> {
        self.value(State::take_reply).await
    }

    async fn value<V>(
        &self,
        take: fn(&mut State<P, T, RX, TX, F>, MsgId, &std::task::Waker) -> Option<V>,
    ) -> V {
        poll_fn(
            |cx| match take(&mut self.shared.lock(), self.id, cx.waker()) {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            },
        )
        .await
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Drop
    for Waiting<'_, P, T, RX, TX, F>
{
    fn drop(&mut self) {
        self.shared.lock().forget(self.id, self.wait);
    }
}

/// The handler's messages and status changes as a [`Stream`]; from
/// [`PipeHandler::events`]. Ends once the handler stopped or its transport closed and every
/// item was taken. Keeps the pipe alive while it exists.
pub struct Events<
    const PAYLOAD: usize = { crate::DEFAULT_PAYLOAD },
    const TOPIC: usize = { crate::DEFAULT_TOPIC },
    const RX: usize = { crate::DEFAULT_SLOTS },
    const TX: usize = { crate::DEFAULT_SLOTS },
    const FRAME: usize = { crate::DEFAULT_FRAME },
> {
    handler: PipeHandler<PAYLOAD, TOPIC, RX, TX, FRAME>,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Stream
    for Events<P, T, RX, TX, F>
{
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.handler.poll_recv(cx)
    }
}
