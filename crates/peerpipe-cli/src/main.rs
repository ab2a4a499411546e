//! `peerpipe`, the command-line tool: talk to a board or a process from the shell.
//!
//! ```text
//! peerpipe listen tcp-listen:7000 --echo            # an echo peer
//! peerpipe request tcp:127.0.0.1:7000 ping hello    # one request, its reply on stdout
//! peerpipe bench tcp:127.0.0.1:7000                 # round trips against it
//! peerpipe recv-file tcp-listen:7001 ./in &         # files into ./in, checked by SHA-256
//! peerpipe send-file tcp:127.0.0.1:7001 data.bin    # one file, with a progress bar
//! peerpipe sniff capture.bin                        # what a byte stream holds, frame by frame
//! ```
//!
//! Run `peerpipe --help` and `peerpipe help COMMAND` for everything; the crate's README has
//! the link forms, the exit codes and the recording format.

// The doc comments of the argument types are the `--help` text (clap): they show link
// forms such as `tcp-listen:[HOST:]PORT` as they are, which rustdoc would take for links.
#![allow(rustdoc::broken_intra_doc_links)]

mod bar;
mod bridge;
mod cmd;
mod exit;
mod file;
mod link;
mod out;
mod sniff;
mod tls;
mod xfer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cmd::Answer;
use crate::exit::{CliError, Code};
use crate::link::{LinkSpec, Side};
use crate::out::Out;

const TOP_HELP: &str = "\
Links (one argument each):
  tcp:HOST:PORT  tcp-listen:[HOST:]PORT  unix:PATH  unix-listen:PATH
  serial:PORT[@BAUD]  exec:COMMAND...  filepipe:ROOT/NAME (--active/--passive)  stdio

Examples:
  peerpipe listen tcp-listen:7000 --echo           an echo peer on port 7000
  peerpipe request tcp:127.0.0.1:7000 ping hello   one request; the reply's data on stdout
  peerpipe request serial:/dev/ttyUSB0@115200 echo hi
  peerpipe recv-file tcp-listen:7000 ./incoming &  receive files into ./incoming
  peerpipe send-file tcp:127.0.0.1:7000 data.bin   send one, checked by SHA-256
  peerpipe sniff serial:/dev/ttyUSB0@115200        decode what a board sends, frame by frame";

/// Talk to a peerpipe peer (a board, a process, a server) from the shell.
#[derive(Parser, Debug)]
#[command(name = "peerpipe", version, about, after_help = format!("{TOP_HELP}\n\n{}\n\n{}", tls::HELP, exit::TABLE))]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Print JSON lines instead of human output (errors too: {"error", "code", "kind"}).
    #[arg(long, global = true)]
    json: bool,
    /// Log what happens to stderr (-v warnings and info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// For filepipe: links: this is NVFlare's external-script side (writes y/, reads x/).
    #[arg(long, global = true, conflicts_with = "passive")]
    active: bool,
    /// For filepipe: links: this is NVFlare's FL-client side (writes x/, reads y/).
    #[arg(long, global = true)]
    passive: bool,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

/// A timeout in seconds (fractions allowed).
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("`{s}`: a timeout must be above zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Args, Debug, Clone)]
struct Timeout {
    /// How long to wait for the peer (acknowledgement, then reply), in seconds; while a long
    /// message moves, how long it may go without moving.
    #[arg(short, long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    timeout: Duration,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send one request and print the reply's data.
    #[command(after_help = "\
DATA is the text given, @FILE a file's bytes, - stdin; none is empty data. Any size up to
4 GiB: a long message travels in fragments, and --timeout is then how long nothing may move
(no fragment acknowledged, none of the reply arriving), not a bound on the whole transfer.
The reply's data goes to stdout as it is (with --json: one JSON object). The request's
conversation is ended (END) before the tool exits.

Examples:
  peerpipe request tcp:127.0.0.1:7000 ping hello
  peerpipe request serial:/dev/ttyUSB0@115200 config @settings.bin > answer.bin
  echo '{\"round\": 3}' | peerpipe request 'exec:python3 worker.py' train -
  peerpipe --json request unix:/tmp/pp.sock status

Exit status: 0 reply received; 3 link error; 4 timeout; 5 peer gone; 6 peer ended or
aborted; 7 invalid input; 8 the reply came on topic `error`.")]
    Request {
        /// Where the peer is (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// The request's topic ([A-Za-z0-9_]+).
        topic: String,
        /// The data: text, @FILE or - for stdin.
        data: Option<String>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Send one message; wait until the peer acknowledged it, not for a reply.
    #[command(after_help = "\
DATA as for request: text, @FILE or -, any size up to 4 GiB (to send a file with its name
and a check that it arrived intact, use send-file).

Examples:
  peerpipe send tcp:127.0.0.1:7000 log 'door opened'
  peerpipe send serial:/dev/ttyUSB0 firmware_cfg @cfg.bin

Exit status: 0 acknowledged; 3 link error; 4 not acknowledged in time; 5 peer gone;
6 peer ended or aborted; 7 invalid input.")]
    Send {
        /// Where the peer is (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// The message's topic.
        topic: String,
        /// The data: text, @FILE or - for stdin.
        data: Option<String>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Print every message and status change as it arrives, one line each.
    #[command(after_help = "\
On a listening link (tcp-listen:, unix-listen:) every peer that connects is served and
numbered (peer=N); on any other link the one peer is, until it ends (exit 0), aborts (6)
or is gone (5).

Lines: request|reply peer=N id=ID [req_id=ID] topic=T len=L data=\"...\";
end|abort peer=N len=L data=\"...\"; gone peer=N reason=R [cause=C]; restarted peer=N;
connected peer=N. With --json, one JSON object per line with the same fields.

Examples:
  peerpipe listen tcp-listen:7000 --echo
  peerpipe listen serial:/dev/ttyUSB0@115200
  peerpipe --json listen tcp-listen:7000 --count 1 > message.json")]
    Listen {
        /// Where to listen or connect (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// Answer each request with its own data.
        #[arg(long)]
        echo: bool,
        /// Exit after this many messages (sending END to the peer that sent the last).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Answer each request with the output of a command fed its data.
    #[command(after_help = "\
CMD runs through the shell (sh -c; cmd /C on Windows) once per request, with the request's
data on stdin and PEERPIPE_TOPIC, PEERPIPE_ID and PEERPIPE_PEER set. Exit status 0: the
reply, on the request's topic, is its stdout (any size up to 4 GiB). Otherwise (or when it
cannot run) the reply is on topic `error`, with its stderr (or its exit status) as data:
`peerpipe request` then exits 8. One line is printed per request served.

Examples:
  peerpipe serve tcp-listen:7000 --exec cat
  peerpipe serve tcp-listen:7000 --exec 'tr a-z A-Z'
  peerpipe serve serial:/dev/ttyUSB0 --exec './handle.sh'")]
    Serve {
        /// Where to listen or connect (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// The command that answers (run through the shell).
        #[arg(long = "exec", value_name = "CMD")]
        exec: String,
        /// Exit after this many requests.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Measure round trips against a peer that echoes (listen --echo, serve --exec cat).
    #[command(after_help = "\
Sends COUNT requests one after the other (after a warm-up of COUNT/10, at most 100) and
checks that each reply carries the request's data. Prints the median (p50) and 99th
percentile (p99) round trip in microseconds and the requests answered per second (msgs/s).

Examples:
  peerpipe bench tcp:127.0.0.1:7000
  peerpipe bench serial:/dev/ttyUSB0@115200 --count 200 --size 64
  peerpipe --json bench 'exec:peerpipe listen stdio --echo' --count 5000")]
    Bench {
        /// Where the echoing peer is (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// Round trips to measure.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Bytes of data per request (up to 4 GiB; above 4096, each request travels in
        /// fragments).
        #[arg(long, default_value_t = 64)]
        size: u64,
        /// The requests' topic.
        #[arg(long, default_value = "bench")]
        topic: String,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Send one file (any size up to 4 GiB) to a recv-file, with its name and SHA-256.
    #[command(after_help = "\
The file goes as one message, after an offer (name, size, SHA-256) that the receiver may
refuse (the file exists there, is over its --max-size, or its name is not a plain file
name). The receiver checks the SHA-256, writes the file atomically and answers: exit 0
means it is there, intact. A progress bar (bytes, rate, time left) shows on stderr when
stderr is a terminal. --timeout is how long the transfer may go without moving; the wait
for the receiver's verdict adds a second per 32 MiB (time to check and write the file).

Examples:
  peerpipe send-file tcp:127.0.0.1:7000 firmware.bin
  peerpipe send-file serial:/dev/ttyUSB0@115200 config.json --name board.json
  peerpipe --json send-file unix:/tmp/pp.sock results.tar

Exit status: 0 received intact; 3 link error; 4 timeout; 5 peer gone; 6 peer ended or
aborted; 7 unreadable file, over 4 GiB, or a bad name; 8 the peer answered on topic
`error`; 9 digest mismatch (the receiver did not keep it); 10 refused by the receiver.")]
    SendFile {
        /// Where the receiver is (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// The file to send.
        path: PathBuf,
        /// The name the receiver gives it (default: PATH's file name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Receive files from send-file into a directory, each checked and written atomically.
    #[command(after_help = "\
Each file is checked against the SHA-256 its sender offered, written to a temporary file in
DIR, synced, and moved to DIR/NAME in one step: a file in DIR is always whole. An existing
file is not replaced (the offer is refused) unless --overwrite. One line per event:
offer, received (name, size, sha256, path), refused (reason), mismatch; --json gives them as
JSON objects. A progress bar shows on stderr when stderr is a terminal. The whole file is
held in memory while it arrives.

On a listening link every peer that connects may send files; on any other link the one
peer does, until it ends.

Examples:
  peerpipe recv-file tcp-listen:7000 ./incoming
  peerpipe recv-file serial:/dev/ttyUSB0@115200 . --count 1
  peerpipe --json recv-file unix-listen:/tmp/pp.sock /srv/drop --max-size 100000000

Exit status: 0 every file received intact (with --count N: after N files) or the peer
ended; 9 a file failed its digest check; 10 a file was refused or could not be stored;
3 link error; 5 peer gone; 6 peer aborted.")]
    RecvFile {
        /// Where to listen or connect (tcp:HOST:PORT, tcp-listen:[HOST:]PORT, unix:PATH, unix-listen:PATH, serial:PORT[@BAUD], exec:COMMAND..., filepipe:ROOT/NAME, stdio).
        link: LinkSpec,
        /// The directory the files go to.
        dir: PathBuf,
        /// Exit after this many files (received, failed or refused).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Replace a file that exists (else its offer is refused).
        #[arg(long)]
        overwrite: bool,
        /// Refuse files longer than this many bytes (also announced to the peer as the
        /// longest message taken).
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Decode a raw byte stream into frames, garbage and CRC errors, one row each.
    #[command(after_help = "\
SOURCE is a file (raw bytes, or a recording made by `bridge --record`), - for stdin, or
serial:PORT[@BAUD] to watch a serial line live.

Columns: TIME (seconds; recordings and serial ports), DIR (recordings: a>b is what the
first link of the bridge sent, b>a the second), OFFSET (byte offset in that direction's
stream), KIND (REQ, REPLY, END, ABORT, ACK, HB; CRC-ERR: sound framing, wrong CRC, with
what the frame claims; BAD: right CRC, invalid frame; GARBAGE: bytes that are no frame),
SESSION (sender's session id, hex), IDS (seq/floor/req for data; to/next/bits/room/retry
for ACK; floor/room for HB), TOPIC, LEN (data bytes), WIRE (bytes on the wire, delimiter
included), INFO (data preview, or what is wrong).

Examples:
  peerpipe sniff capture.bin
  peerpipe sniff serial:/dev/ttyUSB0@115200
  peerpipe --json sniff session.rec | jq 'select(.kind == \"crc_error\")'")]
    Sniff {
        /// A file, - for stdin, or serial:PORT[@BAUD].
        source: String,
    },
    /// Relay bytes between two links, optionally recording both directions.
    #[command(after_help = "\
Both links open at once; bytes are relayed as they come, unchanged, until one side closes.
--record FILE writes both directions, with their times, in the format `sniff` reads
(8 bytes \"PPREC01\\n\", then records: u64 LE microseconds since the start, u8 direction
0 = from the first link, 1 = from the second, u32 LE length, the bytes).

Examples:
  peerpipe bridge serial:/dev/ttyUSB0@115200 tcp-listen:0.0.0.0:7000   a board on the network
  peerpipe bridge tcp-listen:7001 tcp:127.0.0.1:7000 --record session.rec
  peerpipe sniff session.rec")]
    Bridge {
        /// The first link (a>b in a recording is what it sent).
        a: LinkSpec,
        /// The second link.
        b: LinkSpec,
        /// Record both directions to this file.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        hide = true,
        after_help = "Example: peerpipe completions bash > /etc/bash_completion.d/peerpipe"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(
        hide = true,
        after_help = "Example: peerpipe man > peerpipe.1 && man ./peerpipe.1"
    )]
    Man,
}

fn init_logs(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::ERROR,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    let side = Side {
        active: g.active,
        passive: g.passive,
        tls: g.tls.clone(),
    };
    let out = |link: &LinkSpec| Out {
        json: g.json,
        to_stderr: link.is_stdio(),
    };
    match cli.command {
        Cmd::Request {
            link,
            topic,
            data,
            timeout,
        } => cmd::request(
            &link,
            side,
            &topic,
            data.as_deref(),
            timeout.timeout,
            out(&link),
        ),
        Cmd::Send {
            link,
            topic,
            data,
            timeout,
        } => cmd::send(
            &link,
            side,
            &topic,
            data.as_deref(),
            timeout.timeout,
            out(&link),
        ),
        Cmd::Listen {
            link,
            echo,
            count,
            timeout,
        } => {
            let answer = if echo { Answer::Echo } else { Answer::None };
            cmd::listen(&link, side, answer, count, timeout.timeout, out(&link))
        }
        Cmd::Serve {
            link,
            exec,
            count,
            timeout,
        } => cmd::listen(
            &link,
            side,
            Answer::Exec(exec),
            count,
            timeout.timeout,
            out(&link),
        ),
        Cmd::Bench {
            link,
            count,
            size,
            topic,
            timeout,
        } => cmd::bench(
            &link,
            side,
            &topic,
            count,
            size,
            timeout.timeout,
            out(&link),
        ),
        Cmd::SendFile {
            link,
            path,
            name,
            timeout,
        } => file::send_file(&link, side, &path, name, timeout.timeout, out(&link)),
        Cmd::RecvFile {
            link,
            dir,
            count,
            overwrite,
            max_size,
            timeout,
        } => file::recv_file(
            &link,
            side,
            file::RecvOptions {
                dir,
                overwrite,
                max_size: max_size.unwrap_or(0),
                timeout: timeout.timeout,
            },
            count,
            out(&link),
        ),
        Cmd::Sniff { source } => {
            let out = Out {
                json: g.json,
                to_stderr: false,
            };
            let src = if source == "-" {
                sniff::Source::Stream(Box::new(std::io::stdin()))
            } else if source.starts_with("serial:") {
                let LinkSpec::Serial { port, baud } = source
                    .parse::<LinkSpec>()
                    .map_err(|e| CliError::new(Code::Usage, e.to_string()))?
                else {
                    unreachable!("serial: parses as a serial link")
                };
                let p = link::open_serial(&port, baud)
                    .map_err(|e| CliError::new(Code::Link, format!("cannot open {port}: {e}")))?;
                sniff::Source::Serial(Box::new(link::SerialReader(p)))
            } else {
                let f = std::fs::File::open(&source).map_err(|e| {
                    CliError::new(Code::Other, format!("cannot open {source}: {e}"))
                })?;
                sniff::Source::Stream(Box::new(std::io::BufReader::new(f)))
            };
            sniff::run(src, out).map_err(|e| CliError::new(Code::Other, format!("sniff: {e}")))
        }
        Cmd::Bridge { .. } if g.tls.enabled() => Err(CliError::new(
            Code::Usage,
            "bridge relays raw bytes: it takes no TLS options (put TLS on the peers' own links)",
        )),
        Cmd::Bridge { a, b, record } => bridge::run(&a, &b, record.as_deref()),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "peerpipe",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|e| CliError::new(Code::Other, format!("man: {e}"))),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.global.verbose);
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerpipe: {}", e.message);
            if json {
                println!(
                    "{}",
                    serde_json::Value::Object(obj! {
                        "error" => e.message.clone(),
                        "code" => e.code as u8,
                        "kind" => e.code.name(),
                    })
                );
            }
            ExitCode::from(e.code as u8)
        }
    }
}
