//! A seeded, lossy, one-way byte link.

use std::collections::VecDeque;

use peerpipe_core::{Duration, Instant};

use crate::Rng;

/// What the link does to the frames it carries. Probabilities are per frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Probability that a frame is lost.
    pub drop: f64,
    /// Probability that a frame arrives twice.
    pub duplicate: f64,
    /// Probability that a frame is delayed past later ones (reordered).
    pub reorder: f64,
    /// Probability that a frame has bits flipped, bytes inserted or bytes removed.
    pub corrupt: f64,
    /// Probability that a burst of garbage bytes is injected before a frame.
    pub garbage: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (reordered frames get up to twice this more).
    pub max_delay: Duration,
    /// Deliver the byte stream in randomly split and merged chunks instead of frame by frame.
    pub rechunk: bool,
}

impl LinkConfig {
    /// A perfect link with a 1 ms delay.
    pub const PERFECT: LinkConfig = LinkConfig {
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        corrupt: 0.0,
        garbage: 0.0,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        rechunk: false,
    };

    /// A link with the given loss, duplication and corruption rates, some reordering and
    /// garbage, 1 to 20 ms of delay, and re-chunked bytes.
    pub fn lossy(drop: f64, duplicate: f64, corrupt: f64) -> LinkConfig {
        LinkConfig {
            drop,
            duplicate,
            reorder: 0.02,
            corrupt,
            garbage: corrupt / 2.0,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            rechunk: true,
        }
    }
}

/// What a link did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered to the link.
    pub frames: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames reordered.
    pub reordered: u64,
    /// Frames corrupted.
    pub corrupted: u64,
    /// Garbage bursts injected.
    pub garbage: u64,
    /// Bytes delivered.
    pub bytes_delivered: u64,
}

/// A one-way link: frames go in with [`send`](Link::send), bytes come out of
/// [`deliver`](Link::deliver) when their time has come.
///
/// Besides the random faults of its [`LinkConfig`], a test can act on the frames in flight
/// itself, one at a time: [`take_next`](Link::take_next), [`drop_at`](Link::drop_at),
/// [`duplicate_at`](Link::duplicate_at), [`corrupt_at`](Link::corrupt_at) and
/// [`swap`](Link::swap) address a frame by its index in arrival order (`0` arrives first, up
/// to [`in_flight_len`](Link::in_flight_len)), and count in [`LinkStats`] like the random
/// faults. A script-driven test (a property test) then decides every fault and keeps the
/// link's random faults at zero.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    rng: Rng,
    /// In flight: (arrival time, insertion order, bytes), kept sorted by arrival.
    in_flight: VecDeque<(Instant, u64, Vec<u8>)>,
    order: u64,
    cut: bool,
    /// Bytes per second the line carries, if limited (see [`set_rate`](Link::set_rate)).
    rate: Option<u64>,
    /// When the line has finished serialising what it was given.
    free_at: Instant,
    stats: LinkStats,
}

impl Link {
    /// A link with this behaviour and seed.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Link {
            config,
            rng: Rng::new(seed),
            in_flight: VecDeque::new(),
            order: 0,
            cut: false,
            rate: None,
            free_at: Instant::ZERO,
            stats: LinkStats::default(),
        }
    }

    /// Changes the behaviour from now on.
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// Cuts the link (everything sent is lost, including what is in flight) or restores it.
    pub fn set_cut(&mut self, cut: bool) {
        self.cut = cut;
        if cut {
            self.in_flight.clear();
        }
    }

    /// Limits the line to `bytes_per_sec` (`None`: unlimited, the default), like a serial
    /// line: each frame offered (a lost one too, a duplicate twice) takes its length over the
    /// rate to go out, after what was offered before it, and its delay counts from there.
    pub fn set_rate(&mut self, bytes_per_sec: Option<u64>) {
        self.rate = bytes_per_sec.filter(|&r| r > 0);
    }

    /// When a frame of `len` bytes offered at `now` has gone out on the line.
    fn serialise(&mut self, now: Instant, len: usize) -> Instant {
        let Some(rate) = self.rate else {
            return now;
        };
        let start = now.max(self.free_at);
        self.free_at = start + Duration::from_micros(len as u64 * 1_000_000 / rate);
        self.free_at
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Offers one encoded frame at `now`.
    pub fn send(&mut self, now: Instant, frame: &[u8]) {
        self.stats.frames += 1;
        if self.cut {
            self.stats.dropped += 1;
            return;
        }
        let first = self.serialise(now, frame.len());
        if self.rng.chance(self.config.drop) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            // A duplicate takes the line again, after the first copy.
            let out = if copy == 0 {
                first
            } else {
                self.serialise(now, frame.len())
            };
            let mut bytes = Vec::with_capacity(frame.len() + 8);
            if self.rng.chance(self.config.garbage) {
                self.stats.garbage += 1;
                for _ in 0..self.rng.range(1, 40) {
                    bytes.push(self.rng.next_u64() as u8);
                }
            }
            bytes.extend_from_slice(frame);
            if self.rng.chance(self.config.corrupt) {
                self.stats.corrupted += 1;
                self.corrupt(&mut bytes);
            }
            let (lo, hi) = (
                self.config.min_delay.as_micros(),
                self.config.max_delay.as_micros(),
            );
            let mut delay = self.rng.range(lo, hi.max(lo));
            if self.rng.chance(self.config.reorder) {
                self.stats.reordered += 1;
                delay += self.rng.range(1, 2 * hi.max(1));
            }
            self.schedule(out + Duration::from_micros(delay), bytes);
        }
    }

    fn corrupt(&mut self, bytes: &mut Vec<u8>) {
        let len = bytes.len() as u64;
        match self.rng.below(4) {
            0 | 1 => {
                for _ in 0..self.rng.range(1, 3) {
                    let at = self.rng.below(len) as usize;
                    bytes[at] ^= 1 << self.rng.below(8);
                }
            }
            2 => {
                let at = self.rng.below(len + 1) as usize;
                bytes.insert(at, self.rng.next_u64() as u8);
            }
            _ => {
                let at = self.rng.below(len) as usize;
                bytes.remove(at);
            }
        }
    }

    fn schedule(&mut self, at: Instant, bytes: Vec<u8>) {
        self.order += 1;
        let pos = self.in_flight.partition_point(|(t, _, _)| *t <= at);
        self.in_flight.insert(pos, (at, self.order, bytes));
    }

    /// When the next bytes arrive.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(t, _, _)| *t)
    }

    /// How many frames (copies included) are in flight.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Takes the next frame in flight now, ahead of its arrival time, whole (not re-chunked).
    pub fn take_next(&mut self) -> Option<Vec<u8>> {
        let (_, _, bytes) = self.in_flight.pop_front()?;
        self.stats.bytes_delivered += bytes.len() as u64;
        Some(bytes)
    }

    /// Loses the frame at `index` (in arrival order); false if there is none.
    pub fn drop_at(&mut self, index: usize) -> bool {
        let dropped = self.in_flight.remove(index).is_some();
        if dropped {
            self.stats.dropped += 1;
        }
        dropped
    }

    /// Duplicates the frame at `index` (in arrival order): the copy arrives right after it, at
    /// the same instant. False if there is none.
    pub fn duplicate_at(&mut self, index: usize) -> bool {
        let Some((at, _, bytes)) = self.in_flight.get(index).cloned() else {
            return false;
        };
        self.order += 1;
        self.in_flight.insert(index + 1, (at, self.order, bytes));
        self.stats.duplicated += 1;
        true
    }

    /// Lets `damage` change the bytes of the frame at `index` (in arrival order); false if
    /// there is none.
    pub fn corrupt_at(&mut self, index: usize, damage: impl FnOnce(&mut Vec<u8>)) -> bool {
        let Some((_, _, bytes)) = self.in_flight.get_mut(index) else {
            return false;
        };
        damage(bytes);
        self.stats.corrupted += 1;
        true
    }

    /// Swaps the frames at `i` and `j` (in arrival order) while their arrival instants stay in
    /// place: each arrives when the other would have. False if either is missing.
    pub fn swap(&mut self, i: usize, j: usize) -> bool {
        if i.max(j) >= self.in_flight.len() {
            return false;
        }
        if i != j {
            let bytes = std::mem::take(&mut self.in_flight[i].2);
            self.in_flight[i].2 = std::mem::replace(&mut self.in_flight[j].2, bytes);
            self.stats.reordered += 1;
        }
        true
    }

    /// Takes every byte due at `now`, as the chunks the receiver reads.
    pub fn deliver(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while self.in_flight.front().is_some_and(|(t, _, _)| *t <= now) {
            if let Some((_, _, bytes)) = self.in_flight.pop_front() {
                due.push(bytes);
            }
        }
        if !self.config.rechunk || due.is_empty() {
            self.stats.bytes_delivered += due.iter().map(|c| c.len() as u64).sum::<u64>();
            return due;
        }
        let stream: Vec<u8> = due.concat();
        self.stats.bytes_delivered += stream.len() as u64;
        let mut chunks = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = (self.rng.range(1, 96) as usize).min(rest.len());
            let (head, tail) = rest.split_at(n);
            chunks.push(head.to_vec());
            rest = tail;
        }
        chunks
    }
}
