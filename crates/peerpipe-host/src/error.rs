//! The driver's error type.

use peerpipe_core::{CloseReason, ConfigError, FailReason, MsgId};

use crate::IoCause;

/// Why a call failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The message was refused before sending: invalid or reserved topic, data too large,
    /// zero timeout, or a payload that could not be (de)serialized. Only ever about the
    /// call's arguments: a busy handler is never `Invalid`.
    Invalid(peerpipe_core::Error),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The handler's `start` was not called yet.
    NotStarted,
    /// The handler's `start` was called already.
    AlreadyStarted,
    /// The handler was stopped.
    Stopped,
    /// The conversation is over (END, ABORT or GONE, on either side).
    Closed(CloseReason),
    /// The peer never confirmed the message; the reason says why. For a call that waited
    /// for a send slot until its timeout, the reason is [`FailReason::NoSlot`] (nothing was
    /// sent); [`FailReason::TimedOut`] means it was sent but not acknowledged in time.
    Failed(FailReason),
    /// The caller's abort signal fired first (the message may still be delivered).
    Aborted,
    /// The request was delivered (the peer's endpoint acknowledged it) but no reply came
    /// within the timeout. `request` is the request's id, as the peer saw it. A request
    /// that was not acknowledged in time fails with [`Error::Failed`] instead.
    NoReply {
        /// The id of the request that went unanswered.
        request: MsgId,
    },
    /// A send that does not wait (`send_no_wait`) was refused for lack of room: in
    /// peerpipe-std, `MAX_WAITING` (256) such sends already wait for a send slot; in
    /// peerpipe-tokio, which never queues them, no slot is free or other callers wait for
    /// one. The peer is slow or not reading. Nothing was sent; send again later, or
    /// use a call that waits its turn.
    QueueFull,
    /// A call that waits for its result was made from a callback: the callback runs on the
    /// thread that would have to hand over that result, so it would never return. From a
    /// callback, send with `send_no_wait`.
    InCallback,
    /// A message's data could not be deserialized into the requested type (`decode`); the
    /// postcard error says why, and is the error's `source`.
    Decode(postcard::Error),
    /// The transport broke, or could not be opened (a connection refused, a child that
    /// would not start): the peer counts as gone, and the I/O error says why. A call that
    /// fails for that reason says so, as the GONE status does.
    TransportLost(IoCause),
    /// A value could not be serialized into a message's data (`request_serde`,
    /// `reply_serde`); the postcard error says why, and is the error's `source`.
    Encode(postcard::Error),
}

impl Error {
    /// For drivers: this error, or [`Error::TransportLost`] with `cause` when it says the
    /// peer is gone and the driver knows the transport error that made it so.
    pub fn or_transport_lost(self, cause: Option<&IoCause>) -> Self {
        match (self, cause) {
            (
                Error::Failed(FailReason::PeerGone) | Error::Closed(CloseReason::PeerGone),
                Some(cause),
            ) => Error::TransportLost(cause.clone()),
            (e, _) => e,
        }
    }

    /// Whether the call failed because the peer is gone: silent, or its transport lost
    /// ([`Error::TransportLost`]).
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self,
            Error::Closed(CloseReason::PeerGone)
                | Error::Failed(FailReason::PeerGone)
                | Error::TransportLost(_)
        )
    }

    /// Whether the call ran out of time: not acknowledged in time, no send slot in time,
    /// or no reply in time.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Failed(FailReason::TimedOut | FailReason::NoSlot) | Error::NoReply { .. }
        )
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Invalid(e) => write!(f, "invalid: {e}"),
            Error::Config(e) => write!(f, "invalid config: {e}"),
            Error::NotStarted => f.write_str("handler not started"),
            Error::AlreadyStarted => f.write_str("handler already started"),
            Error::Stopped => f.write_str("handler stopped"),
            Error::Closed(r) => write!(f, "conversation closed: {r}"),
            Error::Failed(r) => write!(f, "not delivered: {r}"),
            Error::Aborted => f.write_str("aborted by the caller's signal"),
            Error::NoReply { request } => {
                write!(
                    f,
                    "request {} was delivered but not answered in time",
                    request.0
                )
            }
            Error::QueueFull => f.write_str("send queue full: too many sends wait for a slot"),
            Error::Decode(e) => write!(f, "cannot decode the message's data: {e}"),
            Error::TransportLost(cause) => write!(f, "transport lost: {cause}"),
            Error::Encode(e) => write!(f, "cannot encode the value as message data: {e}"),
            Error::InCallback => {
                f.write_str("a blocking call from a callback would wait for itself")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Decode(e) | Error::Encode(e) => Some(e),
            Error::Invalid(e) => Some(e),
            Error::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<peerpipe_core::Error> for Error {
    fn from(e: peerpipe_core::Error) -> Self {
        match e {
            peerpipe_core::Error::Stopped => Error::Stopped,
            peerpipe_core::Error::Closed(r) => Error::Closed(r),
            other => Error::Invalid(other),
        }
    }
}

/// A send that failed: [`Error::Stopped`] when the local handler stopped, else
/// [`Error::Failed`] with the reason.
impl From<FailReason> for Error {
    fn from(reason: FailReason) -> Self {
        match reason {
            FailReason::Stopped => Error::Stopped,
            other => Error::Failed(other),
        }
    }
}
