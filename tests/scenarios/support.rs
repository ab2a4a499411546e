//! Helpers shared by the scenarios: time, configs, endpoint pairs, checked payloads, event
//! filters, and drivers that answer requests and keep send queues full.

use std::collections::VecDeque;

use peerpipe_core::{Config, Duration, Error, Event, Instant, Message, MsgId, Outcome};
use peerpipe_sim::{LinkConfig, Pair, Side, SimEndpoint};

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn at_ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

pub(crate) const US: Duration = Duration::from_micros(1);

/// One instant before `t`.
pub(crate) fn before(t: Instant) -> Instant {
    Instant::from_micros(t.as_micros() - 1)
}

/// Heartbeats every second, gone after 3 s of silence, resends every 100 ms without limit,
/// sends time out after 60 s.
pub(crate) fn fast() -> Config {
    Config {
        heartbeat_interval: secs(1).into(),
        heartbeat_timeout: secs(3).into(),
        resend_interval: Some(ms(100).into()),
        max_resends: None,
        default_request_timeout: secs(60).into(),
        max_message: 0,
    }
}

pub(crate) const SESSION_A: u32 = 0xA;
pub(crate) const SESSION_B: u32 = 0xB;

pub(crate) fn endpoint(config: Config, session: u32, now: Instant) -> SimEndpoint {
    SimEndpoint::new(config, session, now).expect("valid config")
}

/// Gives `ep` the capabilities of a simulator endpoint with session `peer` (what its first
/// heartbeat would), so that it sends DATA at once.
pub(crate) fn knows_peer(ep: &mut SimEndpoint, peer: u32, now: Instant) {
    let mut other = endpoint(fast(), peer, now);
    let mut buf = [0u8; SimEndpoint::MAX_FRAME_LEN];
    let n = other.poll_transmit(now, &mut buf).unwrap().unwrap();
    ep.handle_bytes(now, &buf[..n]);
}

pub(crate) fn pair_with(a: Config, b: Config, link: LinkConfig, seed: u64) -> Pair {
    Pair::new(
        endpoint(a, SESSION_A, Instant::ZERO),
        endpoint(b, SESSION_B, Instant::ZERO),
        link,
        seed,
    )
}

pub(crate) fn pair(config: Config) -> Pair {
    pair_with(config, config, LinkConfig::PERFECT, 1)
}

/// A payload that names its id and carries a pattern derived from it, so that any corruption
/// that slipped through would be seen.
pub(crate) fn payload(id: u64, salt: u8) -> Vec<u8> {
    let extra = (id % 57) as usize;
    let mut v = id.to_le_bytes().to_vec();
    v.extend((0..extra).map(|i| (id as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ salt));
    v
}

/// The id a payload names, after checking the whole payload against it.
pub(crate) fn check_payload(bytes: &[u8], salt: u8) -> u64 {
    assert!(bytes.len() >= 8, "payload too short: {bytes:?}");
    let id = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(bytes, payload(id, salt), "corrupt payload delivered");
    id
}

pub(crate) const REQ_SALT: u8 = 0x5A;

pub(crate) fn req(id: u64) -> Message {
    Message::request("req", &payload(id, REQ_SALT)).unwrap()
}

pub(crate) fn is_gone(e: &Event) -> bool {
    matches!(e, Event::Gone(_))
}

pub(crate) fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

pub(crate) fn outcomes(events: &[Event]) -> Vec<(MsgId, Outcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SendOutcome { id, outcome } => Some((*id, *outcome)),
            _ => None,
        })
        .collect()
}

pub(crate) fn delivered(events: &[Event]) -> Vec<MsgId> {
    let mut ids: Vec<MsgId> = outcomes(events)
        .into_iter()
        .filter(|(_, o)| *o == Outcome::Delivered)
        .map(|(id, _)| id)
        .collect();
    // Outcomes come lowest id first among those settled; ACKs may settle later ids first.
    ids.sort();
    ids
}

pub(crate) fn messages(events: &[Event]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

pub(crate) fn message_ids(events: &[Event]) -> Vec<u64> {
    messages(events).iter().map(|m| m.id().0).collect()
}

pub(crate) fn ids(range: std::ops::Range<u64>) -> Vec<MsgId> {
    range.map(MsgId).collect()
}

pub(crate) fn strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Remembers the last instant each side received a valid frame.
#[derive(Default)]
pub(crate) struct RxClock {
    seen: [u64; 2],
    pub(crate) last: [Instant; 2],
}

impl RxClock {
    pub(crate) fn observe(&mut self, p: &Pair) {
        let now = p.now();
        for (i, n) in [p.a.stats().frames_received, p.b.stats().frames_received]
            .into_iter()
            .enumerate()
        {
            if n != self.seen[i] {
                self.seen[i] = n;
                self.last[i] = now;
            }
        }
    }

    pub(crate) fn run(&mut self, p: &mut Pair, limit: Instant) {
        p.run_until(limit, |p| {
            self.observe(p);
            false
        });
    }
}

/// Sends what `queue` holds from `side` while slots are free, and transmits at once (as a
/// driver drains `poll_transmit` after every command).
pub(crate) fn top_up(p: &mut Pair, side: Side, queue: &mut VecDeque<Message>) -> Vec<MsgId> {
    let now = p.now();
    let mut sent = Vec::new();
    while let Some(m) = queue.front() {
        match p.endpoint(side).send(now, m.clone(), None) {
            Ok(id) => {
                sent.push(id);
                queue.pop_front();
            }
            Err(Error::SendQueueFull) => break,
            Err(e) => panic!("send: {e:?}"),
        }
    }
    if !sent.is_empty() {
        p.step();
    }
    sent
}

/// The events of both sides, where each side answers every request it receives with a reply
/// carrying the same payload.
#[derive(Default)]
pub(crate) struct Echo {
    pub(crate) a: Vec<Event>,
    pub(crate) b: Vec<Event>,
    /// Messages (replies, and requests the test queues) waiting for a free send slot.
    pub(crate) outbox: [VecDeque<Message>; 2],
}

impl Echo {
    pub(crate) fn pump(&mut self, p: &mut Pair) {
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            for e in p.take_events(side) {
                if let Event::Message(m) = &e {
                    if m.is_request() {
                        self.outbox[i].push_back(m.reply_to(m.data()).unwrap());
                    }
                }
                match side {
                    Side::A => self.a.push(e),
                    Side::B => self.b.push(e),
                }
            }
            top_up(p, side, &mut self.outbox[i]);
        }
    }

    pub(crate) fn run(
        &mut self,
        p: &mut Pair,
        limit: Instant,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        p.run_until(limit, |p| {
            self.pump(p);
            done(self)
        })
    }
}

/// The replies among `events`, as (request id, payload id).
pub(crate) fn replies(events: &[Event]) -> Vec<(u64, u64)> {
    messages(events)
        .into_iter()
        .filter_map(|m| m.req_id().map(|r| (r.0, check_payload(m.data(), REQ_SALT))))
        .collect()
}

/// Runs until `side` reports an event; returns the instant it appeared.
pub(crate) fn first_event_at(p: &mut Pair, side: Side, limit: Instant) -> Instant {
    let reported = p.run_until(limit, |p| match side {
        Side::A => !p.events_a.is_empty(),
        Side::B => !p.events_b.is_empty(),
    });
    assert!(reported, "no event by {limit:?}");
    p.now()
}
