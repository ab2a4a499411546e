//! Serving many peers: a listening socket that yields one started handler per peer, and
//! routes a peer that reconnects to its handler.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use peerpipe_core::Config;
use peerpipe_host::Reconnect;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::mpsc;

use crate::net::{Accepted, Conn, Socket};
use crate::reconnect::{first_frame, Handover, Redial};
use crate::PipeHandler;

/// Where a peer session's new connections go: its handler's channel.
type Routes = Arc<Mutex<HashMap<u32, mpsc::Sender<Handover<Conn>>>>>;

/// A connection for a new handler: with reconnection on, one whose first frame carries a
/// session no live handler serves (the session and the bytes read so far).
struct Newcomer {
    conn: Conn,
    first: Option<(u32, Vec<u8>)>,
}

/// What reaches `accept` from the tasks that take each connection in: a newcomer, or the
/// refusal of its TLS handshake.
type Arrival = io::Result<Newcomer>;

/// A TCP (or, on Unix, Unix domain socket) server: [`accept`](Self::accept) waits for the
/// next peer and returns a started [`PipeHandler`] for it, with its own session id and its
/// own task. Dropping the listener closes the listening socket at once (the port is free
/// for a new bind; a Unix socket's file is removed); handlers already accepted live on.
///
/// **Reconnection** (on by default, see [`reconnect`](Self::reconnect)): the listener reads
/// each newcomer's first frame (within [`Reconnect::probation`]; one that sends none is
/// closed) and routes it by the session it carries. A peer whose session a live handler
/// serves is that handler's peer reconnecting: its new connection goes to that handler
/// (which reports [`Status::Reconnected`](crate::Status::Reconnected) and goes on in the
/// same session, or replaces its live connection if it had not seen the break), and
/// `accept` does not return for it. A newcomer with an unknown session gets a new handler.
/// A handler whose connection breaks waits for its peer to come back through the listener,
/// as [`Reconnect`] says (GONE after `heartbeat_timeout` of silence, or `give_up_after`).
/// Reconnections are routed while the application calls `accept` (a server's accept loop).
/// Each accepted connection is taken in (its TLS handshake, its first frame, its routing) by
/// a task of its own, so a newcomer that takes its time holds up no other; at most 64 are
/// taken in at once, and a connection beyond them is closed at once (with a warning).
///
/// Who can take a conversation over: only a connection whose first frame carries the
/// conversation's peer session. Without TLS that session id is the only proof: a 32-bit
/// value drawn from the operating system's random source (`getrandom`) at each start, so an
/// off-path stranger cannot guess it (one try per connection, in 2^32; a wrong guess just
/// gets a new handler), but anyone who sees the traffic reads it in every frame's header
/// and can take the conversation over. Protect the port where that matters.
///
/// `accept` is cancel-safe (a `select!` branch that lost accepted nothing). Capacities are
/// the handler's const generics, defaults included.
///
/// ```no_run
/// use peerpipe_tokio::{Config, Item, PipeListener};
///
/// # async fn run() -> std::io::Result<()> {
/// let listener: PipeListener = PipeListener::bind("127.0.0.1:7000", Config::default()).await?;
/// loop {
///     let pipe = listener.accept().await?;
///     // An echo: every request gets its own data back.
///     tokio::spawn(async move {
///         while let Some(Item::Message(req)) = pipe.recv().await {
///             if let Ok(reply) = req.reply_to(req.data().to_vec()) {
///                 let _ = pipe.send_to_peer(reply, None).await;
///             }
///         }
///     });
/// }
/// # }
/// ```
pub struct PipeListener<
    const FRAGMENT: usize = { crate::DEFAULT_FRAGMENT },
    const TOPIC: usize = { crate::DEFAULT_TOPIC },
    const RX: usize = { crate::DEFAULT_SLOTS },
    const TX: usize = { crate::DEFAULT_SLOTS },
    const FRAME: usize = { crate::DEFAULT_FRAME },
> {
    socket: Socket,
    config: Config,
    policy: Reconnect,
    routes: Routes,
    newcomers: mpsc::UnboundedSender<Arrival>,
    arrived: tokio::sync::Mutex<mpsc::UnboundedReceiver<Arrival>>,
    /// One permit for each connection being taken in.
    taking_in: Arc<tokio::sync::Semaphore>,
}

/// At most this many accepted connections are taken in (TLS handshake, first frame) at
/// once, each by a task of its own; a connection beyond them is closed at once.
const TAKING_IN: usize = 64;

fn validate(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeListener<P, T, RX, TX, F>
{
    /// Listens on `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr));
    /// each peer's handler gets `config`, validated here.
    pub async fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Self> {
        validate(&config)?;
        Ok(Self::on(
            Socket::Tcp(TcpListener::bind(addr).await?),
            config,
        ))
    }

    /// Serves on a TCP listener the application bound itself.
    pub fn from_tcp(listener: TcpListener, config: Config) -> io::Result<Self> {
        validate(&config)?;
        Ok(Self::on(Socket::Tcp(listener), config))
    }

    /// Listens on a Unix domain socket at `path` (a stale socket file there is removed
    /// first; the file is removed again when the listener is dropped). Unix only; inside a
    /// tokio runtime.
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>, config: Config) -> io::Result<Self> {
        validate(&config)?;
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        let socket = Socket::Unix(tokio::net::UnixListener::bind(&path)?, Some(path));
        Ok(Self::on(socket, config))
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr()
    }

    pub(crate) fn on(socket: Socket, config: Config) -> Self {
        let (newcomers, arrived) = mpsc::unbounded_channel();
        PipeListener {
            socket,
            config,
            policy: Reconnect::ON,
            routes: Routes::default(),
            newcomers,
            arrived: tokio::sync::Mutex::new(arrived),
            taking_in: Arc::new(tokio::sync::Semaphore::new(TAKING_IN)),
        }
    }

    /// What the handlers do when their connection breaks (default [`Reconnect::ON`]: they
    /// wait for their peer to come back through this listener; its `probation` bounds the
    /// wait for a newcomer's first frame, `give_up_after` as for any handler).
    /// [`Reconnect::OFF`]: every connection gets a new handler at once, and a break is GONE.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.policy = policy;
        self
    }

    /// Waits for the next new peer and starts its handler (on TCP with `TCP_NODELAY` set);
    /// meanwhile routes reconnecting peers to their handlers (see the type's docs). An
    /// error is the socket's (e.g. too many open files); the listener stays usable.
    /// Cancel-safe.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn accept(&self) -> io::Result<PipeHandler<P, T, RX, TX, F>> {
        let mut arrived = self.arrived.lock().await;
        loop {
            // The next newcomer (that proved its session, with reconnection on), or the
            // next connection to take in.
            let mut accepting = std::pin::pin!(self.socket.accept_raw());
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(Some(new)) = arrived.poll_recv(cx) {
                    return Poll::Ready(Ok(new));
                }
                accepting.as_mut().poll(cx).map(Err)
            })
            .await;
            match next {
                Ok(new) => return self.start(new?),
                Err(accepted) => {
                    let accepted = accepted?;
                    let Ok(permit) = Arc::clone(&self.taking_in).try_acquire_owned() else {
                        log::warn!(
                            "peerpipe-tokio: closed a connection: {TAKING_IN} others are being taken in"
                        );
                        continue;
                    };
                    let (routes, newcomers) = (Arc::clone(&self.routes), self.newcomers.clone());
                    let policy = self.policy;
                    tokio::spawn(async move {
                        take_in(accepted, policy, routes, newcomers).await;
                        drop(permit);
                    });
                }
            }
        }
    }

    /// A handler for a newcomer, reachable by its peer's session from now on.
    fn start(&self, new: Newcomer) -> io::Result<PipeHandler<P, T, RX, TX, F>> {
        let Some((session, input)) = new.first else {
            return PipeHandler::start(new.conn, self.config).map_err(io::Error::other);
        };
        let (tx, handovers) = mpsc::channel(1);
        let redial = Redial {
            handovers,
            wanted: None,
            helper: None,
        };
        let h = PipeHandler::launch(new.conn, self.config, self.policy.give_up_after, |_| redial)
            .map_err(io::Error::other)?;
        h.take_input(&input);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.retain(|_, tx| !tx.is_closed());
        routes.insert(session, tx);
        Ok(h)
    }

    /// The configuration each handler gets.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    std::fmt::Debug for PipeListener<P, T, RX, TX, F>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeListener")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

/// Takes an accepted connection in, in a task of its own: makes its TLS handshake (a
/// refusal goes to `accept`), then, with reconnection on, routes it by its first frame.
async fn take_in(
    accepted: Accepted,
    policy: Reconnect,
    routes: Routes,
    newcomers: mpsc::UnboundedSender<Arrival>,
) {
    let conn = match accepted.finish().await {
        Ok(conn) if policy.enabled => return route(conn, policy, routes, newcomers).await,
        Ok(conn) => Ok(Newcomer { conn, first: None }),
        Err(refused) => Err(refused),
    };
    let _ = newcomers.send(conn);
}

/// Reads a newcomer's first frame: a connection to a live handler's peer session goes to
/// that handler; another is a newcomer for `accept`; one that sends no frame is closed.
async fn route(
    mut conn: Conn,
    policy: Reconnect,
    routes: Routes,
    newcomers: mpsc::UnboundedSender<Arrival>,
) {
    let Some((session, input)) = first_frame(&mut conn, policy.probation).await else {
        log::warn!("peerpipe-tokio: closed a connection that sent no frame");
        return;
    };
    let handler = routes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&session)
        .filter(|tx| !tx.is_closed())
        .cloned();
    let (mut conn, mut input) = (conn, input);
    if let Some(tx) = handler {
        match tx.send(Handover { conn, input }).await {
            Ok(()) => {
                log::info!("peerpipe-tokio: a peer reconnected to its handler");
                return;
            }
            // The handler ended meanwhile: the peer is a newcomer.
            Err(mpsc::error::SendError(h)) => (conn, input) = (h.conn, h.input),
        }
    }
    let first = Some((session, input));
    let _ = newcomers.send(Ok(Newcomer { conn, first }));
}
