//! The reference model: what it records per incarnation and per send, the world that drives
//! both endpoints and the link with virtual time, and the checks after a quiet period.

use std::collections::HashMap;

use peerpipe_core::wire::Decoder;
use peerpipe_core::{CloseReason, Config, Duration, Error, Instant, Outcome, PeerState};

use peerpipe_sim::{Link, LinkConfig, Store};

use crate::support::{fire_due, Ep, F, MAX_SEND_TIMEOUT_MS};
use crate::tap::ItemRec;

/// The peer's status as the application learns it from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Status {
    #[default]
    Open,
    Ended,
    Aborted,
    Gone,
}

pub(crate) fn status_of(state: PeerState) -> Status {
    match state {
        PeerState::Gone => Status::Gone,
        PeerState::Ended => Status::Ended,
        PeerState::Aborted => Status::Aborted,
        _ => Status::Open,
    }
}

/// One incarnation (endpoint instance) of a side.
#[derive(Debug, Default)]
pub(crate) struct Inc {
    pub(crate) session: u32,
    pub(crate) next_seq: u64,
    /// Sends whose outcome the application has not taken: each holds a send slot.
    pub(crate) outstanding: usize,
    pub(crate) stopped: bool,
    /// Replaced by a restart.
    pub(crate) replaced: bool,
    /// Replaced after a stop whose outcomes were all taken.
    pub(crate) graceful: bool,
    pub(crate) local_close: Option<CloseReason>,
    pub(crate) transport_lost: bool,
    pub(crate) status: Status,
    pub(crate) gone_in_segment: bool,
    /// The last id delivered per sender session.
    pub(crate) last_id: HashMap<u32, u64>,
    /// Requests delivered to this incarnation's application: (topic, id).
    pub(crate) requests: Vec<(String, u64)>,
    /// Peer sessions whose frames the link brought to this incarnation.
    pub(crate) met: Vec<u32>,
}

/// A message an application is receiving in parts: its tag, id, what it is and the data so
/// far.
pub(crate) type Partial = (usize, u64, ItemRec, Vec<u8>);

/// One successful send.
#[derive(Debug)]
pub(crate) struct Rec {
    pub(crate) from: usize,
    pub(crate) inc: usize,
    pub(crate) session: u32,
    pub(crate) id: u64,
    pub(crate) item: ItemRec,
    pub(crate) payload: Vec<u8>,
    /// Sent from a source, longer than one frame.
    pub(crate) in_parts: bool,
    pub(crate) sent_at: Instant,
    pub(crate) timeout: Duration,
    pub(crate) outcome: Option<Outcome>,
    /// The most transmissions of any one of its fragments.
    pub(crate) transmissions: u32,
    /// Transmissions per fragment, by seq.
    pub(crate) frag_tx: HashMap<u64, u32>,
    /// The sender's count of retry ACKs when this was sent (see `World::retries`).
    pub(crate) retries_before: u32,
    /// Peer incarnations that accepted it into their receive queue (a message in parts: its
    /// last fragment).
    pub(crate) accepted_by: Vec<usize>,
    /// Peer incarnations that accepted the first fragment of a message in parts.
    pub(crate) begun_by: Vec<usize>,
    /// Peer incarnations whose application got it.
    pub(crate) delivered_by: Vec<usize>,
}

/// How the simulator's link of each direction behaves: a fixed `delay` and none of its random
/// faults. The script decides every fault itself, frame by frame, through the link's scripted
/// controls (see `Op`), so that proptest can shrink a failing script to the faults it needs.
pub(crate) fn scripted(delay: Duration) -> LinkConfig {
    LinkConfig {
        min_delay: delay,
        max_delay: delay,
        ..LinkConfig::PERFECT
    }
}

pub(crate) struct World<const RX: usize, const TX: usize> {
    pub(crate) now: Instant,
    pub(crate) eps: [Ep<RX, TX>; 2],
    pub(crate) cfg: [Config; 2],
    pub(crate) polls: [bool; 2],
    pub(crate) incs: [Vec<Inc>; 2],
    /// Index = tag.
    pub(crate) recs: Vec<Rec>,
    /// (sender side, session, seq) -> tag.
    pub(crate) by_seq: HashMap<(usize, u32, u64), usize>,
    /// `links[s]` carries what side `s` sends.
    pub(crate) links: [Link; 2],
    /// `held[s]`: the script holds what is in flight on `links[s]`; nothing arrives by itself.
    pub(crate) held: [bool; 2],
    /// `mirrors[s]`: a copy of side `s`'s stream decoder state.
    pub(crate) mirrors: [Decoder<F>; 2],
    pub(crate) same_sessions: bool,
    pub(crate) buf: Vec<u8>,
    /// Refused sends, for the statistics.
    pub(crate) refused: Vec<Error>,
    /// The data of each side's sends from a source (its current incarnation's).
    pub(crate) stores: [Store; 2],
    /// The message each side's application is receiving in parts.
    pub(crate) partial: [Option<Partial>; 2],
    /// An ACK asking for a retry reached side `s` while it had sends in flight: it owes a
    /// DATA transmission before time moves on (nothing waits for a resend timer once the
    /// peer announced room for it).
    pub(crate) owed: [bool; 2],
    /// Side `s` refused a DATA frame for a full receive queue and has not yet asked its peer
    /// for a retry: once its queue has room again, that ACK must go out at once.
    pub(crate) retry_owed: [bool; 2],
    /// ACKs asking for a retry that side `s` took: each lets an item go once more than its
    /// resend timer alone would.
    pub(crate) retries: [u32; 2],
}

impl<const RX: usize, const TX: usize> World<RX, TX> {
    pub(crate) fn session(&self, side: usize, inc: usize) -> u32 {
        // Equal session ids on both sides are allowed by the protocol.
        let base = if self.same_sessions {
            0x100
        } else {
            0x1_0000 << side
        };
        base + inc as u32
    }

    pub(crate) fn new(cfg: [Config; 2], same_sessions: bool) -> Self {
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
            // No random fault: the seeds are never used.
            links: [
                Link::new(scripted(Duration::ZERO), 0),
                Link::new(scripted(Duration::ZERO), 1),
            ],
            held: [false; 2],
            mirrors: [Decoder::new(), Decoder::new()],
            same_sessions,
            buf: vec![0; F],
            refused: Vec::new(),
            stores: Default::default(),
            partial: [None, None],
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

    pub(crate) fn cur(&self, side: usize) -> usize {
        self.incs[side].len() - 1
    }

    pub(crate) fn inc(&mut self, side: usize) -> &mut Inc {
        self.incs[side].last_mut().unwrap()
    }

    // ---- driving -------------------------------------------------------------------------

    /// Does everything due at the current instant, until nothing moves.
    pub(crate) fn step(&mut self) {
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
                if !self.held[s] {
                    // Not re-chunked: one frame (or one damaged copy) per chunk.
                    for bytes in self.links[s].deliver(now) {
                        self.arrive(1 - s, &[&bytes]);
                        moved = true;
                    }
                }
            }
            for s in 0..2 {
                // Taking events may make an ACK due (room again), even when the endpoint
                // drops what it took (the stray rest of a cut message) and reports nothing:
                // transmissions come last, and the loop goes on until transmissions and
                // events both run dry, as the endpoint's docs ask.
                if self.polls[s] && self.drain(s) {
                    moved = true;
                }
            }
            for s in 0..2 {
                while let Some(n) = self.eps[s]
                    .poll_transmit_from(now, &mut self.buf, &mut self.stores[s])
                    .unwrap()
                {
                    let bytes = self.buf[..n].to_vec();
                    self.on_transmit(s, bytes);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for s in 0..2 {
            let ep = &self.eps[s];
            // (Without the peer's capabilities, from its heartbeat, no new fragment can go:
            // the retry then waits for them.)
            assert!(
                !self.owed[s] || ep.peer_state() != PeerState::Up || ep.peer_caps().is_none(),
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

    pub(crate) fn next_instant(&self) -> Option<Instant> {
        let mut all = vec![self.eps[0].poll_timeout(), self.eps[1].poll_timeout()];
        for (link, held) in self.links.iter().zip(self.held) {
            if !held {
                all.push(link.next_arrival());
            }
        }
        all.into_iter().flatten().min()
    }

    pub(crate) fn advance(&mut self, d: Duration) {
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
    pub(crate) fn drain(&mut self, s: usize) -> bool {
        let mut any = false;
        while let Some(e) = self.eps[s].poll_event() {
            self.on_event(s, e);
            any = true;
        }
        any
    }

    /// Heals the link, lets both applications poll, resumes paused endpoints.
    pub(crate) fn heal(&mut self) {
        for link in &mut self.links {
            link.set_cut(false);
        }
        self.held = [false; 2];
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
    pub(crate) fn quiesce(&mut self) {
        self.heal();
        let longest = self
            .cfg
            .iter()
            .map(|c| {
                let us = |d: std::time::Duration| Duration::from(d).as_micros();
                us(c.default_request_timeout).max(MAX_SEND_TIMEOUT_MS * 1000)
                    + us(c.heartbeat_timeout)
                    + us(c.heartbeat_interval)
            })
            .max()
            .unwrap();
        self.advance(Duration::from_micros(2 * longest + 1_000_000));
        self.check_final();
    }

    pub(crate) fn check_final(&mut self) {
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
            // A message in parts that was not delivered may have been cut by its receiver
            // after its last fragment was accepted (out of order, or as the stray rest of a
            // message whose beginning was skipped); and a later incarnation of the receiver
            // may accept its last fragment as a stray resend (and acknowledge it, while the
            // sender may count the acknowledgement of the incarnation that took it all before
            // it was replaced). So for a message in parts: once delivered to its sender's
            // knowledge, some receiver incarnation that began it and accepted its end got it
            // whole, unless all of them stopped or were replaced.
            if rec.in_parts {
                let alive = rec.accepted_by.iter().any(|&k| {
                    let r = &self.incs[1 - rec.from][k];
                    rec.begun_by.contains(&k) && !r.stopped && !r.replaced
                });
                assert!(
                    rec.outcome != Some(Outcome::Delivered)
                        || !rec.delivered_by.is_empty()
                        || !alive
                        || stranded,
                    "tag {tag} {rec:?} delivered to its sender's knowledge, never whole"
                );
                continue;
            }
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
