//! The CPU a pair of `peerpipe-std` handlers uses when idle and when carrying 100 requests a
//! second, with the brief polling before sleeps on (the default) and off
//! (`PipeHandler::set_spin(false)`).
//!
//! ```text
//! cargo run --release --example cpu -- [--secs S]
//! ```
//!
//! Prints one line per case on stdout:
//!
//! ```text
//! load=idle spin=on secs=5 cpu_pct=0.00
//! load=100_per_s spin=on secs=5 cpu_pct=0.40
//! ```
//!
//! `cpu_pct` is this process's user + system CPU time (getrusage) over the case's wall time,
//! in percent of one core; both handlers (client and server) run in this process, over TCP
//! on localhost, with the default configuration (a heartbeat every 5 s each way).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use peerpipe_examples::cli;
use peerpipe_std::{Config, Message, PipeHandler, TcpTransport};

const USAGE: &str = "usage: cpu [--secs S]   (seconds per case, default 5)";

/// This process's user + system CPU time so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn pair(spin: bool) -> Result<(PipeHandler, PipeHandler), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let listen = TcpTransport::listen("127.0.0.1:0").map_err(|e| err(&e))?;
    let addr = listen.local_addr().ok_or("no local address")?;
    let server = PipeHandler::new(listen, Config::default()).map_err(|e| err(&e))?;
    let connect = TcpTransport::connect(addr).map_err(|e| err(&e))?;
    let client = PipeHandler::new(connect, Config::default()).map_err(|e| err(&e))?;
    for h in [&server, &client] {
        h.set_spin(spin);
    }
    server.set_message_cb({
        let server = server.clone();
        move |m| {
            if let Ok(reply) = m.reply_to(m.data().to_vec()) {
                let _ = server.send_no_wait(reply);
            }
        }
    });
    server.start().map_err(|e| err(&e))?;
    client.start().map_err(|e| err(&e))?;
    let warm = Message::request("echo", b"warm".to_vec()).map_err(|e| err(&e))?;
    client.request(warm, None, None).map_err(|e| err(&e))?;
    Ok((client, server))
}

/// Runs one case for `secs`: idle, or a request every 10 ms.
fn case(load: bool, spin: bool, secs: u64) -> Result<f64, String> {
    let (client, server) = pair(spin)?;
    // Let the start-up settle before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let (t0, c0) = (Instant::now(), cpu_time());
    let end = t0 + Duration::from_secs(secs);
    let mut next = t0;
    while Instant::now() < end {
        if load {
            let req = Message::request("echo", vec![7u8; 64]).map_err(|e| e.to_string())?;
            client.request(req, None, None).map_err(|e| e.to_string())?;
            next += Duration::from_millis(10);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        } else {
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
        }
    }
    let pct = 100.0 * (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    client.stop(true);
    server.stop(true);
    Ok(pct)
}

fn parse_args(parser: &mut cli::Parser) -> Result<Option<u64>, cli::Error> {
    use cli::{value, Long, Short};
    let mut secs = 5;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("secs") => match value(parser, "--secs")? {
                0 => return Err("--secs: at least 1".into()),
                s => secs = s,
            },
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(secs))
}

fn main() -> ExitCode {
    let secs = cli::parse_or_exit("cpu", USAGE, parse_args);
    for (load, name) in [(false, "idle"), (true, "100_per_s")] {
        for spin in [true, false] {
            match case(load, spin, secs) {
                Ok(pct) => println!(
                    "load={name} spin={} secs={secs} cpu_pct={pct:.2}",
                    if spin { "on" } else { "off" }
                ),
                Err(e) => {
                    eprintln!("load={name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
