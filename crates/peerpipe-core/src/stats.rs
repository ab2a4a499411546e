//! Counters of everything an endpoint did and dropped.

/// Counters kept by an endpoint; they only ever grow (wrapping after 2^64).
///
/// Everything the endpoint refuses is counted here: no input is dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Frames handed to the transport.
    pub frames_sent: u64,
    /// Valid frames received.
    pub frames_received: u64,
    /// DATA frames sent, first transmissions and resends.
    pub data_sent: u64,
    /// DATA frames sent again because no acknowledgement came in time.
    pub resends: u64,
    /// ACK frames sent.
    pub acks_sent: u64,
    /// Heartbeat frames sent.
    pub heartbeats_sent: u64,
    /// DATA frames (whole messages, END, ABORT, or fragments of them) accepted into the
    /// receive queue.
    pub accepted: u64,
    /// DATA frames already accepted before (acknowledged again, not delivered again).
    pub duplicates: u64,
    /// DATA frames refused because the receive queue was full.
    pub refused_full: u64,
    /// DATA frames refused because they lie beyond the reorder window.
    pub out_of_window: u64,
    /// DATA frames refused because the conversation is closed.
    pub refused_closed: u64,
    /// Byte runs that were not valid COBS.
    pub cobs_errors: u64,
    /// Frames whose CRC did not match.
    pub crc_errors: u64,
    /// Frames longer than the decoder buffer or the capacities.
    pub oversize: u64,
    /// Frames of an unknown protocol version.
    pub bad_version: u64,
    /// Frames that were truncated, of an unknown kind, or malformed.
    pub malformed: u64,
    /// Frames from a peer session that was replaced, or addressed to another session.
    pub stale: u64,
    /// Frames from the peer ignored because it was declared gone.
    pub ignored_after_gone: u64,
    /// Status events merged because the application did not poll (see [`Stats`] docs).
    pub status_coalesced: u64,
    /// Received items discarded by a local stop before the application polled them.
    pub discarded_on_stop: u64,
    /// Messages arriving in parts that were cut ([`Event::Cut`](crate::Event::Cut)).
    pub messages_cut: u64,
    /// Fragments dropped because they did not continue the message being received (the rest
    /// of a message that was cut).
    pub stray_fragments: u64,
}
