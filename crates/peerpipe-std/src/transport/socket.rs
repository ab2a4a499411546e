//! TCP and Unix domain sockets: the PASSIVE end listens and accepts one connection, the ACTIVE
//! end connects. (To accept many, see [`PipeListener`](crate::PipeListener).)

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::Path;
#[cfg(unix)]
use std::path::PathBuf;

use super::accept::{Accepted, Acceptor, Socket, Stream};
use super::{Link, Reconnect, Redial, Target, Transport};

/// A link over an accepted or connected socket; with `close_pipe`, stopping the handler
/// shuts the socket down (the peer sees it).
pub(crate) fn stream_link(stream: Stream) -> io::Result<Link> {
    match stream {
        Stream::Tcp(stream) => {
            stream.set_nodelay(true)?;
            let closer = stream.try_clone()?;
            Ok(
                super::duplex(stream.try_clone()?, stream)?.with_closer(move || {
                    let _ = closer.shutdown(Shutdown::Both);
                }),
            )
        }
        #[cfg(unix)]
        Stream::Unix(stream) => {
            let closer = stream.try_clone()?;
            Ok(
                super::duplex(stream.try_clone()?, stream)?.with_closer(move || {
                    let _ = closer.shutdown(Shutdown::Both);
                }),
            )
        }
        #[cfg(feature = "tls")]
        Stream::Tls(tls) => {
            tls.tcp.set_nodelay(true)?;
            let closer = tls.tcp.try_clone()?;
            let (reader, writer) = tls.split()?;
            Ok(super::duplex(reader, writer)?.with_closer(move || {
                let _ = closer.shutdown(Shutdown::Both);
            }))
        }
    }
}

/// Accepts one connection; then, without reconnection, closes the listening socket; with
/// it, keeps the socket for the peer's next connections. An error if the handler was
/// stopped first. With TLS, a connection that fails its handshake is refused (logged, and
/// counted at once in the handler's statistics: see [`Transport::refusals`]) and the next
/// one awaited.
fn accept_one(acceptor: Acceptor, policy: Reconnect) -> io::Result<Link> {
    let stream = loop {
        match acceptor.accept(None)? {
            Accepted::Peer(stream) => match acceptor.secure(stream, policy.connect_timeout) {
                Ok(stream) => break stream,
                Err(_) => acceptor.refused(),
            },
            // Nothing kicks this acceptor.
            Accepted::Kicked => {}
            Accepted::TimedOut | Accepted::Stopped => {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "stopped before a peer connected",
                ))
            }
        }
    };
    let mut link = stream_link(stream)?;
    if policy.enabled {
        link.redial = Some(Redial::Accept(acceptor, policy));
    }
    // Otherwise the listening socket closes here (and a Unix socket's file is removed).
    Ok(link)
}

/// Connects once; with reconnection, the link knows how to connect again.
fn connect_one(target: Target, policy: Reconnect) -> io::Result<Link> {
    let mut link = stream_link(target.connect(policy.connect_timeout)?)?;
    if policy.enabled {
        link.redial = Some(Redial::Dial(target, policy));
    }
    Ok(link)
}

enum TcpEnd {
    Listen(Acceptor),
    Connect(Target),
}

/// A TCP connection. The listening (PASSIVE) end binds when it is created, so its address is
/// known before the peer starts; it accepts one connection when the handler starts, and
/// closes its listening socket then, or when the handler stops first (the port is free when
/// [`stop`](crate::PipeHandler::stop) returns). With reconnection (the default, see
/// [`Reconnect`]) the listening end keeps its socket until the handler stops, and a broken
/// connection is replaced.
pub struct TcpTransport(TcpEnd, Reconnect);

impl TcpTransport {
    /// The PASSIVE end: binds `addr` now (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)) and accepts one connection on start.
    pub fn listen(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let socket = Socket::Tcp(TcpListener::bind(addr)?);
        Ok(TcpTransport(
            TcpEnd::Listen(Acceptor::new(socket)?),
            Reconnect::default(),
        ))
    }

    /// The ACTIVE end: connects to `addr` on start.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(TcpTransport(
            TcpEnd::Connect(Target::Tcp(addr.to_socket_addrs()?.collect())),
            Reconnect::default(),
        ))
    }

    /// The PASSIVE end over TLS: like [`listen`](Self::listen), and each connection must
    /// complete a TLS handshake with `tls` (within [`Reconnect::connect_timeout`]), its
    /// client certificate checked if `tls` requires one. A connection that fails is refused:
    /// closed, logged (a warning) and counted in
    /// [`HandlerStats::refused_connections`](crate::HandlerStats::refused_connections);
    /// the listening end waits for the next one, and a conversation going on is untouched.
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use peerpipe_std::{Config, PipeHandler, TcpTransport, TlsClient, TlsServer};
    ///
    /// // The server: its certificate and key; clients must show one signed by ca.pem.
    /// let tls = TlsServer::from_files(Path::new("server.pem"), Path::new("server.key"))?
    ///     .require_client_cert_file(Path::new("ca.pem"))?;
    /// let listen = TcpTransport::listen_tls("0.0.0.0:7000", &tls)?;
    /// let server = PipeHandler::new(listen, Config::default())?;
    ///
    /// // The client: trusts ca.pem for a server named "board-17", shows its own certificate.
    /// let tls = TlsClient::from_file(Path::new("ca.pem"), "board-17")?
    ///     .with_client_cert_files(Path::new("client.pem"), Path::new("client.key"))?;
    /// let connect = TcpTransport::connect_tls("board-17:7000", &tls)?;
    /// let client = PipeHandler::new(connect, Config::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        addr: impl ToSocketAddrs,
        tls: &peerpipe_host::TlsServer,
    ) -> io::Result<Self> {
        let socket = Socket::Tcp(TcpListener::bind(addr)?);
        let acceptor = Acceptor::new(socket)?.with_tls(super::tls::server_config(tls)?);
        Ok(TcpTransport(TcpEnd::Listen(acceptor), Reconnect::default()))
    }

    /// The ACTIVE end over TLS: connects to `addr` on start and checks the server's
    /// certificate with `tls` (showing the client's own if `tls` has one). A server that
    /// refuses this end, or that this end refuses, fails the connection: on start, the
    /// handler reports the peer GONE with the refusal as the cause (an `io::Error` of kind
    /// `ConnectionRefused` when the server refused, `PermissionDenied` when its certificate
    /// was refused); on a reconnection, the attempt fails and the next one follows.
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: &peerpipe_host::TlsClient,
    ) -> io::Result<Self> {
        let target = Target::Tls(
            addr.to_socket_addrs()?.collect(),
            super::tls::ClientTls::new(tls)?,
        );
        Ok(TcpTransport(TcpEnd::Connect(target), Reconnect::default()))
    }

    /// What to do when the connection breaks (default [`Reconnect::ON`]; turn it off with
    /// [`Reconnect::OFF`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use peerpipe_std::{Reconnect, TcpTransport};
    ///
    /// let quick = Reconnect { max_backoff: Duration::from_millis(500), ..Reconnect::default() };
    /// let client = TcpTransport::connect("127.0.0.1:7000")?.reconnect(quick);
    /// let once = TcpTransport::connect("127.0.0.1:7000")?.reconnect(Reconnect::OFF);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.1 = policy;
        self
    }

    /// The listening address, for the PASSIVE end.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.0 {
            TcpEnd::Listen(a) => a.local_addr(),
            TcpEnd::Connect(_) => None,
        }
    }
}

impl Transport for TcpTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        match self.0 {
            TcpEnd::Listen(acceptor) => accept_one(acceptor, self.1),
            TcpEnd::Connect(target) if self.1.enabled => connect_one(target, self.1),
            TcpEnd::Connect(Target::Tcp(addrs)) => {
                stream_link(Stream::Tcp(TcpStream::connect(&addrs[..])?))
            }
            // TLS without reconnection: its handshake is bounded by the connect timeout.
            // (A TCP transport's target is never a Unix socket's.)
            #[cfg(any(feature = "tls", unix))]
            TcpEnd::Connect(target) => stream_link(target.connect(self.1.connect_timeout)?),
        }
    }

    fn interrupter(&self) -> Option<Box<dyn FnOnce() + Send>> {
        match &self.0 {
            TcpEnd::Listen(a) => {
                let stop = a.stopper();
                Some(Box::new(move || stop.stop()))
            }
            TcpEnd::Connect(_) => None,
        }
    }

    fn refusals(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        match &self.0 {
            TcpEnd::Listen(a) => Some(a.refusals()),
            TcpEnd::Connect(_) => None,
        }
    }
}

#[cfg(unix)]
enum UnixEnd {
    Listen(Acceptor),
    Connect(PathBuf),
}

/// A Unix domain socket connection, PASSIVE (listening at a path) or ACTIVE (connecting).
/// Unix only. It reconnects like [`TcpTransport`] (see [`Reconnect`]).
#[cfg(unix)]
pub struct UnixTransport(UnixEnd, Reconnect);

#[cfg(unix)]
impl UnixTransport {
    /// The PASSIVE end: binds `path` now (removing a stale socket file) and accepts one
    /// connection on start. The file is removed when the connection is accepted, or when the
    /// handler stops first.
    pub fn listen(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(UnixTransport(
            UnixEnd::Listen(Acceptor::new(bind_unix(path.as_ref())?)?),
            Reconnect::default(),
        ))
    }

    /// The ACTIVE end: connects to `path` on start.
    pub fn connect(path: impl AsRef<Path>) -> Self {
        UnixTransport(
            UnixEnd::Connect(path.as_ref().to_path_buf()),
            Reconnect::default(),
        )
    }

    /// What to do when the connection breaks (default [`Reconnect::ON`]; turn it off with
    /// [`Reconnect::OFF`]).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.1 = policy;
        self
    }
}

/// Binds a Unix socket at `path`, removing a stale socket file first.
#[cfg(unix)]
pub(crate) fn bind_unix(path: &Path) -> io::Result<Socket> {
    let _ = std::fs::remove_file(path);
    Ok(Socket::Unix(UnixListener::bind(path)?, path.to_path_buf()))
}

#[cfg(unix)]
impl Transport for UnixTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        match self.0 {
            UnixEnd::Listen(acceptor) => accept_one(acceptor, self.1),
            UnixEnd::Connect(path) if self.1.enabled => connect_one(Target::Unix(path), self.1),
            UnixEnd::Connect(path) => stream_link(Stream::Unix(UnixStream::connect(path)?)),
        }
    }

    fn interrupter(&self) -> Option<Box<dyn FnOnce() + Send>> {
        match &self.0 {
            UnixEnd::Listen(a) => {
                let stop = a.stopper();
                Some(Box::new(move || stop.stop()))
            }
            UnixEnd::Connect(_) => None,
        }
    }

    fn refusals(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        match &self.0 {
            UnixEnd::Listen(a) => Some(a.refusals()),
            UnixEnd::Connect(_) => None,
        }
    }
}
