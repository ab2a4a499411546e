//! Messages that arrive in parts, put back together on the heap.

use peerpipe_core::{EventRef, GoneReason, MessageKind, MsgId, Outcome, PartKind, PartRef};

use crate::Message;

/// What an [`Assembler`] completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// A request or reply.
    Message(Message),
    /// The peer's END, with its data.
    End(Vec<u8>),
    /// The peer's ABORT, with its data.
    Abort(Vec<u8>),
}

/// An endpoint event as a host driver keeps it: owned, the parts of a message put together
/// ([`Taken::from_event`]). Exhaustive on purpose: a driver handles every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A send was settled.
    Outcome(MsgId, Outcome),
    /// A request or reply, whole.
    Message(Message),
    /// The peer's END, with its data.
    End(Vec<u8>),
    /// The peer's ABORT, with its data.
    Abort(Vec<u8>),
    /// The peer is gone.
    Gone(GoneReason),
    /// The peer started a new session.
    Restarted,
}

impl Taken {
    /// What a driver keeps of an event the endpoint lent
    /// ([`Endpoint::poll_event_ref`](peerpipe_core::Endpoint::poll_event_ref)): its data
    /// copied once, into the message (or into the one being put together in `assembler`);
    /// `None` for a part that does not complete its message, or a cut one.
    pub fn from_event(event: EventRef<'_>, assembler: &mut Assembler) -> Option<Self> {
        Some(match event {
            EventRef::SendOutcome { id, outcome } => Taken::Outcome(id, outcome),
            EventRef::Message(m) => Taken::Message(Message::from_ref(m)),
            EventRef::Part(part) => match assembler.part(part)? {
                Assembled::Message(m) => Taken::Message(m),
                Assembled::End(data) => Taken::End(data),
                Assembled::Abort(data) => Taken::Abort(data),
            },
            EventRef::Cut { id, .. } => {
                assembler.cut(id);
                return None;
            }
            EventRef::End(data) => Taken::End(data.to_vec()),
            EventRef::Abort(data) => Taken::Abort(data.to_vec()),
            EventRef::Gone(reason) => Taken::Gone(reason),
            EventRef::PeerRestarted => Taken::Restarted,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Partial {
    id: MsgId,
    kind: PartKind,
    topic: String,
    total: u64,
    data: Vec<u8>,
}

/// Puts messages that arrive in parts ([`PartRef`]) back together, one at a time (the parts
/// of one message arrive in order, with nothing between them). The buffer grows with the
/// parts received, not with the length the first part announces, so that a peer that
/// announces more than it sends costs only what it sent.
///
/// ```
/// use peerpipe_core::EventRef;
/// use peerpipe_host::{Assembled, Assembler};
///
/// fn on_event(asm: &mut Assembler, event: EventRef<'_>) -> Option<Assembled> {
///     match event {
///         EventRef::Part(part) => asm.part(part),
///         EventRef::Cut { id, .. } => {
///             asm.cut(id);
///             None
///         }
///         _ => None,
///     }
/// }
/// ```
#[derive(Debug, Default)]
pub struct Assembler {
    partial: Option<Partial>,
}

/// The most bytes reserved ahead of the parts that fill them.
const RESERVE_AHEAD: u64 = 1 << 20;

impl Assembler {
    /// Takes the next part, as an endpoint lends it ([`peerpipe_core::Endpoint::poll_event_ref`];
    /// `(&part).into()` for an owned [`Part`](peerpipe_core::Part)); returns the message it
    /// completes.
    pub fn part(&mut self, part: PartRef<'_>) -> Option<Assembled> {
        if part.is_first() {
            self.partial = Some(Partial {
                id: part.id(),
                kind: part.kind(),
                topic: part.topic().to_owned(),
                total: part.total(),
                data: Vec::with_capacity(part.total().min(RESERVE_AHEAD) as usize),
            });
        }
        let p = self.partial.as_mut()?;
        if p.id != part.id() || p.data.len() as u64 != part.offset() {
            // Not the next part of this message (the endpoint never hands out such a part).
            self.partial = None;
            return None;
        }
        if p.data.capacity() - p.data.len() < part.data().len() {
            // Room grows geometrically (amortized linear copying) but never past the
            // announced length, so that a whole message's allocation is its length (`reserve`
            // could round it up to twice that).
            let left = p.total.saturating_sub(p.data.len() as u64);
            let ahead = (p.data.capacity() as u64).max(RESERVE_AHEAD);
            p.data
                .reserve_exact(left.min(ahead).max(part.data().len() as u64) as usize);
        }
        p.data.extend_from_slice(part.data());
        if !part.is_last() {
            return None;
        }
        let p = self.partial.take()?;
        Some(match p.kind {
            PartKind::Request => Assembled::Message(Message::received(
                MessageKind::Request,
                p.id,
                p.topic,
                p.data,
            )),
            PartKind::Reply { req_id } => Assembled::Message(Message::received(
                MessageKind::Reply { req_id },
                p.id,
                p.topic,
                p.data,
            )),
            PartKind::End => Assembled::End(p.data),
            PartKind::Abort => Assembled::Abort(p.data),
        })
    }

    /// The message `id` was cut: drops what arrived of it.
    pub fn cut(&mut self, id: MsgId) {
        if self.partial.as_ref().is_some_and(|p| p.id == id) {
            self.partial = None;
        }
    }

    /// The message being put together: its id, the bytes that arrived and its length.
    pub fn progress(&self) -> Option<(MsgId, u64, u64)> {
        self.partial
            .as_ref()
            .map(|p| (p.id, p.data.len() as u64, p.total))
    }

    /// Bytes held for the message being put together.
    pub fn bytes_held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.capacity())
    }
}
