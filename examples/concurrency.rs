//! Many concurrent requesters on one pipe (issue 17): requests/s and the slowest request,
//! for the threaded driver, the async driver and a bare baseline, in one run.
//!
//! ```text
//! cargo run --release -p peerpipe-examples --example concurrency -- [--requesters N] [--requests M] [--payload B]
//! ```
//!
//! Prints one line per driver on stdout (diagnostics go to stderr):
//!
//! ```text
//! driver=std requesters=64 requests=32000 req_per_s=.. slowest_ms=.. p99_ms=.. p50_ms=.. resends=.. refused_full=.. late_replies=..
//! ```
//!
//! (`resends` and `refused_full` count both ends; with the ACK's retry flag a refused frame
//! goes again as soon as the peer has room, so resends here cost microseconds, not the 2 s
//! resend interval.)
//!
//! - `std`: two `peerpipe-std` handlers over TCP on localhost. `N` threads each make `M`
//!   echo requests with [`PipeHandler::request`] (one at a time per thread); the echo
//!   peer replies from its message callback with `send_no_wait`.
//! - `tokio`: two `peerpipe-tokio` handlers over TCP on localhost, on a multi-thread
//!   runtime. `N` tasks each make `M` echo requests with `request(..).await`; the echo peer
//!   is one task reading the handler's queue and replying with `send_no_wait` (falling back
//!   to `send_to_peer(..).await` when every send slot is taken), with the crate's default
//!   capacities (8 receive and 8 send slots).
//! - `tokio-32-slots`: the same with 32 + 32 slots (peerpipe-std has 32 send slots): the like-with-
//!   like comparison with `std`.
//! - `bare`: no peerpipe, the same load over one TCP connection: length-prefixed frames with
//!   a request id, a writer shared behind a mutex, a reader thread handing each reply to its
//!   requester, and an echo thread on the other end. What a minimal multiplexer costs here.
//!
//! Both peerpipe drivers use the default configuration (resends after 2 s), except a
//! generous silence timeout and a 30 s request timeout: a stall waiting for a resend shows
//! as a slowest request of about 2 s. Every reply's data is checked. The figures are
//! wall-clock times from the first request to the last reply; latencies are per request.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::{Config, HandlerStats, Message, PipeHandler, TcpTransport};

const USAGE: &str = "\
Usage: concurrency [OPTIONS]

Concurrent echo requests through one pipe: peerpipe-std, peerpipe-tokio and a bare baseline.

Options:
  --requesters N  concurrent requesters (threads or tasks)      (default 64)
  --requests M    requests per requester                        (default 500)
  --payload B     payload bytes, at most 8192                   (default 64)
  -h, --help      print this help";

/// Bound on every request.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Args {
    requesters: usize,
    requests: usize,
    payload: usize,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut args = Args {
        requesters: 64,
        requests: 500,
        payload: 64,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("requesters") => args.requesters = value::<usize>(parser, "--requesters")?.max(1),
            Long("requests") => args.requests = value::<usize>(parser, "--requests")?.max(1),
            Long("payload") => match value(parser, "--payload")? {
                n if n <= peerpipe_std::MAX_PAYLOAD => args.payload = n,
                _ => return Err(format!("--payload: at most {}", peerpipe_std::MAX_PAYLOAD).into()),
            },
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

fn config() -> Config {
    Config {
        // A loaded 2-core machine must never see the peer as gone mid-run.
        heartbeat_timeout: Duration::from_secs(60),
        default_request_timeout: TIMEOUT,
        ..Config::default()
    }
}

/// The payload of requester `r`'s request `i`: distinct, so a mixed-up reply shows.
fn payload(args: Args, r: usize, i: usize) -> Vec<u8> {
    (0..args.payload)
        .map(|k| (k + r * 31 + i * 7) as u8)
        .collect()
}

/// One driver's figures.
struct Report {
    elapsed: Duration,
    latencies: Vec<Duration>,
    extra: String,
}

fn print(driver: &str, args: Args, mut r: Report) {
    r.latencies.sort_unstable();
    let n = r.latencies.len();
    let at = |q: usize| {
        r.latencies
            .get((n * q / 100).min(n - 1))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "driver={driver} requesters={} requests={n} req_per_s={:.0} slowest_ms={:.1} p99_ms={:.2} p50_ms={:.3}{}",
        args.requesters,
        n as f64 / r.elapsed.as_secs_f64(),
        ms(r.latencies.last().copied().unwrap_or_default()),
        ms(at(99)),
        ms(at(50)),
        r.extra,
    );
}

/// Releases the requester threads waiting at `start` and collects their latencies: the
/// wall time from the release to the last reply, and every request's latency.
fn timed_join(
    start: &Barrier,
    threads: Vec<std::thread::JoinHandle<Result<Vec<Duration>, String>>>,
) -> Result<(Duration, Vec<Duration>), String> {
    start.wait();
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    for t in threads {
        latencies.extend(t.join().map_err(|_| "a requester panicked")??);
    }
    Ok((t0.elapsed(), latencies))
}

/// The counters that explain a slow run: resends (both ends), frames refused for a full
/// queue, late replies.
fn counters(client: &HandlerStats, server: &HandlerStats) -> String {
    format!(
        " resends={} refused_full={} late_replies={}",
        client.core.resends + server.core.resends,
        client.core.refused_full + server.core.refused_full,
        client.late_replies,
    )
}

// --- peerpipe-std --------------------------------------------------------------------------

fn run_std(args: Args) -> Result<Report, String> {
    let listen = TcpTransport::listen("127.0.0.1:0").map_err(err)?;
    let addr = listen.local_addr().ok_or("no local address")?;
    let client =
        PipeHandler::new(TcpTransport::connect(addr).map_err(err)?, config()).map_err(err)?;
    let server = PipeHandler::new(listen, config()).map_err(err)?;
    server.set_message_cb({
        let server = server.clone();
        move |req: Message| {
            let r = req.reply_to(req.data().to_vec());
            if let Err(e) = r.and_then(|r| server.send_no_wait(r)) {
                eprintln!("std echo: {e}");
            }
        }
    });
    // The listening end first: its transport accepts on its I/O thread.
    server.start().map_err(err)?;
    client.start().map_err(err)?;
    let warm = Message::request("echo", b"warm".to_vec()).map_err(err)?;
    client.request(warm, Some(TIMEOUT), None).map_err(err)?;

    let start = Arc::new(Barrier::new(args.requesters + 1));
    let threads: Vec<_> = (0..args.requesters)
        .map(|r| {
            let (client, start) = (client.clone(), start.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut lat = Vec::with_capacity(args.requests);
                start.wait();
                for i in 0..args.requests {
                    let data = payload(args, r, i);
                    let req = Message::request("echo", data.clone()).map_err(err)?;
                    let t0 = Instant::now();
                    let reply = client
                        .request(req, Some(TIMEOUT), None)
                        .map_err(|e| format!("std request {r}/{i}: {e}"))?;
                    lat.push(t0.elapsed());
                    if reply.data() != data.as_slice() {
                        return Err(format!("std request {r}/{i}: wrong reply"));
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let (elapsed, latencies) = timed_join(&start, threads)?;
    let extra = counters(&client.stats(), &server.stats());
    client.stop(true);
    server.stop(true);
    Ok(Report {
        elapsed,
        latencies,
        extra,
    })
}

// --- peerpipe-tokio ------------------------------------------------------------------------

/// peerpipe-tokio with its default capacities (8 receive and 8 send slots).
fn run_tokio(args: Args) -> Result<Report, String> {
    run_tokio_with::<{ peerpipe_tokio::DEFAULT_SLOTS }>(args)
}

/// peerpipe-tokio with 32 + 32 slots (peerpipe-std's send slots; its 4 receive slots hold
/// 8 KiB fragments of messages of any size): like with like.
fn run_tokio_std_slots(args: Args) -> Result<Report, String> {
    run_tokio_with::<{ peerpipe_std::TX }>(args)
}

fn run_tokio_with<const SLOTS: usize>(args: Args) -> Result<Report, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    rt.block_on(tokio_load::<SLOTS>(args))
}

async fn tokio_load<const SLOTS: usize>(args: Args) -> Result<Report, String> {
    use peerpipe_tokio::{Error, Item, DEFAULT_FRAGMENT as P, DEFAULT_TOPIC as T};
    type PipeHandler<const S: usize> = peerpipe_tokio::PipeHandler<P, T, S, S>;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (c, s) = (c.map_err(err)?, s.map_err(err)?.0);
    c.set_nodelay(true).map_err(err)?;
    s.set_nodelay(true).map_err(err)?;
    let client = PipeHandler::<SLOTS>::start(c, config()).map_err(err)?;
    let server = PipeHandler::<SLOTS>::start(s, config()).map_err(err)?;

    let echo = tokio::spawn({
        let server = server.clone();
        async move {
            while let Some(item) = server.recv().await {
                let Item::Message(req) = item else { continue };
                let Ok(reply) = req.reply_to(req.data().to_vec()) else {
                    continue;
                };
                let r = match server.send_no_wait(reply) {
                    // Refused, not sent: build the reply again and wait for a slot.
                    Err(Error::QueueFull) => match req.reply_to(req.data().to_vec()) {
                        Ok(reply) => server.send_to_peer(reply, None).await.map(drop),
                        Err(e) => Err(e),
                    },
                    r => r.map(drop),
                };
                if let Err(e) = r {
                    eprintln!("tokio echo: {e}");
                    break;
                }
            }
        }
    });
    let warm = Message::request("echo", b"warm".to_vec()).map_err(err)?;
    client.request(warm, Some(TIMEOUT)).await.map_err(err)?;

    let t0 = Instant::now();
    let tasks: Vec<_> = (0..args.requesters)
        .map(|r| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(args.requests);
                for i in 0..args.requests {
                    let data = payload(args, r, i);
                    let req = Message::request("echo", data.clone()).map_err(err)?;
                    let t = Instant::now();
                    let reply = client
                        .request(req, Some(TIMEOUT))
                        .await
                        .map_err(|e| format!("tokio request {r}/{i}: {e}"))?;
                    lat.push(t.elapsed());
                    if reply.data() != data.as_slice() {
                        return Err(format!("tokio request {r}/{i}: wrong reply"));
                    }
                }
                Ok::<_, String>(lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(err)??);
    }
    let elapsed = t0.elapsed();
    let extra = counters(&client.stats(), &server.stats());
    client.stop();
    server.stop();
    echo.abort();
    Ok(Report {
        elapsed,
        latencies,
        extra,
    })
}

// --- bare ----------------------------------------------------------------------------------

/// Writes one frame: length (4 bytes), request id (8 bytes), data.
fn write_frame(w: &mut impl Write, id: u64, data: &[u8]) -> std::io::Result<()> {
    w.write_all(&(data.len() as u32).to_le_bytes())?;
    w.write_all(&id.to_le_bytes())?;
    w.write_all(data)
}

fn read_frame(r: &mut impl Read) -> std::io::Result<(u64, Vec<u8>)> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head)?;
    let (len, id) = head.split_at(4);
    let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
    let id = u64::from_le_bytes(id.try_into().unwrap_or_default());
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok((id, data))
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>;

fn run_bare(args: Args) -> Result<Report, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let client = TcpStream::connect(listener.local_addr().map_err(err)?).map_err(err)?;
    let server = listener.accept().map_err(err)?.0;
    client.set_nodelay(true).map_err(err)?;
    server.set_nodelay(true).map_err(err)?;

    // The echo peer: reads frames, writes them back, flushing when no input is buffered.
    let echo_in = server.try_clone().map_err(err)?;
    std::thread::spawn(move || {
        let mut r = BufReader::new(echo_in);
        let mut w = BufWriter::new(server);
        while let Ok((id, data)) = read_frame(&mut r) {
            if write_frame(&mut w, id, &data).is_err() {
                break;
            }
            if r.buffer().is_empty() && w.flush().is_err() {
                break;
            }
        }
    });
    // The requesters' side: one reader thread hands each reply to its requester.
    let pending: Pending = Arc::default();
    let reader_in = client.try_clone().map_err(err)?;
    std::thread::spawn({
        let pending = pending.clone();
        move || {
            let mut r = BufReader::new(reader_in);
            while let Ok((id, data)) = read_frame(&mut r) {
                if let Some(tx) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                    let _ = tx.send(data);
                }
            }
        }
    });
    let writer = Arc::new(Mutex::new(client));
    let start = Arc::new(Barrier::new(args.requesters + 1));
    let threads: Vec<_> = (0..args.requesters)
        .map(|r| {
            let (writer, pending, start) = (writer.clone(), pending.clone(), start.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut lat = Vec::with_capacity(args.requests);
                start.wait();
                for i in 0..args.requests {
                    let data = payload(args, r, i);
                    let id = (r * args.requests + i) as u64;
                    let (tx, rx) = mpsc::channel();
                    let t0 = Instant::now();
                    pending.lock().map_err(err)?.insert(id, tx);
                    let mut frame = Vec::with_capacity(12 + data.len());
                    write_frame(&mut frame, id, &data).map_err(err)?;
                    writer.lock().map_err(err)?.write_all(&frame).map_err(err)?;
                    let reply = rx
                        .recv_timeout(TIMEOUT)
                        .map_err(|e| format!("bare {r}/{i}: {e}"))?;
                    lat.push(t0.elapsed());
                    if reply != data {
                        return Err(format!("bare request {r}/{i}: wrong reply"));
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let (elapsed, latencies) = timed_join(&start, threads)?;
    if let Ok(w) = writer.lock() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
    Ok(Report {
        elapsed,
        latencies,
        extra: String::new(),
    })
}

/// A driver's run.
type Run = fn(Args) -> Result<Report, String>;

fn main() -> ExitCode {
    let args = cli::parse_or_exit("concurrency", USAGE, parse_args);
    let runs: [(&str, Run); 4] = [
        ("bare", run_bare),
        ("std", run_std),
        ("tokio", run_tokio),
        ("tokio-32-slots", run_tokio_std_slots),
    ];
    let mut failed = false;
    for (driver, run) in runs {
        match run(args) {
            Ok(report) => print(driver, args, report),
            Err(e) => {
                eprintln!("driver={driver}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
