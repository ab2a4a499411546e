//! The backoff of a reconnecting ACTIVE handler across connections that never prove
//! healthy: a server that accepts every connection and closes it at once (a TLS listener
//! facing a plain-TCP client, a listener refusing a stranger) is dialed with the waits
//! growing, not in a tight loop. Real time, generous bounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerpipe_tokio::{Config, PipeHandler, Reconnect};
use tokio::net::TcpListener;

/// The default schedule (at once, then 50 ms doubling up to 2 s, each wait drawn between
/// half and all of it) allows about 8 connections in 2 s; without the backoff there were
/// hundreds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_every_connection_at_once_is_dialed_with_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    // GONE only after 30 s of silence (the default).
    let client: PipeHandler =
        PipeHandler::connect_tcp(addr, Config::default(), Reconnect::default())
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = accepted.load(Ordering::Relaxed);
    let reconnects = client.stats().reconnects;
    client.stop();
    server.abort();
    println!("closed at once: {n} connections in 2 s, {reconnects} reconnects");
    assert!((3..20).contains(&n), "{n} connections in 2 s");
}
