//! Every connect and accept of the crate, in one place: the listening sockets
//! ([`PipeListener`](crate::PipeListener) and a reconnecting PASSIVE handler), the
//! connections they and a dialing ACTIVE handler make, and where the ACTIVE end connects.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};

/// A connection over TCP (with `TCP_NODELAY` set) or a Unix socket.
pub(crate) enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
    /// TCP with its TLS handshake done.
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsStream>),
}

impl Conn {
    fn tcp(stream: TcpStream) -> io::Result<Conn> {
        // The task gathers every frame due into one write; Nagle would only hold small
        // frames back.
        stream.set_nodelay(true)?;
        Ok(Conn::Tcp(stream))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A listening socket.
pub(crate) enum Socket {
    Tcp(TcpListener),
    /// With `Some` path, removes its socket file when dropped.
    #[cfg(unix)]
    Unix(UnixListener, Option<PathBuf>),
    /// TCP, each connection's TLS handshake made in [`Accepted::finish`].
    #[cfg(feature = "tls")]
    Tls(TcpListener, crate::tls::ServerTls),
}

/// A connection a [`Socket`] accepted, its TLS handshake (if any) still to make.
pub(crate) enum Accepted {
    Ready(Conn),
    #[cfg(feature = "tls")]
    Tls(TcpStream, crate::tls::ServerTls),
}

impl Accepted {
    /// The connection, its TLS handshake made (a refusal is the error, see
    /// [`ServerTls::accept`](crate::tls::ServerTls::accept)).
    pub(crate) async fn finish(self) -> io::Result<Conn> {
        match self {
            Accepted::Ready(conn) => Ok(conn),
            #[cfg(feature = "tls")]
            Accepted::Tls(tcp, tls) => Ok(Conn::Tls(Box::new(tls.accept(tcp).await?))),
        }
    }
}

impl Socket {
    /// Waits for the next connection, without its TLS handshake. Cancel-safe.
    pub(crate) async fn accept_raw(&self) -> io::Result<Accepted> {
        Ok(match self {
            Socket::Tcp(l) => Accepted::Ready(Conn::tcp(l.accept().await?.0)?),
            #[cfg(unix)]
            Socket::Unix(l, _) => Accepted::Ready(Conn::Unix(l.accept().await?.0)),
            #[cfg(feature = "tls")]
            Socket::Tls(l, tls) => Accepted::Tls(l.accept().await?.0, tls.clone()),
        })
    }

    /// Waits for the next connection and makes its TLS handshake, if any (then not
    /// cancel-safe: a handshake under way is dropped with its connection).
    pub(crate) async fn accept(&self) -> io::Result<Conn> {
        self.accept_raw().await?.finish().await
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Socket::Tcp(l) => l.local_addr().ok(),
            #[cfg(feature = "tls")]
            Socket::Tls(l, _) => l.local_addr().ok(),
            #[cfg(unix)]
            Socket::Unix(..) => None,
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Socket::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where the ACTIVE end connects.
pub(crate) enum Target {
    Tcp(Vec<SocketAddr>),
    #[cfg(unix)]
    Unix(PathBuf),
    /// TCP, then a TLS handshake.
    #[cfg(feature = "tls")]
    Tls(Vec<SocketAddr>, peerpipe_host::TlsClient),
}

/// Connects to the first of `addrs` that answers, each within `timeout`.
async fn connect_tcp(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

impl Target {
    /// Connects within `timeout` (to each TCP address in turn; TLS: its handshake too).
    pub(crate) async fn connect(&self, timeout: Duration) -> io::Result<Conn> {
        match self {
            Target::Tcp(addrs) => Conn::tcp(connect_tcp(addrs, timeout).await?),
            #[cfg(feature = "tls")]
            Target::Tls(addrs, tls) => {
                let tcp = connect_tcp(addrs, timeout).await?;
                Ok(Conn::Tls(Box::new(
                    crate::tls::handshake(tcp, tls, timeout).await?,
                )))
            }
            #[cfg(unix)]
            Target::Unix(path) => tokio::time::timeout(timeout, UnixStream::connect(path))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
                .map(Conn::Unix),
        }
    }
}
