//! Unix-only transports end to end: Unix domain sockets, and a serial port over a pair of
//! pseudo-terminals.
#![cfg(unix)]

mod common;
#[path = "common/pty.rs"]
mod pty;

use std::fs::File;
use std::io;
use std::time::Instant;

use common::*;
use peerpipe_std::{Reconnect, SerialTransport, Status, UnixTransport};
use pty::open_pty;

#[test]
fn unix_socket_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peerpipe.sock");
    // Without reconnection (`reconnect.rs` has it): a break is GONE at once.
    let server = UnixTransport::listen(&path)
        .unwrap()
        .reconnect(Reconnect::OFF);
    let client = UnixTransport::connect(&path).reconnect(Reconnect::OFF);
    let (a, b) = start_pair(server, client, config());
    exercise(&a, &b);
    // The listening end removes its socket file once connected (with reconnection, it
    // keeps listening until the handler stops).
    assert!(!path.exists());
    close_and_expect_gone(&a, &b);
}

/// Copies bytes from one pty master to another until a read fails (EIO once every slave fd
/// is closed); says so on the returned channel.
fn bridge(mut from: File, mut to: File) -> crossbeam_channel::Receiver<()> {
    let (done, ended) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = done.send(());
    });
    ended
}

/// Two real `SerialTransport`s, each on the slave side of its own pseudo-terminal; the two
/// masters are bridged by copying threads, so the handlers talk through two tty line
/// disciplines exactly as over a null-modem cable. (A pty master has no path that the
/// `serialport` crate could open, hence two pairs and a bridge rather than one pair.)
#[test]
fn serial_over_pseudo_terminals_end_to_end() {
    let p1 = open_pty();
    let p2 = open_pty();
    let ended_12 = bridge(
        p1.master.try_clone().unwrap(),
        p2.master.try_clone().unwrap(),
    );
    let ended_21 = bridge(p2.master, p1.master);
    let (a, b) = start_pair(
        SerialTransport::new(p1.path.clone(), 115_200),
        SerialTransport::new(p2.path.clone(), 115_200),
        config(),
    );
    exercise(&a, &b);
    a.notify_end(b"bye".to_vec()).unwrap();
    assert_eq!(next_status(&b, STEP), Status::End(b"bye".to_vec()));

    // Stopping releases the ports: once our own slave fds are closed too, nothing holds the
    // slaves open and the masters read EIO, which ends the bridges.
    a.stop(true);
    b.stop(true);
    drop((p1.slave, p2.slave));
    let t0 = Instant::now();
    for ended in [ended_12, ended_21] {
        let left = STEP.saturating_sub(t0.elapsed());
        assert!(
            ended.recv_timeout(left).is_ok(),
            "a stopped handler still holds its serial port open"
        );
    }
}
