//! TCP and Unix domain sockets: the PASSIVE end listens and accepts one connection, the ACTIVE
//! end connects.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::{Path, PathBuf};

use super::{Link, Transport};

enum TcpEnd {
    Listen(TcpListener),
    Connect(Vec<SocketAddr>),
}

/// A TCP connection. The listening (PASSIVE) end binds when it is created, so its address is
/// known before the peer starts; it accepts one connection when the handler starts.
pub struct TcpTransport(TcpEnd);

impl TcpTransport {
    /// The PASSIVE end: binds `addr` now (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)) and accepts one connection on start.
    pub fn listen(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(TcpTransport(TcpEnd::Listen(TcpListener::bind(addr)?)))
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
            TcpEnd::Listen(l) => l.local_addr().ok(),
            TcpEnd::Connect(_) => None,
        }
    }
}

impl Transport for TcpTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let stream = match self.0 {
            TcpEnd::Listen(listener) => listener.accept()?.0,
            TcpEnd::Connect(addrs) => TcpStream::connect(&addrs[..])?,
        };
        stream.set_nodelay(true)?;
        let closer = stream.try_clone()?;
        Ok(
            super::duplex(stream.try_clone()?, stream)?.with_closer(move || {
                let _ = closer.shutdown(Shutdown::Both);
            }),
        )
    }
}

#[cfg(unix)]
enum UnixEnd {
    Listen(UnixListener, PathBuf),
    Connect(PathBuf),
}

/// A Unix domain socket connection, PASSIVE (listening at a path) or ACTIVE (connecting).
/// Unix only.
#[cfg(unix)]
pub struct UnixTransport(UnixEnd);

#[cfg(unix)]
impl UnixTransport {
    /// The PASSIVE end: binds `path` now (removing a stale socket file) and accepts one
    /// connection on start. The file is removed when the connection is accepted.
    pub fn listen(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        Ok(UnixTransport(UnixEnd::Listen(
            UnixListener::bind(&path)?,
            path,
        )))
    }

    /// The ACTIVE end: connects to `path` on start.
    pub fn connect(path: impl AsRef<Path>) -> Self {
        UnixTransport(UnixEnd::Connect(path.as_ref().to_path_buf()))
    }
}

#[cfg(unix)]
impl Transport for UnixTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let stream = match self.0 {
            UnixEnd::Listen(listener, path) => {
                let stream = listener.accept()?.0;
                let _ = std::fs::remove_file(path);
                stream
            }
            UnixEnd::Connect(path) => UnixStream::connect(path)?,
        };
        let closer = stream.try_clone()?;
        Ok(
            super::duplex(stream.try_clone()?, stream)?.with_closer(move || {
                let _ = closer.shutdown(Shutdown::Both);
            }),
        )
    }
}
