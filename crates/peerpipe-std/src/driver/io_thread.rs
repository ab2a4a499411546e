//! The I/O thread: reads the link, feeds the endpoint, hands out outcomes, replies and
//! items, writes what is due and sleeps until the next deadline.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{fence, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use peerpipe_core::Instant;

#[cfg(unix)]
use super::fd_wait::FdWait;
use super::sends::item_bytes;
use super::{
    Act, Out, Shared, State, WakeVia, ACK_HOLD, CHUNKS_AT_ONCE, FEED_AT_ONCE, POLL, POLL_LARGE,
};
use crate::transport::{Chunk, Link, LinkIo, StopAccept, Transport};
use crate::{Error, Item, QUEUE_BYTES, QUEUE_ITEMS};

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

    /// Feeds what arrived to the endpoint, about [`FEED_AT_ONCE`] bytes at a time (whole
    /// frames), then a broken link once everything before it was fed. Returns whether input
    /// is left for the next round.
    ///
    /// The endpoint announces the room of the application's queue besides its own slots
    /// ([`Endpoint::set_spare_room`](peerpipe_core::Endpoint::set_spare_room)), so that the
    /// peer sends up to that many messages in one go; feeding stops when its slots are full,
    /// and the round's events make room in them (see [`take_in`]).
    ///
    /// A round ends with the events taken and the frames due written: feeding a large
    /// input in rounds acknowledges every other large fragment as soon as it is taken, so
    /// that the peer sends the next fragments while this thread takes the rest, instead of both
    /// waiting in turn for a whole window.
    fn feed(&mut self, st: &mut State, now: Instant) -> bool {
        let (items, bytes) = self.spare_room();
        st.ep.set_spare_room(items, bytes);
        let mut budget = FEED_AT_ONCE;
        let mut full = false;
        while budget > 0 && !full {
            let Some(chunk) = self.chunks.front() else {
                break;
            };
            let rest = chunk.get(self.chunk_pos..).unwrap_or(&[]);
            let n = cut(rest, budget);
            let first = budget == FEED_AT_ONCE;
            let used = take_in(st, now, rest.get(..n).unwrap_or(&[]), first);
            full = used < n;
            self.slots_full |= full;
            budget = budget.saturating_sub(used);
            self.chunk_pos += used;
            if self.chunk_pos >= chunk.len() {
                self.chunks.pop_front();
                self.chunk_pos = 0;
            }
        }
        #[cfg(unix)]
        if let Wait::Fd(fd) = &mut self.wait {
            let input = fd.input();
            let n = if full { 0 } else { cut(input, budget) };
            if n > 0 {
                let first = budget == FEED_AT_ONCE;
                let used = take_in(st, now, input.get(..n).unwrap_or(&[]), first);
                self.slots_full |= used < n;
                fd.consume(used);
            }
            if !fd.input().is_empty() {
                return true;
            }
        }
        if !self.chunks.is_empty() {
            return true;
        }
        if let Some(e) = self.lost.take() {
            st.lose_link(&e);
        }
        false
    }

    /// The room of the application's queue: items and data bytes (see [`QUEUE_ITEMS`] and
    /// [`QUEUE_BYTES`]).
    fn spare_room(&self) -> (u32, u32) {
        let items = QUEUE_ITEMS.saturating_sub(self.ordinary_queued() + self.pending.len());
        let bytes = QUEUE_BYTES.saturating_sub(self.shared.queued_bytes.load(Ordering::SeqCst));
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(items), clamp(bytes))
    }

    /// Takes events from the endpoint: outcomes and replies for their waiters, items for the
    /// application while its queue has room (unless callbacks take them): fewer than
    /// [`QUEUE_ITEMS`] items, and fewer than [`QUEUE_BYTES`] data bytes counting the message
    /// being put together (or none: a message longer than that still gets through, alone).
    /// Returns whether more events may be waiting.
    fn collect(&mut self, st: &mut State, acts: &mut Vec<Act>) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        for status in st.link_events.drain(..) {
            self.link_status(status, acts);
        }
        let callbacks = self.shared.message_cb.is_set() && self.shared.status_cb.is_set();
        let (mut items, mut bytes) = (0, 0);
        loop {
            if !callbacks && !self.has_room(st, items, bytes) {
                self.shared.want_room.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                // The application may have taken an item just before the flag was set.
                return self.has_room(st, items, bytes);
            }
            let event = st.ep.poll_event();
            let Some(event) = &event else {
                return false;
            };
            if let Some(n) = st.act(event, acts) {
                items += 1;
                bytes += n;
            }
        }
    }

    /// Hands a connection status on, or merges it into the last `Reconnected` while the
    /// application has not read that one (see [`QUEUE_ITEMS`]).
    fn link_status(&mut self, status: crate::Status, acts: &mut Vec<Act>) {
        let unread = self.shared.unread_reconnected.load(Ordering::SeqCst) > 0;
        match status {
            crate::Status::Reconnecting { .. } if unread => {
                self.merged_break.get_or_insert(status);
                return;
            }
            crate::Status::Reconnected => match self.merged_break.take() {
                Some(_) if unread => return,
                Some(broke) => acts.push(Act::Item(Item::Status(broke))),
                None => {}
            },
            _ => {}
        }
        acts.push(Act::Item(Item::Status(status)));
    }

    /// Whether the application's queue has room for another item, with `items` items of
    /// `bytes` bytes on their way to it.
    fn has_room(&self, st: &State, items: usize, bytes: usize) -> bool {
        let queued = self.shared.queued_bytes.load(Ordering::SeqCst) + bytes;
        let arriving = st
            .assembler
            .progress()
            .map_or(0, |(_, got, _)| usize::try_from(got).unwrap_or(usize::MAX));
        self.ordinary_queued() + items < QUEUE_ITEMS
            && (queued == 0 || queued.saturating_add(arriving) < QUEUE_BYTES)
    }

    /// Tells the waiters and hands items to the callbacks or the application's queue, in
    /// order. Returns whether the queue has room again for items that did not fit.
    fn deliver(&mut self, acts: &mut Vec<Act>) -> bool {
        let mut queue = std::mem::take(&mut self.pending);
        for act in acts.drain(..) {
            let item = match act {
                Act::Done(d, r) => {
                    let _ = d.send(r);
                    continue;
                }
                Act::Reply(w, r) => match w.send(r) {
                    Ok(()) => {
                        self.served_reply = true;
                        continue;
                    }
                    // The requester gave up just now: a late reply, dropped and counted.
                    Err(Ok(_)) => {
                        self.shared.late_replies.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(Err(_)) => continue,
                },
                Act::Item(item) => item,
            };
            if !queue.is_empty() {
                queue.push_back(item);
                continue;
            }
            if let Some(item) = self.shared.callback(item) {
                if let Err(item) = self.enqueue(item) {
                    queue.push_back(item);
                }
            }
        }
        // Items held back from an earlier round: try them again, in order.
        while let Some(item) = queue.pop_front() {
            if let Some(item) = self.shared.callback(item) {
                if let Err(item) = self.enqueue(item) {
                    queue.push_front(item);
                    break;
                }
            }
        }
        self.pending = queue;
        let held: usize = self.pending.iter().map(item_bytes).sum();
        self.shared.held_bytes.store(held, Ordering::Relaxed);
        self.shared
            .held_items
            .store(self.pending.len(), Ordering::Relaxed);
        if self.pending.is_empty() {
            return false;
        }
        self.shared.want_room.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.ordinary_queued() < QUEUE_ITEMS
    }

    /// Items in the application's queue that count against [`QUEUE_ITEMS`].
    fn ordinary_queued(&self) -> usize {
        let link = self.shared.queued_link.load(Ordering::SeqCst);
        self.queue_tx.len().saturating_sub(link)
    }

    /// Puts an item into the application's queue, counting its bytes; hands it back when
    /// the queue is full.
    fn enqueue(&self, item: Item) -> Result<(), Item> {
        let bytes = item_bytes(&item);
        self.shared.queued_bytes.fetch_add(bytes, Ordering::SeqCst);
        self.shared.count_link(&item, true);
        match self.queue_tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(item)) => {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
                self.shared.count_link(&item, false);
                Ok(())
            }
            Err(TrySendError::Full(item)) => {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
                self.shared.count_link(&item, false);
                Err(item)
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

/// How much of `input` to feed with `budget` bytes left: through the first frame delimiter
/// at or past `budget` bytes (a round ends at the end of a frame), or all of it.
/// Feeds `input` to the endpoint until its receive slots are full; returns the bytes used.
/// When the slots are full at the `first` input of a round, the last round's events could
/// not all go to the application's queue (it is full: its room, announced to the peer, was
/// taken): then the input is fed all the same, so that heartbeats and ACKs behind the data
/// are not held up by a slow application, and the data that does not fit is refused, to be
/// resent.
fn take_in(st: &mut State, now: Instant, input: &[u8], first: bool) -> usize {
    let used = st.ep.handle_bytes_until_full(now, input);
    if used > 0 || input.is_empty() || !first {
        return used;
    }
    st.ep.handle_bytes(now, input);
    input.len()
}

fn cut(input: &[u8], budget: usize) -> usize {
    if budget == 0 {
        return 0;
    }
    match input.get(budget - 1..) {
        None => input.len(),
        Some(tail) => tail
            .iter()
            .position(|&b| b == 0)
            .map_or(input.len(), |i| budget + i),
    }
}
