//! Serving many peers: a listening socket that yields one handler per connection.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
#[cfg(unix)]
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use peerpipe_core::Config;

use crate::driver::Shared;
use crate::transport::{
    stream_link, Accepted, Acceptor, Link, Reconnect, Redial, Securer, Socket, StopAccept, Stream,
    Transport,
};
use crate::PipeHandler;

/// A TCP (or, on Unix, Unix domain socket) server: it listens, and yields one
/// [`PipeHandler`] per peer that connects, each with its own session id and I/O thread.
///
/// The handlers come **not yet started**: set their callbacks, then
/// [`start`](PipeHandler::start) them (the connection is already open, so `start` does not
/// wait). A handler dropped without being started closes its connection.
///
/// [`accept`](Self::accept) blocks until a peer connects or the listener is stopped;
/// [`accept_timeout`](Self::accept_timeout) bounds the wait; [`incoming`](Self::incoming)
/// iterates until the listener is stopped. [`stop`](Self::stop) (or a
/// [`ListenerStopper`] from another thread, or dropping the listener) closes the listening
/// socket before it returns: the port is free for a new `bind` at once, and a thread
/// blocked in `accept` returns `None`. Handlers already accepted live on.
///
/// ```no_run
/// use peerpipe_std::{Config, PipeListener};
///
/// let listener = PipeListener::bind("127.0.0.1:7000", Config::default())?;
/// for pipe in listener.incoming() {
///     let pipe = pipe?;
///     // An echo: every request gets its own data back.
///     pipe.set_message_cb({
///         let pipe = pipe.clone();
///         move |req| {
///             if let Ok(reply) = req.reply_to(req.data().to_vec()) {
///                 let _ = pipe.send_no_wait(reply);
///             }
///         }
///     });
///     pipe.start()?;
///     // Keep `pipe` somewhere (a handler stops when its last clone is dropped).
///     # std::mem::forget(pipe);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// How a blocked accept is interrupted: the listening socket is non-blocking, and the
/// accepting thread waits for it with mio (epoll, kqueue) together with a waker that `stop`
/// fires, on Unix; elsewhere it tries again every 10 ms. `stop` closes the socket itself,
/// on the stopping thread.
///
/// **Reconnection** (on by default, see [`reconnect`](Self::reconnect)): `accept` reads
/// each newcomer's first frame (within [`Reconnect::probation`]; one that sends none is
/// closed) and routes it by the session it carries. A peer whose session the conversation
/// of a handler from this listener serves is that handler's peer reconnecting: its new
/// connection goes to that handler (which reports
/// [`Status::Reconnected`](crate::Status::Reconnected) and goes on in the same session, or
/// replaces its live connection if it had not seen the break), and `accept` waits on. A
/// newcomer with an unknown session gets a new handler. A handler whose connection breaks
/// waits for its peer to come back through the listener, as [`Reconnect`] says (GONE after
/// `heartbeat_timeout` of silence, or `give_up_after`). Reconnections are routed while the
/// application calls `accept` (its accept loop). Each accepted connection is taken in (its
/// TLS handshake, its first frame, its routing) by a thread of its own, so a newcomer that
/// takes its time holds up no other and no `accept`; at most 64 are taken in at once, and
/// a connection beyond them is closed at once (with a warning).
///
/// Who can take a conversation over: only a connection whose first frame carries the
/// conversation's peer session. Without TLS that session id is the only proof: a 32-bit
/// value drawn from the operating system's random source (`getrandom`) at each start, so an
/// off-path stranger cannot guess it (one try per connection, in 2^32; a wrong guess just
/// gets a new handler), but anyone who sees the traffic reads it in every frame's header
/// and can take the conversation over. Protect the port where that matters.
pub struct PipeListener {
    acceptor: Acceptor,
    config: Config,
    policy: Reconnect,
    /// The handlers this listener made, for routing their peers' new connections.
    handlers: Handlers,
    /// Newcomers taken in, for `accept`; at most [`TAKING_IN`] wait (each taking-in thread
    /// sends one at most).
    arrived: (
        crossbeam_channel::Sender<Newcomer>,
        crossbeam_channel::Receiver<Newcomer>,
    ),
    /// How many connections are being taken in.
    taking_in: Arc<AtomicUsize>,
}

/// The handlers a listener made (weakly: a handler's end is not held up).
type Handlers = Arc<Mutex<Vec<Weak<Shared>>>>;

/// At most this many accepted connections are taken in (TLS handshake, first frame) at
/// once, each by a thread of its own, with reconnection on; a connection beyond them is
/// closed at once.
const TAKING_IN: usize = 64;

/// A connection taken in for a new handler: with TLS, its handshake's refusal is kept for
/// the handler to report; with the bytes read from it.
struct Newcomer {
    stream: io::Result<Stream>,
    input: Vec<u8>,
}

/// Stops a [`PipeListener`] from any thread (see [`PipeListener::stopper`]).
#[derive(Clone)]
pub struct ListenerStopper(StopAccept);

impl ListenerStopper {
    /// Closes the listening socket now (the port is free when this returns) and ends every
    /// `accept` that waits; idempotent.
    pub fn stop(&self) {
        self.0.stop();
    }
}

impl std::fmt::Debug for ListenerStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerStopper")
    }
}

/// An accepted connection, opened by its handler's I/O thread (with TLS, its handshake
/// runs there, within [`Reconnect::connect_timeout`]'s default, unless the listener took
/// the connection in to read its first frame: then a failed one is its error), with the
/// bytes the listener read from it and its reconnection policy.
struct Connection(io::Result<Stream>, Securer, Vec<u8>, Reconnect);

impl Transport for Connection {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let mut link = stream_link(self.1.secure(self.0?, Reconnect::ON.connect_timeout)?)?;
        if self.3.enabled {
            link.redial = Some(Redial::Routed(self.3, self.2));
        }
        Ok(link)
    }
}

impl PipeListener {
    /// Listens on `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr));
    /// each accepted peer gets a handler with `config`, validated here.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        Self::new(Socket::Tcp(TcpListener::bind(addr)?), config)
    }

    /// [`bind`](Self::bind) over TLS: each peer's connection must complete a TLS handshake
    /// with `tls` (its client certificate checked if `tls` requires one), within 2 s (with
    /// reconnection, the default, on the thread that takes the connection in, which must
    /// read the peer's first frame; otherwise on its handler's I/O thread once the handler
    /// starts). A peer that fails is refused (an
    /// alert, a logged warning) and its handler reports GONE with the refusal as the cause
    /// (an `io::Error` of kind `PermissionDenied`); the other peers are untouched.
    #[cfg(feature = "tls")]
    pub fn bind_tls(
        addr: impl ToSocketAddrs,
        tls: &peerpipe_host::TlsServer,
        config: Config,
    ) -> io::Result<Self> {
        let mut listener = Self::new(Socket::Tcp(TcpListener::bind(addr)?), config)?;
        listener.acceptor = listener
            .acceptor
            .with_tls(crate::transport::server_config(tls)?);
        Ok(listener)
    }

    /// Listens on a Unix domain socket at `path` (a stale socket file there is removed
    /// first); the file is removed again when the listener stops. Unix only.
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>, config: Config) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::new(crate::transport::bind_unix(path.as_ref())?, config)
    }

    fn new(socket: Socket, config: Config) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(PipeListener {
            acceptor: Acceptor::new(socket)?,
            config,
            policy: Reconnect::ON,
            handlers: Handlers::default(),
            arrived: crossbeam_channel::unbounded(),
            taking_in: Arc::default(),
        })
    }

    /// What the handlers do when their connection breaks (default [`Reconnect::ON`]: they
    /// wait for their peer to come back through this listener; its `probation` bounds the
    /// wait for a newcomer's first frame, `give_up_after` as for any handler).
    /// [`Reconnect::OFF`]: every connection gets a new handler at once, and a break is GONE.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.policy = policy;
        self
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor.local_addr()
    }

    /// Waits for the next peer: its handler, not yet started, or `None` once the listener
    /// is stopped. An error is the socket's (e.g. too many open files) or the handler's
    /// (e.g. no thread for its endpoint); the listener stays usable.
    pub fn accept(&self) -> io::Result<Option<PipeHandler>> {
        self.accept_until(None)
    }

    /// [`accept`](Self::accept), waiting at most `timeout`: `None` when it passed, or when
    /// the listener is stopped ([`is_stopped`](Self::is_stopped) tells which).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<Option<PipeHandler>> {
        self.accept_until(Some(Instant::now() + timeout))
    }

    fn accept_until(&self, deadline: Option<Instant>) -> io::Result<Option<PipeHandler>> {
        loop {
            if let Ok(new) = self.arrived.1.try_recv() {
                return self.handler(new.stream, new.input).map(Some);
            }
            let stream = match self.acceptor.accept(deadline)? {
                Accepted::Peer(stream) => stream,
                // A newcomer was taken in.
                Accepted::Kicked => continue,
                Accepted::TimedOut | Accepted::Stopped => return Ok(None),
            };
            if !self.policy.enabled {
                return self.handler(Ok(stream), Vec::new()).map(Some);
            }
            self.take_in(stream);
        }
    }

    /// Takes `stream` in on a thread of its own (see [`take_in`]), unless [`TAKING_IN`]
    /// others are: then closes it.
    fn take_in(&self, stream: Stream) {
        if self.taking_in.fetch_add(1, Ordering::SeqCst) >= TAKING_IN {
            self.taking_in.fetch_sub(1, Ordering::SeqCst);
            log::warn!("peerpipe: closed a connection: {TAKING_IN} others are being taken in");
            return;
        }
        let taking_in = TakingIn(self.taking_in.clone());
        let (securer, policy) = (self.acceptor.securer(), self.policy);
        let (handlers, arrived) = (self.handlers.clone(), self.arrived.0.clone());
        let kick = self.acceptor.kicker();
        let spawned = std::thread::Builder::new()
            .name("peerpipe-take-in".into())
            .spawn(move || {
                let _counted = taking_in;
                if let Some(new) = take_in(stream, &securer, policy, &handlers) {
                    let _ = arrived.send(new);
                    kick.kick();
                }
            });
        if let Err(e) = spawned {
            log::warn!("peerpipe: closed a connection: no thread to take it in: {e}");
        }
    }

    /// A handler (not started) for a newcomer, reachable by its peer's session from now on.
    fn handler(&self, stream: io::Result<Stream>, input: Vec<u8>) -> io::Result<PipeHandler> {
        let connection = Connection(stream, self.acceptor.securer(), input, self.policy);
        let h = PipeHandler::new(connection, self.config).map_err(io::Error::other)?;
        self.handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(h.shared()));
        Ok(h)
    }

    /// The peers' handlers as they connect (not yet started), until the listener is
    /// stopped. An error does not end the iteration.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming(self)
    }

    /// Closes the listening socket now (the port is free when this returns); every `accept`
    /// returns `None` from then on. Handlers already accepted are not affected.
    pub fn stop(&self) {
        self.acceptor.stop();
    }

    /// A handle that stops this listener from another thread (e.g. while one waits in
    /// [`incoming`](Self::incoming)).
    pub fn stopper(&self) -> ListenerStopper {
        ListenerStopper(self.acceptor.stopper())
    }

    /// Whether the listener was stopped.
    pub fn is_stopped(&self) -> bool {
        self.acceptor.is_stopped()
    }

    /// The configuration each handler gets.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl std::fmt::Debug for PipeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeListener")
            .field("local_addr", &self.local_addr())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// Counts a connection being taken in, until dropped.
struct TakingIn(Arc<AtomicUsize>);

impl Drop for TakingIn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes an accepted connection in: its TLS handshake (a refusal is a newcomer whose handler
/// reports it, as when the handshake runs on the handler's thread), then its first frame
/// (within `probation`; a connection that sends none is closed), then its routing: to the
/// handler whose peer session it carries, or a newcomer for `accept`.
fn take_in(
    stream: Stream,
    securer: &Securer,
    policy: Reconnect,
    handlers: &Handlers,
) -> Option<Newcomer> {
    let mut stream = match securer.secure(stream, policy.connect_timeout) {
        Ok(stream) => stream,
        Err(e) => {
            return Some(Newcomer {
                stream: Err(e),
                input: Vec::new(),
            })
        }
    };
    let Some((session, input)) = crate::driver::first_frame(&mut stream, policy.probation) else {
        log::warn!("peerpipe: closed a connection that sent no frame");
        return None;
    };
    let mut handlers = handlers.lock().unwrap_or_else(PoisonError::into_inner);
    handlers.retain(|h| h.strong_count() > 0);
    match crate::driver::route(&handlers, session, stream, input) {
        Ok(()) => None,
        Err((stream, input)) => Some(Newcomer {
            stream: Ok(stream),
            input,
        }),
    }
}

/// The iterator of [`PipeListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a>(&'a PipeListener);

impl Iterator for Incoming<'_> {
    type Item = io::Result<PipeHandler>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.accept().transpose()
    }
}
