//! TLS over TCP with tokio-rustls: mutual authentication works (and with the threaded
//! driver's TLS); a client certificate signed by another CA, no client certificate, a server
//! this client does not trust and a client that speaks plain TCP are each refused with a
//! clear error, and the conversation going on at the listener is untouched; connections cut
//! by a proxy are replaced with a new handshake. Real sockets, generous bounds.
#![cfg(all(feature = "tls", target_os = "linux"))]

#[path = "../../peerpipe-host/tests/support/certs.rs"]
mod certs;
#[path = "../../peerpipe-host/tests/support/pki.rs"]
mod pki;
#[path = "../../peerpipe-std/tests/common/proxy.rs"]
mod proxy;

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use peerpipe_tokio::tls::TlsClient;
use peerpipe_tokio::{Config, Item, Message, PipeHandler, PipeListener, Reconnect};
use pki::{client_tls, pki, server_tls};
use proxy::{tcp_proxy, Fault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

/// Answers every request with its data, until the conversation ends.
fn echo(h: &PipeHandler) {
    let h = h.clone();
    tokio::spawn(async move {
        while let Some(item) = h.recv().await {
            if let Item::Message(m) = item {
                let _ = h
                    .send_to_peer(m.reply_to(m.data().to_vec()).unwrap(), None)
                    .await;
            }
        }
    });
}

async fn ask(h: &PipeHandler, data: &[u8]) {
    let reply = h
        .request(Message::request("echo", data.to_vec()).unwrap(), Some(STEP))
        .await
        .unwrap();
    assert_eq!(reply.data(), data);
}

fn expect(r: io::Result<PipeHandler>, kind: io::ErrorKind, says: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        Ok(_) => panic!("expected a refusal ({says})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_authentication_works_and_strangers_are_refused_without_disturbing_it() {
    let p = pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_tls(&p);
    let server = tokio::spawn(async move {
        PipeHandler::accept_tls(listener, &tls, config(), Reconnect::ON).await
    });
    let good = client_tls(&p.ca.pem, Some(&p.client));
    let a = PipeHandler::connect_tls(addr, &good, config(), Reconnect::ON)
        .await
        .unwrap();
    let b: PipeHandler = server.await.unwrap().unwrap();
    echo(&b);
    ask(&a, b"over tls").await;

    let other = certs::Ca::new("another CA");
    let stranger = other.issue(&["client"]);
    let connect = |tls: TlsClient| async move {
        PipeHandler::connect_tls(addr, &tls, config(), Reconnect::OFF).await
    };
    let r = connect(client_tls(&p.ca.pem, Some(&stranger))).await;
    expect(
        r,
        io::ErrorKind::ConnectionRefused,
        "the peer refused this end",
    );
    let r = connect(client_tls(&p.ca.pem, None)).await;
    expect(r, io::ErrorKind::ConnectionRefused, "CertificateRequired");
    let r = connect(client_tls(&other.pem, Some(&p.client))).await;
    expect(r, io::ErrorKind::PermissionDenied, "UnknownIssuer");
    // A client that speaks no TLS gets an alert and the end of the connection.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"\0not TLS\0").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(STEP, plain.read_to_end(&mut answer)).await;
    assert_eq!(answer.first(), Some(&21), "a TLS alert record: {answer:?}");

    let deadline = tokio::time::Instant::now() + STEP;
    while b.stats().refused_connections < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.stats().refused_connections, 4, "{:?}", b.stats());
    ask(&a, b"still here").await;
    assert_eq!(a.stats().reconnects + b.stats().reconnects, 0);
    a.stop();
    b.stop();
}

/// A proxy cuts every TLS connection every 200 ms: both ends reconnect, with a new handshake
/// each time, and every request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_tls_connections_are_replaced_with_a_new_handshake() {
    let p = pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let tls = server_tls(&p);
    let server = tokio::spawn(async move {
        PipeHandler::accept_tls(listener, &tls, config(), Reconnect::ON).await
    });
    let (proxy, addr) = tcp_proxy(server_addr, Fault::Cut(Duration::from_millis(200)));
    let good = client_tls(&p.ca.pem, Some(&p.client));
    let a = PipeHandler::connect_tls(addr, &good, config(), Reconnect::ON)
        .await
        .unwrap();
    let b: PipeHandler = server.await.unwrap().unwrap();
    echo(&b);
    let mut i = 0u32;
    while proxy.cuts.load(Ordering::Relaxed) < 5 {
        ask(&a, &i.to_le_bytes().repeat(2_500)).await;
        i += 1;
    }
    assert!(
        a.stats().reconnects >= 3 && b.stats().reconnects >= 3,
        "{:?} {:?}",
        a.stats(),
        b.stats()
    );
    assert_eq!(b.stats().refused_connections, 0);
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_reports_a_refused_peer_and_serves_the_next() {
    let p = pki();
    let listener: PipeListener = PipeListener::bind_tls("127.0.0.1:0", &server_tls(&p), config())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = tokio::spawn({
        let tls = client_tls(&p.ca.pem, None);
        async move { PipeHandler::connect_tls(addr, &tls, config(), Reconnect::OFF).await }
    });
    let e = listener.accept().await.err().expect("the refusal");
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("TLS: refused the peer"), "{e}");
    expect(
        refused.await.unwrap(),
        io::ErrorKind::ConnectionRefused,
        "CertificateRequired",
    );

    let good = client_tls(&p.ca.pem, Some(&p.client));
    let client = tokio::spawn(async move {
        PipeHandler::connect_tls(addr, &good, config(), Reconnect::OFF).await
    });
    let b = listener.accept().await.unwrap();
    echo(&b);
    let a: PipeHandler = client.await.unwrap().unwrap();
    ask(&a, b"next").await;
    a.stop();
    b.stop();
}

/// A client that connects and says nothing holds up no other peer: the TLS handshakes run
/// beside `accept`, so the good client that came after it is accepted first, and the
/// silent one is refused when its handshake times out (2 s), with the listener's reconnect
/// routing on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_does_not_hold_up_the_next_peers_handshake() {
    let p = pki();
    for policy in [Reconnect::ON, Reconnect::OFF] {
        let listener: PipeListener =
            PipeListener::bind_tls("127.0.0.1:0", &server_tls(&p), config())
                .await
                .unwrap()
                .reconnect(policy);
        let addr = listener.local_addr().unwrap();
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let good = client_tls(&p.ca.pem, Some(&p.client));
        let client = tokio::spawn(async move {
            PipeHandler::connect_tls(addr, &good, config(), Reconnect::OFF).await
        });
        let b = listener.accept().await.expect("the good client first");
        echo(&b);
        let a: PipeHandler = client.await.unwrap().unwrap();
        ask(&a, b"not held up").await;
        let e = listener
            .accept()
            .await
            .err()
            .expect("the silent one refused");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        a.stop();
        b.stop();
    }
}

/// A tokio client and a threaded server, both over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_talks_to_the_threaded_driver_over_tls() {
    let p = pki();
    let server = peerpipe_std::TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let addr = server.local_addr().unwrap();
    let b = peerpipe_std::PipeHandler::new(server, config()).unwrap();
    b.set_message_cb({
        let b = b.clone();
        move |m| {
            let _ = b.send_no_wait(m.reply_to(m.data().to_vec()).unwrap());
        }
    });
    b.start().unwrap();
    let tls = client_tls(&p.ca.pem, Some(&p.client));
    let a = PipeHandler::connect_tls(addr, &tls, config(), Reconnect::ON)
        .await
        .unwrap();
    ask(&a, &[7u8; 20_000]).await;
    a.stop();
    b.stop(true);
}
