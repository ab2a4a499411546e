//! Serving many peers: a listening socket that yields one started handler per connection.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;

use peerpipe_core::Config;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::net::Socket;
use crate::PipeHandler;

/// A TCP (or, on Unix, Unix domain socket) server: [`accept`](Self::accept) waits for the
/// next peer and returns a started [`PipeHandler`] for it, with its own session id and its
/// own task. Dropping the listener closes the listening socket at once (the port is free
/// for a new bind; a Unix socket's file is removed); handlers already accepted live on.
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
}

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
        Ok(PipeListener {
            socket: Socket::Tcp(TcpListener::bind(addr).await?),
            config,
        })
    }

    /// Serves on a TCP listener the application bound itself.
    pub fn from_tcp(listener: TcpListener, config: Config) -> io::Result<Self> {
        validate(&config)?;
        Ok(PipeListener {
            socket: Socket::Tcp(listener),
            config,
        })
    }

    /// Listens on a Unix domain socket at `path` (a stale socket file there is removed
    /// first; the file is removed again when the listener is dropped). Unix only; inside a
    /// tokio runtime.
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>, config: Config) -> io::Result<Self> {
        validate(&config)?;
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        Ok(PipeListener {
            socket: Socket::Unix(tokio::net::UnixListener::bind(&path)?, Some(path)),
            config,
        })
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for the next peer and starts its handler (on TCP with `TCP_NODELAY` set). An
    /// error is the socket's (e.g. too many open files); the listener stays usable.
    /// Cancel-safe.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn accept(&self) -> io::Result<PipeHandler<P, T, RX, TX, F>> {
        let started = PipeHandler::start(self.socket.accept().await?, self.config);
        started.map_err(io::Error::other)
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
