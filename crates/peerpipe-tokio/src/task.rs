//! The pipe task: one per pipe, it moves bytes between the transport and the endpoint and
//! sleeps until the endpoint's next deadline (`poll_timeout`), input, or a wake-up from a
//! handle. No polling interval. A task that reconnects (see [`Redial`]) carries on through
//! a broken connection: its timers run, frames stay due in the endpoint, and a new
//! connection from its helper takes the old one's place.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use peerpipe_host::UNSENT_LIMIT;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::reconnect::{Handover, Redial};
use crate::state::{Shared, State};

/// Bytes read from the transport at once (a stack buffer: an idle pipe holds none).
const READ_CHUNK: usize = 8 * 1024;

/// Reads per wake-up before the task yields to others (it is woken again at once).
const READS_PER_POLL: usize = 16;

/// Rounds of read, timers, dispatch and write per wake-up before the task yields.
const ROUNDS_PER_POLL: usize = 8;

/// The future that drives one pipe; ends when the handler stops or the transport breaks.
pub(crate) struct PipeTask<
    S,
    const FRAGMENT: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
> {
    shared: Arc<Shared<FRAGMENT, TOPIC, RX, TX, FRAME>>,
    /// The connection; `None` while a broken one is being replaced.
    io: Option<Pin<Box<S>>>,
    /// How a broken connection is replaced (`None`: it ends the conversation).
    redial: Option<Redial<S>>,
    sleep: Pin<Box<Sleep>>,
    /// Encoded frames not yet taken by the transport, from `sent` on.
    out: Vec<u8>,
    sent: usize,
}

/// What a round of reading found.
enum Input {
    /// Nothing new.
    Idle,
    /// Bytes were fed to the endpoint; maybe more are waiting.
    Fed,
    /// The transport ended or failed.
    Lost(std::io::Error),
}

impl<S, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    PipeTask<S, P, T, RX, TX, F>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    pub(crate) fn new(
        shared: Arc<Shared<P, T, RX, TX, F>>,
        io: S,
        redial: Option<Redial<S>>,
    ) -> Self {
        PipeTask {
            shared,
            io: Some(Box::pin(io)),
            redial,
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            out: Vec::new(),
            sent: 0,
        }
    }

    /// Reads what the transport has and feeds it to the endpoint.
    fn read(&mut self, cx: &mut Context<'_>, st: &mut State<P, T, RX, TX, F>) -> Input {
        // Uninitialised: no 8 KiB of zeroes written at every wake-up.
        let Some(io) = self.io.as_mut() else {
            return Input::Idle;
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut fed = false;
        for _ in 0..READS_PER_POLL {
            let mut rb = ReadBuf::uninit(&mut buf);
            match io.as_mut().poll_read(cx, &mut rb) {
                Poll::Pending => return if fed { Input::Fed } else { Input::Idle },
                Poll::Ready(Err(e)) => return Input::Lost(e),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Input::Lost(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection",
                    ))
                }
                Poll::Ready(Ok(())) => {
                    let now = st.now();
                    st.ep.handle_bytes(now, rb.filled());
                    fed = true;
                }
            }
        }
        Input::Fed
    }

    /// Writes what the transport takes; once it took everything, encodes the frames that
    /// are due (up to [`UNSENT_LIMIT`]) and writes them. Records the bytes still waiting.
    fn write(&mut self, cx: &mut Context<'_>, st: &mut State<P, T, RX, TX, F>) -> io::Result<()> {
        let r = self.write_out(cx, st);
        st.unsent = self.out.len() - self.sent;
        r
    }

    fn write_out(
        &mut self,
        cx: &mut Context<'_>,
        st: &mut State<P, T, RX, TX, F>,
    ) -> io::Result<()> {
        let now = st.now();
        let Some(io) = self.io.as_mut() else {
            // No connection: frames stay due in the endpoint.
            return Ok(());
        };
        loop {
            if self.sent == self.out.len() {
                // Everything was taken: gather the frames due now, and only now (while the
                // transport holds bytes back, due frames wait in the endpoint).
                self.out.clear();
                self.sent = 0;
                gather(&mut self.out, now, st);
                if self.out.is_empty() {
                    // Nothing to send: an idle pipe keeps no buffer larger than a frame
                    // (after a burst of fragments it may have grown to UNSENT_LIMIT).
                    if self.out.capacity() > F {
                        self.out = Vec::new();
                    }
                    return Ok(());
                }
            }
            let pending = self.out.get(self.sent..).unwrap_or(&[]);
            match io.as_mut().poll_write(cx, pending) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.sent += n;
                    if self.sent == self.out.len() {
                        // A flush is a no-op for sockets; for buffered streams it pushes the
                        // bytes out. Pending is fine: it is polled again next round.
                        if let Poll::Ready(Err(e)) = io.as_mut().poll_flush(cx) {
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// The connection broke: with a way to replace it and a conversation going on, the
    /// task waits for a new one (`true`); otherwise the peer is gone (`false`).
    fn lose(&mut self, st: &mut State<P, T, RX, TX, F>, cause: &io::Error) -> bool {
        self.io = None;
        self.out.clear();
        self.sent = 0;
        let Some(redial) = &self.redial else {
            st.lose_transport(cause);
            return false;
        };
        if !st.accepts_links() {
            st.lose_transport(cause);
            return false;
        }
        st.lose_connection(cause);
        if let Some(wanted) = &redial.wanted {
            wanted.notify_one();
        }
        true
    }

    /// Takes the new connections the helper handed over (the last one wins).
    fn take_handovers(&mut self, cx: &mut Context<'_>, st: &mut State<P, T, RX, TX, F>) {
        let Some(redial) = &mut self.redial else {
            return;
        };
        while let Poll::Ready(Some(Handover { conn, input })) = redial.handovers.poll_recv(cx) {
            if !st.accepts_links() {
                continue;
            }
            let replaced = self.io.is_some();
            self.io = Some(Box::pin(conn));
            self.out.clear();
            self.sent = 0;
            st.restore_connection(&input, replaced);
        }
    }
}

/// Encodes the frames that are due into the empty buffer, up to [`UNSENT_LIMIT`].
fn gather<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>(
    out: &mut Vec<u8>,
    now: peerpipe_core::Instant,
    st: &mut State<P, T, RX, TX, F>,
) {
    let mut frame = [0u8; F];
    while out.len() < UNSENT_LIMIT {
        // The outbox supplies the bytes of each fragment as it goes out.
        match st.ep.poll_transmit_from(now, &mut frame, &mut st.outbox) {
            Ok(Some(n)) => out.extend_from_slice(frame.get(..n).unwrap_or(&[])),
            // A FRAME-sized buffer always suffices (checked by the endpoint's type).
            Ok(None) | Err(_) => break,
        }
    }
}

impl<S, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Drop
    for PipeTask<S, P, T, RX, TX, F>
{
    fn drop(&mut self) {
        // The helper dials or listens for this task only.
        if let Some(helper) = self.redial.as_ref().and_then(|r| r.helper.as_ref()) {
            helper.abort();
        }
    }
}

impl<S, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Future
    for PipeTask<S, P, T, RX, TX, F>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = Arc::clone(&this.shared);
        let mut st = shared.lock();
        st.set_task(cx.waker());
        for _ in 0..ROUNDS_PER_POLL {
            if st.stopping {
                // Nothing more is sent after a stop: close the transport and end.
                if let Some(io) = this.io.as_mut() {
                    if io.as_mut().poll_shutdown(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                st.finish();
                return Poll::Ready(());
            }
            this.take_handovers(cx, &mut st);
            if this.io.is_none() {
                let late = st
                    .give_up_at()
                    .is_some_and(|t| t <= tokio::time::Instant::now());
                if late || !st.accepts_links() {
                    st.give_up_connection();
                    st.finish();
                    return Poll::Ready(());
                }
            }
            let mut again = match this.read(cx, &mut st) {
                Input::Idle => false,
                Input::Fed => true,
                Input::Lost(cause) => {
                    if !this.lose(&mut st, &cause) {
                        st.finish();
                        return Poll::Ready(());
                    }
                    true
                }
            };
            let now = st.now();
            if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                st.ep.handle_timeout(now);
            }
            st.dispatch();
            if let Err(e) = this.write(cx, &mut st) {
                if !this.lose(&mut st, &e) {
                    st.finish();
                    return Poll::Ready(());
                }
                again = true;
            }
            let next = st.ep.poll_timeout().map(|t| st.to_tokio(t));
            let give_up = if this.io.is_none() {
                st.give_up_at()
            } else {
                None
            };
            if let Some(at) = next.into_iter().chain(give_up).min() {
                if this.sleep.deadline() != at {
                    this.sleep.as_mut().reset(at);
                }
                again |= this.sleep.as_mut().poll(cx).is_ready();
            }
            if !again {
                return Poll::Pending;
            }
        }
        // Busy: let other tasks run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
