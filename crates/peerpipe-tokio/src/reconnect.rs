//! Handlers that reconnect (TCP, Unix sockets; see [`Reconnect`]): the constructors, and
//! the helper task that gets a new connection when the pipe task's breaks: it dials again
//! (ACTIVE end) or accepts the peer's next connection (PASSIVE end), and hands it to the
//! pipe task through a channel.

use std::io;
#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use peerpipe_core::Config;
use peerpipe_host::{Backoff, Jitter, Reconnect, SessionProbe};
use tokio::io::AsyncReadExt;
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::net::{Conn, Socket, Target};
use crate::state::Shared;
use crate::PipeHandler;

/// A new connection for the pipe task, with the bytes already read from it (a newcomer's
/// first frame, read to check who it is).
pub(crate) struct Handover<S> {
    pub(crate) conn: S,
    pub(crate) input: Vec<u8>,
}

/// How a pipe task gets a new connection when its own breaks.
pub(crate) struct Redial<S> {
    /// New connections, from the helper task (or a [`PipeListener`](crate::PipeListener)).
    pub(crate) handovers: mpsc::Receiver<Handover<S>>,
    /// Told when the connection broke (the dialing helper waits for it).
    pub(crate) wanted: Option<Arc<Notify>>,
    /// The helper task, aborted when the pipe task ends (a PASSIVE end's listening socket
    /// closes with it).
    pub(crate) helper: Option<JoinHandle<()>>,
}

type SharedOf<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> =
    Arc<Shared<P, T, RX, TX, F>>;

fn invalid(e: peerpipe_host::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

fn check(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeHandler<P, T, RX, TX, F>
{
    /// The ACTIVE end over TCP: connects to `addr` (once: a peer that is not there is an
    /// error) and starts a handler on the connection (with `TCP_NODELAY`), which connects
    /// again when the connection breaks, as `reconnect` says (see [`Reconnect`];
    /// [`Reconnect::OFF`]: a break ends the conversation, GONE).
    ///
    /// # Errors
    /// The connection's error; `InvalidInput` for an invalid `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        check(&config)?;
        let addrs = tokio::net::lookup_host(addr).await?.collect();
        Self::dial(Target::Tcp(addrs), config, reconnect).await
    }

    /// The ACTIVE end over a Unix socket at `path`: as [`connect_tcp`](Self::connect_tcp).
    /// Unix only.
    #[cfg(unix)]
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        check(&config)?;
        let target = Target::Unix(path.as_ref().to_path_buf());
        Self::dial(target, config, reconnect).await
    }

    /// The PASSIVE end over TCP: waits for the peer's first connection on `listener` and
    /// starts a handler on it; with reconnection on, the handler keeps the listener for its
    /// whole life and takes the peer's next connection when this one breaks (a newcomer
    /// while a connection is live replaces it only if its first frame carries the peer's
    /// session; see [`Reconnect`]). With [`Reconnect::OFF`] the listener closes once the
    /// first peer connected. Cancel-safe while it waits.
    ///
    /// # Errors
    /// The listener's error; `InvalidInput` for an invalid `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn accept_tcp(
        listener: TcpListener,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        check(&config)?;
        Self::listen(Socket::Tcp(listener), config, reconnect).await
    }

    /// The PASSIVE end over a Unix socket: as [`accept_tcp`](Self::accept_tcp). The socket
    /// file stays where the application bound it. Unix only.
    #[cfg(unix)]
    pub async fn accept_unix(
        listener: UnixListener,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        check(&config)?;
        Self::listen(Socket::Unix(listener, None), config, reconnect).await
    }

    pub(crate) async fn dial(
        target: Target,
        config: Config,
        policy: Reconnect,
    ) -> io::Result<Self> {
        let conn = target.connect(policy.connect_timeout).await?;
        if !policy.enabled {
            return PipeHandler::start(conn, config).map_err(invalid);
        }
        let target = Arc::new(target);
        let open = move || {
            let target = Arc::clone(&target);
            async move { target.connect(policy.connect_timeout).await }
        };
        Self::reopening(conn, config, policy, open)
    }

    /// A handler on `conn` that gets a new connection from `open` each time its own breaks.
    pub(crate) fn reopening<S, O, Fut>(
        conn: S,
        config: Config,
        policy: Reconnect,
        open: O,
    ) -> io::Result<Self>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
        O: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = io::Result<S>> + Send + 'static,
    {
        PipeHandler::launch(conn, config, policy.give_up_after, |shared| {
            let (tx, handovers) = mpsc::channel(1);
            let wanted = Arc::new(Notify::new());
            let helper = tokio::spawn(dial(shared, open, policy, Arc::clone(&wanted), tx));
            Redial {
                handovers,
                wanted: Some(wanted),
                helper: Some(helper),
            }
        })
        .map_err(invalid)
    }

    pub(crate) async fn listen(
        socket: Socket,
        config: Config,
        policy: Reconnect,
    ) -> io::Result<Self> {
        let conn = socket.accept().await?;
        if !policy.enabled {
            return PipeHandler::start(conn, config).map_err(invalid);
        }
        PipeHandler::launch(conn, config, policy.give_up_after, |shared| {
            let (tx, handovers) = mpsc::channel(1);
            let helper = tokio::spawn(accept(shared, socket, policy, tx));
            Redial {
                handovers,
                wanted: None,
                helper: Some(helper),
            }
        })
        .map_err(invalid)
    }
}

/// The ACTIVE end (or a device): each time the connection breaks, dials (opens) until a
/// connection is made or none is wanted any more (the handler stopped, the peer is gone).
async fn dial<
    S,
    O,
    Fut,
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
>(
    shared: SharedOf<P, T, RX, TX, F>,
    open: O,
    policy: Reconnect,
    wanted: Arc<Notify>,
    tx: mpsc::Sender<Handover<S>>,
) where
    O: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<S>>,
{
    let mut jitter = Jitter::new();
    let mut backoff = Backoff::new();
    loop {
        wanted.notified().await;
        // No frame comes in while the connection is down: the count is the broken one's.
        backoff.broke(shared.lock().ep.stats().frames_received);
        loop {
            tokio::time::sleep(backoff.next_wait(&policy, jitter.next())).await;
            if !shared.lock().wants_link() {
                break;
            }
            match open().await {
                Ok(conn) => {
                    // Counted before the new connection carries anything.
                    backoff.connected(shared.lock().ep.stats().frames_received);
                    let input = Vec::new();
                    if tx.send(Handover { conn, input }).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => log::debug!("peerpipe-tokio: reconnect attempt failed: {e}"),
            }
        }
    }
}

/// The PASSIVE end: takes every connection that comes until the handler ends. While no
/// connection is live, a newcomer is taken as it is; while one is, it must prove to be the
/// peer (its first frame carries the current peer session) to replace it, or it is closed.
async fn accept<
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
>(
    shared: SharedOf<P, T, RX, TX, F>,
    socket: Socket,
    policy: Reconnect,
    tx: mpsc::Sender<Handover<Conn>>,
) {
    loop {
        let mut conn = match socket.accept().await {
            Ok(conn) => conn,
            #[cfg(feature = "tls")]
            Err(e) if crate::tls::is_refusal(&e) => {
                // Logged where the handshake failed.
                shared.lock().refused_connections += 1;
                continue;
            }
            Err(e) => {
                log::warn!("peerpipe-tokio: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (taking, live) = {
            let st = shared.lock();
            (st.accepts_links(), st.down.is_none())
        };
        if taking && !live {
            // One handover at a time; a second newcomer meanwhile is closed.
            let _ = tx.try_send(Handover {
                conn,
                input: Vec::new(),
            });
            continue;
        }
        if taking {
            if let Some((session, input)) = first_frame(&mut conn, policy.probation).await {
                let same = shared.lock().ep.peer_session() == Some(session);
                if same {
                    log::info!("peerpipe-tokio: the peer reconnected; its new connection replaces the old one");
                    if tx.send(Handover { conn, input }).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        log::warn!("peerpipe-tokio: refused a connection: a conversation is going on with another");
        shared.lock().refused_connections += 1;
    }
}

/// Reads the first frame a newcomer sends, within `within`: its session and the bytes read.
pub(crate) async fn first_frame(conn: &mut Conn, within: Duration) -> Option<(u32, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut probe = SessionProbe::new();
    let mut buf = vec![0u8; 4096];
    while !probe.exhausted() {
        let n = match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        if let Some(session) = probe.feed(buf.get(..n).unwrap_or(&[])) {
            return Some((session, probe.into_input()));
        }
    }
    None
}
