//! The wire format: frame representations, their byte layout, and COBS framing with CRC-32C.
//!
//! This module knows nothing of the state machine. [`Frame`] is a checked, borrowed view of
//! one frame; [`Frame::parse`] reads a decoded frame (CRC included) and [`encode()`] writes one
//! as COBS bytes ending in `0x00`. [`Decoder`] turns an arbitrary byte stream into frames and
//! resynchronises after garbage. `docs/PROTOCOL.md` describes the layout byte by byte.

mod cobs;
mod crc;
mod decoder;
mod encode;
mod frame;
mod parse;
#[cfg(test)]
mod tests;

pub use crc::{crc32c, Crc32c};
pub use decoder::Decoder;
pub use encode::encode;
pub use frame::{Ack, Body, Caps, Data, Frag, Frame, Heartbeat, Item};

/// The protocol version carried in the high nibble of every frame's first byte.
pub const VERSION: u8 = 3;

/// Bytes of CRC at the end of every frame.
pub const CRC_LEN: usize = 4;

/// The longest user topic the wire can carry (its length is one byte).
pub const MAX_TOPIC_LEN: usize = 255;

pub(crate) const KIND_DATA: u8 = 1;
pub(crate) const KIND_ACK: u8 = 2;
pub(crate) const KIND_HEARTBEAT: u8 = 3;

pub(crate) const DATA_REQUEST: u8 = 0;
pub(crate) const DATA_REPLY: u8 = 1;
pub(crate) const DATA_END: u8 = 2;
pub(crate) const DATA_ABORT: u8 = 3;
/// DATA flag: this fragment continues a message begun by an earlier one.
pub(crate) const DATA_CONT: u8 = 1 << 2;
/// DATA flag: more fragments of this message follow.
pub(crate) const DATA_MORE: u8 = 1 << 3;

/// The ACK flag bit of [`Ack::retry`]; the other bits are reserved (zero).
pub(crate) const ACK_RETRY: u8 = 1;
/// The HEARTBEAT flag bit of [`Heartbeat::ask`]; the other bits are reserved (zero).
pub(crate) const HEARTBEAT_ASK: u8 = 1;

/// The longest LEB128 encoding of a `u64`.
pub(crate) const MAX_VARINT: usize = 10;

/// The longest DATA frame content before its payload, CRC included, for a topic of
/// `topic` bytes: kind, session, flags, five varints (seq, floor, id, req_id, total or
/// offset), the topic's length and the topic, and the CRC.
pub const fn data_overhead(topic: usize) -> usize {
    1 + 4 + 1 + 5 * MAX_VARINT + 1 + topic + CRC_LEN
}

/// The longest decoded DATA frame for a payload and topic capacity, CRC included.
pub const fn max_frame_len(payload: usize, topic: usize) -> usize {
    data_overhead(topic) + payload
}

/// The longest COBS-encoded DATA frame, its `0x00` delimiter included: the buffer size that
/// [`encode()`] and [`Decoder`] need for these capacities.
pub const fn max_encoded_len(payload: usize, topic: usize) -> usize {
    cobs_len(max_frame_len(payload, topic))
}

/// The most bytes `raw` decoded bytes take on the wire: COBS adds one per started 254 and
/// the delimiter.
pub const fn cobs_len(raw: usize) -> usize {
    raw + raw / 254 + 2
}

/// Whether `topic` may travel in a DATA frame (see [`TopicForm::checked`]).
pub(crate) fn topic_ok(topic: &str) -> bool {
    <[u8]>::checked(topic.as_bytes()).is_some()
}

/// How a frame's topic is seen: as a `str`, or as its checked bytes (see [`frame`]).
pub(crate) trait TopicForm: 'static {
    /// The empty topic (a continuation fragment's, or one that failed its check).
    fn empty() -> &'static Self;
    /// `bytes` as a topic, if they may travel in a DATA frame: 1 to 255 bytes of
    /// `[A-Za-z0-9_]`, not one of the protocol's reserved topics (the check a sender's topic
    /// gets: one piece of code for both).
    fn checked(bytes: &[u8]) -> Option<&Self>;
}

impl TopicForm for str {
    fn empty() -> &'static str {
        ""
    }

    fn checked(bytes: &[u8]) -> Option<&str> {
        <[u8]>::checked(bytes).and_then(|b| core::str::from_utf8(b).ok())
    }
}

impl TopicForm for [u8] {
    fn empty() -> &'static [u8] {
        &[]
    }

    fn checked(bytes: &[u8]) -> Option<&[u8]> {
        crate::message::check_topic(bytes, MAX_TOPIC_LEN)
            .is_ok()
            .then_some(bytes)
    }
}

/// Why bytes are not a valid frame, or a frame could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// The COBS encoding is broken.
    Cobs,
    /// The frame is longer than the decoder's buffer.
    Oversize,
    /// The frame ends before its fields do.
    Truncated,
    /// The CRC does not match.
    BadCrc,
    /// The version nibble is not [`VERSION`].
    UnknownVersion(u8),
    /// The frame kind is not one this version knows.
    UnknownKind(u8),
    /// A field holds a value the format forbids (reserved bits, overlong varint, bad topic).
    Malformed,
    /// The output buffer is too small for the frame.
    BufferTooSmall,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::Cobs => f.write_str("invalid COBS encoding"),
            WireError::Oversize => f.write_str("frame longer than the decoder buffer"),
            WireError::Truncated => f.write_str("frame truncated"),
            WireError::BadCrc => f.write_str("CRC mismatch"),
            WireError::UnknownVersion(v) => write!(f, "unknown protocol version {v}"),
            WireError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            WireError::Malformed => f.write_str("malformed field"),
            WireError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for WireError {}
