//! One endpoint against an adversarial peer and an arbitrary application: raw bytes, well-formed
//! frames with arbitrary fields, time jumps, sends, END/ABORT, pause/resume/stop.
//!
//! Checked besides "never panics":
//! - `poll_transmit` with a `MAX_FRAME_LEN` buffer never fails, always runs dry, and every frame
//!   it writes decodes, carrying this endpoint's session;
//! - `handle_timeout` before the deadline changes nothing; after handling a deadline and draining
//!   the output, the next deadline is later than now (a driver never spins);
//! - every `SendOutcome` names an id that `send`/`notify_*` returned, once; and once time has
//!   run far enough, every send has its outcome;
//! - after `stop`, nothing is transmitted and only send outcomes are reported.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use peerpipe_core::wire::{encode, Ack, Body, Data, Decoder, Frame, Item};
use peerpipe_core::{validate_topic, Config, Duration, Endpoint, Event, Instant, Message, MsgId};

type Ep = Endpoint;

const FRAME: usize = <Ep>::MAX_FRAME_LEN;
const PEER: u32 = 0x5EED_0001;
const PEER_RESTARTED: u32 = 0x5EED_0002;
const US: u32 = 0xA11C_E000;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw bytes from the transport.
    Bytes(Vec<u8>),
    /// A well-formed frame from the peer, fed in chunks of `chunk + 1` bytes.
    Peer {
        session: Session,
        body: PeerBody,
        chunk: u8,
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
enum Session {
    Peer,
    Restarted,
    Us,
    Other(u32),
}

#[derive(Arbitrary, Debug)]
enum Topic {
    Short,
    Longest,
    TooLong,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum PeerBody {
    Heartbeat {
        floor: u8,
    },
    Ack {
        to_us: bool,
        next: u8,
        bitmap: u32,
        room: u8,
        retry: bool,
    },
    Request {
        seq: u8,
        floor: u8,
        topic: Topic,
        payload: Vec<u8>,
    },
    Reply {
        seq: u8,
        floor: u8,
        req_id: u8,
        topic: Topic,
        payload: Vec<u8>,
    },
    End {
        seq: u8,
        floor: u8,
        payload: Vec<u8>,
    },
    Abort {
        seq: u8,
        floor: u8,
        payload: Vec<u8>,
    },
    Extreme {
        seq: u64,
        floor: u64,
        next: u64,
    },
}

impl Topic {
    fn as_str(&self) -> &str {
        match self {
            Topic::Short => "t",
            Topic::Longest => "topic_of_exactly_32_bytes_012345",
            Topic::TooLong => "topic_of_33_bytes_0123456789abcde",
            Topic::Any(s) => s,
        }
    }
}

struct Harness {
    ep: Ep,
    now: Instant,
    issued: BTreeSet<MsgId>,
    settled: BTreeSet<MsgId>,
    stopped: bool,
    out: [u8; FRAME],
    check: Decoder<FRAME>,
}

impl Harness {
    fn transmit(&mut self) {
        for _ in 0..256 {
            match self.ep.poll_transmit(self.now, &mut self.out) {
                Ok(Some(n)) => {
                    assert!(!self.stopped, "transmitted after stop");
                    assert!((2..=FRAME).contains(&n));
                    let (used, frame) = self.check.feed(&self.out[..n]);
                    assert_eq!(used, n);
                    match frame {
                        Some(Ok(frame)) => assert_eq!(frame.session, US),
                        other => panic!("transmitted an undecodable frame: {other:?}"),
                    }
                }
                Ok(None) => return,
                Err(e) => panic!("poll_transmit with MAX_FRAME_LEN bytes failed: {e:?}"),
            }
        }
        panic!("poll_transmit never runs dry");
    }

    fn events(&mut self) {
        for _ in 0..1024 {
            let Some(event) = self.ep.poll_event() else {
                return;
            };
            match event {
                Event::SendOutcome { id, .. } => {
                    assert!(
                        self.issued.contains(&id),
                        "outcome for {id:?}, never issued"
                    );
                    assert!(self.settled.insert(id), "second outcome for {id:?}");
                }
                other if self.stopped => panic!("{other:?} after stop"),
                Event::Message(m) => {
                    assert!(
                        validate_topic(m.topic(), 32).is_ok(),
                        "bad topic {:?}",
                        m.topic()
                    );
                }
                _ => {}
            }
        }
        panic!("poll_event never runs dry");
    }

    fn timeout(&mut self) -> bool {
        let Some(at) = self.ep.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.ep.handle_timeout(self.now);
        self.transmit();
        self.events();
        if let Some(next) = self.ep.poll_timeout() {
            assert!(
                next > self.now,
                "deadline {next:?} not after now {:?}",
                self.now
            );
        }
        true
    }

    fn issue(&mut self, result: Result<MsgId, peerpipe_core::Error>) {
        if let Ok(id) = result {
            assert!(self.issued.insert(id), "{id:?} issued twice");
        }
    }
}

fn data<'a>(seq: &u8, floor: &u8, item: Item<'a>, payload: &'a [u8]) -> Body<'a> {
    Body::Data(Data {
        seq: u64::from(*seq),
        floor: u64::from(*floor),
        item,
        payload,
    })
}

fn peer_frame(session: Session, body: &PeerBody, out: &mut [u8]) -> Option<usize> {
    let session = match session {
        Session::Peer => PEER,
        Session::Restarted => PEER_RESTARTED,
        Session::Us => US,
        Session::Other(s) => s,
    };
    let body = match body {
        PeerBody::Heartbeat { floor } => Body::Heartbeat {
            floor: u64::from(*floor),
            room: 3,
        },
        PeerBody::Ack {
            to_us,
            next,
            bitmap,
            room,
            retry,
        } => Body::Ack(Ack {
            to_session: if *to_us { US } else { PEER },
            next: u64::from(*next),
            bitmap: *bitmap,
            room: *room,
            retry: *retry,
        }),
        PeerBody::Request {
            seq,
            floor,
            topic,
            payload,
        } => data(
            seq,
            floor,
            Item::Request {
                topic: topic.as_str(),
            },
            payload,
        ),
        PeerBody::Reply {
            seq,
            floor,
            req_id,
            topic,
            payload,
        } => data(
            seq,
            floor,
            Item::Reply {
                topic: topic.as_str(),
                req_id: u64::from(*req_id),
            },
            payload,
        ),
        PeerBody::End {
            seq,
            floor,
            payload,
        } => data(seq, floor, Item::End, payload),
        PeerBody::Abort {
            seq,
            floor,
            payload,
        } => data(seq, floor, Item::Abort, payload),
        PeerBody::Extreme { seq, floor, next } => {
            if seq % 2 == 0 {
                Body::Data(Data {
                    seq: *seq,
                    floor: *floor,
                    item: Item::Request { topic: "x" },
                    payload: b"",
                })
            } else {
                Body::Ack(Ack {
                    to_session: US,
                    next: *next,
                    bitmap: u32::MAX,
                    room: 3,
                    retry: true,
                })
            }
        }
    };
    // Frames the encoder refuses (e.g. a topic longer than 255 bytes) are simply not sent.
    encode(&Frame { session, body }, out).ok()
}

fuzz_target!(|ops: Vec<Op>| {
    // Heartbeat 5 s, peer gone after 30 s, resend every 2 s at most 5 times, timeout 5 s.
    let config = Config::default();
    let now = Instant::from_millis(1_000);
    let mut h = Harness {
        ep: Endpoint::new(config, US, now).expect("valid config"),
        now,
        issued: BTreeSet::new(),
        settled: BTreeSet::new(),
        stopped: false,
        out: [0; FRAME],
        check: Decoder::new(),
    };
    let mut wire = vec![0u8; 4096];

    for op in ops.iter().take(256) {
        match op {
            Op::Bytes(bytes) => h.ep.handle_bytes(h.now, bytes),
            Op::Peer {
                session,
                body,
                chunk,
            } => {
                if let Some(n) = peer_frame(*session, body, &mut wire) {
                    for part in wire[..n].chunks(usize::from(*chunk) + 1) {
                        h.ep.handle_bytes(h.now, part);
                    }
                }
            }
            Op::Advance(ms) => h.now = h.now + Duration::from_millis(u64::from(*ms)),
            Op::Timeout => {
                h.timeout();
            }
            Op::EarlyTimeout => {
                if h.ep.poll_timeout().is_none_or(|at| at > h.now) {
                    let before = format!("{:?}", h.ep);
                    h.ep.handle_timeout(h.now);
                    assert_eq!(
                        before,
                        format!("{:?}", h.ep),
                        "an early handle_timeout changed the endpoint"
                    );
                }
            }
            Op::Send {
                topic,
                payload,
                reply_to,
                timeout_ms,
            } => {
                let message = match reply_to {
                    None => Message::request(topic.as_str(), payload),
                    Some(r) => Message::reply(topic.as_str(), payload, MsgId(u64::from(*r))),
                };
                if let Ok(message) = message {
                    let timeout = timeout_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                    let result = h.ep.send(h.now, message, timeout);
                    h.issue(result);
                }
            }
            Op::End(data) => {
                let result = h.ep.notify_end(h.now, data);
                h.issue(result);
            }
            Op::Abort(data) => {
                let result = h.ep.notify_abort(h.now, data);
                h.issue(result);
            }
            Op::Pause => h.ep.pause(h.now),
            Op::Resume => h.ep.resume(h.now),
            Op::Stop => {
                h.ep.stop();
                h.stopped = true;
            }
            Op::TransportLost => h.ep.transport_lost(),
            Op::Transmit => h.transmit(),
            Op::Events => h.events(),
        }
    }

    // Let time run out: every send must settle.
    h.transmit();
    h.events();
    let mut rounds = 0;
    while h.timeout() {
        rounds += 1;
        assert!(rounds < 10_000, "deadlines never end");
        if h.issued.len() == h.settled.len() {
            break;
        }
    }
    let unsettled: Vec<_> = h.issued.difference(&h.settled).collect();
    assert!(
        unsettled.is_empty(),
        "sends without an outcome after {:?}: {unsettled:?}",
        h.now
    );
});
