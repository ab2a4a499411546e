//! Unix-only transports end to end: Unix domain sockets, and a serial port over a pair of
//! pseudo-terminals.
#![cfg(unix)]

mod common;
#[path = "common/pty.rs"]
mod pty;

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use peerpipe_std::{Message, Reconnect, SerialTransport, Status, UnixTransport};
use pty::{open_pty, relink, Cable};

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

/// A serial port whose device disappears (its pseudo-terminal closed) and comes back under
/// the same path (a symlink to a new pseudo-terminal) while requests flow: the handler opens
/// the path again and the conversation goes on, every request answered.
#[test]
fn a_serial_port_that_disappears_and_comes_back_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyA");
    let (p1, p2) = (open_pty(), open_pty());
    relink(&p1.path, &link);
    let cable = Cable::new(&p1, &p2);
    let (a, b) = start_pair(
        SerialTransport::new(link.to_str().unwrap(), 115_200),
        SerialTransport::new(p2.path.clone(), 115_200),
        config(),
    );
    exercise(&a, &b);
    // Requests flow all along.
    let done = Arc::new(AtomicBool::new(false));
    let asking = {
        let (a, done) = (a.clone(), done.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) {
                let data = i.to_le_bytes().to_vec();
                let req = Message::request("echo", data.clone()).unwrap();
                let reply = a
                    .request(req, Some(STEP), None)
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(reply.data(), &data[..], "request {i}");
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Unplugged: the cable and the first pseudo-terminal are gone.
    cable.unplug();
    drop(p1);
    assert!(matches!(next_status(&a, STEP), Status::Reconnecting { .. }));
    // Plugged in again: a new device under the same path.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p1 = open_pty();
    let cable = Cable::new(&p1, &p2);
    relink(&p1.path, &link);
    assert_eq!(next_status(&a, STEP), Status::Reconnected);
    std::thread::sleep(std::time::Duration::from_millis(300));
    done.store(true, Ordering::SeqCst);
    let asked = asking.join().unwrap();
    assert!(asked > 10, "{asked} requests");
    exercise(&a, &b);
    assert_eq!(a.stats().reconnects, 1);
    assert!(b.get_next().is_none(), "b saw nothing but lost frames");
    a.stop(true);
    b.stop(true);
    cable.unplug();
}

/// Without reconnection, a serial port whose device disappears is GONE at once.
#[test]
fn without_reconnection_a_serial_port_that_disappears_is_gone() {
    let (p1, p2) = (open_pty(), open_pty());
    let cable = Cable::new(&p1, &p2);
    let (a, b) = start_pair(
        SerialTransport::new(p1.path.clone(), 115_200).reconnect(Reconnect::OFF),
        SerialTransport::new(p2.path.clone(), 115_200),
        config(),
    );
    exercise(&a, &b);
    cable.unplug();
    drop(p1);
    assert!(matches!(next_status(&a, STEP), Status::Gone { .. }));
    a.stop(true);
    b.stop(true);
}
