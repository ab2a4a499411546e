//! A small threaded server for many clients: a `PipeListener` yields one handler per peer
//! that connects; each answers `count` with a counter all clients share, and echoes every
//! other request. Then N clients connect at once, each sends its requests, checks the
//! echoes, and ends its conversation.
//!
//! ```text
//! cargo run --example server -- [--clients N] [--requests M] [--addr ADDR]
//! ```
//!
//! Prints one line: `clients=20 requests=200 sessions=20 count=20 secs=0.31`: requests
//! answered, distinct server-side sessions, the shared counter at the end.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::{Config, Message, PeerState, PipeHandler, PipeListener, TcpTransport};

const USAGE: &str = "usage: server [--clients N] [--requests M] [--addr ADDR]
  --clients N    clients to run against the server at once (default 20)
  --requests M   echo requests per client (default 10)
  --addr ADDR    where to listen (default 127.0.0.1:0, a free port)";

struct Args {
    clients: usize,
    requests: usize,
    addr: String,
}

/// Accepts until the listener stops; returns the sessions of the handlers it served.
fn serve(listener: &PipeListener, count: &Arc<AtomicU64>) -> Vec<u32> {
    let (mut live, mut sessions) = (Vec::<PipeHandler>::new(), Vec::new());
    for pipe in listener.incoming() {
        let pipe = match pipe {
            Ok(pipe) => pipe,
            Err(e) => {
                eprintln!("server: accept: {e}");
                continue;
            }
        };
        let count = count.clone();
        pipe.set_message_cb({
            let pipe = pipe.clone();
            move |req| {
                let data = match req.topic() {
                    "count" => (count.fetch_add(1, Ordering::Relaxed) + 1)
                        .to_string()
                        .into(),
                    _ => req.data().to_vec(),
                };
                if let Ok(reply) = req.reply_to(data) {
                    let _ = pipe.send_no_wait(reply);
                }
            }
        });
        if let Err(e) = pipe.start() {
            eprintln!("server: start: {e}");
            continue;
        }
        sessions.push(pipe.session());
        // Handlers whose peer is done are stopped (that releases their callbacks).
        live.retain(|p| {
            let up = matches!(p.peer_state(), PeerState::NotSeen | PeerState::Up);
            if !up {
                p.stop(true);
            }
            up
        });
        live.push(pipe);
    }
    live.iter().for_each(|p| p.stop(true));
    sessions
}

/// One client: `requests` echoes (checked), then one `count`; then END.
fn client(addr: std::net::SocketAddr, i: usize, requests: usize) -> Result<(), String> {
    let h = PipeHandler::new(
        TcpTransport::connect(addr).map_err(|e| e.to_string())?,
        Config::default(),
    )
    .map_err(|e| e.to_string())?;
    h.start().map_err(|e| e.to_string())?;
    let ask = |topic: &str, data: Vec<u8>| -> Result<Vec<u8>, String> {
        let req = Message::request(topic, data).map_err(|e| e.to_string())?;
        let reply = h.request(req, Some(Duration::from_secs(10)), None);
        Ok(reply
            .map_err(|e| format!("client {i}: {topic}: {e}"))?
            .data()
            .to_vec())
    };
    for k in 0..requests {
        let data = format!("client {i} request {k}").into_bytes();
        if ask("echo", data.clone())? != data {
            return Err(format!("client {i}: wrong echo"));
        }
    }
    ask("count", Vec::new())?;
    h.notify_end(Vec::new()).map_err(|e| e.to_string())?;
    h.stop(true);
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let listener = PipeListener::bind(&*args.addr, Config::default()).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().ok_or("no local address")?;
    let count = Arc::new(AtomicU64::new(0));
    let stopper = listener.stopper();
    let server = std::thread::spawn({
        let count = count.clone();
        move || serve(&listener, &count)
    });
    let t = Instant::now();
    let results: Vec<_> = (0..args.clients)
        .map(|i| std::thread::spawn(move || client(addr, i, args.requests)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    let secs = t.elapsed().as_secs_f64();
    stopper.stop();
    let mut sessions = server.join().map_err(|_| "server panicked")?;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    sessions.sort_unstable();
    sessions.dedup();
    println!(
        "clients={} requests={} sessions={} count={} secs={secs:.2}",
        args.clients,
        args.clients * args.requests,
        sessions.len(),
        count.load(Ordering::Relaxed),
    );
    Ok(())
}

fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut args = Args {
        clients: 20,
        requests: 10,
        addr: "127.0.0.1:0".into(),
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("clients") => match value(parser, "--clients")? {
                0 => return Err("--clients: at least 1".into()),
                n => args.clients = n,
            },
            Long("requests") => args.requests = value(parser, "--requests")?,
            Long("addr") => args.addr = value(parser, "--addr")?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = cli::parse_or_exit("server", USAGE, parse_args);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}
