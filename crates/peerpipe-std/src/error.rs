//! The driver's error type.

use peerpipe_core::{CloseReason, ConfigError, FailReason};

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The message was refused before sending: invalid or reserved topic, data too large,
    /// zero timeout, or a payload that could not be (de)serialized.
    Invalid(peerpipe_core::Error),
    /// The configuration is invalid.
    Config(ConfigError),
    /// [`start`](crate::PipeHandler::start) was not called yet.
    NotStarted,
    /// [`start`](crate::PipeHandler::start) was called already.
    AlreadyStarted,
    /// The handler was stopped.
    Stopped,
    /// The conversation is over (END, ABORT or GONE, on either side).
    Closed(CloseReason),
    /// The peer never confirmed the message; the reason says why.
    Failed(FailReason),
    /// The caller's abort signal fired first (the message may still be delivered).
    Aborted,
    /// No reply came within the timeout (the request itself was delivered).
    NoReply,
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
            Error::NoReply => f.write_str("no reply within the timeout"),
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
