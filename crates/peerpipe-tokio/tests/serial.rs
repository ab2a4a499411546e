//! A serial port as the transport (feature `serial`): two async handlers, each on the slave
//! side of its own pseudo-terminal, the two masters bridged by copying threads, as over a
//! null-modem cable.
#![cfg(all(feature = "serial", unix))]

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::time::Duration;

use peerpipe_tokio::{open_serial, Config, Item, Message, PipeHandler, Status};

/// A pseudo-terminal in raw mode: the master, and the slave's path (the slave fd stays open
/// so that the master does not read EIO before the port opens).
struct Pty {
    master: File,
    _slave: File,
    path: String,
}

fn open_pty() -> Pty {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: out-pointers to two ints; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            // `*mut` where Linux takes `*const` and macOS `*mut`: null either way.
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: fd is an open terminal; `t` is a plain C struct filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut t), 0);
            libc::cfmakeraw(&mut t);
            assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &t), 0);
        }
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the buffer and its length match.
    assert_eq!(
        unsafe { libc::ttyname_r(slave, name.as_mut_ptr(), name.len()) },
        0
    );
    // SAFETY: ttyname_r wrote a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: openpty gave us these fds; each File takes sole ownership of one.
    let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
    Pty {
        master,
        _slave: slave,
        path,
    }
}

fn bridge(mut from: File, mut to: File) {
    std::thread::spawn(move || io::copy(&mut from, &mut to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_end_over_serial_ports() {
    let (p1, p2) = (open_pty(), open_pty());
    bridge(
        p1.master.try_clone().unwrap(),
        p2.master.try_clone().unwrap(),
    );
    bridge(
        p2.master.try_clone().unwrap(),
        p1.master.try_clone().unwrap(),
    );
    let config = Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_secs(10),
        resend_interval: Some(Duration::from_millis(500)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(20),
    };
    let a: PipeHandler =
        PipeHandler::start(open_serial(&p1.path, 115_200).unwrap(), config).unwrap();
    let b: PipeHandler =
        PipeHandler::start(open_serial(&p2.path, 115_200).unwrap(), config).unwrap();
    let server = tokio::spawn(async move {
        while let Some(item) = b.recv().await {
            match item {
                Item::Message(req) => {
                    let reply = req.reply_to(req.data().to_vec()).unwrap();
                    b.send_to_peer(reply, None).await.unwrap();
                }
                Item::Status(s) => return s,
            }
        }
        panic!("stream ended without a status");
    });
    for size in [0usize, 1, 64, 1000, 8192] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let reply = a
            .request(Message::request("serial", data.clone()).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(reply.data(), data);
    }
    a.notify_end(b"bye".to_vec(), None).await.unwrap();
    assert_eq!(server.await.unwrap(), Status::End(b"bye".to_vec()));
}
