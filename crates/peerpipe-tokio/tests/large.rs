//! Messages of any size: lengths around the fragment boundaries and 16 MiB, through
//! `tokio::io::duplex`, TCP and Unix sockets, with their content checked; a request with a
//! large reply; END and ABORT with large data; a peer that accepts less (`TooLarge` at
//! once); a peer killed in the middle of a message (GONE, nothing partial delivered);
//! progress on both sides.

use std::time::Duration;

use peerpipe_tokio::{
    Config, Error, FailReason, GoneReason, Item, Message, PipeHandler, Status, Transfer,
    DEFAULT_FRAGMENT as F,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(30),
        resend_interval: Some(Duration::from_millis(200)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(120),
        max_message: 0,
    }
}

/// Bytes no two messages share by accident: `len` bytes from `seed`.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// What the server answers: the request's data with every byte inverted (so that a reply
/// that is the request sent back unchanged fails the check).
fn invert(data: &mut [u8]) {
    data.iter_mut().for_each(|b| *b = !*b);
}

/// Answers every request with its data inverted, until END, ABORT or GONE (returned).
fn serve(pipe: PipeHandler) -> tokio::task::JoinHandle<Option<Status>> {
    tokio::spawn(async move {
        while let Some(item) = pipe.recv().await {
            match item {
                Item::Message(req) => {
                    let (topic, id) = (req.topic().to_owned(), req.id());
                    let mut data = req.into_data();
                    invert(&mut data);
                    let reply = Message::reply(topic, data, id).unwrap();
                    let _ = pipe.send_to_peer(reply, None).await;
                }
                Item::Status(Status::PeerRestarted) => {}
                Item::Status(s) => return Some(s),
            }
        }
        None
    })
}

/// The lengths every transport carries: around one fragment, three, 1 MiB and 16 MiB.
const SIZES: [usize; 8] = [0, 1, F - 1, F, F + 1, 3 * F, 1 << 20, 16 << 20];

/// Requests of every size in [`SIZES`] with their (inverted) replies checked byte for
/// byte, then END with `3F + 7` bytes of data, which the server returns.
async fn exchange(a: &PipeHandler, b: PipeHandler) {
    let server = serve(b);
    for (i, &size) in SIZES.iter().enumerate() {
        let data = pattern(i as u32, size);
        let req = Message::request("size", data.clone()).unwrap();
        let reply = a.request(req, None).await.unwrap();
        let mut got = reply.into_data();
        assert_eq!(got.len(), size);
        // A message put together from parts holds exactly its length.
        assert_eq!(got.capacity(), size, "allocation of a {size}-byte reply");
        invert(&mut got);
        assert!(got == data, "the {size}-byte reply differs");
    }
    let end = pattern(99, 3 * F + 7);
    a.notify_end(end.clone(), None).await.unwrap();
    assert_eq!(server.await.unwrap(), Some(Status::End(end)));
}

#[tokio::test(start_paused = true)]
async fn every_size_through_memory() {
    let (x, y) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    exchange(&a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_size_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (client, accepted) = (client.unwrap(), accepted.unwrap().0);
    client.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    let a: PipeHandler = PipeHandler::start(client, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(accepted, config()).unwrap();
    exchange(&a, b).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_size_over_a_unix_socket() {
    let (x, y) = tokio::net::UnixStream::pair().unwrap();
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    exchange(&a, b).await;
}

/// A 2 MiB message and then END with 256 KiB of data, and ABORT with 1 MiB: every byte
/// arrives, in order. (END is acknowledged once the receiver's endpoint took all of it,
/// which it can only do once its application took the message before: the receiver holds
/// back what does not fit its bounds.)
#[tokio::test(start_paused = true)]
async fn end_and_abort_carry_large_data() {
    let (x, y) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    let big = pattern(1, 2 << 20);
    let end = pattern(2, 256 << 10);
    let receiver = tokio::spawn(async move {
        let first = b.recv().await;
        let second = b.recv().await;
        (first, second)
    });
    a.send_no_wait(Message::request("big", big.clone()).unwrap())
        .unwrap();
    a.notify_end(end.clone(), None).await.unwrap();
    match receiver.await.unwrap() {
        (Some(Item::Message(m)), second) => {
            assert!(m.data() == big.as_slice());
            assert_eq!(second, Some(Item::Status(Status::End(end))));
        }
        other => panic!("{other:?}"),
    }

    let (x, y) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    let abort = pattern(3, 1 << 20);
    b.notify_abort(abort.clone(), None).await.unwrap();
    assert_eq!(a.recv().await.unwrap(), Item::Status(Status::Abort(abort)));
}

/// A 4 MiB reply gets through to its request while the application leaves a 600 KiB
/// message from the peer unread in its queue: a reply a request waits for goes to it, not
/// to the queue, so the queue's byte limit does not hold it back.
#[tokio::test(start_paused = true)]
async fn a_large_reply_passes_an_unread_message() {
    let (x, y) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    tokio::spawn(async move {
        while let Some(Item::Message(req)) = b.recv().await {
            let noise = Message::request("noise", pattern(7, 600 << 10)).unwrap();
            b.send_to_peer(noise, None).await.unwrap();
            let reply = req.reply_to(pattern(8, 4 << 20)).unwrap();
            b.send_to_peer(reply, None).await.unwrap();
        }
    });
    let req = Message::request("big", b"please".to_vec()).unwrap();
    let reply = a.request(req, Some(Duration::from_secs(10))).await.unwrap();
    assert!(reply.data() == pattern(8, 4 << 20).as_slice());
    match a.get_next() {
        Some(Item::Message(m)) => assert!(m.data() == pattern(7, 600 << 10).as_slice()),
        other => panic!("{other:?}"),
    }
}

/// A peer whose `max_message` is 4 KiB: a longer send fails with `TooLarge` as soon as its
/// capabilities are known (no resends, no timeout), a request too; one of 4 KiB goes
/// through.
#[tokio::test(start_paused = true)]
async fn a_peer_that_accepts_less_refuses_at_once() {
    let (x, y) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let small = Config {
        max_message: 4096,
        ..config()
    };
    let b: PipeHandler = PipeHandler::start(y, small).unwrap();
    let server = serve(b);
    // The first heartbeats cross.
    tokio::time::sleep(Duration::from_millis(10)).await;

    let start = Instant::now();
    let r = a
        .send_to_peer(Message::request("big", vec![7; 4097]).unwrap(), None)
        .await;
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TooLarge))),
        "{r:?}"
    );
    let r = a
        .request(Message::request("big", vec![7; 1 << 20]).unwrap(), None)
        .await;
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TooLarge))),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(a.stats().core.resends, 0);

    let reply = a
        .request(Message::request("fits", vec![7; 4096]).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(reply.data(), vec![!7; 4096]);
    a.notify_end(Vec::new(), None).await.unwrap();
    assert_eq!(server.await.unwrap(), Some(Status::End(Vec::new())));
}

/// Connects `x` and `y` through a relay that forwards everything from `y` to `x`, and from
/// `x` to `y` until `cut` bytes went through: then it closes both connections at once (as
/// a killed process's would close).
fn relay_cut_after(x: DuplexStream, y: DuplexStream, cut: usize) {
    tokio::spawn(async move {
        let (mut xr, mut xw) = tokio::io::split(x);
        let (mut yr, mut yw) = tokio::io::split(y);
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut yr, &mut xw).await;
            (yr, xw)
        });
        let mut buf = vec![0u8; 4096];
        let mut passed = 0;
        while passed < cut {
            let n = xr.read(&mut buf[..(cut - passed).min(4096)]).await.unwrap();
            assert!(n > 0);
            yw.write_all(&buf[..n]).await.unwrap();
            passed += n;
        }
        back.abort();
        let _ = back.await;
    });
}

/// The sender of a 4 MiB message is killed (its connection closes) when 2 MiB of it went
/// through: the receiver reports GONE and never the partial message; the send fails with
/// the broken transport.
#[tokio::test(start_paused = true)]
async fn a_peer_killed_mid_message_is_gone_and_nothing_partial_arrives() {
    let (x, relay_x) = tokio::io::duplex(64 * 1024);
    let (relay_y, y) = tokio::io::duplex(64 * 1024);
    relay_cut_after(relay_x, relay_y, 2 << 20);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    let send = a
        .send_to_peer(Message::request("big", vec![1; 4 << 20]).unwrap(), None)
        .await;
    assert!(matches!(send, Err(Error::TransportLost(_))), "{send:?}");
    match b.recv().await {
        Some(Item::Status(Status::Gone {
            reason: GoneReason::TransportLost,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(b.stats().core.messages_cut, 1, "no partial message was cut");
    assert_eq!(
        b.progress().receiving,
        None,
        "the partial message was dropped"
    );
    assert!(b.get_next().is_none());
    assert!(b.recv().await.is_none());
}

/// Connects `x` and `y` through a relay that forwards everything from `y` to `x` at once,
/// and from `x` to `y` only as many bytes as the returned semaphore has permits for.
fn relay_gated(x: DuplexStream, y: DuplexStream) -> std::sync::Arc<tokio::sync::Semaphore> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (mut xr, mut xw) = tokio::io::split(x);
    let (mut yr, mut yw) = tokio::io::split(y);
    tokio::spawn(async move { tokio::io::copy(&mut yr, &mut xw).await });
    tokio::spawn({
        let gate = gate.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let permits = gate.acquire_many(buf.len() as u32).await.unwrap();
                let n = xr.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                permits.forget();
                // What was not used goes back: the gate counts bytes, not reads.
                gate.add_permits(buf.len() - n);
                yw.write_all(&buf[..n]).await.unwrap();
            }
        }
    });
    gate
}

/// Progress of an 8 MiB request on both sides: the sender's acknowledged bytes and the
/// receiver's arrived bytes only grow, never past the length, and the ids agree; once the
/// request is delivered the sender no longer lists it. The request's bytes pass a gate
/// 256 KiB at a time, and both sides are sampled once everything let through has been
/// handled (in virtual time, a sleep returns only when every task is idle), so every
/// sample between the first and the last falls strictly inside the transfer.
#[tokio::test(start_paused = true)]
async fn progress_on_both_sides() {
    let (x, relay_x) = tokio::io::duplex(64 * 1024);
    let (relay_y, y) = tokio::io::duplex(64 * 1024);
    let gate = relay_gated(relay_x, relay_y);
    let a: PipeHandler = PipeHandler::start(x, config()).unwrap();
    let b: PipeHandler = PipeHandler::start(y, config()).unwrap();
    let total = 8u64 << 20;
    let id = a
        .send_no_wait(Message::request("big", pattern(5, total as usize)).unwrap())
        .unwrap();
    let (mut sent, mut arrived): (Vec<Transfer>, Vec<Transfer>) = (Vec::new(), Vec::new());
    let mut steps = 0;
    let message = loop {
        gate.add_permits(256 << 10);
        tokio::time::sleep(Duration::from_millis(20)).await;
        steps += 1;
        assert!(steps < 100, "8 MiB did not pass in 25 MiB of gate");
        if let Some(t) = a.progress().sending {
            sent.push(t);
        }
        let listed = a.sending();
        assert!(
            listed.len() <= 1 && listed.iter().all(|t| t.id == id),
            "{listed:?}"
        );
        if let Some(t) = b.progress().receiving {
            arrived.push(t);
        }
        if let Some(Item::Message(m)) = b.get_next() {
            break m;
        }
    };
    assert_eq!(message.id(), id);
    assert!(message.data() == pattern(5, total as usize).as_slice());
    for (name, seen) in [("sent", &sent), ("arrived", &arrived)] {
        let inside = seen
            .iter()
            .filter(|t| t.done > 0 && t.fraction() < 1.0)
            .count();
        assert!(inside >= 16, "{name}: too few samples inside: {seen:?}");
        assert!(seen
            .iter()
            .all(|t| t.id == id && t.total == total && t.done <= total));
        assert!(
            seen.windows(2).all(|w| w[0].done <= w[1].done),
            "{name} went back: {seen:?}"
        );
    }
    // Delivered: the outcome settles it.
    for _ in 0..1000 {
        if a.progress().sending.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(a.progress().sending, None);
    assert!(a.sending().is_empty());
    assert_eq!(b.progress().receiving, None);
}
