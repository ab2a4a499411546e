//! Frames as the tap sees them: decoded DATA, ACK and heartbeat frames, and payloads that
//! carry the tag of their send record.

use peerpipe_core::wire::{Ack, Body, Decoder, Frag, Frame, Item, WireError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemRec {
    Request(String),
    Reply(String, u64),
    End,
    Abort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    Data {
        session: u32,
        seq: u64,
        floor: u64,
        id: u64,
        item: ItemRec,
        frag: Frag,
        payload: Vec<u8>,
    },
    Ack {
        session: u32,
        to_session: u32,
        /// What it acknowledges (see [`Ack::covers`]).
        ack: Ack,
        retry: bool,
    },
    Heartbeat {
        session: u32,
    },
}

impl Seen {
    pub(crate) fn session(&self) -> u32 {
        match *self {
            Seen::Data { session, .. }
            | Seen::Ack { session, .. }
            | Seen::Heartbeat { session } => session,
        }
    }
}

pub(crate) fn seen(frame: &Frame<'_>) -> Seen {
    match &frame.body {
        Body::Data(d) => Seen::Data {
            session: frame.session,
            seq: d.seq,
            floor: d.floor,
            id: d.id,
            frag: d.frag,
            item: match d.item {
                Item::Request { topic } => ItemRec::Request(topic.to_owned()),
                Item::Reply { topic, req_id } => ItemRec::Reply(topic.to_owned(), req_id),
                Item::End => ItemRec::End,
                Item::Abort => ItemRec::Abort,
            },
            payload: d.payload.to_vec(),
        },
        Body::Ack(a) => Seen::Ack {
            session: frame.session,
            to_session: a.to_session,
            ack: *a,
            retry: a.retry,
        },
        Body::Heartbeat { .. } => Seen::Heartbeat {
            session: frame.session,
        },
    }
}

/// Feeds `bytes` to `decoder` and returns every frame (or error) it completes.
pub(crate) fn decode_all<const N: usize>(
    decoder: &mut Decoder<N>,
    mut bytes: &[u8],
) -> Vec<Result<Seen, WireError>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (used, result) = decoder.feed(bytes);
        if let Some(r) = result {
            out.push(r.map(|f| seen(&f)));
        }
        assert!(used > 0, "decoder consumed nothing");
        bytes = &bytes[used..];
    }
    out
}

/// A payload of `len` bytes (at least 4) that starts with `tag`.
pub(crate) fn tagged(tag: usize, len: usize) -> Vec<u8> {
    let mut p = (tag as u32).to_le_bytes().to_vec();
    p.extend((4..len.max(4)).map(|i| (tag.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8));
    p
}

pub(crate) fn tag_of(payload: &[u8]) -> usize {
    let head: [u8; 4] = payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| panic!("payload {payload:?} carries no tag: never sent"));
    u32::from_le_bytes(head) as usize
}
