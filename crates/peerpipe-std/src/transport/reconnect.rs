//! Reconnection of TCP and Unix socket connections: the policy, and how each end gets a new
//! connection (the driver's `reconnect` module runs it).

use std::io;
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use super::accept::{Acceptor, Stream};

/// What a TCP or Unix socket transport does when its connection breaks: reconnect (the
/// default) or end the conversation at once (GONE with
/// [`GoneReason::TransportLost`](crate::GoneReason::TransportLost)), as it did before
/// reconnection existed ([`Reconnect::OFF`]).
///
/// With reconnection on, a broken connection is reported as
/// [`Status::Reconnecting`](crate::Status::Reconnecting) and the endpoint keeps its session:
///
/// - the ACTIVE end (`connect`) dials again at once, then after `initial_backoff`, doubling
///   up to `max_backoff` (each wait drawn at random between half and all of it when `jitter`
///   is on, so that many clients of one server do not come back in step); each attempt
///   gives up after `connect_timeout`;
/// - the PASSIVE end (`listen`) keeps its listening socket for the handler's whole life and
///   takes the peer's next connection. While a conversation has a live connection, a
///   newcomer must send its first frame within `probation` and that frame must carry the
///   current peer session: then it replaces the old connection (the peer reconnected before
///   this end noticed the break); otherwise it is closed, and counted in
///   [`HandlerStats::refused_connections`](crate::HandlerStats::refused_connections).
///   While no connection is live, the next one is taken as it comes: the same peer resumes,
///   a new process (a new session) is reported as a restart.
///
/// A new connection is reported as [`Status::Reconnected`](crate::Status::Reconnected)
/// (and counted in [`HandlerStats::reconnects`](crate::HandlerStats::reconnects)); what was
/// in flight is sent again on it at once, and arrives exactly once, in order.
///
/// The peer is reported GONE when no connection comes back in time: by default when
/// nothing has come from it for `Config::heartbeat_timeout` (the silence rule, which runs
/// on through the break: [`GoneReason::Silence`](crate::GoneReason::Silence)); with
/// `give_up_after`, also when no connection has come back that long after the break
/// ([`GoneReason::TransportLost`](crate::GoneReason::TransportLost), with the break's cause).
/// Once the peer is gone, ended or aborted, nothing reconnects. The first connection is not
/// retried: a peer that is not there when the handler starts is reported at once, as
/// before.
///
/// Without TLS this is no authentication: anyone who can reach the port (or the socket
/// file) while no connection is live can take the conversation over (seen as a peer
/// restart); while one is live, a stranger must guess the peer's 32-bit session id to
/// replace it. Protect the port (a firewall, a Unix socket's file permissions) where that
/// matters, or use TLS (feature `tls`: `TcpTransport::listen_tls`), which lets only a peer
/// with an acceptable certificate connect at all; the session proof above still applies.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Whether the connection is replaced when it breaks (default `true`).
    pub enabled: bool,
    /// The wait before the second attempt (the first is at once); default 50 ms.
    pub initial_backoff: Duration,
    /// The longest wait between attempts; default 2 s.
    pub max_backoff: Duration,
    /// Each wait drawn at random between half and all of it; default on.
    pub jitter: bool,
    /// How long one attempt to connect may take (TCP), and a TLS handshake (either end);
    /// default 2 s.
    pub connect_timeout: Duration,
    /// Report the peer GONE when no connection has come back this long after the break;
    /// default `None`: `Config::heartbeat_timeout`'s silence decides.
    pub give_up_after: Option<Duration>,
    /// How long a newcomer at a PASSIVE end with a live connection has to prove it is the
    /// peer (its first frame); default 1 s.
    pub probation: Duration,
}

impl Reconnect {
    /// No reconnection: a broken connection ends the conversation at once (GONE).
    pub const OFF: Reconnect = Reconnect {
        enabled: false,
        ..Reconnect::ON
    };

    /// The defaults.
    pub const ON: Reconnect = Reconnect {
        enabled: true,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        jitter: true,
        connect_timeout: Duration::from_secs(2),
        give_up_after: None,
        probation: Duration::from_secs(1),
    };

    /// The wait before attempt `attempt` (0 is the first, at once); `random` is any random
    /// number (for the jitter).
    pub(crate) fn delay(&self, attempt: u32, random: u64) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (attempt - 1).min(20);
        let wait = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        if !self.jitter {
            return wait;
        }
        let half = wait / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % nanos.saturating_add(1))
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::ON
    }
}

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
}

impl Redial {
    pub(crate) fn policy(&self) -> &Reconnect {
        match self {
            Redial::Dial(_, p) | Redial::Accept(_, p) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_limit_with_jitter_within_half() {
        let p = Reconnect::ON;
        assert_eq!(p.delay(0, 7), Duration::ZERO);
        for (attempt, full) in [(1, 50), (2, 100), (3, 200), (7, 2000), (30, 2000)] {
            let full = Duration::from_millis(full);
            for r in [0, 1, u64::MAX, 123_456_789] {
                let d = p.delay(attempt, r);
                assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
            }
            let exact = Reconnect { jitter: false, ..p };
            assert_eq!(exact.delay(attempt, 5), full);
        }
    }
}
