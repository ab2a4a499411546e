//! TLS for TCP (feature `tls`), with tokio-rustls: handlers that connect and accept over TLS
//! ([`PipeHandler::connect_tls`](crate::PipeHandler::connect_tls),
//! [`PipeHandler::accept_tls`](crate::PipeHandler::accept_tls), reconnecting like their TCP
//! counterparts with a new handshake per connection), a listener for many peers
//! ([`PipeListener::bind_tls`](crate::PipeListener::bind_tls)), and the bare [`connect`] and
//! [`accept`] for a handler started over the stream.
//!
//! The configurations are peerpipe-host's ([`TlsClient`], [`TlsServer`], shared with
//! peerpipe-std): TLS 1.3, the server's certificate always checked, a client certificate
//! required when the server is given client authorities. Without TLS, anyone who can reach
//! a listening port can talk to the handler behind it.
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use peerpipe_tokio::tls::{self, TlsClient};
//! use peerpipe_tokio::{Config, PipeHandler};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = TlsClient::from_file(Path::new("ca.pem"), "board-17")?
//!     .with_client_cert_files(Path::new("client.pem"), Path::new("client.key"))?;
//! let stream = tls::connect("board-17:7000", &tls, Duration::from_secs(2)).await?;
//! let pipe: PipeHandler = PipeHandler::start(stream, Config::default())?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use peerpipe_core::Config;
use peerpipe_host::tls::{refusal, rustls};
pub use peerpipe_host::{TlsClient, TlsError, TlsServer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::net::{Socket, Target};
use crate::{PipeHandler, PipeListener, Reconnect};

/// A TCP connection whose TLS handshake is done: a byte stream for
/// [`PipeHandler::start`](crate::PipeHandler::start).
pub struct TlsStream {
    inner: tokio_rustls::TlsStream<TcpStream>,
    /// Decrypted bytes read while the client waited for the server's verdict; they come
    /// first.
    early: Vec<u8>,
    pos: usize,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

/// An error from tokio-rustls: a refusal in rustls's words when it is one.
fn reason(e: io::Error) -> io::Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => refusal(tls),
        None => e,
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
}

/// Connects to `addr` over TCP (`TCP_NODELAY` set) and TLS with `tls`, within `timeout`
/// (connection and handshake); see [`handshake`]. For a handler that reconnects, see
/// [`PipeHandler::connect_tls`](crate::PipeHandler::connect_tls).
pub async fn connect(
    addr: impl ToSocketAddrs,
    tls: &TlsClient,
    timeout: Duration,
) -> io::Result<TlsStream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??;
    handshake(tcp, tls, timeout).await
}

/// The client's TLS handshake over `tcp` (`TCP_NODELAY` set), within `timeout`. Then waits,
/// within the same bound, for the server's verdict on this client's certificate (TLS 1.3
/// gives it after the client's handshake: a session ticket, which peerpipe's servers always
/// send, or an alert), so that a refused client learns it here: an error of kind
/// `ConnectionRefused` (the server refused this client), `PermissionDenied` (this client
/// refused the server's certificate) or `TimedOut`.
pub async fn handshake(
    tcp: TcpStream,
    tls: &TlsClient,
    timeout: Duration,
) -> io::Result<TlsStream> {
    let config = tls.config().map_err(io::Error::other)?;
    let name = tls.server_name().clone();
    let deadline = tokio::time::Instant::now() + timeout;
    tcp.set_nodelay(true)?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    let inner = tokio::time::timeout_at(deadline, handshake)
        .await
        .map_err(|_| timed_out())?
        .map_err(reason)?;
    let mut stream = TlsStream {
        inner: tokio_rustls::TlsStream::Client(inner),
        early: Vec::new(),
        pos: 0,
    };
    // A server that sends no ticket leaves the client waiting until the deadline; then it
    // goes on.
    if let Ok(verdict) = tokio::time::timeout_at(deadline, Verdict(&mut stream)).await {
        verdict?;
    }
    Ok(stream)
}

/// Waits until the server's session ticket came (or its refusal: an error), keeping any
/// data read meanwhile.
struct Verdict<'a>(&'a mut TlsStream);

impl Future for Verdict<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = &mut *self.0;
        let ticket = |s: &TlsStream| match &s.inner {
            tokio_rustls::TlsStream::Client(c) => c.get_ref().1.tls13_tickets_received() > 0,
            tokio_rustls::TlsStream::Server(_) => true,
        };
        loop {
            if ticket(s) {
                return Poll::Ready(Ok(()));
            }
            let mut buf = [0u8; 4096];
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut s.inner).poll_read(cx, &mut read) {
                // The read took the ticket and waits for data now.
                Poll::Pending if ticket(s) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(reason(e))),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "TLS: the server closed the connection after the handshake",
                    )))
                }
                Poll::Ready(Ok(())) => s.early.extend_from_slice(read.filled()),
            }
        }
    }
}

/// Accepts TLS over an accepted TCP connection with `tls`, within `timeout`
/// (`TCP_NODELAY` set). A refused peer is an error of kind `PermissionDenied` (its
/// certificate, none, or bytes that are not TLS), `ConnectionRefused` (it refused this
/// server's) or `TimedOut`, and is logged as a warning.
pub async fn accept(tcp: TcpStream, tls: &TlsServer, timeout: Duration) -> io::Result<TlsStream> {
    let config = tls.config().map_err(io::Error::other)?;
    ServerTls(config, timeout).accept(tcp).await
}

/// What a listening TLS socket accepts with.
#[derive(Clone)]
pub(crate) struct ServerTls(Arc<rustls::ServerConfig>, Duration);

impl ServerTls {
    /// `tls`, each handshake within `timeout`.
    pub(crate) fn new(tls: &TlsServer, timeout: Duration) -> io::Result<Self> {
        Ok(ServerTls(tls.config().map_err(io::Error::other)?, timeout))
    }

    /// The handshake of an accepted connection; a refusal is logged, and is an error that
    /// [`is_refusal`] tells apart from the socket's own.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let peer = tcp.peer_addr().ok();
        tcp.set_nodelay(true)?;
        let handshake = tokio_rustls::TlsAcceptor::from(self.0.clone()).accept(tcp);
        let accepted = match tokio::time::timeout(self.1, handshake).await {
            Err(_) => Err(timed_out()),
            Ok(r) => r.map_err(reason),
        };
        let inner = accepted.map_err(|e| {
            log::warn!(
                "peerpipe-tokio: refused a TLS connection from {}: {e}",
                peer.map_or_else(|| "?".to_string(), |p| p.to_string())
            );
            io::Error::new(e.kind(), Refused(e))
        })?;
        Ok(TlsStream {
            inner: tokio_rustls::TlsStream::Server(inner),
            early: Vec::new(),
            pos: 0,
        })
    }
}

/// A peer refused by a listening end's TLS handshake (the inner error says why).
#[derive(Debug)]
struct Refused(io::Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Refused {}

/// Whether an accept failed because TLS refused the peer (not because of the socket).
pub(crate) fn is_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Refused>())
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeHandler<P, T, RX, TX, F>
{
    /// [`connect_tcp`](Self::connect_tcp) over TLS: each connection (the first, and each
    /// reconnection) makes a TLS handshake with `tls` (see [`handshake`]), within
    /// `reconnect.connect_timeout`. A refusal of the first connection is the error; of a
    /// reconnection, a failed attempt (the next one follows).
    ///
    /// # Errors
    /// The connection's or the handshake's error; `InvalidInput` for an invalid `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: &TlsClient,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        validate(&config)?;
        let addrs = tokio::net::lookup_host(addr).await?.collect();
        Self::dial(Target::Tls(addrs, tls.clone()), config, reconnect).await
    }

    /// [`accept_tcp`](Self::accept_tcp) over TLS: each connection must complete a TLS
    /// handshake with `tls` (its client certificate checked if `tls` requires one) within
    /// `reconnect.connect_timeout`. A peer that fails is refused (a TLS alert, a logged warning); while waiting for
    /// the first peer the refusal is this call's error, later it is counted in
    /// [`HandlerStats::refused_connections`](crate::HandlerStats::refused_connections) and
    /// the conversation going on is untouched.
    ///
    /// # Errors
    /// The listener's error, a refused first peer; `InvalidInput` for an invalid `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn accept_tls(
        listener: TcpListener,
        tls: &TlsServer,
        config: Config,
        reconnect: Reconnect,
    ) -> io::Result<Self> {
        validate(&config)?;
        Self::listen(
            Socket::Tls(listener, ServerTls::new(tls, reconnect.connect_timeout)?),
            config,
            reconnect,
        )
        .await
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeListener<P, T, RX, TX, F>
{
    /// [`bind`](Self::bind) over TLS: each peer's connection must complete a TLS handshake
    /// with `tls` (its client certificate checked if `tls` requires one) within 2 s (the
    /// default [`Reconnect::connect_timeout`]). Each handshake runs in a task of its own,
    /// so a slow or silent client holds up no other peer, and [`accept`](Self::accept)
    /// stays cancel-safe. A peer that fails is refused (a TLS alert, a logged warning) and
    /// `accept` returns the refusal as its error (kind `PermissionDenied`,
    /// `ConnectionRefused` or `TimedOut`); the listener stays usable, and the handlers
    /// already accepted are untouched.
    pub async fn bind_tls(
        addr: impl ToSocketAddrs,
        tls: &TlsServer,
        config: Config,
    ) -> io::Result<Self> {
        validate(&config)?;
        let tls = ServerTls::new(tls, Reconnect::ON.connect_timeout)?;
        let socket = Socket::Tls(TcpListener::bind(addr).await?, tls);
        Ok(Self::on(socket, config))
    }
}

fn validate(config: &Config) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &mut *self;
        if let Some(early) = s.early.get(s.pos..).filter(|e| !e.is_empty()) {
            let n = early.len().min(buf.remaining());
            buf.put_slice(early.get(..n).unwrap_or(&[]));
            s.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut s.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
