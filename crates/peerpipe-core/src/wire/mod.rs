//! The wire format: frame representations, their byte layout, and COBS framing with CRC-32C.
//!
//! This module knows nothing of the state machine. [`Frame`] is a checked, borrowed view of
//! one frame; [`Frame::parse`] reads a decoded frame (CRC included) and [`encode`] writes one
//! as COBS bytes ending in `0x00`. [`Decoder`] turns an arbitrary byte stream into frames and
//! resynchronises after garbage. `docs/PROTOCOL.md` describes the layout byte by byte.

mod cobs;
mod crc;
mod decoder;

pub use crc::{crc32c, Crc32c};
pub use decoder::Decoder;

use cobs::CobsWriter;

/// The protocol version carried in the high nibble of every frame's first byte.
pub const VERSION: u8 = 2;

/// Bytes of CRC at the end of every frame.
pub const CRC_LEN: usize = 4;

/// The longest user topic the wire can carry (its length is one byte).
pub const MAX_TOPIC_LEN: usize = 255;

const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_HEARTBEAT: u8 = 3;

const DATA_REQUEST: u8 = 0;
const DATA_REPLY: u8 = 1;
const DATA_END: u8 = 2;
const DATA_ABORT: u8 = 3;

/// The ACK flag bit of [`Ack::retry`]; the other bits are reserved (zero).
const ACK_RETRY: u8 = 1;

/// The longest LEB128 encoding of a `u64`.
const MAX_VARINT: usize = 10;

/// The longest decoded DATA frame for a payload and topic capacity, CRC included.
pub const fn max_frame_len(payload: usize, topic: usize) -> usize {
    // kind + session + flags + seq + floor + req_id + topic length + topic + payload + CRC
    1 + 4 + 1 + 3 * MAX_VARINT + 1 + topic + payload + CRC_LEN
}

/// The longest COBS-encoded DATA frame, its `0x00` delimiter included: the buffer size that
/// [`encode`] and [`Decoder`] need for these capacities.
pub const fn max_encoded_len(payload: usize, topic: usize) -> usize {
    let raw = max_frame_len(payload, topic);
    raw + raw / 254 + 2
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

/// One frame: the sender's session and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame<'a> {
    /// The session id of the endpoint that sent the frame.
    pub session: u32,
    /// The frame's content.
    pub body: Body<'a>,
}

/// What a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Body<'a> {
    /// A message, END or ABORT, to be acknowledged.
    Data(Data<'a>),
    /// What the sender of this frame has accepted of the receiver's DATA frames.
    Ack(Ack),
    /// A sign of life, carrying the sender's floor and receive room.
    Heartbeat {
        /// Every sequence number below this is settled at the sender.
        floor: u64,
        /// The sender's receive room, as in [`Ack::room`].
        room: u8,
    },
}

/// A DATA frame: one sequenced item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Data<'a> {
    /// The item's sequence number in the sender's session; also the message id.
    pub seq: u64,
    /// Every sequence number below this is settled at the sender: acknowledged or given up.
    pub floor: u64,
    /// What the item is.
    pub item: Item<'a>,
    /// The payload (END and ABORT data included).
    pub payload: &'a [u8],
}

/// The kind of a DATA frame's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Item<'a> {
    /// A request on a topic.
    Request {
        /// The topic.
        topic: &'a str,
    },
    /// A reply on a topic.
    Reply {
        /// The topic.
        topic: &'a str,
        /// The sequence number of the request it answers.
        req_id: u64,
    },
    /// The sender ends the conversation.
    End,
    /// The sender aborts the conversation.
    Abort,
}

/// An ACK frame: the receiver's acceptance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack {
    /// The session whose DATA frames are acknowledged (the ACK's addressee).
    pub to_session: u32,
    /// Every sequence number below this is accepted (or was skipped by the sender's floor).
    pub next: u64,
    /// Bit `i` set: sequence number `next + 1 + i` is accepted too.
    pub bitmap: u32,
    /// How many more items beyond the next in-order one the receiver can take now (its
    /// free receive slots less the one kept for the next in-order item), at most 255. The
    /// sender keeps at most `room + 1` items unacknowledged on the wire.
    pub room: u8,
    /// The receiver refused a DATA frame from the addressee for lack of room since its last
    /// ACK, and has room again now: everything transmitted and not acknowledged is to be
    /// sent again at once, without waiting for a resend timer.
    pub retry: bool,
}

impl Ack {
    /// Whether this ACK covers sequence number `seq`.
    pub fn covers(&self, seq: u64) -> bool {
        if seq < self.next {
            return true;
        }
        match seq.checked_sub(self.next).and_then(|d| d.checked_sub(1)) {
            Some(bit) if bit < 32 => self.bitmap & (1 << bit) != 0,
            _ => false,
        }
    }
}

/// Reads a little cursor over a decoded frame; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.bytes.split_first().ok_or(WireError::Truncated)?;
        self.bytes = rest;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<4>()
            .ok_or(WireError::Truncated)?;
        self.bytes = rest;
        Ok(u32::from_le_bytes(*head))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7F);
            // The tenth byte may only carry the top bit of a u64; no overlong zero tails.
            if i == MAX_VARINT - 1 && b > 1 {
                return Err(WireError::Malformed);
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(WireError::Malformed);
                }
                return Ok(value);
            }
        }
        Err(WireError::Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.bytes.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn topic(&mut self) -> Result<&'a str, WireError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        if len == 0
            || !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(WireError::Malformed);
        }
        let topic = core::str::from_utf8(bytes).map_err(|_| WireError::Malformed)?;
        // The protocol's own topics never travel as messages.
        if crate::RESERVED_TOPICS.contains(&topic) {
            return Err(WireError::Malformed);
        }
        Ok(topic)
    }

    fn finish(&self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }
}

impl<'a> Frame<'a> {
    /// Parses a decoded frame (COBS already removed) whose last four bytes are its CRC.
    ///
    /// Every field is checked: no input can make this panic.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, WireError> {
        let split = bytes
            .len()
            .checked_sub(CRC_LEN)
            .ok_or(WireError::Truncated)?;
        let (content, crc) = bytes.split_at(split);
        let crc: [u8; CRC_LEN] = crc.try_into().map_err(|_| WireError::Truncated)?;
        if crc32c(content) != u32::from_le_bytes(crc) {
            return Err(WireError::BadCrc);
        }
        let mut r = Reader { bytes: content };
        let head = r.u8()?;
        if head >> 4 != VERSION {
            return Err(WireError::UnknownVersion(head >> 4));
        }
        let session = r.u32()?;
        let body = match head & 0x0F {
            KIND_DATA => {
                let flags = r.u8()?;
                if flags & !0x03 != 0 {
                    return Err(WireError::Malformed);
                }
                let seq = r.varint()?;
                let floor = r.varint()?;
                let item = match flags {
                    DATA_REQUEST => Item::Request { topic: r.topic()? },
                    DATA_REPLY => {
                        let req_id = r.varint()?;
                        Item::Reply {
                            topic: r.topic()?,
                            req_id,
                        }
                    }
                    DATA_END => Item::End,
                    _ => Item::Abort,
                };
                Body::Data(Data {
                    seq,
                    floor,
                    item,
                    payload: r.bytes,
                })
            }
            KIND_ACK => {
                let to_session = r.u32()?;
                let next = r.varint()?;
                let bitmap = u32::try_from(r.varint()?).map_err(|_| WireError::Malformed)?;
                let room = r.u8()?;
                let retry = match r.u8()? {
                    0 => false,
                    ACK_RETRY => true,
                    _ => return Err(WireError::Malformed),
                };
                r.finish()?;
                Body::Ack(Ack {
                    to_session,
                    next,
                    bitmap,
                    room,
                    retry,
                })
            }
            KIND_HEARTBEAT => {
                let floor = r.varint()?;
                let room = r.u8()?;
                r.finish()?;
                Body::Heartbeat { floor, room }
            }
            kind => return Err(WireError::UnknownKind(kind)),
        };
        Ok(Frame { session, body })
    }
}

fn put_varint(w: &mut CobsWriter<'_>, mut v: u64) -> Result<(), WireError> {
    loop {
        let low = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            return w.push(low);
        }
        w.push(low | 0x80)?;
    }
}

fn put_topic(w: &mut CobsWriter<'_>, topic: &str) -> Result<(), WireError> {
    let len = u8::try_from(topic.len()).map_err(|_| WireError::Malformed)?;
    w.push(len)?;
    w.push_slice(topic.as_bytes())
}

/// Writes `frame` into `out` as COBS bytes with its CRC and the closing `0x00`; returns the
/// number of bytes written.
///
/// ```
/// use peerpipe_core::wire::{encode, Body, Frame, Decoder};
///
/// let frame = Frame { session: 7, body: Body::Heartbeat { floor: 3, room: 2 } };
/// let mut buf = [0u8; 32];
/// let n = encode(&frame, &mut buf)?;
/// assert_eq!(buf[n - 1], 0);
///
/// let mut decoder = Decoder::<64>::new();
/// let (used, decoded) = decoder.feed(&buf[..n]);
/// assert_eq!(used, n);
/// assert_eq!(decoded, Some(Ok(frame)));
/// # Ok::<(), peerpipe_core::wire::WireError>(())
/// ```
pub fn encode(frame: &Frame<'_>, out: &mut [u8]) -> Result<usize, WireError> {
    let mut w = CobsWriter::new(out)?;
    let kind = match frame.body {
        Body::Data(_) => KIND_DATA,
        Body::Ack(_) => KIND_ACK,
        Body::Heartbeat { .. } => KIND_HEARTBEAT,
    };
    w.push((VERSION << 4) | kind)?;
    w.push_slice(&frame.session.to_le_bytes())?;
    match frame.body {
        Body::Data(d) => {
            let flags = match d.item {
                Item::Request { .. } => DATA_REQUEST,
                Item::Reply { .. } => DATA_REPLY,
                Item::End => DATA_END,
                Item::Abort => DATA_ABORT,
            };
            w.push(flags)?;
            put_varint(&mut w, d.seq)?;
            put_varint(&mut w, d.floor)?;
            match d.item {
                Item::Request { topic } => put_topic(&mut w, topic)?,
                Item::Reply { topic, req_id } => {
                    put_varint(&mut w, req_id)?;
                    put_topic(&mut w, topic)?;
                }
                Item::End | Item::Abort => {}
            }
            w.push_slice(d.payload)?;
        }
        Body::Ack(a) => {
            w.push_slice(&a.to_session.to_le_bytes())?;
            put_varint(&mut w, a.next)?;
            put_varint(&mut w, u64::from(a.bitmap))?;
            w.push(a.room)?;
            w.push(if a.retry { ACK_RETRY } else { 0 })?;
        }
        Body::Heartbeat { floor, room } => {
            put_varint(&mut w, floor)?;
            w.push(room)?;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame<'_>) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 600];
        let n = encode(&frame, &mut buf).unwrap();
        let mut body = buf[..n - 1].to_vec();
        let len = cobs::decode_in_place(&mut body).unwrap();
        assert_eq!(Frame::parse(&body[..len]).unwrap(), frame);
        buf[..n].to_vec()
    }

    #[test]
    fn every_kind_round_trips() {
        let frames = [
            Frame {
                session: 1,
                body: Body::Heartbeat { floor: 0, room: 0 },
            },
            Frame {
                session: u32::MAX,
                body: Body::Heartbeat {
                    floor: u64::MAX,
                    room: 255,
                },
            },
            Frame {
                session: 0,
                body: Body::Ack(Ack {
                    to_session: 9,
                    next: 300,
                    bitmap: 0b101,
                    room: 3,
                    retry: true,
                }),
            },
            Frame {
                session: 0xDEAD_BEEF,
                body: Body::Data(Data {
                    seq: 5,
                    floor: 2,
                    item: Item::Request { topic: "t_1" },
                    payload: &[0, 1, 0],
                }),
            },
            Frame {
                session: 3,
                body: Body::Data(Data {
                    seq: 1 << 40,
                    floor: 1 << 40,
                    item: Item::Reply {
                        topic: "x",
                        req_id: 77,
                    },
                    payload: &[0xAA; 500],
                }),
            },
            Frame {
                session: 3,
                body: Body::Data(Data {
                    seq: 0,
                    floor: 0,
                    item: Item::End,
                    payload: b"bye",
                }),
            },
            Frame {
                session: 3,
                body: Body::Data(Data {
                    seq: 1,
                    floor: 0,
                    item: Item::Abort,
                    payload: b"",
                }),
            },
        ];
        for f in frames {
            round_trip(f);
        }
    }

    #[test]
    fn small_frames_are_small() {
        let ack = round_trip(Frame {
            session: 1,
            body: Body::Ack(Ack {
                to_session: 2,
                next: 3,
                bitmap: 0,
                room: 0,
                retry: false,
            }),
        });
        assert_eq!(ack.len(), 19);
        let hb = round_trip(Frame {
            session: 1,
            body: Body::Heartbeat { floor: 3, room: 1 },
        });
        assert_eq!(hb.len(), 13);
    }

    #[test]
    fn rejects_bad_frames() {
        let mut buf = [0u8; 64];
        let n = encode(
            &Frame {
                session: 1,
                body: Body::Heartbeat { floor: 3, room: 1 },
            },
            &mut buf,
        )
        .unwrap();
        let mut raw = buf[..n - 1].to_vec();
        let len = cobs::decode_in_place(&mut raw).unwrap();
        raw.truncate(len);
        let mut bad = raw.clone();
        bad[5] ^= 1;
        assert_eq!(Frame::parse(&bad), Err(WireError::BadCrc));
        assert_eq!(Frame::parse(&raw[..3]), Err(WireError::Truncated));
        let with_crc = |mut content: std::vec::Vec<u8>| {
            let crc = crc32c(&content);
            content.extend_from_slice(&crc.to_le_bytes());
            content
        };
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x13, 1, 0, 0, 0, 0])),
            Err(WireError::UnknownVersion(1))
        );
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x2F, 1, 0, 0, 0])),
            Err(WireError::UnknownKind(15))
        );
        // Overlong varint, reserved flag bits, bad topic.
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x23, 1, 0, 0, 0, 0x80, 0])),
            Err(WireError::Malformed)
        );
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x21, 1, 0, 0, 0, 4, 0, 0])),
            Err(WireError::Malformed)
        );
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x21, 1, 0, 0, 0, 0, 0, 0, 1, b'-'])),
            Err(WireError::Malformed)
        );
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x21, 1, 0, 0, 0, 0, 0, 0, 0])),
            Err(WireError::Malformed)
        );
        let mut reserved = std::vec![0x21, 1, 0, 0, 0, 0, 0, 0, 5];
        reserved.extend_from_slice(b"_END_");
        assert_eq!(Frame::parse(&with_crc(reserved)), Err(WireError::Malformed));
        // Trailing bytes after a heartbeat.
        assert_eq!(
            Frame::parse(&with_crc(std::vec![0x23, 1, 0, 0, 0, 0, 9, 9])),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn ack_covers() {
        let a = Ack {
            to_session: 0,
            next: 10,
            bitmap: 0b1001,
            room: 0,
            retry: false,
        };
        assert!(a.covers(0) && a.covers(9) && a.covers(11) && a.covers(14));
        assert!(
            !a.covers(10) && !a.covers(12) && !a.covers(13) && !a.covers(15) && !a.covers(u64::MAX)
        );
    }

    #[test]
    fn max_len_holds_the_largest_frame() {
        let topic = "t".repeat(32);
        let f = Frame {
            session: u32::MAX,
            body: Body::Data(Data {
                seq: u64::MAX,
                floor: u64::MAX,
                item: Item::Reply {
                    topic: &topic,
                    req_id: u64::MAX,
                },
                payload: &[0xFF; 128],
            }),
        };
        let mut buf = [0u8; 400];
        let n = encode(&f, &mut buf).unwrap();
        assert!(n <= max_encoded_len(128, 32), "{n}");
        assert!(encode(&f, &mut buf[..n - 1]).is_err());
    }
}
