//! Reconnection over TCP and Unix sockets, as in `peerpipe-std`'s tests and through the
//! same fault-injecting proxy: it cuts every connection every 200 ms (or stalls it for less
//! than `heartbeat_timeout`) while 10,000 requests flow through it; every request is
//! answered exactly once, nobody reports GONE, and the reconnects are counted and reported.
//! A peer process killed with SIGKILL and started again is a restart, and the conversation
//! goes on with the same handler. A stranger that connects while a conversation is going on
//! is refused. Real time, generous bounds.
//!
//! The peer process is this test binary, re-run as `<exe> --exact peers::peer_entry` with
//! `PEERPIPE_TOKIO_RECONNECT_PEER` set to the address to connect to.

#[path = "../../../peerpipe-std/tests/common/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerpipe_tokio::{
    Config, GoneReason, Item, Message, PipeHandler, PipeListener, Reconnect, Status,
};
use proxy::{tcp_proxy, Fault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PEER_ENV: &str = "PEERPIPE_TOKIO_RECONNECT_PEER";
const REQUESTS: u32 = 10_000;
/// Requests go on past `REQUESTS` until the proxy made this many faults (at most `CAP`).
const MIN_FAULTS: u64 = 10;
const CAP: u32 = 400_000;
const CLIENTS: u32 = 8;
const STEP: Duration = Duration::from_secs(10);

/// Heartbeats every 100 ms; GONE only after 10 s of silence; resends every 2 s (the
/// default): what a cut loses goes again because of the reconnect, not a timer.
fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_secs(2)),
        max_resends: Some(5),
        default_request_timeout: Duration::from_secs(10),
        max_message: 0,
    }
}

/// Statuses a handler reported, collected by a task that takes every item.
type Seen = Arc<Mutex<Vec<Status>>>;

fn count(seen: &Seen, f: impl Fn(&Status) -> bool) -> usize {
    seen.lock().unwrap().iter().filter(|s| f(s)).count()
}

async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Serves `h`: every request is answered with its data (and counted in `got`, by the
/// number it carries), in a task of its own with `send_to_peer`; statuses go to the
/// returned list.
fn serve(h: &PipeHandler, got: Option<Arc<Vec<AtomicU64>>>) -> Seen {
    serve_with(h, got, false)
}

/// As [`serve`]; with `no_wait`, each answer is sent at once with `send_no_wait`.
fn serve_with(h: &PipeHandler, got: Option<Arc<Vec<AtomicU64>>>, no_wait: bool) -> Seen {
    let seen = Seen::default();
    let (h, s) = (h.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(item) = h.recv().await {
            match item {
                Item::Message(m) => {
                    if let Some(got) = &got {
                        let i = u32::from_le_bytes(m.data().try_into().unwrap());
                        got[i as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    let reply = m.reply_to(m.data().to_vec()).unwrap();
                    if no_wait {
                        h.send_no_wait(reply).unwrap();
                        continue;
                    }
                    let h = h.clone();
                    tokio::spawn(async move { h.send_to_peer(reply, None).await });
                }
                Item::Status(st) => s.lock().unwrap().push(st),
            }
        }
    });
    seen
}

/// What a run through the proxy measured.
struct Run {
    requests: u32,
    client_reconnects: u64,
    server_reconnects: u64,
}

/// How the client asks and the server answers.
#[derive(Clone, Copy)]
struct Load {
    /// Tasks that ask at once, each one request at a time.
    askers: u32,
    /// Each request's timeout.
    timeout: Duration,
    /// The server answers with `send_no_wait` (else with `send_to_peer`, in a task).
    no_wait: bool,
    /// The client's application reads its queue; else it only makes requests, and reads
    /// what piled up (the connection's statuses) only at the end.
    client_reads: bool,
}

/// `CLIENTS` tasks asking at once, generous timeouts.
const CONCURRENT: Load = Load {
    askers: CLIENTS,
    timeout: Duration::from_secs(20),
    no_wait: false,
    client_reads: true,
};

/// One request at a time, each within a few seconds (far less than the whole run), each
/// answered at once, by a client that only makes requests: the statuses of its reconnects
/// pile up unread, and must not hold back the replies.
const SEQUENTIAL: Load = Load {
    askers: 1,
    timeout: Duration::from_secs(5),
    no_wait: true,
    client_reads: false,
};

/// `REQUESTS` requests (more until `faults` reached `min_faults`) from the client through
/// the server's echo, as `load` says, each answered exactly once; nobody reports GONE. Then
/// `proxy` calms down and the client's END goes through.
async fn requests_through(
    client: PipeHandler,
    server: PipeHandler,
    proxy: &proxy::Proxy,
    faults: &Arc<AtomicU64>,
    min_faults: u64,
    load: Load,
) -> Run {
    let got: Arc<Vec<AtomicU64>> = Arc::new((0..CAP).map(|_| AtomicU64::new(0)).collect());
    let server_seen = serve_with(&server, Some(got.clone()), load.no_wait);
    let client_seen = if load.client_reads {
        serve(&client, None)
    } else {
        Seen::default()
    };
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..load.askers)
        .map(|t| {
            let (client, faults, sent) = (client.clone(), faults.clone(), sent.clone());
            tokio::spawn(async move {
                for i in (t..CAP).step_by(load.askers as usize) {
                    if i >= REQUESTS && faults.load(Ordering::Relaxed) >= min_faults {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    let data = i.to_le_bytes().to_vec();
                    let req = Message::request("echo", data.clone()).unwrap();
                    let reply = client
                        .request(req, Some(load.timeout))
                        .await
                        .unwrap_or_else(|e| panic!("request {i}: {e}"));
                    assert_eq!(reply.data(), &data[..], "request {i}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let requests = u32::try_from(sent.load(Ordering::Relaxed)).unwrap();
    let delivered: u64 = got.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    assert_eq!(delivered, u64::from(requests));
    for (i, n) in got.iter().enumerate() {
        assert!(
            n.load(Ordering::Relaxed) <= 1,
            "request {i} delivered {n:?} times"
        );
    }
    if !load.client_reads {
        unread(&client, &client_seen).await;
    }
    let gone = |s: &Status| matches!(s, Status::Gone { .. } | Status::PeerRestarted);
    for seen in [&client_seen, &server_seen] {
        assert_eq!(count(seen, gone), 0, "{:?}", seen.lock().unwrap());
    }
    let (cs, ss) = (client.stats(), server.stats());
    let reconnected = |s: &Status| matches!(s, Status::Reconnected);
    for (seen, h) in [(&client_seen, &client), (&server_seen, &server)] {
        if !load.client_reads && std::ptr::eq(seen, &client_seen) {
            continue; // Checked by `unread`.
        }
        assert!(
            wait_until(STEP, || count(seen, reconnected) as u64
                == h.stats().reconnects)
            .await,
            "every reconnect reported"
        );
    }
    println!(
        "{requests} requests in {elapsed:?} ({:?} per 10,000); reconnects: client {}, server {}; resends: client {}, server {}; duplicates: client {}, server {}",
        elapsed * 10_000 / requests, cs.reconnects, ss.reconnects, cs.core.resends, ss.core.resends, cs.core.duplicates, ss.core.duplicates
    );
    // Calm first: a cut between the server taking the END and its ACK reaching the client
    // would leave the END unconfirmed (the server, whose peer has ended, takes no new
    // connection), and the client would see the server gone after `heartbeat_timeout`.
    proxy.calm();
    client.notify_end(b"done".to_vec(), None).await.unwrap();
    client.stop();
    server.stop();
    Run {
        requests,
        client_reconnects: cs.reconnects,
        server_reconnects: ss.reconnects,
    }
}

/// Takes the statuses that piled up in `h`'s queue, unread, into `seen`: reconnects unread
/// when the next break came are reported as one, so what piled up is one pair (or only
/// `Reconnecting`, when the last cut's reconnect is still under way).
async fn unread(h: &PipeHandler, seen: &Seen) {
    let queued = h.stats().queued_items;
    assert!((1..=2).contains(&queued), "{:?}", h.stats());
    for _ in 0..queued {
        match tokio::time::timeout(STEP, h.recv()).await.unwrap() {
            Some(Item::Status(st)) => seen.lock().unwrap().push(st),
            item => panic!("unexpected {item:?}"),
        }
    }
    let seen = seen.lock().unwrap();
    assert!(
        matches!(
            &seen[..],
            [Status::Reconnecting { .. }, Status::Reconnected] | [Status::Reconnecting { .. }]
        ),
        "{seen:?}"
    );
}

/// A PASSIVE handler on a free port (it accepts in a task) and its address.
async fn passive(policy: Reconnect) -> (tokio::task::JoinHandle<PipeHandler>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        PipeHandler::accept_tcp(listener, config(), policy)
            .await
            .unwrap()
    });
    (server, addr)
}

/// A connected pair straight over TCP (no proxy), with these policies.
async fn pair(client: Reconnect, server: Reconnect) -> (PipeHandler, PipeHandler) {
    let (s, addr) = passive(server).await;
    let a = PipeHandler::connect_tcp(addr, config(), client)
        .await
        .unwrap();
    (a, s.await.unwrap())
}

/// A request on `echo` that must come back.
async fn echo(h: &PipeHandler, i: u32) {
    let data = i.to_le_bytes().to_vec();
    let reply = h
        .request(Message::request("echo", data.clone()).unwrap(), Some(STEP))
        .await
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
    assert_eq!(reply.data(), &data[..]);
}

mod cuts;
mod ends;
mod peers;
