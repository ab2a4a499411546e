//! Connections cut every 200 ms (TCP, Unix) or stalled for less than the timeout: nothing
//! is lost.

use super::*;

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
    let run = requests_through(
        client,
        server.await.unwrap(),
        &proxy,
        &proxy.cuts,
        MIN_FAULTS,
        load,
    )
    .await;
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
    let run = requests_through(
        client,
        server.await.unwrap(),
        &proxy,
        &proxy.cuts,
        MIN_FAULTS,
        load,
    )
    .await;
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
    let run = requests_through(
        client,
        server.await.unwrap(),
        &proxy,
        &proxy.stalls,
        2,
        CONCURRENT,
    )
    .await;
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
