//! The send side: slots for items in flight, their resend and timeout deadlines, and their
//! outcomes until the application has polled them.

use heapless::Vec;

use crate::config::Timing;
use crate::error::{Error, FailReason};
use crate::event::Outcome;
use crate::message::{Message, MessageKind, MsgId};
use crate::time::Instant;
use crate::wire::{Ack, Data, Item};

/// An item to be delivered.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing<const P: usize, const T: usize> {
    Message(Message<P, T>),
    End(Vec<u8, P>),
    Abort(Vec<u8, P>),
}

#[derive(Debug, Clone, Copy)]
enum SlotState {
    Pending {
        /// Transmissions so far.
        sent: u32,
        /// Waiting to be transmitted (first time, or a resend that is due).
        due: bool,
        /// Due again because the peer refused it for lack of room and has room now: it goes
        /// within the peer's window, like a first transmission.
        retry: bool,
        /// When to resend if no acknowledgement came; armed at each transmission.
        resend_at: Option<Instant>,
        /// When the send times out.
        deadline: Instant,
    },
    Settled(Outcome),
}

#[derive(Debug, Clone)]
struct Slot<const P: usize, const T: usize> {
    seq: u64,
    item: Outgoing<P, T>,
    state: SlotState,
}

/// Up to `TX` sends: in flight, or settled with an outcome the application has not polled.
/// A slot is freed only when its outcome is polled, so outcomes never overflow.
#[derive(Debug, Clone)]
pub(crate) struct SendQueue<const P: usize, const T: usize, const TX: usize> {
    slots: Vec<Slot<P, T>, TX>,
}

impl<const P: usize, const T: usize, const TX: usize> SendQueue<P, T, TX> {
    pub(crate) const fn new() -> Self {
        SendQueue { slots: Vec::new() }
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        item: Outgoing<P, T>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let state = SlotState::Pending {
            sent: 0,
            due: true,
            retry: false,
            resend_at: None,
            deadline,
        };
        self.slots
            .push(Slot { seq, item, state })
            .map_err(|_| Error::SendQueueFull)
    }

    /// Sends in flight.
    pub(crate) fn pending(&self) -> usize {
        self.indexed()
            .filter(|(_, s)| matches!(s.state, SlotState::Pending { .. }))
            .count()
    }

    /// The lowest sequence number still in flight, or `next_seq` when none is.
    pub(crate) fn floor(&self, next_seq: u64) -> u64 {
        self.indexed()
            .filter(|(_, s)| matches!(s.state, SlotState::Pending { .. }))
            .map(|(_, s)| s.seq)
            .min()
            .unwrap_or(next_seq)
    }

    /// The in-flight slot due for transmission with the lowest sequence number, if it may go
    /// now. Timer resends and the lowest pending item always may; a first transmission, or a
    /// retry of an item the peer refused, only while fewer than `peer_room + 1` transmitted
    /// items await their acknowledgement, so that the peer's receive queue is not flooded
    /// with items it would have to refuse.
    pub(crate) fn next_due(&self, next_seq: u64, peer_room: usize) -> Option<usize> {
        let mut floor = next_seq;
        let mut outstanding = 0usize;
        let mut best: Option<(usize, u64, bool)> = None;
        for (i, slot) in self.indexed() {
            if let SlotState::Pending {
                sent, due, retry, ..
            } = slot.state
            {
                floor = floor.min(slot.seq);
                let resend = sent > 0 && !retry;
                if resend {
                    outstanding += 1;
                }
                if due && best.is_none_or(|(_, seq, _)| slot.seq < seq) {
                    best = Some((i, slot.seq, resend));
                }
            }
        }
        let (index, seq, resend) = best?;
        (resend || seq == floor || outstanding <= peer_room).then_some(index)
    }

    /// The DATA frame content of slot `index`.
    pub(crate) fn data(&self, index: usize, floor: u64) -> Option<Data<'_>> {
        let slot = self.slots.get(index)?;
        let (item, payload) = match &slot.item {
            Outgoing::Message(m) => {
                let item = match m.kind() {
                    MessageKind::Request => Item::Request { topic: m.topic() },
                    MessageKind::Reply { req_id } => Item::Reply {
                        topic: m.topic(),
                        req_id: req_id.0,
                    },
                };
                (item, m.data())
            }
            Outgoing::End(p) => (Item::End, p.as_slice()),
            Outgoing::Abort(p) => (Item::Abort, p.as_slice()),
        };
        Some(Data {
            seq: slot.seq,
            floor,
            item,
            payload,
        })
    }

    /// Records that slot `index` was transmitted at `now`; returns whether it was a resend.
    pub(crate) fn mark_sent(&mut self, index: usize, now: Instant, config: &Timing) -> bool {
        match self.slots.get_mut(index).map(|s| &mut s.state) {
            Some(SlotState::Pending {
                sent,
                due,
                retry,
                resend_at,
                ..
            }) => {
                *sent = sent.saturating_add(1);
                *due = false;
                *retry = false;
                *resend_at = config.resend_interval.map(|i| now + i);
                *sent > 1
            }
            _ => false,
        }
    }

    /// Settles every in-flight send the ACK covers; returns how many.
    pub(crate) fn ack(&mut self, ack: &Ack) -> usize {
        let mut n = 0;
        for slot in self.slots.iter_mut() {
            if matches!(slot.state, SlotState::Pending { .. }) && ack.covers(slot.seq) {
                slot.state = SlotState::Settled(Outcome::Delivered);
                n += 1;
            }
        }
        n
    }

    /// The peer refused some of what it was sent for lack of room and has room now: every
    /// transmitted item the ACK does not cover becomes due at once (within the peer's window),
    /// instead of waiting for its resend timer, if it may still be resent at all. Such a
    /// retry counts as a resend.
    pub(crate) fn retry(&mut self, ack: &Ack, config: &Timing) {
        if config.resend_interval.is_none() {
            return;
        }
        for slot in self.slots.iter_mut() {
            if let SlotState::Pending {
                sent,
                due,
                retry,
                resend_at,
                ..
            } = &mut slot.state
            {
                let left = config.max_resends.is_none_or(|max| *sent <= max);
                if *sent > 0 && !*due && left && !ack.covers(slot.seq) {
                    *due = true;
                    *retry = true;
                    *resend_at = None;
                }
            }
        }
    }

    /// Fails every send still in flight.
    pub(crate) fn fail_all(&mut self, reason: FailReason) {
        for slot in self.slots.iter_mut() {
            if matches!(slot.state, SlotState::Pending { .. }) {
                slot.state = SlotState::Settled(Outcome::Failed(reason));
            }
        }
    }

    /// Acts on due deadlines: timeouts fail, due resends are marked for transmission, sends
    /// whose last allowed transmission went unanswered fail. Returns whether any send was
    /// given up.
    pub(crate) fn handle_timeout(&mut self, now: Instant, config: &Timing) -> bool {
        let mut gave_up = false;
        for slot in self.slots.iter_mut() {
            let SlotState::Pending {
                sent,
                due,
                retry,
                resend_at,
                deadline,
            } = &mut slot.state
            else {
                continue;
            };
            let failure = if *deadline <= now {
                Some(FailReason::TimedOut)
            } else if resend_at.is_some_and(|at| at <= now) {
                if config.max_resends.is_some_and(|max| *sent > max) {
                    Some(FailReason::ResendsExhausted)
                } else {
                    *due = true;
                    *retry = false;
                    *resend_at = None;
                    None
                }
            } else {
                None
            };
            if let Some(reason) = failure {
                slot.state = SlotState::Settled(Outcome::Failed(reason));
                gave_up = true;
            }
        }
        gave_up
    }

    /// The slots with their indexes. (By index rather than a pointer walk with `iter()`: on
    /// Cortex-M0 LLVM computes the trip count of a pointer walk over these large slots with a
    /// division, which pulls in the ~400-byte software divider.)
    fn indexed(&self) -> impl Iterator<Item = (usize, &Slot<P, T>)> {
        (0..self.slots.len()).filter_map(move |i| self.slots.get(i).map(|s| (i, s)))
    }

    /// The earliest resend or timeout deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.indexed()
            .filter_map(|(_, s)| match s.state {
                SlotState::Pending {
                    resend_at,
                    deadline,
                    ..
                } => Some(resend_at.map_or(deadline, |r| r.min(deadline))),
                SlotState::Settled(_) => None,
            })
            .min()
    }

    /// Takes the settled send with the lowest sequence number, freeing its slot.
    pub(crate) fn pop_outcome(&mut self) -> Option<(MsgId, Outcome)> {
        let (index, seq, outcome) = self
            .indexed()
            .filter_map(|(i, s)| match s.state {
                SlotState::Settled(o) => Some((i, s.seq, o)),
                SlotState::Pending { .. } => None,
            })
            .min_by_key(|(_, seq, _)| *seq)?;
        // `swap_remove` by a swap of two distinct slots and `pop`: `swap_remove` and
        // `slice::swap` may overlap and bring in `memmove` (over 1 KiB on Cortex-M0).
        if let Some((last, rest)) = self.slots.split_last_mut() {
            if let Some(slot) = rest.get_mut(index) {
                core::mem::swap(slot, last);
            }
        }
        self.slots.pop();
        Some((MsgId(seq), outcome))
    }
}
