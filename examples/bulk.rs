//! One large message through two `peerpipe-std` handlers (or, with `--driver tokio`, two
//! `peerpipe-tokio` handlers at their default capacities on a two-thread runtime), against
//! a bare copy of the same bytes through the same kind of channel.
//!
//! ```text
//! cargo run --release -p peerpipe-examples --example bulk -- [--size 1G] [--transport memory|tcp|unix] [--driver std|tokio] [--tls]
//! ```
//!
//! Prints exactly one line on stdout (diagnostics go to stderr):
//!
//! ```text
//! transport=tcp size=1073741824 mb_per_s=.. raw_mb_per_s=.. peak_rss_mib=.. driver=std
//! ```
//!
//! - `mb_per_s`: one message of `size` bytes from one handler to the other in this process
//!   ([`PipeHandler::send_to_peer`], the receiver's [`PipeHandler::recv`]), in MB (10^6
//!   bytes) per second, from the call until both the receiving application has the whole
//!   message and the sender has its acknowledgement. The data is checked afterwards. For
//!   `tokio`, `memory` is a `tokio::io::duplex` of 64 KiB, `tcp` and `unix` tokio's
//!   sockets.
//! - `raw_mb_per_s`: the same number of bytes from one thread to another through the same
//!   kind of channel without peerpipe, into a buffer of the same size (a crossbeam channel
//!   of 64 KiB chunks for `memory`, what peerpipe's in-memory pair is; a loopback TCP
//!   connection; a Unix socket pair).
//! - `peak_rss_mib`: the process's peak resident memory (VmHWM, Linux; "n/a" elsewhere)
//!   after the peerpipe transfer and before the bare one. The program holds the message
//!   twice then (the sender's and the receiver's copy): the figure is that, plus the
//!   handlers' windows and buffers, plus the program itself.
//! - `--tls` (TCP): the same message once more, over TLS with mutual authentication
//!   (certificates made at start), after the plain TCP transfer; the line gains
//!   `tls_mb_per_s` and `tls_over_tcp` (TLS's rate over plain TCP's, in %).
//!
//! What bounds `mb_per_s` against the bare copy (callgrind, 16 MiB in memory, December 2026):
//! every byte is checksummed by both handlers (CRC-32C) and COBS-encoded and decoded. With
//! table-driven CRC the two handlers' I/O threads spent 12.1 instructions a byte (the CRC
//! about 5.5 of them); with the CPU's CRC instruction (the core's `hardware-crc`, which the
//! host drivers turn on) 7.7, where the bare copy spends a small fraction of one. What is
//! left (perf, in memory): on the sending I/O thread the CRC still leads, as the first to
//! read each fragment from memory, then COBS; on the receiving one, the kernel's page faults
//! on the message being put together (as many as the bare copy's reader takes) outweigh
//! decoding, the CRC and the copies; and neither thread is busy all the time (together 0.29
//! s of CPU in 0.335 s on two cores shared with other builds). Over sockets the two I/O
//! threads take turns more than they overlap: at a load of about 2, TCP and Unix transfers
//! used 88-100 % of one core in all (0.31-0.34 s of CPU in 0.31-0.37 s), the in-memory pair
//! up to 173 %. The receiver acknowledges about every second fragment (the stderr line
//! counts its ACKs: 32,681-34,815 for 65,536 DATA frames on each transport). Huge pages for that message
//! (`madvise`) were tried and made it slower on the test machine (memory 0.55-0.80 s
//! instead of 0.22-0.35 s). On that machine, busy with other builds, runs alternated with
//! the build before the CRC instruction (medians of 6 and 8 runs): memory 59.5-68.5 %
//! (before 38.5-50.5 %), TCP 58-58.5 % (48-50 %), Unix 46-50.5 % (30-38.5 %).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_examples::cli::Kind;
use peerpipe_std::{memory_pair, Config, Item, Message, PipeHandler, TcpTransport, Transport};

const USAGE: &str = "\
Usage: bulk [OPTIONS]

One message of SIZE bytes through two peerpipe handlers in one process, next to a bare copy of
as many bytes through the same kind of channel. Prints one line:
transport=.. size=.. mb_per_s=.. raw_mb_per_s=.. peak_rss_mib=.. driver=..

Options:
  --size SIZE     bytes, with an optional K, M or G (KiB, MiB, GiB)   (default 1G)
  --transport T   memory, tcp or unix                                (default memory)
  --driver D      std (threads) or tokio (async, default capacities) (default std)
  --tls           also over TLS (mutual authentication), next to plain TCP
                  (implies --transport tcp)
  -h, --help      print this help";

/// Bound on the transfer.
const TIMEOUT: Duration = Duration::from_secs(600);
/// Chunks of the bare in-memory copy.
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Args {
    kind: Kind,
    size: usize,
    /// peerpipe-tokio instead of peerpipe-std.
    tokio: bool,
    /// Also over TLS.
    tls: bool,
}

/// `64M`, `1G`, `4096`, `512K`: binary multiples.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: usize = digits
        .parse()
        .map_err(|e| format!("--size: {e}: {text:?}"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n <= peerpipe_std::MAX_PAYLOAD)
        .ok_or_else(|| format!("--size: at most {} bytes", peerpipe_std::MAX_PAYLOAD))
}

fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{Long, Short, ValueExt};
    let mut a = Args {
        kind: Kind::Memory,
        size: 1 << 30,
        tokio: false,
        tls: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("transport") => a.kind = cli::value(parser, "--transport")?,
            Long("size") => a.size = parse_size(&parser.value()?.string()?)?,
            Long("driver") => {
                a.tokio = match parser.value()?.string()?.as_str() {
                    "std" => false,
                    "tokio" => true,
                    other => return Err(format!("--driver: std or tokio, not {other}").into()),
                }
            }
            Long("tls") => a.tls = true,
            _ => return Err(arg.unexpected()),
        }
    }
    if a.tls {
        if a.kind == Kind::Unix {
            return Err("--tls runs over TCP: not with --transport unix".into());
        }
        a.kind = Kind::Tcp;
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = cli::parse_or_exit("bulk", USAGE, parse_args);
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bulk: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn run(args: &Args) -> Result<String, String> {
    let name = args.kind.name();
    let took = if args.tokio {
        through_tokio(args, None)?
    } else {
        through_peerpipe(args, None)?
    };
    let tls = match (args.tls, args.tokio) {
        (false, _) => None,
        (true, false) => Some(through_peerpipe(args, Some(&cli::tls_pair()))?),
        (true, true) => Some(through_tokio(args, Some(&cli::tls_pair()))?),
    };
    let peak = peak_rss_mib();
    let raw = bare_copy(args)?;
    let mb = |d: Duration| args.size as f64 / d.as_secs_f64() / 1e6;
    eprintln!(
        "bulk: {name}: peerpipe {:.3} s, bare {:.3} s: {:.0} % of the bare copy",
        took.as_secs_f64(),
        raw.as_secs_f64(),
        100.0 * raw.as_secs_f64() / took.as_secs_f64()
    );
    let tls = match tls {
        Some(t) => format!(
            " tls_mb_per_s={:.0} tls_over_tcp={:.0}%",
            mb(t),
            100.0 * took.as_secs_f64() / t.as_secs_f64()
        ),
        None => String::new(),
    };
    Ok(format!(
        "transport={name} size={} mb_per_s={:.0} raw_mb_per_s={:.0} peak_rss_mib={peak} driver={}{tls}",
        args.size,
        mb(took),
        mb(raw),
        if args.tokio { "tokio" } else { "std" }
    ))
}

// --- the data ----------------------------------------------------------------------------------

/// The byte at `i` of the message: a pattern with zeros in it (COBS has work to do), that
/// differs from one fragment to the next, and can be checked without a second copy.
fn byte_at(i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (i >> 13) as u8
}

fn make(size: usize) -> Vec<u8> {
    (0..size).map(byte_at).collect()
}

fn check(data: &[u8], size: usize) -> Result<(), String> {
    if data.len() != size {
        return Err(format!("received {} bytes, not {size}", data.len()));
    }
    match data.iter().enumerate().find(|&(i, &b)| b != byte_at(i)) {
        Some((i, _)) => Err(format!("byte {i} differs")),
        None => Ok(()),
    }
}

// --- peerpipe ----------------------------------------------------------------------------------

fn config() -> Config {
    Config {
        default_request_timeout: TIMEOUT,
        ..Config::default()
    }
}

/// TLS's two sides, for `--tls`.
type Tls = (peerpipe_std::TlsServer, peerpipe_std::TlsClient);

/// Two started handlers over the chosen transport (over TLS with `tls`, TCP only):
/// (sender, receiver).
fn pair(kind: Kind, tls: Option<&Tls>) -> Result<(PipeHandler, PipeHandler), String> {
    let (a, b): (Box<dyn TransportBox>, Box<dyn TransportBox>) = match kind {
        Kind::Tcp if tls.is_some() => {
            let (server, client) = tls.ok_or("no TLS")?;
            let listen = TcpTransport::listen_tls("127.0.0.1:0", server).map_err(err)?;
            let addr = listen.local_addr().ok_or("no local address")?;
            (
                Box::new(TcpTransport::connect_tls(addr, client).map_err(err)?),
                Box::new(listen),
            )
        }
        Kind::Memory => {
            let (a, b) = memory_pair();
            (Box::new(a), Box::new(b))
        }
        Kind::Tcp => {
            let server = TcpTransport::listen("127.0.0.1:0").map_err(err)?;
            let addr = server.local_addr().ok_or("no local address")?;
            (
                Box::new(TcpTransport::connect(addr).map_err(err)?),
                Box::new(server),
            )
        }
        Kind::Unix => {
            let path =
                std::env::temp_dir().join(format!("peerpipe-bulk-{}.sock", std::process::id()));
            let server = peerpipe_std::UnixTransport::listen(&path).map_err(err)?;
            (
                Box::new(peerpipe_std::UnixTransport::connect(&path)),
                Box::new(server),
            )
        }
    };
    Ok((a.handler()?, b.handler()?))
}

/// A transport that becomes a started handler.
trait TransportBox {
    fn handler(self: Box<Self>) -> Result<PipeHandler, String>;
}

impl<T: Transport> TransportBox for T {
    fn handler(self: Box<Self>) -> Result<PipeHandler, String> {
        let h = PipeHandler::new(*self, config()).map_err(err)?;
        h.start().map_err(err)?;
        Ok(h)
    }
}

/// Moves one message from one handler to the other; returns how long it took.
fn through_peerpipe(args: &Args, tls: Option<&Tls>) -> Result<Duration, String> {
    let (sender, receiver) = pair(args.kind, tls)?;
    let data = make(args.size);
    let msg = Message::request("bulk", data).map_err(err)?;
    let reader = std::thread::spawn({
        let receiver = receiver.clone();
        move || match receiver.recv_timeout(TIMEOUT) {
            Some(Item::Message(m)) => Ok((Instant::now(), m)),
            other => Err(format!("expected the message, got {other:?}")),
        }
    });
    let (t0, cpu0) = (Instant::now(), cpu_time());
    sender.send_to_peer(msg, Some(TIMEOUT), None).map_err(err)?;
    let acked = Instant::now();
    let (arrived, m) = reader.join().map_err(|_| "the reader panicked")??;
    let took = report(
        if tls.is_some() { "std over TLS" } else { "std" },
        t0,
        cpu0,
        acked,
        arrived,
        sender.stats(),
        receiver.stats(),
    );
    check(m.data(), args.size)?;
    drop(m);
    sender.stop(true);
    receiver.stop(true);
    Ok(took)
}

// --- peerpipe-tokio ---------------------------------------------------------------------------

/// [`through_peerpipe`] with two `peerpipe-tokio` handlers at their default capacities, on a
/// runtime of two worker threads.
fn through_tokio(args: &Args, tls: Option<&Tls>) -> Result<Duration, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err)?
        .block_on(tokio_transfer(args, tls))
}

/// Two started tokio handlers over the chosen transport (over TLS with `tls`, TCP only):
/// (sender, receiver).
async fn tokio_pair(
    kind: Kind,
    tls: Option<&Tls>,
) -> Result<(peerpipe_tokio::PipeHandler, peerpipe_tokio::PipeHandler), String> {
    use peerpipe_tokio::PipeHandler as Handler;
    fn start<S>(io: S) -> Result<Handler, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        Handler::start(io, config()).map_err(err)
    }
    match kind {
        Kind::Tcp if tls.is_some() => {
            let (server, client) = tls.ok_or("no TLS")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(err)?;
            let addr = listener.local_addr().map_err(err)?;
            let off = peerpipe_tokio::Reconnect::OFF;
            let (a, b) = tokio::join!(
                Handler::connect_tls(addr, client, config(), off),
                Handler::accept_tls(listener, server, config(), off)
            );
            Ok((a.map_err(err)?, b.map_err(err)?))
        }
        Kind::Memory => {
            let (a, b) = tokio::io::duplex(CHUNK);
            Ok((start(a)?, start(b)?))
        }
        Kind::Tcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(err)?;
            let addr = listener.local_addr().map_err(err)?;
            let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
            let (a, b) = (a.map_err(err)?, b.map_err(err)?.0);
            a.set_nodelay(true).map_err(err)?;
            b.set_nodelay(true).map_err(err)?;
            Ok((start(a)?, start(b)?))
        }
        Kind::Unix => {
            let (a, b) = tokio::net::UnixStream::pair().map_err(err)?;
            Ok((start(a)?, start(b)?))
        }
    }
}

async fn tokio_transfer(args: &Args, tls: Option<&Tls>) -> Result<Duration, String> {
    let (sender, receiver) = tokio_pair(args.kind, tls).await?;
    let msg = Message::request("bulk", make(args.size)).map_err(err)?;
    let reader = tokio::spawn({
        let receiver = receiver.clone();
        async move {
            match receiver.recv().await {
                Some(Item::Message(m)) => Ok((Instant::now(), m)),
                other => Err(format!("expected the message, got {other:?}")),
            }
        }
    });
    let (t0, cpu0) = (Instant::now(), cpu_time());
    sender.send_to_peer(msg, Some(TIMEOUT)).await.map_err(err)?;
    let acked = Instant::now();
    let (arrived, m) = reader.await.map_err(err)??;
    let took = report(
        if tls.is_some() {
            "tokio over TLS"
        } else {
            "tokio"
        },
        t0,
        cpu0,
        acked,
        arrived,
        sender.stats(),
        receiver.stats(),
    );
    check(m.data(), args.size)?;
    drop(m);
    sender.stop();
    receiver.stop();
    Ok(took)
}

// --- the bare copy -----------------------------------------------------------------------------

/// Copies `size` bytes from one thread to another through the same kind of channel, into a
/// buffer of that size; returns how long it took (from the first byte written to the last
/// read).
fn bare_copy(args: &Args) -> Result<Duration, String> {
    let data = make(args.size);
    let size = args.size;
    let cpu0 = cpu_time();
    let (took, got) = match args.kind {
        Kind::Memory => {
            let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(16);
            let reader = std::thread::spawn(move || {
                let mut got = Vec::with_capacity(size);
                while got.len() < size {
                    match rx.recv() {
                        Ok(chunk) => got.extend_from_slice(&chunk),
                        Err(_) => break,
                    }
                }
                (Instant::now(), got)
            });
            let t0 = Instant::now();
            for chunk in data.chunks(CHUNK) {
                tx.send(chunk.to_vec()).map_err(err)?;
            }
            let (end, got) = reader.join().map_err(|_| "the reader panicked")?;
            (end - t0, got)
        }
        Kind::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
            let w = TcpStream::connect(listener.local_addr().map_err(err)?).map_err(err)?;
            let (r, _) = listener.accept().map_err(err)?;
            stream_copy(r, w, &data)?
        }
        Kind::Unix => {
            let (r, w) = std::os::unix::net::UnixStream::pair().map_err(err)?;
            stream_copy(r, w, &data)?
        }
    };
    let cpu = cpu_time().saturating_sub(cpu0);
    eprintln!(
        "bulk: bare copy: {:.3} s, {:.2} s of CPU ({:.0} % of a core)",
        took.as_secs_f64(),
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / took.as_secs_f64()
    );
    if got.len() != size || got != data {
        return Err("the bare copy differs".into());
    }
    Ok(took)
}

fn stream_copy(
    r: impl Read + Send + 'static,
    mut w: impl Write,
    data: &[u8],
) -> Result<(Duration, Vec<u8>), String> {
    let size = data.len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(size);
        let r = r.take(size as u64).read_to_end(&mut got);
        (Instant::now(), r.map(|_| got))
    });
    let t0 = Instant::now();
    w.write_all(data).map_err(err)?;
    let (end, got) = reader.join().map_err(|_| "the reader panicked")?;
    Ok((end - t0, got.map_err(err)?))
}

/// The process's peak resident memory in MiB, or "n/a".
fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0}", kib as f64 / 1024.0))
        })
        .unwrap_or_else(|| "n/a".into())
}

/// CPU time this process used so far (user and system, every thread).
fn cpu_time() -> Duration {
    // SAFETY: getrusage(2) fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Prints the transfer's times, CPU and frame counts on stderr (the figures line goes to
/// stdout); returns the time until both the acknowledgement and the message had come.
fn report(
    driver: &str,
    t0: Instant,
    cpu0: Duration,
    acked: Instant,
    arrived: Instant,
    s: peerpipe_std::HandlerStats,
    r: peerpipe_std::HandlerStats,
) -> Duration {
    let took = acked.max(arrived) - t0;
    let cpu = cpu_time().saturating_sub(cpu0);
    eprintln!(
        "bulk: {driver}: acknowledged after {:.3} s, received after {:.3} s, {:.2} s of CPU ({:.0} % of a core); sender: {} DATA frames, {} resends; receiver: {} ACKs, {} refused",
        (acked - t0).as_secs_f64(),
        (arrived - t0).as_secs_f64(),
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / took.as_secs_f64(),
        s.core.data_sent,
        s.core.resends,
        r.core.acks_sent,
        r.core.refused_full,
    );
    took
}
