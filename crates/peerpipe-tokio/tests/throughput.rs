//! What fragment size and slot counts cost in throughput: 256 MiB over TCP loopback, in
//! 16 MiB and in 64 KiB messages, sent by concurrent `send_to_peer` calls, for the default
//! capacities and a few others. Not run by default (it measures, it checks nothing):
//!
//! ```text
//! cargo test --release -p peerpipe-tokio --test throughput -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use peerpipe_tokio::peerpipe_core::wire::max_encoded_len;
use peerpipe_tokio::peerpipe_core::Endpoint;
use peerpipe_tokio::{Config, Item, Message, PipeHandler};

/// Sends `total` bytes in messages of `size` from one pipe to another and prints MiB/s.
async fn run<const F: usize, const RX: usize, const TX: usize, const FRAME: usize>(
    label: &str,
    total: usize,
    size: usize,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (x, y) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (x, y) = (x.unwrap(), y.unwrap().0);
    x.set_nodelay(true).unwrap();
    y.set_nodelay(true).unwrap();
    let config = Config {
        default_request_timeout: Duration::from_secs(600),
        ..Config::default()
    };
    let a: PipeHandler<F, 64, RX, TX, FRAME> = PipeHandler::start(x, config).unwrap();
    let b: PipeHandler<F, 64, RX, TX, FRAME> = PipeHandler::start(y, config).unwrap();
    let messages: Vec<Message> = (0..total / size)
        .map(|_| Message::request("bulk", vec![7u8; size]).unwrap())
        .collect();
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < total {
            if let Some(Item::Message(m)) = b.recv().await {
                got += m.data().len();
            }
        }
        b
    });
    let sends: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let a = a.clone();
            tokio::spawn(async move { a.send_to_peer(m, None).await.unwrap() })
        })
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    let _b = receiver.await.unwrap();
    let took = start.elapsed();
    let idle = std::mem::size_of::<Endpoint<F, 64, RX, TX, FRAME, 0>>();
    println!(
        "{label} (endpoint {idle} bytes), messages of {size} bytes: {:.0} MiB/s",
        total as f64 / f64::from(1 << 20) / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn throughput_by_capacities() {
    let total = 256 << 20;
    for size in [16 << 20, 64 << 10] {
        run::<1024, 8, 8, { max_encoded_len(1024, 64) }>("1 KiB, 8 + 8 (default)", total, size)
            .await;
        run::<2048, 4, 8, { max_encoded_len(2048, 64) }>("2 KiB, 4 + 8", total, size).await;
        run::<8192, 8, 8, { max_encoded_len(8192, 64) }>("8 KiB, 8 + 8", total, size).await;
        run::<1024, 32, 32, { max_encoded_len(1024, 64) }>("1 KiB, 32 + 32", total, size).await;
        run::<8192, 32, 32, { max_encoded_len(8192, 64) }>("8 KiB, 32 + 32", total, size).await;
    }
}
