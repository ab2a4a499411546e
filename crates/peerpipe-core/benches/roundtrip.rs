//! Round-trip throughput of two endpoints wired back to back in one thread, no link emulator.
//!
//! One cycle per message: `A.send`, `A.poll_transmit` (encode: COBS + CRC-32C into a buffer),
//! `B.handle_bytes` (decode + accept), `B.poll_transmit` (the ACK), `A.handle_bytes` (the ACK),
//! `A.poll_event` (the outcome), `B.poll_event` (the message).
//!
//! The `window` variants put several messages in flight before the ACKs are exchanged: B
//! acknowledges the whole window with one (coalesced) ACK.
//!
//! Two groups report the same cycles: `messages` in messages per second (Throughput::Elements)
//! and `bytes` in payload MB/s (Throughput::BytesDecimal).
//!
//! Run with `cargo bench -p peerpipe-core`.
//!
//! Where a cycle's instructions go (callgrind, `messages/single/64`, December 2026): about
//! 6,400 in all (7,650 before the wire codec's second round, 8,800 before received items
//! stopped being copied whole through the receive queue), of which CRC-32C about 700 (a
//! hand-written slice-by-16; about 1,900 with the `crc` crate, whose per-call set-up weighed on
//! a frame's short pieces), encoding the two frames (DATA, ACK) about 1,100 besides their CRC,
//! collecting and decoding them about 1,050, reading their fields about 800, copies of
//! messages about 550 (`Message::request` and `send` move the 1 KiB inline message, the
//! received one is taken out of its slot once). The benchmarks build the core as hosts do,
//! with `hardware-crc` (the core's dev-dependency on itself): the CPU's CRC-32C instruction
//! for slices of 64 bytes and more (a DATA frame's check on receipt, its payload while
//! encoding) took a cycle from 6,362 to 6,259 instructions (see `src/wire/crc.rs`).

use std::hint::black_box;
use std::time::Duration as StdDuration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peerpipe_core::wire::max_encoded_len;
use peerpipe_core::{Config, Endpoint, Event, Instant, Message, Outcome};

const PAYLOAD: usize = 1024;
const TOPIC: usize = 32;
/// The decoder buffer for 1 KiB payloads (`Endpoint::new` checks it at compile time).
const FRAME: usize = max_encoded_len(PAYLOAD, TOPIC);
const WINDOW: usize = 8;
const SIZES: [usize; 3] = [16, 64, 1024];

type Ep = Endpoint<PAYLOAD, TOPIC, 16, 16, FRAME>;

/// Two endpoints that have exchanged their first heartbeats, and the buffers the cycle uses.
struct Bench {
    a: Ep,
    b: Ep,
    now: Instant,
    payload: Vec<u8>,
    /// A's outgoing bytes (a whole window of frames, back to back).
    a_out: Vec<u8>,
    /// B's outgoing bytes (the ACK).
    b_out: Vec<u8>,
}

impl Bench {
    fn new(size: usize) -> Self {
        let now = Instant::ZERO;
        let mut bench = Bench {
            a: Ep::new(Config::default(), 0xA, now).unwrap(),
            b: Ep::new(Config::default(), 0xB, now).unwrap(),
            now,
            // Non-zero bytes with a zero now and then, as real payloads have.
            payload: (0..size).map(|i| (i % 251) as u8).collect(),
            a_out: vec![0; FRAME * WINDOW],
            b_out: vec![0; FRAME],
        };
        // Let the opening heartbeats pass so that the cycle sees only DATA and ACK frames.
        let mut buf = vec![0u8; FRAME];
        for _ in 0..4 {
            while let Some(n) = bench.a.poll_transmit(now, &mut buf).unwrap() {
                bench.b.handle_bytes(now, &buf[..n]);
            }
            while let Some(n) = bench.b.poll_transmit(now, &mut buf).unwrap() {
                bench.a.handle_bytes(now, &buf[..n]);
            }
        }
        while bench.a.poll_event().is_some() {}
        while bench.b.poll_event().is_some() {}
        bench
    }

    /// Sends `window` messages A→B, moves them, moves B's ACK back, and polls every event.
    fn cycle(&mut self, window: usize) {
        let now = self.now;
        let mut used = 0;
        for _ in 0..window {
            let msg = Message::request("bench", black_box(&self.payload)).unwrap();
            self.a.send(now, msg, None).unwrap();
            let n = self
                .a
                .poll_transmit(now, &mut self.a_out[used..])
                .unwrap()
                .unwrap();
            used += n;
        }
        self.b.handle_bytes(now, black_box(&self.a_out[..used]));
        let n = self.b.poll_transmit(now, &mut self.b_out).unwrap().unwrap();
        self.a.handle_bytes(now, black_box(&self.b_out[..n]));
        for _ in 0..window {
            match self.a.poll_event() {
                Some(Event::SendOutcome {
                    outcome: Outcome::Delivered,
                    ..
                }) => {}
                other => panic!("A: unexpected {other:?}"),
            }
        }
        for _ in 0..window {
            match self.b.poll_event() {
                Some(Event::Message(m)) => {
                    black_box(m.data());
                }
                other => panic!("B: unexpected {other:?}"),
            }
        }
    }
}

fn run(c: &mut Criterion, group_name: &str, throughput: fn(usize, usize) -> Throughput) {
    let mut group = c.benchmark_group(group_name);
    group
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(2));
    for (label, window) in [("single", 1), ("window8", WINDOW)] {
        for size in SIZES {
            group.throughput(throughput(size, window));
            group.bench_with_input(BenchmarkId::new(label, size), &size, |bencher, &size| {
                let mut bench = Bench::new(size);
                bencher.iter(|| bench.cycle(window));
            });
        }
    }
    group.finish();
}

fn messages(c: &mut Criterion) {
    run(c, "messages", |_, window| {
        Throughput::Elements(window as u64)
    });
}

fn bytes(c: &mut Criterion) {
    run(c, "bytes", |size, window| {
        Throughput::BytesDecimal((size * window) as u64)
    });
}

criterion_group!(benches, messages, bytes);
criterion_main!(benches);
