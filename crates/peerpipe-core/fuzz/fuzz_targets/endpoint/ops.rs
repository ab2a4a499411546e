//! The fuzz input: the operations, and the peer's frames they describe.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use peerpipe_core::wire::{encode, Ack, Body, Caps, Data, Frag, Frame, Heartbeat, Item};

use crate::{PEER, PEER_RESTARTED, US};

#[derive(Arbitrary, Debug)]
pub(crate) enum Op {
    /// Raw bytes from the transport.
    Bytes(Vec<u8>),
    /// A well-formed frame from the peer, fed in chunks of `chunk + 1` bytes.
    Peer {
        session: Session,
        body: PeerBody,
        chunk: u8,
    },
    /// A message from the peer in fragments of `cut + 1` bytes, consecutive sequence numbers
    /// from `seq`, without the fragment at index `skip` (if there is one).
    Fragments {
        session: Session,
        seq: u8,
        floor: u8,
        id: u8,
        kind: PeerKind,
        data: Vec<u8>,
        cut: u8,
        skip: u8,
    },
    /// Time passes without a call.
    Advance(u16),
    /// Time jumps to the next deadline, which is handled.
    Timeout,
    /// `handle_timeout` before any deadline.
    EarlyTimeout,
    Send {
        topic: Topic,
        payload: Vec<u8>,
        reply_to: Option<u8>,
        timeout_ms: Option<u16>,
    },
    /// A message of `len` bytes read from the source.
    SendFrom {
        kind: PeerKind,
        len: u16,
        timeout_ms: Option<u16>,
    },
    /// The source's bytes (repeated to any length) change.
    SourceBytes(Vec<u8>),
    /// The source cannot supply bytes at or beyond this offset (`None`: it supplies all).
    SourceFailAt(Option<u16>),
    End(Vec<u8>),
    Abort(Vec<u8>),
    Pause,
    Resume,
    Stop,
    TransportLost,
    Transmit,
    Events,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Session {
    Peer,
    Restarted,
    Us,
    Other(u32),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Topic {
    Short,
    Longest,
    TooLong,
    Any(String),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum PeerKind {
    Request(Topic),
    Reply(Topic, u8),
    End,
    Abort,
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Shape {
    Whole,
    First(u16),
    Next(u16, bool),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum PeerBody {
    Heartbeat {
        floor: u8,
        room: u8,
        window: u16,
        max_payload: u16,
        max_topic: u8,
        max_message: u16,
        ask: bool,
    },
    Ack {
        to_us: bool,
        next: u8,
        bitmap: u32,
        room: u8,
        window: u16,
        retry: bool,
    },
    Data {
        seq: u8,
        floor: u8,
        id: u8,
        kind: PeerKind,
        shape: Shape,
        payload: Vec<u8>,
    },
    Extreme {
        seq: u64,
        floor: u64,
        next: u64,
        max_payload: u32,
        max_topic: u32,
        max_message: u64,
    },
}

impl Topic {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Topic::Short => "t",
            Topic::Longest => "topic_of_exactly_32_bytes_012345",
            Topic::TooLong => "topic_of_33_bytes_0123456789abcde",
            Topic::Any(s) => s,
        }
    }
}

impl PeerKind {
    pub(crate) fn item(&self) -> Item<'_> {
        match self {
            PeerKind::Request(t) => Item::Request { topic: t.as_str() },
            PeerKind::Reply(t, r) => Item::Reply {
                topic: t.as_str(),
                req_id: u64::from(*r),
            },
            PeerKind::End => Item::End,
            PeerKind::Abort => Item::Abort,
        }
    }
}

pub(crate) fn session_id(session: Session) -> u32 {
    match session {
        Session::Peer => PEER,
        Session::Restarted => PEER_RESTARTED,
        Session::Us => US,
        Session::Other(s) => s,
    }
}

pub(crate) fn peer_frame(session: Session, body: &PeerBody, out: &mut [u8]) -> Option<usize> {
    let body = match body {
        PeerBody::Heartbeat {
            floor,
            room,
            window,
            max_payload,
            max_topic,
            max_message,
            ask,
        } => Body::Heartbeat(Heartbeat {
            floor: u64::from(*floor),
            room: u32::from(*room),
            window: u32::from(*window),
            caps: Caps {
                max_payload: u32::from(*max_payload),
                max_topic: u32::from(*max_topic),
                max_message: u64::from(*max_message),
            },
            ask: *ask,
        }),
        PeerBody::Ack {
            to_us,
            next,
            bitmap,
            room,
            window,
            retry,
        } => Body::Ack(Ack {
            to_session: if *to_us { US } else { PEER },
            next: u64::from(*next),
            bitmap: *bitmap,
            room: u32::from(*room),
            window: u32::from(*window),
            retry: *retry,
        }),
        PeerBody::Data {
            seq,
            floor,
            id,
            kind,
            shape,
            payload,
        } => Body::Data(Data {
            seq: u64::from(*seq),
            floor: u64::from(*floor),
            id: u64::from(*id),
            item: kind.item(),
            frag: match shape {
                Shape::Whole => Frag::Whole,
                Shape::First(total) => Frag::First {
                    total: u64::from(*total),
                },
                Shape::Next(offset, last) => Frag::Next {
                    offset: u64::from(*offset),
                    last: *last,
                },
            },
            payload,
        }),
        PeerBody::Extreme {
            seq,
            floor,
            next,
            max_payload,
            max_topic,
            max_message,
        } => match seq % 3 {
            0 => Body::Data(Data {
                seq: *seq,
                floor: *floor,
                id: *next,
                item: Item::Request { topic: "x" },
                frag: Frag::Next {
                    offset: next.saturating_add(1),
                    last: floor % 2 == 0,
                },
                payload: b"",
            }),
            1 => Body::Ack(Ack {
                to_session: US,
                next: *next,
                bitmap: u32::MAX,
                room: u32::MAX,
                window: u32::MAX,
                retry: true,
            }),
            _ => Body::Heartbeat(Heartbeat {
                floor: *floor,
                room: u32::MAX,
                window: u32::MAX,
                caps: Caps {
                    max_payload: *max_payload,
                    max_topic: *max_topic,
                    max_message: *max_message,
                },
                ask: true,
            }),
        },
    };
    // Frames the encoder refuses (a topic longer than 255 bytes, a frame longer than `out`)
    // are simply not sent.
    encode(
        &Frame {
            session: session_id(session),
            body,
        },
        out,
    )
    .ok()
}
