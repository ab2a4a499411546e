//! What the endpoint reports, taken over by the handler: send outcomes to their waiters
//! (and their data out of the outbox), messages in parts put together, replies to the
//! requests that wait for them, everything else into the application's queue, within its
//! bounds in items and in bytes.

use std::task::{Poll, Waker};

use peerpipe_core::{EventRef, FailReason, GoneReason, MsgId, Outcome, PartKind};
use peerpipe_host::{Error, Item, Status, Taken};

use crate::state::State;
use crate::waiters::{enlist, wake_all};
use crate::{Transfer, QUEUE_BYTES};

/// Whether `item` is a status of the connection, which the driver reports itself.
fn is_link(item: &Item) -> bool {
    matches!(
        item,
        Item::Status(Status::Reconnecting { .. } | Status::Reconnected)
    )
}

/// The data bytes an item holds (a message's with its topic, as `peerpipe_std` counts them).
fn data_len(item: &Item) -> usize {
    match item {
        Item::Message(m) => m.data().len() + m.topic().len(),
        Item::Status(Status::End(d) | Status::Abort(d)) => d.len(),
        Item::Status(_) => 0,
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    State<P, T, RX, TX, F>
{
    /// The next item for the application; `Ready(None)` when none will ever come; else
    /// registers `waker`.
    pub(crate) fn next_item(&mut self, waker: &Waker) -> Poll<Option<Item>> {
        if self.inbox.is_empty() {
            self.dispatch();
        }
        match self.inbox.pop_front() {
            Some(item) => {
                self.inbox_bytes -= data_len(&item);
                if is_link(&item) {
                    self.link_statuses -= 1;
                }
                // Room in the inbox: the endpoint may hand over more, and once it has, it may
                // have room to announce (a frame for the task to send).
                if self.dispatch() {
                    self.wake_task();
                }
                Poll::Ready(Some(item))
            }
            None if self.stopping || self.finished => Poll::Ready(None),
            None => {
                enlist(&mut self.readers, waker);
                Poll::Pending
            }
        }
    }

    /// The message arriving in parts: its id, the bytes put together so far, its length.
    pub(crate) fn receiving(&self) -> Option<Transfer> {
        let (id, done, total) = self.assembler.progress()?;
        Some(Transfer { id, done, total })
    }

    /// Whether the handler may take another event from the endpoint: the queue has room
    /// for an item, and (unless it is empty, so that a message longer than the limit still
    /// gets through, or the message being put together is a reply a request waits for,
    /// which never takes a place in the queue) the bytes it holds, with the message being
    /// put together, are under [`QUEUE_BYTES`]. The connection's statuses do not count:
    /// unread, they must not hold back the replies that requests wait for.
    fn has_room(&self) -> bool {
        let items = self.inbox.len() - self.link_statuses;
        items < RX.max(1)
            && (items == 0
                || self
                    .reply_in_parts
                    .is_some_and(|r| self.replies.contains(r))
                || self.inbox_bytes + self.assembler.bytes_held() < QUEUE_BYTES)
    }

    /// Moves the endpoint's outcomes to their waiters and its events into the inbox (as far
    /// as it has room), putting messages in parts together and routing replies to the
    /// requests that wait for them. Returns whether it took anything from the endpoint.
    pub(crate) fn dispatch(&mut self) -> bool {
        let mut settled = false;
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            self.settle(id, outcome);
            settled = true;
        }
        let mut arrived = false;
        let mut took = settled;
        while self.has_room() {
            // Lent by the endpoint: the data is copied once, into the message.
            let Some(event) = self.ep.poll_event_ref() else {
                break;
            };
            took = true;
            match event {
                EventRef::Part(part) if part.is_first() || part.is_last() => {
                    self.reply_in_parts = match part.kind() {
                        PartKind::Reply { req_id } if !part.is_last() => Some(req_id),
                        _ => None,
                    };
                }
                EventRef::Cut { id, reason } => {
                    log::debug!("peerpipe-tokio: message {} cut: {reason}", id.0);
                    self.reply_in_parts = None;
                }
                _ => {}
            }
            let Some(taken) = Taken::from_event(event, &mut self.assembler) else {
                continue;
            };
            let item = match taken {
                Taken::Outcome(id, outcome) => {
                    self.settle(id, outcome);
                    settled = true;
                    continue;
                }
                Taken::Message(m) => match m.req_id() {
                    Some(r) if self.replies.contains(r) => {
                        self.replies.fulfil(r, Ok(m));
                        continue;
                    }
                    // Its request gave up: dropped, never queued (an application that only
                    // makes requests would never take it, and a full queue would hold back
                    // the replies that live requests wait for).
                    Some(r) if self.abandoned.take(r) => {
                        self.late_replies = self.late_replies.wrapping_add(1);
                        continue;
                    }
                    _ => Item::Message(m),
                },
                Taken::End(data) => {
                    self.fail_replies(FailReason::PeerEnded);
                    Item::Status(Status::End(data))
                }
                Taken::Abort(data) => {
                    self.fail_replies(FailReason::PeerAborted);
                    Item::Status(Status::Abort(data))
                }
                Taken::Gone(reason) => {
                    self.fail_replies(FailReason::PeerGone);
                    let cause = match reason {
                        GoneReason::TransportLost => self.gone_cause.clone(),
                        _ => None,
                    };
                    Item::Status(Status::Gone { reason, cause })
                }
                Taken::Restarted => Item::Status(Status::PeerRestarted),
            };
            self.push(item);
            arrived = true;
        }
        if settled {
            // A slot came free: the caller first in line takes it.
            self.room.wake_front();
        }
        if arrived {
            wake_all(&mut self.readers);
        }
        took
    }

    fn push(&mut self, item: Item) {
        self.inbox_bytes += data_len(&item);
        self.inbox.push_back(item);
    }

    /// Queues a status of the connection (`Reconnecting`, `Reconnected`) for the
    /// application, after what the endpoint reported before it. Such statuses take no room
    /// from the endpoint's items; they stay bounded because a break right after an unread
    /// reconnect is merged into it: the unread `Reconnecting` stands for both (with the
    /// first cause), and the next `Reconnected` follows it.
    pub(crate) fn report_link(&mut self, status: Status) {
        self.dispatch();
        let n = self.inbox.len();
        let unread_reconnect = matches!(
            (
                n.checked_sub(2).and_then(|i| self.inbox.get(i)),
                self.inbox.back()
            ),
            (
                Some(Item::Status(Status::Reconnecting { .. })),
                Some(Item::Status(Status::Reconnected))
            )
        );
        if unread_reconnect && matches!(status, Status::Reconnecting { .. }) {
            self.inbox.pop_back();
            self.link_statuses -= 1;
            return;
        }
        self.push(Item::Status(status));
        self.link_statuses += 1;
        wake_all(&mut self.readers);
    }

    /// Settles a send: its data leaves the outbox; its waiter learns the outcome; a request
    /// that failed learns it too, and a delivered request is marked so (it waits on for its
    /// reply).
    fn settle(&mut self, id: MsgId, outcome: Outcome) {
        self.outbox.remove(id);
        self.sending.retain(|&s| s != id);
        match outcome {
            Outcome::Delivered => {
                if !self.outcomes.fulfil(id, Ok(id)) {
                    if let Some(slot) = self.replies.get_mut(id) {
                        slot.delivered = true;
                    }
                }
            }
            Outcome::Failed(r) => {
                let e = Error::from(r).or_transport_lost(self.gone_cause.as_ref());
                if !self.outcomes.fulfil(id, Err(e.clone())) {
                    self.replies.fulfil(id, Err(e));
                }
            }
        }
    }

    /// The peer will send nothing more: requests still waiting for a reply fail now.
    fn fail_replies(&mut self, reason: FailReason) {
        let e = Error::Failed(reason).or_transport_lost(self.gone_cause.as_ref());
        self.replies.fail_all(|| Err(e.clone()));
    }
}
