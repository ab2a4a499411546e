//! # peerpipe-host
//!
//! The owned types peerpipe's host drivers share: [`Message`] (a topic and bytes on the
//! heap), [`Item`] and [`Status`] (what the application receives), [`Error`] (why a call
//! failed), [`HandlerStats`], [`IoCause`] and [`Reconnect`] (what a broken connection does). `peerpipe-std` (threads) and `peerpipe-tokio`
//! (async) both re-export them, so a program uses them through its driver and never needs
//! this crate by name; a program that talks through both drivers gets the same types from
//! each.
//!
//! ```
//! use peerpipe_host::{Message, MsgId};
//!
//! let req = Message::request("train", b"round 1".to_vec())?;
//! let reply = Message::reply("train", b"done".to_vec(), MsgId(3))?;
//! assert!(req.is_request() && reply.req_id() == Some(MsgId(3)));
//! # Ok::<(), peerpipe_host::Error>(())
//! ```

#![warn(missing_docs)]

mod abandoned;
mod assemble;
mod error;
mod message;
mod outbox;
mod progress;
mod reconnect;
mod stats;
#[cfg(feature = "tls")]
pub mod tls;

pub use abandoned::{AbandonedRequests, ABANDONED_REQUESTS};
pub use assemble::{Assembled, Assembler, Taken};
pub use error::Error;
pub use message::{IoCause, Item, Message, Status};
pub use outbox::Outbox;
pub use peerpipe_core::MsgId;
pub use progress::{Progress, Transfer};
pub use reconnect::{Backoff, Jitter, Reconnect, SessionProbe};
pub use stats::HandlerStats;
#[cfg(feature = "tls")]
pub use tls::{TlsClient, TlsError, TlsServer};

/// Encoded bytes a host driver gathers for its transport at most: it takes frames from the
/// endpoint only once the transport has taken what it gathered before, and then only until
/// this many bytes are gathered (the last frame may go over, by less than one frame). So a
/// peer that is alive but does not read (stopped, or a stalled socket) costs at most this
/// plus one frame, whatever the resend interval: frames that come due meanwhile (resends,
/// heartbeats, ACKs) stay due inside the endpoint, and a resend of a frame still waiting
/// adds nothing. [`HandlerStats::unsent_bytes`] shows the bytes waiting.
pub const UNSENT_LIMIT: usize = 64 * 1024;

/// The largest message data, in bytes: 4 GiB (on a 64-bit host; the address space on a
/// 32-bit one). A message travels in fragments of at most [`FRAGMENT`] bytes; the peer may
/// accept less (its `max_message`), and a longer send then fails with `TooLarge`.
pub const MAX_PAYLOAD: usize = (u32::MAX as usize).saturating_add(1);

/// The largest fragment of a message a host endpoint sends or receives in one frame, in
/// bytes: also the size of each of its receive slots.
pub const FRAGMENT: usize = 4 * 1024;

/// The decoder's buffer of a host endpoint: the longest frame of [`FRAGMENT`] bytes.
pub const FRAME: usize = peerpipe_core::wire::max_encoded_len(FRAGMENT, MAX_TOPIC);

/// The core endpoint of a host driver with `RX` receive and `TX` send slots: fragments of
/// [`FRAGMENT`] bytes, topics of [`MAX_TOPIC`], and no inline message storage (a host
/// driver sends every message from its [`Outbox`]), so that a send slot costs a few dozen
/// bytes and the receive slots are most of the endpoint's memory.
pub type HostEndpoint<const RX: usize, const TX: usize> =
    peerpipe_core::Endpoint<FRAGMENT, MAX_TOPIC, RX, TX, FRAME, 0>;
/// The longest topic, in bytes.
pub const MAX_TOPIC: usize = 64;

/// A session id for a new endpoint, from the operating system's random source (so that a
/// restarted process, or a second handler, is told apart from the one before). Every
/// handler takes one at creation; other drivers of the core use it too.
///
/// Should the random source fail (it does not on the supported systems), the id falls back
/// to one derived from the time and the process id, which still differs between runs.
pub fn new_session_id() -> u32 {
    getrandom::u32().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        nanos ^ std::process::id().rotate_left(16)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_differ() {
        let ids: std::collections::HashSet<u32> =
            (0..1000).map(|_| super::new_session_id()).collect();
        // 1,000 draws from 2^32: a collision is a one-in-8,600 event, two are not credible.
        assert!(ids.len() >= 999, "only {} distinct ids", ids.len());
    }
}
