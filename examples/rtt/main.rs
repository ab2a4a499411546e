//! Round-trip latency and throughput of `peerpipe-std`, against a bare ping-pong without it.
//!
//! ```text
//! cargo run --release --example rtt -- --transport memory|tcp|unix --count N --payload BYTES [--tls]
//! ```
//!
//! Prints exactly one line on stdout (diagnostics go to stderr):
//!
//! ```text
//! transport=memory count=2000 payload=64 rtt_p50_us=.. rtt_p99_us=.. raw_p50_us=.. msgs_per_s=.. raw_block_p50_us=.. raw_spin_p50_us=.. raw_msgs_per_s=.. window=32 pipelined_msgs_per_s=.. raw_pipelined_msgs_per_s=..
//! ```
//!
//! - `rtt`: two handlers in this process over the chosen transport. The client sends a request
//!   with [`PipeHandler::request`]; the server's message callback answers it with
//!   [`PipeHandler::send_no_wait`]; the client gets the reply matched by its id. One
//!   round trip at a time, `count` of them after a warm-up, each reply's data checked.
//! - `raw`: the same payload bounced between two threads over the same kind of transport
//!   without peerpipe (two crossbeam channels; two loopback sockets with `TCP_NODELAY`), once
//!   with blocking reads (`raw_block_p50_us`) and once polling, yielding the CPU between polls
//!   (`raw_spin_p50_us`); `raw_p50_us` is the faster of the two. Blocking costs a wake-up per
//!   message (tens of microseconds on an idle virtual machine, little on a busy one), polling
//!   does not: the handlers poll briefly before they sleep, so only the faster baseline makes
//!   an honest ratio. The round trips are interleaved with peerpipe's, in blocks, so that all
//!   see the same state of the machine.
//! - `msgs_per_s`: `threads` threads call [`PipeHandler::send_to_peer`] at once (each blocks
//!   until its message is acknowledged), `count` messages in all; the rate is messages handled
//!   by the receiving side's callback per second, from the first send until the last was
//!   received: the definition of `bench/nvflare_rtt.py`.
//! - `raw_msgs_per_s`: the same sends without peerpipe, whatever the transport: `threads`
//!   threads each hand a payload to a thread standing for the receiving handler, which hands
//!   the acknowledgement to one standing for the sending handler's I/O thread, which wakes
//!   the sender ([`peerpipe_examples::bare`]); measured just before `msgs_per_s`: the bound
//!   of a driver that makes these hand-offs per message.
//! - `pipelined_msgs_per_s`: one thread sends `count` messages with
//!   [`PipeHandler::send_pipelined`], keeping up to `window` (`--window`, default
//!   [`TX`](peerpipe_std::TX), the send slots) in flight: before each send beyond the
//!   window it waits for the oldest outcome. The rate is counted like `msgs_per_s`.
//! - `raw_pipelined_msgs_per_s`: the same pipeline of hand-offs without peerpipe (one
//!   producer keeping `window` payloads unacknowledged, a receiving thread, an acknowledging
//!   thread: [`peerpipe_examples::bare::pipelined_throughput`]), measured just before.
//! - `--tls` (TCP): a third pair of handlers over TLS with mutual authentication (certificates
//!   made at start), measured the same way, its round trips interleaved with the others;
//!   the line gains `tls_rtt_p50_us`, `tls_rtt_p99_us`, `tls_msgs_per_s` and `tls_over_tcp_p50`
//!   (TLS's p50 round trip over plain TCP's).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_examples::cli::Kind;
use peerpipe_std::{
    memory_pair, Config, Message, PipeHandler, Status, TcpTransport, UnixTransport,
};

mod pair;
mod raw;

use pair::*;
use raw::*;

const USAGE: &str = "\
Usage: rtt [OPTIONS]

Round trips and acknowledged one-way messages through two peerpipe handlers in one process,
next to a bare ping-pong over the same kind of transport.

Options:
  --transport T   memory, tcp or unix                          (default memory)
  --count N       round trips, and one-way messages            (default 2000)
  --payload B     payload bytes                                (default 64)
  --threads K     sender threads of the throughput phase       (default 16)
  --window W      sends one thread keeps in flight in the
                  pipelined throughput phase                   (default 32)
  --warmup W      round trips of each kind before measuring    (default 200)
  --tls           also over TLS (mutual authentication), next to plain TCP
                  (implies --transport tcp)
  -h, --help      print this help";

/// The round trips are measured in this many blocks, alternating raw and peerpipe.
const BLOCKS: usize = 10;
/// Bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    kind: Kind,
    count: usize,
    payload: usize,
    threads: usize,
    window: usize,
    warmup: usize,
    tls: bool,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut a = Args {
        kind: Kind::Memory,
        count: 2000,
        payload: 64,
        threads: 16,
        window: peerpipe_std::TX,
        warmup: 200,
        tls: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("transport") => a.kind = value(parser, "--transport")?,
            Long("count") => a.count = value(parser, "--count")?,
            Long("payload") => a.payload = value(parser, "--payload")?,
            Long("threads") => a.threads = value(parser, "--threads")?,
            Long("window") => a.window = value(parser, "--window")?,
            Long("warmup") => a.warmup = value(parser, "--warmup")?,
            Long("tls") => a.tls = true,
            _ => return Err(arg.unexpected()),
        }
    }
    if a.tls {
        if a.kind != Kind::Tcp && a.kind != Kind::Memory {
            return Err("--tls runs over TCP: not with --transport unix".into());
        }
        a.kind = Kind::Tcp;
    }
    if a.count == 0 || a.threads == 0 || a.window == 0 {
        return Err("--count, --threads and --window must be at least 1".into());
    }
    if a.payload > peerpipe_std::MAX_PAYLOAD {
        return Err(format!("--payload: at most {} bytes", peerpipe_std::MAX_PAYLOAD).into());
    }
    Ok(Some(a))
}

/// Nearest-rank percentile of sorted values, as bench/nvflare_rtt.py computes it.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[k]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A unique socket path in the temporary directory.
fn socket_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("peerpipe-rtt-{}-{tag}.sock", std::process::id()))
}

// --- the bare ping-pong ------------------------------------------------------------------------

struct Results {
    rtt: Vec<Duration>,
    /// The bare ping-pong, blocking in reads.
    raw_block: Vec<Duration>,
    /// The bare ping-pong, polling.
    raw_spin: Vec<Duration>,
    msgs_per_s: f64,
    /// The same sends' hand-offs between threads, without peerpipe.
    raw_msgs_per_s: f64,
    /// One thread keeping `window` sends in flight.
    pipelined_msgs_per_s: f64,
    /// The same pipeline of hand-offs, without peerpipe.
    raw_pipelined_msgs_per_s: f64,
    /// Round trips and messages per second over TLS (`--tls`).
    tls: Option<(Vec<Duration>, f64)>,
}

fn run(args: &Args) -> Result<Results, String> {
    let mut raws = [
        Raw::new(args.kind, args.payload, false)?,
        Raw::new(args.kind, args.payload, true)?,
    ];
    let pair = Pair::new(args.kind, args.payload, None)?;
    let tls = if args.tls {
        Some(Pair::new(Kind::Tcp, args.payload, Some(&cli::tls_pair()))?)
    } else {
        None
    };
    for i in 0..args.warmup {
        if let Some(tls) = &tls {
            tls.round_trip()
                .map_err(|e| format!("TLS warm-up round trip {i}: {e}"))?;
        }
        for raw in &mut raws {
            raw.round_trip()
                .map_err(|e| format!("raw warm-up round trip {i}: {e}"))?;
        }
        pair.round_trip()
            .map_err(|e| format!("warm-up round trip {i}: {e}"))?;
    }
    let mut rtt = Vec::with_capacity(args.count);
    let mut tls_rtt = Vec::with_capacity(args.count);
    let mut raw_rtt = [
        Vec::with_capacity(args.count),
        Vec::with_capacity(args.count),
    ];
    for block in 0..BLOCKS {
        let n = args.count / BLOCKS + usize::from(block < args.count % BLOCKS);
        for (raw, times) in raws.iter_mut().zip(&mut raw_rtt) {
            for i in 0..n {
                times.push(
                    raw.round_trip()
                        .map_err(|e| format!("raw round trip {i}: {e}"))?,
                );
            }
        }
        for i in 0..n {
            rtt.push(
                pair.round_trip()
                    .map_err(|e| format!("round trip {i}: {e}"))?,
            );
        }
        if let Some(tls) = &tls {
            for i in 0..n {
                tls_rtt.push(
                    tls.round_trip()
                        .map_err(|e| format!("TLS round trip {i}: {e}"))?,
                );
            }
        }
    }
    for raw in raws {
        raw.finish();
    }
    let raw_msgs_per_s =
        peerpipe_examples::bare::acked_throughput(args.count, args.threads, args.payload)?;
    let msgs_per_s = pair.throughput(args.count, args.threads)?;
    let raw_pipelined_msgs_per_s =
        peerpipe_examples::bare::pipelined_throughput(args.count, args.window, args.payload)?;
    let pipelined_msgs_per_s = pair.pipelined(args.count, args.window)?;
    pair.finish()?;
    let tls = match tls {
        Some(tls) => {
            let per_s = tls.throughput(args.count, args.threads)?;
            tls.finish()?;
            tls_rtt.sort();
            Some((tls_rtt, per_s))
        }
        None => None,
    };
    rtt.sort();
    let [mut raw_block, mut raw_spin] = raw_rtt;
    raw_block.sort();
    raw_spin.sort();
    Ok(Results {
        rtt,
        raw_block,
        raw_spin,
        msgs_per_s,
        raw_msgs_per_s,
        pipelined_msgs_per_s,
        raw_pipelined_msgs_per_s,
        tls,
    })
}

fn main() -> ExitCode {
    let args = cli::parse_or_exit("rtt", USAGE, parse_args);
    let started = Instant::now();
    let res = match run(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rtt: FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (p50, p99) = (percentile(&res.rtt, 50.0), percentile(&res.rtt, 99.0));
    let (block_p50, spin_p50) = (
        percentile(&res.raw_block, 50.0),
        percentile(&res.raw_spin, 50.0),
    );
    let raw = if block_p50 <= spin_p50 {
        &res.raw_block
    } else {
        &res.raw_spin
    };
    let raw_p50 = block_p50.min(spin_p50);
    eprintln!(
        "rtt: {} round trips, min {:.1} us, max {:.1} us; bare ping-pong p99 {:.1} us; \
         overhead p50 {:.2}x; {} sender threads; {:.2} s in all",
        res.rtt.len(),
        us(res.rtt[0]),
        us(res.rtt[res.rtt.len() - 1]),
        us(percentile(raw, 99.0)),
        us(p50) / us(raw_p50).max(1e-3),
        args.threads.min(args.count),
        started.elapsed().as_secs_f64(),
    );
    let tls = match &res.tls {
        Some((rtt, per_s)) => {
            let tls_p50 = percentile(rtt, 50.0);
            format!(
                " tls_rtt_p50_us={:.1} tls_rtt_p99_us={:.1} tls_msgs_per_s={per_s:.0} tls_over_tcp_p50={:.2}",
                us(tls_p50),
                us(percentile(rtt, 99.0)),
                us(tls_p50) / us(p50).max(1e-3),
            )
        }
        None => String::new(),
    };
    println!(
        "transport={} count={} payload={} rtt_p50_us={:.1} rtt_p99_us={:.1} raw_p50_us={:.1} msgs_per_s={:.0} raw_block_p50_us={:.1} raw_spin_p50_us={:.1} raw_msgs_per_s={:.0} window={} pipelined_msgs_per_s={:.0} raw_pipelined_msgs_per_s={:.0}{tls}",
        args.kind.name(),
        args.count,
        args.payload,
        us(p50),
        us(p99),
        us(raw_p50),
        res.msgs_per_s,
        us(block_p50),
        us(spin_p50),
        res.raw_msgs_per_s,
        args.window,
        res.pipelined_msgs_per_s,
        res.raw_pipelined_msgs_per_s,
    );
    ExitCode::SUCCESS
}
