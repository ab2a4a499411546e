//! Accepting connections on a listening socket, interruptibly: the listening half of
//! [`TcpTransport`](super::TcpTransport), [`UnixTransport`](super::UnixTransport) and
//! [`PipeListener`](crate::PipeListener).
//!
//! A blocking `accept(2)` cannot be interrupted from another thread (closing the socket does
//! not wake it on Linux), so the listening socket is non-blocking and the accepting thread
//! waits for it: on Unix with mio (epoll, kqueue) on the socket and a `mio::Waker`, so a
//! connection is taken at once and a stop wakes the thread at once; elsewhere by trying
//! `accept` every `RETRY` (a connection or a stop is seen within that).
//!
//! Stopping ([`StopAccept::stop`], from any thread) takes the socket out of the acceptor and
//! closes it right there, on the stopping thread: the port (or the socket file) is free when
//! `stop` returns, whatever the accepting thread is doing; that thread then returns
//! [`Accepted::Stopped`].

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use peerpipe_host::tls::rustls;

/// How often a waiting accept tries again where there is no mio (not Unix).
#[cfg(not(unix))]
const RETRY: Duration = Duration::from_millis(10);

/// A listening socket.
pub(crate) enum Socket {
    Tcp(TcpListener),
    /// Removes its socket file when closed.
    #[cfg(unix)]
    Unix(UnixListener, PathBuf),
}

impl Drop for Socket {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Socket::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Socket {
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(l) => l.set_nonblocking(true),
            #[cfg(unix)]
            Socket::Unix(l, _) => l.set_nonblocking(true),
        }
    }

    fn try_accept(&self) -> io::Result<Stream> {
        // An accepted socket inherits O_NONBLOCK from the listener on some systems (macOS,
        // Windows): the link decides the mode itself.
        match self {
            Socket::Tcp(l) => {
                let s = l.accept()?.0;
                s.set_nonblocking(false)?;
                Ok(Stream::Tcp(s))
            }
            #[cfg(unix)]
            Socket::Unix(l, _) => {
                let s = l.accept()?.0;
                s.set_nonblocking(false)?;
                Ok(Stream::Unix(s))
            }
        }
    }

    #[cfg(unix)]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Socket::Tcp(l) => l.as_raw_fd(),
            Socket::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

/// An accepted or connected stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
    /// A TCP connection whose TLS handshake is done.
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsStream>),
}

impl Stream {
    /// A blocking read that waits at most `within` (zero: clears the timeout, reads nothing).
    pub(crate) fn read_within(&mut self, buf: &mut [u8], within: Duration) -> io::Result<usize> {
        let timeout = (!within.is_zero()).then_some(within);
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                if buf.is_empty() {
                    return Ok(0);
                }
                s.read(buf)
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(timeout)?;
                if buf.is_empty() {
                    return Ok(0);
                }
                s.read(buf)
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                s.tcp.set_read_timeout(timeout)?;
                if buf.is_empty() {
                    return Ok(0);
                }
                s.read_plain(buf)
            }
        }
    }

    /// Appends what was read from the connection but not returned by a read (decrypted
    /// bytes TLS holds): it must reach the handler, no readiness will announce it.
    pub(crate) fn take_buffered(&mut self, into: &mut Vec<u8>) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(s) = self {
            s.take_buffered(into);
        }
        let _ = into;
    }
}

/// How an accept ended.
pub(crate) enum Accepted {
    Peer(Stream),
    /// The deadline passed.
    TimedOut,
    /// [`Kick::kick`] was called (since the last accept that returned this).
    Kicked,
    /// The acceptor was stopped: its socket is closed.
    Stopped,
}

/// What the acceptor and its stop handles share.
struct Shared {
    /// The socket until stopped.
    socket: Mutex<Option<Socket>>,
    stopped: AtomicBool,
    kicked: AtomicBool,
    /// Connections refused (TLS handshakes that failed), as [`Acceptor::refused`] counts them.
    refused: Arc<AtomicU64>,
    #[cfg(unix)]
    waker: mio::Waker,
}

/// What an accepted connection gets before it is a link: with TLS, its handshake.
#[derive(Clone, Default)]
pub(crate) struct Securer(#[cfg(feature = "tls")] Option<Arc<rustls::ServerConfig>>);

impl Securer {
    /// With TLS, the handshake of `stream`, within `timeout` (an error: the peer is refused,
    /// and the refusal logged); without, `stream` as it is.
    pub(crate) fn secure(&self, stream: Stream, timeout: Duration) -> io::Result<Stream> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.0 {
            if let Stream::Tcp(tcp) = stream {
                let tls = super::tls::accept(tcp, config, timeout)?;
                return Ok(Stream::Tls(Box::new(tls)));
            }
        }
        let _ = timeout;
        Ok(stream)
    }
}

/// A listening socket that accepts until stopped.
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
    /// What every connection accepted gets before it is a link ([`secure`](Self::secure)).
    securer: Securer,
    /// Waits for the socket and the waker; one accepting thread at a time.
    #[cfg(unix)]
    poll: Mutex<mio::Poll>,
    local_addr: Option<SocketAddr>,
}

/// Stops an [`Acceptor`] from any thread.
#[derive(Clone)]
pub(crate) struct StopAccept(Arc<Shared>);

impl StopAccept {
    /// Closes the socket now and wakes the accepting thread (idempotent).
    pub(crate) fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        drop(
            self.0
                .socket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        #[cfg(unix)]
        let _ = self.0.waker.wake();
    }
}

/// Ends a waiting [`Acceptor::accept`] with [`Accepted::Kicked`], from any thread (or the
/// next one, if none waits).
#[derive(Clone)]
pub(crate) struct Kick(Arc<Shared>);

impl Kick {
    pub(crate) fn kick(&self) {
        self.0.kicked.store(true, Ordering::SeqCst);
        #[cfg(unix)]
        let _ = self.0.waker.wake();
    }
}

#[cfg(unix)]
const LISTENER: mio::Token = mio::Token(0);
#[cfg(unix)]
const WAKE: mio::Token = mio::Token(1);

impl Acceptor {
    pub(crate) fn new(socket: Socket) -> io::Result<Self> {
        socket.set_nonblocking()?;
        let local_addr = match &socket {
            Socket::Tcp(l) => Some(l.local_addr()?),
            #[cfg(unix)]
            Socket::Unix(..) => None,
        };
        #[cfg(unix)]
        let (poll, waker) = {
            let poll = mio::Poll::new()?;
            let fd = socket.raw_fd();
            poll.registry().register(
                &mut mio::unix::SourceFd(&fd),
                LISTENER,
                mio::Interest::READABLE,
            )?;
            let waker = mio::Waker::new(poll.registry(), WAKE)?;
            (poll, waker)
        };
        Ok(Acceptor {
            shared: Arc::new(Shared {
                socket: Mutex::new(Some(socket)),
                stopped: AtomicBool::new(false),
                kicked: AtomicBool::new(false),
                refused: Arc::default(),
                #[cfg(unix)]
                waker,
            }),
            #[cfg(unix)]
            poll: Mutex::new(poll),
            local_addr,
            securer: Securer::default(),
        })
    }

    /// Every connection accepted gets a TLS handshake ([`secure`](Self::secure)).
    #[cfg(feature = "tls")]
    pub(crate) fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.securer = Securer(Some(config));
        self
    }

    /// An accepted connection made ready for a link (see [`Securer::secure`]).
    pub(crate) fn secure(&self, stream: Stream, timeout: Duration) -> io::Result<Stream> {
        self.securer.secure(stream, timeout)
    }

    /// What makes its accepted connections ready for a link, for another thread.
    pub(crate) fn securer(&self) -> Securer {
        self.securer.clone()
    }

    pub(crate) fn stopper(&self) -> StopAccept {
        StopAccept(self.shared.clone())
    }

    pub(crate) fn stop(&self) {
        self.stopper().stop();
    }

    /// Counts a refused connection (a TLS handshake that failed, a stranger).
    pub(crate) fn refused(&self) {
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The count of [`refused`](Self::refused) connections, for the handler's statistics.
    pub(crate) fn refusals(&self) -> Arc<AtomicU64> {
        self.shared.refused.clone()
    }

    /// What ends a waiting accept, for another thread.
    pub(crate) fn kicker(&self) -> Kick {
        Kick(self.shared.clone())
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// The bound address of a TCP socket.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// One try: a connection, `None` if none waits, or the stop.
    fn try_once(&self) -> io::Result<Option<Accepted>> {
        let socket = self
            .shared
            .socket
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(socket) = socket.as_ref() else {
            return Ok(Some(Accepted::Stopped));
        };
        match socket.try_accept() {
            Ok(s) => Ok(Some(Accepted::Peer(s))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for a connection until `deadline` (forever without one), the stop, or a
    /// [`Kick`]. An error is the socket's (e.g. too many open files); the acceptor stays
    /// usable.
    pub(crate) fn accept(&self, deadline: Option<Instant>) -> io::Result<Accepted> {
        #[cfg(unix)]
        let mut poll = self.poll.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(unix)]
        let mut events = mio::Events::with_capacity(4);
        loop {
            // Always try before waiting: readiness is edge-triggered, and a connection may
            // have come while another accept held the poller.
            if let Some(done) = self.try_once()? {
                return Ok(done);
            }
            if self.shared.kicked.swap(false, Ordering::SeqCst) {
                return Ok(Accepted::Kicked);
            }
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Accepted::TimedOut);
                    }
                    Some(left)
                }
                None => None,
            };
            #[cfg(unix)]
            match poll.poll(&mut events, left) {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
                _ => {}
            }
            #[cfg(not(unix))]
            std::thread::sleep(left.map_or(RETRY, |l| l.min(RETRY)));
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop();
    }
}
