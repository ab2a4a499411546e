//! Serving many peers with `PipeListener`, and listening sockets that release their port
//! when stopped (the listener's, and a single-connection `TcpTransport::listen` handler's
//! that never saw a peer). Real time, generous bounds.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use peerpipe_std::{Message, PipeHandler, PipeListener, Reconnect, TcpTransport, Transport};

const CLIENTS: usize = 20;
const ECHOES: usize = 5;
const COUNTS: u64 = 3;

/// Makes `pipe` answer `echo` with the request's data, `count` with how many `count`
/// requests this peer made so far, and `session` with the handler's own session id.
fn serve(pipe: &PipeHandler) {
    let count = AtomicU64::new(0);
    let session = pipe.session();
    pipe.set_message_cb({
        let pipe = pipe.clone();
        move |req| {
            let data = match req.topic() {
                "echo" => req.data().to_vec(),
                "count" => (count.fetch_add(1, Ordering::Relaxed) + 1)
                    .to_le_bytes()
                    .to_vec(),
                "session" => u64::from(session).to_le_bytes().to_vec(),
                _ => return,
            };
            if let Err(e) = pipe.send_no_wait(req.reply_to(data).unwrap()) {
                eprintln!("the server could not reply: {e}");
            }
        }
    });
}

/// Accepts and serves until the listener stops; returns the handlers it started.
fn server(listener: Arc<PipeListener>) -> std::thread::JoinHandle<Vec<PipeHandler>> {
    std::thread::spawn(move || {
        let mut pipes = Vec::new();
        for pipe in listener.incoming() {
            let pipe = pipe.expect("accept");
            serve(&pipe);
            pipe.start().expect("start");
            pipes.push(pipe);
        }
        pipes
    })
}

fn request(h: &PipeHandler, topic: &str, data: &[u8]) -> Vec<u8> {
    h.request(
        Message::request(topic, data.to_vec()).unwrap(),
        Some(STEP),
        None,
    )
    .unwrap_or_else(|e| panic!("{topic}: {e}"))
    .data()
    .to_vec()
}

fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// `CLIENTS` clients at once, each over `transport(i)`: every echo comes back with its own
/// data, every client's counter counts its own requests, and every client talks to a
/// handler of its own (the session ids the server's handlers report are all different and
/// are exactly those of the handlers the listener yielded). Returns after stopping the
/// listener.
fn many_clients<T: Transport>(listener: PipeListener, transport: impl Fn() -> T + Sync) {
    let listener = Arc::new(listener);
    let server = server(listener.clone());
    let start = Arc::new(Barrier::new(CLIENTS));
    let (client_sessions, server_sessions): (Vec<u32>, Vec<u32>) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (start, transport) = (start.clone(), &transport);
                s.spawn(move || {
                    start.wait();
                    let h = PipeHandler::new(transport(), config()).unwrap();
                    h.start().unwrap();
                    for k in 0..ECHOES {
                        let data = format!("client {i} echo {k}").into_bytes();
                        assert_eq!(request(&h, "echo", &data), data);
                    }
                    for k in 1..=COUNTS {
                        assert_eq!(u64_of(&request(&h, "count", &[])), k, "client {i}");
                    }
                    let server_session = u64_of(&request(&h, "session", &[])) as u32;
                    h.notify_end(Vec::new()).unwrap();
                    h.stop(true);
                    (h.session(), server_session)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).unzip()
    });
    listener.stop();
    let pipes = server.join().unwrap();
    assert_eq!(pipes.len(), CLIENTS);
    let accepted: HashSet<u32> = pipes.iter().map(PipeHandler::session).collect();
    let reported: HashSet<u32> = server_sessions.into_iter().collect();
    assert_eq!(accepted.len(), CLIENTS, "one session per accepted handler");
    assert_eq!(reported, accepted, "each client talked to its own handler");
    let clients: HashSet<u32> = client_sessions.into_iter().collect();
    assert_eq!(clients.len(), CLIENTS);
    for p in &pipes {
        p.stop(true);
    }
}

/// Binds `addr` again: the port is free.
fn bind_again(addr: SocketAddr) {
    if let Err(e) = TcpListener::bind(addr) {
        panic!("{addr} still bound: {e}");
    }
}

#[test]
fn many_tcp_clients_each_get_their_own_handler() {
    let listener = PipeListener::bind("127.0.0.1:0", config()).unwrap();
    let addr = listener.local_addr().unwrap();
    many_clients(listener, || TcpTransport::connect(addr).unwrap());
    bind_again(addr);
}

#[cfg(unix)]
#[test]
fn many_unix_clients_each_get_their_own_handler() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    let listener = PipeListener::bind_unix(&path, config()).unwrap();
    assert!(listener.local_addr().is_none());
    many_clients(listener, || peerpipe_std::UnixTransport::connect(&path));
    assert!(!path.exists(), "the socket file is removed on stop");
    PipeListener::bind_unix(&path, config()).unwrap();
}

#[test]
fn stop_wakes_a_blocked_accept_and_frees_the_port() {
    let listener = Arc::new(PipeListener::bind("127.0.0.1:0", config()).unwrap());
    let addr = listener.local_addr().unwrap();
    let stopper = listener.stopper();
    let waiting = std::thread::spawn({
        let listener = listener.clone();
        move || {
            let t = Instant::now();
            (listener.accept().unwrap().is_none(), t.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    stopper.stop();
    // Right after `stop`, from this thread: the listening socket is closed already.
    bind_again(addr);
    let (none, waited) = waiting.join().unwrap();
    assert!(none, "a stopped listener yields no handler");
    assert!(waited < STEP, "accept returned {waited:?} after it began");
    assert!(listener.is_stopped());
    assert!(listener.incoming().next().is_none());
}

#[test]
fn dropping_the_listener_frees_the_port() {
    let listener = PipeListener::bind("127.0.0.1:0", config()).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    bind_again(addr);
}

#[test]
fn accept_timeout_returns_none_when_no_peer_comes() {
    let listener = PipeListener::bind("127.0.0.1:0", config()).unwrap();
    let t = Instant::now();
    assert!(listener
        .accept_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(!listener.is_stopped());
    // A peer that connects later is still accepted.
    let addr = listener.local_addr().unwrap();
    let client = PipeHandler::new(TcpTransport::connect(addr).unwrap(), config()).unwrap();
    client.start().unwrap();
    let pipe = listener.accept_timeout(STEP).unwrap().expect("a handler");
    serve(&pipe);
    pipe.start().unwrap();
    assert_eq!(request(&client, "echo", b"late"), b"late");
    client.stop(true);
    pipe.stop(true);
}

/// A client that connects and says nothing holds up neither `accept_timeout`'s bound nor the
/// next peer: connections are taken in (first frame, within `probation`, here 10 s) beside
/// `accept`.
#[test]
fn a_silent_client_holds_up_neither_accept_nor_the_next_peer() {
    let policy = Reconnect {
        probation: Duration::from_secs(10),
        ..Reconnect::ON
    };
    let listener = PipeListener::bind("127.0.0.1:0", config())
        .unwrap()
        .reconnect(policy);
    let addr = listener.local_addr().unwrap();
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    assert!(listener
        .accept_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "accept_timeout(200 ms) took {took:?}"
    );
    let client = PipeHandler::new(TcpTransport::connect(addr).unwrap(), config()).unwrap();
    client.start().unwrap();
    let t = Instant::now();
    let pipe = listener
        .accept_timeout(STEP)
        .unwrap()
        .expect("the next peer's handler");
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the next peer waited {took:?}"
    );
    serve(&pipe);
    pipe.start().unwrap();
    assert_eq!(request(&client, "echo", b"not held up"), b"not held up");
    client.stop(true);
    pipe.stop(true);
}

/// At most 64 connections are taken in at once: with 64 silent clients in their probation,
/// the 65th is closed at once, and the first is still open.
#[test]
fn connections_beyond_64_being_taken_in_are_closed_at_once() {
    use std::io::Read;
    let policy = Reconnect {
        probation: Duration::from_secs(30),
        ..Reconnect::ON
    };
    let listener = Arc::new(
        PipeListener::bind("127.0.0.1:0", config())
            .unwrap()
            .reconnect(policy),
    );
    let addr = listener.local_addr().unwrap();
    let mut silent: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut extra = std::net::TcpStream::connect(addr).unwrap();
    let accepting = std::thread::spawn({
        let listener = listener.clone();
        move || listener.accept().map(|h| h.is_none())
    });
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(extra.read(&mut byte).unwrap(), 0, "the 65th was served");
    silent[0]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let first = silent[0].read(&mut byte);
    assert!(
        first.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the first silent client was closed: {first:?}"
    );
    listener.stop();
    assert!(
        accepting.join().unwrap().unwrap(),
        "accept returns None once stopped"
    );
}

#[test]
fn invalid_config_is_refused_at_bind() {
    let bad = peerpipe_std::Config {
        heartbeat_interval: Duration::ZERO,
        ..config()
    };
    let e = PipeListener::bind("127.0.0.1:0", bad).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn single_connection_listener_stopped_before_a_peer_frees_its_port() {
    let transport = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = transport.local_addr().unwrap();
    let h = PipeHandler::new(transport, config()).unwrap();
    h.start().unwrap();
    // Let the I/O thread block in its accept.
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    h.stop(true);
    assert!(t.elapsed() < STEP, "stop took {:?}", t.elapsed());
    bind_again(addr);
}

#[test]
fn single_connection_listener_stopped_at_once_frees_its_port() {
    // `stop` right after `start`, while the I/O thread may not have reached its accept.
    for _ in 0..20 {
        let transport = TcpTransport::listen("127.0.0.1:0").unwrap();
        let addr = transport.local_addr().unwrap();
        let h = PipeHandler::new(transport, config()).unwrap();
        h.start().unwrap();
        h.stop(false);
        bind_again(addr);
    }
}

#[test]
fn single_connection_listener_never_started_frees_its_port() {
    let transport = TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = transport.local_addr().unwrap();
    let h = PipeHandler::new(transport, config()).unwrap();
    h.stop(true);
    bind_again(addr);
    // Dropped without `stop`, started or not.
    for start in [false, true] {
        let transport = TcpTransport::listen("127.0.0.1:0").unwrap();
        let addr = transport.local_addr().unwrap();
        let h = PipeHandler::new(transport, config()).unwrap();
        if start {
            h.start().unwrap();
        }
        drop(h);
        bind_again(addr);
    }
}

#[cfg(unix)]
#[test]
fn single_connection_unix_listener_stopped_before_a_peer_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.sock");
    let h = PipeHandler::new(
        peerpipe_std::UnixTransport::listen(&path).unwrap(),
        config(),
    )
    .unwrap();
    h.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    h.stop(true);
    assert!(!path.exists());
}

#[test]
fn single_connection_listener_still_serves_its_one_peer() {
    // The accept is interruptible now; it must still take its peer at once, and refuse a
    // second one (without reconnection, the listening socket closes once the first is
    // accepted; with it, `reconnect.rs` checks that a stranger is refused).
    let transport = TcpTransport::listen("127.0.0.1:0")
        .unwrap()
        .reconnect(peerpipe_std::Reconnect::OFF);
    let addr = transport.local_addr().unwrap();
    let server = PipeHandler::new(transport, config()).unwrap();
    serve(&server);
    server.start().unwrap();
    let client = PipeHandler::new(TcpTransport::connect(addr).unwrap(), config()).unwrap();
    client.start().unwrap();
    assert_eq!(request(&client, "echo", b"one"), b"one");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port no longer listens"
    );
    client.stop(true);
    server.stop(true);
    bind_again(addr);
}
