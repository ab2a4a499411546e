//! The `PipeHandler`: NVFlare's API, backed by the sans-IO core on an I/O thread.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, Sender};
use peerpipe_core::{Config, Instant, MsgId, PeerState};

use crate::driver::{Command, Driver};
use crate::transport::Transport;
use crate::{AbortSignal, CoreEndpoint, Error, Item, Message, Status};

type MessageCb = Box<dyn FnMut(Message) + Send>;
type StatusCb = Box<dyn FnMut(Status) + Send>;
/// What `start` moves to the I/O thread.
type Startup = (Box<dyn Transport>, Receiver<Command>, Sender<Item>);

/// State shared between the handle and its I/O thread.
pub(crate) struct Shared {
    pub(crate) stopped: AtomicBool,
    peer_state: AtomicU8,
    message_cb: Mutex<Option<MessageCb>>,
    status_cb: Mutex<Option<StatusCb>>,
}

impl Shared {
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

    /// Gives the item to its callback, if one is set; otherwise hands it back for the queue.
    pub(crate) fn callback(&self, item: Item) -> Option<Item> {
        match item {
            Item::Message(m) => match self
                .message_cb
                .lock()
                .ok()
                .as_deref_mut()
                .and_then(Option::as_mut)
            {
                Some(cb) => {
                    cb(m);
                    None
                }
                None => Some(Item::Message(m)),
            },
            Item::Status(s) => match self
                .status_cb
                .lock()
                .ok()
                .as_deref_mut()
                .and_then(Option::as_mut)
            {
                Some(cb) => {
                    cb(s);
                    None
                }
                None => Some(Item::Status(s)),
            },
        }
    }
}

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
/// The queue holds at most `RX` items: an application that does not read stops the endpoint
/// from accepting more, and the peer's resends cover it (memory stays bounded).
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
///     move |req| { let _ = server.send_to_peer_async(req.reply_to(b"pong".to_vec()).unwrap()); }
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
    cmd_tx: Sender<Command>,
    queue_rx: Receiver<Item>,
    session: u32,
    /// Everything the I/O thread needs, until `start` moves it there.
    startup: Mutex<Option<Startup>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self
            .cmd_tx
            .send(Command::Stop { close: true, done })
            .is_ok()
        {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// A session id for a new handler: different at every start, from the standard library's
/// per-process random hash keys, the time and the process id.
fn new_session() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

impl PipeHandler {
    /// A handler over `transport` with these parameters (validated like the original's).
    pub fn new(transport: impl Transport, config: Config) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (queue_tx, queue_rx) = crossbeam_channel::bounded(crate::RX);
        let shared = Arc::new(Shared {
            stopped: AtomicBool::new(false),
            peer_state: AtomicU8::new(0),
            message_cb: Mutex::new(None),
            status_cb: Mutex::new(None),
        });
        Ok(PipeHandler {
            inner: Arc::new(Inner {
                shared,
                config,
                cmd_tx,
                queue_rx,
                session: new_session(),
                startup: Mutex::new(Some((Box::new(transport), cmd_rx, queue_tx))),
                thread: Mutex::new(None),
            }),
        })
    }

    /// Starts the I/O thread: it opens the transport (connecting, accepting or spawning), then
    /// reads, writes, resends and sends heartbeats. A transport that fails to open is
    /// reported as GONE with its cause.
    pub fn start(&self) -> Result<(), Error> {
        let Some((transport, cmd_rx, queue_tx)) =
            self.inner.startup.lock().ok().and_then(|mut s| s.take())
        else {
            return Err(Error::AlreadyStarted);
        };
        let origin = StdInstant::now();
        let ep = Box::new(
            CoreEndpoint::new(self.inner.config, self.inner.session, Instant::ZERO)
                .map_err(Error::Config)?,
        );
        let driver = Driver {
            ep,
            origin,
            shared: self.inner.shared.clone(),
            cmd_rx,
            queue_tx,
            transport: Some(transport),
        };
        let thread = std::thread::Builder::new()
            .name("peerpipe-io".into())
            .spawn(move || driver.run())
            .map_err(|_| Error::Stopped)?;
        if let Ok(mut t) = self.inner.thread.lock() {
            *t = Some(thread);
        }
        Ok(())
    }

    /// Stops the handler. Nothing more is sent (send END first to tell the peer); later sends
    /// fail with [`Error::Stopped`]; [`get_next`](Self::get_next) returns `None`; no callback
    /// runs any more. With `close_pipe` the transport is closed too (the peer sees it).
    pub fn stop(&self, close_pipe: bool) {
        self.inner.shared.stopped.store(true, Ordering::SeqCst);
        let (done, wait) = crossbeam_channel::bounded(1);
        if self
            .inner
            .cmd_tx
            .send(Command::Stop {
                close: close_pipe,
                done,
            })
            .is_ok()
        {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
        if let Some(t) = self.inner.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }

    fn check_running(&self) -> Result<(), Error> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::Stopped);
        }
        if self
            .inner
            .startup
            .lock()
            .map(|s| s.is_some())
            .unwrap_or(false)
        {
            return Err(Error::NotStarted);
        }
        Ok(())
    }

    /// Checks that a send may go now; returns its deadline.
    fn deadline(&self, timeout: Option<Duration>) -> Result<StdInstant, Error> {
        self.check_running()?;
        let timeout = timeout.unwrap_or(self.inner.config.default_request_timeout.into());
        if timeout.is_zero() {
            return Err(Error::Invalid(peerpipe_core::Error::ZeroTimeout));
        }
        Ok(StdInstant::now() + timeout)
    }

    /// Sends `msg` and blocks until the peer's endpoint accepted it (returns its id) or it
    /// failed: timed out (`timeout`, default `default_request_timeout`), resends exhausted,
    /// the peer gone, ended or aborted, the handler stopped, or `abort_signal` fired.
    pub fn send_to_peer(
        &self,
        msg: Message,
        timeout: Option<Duration>,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<MsgId, Error> {
        let deadline = self.deadline(timeout)?;
        let (done, wait) = crossbeam_channel::bounded(1);
        self.command(Command::Send {
            msg,
            deadline,
            done: Some(done),
            reply: None,
        })?;
        wait_for(&wait, abort_signal)
    }

    /// Sends `msg` without waiting for its outcome (it is still acknowledged and resent).
    /// Useful from callbacks, which run on the I/O thread and must not block.
    pub fn send_to_peer_async(&self, msg: Message) -> Result<(), Error> {
        let deadline = self.deadline(None)?;
        self.command(Command::Send {
            msg,
            deadline,
            done: None,
            reply: None,
        })
    }

    /// Sends a request and blocks until its reply arrives (matched by `req_id`), within
    /// `timeout` overall (default `default_request_timeout`).
    pub fn request(
        &self,
        msg: Message,
        timeout: Option<Duration>,
        abort_signal: Option<&AbortSignal>,
    ) -> Result<Message, Error> {
        if !msg.is_request() {
            return Err(Error::Invalid(peerpipe_core::Error::InvalidTopic));
        }
        let deadline = self.deadline(timeout)?;
        let (reply, wait) = crossbeam_channel::bounded(1);
        self.command(Command::Send {
            msg,
            deadline,
            done: None,
            reply: Some(reply),
        })?;
        let never = crossbeam_channel::never();
        let abort = abort_signal.map_or(&never, AbortSignal::receiver);
        crossbeam_channel::select! {
            recv(wait) -> r => r.unwrap_or(Err(Error::Stopped)),
            recv(abort) -> _ => Err(Error::Aborted),
            recv(crossbeam_channel::at(deadline)) -> _ => Err(Error::NoReply),
        }
    }

    fn command(&self, cmd: Command) -> Result<(), Error> {
        self.inner.cmd_tx.send(cmd).map_err(|_| Error::Stopped)
    }

    /// Sends END with `data`, reliably and after everything sent before, and blocks until the
    /// peer accepted it or it failed. Later sends are refused.
    pub fn notify_end(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.check_running()?;
        let (done, wait) = crossbeam_channel::bounded(1);
        self.command(Command::End(data.into(), done))?;
        wait_for(&wait, None).map(drop)
    }

    /// Sends ABORT with `data`, like [`notify_end`](Self::notify_end).
    pub fn notify_abort(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.check_running()?;
        let (done, wait) = crossbeam_channel::bounded(1);
        self.command(Command::Abort(data.into(), done))?;
        wait_for(&wait, None).map(drop)
    }

    /// Stops sending heartbeats and checking the peer's silence.
    pub fn pause(&self) {
        let _ = self.command(Command::Pause);
    }

    /// Restarts heartbeats and the silence check (its clock starts now).
    pub fn resume(&self) {
        let _ = self.command(Command::Resume);
    }

    /// The next queued message or status change, or `None` (always `None` once stopped).
    pub fn get_next(&self) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        self.inner.queue_rx.try_recv().ok()
    }

    /// Blocks until the next queued item; `None` once stopped.
    pub fn recv(&self) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        self.inner
            .queue_rx
            .recv()
            .ok()
            .filter(|_| !self.inner.shared.stopped.load(Ordering::SeqCst))
    }

    /// Blocks up to `timeout` for the next queued item; `None` on timeout or once stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Item> {
        if self.inner.shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        self.inner
            .queue_rx
            .recv_timeout(timeout)
            .ok()
            .filter(|_| !self.inner.shared.stopped.load(Ordering::SeqCst))
    }

    /// Routes messages to `cb` instead of the queue. It runs on the I/O thread: keep it short,
    /// and send from it with [`send_to_peer_async`](Self::send_to_peer_async), never a
    /// blocking call.
    pub fn set_message_cb(&self, cb: impl FnMut(Message) + Send + 'static) {
        if let Ok(mut slot) = self.inner.shared.message_cb.lock() {
            *slot = Some(Box::new(cb));
        }
    }

    /// Routes status changes (END, ABORT, GONE, restart) to `cb` instead of the queue; same
    /// rules as [`set_message_cb`](Self::set_message_cb).
    pub fn set_status_cb(&self, cb: impl FnMut(Status) + Send + 'static) {
        if let Ok(mut slot) = self.inner.shared.status_cb.lock() {
            *slot = Some(Box::new(cb));
        }
    }

    /// Where the peer stands: not yet seen, up, gone, ended or aborted.
    pub fn peer_state(&self) -> PeerState {
        match self.inner.shared.peer_state.load(Ordering::Relaxed) {
            0 => PeerState::NotSeen,
            1 => PeerState::Up,
            2 => PeerState::Gone,
            3 => PeerState::Ended,
            _ => PeerState::Aborted,
        }
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

/// Waits for a send's outcome, or the abort signal.
fn wait_for(
    wait: &Receiver<Result<MsgId, Error>>,
    abort_signal: Option<&AbortSignal>,
) -> Result<MsgId, Error> {
    let never = crossbeam_channel::never();
    let abort = abort_signal.map_or(&never, AbortSignal::receiver);
    crossbeam_channel::select! {
        recv(wait) -> r => r.unwrap_or(Err(Error::Stopped)),
        recv(abort) -> _ => Err(Error::Aborted),
    }
}
