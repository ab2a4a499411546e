//! What an endpoint reports to its application.

use heapless::Vec;

use crate::error::{FailReason, GoneReason};
use crate::message::{Message, MsgId};
use crate::part::{CutReason, Part};

/// The outcome of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The peer's endpoint accepted the message into its receive queue. (Not that its
    /// application has processed it: that is what replies are for.)
    Delivered,
    /// The peer never confirmed the message.
    Failed(FailReason),
}

/// An event for the application, from [`Endpoint::poll_event`](crate::Endpoint::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<const PAYLOAD: usize = 128, const TOPIC: usize = 32> {
    /// A request or reply from the peer that came in one frame, in the order the peer sent
    /// them, exactly once.
    Message(Message<PAYLOAD, TOPIC>),
    /// The peer ended the conversation, with its data (in one frame). No more messages will
    /// be accepted.
    End(Vec<u8, PAYLOAD>),
    /// The peer aborted the conversation, with its data (in one frame). No more messages
    /// will be accepted.
    Abort(Vec<u8, PAYLOAD>),
    /// A piece of a message (request, reply, END or ABORT data) too long for one frame. The
    /// parts of one message come in order, from its first to its last, unless a
    /// [`Cut`](Event::Cut) ends it; the message counts for order and exactly-once as a
    /// whole. END and ABORT in parts close the conversation with their last part.
    Part(Part<PAYLOAD, TOPIC>),
    /// The message that was arriving in parts will not be completed: drop what was received
    /// of it.
    Cut {
        /// The message's id.
        id: MsgId,
        /// Why.
        reason: CutReason,
    },
    /// The peer is gone. Reported once; pending sends have failed with
    /// [`FailReason::PeerGone`].
    Gone(GoneReason),
    /// The peer started a new session (it restarted). Reported once per change; the receive
    /// state of the old session was reset and the conversation goes on with the new one.
    PeerRestarted,
    /// A send was settled.
    SendOutcome {
        /// The id [`Endpoint::send`](crate::Endpoint::send) returned.
        id: MsgId,
        /// Delivered, or why not.
        outcome: Outcome,
    },
}

/// Where the peer stands, as this endpoint sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PeerState {
    /// No valid frame from the peer yet.
    NotSeen,
    /// The peer is talking.
    Up,
    /// The peer went silent or the transport was lost.
    Gone,
    /// The peer sent END.
    Ended,
    /// The peer sent ABORT.
    Aborted,
}
