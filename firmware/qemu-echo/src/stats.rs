//! The counters a `stats` request returns ([`Stats`]).

/// The counters a `stats` request returns, as little-endian `u32`s in this order.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Requests answered (`stats` included).
    pub requests: u32,
    /// END received from the peer.
    pub ends: u32,
    /// ABORT received from the peer.
    pub aborts: u32,
    /// Peer restarts seen.
    pub restarts: u32,
    /// Times the peer was declared gone.
    pub gone: u32,
    /// Endpoints started after the first (new conversations).
    pub generation: u32,
    /// Bytes received and sent on the UART.
    pub rx_bytes: u32,
    /// Bytes sent.
    pub tx_bytes: u32,
    /// Frames dropped as garbage (COBS, CRC, oversize, version, malformed).
    pub dropped: u32,
    /// Deepest stack use seen, in bytes (see [`stack::used`](crate::stack::used)).
    pub stack_used: u32,
    /// Milliseconds since boot, by the firmware's clock.
    pub uptime_ms: u32,
    /// Payload bytes received in parts (messages longer than one frame).
    pub part_bytes: u32,
    /// Messages in parts that were cut off (`Event::Cut`).
    pub cuts: u32,
    /// Payload bytes the [`Generated`](crate::Generated) source supplied (resends included).
    pub gen_bytes: u32,
}

impl Stats {
    /// Number of counters.
    pub const LEN: usize = 14;

    /// The counters in wire order.
    pub fn to_bytes(&self) -> [u8; Self::LEN * 4] {
        let words = [
            self.requests,
            self.ends,
            self.aborts,
            self.restarts,
            self.gone,
            self.generation,
            self.rx_bytes,
            self.tx_bytes,
            self.dropped,
            self.stack_used,
            self.uptime_ms,
            self.part_bytes,
            self.cuts,
            self.gen_bytes,
        ];
        let mut out = [0u8; Self::LEN * 4];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}
