//! What a pipe costs in memory, counted by a global allocator on a current-thread runtime
//! in virtual time: an idle default pipe, and a receiver whose application is slower than
//! a flood of large or medium messages (the bound the crate docs give).
//!
//! The flood comes from a core endpoint driven here, whose message bytes are computed as
//! they go out (a `Source` with no data behind it), so that every byte counted after the
//! start is the receiving handler's or its application's.

use std::time::Duration;

use peerpipe_tokio::peerpipe_core::{self, wire, Event, MsgId, Outcome, Source};
use peerpipe_tokio::{Config, Item, Message, PipeHandler, DEFAULT_FRAGMENT, QUEUE_BYTES};
use tokio::io::DuplexStream;
use tokio::time::{sleep, Instant};

#[path = "common/core_peer.rs"]
mod core_peer;
#[path = "common/counting.rs"]
mod counting;
use core_peer::{CoreEndpoint, CorePeer};
use counting::{live_bytes, peak_bytes, reset_peak};

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

const KIB: isize = 1024;

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::ZERO,
        resend_interval: Some(Duration::from_millis(200)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(3600),
        max_message: 0,
    }
}

/// Two default pipes over TCP loopback (whose buffers are the kernel's), idle for half a
/// second (heartbeats every 100 ms), cost at most 16 KiB each: endpoint, shared state,
/// task, timer and socket registration. And again after a 1 MiB message went through (no
/// buffer stays grown).
#[tokio::test]
async fn an_idle_default_pipe_takes_at_most_16_kib() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (x, y) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (x, y) = (x.unwrap(), y.unwrap().0);
    x.set_nodelay(true).unwrap();
    y.set_nodelay(true).unwrap();
    let before = live_bytes();
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    sleep(Duration::from_millis(500)).await;
    let idle = (live_bytes() - before) / 2;
    println!(
        "an idle default pipe: {idle} bytes, of which the endpoint {} bytes",
        std::mem::size_of::<CoreEndpoint>()
    );
    assert!(idle <= 16 * KIB, "an idle pipe takes {idle} bytes");

    let big = Message::request("big", vec![3; 1 << 20]).unwrap();
    let (sent, got) = tokio::join!(a.send_to_peer(big, None), b.recv());
    sent.unwrap();
    assert!(matches!(got, Some(Item::Message(m)) if m.data().len() == 1 << 20));
    sleep(Duration::from_millis(500)).await;
    let after = (live_bytes() - before) / 2;
    println!("the same pipe idle after 1 MiB went through: {after} bytes");
    assert!(
        after <= 16 * KIB,
        "an idle pipe takes {after} bytes after a transfer"
    );
}

/// The bytes of message `id` at `offset` in the flood.
fn byte(id: MsgId, offset: u64) -> u8 {
    (offset.wrapping_mul(7) ^ id.0.wrapping_mul(131) ^ (offset >> 11)) as u8
}

/// Message bytes computed as they are asked for.
struct Pattern(Vec<u8>);

impl Source for Pattern {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        self.0.clear();
        self.0
            .extend((offset..offset + len as u64).map(|o| byte(id, o)));
        Some(&self.0)
    }
}

/// Sends `count` requests of `len` bytes from a core endpoint over `io`, from `start` on,
/// as fast as the receiver acknowledges them; returns when all were delivered (with the
/// connection, still open).
async fn flood(io: DuplexStream, count: u64, len: u64, start: Instant) -> CorePeer {
    let mut peer = CorePeer::new(io, config(), 0xf100d);
    let mut source = Pattern(Vec::with_capacity(DEFAULT_FRAGMENT));
    let (mut queued, mut delivered) = (0, 0);
    peer.run(&mut source, |ep, now| {
        while queued < count && Instant::now() >= start {
            let item = wire::Item::Request { topic: "flood" };
            match ep.send_from(now, item, len, None) {
                Ok(_) => queued += 1,
                Err(peerpipe_core::Error::SendQueueFull) => break,
                Err(e) => panic!("{e}"),
            }
        }
        while let Some(event) = ep.poll_event() {
            if let Event::SendOutcome { outcome, .. } = event {
                assert_eq!(outcome, Outcome::Delivered);
                delivered += 1;
            }
        }
        delivered == count
    })
    .await;
    peer
}

/// `count` messages of `len` bytes flood a default pipe whose application takes one every
/// 50 ms and holds it meanwhile (checking every byte). Returns the most bytes allocated at
/// any moment beyond what the idle setup held.
async fn slow_application_under_a_flood(count: u64, len: u64) -> isize {
    let (x, y) = tokio::io::duplex(64 * 1024);
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    let start = Instant::now() + Duration::from_millis(500);
    let sender = tokio::spawn(flood(x, count, len, start));
    sleep(Duration::from_millis(400)).await;
    let base = reset_peak();
    for _ in 0..count {
        let Some(Item::Message(m)) = b.recv().await else {
            panic!("no message")
        };
        assert_eq!(m.data().len() as u64, len);
        let queued = b.stats().queued_bytes;
        assert!(
            queued <= (2 * QUEUE_BYTES).max(len as usize + 8),
            "{queued} bytes queued"
        );
        assert!(m
            .data()
            .iter()
            .enumerate()
            .all(|(i, &v)| v == byte(m.id(), i as u64)));
        sleep(Duration::from_millis(50)).await;
    }
    let _connection = sender.await.unwrap();
    assert_eq!(b.stats().queued_bytes, 0);
    let most = peak_bytes() - base;
    let handled = b.stats();
    println!(
        "{count} messages of {len} bytes to a slow application: at most {most} bytes held; \
         {handled:?}"
    );
    assert!(
        handled.core.refused_full > 0,
        "the receiver never held back"
    );
    most
}

/// Messages of 4 MiB, longer than [`QUEUE_BYTES`]: the handler holds at most one whole
/// message besides the one the application holds (and a few hundred KiB of buffers).
#[tokio::test(start_paused = true)]
async fn a_flood_of_large_messages_costs_two_messages() {
    let len: isize = 4 << 20;
    let most = slow_application_under_a_flood(10, len as u64).await;
    assert!(
        most <= 2 * len + 512 * KIB,
        "{most} bytes for 40 MiB flooded"
    );
}

/// Messages of 192 KiB: the handler holds at most twice [`QUEUE_BYTES`] besides the one
/// the application holds.
#[tokio::test(start_paused = true)]
async fn a_flood_of_medium_messages_costs_the_received_limit() {
    let len: isize = 192 * KIB;
    let most = slow_application_under_a_flood(60, len as u64).await;
    let limit = QUEUE_BYTES as isize;
    assert!(
        most <= 2 * limit + len + 512 * KIB,
        "{most} bytes for 11 MiB flooded"
    );
}
