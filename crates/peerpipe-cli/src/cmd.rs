//! The commands that talk to a peer: request, send, listen, serve, bench.

use std::io::{IsTerminal, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerpipe_std::{
    Config, Error, GoneReason, Item, Message, PipeHandler, Status, FRAGMENT, MAX_PAYLOAD,
};
use serde_json::{Map, Value};

use crate::exit::{from_link, from_pipe, CliError, Code};
use crate::link::{self, LinkSpec, Side};
use crate::obj;
use crate::out::{escape, put_data, Out};
use crate::xfer;

/// The topic `serve` answers on when its command fails, and that makes `request` exit 8.
pub const ERROR_TOPIC: &str = "error";

/// How long human output shows of a message's data.
const PREVIEW: usize = 64;

/// A handler configuration whose sends time out after `timeout` (the rest: defaults).
pub fn config(timeout: Duration) -> Config {
    Config {
        default_request_timeout: timeout,
        ..Config::default()
    }
}

/// The most a message carries, for messages: "4294967296 bytes (4 GiB)".
pub fn max_payload_text() -> String {
    format!("{MAX_PAYLOAD} bytes (4 GiB)")
}

/// Refuses `len` bytes of data when they are more than a message carries.
pub fn check_len(len: u64, what: &str) -> Result<(), CliError> {
    if len > MAX_PAYLOAD as u64 {
        return Err(CliError::new(
            Code::Refused,
            format!(
                "{what} is {len} bytes; a message carries at most {}",
                max_payload_text()
            ),
        ));
    }
    Ok(())
}

/// `DATA`, `@file` or `-` (stdin); none is empty data. Any size up to `MAX_PAYLOAD`: a
/// longer file is refused before it is read, stdin once that much has come.
pub fn read_data(arg: Option<&str>) -> Result<Vec<u8>, CliError> {
    let data = match arg {
        None => Vec::new(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_PAYLOAD as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| CliError::new(Code::Refused, format!("cannot read stdin: {e}")))?;
            buf
        }
        Some(arg) => match arg.strip_prefix('@') {
            Some(path) => {
                let unreadable = |e: std::io::Error| {
                    CliError::new(Code::Refused, format!("cannot read {path}: {e}"))
                };
                let file = std::fs::File::open(path).map_err(unreadable)?;
                let len = file.metadata().map_err(unreadable)?.len();
                check_len(len, path)?;
                let mut buf = Vec::with_capacity(len as usize);
                file.take(MAX_PAYLOAD as u64 + 1)
                    .read_to_end(&mut buf)
                    .map_err(unreadable)?;
                buf
            }
            None => arg.as_bytes().to_vec(),
        },
    };
    check_len(data.len() as u64, "the data")?;
    Ok(data)
}

fn new_request(topic: &str, data: Vec<u8>) -> Result<Message, CliError> {
    Message::request(topic, data).map_err(|e| from_pipe("invalid request", &e))
}

fn start(h: &PipeHandler) -> Result<(), CliError> {
    h.start()
        .map_err(|e| CliError::new(Code::Other, format!("cannot start: {e}")))
}

/// Ends the conversation politely (END, acknowledged) and closes the link.
pub fn finish(h: &PipeHandler) {
    if let Err(e) = h.notify_end(Vec::new()) {
        tracing::debug!("END not delivered: {e}");
    }
    h.stop(true);
}

/// `peerpipe request`.
pub fn request(
    link: &LinkSpec,
    side: Side,
    topic: &str,
    data: Option<&str>,
    timeout: Duration,
    out: Out,
) -> Result<(), CliError> {
    let msg = new_request(topic, read_data(data)?)?;
    let h = link::handler(link, side, config(timeout))?;
    start(&h)?;
    let t0 = Instant::now();
    let result = xfer::request(&h, msg, timeout, timeout, &mut xfer::quiet);
    let rtt = t0.elapsed();
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            h.stop(true);
            return Err(from_link(link, "request", &e));
        }
    };
    finish(&h);
    tracing::info!(
        rtt_us = rtt.as_micros() as u64,
        topic = reply.topic(),
        "reply"
    );
    if out.json {
        let mut o = obj! {
            "topic" => reply.topic(),
            "id" => reply.id().0,
            "req_id" => reply.req_id().map(|r| r.0),
            "len" => reply.data().len(),
            "rtt_us" => rtt.as_micros() as u64,
        };
        put_data(&mut o, reply.data());
        out.json(o);
    } else {
        let mut stdout = std::io::stdout().lock();
        let data = reply.data();
        let _ = stdout.write_all(data);
        if stdout.is_terminal() && !data.is_empty() && !data.ends_with(b"\n") {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
    }
    if reply.topic() == ERROR_TOPIC && topic != ERROR_TOPIC {
        return Err(CliError::new(
            Code::ErrorReply,
            format!("the peer answered on topic `{ERROR_TOPIC}`"),
        ));
    }
    Ok(())
}

/// `peerpipe send`.
pub fn send(
    link: &LinkSpec,
    side: Side,
    topic: &str,
    data: Option<&str>,
    timeout: Duration,
    out: Out,
) -> Result<(), CliError> {
    let msg = new_request(topic, read_data(data)?)?;
    let len = msg.data().len();
    let h = link::handler(link, side, config(timeout))?;
    start(&h)?;
    let id = match xfer::send(&h, msg, timeout, &mut xfer::quiet) {
        Ok(id) => id,
        Err(e) => {
            h.stop(true);
            return Err(from_link(link, "send", &e));
        }
    };
    finish(&h);
    tracing::info!(id = id.0, "delivered");
    if out.json {
        out.json(obj! {"id" => id.0, "topic" => topic, "len" => len, "delivered" => true});
    }
    Ok(())
}

/// What a listening or serving loop does with each request.
#[derive(Clone)]
pub enum Answer {
    /// Nothing.
    None,
    /// Its data back.
    Echo,
    /// The output of a shell command.
    Exec(String),
}

/// How a peer's conversation ended, for a single link's exit code.
pub enum Ended {
    /// END from the peer, or `--count` reached.
    Done,
    Aborted,
    Gone(Option<peerpipe_std::IoCause>),
    /// Our own handler stopped.
    Stopped,
}

/// Shared by every peer's loop: reports, answers, `--count`.
struct Ctx {
    out: Out,
    answer: Answer,
    /// Messages left before the listener ends.
    left: Arc<AtomicU64>,
    timeout: Duration,
}

/// `--count N` as a countdown (`u64::MAX`: no limit; 0 counts as 1).
pub fn countdown(count: Option<u64>) -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX).max(1)))
}

/// Counts one down: whether it was the last (`--count` reached).
pub fn count_one(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n != u64::MAX).then(|| n.saturating_sub(1))
    }) == Ok(1)
}

fn report_message(ctx: &Ctx, peer: usize, m: &Message) {
    let kind = if m.is_request() { "request" } else { "reply" };
    if ctx.out.json {
        let mut o = obj! {
            "event" => kind, "peer" => peer, "id" => m.id().0,
            "topic" => m.topic(), "len" => m.data().len(),
        };
        if let Some(r) = m.req_id() {
            o.insert("req_id".into(), r.0.into());
        }
        put_data(&mut o, m.data());
        ctx.out.json(o);
    } else {
        let req = m
            .req_id()
            .map(|r| format!(" req_id={}", r.0))
            .unwrap_or_default();
        ctx.out.line(&format!(
            "{kind} peer={peer} id={}{req} topic={} len={} data=\"{}\"",
            m.id().0,
            m.topic(),
            m.data().len(),
            escape(m.data(), PREVIEW)
        ));
    }
}

/// Reports a status change of `peer`: end, abort, gone, restarted.
pub fn report_status(out: &Out, peer: usize, s: &Status) {
    let (event, mut fields): (&str, Map<String, Value>) = match s {
        Status::End(d) | Status::Abort(d) => {
            let mut o = obj! {"len" => d.len()};
            put_data(&mut o, d);
            (
                if matches!(s, Status::End(_)) {
                    "end"
                } else {
                    "abort"
                },
                o,
            )
        }
        Status::Gone { reason, cause } => {
            let reason = match reason {
                GoneReason::Silence => "silence",
                GoneReason::TransportLost => "transport lost",
                _ => "other",
            };
            let mut o = obj! {"reason" => reason};
            if let Some(c) = cause {
                o.insert("cause".into(), c.to_string().into());
            }
            ("gone", o)
        }
        Status::PeerRestarted => ("restarted", Map::new()),
        _ => ("status", obj! {"status" => format!("{s:?}")}),
    };
    let mut o = obj! {"peer" => peer};
    o.append(&mut fields);
    out.event(event, o);
}

/// Runs `cmd` through the shell with `data` on stdin: its stdout, or why it failed.
fn run_command(cmd: &str, m: &Message, peer: usize) -> Result<Vec<u8>, Vec<u8>> {
    let mut c = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    };
    c.env("PEERPIPE_TOPIC", m.topic())
        .env("PEERPIPE_ID", m.id().0.to_string())
        .env("PEERPIPE_PEER", peer.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot run `{cmd}`: {e}").into_bytes())?;
    let stdin = child.stdin.take();
    // Fed from its own thread: a command that writes before it reads must not deadlock.
    let output = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(m.data());
            }
        });
        child
            .wait_with_output()
            .map_err(|e| format!("`{cmd}` failed: {e}").into_bytes())
    })?;
    if !output.status.success() {
        let mut why = output.stderr;
        if why.is_empty() {
            why = format!("`{cmd}` exited with {}", output.status).into_bytes();
        }
        why.truncate(MAX_PAYLOAD);
        return Err(why);
    }
    if output.stdout.len() > MAX_PAYLOAD {
        return Err(format!(
            "the output of `{cmd}` is {} bytes; a reply carries at most {}",
            output.stdout.len(),
            max_payload_text()
        )
        .into_bytes());
    }
    Ok(output.stdout)
}

/// Answers one request as `ctx.answer` says.
fn answer(ctx: &Ctx, h: &PipeHandler, peer: usize, m: &Message) -> Result<(), Error> {
    let reply = match &ctx.answer {
        Answer::None => return Ok(()),
        Answer::Echo => m.reply_to(m.data().to_vec())?,
        Answer::Exec(cmd) => {
            let t0 = Instant::now();
            let result = run_command(cmd, m, peer);
            let (topic, data) = match result {
                Ok(out) => (m.topic(), out),
                Err(why) => (ERROR_TOPIC, why),
            };
            if ctx.out.json {
                ctx.out.json(obj! {
                    "event" => "served", "peer" => peer, "id" => m.id().0,
                    "reply_topic" => topic, "reply_len" => data.len(),
                    "us" => t0.elapsed().as_micros() as u64,
                });
            } else {
                ctx.out.line(&format!(
                    "served peer={peer} id={} reply_topic={topic} reply_len={} us={}",
                    m.id().0,
                    data.len(),
                    t0.elapsed().as_micros()
                ));
            }
            Message::reply(topic, data, m.id())?
        }
    };
    xfer::send(h, reply, ctx.timeout, &mut xfer::quiet).map(drop)
}

/// One peer's conversation: report what arrives, answer requests, until it ends.
fn peer_loop(ctx: &Ctx, h: &PipeHandler, peer: usize) -> Ended {
    while let Some(item) = h.recv() {
        match item {
            Item::Message(m) => {
                report_message(ctx, peer, &m);
                if m.is_request() {
                    if let Err(e) = answer(ctx, h, peer, &m) {
                        tracing::warn!(peer, "reply not delivered: {e}");
                    }
                }
                if count_one(&ctx.left) {
                    finish(h);
                    return Ended::Done;
                }
            }
            Item::Status(s) => {
                report_status(&ctx.out, peer, &s);
                match s {
                    Status::End(_) => return Ended::Done,
                    Status::Abort(_) => return Ended::Aborted,
                    Status::Gone { cause, .. } => return Ended::Gone(cause),
                    _ => {}
                }
            }
        }
    }
    Ended::Stopped
}

/// `peerpipe listen` and `peerpipe serve`: one peer on a single link, every peer that
/// connects on a listening link.
pub fn listen(
    link: &LinkSpec,
    side: Side,
    answer: Answer,
    count: Option<u64>,
    timeout: Duration,
    out: Out,
) -> Result<(), CliError> {
    let ctx = Arc::new(Ctx {
        out,
        answer,
        left: countdown(count),
        timeout,
    });
    let left = ctx.left.clone();
    serve_peers(link, side, config(timeout), out, left, move |h, peer| {
        peer_loop(&ctx, h, peer)
    })
}

/// The exit code of a single link's conversation that ended so.
pub fn ended_result(link: &LinkSpec, ended: Ended) -> Result<(), CliError> {
    match ended {
        Ended::Done | Ended::Stopped => Ok(()),
        Ended::Aborted => Err(CliError::new(Code::Ended, "the peer aborted")),
        Ended::Gone(Some(cause)) if crate::exit::is_open_failure(cause.kind()) => Err(
            CliError::new(Code::Link, format!("cannot open {link}: {cause}")),
        ),
        Ended::Gone(Some(cause)) => Err(CliError::new(
            Code::Gone,
            format!("the peer is gone: {cause}"),
        )),
        Ended::Gone(None) => Err(CliError::new(
            Code::Gone,
            "the peer is gone: silent for longer than the heartbeat timeout",
        )),
    }
}

/// Runs `one` (a peer's conversation, until it ends) for the one peer of a single link, or
/// for every peer that connects to a listening link, each on its own thread, until one of
/// them takes the last of `left` (`--count`).
pub fn serve_peers<F>(
    link: &LinkSpec,
    side: Side,
    config: Config,
    out: Out,
    left: Arc<AtomicU64>,
    one: F,
) -> Result<(), CliError>
where
    F: Fn(&PipeHandler, usize) -> Ended + Send + Sync + 'static,
{
    if !link.is_listener() {
        let h = link::handler(link, side, config)?;
        start(&h)?;
        let ended = one(&h, 1);
        h.stop(true);
        return ended_result(link, ended);
    }
    let one = Arc::new(one);
    let listener = Arc::new(link::listener(link, &side, config)?);
    let peers = AtomicUsize::new(0);
    let stopper = listener.stopper();
    for h in listener.incoming() {
        let h = match h {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let peer = peers.fetch_add(1, Ordering::SeqCst) + 1;
        let (one, left) = (one.clone(), left.clone());
        let stopper = listener.stopper();
        out.event("connected", obj! {"peer" => peer});
        std::thread::spawn(move || {
            if start(&h).is_err() {
                return;
            }
            if let Ended::Done = one(&h, peer) {
                if left.load(Ordering::SeqCst) == 0 {
                    stopper.stop();
                }
            }
            h.stop(true);
        });
    }
    drop(stopper);
    Ok(())
}

/// `peerpipe bench`.
pub fn bench(
    link: &LinkSpec,
    side: Side,
    topic: &str,
    count: u64,
    size: u64,
    timeout: Duration,
    out: Out,
) -> Result<(), CliError> {
    check_len(size, "--size")?;
    let size = size as usize;
    if count == 0 {
        return Err(CliError::new(Code::Usage, "--count must be at least 1"));
    }
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    new_request(topic, data.clone())?;
    let h = link::handler(link, side, config(timeout))?;
    start(&h)?;
    let round_trip = |h: &PipeHandler| -> Result<Duration, CliError> {
        let t0 = Instant::now();
        let msg = new_request(topic, data.clone())?;
        let reply = if size <= FRAGMENT {
            h.request(msg, Some(timeout), None)
        } else {
            xfer::request(h, msg, timeout, timeout, &mut xfer::quiet)
        }
        .map_err(|e| from_link(link, "request", &e))?;
        let rtt = t0.elapsed();
        if reply.data() != data.as_slice() {
            return Err(CliError::new(
                Code::Other,
                format!(
                    "the peer does not echo: sent {} bytes, got {} bytes back on topic {}",
                    data.len(),
                    reply.data().len(),
                    reply.topic()
                ),
            ));
        }
        Ok(rtt)
    };
    let run = || -> Result<(Vec<Duration>, Duration), CliError> {
        // Warm-up: the connection, the peer's first replies, the caches.
        for _ in 0..(count / 10).clamp(1, 100) {
            round_trip(&h)?;
        }
        let mut rtts = Vec::with_capacity(count as usize);
        let t0 = Instant::now();
        for _ in 0..count {
            rtts.push(round_trip(&h)?);
        }
        Ok((rtts, t0.elapsed()))
    };
    let result = run();
    match &result {
        Ok(_) => finish(&h),
        Err(_) => h.stop(true),
    }
    let (mut rtts, total) = result?;
    rtts.sort();
    let pct = |p: usize| rtts[((rtts.len() - 1) * p + 50) / 100].as_micros() as u64;
    let (p50, p99) = (pct(50), pct(99));
    let min = rtts[0].as_micros() as u64;
    let max = rtts[rtts.len() - 1].as_micros() as u64;
    let rate = count as f64 / total.as_secs_f64();
    if out.json {
        out.json(obj! {
            "link" => link.to_string(), "count" => count, "size" => size,
            "p50_us" => p50, "p99_us" => p99, "min_us" => min, "max_us" => max,
            "msgs_per_s" => (rate * 10.0).round() / 10.0,
            "seconds" => total.as_secs_f64(),
        });
    } else {
        out.line(&format!(
            "{count} round trips of {size} B over {link}: p50 {p50} µs, p99 {p99} µs \
             (min {min}, max {max}), {rate:.0} msgs/s"
        ));
    }
    Ok(())
}
