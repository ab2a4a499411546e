//! How far the messages on their way have got, for progress bars.

use peerpipe_core::MsgId;

/// Bytes of one message done so far, of its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The message's id: for a send, the id [`send_to_peer`](crate::PipeHandler::send_to_peer)
    /// returns once it is acknowledged; for a message arriving, the id it will have.
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

/// What [`PipeHandler::progress`](crate::PipeHandler::progress) reports: the send on the
/// wire and the message arriving, each while it is under way.
///
/// ```
/// use std::time::Duration;
/// use peerpipe_std::{memory_pair, Config, Message, PipeHandler, FRAGMENT};
///
/// let (a, b) = memory_pair();
/// let (a, b) = (PipeHandler::new(a, Config::default())?, PipeHandler::new(b, Config::default())?);
/// a.start()?;
/// b.start()?;
/// let data = vec![7u8; 64 * FRAGMENT];
/// let sender = std::thread::spawn({
///     let a = a.clone();
///     move || a.send_to_peer(Message::request("file", data)?, Some(Duration::from_secs(30)), None)
/// });
/// // Another thread watches (a real program would draw a bar).
/// while !sender.is_finished() {
///     if let Some(t) = a.progress().sending {
///         assert!(t.done <= t.total && t.total == 64 * FRAGMENT as u64);
///     }
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// sender.join().unwrap()?;
/// assert_eq!(a.progress().sending, None);
/// a.stop(true);
/// b.stop(true);
/// # Ok::<(), peerpipe_std::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// The oldest send the peer has not acknowledged whole (the endpoint cuts messages into
    /// fragments oldest first, so it is the one whose bytes are moving), if any. A send
    /// leaves when it is acknowledged whole or fails.
    pub sending: Option<Transfer>,
    /// The message arriving in parts (one longer than [`FRAGMENT`](crate::FRAGMENT) bytes),
    /// if one is: it leaves when it is complete (and goes to its requester, the
    /// application's queue or the callback) or is cut (its sender gave it up, or the peer
    /// is gone).
    pub receiving: Option<Transfer>,
}
