//! The wire codec on arbitrary bytes: `Frame::parse` and the stream `Decoder` never panic, the
//! decoder always makes progress, and every frame it yields re-encodes to bytes that decode to
//! the same frame.
//!
//! The same bytes also describe frames field by field (DATA of every kind and fragment shape,
//! ACK, HEARTBEAT with capabilities), which are encoded and decoded again: a frame the format
//! allows comes back as it went (a continuation without its topic and `req_id`), one it forbids
//! (a first fragment whose `total` is not above its payload length, a continuation at offset 0,
//! a bad topic) is refused as malformed, and none is longer on the wire than
//! `max_encoded_len` of its payload and topic.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peerpipe_core::validate_topic;
use peerpipe_core::wire::{
    encode, max_encoded_len, Ack, Body, Caps, Data, Decoder, Frag, Frame, Heartbeat, Item,
    WireError,
};

/// The decoder of a default endpoint (128-byte payloads, 32-byte topics).
const N: usize = max_encoded_len(128, 32);

/// Re-encoding room: a decoded frame may be re-encoded a little longer than it came in.
const OUT: usize = 2 * N;

/// Room for any frame described below (payloads and topics of up to 255 bytes).
const BIG: usize = max_encoded_len(1024, 255);

fuzz_target!(|data: &[u8]| {
    // Parsing raw (already COBS-decoded) bytes.
    if let Ok(frame) = Frame::parse(data) {
        check_round_trip(&frame);
    }

    // The stream decoder, in chunks whose size the first byte picks (1..=256).
    let chunk = usize::from(data.first().copied().unwrap_or(0)) + 1;
    let mut decoder = Decoder::<N>::new();
    for mut part in data.chunks(chunk) {
        while !part.is_empty() {
            let (used, result) = decoder.feed(part);
            assert!(
                used >= 1 && used <= part.len(),
                "feed consumed {used} of {}",
                part.len()
            );
            if let Some(Ok(frame)) = result {
                check_round_trip(&frame);
            }
            part = &part[used..];
        }
    }

    // The same bytes as frames described field by field, encoded back to back into one
    // stream, then decoded again from it.
    let mut u = Unstructured::new(data);
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..16 {
        let Ok(spec) = Spec::arbitrary(&mut u) else {
            break;
        };
        let frame = spec.frame();
        let mut buf = [0u8; BIG];
        let Ok(n) = encode(&frame, &mut buf) else {
            // Only a topic longer than 255 bytes cannot be written.
            assert!(spec.topic.len() > 255, "{frame:?} does not encode");
            continue;
        };
        if let Body::Data(d) = frame.body {
            let topic = spec.topic.len().min(255);
            assert!(
                n <= max_encoded_len(d.payload.len(), topic),
                "{n} bytes on the wire for {frame:?}"
            );
        }
        stream.extend_from_slice(&buf[..n]);
        expected.push(spec.expect(&frame));
    }
    let mut decoder = Decoder::<BIG>::new();
    let mut got = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let (used, result) = decoder.feed(rest);
        match result {
            Some(Ok(frame)) => got.push(Ok(format!("{frame:?}"))),
            Some(Err(e)) => got.push(Err(e)),
            None => {}
        }
        rest = &rest[used..];
    }
    assert_eq!(got, expected);
});

fn check_round_trip(frame: &Frame<'_>) {
    let mut buf = [0u8; OUT];
    let n = encode(frame, &mut buf).expect("a decoded frame encodes");
    assert_eq!(buf[n - 1], 0);
    assert!(!buf[..n - 1].contains(&0));
    let mut decoder = Decoder::<OUT>::new();
    let (used, again) = decoder.feed(&buf[..n]);
    assert_eq!(used, n);
    assert_eq!(again, Some(Ok(*frame)));
    if let Body::Data(d) = frame.body {
        match d.frag {
            Frag::First { total } => assert!(total > d.payload.len() as u64),
            Frag::Next { offset, .. } => {
                assert!(offset > 0);
                // A continuation carries no topic and no req_id.
                assert!(matches!(
                    d.item,
                    Item::Request { topic: "" }
                        | Item::Reply {
                            topic: "",
                            req_id: 0
                        }
                        | Item::End
                        | Item::Abort
                ));
            }
            Frag::Whole => {}
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Request,
    Reply(u64),
    End,
    Abort,
}

#[derive(Arbitrary, Debug)]
enum Shape {
    Whole,
    First(u64),
    Next(u64, bool),
}

#[derive(Arbitrary, Debug)]
enum What {
    Data {
        seq: u64,
        floor: u64,
        id: u64,
        kind: Kind,
        shape: Shape,
        payload: Vec<u8>,
    },
    Ack {
        to_session: u32,
        next: u64,
        bitmap: u32,
        room: u32,
        window: u32,
        retry: bool,
    },
    Heartbeat {
        floor: u64,
        room: u32,
        window: u32,
        max_payload: u32,
        max_topic: u32,
        max_message: u64,
        ask: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Spec {
    session: u32,
    what: What,
    topic: String,
}

impl Spec {
    fn frame(&self) -> Frame<'_> {
        let body = match &self.what {
            What::Data {
                seq,
                floor,
                id,
                kind,
                shape,
                payload,
            } => {
                let topic = self.topic.as_str();
                Body::Data(Data {
                    seq: *seq,
                    floor: *floor,
                    id: *id,
                    item: match kind {
                        Kind::Request => Item::Request { topic },
                        Kind::Reply(req_id) => Item::Reply {
                            topic,
                            req_id: *req_id,
                        },
                        Kind::End => Item::End,
                        Kind::Abort => Item::Abort,
                    },
                    frag: match shape {
                        Shape::Whole => Frag::Whole,
                        Shape::First(total) => Frag::First { total: *total },
                        Shape::Next(offset, last) => Frag::Next {
                            offset: *offset,
                            last: *last,
                        },
                    },
                    payload: &payload[..payload.len().min(1024)],
                })
            }
            What::Ack {
                to_session,
                next,
                bitmap,
                room,
                window,
                retry,
            } => Body::Ack(Ack {
                to_session: *to_session,
                next: *next,
                bitmap: *bitmap,
                room: *room,
                window: *window,
                retry: *retry,
            }),
            What::Heartbeat {
                floor,
                room,
                window,
                max_payload,
                max_topic,
                max_message,
                ask,
            } => Body::Heartbeat(Heartbeat {
                floor: *floor,
                room: *room,
                window: *window,
                caps: Caps {
                    max_payload: *max_payload,
                    max_topic: *max_topic,
                    max_message: *max_message,
                },
                ask: *ask,
            }),
        };
        Frame {
            session: self.session,
            body,
        }
    }

    /// What decoding the encoded `frame` must give: the frame as the format carries it, or
    /// `Malformed` when it breaks a rule of the format.
    fn expect(&self, frame: &Frame<'_>) -> Result<String, WireError> {
        let Body::Data(d) = frame.body else {
            return Ok(format!("{frame:?}"));
        };
        let len = d.payload.len() as u64;
        let topic_ok = |t: &str| validate_topic(t, 255).is_ok();
        let malformed = match (d.frag, d.item) {
            (Frag::First { total }, _) if total <= len => true,
            (Frag::Next { offset: 0, .. }, _) => true,
            (Frag::Whole | Frag::First { .. }, Item::Request { topic })
            | (Frag::Whole | Frag::First { .. }, Item::Reply { topic, .. }) => !topic_ok(topic),
            _ => false,
        };
        if malformed {
            return Err(WireError::Malformed);
        }
        // A continuation carries neither topic nor req_id.
        let item = match (d.frag, d.item) {
            (Frag::Next { .. }, Item::Request { .. }) => Item::Request { topic: "" },
            (Frag::Next { .. }, Item::Reply { .. }) => Item::Reply {
                topic: "",
                req_id: 0,
            },
            (_, item) => item,
        };
        Ok(format!(
            "{:?}",
            Frame {
                session: frame.session,
                body: Body::Data(Data { item, ..d }),
            }
        ))
    }
}
