//! Two endpoints in virtual time: a lossy in-memory link between them, and the steps that
//! move frames across it and time forward.

use peerpipe_core::{Instant, Source};

use crate::Ep;

/// A link that loses every `n`th frame it carries (one count for both directions), or all.
pub(crate) struct Link {
    every: u32,
    rng: u32,
    pub(crate) carried: u32,
    pub(crate) dropped: u32,
    pub(crate) up: bool,
}

impl Link {
    /// A link that loses one frame in `every` on average, at pseudo-random (seeded, so
    /// repeatable) places: a fixed rhythm could keep hitting the same frame of a resend cycle.
    pub(crate) fn new(every: u32) -> Self {
        Link {
            every,
            rng: 0x2545_F491,
            carried: 0,
            dropped: 0,
            up: true,
        }
    }

    fn pass(&mut self) -> bool {
        self.carried += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let lost = !self.up || (self.every > 0 && self.rng.is_multiple_of(self.every));
        self.dropped += u32::from(lost);
        !lost
    }
}

/// Moves every frame `from` has to send over `link` into `to`; returns whether any was sent
/// and updates `to_heard` with the time `to` last received one.
pub(crate) fn transfer(
    now: Instant,
    from: &mut Ep,
    to: &mut Ep,
    link: &mut Link,
    buf: &mut [u8],
    to_heard: &mut Instant,
) -> bool {
    transfer_from(
        now,
        from,
        to,
        link,
        buf,
        to_heard,
        &mut peerpipe_core::NoSource,
    )
}

/// [`transfer`], the bytes of `from`'s messages sent with `send_from` read from `source`.
pub(crate) fn transfer_from(
    now: Instant,
    from: &mut Ep,
    to: &mut Ep,
    link: &mut Link,
    buf: &mut [u8],
    to_heard: &mut Instant,
    source: &mut dyn Source,
) -> bool {
    let mut sent = false;
    for _ in 0..64 {
        match from.poll_transmit_from(now, buf, source) {
            Ok(Some(n)) => {
                sent = true;
                if link.pass() {
                    to.handle_bytes(now, &buf[..n]);
                    *to_heard = now;
                }
            }
            Ok(None) => return sent,
            Err(e) => panic!("poll_transmit: {:?}", e),
        }
    }
    panic!("poll_transmit never ran dry");
}

/// Calls `handle_timeout` on each endpoint whose deadline has come.
pub(crate) fn timeouts(now: Instant, a: &mut Ep, b: &mut Ep) {
    for ep in [a, b] {
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
    }
}

/// The next deadline of either endpoint: virtual time jumps there when nothing else moves.
pub(crate) fn next_deadline(now: Instant, a: &Ep, b: &Ep) -> Instant {
    let next = [a.poll_timeout(), b.poll_timeout()]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline is armed");
    assert!(
        next > now,
        "a deadline at or before now ({} us) after handle_timeout",
        now.as_micros()
    );
    next
}
