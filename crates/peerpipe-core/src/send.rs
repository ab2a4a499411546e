//! The send side: messages waiting to go out or for their outcome to be polled, and the
//! fragments cut from them that are in flight, with their resend and timeout deadlines.
//!
//! A message is cut into fragments as the peer's frames allow, in order, only once the peer's
//! capabilities are known and a fragment slot is free; each fragment takes the next sequence
//! number. The bytes stay where the caller keeps them: in the message (inline) or in the
//! caller's [`Source`], read again at each transmission.

use heapless::{String, Vec};

use crate::error::{Error, FailReason};
use crate::event::Outcome;
use crate::message::MsgId;
use crate::rtt::RttEstimate;
use crate::time::{Duration, Instant};
use crate::wire::{Caps, Data, Frag, Item};

mod resend;

/// Where the bytes of a message sent with
/// [`Endpoint::send_from`](crate::Endpoint::send_from) come from: the endpoint asks for each
/// fragment's bytes when it transmits the fragment (and again when it resends it), so that a
/// message never has to be in RAM as a whole (flash, a file, a sensor's buffer).
pub trait Source {
    /// The `len` bytes of message `id` from byte `offset` on, or `None` when they cannot be
    /// read: the send then fails with [`FailReason::Unreadable`]. A slice shorter than `len`
    /// counts as unreadable; a longer one is cut to `len`.
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]>;
}

/// A [`Source`] with no bytes, for endpoints that only send inline messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSource;

impl Source for NoSource {
    fn read(&mut self, _: MsgId, _: u64, _: usize) -> Option<&[u8]> {
        None
    }
}

/// What a message is, as its first fragment says it: its kind and its topic (empty for END
/// and ABORT), written into the message's slot in place.
#[derive(Debug, Clone)]
pub(crate) struct Head<const T: usize> {
    kind: HeadKind,
    /// The id of the request a reply answers (apart from the kind, so that the record takes
    /// no more room than the topic and it: 48 B on the firmware profile).
    req_id: u64,
    topic: String<T>,
}

/// The kind of a [`Head`].
#[derive(Debug, Clone, Copy)]
enum HeadKind {
    Request,
    Reply,
    End,
    Abort,
}

impl<const T: usize> Head<T> {
    /// A free slot's: zero bytes.
    const EMPTY: Self = Head {
        kind: HeadKind::Request,
        req_id: 0,
        topic: String::new(),
    };

    fn item(&self) -> Item<'_> {
        let topic = &self.topic;
        match self.kind {
            HeadKind::Request => Item::Request { topic },
            HeadKind::Reply => Item::Reply {
                topic,
                req_id: self.req_id,
            },
            HeadKind::End => Item::End,
            HeadKind::Abort => Item::Abort,
        }
    }

    fn topic_len(&self) -> usize {
        self.topic.len()
    }

    /// Makes it `item`'s, in place (no `Head` built aside and moved in). The topic was
    /// checked by the caller: at most `T` bytes.
    fn set(&mut self, item: Item<'_>) {
        let (kind, topic, req_id) = match item {
            Item::Request { topic } => (HeadKind::Request, topic, 0),
            Item::Reply { topic, req_id } => (HeadKind::Reply, topic, req_id),
            Item::End => (HeadKind::End, "", 0),
            Item::Abort => (HeadKind::Abort, "", 0),
        };
        (self.kind, self.req_id) = (kind, req_id);
        self.topic.clear();
        let _ = self.topic.push_str(topic);
    }
}

/// Where a message's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Bytes<const P: usize> {
    Inline(Vec<u8, P>),
    /// In the caller's [`Source`]; this many.
    Sourced(u64),
}

impl<const P: usize> Bytes<P> {
    fn len(&self) -> u64 {
        match self {
            Bytes::Inline(v) => v.len() as u64,
            Bytes::Sourced(n) => *n,
        }
    }
}

/// The bytes of a message to be queued: copied into its slot, or read from a [`Source`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Inline(&'a [u8]),
    Sourced(u64),
}

/// A message to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing<const P: usize, const T: usize> {
    pub(crate) head: Head<T>,
    pub(crate) bytes: Bytes<P>,
}

#[derive(Debug, Clone)]
// `repr(C)`, the flags and counters before the 160-byte head and data: a Cortex-M0 load or
// store reaches 124 bytes past its base register (31 for a byte), so a field further on has
// its address computed at each use, and Rust's own order put them after the data
// (docs/design/firmware-size.md: 164 B of thumbv6m code).
#[repr(C)]
struct Msg<const P: usize, const T: usize> {
    /// The slot holds a message (a free one holds what its last message left).
    live: bool,
    /// Whether its first fragment was cut (an empty message has one fragment too).
    begun: bool,
    /// Whether it takes more than one fragment.
    in_parts: bool,
    /// `None` while pending.
    outcome: Option<Outcome>,
    /// Its fragments in flight (cut, not acknowledged).
    in_flight: u32,
    id: u64,
    /// Bytes already cut into fragments.
    cut: u64,
    /// Bytes the peer acknowledged.
    acked: u64,
    deadline: Instant,
    out: Outgoing<P, T>,
}

impl<const P: usize, const T: usize> Msg<P, T> {
    /// A free slot, before its first message: zero bytes, so that the queue starts cleared,
    /// not copied from a constant.
    const FREE: Self = Msg {
        live: false,
        id: 0,
        out: Outgoing {
            head: Head::EMPTY,
            bytes: Bytes::Inline(Vec::new()),
        },
        deadline: Instant::ZERO,
        cut: 0,
        begun: false,
        in_parts: false,
        in_flight: 0,
        acked: 0,
        // Not read in a free slot: the value whose bytes are zero (`None` is not).
        outcome: Some(Outcome::Failed(FailReason::TimedOut)),
    };

    fn total(&self) -> u64 {
        self.out.bytes.len()
    }

    fn uncut(&self) -> bool {
        self.outcome.is_none() && (!self.begun || self.cut < self.total())
    }
}

/// A fragment in flight: cut from a message, not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    /// The slot holds a fragment in flight.
    live: bool,
    seq: u64,
    id: u64,
    offset: u64,
    len: u32,
    /// Transmissions so far that count against `max_resends` (one lost with a broken
    /// connection does not: see `resend_all_now`).
    sent: u32,
    /// Waiting to be transmitted (first time, or a resend that is due).
    due: bool,
    /// Due again because the peer refused it for lack of room and has room now: it goes
    /// within the peer's window, like a first transmission.
    retry: bool,
    /// Due again because the transport was replaced (`resend_all_now`): its next
    /// transmission replaces one lost with the old connection and does not count against
    /// `max_resends`.
    restored: bool,
    /// Transmitted more than once (resent, retried or restored): its acknowledgement may
    /// answer any of the transmissions, so it gives no RTT sample (Karn's rule).
    resent: bool,
    /// Its resend timer runs: it is resent [`SendQueue::rto`] after `sent_at` unless
    /// acknowledged. (A flag beside the instant rather than an `Option` of it: 8 B less per
    /// record on the firmware profile.)
    timed: bool,
    /// Its last transmission (meaningful while `timed`).
    sent_at: Instant,
}

impl Fragment {
    /// A free slot: zero bytes.
    const FREE: Self = Fragment {
        live: false,
        seq: 0,
        id: 0,
        offset: 0,
        len: 0,
        sent: 0,
        due: false,
        retry: false,
        restored: false,
        resent: false,
        timed: false,
        sent_at: Instant::ZERO,
    };
}

/// The peer's receive room and window, from its last ACK or heartbeat.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeerRoom {
    pub(crate) room: u32,
    pub(crate) window: u32,
}

/// Up to `TX` messages (in flight, or settled with an outcome the application has not
/// polled: a message leaves only when its outcome is polled, so outcomes never overflow), and
/// up to `TX` fragments in flight.
///
/// The messages' slots stay in place (as the receive queue's do): a message is written into
/// a free slot field by field and leaves by its slot being marked free, never moved whole
/// (a slot is over 200 bytes on the firmware profile; moving one took a temporary of its
/// size and a swap).
#[derive(Debug, Clone)]
// `repr(C)`, the counters before the slots (see `Msg`).
#[repr(C)]
pub(crate) struct SendQueue<const P: usize, const T: usize, const TX: usize> {
    next_id: u64,
    /// Every message below this id is cut whole, or settled.
    uncut: u64,
    next_seq: u64,
    /// How long after its transmission a fragment is resent: the RTT estimate's timeout,
    /// never below `resend_interval` (set with it when the endpoint is made, and at each RTT
    /// sample); `None` when `resend_interval` is (no resends). Kept, not computed at each
    /// deadline check, for code size.
    pub(crate) rto: Option<Duration>,
    /// The RTT estimate behind the resend timeout.
    pub(crate) rtt: RttEstimate,
    /// In slots that stay in place, as the messages' (a fragment's index names it while it
    /// is in flight).
    frags: [Fragment; TX],
    msgs: [Msg<P, T>; TX],
}

impl<const P: usize, const T: usize, const TX: usize> SendQueue<P, T, TX> {
    pub(crate) const fn new() -> Self {
        SendQueue {
            msgs: [const { Msg::FREE }; TX],
            frags: [Fragment::FREE; TX],
            next_id: 0,
            uncut: 0,
            next_seq: 0,
            rtt: RttEstimate::new(),
            rto: None,
        }
    }

    /// Queues a message; its inline bytes are copied straight into its slot (not through a
    /// temporary as large as the slot, which would cost its size in stack on a
    /// microcontroller). `PayloadTooLarge` when they do not fit a slot.
    pub(crate) fn push(
        &mut self,
        item: Item<'_>,
        payload: Payload<'_>,
        deadline: Instant,
    ) -> Result<MsgId, Error> {
        if let Payload::Inline(data) = payload {
            if data.len() > P {
                return Err(Error::PayloadTooLarge {
                    len: data.len(),
                    max: P,
                });
            }
        }
        let msg = self
            .msgs
            .iter_mut()
            .find(|m| !m.live)
            .ok_or(Error::SendQueueFull)?;
        let id = self.next_id;
        msg.out.head.set(item);
        match (payload, &mut msg.out.bytes) {
            // The slot's buffer is reused in place (a new one would be built aside and copied).
            (Payload::Inline(data), Bytes::Inline(v)) => {
                v.clear();
                // Fits: checked above.
                let _ = v.extend_from_slice(data);
            }
            (Payload::Inline(data), bytes) => {
                *bytes = Bytes::Inline(Vec::new());
                if let Bytes::Inline(v) = bytes {
                    let _ = v.extend_from_slice(data);
                }
            }
            (Payload::Sourced(len), bytes) => *bytes = Bytes::Sourced(len),
        }
        msg.live = true;
        msg.id = id;
        msg.deadline = deadline;
        msg.cut = 0;
        msg.begun = false;
        msg.in_parts = false;
        msg.in_flight = 0;
        msg.acked = 0;
        msg.outcome = None;
        self.next_id = id.saturating_add(1);
        Ok(MsgId(id))
    }

    /// The messages held (the live slots).
    fn live(&self) -> impl Iterator<Item = &Msg<P, T>> {
        self.msgs.iter().filter(|m| m.live)
    }

    /// The fragments in flight (the live slots). By index, like every walk over the
    /// fragments: a slice iterator over the 56-byte slots makes LLVM count its trips with a
    /// division (the software divider on Cortex-M0, 400 B).
    fn in_flight(&self) -> impl Iterator<Item = &Fragment> {
        (0..TX).filter_map(|i| self.frags.get(i).filter(|f| f.live))
    }

    /// The message with this id.
    fn msg(&self, id: u64) -> Option<&Msg<P, T>> {
        self.live().find(|m| m.id == id)
    }

    fn msg_mut(&mut self, id: u64) -> Option<&mut Msg<P, T>> {
        self.msgs.iter_mut().find(|m| m.live && m.id == id)
    }

    /// Messages in flight (not yet settled).
    pub(crate) fn pending(&self) -> usize {
        self.live().filter(|m| m.outcome.is_none()).count()
    }

    /// Whether a message waits to be cut into fragments.
    pub(crate) fn waiting(&self) -> bool {
        self.live().any(|m| m.uncut())
    }

    /// Bytes of message `id` the peer acknowledged, and its length, while it is queued.
    pub(crate) fn progress(&self, id: MsgId) -> Option<(u64, u64)> {
        self.msg(id.0).map(|m| (m.acked, m.total()))
    }

    /// The lowest sequence number still in flight, or the next unused one when none is.
    pub(crate) fn floor(&self) -> u64 {
        self.in_flight()
            .map(|f| f.seq)
            .min()
            .unwrap_or(self.next_seq)
    }

    /// Cuts fragments of at most `payload` bytes (this endpoint's, and the peer's) from the
    /// oldest messages while fragment slots are free and the peer's capabilities are known.
    /// A message longer than the peer accepts, or whose topic is longer than it takes, fails
    /// with `TooLarge`.
    pub(crate) fn cut(&mut self, caps: Option<Caps>, payload: usize) -> bool {
        let Some(caps) = caps else {
            return false;
        };
        let mut failed = false;
        // Messages are cut whole in the order of their ids: `uncut` is the oldest that may
        // still have bytes to cut, so a call with nothing to cut costs nothing.
        while self.uncut < self.next_id {
            let Some(slot) = self.frags.iter().position(|f| !f.live) else {
                break;
            };
            let uncut = self.uncut;
            let Some(msg) = self
                .msgs
                .iter_mut()
                .find(|m| m.live && m.id == uncut && m.uncut())
            else {
                self.uncut += 1;
                continue;
            };
            let total = msg.total();
            let most = payload.min(caps.max_payload as usize);
            let too_long = caps.max_message != 0 && total > caps.max_message;
            let topic_too_long = msg.out.head.topic_len() > caps.max_topic as usize;
            if too_long || topic_too_long || (most == 0 && total > 0) {
                let id = msg.id;
                self.fail(id, FailReason::TooLarge);
                failed = true;
                continue;
            }
            let len = (total - msg.cut).min(most as u64);
            // An empty message still takes one (empty) fragment.
            let Some(f) = self.frags.get_mut(slot) else {
                break;
            };
            *f = Fragment {
                live: true,
                seq: self.next_seq,
                id: msg.id,
                offset: msg.cut,
                len: len as u32,
                due: true,
                ..Fragment::FREE
            };
            if !msg.begun {
                msg.in_parts = len < total;
            }
            msg.cut += len;
            msg.begun = true;
            msg.in_flight += 1;
            self.next_seq = self.next_seq.saturating_add(1);
        }
        failed
    }

    /// The fragment due for transmission with the lowest sequence number, if it may go now.
    /// Timer resends and the lowest fragment in flight always may; a first transmission, or a
    /// retry of a fragment the peer refused, only while at most `room` transmitted fragments
    /// and `window` bytes beyond the lowest one await their acknowledgement, so that the
    /// peer's receive queue is not flooded with fragments it would have to refuse.
    pub(crate) fn next_due(&self, peer: PeerRoom) -> Option<usize> {
        // One pass: the lowest fragment (the floor), the due one to go, what is outstanding.
        let mut outstanding = 0u32;
        let mut bytes = 0u64;
        let mut lowest: Option<&Fragment> = None;
        let mut best: Option<(usize, &Fragment)> = None;
        for (i, f) in self.frags.iter().enumerate().filter(|(_, f)| f.live) {
            if f.sent > 0 && !f.retry {
                outstanding += 1;
                bytes += u64::from(f.len);
            }
            if lowest.is_none_or(|l| f.seq < l.seq) {
                lowest = Some(f);
            }
            if f.due && best.is_none_or(|(_, b)| f.seq < b.seq) {
                best = Some((i, f));
            }
        }
        let (index, f) = best?;
        let floor = lowest.map_or(self.next_seq, |l| l.seq);
        // The window counts the bytes beyond the lowest fragment.
        if let Some(l) = lowest.filter(|l| l.sent > 0 && !l.retry) {
            bytes -= u64::from(l.len);
        }
        let resend = f.sent > 0 && !f.retry;
        let fits = outstanding <= peer.room && bytes + u64::from(f.len) <= u64::from(peer.window);
        (resend || f.seq == floor || fits).then_some(index)
    }

    /// The DATA frame of fragment `index`, its bytes from the message or from `source`; `Err`
    /// with the message's id when they cannot be had (no source, or it has not got them).
    pub(crate) fn data<'a, S: Source + ?Sized>(
        &'a self,
        index: usize,
        floor: u64,
        source: Option<&'a mut S>,
    ) -> Result<Data<'a>, u64> {
        let f = self.frags.get(index).filter(|f| f.live).ok_or(u64::MAX)?;
        let msg = self.msg(f.id).ok_or(f.id)?;
        let len = f.len as usize;
        let payload = match &msg.out.bytes {
            Bytes::Inline(v) => {
                let start = usize::try_from(f.offset).map_err(|_| f.id)?;
                v.get(start..start.saturating_add(len))
            }
            // An empty message asks its source for nothing.
            Bytes::Sourced(_) if len == 0 => Some(&[][..]),
            Bytes::Sourced(_) => source
                .and_then(|s| s.read(MsgId(f.id), f.offset, len))
                .and_then(|b| b.get(..len)),
        }
        .ok_or(f.id)?;
        let total = msg.total();
        let end = f.offset + u64::from(f.len);
        let frag = match (f.offset, end == total) {
            (0, true) => Frag::Whole,
            (0, false) => Frag::First { total },
            (offset, last) => Frag::Next { offset, last },
        };
        Ok(Data {
            seq: f.seq,
            floor,
            id: f.id,
            item: msg.out.head.item(),
            frag,
            payload,
        })
    }

    /// The peer restarted: what its old incarnation accepted of a message in parts is lost
    /// with it, and the new one cannot complete a message it never saw begin. Every message
    /// in parts that has begun fails with `PeerRestarted` (its fragments in flight are
    /// dropped, so the floor moves past them); whole messages in flight go on to the new
    /// incarnation with their sequence numbers, as before. (Sending such a message again
    /// from its first byte would put it behind later messages already in flight, or deliver
    /// twice what the new incarnation took of it before this endpoint saw the restart.)
    pub(crate) fn restart(&mut self) {
        while let Some(id) = self
            .msgs
            .iter()
            .find(|m| m.live && m.outcome.is_none() && m.begun && m.in_parts)
            .map(|m| m.id)
        {
            self.fail(id, FailReason::PeerRestarted);
        }
    }

    /// Gives message `id` up: its fragments in flight are dropped (the floor moves past them).
    fn fail(&mut self, id: u64, reason: FailReason) {
        for f in self.frags.iter_mut().filter(|f| f.id == id) {
            f.live = false;
        }
        if let Some(m) = self.msg_mut(id) {
            m.in_flight = 0;
            if m.outcome.is_none() {
                m.outcome = Some(Outcome::Failed(reason));
            }
        }
    }

    /// Gives up the message of fragment `index` because its source could not supply it.
    pub(crate) fn fail_unreadable(&mut self, id: u64) {
        self.fail(id, FailReason::Unreadable);
    }

    /// Fails every send still in flight.
    pub(crate) fn fail_all(&mut self, reason: FailReason) {
        for f in self.frags.iter_mut() {
            f.live = false;
        }
        for m in self.msgs.iter_mut().filter(|m| m.live) {
            m.in_flight = 0;
            if m.outcome.is_none() {
                m.outcome = Some(Outcome::Failed(reason));
            }
        }
    }

    /// Takes the settled send with the lowest id, freeing its slot.
    pub(crate) fn pop_outcome(&mut self) -> Option<(MsgId, Outcome)> {
        // The settled message with the lowest id, by index (an iterator's `min_by_key` over
        // the 224-byte slots brings in the software divider on Cortex-M0; see `in_flight`).
        let mut oldest: Option<&mut Msg<P, T>> = None;
        for m in self.msgs.iter_mut() {
            if m.live && m.outcome.is_some() && oldest.as_ref().is_none_or(|o| m.id < o.id) {
                oldest = Some(m);
            }
        }
        let msg = oldest?;
        msg.live = false;
        Some((MsgId(msg.id), msg.outcome?))
    }
}

#[cfg(test)]
mod tests;
