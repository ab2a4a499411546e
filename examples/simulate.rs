//! Two endpoints over the seeded link emulator, in virtual time.
//!
//! A sends N requests to B over a link that loses, duplicates, reorders and corrupts frames;
//! B replies to each. Then the link is cut both ways and the run goes on until both sides
//! report the peer GONE. Every run replays exactly from its seed.
//!
//! ```text
//! cargo run --release --example simulate -- --loss 0.3 --messages 2000 --seed 7
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant as WallClock};

// Virtual time is the core's: its `Instant` and the microsecond `Duration` between two.
use peerpipe_core::Duration as Span;
use peerpipe_core::{Config, Error, Event, Instant, Message, MsgId, Outcome, Stats};
use peerpipe_examples::cli;
use peerpipe_sim::{LinkConfig, Pair, Side, SimEndpoint};

const USAGE: &str = "\
Usage: simulate [OPTIONS]

Two peerpipe endpoints over a lossy link emulator, in virtual time: A sends N requests to B,
B replies to each, then the link is cut and both sides wait until the peer is GONE.

Options:
  --loss P        probability that a frame is lost            (default 0.2)
  --dup P         probability that a frame arrives twice      (default 0.05)
  --corrupt P     probability that a frame is corrupted       (default 0.01)
  --messages N    number of requests A sends                  (default 10000)
  --seed S        seed of the link emulator                   (default 1)
  -h, --help      print this help

The link also reorders 2% of frames, injects garbage before corrupt/2 of them, delays each
by 1 to 20 ms and re-chunks the byte stream (peerpipe_sim::LinkConfig::lossy).";

/// The endpoints' timing: quick resends for a link with tens of milliseconds of delay, and
/// a short heartbeat timeout so that GONE comes soon after the cut.
const CONFIG: Config = Config {
    heartbeat_interval: Duration::from_secs(1),
    heartbeat_timeout: Duration::from_secs(5),
    resend_interval: Some(Duration::from_millis(100)),
    max_resends: Some(10),
    default_request_timeout: Duration::from_secs(10),
    max_message: 0,
};

/// Stop the exchange if it has not finished after this much virtual time.
const EXCHANGE_LIMIT: Span = Span::from_secs(24 * 3600);

struct Args {
    loss: f64,
    dup: f64,
    corrupt: f64,
    messages: u64,
    seed: u64,
}

/// Parses the command line; `Ok(None)` means help was asked for.
fn parse_args(parser: &mut cli::Parser) -> Result<Option<Args>, cli::Error> {
    use cli::{value, Long, Short};
    let mut parsed = Args {
        loss: 0.2,
        dup: 0.05,
        corrupt: 0.01,
        messages: 10_000,
        seed: 1,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("loss") => parsed.loss = probability(parser, "--loss")?,
            Long("dup") => parsed.dup = probability(parser, "--dup")?,
            Long("corrupt") => parsed.corrupt = probability(parser, "--corrupt")?,
            Long("messages") => parsed.messages = value(parser, "--messages")?,
            Long("seed") => parsed.seed = value(parser, "--seed")?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(parsed))
}

/// The value of the probability option `flag`.
fn probability(parser: &mut cli::Parser, flag: &str) -> Result<f64, cli::Error> {
    match cli::value(parser, flag)? {
        p if (0.0..=1.0).contains(&p) => Ok(p),
        p => Err(format!("{flag}: expected a probability in 0..=1, got {p}").into()),
    }
}

fn secs(d: Span) -> String {
    format!("{:.3} s", d.as_micros() as f64 / 1e6)
}

fn percent(p: f64) -> String {
    format!("{}%", (p * 1000.0).round() / 10.0)
}

/// One direction of the exchange: sends made by one side, received by the other.
#[derive(Default)]
struct Flow {
    sent: u64,
    delivered: u64,
    failed: u64,
    /// Why sends failed, and how many for each reason.
    reasons: BTreeMap<String, u64>,
    received: u64,
    /// The last message id received, to check order and uniqueness.
    last: Option<MsgId>,
    out_of_order: u64,
}

impl Flow {
    fn settle(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Failed(reason) => {
                self.failed += 1;
                *self.reasons.entry(reason.to_string()).or_default() += 1;
            }
        }
    }

    fn receive(&mut self, id: MsgId) {
        if self.last.is_some_and(|last| id <= last) {
            self.out_of_order += 1;
        }
        self.last = Some(id);
        self.received += 1;
    }

    fn settled(&self) -> bool {
        self.delivered + self.failed == self.sent
    }

    fn line(&self, name: &str, receiver: char) -> String {
        let order = if self.out_of_order == 0 {
            "in order, each once".to_string()
        } else {
            format!("{} OUT OF ORDER OR REPEATED", self.out_of_order)
        };
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        format!(
            "{name:<10} {} sent, {} delivered, {} failed{reasons}; {receiver} received {}, {order}",
            self.sent, self.delivered, self.failed, self.received
        )
    }
}

fn run(args: &Args) -> Result<(), String> {
    let wall = WallClock::now();
    let a = SimEndpoint::new(CONFIG, 0xA, Instant::ZERO).map_err(|e| e.to_string())?;
    let b = SimEndpoint::new(CONFIG, 0xB, Instant::ZERO).map_err(|e| e.to_string())?;
    let link = LinkConfig::lossy(args.loss, args.dup, args.corrupt);
    let mut p: Pair = Pair::new(a, b, link, args.seed);

    let (mut requests, mut replies) = (Flow::default(), Flow::default());
    // Replies B has made but could not send yet (all its send slots were busy).
    let mut backlog: VecDeque<Message> = VecDeque::new();
    // Set when a side's sends are refused for good (the conversation closed).
    let (mut a_closed, mut b_closed) = (None, None);
    // When each side last received a valid frame, and when it reported the peer GONE.
    let (mut heard_a, mut heard_b) = (None, None);
    let (mut gone_a, mut gone_b) = (None, None);

    // Phase 1: the exchange.
    let limit = Instant::ZERO + EXCHANGE_LIMIT;
    let finished = loop {
        let now = p.now();
        while requests.sent < args.messages && a_closed.is_none() {
            let payload = requests.sent.to_le_bytes();
            let request = Message::request("work", &payload).map_err(|e| e.to_string())?;
            match p.a.send(now, request, None) {
                Ok(_) => requests.sent += 1,
                Err(Error::SendQueueFull) => break,
                Err(e) => a_closed = Some(e),
            }
        }
        while b_closed.is_none() {
            let Some(reply) = backlog.pop_front() else {
                break;
            };
            match p.b.send(now, reply.clone(), None) {
                Ok(_) => replies.sent += 1,
                Err(Error::SendQueueFull) => {
                    backlog.push_front(reply);
                    break;
                }
                Err(e) => b_closed = Some(e),
            }
        }
        let frames = (p.a.stats().frames_received, p.b.stats().frames_received);
        let more = p.advance(); // does everything due at `now`, then moves the clock on
        if p.a.stats().frames_received != frames.0 {
            heard_a = Some(now);
        }
        if p.b.stats().frames_received != frames.1 {
            heard_b = Some(now);
        }
        for event in p.take_events(Side::A) {
            match event {
                Event::SendOutcome { outcome, .. } => requests.settle(outcome),
                Event::Message(m) => replies.receive(m.id()),
                Event::Gone(_) => gone_a = gone_a.or(Some(now)),
                other => return Err(format!("A: unexpected event {other:?}")),
            }
        }
        for event in p.take_events(Side::B) {
            match event {
                Event::SendOutcome { outcome, .. } => replies.settle(outcome),
                Event::Message(m) => {
                    requests.receive(m.id());
                    backlog.push_back(m.reply_to(m.data()).map_err(|e| e.to_string())?);
                }
                Event::Gone(_) => gone_b = gone_b.or(Some(now)),
                other => return Err(format!("B: unexpected event {other:?}")),
            }
        }
        let a_done = requests.sent == args.messages || a_closed.is_some();
        let b_done = backlog.is_empty() || b_closed.is_some();
        if (a_done && b_done && requests.settled() && replies.settled()) || !more || p.now() > limit
        {
            // The events came from the step at `now`; the clock has moved on to the next
            // deadline since, and the link is cut there.
            break now;
        }
    };

    // Phase 2: cut the link both ways and wait for GONE on both sides.
    let link_stats = (p.ab.stats(), p.ba.stats());
    let cut = p.now();
    p.ab.set_cut(true);
    p.ba.set_cut(true);
    let timeout = Span::from(CONFIG.heartbeat_timeout);
    p.run_until(cut + timeout.saturating_mul(3), |p| {
        for (side, gone) in [(Side::A, &mut gone_a), (Side::B, &mut gone_b)] {
            let now = p.now();
            for event in p.take_events(side) {
                if let Event::Gone(_) = event {
                    gone.get_or_insert(now);
                }
            }
        }
        gone_a.is_some() && gone_b.is_some()
    });

    // Report.
    let (sa, sb) = (p.a.stats(), p.b.stats());
    let both = |f: fn(&Stats) -> u64| f(sa) + f(sb);
    let (ab, ba) = link_stats;
    let corrupt = both(|s| s.crc_errors + s.cobs_errors + s.malformed + s.bad_version + s.oversize);
    println!(
        "peerpipe simulate: {} requests A->B, a reply to each; link loss {}, duplication {}, \
         corruption {}, seed {}",
        args.messages,
        percent(args.loss),
        percent(args.dup),
        percent(args.corrupt),
        args.seed
    );
    println!("{}", requests.line("requests", 'B'));
    println!("{}", replies.line("replies", 'A'));
    println!(
        "link       {} frames: {} lost, {} duplicated, {} reordered, {} corrupted, {} garbage bursts",
        ab.frames + ba.frames,
        ab.dropped + ba.dropped,
        ab.duplicated + ba.duplicated,
        ab.reordered + ba.reordered,
        ab.corrupted + ba.corrupted,
        ab.garbage + ba.garbage
    );
    println!(
        "endpoints  {} resends, {} duplicates suppressed, {} refused (receive queue full)",
        both(|s| s.resends),
        both(|s| s.duplicates),
        both(|s| s.refused_full),
    );
    println!(
        "corrupt    {} frames dropped ({} CRC mismatch, {} bad COBS, {} other)",
        corrupt,
        both(|s| s.crc_errors),
        both(|s| s.cobs_errors),
        corrupt - both(|s| s.crc_errors + s.cobs_errors),
    );
    println!(
        "time       exchange took {} virtual ({:.2} s real)",
        secs(finished - Instant::ZERO),
        wall.elapsed().as_secs_f64()
    );
    println!(
        "link cut   at {} virtual; heartbeat_timeout {}",
        secs(cut - Instant::ZERO),
        secs(timeout)
    );
    for (name, gone, heard) in [("A", gone_a, heard_a), ("B", gone_b, heard_b)] {
        // Silence is counted from the last frame heard, or from the start if there was none.
        let silent_since = match heard {
            Some(_) => format!("the last frame {name} heard"),
            None => "the start (it never heard its peer)".to_string(),
        };
        let silence = |at: Instant| secs(at - heard.unwrap_or(Instant::ZERO));
        match gone {
            Some(at) if at >= cut => println!(
                "GONE at {name}  {} after the cut, {} after {silent_since}",
                secs(at - cut),
                silence(at),
            ),
            Some(at) => println!(
                "GONE at {name}  before the cut, at {} virtual, {} after {silent_since}",
                secs(at - Instant::ZERO),
                silence(at),
            ),
            None => println!(
                "GONE at {name}  not within {} of the cut",
                secs(timeout.saturating_mul(3))
            ),
        }
    }
    for (side, err) in [("A", a_closed), ("B", b_closed)] {
        if let Some(e) = err {
            println!("note       {side} stopped sending: {e}");
        }
    }
    if requests.out_of_order + replies.out_of_order > 0 {
        return Err("messages were delivered out of order or twice".to_string());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = cli::parse_or_exit("simulate", USAGE, parse_args);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simulate: {e}");
            ExitCode::FAILURE
        }
    }
}
