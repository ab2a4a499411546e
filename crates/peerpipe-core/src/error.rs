//! Errors returned to the API user, and the reasons a send or a conversation ends.

/// Why a command was refused. Nothing was sent and no state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The topic is empty or holds a character outside `[A-Za-z0-9_]`.
    InvalidTopic,
    /// The topic is one the protocol reserves (`_END_`, `_ABORT_`, `_HEARTBEAT_`,
    /// `_PEER_GONE_`, `_STREAM_PROGRESS_`).
    ReservedTopic,
    /// The topic is longer than the endpoint's topic capacity.
    TopicTooLong {
        /// The topic's length, in bytes.
        len: usize,
        /// The longest topic allowed, in bytes.
        max: usize,
    },
    /// The payload is larger than the endpoint's payload capacity.
    PayloadTooLarge {
        /// The payload's length, in bytes.
        len: usize,
        /// The largest payload allowed, in bytes.
        max: usize,
    },
    /// Every send slot holds a message still in flight or an outcome not yet polled.
    SendQueueFull,
    /// A timeout of zero was given.
    ZeroTimeout,
    /// The endpoint was stopped locally.
    Stopped,
    /// The conversation is over; the reason says who ended it.
    Closed(CloseReason),
    /// The caller's buffer is smaller than the frame to be written.
    BufferTooSmall,
    /// A payload could not be serialized with postcard.
    Serialize,
    /// A payload could not be deserialized with postcard into the requested type.
    Deserialize,
    /// A reply was given where a request is needed (a driver's `request` call).
    NotARequest,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::InvalidTopic => f.write_str("topic must be non-empty and only [A-Za-z0-9_]"),
            Error::ReservedTopic => f.write_str("topic is reserved for the protocol"),
            Error::TopicTooLong { len, max } => {
                write!(f, "topic of {len} bytes is longer than the {max} allowed")
            }
            Error::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes is larger than the {max} allowed")
            }
            Error::SendQueueFull => f.write_str("all send slots are in use"),
            Error::ZeroTimeout => f.write_str("timeout must be greater than zero"),
            Error::Stopped => f.write_str("endpoint was stopped"),
            Error::Closed(reason) => write!(f, "conversation closed: {reason}"),
            Error::BufferTooSmall => f.write_str("buffer too small for the frame"),
            Error::Serialize => f.write_str("payload serialization failed"),
            Error::Deserialize => f.write_str("payload deserialization failed"),
            Error::NotARequest => f.write_str("a reply was given where a request is needed"),
        }
    }
}

impl core::error::Error for Error {}

/// Why the conversation is closed for new sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CloseReason {
    /// This endpoint sent END.
    LocalEnd,
    /// This endpoint sent ABORT.
    LocalAbort,
    /// The peer sent END.
    PeerEnded,
    /// The peer sent ABORT.
    PeerAborted,
    /// The peer went silent or the transport was lost.
    PeerGone,
}

impl core::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CloseReason::LocalEnd => "END was sent",
            CloseReason::LocalAbort => "ABORT was sent",
            CloseReason::PeerEnded => "peer sent END",
            CloseReason::PeerAborted => "peer sent ABORT",
            CloseReason::PeerGone => "peer is gone",
        })
    }
}

/// Why a send failed: the peer's endpoint did not confirm that it accepted the message.
///
/// A failed send may still have reached the peer (its acknowledgement may have been lost);
/// what is certain is that it was never confirmed. Make requests idempotent where that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FailReason {
    /// The send's timeout passed first.
    TimedOut,
    /// `max_resends + 1` transmissions went unacknowledged for a resend interval each.
    ResendsExhausted,
    /// The endpoint was stopped locally.
    Stopped,
    /// The peer went silent or the transport was lost.
    PeerGone,
    /// The peer sent END.
    PeerEnded,
    /// The peer sent ABORT.
    PeerAborted,
    /// The timeout passed while the send waited for a free send slot: it never reached
    /// the endpoint, so nothing of it was transmitted. The core never reports this (it
    /// refuses a send at once with [`Error::SendQueueFull`]); drivers that queue sends
    /// before the endpoint do.
    NoSlot,
    /// The peer does not accept a message this long, or a topic this long (announced in its
    /// capabilities); nothing of the message was sent.
    TooLarge,
    /// The peer restarted while this message was arriving there in parts: what its old
    /// incarnation took of it is lost, and the new one cannot complete it. (Whole messages in
    /// flight go on to the new incarnation.)
    PeerRestarted,
    /// The [`Source`](crate::Source) of a message sent with
    /// [`send_from`](crate::Endpoint::send_from) could not supply its bytes.
    Unreadable,
}

impl core::fmt::Display for FailReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FailReason::TimedOut => "timed out",
            FailReason::ResendsExhausted => "resends exhausted",
            FailReason::Stopped => "endpoint stopped",
            FailReason::PeerGone => "peer gone",
            FailReason::PeerEnded => "peer ended",
            FailReason::PeerAborted => "peer aborted",
            FailReason::NoSlot => "timed out waiting for a send slot (nothing was sent)",
            FailReason::TooLarge => "message longer than the peer accepts",
            FailReason::PeerRestarted => "the peer restarted while the message arrived in parts",
            FailReason::Unreadable => "the message's source could not supply its bytes",
        })
    }
}

/// Why the peer counts as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GoneReason {
    /// Nothing valid arrived for `heartbeat_timeout`.
    Silence,
    /// The driver reported that the transport broke ([`Endpoint::transport_lost`](crate::Endpoint::transport_lost)).
    TransportLost,
}

impl core::fmt::Display for GoneReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            GoneReason::Silence => "no frame from the peer within heartbeat_timeout",
            GoneReason::TransportLost => "transport lost",
        })
    }
}
