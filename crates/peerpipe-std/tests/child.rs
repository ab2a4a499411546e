//! A child process over its stdin/stdout: `ChildTransport` in the parent, `StdioTransport` in
//! the worker.
//!
//! The worker is this very test binary, re-run as `<exe> --exact worker_entry --nocapture
//! --quiet` with `PEERPIPE_WORKER` set: [`worker_entry`] does nothing in a normal test run and
//! serves the parent when the variable is set. libtest itself prints a line or two to stdout
//! around the test ("running 1 test", the summary); those bytes reach the parent as garbage
//! on the wire, which the decoder skips (it resynchronises at the next frame delimiter):
//! `child_stdout_garbage_is_survived` checks that the garbage really is there.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use common::*;
#[cfg(unix)]
use peerpipe_std::Error;
use peerpipe_std::{
    ChildTransport, GoneReason, Item, Message, PipeHandler, Status, StdioTransport,
};

const WORKER_ENV: &str = "PEERPIPE_WORKER";
/// Bound on a large transfer in an unoptimized build on a loaded machine.
const LONG: Duration = Duration::from_secs(120);

/// The command that runs this binary as a worker.
fn worker_command() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "worker_entry", "--nocapture", "--quiet"])
        .env(WORKER_ENV, "1");
    cmd
}

/// The worker: answers `echo` and `pid` requests; never answers `hang` (says `hanging`); answers
/// a one-way `note` by asking the parent to echo it and sending it back as a `note`; answers
/// `big` (a length and a seed, 8 bytes each) with a one-way `big` of that many bytes of
/// [`pattern`].
#[test]
fn worker_entry() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    let h = PipeHandler::new(StdioTransport, config()).unwrap();
    h.start().unwrap();
    // Ends when the parent ends, goes or stays silent, or a send fails (the parent may stop
    // at any time).
    while let Some(item) = h.recv_timeout(Duration::from_secs(30)) {
        let m = match item {
            Item::Message(m) => m,
            Item::Status(_) => break,
        };
        let result = match m.topic() {
            "echo" => h
                .send_to_peer(m.reply_to(m.data().to_vec()).unwrap(), Some(LONG), None)
                .map(drop),
            "big" => {
                let word = |i: usize| u64::from_le_bytes(m.data()[i..i + 8].try_into().unwrap());
                let data = pattern(word(0) as usize, word(8));
                let big = Message::request("big", data).unwrap();
                h.send_to_peer(big, Some(LONG), None).map(drop)
            }
            "pid" => h
                .send_to_peer(
                    m.reply_to(std::process::id().to_le_bytes()).unwrap(),
                    None,
                    None,
                )
                .map(drop),
            "note" => {
                let req = Message::request("echo", m.data().to_vec()).unwrap();
                h.request(req, None, None).and_then(|echoed| {
                    assert_eq!(echoed.data(), m.data());
                    let note = Message::request("note", echoed.into_data()).unwrap();
                    h.send_to_peer(note, None, None).map(drop)
                })
            }
            "hang" => h
                .send_to_peer(Message::request("hanging", vec![]).unwrap(), None, None)
                .map(drop),
            _ => Ok(()),
        };
        if result.is_err() {
            break;
        }
    }
    h.stop(true);
    // The parent may have closed its end already: send libtest's closing summary nowhere
    // rather than fail on a broken pipe.
    #[cfg(unix)]
    {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        // SAFETY: dup2 onto this process's stdout; both descriptors are open.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) };
    }
}

/// A started parent handler on a fresh worker, and the worker's pid.
fn spawn_worker(config: peerpipe_std::Config) -> (PipeHandler, i32) {
    let h = PipeHandler::new(ChildTransport::new(worker_command()), config).unwrap();
    h.start().unwrap();
    let reply = h
        .request(Message::request("pid", vec![]).unwrap(), Some(STEP), None)
        .expect("the worker answers");
    let pid = u32::from_le_bytes(reply.data().try_into().expect("4 bytes"));
    (h, i32::try_from(pid).unwrap())
}

#[cfg(unix)]
fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this test spawned.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn child_process_end_to_end() {
    let transport = ChildTransport::new(worker_command());
    let exit = transport.exit_status();
    let parent = PipeHandler::new(transport, config()).unwrap();
    parent.start().unwrap();
    let notes = echo_server(&parent);
    // Parent to worker: request/reply.
    for data in payloads() {
        let reply = parent
            .request(
                Message::request("echo", data.clone()).unwrap(),
                Some(STEP),
                None,
            )
            .unwrap();
        assert_eq!(reply.data(), &data[..]);
    }
    // One-way both ways, and worker to parent request/reply (the worker asks the parent to
    // echo each note before sending it back).
    for i in 0..20u8 {
        let note = Message::request("note", vec![i; usize::from(i) * 300]).unwrap();
        parent.send_to_peer(note, Some(STEP), None).unwrap();
    }
    for i in 0..20u8 {
        let m = notes.recv_timeout(STEP).expect("note back");
        assert_eq!(m.data(), &vec![i; usize::from(i) * 300][..]);
    }
    parent.notify_end(b"done".to_vec()).unwrap();
    // The worker exits on END; its stdout closes.
    match next_status(&parent, STEP) {
        Status::Gone {
            reason: GoneReason::TransportLost,
            ..
        } => {}
        s => panic!("expected the worker's exit, got {s:?}"),
    }
    parent.stop(true);
    let status = exit.wait_timeout(STEP).expect("the worker was reaped");
    assert!(status.success(), "worker: {status}");
}

/// The garbage libtest prints is really on the worker's stdout, and the conversation
/// survives it (the first frame, which it prefixes, is dropped and resent).
#[test]
fn child_stdout_garbage_is_survived() {
    let out = worker_command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running 1 test"), "worker stdout: {text:?}");
    let (parent, _) = spawn_worker(config());
    let reply = parent
        .request(
            Message::request("echo", b"hi".to_vec()).unwrap(),
            Some(STEP),
            None,
        )
        .unwrap();
    assert_eq!(reply.data(), b"hi");
    parent.stop(true);
}

/// kill -9: the parent reports GONE at once, from the end of the worker's stdout (or its stdin,
/// when the parent happens to write first), with the transport's cause (the silence timeout is the long one of `config()`, so that a worker
/// starved of CPU by a busy machine is not taken for silent first); a request waiting for its
/// reply and later sends fail.
#[cfg(unix)]
#[test]
fn child_killed_is_gone() {
    let (parent, pid) = spawn_worker(config());
    let waiting = {
        let parent = parent.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = parent.request(
                Message::request("hang", vec![]).unwrap(),
                Some(Duration::from_secs(20)),
                None,
            );
            (r, t0.elapsed())
        })
    };
    // The worker says when it has the request; it never answers it.
    assert_eq!(next_message(&parent, STEP).topic(), "hanging");
    let t0 = Instant::now();
    signal(pid, libc::SIGKILL);
    match next_status(&parent, MARGIN) {
        Status::Gone {
            reason: GoneReason::TransportLost,
            cause: Some(cause),
        } => assert!(
            matches!(
                cause.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe
            ),
            "cause: {cause}"
        ),
        s => panic!("expected GONE, got {s:?}"),
    }
    assert!(t0.elapsed() < MARGIN);
    let (r, took) = waiting.join().unwrap();
    // The pending request fails with the broken pipe's own error, not only "peer gone".
    assert!(
        matches!(&r, Err(e @ Error::TransportLost(_)) if e.is_peer_gone()),
        "pending request: {r:?} after {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "pending request took {took:?}"
    );
    let err = parent
        .send_to_peer(Message::request("x", vec![]).unwrap(), Some(STEP), None)
        .unwrap_err();
    assert!(matches!(err, Error::TransportLost(_)), "{err}");
    parent.stop(true);
}

/// A frozen worker (SIGSTOP) keeps its pipes open: GONE comes from silence, after
/// heartbeat_timeout and within it plus a margin.
#[cfg(unix)]
#[test]
fn child_frozen_is_gone_by_silence() {
    let (parent, pid) = spawn_worker(gone_config());
    signal(pid, libc::SIGSTOP);
    let t0 = Instant::now();
    let status = next_status(&parent, GONE_AFTER + MARGIN);
    let took = t0.elapsed();
    signal(pid, libc::SIGKILL);
    assert_eq!(
        status,
        Status::Gone {
            reason: GoneReason::Silence,
            cause: None
        }
    );
    // The last frame may have come up to one heartbeat interval before the stop.
    assert!(took >= GONE_AFTER - Duration::from_millis(150), "{took:?}");
    parent.stop(true);
}

/// 16 MiB each way through the child's stdin and stdout.
#[test]
fn child_process_carries_sixteen_mib_each_way() {
    let (parent, _) = spawn_worker(config());
    let data = pattern(16 << 20, 3);
    let reply = parent
        .request(
            Message::request("echo", data.clone()).unwrap(),
            Some(LONG),
            None,
        )
        .expect("the echo of 16 MiB");
    assert!(reply.data() == &data[..], "the echo differs");
    parent.stop(true);
}

/// kill -9 while the worker sends a 64 MiB message: GONE, and no part of the message
/// reaches the parent's application.
#[cfg(unix)]
#[test]
fn child_killed_mid_message_delivers_no_part_of_it() {
    let (parent, pid) = spawn_worker(config());
    let mut ask = (64u64 << 20).to_le_bytes().to_vec();
    ask.extend(5u64.to_le_bytes());
    parent
        .send_to_peer(Message::request("big", ask).unwrap(), Some(STEP), None)
        .expect("asked");
    assert!(
        wait_until(LONG, || parent
            .progress()
            .receiving
            .is_some_and(|t| t.done >= 2 << 20)),
        "the message never started arriving"
    );
    signal(pid, libc::SIGKILL);
    match next_status(&parent, MARGIN) {
        Status::Gone {
            reason: GoneReason::TransportLost,
            ..
        } => {}
        s => panic!("expected GONE, got {s:?}"),
    }
    assert_eq!(parent.get_next(), None, "a message arrived");
    assert_eq!(
        parent.progress().receiving,
        None,
        "the partial message is dropped"
    );
    assert_eq!(parent.stats().queued_bytes, 0);
    parent.stop(true);
}
