//! The `PipeHandler`: NVFlare's API, backed by the sans-IO core on an I/O thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, Sender};
use peerpipe_core::{Config, FailReason, MsgId, PeerState};

use crate::driver::{Done, GaveUp, Io, Outgoing, ReplyTo, SendReq, Shared};
use crate::signal::{oneshot, Waited, Waiter};
use crate::transport::Transport;
use crate::{AbortSignal, Error, HandlerStats, Item, Message, Progress, Status};

/// What `start` moves to the I/O thread.
type Startup = (Box<dyn Transport>, Sender<Item>);

/// Monitors a pipe to the peer: the Rust counterpart of NVFlare's `PipeHandler`.
///
/// Create it on a [`Transport`], [`start`](Self::start) it, then send with
/// [`send_to_peer`](Self::send_to_peer) (blocks until the peer's endpoint accepted the
/// message, or says why not) and receive with [`get_next`](Self::get_next) (the original's
/// non-blocking poll) or [`recv`](Self::recv) / [`recv_timeout`](Self::recv_timeout). Status
/// changes (END, ABORT, GONE, restart) go to the status callback if one is set, else into the
/// same queue as messages, in arrival order; messages go to the message callback if set.
/// Callbacks run on the handler's I/O thread and must be short.
///
/// Messages have any length up to [`MAX_PAYLOAD`](crate::MAX_PAYLOAD) (4 GiB): a long one
/// travels in fragments of [`FRAGMENT`](crate::FRAGMENT) bytes, is put together on the
/// heap, and arrives whole (a message cut short, because its sender gave it up or the peer
/// went, is dropped: no part of it is delivered). [`progress`](Self::progress) shows how far
/// the send on the wire and the message arriving have got.
///
/// The queue holds at most [`QUEUE_ITEMS`](crate::QUEUE_ITEMS) items, and stops growing
/// once it holds [`QUEUE_BYTES`](crate::QUEUE_BYTES) bytes of data: an application that
/// does not read stops the endpoint from accepting more, the peer waits (and its resends
/// cover it), and memory stays bounded. The queue and the message being put together hold
/// at most `QUEUE_BYTES` plus one fragment, or one message when it alone is longer.
///
/// ```
/// use std::time::Duration;
/// use peerpipe_std::{memory_pair, Config, Item, Message, PipeHandler};
///
/// let (a, b) = memory_pair();
/// let client = PipeHandler::new(a, Config::default())?;
/// let server = PipeHandler::new(b, Config::default())?;
/// client.start()?;
/// server.start()?;
/// server.set_message_cb({
///     let server = server.clone();
///     move |req| { let _ = server.send_no_wait(req.reply_to(b"pong".to_vec()).unwrap()); }
/// });
/// let reply = client.request(Message::request("ping", b"hi".to_vec())?, Some(Duration::from_secs(5)), None)?;
/// assert_eq!(reply.data(), b"pong");
/// client.notify_end(b"bye".to_vec())?;
/// client.stop(true);
/// # Ok::<(), peerpipe_std::Error>(())
/// ```
#[derive(Clone)]
pub struct PipeHandler {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    config: Config,
    queue_rx: Receiver<Item>,
    session: u32,
    /// Everything the I/O thread needs, until `start` moves it there.
    startup: Mutex<Option<Startup>>,
    /// `start` succeeded (checked on every send without taking a lock).
    started: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The I/O thread's id, once started.
    io_thread: OnceLock<ThreadId>,
    /// Makes the transport's `open` return early (see `Transport::interrupter`), from
    /// `start` until `stop`.
    interrupter: Mutex<Option<Interrupter>>,
}

type Interrupter = Box<dyn FnOnce() + Send>;

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

impl Inner {
    /// Whether the caller runs on the I/O thread (in a callback).
    fn in_callback(&self) -> bool {
        self.io_thread.get() == Some(&std::thread::current().id())
    }

    /// Stops the I/O thread and waits for it, unless it never started (then there is nothing
    /// to wait for), this is the I/O thread itself, in a callback (then it stops when the
    /// callback returns; waiting for it would deadlock), or it is still opening a transport
    /// that cannot be interrupted (e.g. waiting for a connection that may never come: it
    /// stops once that returns). A transport that can be interrupted (a listening socket)
    /// is, here: its socket is closed before this returns.
    fn shutdown(&self, close: bool) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if self
            .startup
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .is_some()
        {
            return;
        }
        let opening = {
            let mut st = self.shared.lock();
            st.request_stop(close);
            st.opening
        };
        self.shared.waker.wake();
        let interrupter = self.interrupter.lock().ok().and_then(|mut i| i.take());
        if self.in_callback() {
            return;
        }
        if opening {
            match interrupter {
                Some(interrupt) => interrupt(),
                None => return,
            }
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

impl PipeHandler {
    /// The engine, for a listener that routes its peer's new connection to it.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// A handler over `transport` with these parameters (validated like the original's).
    pub fn new(transport: impl Transport, config: Config) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        let session = crate::new_session_id();
        let ep = crate::new_endpoint(config, session).map_err(Error::Config)?;
        let shared = Shared::new(ep, &config);
        let (queue_tx, queue_rx) =
            crossbeam_channel::bounded(crate::QUEUE_ITEMS + crate::LINK_STATUSES);
        Ok(PipeHandler {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                config,
                queue_rx,
                session,
                startup: Mutex::new(Some((Box::new(transport), queue_tx))),
                started: AtomicBool::new(false),
                thread: Mutex::new(None),
                io_thread: OnceLock::new(),
                interrupter: Mutex::new(None),
            }),
        })
    }

    /// Starts the I/O thread: it opens the transport (connecting, accepting or spawning), then
    /// reads, writes, resends and sends heartbeats. A transport that fails to open is
    /// reported as GONE with its cause.
    ///
    /// Fails with [`Error::AlreadyStarted`] the second time, and with [`Error::Stopped`] after
    /// [`stop`](Self::stop) (a stopped handler does not start again: make a new one).
    pub fn start(&self) -> Result<(), Error> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::Stopped);
        }
        let mut startup = self.inner.startup.lock().map_err(|_| Error::Stopped)?;
        let Some((transport, queue_tx)) = startup.take() else {
            return Err(Error::AlreadyStarted);
        };
        // The endpoint's clock (and its silence timer) starts now.
        self.inner
            .shared
            .lock()
            .restart(self.inner.config, self.inner.session)?;
        if let Ok(mut i) = self.inner.interrupter.lock() {
            *i = transport.interrupter();
        }
        self.inner.shared.lock().refusals = transport.refusals();
        let io = Io::new(self.inner.shared.clone(), queue_tx);
        // The I/O thread waits until the handler knows it is started and which thread runs
        // the callbacks: a transport that opens at once (an accepted connection with a
        // request waiting) runs the message callback at once, and a reply sent from there
        // must not find the handler "not started".
        let (go, ready) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("peerpipe-io".into())
            .spawn(move || {
                let _ = ready.recv();
                io.run(transport)
            })
            .map_err(|_| Error::Stopped)?;
        let _ = self.inner.io_thread.set(thread.thread().id());
        if let Ok(mut t) = self.inner.thread.lock() {
            *t = Some(thread);
        }
        self.inner.started.store(true, Ordering::SeqCst);
        drop(go);
        drop(startup);
        Ok(())
    }

    /// Stops the handler. Nothing more is sent (send END first to tell the peer); later sends
    /// fail with [`Error::Stopped`]; [`get_next`](Self::get_next) returns `None`; no callback
    /// runs any more. With `close_pipe` the transport is closed too (the peer sees it).
    ///
    /// Called from a callback (on the I/O thread), it returns at once: the thread stops when
    /// the callback returns, and no other callback runs. Stopping releases the callbacks
    /// (and any handler clone they hold).
    pub fn stop(&self, close_pipe: bool) {
        self.inner.shutdown(close_pipe);
    }

    /// Whether the caller runs on the I/O thread (in a callback).
    pub(crate) fn in_callback(&self) -> bool {
        self.inner.in_callback()
    }

    /// Refuses a call that waits for its result from a callback (it would wait for itself).
    fn not_in_callback(&self) -> Result<(), Error> {
        if self.inner.in_callback() {
            return Err(Error::InCallback);
        }
        Ok(())
    }

    fn check_running(&self) -> Result<(), Error> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::Stopped);
        }
        if !self.inner.started.load(Ordering::SeqCst) {
            return Err(Error::NotStarted);
        }
        Ok(())
    }

    /// Checks that a send may go now; returns its deadline.
    pub(crate) fn deadline(&self, timeout: Option<Duration>) -> Result<StdInstant, Error> {
        self.check_running()?;
        let timeout = timeout.unwrap_or(self.inner.config.default_request_timeout);
        if timeout.is_zero() {
            return Err(Error::Invalid(peerpipe_core::Error::ZeroTimeout));
        }
        Ok(StdInstant::now() + timeout)
    }

    /// Sends `msg` and blocks until the peer's endpoint accepted it (returns its id) or it
    /// failed. `timeout` (default `default_request_timeout`) bounds the whole call,
    /// including the wait for a send slot when [`TX`](crate::TX) sends are in flight:
    ///
    /// - [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`: no slot
    ///   came free in time; nothing was sent.
    /// - [`Error::Failed`]`(`[`FailReason::TimedOut`]`)`: sent,
    ///   but not acknowledged in time (it may still have arrived).
    /// - [`Error::Failed`] with another reason: resends exhausted, the peer gone, ended or
    ///   aborted; [`Error::Closed`]: the conversation was over before the send;
    ///   [`Error::Stopped`]: the handler stopped; [`Error::Aborted`]: `abort_signal` fired
    ///   (a send still waiting for a slot is withdrawn; one in flight may still arrive).
    ///
    /// From a callback it fails with [`Error::InCallback`]: use
    /// [`send_no_wait`](Self::send_no_wait) there.
    ///
    /// - [`Error::Failed`]`(`[`FailReason::TooLarge`]`)`: the
    ///   message is longer than the peer accepts (its `Config::max_message`), or its topic;
    ///   it fails as soon as the peer's limits are known (from its first heartbeat), not at
    ///   the timeout.
    ///
    /// Waiting sends get slots first come, first served. The calling thread encodes and
    /// writes the first fragments itself; the I/O thread sends the rest as the peer
    /// acknowledges them, then hands over the outcome. "Acknowledged" means the peer's
    /// endpoint accepted the whole message. The message's data is not copied: the handler
    /// holds it (the `Vec` the message was made of) until the outcome, and reads each
    /// fragment from it as it goes out, so a 1 GiB message costs 1 GiB.
    pub fn send_to_peer(
        &self,
        msg: Message,
        timeout: Option<Duration>,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<MsgId, Error> {
        let deadline = self.deadline(timeout)?;
        self.not_in_callback()?;
        let (done, wait) = oneshot();
        let ticket = self.submit(Outgoing::Message(msg), deadline, Some(done), None, false)?;
        self.wait_outcome(&wait, ticket, deadline, abort_signal)
    }

    /// Sends `msg` without waiting for its outcome (it is still acknowledged and resent,
    /// within `default_request_timeout`). Useful from callbacks, which run on the I/O thread
    /// and must not block: a reply sent from the message callback leaves in the same write
    /// as the request's acknowledgement.
    ///
    /// When every send slot is taken the message waits its turn, after the sends already
    /// waiting; at most [`MAX_WAITING`](crate::MAX_WAITING) such sends (and
    /// [`send_pipelined`](Self::send_pipelined)'s) wait, and one more is refused with
    /// [`Error::QueueFull`] (nothing sent): memory stays bounded when the peer is slow or
    /// does not read.
    pub fn send_no_wait(&self, msg: Message) -> Result<(), Error> {
        let deadline = self.deadline(None)?;
        self.submit(Outgoing::Message(msg), deadline, None, None, false)
            .map(drop)
    }

    /// Sends a request and blocks until its reply arrives (matched by `req_id`; the reply's
    /// [`req_id`](Message::req_id) is the request's id), within `timeout` overall (default
    /// `default_request_timeout`), the wait for a send slot included. Fails with:
    ///
    /// - [`Error::NoReply`]: the peer acknowledged the request but no reply came in time
    ///   (the error names the request's id);
    /// - [`Error::Failed`]`(`[`FailReason::TimedOut`]`)`: the
    ///   request was sent but not acknowledged in time; `NoSlot`: it never got a send slot;
    ///   other reasons as for [`send_to_peer`](Self::send_to_peer), and `PeerEnded`,
    ///   `PeerAborted`, `PeerGone` when the conversation ended before the reply came;
    /// - [`Error::Aborted`] when `abort_signal` fired;
    /// - [`Error::Invalid`]`(`[`NotARequest`](peerpipe_core::Error::NotARequest)`)` when `msg`
    ///   is a reply; [`Error::InCallback`] from a callback.
    ///
    /// A reply that arrives after its request gave up is dropped and counted
    /// ([`HandlerStats::late_replies`]): it never occupies the application's queue.
    pub fn request(
        &self,
        msg: Message,
        timeout: Option<Duration>,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<Message, Error> {
        if !msg.is_request() {
            return Err(Error::Invalid(peerpipe_core::Error::NotARequest));
        }
        let deadline = self.deadline(timeout)?;
        self.not_in_callback()?;
        let (reply, wait) = oneshot();
        let ticket = self.submit(Outgoing::Message(msg), deadline, None, Some(reply), false)?;
        let (gave_up, aborted) = match self.wait_or_give_up(&wait, ticket, deadline, abort_signal) {
            Ok(r) => return r,
            Err(missed) => missed,
        };
        match gave_up {
            // The outcome or the reply is on its way: take it.
            GaveUp::Pending => match wait.wait(None, None, self.spins()) {
                Waited::Value(r) => r,
                _ => Err(Error::Stopped),
            },
            _ if aborted => Err(Error::Aborted),
            GaveUp::NoSlot => Err(Error::Failed(FailReason::NoSlot)),
            GaveUp::NotAcknowledged => Err(Error::Failed(FailReason::TimedOut)),
            GaveUp::NoReply(request) => Err(Error::NoReply { request }),
        }
    }

    /// Waits for the result of the send `ticket` until `deadline` or the abort signal; when
    /// the wait ends without it, the caller gives the send up: what it missed, and whether
    /// the abort signal fired.
    fn wait_or_give_up<T>(
        &self,
        wait: &Waiter<Result<T, Error>>,
        ticket: u64,
        deadline: StdInstant,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<Result<T, Error>, (GaveUp, bool)> {
        let aborted = match wait.wait(Some(deadline), abort_signal, self.spins()) {
            Waited::Value(r) => return Ok(r),
            Waited::Dropped => return Ok(Err(Error::Stopped)),
            Waited::TimedOut => false,
            Waited::Aborted => true,
        };
        Err((self.inner.shared.lock().give_up(ticket), aborted))
    }

    /// Gives a send to the handler; returns the ticket that names it.
    pub(crate) fn submit(
        &self,
        what: Outgoing,
        deadline: StdInstant,
        done: Option<Done>,
        reply: Option<ReplyTo>,
        pipelined: bool,
    ) -> Result<u64, Error> {
        self.inner.shared.with_deadline(Some(deadline), |st, now| {
            let ticket = st.sends.ticket();
            let req = SendReq {
                what,
                deadline,
                ticket,
                done,
                reply,
                pipelined,
            };
            st.submit(req, now).map(|()| ticket)
        })
    }

    /// Waits for a send's outcome until its deadline (or the abort signal); then withdraws
    /// it if it still waits for a slot, or waits for the outcome the endpoint reports at
    /// the same deadline.
    pub(crate) fn wait_outcome(
        &self,
        wait: &Waiter<Result<MsgId, Error>>,
        ticket: u64,
        deadline: StdInstant,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<MsgId, Error> {
        let (gave_up, aborted) = match self.wait_or_give_up(wait, ticket, deadline, abort_signal) {
            Ok(r) => return r,
            Err(missed) => missed,
        };
        match (gave_up, aborted) {
            (_, true) => Err(Error::Aborted),
            (GaveUp::NoSlot, false) => Err(Error::Failed(FailReason::NoSlot)),
            (_, false) => match wait.wait(None, None, self.spins()) {
                Waited::Value(r) => r,
                _ => Err(Error::Stopped),
            },
        }
    }

    /// Sends END with `data`, reliably and after everything sent before, and blocks until the
    /// peer accepted it or it failed, within `default_request_timeout` overall. When every
    /// send slot is taken, END waits its turn behind the sends already waiting (a busy
    /// handler is not an error; if no slot comes free in time it fails with
    /// [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`). Later
    /// sends are refused with [`Error::Closed`]. The data may have any length, like a
    /// message's (the whole call, the data's transfer included, is bounded by
    /// `default_request_timeout`).
    ///
    /// Called from a callback, it queues the END and returns at once: the callback's thread
    /// is the one that would report the outcome.
    ///
    /// An error does not prove that the peer missed the END: when the connection breaks
    /// after the peer took it but before its acknowledgement came back, the peer, whose
    /// conversation is over, takes no new connection, and the call fails with the peer
    /// gone or timed out.
    pub fn notify_end(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.close_with(Outgoing::End(data.into()))
    }

    /// Sends ABORT with `data`, like [`notify_end`](Self::notify_end).
    pub fn notify_abort(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.close_with(Outgoing::Abort(data.into()))
    }

    /// END or ABORT: waits its turn for a slot, then for its outcome (from a callback, it
    /// is queued without waiting).
    fn close_with(&self, what: Outgoing) -> Result<(), Error> {
        let deadline = self.deadline(None)?;
        if let Outgoing::End(data) | Outgoing::Abort(data) = &what {
            if data.len() > crate::MAX_PAYLOAD {
                // Refused before it queues: a bad argument is not reported after a wait.
                return Err(Error::Invalid(peerpipe_core::Error::PayloadTooLarge {
                    len: data.len(),
                    max: crate::MAX_PAYLOAD,
                }));
            }
        }
        if self.inner.in_callback() {
            return self.submit(what, deadline, None, None, false).map(drop);
        }
        let (done, wait) = oneshot();
        let ticket = self.submit(what, deadline, Some(done), None, false)?;
        self.wait_outcome(&wait, ticket, deadline, None).map(drop)
    }

    /// Whether waiting threads poll briefly before they sleep (on by default): the I/O
    /// thread for up to 20 µs (and until a deadline closer than a millisecond), a caller
    /// blocked in [`send_to_peer`](Self::send_to_peer) or [`request`](Self::request) for
    /// up to 100 µs, yielding its CPU between polls. A sleeping thread costs a wake-up when
    /// its answer comes, which on a virtual machine costs more than that; off, no thread
    /// polls, and the handler uses no CPU beyond its work (round trips take longer).
    pub fn set_spin(&self, on: bool) {
        self.inner.shared.spin.store(on, Ordering::Relaxed);
    }

    fn spins(&self) -> bool {
        self.inner.shared.spin.load(Ordering::Relaxed)
    }

    /// The handler's counters (the endpoint's: resends, duplicates suppressed, CRC and
    /// framing errors, refusals) and queue depths: sends waiting for a slot, items waiting
    /// for the application, late replies dropped, bytes the transport has not taken.
    pub fn stats(&self) -> HandlerStats {
        self.inner.shared.stats(self.inner.queue_rx.len())
    }

    /// How far the send on the wire and the message arriving have got (see [`Progress`]):
    /// for a progress bar, from any thread (a caller blocked in
    /// [`send_to_peer`](Self::send_to_peer) learns its message's id only when it returns,
    /// so another thread watches the oldest send still under way).
    ///
    /// ```
    /// use std::time::Duration;
    /// use peerpipe_std::{memory_pair, Config, Message, PipeHandler, FRAGMENT};
    ///
    /// let (a, b) = memory_pair();
    /// let (a, b) = (PipeHandler::new(a, Config::default())?, PipeHandler::new(b, Config::default())?);
    /// a.start()?;
    /// b.start()?;
    /// let data = vec![7u8; 64 * FRAGMENT];
    /// let sender = std::thread::spawn({
    ///     let a = a.clone();
    ///     move || a.send_to_peer(Message::request("file", data)?, Some(Duration::from_secs(30)), None)
    /// });
    /// // Another thread watches (a real program would draw a bar).
    /// while !sender.is_finished() {
    ///     if let Some(t) = a.progress().sending {
    ///         assert!(t.done <= t.total && t.total == 64 * FRAGMENT as u64);
    ///     }
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// sender.join().unwrap()?;
    /// assert_eq!(a.progress().sending, None);
    /// a.stop(true);
    /// b.stop(true);
    /// # Ok::<(), peerpipe_std::Error>(())
    /// ```
    pub fn progress(&self) -> Progress {
        self.inner.shared.progress()
    }

    /// Stops sending heartbeats and checking the peer's silence.
    pub fn pause(&self) {
        self.inner.shared.with(|st, now| st.ep.pause(now));
    }

    /// Restarts heartbeats and the silence check (its clock starts now).
    pub fn resume(&self) {
        self.inner.shared.with(|st, now| st.ep.resume(now));
    }

    /// The next queued message or status change, or `None` (always `None` once stopped).
    pub fn get_next(&self) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let item = self.inner.queue_rx.try_recv().ok();
        if let Some(item) = &item {
            self.inner.shared.took_item(item);
        }
        item
    }

    /// Blocks until the next queued item; `None` once stopped.
    pub fn recv(&self) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let item = self.inner.queue_rx.recv().ok();
        if let Some(item) = &item {
            self.inner.shared.took_item(item);
        }
        item.filter(|_| !self.inner.shared.stopped.load(Ordering::SeqCst))
    }

    /// Blocks up to `timeout` for the next queued item; `None` on timeout or once stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let item = self.inner.queue_rx.recv_timeout(timeout).ok();
        if let Some(item) = &item {
            self.inner.shared.took_item(item);
        }
        item.filter(|_| !self.inner.shared.stopped.load(Ordering::SeqCst))
    }

    /// Routes messages to `cb` instead of the queue. It runs on the I/O thread: keep it short,
    /// and send from it with [`send_no_wait`](Self::send_no_wait), never a
    /// blocking call.
    pub fn set_message_cb(&self, cb: impl FnMut(Message) + Send + 'static) {
        self.inner.shared.set_message_cb(Some(Box::new(cb)));
    }

    /// Routes status changes (END, ABORT, GONE, restart) to `cb` instead of the queue; same
    /// rules as [`set_message_cb`](Self::set_message_cb).
    pub fn set_status_cb(&self, cb: impl FnMut(Status) + Send + 'static) {
        self.inner.shared.set_status_cb(Some(Box::new(cb)));
    }

    /// Where the peer stands: not yet seen, up, gone, ended or aborted.
    pub fn peer_state(&self) -> PeerState {
        self.inner.shared.peer_state()
    }

    /// This handler's session id.
    pub fn session(&self) -> u32 {
        self.inner.session
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}
