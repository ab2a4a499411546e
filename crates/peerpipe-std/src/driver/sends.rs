//! Sends on their way: those waiting for a slot in the endpoint (first come, first served),
//! the threads waiting for an outcome or a reply, and the requests that gave up.
//!
//! A call's timeout bounds the whole call: a send that waits for a slot carries its deadline,
//! gets only the time that is left when a slot comes free, and a caller whose deadline
//! passes withdraws its send ([`State::give_up`]) and learns what it missed: no slot
//! ([`FailReason::NoSlot`]), no acknowledgement ([`FailReason::TimedOut`]) or no reply
//! ([`Error::NoReply`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use peerpipe_core::wire::Item as WireItem;
use peerpipe_core::{Duration, FailReason, GoneReason, Instant, MsgId, Outcome};

use super::{Act, State};
use crate::signal::Promise;
use crate::{Error, Item, Message, Status, MAX_WAITING};
use peerpipe_host::{AbandonedRequests, Outbox, Taken};

pub(crate) type Done = Promise<Result<MsgId, Error>>;
pub(crate) type ReplyTo = Promise<Result<Message, Error>>;

/// What a send carries.
pub(crate) enum Outgoing {
    Message(Message),
    End(Vec<u8>),
    Abort(Vec<u8>),
}

/// A send on its way to the endpoint.
pub(crate) struct SendReq {
    pub(crate) what: Outgoing,
    pub(crate) deadline: StdInstant,
    /// Names the send for [`State::give_up`].
    pub(crate) ticket: u64,
    /// Told the outcome of the send.
    pub(crate) done: Option<Done>,
    /// Told the reply (or why the request failed).
    pub(crate) reply: Option<ReplyTo>,
    /// The caller does not block in the call (a pipelined send): while it waits for a slot
    /// it counts against [`MAX_WAITING`] like a send nobody waits for.
    pub(crate) pipelined: bool,
}

impl SendReq {
    /// Nobody waits for this send's outcome.
    fn is_detached(&self) -> bool {
        self.done.is_none() && self.reply.is_none()
    }

    /// Whether it counts against [`MAX_WAITING`] while it waits for a slot: its caller
    /// does not block, so nothing else bounds how many such sends wait.
    fn counts(&self) -> bool {
        self.pipelined || self.is_detached()
    }

    fn fail(self, e: Error) {
        match (self.done, self.reply) {
            (Some(d), _) => drop(d.send(Err(e))),
            (None, Some(r)) => drop(r.send(Err(e))),
            (None, None) => {}
        }
    }
}

/// A thread in `request` waiting for its reply.
struct ReplyWaiter {
    promise: ReplyTo,
    ticket: u64,
    /// The peer acknowledged the request.
    delivered: bool,
}

/// What became of a send given to the endpoint.
enum Attempt {
    /// The endpoint took it, or it failed and its waiter was told.
    Taken,
    /// Every slot is taken: it waits.
    Full(SendReq),
    /// Refused at once, and nobody waits for it: the caller of `submit` is told.
    Refused(Error),
}

/// What a caller whose deadline passed missed.
pub(crate) enum GaveUp {
    /// The send was still waiting for a slot: it is withdrawn, nothing was sent.
    NoSlot,
    /// The request was sent but not acknowledged.
    NotAcknowledged,
    /// The request was acknowledged, but its reply did not come.
    NoReply(MsgId),
    /// The send is in the endpoint (its outcome comes at its deadline), or its result is
    /// already on its way to the caller.
    Pending,
}

/// The bookkeeping of sends, inside the handler's lock.
#[derive(Default)]
pub(crate) struct Sends {
    /// Sends waiting for a free slot, oldest first.
    backlog: VecDeque<SendReq>,
    /// How many of them have no caller blocked in the call (`send_no_wait`, pipelined
    /// sends): at most [`MAX_WAITING`].
    detached: usize,
    waiters: HashMap<MsgId, Done>,
    /// The data of every send in the endpoint, until its outcome is taken.
    pub(crate) outbox: Outbox,
    /// Their ids, oldest first.
    in_flight: BTreeSet<MsgId>,
    /// Those of them longer than one fragment: the I/O thread asks after them before every
    /// sleep ([`State::moving_large_message`]), and looking each in-flight send up in the
    /// endpoint instead cost a scan of its send slots per send.
    large: BTreeSet<MsgId>,
    replies: HashMap<MsgId, ReplyWaiter>,
    /// Requests that gave up, for their late replies.
    abandoned: AbandonedRequests,
    next_ticket: u64,
    pub(crate) late_replies: u64,
}

impl Sends {
    pub(crate) fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    pub(crate) fn waiting(&self) -> usize {
        self.backlog.len()
    }

    /// Whether `req_id` names a request that gave up (forgetting it: one reply each).
    fn is_late(&mut self, req_id: MsgId) -> bool {
        let late = self.abandoned.take(req_id);
        if late {
            self.late_replies += 1;
        }
        late
    }

    /// Every waiting send and reply fails with `e` (the handler stopped).
    pub(crate) fn fail_all(&mut self, acts: &mut Vec<Act>, e: impl Fn() -> Error) {
        for req in std::mem::take(&mut self.backlog) {
            req.fail(e());
        }
        self.detached = 0;
        for (_, w) in self.replies.drain() {
            acts.push(Act::Reply(w.promise, Err(e())));
        }
        self.outbox.clear();
        self.in_flight.clear();
        self.large.clear();
    }

    /// The sends in the endpoint, oldest first (the endpoint cuts messages into fragments
    /// in that order).
    pub(crate) fn in_flight(&self) -> impl Iterator<Item = MsgId> + '_ {
        self.in_flight.iter().copied()
    }

    /// The sends in the endpoint longer than one fragment.
    pub(crate) fn large_in_flight(&self) -> impl Iterator<Item = MsgId> + '_ {
        self.large.iter().copied()
    }
}

impl State {
    /// Gives a send to the endpoint, after those already waiting for a slot. A send nobody
    /// waits for, or a pipelined one, is refused with [`Error::QueueFull`] when
    /// [`MAX_WAITING`] such sends wait,
    /// and with the endpoint's error when it refuses it at once (the conversation is closed,
    /// the message invalid).
    pub(crate) fn submit(&mut self, req: SendReq, now: Instant) -> Result<(), Error> {
        if !self.sends.backlog.is_empty() {
            return self.enqueue(req);
        }
        match self.try_send(req, now) {
            Attempt::Taken => Ok(()),
            Attempt::Full(req) => self.enqueue(req),
            Attempt::Refused(e) => Err(e),
        }
    }

    fn enqueue(&mut self, req: SendReq) -> Result<(), Error> {
        if req.counts() {
            if self.sends.detached >= MAX_WAITING {
                return Err(Error::QueueFull);
            }
            self.sends.detached += 1;
        }
        self.sends.backlog.push_back(req);
        Ok(())
    }

    /// Gives a send to the endpoint with the time it has left; its data goes to the outbox
    /// (moved, not copied), where the endpoint reads each fragment as it transmits it.
    fn try_send(&mut self, req: SendReq, now: Instant) -> Attempt {
        let left = Duration::from(req.deadline.saturating_duration_since(StdInstant::now()));
        let r = if left.is_zero() {
            Err(Error::Failed(FailReason::NoSlot))
        } else {
            let (item, len) = match &req.what {
                Outgoing::Message(msg) => (msg.item(), msg.data().len()),
                Outgoing::End(data) => (WireItem::End, data.len()),
                Outgoing::Abort(data) => (WireItem::Abort, data.len()),
            };
            u64::try_from(len)
                .map_err(|_| peerpipe_core::Error::PayloadTooLarge {
                    len,
                    max: crate::MAX_PAYLOAD,
                })
                .and_then(|len| self.ep.send_from(now, item, len, Some(left)))
                .map_err(Error::from)
        };
        let id = match r.map_err(|e| self.with_cause(e)) {
            Ok(id) => id,
            Err(Error::Invalid(peerpipe_core::Error::SendQueueFull)) => return Attempt::Full(req),
            Err(e) if req.is_detached() => return Attempt::Refused(e),
            Err(e) => {
                req.fail(e);
                return Attempt::Taken;
            }
        };
        let SendReq {
            what,
            ticket,
            done,
            reply,
            ..
        } = req;
        let data = match what {
            Outgoing::Message(msg) => msg.into_data(),
            Outgoing::End(data) | Outgoing::Abort(data) => data,
        };
        if data.len() > crate::FRAGMENT {
            self.sends.large.insert(id);
        }
        self.sends.outbox.insert(id, Bytes::from(data));
        self.sends.in_flight.insert(id);
        if let Some(d) = done {
            self.sends.waiters.insert(id, d);
        }
        if let Some(promise) = reply {
            let waiter = ReplyWaiter {
                promise,
                ticket,
                delivered: false,
            };
            self.sends.replies.insert(id, waiter);
        }
        Attempt::Taken
    }

    /// Moves waiting sends into the endpoint while it has free slots, in order. A send
    /// nobody waits for that the endpoint refuses (the conversation closed meanwhile) is
    /// dropped.
    pub(crate) fn feed_backlog(&mut self, now: Instant) {
        while let Some(req) = self.sends.backlog.pop_front() {
            let counted = req.counts();
            if let Attempt::Full(req) = self.try_send(req, now) {
                self.sends.backlog.push_front(req);
                return;
            }
            if counted {
                self.sends.detached -= 1;
            }
        }
    }

    /// The caller of the send `ticket` stops waiting (its deadline passed or its abort
    /// signal fired): what did it miss?
    pub(crate) fn give_up(&mut self, ticket: u64) -> GaveUp {
        let sends = &mut self.sends;
        if let Some(i) = sends.backlog.iter().position(|r| r.ticket == ticket) {
            if sends.backlog.remove(i).is_some_and(|r| r.counts()) {
                sends.detached -= 1;
            }
            return GaveUp::NoSlot;
        }
        let Some((&id, w)) = sends.replies.iter().find(|(_, w)| w.ticket == ticket) else {
            return GaveUp::Pending;
        };
        let delivered = w.delivered;
        sends.replies.remove(&id);
        sends.abandoned.insert(id);
        if delivered {
            GaveUp::NoReply(id)
        } else {
            GaveUp::NotAcknowledged
        }
    }

    /// Settles a send: its waiter learns the outcome; a request that failed learns it too
    /// (a delivered request waits on for its reply).
    fn outcome(&mut self, id: MsgId, outcome: Outcome, acts: &mut Vec<Act>) {
        self.sends.outbox.remove(id);
        self.sends.in_flight.remove(&id);
        self.sends.large.remove(&id);
        let result = match outcome {
            Outcome::Delivered => Ok(id),
            Outcome::Failed(r) => Err(self.with_cause(Error::from(r))),
        };
        let sends = &mut self.sends;
        if let Some(d) = sends.waiters.remove(&id) {
            acts.push(Act::Done(d, result));
        } else if let Err(e) = result {
            if let Some(w) = sends.replies.remove(&id) {
                acts.push(Act::Reply(w.promise, Err(e)));
            }
        } else if let Some(w) = sends.replies.get_mut(&id) {
            w.delivered = true;
        }
    }

    pub(crate) fn settle(&mut self, acts: &mut Vec<Act>) {
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            self.outcome(id, outcome, acts);
        }
    }

    /// The peer will send nothing more (its replies came before its END, ABORT or GONE):
    /// requests still waiting for a reply fail now rather than at their timeout.
    fn fail_replies(&mut self, reason: FailReason, acts: &mut Vec<Act>) {
        let e = self.with_cause(Error::Failed(reason));
        for (_, w) in self.sends.replies.drain() {
            acts.push(Act::Reply(w.promise, Err(e.clone())));
        }
    }

    /// A call that fails because the peer is gone after the transport broke (or never
    /// opened) fails with that I/O error ([`Error::TransportLost`]), not only a later status.
    fn with_cause(&self, e: Error) -> Error {
        e.or_transport_lost(self.gone_cause.as_ref())
    }

    /// Turns one endpoint event into what to do about it: a reply someone waits for goes to
    /// them, a late reply is dropped, items go to the application. Returns the data bytes of
    /// the item it made, if any.
    pub(crate) fn act(&mut self, event: Taken, acts: &mut Vec<Act>) -> Option<usize> {
        let item = match event {
            Taken::Outcome(id, outcome) => {
                self.outcome(id, outcome, acts);
                return None;
            }
            Taken::Message(m) => return self.message(m, acts),
            Taken::End(data) => self.peer_closed(Status::End(data), acts),
            Taken::Abort(data) => self.peer_closed(Status::Abort(data), acts),
            Taken::Gone(reason) => {
                self.fail_replies(FailReason::PeerGone, acts);
                let cause = if reason == GoneReason::TransportLost {
                    self.gone_cause.clone()
                } else {
                    None
                };
                Item::Status(Status::Gone { reason, cause })
            }
            Taken::Restarted => Item::Status(Status::PeerRestarted),
        };
        let bytes = item_bytes(&item);
        acts.push(Act::Item(item));
        Some(bytes)
    }

    /// A whole message: a reply goes to its requester (or is dropped, late), anything else
    /// to the application.
    fn message(&mut self, m: Message, acts: &mut Vec<Act>) -> Option<usize> {
        if let Some(req_id) = m.req_id() {
            if let Some(w) = self.sends.replies.remove(&req_id) {
                acts.push(Act::Reply(w.promise, Ok(m)));
                return None;
            }
            if self.sends.is_late(req_id) {
                return None;
            }
        }
        let item = Item::Message(m);
        let bytes = item_bytes(&item);
        acts.push(Act::Item(item));
        Some(bytes)
    }

    /// The peer's END or ABORT: requests still waiting for a reply fail now.
    fn peer_closed(&mut self, status: Status, acts: &mut Vec<Act>) -> Item {
        let reason = match status {
            Status::Abort(_) => FailReason::PeerAborted,
            _ => FailReason::PeerEnded,
        };
        self.fail_replies(reason, acts);
        Item::Status(status)
    }
}

/// The data bytes an item holds (what [`QUEUE_BYTES`](crate::QUEUE_BYTES) counts).
pub(crate) fn item_bytes(item: &Item) -> usize {
    match item {
        Item::Message(m) => m.data().len() + m.topic().len(),
        Item::Status(Status::End(data) | Status::Abort(data)) => data.len(),
        Item::Status(_) => 0,
    }
}
