//! TLS over TCP: mutual authentication works; a client certificate signed by another CA, no
//! client certificate, a server this client does not trust and a client that speaks plain
//! TCP are each refused with a clear error, and the conversation going on at the listener
//! is untouched; TLS connections cut every 200 ms are replaced (a new handshake each) in the
//! same session.
#![cfg(all(feature = "tls", target_os = "linux"))]

#[path = "../../peerpipe-host/tests/support/certs.rs"]
mod certs;
mod common;
#[path = "../../peerpipe-host/tests/support/pki.rs"]
mod pki;
#[path = "common/proxy.rs"]
mod proxy;

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use peerpipe_std::{GoneReason, Message, PipeHandler, Reconnect, Status, TcpTransport, TlsClient};
use pki::{client_tls, pki, server_tls};
use proxy::{tcp_proxy, Fault};

/// A client that must fail to connect: its handler reports GONE with a cause of `kind`
/// whose text contains `says`.
fn expect_refused(transport: TcpTransport, kind: io::ErrorKind, says: &str) {
    let h = PipeHandler::new(transport.reconnect(Reconnect::OFF), config()).unwrap();
    h.start().unwrap();
    match next_status(&h, STEP) {
        Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(cause),
        } => {
            assert_eq!(cause.kind(), kind, "{cause}");
            assert!(cause.to_string().contains(says), "{cause}");
        }
        s => panic!("expected GONE for a refused connection, got {s:?}"),
    }
    h.stop(true);
}

#[test]
fn mutual_authentication_works_and_strangers_are_refused_without_disturbing_it() {
    let p = pki();
    let server = TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let addr = server.local_addr().unwrap();
    let client = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&p.client))).unwrap();
    let (a, b) = start_pair(client, server, config());
    exercise(&a, &b);

    // A client certificate from another authority: the server refuses it and says why.
    let other = certs::Ca::new("another CA");
    let stranger = other.issue(&["client"]);
    let t = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&stranger))).unwrap();
    expect_refused(
        t,
        io::ErrorKind::ConnectionRefused,
        "the peer refused this end",
    );
    // No client certificate.
    let t = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, None)).unwrap();
    expect_refused(t, io::ErrorKind::ConnectionRefused, "CertificateRequired");
    // A client that does not trust the server's authority refuses it.
    let t = TcpTransport::connect_tls(addr, &client_tls(&other.pem, Some(&p.client))).unwrap();
    expect_refused(t, io::ErrorKind::PermissionDenied, "UnknownIssuer");
    // A plain TCP peer: the server answers it with an alert and closes the connection.
    let plain = PipeHandler::new(
        TcpTransport::connect(addr)
            .unwrap()
            .reconnect(Reconnect::OFF),
        config(),
    )
    .unwrap();
    plain.start().unwrap();
    assert!(matches!(next_status(&plain, STEP), Status::Gone { .. }));
    plain.stop(true);

    assert!(
        wait_until(STEP, || b.stats().refused_connections == 4),
        "{:?}",
        b.stats()
    );
    let reply = a
        .request(
            Message::request("echo", b"still here".to_vec()).unwrap(),
            Some(STEP),
            None,
        )
        .unwrap();
    assert_eq!(reply.data(), b"still here");
    assert_eq!(a.stats().reconnects + b.stats().reconnects, 0);
    assert!(
        a.get_next().is_none() && b.get_next().is_none(),
        "nothing reported"
    );
    a.stop(true);
    b.stop(true);
}

#[test]
fn the_first_connection_of_a_tls_listener_waits_past_a_refused_one() {
    let p = pki();
    let server = TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let addr = server.local_addr().unwrap();
    let b = PipeHandler::new(server, config()).unwrap();
    b.start().unwrap();
    let t = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, None)).unwrap();
    expect_refused(t, io::ErrorKind::ConnectionRefused, "CertificateRequired");
    // Counted at once, while the listener still waits for its first peer.
    assert!(
        wait_until(STEP, || b.stats().refused_connections == 1),
        "{:?}",
        b.stats()
    );
    let client = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&p.client))).unwrap();
    let a = PipeHandler::new(client, config()).unwrap();
    a.start().unwrap();
    exercise(&a, &b);
    assert_eq!(b.stats().refused_connections, 1);
    a.stop(true);
    b.stop(true);
}

/// Requests through a proxy that cuts every connection every 200 ms: each cut is replaced by
/// a new connection with a new handshake, in the same session; every request is answered.
#[test]
fn cut_tls_connections_are_replaced_with_a_new_handshake() {
    let p = pki();
    let server = TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let (proxy, addr) = tcp_proxy(
        server.local_addr().unwrap(),
        Fault::Cut(Duration::from_millis(200)),
    );
    let client = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&p.client))).unwrap();
    let (a, b) = start_pair(client, server, config());
    let _notes = echo_server(&b);
    let mut i = 0u64;
    while proxy.cuts.load(Ordering::Relaxed) < 5 {
        let data = pattern(10_000, i);
        let reply = a
            .request(
                Message::request("echo", data.clone()).unwrap(),
                Some(STEP),
                None,
            )
            .unwrap();
        assert_eq!(reply.data(), &data[..], "request {i}");
        i += 1;
    }
    assert!(
        a.stats().reconnects >= 3 && b.stats().reconnects >= 3,
        "{:?}",
        a.stats()
    );
    assert_eq!(b.stats().refused_connections, 0);
    a.stop(true);
    b.stop(true);
}

#[test]
fn a_tls_pipe_listener_serves_good_peers_and_reports_a_refused_one() {
    let p = pki();
    let listener =
        peerpipe_std::PipeListener::bind_tls("127.0.0.1:0", &server_tls(&p), config()).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, None)).unwrap();
    let refused = std::thread::spawn(move || {
        expect_refused(t, io::ErrorKind::ConnectionRefused, "CertificateRequired")
    });
    let stranger = listener.accept().unwrap().unwrap();
    stranger.start().unwrap();
    match next_status(&stranger, STEP) {
        Status::Gone {
            cause: Some(cause), ..
        } => {
            assert_eq!(cause.kind(), io::ErrorKind::PermissionDenied, "{cause}");
            assert!(
                cause.to_string().contains("TLS: refused the peer"),
                "{cause}"
            );
        }
        s => panic!("expected GONE with the refusal, got {s:?}"),
    }
    refused.join().unwrap();
    let t = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&p.client))).unwrap();
    let a = PipeHandler::new(t, config()).unwrap();
    a.start().unwrap();
    let b = listener.accept().unwrap().unwrap();
    b.start().unwrap();
    exercise(&a, &b);
    a.stop(true);
    b.stop(true);
}

#[test]
fn a_server_of_another_name_is_refused() {
    let p = pki();
    let server = TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let addr = server.local_addr().unwrap();
    let b = PipeHandler::new(server, config()).unwrap();
    b.start().unwrap();
    let tls = TlsClient::new(p.ca.pem.as_bytes(), "elsewhere")
        .unwrap()
        .with_client_cert(p.client.cert_pem.as_bytes(), p.client.key_pem.as_bytes())
        .unwrap();
    let t = TcpTransport::connect_tls(addr, &tls).unwrap();
    expect_refused(
        t,
        io::ErrorKind::PermissionDenied,
        "certificate not valid for name",
    );
    b.stop(true);
}

/// Messages larger than the sockets' buffers: the TLS writer keeps what the socket does not
/// take and writes it once there is room, both ways at once.
#[test]
fn large_messages_cross_tls_both_ways_at_once() {
    let p = pki();
    let server = TcpTransport::listen_tls("127.0.0.1:0", &server_tls(&p)).unwrap();
    let addr = server.local_addr().unwrap();
    let client = TcpTransport::connect_tls(addr, &client_tls(&p.ca.pem, Some(&p.client))).unwrap();
    let (a, b) = start_pair(client, server, config());
    let sends: Vec<_> = [(&a, 1u64), (&b, 2)]
        .into_iter()
        .map(|(h, seed)| {
            let (h, data) = (h.clone(), pattern(8 << 20, seed));
            std::thread::spawn(move || {
                h.send_to_peer(Message::request("big", data).unwrap(), Some(STEP * 4), None)
            })
        })
        .collect();
    for s in sends {
        s.join().unwrap().unwrap();
    }
    assert_eq!(next_message(&b, STEP).data(), &pattern(8 << 20, 1)[..]);
    assert_eq!(next_message(&a, STEP).data(), &pattern(8 << 20, 2)[..]);
    a.stop(true);
    b.stop(true);
}
