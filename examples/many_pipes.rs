//! Thousands of pipes at once with peerpipe-tokio: N pipes over TCP loopback between two
//! processes, idle with the default heartbeat settings, or loaded with requests.
//!
//! ```text
//! cargo run --release --example many_pipes -- --pipes 10000            # idle, 20 s
//! cargo run --release --example many_pipes -- --pipes 100 --load 10    # loaded, 10 s
//! ```
//!
//! This process holds the PASSIVE ends (it listens, accepts and answers requests); it runs
//! itself again as a child with `--active` which connects the ACTIVE ends. Each process runs
//! a single-threaded tokio runtime, one task per pipe plus one application task per passive
//! pipe (an echo server).
//!
//! Idle: once every pipe is up (each side has heard from the peer of every pipe), both
//! processes sit idle for `--idle-secs` (default 20) with the default heartbeat settings
//! (a heartbeat every 5 s each way, GONE after 30 s of silence). It then checks that no pipe
//! reported anything (no GONE, no restart) and prints exactly one line:
//!
//! ```text
//! pipes=10000 cpu_pct=… rss_per_pipe_kib=…
//! ```
//!
//! `cpu_pct`: CPU time (user + system) of both processes together over the idle period, in
//! percent of one core. `rss_per_pipe_kib`: resident memory growth of each process from
//! before its first pipe to the end of the idle period, summed and divided by the number of
//! pipe ends (2 N), in KiB.
//!
//! Loaded (`--load SECS`): every active pipe sends requests of `--payload` bytes (default 64)
//! one after another for SECS seconds; the passive side echoes them. Prints one line:
//! `pipes=… load_secs=… requests_per_s=… msgs_per_s=…` (a request and its reply are two
//! messages).
//!
//! Capacities: these pipes carry small messages (at most 256-byte payloads, 32-byte topics,
//! 4 receive and 4 send slots): an endpoint is sized by its capacities, and a server with
//! thousands of pipes picks them to fit (see `PipeHandler`'s docs).

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerpipe_core::wire::max_encoded_len;
use peerpipe_examples::cli;
use peerpipe_tokio::{Config, Item, Message, PeerState, PipeHandler, Status};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

/// The pipes of this example: small messages, few slots.
type Pipe = PipeHandler<256, 32, 4, 4, { max_encoded_len(256, 32) }>;

const USAGE: &str = "\
Usage: many_pipes --pipes N [--idle-secs S] [--load SECS] [--payload BYTES]

Opens N peerpipe-tokio pipes over TCP loopback between this process (PASSIVE ends) and a
child process (ACTIVE ends). Idle (default): waits S seconds (default 20) with the default
heartbeat settings and prints `pipes=N cpu_pct=… rss_per_pipe_kib=…`. With --load SECS:
every pipe exchanges requests of BYTES bytes (default 64) for SECS seconds and prints
`pipes=N load_secs=… requests_per_s=… msgs_per_s=…`.";

/// Bound on setting up the pipes and on every step of the handshake with the child.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The most file descriptors a process may hold here.
const MAX_FDS: u64 = 20_000;

struct Args {
    pipes: usize,
    idle_secs: u64,
    load_secs: Option<u64>,
    payload: usize,
    /// Set in the child: the address to connect to.
    active: Option<String>,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut args = Args {
        pipes: 0,
        idle_secs: 20,
        load_secs: None,
        payload: 64,
        active: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("pipes") => args.pipes = value(parser, "--pipes")?,
            Long("idle-secs") => args.idle_secs = value(parser, "--idle-secs")?,
            Long("load") => args.load_secs = Some(value(parser, "--load")?),
            Long("payload") => args.payload = value(parser, "--payload")?,
            Long("active") => args.active = Some(value(parser, "--active")?),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    if args.pipes == 0 {
        return Err("--pipes N (N >= 1) is required".into());
    }
    if args.payload > 256 {
        return Err("--payload is at most 256 bytes for these pipes".into());
    }
    let fds_needed = args.pipes as u64 + 64;
    if fds_needed > MAX_FDS {
        return Err(format!(
            "--pipes {} needs {fds_needed} file descriptors per process; at most {MAX_FDS} here",
            args.pipes
        )
        .into());
    }
    Ok(Some(args))
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn main() -> ExitCode {
    let args = cli::parse_or_exit("many_pipes", USAGE, parse_args);
    if let Err(e) = raise_fd_limit(args.pipes as u64 + 64) {
        eprintln!("many_pipes: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("many_pipes: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.active {
        Some(addr) => rt.block_on(active(&args, addr)),
        None => rt.block_on(passive(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "many_pipes{}: {e}",
                if args.active.is_some() {
                    " (active)"
                } else {
                    ""
                }
            );
            ExitCode::FAILURE
        }
    }
}

/// The parent: PASSIVE ends, the echo servers, the measurements.
async fn passive(args: &Args) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut child = spawn_child(args, &addr.to_string())?;
    let child_pid = child.id().ok_or("the active side exited at once")?;
    let mut from_child = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let mut to_child = child.stdin.take().ok_or("no child stdin")?;
    let rss0 = (rss(None)?, rss(Some(child_pid))?);

    let statuses = Arc::new(AtomicUsize::new(0));
    let setup = async {
        let mut pipes = Vec::with_capacity(args.pipes);
        for _ in 0..args.pipes {
            let (stream, _) = listener
                .accept()
                .await
                .map_err(|e| format!("accept: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let pipe = Pipe::start(stream, Config::default()).map_err(|e| e.to_string())?;
            tokio::spawn(echo(pipe.clone(), Arc::clone(&statuses)));
            pipes.push(pipe);
        }
        wait_up(&pipes).await;
        Ok::<_, String>(pipes)
    };
    let pipes = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| "setting up the pipes took too long")??;
    // The child says when its ends are up too.
    let line = read_line(&mut from_child).await?;
    if line != "up" {
        return Err(format!("child: {line}"));
    }

    let line = match args.load_secs {
        None => {
            let cpu0 = cpu_secs(None)? + cpu_secs(Some(child_pid))?;
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = cpu_secs(None)? + cpu_secs(Some(child_pid))? - cpu0;
            let grown = (rss(None)? - rss0.0) + (rss(Some(child_pid))? - rss0.1);
            let reported = statuses.load(Ordering::Relaxed);
            let down = pipes
                .iter()
                .filter(|p| p.peer_state() != PeerState::Up)
                .count();
            if reported > 0 || down > 0 {
                return Err(format!(
                    "while idle: {reported} status changes, {down} pipes not up"
                ));
            }
            format!(
                "pipes={} cpu_pct={:.2} rss_per_pipe_kib={:.2}",
                args.pipes,
                100.0 * cpu / wall,
                grown as f64 / 1024.0 / (2 * args.pipes) as f64
            )
        }
        Some(secs) => {
            to_child
                .write_all(format!("load {secs}\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let report = read_line(&mut from_child).await?;
            let requests: f64 = report
                .strip_prefix("requests=")
                .and_then(|n| n.parse().ok())
                .ok_or(format!("child: {report}"))?;
            format!(
                "pipes={} load_secs={secs} requests_per_s={:.0} msgs_per_s={:.0}",
                args.pipes,
                requests / secs as f64,
                2.0 * requests / secs as f64
            )
        }
    };
    drop(to_child);
    finish_child(&mut child).await?;
    println!("{line}");
    Ok(())
}

/// The child: ACTIVE ends; after "up", waits for the parent's word (a load, or end of input).
async fn active(args: &Args, addr: &str) -> Result<(), String> {
    let setup = async {
        let mut pipes = Vec::with_capacity(args.pipes);
        for _ in 0..args.pipes {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            pipes.push(Pipe::start(stream, Config::default()).map_err(|e| e.to_string())?);
        }
        wait_up(&pipes).await;
        Ok::<_, String>(pipes)
    };
    let pipes = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| "setting up the pipes took too long")??;
    say("up")?;
    // The parent's word comes on stdin; read it without blocking the runtime.
    let word = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if let Some(secs) = word.trim().strip_prefix("load ") {
        let secs: u64 = number(secs)?;
        let requests = load(&pipes, args.payload, Duration::from_secs(secs)).await?;
        say(&format!("requests={requests}"))?;
    }
    let reported = pipes.iter().filter_map(|p| p.get_next()).count();
    let down = pipes
        .iter()
        .filter(|p| p.peer_state() != PeerState::Up)
        .count();
    if reported > 0 || down > 0 {
        return Err(format!("{reported} status changes, {down} pipes not up"));
    }
    Ok(())
}

/// Every active pipe sends requests one after another until `span` is over; returns how
/// many completed (each reply checked).
async fn load(pipes: &[Pipe], payload: usize, span: Duration) -> Result<u64, String> {
    let until = tokio::time::Instant::now() + span;
    let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let tasks: Vec<_> = pipes
        .iter()
        .map(|p| {
            let (p, data) = (p.clone(), data.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while tokio::time::Instant::now() < until {
                    let req = Message::request("load", data.clone()).map_err(|e| e.to_string())?;
                    let reply = p.request(req, None).await.map_err(|e| e.to_string())?;
                    if reply.data() != data {
                        return Err("a reply did not match its request".to_string());
                    }
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

/// Answers each request with its own data, and counts status changes, until the pipe ends.
async fn echo(pipe: Pipe, statuses: Arc<AtomicUsize>) {
    while let Some(item) = pipe.recv().await {
        match item {
            Item::Message(req) if req.is_request() => {
                if let Ok(reply) = req.reply_to(req.data().to_vec()) {
                    let _ = pipe.send_no_wait(reply);
                }
            }
            Item::Message(_) => {}
            Item::Status(status) => {
                statuses.fetch_add(1, Ordering::Relaxed);
                if !matches!(status, Status::PeerRestarted) {
                    return;
                }
            }
        }
    }
}

/// Waits until every pipe has heard from its peer.
async fn wait_up(pipes: &[Pipe]) {
    for p in pipes {
        while p.peer_state() == PeerState::NotSeen {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn spawn_child(args: &Args, addr: &str) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args([
            "--pipes",
            &args.pipes.to_string(),
            "--payload",
            &args.payload.to_string(),
        ])
        .args(["--active", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawning the active side: {e}"))
}

async fn finish_child(child: &mut Child) -> Result<(), String> {
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the active side exited with {status}"));
    }
    Ok(())
}

async fn read_line(from: &mut Lines<BufReader<ChildStdout>>) -> Result<String, String> {
    match from.next_line().await {
        Ok(Some(line)) => Ok(line.trim().to_owned()),
        Ok(None) => Err("the active side exited early".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

/// Resident memory of this process (`None`) or of `pid`, in bytes.
fn rss(pid: Option<u32>) -> Result<i64, String> {
    let statm = proc_file(pid, "statm")?;
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or("unreadable statm")?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * page as i64)
}

/// User + system CPU time of this process (`None`) or of `pid`, all threads, in seconds.
fn cpu_secs(pid: Option<u32>) -> Result<f64, String> {
    let stat = proc_file(pid, "stat")?;
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: f64 = [11, 12]
        .iter()
        .map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum::<Option<f64>>()
        .ok_or("unreadable stat")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks / hz as f64)
}

fn proc_file(pid: Option<u32>, name: &str) -> Result<String, String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/{name}"),
        None => format!("/proc/self/{name}"),
    };
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// Raises the soft limit on open files to `want` (within the hard limit).
fn raise_fd_limit(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit/setrlimit to read and write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err("getrlimit failed".into());
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    if lim.rlim_max < want {
        return Err(format!(
            "{want} file descriptors needed, the hard limit is {}",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = want;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err("setrlimit failed".into());
    }
    Ok(())
}
