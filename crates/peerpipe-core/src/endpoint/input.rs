//! Input: bytes or frames from the transport, fed to the endpoint, and the room its driver
//! holds beside the receive slots.

use super::Endpoint;
use crate::event::PeerState;
use crate::time::Instant;
use crate::wire::Frame;

impl<
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const INLINE: usize,
    > Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME, INLINE>
{
    /// Feeds bytes from a byte-stream transport, in any chunking. Garbage, truncated, corrupt,
    /// oversize and unknown-version frames are dropped and counted in [`stats`](Self::stats).
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.feed::<false>(now, bytes);
    }

    /// [`handle_bytes`](Self::handle_bytes) that stops after a frame that filled the receive
    /// queue while [`poll_event`](Self::poll_event) can take an item from it; returns how
    /// many bytes it used. Take events, then feed the rest. For drivers that announce
    /// [spare room](Self::set_spare_room): the peer sends as much as they take, and none of
    /// it is refused for lack of a slot.
    ///
    /// ```
    /// # use peerpipe_core::{Config, Endpoint, Instant};
    /// # let mut ep: Endpoint = Endpoint::new(Config::default(), 1, Instant::ZERO).unwrap();
    /// # let (now, mut input) = (Instant::ZERO, &[0u8; 0][..]);
    /// while !input.is_empty() {
    ///     let used = ep.handle_bytes_until_full(now, input);
    ///     input = &input[used..];
    ///     while let Some(event) = ep.poll_event() {
    ///         // Hand it to the application (the driver's own queue).
    ///         # let _ = event;
    ///     }
    /// }
    /// ```
    pub fn handle_bytes_until_full(&mut self, now: Instant, bytes: &[u8]) -> usize {
        self.feed::<true>(now, bytes)
    }

    /// Decodes `bytes` and handles each frame; with `UNTIL_FULL`, stops when the receive
    /// queue must be drained first. Returns the bytes used.
    fn feed<const UNTIL_FULL: bool>(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let mut rest = bytes;
        while !(rest.is_empty() || UNTIL_FULL && self.machine.must_drain()) {
            let (used, result) = self.decoder.feed_bytes(rest);
            match result {
                Some(Ok(frame)) => self.machine.handle_frame(now, &frame),
                Some(Err(e)) => self.machine.count_wire_error(e),
                None => {}
            }
            rest = rest.get(used..).unwrap_or(&[]);
        }
        bytes.len() - rest.len()
    }

    /// Room the driver holds for received items beyond this endpoint's receive slots:
    /// `items` items and `bytes` payload bytes that it takes from
    /// [`poll_event`](Self::poll_event) as soon as they arrive (into a queue of its own). They
    /// are added to the room and window this endpoint announces (the room up to the reorder
    /// window, 31 fragments), so that the peer has that much more in flight before it waits
    /// for an acknowledgement. Such a driver feeds input with
    /// [`handle_bytes_until_full`](Self::handle_bytes_until_full); with
    /// [`handle_bytes`](Self::handle_bytes) what does not fit in a slot is refused and resent.
    /// Set it again when the driver's room changes; none by default.
    pub fn set_spare_room(&mut self, items: u32, bytes: u32) {
        let m = &mut self.machine;
        m.spare = (items, bytes);
        if m.advertised_full && m.room() > 0 && m.peer_state != PeerState::Gone {
            // Room again: tell the peer at once instead of letting it wait for a resend.
            m.ack_due = true;
            m.advertised_full = false;
        }
    }

    /// Feeds one decoded frame, for transports that carry frames rather than bytes.
    pub fn handle_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        self.machine.handle_frame(now, &frame.topic_bytes());
    }
}
