//! Reconnection, shared by the host drivers: the policy ([`Reconnect`]), the jitter of its
//! backoff, and reading the session a newcomer's first frame carries ([`SessionProbe`]).

use std::time::Duration;

use peerpipe_core::wire::Decoder;

/// What a reconnecting transport (TCP and Unix sockets, and serial ports, in `peerpipe-std`
/// and `peerpipe-tokio`) does when its connection breaks: reconnect (the default) or end
/// the conversation at once (GONE with `GoneReason::TransportLost`), as it did before
/// reconnection existed ([`Reconnect::OFF`]). A serial port is opened again at its path,
/// like an ACTIVE end dialing (with the same backoff); the rest of this is about sockets.
///
/// With reconnection on, a broken connection is reported as
/// [`Status::Reconnecting`](crate::Status::Reconnecting) and the endpoint keeps its session:
///
/// - the ACTIVE end (the one that connects) dials again at once, then after
///   `initial_backoff`, doubling up to `max_backoff` (each wait drawn at random between
///   half and all of it when `jitter` is on, so that many clients of one server do not come
///   back in step); each attempt gives up after `connect_timeout`. The backoff starts over
///   (the next break's first attempt at once) only after a connection proved healthy by
///   carrying a valid frame of the peer's; a connection that breaks before that (a server
///   that accepts and closes at once: a TLS listener refusing a plain-TCP client, a
///   listener refusing a stranger) counts as a failed attempt and the waits grow on (see
///   [`Backoff`]);
/// - the PASSIVE end (the one that listens) keeps its listening socket for the handler's
///   whole life and takes the peer's next connection. While a conversation has a live
///   connection, a newcomer must send its first frame within `probation` and that frame
///   must carry the current peer session: then it replaces the old connection (the peer
///   reconnected before this end noticed the break); otherwise it is closed, and counted in
///   [`HandlerStats::refused_connections`](crate::HandlerStats::refused_connections).
///   While no connection is live, the next one is taken as it comes: the same peer resumes,
///   a new process (a new session) is reported as a restart.
///
/// A new connection is reported as [`Status::Reconnected`](crate::Status::Reconnected)
/// (and counted in [`HandlerStats::reconnects`](crate::HandlerStats::reconnects)); what was
/// in flight is sent again on it at once (without counting against `max_resends`), and
/// arrives exactly once, in order.
///
/// The peer is reported GONE when no connection comes back in time: by default when
/// nothing has come from it for `Config::heartbeat_timeout` (the silence rule, which runs
/// on through the break: `GoneReason::Silence`); with `give_up_after`, also when no
/// connection has come back that long after the break (`GoneReason::TransportLost`, with
/// the break's cause). Once the peer is gone, ended or aborted, or this side's END or ABORT
/// went through, nothing reconnects. The first connection is not retried: a peer that is
/// not there when the handler starts is reported at once.
///
/// Without TLS this is no authentication: anyone who can reach the port (or the socket
/// file) while no connection is live can take the conversation over (seen as a peer
/// restart); while one is live, a stranger must know the peer's session id to replace it.
/// A session id is a 32-bit value drawn from the operating system's random source
/// (`getrandom`) for each handler: an off-path attacker cannot guess it (one guess per
/// connection and `probation`, in 2^32), but anyone who sees the traffic reads it in every
/// frame's header. Protect the port (a firewall, a Unix socket's file permissions) where
/// that matters, or use TLS (`peerpipe-std`'s feature `tls`: `TcpTransport::listen_tls`),
/// which lets only a peer with an acceptable certificate connect at all; the session
/// proof above still applies.
///
/// ```
/// use std::time::Duration;
/// use peerpipe_host::Reconnect;
///
/// let quick = Reconnect { max_backoff: Duration::from_millis(500), ..Reconnect::default() };
/// assert!(quick.enabled && !Reconnect::OFF.enabled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Whether the connection is replaced when it breaks (default `true`).
    pub enabled: bool,
    /// The wait before the second attempt (the first after a healthy connection broke is
    /// at once); default 50 ms.
    pub initial_backoff: Duration,
    /// The longest wait between attempts; default 2 s.
    pub max_backoff: Duration,
    /// Each wait drawn at random between half and all of it; default on.
    pub jitter: bool,
    /// How long one attempt to connect may take (TCP), and a TLS handshake (either end,
    /// where the driver has TLS); default 2 s.
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
    /// number (for the jitter: [`Jitter::next`]).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
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

/// Where a dialing end is in its backoff, across connections: the attempts since its last
/// healthy connection. A connection is healthy once it carried a valid frame from the peer
/// (`Stats::frames_received` grew while it was up): only then does the backoff start over.
/// A connection that breaks before (accepted, then closed at once) counts as one more
/// failed attempt, so that such a server is not dialed in a tight loop.
///
/// ```
/// use std::time::Duration;
/// use peerpipe_host::{Backoff, Reconnect};
///
/// let policy = Reconnect { jitter: false, ..Reconnect::ON };
/// let mut backoff = Backoff::new();
/// backoff.broke(0); // the first connection broke before the peer said anything
/// assert_eq!(backoff.next_wait(&policy, 0), Duration::ZERO);
/// backoff.connected(0);
/// backoff.broke(0); // closed at once again: the waits grow
/// assert_eq!(backoff.next_wait(&policy, 0), Duration::from_millis(50));
/// backoff.connected(0);
/// backoff.broke(3); // this one carried frames: the first attempt is at once again
/// assert_eq!(backoff.next_wait(&policy, 0), Duration::ZERO);
/// ```
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
    frames_at_connect: peerpipe_core::Counter,
}

impl Backoff {
    /// A backoff at its start, its connection (the first) not yet healthy.
    pub fn new() -> Self {
        Backoff::default()
    }

    /// The connection broke; `frames_received` is the endpoint's count of valid frames
    /// received now. If it grew since [`connected`](Self::connected), the connection was
    /// healthy and the backoff starts over.
    pub fn broke(&mut self, frames_received: peerpipe_core::Counter) {
        if frames_received != self.frames_at_connect {
            self.attempt = 0;
        }
    }

    /// The wait before the next attempt (with `random` for the jitter, see
    /// [`Reconnect::delay`]); the attempt is counted as made.
    pub fn next_wait(&mut self, policy: &Reconnect, random: u64) -> Duration {
        let wait = policy.delay(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// A new connection was made; `frames_received` is the endpoint's count before it
    /// carried anything.
    pub fn connected(&mut self, frames_received: peerpipe_core::Counter) {
        self.frames_at_connect = frames_received;
    }
}

/// A small random source for the backoff's jitter (xorshift64*, seeded from the operating
/// system's random source): not for secrets.
#[derive(Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A new source with a random seed.
    pub fn new() -> Self {
        Jitter(u64::from(crate::new_session_id()) << 1 | 1)
    }

    /// The next random number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter::new()
    }
}

/// Reads the session of the first whole frame a newcomer sends, keeping every byte read so
/// that they can be fed to the endpoint afterwards (a listening end uses it to tell the
/// peer reconnecting from a stranger, and to route a reconnecting client to its handler).
pub struct SessionProbe {
    decoder: Box<Decoder<{ crate::FRAME }>>,
    input: Vec<u8>,
}

impl SessionProbe {
    /// Bytes a probe reads at most before it gives up: a few frames' worth.
    pub const LIMIT: usize = 4 * crate::FRAME;

    /// An empty probe.
    pub fn new() -> Self {
        SessionProbe {
            decoder: Box::new(Decoder::new()),
            input: Vec::new(),
        }
    }

    /// Feeds bytes read from the newcomer; the session of its first valid frame once one
    /// is whole (bad bytes before it are skipped, as the endpoint would).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u32> {
        self.input.extend_from_slice(bytes);
        while !bytes.is_empty() {
            let (used, frame) = self.decoder.feed(bytes);
            if let Some(Ok(frame)) = frame {
                return Some(frame.session);
            }
            bytes = bytes.get(used..).unwrap_or(&[]);
        }
        None
    }

    /// Whether more than [`LIMIT`](Self::LIMIT) bytes came without a valid frame.
    pub fn exhausted(&self) -> bool {
        self.input.len() > Self::LIMIT
    }

    /// Every byte fed so far.
    pub fn into_input(self) -> Vec<u8> {
        self.input
    }
}

impl Default for SessionProbe {
    fn default() -> Self {
        SessionProbe::new()
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

    #[test]
    fn a_probe_finds_the_first_frame_s_session_after_garbage_and_keeps_every_byte() {
        use peerpipe_core::wire::{encode, Body, Caps, Frame, Heartbeat};
        let hb = Heartbeat {
            floor: 0,
            room: 1,
            window: 1,
            caps: Caps {
                max_payload: 1,
                max_topic: 1,
                max_message: 0,
            },
            ask: false,
        };
        let mut buf = [0u8; 64];
        let n = encode(
            &Frame {
                session: 0xABCD,
                body: Body::Heartbeat(hb),
            },
            &mut buf,
        )
        .unwrap();
        let mut bytes = b"junk\0".to_vec();
        bytes.extend_from_slice(&buf[..n]);
        let mut probe = SessionProbe::new();
        let (a, b) = bytes.split_at(bytes.len() - 3);
        assert_eq!(probe.feed(a), None);
        assert_eq!(probe.feed(b), Some(0xABCD));
        assert!(!probe.exhausted());
        assert_eq!(probe.into_input(), bytes);
    }
}
