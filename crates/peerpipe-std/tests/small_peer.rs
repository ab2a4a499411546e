//! A host with many concurrent requests against a small peer (the firmware profile's
//! endpoint: 4 receive slots, 4 send slots) that takes its input in bursts: the peer refuses
//! requests while its queue is full, and each refused request must go again as soon as the
//! peer announces room (the ACK's retry flag), not a resend interval later.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, STEP};
use peerpipe_std::peerpipe_core::{self, Endpoint, Event, MessageKind};
use peerpipe_std::{Message, PipeHandler, TcpTransport};

/// The firmware profile's endpoint.
type Small = Endpoint<128, 32, 4, 4>;

/// Runs a small echo peer on `stream` until `stop`: every 5 ms (a busy microcontroller) it
/// reads what arrived, answers one request, and writes what is due. Returns how many DATA
/// frames it refused for a full queue.
fn small_echo_peer(mut stream: TcpStream, stop: Arc<AtomicBool>) -> u64 {
    stream.set_nonblocking(true).expect("non-blocking");
    let origin = Instant::now();
    let now = || peerpipe_core::Instant::from_micros(origin.elapsed().as_micros() as u64);
    let mut ep = Small::new(config(), 7, now()).expect("config");
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    let mut frame = [0u8; Small::MAX_FRAME_LEN];
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return ep.stats().refused_full,
                Ok(n) => ep.handle_bytes(now(), &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return ep.stats().refused_full,
            }
        }
        ep.handle_timeout(now());
        // One event per tick: the application is slower than the link.
        if let Some(Event::Message(m)) = ep.poll_event() {
            if m.kind() == MessageKind::Request {
                replies.push(m.reply_to(m.data()).expect("reply"));
            }
        }
        while let Some(reply) = replies.first().cloned() {
            if ep.send(now(), reply, None).is_err() {
                break;
            }
            replies.remove(0);
        }
        while let Ok(Some(n)) = ep.poll_transmit(now(), &mut frame) {
            if stream.write_all(&frame[..n]).is_err() {
                return ep.stats().refused_full;
            }
        }
    }
    ep.stats().refused_full
}

#[test]
fn many_requests_to_a_small_peer_never_wait_a_resend_interval() {
    // Resends every 2 s: a refused request that waited for its resend timer shows.
    let config = peerpipe_std::Config {
        resend_interval: Some(Duration::from_secs(2)),
        ..config()
    };
    let transport = TcpTransport::listen("127.0.0.1:0").expect("listen");
    let addr = transport.local_addr().expect("addr");
    let host = PipeHandler::new(transport, config).expect("config");
    host.start().expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let peer = std::thread::spawn({
        let stream = TcpStream::connect(addr).expect("connect");
        let stop = stop.clone();
        move || small_echo_peer(stream, stop)
    });
    let mut host_resends = 0;
    for round in 0..3 {
        let callers: Vec<_> = (0..12u8)
            .map(|i| {
                let host = host.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let req = Message::request("echo", vec![round, i]).unwrap();
                    let reply = host.request(req, Some(STEP), None).expect("reply");
                    assert_eq!(reply.data(), &[round, i]);
                    started.elapsed()
                })
            })
            .collect();
        let slowest = callers
            .into_iter()
            .map(|c| c.join().unwrap())
            .max()
            .unwrap();
        assert!(
            slowest < Duration::from_secs(1),
            "round {round}: a caller waited {slowest:?} (resend interval 2 s)"
        );
        host_resends = host.stats().core.resends;
        eprintln!("round {round}: slowest {slowest:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let peer_refused = peer.join().unwrap();
    assert!(
        peer_refused > 0,
        "the test must make the small peer refuse (host resends: {host_resends})"
    );
    host.stop(true);
}
