//! Reading a decoded frame: every field checked, no input can panic.

use super::frame::{Ack, Body, Caps, Data, Frag, Frame, Heartbeat, Item};
use super::{
    crc32c, TopicForm, WireError, ACK_RETRY, CRC_LEN, DATA_CONT, DATA_END, DATA_MORE, DATA_REPLY,
    DATA_REQUEST, HEARTBEAT_ASK, KIND_ACK, KIND_DATA, KIND_HEARTBEAT, MAX_VARINT, VERSION,
};

/// A little cursor over a decoded frame; every read is checked. A read that fails records
/// why (the first failure is kept) and gives zeros, an empty slice or an empty topic: the
/// caller reads on and looks at [`err`](Self::err) once at the end, instead of a branch after
/// every field (a few hundred bytes of code on a Cortex-M0).
struct Reader<'a> {
    bytes: &'a [u8],
    /// What went wrong first, if anything.
    err: Option<WireError>,
}

impl<'a> Reader<'a> {
    /// Records `e` unless something went wrong before, and stops reading. Out of line: it is
    /// called at a dozen sites.
    #[inline(never)]
    fn fail(&mut self, e: WireError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
        self.bytes = &[];
    }

    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.bytes.split_first() else {
            self.fail(WireError::Truncated);
            return 0;
        };
        self.bytes = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        let Some((head, rest)) = self.bytes.split_first_chunk::<4>() else {
            self.fail(WireError::Truncated);
            return 0;
        };
        self.bytes = rest;
        u32::from_le_bytes(*head)
    }

    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            let b = self.u8();
            let bits = u64::from(b & 0x7F);
            // The tenth byte may only carry the top bit of a u64; no overlong zero tails.
            if i == MAX_VARINT - 1 && b > 1 {
                break;
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    break;
                }
                return value;
            }
        }
        self.fail(WireError::Malformed);
        0
    }

    fn varint32(&mut self) -> u32 {
        let v = self.varint();
        u32::try_from(v).unwrap_or_else(|_| {
            self.fail(WireError::Malformed);
            0
        })
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if n > self.bytes.len() {
            self.fail(WireError::Truncated);
            return &[];
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }

    fn topic<T: TopicForm + ?Sized>(&mut self) -> &'a T {
        let len = usize::from(self.u8());
        let bytes = self.take(len);
        // The protocol's own topics never travel as messages.
        T::checked(bytes).unwrap_or_else(|| {
            self.fail(WireError::Malformed);
            T::empty()
        })
    }

    /// A flag byte: 0 is `false`, `set` is `true`, anything else is malformed.
    fn flag(&mut self, set: u8) -> bool {
        match self.u8() {
            0 => false,
            b if b == set => true,
            _ => {
                self.fail(WireError::Malformed);
                false
            }
        }
    }

    /// What went wrong first, if anything.
    fn finish_if_failed(&self) -> Result<(), WireError> {
        self.err.map_or(Ok(()), Err)
    }

    /// What went wrong first, or that bytes are left over.
    fn finish(&self) -> Result<(), WireError> {
        match self.err {
            Some(e) => Err(e),
            None if !self.bytes.is_empty() => Err(WireError::Malformed),
            None => Ok(()),
        }
    }

    fn data<T: TopicForm + ?Sized>(&mut self) -> Data<'a, T> {
        let flags = self.u8();
        if flags & !(0x03 | DATA_CONT | DATA_MORE) != 0 {
            self.fail(WireError::Malformed);
        }
        let seq = self.varint();
        let floor = self.varint();
        let id = self.varint();
        let (cont, more) = (flags & DATA_CONT != 0, flags & DATA_MORE != 0);
        let item = match (flags & 0x03, cont) {
            (DATA_REQUEST, false) => Item::Request {
                topic: self.topic(),
            },
            (DATA_REPLY, false) => {
                let req_id = self.varint();
                Item::Reply {
                    topic: self.topic(),
                    req_id,
                }
            }
            (DATA_REQUEST, true) => Item::Request { topic: T::empty() },
            (DATA_REPLY, true) => Item::Reply {
                topic: T::empty(),
                req_id: 0,
            },
            (DATA_END, _) => Item::End,
            _ => Item::Abort,
        };
        let frag = match (cont, more) {
            (false, false) => Frag::Whole,
            (false, true) => Frag::First {
                total: self.varint(),
            },
            (true, last) => Frag::Next {
                offset: self.varint(),
                last: !last,
            },
        };
        let payload = self.bytes;
        let len = payload.len() as u64;
        match frag {
            Frag::First { total } if total <= len => self.fail(WireError::Malformed),
            Frag::Next { offset: 0, .. } => self.fail(WireError::Malformed),
            _ => {}
        }
        Data {
            seq,
            floor,
            id,
            item,
            frag,
            payload,
        }
    }
}

impl<'a> Frame<'a> {
    /// Parses a decoded frame (COBS already removed) whose last four bytes are its CRC.
    ///
    /// Every field is checked: no input can make this panic.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, WireError> {
        parse(bytes)
    }
}

/// [`Frame::parse`], the topic seen as `T`.
pub(crate) fn parse<T: TopicForm + ?Sized>(bytes: &[u8]) -> Result<Frame<'_, T>, WireError> {
    let split = bytes
        .len()
        .checked_sub(CRC_LEN)
        .ok_or(WireError::Truncated)?;
    let (content, crc) = bytes.split_at(split);
    let crc: [u8; CRC_LEN] = crc.try_into().map_err(|_| WireError::Truncated)?;
    if crc32c(content) != u32::from_le_bytes(crc) {
        return Err(WireError::BadCrc);
    }
    let mut r = Reader {
        bytes: content,
        err: None,
    };
    let head = r.u8();
    r.finish_if_failed()?;
    if head >> 4 != VERSION {
        return Err(WireError::UnknownVersion(head >> 4));
    }
    let session = r.u32();
    let body = match head & 0x0F {
        KIND_DATA => {
            let data = r.data::<T>();
            // The payload is the rest: nothing is left over.
            r.finish_if_failed()?;
            Body::Data(data)
        }
        KIND_ACK => {
            let to_session = r.u32();
            let next = r.varint();
            let bitmap = r.varint32();
            let room = r.varint32();
            let window = r.varint32();
            let retry = r.flag(ACK_RETRY);
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
            let ask = r.flag(HEARTBEAT_ASK);
            let floor = r.varint();
            let room = r.varint32();
            let window = r.varint32();
            let max_payload = r.varint32();
            let max_topic = r.varint32();
            let max_message = r.varint();
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
        kind => {
            r.finish_if_failed()?;
            return Err(WireError::UnknownKind(kind));
        }
    };
    Ok(Frame { session, body })
}
