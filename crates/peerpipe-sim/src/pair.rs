//! Two endpoints, two links, one virtual clock.

use peerpipe_core::wire::Item;
use peerpipe_core::{Duration, Endpoint, Error, Event, Instant, MsgId};

use crate::{Link, LinkConfig, Store};

/// Which end of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first endpoint; it sends over link `ab`.
    A,
    /// The second endpoint; it sends over link `ba`.
    B,
}

/// Two endpoints wired through two [`Link`]s, driven with virtual time.
///
/// [`step`](Pair::step) does all the work due at the current instant (timeouts, transmissions,
/// arrivals, events); [`advance`](Pair::advance) steps and then jumps the clock to the next
/// instant anything is due. After every step the harness checks the core's promise that
/// `poll_timeout` never names an instant already handled.
pub struct Pair<
    const P: usize = 128,
    const T: usize = 32,
    const RX: usize = 8,
    const TX: usize = 8,
    const F: usize = 223,
> {
    /// Endpoint A.
    pub a: Endpoint<P, T, RX, TX, F>,
    /// Endpoint B.
    pub b: Endpoint<P, T, RX, TX, F>,
    /// The link from A to B.
    pub ab: Link,
    /// The link from B to A.
    pub ba: Link,
    /// Events A reported, in order (while [`auto_poll`](Pair::auto_poll) is on for A).
    pub events_a: Vec<Event<P, T>>,
    /// Events B reported, in order (while [`auto_poll`](Pair::auto_poll) is on for B).
    pub events_b: Vec<Event<P, T>>,
    /// Whether each side's events are polled at every step (A, B). Turn one off to model an
    /// application that does not read.
    pub auto_poll: (bool, bool),
    /// The data of A's sends from a source ([`send_from`](Pair::send_from)).
    pub store_a: Store,
    /// The data of B's sends from a source.
    pub store_b: Store,
    now: Instant,
    buf: Vec<u8>,
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    Pair<P, T, RX, TX, F>
{
    /// Wires `a` and `b` through links of the given behaviour, seeded from `seed`.
    pub fn new(
        a: Endpoint<P, T, RX, TX, F>,
        b: Endpoint<P, T, RX, TX, F>,
        link: LinkConfig,
        seed: u64,
    ) -> Self {
        Pair {
            a,
            b,
            ab: Link::new(link, seed.wrapping_mul(2).wrapping_add(1)),
            ba: Link::new(link, seed.wrapping_mul(2).wrapping_add(2)),
            events_a: Vec::new(),
            events_b: Vec::new(),
            auto_poll: (true, true),
            store_a: Store::default(),
            store_b: Store::default(),
            now: Instant::ZERO,
            buf: vec![0; F],
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock to `at` without doing anything in between (time never goes back).
    pub fn set_now(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }

    /// The endpoint on `side`.
    pub fn endpoint(&mut self, side: Side) -> &mut Endpoint<P, T, RX, TX, F> {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Takes the events recorded for `side`.
    pub fn take_events(&mut self, side: Side) -> Vec<Event<P, T>> {
        std::mem::take(match side {
            Side::A => &mut self.events_a,
            Side::B => &mut self.events_b,
        })
    }

    /// Sends `data` (any length) from `side` with
    /// [`send_from`](Endpoint::send_from), keeping the data in that side's store, at the
    /// current instant.
    pub fn send_from(
        &mut self,
        side: Side,
        item: Item<'_>,
        data: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<MsgId, Error> {
        let now = self.now;
        let len = data.len() as u64;
        let (ep, store) = match side {
            Side::A => (&mut self.a, &mut self.store_a),
            Side::B => (&mut self.b, &mut self.store_b),
        };
        let id = ep.send_from(now, item, len, timeout)?;
        store.insert(id, data);
        Ok(id)
    }

    /// Replaces the endpoint on `side`, as if its process restarted; its links stay.
    pub fn replace(&mut self, side: Side, endpoint: Endpoint<P, T, RX, TX, F>) {
        *self.endpoint(side) = endpoint;
    }

    /// Does everything due at the current instant, until nothing moves.
    pub fn step(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for ep in [&mut self.a, &mut self.b] {
                if ep.poll_timeout().is_some_and(|t| t <= now) {
                    ep.handle_timeout(now);
                }
            }
            while let Some(n) = self
                .a
                .poll_transmit_from(now, &mut self.buf, &mut self.store_a)
                .expect("buffer of FRAME bytes")
            {
                self.ab.send(now, &self.buf[..n]);
                moved = true;
            }
            while let Some(n) = self
                .b
                .poll_transmit_from(now, &mut self.buf, &mut self.store_b)
                .expect("buffer of FRAME bytes")
            {
                self.ba.send(now, &self.buf[..n]);
                moved = true;
            }
            for chunk in self.ab.deliver(now) {
                self.b.handle_bytes(now, &chunk);
                moved = true;
            }
            for chunk in self.ba.deliver(now) {
                self.a.handle_bytes(now, &chunk);
                moved = true;
            }
            // Taking events can make frames due (an ACK announcing room): go round again.
            if self.auto_poll.0 {
                while let Some(e) = self.a.poll_event() {
                    self.events_a.push(e);
                    moved = true;
                }
            }
            if self.auto_poll.1 {
                while let Some(e) = self.b.poll_event() {
                    self.events_b.push(e);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for (name, ep) in [("A", &self.a), ("B", &self.b)] {
            if let Some(t) = ep.poll_timeout() {
                assert!(
                    t > now,
                    "{name}: poll_timeout {t:?} is not after {now:?}, which was just handled"
                );
            }
        }
    }

    /// The next instant anything is due: a deadline of either endpoint or an arrival.
    pub fn next_instant(&self) -> Option<Instant> {
        [
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            self.ab.next_arrival(),
            self.ba.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps, then jumps the clock to the next instant anything is due. Returns false when
    /// nothing will ever be due again.
    pub fn advance(&mut self) -> bool {
        self.step();
        match self.next_instant() {
            Some(t) => {
                self.now = self.now.max(t);
                true
            }
            None => false,
        }
    }

    /// Advances until `done` returns true (checked after every step) or the clock passes
    /// `limit`; returns whether `done` became true. The clock never passes `limit`.
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        loop {
            self.step();
            if done(self) {
                return true;
            }
            match self.next_instant() {
                Some(t) if t <= limit => self.now = self.now.max(t),
                _ => {
                    self.now = self.now.max(limit);
                    self.step();
                    return done(self);
                }
            }
        }
    }

    /// Advances until the clock reaches `now + d`.
    pub fn run_for(&mut self, d: peerpipe_core::Duration) {
        let limit = self.now + d;
        self.run_until(limit, |_| false);
    }
}
