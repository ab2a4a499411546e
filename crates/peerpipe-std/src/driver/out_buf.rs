//! The encoded bytes waiting for the link.

use peerpipe_core::Error as CoreError;

/// Room always there for the next frame: an ACK or a heartbeat fits (a DATA frame that
/// does not makes the buffer grow by one frame).
const MIN_ROOM: usize = 256;
/// A buffer this large is kept however little of it a round uses. Without it, a round that
/// sent one small frame grew the buffer (room for the next frame after it) and shrank it
/// again: two reallocations per message sent alone (callgrind: about 500 instructions per
/// send on the sending thread, 16 threads each blocked in `send_to_peer`).
const KEEP: usize = 4 * MIN_ROOM;

/// Encoded bytes waiting for the link, `buf[..len]`, and room to encode the next frame
/// into. The buffer grows when a frame does not fit (to [`UNSENT_LIMIT`](crate::UNSENT_LIMIT)
/// plus one frame at most), is zeroed only when it grows (not for each frame), and shrinks
/// again by halves once rounds of transmission use little of it: an idle handler's buffer
/// is at most [`KEEP`] bytes, a busy one's what its traffic needs.
#[derive(Default)]
pub(super) struct OutBuf {
    buf: Vec<u8>,
    len: usize,
}

impl OutBuf {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// The first `n` bytes were written: keeps the rest. (Only the non-blocking writes of
    /// the Unix fd path write part of the buffer.)
    #[cfg(unix)]
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == self.len {
            self.len = 0;
        } else {
            self.buf.copy_within(n..self.len, 0);
            self.len -= n;
        }
    }

    /// Appends the frame `encode` writes into the room it is given (more room when it says
    /// the frame does not fit); returns whether it wrote one.
    pub(super) fn encode(
        &mut self,
        mut encode: impl FnMut(&mut [u8]) -> Result<Option<usize>, CoreError>,
    ) -> bool {
        self.grow_to(self.len + MIN_ROOM);
        loop {
            let room = self.buf.get_mut(self.len..).unwrap_or(&mut []);
            match encode(room) {
                Ok(Some(n)) => {
                    self.len += n;
                    return true;
                }
                Ok(None) => return false,
                Err(CoreError::BufferTooSmall) if self.buf.len() < self.len + crate::FRAME => {
                    self.grow_to(self.len + crate::FRAME);
                }
                Err(_) => return false,
            }
        }
    }

    /// At least `len` bytes, by doubling (so that small frames one after the other do not
    /// grow it a little each time).
    fn grow_to(&mut self, len: usize) {
        if self.buf.len() < len {
            let len = len.max(2 * self.buf.len());
            self.buf.reserve_exact(len - self.buf.len());
            self.buf.resize(len, 0);
        }
    }

    /// After a round of transmission that encoded `made` bytes: once the link has taken
    /// everything, a buffer four times larger than the round needed is halved (not below
    /// [`KEEP`]).
    pub(super) fn fit(&mut self, made: usize) {
        let size = self.buf.len();
        if self.len == 0 && size > KEEP && made < size / 4 {
            let keep = (size / 2).max(KEEP);
            self.buf.truncate(keep);
            self.buf.shrink_to_fit();
        }
    }
}
