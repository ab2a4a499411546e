//! Feeding the input to the endpoint in rounds of about [`FEED_AT_ONCE`] bytes, with the
//! room of the application's queue announced besides the endpoint's slots.

use std::sync::atomic::Ordering;

use peerpipe_core::Instant;

use super::Io;
#[cfg(unix)]
use super::Wait;
use crate::driver::{State, FEED_AT_ONCE};
use crate::{QUEUE_BYTES, QUEUE_ITEMS};

impl Io {
    /// Feeds what arrived to the endpoint, about [`FEED_AT_ONCE`] bytes at a time (whole
    /// frames), then a broken link once everything before it was fed. Returns whether input
    /// is left for the next round.
    ///
    /// The endpoint announces the room of the application's queue besides its own slots
    /// ([`Endpoint::set_spare_room`](peerpipe_core::Endpoint::set_spare_room)), so that the
    /// peer sends up to that many messages in one go; feeding stops when its slots are full,
    /// and the round's events make room in them (see [`take_in`]).
    ///
    /// A round ends with the events taken and the frames due written: feeding a large
    /// input in rounds acknowledges every other large fragment as soon as it is taken, so
    /// that the peer sends the next fragments while this thread takes the rest, instead of both
    /// waiting in turn for a whole window.
    pub(super) fn feed(&mut self, st: &mut State, now: Instant) -> bool {
        let (items, bytes) = self.spare_room();
        st.ep.set_spare_room(items, bytes);
        let mut budget = FEED_AT_ONCE;
        let mut full = false;
        while budget > 0 && !full {
            let Some(chunk) = self.chunks.front() else {
                break;
            };
            let rest = chunk.get(self.chunk_pos..).unwrap_or(&[]);
            let n = cut(rest, budget);
            let first = budget == FEED_AT_ONCE;
            let used = take_in(st, now, rest.get(..n).unwrap_or(&[]), first);
            full = used < n;
            self.slots_full |= full;
            budget = budget.saturating_sub(used);
            self.chunk_pos += used;
            if self.chunk_pos >= chunk.len() {
                self.chunks.pop_front();
                self.chunk_pos = 0;
            }
        }
        #[cfg(unix)]
        if let Wait::Fd(fd) = &mut self.wait {
            let input = fd.input();
            let n = if full { 0 } else { cut(input, budget) };
            if n > 0 {
                let first = budget == FEED_AT_ONCE;
                let used = take_in(st, now, input.get(..n).unwrap_or(&[]), first);
                self.slots_full |= used < n;
                fd.consume(used);
            }
            if !fd.input().is_empty() {
                return true;
            }
        }
        if !self.chunks.is_empty() {
            return true;
        }
        if let Some(e) = self.lost.take() {
            st.lose_link(&e);
        }
        false
    }

    /// The room of the application's queue: items and data bytes (see [`QUEUE_ITEMS`] and
    /// [`QUEUE_BYTES`]).
    fn spare_room(&self) -> (u32, u32) {
        let items = QUEUE_ITEMS.saturating_sub(self.ordinary_queued() + self.pending.len());
        let bytes = QUEUE_BYTES.saturating_sub(self.shared.queued_bytes.load(Ordering::SeqCst));
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(items), clamp(bytes))
    }
}

/// Feeds `input` to the endpoint until its receive slots are full; returns the bytes used.
/// When the slots are full at the `first` input of a round, the last round's events could
/// not all go to the application's queue (it is full: its room, announced to the peer, was
/// taken): then the input is fed all the same, so that heartbeats and ACKs behind the data
/// are not held up by a slow application, and the data that does not fit is refused, to be
/// resent.
fn take_in(st: &mut State, now: Instant, input: &[u8], first: bool) -> usize {
    let used = st.ep.handle_bytes_until_full(now, input);
    if used > 0 || input.is_empty() || !first {
        return used;
    }
    st.ep.handle_bytes(now, input);
    input.len()
}

/// How much of `input` to feed with `budget` bytes left: through the first frame delimiter
/// at or past `budget` bytes (a round ends at the end of a frame), or all of it.
fn cut(input: &[u8], budget: usize) -> usize {
    if budget == 0 {
        return 0;
    }
    match input.get(budget - 1..) {
        None => input.len(),
        Some(tail) => tail
            .iter()
            .position(|&b| b == 0)
            .map_or(input.len(), |i| budget + i),
    }
}
