//! The endpoint state machine: commands in, frames and events out, time always a parameter.

use crate::config::{Config, ConfigError};
use crate::const_msg::ConstMsg;
use crate::error::{CloseReason, Error, FailReason, GoneReason};
use crate::event::{Event, PeerState};
use crate::event_ref::EventRef;
use crate::machine::{Machine, Transmit, RETIRED_SESSIONS};
use crate::message::{validate_topic, Message, MessageKind, MsgId};
use crate::part::Current;
use crate::recv::RecvQueue;
use crate::send::{NoSource, Payload, PeerRoom, SendQueue, Source};
use crate::stats::Stats;
use crate::time::Instant;
use crate::timer::TimerTable;
use crate::wire::{self, Caps, Decoder, Frame, Item};

/// One end of a peerpipe conversation: a sans-IO state machine.
///
/// Capacities are const generics with defaults that fit a Cortex-M0 with 16 KiB of RAM:
/// `PAYLOAD` bytes per message (128), `TOPIC` bytes per topic (32, at most 255), `RX` items in
/// the receive queue (4), `TX` sends in flight or waiting for their outcome to be polled (4),
/// `FRAME`, the decoder's buffer, which must be at least
/// [`wire::max_encoded_len(PAYLOAD, TOPIC)`](wire::max_encoded_len), and `INLINE`, the
/// bytes each send slot keeps for the data of an inline message ([`send`](Self::send),
/// [`notify_end`](Self::notify_end); `PAYLOAD` unless given). A message from
/// [`send_from`](Self::send_from) takes none of them: a driver that sends only those sets
/// `INLINE` to 0 and its send slots cost a few dozen bytes each. A mistake fails the build,
/// with a message that names the numbers and the fix:
///
/// ```compile_fail
/// use peerpipe_core::{Config, Endpoint, Instant};
///
/// // error: evaluation panicked: peerpipe: Endpoint FRAME is 100 bytes, but a frame of
/// // PAYLOAD = 128 and TOPIC = 32 needs 223: set FRAME to wire::max_encoded_len(PAYLOAD, TOPIC)
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
    const FRAME: usize = 223,
    const INLINE: usize = PAYLOAD,
> {
    decoder: Decoder<FRAME>,
    machine: Machine<PAYLOAD, TOPIC, RX, TX, INLINE>,
}

impl<
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const INLINE: usize,
    > Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME, INLINE>
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
            timing,
            session,
            caps: Caps {
                max_payload: u32::try_from(PAYLOAD).unwrap_or(u32::MAX),
                max_topic: u32::try_from(TOPIC).unwrap_or(u32::MAX),
                max_message: config.max_message,
            },
            peer: None,
            peer_caps: None,
            retired: [None; RETIRED_SESSIONS],
            peer_state: PeerState::NotSeen,
            local_close: None,
            stopped: false,
            paused: false,
            timers: TimerTable::default(),
            ack_due: false,
            advertised_full: false,
            refused: false,
            peer_room: PeerRoom::default(),
            spare: (0, 0),
            heartbeat_due: true,
            caps_due: false,
            // Constants: built where the endpoint is, not in temporaries of their size
            // (nearly 2 KiB on the firmware profile) that are then copied into it.
            sends: const { SendQueue::new() },
            recv: const { RecvQueue::new() },
            current: Current::IDLE,
            stats: Stats::default(),
        };
        machine.sends.rto = timing.resend_interval;
        machine.arm_silence(now);
        Ok(Endpoint {
            decoder: Decoder::new(),
            machine,
        })
    }

    /// Sends `message`; returns its id at once. The outcome arrives later as
    /// [`Event::SendOutcome`]: delivered when the peer's endpoint accepted the whole message,
    /// or failed.
    ///
    /// `timeout` bounds the whole attempt (resends included); `None` means
    /// `default_request_timeout`. No DATA goes out before the peer's capabilities are known
    /// (from its first heartbeat); a message longer than the peer accepts then fails with
    /// [`FailReason::TooLarge`], and one longer than the peer's frames goes in fragments.
    pub fn send(
        &mut self,
        now: Instant,
        message: Message<PAYLOAD, TOPIC>,
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let (kind, topic, data) = message.into_parts();
        let item = match kind {
            MessageKind::Request => Item::Request {
                topic: topic.as_str(),
            },
            MessageKind::Reply { req_id } => Item::Reply {
                topic: topic.as_str(),
                req_id: req_id.0,
            },
        };
        self.enqueue(now, (item, None), Payload::Inline(&data), timeout)
    }

    /// Sends `item` with the bytes of `data`, copied straight into the send slot: as
    /// [`send`](Self::send) without building a [`Message`] first (which costs its size, a
    /// few hundred bytes, in stack on a microcontroller), for example a reply to a received
    /// message `m`: `Item::Reply { topic: m.topic(), req_id: m.id().0 }`. `item` says what
    /// it is, as in [`send_from`](Self::send_from) (END or ABORT data close the
    /// conversation as [`notify_end`](Self::notify_end) does); `data` may be as long as a
    /// send slot holds (`INLINE` bytes), otherwise [`Error::PayloadTooLarge`].
    pub fn send_bytes(
        &mut self,
        now: Instant,
        item: Item<'_>,
        data: &[u8],
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let head = Self::head(item)?;
        self.enqueue(now, head, Payload::Inline(data), timeout)
    }

    /// Sends a message of `len` bytes (any length) whose bytes the endpoint reads from the
    /// [`Source`] given to [`poll_transmit_from`](Self::poll_transmit_from), fragment by
    /// fragment, as it transmits them: the message need not be in RAM as a whole. `item`
    /// says what it is: a request or reply (its topic is checked as in
    /// [`Message::request`]), or END or ABORT data (which close the conversation as
    /// [`notify_end`](Self::notify_end) does). Otherwise as [`send`](Self::send).
    ///
    /// The source must supply the same bytes each time it is asked (resends), until the
    /// send's outcome has been polled.
    pub fn send_from(
        &mut self,
        now: Instant,
        item: Item<'_>,
        len: u64,
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let head = Self::head(item)?;
        self.enqueue(now, head, Payload::Sourced(len), timeout)
    }

    /// `item`, its topic checked as in [`Message::request`] (at most `TOPIC` bytes, so that
    /// it fits a send slot), and the close it makes (END and ABORT).
    fn head(item: Item<'_>) -> Result<(Item<'_>, Option<CloseReason>), Error> {
        let close = match item {
            Item::Request { topic } | Item::Reply { topic, .. } => {
                validate_topic(topic, TOPIC)?;
                None
            }
            Item::End => Some(CloseReason::LocalEnd),
            Item::Abort => Some(CloseReason::LocalAbort),
        };
        Ok((item, close))
    }

    /// Queues a message; END and ABORT (`close`) then close the conversation.
    fn enqueue(
        &mut self,
        now: Instant,
        (item, close): (Item<'_>, Option<CloseReason>),
        payload: Payload<'_>,
        timeout: Option<crate::Duration>,
    ) -> Result<MsgId, Error> {
        let id = self.machine.enqueue(now, item, payload, timeout)?;
        if close.is_some() {
            self.machine.local_close = close;
        }
        Ok(id)
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
        self.send_bytes(now, Item::End, data, timeout)
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
        self.send_bytes(now, Item::Abort, data, timeout)
    }

    /// Stops sending heartbeats and checking the peer's silence. Messages still flow, and so
    /// do the heartbeats of the capabilities exchange (a peer sends no DATA before it has
    /// them): one that answers the peer's `ask`, and one that asks for the peer's.
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
        m.stats.discarded_on_stop = m
            .stats
            .discarded_on_stop
            .wrapping_add(dropped as crate::Counter);
        m.timers.clear();
        m.ack_due = false;
        m.heartbeat_due = false;
        m.caps_due = false;
        m.current.active = false;
    }

    /// Tells the endpoint that its transport broke: the peer is gone at once, with
    /// [`GoneReason::TransportLost`].
    pub fn transport_lost(&mut self) {
        self.machine.gone(GoneReason::TransportLost);
    }

    /// Tells the endpoint that its transport was replaced by a new connection to the same
    /// peer (a driver that reconnects after a break, instead of calling
    /// [`transport_lost`](Self::transport_lost)): the session goes on. The decoder drops
    /// the part of a frame the old connection left; every fragment transmitted and not yet
    /// acknowledged becomes due at once (it may have been lost with the old connection;
    /// a duplicate is acknowledged again and not delivered twice), within the peer's window;
    /// such a resend replaces a transmission lost with the old connection and does not
    /// count against `max_resends` (it does count in `stats().resends`); an ACK (when a peer session is known)
    /// and a heartbeat become due, the heartbeat even while paused, so that the first frames
    /// on the new connection tell the peer this session, what arrived, and the floor.
    /// Nothing is reported: the driver tells its application itself. After the peer is
    /// gone, ended or aborted, or once stopped, only the decoder is reset.
    pub fn transport_restored(&mut self, _now: Instant) {
        self.decoder.reset();
        let m = &mut self.machine;
        if m.stopped || !matches!(m.peer_state, PeerState::NotSeen | PeerState::Up) {
            return;
        }
        m.sends.resend_all_now(&m.timing);
        m.ack_due = m.peer.is_some();
        m.heartbeat_due = true;
        // A heartbeat that goes even while paused (the capabilities exchange's rule).
        m.caps_due = true;
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
    ///
    /// For an endpoint that sends only inline messages; with messages from
    /// [`send_from`](Self::send_from) use [`poll_transmit_from`](Self::poll_transmit_from)
    /// (here their bytes cannot be read and they fail with [`FailReason::Unreadable`]).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        self.poll_transmit_from(now, buf, &mut NoSource)
    }

    /// [`poll_transmit`](Self::poll_transmit), reading the bytes of messages sent with
    /// [`send_from`](Self::send_from) from `source`.
    pub fn poll_transmit_from<S: Source + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        source: &mut S,
    ) -> Result<Option<usize>, Error> {
        let m = &mut self.machine;
        loop {
            let Some(choice) = m.next_transmit() else {
                return Ok(None);
            };
            let encoded = match m.frame(choice, Some(&mut *source)) {
                Ok(frame) => wire::encode(&frame, buf).map_err(|_| Error::BufferTooSmall),
                Err(unreadable) => {
                    m.sends.fail_unreadable(unreadable);
                    continue;
                }
            };
            let len = encoded?;
            m.commit(choice, now);
            return Ok(Some(len));
        }
    }

    /// The next frame to transmit, for transports that carry frames rather than bytes.
    /// Messages from [`send_from`](Self::send_from) fail here with
    /// [`FailReason::Unreadable`]: use [`poll_transmit_frame_from`](Self::poll_transmit_frame_from).
    #[must_use]
    pub fn poll_transmit_frame(&mut self, now: Instant) -> Option<Frame<'_>> {
        let choice = self.next_readable(now, &mut NoSource)?;
        self.machine.frame(choice, None::<&mut NoSource>).ok()
    }

    /// [`poll_transmit_frame`](Self::poll_transmit_frame), reading the bytes of messages
    /// sent with [`send_from`](Self::send_from) from `source`.
    #[must_use]
    pub fn poll_transmit_frame_from<'a, S: Source + ?Sized>(
        &'a mut self,
        now: Instant,
        source: &'a mut S,
    ) -> Option<Frame<'a>> {
        let choice = self.next_readable(now, source)?;
        self.machine.frame(choice, Some(source)).ok()
    }

    /// The next frame to transmit whose bytes can be had, committed as sent at `now`;
    /// messages whose source cannot supply them fail on the way.
    fn next_readable<S: Source + ?Sized>(
        &mut self,
        now: Instant,
        source: &mut S,
    ) -> Option<Transmit> {
        let m = &mut self.machine;
        let choice = loop {
            let choice = m.next_transmit()?;
            match m.frame(choice, Some(&mut *source)) {
                Ok(_) => break choice,
                Err(unreadable) => m.sends.fail_unreadable(unreadable),
            }
        };
        m.commit(choice, now);
        Some(choice)
    }

    /// The next event for the application.
    #[must_use]
    // Out of line: inlined into the application's loop, its temporaries (a few hundred bytes
    // on the firmware profile) sit in that loop's frame for every other call it makes too.
    #[inline(never)]
    pub fn poll_event(&mut self) -> Option<Event<PAYLOAD, TOPIC>> {
        self.machine.poll_event()
    }

    /// [`poll_event`](Self::poll_event) without the copy: the event's topic and data are lent
    /// from the receive slot, until the endpoint is used again. For drivers that move the data
    /// elsewhere anyway (a heap buffer, a hash, flash) and firmware short of RAM (an [`Event`]
    /// holds a whole slot's worth).
    ///
    /// ```
    /// # use peerpipe_core::{Config, Endpoint, EventRef, Instant};
    /// # let mut ep: Endpoint = Endpoint::new(Config::default(), 1, Instant::ZERO).unwrap();
    /// let mut sum = 0u32;
    /// while let Some(event) = ep.poll_event_ref() {
    ///     if let EventRef::Message(m) = event {
    ///         sum = m.data().iter().fold(sum, |s, &b| s.wrapping_add(u32::from(b)));
    ///     }
    /// }
    /// ```
    pub fn poll_event_ref(&mut self) -> Option<EventRef<'_>> {
        self.machine.poll_event_ref()
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

    /// What the peer announced it receives (from its last heartbeat): `None` until its
    /// first heartbeat arrives, and again after it restarts. No DATA goes out without it.
    pub fn peer_caps(&self) -> Option<Caps> {
        self.machine.peer_caps
    }

    /// This endpoint's session id.
    pub fn session(&self) -> u32 {
        self.machine.session
    }

    /// The configuration, as the endpoint counts it: the one given to [`new`](Self::new), its
    /// times in whole microseconds (see [`Config`]).
    pub fn config(&self) -> Config {
        let m = &self.machine;
        m.timing.config(m.caps.max_message)
    }

    /// Whether this endpoint closed the conversation ([`notify_end`](Self::notify_end) or
    /// [`notify_abort`](Self::notify_abort), or END or ABORT data from
    /// [`send_from`](Self::send_from)): `Closed(LocalEnd)` or `Closed(LocalAbort)`.
    pub fn local_close(&self) -> Option<CloseReason> {
        self.machine.local_close
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

    /// How many bytes of the message `id` the peer has acknowledged, and its length, while
    /// its outcome has not been polled: for a progress bar.
    pub fn progress(&self, id: MsgId) -> Option<(u64, u64)> {
        self.machine.sends.progress(id)
    }

    /// Items held in the receive queue, deliverable or waiting for a gap to close.
    pub fn received_len(&self) -> usize {
        self.machine.recv.len()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.machine.stats
    }

    /// The smoothed round-trip time (RFC 6298's SRTT) measured from the acknowledgements of
    /// fragments transmitted once; `None` before the first.
    pub fn rtt(&self) -> Option<crate::Duration> {
        self.machine.sends.rtt.srtt()
    }

    /// How long after its transmission an unacknowledged fragment is resent now:
    /// `srtt + max(1 ms, 4·rttvar)` from the RTT estimate, at most 60 s, and never below
    /// [`Config::resend_interval`] (which is all there is before the first RTT sample);
    /// `None` when `resend_interval` is (nothing is resent).
    pub fn resend_timeout(&self) -> Option<crate::Duration> {
        self.machine.sends.rto
    }
}

mod input;
#[cfg(test)]
mod reconnect_tests;
