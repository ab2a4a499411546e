//! End to end: the real `peerpipe` binary, several processes talking over TCP (and Unix
//! sockets, and a child's stdin/stdout), every error path's exit code and message, and
//! `sniff` on a recording and on a hand-made byte stream.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerpipe"))
}

/// A `peerpipe` running in the background (killed when dropped); `addr` is where it
/// listens, as it said on stderr.
struct Bg {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Bg {
    fn start(args: &[&str]) -> Bg {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn peerpipe");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{args:?} never said where it listens"));
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.to_owned();
            }
        };
        Bg {
            child,
            addr,
            stderr: rx,
        }
    }

    /// `tcp:ADDR` for a TCP listener.
    fn tcp(&self) -> String {
        format!("tcp:{}", self.addr)
    }

    /// Everything the process printed on stdout (until it closed it).
    fn stdout(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).unwrap();
        }
        out
    }

    /// Waits for the process to exit by itself; returns its status and stdout.
    fn wait(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), self.stdout());
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process and returns what it printed on stdout and stderr.
    fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let out = self.stdout();
        let _ = self.child.wait();
        let err: Vec<String> = self.stderr.try_iter().collect();
        (out, err.join("\n"))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `peerpipe args` to the end (at most 60 s), with `stdin` as its input.
fn run_with(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peerpipe");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("peerpipe {args:?} (pid {pid}) did not finish in 60 s"))
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    run_with(args, b"")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks an exit code and that stderr says `says`.
#[track_caller]
fn expect_fail(o: &Output, want: i32, says: &str) {
    assert_eq!(
        code(o),
        want,
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(says),
        "stderr does not say {says:?}: {}",
        stderr(o)
    );
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A TCP port nothing listens on (bound, then freed).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Bytes that are not all alike, so that a misplaced fragment shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Fast pseudo-random bytes (xorshift64*, eight bytes a step), for large files.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A pseudo-terminal pair in raw mode, as `peerpipe-std`'s serial tests make one: the
/// master's fd, the slave kept open (so that the master never reads EIO between two
/// processes) and the slave's path, which a `serial:` link opens.
#[cfg(unix)]
#[path = "../../../peerpipe-std/tests/common/pty.rs"]
mod pty;

#[cfg(all(feature = "tls", target_os = "linux"))]
#[path = "../../../peerpipe-host/tests/support/certs.rs"]
mod certs;

mod errors;
mod files;
mod links;
#[cfg(unix)]
mod pty_link;
mod qemu;
mod sniff;
#[cfg(all(feature = "tls", target_os = "linux"))]
mod tls;
