//! Messages of any size: cut into fragments that fit the peer's frames, sent within its
//! window, put back together in order, and cut cleanly when the sender gives up, the peer
//! goes or restarts.

use peerpipe_core::wire::{self, Item};
use peerpipe_core::{
    Config, CutReason, Duration, Endpoint, Event, FailReason, Instant, Message, MessageKind, MsgId,
    Outcome, PartKind,
};
use peerpipe_sim::{LinkConfig, Pair, Side};

use crate::support::*;

/// What a receiver got: whole messages (single frames and parts put together) in order, and
/// the messages cut.
#[derive(Debug, Default)]
struct Received {
    whole: Vec<(MsgId, PartKind, String, Vec<u8>)>,
    cuts: Vec<(MsgId, CutReason)>,
}

/// Puts the parts back together, checking what the endpoint promises: the parts of one
/// message come in order from offset 0, nothing else between them but send outcomes, and a
/// message in parts ends with its last part or a cut.
fn received(events: &[Event]) -> Received {
    let mut r = Received::default();
    let mut partial: Option<(MsgId, PartKind, String, u64, Vec<u8>)> = None;
    for e in events {
        match e {
            Event::Part(part) => {
                if part.is_first() {
                    assert!(partial.is_none(), "a first part inside a message: {e:?}");
                    partial = Some((
                        part.id(),
                        part.kind(),
                        part.topic().to_owned(),
                        part.total(),
                        Vec::new(),
                    ));
                }
                let p = partial.as_mut().expect("a part with no first part");
                assert_eq!((p.0, p.1, p.3), (part.id(), part.kind(), part.total()));
                assert_eq!(p.4.len() as u64, part.offset(), "parts out of order");
                p.4.extend_from_slice(part.data());
                if part.is_last() {
                    let (id, kind, topic, total, data) = partial.take().unwrap();
                    assert_eq!(data.len() as u64, total);
                    r.whole.push((id, kind, topic, data));
                }
            }
            Event::Cut { id, reason } => {
                let p = partial.take().expect("a cut with no message in parts");
                assert_eq!(p.0, *id);
                r.cuts.push((*id, *reason));
            }
            Event::SendOutcome { .. } => {}
            other => {
                assert!(partial.is_none(), "{other:?} inside a message in parts");
                if let Event::Message(m) = other {
                    let kind = match m.kind() {
                        MessageKind::Request => PartKind::Request,
                        MessageKind::Reply { req_id } => PartKind::Reply { req_id },
                    };
                    r.whole
                        .push((m.id(), kind, m.topic().to_owned(), m.data().to_vec()));
                }
                if let Event::End(d) = other {
                    r.whole
                        .push((MsgId(u64::MAX), PartKind::End, String::new(), d.to_vec()));
                }
            }
        }
    }
    r
}

/// `n` bytes of a pattern that depends on `salt` and the position, so that a fragment in
/// the wrong place or of the wrong message would be seen.
fn big(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_mul(7) ^ salt)
        .collect()
}

fn request(topic: &str) -> Item<'_> {
    Item::Request { topic }
}

/// Sends a 50 000-byte request from A (with this timeout) and runs until B has more than
/// ten of its parts: a message half way.
fn half_sent(p: &mut Pair, salt: u8, timeout: Option<Duration>) -> MsgId {
    let id = p
        .send_from(Side::A, request("big"), big(50_000, salt), timeout)
        .unwrap();
    let parts = |p: &mut Pair| count(&p.events_b, |e| matches!(e, Event::Part(_))) > 10;
    assert!(p.run_until(at_ms(10_000), parts));
    id
}

/// A 100 000-byte request goes in 782 fragments of at most 128 bytes (the simulator's
/// PAYLOAD), none resent on a perfect link, arrives as parts in order, and is delivered once
/// every fragment is acknowledged; progress counts the acknowledged bytes on the way.
#[test]
fn a_large_message_arrives_whole_in_order() {
    let mut p = pair(fast());
    let data = big(100_000, 1);
    let id = p
        .send_from(Side::A, request("fw"), data.clone(), None)
        .unwrap();
    let mut seen = Vec::new();
    let done = p.run_until(at_ms(60_000), |p| {
        if let Some((acked, total)) = p.a.progress(id) {
            assert_eq!(total, 100_000);
            seen.push(acked);
        }
        !outcomes(&p.events_a).is_empty()
    });
    assert!(done);
    assert_eq!(outcomes(&p.events_a), [(id, Outcome::Delivered)]);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress went back");
    assert!(
        seen.iter().any(|&a| a > 0 && a < 100_000),
        "no progress seen"
    );
    let r = received(&p.events_b);
    assert_eq!(r.whole, [(id, PartKind::Request, "fw".to_owned(), data)]);
    assert!(r.cuts.is_empty());
    let parts = count(&p.events_b, |e| matches!(e, Event::Part(_)));
    assert_eq!(parts, 100_000usize.div_ceil(128));
    assert_eq!(p.a.stats().data_sent, parts as u64);
    assert_eq!(p.a.stats().resends, 0);
    // The source was read once per fragment: nothing is kept in the endpoint.
    assert_eq!(p.store_a.reads, parts as u64);
}

/// Messages of every size around the fragment boundaries, from the source and inline,
/// mixed, over a link that loses 20 %, duplicates 5 %, corrupts 1 % and reorders: every one
/// arrives exactly once, intact, in the order sent, and every send is delivered.
#[test]
fn mixed_sizes_survive_a_bad_link() {
    let config = Config {
        default_request_timeout: secs(3_600).into(),
        ..fast()
    };
    let sizes = [
        0usize, 1, 127, 128, 129, 255, 256, 257, 1_000, 5_000, 20_000,
    ];
    for seed in 1..=3u64 {
        let mut p = pair_with(config, config, LinkConfig::lossy(0.2, 0.05, 0.01), seed);
        let mut sent = Vec::new();
        for (i, &n) in sizes.iter().chain(sizes.iter().rev()).enumerate() {
            let data = big(n, i as u8);
            let id = if i % 3 == 0 && n <= 128 {
                let m = Message::request("inline", &data).unwrap();
                p.a.send(p.now(), m, None).unwrap()
            } else {
                p.send_from(Side::A, request("big"), data.clone(), None)
                    .unwrap()
            };
            let topic = if i % 3 == 0 && n <= 128 {
                "inline"
            } else {
                "big"
            };
            sent.push((id, PartKind::Request, topic.to_owned(), data));
            // Keep a few in flight at once, as an application would.
            if sent.len() % 4 == 0 {
                let want = sent.len();
                assert!(
                    p.run_until(at_ms(3_600_000), |p| outcomes(&p.events_a).len()
                        >= want - 2)
                );
            }
        }
        let want = sent.len();
        assert!(
            p.run_until(at_ms(3_600_000), |p| outcomes(&p.events_a).len() == want),
            "seed {seed}"
        );
        assert!(outcomes(&p.events_a)
            .iter()
            .all(|(_, o)| *o == Outcome::Delivered));
        let r = received(&p.events_b);
        assert_eq!(r.whole, sent, "seed {seed}");
        assert!(r.cuts.is_empty());
        let s = p.b.stats();
        assert!(
            s.duplicates > 0 && s.crc_errors + s.cobs_errors > 0,
            "seed {seed}: {s:?}"
        );
    }
}

/// A sender that gives a message up half way (its timeout passes while the link is cut)
/// makes the receiver cut it; the next message arrives whole.
#[test]
fn a_message_given_up_half_way_is_cut() {
    let mut p = pair(fast());
    let id = half_sent(&mut p, 2, Some(secs(2)));
    // Cut past the send's timeout, but for less than the heartbeat timeout: the peer stays
    // up, the message is given up.
    p.ab.set_cut(true);
    p.run_for(ms(2_500));
    assert_eq!(
        outcomes(&p.events_a),
        [(id, Outcome::Failed(FailReason::TimedOut))]
    );
    p.ab.set_cut(false);
    assert!(p.run_until(at_ms(20_000), |p| !outcomes(&p.events_a).is_empty()));
    assert_eq!(
        outcomes(&p.events_a),
        [(id, Outcome::Failed(FailReason::TimedOut))]
    );
    let next = p
        .send_from(Side::A, request("next"), big(1_000, 3), None)
        .unwrap();
    assert!(p.run_until(at_ms(30_000), |p| outcomes(&p.events_a).len() == 2));
    let r = received(&p.events_b);
    assert_eq!(r.cuts, [(id, CutReason::GivenUp)]);
    assert_eq!(
        r.whole,
        [(next, PartKind::Request, "next".into(), big(1_000, 3))]
    );
    assert!(p.b.stats().messages_cut == 1);
}

/// The peer going silent mid-message: the receiver cuts the message, then reports GONE; the
/// sender's message fails with PeerGone.
#[test]
fn gone_mid_message_cuts_it_first() {
    let mut p = pair(fast());
    let id = half_sent(&mut p, 4, None);
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    assert!(
        p.run_until(at_ms(20_000), |p| p.events_b.iter().any(is_gone)
            && !outcomes(&p.events_a).is_empty())
    );
    assert_eq!(
        outcomes(&p.events_a),
        [(id, Outcome::Failed(FailReason::PeerGone))]
    );
    let r = received(&p.events_b);
    assert_eq!(r.cuts, [(id, CutReason::PeerGone)]);
    assert!(r.whole.is_empty());
    let gone_at = p.events_b.iter().position(is_gone).unwrap();
    let cut_at = p
        .events_b
        .iter()
        .position(|e| matches!(e, Event::Cut { .. }))
        .unwrap();
    assert!(cut_at < gone_at);
}

/// The sender restarting mid-message: the receiver cuts the message, reports the restart,
/// and takes the new incarnation's messages.
#[test]
fn a_restart_mid_message_cuts_it() {
    let mut p = pair(fast());
    let id = half_sent(&mut p, 5, None);
    let now = p.now();
    p.replace(Side::A, endpoint(fast(), 0xA2, now));
    p.store_a = Default::default();
    let again = p
        .send_from(Side::A, request("again"), big(2_000, 6), None)
        .unwrap();
    assert!(p.run_until(at_ms(20_000), |p| outcomes(&p.events_a).len() == 1));
    let r = received(&p.events_b);
    assert_eq!(r.cuts, [(id, CutReason::PeerRestarted)]);
    assert_eq!(
        r.whole,
        [(again, PartKind::Request, "again".into(), big(2_000, 6))]
    );
    assert_eq!(count(&p.events_b, |e| matches!(e, Event::PeerRestarted)), 1);
}

/// A message longer than the peer accepts fails with TooLarge as soon as the peer's
/// capabilities are known, without a single DATA frame; a shorter one goes.
#[test]
fn longer_than_the_peer_accepts_fails_at_once() {
    let small = Config {
        max_message: 1_000,
        ..fast()
    };
    let mut p = pair_with(fast(), small, LinkConfig::PERFECT, 1);
    // Before the peer's first heartbeat arrives, nothing is known: the send waits.
    let id = p
        .send_from(Side::A, request("big"), big(1_001, 7), None)
        .unwrap();
    assert!(p.run_until(at_ms(100), |p| !outcomes(&p.events_a).is_empty()));
    assert_eq!(
        outcomes(&p.events_a),
        [(id, Outcome::Failed(FailReason::TooLarge))]
    );
    assert!(p.now() <= at_ms(1));
    assert_eq!(p.a.stats().data_sent, 0);
    // Once known, the failure comes with the send.
    let late = p
        .send_from(Side::A, request("big"), big(5_000, 7), None)
        .unwrap();
    assert_eq!(
        p.a.poll_event(),
        Some(Event::SendOutcome {
            id: late,
            outcome: Outcome::Failed(FailReason::TooLarge)
        })
    );
    let ok = p
        .send_from(Side::A, request("fits"), big(1_000, 8), None)
        .unwrap();
    assert!(p.run_until(at_ms(1_000), |p| outcomes(&p.events_a).len() == 2));
    assert_eq!(outcomes(&p.events_a)[1], (ok, Outcome::Delivered));
    assert_eq!(p.a.stats().data_sent, 8);
}

/// A receiver whose application does not read: the sender keeps at most the window in
/// flight, then only probes, and all goes on once it reads.
#[test]
fn a_slow_receiver_makes_the_sender_wait_within_the_window() {
    let mut p = pair(fast());
    p.auto_poll.1 = false;
    let data = big(20_000, 9);
    let id = p
        .send_from(Side::A, request("big"), data.clone(), None)
        .unwrap();
    p.run_for(secs(5));
    // Eight receive slots: eight fragments went within the window; the ninth, the lowest in
    // flight once those were acknowledged, probes the full receiver at every resend interval
    // and is refused each time.
    assert_eq!(p.b.received_len(), 8);
    let probes = p.a.stats().resends;
    assert!(probes > 40, "{:?}", p.a.stats());
    assert_eq!(p.a.stats().data_sent, 9 + probes);
    assert_eq!(p.b.stats().accepted, 8);
    assert_eq!(p.b.stats().refused_full, 1 + probes);
    p.auto_poll.1 = true;
    assert!(p.run_until(at_ms(60_000), |p| !outcomes(&p.events_a).is_empty()));
    assert_eq!(outcomes(&p.events_a), [(id, Outcome::Delivered)]);
    let r = received(&p.events_b);
    assert_eq!(r.whole, [(id, PartKind::Request, "big".into(), data)]);
}

/// END data longer than a frame goes in parts and closes the conversation with its last.
#[test]
fn end_in_parts_closes_with_its_last_part() {
    let mut p = pair(fast());
    let data = big(1_000, 10);
    let id = p.send_from(Side::A, Item::End, data.clone(), None).unwrap();
    assert!(p.run_until(at_ms(10_000), |p| !outcomes(&p.events_a).is_empty()));
    assert_eq!(outcomes(&p.events_a), [(id, Outcome::Delivered)]);
    let r = received(&p.events_b);
    assert_eq!(r.whole, [(id, PartKind::End, String::new(), data)]);
    assert_eq!(p.b.peer_state(), peerpipe_core::PeerState::Ended);
}

/// A peer with smaller frames: an inline message that fits the sender's frames goes in
/// fragments that fit the peer's, never in a frame it cannot decode.
#[test]
fn fragments_fit_the_peer_frames() {
    type Big = Endpoint<128, 32, 4, 4, 223>;
    type Small = Endpoint<32, 8, 4, 4, { wire::max_encoded_len(32, 8) }>;
    let mut now = Instant::ZERO;
    let mut a = Big::new(fast(), 1, now).unwrap();
    let mut b = Small::new(fast(), 2, now).unwrap();
    let data = big(128, 11);
    let id = a
        .send(now, Message::request("t", &data).unwrap(), None)
        .unwrap();
    let (mut buf_a, mut buf_b) = ([0u8; 223], [0u8; 223]);
    let mut got = Vec::new();
    let mut outcome = None;
    while outcome.is_none() && now < Instant::from_millis(1_000) {
        while let Some(n) = a.poll_transmit(now, &mut buf_a).unwrap() {
            assert!(n <= Small::MAX_FRAME_LEN, "a frame of {n} bytes");
            b.handle_bytes(now, &buf_a[..n]);
        }
        while let Some(n) = b.poll_transmit(now, &mut buf_b).unwrap() {
            a.handle_bytes(now, &buf_b[..n]);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Part(part) = e {
                got.extend_from_slice(part.data());
            }
        }
        while let Some(e) = a.poll_event() {
            if let Event::SendOutcome {
                id: done,
                outcome: o,
            } = e
            {
                assert_eq!(done, id);
                outcome = Some(o);
            }
        }
        now = now + peerpipe_core::Duration::from_millis(1);
    }
    assert_eq!(outcome, Some(Outcome::Delivered));
    assert_eq!(got, data);
    assert_eq!(b.stats().oversize, 0);
    assert!(a.stats().data_sent >= 128 / 32);
}

/// A version 2 peer's frames are counted and dropped, never taken for version 3 ones.
#[test]
fn a_version_2_peer_is_refused_and_counted() {
    let mut b = endpoint(fast(), SESSION_B, Instant::ZERO);
    // A version 2 heartbeat and request (docs/PROTOCOL.md of version 2).
    let v2 = [
        &[
            0x0c, 0x23, 0x0d, 0x0c, 0x0b, 0x0a, 0x03, 0x03, 0xa2, 0xb0, 0x6e, 0xe2, 0x00,
        ][..],
        &[
            0x06, 0x21, 0x04, 0x03, 0x02, 0x01, 0x0a, 0x05, 0x04, 0x04, 0x70, 0x69, 0x6e, 0x67,
            0x68, 0x69, 0x05, 0x35, 0x6c, 0x83, 0x6f, 0x00,
        ][..],
    ];
    for f in v2 {
        b.handle_bytes(Instant::ZERO, f);
    }
    assert_eq!(b.stats().bad_version, 2);
    assert_eq!(b.stats().frames_received, 0);
    assert_eq!(b.poll_event(), None);
    assert_eq!(b.peer_session(), None);
}

/// The receiver restarting mid-message: what its old incarnation took of the message is
/// lost with it and the new one cannot complete it, so the message fails with
/// PeerRestarted (it is not reported delivered to nobody); the next goes to the new one.
#[test]
fn a_receiver_restart_mid_message_fails_it() {
    let mut p = pair(fast());
    let id = half_sent(&mut p, 12, None);
    let now = p.now();
    p.replace(Side::B, endpoint(fast(), 0xB2, now));
    p.events_b.clear();
    assert!(p.run_until(at_ms(30_000), |p| !outcomes(&p.events_a).is_empty()));
    assert_eq!(
        outcomes(&p.events_a),
        [(id, Outcome::Failed(FailReason::PeerRestarted))]
    );
    let next = p
        .send_from(Side::A, request("next"), big(3_000, 13), None)
        .unwrap();
    assert!(p.run_until(at_ms(40_000), |p| outcomes(&p.events_a).len() == 2));
    assert_eq!(outcomes(&p.events_a)[1], (next, Outcome::Delivered));
    let r = received(&p.events_b);
    assert_eq!(r.whole.len(), 1);
    assert_eq!(r.whole[0].0, next);
    assert!(r.whole[0].3 == big(3_000, 13));
    assert_eq!(count(&p.events_a, |e| matches!(e, Event::PeerRestarted)), 1);
}

/// A paused endpoint still answers a peer that asks for its capabilities (a peer that
/// restarted, here): messages still flow while paused, as `pause` promises.
#[test]
fn a_paused_endpoint_still_exchanges_capabilities() {
    let mut p = pair(fast());
    p.run_for(ms(10));
    let now = p.now();
    p.a.pause(now);
    p.replace(Side::B, endpoint(fast(), 0xB2, now));
    // B2's start heartbeat is lost: it must ask the paused A for its capabilities.
    p.ba.set_cut(true);
    p.step();
    p.ba.set_cut(false);
    let id = p
        .send_from(Side::B, request("hello"), big(500, 14), None)
        .unwrap();
    assert!(p.run_until(at_ms(2_000), |p| !outcomes(&p.events_b).is_empty()));
    assert_eq!(outcomes(&p.events_b), [(id, Outcome::Delivered)]);
    assert!(p.a.is_paused());
}
