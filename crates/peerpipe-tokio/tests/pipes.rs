//! The async handler over `tokio::io::duplex` in paused (virtual) time, over TCP and Unix
//! sockets, and against the threaded `peerpipe-std` handler.

use std::time::Duration;

use peerpipe_tokio::{
    CloseReason, Config, Error, FailReason, GoneReason, Item, Message, MsgId, PeerState,
    PipeHandler, Status,
};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(1_000),
        resend_interval: Some(Duration::from_millis(200)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(5),
        max_message: 0,
    }
}

/// For the tests in real time: a silence timeout no busy machine reaches by accident.
fn real_time_config() -> Config {
    Config {
        heartbeat_timeout: Duration::from_secs(30),
        ..config()
    }
}

fn msg(topic: &str, data: &[u8]) -> Message {
    Message::request(topic, data.to_vec()).unwrap()
}

fn pair() -> (PipeHandler, PipeHandler) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        PipeHandler::start(a, config()).unwrap(),
        PipeHandler::start(b, config()).unwrap(),
    )
}

/// Answers every request with its data reversed, until END, ABORT or GONE (returned).
fn serve(pipe: PipeHandler) -> tokio::task::JoinHandle<Option<Status>> {
    tokio::spawn(async move {
        while let Some(item) = pipe.recv().await {
            match item {
                Item::Message(req) => {
                    let mut data = req.data().to_vec();
                    data.reverse();
                    let _ = pipe.send_to_peer(req.reply_to(data).unwrap(), None).await;
                }
                Item::Status(Status::PeerRestarted) => {}
                Item::Status(s) => return Some(s),
            }
        }
        None
    })
}

async fn next_status(pipe: &PipeHandler) -> Status {
    match pipe.recv().await.expect("stream ended") {
        Item::Status(s) => s,
        Item::Message(m) => panic!("unexpected message {m:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn requests_get_their_replies_both_ways() {
    let (a, b) = pair();
    let server_b = serve(b.clone());
    for i in 0..50u32 {
        let data = i.to_be_bytes();
        let reply = a.request(msg("work", &data), None).await.unwrap();
        let mut want = data.to_vec();
        want.reverse();
        assert_eq!(reply.data(), want);
        assert_eq!(reply.topic(), "work");
    }
    assert_eq!(a.peer_state(), PeerState::Up);
    a.notify_end(b"done".to_vec(), None).await.unwrap();
    assert_eq!(server_b.await.unwrap(), Some(Status::End(b"done".to_vec())));

    // After our END, sends are refused with the reason.
    assert!(matches!(
        a.send_to_peer(msg("late", b""), None).await,
        Err(Error::Closed(CloseReason::LocalEnd))
    ));
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_are_matched_by_req_id() {
    let (a, b) = pair();
    let _server = serve(b);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let reply = a.request(msg("n", &i.to_le_bytes()), None).await.unwrap();
            let mut want = i.to_le_bytes().to_vec();
            want.reverse();
            assert_eq!(reply.data(), want);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Sends resolve once delivered, even while the peer's application does not read (up to
/// what its endpoint and queue hold: 2 x RX); it then reads them in order.
#[tokio::test(start_paused = true)]
async fn send_outcome_and_order() {
    let (a, b) = pair();
    for i in 0..16u8 {
        a.send_to_peer(msg("seq", &[i]), None).await.unwrap();
    }
    for i in 0..16u8 {
        match b.recv().await.unwrap() {
            Item::Message(m) => assert_eq!(m.data(), [i]),
            other => panic!("{other:?}"),
        }
    }
    assert!(b.get_next().is_none());
}

/// Every send slot taken (the peer does not read, so its queue fills and it stops taking
/// more): further sends wait for a slot instead of failing, and all arrive once it reads.
#[tokio::test(start_paused = true)]
async fn full_send_slots_make_senders_wait() {
    let (a, b) = pair();
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.send_to_peer(msg("fill", &[i]), Some(Duration::from_secs(60)))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = Vec::new();
    while got.len() < 40 {
        match b.recv().await.unwrap() {
            Item::Message(m) => got.push(m.data()[0]),
            other => panic!("{other:?}"),
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<_>>());
}

/// The peer's transport stays open but it never speaks: GONE (silence) after
/// `heartbeat_timeout`, once; pending sends fail with PeerGone.
#[tokio::test(start_paused = true)]
async fn silent_peer_is_gone_after_the_timeout() {
    let (a, mut mute) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(a, config()).unwrap();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while mute.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let t0 = Instant::now();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_peer(msg("x", b"y"), Some(Duration::from_secs(60)))
                .await
        })
    };
    let status = next_status(&a).await;
    assert_eq!(
        status,
        Status::Gone {
            reason: GoneReason::Silence,
            cause: None
        }
    );
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1_000) && waited < Duration::from_millis(1_010),
        "{waited:?}"
    );
    assert!(matches!(
        send.await.unwrap(),
        Err(Error::Failed(FailReason::PeerGone))
    ));
    assert_eq!(a.peer_state(), PeerState::Gone);
    drain.abort();
}

#[tokio::test(start_paused = true)]
async fn closed_transport_is_gone_with_its_cause() {
    let (a, b) = tokio::io::duplex(1024);
    let a: PipeHandler = PipeHandler::start(a, config()).unwrap();
    drop(b);
    match next_status(&a).await {
        Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(cause),
        } => assert_eq!(cause.kind(), std::io::ErrorKind::UnexpectedEof, "{cause}"),
        other => panic!("{other:?}"),
    }
    a.closed().await;
    assert!(a.recv().await.is_none());
    // The failing call names the broken transport, as the GONE status does.
    match a.send_to_peer(msg("late", b""), None).await {
        Err(Error::TransportLost(cause)) => {
            assert_eq!(cause.kind(), std::io::ErrorKind::UnexpectedEof)
        }
        r => panic!("{r:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn end_and_abort_reach_the_peer_with_their_data() {
    let (a, b) = pair();
    b.notify_abort(b"why".to_vec(), None).await.unwrap();
    assert_eq!(next_status(&a).await, Status::Abort(b"why".to_vec()));
    assert!(matches!(
        a.request(msg("q", b""), None).await,
        Err(Error::Closed(CloseReason::PeerAborted))
    ));

    let (a, b) = pair();
    a.notify_end(Vec::new(), None).await.unwrap();
    assert_eq!(next_status(&b).await, Status::End(Vec::new()));
}

/// A request waiting for its reply fails at once when the peer ends, not at its timeout.
#[tokio::test(start_paused = true)]
async fn end_fails_waiting_requests_at_once() {
    let (a, b) = pair();
    let t0 = Instant::now();
    let req = {
        let a = a.clone();
        tokio::spawn(async move {
            a.request(msg("never", b""), Some(Duration::from_secs(60)))
                .await
        })
    };
    match b.recv().await.unwrap() {
        Item::Message(m) => assert_eq!(m.topic(), "never"),
        other => panic!("{other:?}"),
    }
    b.notify_end(Vec::new(), None).await.unwrap();
    assert!(matches!(
        req.await.unwrap(),
        Err(Error::Failed(FailReason::PeerEnded))
    ));
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// Dropped send and request futures (lost `select!` branches, timeouts) leave the link
/// intact: whatever reached the endpoint still arrives exactly once and in order, every send
/// that completed arrived, and later traffic flows.
#[tokio::test(start_paused = true)]
async fn dropping_futures_never_corrupts_the_link() {
    let (a, b) = pair();
    let (mut cancelled, mut completed) = (0, Vec::new());
    for i in 0..100u8 {
        let send = a.send_to_peer(msg("c", &[i]), None);
        tokio::select! {
            r = send => { r.unwrap(); completed.push(i); }
            () = tokio::task::yield_now() => { cancelled += 1; }
        }
        let req = a.request(msg("r", &[i]), None);
        tokio::select! {
            r = req => panic!("no reply expected: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
    assert!(cancelled > 0, "the test never cancelled a send");
    let mut seen = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(2), b.recv()).await {
        match item {
            Item::Message(m) => seen.push((m.topic().to_owned(), m.data()[0])),
            other => panic!("{other:?}"),
        }
    }
    for topic in ["c", "r"] {
        let got: Vec<u8> = seen
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|&(_, d)| d)
            .collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{topic}: {got:?}");
        if topic == "c" {
            assert!(
                completed.iter().all(|i| got.contains(i)),
                "{completed:?} vs {got:?}"
            );
        }
    }
    let server = serve(b);
    let reply = a.request(msg("after", b"ok"), None).await.unwrap();
    assert_eq!(reply.data(), b"ko");
    a.stop();
    drop(server);
}

#[tokio::test(start_paused = true)]
async fn stop_fails_pending_calls_and_ends_the_stream() {
    let (a, _b) = tokio::io::duplex(1024);
    let a: PipeHandler = PipeHandler::start(a, config()).unwrap();
    let req = {
        let a = a.clone();
        tokio::spawn(async move { a.request(msg("q", b""), None).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    a.stop();
    assert!(matches!(req.await.unwrap(), Err(Error::Stopped)));
    assert!(a.recv().await.is_none());
    a.closed().await;
    assert!(matches!(
        a.send_to_peer(msg("x", b""), None).await,
        Err(Error::Stopped)
    ));
    assert!(matches!(
        a.notify_end(Vec::new(), None).await,
        Err(Error::Stopped)
    ));
    assert!(matches!(a.send_no_wait(msg("x", b"")), Err(Error::Stopped)));
}

/// Dropping every handle stops the pipe and closes the transport: the peer sees it go.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_the_pipe() {
    let (a, b) = pair();
    drop(a);
    match next_status(&b).await {
        Status::Gone {
            reason: GoneReason::TransportLost,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn bad_input_from_the_caller_gets_a_clear_error() {
    let (a, _b) = pair();
    assert!(matches!(
        a.send_to_peer(msg("x", b""), Some(Duration::ZERO)).await,
        Err(Error::Invalid(
            peerpipe_tokio::peerpipe_core::Error::ZeroTimeout
        ))
    ));
    let reply = Message::reply("x", Vec::new(), MsgId(1)).unwrap();
    assert!(matches!(
        a.request(reply, None).await,
        Err(Error::Invalid(_))
    ));
    // A topic longer than the endpoint's topics: refused at once, before any wait (a
    // message of any length fits: it goes in fragments).
    let (s, _t) = tokio::io::duplex(1024);
    let small: PipeHandler<
        16,
        8,
        2,
        2,
        { peerpipe_tokio::peerpipe_core::wire::max_encoded_len(16, 8) },
    > = PipeHandler::start(s, config()).unwrap();
    assert!(matches!(
        small.send_to_peer(msg("topiclong", b""), None).await,
        Err(Error::Invalid(
            peerpipe_tokio::peerpipe_core::Error::TopicTooLong { len: 9, max: 8 }
        ))
    ));
    assert!(matches!(
        small.send_no_wait(msg("topiclong", &[0; 17])),
        Err(Error::Invalid(_))
    ));
    let bad = Config {
        heartbeat_timeout: config().heartbeat_interval,
        ..config()
    };
    let (s, _t) = tokio::io::duplex(1024);
    let started: Result<PipeHandler, Error> = PipeHandler::start(s, bad);
    assert!(matches!(started, Err(Error::Config(_))));
}

/// While paused neither side sends heartbeats nor checks silence; after resume both do.
#[tokio::test(start_paused = true)]
async fn pause_stops_the_silence_check() {
    let (a, mut mute) = tokio::io::duplex(64 * 1024);
    let a: PipeHandler = PipeHandler::start(a, config()).unwrap();
    a.pause();
    // Ten timeouts of silence: no GONE, and nothing sent (not even the start heartbeat).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut buf = [0u8; 64];
    assert!(a.get_next().is_none());
    assert!(
        tokio::time::timeout(Duration::from_millis(1), mute.read(&mut buf))
            .await
            .is_err()
    );
    a.resume();
    assert!(matches!(
        next_status(&a).await,
        Status::Gone {
            reason: GoneReason::Silence,
            ..
        }
    ));
}

/// Real time and real sockets: TCP and a Unix socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_unix_sockets() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (client, accepted) = (client.unwrap(), accepted.unwrap().0);
    client.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    let a: PipeHandler = PipeHandler::start(client, real_time_config()).unwrap();
    let b: PipeHandler = PipeHandler::start(accepted, real_time_config()).unwrap();
    exchange(&a, b).await;

    #[cfg(unix)]
    {
        let (x, y) = tokio::net::UnixStream::pair().unwrap();
        let a: PipeHandler = PipeHandler::start(x, real_time_config()).unwrap();
        let b: PipeHandler = PipeHandler::start(y, real_time_config()).unwrap();
        exchange(&a, b).await;
    }
}

async fn exchange(a: &PipeHandler, b: PipeHandler) {
    let server = serve(b);
    for size in [0usize, 1, 100, 4096, 8192] {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let reply = a.request(msg("size", &data), None).await.unwrap();
        assert_eq!(reply.data().len(), size);
        assert!(reply.data().iter().rev().eq(data.iter()));
    }
    a.notify_end(b"end".to_vec(), None).await.unwrap();
    assert_eq!(server.await.unwrap(), Some(Status::End(b"end".to_vec())));
}

/// One wire protocol: a tokio peer and a threaded `peerpipe-std` peer over TCP, requests
/// both ways (small ones, and one of 1 MiB each way), END from each side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_to_the_threaded_driver() {
    use peerpipe_std::{PipeHandler as StdHandler, TcpTransport};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let std_side =
        StdHandler::new(TcpTransport::connect(addr).unwrap(), real_time_config()).unwrap();
    std_side.start().unwrap();
    std_side.set_message_cb({
        let h = std_side.clone();
        move |m: Message| {
            if m.is_request() {
                let _ = h.send_no_wait(m.reply_to(m.data().repeat(2)).unwrap());
            }
        }
    });
    let (stream, _) = listener.accept().await.unwrap();
    stream.set_nodelay(true).unwrap();
    let tokio_side: PipeHandler = PipeHandler::start(stream, real_time_config()).unwrap();

    // tokio -> std
    for i in 0..100u32 {
        let reply = tokio_side
            .request(msg("ping", &i.to_be_bytes()), None)
            .await
            .unwrap();
        assert_eq!(reply.data(), i.to_be_bytes().repeat(2));
    }
    // tokio -> std, a message of many fragments (4 KiB on std's side, 1 KiB on ours: each
    // side sends the smaller) and its reply of twice that.
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i % 251) as u8).collect();
    let reply = tokio_side
        .request(msg("big", &big), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(reply.data() == big.repeat(2).as_slice());
    // std -> tokio (the blocking call on a blocking thread)
    let server = serve(tokio_side.clone());
    let std_client = std_side.clone();
    let replies = tokio::task::spawn_blocking(move || {
        (0..100u32)
            .map(|i| {
                std_client
                    .request(
                        msg("pong", &i.to_be_bytes()),
                        Some(Duration::from_secs(10)),
                        None,
                    )
                    .map(|r| r.into_data())
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .unwrap()
    .unwrap();
    let std_client = std_side.clone();
    let big_back = tokio::task::spawn_blocking(move || {
        let big: Vec<u8> = (0..(1 << 20) + 5).map(|i| (i % 253) as u8).collect();
        let reply = std_client
            .request(msg("big", &big), Some(Duration::from_secs(30)), None)
            .unwrap();
        let mut want = big;
        want.reverse();
        reply.data() == want.as_slice()
    });
    assert!(
        big_back.await.unwrap(),
        "std's large request came back wrong"
    );
    for (i, r) in replies.iter().enumerate() {
        let mut want = (i as u32).to_be_bytes().to_vec();
        want.reverse();
        assert_eq!(r, &want);
    }
    let s = std_side.clone();
    tokio::task::spawn_blocking(move || s.notify_end(b"std done".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.await.unwrap(),
        Some(Status::End(b"std done".to_vec()))
    );
    std_side.stop(true);
}
