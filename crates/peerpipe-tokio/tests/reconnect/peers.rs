//! Who may come back: a stranger is refused, a killed and restarted peer process is a
//! restart on the same handler, a listener routes a reconnecting client to its handler.

use super::*;

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
        .args(["--exact", "peers::peer_entry", "--nocapture", "--quiet"])
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
    let run = requests_through(client, server, &proxy, &proxy.cuts, MIN_FAULTS, CONCURRENT).await;
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
