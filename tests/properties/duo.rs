//! Two endpoints wired back to back, for the junk properties: structural checks at every
//! step and an exactly-once check of send outcomes.

use std::collections::HashMap;

use peerpipe_core::wire;
use peerpipe_core::{Config, Duration, Error, Event, Instant, Message, MsgId, Outcome};

use crate::junk::{build, JOp, Junk, SA, SB};
use crate::support::{fire_due, ms, Ep, F, P, T};
use crate::tap::tagged;

/// Two endpoints wired back to back (each frame arrives at once), with the structural checks
/// and an exactly-once check of send outcomes.
pub(crate) struct Duo<const RX: usize, const TX: usize> {
    pub(crate) now: Instant,
    pub(crate) eps: [Ep<RX, TX>; 2],
    pub(crate) connected: bool,
    pub(crate) polls: [bool; 2],
    /// Per side: id -> outcome, for every send that returned an id.
    pub(crate) outcomes: [HashMap<u64, Option<Outcome>>; 2],
    /// Per side: events other than outcomes.
    pub(crate) events: [Vec<Event<P, T>>; 2],
    /// Per side: every frame it transmitted.
    pub(crate) sent: [Vec<Vec<u8>>; 2],
    pub(crate) buf: Vec<u8>,
}

impl<const RX: usize, const TX: usize> Duo<RX, TX> {
    pub(crate) fn new(cfg: [Config; 2], connected: bool) -> Self {
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

    pub(crate) fn step(&mut self) {
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

    pub(crate) fn check(&self) {
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

    pub(crate) fn on_event(&mut self, s: usize, e: Event<P, T>) {
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

    pub(crate) fn advance(&mut self, d: Duration) {
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

    pub(crate) fn send(&mut self, s: usize, m: Message<P, T>) -> Result<MsgId, Error> {
        let r = self.eps[s].send(self.now, m, None);
        if let Ok(id) = r {
            assert!(self.outcomes[s].insert(id.0, None).is_none(), "id reused");
        }
        r
    }

    /// Sends until the send queue takes it, advancing time meanwhile.
    pub(crate) fn send_eventually(&mut self, s: usize, m: Message<P, T>) -> MsgId {
        for _ in 0..1_000 {
            match self.send(s, m.clone()) {
                Ok(id) => return id,
                Err(Error::SendQueueFull) => self.advance(ms(10)),
                Err(e) => panic!("side {s}: send refused with {e:?}"),
            }
        }
        panic!("side {s}: send queue never freed")
    }

    pub(crate) fn junk(&mut self, side: usize, junk: &Junk, allow_peer: bool) {
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

    pub(crate) fn run(&mut self, ops: &[JOp], allow_peer: bool, sends: &mut u64) {
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
    pub(crate) fn settle(&mut self) {
        self.polls = [true; 2];
        let longest = self
            .eps
            .iter()
            .map(|e| Duration::from(e.config().default_request_timeout).as_micros())
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
    pub(crate) fn exchange(&mut self, n: u64) {
        let payload = tagged(0xE0_0000 + n as usize, 9);
        let req = Message::request("ping", &payload).unwrap();
        let id = self.send_eventually(0, req);
        let is_req =
            |e: &Event<P, T>| matches!(e, Event::Message(m) if m.data() == payload && m.id() == id);
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
        let reply = got.reply_to(&payload[..5]).unwrap();
        let rid = self.send_eventually(1, reply);
        let is_reply = |e: &Event<P, T>| {
            matches!(e, Event::Message(m)
                if m.req_id() == Some(id) && m.data() == &payload[..5] && m.id() == rid)
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
