//! Reconnection of TCP and Unix socket connections: how each end gets a new connection
//! (the policy, [`Reconnect`], is `peerpipe_host`'s) (the driver's `reconnect` module runs it).

use std::io;
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use super::accept::{Acceptor, Stream};
use super::Link;

pub use peerpipe_host::Reconnect;

/// Where the ACTIVE end connects.
#[derive(Clone)]
pub(crate) enum Target {
    Tcp(Vec<SocketAddr>),
    #[cfg(unix)]
    Unix(PathBuf),
    /// TCP, then a TLS handshake.
    #[cfg(feature = "tls")]
    Tls(Vec<SocketAddr>, super::tls::ClientTls),
}

/// Connects to the first of `addrs` that answers within `timeout`.
fn connect_tcp(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout.max(Duration::from_millis(1))) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Target {
    /// Connects, within `timeout` (TCP: each address's attempt; TLS: its handshake too).
    pub(crate) fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        match self {
            Target::Tcp(addrs) => Ok(Stream::Tcp(connect_tcp(addrs, timeout)?)),
            #[cfg(unix)]
            Target::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
            #[cfg(feature = "tls")]
            Target::Tls(addrs, tls) => {
                let tcp = connect_tcp(addrs, timeout)?;
                Ok(Stream::Tls(Box::new(super::tls::connect(
                    tcp, tls, timeout,
                )?)))
            }
        }
    }
}

/// How a link gets a new connection when it breaks.
pub(crate) enum Redial {
    /// The ACTIVE end dials again.
    Dial(Target, Reconnect),
    /// The PASSIVE end accepts the next connection (its acceptor stays open).
    Accept(Acceptor, Reconnect),
    /// A device opened again (a serial port, at its path) by the function.
    #[cfg_attr(not(feature = "serial"), allow(dead_code))]
    Reopen(Box<dyn Fn() -> io::Result<Link> + Send>, Reconnect),
    /// A [`PipeListener`](crate::PipeListener)'s handler: the listener routes its peer's
    /// next connection to it. With the bytes the listener read from the first connection
    /// (its first frame), for the endpoint.
    Routed(Reconnect, Vec<u8>),
}

impl Redial {
    pub(crate) fn policy(&self) -> &Reconnect {
        match self {
            Redial::Dial(_, p)
            | Redial::Accept(_, p)
            | Redial::Reopen(_, p)
            | Redial::Routed(p, _) => p,
        }
    }

    /// The bytes already read from the first connection, for the endpoint (once).
    pub(crate) fn take_input(&mut self) -> Vec<u8> {
        match self {
            Redial::Routed(_, input) => std::mem::take(input),
            Redial::Dial(..) | Redial::Accept(..) | Redial::Reopen(..) => Vec::new(),
        }
    }
}
