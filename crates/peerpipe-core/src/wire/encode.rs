//! Writing a frame as COBS bytes with its CRC and the closing `0x00`.

use super::cobs::CobsWriter;
use super::frame::{Body, Data, Frag, Frame, Item};
use super::{
    topic_ok, WireError, ACK_RETRY, DATA_ABORT, DATA_CONT, DATA_END, DATA_MORE, DATA_REPLY,
    DATA_REQUEST, HEARTBEAT_ASK, KIND_ACK, KIND_DATA, KIND_HEARTBEAT, VERSION,
};

fn put_varint(w: &mut CobsWriter<'_>, mut v: u64) {
    loop {
        let low = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            return w.push(low);
        }
        w.push(low | 0x80);
    }
}

/// A topic that [`data_ok`] checked (1 to 255 bytes), after its length.
fn put_topic(w: &mut CobsWriter<'_>, topic: &str) {
    w.push(u8::try_from(topic.len()).unwrap_or(u8::MAX));
    w.push_slice(topic.as_bytes())
}

/// Whether the parser would take this DATA frame's fields back: a valid topic on a whole
/// message or first fragment of a request or reply, a total above the payload's length on
/// a first fragment, an offset above zero on a later one.
fn data_ok(d: &Data<'_>) -> bool {
    let topic_fits = match (d.frag, d.item) {
        (Frag::Next { .. }, _) | (_, Item::End | Item::Abort) => true,
        (_, Item::Request { topic } | Item::Reply { topic, .. }) => topic_ok(topic),
    };
    topic_fits
        && match d.frag {
            Frag::Whole => true,
            Frag::First { total } => total > d.payload.len() as u64,
            Frag::Next { offset, .. } => offset > 0,
        }
}

/// Writes `frame` into `out` as COBS bytes with its CRC and the closing `0x00`; returns the
/// number of bytes written. A DATA frame the format forbids (a bad topic, a first fragment
/// no shorter than its message, a later one at offset 0) is [`WireError::Malformed`].
///
/// ```
/// use peerpipe_core::wire::{encode, Body, Caps, Decoder, Frame, Heartbeat};
///
/// let caps = Caps { max_payload: 128, max_topic: 32, max_message: 0 };
/// let hb = Heartbeat { floor: 3, room: 2, window: 256, caps, ask: false };
/// let frame = Frame { session: 7, body: Body::Heartbeat(hb) };
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
        Body::Heartbeat(_) => KIND_HEARTBEAT,
    };
    w.push((VERSION << 4) | kind);
    w.push_slice(&frame.session.to_le_bytes());
    match frame.body {
        Body::Data(d) => {
            if !data_ok(&d) {
                return Err(WireError::Malformed);
            }
            let kind = match d.item {
                Item::Request { .. } => DATA_REQUEST,
                Item::Reply { .. } => DATA_REPLY,
                Item::End => DATA_END,
                Item::Abort => DATA_ABORT,
            };
            let frag = match d.frag {
                Frag::Whole => 0,
                Frag::First { .. } => DATA_MORE,
                Frag::Next { last: true, .. } => DATA_CONT,
                Frag::Next { last: false, .. } => DATA_CONT | DATA_MORE,
            };
            w.push(kind | frag);
            put_varint(&mut w, d.seq);
            put_varint(&mut w, d.floor);
            put_varint(&mut w, d.id);
            match d.frag {
                Frag::Next { offset, .. } => put_varint(&mut w, offset),
                Frag::Whole | Frag::First { .. } => {
                    match d.item {
                        Item::Request { topic } => put_topic(&mut w, topic),
                        Item::Reply { topic, req_id } => {
                            put_varint(&mut w, req_id);
                            put_topic(&mut w, topic);
                        }
                        Item::End | Item::Abort => {}
                    }
                    if let Frag::First { total } = d.frag {
                        put_varint(&mut w, total);
                    }
                }
            }
            w.push_slice(d.payload);
        }
        Body::Ack(a) => {
            w.push_slice(&a.to_session.to_le_bytes());
            put_varint(&mut w, a.next);
            put_varint(&mut w, u64::from(a.bitmap));
            put_varint(&mut w, u64::from(a.room));
            put_varint(&mut w, u64::from(a.window));
            w.push(if a.retry { ACK_RETRY } else { 0 });
        }
        Body::Heartbeat(h) => {
            w.push(if h.ask { HEARTBEAT_ASK } else { 0 });
            put_varint(&mut w, h.floor);
            put_varint(&mut w, u64::from(h.room));
            put_varint(&mut w, u64::from(h.window));
            put_varint(&mut w, u64::from(h.caps.max_payload));
            put_varint(&mut w, u64::from(h.caps.max_topic));
            put_varint(&mut w, h.caps.max_message);
        }
    }
    w.finish()
}
