//! Reconnection over TCP and Unix sockets: a fault-injecting proxy between the two ends
//! cuts every connection every 200 ms (or stalls it for less than `heartbeat_timeout`)
//! while 10,000 requests flow through it; every request is answered exactly once, nobody
//! reports GONE, and the reconnects are counted and reported. A peer process killed with
//! SIGKILL and started again is a restart, and the conversation goes on with the same
//! handler. A stranger that connects while a conversation is going on is refused.
//!
//! The peer process is this test binary, re-run as `<exe> --exact peer_entry` with
//! `PEERPIPE_RECONNECT_PEER` set to the address to connect to.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::io::{Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use peerpipe_std::{
    Config, Item, ListenerStopper, Message, PipeHandler, PipeListener, Reconnect, Status,
    TcpTransport, Transport,
};
use proxy::{tcp_proxy, Fault};
#[cfg(unix)]
use proxy::{Conn, Proxy};

const PEER_ENV: &str = "PEERPIPE_RECONNECT_PEER";
const REQUESTS: u32 = 10_000;
/// Requests go on past `REQUESTS` until the proxy made this many cuts (at most `CAP`).
const MIN_FAULTS: u64 = 10;
const CAP: u32 = 400_000;
const CLIENTS: u32 = 4;

/// Heartbeats every 100 ms; GONE only after 10 s of silence; resends every 2 s (the
/// default): what a cut loses goes again because of the reconnect, not a timer.
fn reconnect_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_secs(2)),
        max_resends: Some(5),
        default_request_timeout: Duration::from_secs(10),
        max_message: 0,
    }
}

/// Statuses a handler reported.
type Seen = Arc<Mutex<Vec<Status>>>;

fn watch(h: &PipeHandler) -> Seen {
    let seen = Seen::default();
    let s = seen.clone();
    h.set_status_cb(move |st| s.lock().unwrap().push(st));
    seen
}

fn count(seen: &Seen, f: impl Fn(&Status) -> bool) -> usize {
    seen.lock().unwrap().iter().filter(|s| f(s)).count()
}

/// What a run through the proxy measured.
struct Run {
    requests: u32,
    elapsed: Duration,
    client_reconnects: u64,
    server_reconnects: u64,
}

/// `REQUESTS` requests from `CLIENTS` threads of the client through the server's echo, each
/// answered exactly once; nobody reports GONE.
fn requests_through(
    client: impl Transport,
    server: impl Transport,
    faults: &Arc<AtomicU64>,
    min_faults: u64,
) -> Run {
    let config = reconnect_config();
    let server = PipeHandler::new(server, config).unwrap();
    let (client, client_seen) = started_client(client);
    requests_between(client, client_seen, server, faults, min_faults)
}

/// A client handler on `transport`, started, and what it reports.
fn started_client(transport: impl Transport) -> (PipeHandler, Seen) {
    let client = PipeHandler::new(transport, reconnect_config()).unwrap();
    let seen = watch(&client);
    client.start().unwrap();
    (client, seen)
}

/// [`requests_through`] from a started client to a server handler not yet started (e.g.
/// from a listener).
fn requests_between(
    client: PipeHandler,
    client_seen: Seen,
    server: PipeHandler,
    faults: &Arc<AtomicU64>,
    min_faults: u64,
) -> Run {
    let got: Arc<Vec<AtomicU64>> = Arc::new((0..CAP).map(|_| AtomicU64::new(0)).collect());
    server.set_message_cb({
        let (server, got) = (server.clone(), got.clone());
        move |m| {
            let i = u32::from_le_bytes(m.data().try_into().unwrap());
            got[i as usize].fetch_add(1, Ordering::Relaxed);
            server
                .send_no_wait(m.reply_to(m.data().to_vec()).unwrap())
                .unwrap();
        }
    });
    let server_seen = watch(&server);
    server.start().unwrap();
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (client, faults, sent) = (client.clone(), faults.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in (t..CAP).step_by(CLIENTS as usize) {
                    if i >= REQUESTS && faults.load(Ordering::Relaxed) >= min_faults {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    let data = i.to_le_bytes().to_vec();
                    let req = Message::request("echo", data.clone()).unwrap();
                    let reply = client
                        .request(req, Some(Duration::from_secs(20)), None)
                        .unwrap_or_else(|e| panic!("request {i}: {e}"));
                    assert_eq!(reply.data(), &data[..], "request {i}");
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
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
    let gone = |s: &Status| matches!(s, Status::Gone { .. } | Status::PeerRestarted);
    assert_eq!(
        count(&client_seen, gone),
        0,
        "{:?}",
        client_seen.lock().unwrap()
    );
    assert_eq!(
        count(&server_seen, gone),
        0,
        "{:?}",
        server_seen.lock().unwrap()
    );
    let (cs, ss) = (client.stats(), server.stats());
    let reconnected = |s: &Status| matches!(s, Status::Reconnected);
    assert_eq!(count(&client_seen, reconnected) as u64, cs.reconnects);
    assert_eq!(count(&server_seen, reconnected) as u64, ss.reconnects);
    println!(
        "{requests} requests in {elapsed:?} ({:?} per 10,000); reconnects: client {}, server {}; resends: client {}, server {}; duplicates: client {}, server {}",
        elapsed * 10_000 / requests, cs.reconnects, ss.reconnects, cs.core.resends, ss.core.resends, cs.core.duplicates, ss.core.duplicates
    );
    client.notify_end(b"done".to_vec()).unwrap();
    client.stop(true);
    server.stop(true);
    Run {
        requests,
        elapsed,
        client_reconnects: cs.reconnects,
        server_reconnects: ss.reconnects,
    }
}

#[test]
fn tcp_connections_cut_every_200ms_lose_nothing() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let (proxy, addr) = tcp_proxy(
        server.local_addr().unwrap(),
        Fault::Cut(Duration::from_millis(200)),
    );
    let run = requests_through(
        TcpTransport::connect(addr).unwrap(),
        server,
        &proxy.cuts,
        MIN_FAULTS,
    );
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
    assert!(run.elapsed < Duration::from_secs(120));
}

/// A client that only makes requests, one at a time, and never reads its queue: the statuses
/// of each cut (Reconnecting, Reconnected) must not fill that queue and hold replies back.
#[test]
fn tcp_cuts_every_200ms_lose_no_reply_to_a_client_that_never_reads() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let (proxy, addr) = tcp_proxy(
        server.local_addr().unwrap(),
        Fault::Cut(Duration::from_millis(200)),
    );
    let server = PipeHandler::new(server, reconnect_config()).unwrap();
    server.set_message_cb({
        let server = server.clone();
        move |m| {
            server
                .send_no_wait(m.reply_to(m.data().to_vec()).unwrap())
                .unwrap();
        }
    });
    server.start().unwrap();
    let client =
        PipeHandler::new(TcpTransport::connect(addr).unwrap(), reconnect_config()).unwrap();
    client.start().unwrap();
    let mut i: u32 = 0;
    while i < REQUESTS || proxy.cuts.load(Ordering::Relaxed) < MIN_FAULTS {
        let data = i.to_le_bytes().to_vec();
        let req = Message::request("echo", data.clone()).unwrap();
        let reply = client
            .request(req, Some(Duration::from_secs(5)), None)
            .unwrap_or_else(|e| panic!("request {i}: {e} ({:?})", client.stats()));
        assert_eq!(reply.data(), &data[..], "request {i}");
        i += 1;
        assert!(i < CAP, "too few cuts");
    }
    let reconnects = client.stats().reconnects;
    // What waits unread: the link's statuses only, at most one Reconnecting and one
    // Reconnected however many cuts there were.
    let mut unread = Vec::new();
    while let Some(item) = client.get_next() {
        unread.push(item);
    }
    assert!(reconnects >= MIN_FAULTS - 1, "{reconnects} reconnects");
    assert!(unread.len() <= 2, "{unread:?}");
    assert!(
        unread.iter().all(|item| matches!(
            item,
            Item::Status(Status::Reconnecting { .. } | Status::Reconnected)
        )),
        "{unread:?}"
    );
    client.stop(true);
    server.stop(true);
}

#[cfg(unix)]
#[test]
fn unix_connections_cut_every_200ms_lose_nothing() {
    use peerpipe_std::UnixTransport;
    let dir = tempfile::tempdir().unwrap();
    let (server_path, proxy_path) = (dir.path().join("server"), dir.path().join("proxy"));
    let server = UnixTransport::listen(&server_path).unwrap();
    let listener = UnixListener::bind(&proxy_path).unwrap();
    let proxy = Proxy::start(
        move || Ok(Box::new(listener.accept()?.0) as Box<dyn Conn>),
        move || Ok(Box::new(UnixStream::connect(&server_path)?) as Box<dyn Conn>),
        Fault::Cut(Duration::from_millis(200)),
    );
    let run = requests_through(
        UnixTransport::connect(&proxy_path),
        server,
        &proxy.cuts,
        MIN_FAULTS,
    );
    println!("unix: {} cuts", proxy.cuts.load(Ordering::Relaxed));
    assert!(run.client_reconnects >= 1 && run.server_reconnects >= 1);
}

#[test]
fn a_connection_that_stalls_for_less_than_the_timeout_loses_nothing() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let stall = Fault::Stall(Duration::from_millis(1500), Duration::from_millis(500));
    let (proxy, addr) = tcp_proxy(server.local_addr().unwrap(), stall);
    let run = requests_through(
        TcpTransport::connect(addr).unwrap(),
        server,
        &proxy.stalls,
        2,
    );
    let stalls = proxy.stalls.load(Ordering::Relaxed);
    println!(
        "stall: {stalls} stalls of 1.5 s, {} reconnects",
        run.client_reconnects
    );
    assert!(stalls >= 1);
    assert_eq!(
        proxy.connections.load(Ordering::Relaxed),
        1,
        "a stall is not a break"
    );
    assert_eq!(run.client_reconnects + run.server_reconnects, 0);
}

#[test]
fn without_reconnection_a_cut_is_gone_at_once() {
    let server = TcpTransport::listen("127.0.0.1:0")
        .unwrap()
        .reconnect(Reconnect::OFF);
    let addr = server.local_addr().unwrap();
    let client = TcpTransport::connect(addr)
        .unwrap()
        .reconnect(Reconnect::OFF);
    let (a, b) = start_pair(client, server, config());
    exercise(&a, &b);
    close_and_expect_gone(&b, &a);
}

/// After this side's END went through there is nothing left to say: a break is GONE at
/// once and nothing dials again (a `peerpipe request` that ended would otherwise reach the
/// listener once more as a new, empty conversation).
#[test]
fn after_its_end_went_through_a_handler_does_not_reconnect() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let client = TcpTransport::connect(addr).unwrap();
    let (a, b) = start_pair(client, server, config());
    exercise(&a, &b);
    a.notify_end(Vec::new()).unwrap();
    assert!(matches!(next_status(&b, STEP), Status::End(_)));
    b.stop(true);
    // The break after the END: GONE at once, not Reconnecting.
    match next_status(&a, STEP) {
        Status::Gone { .. } => {}
        s => panic!("expected GONE after the END, got {s:?}"),
    }
    assert_eq!(a.stats().reconnects, 0);
    a.stop(true);
}

#[test]
fn the_peer_is_gone_when_no_connection_comes_back_within_give_up_after() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let policy = Reconnect {
        give_up_after: Some(Duration::from_millis(500)),
        ..Reconnect::default()
    };
    let client = TcpTransport::connect(addr).unwrap().reconnect(policy);
    let (a, b) = start_pair(client, server, config());
    exercise(&a, &b);
    let started = Instant::now();
    b.stop(true);
    assert!(matches!(next_status(&a, STEP), Status::Reconnecting { .. }));
    match next_status(&a, STEP) {
        Status::Gone {
            reason: peerpipe_std::GoneReason::TransportLost,
            cause: Some(_),
        } => {}
        s => panic!("expected GONE after give_up_after, got {s:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(500) + MARGIN,
        "{took:?}"
    );
    a.stop(true);
}

#[test]
fn a_stranger_cannot_disturb_a_conversation_going_on() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let (a, b) = start_pair(TcpTransport::connect(addr).unwrap(), server, config());
    exercise(&a, &b);
    // One that says nothing, and one with another session: both closed by the server.
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut other = TcpStream::connect(addr).unwrap();
    other
        .write_all(&hello(b.session() ^ 0x5a5a_5a5a, 4))
        .unwrap();
    for s in [&mut other, &mut silent] {
        s.set_read_timeout(Some(STEP)).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "the newcomer is closed"
        );
    }
    assert!(wait_until(STEP, || b.stats().refused_connections == 2));
    exercise(&a, &b);
    assert_eq!(a.stats().reconnects + b.stats().reconnects, 0);
    assert!(
        b.get_next().is_none() && a.get_next().is_none(),
        "nothing reported"
    );
    a.stop(true);
    b.stop(true);
}

/// A listener's accept loop on a thread: every new handler goes to the channel.
fn accept_loop(
    listener: PipeListener,
) -> (crossbeam_channel::Receiver<PipeHandler>, ListenerStopper) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let stopper = listener.stopper();
    std::thread::spawn(move || {
        for h in listener.incoming() {
            if tx.send(h.unwrap()).is_err() {
                return;
            }
        }
    });
    (rx, stopper)
}

#[test]
fn a_listener_routes_a_reconnecting_client_to_its_handler() {
    let listener = PipeListener::bind("127.0.0.1:0", reconnect_config()).unwrap();
    let (proxy, addr) = tcp_proxy(
        listener.local_addr().unwrap(),
        Fault::Cut(Duration::from_millis(200)),
    );
    let (handlers, stopper) = accept_loop(listener);
    // The listener hands the handler over once the client's first frame came.
    let (client, client_seen) = started_client(TcpTransport::connect(addr).unwrap());
    let server = handlers.recv_timeout(STEP).unwrap();
    let run = requests_between(client, client_seen, server, &proxy.cuts, MIN_FAULTS);
    assert!(run.client_reconnects >= 1 && run.server_reconnects >= 1);
    assert!(
        handlers.try_recv().is_err(),
        "the reconnecting client got no new handler"
    );
    stopper.stop();
}

#[test]
fn a_listener_gives_a_newcomer_its_own_handler_and_a_stranger_takes_nothing_over() {
    let listener = PipeListener::bind("127.0.0.1:0", config()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (handlers, stopper) = accept_loop(listener);
    let a = PipeHandler::new(TcpTransport::connect(addr).unwrap(), config()).unwrap();
    a.start().unwrap();
    let first = handlers.recv_timeout(STEP).unwrap();
    first.start().unwrap();
    exercise(&a, &first);
    // A stranger with a session of its own: a new handler, which sees it as its peer.
    let mut stranger = TcpStream::connect(addr).unwrap();
    stranger
        .write_all(&hello(a.session() ^ 0x5a5a_5a5a, 4))
        .unwrap();
    let second = handlers.recv_timeout(STEP).unwrap();
    assert_ne!(second.session(), first.session());
    second.start().unwrap();
    assert!(wait_until(STEP, || second.peer_state() == peerpipe_std::PeerState::Up));
    // One that says nothing: closed, no handler.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(silent.read(&mut buf), Ok(0) | Err(_)),
        "the silent newcomer is closed"
    );
    // The first conversation never noticed.
    exercise(&a, &first);
    assert_eq!(a.stats().reconnects + first.stats().reconnects, 0);
    assert!(a.get_next().is_none() && first.get_next().is_none());
    assert!(handlers.try_recv().is_err());
    stopper.stop();
    for h in [a, first, second] {
        h.stop(true);
    }
}

/// The peer process: connects to the address in `PEERPIPE_RECONNECT_PEER` and answers each
/// request with its process id and the request's data, until END.
#[test]
fn peer_entry() {
    let Ok(addr) = std::env::var(PEER_ENV) else {
        return;
    };
    let h = PipeHandler::new(TcpTransport::connect(addr).unwrap(), reconnect_config()).unwrap();
    h.start().unwrap();
    while let Some(item) = h.recv() {
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
    h.stop(true);
}

fn spawn_peer(addr: std::net::SocketAddr) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "peer_entry", "--nocapture", "--quiet"])
        .env(PEER_ENV, addr.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Asks the peer; returns the process id that answered.
fn ask(h: &PipeHandler, i: u32) -> u32 {
    let reply = h
        .request(
            Message::request("who", i.to_le_bytes().to_vec()).unwrap(),
            Some(STEP),
            None,
        )
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
    assert_eq!(&reply.data()[4..], &i.to_le_bytes());
    u32::from_le_bytes(reply.data()[..4].try_into().unwrap())
}

#[test]
fn a_peer_killed_and_started_again_is_a_restart_on_the_same_handler() {
    let server = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let h = PipeHandler::new(server, reconnect_config()).unwrap();
    let seen = watch(&h);
    h.start().unwrap();
    let mut first = spawn_peer(addr);
    for i in 0..100 {
        assert_eq!(ask(&h, i), first.id());
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(wait_until(STEP, || count(&seen, |s| matches!(
        s,
        Status::Reconnecting { .. }
    )) == 1));
    let mut second = spawn_peer(addr);
    for i in 100..200 {
        assert_eq!(ask(&h, i), second.id());
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
    h.notify_end(b"bye".to_vec()).unwrap();
    assert!(second.wait().unwrap().success());
    h.stop(true);
}

/// A server that accepts every connection and closes it at once (a TLS listener facing a
/// plain-TCP client, a listener refusing a stranger) is dialed with a growing backoff, not
/// in a tight loop: such a connection never proves healthy, so the backoff does not start
/// over. The default schedule (at once, then 50 ms doubling, each drawn between half and
/// all of it) allows about 8 connections in 2 s; without the backoff there were hundreds.
#[test]
fn a_server_that_closes_every_connection_at_once_is_dialed_with_backoff() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    let (client, seen) = started_client(TcpTransport::connect(addr).unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let n = accepted.load(Ordering::Relaxed);
    client.stop(false);
    println!("closed at once: {n} connections in 2 s");
    assert!((3..20).contains(&n), "{n} connections in 2 s");
    assert!(count(&seen, |s| matches!(s, Status::Reconnecting { .. })) >= 2);
}
