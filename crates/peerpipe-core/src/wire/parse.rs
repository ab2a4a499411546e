//! Reading a decoded frame: every field checked, no input can panic.

use super::frame::{Ack, Body, Caps, Data, Frag, Frame, Heartbeat, Item};
use super::{
    crc32c, topic_ok, WireError, ACK_RETRY, CRC_LEN, DATA_CONT, DATA_END, DATA_MORE, DATA_REPLY,
    DATA_REQUEST, HEARTBEAT_ASK, KIND_ACK, KIND_DATA, KIND_HEARTBEAT, MAX_VARINT, VERSION,
};

/// A little cursor over a decoded frame; every read is checked.
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

    fn varint32(&mut self) -> Result<u32, WireError> {
        u32::try_from(self.varint()?).map_err(|_| WireError::Malformed)
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
        // The protocol's own topics never travel as messages.
        if !topic_ok(bytes) {
            return Err(WireError::Malformed);
        }
        core::str::from_utf8(bytes).map_err(|_| WireError::Malformed)
    }

    fn finish(&self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }

    fn data(&mut self) -> Result<Data<'a>, WireError> {
        let flags = self.u8()?;
        if flags & !(0x03 | DATA_CONT | DATA_MORE) != 0 {
            return Err(WireError::Malformed);
        }
        let seq = self.varint()?;
        let floor = self.varint()?;
        let id = self.varint()?;
        let (cont, more) = (flags & DATA_CONT != 0, flags & DATA_MORE != 0);
        let item = match (flags & 0x03, cont) {
            (DATA_REQUEST, false) => Item::Request {
                topic: self.topic()?,
            },
            (DATA_REPLY, false) => {
                let req_id = self.varint()?;
                Item::Reply {
                    topic: self.topic()?,
                    req_id,
                }
            }
            (DATA_REQUEST, true) => Item::Request { topic: "" },
            (DATA_REPLY, true) => Item::Reply {
                topic: "",
                req_id: 0,
            },
            (DATA_END, _) => Item::End,
            _ => Item::Abort,
        };
        let frag = match (cont, more) {
            (false, false) => Frag::Whole,
            (false, true) => Frag::First {
                total: self.varint()?,
            },
            (true, last) => Frag::Next {
                offset: self.varint()?,
                last: !last,
            },
        };
        let payload = self.bytes;
        let len = payload.len() as u64;
        match frag {
            Frag::First { total } if total <= len => return Err(WireError::Malformed),
            Frag::Next { offset: 0, .. } => return Err(WireError::Malformed),
            _ => {}
        }
        Ok(Data {
            seq,
            floor,
            id,
            item,
            frag,
            payload,
        })
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
            KIND_DATA => Body::Data(r.data()?),
            KIND_ACK => {
                let to_session = r.u32()?;
                let next = r.varint()?;
                let bitmap = r.varint32()?;
                let room = r.varint32()?;
                let window = r.varint32()?;
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
                    window,
                    retry,
                })
            }
            KIND_HEARTBEAT => {
                let ask = match r.u8()? {
                    0 => false,
                    HEARTBEAT_ASK => true,
                    _ => return Err(WireError::Malformed),
                };
                let floor = r.varint()?;
                let room = r.varint32()?;
                let window = r.varint32()?;
                let max_payload = r.varint32()?;
                let max_topic = r.varint32()?;
                let max_message = r.varint()?;
                r.finish()?;
                Body::Heartbeat(Heartbeat {
                    floor,
                    room,
                    window,
                    caps: Caps {
                        max_payload,
                        max_topic,
                        max_message,
                    },
                    ask,
                })
            }
            kind => return Err(WireError::UnknownKind(kind)),
        };
        Ok(Frame { session, body })
    }
}
