//! The endpoint state machine: commands in, frames and events out, time always a parameter.

use crate::config::{Config, ConfigError, Timing};
use crate::const_msg::ConstMsg;
use crate::error::{CloseReason, Error, FailReason, GoneReason};
use crate::event::{Event, PeerState};
use crate::message::{bounded, Message, MsgId};
use crate::recv::{Inbound, Marker, Offer, PeerClose, Popped, RecvQueue};
use crate::send::{Outgoing, SendQueue};
use crate::stats::Stats;
use crate::time::Instant;
use crate::timer::{Timer, TimerTable};
use crate::wire::{self, Body, Decoder, Frame, WireError};

/// How many replaced peer sessions are remembered, so that their late frames are ignored
/// instead of being taken for yet another restart.
const RETIRED_SESSIONS: usize = 4;

/// One end of a peerpipe conversation: a sans-IO state machine.
///
/// Capacities are const generics with defaults that fit a Cortex-M0 with 16 KiB of RAM:
/// `PAYLOAD` bytes per message (128), `TOPIC` bytes per topic (32, at most 255), `RX` items in
/// the receive queue (4), `TX` sends in flight or waiting for their outcome to be polled (4),
/// and `FRAME`, the decoder's buffer, which must be at least
/// [`wire::max_encoded_len(PAYLOAD, TOPIC)`](wire::max_encoded_len). A mistake fails the
/// build, with a message that names the numbers and the fix:
///
/// ```compile_fail
/// use peerpipe_core::{Config, Endpoint, Instant};
///
/// // error: evaluation panicked: peerpipe: Endpoint FRAME is 100 bytes, but a frame of
/// // PAYLOAD = 128 and TOPIC = 32 needs 203: set FRAME to wire::max_encoded_len(PAYLOAD, TOPIC)
/// let ep = Endpoint::<128, 32, 4, 4, 100>::new(Config::default(), 1, Instant::ZERO);
/// ```
///
/// The driver's loop: feed input ([`handle_bytes`](Self::handle_bytes) or
/// [`handle_frame`](Self::handle_frame)); call [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout)'s instant has come; drain
/// [`poll_event`](Self::poll_event) (the application may send in reply); then drain
/// [`poll_transmit`](Self::poll_transmit), last, since events and sends make frames due; sleep
/// until `poll_timeout` or new input. See the crate docs for a complete loop.
#[derive(Debug, Clone)]
pub struct Endpoint<
    const PAYLOAD: usize = 128,
    const TOPIC: usize = 32,
    const RX: usize = 4,
    const TX: usize = 4,
    const FRAME: usize = 203,
> {
    decoder: Decoder<FRAME>,
    machine: Machine<PAYLOAD, TOPIC, RX, TX>,
}

#[derive(Debug, Clone)]
struct Machine<const P: usize, const T: usize, const RX: usize, const TX: usize> {
    /// As the caller gave it, for [`Endpoint::config`].
    config: Config,
    /// The same in microseconds, for the arithmetic.
    timing: Timing,
    session: u32,
    next_seq: u64,
    peer: Option<u32>,
    retired: [Option<u32>; RETIRED_SESSIONS],
    peer_state: PeerState,
    local_close: Option<CloseReason>,
    stopped: bool,
    paused: bool,
    timers: TimerTable,
    ack_due: bool,
    /// The last ACK sent said the receive queue had no room: announce room when it frees.
    advertised_full: bool,
    /// A DATA frame was refused for lack of room since the last ACK that asked the peer to
    /// retry: the next ACK sent while there is room asks for it ([`wire::Ack::retry`]).
    refused: bool,
    /// The room the peer's last ACK announced (see [`wire::Ack::room`]).
    peer_room: usize,
    heartbeat_due: bool,
    sends: SendQueue<P, T, TX>,
    recv: RecvQueue<P, T, RX>,
    stats: Stats,
}

/// What [`Machine::next_transmit`] chose to send.
#[derive(Clone, Copy)]
enum Transmit {
    Ack(u32),
    Data(usize),
    Heartbeat,
}

impl<
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
    > Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>
{
    /// Checked at compile time by [`new`](Self::new): a mistake fails the build with the
    /// numbers involved and the fix.
    const CAPACITIES_OK: () = {
        let need = wire::max_encoded_len(PAYLOAD, TOPIC);
        if FRAME < need {
            let msg = ConstMsg::<200>::new()
                .text("peerpipe: Endpoint FRAME is ")
                .num(FRAME)
                .text(" bytes, but a frame of PAYLOAD = ")
                .num(PAYLOAD)
                .text(" and TOPIC = ")
                .num(TOPIC)
                .text(" needs ")
                .num(need)
                .text(": set FRAME to wire::max_encoded_len(PAYLOAD, TOPIC)");
            panic!("{}", msg.as_str());
        }
        if TOPIC < 1 || TOPIC > wire::MAX_TOPIC_LEN {
            let msg = ConstMsg::<120>::new()
                .text("peerpipe: Endpoint TOPIC is ")
                .num(TOPIC)
                .text(", but topics are 1 to ")
                .num(wire::MAX_TOPIC_LEN)
                .text(" bytes long");
            panic!("{}", msg.as_str());
        }
        if RX < 1 || TX < 1 {
            let msg = ConstMsg::<120>::new()
                .text("peerpipe: Endpoint RX is ")
                .num(RX)
                .text(" and TX is ")
                .num(TX)
                .text(": each needs at least 1 slot");
            panic!("{}", msg.as_str());
        }
    };

    /// The buffer size [`poll_transmit`](Self::poll_transmit) needs at most: `FRAME`.
    pub const MAX_FRAME_LEN: usize = FRAME;

    /// A new endpoint with this session id, started at `now`.
    ///
    /// The session id tells the peer which incarnation of this endpoint it talks to: give each
    /// start a new one (random on a host; a boot counter or RNG on a microcontroller). It
    /// sends a heartbeat at once to announce itself, and, like the original, reports the peer
    /// gone if nothing arrives within `heartbeat_timeout` of `now`.
    pub fn new(config: Config, session: u32, now: Instant) -> Result<Self, ConfigError> {
        let () = Self::CAPACITIES_OK;
        let timing = config.timing()?;
        let mut machine = Machine {
            config,
            timing,
            session,
            next_seq: 0,
            peer: None,
            retired: [None; RETIRED_SESSIONS],
            peer_state: PeerState::NotSeen,
            local_close: None,
            stopped: false,
            paused: false,
            timers: TimerTable::default(),
            ack_due: false,
            advertised_full: false,
            refused: false,
            peer_room: 0,
            heartbeat_due: true,
            sends: SendQueue::new(),
            recv: RecvQueue::new(),
            stats: Stats::default(),
        };
        machine.arm_silence(now);
        Ok(Endpoint {
            decoder: Decoder::new(),
            machine,
        })
    }

    /// Sends `message`; returns its id at once. The outcome arrives later as
    /// [`Event::SendOutcome`]: delivered when the peer's endpoint accepted it, or failed.
    ///
    /// `timeout` bounds the whole attempt (resends included); `None` means
    /// `default_request_timeout`.
    pub fn send(
        &mut self,
        now: Instant,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        self.machine
            .enqueue(now, Outgoing::Message(message), timeout)
    }

    /// Ends the conversation: END with `data` goes to the peer, reliably and after every
    /// message sent before it. Later sends are refused. Returns the END's id. The END's
    /// timeout is `default_request_timeout`; [`notify_end_within`](Self::notify_end_within)
    /// takes one.
    pub fn notify_end(&mut self, now: Instant, data: &[u8]) -> Result<MsgId, Error> {
        self.notify_end_within(now, data, None)
    }

    /// [`notify_end`](Self::notify_end) with a timeout for the END (`None`:
    /// `default_request_timeout`), as in [`send`](Self::send).
    pub fn notify_end_within(
        &mut self,
        now: Instant,
        data: &[u8],
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let id = self
            .machine
            .enqueue(now, Outgoing::End(bounded(data)?), timeout)?;
        self.machine.local_close = Some(CloseReason::LocalEnd);
        Ok(id)
    }

    /// Aborts the conversation: like [`notify_end`](Self::notify_end), with ABORT.
    pub fn notify_abort(&mut self, now: Instant, data: &[u8]) -> Result<MsgId, Error> {
        self.notify_abort_within(now, data, None)
    }

    /// [`notify_abort`](Self::notify_abort) with a timeout for the ABORT, as in
    /// [`notify_end_within`](Self::notify_end_within).
    pub fn notify_abort_within(
        &mut self,
        now: Instant,
        data: &[u8],
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let id = self
            .machine
            .enqueue(now, Outgoing::Abort(bounded(data)?), timeout)?;
        self.machine.local_close = Some(CloseReason::LocalAbort);
        Ok(id)
    }

    /// Stops sending heartbeats and checking the peer's silence. Messages still flow.
    pub fn pause(&mut self, _now: Instant) {
        let m = &mut self.machine;
        m.paused = true;
        m.heartbeat_due = false;
        m.timers.clear();
    }

    /// Restarts heartbeats (one at once) and the silence check, whose clock starts at `now`.
    pub fn resume(&mut self, now: Instant) {
        let m = &mut self.machine;
        if !m.paused || m.stopped {
            return;
        }
        m.paused = false;
        m.heartbeat_due = true;
        m.arm_silence(now);
    }

    /// Stops the endpoint. Nothing more is sent, not even to tell the peer (send END first for
    /// that); no peer event follows. Sends in flight fail with [`FailReason::Stopped`], and
    /// those outcomes are the only events [`poll_event`](Self::poll_event) still returns:
    /// received items not yet polled are discarded (counted in [`Stats::discarded_on_stop`]).
    pub fn stop(&mut self) {
        let m = &mut self.machine;
        if m.stopped {
            return;
        }
        m.stopped = true;
        m.sends.fail_all(FailReason::Stopped);
        let dropped = m.recv.clear();
        m.stats.discarded_on_stop = m.stats.discarded_on_stop.wrapping_add(dropped as u64);
        m.timers.clear();
        m.ack_due = false;
        m.heartbeat_due = false;
    }

    /// Tells the endpoint that its transport broke: the peer is gone at once, with
    /// [`GoneReason::TransportLost`].
    pub fn transport_lost(&mut self) {
        self.machine.gone(GoneReason::TransportLost);
    }

    /// Feeds bytes from a byte-stream transport, in any chunking. Garbage, truncated, corrupt,
    /// oversize and unknown-version frames are dropped and counted in [`stats`](Self::stats).
    pub fn handle_bytes(&mut self, now: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (used, result) = self.decoder.feed(bytes);
            match result {
                Some(Ok(frame)) => self.machine.handle_frame(now, &frame),
                Some(Err(e)) => self.machine.count_wire_error(e),
                None => {}
            }
            bytes = bytes.get(used..).unwrap_or(&[]);
        }
    }

    /// Feeds one decoded frame, for transports that carry frames rather than bytes.
    pub fn handle_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        self.machine.handle_frame(now, frame);
    }

    /// Acts on every deadline due at `now`. Calling it early is a harmless no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.machine.handle_timeout(now);
    }

    /// The instant at which [`handle_timeout`](Self::handle_timeout) must next be called, or
    /// `None` when no deadline is armed. Recompute it after every other call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }

    /// Writes the next frame to transmit into `buf` as COBS bytes ending in `0x00`; returns its
    /// length, or `None` when there is nothing to send now. A `buf` of
    /// [`MAX_FRAME_LEN`](Self::MAX_FRAME_LEN) bytes always suffices; with a smaller one a frame
    /// that does not fit gives [`Error::BufferTooSmall`] and stays queued.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let m = &mut self.machine;
        let Some(choice) = m.next_transmit() else {
            return Ok(None);
        };
        let Some(frame) = m.frame(choice) else {
            return Ok(None);
        };
        let len = wire::encode(&frame, buf).map_err(|_| Error::BufferTooSmall)?;
        m.commit(choice, now);
        Ok(Some(len))
    }

    /// The next frame to transmit, for transports that carry frames rather than bytes.
    #[must_use]
    pub fn poll_transmit_frame(&mut self, now: Instant) -> Option<Frame<'_>> {
        let m = &mut self.machine;
        let choice = m.next_transmit()?;
        m.commit(choice, now);
        m.frame(choice)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<PAYLOAD, TOPIC>> {
        self.machine.poll_event()
    }

    /// The next send outcome only, leaving received items queued: for drivers that must
    /// settle their senders while the application is not reading (backpressure).
    #[must_use]
    pub fn poll_outcome(&mut self) -> Option<(MsgId, crate::Outcome)> {
        self.machine.sends.pop_outcome()
    }

    /// Where the peer stands.
    pub fn peer_state(&self) -> PeerState {
        self.machine.peer_state
    }

    /// The peer's current session id, once a frame from it arrived.
    pub fn peer_session(&self) -> Option<u32> {
        self.machine.peer
    }

    /// This endpoint's session id.
    pub fn session(&self) -> u32 {
        self.machine.session
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.machine.config
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.machine.stopped
    }

    /// Whether [`pause`](Self::pause) is in effect.
    pub fn is_paused(&self) -> bool {
        self.machine.paused
    }

    /// Sends in flight (not yet settled).
    pub fn pending_sends(&self) -> usize {
        self.machine.sends.pending()
    }

    /// Items held in the receive queue, deliverable or waiting for a gap to close.
    pub fn received_len(&self) -> usize {
        self.machine.recv.len()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.machine.stats
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize> Machine<P, T, RX, TX> {
    fn enqueue(
        &mut self,
        now: Instant,
        item: Outgoing<P, T>,
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
        let seq = self.next_seq;
        let item = match item {
            Outgoing::Message(mut m) => {
                m.set_id(MsgId(seq));
                Outgoing::Message(m)
            }
            other => other,
        };
        self.sends.push(seq, item, now + timeout)?;
        self.next_seq = seq.saturating_add(1);
        Ok(MsgId(seq))
    }

    /// Whether the conversation still accepts the peer's items and checks its silence.
    fn is_open(&self) -> bool {
        matches!(self.peer_state, PeerState::NotSeen | PeerState::Up)
    }

    fn arm_silence(&mut self, now: Instant) {
        let timeout = self.timing.heartbeat_timeout;
        let on = !timeout.is_zero() && !self.paused && !self.stopped && self.is_open();
        self.timers.set(Timer::Silence, on.then(|| now + timeout));
    }

    fn count_wire_error(&mut self, e: WireError) {
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

    fn handle_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        if self.stopped || !self.accept_session(frame.session) {
            return;
        }
        self.stats.frames_received = self.stats.frames_received.wrapping_add(1);
        self.arm_silence(now);
        match &frame.body {
            Body::Data(data) => {
                self.ack_due = true;
                self.advance_floor(data.floor);
                let offer = self.recv.offer(data, !self.is_open());
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
                    self.sends.ack(ack);
                    if ack.retry {
                        self.sends.retry(ack, &self.timing);
                    }
                    self.peer_room = usize::from(ack.room);
                } else {
                    self.stats.stale = self.stats.stale.wrapping_add(1);
                }
            }
            Body::Heartbeat { floor, room } => {
                if self.peer == Some(frame.session) {
                    self.peer_room = usize::from(*room);
                }
                self.advance_floor(*floor);
            }
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
        self.peer = Some(session);
        self.recv.new_session();
        self.peer_room = 0;
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

    fn gone(&mut self, reason: GoneReason) {
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

    fn handle_timeout(&mut self, now: Instant) {
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

    fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        match (self.timers.next(), self.sends.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_transmit(&self) -> Option<Transmit> {
        if self.stopped {
            return None;
        }
        if let (true, Some(peer)) = (self.ack_due, self.peer) {
            return Some(Transmit::Ack(peer));
        }
        if let Some(index) = self.sends.next_due(self.next_seq, self.peer_room) {
            return Some(Transmit::Data(index));
        }
        (self.heartbeat_due && !self.paused).then_some(Transmit::Heartbeat)
    }

    fn frame(&self, choice: Transmit) -> Option<Frame<'_>> {
        let floor = self.sends.floor(self.next_seq);
        let body = match choice {
            Transmit::Ack(peer) => Body::Ack(self.recv.ack(peer, self.retry_now())),
            Transmit::Data(index) => Body::Data(self.sends.data(index, floor)?),
            Transmit::Heartbeat => Body::Heartbeat {
                floor,
                room: self.recv.room(),
            },
        };
        Some(Frame {
            session: self.session,
            body,
        })
    }

    /// Whether the next ACK asks the peer to send again what it refused: something was
    /// refused for lack of room, and the next in-order item would be accepted now.
    fn retry_now(&self) -> bool {
        self.refused && self.recv.has_room()
    }

    fn commit(&mut self, choice: Transmit, now: Instant) {
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
                self.advertised_full = self.recv.room() == 0 || self.refused;
                s.acks_sent = s.acks_sent.wrapping_add(1);
            }
            Transmit::Data(index) => {
                s.data_sent = s.data_sent.wrapping_add(1);
                if self.sends.mark_sent(index, now, &self.timing) {
                    s.resends = s.resends.wrapping_add(1);
                }
            }
            Transmit::Heartbeat => {
                self.heartbeat_due = false;
                s.heartbeats_sent = s.heartbeats_sent.wrapping_add(1);
            }
        }
        // Any frame proves liveness: the next heartbeat is one interval after it.
        if !self.paused {
            self.timers
                .set(Timer::Heartbeat, Some(now + self.timing.heartbeat_interval));
        }
    }

    fn poll_event(&mut self) -> Option<Event<P, T>> {
        if let Some((id, outcome)) = self.sends.pop_outcome() {
            return Some(Event::SendOutcome { id, outcome });
        }
        if self.stopped {
            return None;
        }
        let popped = self.recv.pop()?;
        if self.advertised_full
            && matches!(popped, Popped::Item(_))
            && self.peer_state != PeerState::Gone
        {
            // Room again: tell the peer at once instead of letting it wait for a resend.
            self.ack_due = true;
            self.advertised_full = false;
        }
        Some(match popped {
            Popped::Item(Inbound::Message(m)) => Event::Message(m),
            Popped::Item(Inbound::End(data)) => Event::End(data),
            Popped::Item(Inbound::Abort(data)) => Event::Abort(data),
            Popped::Marker(Marker::Gone(reason)) => Event::Gone(reason),
            Popped::Marker(Marker::Restarted) => Event::PeerRestarted,
        })
    }
}
