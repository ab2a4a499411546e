//! Events that lend what they carry from the endpoint instead of copying it
//! ([`Endpoint::poll_event_ref`](crate::Endpoint::poll_event_ref)).

use heapless::String;

use crate::error::GoneReason;
use crate::event::{Event, Outcome};
use crate::message::{bounded, Message, MessageKind, MsgId};
use crate::part::{CutReason, Part, PartKind};

/// An event whose topic and data are borrowed from the endpoint's receive slot: what
/// [`Event`] carries, without the copy. It lives until the endpoint is used again; take what
/// is needed from it first (or make it an [`Event`] with [`to_event`](Self::to_event)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EventRef<'a> {
    /// A request or reply that came in one frame: [`Event::Message`].
    Message(MessageRef<'a>),
    /// The peer ended the conversation with this data: [`Event::End`].
    End(&'a [u8]),
    /// The peer aborted the conversation with this data: [`Event::Abort`].
    Abort(&'a [u8]),
    /// A piece of a message too long for one frame: [`Event::Part`].
    Part(PartRef<'a>),
    /// The message that was arriving in parts will not be completed: [`Event::Cut`].
    Cut {
        /// The message's id.
        id: MsgId,
        /// Why.
        reason: CutReason,
    },
    /// The peer is gone: [`Event::Gone`].
    Gone(GoneReason),
    /// The peer started a new session: [`Event::PeerRestarted`].
    PeerRestarted,
    /// A send was settled: [`Event::SendOutcome`].
    SendOutcome {
        /// The id [`Endpoint::send`](crate::Endpoint::send) returned.
        id: MsgId,
        /// Delivered, or why not.
        outcome: Outcome,
    },
}

/// A received request or reply, borrowed: what [`Message`] tells of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MessageRef<'a> {
    pub(crate) kind: MessageKind,
    pub(crate) id: MsgId,
    pub(crate) topic: &'a str,
    pub(crate) data: &'a [u8],
}

impl<'a> MessageRef<'a> {
    /// Request, or reply to which request.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether it is a request.
    pub fn is_request(&self) -> bool {
        self.kind == MessageKind::Request
    }

    /// The request a reply answers; `None` for a request.
    pub fn req_id(&self) -> Option<MsgId> {
        match self.kind {
            MessageKind::Request => None,
            MessageKind::Reply { req_id } => Some(req_id),
        }
    }

    /// The id the peer gave it.
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// Its topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// Its data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// A piece of a message too long for one frame, borrowed: what [`Part`] tells of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PartRef<'a> {
    pub(crate) id: MsgId,
    pub(crate) kind: PartKind,
    pub(crate) topic: &'a str,
    pub(crate) total: u64,
    pub(crate) offset: u64,
    pub(crate) data: &'a [u8],
}

impl<'a> PartRef<'a> {
    /// The id of the message it belongs to.
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// What the whole message is.
    pub fn kind(&self) -> PartKind {
        self.kind
    }

    /// The message's topic (empty for END and ABORT data).
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// The whole message's length in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Where this part's bytes start in the message.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// This part's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether it is the message's first part.
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Whether it is the message's last part.
    pub fn is_last(&self) -> bool {
        self.offset.saturating_add(self.data.len() as u64) >= self.total
    }
}

impl<'a, const P: usize, const T: usize> From<&'a Message<P, T>> for MessageRef<'a> {
    fn from(m: &'a Message<P, T>) -> Self {
        MessageRef {
            kind: m.kind(),
            id: m.id(),
            topic: m.topic(),
            data: m.data(),
        }
    }
}

impl<'a, const P: usize, const T: usize> From<&'a Part<P, T>> for PartRef<'a> {
    fn from(p: &'a Part<P, T>) -> Self {
        PartRef {
            id: p.id,
            kind: p.kind,
            topic: &p.topic,
            total: p.total,
            offset: p.offset,
            data: &p.data,
        }
    }
}

impl EventRef<'_> {
    /// The same event with its topic and data copied: what
    /// [`Endpoint::poll_event`](crate::Endpoint::poll_event) returns. An event lent by an
    /// endpoint fits its capacities `PAYLOAD` and `TOPIC`; a topic or data that does not fit
    /// comes out empty.
    pub fn to_event<const PAYLOAD: usize, const TOPIC: usize>(&self) -> Event<PAYLOAD, TOPIC> {
        match *self {
            EventRef::Message(m) => Event::Message(Message::received(
                m.kind,
                m.id,
                String::try_from(m.topic).unwrap_or_default(),
                bounded(m.data).unwrap_or_default(),
            )),
            EventRef::End(data) => Event::End(bounded(data).unwrap_or_default()),
            EventRef::Abort(data) => Event::Abort(bounded(data).unwrap_or_default()),
            EventRef::Part(p) => Event::Part(Part {
                id: p.id,
                kind: p.kind,
                topic: String::try_from(p.topic).unwrap_or_default(),
                total: p.total,
                offset: p.offset,
                data: bounded(p.data).unwrap_or_default(),
            }),
            EventRef::Cut { id, reason } => Event::Cut { id, reason },
            EventRef::Gone(reason) => Event::Gone(reason),
            EventRef::PeerRestarted => Event::PeerRestarted,
            EventRef::SendOutcome { id, outcome } => Event::SendOutcome { id, outcome },
        }
    }
}
