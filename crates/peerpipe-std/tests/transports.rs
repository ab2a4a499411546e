//! Every real transport end to end: request/reply and one-way messages both ways, then the
//! peer closing its end. (The child-process transport is in `child.rs`, Unix sockets and
//! serial ports over pseudo-terminals in `unix_transports.rs`.)

mod common;

use common::*;
use peerpipe_std::{
    memory_pair, Error, GoneReason, Message, PipeHandler, Reconnect, Status, TcpTransport,
};

#[test]
fn memory_pair_end_to_end() {
    let (a, b) = memory_pair();
    let (a, b) = start_pair(a, b, config());
    exercise(&a, &b);
    close_and_expect_gone(&a, &b);
}

#[test]
fn tcp_loopback_end_to_end() {
    // Without reconnection (`reconnect.rs` has it): a break is GONE at once.
    let server = TcpTransport::listen("127.0.0.1:0")
        .unwrap()
        .reconnect(Reconnect::OFF);
    let addr = server.local_addr().expect("listening address");
    let client = TcpTransport::connect(addr)
        .unwrap()
        .reconnect(Reconnect::OFF);
    let (a, b) = start_pair(client, server, config());
    exercise(&a, &b);
    close_and_expect_gone(&b, &a);
}

#[test]
fn tcp_connect_refused_is_gone_with_cause() {
    // A port that was free a moment ago: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = PipeHandler::new(TcpTransport::connect(addr).unwrap(), config()).unwrap();
    h.start().unwrap();
    match next_status(&h, STEP) {
        Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(cause),
        } => assert_eq!(
            cause.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "cause: {cause}"
        ),
        s => panic!("expected GONE with the connect error, got {s:?}"),
    }
    // The failing call names the refused connection too, not only the status.
    match h.send_to_peer(Message::request("x", vec![]).unwrap(), Some(STEP), None) {
        Err(Error::TransportLost(cause)) => {
            assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        r => panic!("expected the connect error, got {r:?}"),
    }
    h.stop(true);
}
