//! Junk: arbitrary bytes and frames fed at arbitrary times, and the `junk_*`, `garbage_*`
//! and `no_item_*` properties.

use peerpipe_core::wire::{self, Body, Caps, Frag, Frame, Heartbeat, Item};
use peerpipe_core::{Config, Duration, Event, Instant, PeerState};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::duo::Duo;
use crate::support::{configs, fire_due, ms, proptest_config, Ep, F, P};

pub(crate) const SA: u32 = 0xA;
pub(crate) const SB: u32 = 0xB;

/// Whose session a junk frame claims.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    /// The receiving endpoint's peer.
    Peer,
    /// The receiving endpoint itself.
    Own,
    Zero,
    Max,
    Other(u32),
}

#[derive(Debug, Clone)]
pub(crate) enum JItem {
    Request(String),
    Reply(String, u64),
    End,
    Abort,
}

#[derive(Debug, Clone)]
pub(crate) enum JBody {
    Data {
        seq: u64,
        floor: u64,
        id: u64,
        item: JItem,
        frag: Frag,
        payload: Vec<u8>,
    },
    Ack {
        to: Who,
        next: u64,
        bitmap: u32,
        room: u32,
        window: u32,
        retry: bool,
    },
    Heartbeat(Heartbeat),
}

#[derive(Debug, Clone)]
pub(crate) struct JFrame {
    pub(crate) from: Who,
    pub(crate) body: JBody,
}

#[derive(Debug, Clone)]
pub(crate) enum Junk {
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
pub(crate) enum JOp {
    Junk { side: usize, junk: Junk },
    Advance(u64),
    Send { side: usize, len: usize },
    Polls { side: usize, on: bool },
}

pub(crate) fn resolve(who: &Who, peer: u32, own: u32, allow_peer: bool) -> u32 {
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

pub(crate) fn build<'a>(f: &'a JFrame, peer: u32, own: u32, allow_peer: bool) -> Frame<'a> {
    let body = match &f.body {
        JBody::Data {
            seq,
            floor,
            id,
            item,
            frag,
            payload,
        } => Body::Data(wire::Data {
            seq: *seq,
            floor: *floor,
            id: *id,
            frag: *frag,
            item: match item {
                JItem::Request(t) => Item::Request { topic: t.as_str() },
                JItem::Reply(t, r) => Item::Reply {
                    topic: t.as_str(),
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
            window,
            retry,
        } => Body::Ack(wire::Ack {
            to_session: resolve(to, peer, own, true),
            next: *next,
            bitmap: *bitmap,
            room: *room,
            window: *window,
            retry: *retry,
        }),
        JBody::Heartbeat(h) => Body::Heartbeat(*h),
    };
    Frame {
        session: resolve(&f.from, peer, own, allow_peer),
        body,
    }
}

pub(crate) fn wide() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        4 => 0u64..40,
        2 => any::<u64>(),
        2 => (u64::MAX - 40)..=u64::MAX,
        1 => Just(u64::MAX),
        1 => (1u64 << 32)..(1u64 << 32) + 40,
    ]
}

pub(crate) fn who() -> impl Strategy<Value = Who> + Clone {
    prop_oneof![
        3 => Just(Who::Peer),
        2 => Just(Who::Own),
        1 => Just(Who::Zero),
        1 => Just(Who::Max),
        2 => any::<u32>().prop_map(Who::Other),
    ]
}

pub(crate) fn topic() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        6 => "[A-Za-z0-9_]{1,10}",
        1 => "_END_|_ABORT_|_HEARTBEAT_",
        1 => "[ -~]{0,4}",
        1 => "\\PC{0,3}",
    ]
}

/// Fragment positions, a whole message most often.
pub(crate) fn frag() -> impl Strategy<Value = Frag> {
    prop_oneof![
        3 => Just(Frag::Whole),
        1 => (41u64..1000).prop_map(|total| Frag::First { total }),
        1 => (1u64..1000, any::<bool>()).prop_map(|(offset, last)| Frag::Next { offset, last }),
    ]
}

/// Capabilities, with payloads and topics too small to carry anything among them.
pub(crate) fn caps() -> impl Strategy<Value = Caps> {
    (
        prop_oneof![1 => 0u32..4, 3 => 4u32..64, 1 => any::<u32>()],
        prop_oneof![1 => 0u32..2, 3 => 2u32..16, 1 => any::<u32>()],
        prop_oneof![2 => Just(0u64), 1 => any::<u64>()],
    )
        .prop_map(|(max_payload, max_topic, max_message)| Caps {
            max_payload,
            max_topic,
            max_message,
        })
}

pub(crate) fn jframe() -> BoxedStrategy<JFrame> {
    let item = prop_oneof![
        3 => topic().prop_map(JItem::Request),
        2 => (topic(), wide()).prop_map(|(t, r)| JItem::Reply(t, r)),
        1 => Just(JItem::End),
        1 => Just(JItem::Abort),
    ];
    let body = prop_oneof![
        4 => (wide(), wide(), wide(), item, frag(), vec(any::<u8>(), 0..40))
            .prop_map(|(seq, floor, id, item, frag, payload)| JBody::Data { seq, floor, id, item, frag, payload }),
        3 => (who(), wide(), any::<u32>(), any::<u8>(), any::<u32>(), any::<bool>())
            .prop_map(|(to, next, bitmap, room, window, retry)| JBody::Ack { to, next, bitmap, room: room.into(), window, retry }),
        2 => (wide(), any::<u8>(), any::<u32>(), caps(), any::<bool>())
            .prop_map(|(floor, room, window, caps, ask)| JBody::Heartbeat(Heartbeat { floor, room: room.into(), window, caps, ask })),
    ];
    (who(), body)
        .prop_map(|(from, body)| JFrame { from, body })
        .boxed()
}

pub(crate) fn junk() -> BoxedStrategy<Junk> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..120).prop_map(Junk::Bytes),
        3 => jframe().prop_map(Junk::Frame),
        4 => (jframe(), option::of((any::<Index>(), 1u8..)), option::of(any::<Index>()))
            .prop_map(|(frame, flip, cut)| Junk::Encoded { frame, flip, cut }),
    ]
    .boxed()
}

pub(crate) fn jop(sides: std::ops::Range<usize>) -> BoxedStrategy<JOp> {
    prop_oneof![
        6 => (sides.clone(), junk()).prop_map(|(side, junk)| JOp::Junk { side, junk }),
        3 => prop_oneof![0u64..50, 50u64..3_000].prop_map(JOp::Advance),
        2 => (sides.clone(), 4usize..=P).prop_map(|(side, len)| JOp::Send { side, len }),
        1 => (sides, any::<bool>()).prop_map(|(side, on)| JOp::Polls { side, on }),
    ]
    .boxed()
}

/// A conversation that resends until its long timeout, so that a frame lost to junk that
/// leaves the decoder mid-frame is recovered.
pub(crate) fn steady(config: Config) -> Config {
    Config {
        resend_interval: Some(config.resend_interval.unwrap_or(ms(50).into())),
        max_resends: None,
        default_request_timeout: Duration::from_secs(20).into(),
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
pub(crate) struct Replayed {
    pub(crate) session: u32,
    pub(crate) body: JBody,
    pub(crate) as_bytes: bool,
}

pub(crate) fn colliding() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![4 => 0u64..6, 1 => (u64::MAX - 3)..=u64::MAX]
}

pub(crate) fn replayed() -> BoxedStrategy<Replayed> {
    let body = prop_oneof![
        4 => (colliding(), colliding(), prop_oneof![Just(JItem::End), "[a-z]{1,3}".prop_map(JItem::Request)])
            .prop_map(|(seq, floor, item)| JBody::Data { seq, floor, id: seq, item, frag: Frag::Whole, payload: vec![7] }),
        1 => (colliding(), 0u32..4).prop_map(|(floor, room)| JBody::Heartbeat(Heartbeat {
            floor,
            room,
            window: room * 128,
            caps: Caps { max_payload: 16, max_topic: 8, max_message: 0 },
            ask: false,
        })),
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
