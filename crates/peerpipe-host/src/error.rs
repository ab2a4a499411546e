//! The driver's error type.

use peerpipe_core::{CloseReason, ConfigError, FailReason, MsgId};

/// Why a call failed.
#[derive(Debug)]
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
    /// A send that does not wait was refused for lack of room: in peerpipe-std,
    /// `MAX_WAITING` (256) such sends already wait for a send slot; in
    /// peerpipe-tokio (`send_no_wait`, which never queues), no slot is free or other callers
    /// wait for one. The peer is slow or not reading. Nothing was sent; send again later, or
    /// use a call that waits its turn.
    QueueFull,
    /// A call that waits for its result was made from a callback: the callback runs on the
    /// thread that would have to hand over that result, so it would never return. From a
    /// callback, send with `send_to_peer_async`.
    InCallback,
}

impl Error {
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
            Error::InCallback => {
                f.write_str("a blocking call from a callback would wait for itself")
            }
        }
    }
}

impl std::error::Error for Error {}

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
