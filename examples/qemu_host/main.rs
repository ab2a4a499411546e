//! Drives the `firmware/qemu-echo` firmware in QEMU with peerpipe-std over TCP: requests and
//! replies of several sizes, a burst of garbage bytes, END and ABORT both ways, GONE when QEMU
//! is killed, and the restart of a second QEMU run. Then messages of any size, through a core
//! endpoint driven straight over the connection: a 256 KiB request the firmware streams into
//! a CRC-32, a 64 KiB reply it generates from a source, a message cut off half way (its source
//! fails), and one over the firmware's `max_message`; payload throughput through the UART is
//! printed for both directions. A third QEMU run is driven by the async
//! driver, peerpipe-tokio, straight over the TCP connection: echo from concurrent tasks, END
//! from the firmware, GONE when QEMU is killed (one wire protocol for every driver). Prints
//! wire and throughput numbers. `cargo xtask qemu` builds the firmware for each board and runs this; by hand:
//!
//! ```text
//! (cd firmware/qemu-echo && cargo build --release --target thumbv6m-none-eabi)
//! cargo run --release -p peerpipe-examples --example qemu_host -- \
//!     firmware/qemu-echo/target/thumbv6m-none-eabi/release/echo [microbit]
//! ```
//!
//! The board (the QEMU machine) is `lm3s6965evb` (thumbv7m), `microbit` (thumbv6m) or `virt`
//! (riscv32imac); without the argument it follows the target named in the ELF's path.
//!
//! `firmware/qemu-embassy` (the same application on embassy, through peerpipe-embedded's
//! async driver; lm3s6965evb only) answers the same way and goes through the same checks:
//! `cargo xtask qemu` runs them against both.
//!
//! `qemu_host --stack ELF [BOARD]` instead drives the minimal firmware built with the feature
//! `stack-probe` (what `cargo xtask size` does): requests of every size, pipelined, garbage,
//! and requests in parts (answered with their CRC-32), then the request `stack`; prints
//! `stack=<bytes>`, its stack high-water mark.
//!
//! Wiring: this program listens for QEMU's `-serial tcp:` client on one port and runs a small
//! proxy between QEMU and the current `PipeHandler` (a `TcpTransport` it connects to). The
//! proxy lets the test inject garbage into the firmware's RX, replace the handler (END and
//! ABORT close a conversation for good), and keep the handler's connection while QEMU is
//! killed and started again.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::peerpipe_core::{self as ppc, wire, FailReason, MsgId, Outcome, PartKind};
use peerpipe_std::{Config, Item, Message, PipeHandler, Status, TcpTransport};

type Res<T> = Result<T, String>;

/// When the program started (for the time stamps of the progress lines).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A progress line, stamped with the seconds since the start.
macro_rules! say {
    ($($arg:tt)*) => {
        println!(
            "[{:6.2}] qemu-host: {}",
            START.get_or_init(Instant::now).elapsed().as_secs_f64(),
            format!($($arg)*)
        )
    };
}

/// Generous bounds: QEMU and the firmware may share two cores with a parallel build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(250),
        heartbeat_timeout: Duration::from_millis(3_000),
        resend_interval: Some(Duration::from_millis(300)),
        max_resends: None,
        default_request_timeout: Duration::from_millis(20_000),
        max_message: 0,
    }
}

mod board;
mod firmware;
mod proxy;
mod raw_peer;
mod stack;
mod stream;

use board::*;
use firmware::*;
use proxy::*;
use raw_peer::*;
use stack::*;
use stream::*;

/// Waits for a status matching `want`, skipping other items.
fn wait_status(h: &PipeHandler, what: &str, want: impl Fn(&Status) -> bool) -> Res<()> {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match h.recv_timeout(left) {
            Some(Item::Status(s)) if want(&s) => return Ok(()),
            Some(other) => seen.push(format!("{other:?}")),
            None => break,
        }
    }
    Err(format!(
        "no {what} within {STATUS_TIMEOUT:?} (saw {seen:?})"
    ))
}

fn check(cond: bool, what: &str) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

/// Bytes of one DATA frame on the wire for a payload of `len` (topic "echo"), from the core.
fn frame_len(len: usize) -> usize {
    use peerpipe_std::peerpipe_core::{Config as CoreConfig, Endpoint, Instant as CoreInstant};
    let now = CoreInstant::ZERO;
    let mut ep: Endpoint<512, 32, 4, 4, 700> = match Endpoint::new(CoreConfig::default(), 1, now) {
        Ok(ep) => ep,
        Err(_) => return 0,
    };
    let mut buf = [0u8; 700];
    // The first frame is the start-up heartbeat; DATA goes once the peer's capabilities
    // (its first heartbeat) are known.
    let _ = ep.poll_transmit(now, &mut buf);
    let Ok(mut peer) = Endpoint::<512, 32, 4, 4, 700>::new(CoreConfig::default(), 2, now) else {
        return 0;
    };
    if let Ok(Some(n)) = peer.poll_transmit(now, &mut buf) {
        ep.handle_bytes(now, &buf[..n]);
    }
    let msg = peerpipe_std::peerpipe_core::Message::request("echo", &vec![0xA5; len]);
    let Ok(msg) = msg else { return 0 };
    if ep.send(now, msg, None).is_err() {
        return 0;
    }
    ep.poll_transmit(now, &mut buf).ok().flatten().unwrap_or(0)
}

/// Waits for a status matching `want` from the async handler, skipping other items.
async fn async_status(
    h: &peerpipe_tokio::PipeHandler,
    what: &str,
    want: impl Fn(&Status) -> bool,
) -> Res<()> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(item) = h.recv().await {
            match item {
                Item::Status(s) if want(&s) => return true,
                other => seen.push(format!("{other:?}")),
            }
        }
        false
    };
    match tokio::time::timeout(STATUS_TIMEOUT, wait).await {
        Ok(true) => Ok(()),
        _ => Err(format!(
            "no {what} within {STATUS_TIMEOUT:?} (async; saw {seen:?})"
        )),
    }
}

fn run(board: Board, elf: &str) -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let proxy = Arc::new(Proxy::default());

    // ---- QEMU run 1
    let t0 = Instant::now();
    let mut qemu = spawn_qemu(board, elf, port)?;
    proxy.accept_qemu(&listener)?;
    let h1 = proxy.new_handler()?;
    let first = stats(&h1)?;
    say!(
        "firmware up in {:.2} s: {first:?}",
        t0.elapsed().as_secs_f64()
    );

    for len in [0usize, 1, 8, 64, 100, 128] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        echo(&h1, &data)?;
    }
    say!("echo of 0/1/8/64/100/128 B: ok");
    // A payload larger than the firmware's 128-byte frames arrives there in parts; the
    // firmware echoes at most 128 B and refuses it with `too-long`. (What it cannot take at
    // all, over its max_message, fails on the host at once: see the long messages below.)
    check(
        request(&h1, "echo", &[7u8; 129])? == b"too-long",
        "a 129-byte echo is refused with too-long (the firmware echoes 128 B at most)",
    )?;
    let short = noise(5000, 5);
    check(
        request(&h1, "crc", &short)? == crc32fast::hash(&short).to_le_bytes(),
        "the CRC-32 of a 5000-byte request (40 parts) through peerpipe-std",
    )?;
    say!("a 129-byte echo is refused with too-long; crc of 5000 B through peerpipe-std: ok");
    std_long(&h1)?;

    // Wire bytes per request/reply round trip, both directions, measured at the proxy.
    for len in [8usize, 64, 128] {
        let data = vec![0x5Au8; len];
        thread::sleep(Duration::from_millis(50));
        let rounds = 20;
        let (to0, from0) = proxy.bytes();
        for _ in 0..rounds {
            echo(&h1, &data)?;
        }
        let (to1, from1) = proxy.bytes();
        say!(
            "wire per {len} B request+reply (incl. ACKs, heartbeats): host->fw {:.1} B, fw->host {:.1} B",
            (to1 - to0) as f64 / rounds as f64,
            (from1 - from0) as f64 / rounds as f64
        );
    }
    for len in [8usize, 64, 128, 256] {
        say!(
            "DATA frame for a {len} B payload (topic \"echo\"): {} B on the wire ({:.0}% overhead)",
            frame_len(len),
            (frame_len(len) as f64 - len as f64) * 100.0 / len as f64
        );
    }

    // Throughput: 4 callers pipelining 128-byte requests.
    let per_thread = 50;
    let start = Instant::now();
    let errors: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let h = &h1;
                s.spawn(move || -> Res<()> {
                    for i in 0..per_thread {
                        let data: Vec<u8> = (0..128).map(|j| (i + j + t) as u8).collect();
                        echo(h, &data)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().unwrap().err())
            .collect()
    });
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    let secs = start.elapsed().as_secs_f64();
    let n = 4 * per_thread;
    say!(
        "throughput: {n} x 128 B request+reply in {secs:.2} s: {:.0} round trips/s, {:.1} KB/s payload each way",
        n as f64 / secs,
        n as f64 * 128.0 / secs / 1000.0
    );

    // Garbage: 4 KiB of noise straight into the firmware's RX, then business as usual.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    proxy.inject(&garbage)?;
    echo(&h1, b"after the garbage")?;
    let s = stats(&h1)?;
    check(s.dropped > 0, "the firmware counted dropped garbage frames")?;
    say!(
        "4 KiB of garbage survived; firmware dropped {} frames",
        s.dropped
    );

    // END from the firmware; it then starts a new conversation (new session).
    check(request(&h1, "end", b"")? == b"ok", "end acknowledged")?;
    wait_status(&h1, "END from the firmware", |s| {
        *s == Status::End(b"fw-end".to_vec())
    })?;
    wait_status(&h1, "PeerRestarted after END", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h1, b"new conversation")?;
    say!("END firmware->host, then a new conversation: ok");

    // ABORT from the firmware, likewise.
    check(request(&h1, "abort", b"")? == b"ok", "abort acknowledged")?;
    wait_status(&h1, "ABORT from the firmware", |s| {
        *s == Status::Abort(b"fw-abort".to_vec())
    })?;
    wait_status(&h1, "PeerRestarted after ABORT", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h1, b"again")?;
    say!("ABORT firmware->host, then a new conversation: ok");

    // END from the host: the firmware counts it; the next handler talks to its next session.
    h1.notify_end(b"host-end".to_vec())
        .map_err(|e| format!("notify_end: {e}"))?;
    h1.stop(true);
    let h2 = proxy.new_handler()?;
    let s = stats(&h2)?;
    check(s.ends == 1, "the firmware counted the host's END")?;
    h2.notify_abort(b"host-abort".to_vec())
        .map_err(|e| format!("notify_abort: {e}"))?;
    h2.stop(true);
    let h3 = proxy.new_handler()?;
    let s = stats(&h3)?;
    check(s.aborts == 1, "the firmware counted the host's ABORT")?;
    say!("END and ABORT host->firmware counted: {s:?}");
    let ratio = f64::from(s.uptime_ms) / t0.elapsed().as_millis() as f64;
    say!("firmware clock / host clock = {ratio:.2}");
    check(
        (0.5..1.5).contains(&ratio),
        "the firmware's clock runs at about real time",
    )?;

    // Kill QEMU: the host sees GONE (silence; the proxy keeps the handler's socket).
    drop(qemu);
    proxy.forget_qemu();
    let killed = Instant::now();
    wait_status(&h3, "GONE after QEMU was killed", |s| {
        matches!(s, Status::Gone { .. })
    })?;
    say!(
        "QEMU killed -> GONE after {:.2} s",
        killed.elapsed().as_secs_f64()
    );

    // ---- QEMU run 2: the same handler sees the firmware come back as a restart.
    qemu = spawn_qemu(board, elf, port)?;
    proxy.accept_qemu(&listener)?;
    wait_status(&h3, "PeerRestarted from the second QEMU run", |s| {
        *s == Status::PeerRestarted
    })?;
    echo(&h3, b"second boot")?;
    let s = stats(&h3)?;
    check(
        s.ends == 0 && s.requests == 2,
        "fresh counters after reboot",
    )?;
    say!("second QEMU run -> PeerRestarted, requests answered: ok");
    say!(
        "firmware stack high-water mark {} B ({}, stack painting)",
        s.stack_used,
        board.target()
    );
    h3.stop(true);

    // Messages of any size, through a core endpoint of the host's own (a new session: the
    // firmware sees a restart).
    stream_checks(&proxy)?;
    drop(qemu);

    // ---- QEMU run 3: the same firmware driven by the async driver (peerpipe-tokio).
    let qemu = spawn_qemu(board, elf, port)?;
    let stream = accept_qemu(&listener)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_tokio(stream, qemu))
}

/// Echo of several sizes from concurrent tasks, END from the firmware, GONE when QEMU is
/// killed: through peerpipe-tokio.
async fn run_tokio(stream: TcpStream, qemu: Qemu) -> Res<()> {
    use peerpipe_tokio::PipeHandler as AsyncHandler;

    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    let h: AsyncHandler = AsyncHandler::start(stream, config()).map_err(|e| e.to_string())?;
    let tasks: Vec<_> = (0..8usize)
        .map(|t| {
            let h = h.clone();
            tokio::spawn(async move {
                for len in [0usize, 1, 8, 64, 100, 128] {
                    let data: Vec<u8> = (0..len).map(|i| (i + t) as u8).collect();
                    let req = Message::request("echo", data.clone()).map_err(|e| e.to_string())?;
                    let reply = h
                        .request(req, Some(REQUEST_TIMEOUT))
                        .await
                        .map_err(|e| format!("async echo of {len} B: {e}"))?;
                    if !reply.data().iter().rev().eq(data.iter()) {
                        return Err(format!("async echo of {len} B came back wrong"));
                    }
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    say!("peerpipe-tokio: 8 tasks x echo of 0/1/8/64/100/128 B: ok");
    let ok = h
        .request(
            Message::request("end", Vec::new()).map_err(|e| e.to_string())?,
            Some(REQUEST_TIMEOUT),
        )
        .await
        .map_err(|e| format!("async end request: {e}"))?;
    check(ok.data() == b"ok", "end acknowledged")?;
    async_status(&h, "END from the firmware", |s| {
        *s == Status::End(b"fw-end".to_vec())
    })
    .await?;
    async_status(&h, "PeerRestarted after END", |s| {
        *s == Status::PeerRestarted
    })
    .await?;
    let req = Message::request("echo", b"new".to_vec()).map_err(|e| e.to_string())?;
    h.request(req, Some(REQUEST_TIMEOUT))
        .await
        .map_err(|e| format!("async echo after END: {e}"))?;
    say!("peerpipe-tokio: END firmware->host, then a new conversation: ok");
    drop(qemu);
    async_status(&h, "GONE after QEMU was killed", |s| {
        matches!(s, Status::Gone { .. })
    })
    .await?;
    say!("peerpipe-tokio: QEMU killed -> GONE: ok");
    h.stop();
    h.closed().await;
    Ok(())
}

const USAGE: &str = "usage: qemu_host [--stack] FIRMWARE_ELF [lm3s6965evb|microbit|virt]";

struct Args {
    /// Measure the stack of a `stack-probe` build instead of running the checks.
    stack: bool,
    elf: String,
    board: Board,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{Long, Short, Value, ValueExt};
    let (mut stack, mut elf, mut board) = (false, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("stack") => stack = true,
            Short('h') | Long("help") => return Ok(None),
            Value(v) if elf.is_none() => elf = Some(v.string()?),
            Value(v) if board.is_none() => board = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let elf = elf.ok_or("no FIRMWARE_ELF given")?;
    let board = Board::find(board.as_deref(), &elf)
        .ok_or("unknown board (give lm3s6965evb, microbit or virt)")?;
    Ok(Some(Args { stack, elf, board }))
}

fn main() -> ExitCode {
    let Args { stack, elf, board } = cli::parse_or_exit("qemu-host", USAGE, parse_args);
    let elf = &elf;
    let start = *START.get_or_init(Instant::now);
    say!(
        "board {} ({}), firmware {elf}",
        board.name(),
        board.target()
    );
    if stack {
        return match probe_stack(board, elf) {
            Ok(used) => {
                println!("stack={used}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qemu-host: FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(board, elf) {
        Ok(()) => {
            println!(
                "qemu-host: all checks passed in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qemu-host: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
