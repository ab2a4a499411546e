//! Messages longer than one frame: the parts a receiver gets, and how the endpoint checks
//! that they follow each other.

use heapless::{String, Vec};

use crate::message::MsgId;

/// What a message that arrives in parts is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PartKind {
    /// A request.
    Request,
    /// A reply to the request `req_id`.
    Reply {
        /// The id of the request this answers.
        req_id: MsgId,
    },
    /// The peer's END data.
    End,
    /// The peer's ABORT data.
    Abort,
}

/// One piece of a message too long for one frame, in order: [`Event::Part`](crate::Event)s
/// of one message follow each other with nothing between them but send outcomes, from
/// offset 0 to the last byte, unless an [`Event::Cut`](crate::Event) ends the message first.
///
/// A receiver that has room for the whole message appends the parts (a host driver does);
/// one that has not consumes them as they come (writes them to flash, hashes them).
///
/// ```
/// use peerpipe_core::{Part, PartKind};
///
/// fn on_part(part: &Part, crc: &mut u32) {
///     if part.is_first() {
///         assert!(matches!(part.kind(), PartKind::Request));
///         *crc = 0;
///     }
///     *crc = part.data().iter().fold(*crc, |c, b| c.rotate_left(5) ^ u32::from(*b));
///     if part.is_last() {
///         // `part.total()` bytes arrived: answer the request `part.id()`.
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Part<const PAYLOAD: usize = 128, const TOPIC: usize = 32> {
    pub(crate) id: MsgId,
    pub(crate) kind: PartKind,
    pub(crate) topic: String<TOPIC>,
    pub(crate) total: u64,
    pub(crate) offset: u64,
    pub(crate) data: Vec<u8, PAYLOAD>,
}

impl<const PAYLOAD: usize, const TOPIC: usize> Part<PAYLOAD, TOPIC> {
    /// What a free receive slot holds before its first item (never handed out). Every field
    /// is zero or empty: `Part` is the variant of the receive queue's item that the others
    /// are encoded around (in `kind`'s spare values), so a queue of these is zero bytes and
    /// is cleared in place with `memclr`, not copied from a constant through a temporary
    /// (about 1 KiB of stack and of flash on the firmware profile).
    pub(crate) const PLACEHOLDER: Self = Part {
        id: MsgId(0),
        kind: PartKind::Request,
        topic: String::new(),
        total: 0,
        offset: 0,
        data: Vec::new(),
    };

    /// The message's id (a reply names its request by it).
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// What the message is.
    pub fn kind(&self) -> PartKind {
        self.kind
    }

    /// The message's topic (empty for END and ABORT).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The message's length in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Where this part's data starts in the message.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// This part's data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the data out of the part.
    pub fn into_data(self) -> Vec<u8, PAYLOAD> {
        self.data
    }

    /// Whether this is the message's first part.
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Whether this is the message's last part: the message is complete.
    pub fn is_last(&self) -> bool {
        self.offset + self.data.len() as u64 >= self.total
    }
}

/// Why a message that was arriving in parts will not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CutReason {
    /// Its sender gave it up (it timed out or ran out of resends there).
    GivenUp,
    /// The peer is gone.
    PeerGone,
    /// The peer restarted.
    PeerRestarted,
}

impl core::fmt::Display for CutReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CutReason::GivenUp => "its sender gave it up",
            CutReason::PeerGone => "the peer is gone",
            CutReason::PeerRestarted => "the peer restarted",
        })
    }
}

/// The message being received in parts: what its next part must be. It stays in place in
/// the endpoint (`active` says whether a message is being followed) and each first part is
/// written into it, not built aside and copied in.
#[derive(Debug, Clone)]
pub(crate) struct Current<const T: usize> {
    /// A message is being followed.
    pub(crate) active: bool,
    pub(crate) id: MsgId,
    pub(crate) kind: PartKind,
    pub(crate) topic: String<T>,
    pub(crate) total: u64,
    pub(crate) next_offset: u64,
    pub(crate) last_seq: u64,
}

impl<const T: usize> Current<T> {
    /// Following no message.
    pub(crate) const IDLE: Self = Current {
        active: false,
        id: MsgId(0),
        kind: PartKind::Request,
        topic: String::new(),
        total: 0,
        next_offset: 0,
        last_seq: 0,
    };

    /// Starts following the message whose first part, sequence number `seq`, this is.
    pub(crate) fn start<const P: usize>(&mut self, part: &Part<P, T>, seq: u64) {
        self.active = true;
        self.id = part.id;
        self.kind = part.kind;
        self.topic.clear();
        // Fits: the same capacity.
        let _ = self.topic.push_str(&part.topic);
        self.total = part.total;
        self.next_offset = part.data.len() as u64;
        self.last_seq = seq;
    }

    /// Whether the continuation at `seq` with this id, offset, length and last flag
    /// continues the message: next in sequence, at the next offset, within the message's
    /// length, and flagged last exactly when it ends the message.
    pub(crate) fn continued_by(
        &self,
        seq: u64,
        id: MsgId,
        offset: u64,
        len: usize,
        last: bool,
    ) -> bool {
        let end = offset.saturating_add(len as u64);
        seq == self.last_seq.wrapping_add(1)
            && id == self.id
            && offset == self.next_offset
            && end <= self.total
            && last == (end == self.total)
    }

    /// Moves past a continuation part (which carries only its id, offset and data: the rest
    /// is this message's); returns whether it was the last.
    pub(crate) fn advance<const P: usize>(&mut self, part: &Part<P, T>, seq: u64) -> bool {
        self.next_offset += part.data.len() as u64;
        self.last_seq = seq;
        self.next_offset >= self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_must_fit_and_say_whether_it_ends() {
        let cur = Current::<8> {
            active: true,
            id: MsgId(4),
            kind: PartKind::Request,
            topic: String::new(),
            total: 30,
            next_offset: 10,
            last_seq: 7,
        };
        assert!(cur.continued_by(8, MsgId(4), 10, 10, false));
        assert!(cur.continued_by(8, MsgId(4), 10, 20, true));
        // Out of sequence, another message, another offset.
        assert!(!cur.continued_by(9, MsgId(4), 10, 10, false));
        assert!(!cur.continued_by(8, MsgId(5), 10, 10, false));
        assert!(!cur.continued_by(8, MsgId(4), 11, 10, false));
        // Past the end, or a last flag that disagrees with the length.
        assert!(!cur.continued_by(8, MsgId(4), 10, 21, true));
        assert!(!cur.continued_by(8, MsgId(4), 10, 20, false));
        assert!(!cur.continued_by(8, MsgId(4), 10, 10, true));
    }
}
