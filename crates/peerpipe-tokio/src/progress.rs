//! How far the messages on their way have got, for progress bars. The same shape as
//! `peerpipe_std`'s `Progress` and `Transfer`.

use peerpipe_core::MsgId;

/// Bytes of one message done so far, of its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The message's id: for a send, the id [`send_to_peer`](crate::PipeHandler::send_to_peer)
    /// returns once it is acknowledged (and [`send_no_wait`](crate::PipeHandler::send_no_wait)
    /// at once); for a message arriving, the id it will have.
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

/// What [`PipeHandler::progress`](crate::PipeHandler::progress) reports: the oldest send
/// under way and the message arriving, each while it is under way.
///
/// ```
/// use std::time::Duration;
/// use peerpipe_tokio::{Config, Message, PipeHandler, DEFAULT_FRAGMENT};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerpipe_tokio::Error> {
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let a: PipeHandler = PipeHandler::start(a, Config::default())?;
/// let b: PipeHandler = PipeHandler::start(b, Config::default())?;
/// let data = vec![7u8; 64 * DEFAULT_FRAGMENT];
/// let send = tokio::spawn({
///     let a = a.clone();
///     async move { a.send_to_peer(Message::request("file", data)?, None).await }
/// });
/// let receive = tokio::spawn(async move { b.recv().await });
/// // Meanwhile another task watches (a real program would draw a bar).
/// while !send.is_finished() {
///     if let Some(t) = a.progress().sending {
///         assert!(t.done <= t.total && t.total == 64 * DEFAULT_FRAGMENT as u64);
///     }
///     tokio::time::sleep(Duration::from_millis(1)).await;
/// }
/// send.await.unwrap()?;
/// assert!(receive.await.unwrap().is_some());
/// assert_eq!(a.progress().sending, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// The oldest send the peer has not acknowledged whole (the endpoint cuts messages into
    /// fragments oldest first, so it is the one whose bytes are moving), if any; every send
    /// under way is in [`PipeHandler::sending`](crate::PipeHandler::sending). A send leaves
    /// when its outcome is known.
    pub sending: Option<Transfer>,
    /// The message arriving in parts (one longer than a fragment), if one is: it leaves
    /// when it is complete (and goes to its request or the application's queue) or is cut
    /// (its sender gave it up, went away or restarted). Fragments still in the endpoint's
    /// receive slots, not taken while the application's queue is full, do not count yet.
    pub receiving: Option<Transfer>,
}
