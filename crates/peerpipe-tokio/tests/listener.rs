//! Serving many peers with `PipeListener`: one started handler per connection, each with
//! its own session, and the port (the socket file) free once the listener is dropped. Real
//! time and real sockets, generous bounds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use peerpipe_tokio::{Config, Item, Message, PipeHandler, PipeListener, Status};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

const CLIENTS: usize = 20;
const ECHOES: usize = 5;
const COUNTS: u64 = 3;
const STEP: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(30),
        resend_interval: Some(Duration::from_millis(200)),
        max_resends: None,
        default_request_timeout: STEP,
        max_message: 0,
    }
}

/// Answers `echo` with the request's data, `count` with how many `count` requests this
/// peer made so far, `session` with the handler's own session id; until END, ABORT or GONE.
async fn serve(pipe: PipeHandler) {
    let mut count = 0u64;
    while let Some(item) = pipe.recv().await {
        let req = match item {
            Item::Message(req) => req,
            Item::Status(Status::PeerRestarted) => continue,
            Item::Status(_) => break,
        };
        let data = match req.topic() {
            "echo" => req.data().to_vec(),
            "count" => {
                count += 1;
                count.to_le_bytes().to_vec()
            }
            "session" => u64::from(pipe.session()).to_le_bytes().to_vec(),
            _ => continue,
        };
        pipe.send_to_peer(req.reply_to(data).unwrap(), None)
            .await
            .unwrap();
    }
}

/// Accepts and serves until aborted; each accepted handler's session goes to `sessions`.
fn server(
    listener: PipeListener,
    sessions: tokio::sync::mpsc::UnboundedSender<u32>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pipe = listener.accept().await.expect("accept");
            sessions.send(pipe.session()).unwrap();
            tokio::spawn(serve(pipe));
        }
    })
}

async fn request(h: &PipeHandler, topic: &str, data: &[u8]) -> Vec<u8> {
    h.request(Message::request(topic, data.to_vec()).unwrap(), None)
        .await
        .unwrap_or_else(|e| panic!("{topic}: {e}"))
        .data()
        .to_vec()
}

fn u64_of(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// One client: echoes, its own counter, and the session of the handler that served it.
async fn client<S: AsyncRead + AsyncWrite + Send + 'static>(i: usize, io: S) -> (u32, u32) {
    let h: PipeHandler = PipeHandler::start(io, config()).unwrap();
    for k in 0..ECHOES {
        let data = format!("client {i} echo {k}").into_bytes();
        assert_eq!(request(&h, "echo", &data).await, data);
    }
    for k in 1..=COUNTS {
        assert_eq!(u64_of(&request(&h, "count", &[]).await), k, "client {i}");
    }
    let server_session = u64_of(&request(&h, "session", &[]).await) as u32;
    h.notify_end(Vec::new(), None).await.unwrap();
    h.stop();
    (h.session(), server_session)
}

/// `CLIENTS` clients at once (from `connect`): each talks to a handler of its own (the
/// session ids the server's handlers report are all different and exactly those of the
/// handlers the listener yielded). Then the server task is aborted, which drops the
/// listener.
async fn many_clients<S, F>(listener: PipeListener, connect: impl Fn() -> F)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    F: std::future::Future<Output = S> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server(listener, tx);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let connect = connect();
            tokio::spawn(async move { client(i, connect.await).await })
        })
        .collect();
    let mut client_sessions = HashSet::new();
    let mut reported = HashSet::new();
    for c in clients {
        let (mine, theirs) = tokio::time::timeout(STEP * 3, c)
            .await
            .expect("clients done in time")
            .unwrap();
        client_sessions.insert(mine);
        reported.insert(theirs);
    }
    server.abort();
    assert!(server.await.unwrap_err().is_cancelled());
    let mut accepted = HashSet::new();
    while let Some(s) = rx.recv().await {
        accepted.insert(s);
    }
    assert_eq!(client_sessions.len(), CLIENTS);
    assert_eq!(accepted.len(), CLIENTS, "one session per accepted handler");
    assert_eq!(reported, accepted, "each client talked to its own handler");
}

fn bind_again(addr: SocketAddr) {
    if let Err(e) = std::net::TcpListener::bind(addr) {
        panic!("{addr} still bound: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tcp_clients_each_get_their_own_handler() {
    let listener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    many_clients(listener, || async move {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        s
    })
    .await;
    // The aborted server task dropped the listener: the port is free.
    bind_again(addr);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_unix_clients_each_get_their_own_handler() {
    let dir = std::env::temp_dir().join(format!("peerpipe-tokio-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    let listener = PipeListener::bind_unix(&path, config()).unwrap();
    assert!(listener.local_addr().is_none());
    let p = path.clone();
    many_clients(listener, move || {
        let p = p.clone();
        async move { tokio::net::UnixStream::connect(p).await.unwrap() }
    })
    .await;
    assert!(
        !path.exists(),
        "the socket file is removed with the listener"
    );
    let again: PipeListener = PipeListener::bind_unix(&path, config()).unwrap();
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_listener_frees_the_port_even_while_accepting() {
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    bind_again(addr);

    // An accept that loses a race is dropped with its listener.
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lost = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(lost.is_err(), "no peer came");
    drop(listener);
    bind_again(addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threaded_client_talks_to_an_async_listener() {
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let pipe = listener.accept().await.unwrap();
        let session = pipe.session();
        serve(pipe).await;
        session
    });
    let reply = tokio::task::spawn_blocking(move || {
        let h = peerpipe_std::PipeHandler::new(
            peerpipe_std::TcpTransport::connect(addr).unwrap(),
            config(),
        )
        .unwrap();
        h.start().unwrap();
        let m = Message::request("session", Vec::new()).unwrap();
        let r = h.request(m, Some(STEP), None).unwrap();
        h.notify_end(Vec::new()).unwrap();
        h.stop(true);
        r
    })
    .await
    .unwrap();
    let session = tokio::time::timeout(STEP, accepting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u64_of(reply.data()), u64::from(session));
}

#[tokio::test]
async fn invalid_config_is_refused_at_bind() {
    let bad = Config {
        heartbeat_interval: Duration::ZERO,
        ..config()
    };
    let bound: std::io::Result<PipeListener> = PipeListener::bind("127.0.0.1:0", bad).await;
    let e = bound.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

/// At most 64 connections are taken in at once: with 64 silent clients in their probation,
/// the 65th is closed at once, and the first is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_64_being_taken_in_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let policy = peerpipe_tokio::Reconnect {
        probation: Duration::from_secs(30),
        ..peerpipe_tokio::Reconnect::ON
    };
    let listener: PipeListener = PipeListener::bind("127.0.0.1:0", config())
        .await
        .unwrap()
        .reconnect(policy);
    let addr = listener.local_addr().unwrap();
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accepting = tokio::spawn(async move {
        let _ = listener.accept().await;
    });
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), extra.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    let first = tokio::time::timeout(Duration::from_millis(300), silent[0].read(&mut byte)).await;
    assert!(
        first.is_err(),
        "the first silent client was closed: {first:?}"
    );
    accepting.abort();
}
