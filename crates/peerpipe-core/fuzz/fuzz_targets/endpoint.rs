//! One endpoint against an adversarial peer and an arbitrary application: raw bytes, well-formed
//! frames with arbitrary fields (heartbeats with any capabilities, DATA of every fragment shape,
//! runs of fragments with gaps), time jumps, inline sends and sends from a `Source` over an
//! arbitrary byte buffer, END/ABORT, pause/resume/stop.
//!
//! Checked besides "never panics":
//! - `poll_transmit_from` with a `MAX_FRAME_LEN` buffer never fails, always runs dry, and every
//!   frame it writes decodes, carrying this endpoint's session;
//! - no DATA goes out before a heartbeat announced capabilities, and none carries more payload
//!   or a longer topic than the largest `max_payload` and `max_topic` announced;
//! - every DATA frame carries a fragment of a message this endpoint was given, with the bytes
//!   of that message (inline, or from the source as it was when the frame was built) at the
//!   fragment's offset, and a shape (`Whole`, `First { total }`, `Next { offset, last }`) that
//!   fits the message's length; `progress` never exceeds the length;
//! - `handle_timeout` before the deadline changes nothing; after handling a deadline and draining
//!   the output, the next deadline is later than now (a driver never spins);
//! - every `SendOutcome` names an id that a send returned, once; and once time has run far
//!   enough, every send has its outcome;
//! - the parts of a message come in order, from offset 0, each where the last ended, with the
//!   first part's kind, topic and total, until the last part or a `Cut` of that message; and
//!   nothing but send outcomes comes between them;
//! - after `stop`, nothing is transmitted and only send outcomes are reported.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use peerpipe_core::wire::{encode, Body, Data, Decoder, Frag, Frame, Item};
use peerpipe_core::{
    validate_topic, Config, Duration, Endpoint, Event, Instant, Message, MsgId, PartKind, Source,
};

// Not `fuzz_targets/ops.rs`: every file there is a fuzz target (cargo xtask fuzz).
#[path = "endpoint/ops.rs"]
mod ops;

use ops::{peer_frame, session_id, Op};

type Ep = Endpoint;

const FRAME: usize = <Ep>::MAX_FRAME_LEN;
const PEER: u32 = 0x5EED_0001;
const PEER_RESTARTED: u32 = 0x5EED_0002;
const US: u32 = 0xA11C_E000;

/// The application's source: `bytes` repeated to any length, readable below `fail_at`.
struct Repeat {
    bytes: Vec<u8>,
    fail_at: Option<u64>,
    scratch: Vec<u8>,
}

impl Repeat {
    fn byte(&self, at: u64) -> Option<u8> {
        if self.bytes.is_empty() || self.fail_at.is_some_and(|f| at >= f) {
            return None;
        }
        Some(self.bytes[(at % self.bytes.len() as u64) as usize])
    }
}

impl Source for Repeat {
    fn read(&mut self, _id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        self.scratch.clear();
        for i in 0..len as u64 {
            let b = self.byte(offset + i)?;
            self.scratch.push(b);
        }
        Some(&self.scratch)
    }
}

/// What this endpoint was given to send.
enum Sent {
    Inline(Vec<u8>),
    Sourced(u64),
}

/// The message whose parts are arriving.
struct Following {
    id: MsgId,
    kind: PartKind,
    topic: String,
    total: u64,
    next: u64,
}

struct Harness {
    ep: Ep,
    now: Instant,
    issued: BTreeSet<MsgId>,
    settled: BTreeSet<MsgId>,
    sent: BTreeMap<u64, Sent>,
    source: Repeat,
    stopped: bool,
    following: Option<Following>,
    out: [u8; FRAME],
    check: Decoder<FRAME>,
    /// Sees every byte the endpoint is fed, to know the capabilities announced to it.
    shadow: Decoder<FRAME>,
    /// The largest `max_payload` and `max_topic` of any heartbeat fed, once one was.
    announced: Option<(u32, u32)>,
}

impl Harness {
    fn feed(&mut self, bytes: &[u8]) {
        self.ep.handle_bytes(self.now, bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, frame) = self.shadow.feed(rest);
            if let Some(Ok(Frame {
                body: Body::Heartbeat(hb),
                ..
            })) = frame
            {
                let (payload, topic) = self.announced.unwrap_or_default();
                self.announced = Some((
                    payload.max(hb.caps.max_payload),
                    topic.max(hb.caps.max_topic),
                ));
            }
            rest = &rest[used..];
        }
    }

    fn transmit(&mut self) {
        for _ in 0..256 {
            match self
                .ep
                .poll_transmit_from(self.now, &mut self.out, &mut self.source)
            {
                Ok(Some(n)) => {
                    assert!(!self.stopped, "transmitted after stop");
                    assert!((2..=FRAME).contains(&n));
                    let (used, frame) = self.check.feed(&self.out[..n]);
                    assert_eq!(used, n);
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        other => panic!("transmitted an undecodable frame: {other:?}"),
                    };
                    assert_eq!(frame.session, US);
                    if let Body::Data(d) = frame.body {
                        let Some((max_payload, max_topic)) = self.announced else {
                            panic!("DATA before any capabilities: {d:?}");
                        };
                        assert!(
                            d.payload.len() <= max_payload as usize,
                            "a fragment of {} bytes to a peer that takes {max_payload}",
                            d.payload.len()
                        );
                        if let Item::Request { topic } | Item::Reply { topic, .. } = d.item {
                            assert!(
                                topic.len() <= max_topic as usize,
                                "topic {topic:?} to a peer that takes {max_topic} bytes"
                            );
                        }
                        check_fragment(&self.sent, &self.source, &d);
                    }
                }
                Ok(None) => return,
                Err(e) => panic!("poll_transmit_from with MAX_FRAME_LEN bytes failed: {e:?}"),
            }
        }
        panic!("poll_transmit_from never runs dry");
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
                Event::Part(part) => {
                    if part.is_first() {
                        assert!(
                            self.following.is_none(),
                            "a first part while another message was arriving: {part:?}"
                        );
                        assert!(part.total() > part.data().len() as u64, "{part:?}");
                        match part.kind() {
                            PartKind::Request | PartKind::Reply { .. } => assert!(
                                validate_topic(part.topic(), 32).is_ok(),
                                "bad topic {:?}",
                                part.topic()
                            ),
                            PartKind::End | PartKind::Abort => assert!(part.topic().is_empty()),
                        }
                        self.following = Some(Following {
                            id: part.id(),
                            kind: part.kind(),
                            topic: part.topic().to_owned(),
                            total: part.total(),
                            next: 0,
                        });
                    }
                    let Some(f) = self.following.as_mut() else {
                        panic!("a part of no message: {part:?}");
                    };
                    assert_eq!(
                        (f.id, f.kind, f.topic.as_str(), f.total, f.next),
                        (
                            part.id(),
                            part.kind(),
                            part.topic(),
                            part.total(),
                            part.offset()
                        ),
                        "a part that does not continue its message"
                    );
                    f.next += part.data().len() as u64;
                    if part.is_last() {
                        self.following = None;
                    }
                }
                Event::Cut { id, .. } => {
                    let f = self.following.take();
                    assert_eq!(f.map(|f| f.id), Some(id), "a cut of no message");
                }
                other => {
                    assert!(
                        self.following.is_none(),
                        "{other:?} between the parts of a message"
                    );
                    if let Event::Message(m) = other {
                        assert!(
                            validate_topic(m.topic(), 32).is_ok(),
                            "bad topic {:?}",
                            m.topic()
                        );
                    }
                }
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

    fn issue(&mut self, result: Result<MsgId, peerpipe_core::Error>, sent: Sent) {
        if let Ok(id) = result {
            assert!(self.issued.insert(id), "{id:?} issued twice");
            self.sent.insert(id.0, sent);
        }
    }

    fn check_progress(&self) {
        for (&id, sent) in &self.sent {
            let len = match sent {
                Sent::Inline(v) => v.len() as u64,
                Sent::Sourced(n) => *n,
            };
            if let Some((acked, total)) = self.ep.progress(MsgId(id)) {
                assert_eq!(total, len, "progress of {id}");
                assert!(acked <= total, "progress of {id}: {acked} of {total}");
            }
        }
    }
}

/// A transmitted DATA frame carries a fragment of a message it was given, with its bytes.
fn check_fragment(sent: &BTreeMap<u64, Sent>, source: &Repeat, d: &Data<'_>) {
    let Some(msg) = sent.get(&d.id) else {
        panic!("DATA of a message never sent: {d:?}");
    };
    let total = match msg {
        Sent::Inline(v) => v.len() as u64,
        Sent::Sourced(n) => *n,
    };
    let len = d.payload.len() as u64;
    let offset = match d.frag {
        Frag::Whole => {
            assert_eq!(len, total, "a whole message of the wrong length");
            0
        }
        Frag::First { total: t } => {
            assert_eq!(t, total, "a first fragment with the wrong total");
            0
        }
        Frag::Next { offset, last } => {
            assert!(offset + len <= total, "a fragment beyond the end: {d:?}");
            assert_eq!(last, offset + len == total, "last flag of {d:?}");
            offset
        }
    };
    for (i, b) in d.payload.iter().enumerate() {
        let at = offset + i as u64;
        let want = match msg {
            Sent::Inline(v) => v.get(at as usize).copied(),
            Sent::Sourced(_) => source.byte(at),
        };
        assert_eq!(Some(*b), want, "byte {at} of message {}", d.id);
    }
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
        sent: BTreeMap::new(),
        source: Repeat {
            bytes: b"peerpipe".to_vec(),
            fail_at: None,
            scratch: Vec::new(),
        },
        stopped: false,
        following: None,
        out: [0; FRAME],
        check: Decoder::new(),
        shadow: Decoder::new(),
        announced: None,
    };
    let mut wire = vec![0u8; 4096];

    for op in ops.iter().take(256) {
        match op {
            Op::Bytes(bytes) => h.feed(bytes),
            Op::Peer {
                session,
                body,
                chunk,
            } => {
                if let Some(n) = peer_frame(*session, body, &mut wire) {
                    for part in wire[..n].chunks(usize::from(*chunk) + 1) {
                        h.feed(part);
                    }
                }
            }
            Op::Fragments {
                session,
                seq,
                floor,
                id,
                kind,
                data,
                cut,
                skip,
            } => {
                let step = usize::from(*cut) + 1;
                let total = data.len() as u64;
                for (i, piece) in data.chunks(step).enumerate().take(64) {
                    if i == usize::from(*skip) {
                        continue;
                    }
                    let offset = (i * step) as u64;
                    let frag = match (offset, offset + piece.len() as u64 == total) {
                        (0, true) => Frag::Whole,
                        (0, false) => Frag::First { total },
                        (offset, last) => Frag::Next { offset, last },
                    };
                    let frame = Frame {
                        session: session_id(*session),
                        body: Body::Data(Data {
                            seq: u64::from(*seq) + i as u64,
                            floor: u64::from(*floor),
                            id: u64::from(*id),
                            item: kind.item(),
                            frag,
                            payload: piece,
                        }),
                    };
                    if let Ok(n) = encode(&frame, &mut wire) {
                        let bytes = wire[..n].to_vec();
                        h.feed(&bytes);
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
                    h.issue(result, Sent::Inline(payload.clone()));
                }
            }
            Op::SendFrom {
                kind,
                len,
                timeout_ms,
            } => {
                let timeout = timeout_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                let len = u64::from(*len);
                let result = h.ep.send_from(h.now, kind.item(), len, timeout);
                h.issue(result, Sent::Sourced(len));
            }
            Op::SourceBytes(bytes) => h.source.bytes = bytes.clone(),
            Op::SourceFailAt(at) => h.source.fail_at = at.map(u64::from),
            Op::End(data) => {
                let result = h.ep.notify_end(h.now, data);
                h.issue(result, Sent::Inline(data.clone()));
            }
            Op::Abort(data) => {
                let result = h.ep.notify_abort(h.now, data);
                h.issue(result, Sent::Inline(data.clone()));
            }
            Op::Pause => h.ep.pause(h.now),
            Op::Resume => h.ep.resume(h.now),
            Op::Stop => {
                h.ep.stop();
                h.stopped = true;
                // A message arriving in parts ends silently with the endpoint.
                h.following = None;
            }
            Op::TransportLost => h.ep.transport_lost(),
            Op::Transmit => h.transmit(),
            Op::Events => h.events(),
        }
        h.check_progress();
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
