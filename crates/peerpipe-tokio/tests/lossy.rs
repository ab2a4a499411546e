//! The async handler over a lossy, duplicating, reordering, corrupting link (peerpipe-sim's
//! seeded link between two `tokio::io::duplex` pairs), in paused (virtual) time: every
//! request gets its right reply exactly once, through the task's resend timers.

use std::time::Duration;

use peerpipe_sim::{Link, LinkConfig};
use peerpipe_tokio::{Config, Item, Message, PipeHandler};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;

/// Carries bytes one way through `link`, frame by frame (frames end at 0x00).
async fn relay(mut from: ReadHalf<DuplexStream>, mut to: WriteHalf<DuplexStream>, mut link: Link) {
    let origin = Instant::now();
    let now = || peerpipe_core::Instant::from_micros(origin.elapsed().as_micros() as u64);
    let mut buf = [0u8; 4096];
    let mut frame = Vec::new();
    loop {
        let next = link
            .next_arrival()
            .map(|t| origin + Duration::from_micros(t.as_micros()));
        tokio::select! {
            r = from.read(&mut buf) => {
                let Ok(n @ 1..) = r else { return };
                for &b in &buf[..n] {
                    frame.push(b);
                    if b == 0 {
                        link.send(now(), &frame);
                        frame.clear();
                    }
                }
            }
            () = tokio::time::sleep_until(next.unwrap_or(origin + Duration::from_secs(3600))), if next.is_some() => {
                for chunk in link.deliver(now()) {
                    if to.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Two handlers joined by a lossy link each way.
fn lossy_pair(config: LinkConfig, seed: u64) -> (PipeHandler, PipeHandler) {
    let (a, a_far) = tokio::io::duplex(64 * 1024);
    let (b, b_far) = tokio::io::duplex(64 * 1024);
    let (a_rd, a_wr) = tokio::io::split(a_far);
    let (b_rd, b_wr) = tokio::io::split(b_far);
    tokio::spawn(relay(a_rd, b_wr, Link::new(config, seed)));
    tokio::spawn(relay(b_rd, a_wr, Link::new(config, seed ^ 0x5eed)));
    let cfg = Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_millis(100)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(120),
        max_message: 0,
    };
    (
        PipeHandler::start(a, cfg).unwrap(),
        PipeHandler::start(b, cfg).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn every_request_gets_its_reply_over_a_lossy_link() {
    for seed in [1u64, 2, 3] {
        let (a, b) = lossy_pair(LinkConfig::lossy(0.15, 0.05, 0.05), seed);
        let server = tokio::spawn({
            let b = b.clone();
            async move {
                let mut served = 0u32;
                while let Some(Item::Message(req)) = b.recv().await {
                    let mut data = req.data().to_vec();
                    data.reverse();
                    served += 1;
                    // The last replies may still wait for their ACK when the test stops.
                    let _ = b.send_to_peer(req.reply_to(data).unwrap(), None).await;
                }
                served
            }
        });
        let clients: Vec<_> = (0..8u32)
            .map(|c| {
                let a = a.clone();
                tokio::spawn(async move {
                    for i in 0..25u32 {
                        let data = [c.to_le_bytes(), i.to_le_bytes()].concat();
                        let req = Message::request("lossy", data.clone()).unwrap();
                        let reply = a.request(req, None).await.unwrap();
                        assert!(reply.data().iter().rev().eq(data.iter()), "seed {seed}");
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let stats = a.stats().core;
        assert!(stats.resends > 0, "seed {seed}: no resends: {stats:?}");
        let errors = [a.stats().core, b.stats().core]
            .iter()
            .map(|s| s.crc_errors + s.cobs_errors + s.malformed)
            .sum::<u64>();
        assert!(errors > 0, "seed {seed}: the link corrupted nothing");
        a.stop();
        b.stop();
        // Exactly once: 200 requests served, no duplicates handed to the application.
        assert_eq!(server.await.unwrap(), 200, "seed {seed}");
    }
}

/// Messages of several fragments over the same lossy link: requests of 1 KiB + 1, 64 KiB and
/// 300 KiB from two tasks at once, each reply (the data reversed) whole and intact.
#[tokio::test(start_paused = true)]
async fn large_messages_arrive_whole_over_a_lossy_link() {
    for seed in [4u64, 5] {
        let (a, b) = lossy_pair(LinkConfig::lossy(0.15, 0.05, 0.05), seed);
        tokio::spawn(async move {
            while let Some(Item::Message(req)) = b.recv().await {
                let mut data = req.data().to_vec();
                data.reverse();
                let _ = b.send_to_peer(req.reply_to(data).unwrap(), None).await;
            }
        });
        let clients: Vec<_> = (0..2u8)
            .map(|c| {
                let a = a.clone();
                tokio::spawn(async move {
                    for len in [1025usize, 64 << 10, 300 << 10] {
                        let data: Vec<u8> =
                            (0..len).map(|i| (i * 7 + usize::from(c)) as u8).collect();
                        let req = Message::request("big", data.clone()).unwrap();
                        let reply = a.request(req, None).await.unwrap();
                        assert!(
                            reply.data().iter().rev().eq(data.iter()),
                            "seed {seed}, {len}"
                        );
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        assert!(a.stats().core.resends > 0, "seed {seed}: no resends");
        a.stop();
    }
}
