//! Reconnection over TCP and Unix sockets, as in `peerpipe-std`'s tests and through the
//! same fault-injecting proxy: it cuts every connection every 200 ms (or stalls it for less
//! than `heartbeat_timeout`) while 10,000 requests flow through it; every request is
//! answered exactly once, nobody reports GONE, and the reconnects are counted and reported.
//! A peer process killed with SIGKILL and started again is a restart, and the conversation
//! goes on with the same handler. A stranger that connects while a conversation is going on
//! is refused. Real time, generous bounds.
//!
//! The peer process is this test binary, re-run as `<exe> --exact peer_entry` with
//! `PEERPIPE_TOKIO_RECONNECT_PEER` set to the address to connect to.

#[path = "../../peerpipe-std/tests/common/proxy.rs"]
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
/// the server's echo, as `load` says, each answered exactly once; nobody reports GONE.
async fn requests_through(
    client: PipeHandler,
    server: PipeHandler,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_cut_every_200ms_lose_nothing() {
    tcp_cut(CONCURRENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_cuts_every_200ms_lose_no_reply_to_one_request_at_a_time() {
    tcp_cut(SEQUENTIAL).await;
}

/// Requests through a TCP proxy that cuts every connection every 200 ms.
async fn tcp_cut(load: Load) {
    let (server, server_addr) = passive(Reconnect::ON).await;
    let (proxy, addr) = tcp_proxy(server_addr, Fault::Cut(Duration::from_millis(200)));
    let client = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
        .await
        .unwrap();
    let run = requests_through(client, server.await.unwrap(), &proxy.cuts, MIN_FAULTS, load).await;
    let cuts = proxy.cuts.load(Ordering::Relaxed);
    println!(
        "tcp: {cuts} cuts, {} connections",
        proxy.connections.load(Ordering::Relaxed)
    );
    assert!(run.client_reconnects >= 1 && run.server_reconnects >= 1);
    // Every cut the client saw ended in a reconnect (the last one may still be under way).
    assert!(
        run.client_reconnects + 1 >= cuts,
        "{} reconnects, {cuts} cuts",
        run.client_reconnects
    );
    assert!(cuts >= MIN_FAULTS && run.requests >= REQUESTS);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_connections_cut_every_200ms_lose_nothing() {
    unix_cut(CONCURRENT).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_cuts_every_200ms_lose_no_reply_to_one_request_at_a_time() {
    unix_cut(SEQUENTIAL).await;
}

/// Requests through a Unix socket proxy that cuts every connection every 200 ms.
#[cfg(unix)]
async fn unix_cut(load: Load) {
    use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
    let dir = tempfile::tempdir().unwrap();
    let (server_path, proxy_path) = (dir.path().join("server"), dir.path().join("proxy"));
    let listener = tokio::net::UnixListener::bind(&server_path).unwrap();
    let server = tokio::spawn(async move {
        PipeHandler::accept_unix(listener, config(), Reconnect::ON)
            .await
            .unwrap()
    });
    let proxy_listener = StdUnixListener::bind(&proxy_path).unwrap();
    let proxy = proxy::Proxy::start(
        move || Ok(Box::new(proxy_listener.accept()?.0) as Box<dyn proxy::Conn>),
        move || Ok(Box::new(StdUnixStream::connect(&server_path)?) as Box<dyn proxy::Conn>),
        Fault::Cut(Duration::from_millis(200)),
    );
    let client = PipeHandler::connect_unix(&proxy_path, config(), Reconnect::ON)
        .await
        .unwrap();
    let run = requests_through(client, server.await.unwrap(), &proxy.cuts, MIN_FAULTS, load).await;
    println!("unix: {} cuts", proxy.cuts.load(Ordering::Relaxed));
    assert!(run.client_reconnects >= 1 && run.server_reconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stalls_for_less_than_the_timeout_loses_nothing() {
    let (server, server_addr) = passive(Reconnect::ON).await;
    let stall = Fault::Stall(Duration::from_millis(1500), Duration::from_millis(500));
    let (proxy, addr) = tcp_proxy(server_addr, stall);
    let client = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
        .await
        .unwrap();
    let run = requests_through(client, server.await.unwrap(), &proxy.stalls, 2, CONCURRENT).await;
    let stalls = proxy.stalls.load(Ordering::Relaxed);
    println!("stall: {stalls} stalls of 1.5 s");
    assert!(stalls >= 1);
    assert_eq!(
        proxy.connections.load(Ordering::Relaxed),
        1,
        "a stall is not a break"
    );
    assert_eq!(run.client_reconnects + run.server_reconnects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnection_a_cut_is_gone_at_once() {
    let (a, b) = pair(Reconnect::OFF, Reconnect::OFF).await;
    let seen = serve(&a, None);
    serve(&b, None);
    echo(&a, 1).await;
    b.stop();
    let gone = |s: &Status| {
        matches!(
            s,
            Status::Gone {
                reason: GoneReason::TransportLost,
                ..
            }
        )
    };
    assert!(wait_until(Duration::from_secs(2), || count(&seen, gone) == 1).await);
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
    a.stop();
}

/// After this side's END went through there is nothing left to say: a break is GONE at
/// once and nothing dials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_end_went_through_a_handler_does_not_reconnect() {
    let (a, b) = pair(Reconnect::ON, Reconnect::ON).await;
    serve(&b, None);
    echo(&a, 1).await;
    a.notify_end(Vec::new(), None).await.unwrap();
    b.stop();
    match tokio::time::timeout(STEP, a.recv()).await.unwrap() {
        Some(Item::Status(Status::Gone { .. })) => {}
        s => panic!("expected GONE after the END, got {s:?}"),
    }
    assert_eq!(a.stats().reconnects, 0);
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_is_gone_when_no_connection_comes_back_within_give_up_after() {
    let policy = Reconnect {
        give_up_after: Some(Duration::from_millis(500)),
        ..Reconnect::default()
    };
    let (a, b) = pair(policy, Reconnect::ON).await;
    serve(&b, None);
    echo(&a, 1).await;
    let started = Instant::now();
    b.stop();
    assert!(matches!(
        tokio::time::timeout(STEP, a.recv()).await.unwrap(),
        Some(Item::Status(Status::Reconnecting { .. }))
    ));
    match tokio::time::timeout(STEP, a.recv()).await.unwrap() {
        Some(Item::Status(Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(_),
        })) => {}
        s => panic!("expected GONE after give_up_after, got {s:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    a.stop();
}

/// A peer's first heartbeat from session `session` (the capabilities do not matter: the
/// newcomer is refused before the endpoint sees them).
fn hello(session: u32) -> Vec<u8> {
    use peerpipe_tokio::peerpipe_core::wire::{encode, Body, Caps, Frame, Heartbeat};
    let caps = Caps {
        max_payload: 1024,
        max_topic: 64,
        max_message: 0,
    };
    let hb = Heartbeat {
        floor: 0,
        room: 4,
        window: 4096,
        caps,
        ask: false,
    };
    let mut buf = [0u8; 64];
    let frame = Frame {
        session,
        body: Body::Heartbeat(hb),
    };
    let n = encode(&frame, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_disturb_a_conversation_going_on() {
    let (s, addr) = passive(Reconnect::ON).await;
    let a = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
        .await
        .unwrap();
    let b = s.await.unwrap();
    let (a_seen, b_seen) = (serve(&a, None), serve(&b, None));
    echo(&a, 1).await;
    echo(&b, 2).await;
    // One that says nothing, and one with another session: both closed by the server.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut other = TcpStream::connect(addr).await.unwrap();
    other
        .write_all(&hello(a.session() ^ 0x5a5a_5a5a))
        .await
        .unwrap();
    for s in [&mut other, &mut silent] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(STEP, s.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "the newcomer is closed");
    }
    assert!(wait_until(STEP, || b.stats().refused_connections == 2).await);
    echo(&a, 3).await;
    echo(&b, 4).await;
    assert_eq!(a.stats().reconnects + b.stats().reconnects, 0);
    assert!(a_seen.lock().unwrap().is_empty() && b_seen.lock().unwrap().is_empty());
    a.stop();
    b.stop();
}

/// The peer process: connects to the address in the environment and answers each request
/// with its process id and the request's data, until END.
#[test]
fn peer_entry() {
    let Ok(addr) = std::env::var(PEER_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h: PipeHandler = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
            .await
            .unwrap();
        while let Some(item) = h.recv().await {
            match item {
                Item::Message(m) => {
                    let mut data = std::process::id().to_le_bytes().to_vec();
                    data.extend_from_slice(m.data());
                    h.send_no_wait(m.reply_to(data).unwrap()).unwrap();
                }
                Item::Status(Status::End(_) | Status::Gone { .. }) => break,
                Item::Status(_) => {}
            }
        }
        // Let the END's acknowledgement go out.
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.stop();
    });
}

fn spawn_peer(addr: SocketAddr) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "peer_entry", "--nocapture", "--quiet"])
        .env(PEER_ENV, addr.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Asks the peer; returns the process id that answered.
async fn ask(h: &PipeHandler, i: u32) -> u32 {
    let reply = h
        .request(
            Message::request("who", i.to_le_bytes().to_vec()).unwrap(),
            Some(STEP),
        )
        .await
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
    assert_eq!(&reply.data()[4..], &i.to_le_bytes());
    u32::from_le_bytes(reply.data()[..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_and_started_again_is_a_restart_on_the_same_handler() {
    let (s, addr) = passive(Reconnect::ON).await;
    let mut first = spawn_peer(addr);
    let h = s.await.unwrap();
    let seen = serve(&h, None);
    for i in 0..100 {
        assert_eq!(ask(&h, i).await, first.id());
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let reconnecting = |s: &Status| matches!(s, Status::Reconnecting { .. });
    assert!(wait_until(STEP, || count(&seen, reconnecting) == 1).await);
    let mut second = spawn_peer(addr);
    for i in 100..200 {
        assert_eq!(ask(&h, i).await, second.id());
    }
    let seen_now = seen.lock().unwrap().clone();
    assert!(
        matches!(
            &seen_now[..],
            [
                Status::Reconnecting { .. },
                Status::Reconnected,
                Status::PeerRestarted
            ]
        ),
        "{seen_now:?}"
    );
    assert_eq!(h.stats().reconnects, 1);
    h.notify_end(b"bye".to_vec(), None).await.unwrap();
    let status = tokio::task::spawn_blocking(move || second.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    h.stop();
}

/// A listener's accept loop: every new handler goes to the channel.
fn accept_loop(listener: PipeListener) -> tokio::sync::mpsc::UnboundedReceiver<PipeHandler> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(h) = listener.accept().await {
            if tx.send(h).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_routes_a_reconnecting_client_to_its_handler() {
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let mut handlers = accept_loop(listener);
    let (proxy, addr) = tcp_proxy(server_addr, Fault::Cut(Duration::from_millis(200)));
    let client = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
        .await
        .unwrap();
    let server = tokio::time::timeout(STEP, handlers.recv())
        .await
        .unwrap()
        .unwrap();
    let run = requests_through(client, server, &proxy.cuts, MIN_FAULTS, CONCURRENT).await;
    assert!(run.client_reconnects >= 1 && run.server_reconnects >= 1);
    assert!(
        handlers.try_recv().is_err(),
        "the reconnecting client got no new handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_gives_a_newcomer_its_own_handler_and_a_stranger_takes_nothing_over() {
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut handlers = accept_loop(listener);
    let a = PipeHandler::connect_tcp(addr, config(), Reconnect::ON)
        .await
        .unwrap();
    let first = tokio::time::timeout(STEP, handlers.recv())
        .await
        .unwrap()
        .unwrap();
    let (a_seen, first_seen) = (serve(&a, None), serve(&first, None));
    echo(&a, 1).await;
    // A stranger with a session of its own: a new handler, which sees it as its peer.
    let mut stranger = TcpStream::connect(addr).await.unwrap();
    stranger
        .write_all(&hello(a.session() ^ 0x5a5a_5a5a))
        .await
        .unwrap();
    let second = tokio::time::timeout(STEP, handlers.recv())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(second.session(), first.session());
    assert!(
        wait_until(STEP, || second.peer_state()
            == peerpipe_tokio::PeerState::Up)
        .await
    );
    // One that says nothing: closed, no handler.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(STEP, silent.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the silent newcomer is closed"
    );
    // The first conversation never noticed.
    echo(&a, 2).await;
    assert_eq!(a.stats().reconnects + first.stats().reconnects, 0);
    assert!(a_seen.lock().unwrap().is_empty() && first_seen.lock().unwrap().is_empty());
    assert!(handlers.try_recv().is_err());
    a.stop();
}

/// By default the limit is `heartbeat_timeout`: the silence rule runs on through the break,
/// and a peer that never comes back is GONE (`Silence`) that long after it was last heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_comes_back_is_gone_after_heartbeat_timeout() {
    let quick = Config {
        heartbeat_timeout: Duration::from_millis(800),
        ..config()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        tokio::spawn(async move { PipeHandler::accept_tcp(listener, quick, Reconnect::ON).await });
    let a: PipeHandler = PipeHandler::connect_tcp(addr, quick, Reconnect::ON)
        .await
        .unwrap();
    let b: PipeHandler = server.await.unwrap().unwrap();
    serve(&b, None);
    echo(&a, 1).await;
    let started = Instant::now();
    b.stop();
    assert!(matches!(
        tokio::time::timeout(STEP, a.recv()).await.unwrap(),
        Some(Item::Status(Status::Reconnecting { .. }))
    ));
    match tokio::time::timeout(STEP, a.recv()).await.unwrap() {
        Some(Item::Status(Status::Gone {
            reason: GoneReason::Silence,
            ..
        })) => {}
        s => panic!("expected GONE (silence), got {s:?}"),
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(800) + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(a.stats().reconnects == 0);
    a.stop();
}
