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
use super::{Link, Transport};

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
    }
}

/// Accepts one connection, then closes the listening socket; an error if the handler was
/// stopped first.
fn accept_one(acceptor: Acceptor) -> io::Result<Link> {
    let accepted = acceptor.accept(None)?;
    // The listening socket closes here (and a Unix socket's file is removed).
    drop(acceptor);
    match accepted {
        Accepted::Peer(stream) => stream_link(stream),
        Accepted::TimedOut | Accepted::Stopped => Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "stopped before a peer connected",
        )),
    }
}

enum TcpEnd {
    Listen(Acceptor),
    Connect(Vec<SocketAddr>),
}

/// A TCP connection. The listening (PASSIVE) end binds when it is created, so its address is
/// known before the peer starts; it accepts one connection when the handler starts, and
/// closes its listening socket then, or when the handler stops first (the port is free when
/// [`stop`](crate::PipeHandler::stop) returns).
pub struct TcpTransport(TcpEnd);

impl TcpTransport {
    /// The PASSIVE end: binds `addr` now (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)) and accepts one connection on start.
    pub fn listen(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let socket = Socket::Tcp(TcpListener::bind(addr)?);
        Ok(TcpTransport(TcpEnd::Listen(Acceptor::new(socket)?)))
    }

    /// The ACTIVE end: connects to `addr` on start.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(TcpTransport(TcpEnd::Connect(
            addr.to_socket_addrs()?.collect(),
        )))
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
            TcpEnd::Listen(acceptor) => accept_one(acceptor),
            TcpEnd::Connect(addrs) => stream_link(Stream::Tcp(TcpStream::connect(&addrs[..])?)),
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
}

#[cfg(unix)]
enum UnixEnd {
    Listen(Acceptor),
    Connect(PathBuf),
}

/// A Unix domain socket connection, PASSIVE (listening at a path) or ACTIVE (connecting).
/// Unix only.
#[cfg(unix)]
pub struct UnixTransport(UnixEnd);

#[cfg(unix)]
impl UnixTransport {
    /// The PASSIVE end: binds `path` now (removing a stale socket file) and accepts one
    /// connection on start. The file is removed when the connection is accepted, or when the
    /// handler stops first.
    pub fn listen(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(UnixTransport(UnixEnd::Listen(Acceptor::new(bind_unix(
            path.as_ref(),
        )?)?)))
    }

    /// The ACTIVE end: connects to `path` on start.
    pub fn connect(path: impl AsRef<Path>) -> Self {
        UnixTransport(UnixEnd::Connect(path.as_ref().to_path_buf()))
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
            UnixEnd::Listen(acceptor) => accept_one(acceptor),
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
}
