//! Counters of everything an endpoint did and dropped.

/// The type of the [`Stats`] counters: `u64` on 64-bit targets (hosts), `u32` on the others
/// (microcontrollers), where a counter takes half the RAM and its increment half the code,
/// and where 2^32 frames take weeks even at a UART's fastest rates.
#[cfg(target_pointer_width = "64")]
pub type Counter = u64;

/// The type of the [`Stats`] counters on targets other than 64-bit ones (microcontrollers):
/// `u32` (see the `u64` one of hosts).
#[cfg(not(target_pointer_width = "64"))]
pub type Counter = u32;

/// Counters kept by an endpoint; they only ever grow (wrapping after [`Counter::MAX`]).
///
/// Everything the endpoint refuses is counted here: no input is dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Frames handed to the transport.
    pub frames_sent: Counter,
    /// Valid frames received.
    pub frames_received: Counter,
    /// DATA frames sent, first transmissions and resends.
    pub data_sent: Counter,
    /// DATA frames sent again because no acknowledgement came in time.
    pub resends: Counter,
    /// ACK frames sent.
    pub acks_sent: Counter,
    /// Heartbeat frames sent.
    pub heartbeats_sent: Counter,
    /// DATA frames (whole messages, END, ABORT, or fragments of them) accepted into the
    /// receive queue.
    pub accepted: Counter,
    /// DATA frames already accepted before (acknowledged again, not delivered again).
    pub duplicates: Counter,
    /// DATA frames refused because the receive queue was full.
    pub refused_full: Counter,
    /// DATA frames refused because they lie beyond the reorder window.
    pub out_of_window: Counter,
    /// DATA frames refused because the conversation is closed.
    pub refused_closed: Counter,
    /// Byte runs that were not valid COBS.
    pub cobs_errors: Counter,
    /// Frames whose CRC did not match.
    pub crc_errors: Counter,
    /// Frames longer than the decoder buffer or the capacities.
    pub oversize: Counter,
    /// Frames of an unknown protocol version.
    pub bad_version: Counter,
    /// Frames that were truncated, of an unknown kind, or malformed.
    pub malformed: Counter,
    /// Frames from a peer session that was replaced, or addressed to another session.
    pub stale: Counter,
    /// Frames from the peer ignored because it was declared gone.
    pub ignored_after_gone: Counter,
    /// Status events merged because the application did not poll (see [`Stats`] docs).
    pub status_coalesced: Counter,
    /// Received items discarded by a local stop before the application polled them.
    pub discarded_on_stop: Counter,
    /// Messages arriving in parts that were cut ([`Event::Cut`](crate::Event::Cut)).
    pub messages_cut: Counter,
    /// Fragments dropped because they did not continue the message being received (the rest
    /// of a message that was cut).
    pub stray_fragments: Counter,
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn hosts_count_in_64_bits() {
        let most: Counter = u64::MAX;
        assert_eq!(most.wrapping_add(1), 0);
    }
}
