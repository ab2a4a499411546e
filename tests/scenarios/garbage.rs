//! Garbage and corruption: damaged frames and injected bytes are never delivered.

use std::collections::VecDeque;

use peerpipe_core::{Config, Event, Instant, Message, Outcome};
use peerpipe_sim::{LinkConfig, Rng, Side, SimEndpoint};

use crate::support::*;

/// A link that corrupts and prefixes garbage to a third of its frames: nothing corrupt is
/// delivered, order and exactly-once hold, and the receivers count the damage.
#[test]
fn garbage_and_corruption_are_never_delivered() {
    let link = LinkConfig {
        drop: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        corrupt: 0.3,
        garbage: 0.3,
        min_delay: ms(1),
        max_delay: ms(20),
        rechunk: true,
    };
    let config = Config {
        default_request_timeout: secs(600).into(),
        heartbeat_timeout: secs(10).into(),
        ..fast()
    };
    for seed in 1..=3 {
        let mut p = pair_with(config, config, link, seed);
        let mut echo = Echo::default();
        let mut queue: VecDeque<Message> = (0..2_000).map(req).collect();
        let (mut counted, mut acked, mut answered) = (0, 0, 0);
        let done = p.run_until(at_ms(3_600_000), |p| {
            top_up(p, Side::A, &mut queue);
            echo.pump(p);
            for e in &echo.a[counted..] {
                match e {
                    Event::SendOutcome {
                        outcome: Outcome::Delivered,
                        ..
                    } => acked += 1,
                    Event::Message(m) if m.req_id().is_some() => answered += 1,
                    _ => {}
                }
            }
            counted = echo.a.len();
            acked == 2_000 && answered == 2_000
        });
        assert!(done, "seed {seed}");
        let requests: Vec<u64> = messages(&echo.b)
            .into_iter()
            .map(|m| {
                let id = check_payload(m.data(), REQ_SALT);
                assert_eq!(id, m.id().0);
                id
            })
            .collect();
        assert_eq!(requests, (0..2_000).collect::<Vec<_>>(), "seed {seed}");
        let answered: Vec<u64> = replies(&echo.a).iter().map(|r| r.1).collect();
        assert_eq!(answered, (0..2_000).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(count(&echo.a, is_gone) + count(&echo.b, is_gone), 0);
        for (name, s, link) in [
            ("B", p.b.stats(), p.ab.stats()),
            ("A", p.a.stats(), p.ba.stats()),
        ] {
            assert!(
                s.crc_errors > 0 && s.cobs_errors > 0,
                "{name} seed {seed}: {s:?}"
            );
            let errors = s.crc_errors + s.cobs_errors + s.oversize + s.malformed + s.bad_version;
            // Damage to a delimiter can merge two frames into one error, never hide one.
            assert!(
                2 * errors >= link.corrupted.max(link.garbage),
                "{name} seed {seed}: {errors} errors, {link:?}"
            );
        }
    }
}

/// Every single-bit and every double-bit flip of a DATA frame is detected: nothing is
/// delivered, every damaged copy is counted; the intact frame is then delivered once.
#[test]
fn every_one_and_two_bit_flip_is_detected() {
    let mut a = endpoint(fast(), SESSION_A, Instant::ZERO);
    let mut b = endpoint(fast(), SESSION_B, Instant::ZERO);
    knows_peer(&mut a, SESSION_B, Instant::ZERO);
    a.send(Instant::ZERO, req(40), None).unwrap();
    let mut buf = [0u8; SimEndpoint::MAX_FRAME_LEN];
    let n = a.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
    let frame = buf[..n].to_vec();
    assert!(frame.len() > 50);
    let bits = frame.len() * 8;
    let errors = |b: &SimEndpoint| {
        let s = b.stats();
        s.crc_errors + s.cobs_errors + s.oversize + s.malformed + s.bad_version
    };
    let mut copies = 0u64;
    let mut feed = |b: &mut SimEndpoint, flips: &[usize]| {
        let mut damaged = frame.clone();
        for &bit in flips {
            damaged[bit / 8] ^= 1 << (bit % 8);
        }
        // A leading delimiter ends whatever a damaged delimiter left open.
        b.handle_bytes(Instant::ZERO, &[0]);
        b.handle_bytes(Instant::ZERO, &damaged);
        copies += 1;
    };
    for i in 0..bits {
        feed(&mut b, &[i]);
        for j in i + 1..bits {
            feed(&mut b, &[i, j]);
        }
    }
    b.handle_bytes(Instant::ZERO, &[0]);
    assert_eq!(copies as usize, bits + bits * (bits - 1) / 2);
    assert!(
        errors(&b) >= copies,
        "{} errors for {copies} copies",
        errors(&b)
    );
    assert_eq!(b.stats().frames_received, 0);
    assert_eq!(b.peer_session(), None);
    assert!(b.poll_event().is_none());
    b.handle_bytes(Instant::ZERO, &frame);
    b.handle_bytes(Instant::ZERO, &frame);
    assert_eq!(b.stats().frames_received, 2);
    let Some(Event::Message(m)) = b.poll_event() else {
        panic!("intact frame not delivered")
    };
    assert_eq!(check_payload(m.data(), REQ_SALT), 40);
    assert!(b.poll_event().is_none());
    assert_eq!(b.stats().duplicates, 1);
}

/// Bursts of random bytes, runs longer than any frame, and lone delimiters injected into
/// both receivers during a conversation: counted, never delivered, and the conversation
/// carries on.
#[test]
fn injected_garbage_bursts_are_survived() {
    let config = Config {
        default_request_timeout: secs(600).into(),
        ..fast()
    };
    let mut p = pair_with(config, config, LinkConfig::lossy(0.05, 0.0, 0.0), 9);
    let mut rng = Rng::new(99);
    let mut queue: VecDeque<Message> = (0..500).map(req).collect();
    let mut bursts = 0;
    let done = p.run_until(at_ms(3_600_000), |p| {
        top_up(p, Side::A, &mut queue);
        if rng.chance(0.2) {
            bursts += 1;
            let len = match rng.below(4) {
                0 => rng.range(1, 8),
                1 => rng.range(8, 64),
                2 => rng.range(300, 1_000),
                _ => 1,
            } as usize;
            let zeros = rng.chance(0.5);
            let burst: Vec<u8> = (0..len)
                .map(|_| {
                    let b = rng.next_u64() as u8;
                    if zeros || b != 0 {
                        b
                    } else {
                        1
                    }
                })
                .collect();
            let now = p.now();
            let side = if rng.chance(0.5) { Side::A } else { Side::B };
            p.endpoint(side).handle_bytes(now, &burst);
            p.endpoint(side).handle_bytes(now, &[0]);
        }
        outcomes(&p.events_a).len() == 500
    });
    assert!(done);
    assert!(bursts > 100);
    assert_eq!(delivered(&p.events_a), ids(0..500));
    let got: Vec<u64> = messages(&p.events_b)
        .into_iter()
        .map(|m| check_payload(m.data(), REQ_SALT))
        .collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    assert_eq!(p.events_b.len(), 500);
    for s in [p.a.stats(), p.b.stats()] {
        assert!(
            s.oversize > 0 && s.cobs_errors + s.crc_errors + s.malformed > 0,
            "{s:?}"
        );
    }
}
