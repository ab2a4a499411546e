//! Replacing a broken connection (TCP, Unix sockets; see [`Reconnect`]): a thread per
//! handler that dials again (ACTIVE end) or accepts the peer's next connection (PASSIVE
//! end), or a [`PipeListener`](crate::PipeListener) that routes it, and hands the new link
//! to the I/O thread through the state.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::Shared;
use crate::transport::{
    stream_link, Accepted, Acceptor, Link, Reconnect, Redial, StopAccept, Stream,
};

/// A new connection for the I/O thread, with the bytes already read from it (a newcomer's
/// first frame, read to check who it is).
pub(crate) struct Handover {
    pub(crate) link: Link,
    pub(crate) input: Vec<u8>,
}

/// Starts the thread that replaces the link when it breaks; returns what stops a listening
/// end's acceptor (at the handler's stop: the port is free when `stop` returns).
pub(super) fn spawn(shared: &Arc<Shared>, redial: Redial) -> io::Result<Option<StopAccept>> {
    let policy = *redial.policy();
    let builder = std::thread::Builder::new().name("peerpipe-reconnect".into());
    match redial {
        Redial::Dial(target, _) => {
            let timeout = policy.connect_timeout;
            let open = move || target.connect(timeout).and_then(stream_link);
            spawn_dial(shared, Box::new(open), policy, builder)
        }
        Redial::Reopen(open, _) => spawn_dial(shared, open, policy, builder),
        Redial::Accept(acceptor, _) => {
            let stopper = acceptor.stopper();
            {
                let mut st = shared.lock();
                st.can_reconnect = true;
                st.give_up_after = policy.give_up_after;
            }
            let shared = shared.clone();
            builder.spawn(move || accept(&shared, &acceptor, &policy))?;
            Ok(Some(stopper))
        }
        Redial::Routed(..) => {
            // The listener hands the peer's next connection over (`route`): no thread.
            let mut st = shared.lock();
            st.can_reconnect = true;
            st.give_up_after = policy.give_up_after;
            Ok(None)
        }
    }
}

/// Starts the thread that opens a new link with `open` each time the link breaks.
fn spawn_dial(
    shared: &Arc<Shared>,
    open: Box<dyn Fn() -> io::Result<Link> + Send>,
    policy: Reconnect,
    builder: std::thread::Builder,
) -> io::Result<Option<StopAccept>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    {
        let mut st = shared.lock();
        st.redial_tx = Some(tx);
        st.can_reconnect = true;
        st.give_up_after = policy.give_up_after;
    }
    let shared = shared.clone();
    builder.spawn(move || dial(&shared, &*open, &policy, &rx))?;
    Ok(None)
}

/// Gives a [`PipeListener`](crate::PipeListener)'s newcomer to the handler among
/// `handlers` whose conversation goes on with the newcomer's `session` (its peer
/// reconnected): `Err` with the stream and its input when there is none.
pub(crate) fn route(
    handlers: &[std::sync::Weak<Shared>],
    session: u32,
    stream: Stream,
    input: Vec<u8>,
) -> Result<(), (Stream, Vec<u8>)> {
    let found = handlers
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .find(|h| {
            let st = h.lock();
            st.ep.peer_session() == Some(session) && st.accepts_links()
        });
    let Some(shared) = found else {
        return Err((stream, input));
    };
    if let Ok(link) = stream_link(stream) {
        log::info!("peerpipe: a peer reconnected to its handler through the listener");
        handover(&shared, link, input, true);
    }
    Ok(())
}

/// The ACTIVE end (or a device): each time the link breaks, dials (opens) until a link is
/// made or none is wanted any more (the handler stopped, the peer is gone). Ends when the
/// handler stops (the sender of `poke` is dropped).
fn dial(
    shared: &Shared,
    open: &dyn Fn() -> io::Result<Link>,
    policy: &Reconnect,
    poke: &Receiver<()>,
) {
    let mut rng = peerpipe_host::Jitter::new();
    let mut backoff = peerpipe_host::Backoff::new();
    loop {
        if poke.recv().is_err() {
            return;
        }
        // No frame comes in while the link is down: the count is the broken link's.
        backoff.broke(shared.lock().ep.stats().frames_received);
        loop {
            let until = StdInstant::now() + backoff.next_wait(policy, rng.next());
            loop {
                match poke.recv_deadline(until) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            if !shared.lock().wants_link() {
                break;
            }
            match open() {
                Ok(link) => {
                    // Counted before the new link carries anything.
                    backoff.connected(shared.lock().ep.stats().frames_received);
                    handover(shared, link, Vec::new(), false);
                    break;
                }
                Err(e) => log::debug!("peerpipe: reconnect attempt failed: {e}"),
            }
        }
    }
}

/// The PASSIVE end: takes every connection that comes until the handler stops. While no
/// connection is live, a newcomer is taken as it is; while one is, it must prove to be the
/// peer (its first frame carries the current peer session) to replace it, or it is closed.
fn accept(shared: &Shared, acceptor: &Acceptor, policy: &Reconnect) {
    loop {
        let mut stream = match acceptor.accept(None) {
            Ok(Accepted::Peer(s)) => match acceptor.secure(s, policy.connect_timeout) {
                Ok(s) => s,
                Err(_) => {
                    // A TLS handshake failed (logged where it failed).
                    acceptor.refused();
                    continue;
                }
            },
            Ok(Accepted::Stopped) => return,
            Ok(Accepted::TimedOut | Accepted::Kicked) => continue,
            Err(e) => {
                if acceptor.is_stopped() {
                    return;
                }
                log::warn!("peerpipe: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let (taking, live) = {
            let st = shared.lock();
            if st.stop.is_some() {
                return;
            }
            (
                st.accepts_links(),
                st.link_is_live() || st.handover.is_some(),
            )
        };
        if taking && !live {
            if let Ok(link) = stream_link(stream) {
                handover(shared, link, Vec::new(), false);
            }
            continue;
        }
        if taking {
            if let Some((session, input)) = first_frame(&mut stream, policy.probation) {
                let same = shared.lock().ep.peer_session() == Some(session);
                if same {
                    if let Ok(link) = stream_link(stream) {
                        log::info!("peerpipe: the peer reconnected; its new connection replaces the old one");
                        handover(shared, link, input, true);
                    }
                    continue;
                }
            }
        }
        log::warn!("peerpipe: refused a connection: a conversation is going on with another");
        acceptor.refused();
        drop(stream);
    }
}

/// Reads the first frame a newcomer sends, within `within`: its session and the bytes read.
pub(crate) fn first_frame(stream: &mut Stream, within: Duration) -> Option<(u32, Vec<u8>)> {
    let deadline = StdInstant::now() + within;
    let mut probe = peerpipe_host::SessionProbe::new();
    let mut buf = vec![0u8; 4096];
    let found = loop {
        let left = deadline.saturating_duration_since(StdInstant::now());
        if left.is_zero() || probe.exhausted() {
            break None;
        }
        let n = match stream.read_within(&mut buf, left) {
            Ok(0) | Err(_) => break None,
            Ok(n) => n,
        };
        if let Some(session) = probe.feed(buf.get(..n).unwrap_or(&[])) {
            break Some(session);
        }
    };
    let _ = stream.read_within(&mut [], Duration::ZERO);
    let mut input = probe.into_input();
    stream.take_buffered(&mut input);
    found.map(|s| (s, input))
}

/// Gives a new connection to the I/O thread (`replace`: even while one is live); dropped
/// (closed) when the handler no longer takes one.
fn handover(shared: &Shared, link: Link, input: Vec<u8>, replace: bool) {
    let mut st = shared.lock();
    if !st.accepts_links() || (!replace && (st.link_is_live() || st.handover.is_some())) {
        return;
    }
    st.handover = Some(Handover { link, input });
    st.dispatch_needed = true;
    st.io_busy = true;
    drop(st);
    shared.waker.wake();
}
