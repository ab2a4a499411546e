//! Property tests of the endpoint state machine against a reference model.
//!
//! # The model (`model_*`, `lossless_*` properties)
//! Two endpoints with small capacities (16-byte payloads, 8-byte topics, `RX`/`TX` of 3, 2 or
//! 1) are driven by a random script of commands and link events, with virtual time:
//!
//! - commands: send a request, reply to a received request, END, ABORT, pause, resume, stop,
//!   restart (a crash, or a graceful stop first), `transport_lost`, the application polling
//!   its events or not;
//! - a hand-rolled link per direction: a FIFO of encoded frames with a latency, which the
//!   script can hold, cut, deliver early (whole or split in two chunks), drop, duplicate,
//!   corrupt, reorder, or precede with garbage bytes;
//! - time: advancing visits every deadline and arrival in order, like `peerpipe_sim::Pair`;
//!   the driver drains transmissions and events until both run dry, as the endpoint's docs ask.
//!
//! Every frame an endpoint emits is decoded by a tap; every byte an endpoint receives is also
//! fed to a mirror of its stream decoder, and a change of `stats().accepted` tells exactly which
//! DATA item was accepted into which incarnation's receive queue. Each payload starts with a
//! unique tag naming its send record. The model keeps, per send: the sender incarnation, its
//! id, item, payload, deadline, transmissions, outcome, the receiver incarnations that accepted
//! it and those whose application got it; per incarnation: next id, slots in use, local close,
//! stop/replace, and the peer's status as told by events.
//!
//! Invariants, checked as they happen and after a final quiet period (link healed, both
//! applications polling, paused endpoints resumed, more time than any deadline):
//! 1. every send gets exactly one outcome, and after the quiet period every send of an
//!    endpoint that did not crash has one;
//! 2. `Delivered` only for an item some peer incarnation accepted (ACKs are sound);
//! 3. an accepted item reaches that incarnation's application exactly once unless it stopped
//!    or crashed first (or the sending side stopped for good while the item waited behind a
//!    gap and the receiver's silence check is off: nothing can then release it); nothing is
//!    accepted twice by one incarnation;
//! 4. every delivered item was sent, field for field (kind, topic, req_id, id, payload), and
//!    came from the peer; ids of one sender session arrive strictly increasing;
//! 5. at most `max_resends + 1` DATA transmissions per item (1 without resends, bounded by the
//!    timeout without a limit); no DATA after its outcome was reported; floor <= seq;
//! 6. every frame emitted is valid and carries the endpoint's own session;
//! 7. `poll_timeout` is strictly after the instant just handled, right after `handle_timeout`
//!    and after each step; no instant livelocks;
//! 8. send results are exactly what the model predicts (ids in sequence, `Stopped`,
//!    `Closed(..)`, `ZeroTimeout`, `SendQueueFull` from the model's count of slots in use);
//! 9. once the application has drained its events, the peer status told by events (END,
//!    ABORT, GONE, restart) equals `peer_state()`, so sends after END/ABORT/GONE are refused;
//!    GONE at most once per peer session, `TransportLost` only if reported; after stop only
//!    send outcomes, and stop discards (and counts) the received items;
//! 10. `received_len() <= RX`; no panic on any script;
//! 11. no item waits for its resend timer while the peer has announced room for it: a
//!     receiver that refused a DATA frame for a full queue sends an ACK asking for a retry at
//!     the instant it has room again (while the peer is up), and a sender that receives one
//!     transmits DATA at that instant.
//!
//! Over a link that loses nothing (`lossless_*`: delays, reorders, duplicates, split chunks,
//! applications that stop polling for a while, crashes), every send of an endpoint that did not
//! crash is Delivered (or failed by the peer's END/ABORT), and reaches the peer's application.
//!
//! Model assumptions (limits of the protocol, not checked): at most 4 restarts per side (the
//! receiver remembers 4 replaced sessions), and an incarnation never receives a frame of a
//! peer session older than one it has met unless it met that one too (session ids are random,
//! so they carry no order: such a frame would be taken for yet another restart). The link
//! loses such a frame.
//!
//! # Junk (`junk_*`, `garbage_*`, `no_item_*` properties)
//! Arbitrary bytes and arbitrary frames (any session, acks for unsent seqs, seq and floor near
//! `u64::MAX`, oversize and invalid topics and payloads, truncated and bit-flipped encodings),
//! fed as bytes or as decoded frames at arbitrary times: no panic, the structural invariants
//! hold, every send still resolves exactly once, no (session, seq) is accepted twice, and where
//! the peer session makes sense a normal exchange completes afterwards.
//!
//! Case counts are fixed (`PROPTEST_CASES` overrides them for a long hunt, and
//! `PROPTEST_RNG_SEED` replays a run); `PROPS_STATS=1` prints what each model script did.

use std::collections::{HashMap, VecDeque};

use peerpipe_core::wire::{self, Body, Decoder, Frame, Item, WireError};
use peerpipe_core::{
    CloseReason, Config, Duration, Endpoint, Error, Event, FailReason, GoneReason, Instant,
    Message, MessageKind, MsgId, Outcome, PeerState,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

const P: usize = 16;
const T: usize = 8;
const F: usize = wire::max_encoded_len(P, T);
const TOPICS: [&str; 3] = ["t", "topic_1", "Z9_z9_Z9"];
const MAX_RESTARTS: usize = 4;
/// The longest per-send timeout the scripts give, in ms.
const MAX_SEND_TIMEOUT_MS: u64 = 2_000;

type Ep<const RX: usize, const TX: usize> = Endpoint<P, T, RX, TX, F>;

/// Handles `ep`'s deadline if it is due at `now`, and checks the next one is after `now`
/// (before anything is transmitted: a due resend or heartbeat waits for poll_transmit
/// without a timer at or before `now`).
fn fire_due<const RX: usize, const TX: usize>(ep: &mut Ep<RX, TX>, side: usize, now: Instant) {
    if ep.poll_timeout().is_some_and(|t| t <= now) {
        ep.handle_timeout(now);
        let next = ep.poll_timeout();
        assert!(
            next.is_none_or(|t| t > now),
            "side {side}: {next:?} after {now:?}"
        );
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A fixed case count, so that CI time is stable (an eighth of it in an unoptimized build,
/// which runs about 25 times slower); `PROPTEST_CASES` overrides it for a long hunt
/// (`PROPTEST_RNG_SEED` fixes the seed to replay one).
fn proptest_config(cases: u32) -> ProptestConfig {
    let cases = if cfg!(debug_assertions) {
        cases / 8
    } else {
        cases
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Frames as the tap sees them
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemRec {
    Request(String),
    Reply(String, u64),
    End,
    Abort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Data {
        session: u32,
        seq: u64,
        floor: u64,
        item: ItemRec,
        payload: Vec<u8>,
    },
    Ack {
        session: u32,
        to_session: u32,
        retry: bool,
    },
    Heartbeat {
        session: u32,
    },
}

impl Seen {
    fn session(&self) -> u32 {
        match *self {
            Seen::Data { session, .. }
            | Seen::Ack { session, .. }
            | Seen::Heartbeat { session } => session,
        }
    }
}

fn seen(frame: &Frame<'_>) -> Seen {
    match &frame.body {
        Body::Data(d) => Seen::Data {
            session: frame.session,
            seq: d.seq,
            floor: d.floor,
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
            retry: a.retry,
        },
        Body::Heartbeat { .. } => Seen::Heartbeat {
            session: frame.session,
        },
    }
}

/// Feeds `bytes` to `decoder` and returns every frame (or error) it completes.
fn decode_all<const N: usize>(
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
fn tagged(tag: usize, len: usize) -> Vec<u8> {
    let mut p = (tag as u32).to_le_bytes().to_vec();
    p.extend((4..len.max(4)).map(|i| (tag.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8));
    p
}

fn tag_of(payload: &[u8]) -> usize {
    let head: [u8; 4] = payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| panic!("payload {payload:?} carries no tag: never sent"));
    u32::from_le_bytes(head) as usize
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// The peer's status as the application learns it from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Status {
    #[default]
    Open,
    Ended,
    Aborted,
    Gone,
}

fn status_of(state: PeerState) -> Status {
    match state {
        PeerState::Gone => Status::Gone,
        PeerState::Ended => Status::Ended,
        PeerState::Aborted => Status::Aborted,
        _ => Status::Open,
    }
}

/// One incarnation (endpoint instance) of a side.
#[derive(Debug, Default)]
struct Inc {
    session: u32,
    next_seq: u64,
    /// Sends whose outcome the application has not taken: each holds a send slot.
    outstanding: usize,
    stopped: bool,
    /// Replaced by a restart.
    replaced: bool,
    /// Replaced after a stop whose outcomes were all taken.
    graceful: bool,
    local_close: Option<CloseReason>,
    transport_lost: bool,
    status: Status,
    gone_in_segment: bool,
    /// The last id delivered per sender session.
    last_id: HashMap<u32, u64>,
    /// Requests delivered to this incarnation's application: (topic, id).
    requests: Vec<(String, u64)>,
    /// Peer sessions whose frames the link brought to this incarnation.
    met: Vec<u32>,
}

/// One successful send.
#[derive(Debug)]
struct Rec {
    from: usize,
    inc: usize,
    session: u32,
    id: u64,
    item: ItemRec,
    payload: Vec<u8>,
    sent_at: Instant,
    timeout: Duration,
    outcome: Option<Outcome>,
    transmissions: u32,
    /// The sender's count of retry ACKs when this was sent (see `World::retries`).
    retries_before: u32,
    /// Peer incarnations that accepted it into their receive queue.
    accepted_by: Vec<usize>,
    /// Peer incarnations whose application got it.
    delivered_by: Vec<usize>,
}

/// One direction of the hand-rolled link: frames in order, each with its arrival instant and
/// the session that sent it.
#[derive(Debug, Default)]
struct Dir {
    queue: VecDeque<(Instant, Vec<u8>, u32)>,
    latency: Duration,
    hold: bool,
    cut: bool,
}

enum Cmd {
    Msg(Message<P, T>),
    End(Vec<u8>),
    Abort(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        side: usize,
        topic: usize,
        len: usize,
        timeout: Option<u64>,
    },
    Reply {
        side: usize,
        pick: Index,
        len: usize,
        timeout: Option<u64>,
    },
    Close {
        side: usize,
        abort: bool,
        len: usize,
    },
    Advance(u64),
    Hold {
        dir: usize,
        on: bool,
    },
    Latency {
        dir: usize,
        ms: u64,
    },
    Deliver {
        dir: usize,
        n: usize,
        split: Option<Index>,
    },
    Drop {
        dir: usize,
        at: Index,
    },
    Duplicate {
        dir: usize,
        at: Index,
    },
    Corrupt {
        dir: usize,
        at: Index,
        pos: Index,
        how: u8,
    },
    Reorder {
        dir: usize,
        at: Index,
        with: Index,
    },
    Garbage {
        dir: usize,
        bytes: Vec<u8>,
    },
    Cut {
        dir: usize,
        on: bool,
    },
    Pause(usize),
    Resume(usize),
    Stop(usize),
    Restart {
        side: usize,
        graceful: bool,
    },
    Polls {
        side: usize,
        on: bool,
    },
    TransportLost(usize),
}

struct World<const RX: usize, const TX: usize> {
    now: Instant,
    eps: [Ep<RX, TX>; 2],
    cfg: [Config; 2],
    polls: [bool; 2],
    incs: [Vec<Inc>; 2],
    /// Index = tag.
    recs: Vec<Rec>,
    /// (sender side, session, seq) -> tag.
    by_seq: HashMap<(usize, u32, u64), usize>,
    /// `links[s]` carries what side `s` sends.
    links: [Dir; 2],
    /// `mirrors[s]`: a copy of side `s`'s stream decoder state.
    mirrors: [Decoder<F>; 2],
    same_sessions: bool,
    buf: Vec<u8>,
    /// Refused sends, for the statistics.
    refused: Vec<Error>,
    /// An ACK asking for a retry reached side `s` while it had sends in flight: it owes a
    /// DATA transmission before time moves on (nothing waits for a resend timer once the
    /// peer announced room for it).
    owed: [bool; 2],
    /// Side `s` refused a DATA frame for a full receive queue and has not yet asked its peer
    /// for a retry: once its queue has room again, that ACK must go out at once.
    retry_owed: [bool; 2],
    /// ACKs asking for a retry that side `s` took: each lets an item go once more than its
    /// resend timer alone would.
    retries: [u32; 2],
}

impl<const RX: usize, const TX: usize> World<RX, TX> {
    fn session(&self, side: usize, inc: usize) -> u32 {
        // Equal session ids on both sides are allowed by the protocol.
        let base = if self.same_sessions {
            0x100
        } else {
            0x1_0000 << side
        };
        base + inc as u32
    }

    fn new(cfg: [Config; 2], same_sessions: bool) -> Self {
        let now = Instant::ZERO;
        let mut w = World {
            now,
            eps: [
                Ep::new(cfg[0], 0, now).unwrap(),
                Ep::new(cfg[1], 0, now).unwrap(),
            ],
            cfg,
            polls: [true; 2],
            incs: [Vec::new(), Vec::new()],
            recs: Vec::new(),
            by_seq: HashMap::new(),
            links: Default::default(),
            mirrors: [Decoder::new(), Decoder::new()],
            same_sessions,
            buf: vec![0; F],
            refused: Vec::new(),
            owed: [false; 2],
            retry_owed: [false; 2],
            retries: [0; 2],
        };
        for (side, config) in cfg.into_iter().enumerate() {
            let session = w.session(side, 0);
            w.eps[side] = Ep::new(config, session, now).unwrap();
            w.incs[side].push(Inc {
                session,
                ..Inc::default()
            });
        }
        w
    }

    fn cur(&self, side: usize) -> usize {
        self.incs[side].len() - 1
    }

    fn inc(&mut self, side: usize) -> &mut Inc {
        self.incs[side].last_mut().unwrap()
    }

    // ---- driving -------------------------------------------------------------------------

    /// Does everything due at the current instant, until nothing moves.
    fn step(&mut self) {
        let now = self.now;
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 10_000, "livelock at {now:?}");
            let mut moved = false;
            for s in 0..2 {
                fire_due(&mut self.eps[s], s, now);
            }
            for s in 0..2 {
                while let Some(n) = self.eps[s].poll_transmit(now, &mut self.buf).unwrap() {
                    let bytes = self.buf[..n].to_vec();
                    self.on_transmit(s, bytes);
                    moved = true;
                }
            }
            for s in 0..2 {
                while !self.links[s].hold && self.links[s].queue.front().is_some_and(|f| f.0 <= now)
                {
                    let (_, bytes, session) = self.links[s].queue.pop_front().unwrap();
                    self.arrive(1 - s, session, &[&bytes]);
                    moved = true;
                }
            }
            for s in 0..2 {
                // Taking events may make an ACK due (room again): the loop goes on until
                // transmissions and events both run dry, as the endpoint's docs ask.
                if self.polls[s] && self.drain(s) {
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for s in 0..2 {
            let ep = &self.eps[s];
            assert!(
                !self.owed[s] || ep.peer_state() != PeerState::Up,
                "side {s}: the peer asked for a retry at {now:?}, no DATA went out"
            );
            let open = !ep.is_stopped() && ep.peer_state() != PeerState::Gone;
            assert!(
                !(self.retry_owed[s] && open && ep.received_len() < RX),
                "side {s}: refused a DATA frame, has room at {now:?}, asked for no retry"
            );
            if let Some(t) = ep.poll_timeout() {
                assert!(t > now, "side {s}: poll_timeout {t:?} not after {now:?}");
            }
            assert!(ep.received_len() <= RX, "side {s}: received_len > RX");
            let inc = self.incs[s].last().unwrap();
            if self.polls[s] && !inc.stopped && ep.stats().status_coalesced == 0 {
                assert_eq!(
                    inc.status,
                    status_of(ep.peer_state()),
                    "side {s}: peer status told by events differs from peer_state()"
                );
            }
        }
    }

    fn next_instant(&self) -> Option<Instant> {
        let mut all = vec![self.eps[0].poll_timeout(), self.eps[1].poll_timeout()];
        for d in &self.links {
            if !d.hold {
                all.push(d.queue.front().map(|f| f.0));
            }
        }
        all.into_iter().flatten().min()
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            self.step();
            match self.next_instant() {
                Some(t) if t <= target => {
                    assert!(
                        t > self.now,
                        "next instant {t:?} is not after {:?}",
                        self.now
                    );
                    self.now = t;
                }
                _ => break,
            }
        }
        self.now = target;
        self.step();
    }

    /// Takes every event of side `s`; returns whether there was any.
    fn drain(&mut self, s: usize) -> bool {
        let mut any = false;
        while let Some(e) = self.eps[s].poll_event() {
            self.on_event(s, e);
            any = true;
        }
        any
    }

    // ---- the tap and the mirror ----------------------------------------------------------

    fn on_transmit(&mut self, s: usize, bytes: Vec<u8>) {
        let frames = decode_all(&mut Decoder::<F>::new(), &bytes);
        let [Ok(frame)] = frames.as_slice() else {
            panic!("side {s} emitted {frames:?}");
        };
        let session = self.incs[s].last().unwrap().session;
        assert_eq!(
            frame.session(),
            session,
            "side {s}: frame of a foreign session"
        );
        if let Seen::Data {
            seq,
            floor,
            item,
            payload,
            ..
        } = frame
        {
            self.owed[s] = false;
            let cfg = self.cfg[s];
            let tag = *self
                .by_seq
                .get(&(s, session, *seq))
                .unwrap_or_else(|| panic!("side {s}: DATA seq {seq} was never sent"));
            let rec = &mut self.recs[tag];
            assert_eq!((item, payload), (&rec.item, &rec.payload), "DATA content");
            assert!(floor <= seq, "floor {floor} above pending seq {seq}");
            assert!(rec.outcome.is_none(), "DATA {seq} sent after its outcome");
            rec.transmissions += 1;
            let retries = self.retries[s] - rec.retries_before;
            let by_time =
                |r: Duration| (rec.timeout.as_micros() / r.as_micros()) as u32 + 1 + retries;
            let bound = match (cfg.resend_interval, cfg.max_resends) {
                (None, _) => 1,
                (Some(r), Some(max)) => (max + 1).min(by_time(r)),
                (Some(r), None) => by_time(r),
            };
            assert!(
                rec.transmissions <= bound,
                "side {s}: seq {seq} transmitted {} times, bound {bound}",
                rec.transmissions
            );
        }
        if matches!(frame, Seen::Ack { retry: true, .. }) {
            self.retry_owed[s] = false;
        }
        let link = &mut self.links[s];
        if !link.cut {
            link.queue
                .push_back((self.now + link.latency, bytes, session));
        }
    }

    /// A frame of the peer's `session` arrives at side `to`, in chunks.
    ///
    /// Session ids are random, so they carry no order: an endpoint that has seen a newer
    /// session of its peer takes a frame of an older one it never saw for yet another restart
    /// (and then ignores the newer, live session as replaced). Real links do not hold frames
    /// across two restarts; the model's link loses such a frame instead of delivering it.
    fn arrive(&mut self, to: usize, session: u32, chunks: &[&[u8]]) {
        let met = &mut self.incs[to].last_mut().unwrap().met;
        if !met.contains(&session) {
            if met.iter().any(|&m| m > session) {
                return;
            }
            met.push(session);
        }
        for chunk in chunks {
            self.feed(to, chunk);
        }
    }

    /// Feeds bytes to side `to`, learning from its counters which item it accepted.
    fn feed(&mut self, to: usize, bytes: &[u8]) {
        let before = *self.eps[to].stats();
        let peer_before = self.eps[to].peer_session();
        self.eps[to].handle_bytes(self.now, bytes);
        let accepted = self.eps[to].stats().accepted - before.accepted;
        if self.eps[to].peer_session() != peer_before {
            // Refusals of an old peer session are not retried by the new one.
            self.retry_owed[to] = false;
        }
        if self.eps[to].stats().refused_full > before.refused_full {
            self.retry_owed[to] = true;
        }
        let frames = decode_all(&mut self.mirrors[to], bytes);
        self.check_retry(to, &frames);
        let datas: Vec<&Seen> = frames
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|f| matches!(f, Seen::Data { .. }))
            .collect();
        match accepted {
            0 => {}
            1 => {
                let [Seen::Data {
                    session,
                    seq,
                    item,
                    payload,
                    ..
                }] = datas.as_slice()
                else {
                    panic!("side {to} accepted one item from {frames:?}");
                };
                let from = 1 - to;
                let tag = *self
                    .by_seq
                    .get(&(from, *session, *seq))
                    .unwrap_or_else(|| panic!("side {to} accepted seq {seq} never sent"));
                let k = self.cur(to);
                let rec = &mut self.recs[tag];
                assert_eq!((item, payload), (&rec.item, &rec.payload));
                assert!(
                    !rec.accepted_by.contains(&k),
                    "side {to} accepted seq {seq} of {session:#x} twice"
                );
                rec.accepted_by.push(k);
            }
            n => panic!("side {to} accepted {n} items from one chunk"),
        }
    }

    /// Notes which retries side `to` owes after these frames reached it (see `owed`).
    fn check_retry(&mut self, to: usize, frames: &[Result<Seen, WireError>]) {
        let ep = &self.eps[to];
        let own = self.incs[to].last().unwrap().session;
        let cfg = self.cfg[to];
        let k = self.cur(to);
        for f in frames.iter().filter_map(|f| f.as_ref().ok()) {
            let from_peer = ep.peer_session() == Some(f.session());
            match *f {
                Seen::Ack {
                    session,
                    to_session,
                    retry: true,
                } if from_peer && to_session == own && ep.peer_state() == PeerState::Up => {
                    self.retries[to] += 1;
                    // The lowest item still in flight (not accepted by the peer incarnation
                    // that asks, not timed out) always may go: a retry if it has resends left,
                    // or its first transmission.
                    let peer_k = self.incs[1 - to].iter().position(|i| i.session == session);
                    let lowest = self
                        .recs
                        .iter()
                        .filter(|r| {
                            r.from == to
                                && r.inc == k
                                && r.outcome.is_none()
                                && r.sent_at + r.timeout > self.now
                                && !peer_k.is_some_and(|p| r.accepted_by.contains(&p))
                        })
                        .min_by_key(|r| r.id);
                    // (A send the application has not polled may be settled already: hence
                    // also `pending_sends`.)
                    self.owed[to] = cfg.resend_interval.is_some()
                        && ep.pending_sends() > 0
                        && lowest.is_some_and(|r| {
                            r.transmissions == 0
                                || cfg.max_resends.is_none_or(|m| r.transmissions <= m)
                        });
                }
                // A later ACK or DATA may settle what was owed (acknowledged, or the peer's END).
                Seen::Ack { .. } | Seen::Data { .. } if from_peer => self.owed[to] = false,
                _ => {}
            }
        }
    }

    // ---- events --------------------------------------------------------------------------

    fn on_event(&mut self, s: usize, e: Event<P, T>) {
        let k = self.cur(s);
        let now = self.now;
        let cfg = self.cfg[s];
        let inc = &self.incs[s][k];
        assert!(
            !inc.stopped || matches!(e, Event::SendOutcome { .. }),
            "side {s}: {e:?} after stop"
        );
        match e {
            Event::SendOutcome { id, outcome } => {
                let session = inc.session;
                let stopped = inc.stopped;
                let tag = *self
                    .by_seq
                    .get(&(s, session, id.0))
                    .unwrap_or_else(|| panic!("side {s}: outcome for unknown id {id:?}"));
                let rec = &mut self.recs[tag];
                assert_eq!(rec.outcome, None, "side {s}: second outcome for {id:?}");
                rec.outcome = Some(outcome);
                match outcome {
                    Outcome::Delivered => assert!(
                        !rec.accepted_by.is_empty(),
                        "side {s}: {id:?} Delivered but never accepted"
                    ),
                    Outcome::Failed(FailReason::TimedOut) => assert!(
                        now >= rec.sent_at + rec.timeout,
                        "side {s}: {id:?} timed out early"
                    ),
                    Outcome::Failed(FailReason::ResendsExhausted) => {
                        assert!(cfg.resend_interval.is_some());
                        assert_eq!(Some(rec.transmissions), cfg.max_resends.map(|m| m + 1));
                    }
                    Outcome::Failed(FailReason::Stopped) => assert!(stopped),
                    Outcome::Failed(_) => {}
                }
                self.inc(s).outstanding -= 1;
            }
            Event::Message(m) => {
                let tag = tag_of(m.payload());
                let item = match m.kind() {
                    MessageKind::Request => ItemRec::Request(m.topic().to_owned()),
                    MessageKind::Reply { req_id } => ItemRec::Reply(m.topic().to_owned(), req_id.0),
                };
                self.delivered(s, tag, &item, m.payload());
                let rec = &self.recs[tag];
                assert_eq!(m.id(), MsgId(rec.id), "delivered id");
                if m.is_request() {
                    let r = (m.topic().to_owned(), rec.id);
                    self.inc(s).requests.push(r);
                }
            }
            Event::End(data) => {
                self.delivered(s, tag_of(&data), &ItemRec::End, &data);
                self.inc(s).status = Status::Ended;
            }
            Event::Abort(data) => {
                self.delivered(s, tag_of(&data), &ItemRec::Abort, &data);
                self.inc(s).status = Status::Aborted;
            }
            Event::Gone(reason) => {
                let coalesced = self.eps[s].stats().status_coalesced > 0;
                let inc = self.inc(s);
                assert!(
                    !inc.gone_in_segment || coalesced,
                    "side {s}: GONE twice for one peer session"
                );
                if reason == GoneReason::TransportLost {
                    assert!(inc.transport_lost, "side {s}: TransportLost never reported");
                }
                inc.gone_in_segment = true;
                inc.status = Status::Gone;
            }
            Event::PeerRestarted => {
                let inc = self.inc(s);
                inc.gone_in_segment = false;
                inc.status = Status::Open;
            }
            e => panic!("side {s}: unexpected event {e:?}"),
        }
    }

    fn delivered(&mut self, s: usize, tag: usize, item: &ItemRec, payload: &[u8]) {
        let k = self.cur(s);
        let rec = self
            .recs
            .get_mut(tag)
            .unwrap_or_else(|| panic!("side {s}: delivered tag {tag} never sent"));
        assert_eq!(rec.from, 1 - s, "side {s}: delivered its own item");
        assert_eq!(
            (item, payload),
            (&rec.item, &rec.payload[..]),
            "delivered content"
        );
        assert!(
            rec.accepted_by.contains(&k),
            "side {s}: delivered tag {tag} it never accepted"
        );
        assert!(
            !rec.delivered_by.contains(&k),
            "side {s}: delivered tag {tag} twice"
        );
        rec.delivered_by.push(k);
        let (session, id) = (rec.session, rec.id);
        let last = self.inc(s).last_id.insert(session, id);
        assert!(
            last.is_none_or(|l| l < id),
            "side {s}: id {id} of {session:#x} delivered after {last:?}"
        );
    }

    // ---- commands ------------------------------------------------------------------------

    fn expected_send(&self, side: usize, timeout: Option<Duration>) -> Result<u64, Error> {
        let inc = self.incs[side].last().unwrap();
        if inc.stopped {
            return Err(Error::Stopped);
        }
        if let Some(c) = inc.local_close {
            return Err(Error::Closed(c));
        }
        match self.eps[side].peer_state() {
            PeerState::Gone => return Err(Error::Closed(CloseReason::PeerGone)),
            PeerState::Ended => return Err(Error::Closed(CloseReason::PeerEnded)),
            PeerState::Aborted => return Err(Error::Closed(CloseReason::PeerAborted)),
            _ => {}
        }
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::ZeroTimeout);
        }
        if inc.outstanding >= TX {
            return Err(Error::SendQueueFull);
        }
        Ok(inc.next_seq)
    }

    fn send(&mut self, side: usize, cmd: Cmd, timeout: Option<u64>) {
        let timeout = timeout.map(ms);
        let expected = self.expected_send(side, timeout);
        let now = self.now;
        let ep = &mut self.eps[side];
        let (item, payload, result) = match cmd {
            Cmd::Msg(m) => {
                let item = match m.kind() {
                    MessageKind::Request => ItemRec::Request(m.topic().to_owned()),
                    MessageKind::Reply { req_id } => ItemRec::Reply(m.topic().to_owned(), req_id.0),
                };
                let payload = m.payload().to_vec();
                (item, payload, ep.send(now, m, timeout))
            }
            Cmd::End(d) => {
                let r = ep.notify_end(now, &d);
                (ItemRec::End, d, r)
            }
            Cmd::Abort(d) => {
                let r = ep.notify_abort(now, &d);
                (ItemRec::Abort, d, r)
            }
        };
        let result = result.map(|id| id.0);
        assert_eq!(result, expected, "side {side}: send result");
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                self.refused.push(e);
                return;
            }
        };
        let tag = self.recs.len();
        assert_eq!(tag_of(&payload), tag);
        let k = self.cur(side);
        let cfg = self.cfg[side];
        let inc = self.inc(side);
        inc.next_seq += 1;
        inc.outstanding += 1;
        match item {
            ItemRec::End => inc.local_close = Some(CloseReason::LocalEnd),
            ItemRec::Abort => inc.local_close = Some(CloseReason::LocalAbort),
            _ => {}
        }
        let session = inc.session;
        self.recs.push(Rec {
            from: side,
            inc: k,
            session,
            id,
            item,
            payload,
            sent_at: now,
            timeout: timeout.unwrap_or(cfg.default_request_timeout),
            outcome: None,
            transmissions: 0,
            retries_before: self.retries[side],
            accepted_by: Vec::new(),
            delivered_by: Vec::new(),
        });
        assert!(self.by_seq.insert((side, session, id), tag).is_none());
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Send {
                side,
                topic,
                len,
                timeout,
            } => {
                let payload = tagged(self.recs.len(), len);
                let m = Message::request(TOPICS[topic], &payload).unwrap();
                self.send(side, Cmd::Msg(m), timeout);
            }
            Op::Reply {
                side,
                pick,
                len,
                timeout,
            } => {
                let payload = tagged(self.recs.len(), len);
                let requests = &self.incs[side].last().unwrap().requests;
                let (topic, req) = if requests.is_empty() {
                    (TOPICS[0].to_owned(), pick.index(100) as u64)
                } else {
                    requests[pick.index(requests.len())].clone()
                };
                let m = Message::reply(&topic, &payload, MsgId(req)).unwrap();
                self.send(side, Cmd::Msg(m), timeout);
            }
            Op::Close { side, abort, len } => {
                let data = tagged(self.recs.len(), len);
                let cmd = if abort {
                    Cmd::Abort(data)
                } else {
                    Cmd::End(data)
                };
                self.send(side, cmd, None);
            }
            Op::Advance(d) => self.advance(ms(d)),
            Op::Hold { dir, on } => self.links[dir].hold = on,
            Op::Latency { dir, ms: l } => self.links[dir].latency = ms(l),
            Op::Deliver { dir, n, split } => {
                for _ in 0..n {
                    let Some((_, bytes, session)) = self.links[dir].queue.pop_front() else {
                        break;
                    };
                    match split {
                        Some(at) => {
                            let (head, tail) = bytes.split_at(at.index(bytes.len()));
                            self.arrive(1 - dir, session, &[head, tail]);
                        }
                        None => self.arrive(1 - dir, session, &[&bytes]),
                    }
                }
            }
            Op::Drop { dir, at } => {
                let q = &mut self.links[dir].queue;
                if !q.is_empty() {
                    q.remove(at.index(q.len()));
                }
            }
            Op::Duplicate { dir, at } => {
                let q = &mut self.links[dir].queue;
                if !q.is_empty() {
                    let i = at.index(q.len());
                    let copy = q[i].clone();
                    q.insert(i + 1, copy);
                }
            }
            Op::Corrupt { dir, at, pos, how } => {
                let q = &mut self.links[dir].queue;
                if !q.is_empty() {
                    let i = at.index(q.len());
                    let bytes = &mut q[i].1;
                    let p = pos.index(bytes.len());
                    match how % 4 {
                        0 => bytes[p] ^= 1 << (how % 8),
                        1 => bytes[p] ^= 0b1010_0000,
                        2 => bytes.insert(p, how),
                        _ => {
                            bytes.remove(p);
                        }
                    }
                }
            }
            Op::Reorder { dir, at, with } => {
                let q = &mut self.links[dir].queue;
                if !q.is_empty() {
                    let (i, j) = (at.index(q.len()), with.index(q.len()));
                    // Arrival instants stay with the positions; contents swap.
                    let (bytes, session) = (q[i].1.clone(), q[i].2);
                    q[i].1 = q[j].1.clone();
                    q[i].2 = q[j].2;
                    q[j].1 = bytes;
                    q[j].2 = session;
                }
            }
            Op::Garbage { dir, ref bytes } => self.feed(1 - dir, bytes),
            Op::Cut { dir, on } => {
                self.links[dir].cut = on;
                if on {
                    self.links[dir].queue.clear();
                }
            }
            Op::Pause(s) => self.eps[s].pause(now),
            Op::Resume(s) => self.eps[s].resume(now),
            Op::Stop(s) => {
                let (held, discarded) = (
                    self.eps[s].received_len() as u64,
                    self.eps[s].stats().discarded_on_stop,
                );
                let stopped = self.eps[s].is_stopped();
                self.eps[s].stop();
                self.inc(s).stopped = true;
                assert_eq!(self.eps[s].poll_timeout(), None);
                assert_eq!(self.eps[s].received_len(), 0, "stop keeps received items");
                if !stopped {
                    let now_discarded = self.eps[s].stats().discarded_on_stop;
                    assert_eq!(now_discarded, discarded + held);
                }
            }
            Op::Restart { side, graceful } => {
                if self.incs[side].len() > MAX_RESTARTS {
                    return;
                }
                if graceful {
                    self.eps[side].stop();
                    self.inc(side).stopped = true;
                    self.drain(side);
                    assert_eq!(self.eps[side].pending_sends(), 0);
                    assert_eq!(self.inc(side).outstanding, 0);
                }
                let inc = self.inc(side);
                inc.replaced = true;
                inc.graceful = graceful;
                let session = self.session(side, self.incs[side].len());
                self.eps[side] = Ep::new(self.cfg[side], session, now).unwrap();
                self.mirrors[side] = Decoder::new();
                self.owed[side] = false;
                self.retry_owed[side] = false;
                self.incs[side].push(Inc {
                    session,
                    ..Inc::default()
                });
            }
            Op::Polls { side, on } => self.polls[side] = on,
            Op::TransportLost(s) => {
                self.eps[s].transport_lost();
                self.inc(s).transport_lost = true;
            }
        }
        self.step();
    }

    /// Heals the link, lets both applications poll, resumes paused endpoints.
    fn heal(&mut self) {
        for d in &mut self.links {
            d.hold = false;
            d.cut = false;
        }
        self.polls = [true; 2];
        for s in 0..2 {
            if self.eps[s].is_paused() {
                self.eps[s].resume(self.now);
            }
        }
        self.step();
    }

    /// Heals everything, lets more time pass than any deadline, and checks that every promise
    /// has been kept.
    fn quiesce(&mut self) {
        self.heal();
        let longest = self
            .cfg
            .iter()
            .map(|c| {
                c.default_request_timeout
                    .as_micros()
                    .max(MAX_SEND_TIMEOUT_MS * 1000)
                    + c.heartbeat_timeout.as_micros()
                    + c.heartbeat_interval.as_micros()
            })
            .max()
            .unwrap();
        self.advance(Duration::from_micros(2 * longest + 1_000_000));
        self.check_final();
    }

    fn check_final(&mut self) {
        for s in 0..2 {
            assert_eq!(
                self.eps[s].pending_sends(),
                0,
                "side {s}: sends still pending"
            );
            assert_eq!(self.inc(s).outstanding, 0, "side {s}: outcomes not taken");
        }
        for (tag, rec) in self.recs.iter().enumerate() {
            let sender = &self.incs[rec.from][rec.inc];
            if !sender.replaced || sender.graceful {
                assert!(rec.outcome.is_some(), "tag {tag} {rec:?} has no outcome");
            }
            // A sender side that stopped for good never moves its floor again nor announces a
            // new session: an item held behind a gap is then released only when the receiver
            // declares the peer gone, which it never does with the silence check off.
            let stranded = self.incs[rec.from].last().unwrap().stopped
                && self.cfg[1 - rec.from].heartbeat_timeout.is_zero();
            for &k in &rec.accepted_by {
                let receiver = &self.incs[1 - rec.from][k];
                if !receiver.stopped && !receiver.replaced && !stranded {
                    assert!(
                        rec.delivered_by.contains(&k),
                        "tag {tag} {rec:?} accepted by incarnation {k} of side {} but never \
                         delivered",
                        1 - rec.from
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Both sides' configurations: independent, except that each side's silence limit (when on)
/// spans at least two of the peer's heartbeat intervals, as a deployment would choose.
fn configs() -> BoxedStrategy<[Config; 2]> {
    let one = || {
        (
            20u64..400,
            prop_oneof![1 => Just(None), 4 => (2u64..8).prop_map(Some)],
            prop_oneof![1 => Just(None), 4 => (10u64..300).prop_map(Some)],
            prop_oneof![1 => Just(None), 3 => (0u32..6).prop_map(Some)],
            50u64..2_000,
        )
    };
    (one(), one())
        .prop_map(|(a, b)| {
            let slowest = a.0.max(b.0);
            [a, b].map(|(hb, silence, resend, max_resends, timeout)| Config {
                heartbeat_interval: ms(hb),
                heartbeat_timeout: silence.map_or(Duration::ZERO, |k| ms(slowest * k)),
                resend_interval: resend.map(ms),
                max_resends,
                default_request_timeout: ms(timeout),
            })
        })
        .boxed()
}

/// One command or link event. `chaos` (0..=2) scales the weight of faults and of the
/// commands that end a conversation, so that some scripts hold long conversations.
fn op(chaos: u32) -> BoxedStrategy<Op> {
    let side = || 0usize..2;
    let timeout = || {
        prop_oneof![
            6 => Just(None),
            8 => (1u64..=MAX_SEND_TIMEOUT_MS).prop_map(Some),
            1 => Just(Some(0)),
        ]
    };
    let len = || 4usize..=P;
    let fault = 4 + 8 * chaos;
    let rare = 1 + 6 * chaos;
    prop_oneof![
        80 => (side(), 0..TOPICS.len(), len(), timeout())
            .prop_map(|(side, topic, len, timeout)| Op::Send { side, topic, len, timeout }),
        32 => (side(), any::<Index>(), len(), timeout())
            .prop_map(|(side, pick, len, timeout)| Op::Reply { side, pick, len, timeout }),
        rare => (side(), any::<bool>(), len())
            .prop_map(|(side, abort, len)| Op::Close { side, abort, len }),
        96 => prop_oneof![3 => 0u64..20, 3 => 20u64..300, 1 => 300u64..3_000].prop_map(Op::Advance),
        fault => (side(), prop::bool::weighted(0.4)).prop_map(|(dir, on)| Op::Hold { dir, on }),
        8 => (side(), prop_oneof![Just(0u64), 1u64..50]).prop_map(|(dir, ms)| Op::Latency { dir, ms }),
        24 => (side(), 1usize..4, option::of(any::<Index>()))
            .prop_map(|(dir, n, split)| Op::Deliver { dir, n, split }),
        fault => (side(), any::<Index>()).prop_map(|(dir, at)| Op::Drop { dir, at }),
        fault => (side(), any::<Index>()).prop_map(|(dir, at)| Op::Duplicate { dir, at }),
        rare => (side(), any::<Index>(), any::<Index>(), any::<u8>())
            .prop_map(|(dir, at, pos, how)| Op::Corrupt { dir, at, pos, how }),
        fault => (side(), any::<Index>(), any::<Index>())
            .prop_map(|(dir, at, with)| Op::Reorder { dir, at, with }),
        rare => (side(), vec(any::<u8>(), 0..24)).prop_map(|(dir, bytes)| Op::Garbage { dir, bytes }),
        rare => (side(), any::<bool>()).prop_map(|(dir, on)| Op::Cut { dir, on }),
        2 => side().prop_map(Op::Pause),
        8 => side().prop_map(Op::Resume),
        rare => side().prop_map(Op::Stop),
        6 => (side(), any::<bool>()).prop_map(|(side, graceful)| Op::Restart { side, graceful }),
        16 => (side(), prop_oneof![1 => Just(false), 2 => Just(true)])
            .prop_map(|(side, on)| Op::Polls { side, on }),
        rare => side().prop_map(Op::TransportLost),
    ]
    .boxed()
}

fn script() -> BoxedStrategy<(u32, Vec<Op>)> {
    (0u32..3)
        .prop_flat_map(|chaos| (Just(chaos), vec(op(chaos), 1..250)))
        .boxed()
}

fn run_model<const RX: usize, const TX: usize>(
    cfg: [Config; 2],
    same: bool,
    (chaos, ops): &(u32, Vec<Op>),
) {
    let mut w = World::<RX, TX>::new(cfg, same);
    w.step();
    for op in ops {
        w.apply(op);
    }
    w.quiesce();
    if std::env::var_os("PROPS_STATS").is_some() {
        let n = |f: &dyn Fn(&Rec) -> bool| w.recs.iter().filter(|r| f(r)).count();
        eprintln!(
            "chaos {} ops {} sends {} delivered {} failed {} accepted {} got {} restarts {}/{} now {:?} \
             stats a {:?} refused {:?}",
            chaos,
            ops.len(),
            w.recs.len(),
            n(&|r| r.outcome == Some(Outcome::Delivered)),
            n(&|r| matches!(r.outcome, Some(Outcome::Failed(_)))),
            n(&|r| !r.accepted_by.is_empty()),
            n(&|r| !r.delivered_by.is_empty()),
            w.incs[0].len() - 1,
            w.incs[1].len() - 1,
            w.now,
            w.eps[0].stats(),
            w.refused,
        );
    }
}

/// Configurations for a link that loses nothing: resends without limit, timeouts far longer
/// than any script, and a silence limit (when on) that no latency of the link can reach.
fn lossless_configs() -> BoxedStrategy<[Config; 2]> {
    (configs(), 10u64..300, 10u64..300)
        .prop_map(|(cfg, ra, rb)| {
            let slowest = cfg[0].heartbeat_interval.max(cfg[1].heartbeat_interval);
            let mut out = cfg;
            for (c, r) in out.iter_mut().zip([ra, rb]) {
                c.resend_interval = Some(c.resend_interval.unwrap_or(ms(r)));
                c.max_resends = None;
                c.default_request_timeout = Duration::from_secs(600);
                if !c.heartbeat_timeout.is_zero() {
                    c.heartbeat_timeout = slowest.saturating_mul(2) + ms(100);
                }
            }
            out
        })
        .boxed()
}

/// Commands and link events that lose nothing: frames are delayed, reordered, duplicated and
/// split, applications stop and resume polling, endpoints crash and restart.
fn lossless_op() -> BoxedStrategy<Op> {
    let side = || 0usize..2;
    let len = || 4usize..=P;
    prop_oneof![
        80 => (side(), 0..TOPICS.len(), len())
            .prop_map(|(side, topic, len)| Op::Send { side, topic, len, timeout: None }),
        32 => (side(), any::<Index>(), len())
            .prop_map(|(side, pick, len)| Op::Reply { side, pick, len, timeout: None }),
        1 => (side(), any::<bool>(), len())
            .prop_map(|(side, abort, len)| Op::Close { side, abort, len }),
        96 => prop_oneof![3 => 0u64..20, 3 => 20u64..300].prop_map(Op::Advance),
        8 => (side(), prop_oneof![Just(0u64), 1u64..50]).prop_map(|(dir, ms)| Op::Latency { dir, ms }),
        16 => (side(), 1usize..4, option::of(any::<Index>()))
            .prop_map(|(dir, n, split)| Op::Deliver { dir, n, split }),
        8 => (side(), any::<Index>()).prop_map(|(dir, at)| Op::Duplicate { dir, at }),
        16 => (side(), any::<Index>(), any::<Index>())
            .prop_map(|(dir, at, with)| Op::Reorder { dir, at, with }),
        2 => side().prop_map(|side| Op::Restart { side, graceful: false }),
        8 => (side(), any::<bool>()).prop_map(|(side, on)| Op::Polls { side, on }),
    ]
    .boxed()
}

/// The lossless run: after the script, time passes until every send has settled, then every
/// send is Delivered unless its endpoint crashed or the peer's END/ABORT failed it; and every
/// delivered send reached the application of a peer incarnation that accepted it.
fn run_lossless<const RX: usize, const TX: usize>(cfg: [Config; 2], ops: &[Op]) {
    let mut w = World::<RX, TX>::new(cfg, false);
    w.step();
    for op in ops {
        w.apply(op);
    }
    w.heal();
    let limit = w.now + Duration::from_secs(60);
    loop {
        let settled = w.recs.iter().all(|r| {
            let sender = &w.incs[r.from][r.inc];
            r.outcome.is_some() || sender.replaced
        });
        let quiet = w.eps.iter().all(|e| e.received_len() == 0);
        if settled && quiet {
            break;
        }
        assert!(
            w.now < limit,
            "sends or items still pending after 60 s on a sound link"
        );
        w.advance(ms(100));
    }
    w.check_final();
    for (tag, rec) in w.recs.iter().enumerate() {
        if w.incs[rec.from][rec.inc].replaced {
            continue;
        }
        assert!(
            matches!(
                rec.outcome,
                Some(
                    Outcome::Delivered
                        | Outcome::Failed(FailReason::PeerEnded | FailReason::PeerAborted)
                )
            ),
            "tag {tag} {rec:?}: not delivered over a link that loses nothing"
        );
        if rec.outcome == Some(Outcome::Delivered) {
            let receivers = &w.incs[1 - rec.from];
            assert!(
                rec.accepted_by
                    .iter()
                    .any(|&k| rec.delivered_by.contains(&k) || receivers[k].replaced),
                "tag {tag} {rec:?}: Delivered but no application got it"
            );
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// Over a link that delays, reorders and duplicates but loses nothing, every send is
    /// delivered (liveness: the receive queue's reserved slot, resends while busy).
    #[test]
    fn lossless_link_delivers_everything(
        cfg in lossless_configs(),
        ops in vec(lossless_op(), 1..200),
    ) {
        run_lossless::<3, 3>(cfg, &ops);
    }

    /// The same with a single receive slot and two send slots.
    #[test]
    fn lossless_link_delivers_everything_rx1(
        cfg in lossless_configs(),
        ops in vec(lossless_op(), 1..200),
    ) {
        run_lossless::<1, 2>(cfg, &ops);
    }
}

proptest! {
    #![proptest_config(proptest_config(4096))]

    /// The endpoint pair against the reference model, with RX = TX = 3.
    #[test]
    fn model_rx3_tx3(
        cfg in configs(),
        same in prop::bool::weighted(0.2),
        script in script(),
    ) {
        run_model::<3, 3>(cfg, same, &script);
    }
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// The same with a single receive slot and a single send slot.
    #[test]
    fn model_rx1_tx1(
        cfg in configs(),
        same in prop::bool::weighted(0.2),
        script in script(),
    ) {
        run_model::<1, 1>(cfg, same, &script);
    }
}

// ---------------------------------------------------------------------------------------------
// Junk: arbitrary bytes and frames
// ---------------------------------------------------------------------------------------------

const SA: u32 = 0xA;
const SB: u32 = 0xB;

/// Whose session a junk frame claims.
#[derive(Debug, Clone)]
enum Who {
    /// The receiving endpoint's peer.
    Peer,
    /// The receiving endpoint itself.
    Own,
    Zero,
    Max,
    Other(u32),
}

#[derive(Debug, Clone)]
enum JItem {
    Request(String),
    Reply(String, u64),
    End,
    Abort,
}

#[derive(Debug, Clone)]
enum JBody {
    Data {
        seq: u64,
        floor: u64,
        item: JItem,
        payload: Vec<u8>,
    },
    Ack {
        to: Who,
        next: u64,
        bitmap: u32,
        room: u8,
        retry: bool,
    },
    Heartbeat {
        floor: u64,
        room: u8,
    },
}

#[derive(Debug, Clone)]
struct JFrame {
    from: Who,
    body: JBody,
}

#[derive(Debug, Clone)]
enum Junk {
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A frame handed over decoded, as a frame transport would.
    Frame(JFrame),
    /// A frame encoded, then maybe bit-flipped and maybe cut short.
    Encoded {
        frame: JFrame,
        flip: Option<(Index, u8)>,
        cut: Option<Index>,
    },
}

#[derive(Debug, Clone)]
enum JOp {
    Junk { side: usize, junk: Junk },
    Advance(u64),
    Send { side: usize, len: usize },
    Polls { side: usize, on: bool },
}

fn resolve(who: &Who, peer: u32, own: u32, allow_peer: bool) -> u32 {
    let s = match *who {
        Who::Peer => peer,
        Who::Own => own,
        Who::Zero => 0,
        Who::Max => u32::MAX,
        Who::Other(x) => x,
    };
    if s == peer && !allow_peer {
        peer ^ 0x8000_0000
    } else {
        s
    }
}

fn build<'a>(f: &'a JFrame, peer: u32, own: u32, allow_peer: bool) -> Frame<'a> {
    let body = match &f.body {
        JBody::Data {
            seq,
            floor,
            item,
            payload,
        } => Body::Data(wire::Data {
            seq: *seq,
            floor: *floor,
            item: match item {
                JItem::Request(t) => Item::Request { topic: t },
                JItem::Reply(t, r) => Item::Reply {
                    topic: t,
                    req_id: *r,
                },
                JItem::End => Item::End,
                JItem::Abort => Item::Abort,
            },
            payload,
        }),
        JBody::Ack {
            to,
            next,
            bitmap,
            room,
            retry,
        } => Body::Ack(wire::Ack {
            to_session: resolve(to, peer, own, true),
            next: *next,
            bitmap: *bitmap,
            room: *room,
            retry: *retry,
        }),
        JBody::Heartbeat { floor, room } => Body::Heartbeat {
            floor: *floor,
            room: *room,
        },
    };
    Frame {
        session: resolve(&f.from, peer, own, allow_peer),
        body,
    }
}

fn wide() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        4 => 0u64..40,
        2 => any::<u64>(),
        2 => (u64::MAX - 40)..=u64::MAX,
        1 => Just(u64::MAX),
        1 => (1u64 << 32)..(1u64 << 32) + 40,
    ]
}

fn who() -> impl Strategy<Value = Who> + Clone {
    prop_oneof![
        3 => Just(Who::Peer),
        2 => Just(Who::Own),
        1 => Just(Who::Zero),
        1 => Just(Who::Max),
        2 => any::<u32>().prop_map(Who::Other),
    ]
}

fn topic() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        6 => "[A-Za-z0-9_]{1,10}",
        1 => "_END_|_ABORT_|_HEARTBEAT_",
        1 => "[ -~]{0,4}",
        1 => "\\PC{0,3}",
    ]
}

fn jframe() -> BoxedStrategy<JFrame> {
    let item = prop_oneof![
        3 => topic().prop_map(JItem::Request),
        2 => (topic(), wide()).prop_map(|(t, r)| JItem::Reply(t, r)),
        1 => Just(JItem::End),
        1 => Just(JItem::Abort),
    ];
    let body = prop_oneof![
        4 => (wide(), wide(), item, vec(any::<u8>(), 0..40))
            .prop_map(|(seq, floor, item, payload)| JBody::Data { seq, floor, item, payload }),
        3 => (who(), wide(), any::<u32>(), any::<u8>(), any::<bool>())
            .prop_map(|(to, next, bitmap, room, retry)| JBody::Ack { to, next, bitmap, room, retry }),
        2 => (wide(), any::<u8>()).prop_map(|(floor, room)| JBody::Heartbeat { floor, room }),
    ];
    (who(), body)
        .prop_map(|(from, body)| JFrame { from, body })
        .boxed()
}

fn junk() -> BoxedStrategy<Junk> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..120).prop_map(Junk::Bytes),
        3 => jframe().prop_map(Junk::Frame),
        4 => (jframe(), option::of((any::<Index>(), 1u8..)), option::of(any::<Index>()))
            .prop_map(|(frame, flip, cut)| Junk::Encoded { frame, flip, cut }),
    ]
    .boxed()
}

fn jop(sides: std::ops::Range<usize>) -> BoxedStrategy<JOp> {
    prop_oneof![
        6 => (sides.clone(), junk()).prop_map(|(side, junk)| JOp::Junk { side, junk }),
        3 => prop_oneof![0u64..50, 50u64..3_000].prop_map(JOp::Advance),
        2 => (sides.clone(), 4usize..=P).prop_map(|(side, len)| JOp::Send { side, len }),
        1 => (sides, any::<bool>()).prop_map(|(side, on)| JOp::Polls { side, on }),
    ]
    .boxed()
}

/// Two endpoints wired back to back (each frame arrives at once), with the structural checks
/// and an exactly-once check of send outcomes.
struct Duo<const RX: usize, const TX: usize> {
    now: Instant,
    eps: [Ep<RX, TX>; 2],
    connected: bool,
    polls: [bool; 2],
    /// Per side: id -> outcome, for every send that returned an id.
    outcomes: [HashMap<u64, Option<Outcome>>; 2],
    /// Per side: events other than outcomes.
    events: [Vec<Event<P, T>>; 2],
    /// Per side: every frame it transmitted.
    sent: [Vec<Vec<u8>>; 2],
    buf: Vec<u8>,
}

impl<const RX: usize, const TX: usize> Duo<RX, TX> {
    fn new(cfg: [Config; 2], connected: bool) -> Self {
        Duo {
            now: Instant::ZERO,
            eps: [
                Ep::new(cfg[0], SA, Instant::ZERO).unwrap(),
                Ep::new(cfg[1], SB, Instant::ZERO).unwrap(),
            ],
            connected,
            polls: [true; 2],
            outcomes: Default::default(),
            events: Default::default(),
            sent: Default::default(),
            buf: vec![0; F],
        }
    }

    fn step(&mut self) {
        let now = self.now;
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 10_000, "livelock at {now:?}");
            let mut moved = false;
            for s in 0..2 {
                fire_due(&mut self.eps[s], s, now);
                while let Some(n) = self.eps[s].poll_transmit(now, &mut self.buf).unwrap() {
                    let bytes = self.buf[..n].to_vec();
                    if self.connected {
                        self.eps[1 - s].handle_bytes(now, &bytes);
                        moved = true;
                    }
                    self.sent[s].push(bytes);
                }
            }
            for s in 0..2 {
                if self.polls[s] {
                    while let Some(e) = self.eps[s].poll_event() {
                        self.on_event(s, e);
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
        self.check();
    }

    fn check(&self) {
        for (s, ep) in self.eps.iter().enumerate() {
            if let Some(t) = ep.poll_timeout() {
                assert!(
                    t > self.now,
                    "side {s}: poll_timeout {t:?} <= {:?}",
                    self.now
                );
            }
            assert!(ep.received_len() <= RX);
            assert!(ep.pending_sends() <= TX);
        }
    }

    fn on_event(&mut self, s: usize, e: Event<P, T>) {
        match e {
            Event::SendOutcome { id, outcome } => {
                let slot = self.outcomes[s]
                    .get_mut(&id.0)
                    .unwrap_or_else(|| panic!("side {s}: outcome for unknown {id:?}"));
                assert_eq!(*slot, None, "side {s}: second outcome for {id:?}");
                *slot = Some(outcome);
            }
            e => self.events[s].push(e),
        }
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            self.step();
            match [self.eps[0].poll_timeout(), self.eps[1].poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            {
                Some(t) if t <= target => self.now = t,
                _ => break,
            }
        }
        self.now = target;
        self.step();
    }

    fn send(&mut self, s: usize, m: Message<P, T>) -> Result<MsgId, Error> {
        let r = self.eps[s].send(self.now, m, None);
        if let Ok(id) = r {
            assert!(self.outcomes[s].insert(id.0, None).is_none(), "id reused");
        }
        r
    }

    /// Sends until the send queue takes it, advancing time meanwhile.
    fn send_eventually(&mut self, s: usize, m: Message<P, T>) -> MsgId {
        for _ in 0..1_000 {
            match self.send(s, m.clone()) {
                Ok(id) => return id,
                Err(Error::SendQueueFull) => self.advance(ms(10)),
                Err(e) => panic!("side {s}: send refused with {e:?}"),
            }
        }
        panic!("side {s}: send queue never freed")
    }

    fn junk(&mut self, side: usize, junk: &Junk, allow_peer: bool) {
        let (peer, own) = if side == 0 { (SB, SA) } else { (SA, SB) };
        let now = self.now;
        match junk {
            Junk::Bytes(b) => self.eps[side].handle_bytes(now, b),
            Junk::Frame(f) => {
                let frame = build(f, peer, own, allow_peer);
                self.eps[side].handle_frame(now, &frame);
            }
            Junk::Encoded { frame, flip, cut } => {
                let frame = build(frame, peer, own, allow_peer);
                let mut buf = [0u8; 1024];
                let Ok(n) = wire::encode(&frame, &mut buf) else {
                    return;
                };
                let mut bytes = buf[..n].to_vec();
                if let Some((at, mask)) = flip {
                    bytes[at.index(n)] ^= mask;
                }
                if let Some(at) = cut {
                    bytes.truncate(at.index(n));
                }
                self.eps[side].handle_bytes(now, &bytes);
            }
        }
        self.step();
    }

    fn run(&mut self, ops: &[JOp], allow_peer: bool, sends: &mut u64) {
        for op in ops {
            match op {
                JOp::Junk { side, junk } => self.junk(*side, junk, allow_peer),
                JOp::Advance(d) => self.advance(ms(*d)),
                JOp::Send { side, len } => {
                    *sends += 1;
                    let m = Message::request("j", &tagged(*sends as usize, *len)).unwrap();
                    let _ = self.send(*side, m);
                    self.step();
                }
                JOp::Polls { side, on } => self.polls[*side] = *on,
            }
        }
    }

    /// Lets every deadline pass with the applications polling; every send must have resolved.
    fn settle(&mut self) {
        self.polls = [true; 2];
        let longest = self
            .eps
            .iter()
            .map(|e| e.config().default_request_timeout.as_micros())
            .max()
            .unwrap();
        self.advance(Duration::from_micros(longest + 1_000_000));
        for s in 0..2 {
            for (id, o) in &self.outcomes[s] {
                assert!(o.is_some(), "side {s}: send {id} never resolved");
            }
            assert_eq!(self.eps[s].pending_sends(), 0);
        }
    }

    /// A request from A and its reply from B, each delivered exactly once with its content.
    fn exchange(&mut self, n: u64) {
        let payload = tagged(0xE0_0000 + n as usize, 9);
        let req = Message::request("ping", &payload).unwrap();
        let id = self.send_eventually(0, req);
        let is_req = |e: &Event<P, T>| matches!(e, Event::Message(m) if m.payload() == payload && m.id() == id);
        let limit = self.now + Duration::from_secs(60);
        while !self.events[1].iter().any(is_req) {
            assert!(self.now < limit, "the request never arrived");
            self.advance(ms(10));
        }
        assert_eq!(self.events[1].iter().filter(|e| is_req(e)).count(), 1);
        let got = self.events[1].iter().find(|e| is_req(e)).unwrap();
        let Event::Message(got) = got else {
            unreachable!()
        };
        assert_eq!(got.topic(), "ping");
        let reply = got.reply_with(&payload[..5]).unwrap();
        let rid = self.send_eventually(1, reply);
        let is_reply = |e: &Event<P, T>| {
            matches!(e, Event::Message(m)
                if m.req_id() == Some(id) && m.payload() == &payload[..5] && m.id() == rid)
        };
        while !self.events[0].iter().any(is_reply)
            || self.outcomes[0][&id.0].is_none()
            || self.outcomes[1][&rid.0].is_none()
        {
            assert!(self.now < limit, "the reply or an outcome never arrived");
            self.advance(ms(10));
        }
        assert_eq!(self.events[0].iter().filter(|e| is_reply(e)).count(), 1);
        assert_eq!(self.outcomes[0][&id.0], Some(Outcome::Delivered));
        assert_eq!(self.outcomes[1][&rid.0], Some(Outcome::Delivered));
    }
}

/// A conversation that resends until its long timeout, so that a frame lost to junk that
/// leaves the decoder mid-frame is recovered.
fn steady(config: Config) -> Config {
    Config {
        resend_interval: Some(config.resend_interval.unwrap_or(ms(50))),
        max_resends: None,
        default_request_timeout: Duration::from_secs(20),
        ..config
    }
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// A fresh endpoint fed junk of every kind from sessions other than its future peer's, at
    /// arbitrary times and while it sends, still resolves every send exactly once, and then
    /// holds a normal conversation with its real peer.
    #[test]
    fn junk_before_the_peer_appears(
        cfg in configs(),
        ops in vec(jop(1..2), 0..60),
    ) {
        let mut duo = Duo::<3, 3>::new([steady(cfg[0]), cfg[1]], false);
        let mut sends = 0;
        duo.step();
        duo.run(&ops, false, &mut sends);
        // The real peer starts now.
        duo.eps[0] = Ep::new(steady(cfg[0]), SA, duo.now).unwrap();
        duo.connected = true;
        duo.polls = [true; 2];
        duo.step();
        duo.exchange(1);
        duo.settle();
    }

    /// Mid-conversation, junk that cannot pass for a frame of the peer (raw bytes, bit-flipped
    /// or cut encodings, each ended by a delimiter) and replays of the peer's own earlier
    /// frames disturb nothing: no event but the peer's messages, each exactly once, and later
    /// exchanges complete.
    #[test]
    fn garbage_and_replays_mid_conversation(
        cfg in configs(),
        ops in vec(
            prop_oneof![
                4 => (junk(), any::<bool>()).prop_map(|(junk, flip)| (Some(junk), None, flip)),
                3 => any::<Index>().prop_map(|i| (None, Some(i), false)),
            ],
            0..40,
        ),
        advances in vec(0u64..500, 40),
    ) {
        // Same timing on both sides: a peer must not be declared gone merely for timing.
        let cfg = steady(cfg[0]);
        let mut duo = Duo::<3, 3>::new([cfg, cfg], true);
        duo.step();
        duo.exchange(1);
        for (i, (junk, replay, flip)) in ops.iter().enumerate() {
            let mut bytes = match (junk, replay) {
                (Some(Junk::Bytes(b)), _) => b.clone(),
                (Some(Junk::Frame(f) | Junk::Encoded { frame: f, .. }), _) => {
                    let frame = build(f, SA, SB, false);
                    let mut buf = [0u8; 1024];
                    let Ok(n) = wire::encode(&frame, &mut buf) else { continue };
                    let mut b = buf[..n - 1].to_vec();
                    // Broken: a bit flipped, or cut short.
                    if *flip {
                        b[i % (n - 1)] ^= 0x10;
                    } else {
                        b.truncate(i % (n - 1));
                    }
                    b
                }
                (None, Some(at)) => {
                    let sent = &duo.sent[0];
                    sent[at.index(sent.len())].clone()
                }
                (None, None) => continue,
            };
            bytes.push(0);
            let now = duo.now;
            duo.eps[1].handle_bytes(now, &bytes);
            duo.step();
            duo.advance(ms(advances[i]));
        }
        duo.exchange(2);
        duo.settle();
        for e in &duo.events[1] {
            assert!(matches!(e, Event::Message(_)), "B reported {e:?}");
        }
        for e in &duo.events[0] {
            assert!(matches!(e, Event::Message(_)), "A reported {e:?}");
        }
        assert_eq!(duo.events[1].len(), 2);
        assert_eq!(duo.events[0].len(), 2);
        assert_eq!(duo.eps[1].peer_state(), PeerState::Up);
    }

    /// Anything goes: junk of any session (the peer's and its own included) into both sides of
    /// a live conversation at arbitrary times. Nothing panics, the structural invariants hold
    /// at every step, and every send resolves exactly once.
    #[test]
    fn junk_anywhere_anytime(
        cfg in configs(),
        ops in vec(jop(0..2), 0..80),
    ) {
        let mut duo = Duo::<2, 2>::new(cfg, true);
        let mut sends = 0;
        duo.step();
        duo.run(&ops, true, &mut sends);
        duo.settle();
    }
}

/// A frame from one of five sessions, with sequence numbers and floors that collide often.
#[derive(Debug, Clone)]
struct Replayed {
    session: u32,
    body: JBody,
    as_bytes: bool,
}

fn colliding() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![4 => 0u64..6, 1 => (u64::MAX - 3)..=u64::MAX]
}

fn replayed() -> BoxedStrategy<Replayed> {
    let body = prop_oneof![
        4 => (colliding(), colliding(), prop_oneof![Just(JItem::End), "[a-z]{1,3}".prop_map(JItem::Request)])
            .prop_map(|(seq, floor, item)| JBody::Data { seq, floor, item, payload: vec![7] }),
        1 => (colliding(), 0u8..4).prop_map(|(floor, room)| JBody::Heartbeat { floor, room }),
    ];
    (1u32..=5, body, any::<bool>())
        .prop_map(|(session, body, as_bytes)| Replayed {
            session,
            body,
            as_bytes,
        })
        .boxed()
}

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// Whatever arrives, an endpoint accepts each (session, seq) at most once, so nothing is
    /// delivered twice, even from sequence numbers at the end of the u64 range. Frames come
    /// from at most five sessions: every replaced one is remembered.
    #[test]
    fn no_item_accepted_twice(
        cfg in configs(),
        ops in vec((replayed(), 0u64..100, any::<bool>()), 1..120),
    ) {
        let mut ep = Ep::<3, 3>::new(cfg[1], SB, Instant::ZERO).unwrap();
        let mut buf = vec![0u8; F];
        let mut now = Instant::ZERO;
        let mut accepted = std::collections::HashSet::new();
        for (r, wait, poll) in &ops {
            let frame = JFrame { from: Who::Other(r.session), body: r.body.clone() };
            let frame = build(&frame, SA, SB, true);
            let before = ep.stats().accepted;
            if r.as_bytes {
                let mut bytes = [0u8; 256];
                let n = wire::encode(&frame, &mut bytes).unwrap();
                ep.handle_bytes(now, &bytes[..n]);
            } else {
                ep.handle_frame(now, &frame);
            }
            if ep.stats().accepted > before {
                let Body::Data(d) = frame.body else { panic!("accepted a non-DATA frame") };
                assert!(
                    accepted.insert((frame.session, d.seq)),
                    "seq {} of session {} accepted twice",
                    d.seq,
                    frame.session
                );
            }
            while ep.poll_transmit(now, &mut buf).unwrap().is_some() {}
            if *poll {
                while ep.poll_event().is_some() {}
            }
            now = now + ms(*wait);
            fire_due(&mut ep, 0, now);
            assert!(ep.received_len() <= 3);
        }
    }
}
