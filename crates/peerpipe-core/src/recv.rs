//! The receive side: acceptance, duplicate suppression, reordering, and the queue of items
//! waiting for the application.

use heapless::Vec;

use crate::error::GoneReason;
use crate::message::MsgId;
use crate::part::{Part, PartKind};
use crate::slots::Slots;
use crate::wire::{Ack, Data, Frag, Item};

/// How far beyond `next` an item may be accepted out of order (the ACK bitmap's width).
pub(crate) const REORDER_WINDOW: u64 = 32;

/// A received item, as its DATA frame said: a whole message, END or ABORT (`last`, at
/// offset 0), or a fragment of a longer message. One shape for every kind, so that storing,
/// checking and taking an item is one piece of code, not one per kind; a continuation
/// carries only its id, offset and data until [`Current::take`](crate::part::Current)
/// completes it.
#[derive(Debug, Clone)]
pub(crate) struct Inbound<const P: usize, const T: usize> {
    pub(crate) part: Part<P, T>,
    /// It ends its message (a whole one ends it too).
    pub(crate) last: bool,
}

impl<const P: usize, const T: usize> Inbound<P, T> {
    /// Whether it is a whole message, END or ABORT (not a fragment).
    pub(crate) fn is_whole(&self) -> bool {
        self.last && self.part.is_first()
    }
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

/// What [`RecvQueue::pop_marker`] or [`RecvQueue::pop_item`] would hand out next.
pub(crate) enum Peeked<'a, const P: usize, const T: usize> {
    Item(u64, &'a Inbound<P, T>),
    Marker(Marker),
}

#[derive(Debug, Clone)]
struct Entry<const P: usize, const T: usize> {
    seq: u64,
    item: Inbound<P, T>,
}

impl<const P: usize, const T: usize> Entry<P, T> {
    /// What a slot holds before its first item: zero bytes (see [`Part::PLACEHOLDER`]).
    const FREE: Self = Entry {
        seq: 0,
        item: Inbound {
            part: Part::PLACEHOLDER,
            last: false,
        },
    };
}

/// Accepted items: a prefix of `ready` ones in delivery order, then out-of-order ones sorted
/// by sequence number, waiting for the gap before them to close.
///
/// A ring of slots that stay in place (each can be kilobytes): items leave from the front
/// without shifting the others, in-order items, the common case, join at the back, and an
/// item is written into its slot and taken out of it without the slot being moved.
#[derive(Debug, Clone)]
pub(crate) struct RecvQueue<const P: usize, const T: usize, const RX: usize> {
    entries: Slots<Entry<P, T>, RX>,
    ready: usize,
    /// Every sequence number below this is accepted or skipped.
    next: u64,
    markers: Vec<(usize, Marker), 4>,
}

impl<const P: usize, const T: usize, const RX: usize> RecvQueue<P, T, RX> {
    pub(crate) const fn new() -> Self {
        RecvQueue {
            entries: Slots::new([const { Entry::FREE }; RX]),
            ready: 0,
            next: 0,
            markers: Vec::new(),
        }
    }

    /// The out-of-order items, by sequence number.
    fn ooo(&self) -> impl Iterator<Item = &Entry<P, T>> {
        self.entries.iter().skip(self.ready)
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

    /// Every sequence number below this is accepted or skipped.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Offers a DATA frame; `closed` when the conversation accepts nothing new; a message
    /// longer than `max_message` (unless 0) is refused as oversize.
    pub(crate) fn offer(&mut self, data: &Data<'_, [u8]>, closed: bool, max_message: u64) -> Offer {
        let seq = data.seq;
        if seq < self.next || self.ooo().any(|e| e.seq == seq) {
            return Offer::Duplicate;
        }
        if closed {
            return Offer::Closed;
        }
        let gap = seq - self.next;
        // `next` saturates at u64::MAX, so an item with that seq could never be counted as
        // taken and every copy would be accepted again: no sender gets there, refuse it.
        if gap > REORDER_WINDOW || seq == u64::MAX {
            return Offer::OutOfWindow;
        }
        // One slot stays free for the next in-order item, so that out-of-order items can
        // never fill the queue and block the gap they wait for.
        let held = self.entries.len();
        if (gap == 0 && held >= RX) || (gap > 0 && held + 1 >= RX) {
            return Offer::Full;
        }
        if !fits::<P, T>(data, max_message) {
            return Offer::Oversize;
        }
        let at = if gap == 0 {
            self.ready
        } else {
            self.ready + self.ooo().take_while(|e| e.seq < seq).count()
        };
        let Some(entry) = self.entries.push_back() else {
            return Offer::Full;
        };
        entry.seq = seq;
        store(&mut entry.item, data);
        let close = closes(&entry.item);
        // Rare: an item that closes a gap, or an out-of-order one before others.
        self.entries.move_last_to(at);
        if gap == 0 {
            self.ready += 1;
            self.next = seq.saturating_add(1);
            Offer::Accepted(close.or(self.promote()))
        } else {
            Offer::Accepted(None)
        }
    }

    /// Whether an item is ready for the application.
    pub(crate) fn has_ready(&self) -> bool {
        self.ready > 0
    }

    /// Whether the next in-order item would be accepted now.
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < RX
    }

    /// The acceptance state as an ACK addressed to `to_session`; `retry` asks the sender to
    /// send again what is not acknowledged (see [`Ack::retry`]).
    pub(crate) fn ack(&self, to_session: u32, retry: bool) -> Ack {
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
            room: self.room(),
            window: self.window(),
            retry,
        }
    }

    /// Free slots beyond the one kept for the next in-order item.
    pub(crate) fn room(&self) -> u32 {
        u32::try_from(RX.saturating_sub(1 + self.entries.len())).unwrap_or(u32::MAX)
    }

    /// Payload bytes those free slots take.
    pub(crate) fn window(&self) -> u32 {
        u32::try_from(P).map_or(u32::MAX, |p| self.room().saturating_mul(p))
    }

    /// Places a status event after the items deliverable now. Returns false when it was merged
    /// with another because the application did not poll: a restart right after a restart
    /// (nothing between them) is one restart; when too many markers wait, a restart is
    /// dropped, but a GONE is never lost: it takes the place of the last restart.
    pub(crate) fn push_marker(&mut self, marker: Marker) -> bool {
        let at = self.ready;
        if marker == Marker::Restarted && self.markers.last() == Some(&(at, Marker::Restarted)) {
            return false;
        }
        if self.markers.push((at, marker)).is_ok() {
            return true;
        }
        if let (Marker::Gone(_), Some(last)) = (marker, self.markers.last_mut()) {
            *last = (at, marker);
        }
        false
    }

    /// The first status event waiting behind the items, if any.
    pub(crate) fn next_marker(&self) -> Option<Marker> {
        self.markers.first().map(|&(_, m)| m)
    }

    /// What [`pop_marker`](Self::pop_marker) or [`pop_item`](Self::pop_item) would hand out.
    pub(crate) fn peek(&self) -> Option<Peeked<'_, P, T>> {
        if let Some(&(0, marker)) = self.markers.first() {
            return Some(Peeked::Marker(marker));
        }
        if self.ready == 0 {
            return None;
        }
        self.entries.get(0).map(|e| Peeked::Item(e.seq, &e.item))
    }

    /// The status event due before any item, if one is.
    pub(crate) fn pop_marker(&mut self) -> Option<Marker> {
        let &(0, marker) = self.markers.first()? else {
            return None;
        };
        // `remove(0)` by swaps and `pop` (no `memmove` on the microcontrollers).
        for i in 1..self.markers.len() {
            self.markers.swap(i - 1, i);
        }
        self.markers.pop();
        Some(marker)
    }

    /// Takes the next deliverable item out of the queue (once no status event is due
    /// before it: see [`pop_marker`](Self::pop_marker)), with its sequence number: its slot
    /// is freed and lent, for the caller to take the topic and data out of it with
    /// [`core::mem::take`] before the next [`offer`](Self::offer) reuses it. An item is as
    /// large as the capacities (4 KiB on hosts), and every move of one is a copy of all of
    /// it, used or not: taken this way, its topic and data are copied once, straight into
    /// the event made of them.
    pub(crate) fn pop_item(&mut self) -> Option<(u64, &mut Inbound<P, T>)> {
        if self.ready == 0 || matches!(self.markers.first(), Some((0, _))) {
            return None;
        }
        self.ready -= 1;
        for (at, _) in self.markers.iter_mut() {
            *at = at.saturating_sub(1);
        }
        self.entries.pop_front().map(|e| (e.seq, &mut e.item))
    }
}

fn closes<const P: usize, const T: usize>(item: &Inbound<P, T>) -> Option<PeerClose> {
    match (item.last, item.part.kind) {
        (true, PartKind::End) => Some(PeerClose::Ended),
        (true, PartKind::Abort) => Some(PeerClose::Aborted),
        _ => None,
    }
}

/// Whether a DATA frame's topic and payload fit the capacities and its message is not
/// longer than `max_message` (unless 0): then [`store`] cannot fail.
fn fits<const P: usize, const T: usize>(data: &Data<'_, [u8]>, max_message: u64) -> bool {
    let topic = match data.item {
        Item::Request { topic } | Item::Reply { topic, .. } => topic,
        Item::End | Item::Abort => &[],
    };
    let within = |len: u64| max_message == 0 || len <= max_message;
    data.payload.len() <= P
        && topic.len() <= T
        && match data.frag {
            Frag::Whole => within(data.payload.len() as u64),
            Frag::First { total } => within(total),
            Frag::Next { .. } => true,
        }
}

/// Makes `item` (a slot of the queue) the item of a DATA frame that [`fits`]: its fields
/// written in place, its topic and payload copied in (not through temporaries as large as
/// the capacities).
fn store<const P: usize, const T: usize>(item: &mut Inbound<P, T>, data: &Data<'_, [u8]>) {
    let part = &mut item.part;
    part.id = MsgId(data.id);
    let topic = match data.item {
        Item::Request { topic } => {
            part.kind = PartKind::Request;
            topic
        }
        Item::Reply { topic, req_id } => {
            part.kind = PartKind::Reply {
                req_id: MsgId(req_id),
            };
            topic
        }
        Item::End => {
            part.kind = PartKind::End;
            &[]
        }
        Item::Abort => {
            part.kind = PartKind::Abort;
            &[]
        }
    };
    (part.total, part.offset, item.last) = match data.frag {
        Frag::Whole => (0, 0, true),
        Frag::First { total } => (total, 0, false),
        Frag::Next { offset, last } => (0, offset, last),
    };
    part.topic.clear();
    part.data.clear();
    // Fit: `fits` checked the lengths. The topic's bytes are `[A-Za-z0-9_]` (the parser
    // checked them): each is a character of its own (the mask, a no-op on them, tells the
    // compiler so: only the one-byte case of `push` is left).
    for &b in topic {
        let _ = part.topic.push(char::from(b & 0x7F));
    }
    let _ = part.data.extend_from_slice(data.payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seq: u64) -> Data<'static, [u8]> {
        Data {
            seq,
            floor: 0,
            id: seq,
            item: Item::Request { topic: b"t" },
            frag: Frag::Whole,
            payload: b"x",
        }
    }

    fn popped_seqs<const RX: usize>(q: &mut RecvQueue<8, 8, RX>) -> std::vec::Vec<u64> {
        let mut out = std::vec::Vec::new();
        assert!(q.pop_marker().is_none());
        while let Some((_, item)) = q.pop_item() {
            assert!(item.is_whole(), "unexpected pop");
            out.push(item.part.id().0);
        }
        out
    }

    #[test]
    fn out_of_order_items_wait_for_the_gap_and_leave_in_order() {
        let mut q = RecvQueue::<8, 8, 8>::new();
        for seq in [3, 1, 5, 2] {
            assert_eq!(q.offer(&data(seq), false, 0), Offer::Accepted(None));
        }
        assert_eq!(q.offer(&data(3), false, 0), Offer::Duplicate);
        let ack = q.ack(1, false);
        assert_eq!((ack.next, ack.bitmap), (0, 0b10111));
        assert!(q.pop_item().is_none());
        assert_eq!(q.offer(&data(0), false, 0), Offer::Accepted(None));
        assert_eq!(q.ack(1, false).next, 4);
        assert_eq!(popped_seqs(&mut q), [0, 1, 2, 3]);
        // 5 still waits for 4; the ring has wrapped meanwhile.
        for seq in [6, 4] {
            assert_eq!(q.offer(&data(seq), false, 0), Offer::Accepted(None));
        }
        assert_eq!(popped_seqs(&mut q), [4, 5, 6]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn in_order_items_fill_the_ring_many_times() {
        let mut q = RecvQueue::<8, 8, 3>::new();
        let mut got = std::vec::Vec::new();
        for seq in 0..20 {
            assert_eq!(q.offer(&data(seq), false, 0), Offer::Accepted(None));
            if seq % 3 == 2 {
                assert_eq!(q.offer(&data(seq + 1), false, 0), Offer::Full);
                got.extend(popped_seqs(&mut q));
            }
        }
        got.extend(popped_seqs(&mut q));
        assert_eq!(got, (0..20).collect::<std::vec::Vec<_>>());
    }
}
