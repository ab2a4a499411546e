//! What a frame says: the checked, borrowed view that parsing yields and encoding takes.
//!
//! A topic is a `&str` (`T = str`, the default) in every frame a user sees. The endpoint
//! reads the frames it receives with their topics as the checked bytes (`T = [u8]`): it only
//! copies them into its receive slot, and seeing them as a `str` would link the general
//! UTF-8 validator for bytes already checked to be `[A-Za-z0-9_]` (about 500 B of
//! Cortex-M0 code).

/// One frame: the sender's session and what it says.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame<'a, T: ?Sized = str> {
    /// The session id of the endpoint that sent the frame.
    pub session: u32,
    /// The frame's content.
    pub body: Body<'a, T>,
}

/// What a frame says.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Body<'a, T: ?Sized = str> {
    /// A message, END or ABORT, or one fragment of one, to be acknowledged.
    Data(Data<'a, T>),
    /// What the sender of this frame has accepted of the receiver's DATA frames.
    Ack(Ack),
    /// A sign of life, carrying the sender's floor, receive room and capabilities.
    Heartbeat(Heartbeat),
}

/// A DATA frame: one sequenced item, a whole message or one fragment of one.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Data<'a, T: ?Sized = str> {
    /// The fragment's sequence number in the sender's session: every fragment takes one,
    /// and the fragments of one message take consecutive ones.
    pub seq: u64,
    /// Every sequence number below this is settled at the sender: acknowledged or given up.
    pub floor: u64,
    /// The message's id in the sender's session (replies name their request by it).
    pub id: u64,
    /// What the message is. On a continuation fragment the topic is empty (only the first
    /// fragment carries it).
    pub item: Item<'a, T>,
    /// Which part of the message the payload is.
    pub frag: Frag,
    /// The payload (END and ABORT data included), or this fragment's share of it.
    pub payload: &'a [u8],
}

/// Which part of a message a DATA frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Frag {
    /// The whole message.
    Whole,
    /// The first fragment of a message of `total` bytes (more than this payload).
    First {
        /// The message's length in bytes.
        total: u64,
    },
    /// A later fragment, whose payload starts at byte `offset` (above zero) of the message.
    Next {
        /// Where the payload starts in the message.
        offset: u64,
        /// Whether it is the message's last fragment.
        last: bool,
    },
}

/// The kind of a DATA frame's item.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Item<'a, T: ?Sized = str> {
    /// A request on a topic.
    Request {
        /// The topic (empty on a continuation fragment).
        topic: &'a T,
    },
    /// A reply on a topic.
    Reply {
        /// The topic (empty on a continuation fragment).
        topic: &'a T,
        /// The id of the request it answers (zero on a continuation fragment).
        req_id: u64,
    },
    /// The sender ends the conversation.
    End,
    /// The sender aborts the conversation.
    Abort,
}

// By hand: derived, they would ask `T: Copy`, which `str` is not (the fields are references).
impl<T: ?Sized> Clone for Frame<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Frame<'_, T> {}
impl<T: ?Sized> Clone for Body<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Body<'_, T> {}
impl<T: ?Sized> Clone for Data<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Data<'_, T> {}
impl<T: ?Sized> Clone for Item<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Item<'_, T> {}

impl<'a> Frame<'a> {
    /// The same frame with its topic as bytes, as the endpoint reads what it receives.
    pub(crate) fn topic_bytes(&self) -> Frame<'a, [u8]> {
        let body = match self.body {
            Body::Data(d) => Body::Data(Data {
                seq: d.seq,
                floor: d.floor,
                id: d.id,
                item: match d.item {
                    Item::Request { topic } => Item::Request {
                        topic: topic.as_bytes(),
                    },
                    Item::Reply { topic, req_id } => Item::Reply {
                        topic: topic.as_bytes(),
                        req_id,
                    },
                    Item::End => Item::End,
                    Item::Abort => Item::Abort,
                },
                frag: d.frag,
                payload: d.payload,
            }),
            Body::Ack(a) => Body::Ack(a),
            Body::Heartbeat(h) => Body::Heartbeat(h),
        };
        Frame {
            session: self.session,
            body,
        }
    }
}

/// An ACK frame: the receiver's acceptance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack {
    /// The session whose DATA frames are acknowledged (the ACK's addressee).
    pub to_session: u32,
    /// Every sequence number below this is accepted (or was skipped by the sender's floor).
    pub next: u64,
    /// Bit `i` set: sequence number `next + 1 + i` is accepted too.
    pub bitmap: u32,
    /// How many more fragments beyond the next in-order one the receiver can take now (its
    /// free receive slots less the one kept for the next in-order fragment). The sender
    /// keeps at most `room + 1` fragments unacknowledged on the wire.
    pub room: u32,
    /// How many payload bytes beyond the next in-order fragment the receiver can take now:
    /// the sender keeps at most this many bytes, plus one fragment, unacknowledged.
    pub window: u32,
    /// The receiver refused a DATA frame from the addressee for lack of room since its last
    /// ACK, and has room again now: everything transmitted and not acknowledged is to be
    /// sent again at once, without waiting for a resend timer.
    pub retry: bool,
}

impl Ack {
    /// Whether this ACK covers sequence number `seq`.
    // Out of line: the endpoint asks it for every fragment in flight at two sites.
    #[inline(never)]
    pub fn covers(&self, seq: u64) -> bool {
        if seq < self.next {
            return true;
        }
        match seq.checked_sub(self.next).and_then(|d| d.checked_sub(1)) {
            Some(bit) if bit < 32 => self.bitmap & (1 << bit) != 0,
            _ => false,
        }
    }
}

/// A HEARTBEAT frame: a sign of life with the sender's floor, receive room and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Heartbeat {
    /// Every sequence number below this is settled at the sender.
    pub floor: u64,
    /// The sender's receive room, as in [`Ack::room`].
    pub room: u32,
    /// The sender's receive window, as in [`Ack::window`].
    pub window: u32,
    /// What the sender can receive.
    pub caps: Caps,
    /// The sender does not know the receiver's capabilities: answer with a heartbeat at once.
    pub ask: bool,
}

/// What an endpoint can receive, announced in every heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Caps {
    /// The most payload bytes one DATA frame may carry to it (its receive slots).
    pub max_payload: u32,
    /// The longest topic it accepts (its decoder takes any frame within these two).
    pub max_topic: u32,
    /// The longest message (payload bytes) it accepts; zero means no limit.
    pub max_message: u64,
}
