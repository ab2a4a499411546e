//! The I/O thread: reads the link, feeds the endpoint, hands out outcomes, replies and
//! items, writes what is due and sleeps until the next deadline.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use peerpipe_core::Instant;

#[cfg(unix)]
use super::fd_wait::FdWait;
use super::{Act, Out, Shared, State, WakeVia, ACK_HOLD, CHUNKS_AT_ONCE, POLL, POLL_LARGE};
use crate::transport::{Chunk, Link, LinkIo, StopAccept, Transport};
use crate::{Error, Item};

mod deliver;
mod feed;

/// What the I/O thread waits on.
enum Wait {
    /// Nothing but wake-ups (the transport failed to open).
    Token(Receiver<()>),
    /// The link's channel: chunks, and empty chunks that only wake.
    Channel(Receiver<Chunk>),
    /// The link's descriptors and a wake-up socket pair.
    #[cfg(unix)]
    Fd(FdWait),
}

/// The I/O thread.
pub(crate) struct Io {
    shared: std::sync::Arc<Shared>,
    queue_tx: Sender<Item>,
    wait: Wait,
    closer: Option<Box<dyn FnOnce() + Send>>,
    /// Chunks received from a channel link, not yet fed to the endpoint (the first from
    /// `chunk_pos` on).
    chunks: VecDeque<Vec<u8>>,
    chunk_pos: usize,
    /// The link broke (after the input above).
    lost: Option<io::Error>,
    /// Items for the application's queue that did not fit.
    pending: VecDeque<Item>,
    /// A break not reported because the application had not yet read the `Reconnected`
    /// before it: reported with the next `Reconnected` if that one was read by then.
    merged_break: Option<crate::Status>,
    /// A reply went to a thread waiting in `request` this round.
    served_reply: bool,
    /// Feeding stopped this round because the endpoint's receive slots were full: the next
    /// round goes on with the input at once, and the ACK waits for it (one ACK for what
    /// arrived together, not one per slotful).
    slots_full: bool,
    /// Stops the acceptor of a listening end that takes the peer's new connections.
    stop_accept: Option<StopAccept>,
}

impl Io {
    pub(crate) fn new(shared: std::sync::Arc<Shared>, queue_tx: Sender<Item>) -> Self {
        Io {
            shared,
            queue_tx,
            wait: Wait::Token(crossbeam_channel::never()),
            closer: None,
            chunks: VecDeque::new(),
            chunk_pos: 0,
            lost: None,
            pending: VecDeque::new(),
            merged_break: None,
            served_reply: false,
            slots_full: false,
            stop_accept: None,
        }
    }

    /// Opens the transport, then works until stopped.
    pub(crate) fn run(mut self, transport: Box<dyn Transport>) {
        let opened = transport.open().and_then(|mut link| {
            let mut redial = link.redial.take();
            let out = self.attach(link)?;
            // What a listener read from the connection before the handler had it.
            let input = redial
                .as_mut()
                .map(crate::transport::Redial::take_input)
                .unwrap_or_default();
            if !input.is_empty() {
                self.chunks.push_back(input);
            }
            if let Some(redial) = redial {
                self.stop_accept = super::reconnect::spawn(&self.shared, redial)?;
            }
            Ok(out)
        });
        if opened.is_err() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            self.shared.waker.set(WakeVia::Token(tx));
            self.wait = Wait::Token(rx);
        }
        {
            let mut st = self.shared.lock();
            st.opening = false;
            match opened {
                Ok(out) => st.link = out,
                // Interrupted by `stop`: nothing to report.
                Err(_) if st.stop.is_some() => {}
                Err(e) => st.lose_link(&e),
            }
        }
        let mut acts = Vec::new();
        let shared = self.shared.clone();
        loop {
            let mut st = shared.lock();
            st.io_busy = true;
            if let Some(close) = st.stop {
                self.stop(st, close);
                return;
            }
            let now = st.now();
            self.watch_link(&mut st, now);
            let mut more = self.feed(&mut st, now);
            if st.ep.poll_timeout().is_some_and(|t| t <= now) {
                st.ep.handle_timeout(now);
            }
            st.dispatch_needed = false;
            st.settle(&mut acts);
            st.feed_backlog(now);
            more |= self.collect(&mut st, &mut acts);
            // Before the items go out: whoever reads END, ABORT or GONE sees the state too.
            self.shared.set_peer_state(st.ep.peer_state());
            drop(st);
            more |= self.deliver(&mut acts);

            let mut st = shared.lock();
            let now = st.now();
            if std::mem::take(&mut self.served_reply) {
                // The requester that just got its reply will likely send again at once: its
                // write will carry the reply's ACK too (one wake-up of the peer, not two).
                st.hold_until.get_or_insert(StdInstant::now() + ACK_HOLD);
            }
            let ack_later = std::mem::take(&mut self.slots_full);
            if !ack_later && st.hold_until.is_none_or(|h| h <= StdInstant::now()) {
                st.transmit(now);
            }
            self.shared.set_peer_state(st.ep.peer_state());
            #[cfg(unix)]
            if matches!(st.link, Out::Lost) {
                if let Wait::Fd(fd) = &mut self.wait {
                    fd.drop_reader();
                }
            }
            if more || st.dispatch_needed || st.stop.is_some() {
                continue;
            }
            let cap = StdInstant::now() + self.shared.wake_period;
            let mut until = st
                .ep
                .poll_timeout()
                .map_or(cap, |t| st.std_instant(t).min(cap));
            if let Some(h) = st.hold_until {
                until = until.min(h);
            }
            if let Some(give_up) = self.give_up_at(&st) {
                until = until.min(give_up);
            }
            st.io_until = Some(until);
            st.io_busy = false;
            let poll = if st.moving_large_message() {
                POLL_LARGE
            } else {
                POLL
            };
            drop(st);
            self.sleep(until, poll);
        }
    }

    /// Takes a new connection that came, gives the link up when no connection comes back in
    /// time or none is wanted any more, and closes what is left of a broken one.
    fn watch_link(&mut self, st: &mut State, now: Instant) {
        if let Some(new) = st.handover.take() {
            self.reattach(st, new, now);
        }
        if st.down.is_none() {
            return;
        }
        // What is left of the broken connection: closed (the peer sees it), not polled.
        if let Some(closer) = self.closer.take() {
            closer();
        }
        #[cfg(unix)]
        if let Wait::Fd(fd) = &mut self.wait {
            fd.drop_reader();
        }
        let late = self.give_up_at(st).is_some_and(|t| t <= StdInstant::now());
        if late || !st.accepts_links() {
            st.give_up_link();
        }
    }

    /// When a broken link is given up (`Reconnect::give_up_after`).
    fn give_up_at(&self, st: &State) -> Option<StdInstant> {
        let (since, _) = st.down.as_ref()?;
        let after = st.give_up_after?;
        Some(*since + after)
    }

    /// Puts a new connection in the place of the broken (or replaced) one; the endpoint
    /// sends again at once what was not acknowledged.
    fn reattach(&mut self, st: &mut State, new: super::reconnect::Handover, now: Instant) {
        let replaced = st.down.is_none();
        if let Some(closer) = self.closer.take() {
            closer();
        }
        st.link = super::Out::Opening;
        st.out = Default::default();
        self.chunks.clear();
        self.chunk_pos = 0;
        self.lost = None;
        match self.attach(new.link) {
            Ok(out) => {
                st.link = out;
                if !new.input.is_empty() {
                    self.chunks.push_back(new.input);
                }
                st.ep.transport_restored(now);
                st.reconnects += 1;
                if replaced {
                    st.link_broke(
                        (&io::Error::new(io::ErrorKind::ConnectionReset, "the peer reconnected"))
                            .into(),
                    );
                }
                st.down = None;
                st.link_events.push(crate::Status::Reconnected);
                log::info!("peerpipe: reconnected");
            }
            Err(e) => {
                st.down = None;
                st.lose_link(&e);
            }
        }
        st.dispatch_needed = true;
    }

    /// Takes the link apart: the output for the state, the input for this thread.
    fn attach(&mut self, link: Link) -> io::Result<Out> {
        self.closer = link.closer;
        match link.io {
            LinkIo::Channel {
                incoming,
                wake,
                writer,
            } => {
                self.shared.waker.set(WakeVia::Chunk(wake));
                self.wait = Wait::Channel(incoming);
                Ok(Out::Blocking(writer))
            }
            #[cfg(unix)]
            LinkIo::Fd { reader, writer } => {
                let (wait, waker) = FdWait::new(reader, &*writer)?;
                self.shared.waker.set(waker);
                self.wait = Wait::Fd(wait);
                Ok(Out::Fd(writer))
            }
        }
    }

    /// Sleeps until `until`, input, room to write or a wake-up.
    fn sleep(&mut self, until: StdInstant, poll: StdDuration) {
        let spin = if self.shared.spin.load(Ordering::Relaxed) {
            poll
        } else {
            StdDuration::ZERO
        };
        match &mut self.wait {
            Wait::Token(rx) => {
                let _ = rx.recv_deadline(until);
            }
            Wait::Channel(rx) => {
                // Poll first, yielding the CPU between polls (see `POLL`), then block.
                let poll_until = (StdInstant::now() + spin).min(until);
                let mut next = rx.try_recv();
                while matches!(next, Err(TryRecvError::Empty)) && StdInstant::now() < poll_until {
                    std::thread::yield_now();
                    next = rx.try_recv();
                }
                if matches!(next, Err(TryRecvError::Empty)) {
                    next = rx.recv_deadline(until).map_err(|e| match e {
                        RecvTimeoutError::Timeout => TryRecvError::Empty,
                        RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                    });
                }
                loop {
                    match next {
                        Ok(Ok(bytes)) if bytes.is_empty() => {}
                        Ok(Ok(bytes)) => self.chunks.push_back(bytes),
                        Ok(Err(e)) => {
                            self.lost = Some(e);
                            return;
                        }
                        Err(TryRecvError::Disconnected) => {
                            self.lost = Some(io::Error::new(
                                io::ErrorKind::BrokenPipe,
                                "transport closed",
                            ));
                            return;
                        }
                        Err(TryRecvError::Empty) => return,
                    }
                    if self.chunks.len() >= CHUNKS_AT_ONCE {
                        return;
                    }
                    next = rx.try_recv();
                }
            }
            #[cfg(unix)]
            Wait::Fd(fd) => {
                if let Err(e) = fd.sleep(until, spin) {
                    self.lost = Some(e);
                }
            }
        }
    }

    /// Stops: fails every waiter, closes the link, releases the callbacks.
    fn stop(mut self, mut st: MutexGuard<'_, State>, close: bool) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // An ACK held back for a requester's next send (see `ACK_HOLD`) goes now: what this
        // end accepted is acknowledged even when it stops at once (a worker that exits on
        // END must not leave its peer's END unconfirmed).
        if st.hold_until.is_some() {
            let now = st.now();
            st.transmit(now);
        }
        st.ep.stop();
        // No more connections: the dialing thread ends, the listening socket closes now.
        st.redial_tx = None;
        st.handover = None;
        st.down = None;
        if let Some(stop) = self.stop_accept.take() {
            stop.stop();
        }
        let mut acts = Vec::new();
        st.settle(&mut acts);
        st.sends.fail_all(&mut acts, || Error::Stopped);
        let link = std::mem::replace(&mut st.link, Out::Lost);
        st.out = Default::default();
        st.assembler = Default::default();
        drop(st);
        for act in acts {
            match act {
                Act::Done(d, r) => drop(d.send(r)),
                Act::Reply(w, r) => drop(w.send(r)),
                Act::Item(_) => {}
            }
        }
        // Both directions closed before the closer runs (a child sees EOF on its stdin).
        drop(link);
        self.wait = Wait::Token(crossbeam_channel::never());
        if close {
            if let Some(closer) = self.closer.take() {
                closer();
            }
        }
        self.pending.clear();
        self.shared.clear_callbacks();
    }
}
