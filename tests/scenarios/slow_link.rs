//! A slow line (a 115,200-baud serial line: 11,520 bytes/s) with a host's window of 4 KiB
//! fragments: the window takes longer to drain than the resend interval, so the resend
//! timeout must follow the measured round-trip time instead of resending what is still
//! queued in the line.

use peerpipe_core::wire::{self, Item};
use peerpipe_core::{Config, Duration, Endpoint, Event, Instant, Outcome};
use peerpipe_sim::{LinkConfig, Pair, Side};

use crate::support::*;

/// Bytes per second of a 115,200-baud serial line (10 bits a byte).
const RATE: u64 = 11_520;
/// A host's fragments and topics; 8 receive slots: a window of 7 fragments (28 KiB).
const FRAG: usize = 4096;
const TOPIC: usize = 64;
const FRAME: usize = wire::max_encoded_len(FRAG, TOPIC);
const MESSAGE: usize = 100_000;

type SlowEndpoint = Endpoint<FRAG, TOPIC, 8, 16, FRAME>;
type SlowPair = Pair<FRAG, TOPIC, 8, 16, FRAME>;

/// Two endpoints with the original's default timing (resend every 2 s) on a throttled
/// perfect link (1 ms delay after the line), both ways.
fn slow_pair() -> Box<SlowPair> {
    let ep = |session| SlowEndpoint::new(Config::default(), session, Instant::ZERO).unwrap();
    let mut p = Box::new(Pair::new(
        ep(SESSION_A),
        ep(SESSION_B),
        LinkConfig::PERFECT,
        1,
    ));
    p.ab.set_rate(Some(RATE));
    p.ba.set_rate(Some(RATE));
    p
}

fn data() -> Vec<u8> {
    (0..MESSAGE).map(|i| (i % 251) as u8).collect()
}

fn send(p: &mut SlowPair) {
    let timeout = Some(Duration::from_secs(120));
    p.send_from(Side::A, Item::Request { topic: "file" }, data(), timeout)
        .unwrap();
}

fn delivered(p: &mut SlowPair) -> bool {
    p.events_a.iter().any(|e| {
        matches!(
            e,
            Event::SendOutcome {
                outcome: Outcome::Delivered,
                ..
            }
        )
    })
}

/// B's message put together from its parts.
fn received(p: &SlowPair) -> Vec<u8> {
    let mut got = Vec::new();
    for e in &p.events_b {
        if let Event::Part(part) = e {
            assert_eq!(got.len() as u64, part.offset());
            got.extend_from_slice(part.data());
        }
    }
    got
}

/// 100 kB through the slow line: nothing queued in the line is resent, so the line carries
/// the message and its framing only. Measured: 0 resends, 100,473 bytes on the A→B line
/// (1.005×: framing) with the adaptive timeout, which ends at about 3.2 s; before it, with
/// resends every 2 s regardless, 38 resends and 190,981 bytes (1.91×).
#[test]
fn a_slow_line_carries_a_large_message_without_spurious_resends() {
    let mut p = slow_pair();
    send(&mut p);
    assert!(p.run_until(at_ms(120_000), delivered));
    assert_eq!(received(&p), data());
    let wire_bytes = p.ab.stats().bytes_delivered;
    let resends = p.a.stats().resends;
    assert_eq!(resends, 0);
    assert!(
        wire_bytes * 100 <= MESSAGE as u64 * 101,
        "{wire_bytes} bytes on the line for {MESSAGE}"
    );
}

/// Once the estimate has settled, a fragment really lost on the slow line is resent within
/// the resend timeout the estimate gives (a few seconds), not after the 60 s bound, and the
/// message is still delivered whole with that one resend.
#[test]
fn a_real_loss_on_the_slow_line_is_resent_promptly() {
    let mut p = slow_pair();
    send(&mut p);
    let parts = |p: &mut SlowPair| {
        p.events_b
            .iter()
            .filter(|e| matches!(e, Event::Part(_)))
            .count()
            >= 16
    };
    assert!(p.run_until(at_ms(60_000), parts));
    let rto = p.a.resend_timeout().unwrap();
    assert!(p.a.rtt().is_some_and(|srtt| srtt < rto));
    // Adapted: above the configured 2 s (the window takes about 2.5 s to drain), and far
    // below the 60 s bound. Measured: srtt 2.26 s, timeout 6.04 s, resent 3.45 s after.
    assert!(
        rto > Duration::from_secs(2) && rto < Duration::from_secs(10),
        "{rto:?}"
    );
    // The fragment transmitted last, still in the line, is lost.
    let last = p.ab.in_flight_len() - 1;
    assert!(p.ab.drop_at(last));
    let lost_at = p.now();
    assert!(p.run_until(at_ms(60_000), |p| p.a.stats().resends > 0));
    let waited = p.now() - lost_at;
    assert!(
        waited <= rto,
        "resent {waited:?} after the loss, rto {rto:?}"
    );
    assert!(p.run_until(at_ms(120_000), delivered));
    assert_eq!(received(&p), data());
    assert_eq!(p.a.stats().resends, 1);
}

/// The simulated line: each frame takes its length over the rate, after the frames offered
/// before it, then the link's delay.
#[test]
fn the_line_serialises_frames_at_its_rate() {
    let mut link = peerpipe_sim::Link::new(LinkConfig::PERFECT, 1);
    link.set_rate(Some(RATE));
    link.send(Instant::ZERO, &[1; 1152]);
    link.send(Instant::ZERO, &[2; 576]);
    // 1152 bytes: 100 ms, then 1 ms of delay; 576 more: 50 ms after that.
    assert_eq!(link.next_arrival(), Some(at_ms(101)));
    assert_eq!(link.deliver(at_ms(101)).len(), 1);
    assert_eq!(link.next_arrival(), Some(at_ms(151)));
    // An idle line starts at once.
    link.send(at_ms(1_000), &[3; 1152]);
    assert_eq!(link.deliver(at_ms(1_101)).len(), 2);
}
