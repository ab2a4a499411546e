//! What a handler reports about itself.

/// A handler's counters and queue depths, for monitoring and logs (`stats()` on
/// `peerpipe_std::PipeHandler` and on `peerpipe_tokio::PipeHandler`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerStats {
    /// The endpoint's counters: frames, resends, duplicates suppressed, CRC and framing
    /// errors, refusals.
    pub core: peerpipe_core::Stats,
    /// Sends waiting for a send slot: blocked calls and queued sends that do not wait.
    pub waiting_sends: usize,
    /// Received items waiting for the application (in its queue, or held back while the
    /// queue is full).
    pub queued_items: usize,
    /// Replies that arrived after their `request()` had given up: dropped and counted here,
    /// never queued.
    pub late_replies: u64,
    /// Encoded bytes the transport has not taken yet.
    pub unsent_bytes: usize,
    /// Data bytes of the received items counted in `queued_items` (message data and topics,
    /// END and ABORT data).
    pub queued_bytes: usize,
    /// Connections that took the place of a broken one (see `Status::Reconnected`).
    pub reconnects: u64,
    /// Connections a listening end closed because a conversation was going on and they did
    /// not prove to be its peer.
    pub refused_connections: u64,
}
