//! How far the messages on their way have got, for progress bars: what both host drivers'
//! `PipeHandler::progress` report.

use peerpipe_core::MsgId;

/// Bytes of one message done so far, of its length.
///
/// ```
/// use peerpipe_host::{MsgId, Transfer};
///
/// let t = Transfer { id: MsgId(3), done: 256, total: 1024 };
/// assert_eq!(t.fraction(), 0.25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The message's id: for a send, the id the handler's send call returns once it is
    /// acknowledged; for a message arriving, the id it will have.
    pub id: MsgId,
    /// Bytes done: for a send, the bytes the peer's endpoint accepted (acknowledged
    /// fragments); for a message arriving, the bytes that came, in order.
    pub done: u64,
    /// The message's length in bytes.
    pub total: u64,
}

impl Transfer {
    /// `done` as a share of `total`, from 0.0 to 1.0 (1.0 for an empty message).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// What a handler's `progress()` reports: the oldest send under way and the message
/// arriving, each while it is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// The oldest send the peer has not acknowledged whole (the endpoint cuts messages into
    /// fragments oldest first, so it is the one whose bytes are moving), if any. A send
    /// leaves when its outcome is known.
    pub sending: Option<Transfer>,
    /// The message arriving in parts (one longer than a fragment), if one is: it leaves when
    /// it is complete (and goes to its request, the application's queue or the callback) or
    /// is cut (its sender gave it up, went away or restarted).
    pub receiving: Option<Transfer>,
}

impl Progress {
    /// The send and the message arriving.
    pub fn new(sending: Option<Transfer>, receiving: Option<Transfer>) -> Self {
        Progress { sending, receiving }
    }
}
