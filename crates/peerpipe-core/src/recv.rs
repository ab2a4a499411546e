//! The receive side: acceptance, duplicate suppression, reordering, and the queue of items
//! waiting for the application.

use heapless::{String, Vec};

use crate::error::GoneReason;
use crate::message::{Message, MessageKind, MsgId};
use crate::wire::{Ack, Data, Item};

/// How far beyond `next` an item may be accepted out of order (the ACK bitmap's width).
pub(crate) const REORDER_WINDOW: u64 = 32;

/// A received item.
#[derive(Debug, Clone)]
pub(crate) enum Inbound<const P: usize, const T: usize> {
    Message(Message<P, T>),
    End(Vec<u8, P>),
    Abort(Vec<u8, P>),
}

/// A status event placed between received items, so that it is reported after the items
/// that were accepted before it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Gone(GoneReason),
    Restarted,
}

/// What the peer's END or ABORT, once in order, does to the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerClose {
    Ended,
    Aborted,
}

/// The result of offering a DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Accepted; `Some` when this made the peer's END or ABORT deliverable.
    Accepted(Option<PeerClose>),
    Duplicate,
    Full,
    OutOfWindow,
    Closed,
    /// Topic or payload larger than this endpoint's capacities.
    Oversize,
}

/// What [`RecvQueue::pop`] hands out.
pub(crate) enum Popped<const P: usize, const T: usize> {
    Item(Inbound<P, T>),
    Marker(Marker),
}

#[derive(Debug, Clone)]
struct Entry<const P: usize, const T: usize> {
    seq: u64,
    item: Inbound<P, T>,
}

/// Accepted items: a prefix of `ready` ones in delivery order, then out-of-order ones sorted
/// by sequence number, waiting for the gap before them to close.
#[derive(Debug, Clone)]
pub(crate) struct RecvQueue<const P: usize, const T: usize, const RX: usize> {
    entries: Vec<Entry<P, T>, RX>,
    ready: usize,
    /// Every sequence number below this is accepted or skipped.
    next: u64,
    markers: Vec<(usize, Marker), 4>,
}

impl<const P: usize, const T: usize, const RX: usize> RecvQueue<P, T, RX> {
    pub(crate) const fn new() -> Self {
        RecvQueue {
            entries: Vec::new(),
            ready: 0,
            next: 0,
            markers: Vec::new(),
        }
    }

    fn ooo(&self) -> &[Entry<P, T>] {
        self.entries.get(self.ready..).unwrap_or(&[])
    }

    /// Makes every held item deliverable (after a gap that will never close) and starts a
    /// new sequence space.
    pub(crate) fn new_session(&mut self) {
        self.flush();
        self.next = 0;
    }

    /// Makes every held item deliverable, skipping the gaps.
    pub(crate) fn flush(&mut self) {
        self.ready = self.entries.len();
    }

    /// Drops every item and marker; returns how many items were dropped.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.markers.clear();
        self.ready = 0;
        n
    }

    /// Items held, deliverable or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The sender says everything below `floor` is settled: stop waiting for it.
    pub(crate) fn advance_floor(&mut self, floor: u64) -> Option<PeerClose> {
        if floor <= self.next {
            return None;
        }
        self.next = floor;
        self.promote()
    }

    /// Moves out-of-order items that are now in order into the ready prefix.
    fn promote(&mut self) -> Option<PeerClose> {
        let mut close = None;
        while let Some(e) = self.entries.get(self.ready) {
            if e.seq > self.next {
                break;
            }
            if e.seq == self.next {
                self.next = self.next.saturating_add(1);
            }
            close = close.or(closes(&e.item));
            self.ready += 1;
        }
        close
    }

    /// Offers a DATA frame; `closed` when the conversation accepts nothing new.
    pub(crate) fn offer(&mut self, data: &Data<'_>, closed: bool) -> Offer {
        let seq = data.seq;
        if seq < self.next || self.ooo().iter().any(|e| e.seq == seq) {
            return Offer::Duplicate;
        }
        if closed {
            return Offer::Closed;
        }
        let gap = seq - self.next;
        if gap > REORDER_WINDOW {
            return Offer::OutOfWindow;
        }
        // One slot stays free for the next in-order item, so that out-of-order items can
        // never fill the queue and block the gap they wait for.
        let held = self.entries.len();
        if (gap == 0 && held >= RX) || (gap > 0 && held + 1 >= RX) {
            return Offer::Full;
        }
        let Some(item) = inbound(data) else {
            return Offer::Oversize;
        };
        if gap == 0 {
            let close = closes(&item);
            if self
                .entries
                .insert(self.ready, Entry { seq, item })
                .is_err()
            {
                return Offer::Full;
            }
            self.ready += 1;
            self.next = seq.saturating_add(1);
            Offer::Accepted(close.or(self.promote()))
        } else {
            let at = self.ready + self.ooo().iter().take_while(|e| e.seq < seq).count();
            if self.entries.insert(at, Entry { seq, item }).is_err() {
                return Offer::Full;
            }
            Offer::Accepted(None)
        }
    }

    /// The acceptance state as an ACK addressed to `to_session`.
    pub(crate) fn ack(&self, to_session: u32, busy: bool) -> Ack {
        let mut bitmap = 0u32;
        for e in self.ooo() {
            if let Some(bit) = e.seq.checked_sub(self.next).and_then(|d| d.checked_sub(1)) {
                if bit < REORDER_WINDOW {
                    bitmap |= 1 << bit;
                }
            }
        }
        Ack {
            to_session,
            next: self.next,
            bitmap,
            busy,
        }
    }

    /// Places a status event after the items deliverable now. Returns false when too many
    /// markers are waiting and this one was merged away.
    pub(crate) fn push_marker(&mut self, marker: Marker) -> bool {
        self.markers.push((self.ready, marker)).is_ok()
    }

    /// The next deliverable item or status event.
    pub(crate) fn pop(&mut self) -> Option<Popped<P, T>> {
        if let Some(&(0, marker)) = self.markers.first() {
            self.markers.remove(0);
            return Some(Popped::Marker(marker));
        }
        if self.ready == 0 || self.entries.is_empty() {
            return None;
        }
        let entry = self.entries.remove(0);
        self.ready -= 1;
        for (at, _) in self.markers.iter_mut() {
            *at = at.saturating_sub(1);
        }
        Some(Popped::Item(entry.item))
    }
}

fn closes<const P: usize, const T: usize>(item: &Inbound<P, T>) -> Option<PeerClose> {
    match item {
        Inbound::Message(_) => None,
        Inbound::End(_) => Some(PeerClose::Ended),
        Inbound::Abort(_) => Some(PeerClose::Aborted),
    }
}

/// Copies a DATA frame's item into owned storage, if it fits the capacities.
fn inbound<const P: usize, const T: usize>(data: &Data<'_>) -> Option<Inbound<P, T>> {
    let payload = Vec::from_slice(data.payload).ok()?;
    let (topic, kind) = match data.item {
        Item::Request { topic } => (topic, MessageKind::Request),
        Item::Reply { topic, req_id } => (
            topic,
            MessageKind::Reply {
                req_id: MsgId(req_id),
            },
        ),
        Item::End => return Some(Inbound::End(payload)),
        Item::Abort => return Some(Inbound::Abort(payload)),
    };
    let mut owned = String::new();
    owned.push_str(topic).ok()?;
    Some(Inbound::Message(Message::received(
        kind,
        MsgId(data.seq),
        owned,
        payload,
    )))
}
