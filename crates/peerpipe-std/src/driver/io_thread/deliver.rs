//! Taking the endpoint's events and handing them out: outcomes and replies to their
//! waiters, items to the callbacks or the application's queue while it has room.

use std::sync::atomic::{fence, Ordering};

use crossbeam_channel::TrySendError;
use peerpipe_host::Taken;

use super::Io;
use crate::driver::sends::item_bytes;
use crate::driver::{Act, State};
use crate::{Item, QUEUE_BYTES, QUEUE_ITEMS};

impl Io {
    /// Takes events from the endpoint: outcomes and replies for their waiters, items for the
    /// application while its queue has room (unless callbacks take them): fewer than
    /// [`QUEUE_ITEMS`] items, and fewer than [`QUEUE_BYTES`] data bytes counting the message
    /// being put together (or none: a message longer than that still gets through, alone).
    /// Returns whether more events may be waiting.
    pub(super) fn collect(&mut self, st: &mut State, acts: &mut Vec<Act>) -> bool {
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
            // Lent by the endpoint: the data is copied once, into the message.
            let Some(event) = st.ep.poll_event_ref() else {
                return false;
            };
            let Some(taken) = Taken::from_event(event, &mut st.assembler) else {
                continue;
            };
            if let Some(n) = st.act(taken, acts) {
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
    pub(super) fn deliver(&mut self, acts: &mut Vec<Act>) -> bool {
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
    pub(super) fn ordinary_queued(&self) -> usize {
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
}
