//! The parent/worker pattern of NVFlare's `PipeHandler`: a parent process spawns a worker and
//! exchanges requests and replies with it over the worker's stdin and stdout.
//!
//! ```text
//! cargo run --release --example ping_pong [-- --count N]
//! ```
//!
//! The parent re-runs this same program with `--worker` as its child ([`ChildTransport`]); the
//! worker talks over its own stdin/stdout ([`StdioTransport`]) and logs to stderr only. For
//! each payload size the parent sends `count` requests one at a time; the worker answers each
//! with the data reversed, and the parent checks every reply. Then the parent sends END: the
//! worker sees it and exits with status 0, and the parent reports the worker's exit status.
//! Any mismatch, failure or non-zero exit makes the parent exit non-zero.
//!
//! Per payload size it prints: round trips, p50/p99/max round-trip time in µs, and messages
//! per second (requests and replies, both directions).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::{
    ChildTransport, Config, GoneReason, Item, Message, PipeHandler, Status, StdioTransport,
};

const USAGE: &str = "\
Usage: ping_pong [--count N]

Spawns this program again as a worker and exchanges N request/reply round trips with it
over the worker's stdin/stdout for each of a few payload sizes, then ends the conversation.

Options:
  --count N   round trips per payload size (default 1000)
  --worker    run as the worker (the parent passes it)
  -h, --help  print this help";

/// Payload sizes exchanged, in bytes.
const SIZES: [usize; 4] = [16, 256, 2048, 8192];
/// Bound on every wait.
const STEP: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        default_request_timeout: STEP,
        ..Config::default()
    }
}

struct Args {
    count: usize,
    worker: bool,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut args = Args {
        count: 1000,
        worker: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("worker") => args.worker = true,
            Long("count") => match value(parser, "--count")? {
                0 => return Err("--count needs a positive number".into()),
                n => args.count = n,
            },
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let Args { count, worker } = cli::parse_or_exit("ping_pong", USAGE, parse_args);
    let result = if worker {
        run_worker()
    } else {
        run_parent(count)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let who = if worker { "worker" } else { "parent" };
            eprintln!("ping_pong {who}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The worker: answers every `ping` with its data reversed, until END.
fn run_worker() -> Result<(), String> {
    let handler = PipeHandler::new(StdioTransport, config()).map_err(|e| e.to_string())?;
    handler.set_message_cb({
        let handler = handler.clone();
        move |req: Message| {
            let mut data = req.data().to_vec();
            data.reverse();
            let sent = Message::reply("pong", data, req.id())
                .and_then(|reply| handler.send_no_wait(reply));
            if let Err(e) = sent {
                eprintln!("ping_pong worker: cannot reply: {e}");
            }
        }
    });
    handler.start().map_err(|e| e.to_string())?;
    eprintln!("ping_pong worker: pid {} ready", std::process::id());
    // Everything but messages comes through the queue: wait for END.
    let outcome = loop {
        match handler.recv() {
            Some(Item::Status(Status::End(data))) => {
                eprintln!(
                    "ping_pong worker: END from the parent ({:?}), exiting",
                    String::from_utf8_lossy(&data)
                );
                break Ok(());
            }
            Some(Item::Status(Status::PeerRestarted)) => continue,
            Some(Item::Status(other)) => break Err(format!("unexpected status {other:?}")),
            Some(Item::Message(m)) => break Err(format!("unexpected message on {}", m.topic())),
            None => break Err("handler stopped".into()),
        }
    };
    handler.stop(true);
    outcome
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[k]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The parent: spawns the worker, runs the round trips, ends the conversation.
fn run_parent(count: usize) -> Result<(), String> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut command = Command::new(exe);
    command.arg("--worker");
    let transport = ChildTransport::new(command);
    let worker_exit = transport.exit_status();
    let handler = PipeHandler::new(transport, config()).map_err(|e| e.to_string())?;
    handler.start().map_err(|e| e.to_string())?;

    let result = exchange(&handler, count);
    // END in any case, so that the worker exits; then wait for it to close its end.
    let ended = handler.notify_end(b"bye".to_vec());
    let gone = wait_for_gone(&handler);
    handler.stop(true);
    let status = worker_exit.wait_timeout(STEP);

    result?;
    ended.map_err(|e| format!("notify_end: {e}"))?;
    gone?;
    match status {
        Some(s) if s.success() => {
            println!(
                "worker exited: {s}; {} round trips in {:.2} s in all",
                count * SIZES.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(s) => Err(format!("the worker exited with {s}")),
        None => Err("the worker's exit status is unknown".into()),
    }
}

/// `count` round trips for each payload size, each reply checked; prints the statistics.
fn exchange(handler: &PipeHandler, count: usize) -> Result<(), String> {
    // A few round trips first: the worker process starts up, the code paths warm up.
    for i in 0..20u8 {
        let reply = handler
            .request(
                Message::request("ping", vec![i]).map_err(|e| e.to_string())?,
                Some(STEP),
                None,
            )
            .map_err(|e| format!("warm-up round trip {i}: {e}"))?;
        if reply.data() != [i] {
            return Err(format!("warm-up round trip {i}: wrong reply"));
        }
    }
    for size in SIZES {
        let mut times = Vec::with_capacity(count);
        let phase = Instant::now();
        for i in 0..count {
            let data: Vec<u8> = (0..size).map(|j| (i + j * 31) as u8).collect();
            let req = Message::request("ping", data.clone()).map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let reply = handler
                .request(req, Some(STEP), None)
                .map_err(|e| format!("payload {size}, round trip {i}: {e}"))?;
            times.push(t0.elapsed());
            let reversed = data.iter().rev().eq(reply.data().iter());
            if reply.topic() != "pong" || !reversed {
                return Err(format!(
                    "payload {size}, round trip {i}: wrong reply ({} bytes on {})",
                    reply.data().len(),
                    reply.topic()
                ));
            }
        }
        let wall = phase.elapsed();
        times.sort();
        println!(
            "payload={size} count={count} p50_us={:.1} p99_us={:.1} max_us={:.1} msgs_per_s={:.0}",
            us(percentile(&times, 50.0)),
            us(percentile(&times, 99.0)),
            us(times[times.len() - 1]),
            (2 * count) as f64 / wall.as_secs_f64(),
        );
    }
    Ok(())
}

/// After END: the worker exits, and its stdout closes (GONE, transport lost).
fn wait_for_gone(handler: &PipeHandler) -> Result<(), String> {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match handler.recv_timeout(left) {
            Some(Item::Status(Status::Gone {
                reason: GoneReason::TransportLost,
                ..
            })) => return Ok(()),
            Some(Item::Status(Status::PeerRestarted)) => {}
            Some(other) => return Err(format!("while waiting for the worker to exit: {other:?}")),
            None => return Err("the worker did not exit after END".into()),
        }
    }
}
