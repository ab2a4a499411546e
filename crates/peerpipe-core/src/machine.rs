//! The state machine behind an [`Endpoint`](crate::Endpoint): the peer, the timers, the send
//! and receive queues, and how frames, time and commands move them.

use crate::config::Timing;
use crate::error::{CloseReason, Error, FailReason, GoneReason};
use crate::event::{Event, PeerState};
use crate::event_ref::{EventRef, MessageRef, PartRef};
use crate::message::{MessageKind, MsgId};
use crate::part::{Current, CutReason, PartKind};
use crate::recv::{Inbound, Marker, Offer, Peeked, PeerClose, RecvQueue, REORDER_WINDOW};
use crate::send::{Payload, PeerRoom, SendQueue, Source};
use crate::stats::Stats;
use crate::time::{earliest, Instant};
use crate::timer::{Timer, TimerTable};
use crate::wire::{Ack, Body, Caps, Frame, Heartbeat, Item, WireError};

/// How many replaced peer sessions are remembered, so that their late frames are ignored
/// instead of being taken for yet another restart.
pub(crate) const RETIRED_SESSIONS: usize = 4;

#[derive(Debug, Clone)]
pub(crate) struct Machine<
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const I: usize,
> {
    /// The configuration in microseconds, for the arithmetic (and [`Endpoint::config`](crate::Endpoint::config), with
    /// `caps.max_message`).
    pub(crate) timing: Timing,
    pub(crate) session: u32,
    /// What this endpoint receives, announced in its heartbeats.
    pub(crate) caps: Caps,
    pub(crate) peer: Option<u32>,
    /// What the peer receives, from its heartbeats; `None` until one arrives (and again
    /// after a restart): no DATA goes out before.
    pub(crate) peer_caps: Option<Caps>,
    pub(crate) retired: [Option<u32>; RETIRED_SESSIONS],
    pub(crate) peer_state: PeerState,
    pub(crate) local_close: Option<CloseReason>,
    pub(crate) stopped: bool,
    pub(crate) paused: bool,
    pub(crate) timers: TimerTable,
    pub(crate) ack_due: bool,
    /// The last ACK sent said the receive queue had no room: announce room when it frees.
    pub(crate) advertised_full: bool,
    /// A DATA frame was refused for lack of room since the last ACK that asked the peer to
    /// retry: the next ACK sent while there is room asks for it ([`Ack::retry`]).
    pub(crate) refused: bool,
    /// The room the peer's last ACK or heartbeat announced (see [`Ack::room`]).
    pub(crate) peer_room: PeerRoom,
    /// Items and payload bytes the driver takes beyond the receive slots
    /// ([`Endpoint::set_spare_room`](crate::Endpoint::set_spare_room)).
    pub(crate) spare: (u32, u32),
    pub(crate) heartbeat_due: bool,
    /// A heartbeat is due for the capabilities exchange (the peer asked for ours, or this
    /// endpoint needs the peer's): it goes even while paused, or no DATA could ever flow.
    pub(crate) caps_due: bool,
    pub(crate) sends: SendQueue<I, T, TX>,
    pub(crate) recv: RecvQueue<P, T, RX>,
    /// The message being delivered in parts.
    pub(crate) current: Current<T>,
    pub(crate) stats: Stats,
}

/// What [`Machine::next_transmit`] chose to send.
#[derive(Clone, Copy)]
pub(crate) enum Transmit {
    Ack(u32),
    Data(usize),
    Heartbeat,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const I: usize>
    Machine<P, T, RX, TX, I>
{
    pub(crate) fn enqueue(
        &mut self,
        now: Instant,
        item: Item<'_>,
        payload: Payload<'_>,
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        if self.stopped {
            return Err(Error::Stopped);
        }
        if let Some(reason) = self.local_close.or(match self.peer_state {
            PeerState::Gone => Some(CloseReason::PeerGone),
            PeerState::Ended => Some(CloseReason::PeerEnded),
            PeerState::Aborted => Some(CloseReason::PeerAborted),
            _ => None,
        }) {
            return Err(Error::Closed(reason));
        }
        let timeout = timeout.unwrap_or(self.timing.default_request_timeout);
        if timeout.is_zero() {
            return Err(Error::ZeroTimeout);
        }
        let id = self.sends.push(item, payload, now + timeout)?;
        // A message the peer will not take fails at once; without the peer's capabilities,
        // ask for them.
        self.sends.cut(self.peer_caps, P);
        if self.peer_caps.is_none() && self.peer.is_some() {
            self.caps_due = true;
        }
        Ok(id)
    }

    /// Whether the conversation still accepts the peer's items and checks its silence.
    fn is_open(&self) -> bool {
        matches!(self.peer_state, PeerState::NotSeen | PeerState::Up)
    }

    pub(crate) fn arm_silence(&mut self, now: Instant) {
        let timeout = self.timing.heartbeat_timeout;
        let on = !timeout.is_zero() && !self.paused && !self.stopped && self.is_open();
        self.timers.set(Timer::Silence, on.then(|| now + timeout));
    }

    pub(crate) fn count_wire_error(&mut self, e: WireError) {
        let s = &mut self.stats;
        let counter = match e {
            WireError::Cobs => &mut s.cobs_errors,
            WireError::BadCrc => &mut s.crc_errors,
            WireError::Oversize => &mut s.oversize,
            WireError::UnknownVersion(_) => &mut s.bad_version,
            WireError::Truncated
            | WireError::UnknownKind(_)
            | WireError::Malformed
            | WireError::BufferTooSmall => &mut s.malformed,
        };
        *counter = counter.wrapping_add(1);
    }

    pub(crate) fn handle_frame(&mut self, now: Instant, frame: &Frame<'_, [u8]>) {
        if self.stopped || !self.accept_session(frame.session) {
            return;
        }
        self.stats.frames_received = self.stats.frames_received.wrapping_add(1);
        self.arm_silence(now);
        match &frame.body {
            Body::Data(data) => {
                self.ack_due = true;
                self.advance_floor(data.floor);
                let offer = self
                    .recv
                    .offer(data, !self.is_open(), self.caps.max_message);
                match offer {
                    Offer::Accepted(Some(close)) => self.peer_closed(close),
                    Offer::Full => self.refused = true,
                    _ => {}
                }
                let s = &mut self.stats;
                let counter = match offer {
                    Offer::Accepted(_) => &mut s.accepted,
                    Offer::Duplicate => &mut s.duplicates,
                    Offer::Full => &mut s.refused_full,
                    Offer::OutOfWindow => &mut s.out_of_window,
                    Offer::Closed => &mut s.refused_closed,
                    Offer::Oversize => &mut s.oversize,
                };
                *counter = counter.wrapping_add(1);
            }
            Body::Ack(ack) => {
                if ack.to_session == self.session {
                    self.sends.ack(ack, now, &self.timing);
                    if ack.retry {
                        self.sends.retry(ack, &self.timing);
                    }
                    self.peer_room = PeerRoom {
                        room: ack.room,
                        window: ack.window,
                    };
                } else {
                    self.stats.stale = self.stats.stale.wrapping_add(1);
                }
            }
            Body::Heartbeat(hb) => {
                self.peer_room = PeerRoom {
                    room: hb.room,
                    window: hb.window,
                };
                self.peer_caps = Some(hb.caps);
                self.caps_due |= hb.ask;
                self.advance_floor(hb.floor);
            }
        }
        // Its capabilities come with its heartbeats: ask for one when they are needed.
        if self.asks_caps() && self.is_open() {
            self.caps_due = true;
        }
    }

    /// Checks the frame's session against the peer's; handles a first contact or a restart.
    /// Returns whether the frame is to be processed.
    fn accept_session(&mut self, session: u32) -> bool {
        let current = self.peer;
        if current == Some(session) {
            if self.peer_state == PeerState::Gone {
                self.stats.ignored_after_gone = self.stats.ignored_after_gone.wrapping_add(1);
                return false;
            }
            return true;
        }
        if self.retired.contains(&Some(session)) {
            self.stats.stale = self.stats.stale.wrapping_add(1);
            return false;
        }
        if let Some(old) = current {
            // Shift the list right by one, `old` first (no `rotate_right`: its generic code
            // and `memmove` cost over 1 KiB of flash on Cortex-M0).
            let mut carry = Some(old);
            for slot in self.retired.iter_mut() {
                carry = core::mem::replace(slot, carry);
            }
        }
        if current.is_some() {
            self.sends.restart();
        }
        self.peer = Some(session);
        self.recv.new_session();
        self.peer_room = PeerRoom::default();
        self.peer_caps = None;
        // What was refused belonged to the old session: nothing to ask the new one to retry.
        self.refused = false;
        // A first contact is not a restart, unless the peer was already declared gone.
        let revived = current.is_some() || self.peer_state != PeerState::NotSeen;
        self.peer_state = PeerState::Up;
        if revived {
            self.marker(Marker::Restarted);
        }
        true
    }

    fn marker(&mut self, marker: Marker) {
        if !self.recv.push_marker(marker) {
            self.stats.status_coalesced = self.stats.status_coalesced.wrapping_add(1);
        }
    }

    fn advance_floor(&mut self, floor: u64) {
        if let Some(close) = self.recv.advance_floor(floor) {
            self.peer_closed(close);
        }
    }

    fn peer_closed(&mut self, close: PeerClose) {
        if !self.is_open() {
            return;
        }
        let (state, reason) = match close {
            PeerClose::Ended => (PeerState::Ended, FailReason::PeerEnded),
            PeerClose::Aborted => (PeerState::Aborted, FailReason::PeerAborted),
        };
        self.peer_state = state;
        self.sends.fail_all(reason);
        self.timers.set(Timer::Silence, None);
    }

    pub(crate) fn gone(&mut self, reason: GoneReason) {
        if self.stopped || !self.is_open() {
            return;
        }
        self.peer_state = PeerState::Gone;
        self.sends.fail_all(FailReason::PeerGone);
        self.recv.flush();
        self.marker(Marker::Gone(reason));
        self.timers.set(Timer::Silence, None);
        self.ack_due = false;
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self.timers.take_expired(Timer::Heartbeat, now) {
            self.heartbeat_due = true;
        }
        if self.timers.take_expired(Timer::Silence, now) {
            self.gone(GoneReason::Silence);
        }
        if self.sends.handle_timeout(now, &self.timing) && !self.paused {
            // Tell the peer the new floor at once, so items it holds behind the abandoned
            // one become deliverable without waiting for the next frame.
            self.heartbeat_due = true;
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        earliest(self.timers.next(), self.sends.next_deadline())
    }

    pub(crate) fn next_transmit(&mut self) -> Option<Transmit> {
        if self.stopped {
            return None;
        }
        if let (true, Some(peer)) = (self.ack_due, self.peer) {
            return Some(Transmit::Ack(peer));
        }
        if self.is_open() {
            self.sends.cut(self.peer_caps, P);
        }
        if let Some(index) = self.sends.next_due(self.peer_room) {
            return Some(Transmit::Data(index));
        }
        ((self.heartbeat_due && !self.paused) || self.caps_due).then_some(Transmit::Heartbeat)
    }

    /// The frame for `choice`; `Err` with the id of a message whose source could not supply
    /// the bytes of its fragment.
    pub(crate) fn frame<'a, S: Source + ?Sized>(
        &'a self,
        choice: Transmit,
        source: Option<&'a mut S>,
    ) -> Result<Frame<'a>, u64> {
        let floor = self.sends.floor();
        let body = match choice {
            Transmit::Ack(peer) => Body::Ack(Ack {
                room: self.room(),
                window: self.window(),
                ..self.recv.ack(peer, self.retry_now())
            }),
            Transmit::Data(index) => Body::Data(self.sends.data(index, floor, source)?),
            Transmit::Heartbeat => Body::Heartbeat(Heartbeat {
                floor,
                room: self.room(),
                window: self.window(),
                caps: self.caps,
                ask: self.asks_caps(),
            }),
        };
        Ok(Frame {
            session: self.session,
            body,
        })
    }

    /// The room this endpoint announces: its free receive slots beyond the one kept for the
    /// next in-order item, plus the driver's spare items, which raise it at most to the
    /// reorder window less one (more could not be accepted out of order). Out of line: asked
    /// at three sites.
    #[inline(never)]
    pub(crate) fn room(&self) -> u32 {
        let slots = self.recv.room();
        let cap = slots.max(REORDER_WINDOW as u32 - 1);
        slots.saturating_add(self.spare.0).min(cap)
    }

    /// The window this endpoint announces: the payload bytes of its free slots, plus the
    /// driver's spare bytes.
    pub(crate) fn window(&self) -> u32 {
        self.recv.window().saturating_add(self.spare.1)
    }

    /// Whether the receive queue is full while the application could empty it: then
    /// [`Endpoint::handle_bytes_until_full`](crate::Endpoint::handle_bytes_until_full) stops
    /// until events are taken. (Full of items that wait for a gap to close, it goes on: what
    /// does not fit is refused and resent, or the gap could never close.)
    pub(crate) fn must_drain(&self) -> bool {
        !self.stopped && !self.recv.has_room() && self.recv.has_ready()
    }

    /// Whether this endpoint waits for the peer's capabilities to send a message.
    fn asks_caps(&self) -> bool {
        self.peer_caps.is_none() && self.sends.waiting()
    }

    /// Whether the next ACK asks the peer to send again what it refused: something was
    /// refused for lack of room, and the next in-order item would be accepted now.
    fn retry_now(&self) -> bool {
        self.refused && self.recv.has_room()
    }

    pub(crate) fn commit(&mut self, choice: Transmit, now: Instant) {
        let s = &mut self.stats;
        s.frames_sent = s.frames_sent.wrapping_add(1);
        match choice {
            Transmit::Ack(_) => {
                self.ack_due = false;
                if self.refused && self.recv.has_room() {
                    self.refused = false;
                }
                // Room is announced again once the application takes an item: after a full
                // queue, and after a refusal that could not yet ask for a retry.
                s.acks_sent = s.acks_sent.wrapping_add(1);
                self.advertised_full = self.room() == 0 || self.refused;
            }
            Transmit::Data(index) => {
                s.data_sent = s.data_sent.wrapping_add(1);
                if self.sends.mark_sent(index, now) {
                    s.resends = s.resends.wrapping_add(1);
                }
            }
            Transmit::Heartbeat => {
                self.heartbeat_due = false;
                self.caps_due = false;
                s.heartbeats_sent = s.heartbeats_sent.wrapping_add(1);
            }
        }
        // Any frame proves liveness: the next heartbeat is one interval after it.
        if !self.paused {
            self.timers
                .set(Timer::Heartbeat, Some(now + self.timing.heartbeat_interval));
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event<P, T>> {
        self.poll_event_ref().map(|event| event.to_event())
    }

    /// The next event, lending the received item's topic and data from its slot (freed, and
    /// left as it is until the next frame is stored: the borrow of `self` keeps it so).
    pub(crate) fn poll_event_ref(&mut self) -> Option<EventRef<'_>> {
        if let Some((id, outcome)) = self.sends.pop_outcome() {
            return Some(EventRef::SendOutcome { id, outcome });
        }
        if self.stopped {
            return None;
        }
        // What is handed out is decided first, strays dropped, so that the item is lent by
        // one borrow after the loop.
        loop {
            if let Some(reason) = self.cut_reason() {
                self.current.active = false;
                self.stats.messages_cut = self.stats.messages_cut.wrapping_add(1);
                return Some(EventRef::Cut {
                    id: self.current.id,
                    reason,
                });
            }
            if let Some(marker) = self.recv.pop_marker() {
                return Some(match marker {
                    Marker::Gone(reason) => EventRef::Gone(reason),
                    Marker::Restarted => EventRef::PeerRestarted,
                });
            }
            let stray = match self.recv.peek() {
                Some(Peeked::Item(_, item)) => {
                    !item.is_whole() && !item.part.is_first() && !self.current.active
                }
                _ => false,
            };
            if !stray {
                break;
            }
            // The rest of a message that was cut.
            if self.recv.pop_item().is_some() {
                self.took_item();
            }
            self.stats.stray_fragments = self.stats.stray_fragments.wrapping_add(1);
        }
        // No status event is due first (the loop took it): an item is ready or none is.
        if !self.recv.has_ready() {
            return None;
        }
        self.took_item();
        let (seq, item) = self.recv.pop_item()?;
        let part = &item.part;
        if item.is_whole() {
            let kind = match part.kind {
                PartKind::End => return Some(EventRef::End(&part.data)),
                PartKind::Abort => return Some(EventRef::Abort(&part.data)),
                PartKind::Request => MessageKind::Request,
                PartKind::Reply { req_id } => MessageKind::Reply { req_id },
            };
            return Some(EventRef::Message(MessageRef {
                kind,
                id: part.id,
                topic: &part.topic,
                data: &part.data,
            }));
        }
        if part.is_first() {
            self.current.start(part, seq);
        } else if self.current.advance(part, seq) {
            self.current.active = false;
        }
        // A continuation carries only its id, offset and data: the rest is the message's.
        let cur = &self.current;
        Some(EventRef::Part(PartRef {
            id: part.id,
            kind: cur.kind,
            topic: &cur.topic,
            total: cur.total,
            offset: part.offset,
            data: &part.data,
        }))
    }

    /// An item leaves the receive queue: when the last ACK said there was no room, tell the
    /// peer at once instead of letting it wait for a resend.
    fn took_item(&mut self) {
        if self.advertised_full && self.peer_state != PeerState::Gone {
            self.ack_due = true;
            self.advertised_full = false;
        }
    }

    /// Why the message being delivered in parts ends here, if it does: what comes next is
    /// not its next part, or its next part was skipped by the sender's floor.
    fn cut_reason(&self) -> Option<CutReason> {
        let cur = Some(&self.current).filter(|c| c.active)?;
        match self.recv.peek() {
            Some(Peeked::Marker(Marker::Gone(_))) => Some(CutReason::PeerGone),
            Some(Peeked::Marker(Marker::Restarted)) => Some(CutReason::PeerRestarted),
            Some(Peeked::Item(seq, Inbound { part, last }))
                if !part.is_first()
                    && cur.continued_by(seq, part.id, part.offset, part.data.len(), *last) =>
            {
                None
            }
            // The rest will never come: the sender gave it up, unless the peer went or
            // restarted (its held items were released ahead of the status event).
            Some(Peeked::Item(..)) => Some(match self.recv.next_marker() {
                Some(Marker::Gone(_)) => CutReason::PeerGone,
                Some(Marker::Restarted) => CutReason::PeerRestarted,
                None => CutReason::GivenUp,
            }),
            None if self.recv.next() > cur.last_seq.saturating_add(1) => Some(CutReason::GivenUp),
            None => None,
        }
    }
}
