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

#[test]
fn request_against_listen_echo_over_tcp() {
    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let link = echo.tcp();

    let o = run(&["request", &link, "ping", "hello"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello");

    let o = run(&["--json", "request", &link, "ping", "hi there"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = &json_lines(&stdout(&o))[0];
    assert_eq!(v["topic"], "ping");
    assert_eq!(v["data"], "hi there");
    assert_eq!(v["len"], 8);
    assert_eq!(v["req_id"], 0);
    assert!(v["rtt_us"].as_u64().is_some());

    // Binary data from stdin, through the listener's second and third peers.
    let data: Vec<u8> = (0..=255).collect();
    let o = run_with(&["request", &link, "bin", "-"], &data);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(o.stdout, data);

    let (out, _) = echo.stop();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "connected peer=1");
    assert_eq!(
        lines[1],
        "request peer=1 id=0 topic=ping len=5 data=\"hello\""
    );
    assert_eq!(lines[2], "end peer=1 len=0 data=\"\"");
    assert!(
        out.contains("request peer=2 id=0 topic=ping len=8 data=\"hi there\""),
        "{out}"
    );
    assert!(out.contains("request peer=3 id=0 topic=bin len=256 data=\"\\x00\\x01"));
}

#[cfg(unix)]
#[test]
fn request_over_a_unix_socket_and_through_a_child_s_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pp.sock");
    let listen = format!("unix-listen:{}", path.display());
    let echo = Bg::start(&["listen", &listen, "--echo"]);
    let o = run(&[
        "request",
        &format!("unix:{}", path.display()),
        "u",
        "over unix",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "over unix");
    drop(echo);

    // exec: runs a worker and talks over its stdin/stdout; the worker is peerpipe on stdio.
    let worker = format!(
        "exec:{} listen stdio --echo",
        env!("CARGO_BIN_EXE_peerpipe")
    );
    let o = run(&["request", &worker, "w", "through a child"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "through a child");
    // The worker's reports go to its stderr (its stdout is the link), inherited here.
    assert!(
        stderr(&o).contains("request peer=1 id=0 topic=w len=15"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn serve_exec_cat_and_a_failing_command() {
    let srv = Bg::start(&["serve", "tcp-listen:0", "--exec", "cat"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let o = run(&[
        "request",
        &srv.tcp(),
        "cat",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "from a file\n");
    let (out, _) = srv.stop();
    assert!(
        out.contains("served peer=1 id=0 reply_topic=cat reply_len=12"),
        "{out}"
    );

    // A command that fails: the reply comes on topic `error` with its stderr; exit 8.
    let srv = Bg::start(&["serve", "tcp-listen:0", "--exec", "echo broken >&2; exit 3"]);
    let o = run(&["request", &srv.tcp(), "job", "x"]);
    expect_fail(&o, 8, "the peer answered on topic `error`");
    assert_eq!(stdout(&o), "broken\n");
    let o = run(&["--json", "request", &srv.tcp(), "job", "x"]);
    assert_eq!(code(&o), 8);
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines[0]["topic"], "error");
    assert_eq!(lines[1]["kind"], "error_reply");
    assert_eq!(lines[1]["code"], 8);
}

#[test]
fn send_then_listen_with_count() {
    let listener = Bg::start(&["--json", "listen", "tcp-listen:0", "--count", "1"]);
    let o = run(&["send", &listener.tcp(), "log", "door opened"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "send prints nothing without --json");
    let (status, out) = listener.wait();
    assert_eq!(status, 0, "listen --count 1 exits by itself: {out}");
    let lines = json_lines(&out);
    assert_eq!(lines[0]["event"], "connected");
    assert_eq!(lines[1]["event"], "request");
    assert_eq!(lines[1]["topic"], "log");
    assert_eq!(lines[1]["data"], "door opened");
    assert_eq!(lines[1]["peer"], 1);
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

#[test]
fn data_of_any_size_through_request_send_listen_and_serve() {
    // 3 MiB and a bit: hundreds of fragments each way, the reply as long as the request.
    let data = pattern(3 * 1024 * 1024 + 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let at_file = format!("@{}", file.display());

    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let o = run_with(&["request", &echo.tcp(), "big", "-"], &data);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout == data, "the echo of stdin differs");
    let o = run(&["request", &echo.tcp(), "big", &at_file]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout == data, "the echo of @file differs");
    let o = run(&["bench", &echo.tcp(), "--count", "3", "--size", "100000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (out, _) = echo.stop();
    assert!(
        out.contains(&format!("request peer=1 id=0 topic=big len={}", data.len())),
        "{out}"
    );

    let srv = Bg::start(&["serve", "tcp-listen:0", "--exec", "cat"]);
    let o = run(&["request", &srv.tcp(), "cat", &at_file]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout == data, "serve --exec cat's reply differs");
    drop(srv);

    // Ten fragments (Bg reads the listener's stdout once it exited: within a pipe's buffer).
    let listener = Bg::start(&["--json", "listen", "tcp-listen:0", "--count", "1"]);
    let text = "x".repeat(40_000);
    let o = run_with(
        &["--json", "send", &listener.tcp(), "log", "-"],
        text.as_bytes(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_lines(&stdout(&o))[0]["len"], 40_000);
    let (status, out) = listener.wait();
    assert_eq!(status, 0, "{out}");
    let lines = json_lines(&out);
    assert_eq!(lines[1]["len"], 40_000);
    assert!(lines[1]["data"] == text.as_str());
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

/// `send-file` of a large file over TCP to `recv-file`: 100 MiB by default
/// (`PEERPIPE_TEST_FILE_MIB` sets another size), about 6 s in a debug build on two cores
/// (sha2 is built optimized in the dev profile: see the workspace's Cargo.toml).
#[test]
fn send_file_of_100_mib_over_tcp_arrives_intact() {
    let mib: usize = std::env::var("PEERPIPE_TEST_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let data = random_bytes(mib << 20, 7);
    let digest = sha256_hex(&data);
    let file = src.join("big file.bin");
    std::fs::write(&file, &data).unwrap();

    let recv = Bg::start(&[
        "--json",
        "recv-file",
        "tcp-listen:0",
        dst.to_str().unwrap(),
        "--count",
        "1",
    ]);
    let t0 = Instant::now();
    // --timeout 3 bounds the silence, not the transfer (which takes longer in a debug build).
    let o = run(&[
        "--json",
        "send-file",
        &recv.tcp(),
        file.to_str().unwrap(),
        "--timeout",
        "3",
    ]);
    let took = t0.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sent = &json_lines(&stdout(&o))[0];
    assert_eq!(sent["event"], "sent");
    assert_eq!(sent["name"], "big file.bin");
    assert_eq!(sent["size"], (mib << 20) as u64);
    assert_eq!(sent["sha256"], digest.as_str());
    assert_eq!(sent["verified"], true);
    assert!(sent["mb_per_s"].as_f64().unwrap() > 0.0, "{sent}");
    eprintln!("send-file of {mib} MiB over TCP: {took:?} in all, {sent}");

    let (status, out) = recv.wait();
    assert_eq!(status, 0, "{out}");
    let lines = json_lines(&out);
    let events: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["connected", "offer", "received"], "{out}");
    assert_eq!(lines[2]["sha256"], digest.as_str());
    let path = dst.join("big file.bin");
    assert_eq!(lines[2]["path"], path.to_str().unwrap());
    assert_eq!(sent["path"], lines[2]["path"]);
    // The file, and nothing else: no temporary file left behind.
    assert_eq!(names_in(&dst), ["big file.bin"]);
    let got = std::fs::read(&path).unwrap();
    assert!(got == data, "the received file differs");
}

#[test]
fn send_file_refused_exists_too_large_bad_name_and_not_a_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "new content\n").unwrap();
    std::fs::write(dst.join("a.txt"), "old content\n").unwrap();
    let (dst_s, file_s) = (dst.to_str().unwrap(), file.to_str().unwrap());

    // The file exists there: refused before it is sent, both sides exit 10.
    let recv = Bg::start(&["recv-file", "tcp-listen:0", dst_s, "--count", "1"]);
    let o = run(&["send-file", &recv.tcp(), file_s]);
    expect_fail(&o, 10, "the receiver refused a.txt (exists)");
    let (status, out) = recv.wait();
    assert_eq!(status, 10, "{out}");
    assert!(out.contains("refused peer=1 reason=exists"), "{out}");
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"old content\n");

    // --overwrite replaces it.
    let recv = Bg::start(&[
        "recv-file",
        "tcp-listen:0",
        dst_s,
        "--count",
        "1",
        "--overwrite",
    ]);
    let o = run(&["--json", "send-file", &recv.tcp(), file_s]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(recv.wait().0, 0);
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"new content\n");

    // Over --max-size, under another name; then a name that is a path, refused at home.
    let recv = Bg::start(&[
        "--json",
        "recv-file",
        "tcp-listen:0",
        dst_s,
        "--max-size",
        "5",
    ]);
    let o = run(&[
        "--json",
        "send-file",
        &recv.tcp(),
        file_s,
        "--name",
        "b.txt",
    ]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    let v = &json_lines(&stdout(&o))[0];
    assert_eq!(
        (&v["kind"], &v["code"]),
        (&Value::from("rejected"), &Value::from(10))
    );
    assert!(v["error"].as_str().unwrap().contains("too_large"), "{v}");
    let o = run(&["send-file", &recv.tcp(), file_s, "--name", "../escape.txt"]);
    expect_fail(&o, 7, "a file name has no '/'");
    let (out, _) = recv.stop();
    assert!(
        out.contains(r#""event":"refused","peer":1,"reason":"too_large""#),
        "{out}"
    );
    assert_eq!(names_in(&dst), ["a.txt"]);
    assert!(!dir.path().join("escape.txt").exists());

    // Not a file.
    let o = run(&["send-file", "tcp:127.0.0.1:1", dir.path().to_str().unwrap()]);
    expect_fail(&o, 7, "is not a regular file");
    // A peer that is no recv-file: an echo answers the offer with the offer.
    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let o = run(&["send-file", &echo.tcp(), file_s]);
    expect_fail(&o, 1, "the peer is no recv-file");
    // recv-file answers other requests on topic `error`.
    let recv = Bg::start(&["recv-file", "tcp-listen:0", dst_s]);
    let o = run(&["request", &recv.tcp(), "ping", "x"]);
    expect_fail(&o, 8, "the peer answered on topic `error`");
    assert!(stdout(&o).contains("recv-file takes only send-file's requests"));
}

/// A peer written with peerpipe-std that speaks send-file's exchange wrongly on purpose.
fn fake_peer(
    f: impl FnOnce(&peerpipe_std::PipeHandler) + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let t = peerpipe_std::TcpTransport::listen("127.0.0.1:0").unwrap();
    let addr = t.local_addr().unwrap();
    let h = peerpipe_std::PipeHandler::new(t, peerpipe_std::Config::default()).unwrap();
    let join = std::thread::spawn(move || {
        h.start().unwrap();
        f(&h);
        h.stop(true);
    });
    (format!("tcp:{addr}"), join)
}

fn next_request(h: &peerpipe_std::PipeHandler) -> peerpipe_std::Message {
    loop {
        match h.recv_timeout(Duration::from_secs(30)) {
            Some(peerpipe_std::Item::Message(m)) if m.is_request() => return m,
            Some(_) => {}
            None => panic!("no request came"),
        }
    }
}

#[test]
fn a_damaged_file_is_a_digest_mismatch_on_both_sides() {
    use peerpipe_std::Message;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.bin");
    let data = random_bytes(100_000, 3);
    std::fs::write(&file, &data).unwrap();

    // A receiver that says the file arrived damaged: send-file exits 9.
    let (link, peer) = fake_peer(|h| {
        let offer = next_request(h);
        assert_eq!(offer.topic(), "file_offer");
        h.send_to_peer(
            offer.reply_to(br#"{"accept":true}"#.to_vec()).unwrap(),
            None,
            None,
        )
        .unwrap();
        let file = next_request(h);
        assert_eq!((file.topic(), file.data().len()), ("file", 100_000));
        let verdict = format!(
            r#"{{"ok":false,"reason":"mismatch","sha256":"{}"}}"#,
            "0".repeat(64)
        );
        h.send_to_peer(file.reply_to(verdict.into_bytes()).unwrap(), None, None)
            .unwrap();
        let _ = h.recv_timeout(Duration::from_secs(5));
    });
    let o = run(&["send-file", &link, file.to_str().unwrap()]);
    expect_fail(&o, 9, "c.bin arrived damaged");
    peer.join().unwrap();

    // A sender whose bytes differ from its offer: recv-file keeps nothing, answers
    // `mismatch` with the digest it computed, and exits 9.
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let recv = Bg::start(&[
        "--json",
        "recv-file",
        "tcp-listen:0",
        dst.to_str().unwrap(),
        "--count",
        "1",
    ]);
    let addr = recv.addr.clone();
    let h = peerpipe_std::PipeHandler::new(
        peerpipe_std::TcpTransport::connect(addr.as_str()).unwrap(),
        peerpipe_std::Config::default(),
    )
    .unwrap();
    h.start().unwrap();
    let timeout = Some(Duration::from_secs(30));
    let offer = format!(
        r#"{{"name":"c.bin","size":{},"sha256":"{}"}}"#,
        data.len(),
        sha256_hex(&data)
    );
    let answer = h
        .request(
            Message::request("file_offer", offer.into_bytes()).unwrap(),
            timeout,
            None,
        )
        .unwrap();
    assert_eq!(answer.data(), br#"{"accept":true}"#);
    let mut damaged = data.clone();
    damaged[54_321] ^= 0x40;
    let verdict = h
        .request(
            Message::request("file", damaged.clone()).unwrap(),
            timeout,
            None,
        )
        .unwrap();
    let v: Value = serde_json::from_slice(verdict.data()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["reason"], "mismatch");
    assert_eq!(v["sha256"], sha256_hex(&damaged).as_str());
    h.stop(true);
    let (status, out) = recv.wait();
    assert_eq!(status, 9, "{out}");
    let lines = json_lines(&out);
    assert_eq!(lines[2]["event"], "mismatch", "{out}");
    assert_eq!(lines[3]["kind"], "mismatch", "{out}");
    assert!(names_in(&dst).is_empty(), "{:?}", names_in(&dst));
}

#[test]
fn bench_against_listen_echo() {
    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let o = run(&[
        "--json",
        "bench",
        &echo.tcp(),
        "--count",
        "200",
        "--size",
        "100",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = &json_lines(&stdout(&o))[0];
    assert_eq!(v["count"], 200);
    assert_eq!(v["size"], 100);
    let (p50, p99) = (v["p50_us"].as_u64().unwrap(), v["p99_us"].as_u64().unwrap());
    assert!(p50 > 0 && p50 <= p99, "{v}");
    assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0, "{v}");

    let o = run(&["bench", &echo.tcp(), "--count", "20"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("20 round trips of 64 B over tcp:"),
        "{text}"
    );
    assert!(
        text.contains("p50 ") && text.contains("p99 ") && text.contains("msgs/s"),
        "{text}"
    );

    // A peer that does not echo is reported.
    drop(echo);
    let srv = Bg::start(&["serve", "tcp-listen:0", "--exec", "echo nope"]);
    let o = run(&["bench", &srv.tcp(), "--count", "5"]);
    expect_fail(&o, 1, "the peer does not echo");
}

/// The table's rows, split into columns, without the header.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn bridge_records_both_directions_and_sniff_reads_them() {
    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("session.rec");
    let bridge = Bg::start(&[
        "bridge",
        "tcp-listen:0",
        &echo.tcp(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    let o = run(&["request", &bridge.tcp(), "ping", "through the bridge"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "through the bridge");
    // The requester closed its side: the bridge ends by itself.
    let (status, _) = bridge.wait();
    assert_eq!(status, 0);

    let o = run(&["sniff", rec.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.starts_with(
            "TIME       DIR OFFSET   KIND    SESSION  IDS                                TOPIC        LEN  WIRE  INFO"
        ),
        "{table}"
    );
    let rows = rows(&table);
    let find = |dir: &str, kind: &str| {
        rows.iter()
            .find(|r| r[1] == dir && r[3] == kind)
            .unwrap_or_else(|| panic!("no {dir} {kind} row in\n{table}"))
            .clone()
    };
    let req = find("a>b", "REQ");
    assert_eq!(
        &req[5..],
        [
            "seq=0",
            "floor=0",
            "id=0",
            "ping",
            "18",
            "38",
            "\"through",
            "the",
            "bridge\""
        ]
    );
    // No DATA before the peer's capabilities: the requester's first frame is a heartbeat that
    // asks for them, and its request goes once the echo's heartbeat has passed the bridge.
    // (The echo's own first heartbeat may be recorded before it: the bridge opens both links
    // at once.)
    let first = rows.iter().find(|r| r[1] == "a>b").unwrap();
    assert_eq!(
        (&first[1][..], &first[2][..], &first[3][..]),
        ("a>b", "0", "HB")
    );
    assert_eq!(first.last().map(String::as_str), Some("ask"), "{table}");
    assert_ne!(req[2], "0", "{table}");
    let time = |r: &[String]| r[0].parse::<f64>().unwrap();
    let echo_hb = find("b>a", "HB");
    assert!(time(&req) >= time(&echo_hb), "{table}");
    let caps = format!(
        "max_payload={} max_topic={}",
        peerpipe_std::FRAGMENT,
        peerpipe_std::MAX_TOPIC
    );
    assert!(echo_hb.join(" ").contains(&caps), "{table}");
    let reply = find("b>a", "REPLY");
    assert_eq!(&reply[5..10], ["seq=0", "floor=0", "id=0", "req=0", "ping"]);
    assert_eq!(reply[4], echo_hb[4], "both from the echo's session");
    let end = find("a>b", "END");
    assert_eq!(end[4], req[4], "END from the requester's session");
    let ack = find("b>a", "ACK");
    assert_eq!(ack[5], format!("to={}", req[4]));
    assert!(
        !table.contains("GARBAGE") && !table.contains("CRC-ERR"),
        "{table}"
    );

    // The same as JSON lines, with directions and times.
    let o = run(&["--json", "sniff", rec.to_str().unwrap()]);
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), rows.len());
    let req = lines.iter().find(|v| v["kind"] == "request").unwrap();
    assert_eq!(req["dir"], "a>b");
    assert_eq!(req["topic"], "ping");
    assert_eq!(req["data"], "through the bridge");
    assert_eq!(
        (&req["id"], &req["frag"]),
        (&Value::from(0), &Value::from("whole"))
    );
    assert!(req["time"].as_f64().is_some());
    drop(echo);
}

/// Frames from `docs/PROTOCOL.md` section 2.4.
const HEARTBEAT: &[u8] = &[
    0x06, 0x33, 0x0d, 0x0c, 0x0b, 0x0a, 0x08, 0x03, 0x03, 0x80, 0x03, 0x80, 0x01, 0x20, 0x05, 0xc6,
    0x04, 0x93, 0x3d, 0x00,
];
const REQUEST: &[u8] = &[
    0x06, 0x31, 0x04, 0x03, 0x02, 0x01, 0x0b, 0x05, 0x04, 0x05, 0x04, 0x70, 0x69, 0x6e, 0x67, 0x68,
    0x69, 0x05, 0x59, 0x92, 0x20, 0x78, 0x00,
];
const ACK: &[u8] = &[
    0x0f, 0x32, 0x0d, 0x0c, 0x0b, 0x0a, 0x04, 0x03, 0x02, 0x01, 0x05, 0x02, 0x02, 0x80, 0x02, 0x05,
    0xd4, 0x7e, 0x23, 0x7f, 0x00,
];
const END: &[u8] = &[
    0x11, 0x31, 0x04, 0x03, 0x02, 0x01, 0x02, 0x06, 0x06, 0x06, 0x62, 0x79, 0x65, 0xae, 0xfa, 0x04,
    0x7a, 0x00,
];
/// A request of 9 bytes in three fragments.
const FRAGMENTS: [&[u8]; 3] = [
    &[
        0x15, 0x31, 0x04, 0x03, 0x02, 0x01, 0x08, 0x08, 0x08, 0x08, 0x02, 0x66, 0x77, 0x09, 0x61,
        0x62, 0x63, 0x20, 0x29, 0xbd, 0xe9, 0x00,
    ],
    &[
        0x12, 0x31, 0x04, 0x03, 0x02, 0x01, 0x0c, 0x09, 0x08, 0x08, 0x03, 0x64, 0x65, 0x66, 0xae,
        0x69, 0x10, 0x37, 0x00,
    ],
    &[
        0x12, 0x31, 0x04, 0x03, 0x02, 0x01, 0x04, 0x0a, 0x08, 0x08, 0x06, 0x67, 0x68, 0x69, 0x23,
        0x45, 0x48, 0x1f, 0x00,
    ],
];

#[test]
fn sniff_a_hand_made_stream_with_garbage_and_a_corrupted_frame() {
    let mut stream = vec![0x55, 0x13, 0x77]; // noise right before a frame
    stream.extend(HEARTBEAT);
    let mut corrupt = REQUEST.to_vec();
    corrupt[13] ^= 0x01; // "ping" (from byte 11) becomes "piog": the CRC no longer matches
    stream.extend(&corrupt);
    stream.extend([0xde, 0xad, 0xbe, 0xef, 0x00]); // garbage between delimiters
    stream.extend(ACK);
    stream.extend(REQUEST);
    for fragment in FRAGMENTS {
        stream.extend(fragment);
    }
    stream.extend(END);
    stream.extend([0x01, 0x02]); // cut off at the end
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.bin");
    std::fs::write(&file, &stream).unwrap();

    let o = run(&["sniff", file.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let expected = "\
OFFSET   KIND    SESSION  IDS                                TOPIC        LEN  WIRE  INFO
0        GARBAGE -        -                                  -              -     3  noise before a frame
3        HB      0a0b0c0d floor=3                            -              -    20  room=3 window=384 max_payload=128 max_topic=32 max_message=0
23       CRC-ERR 01020304 seq=5 floor=4 id=5                 piog           3    23  REQ with CRC 78209259, content gives 4031fdf5
46       GARBAGE -        -                                  -              -     5  invalid COBS encoding
51       ACK     0a0b0c0d to=01020304 next=5 bits=0x2        -              -    21  room=2 window=256
72       REQ     01020304 seq=5 floor=4 id=5                 ping           3    23  \"hi\\x00\"
95       REQ     01020304 seq=8 floor=8 id=8 total=9         fw             3    22  \"abc\"
117      REQ     01020304 seq=9 floor=8 id=8 at=3            -              3    19  \"def\"
136      REQ     01020304 seq=10 floor=8 id=8 at=6 last      -              3    19  \"ghi\"
155      END     01020304 seq=6 floor=6 id=6                 -              3    18  \"bye\"
173      GARBAGE -        -                                  -              -     2  incomplete: no delimiter before the end
";
    assert_eq!(stdout(&o), expected);

    // The same from stdin, as JSON lines.
    let o = run_with(&["--json", "sniff", "-"], &stream);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    let kinds: Vec<&str> = lines.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "garbage",
            "heartbeat",
            "crc_error",
            "garbage",
            "ack",
            "request",
            "request",
            "request",
            "request",
            "end",
            "garbage"
        ]
    );
    assert_eq!(lines[1]["max_payload"], 128);
    assert_eq!(lines[1]["max_topic"], 32);
    assert_eq!(lines[1]["ask"], false);
    assert_eq!(lines[2]["claimed_kind"], "request");
    assert_eq!(lines[2]["topic"], "piog");
    assert_eq!(lines[2]["crc"], "78209259");
    assert_eq!(lines[2]["crc_computed"], "4031fdf5");
    assert_eq!(lines[4]["bitmap"], 2);
    assert_eq!(lines[4]["window"], 256);
    assert_eq!(lines[5]["data"], "hi\u{0}");
    assert_eq!(lines[5]["frag"], "whole");
    // The fragments: `offset` stays the row's place in the stream, `at` is the fragment's in
    // its message.
    let frags: Vec<_> = lines[6..9]
        .iter()
        .map(|v| {
            (
                v["offset"].as_u64().unwrap(),
                v["id"].as_u64().unwrap(),
                v["frag"].as_str().unwrap(),
                v["total"].as_u64(),
                v["at"].as_u64(),
                v["data"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        frags,
        [
            (95, 8, "first", Some(9), None, "abc"),
            (117, 8, "middle", None, Some(3), "def"),
            (136, 8, "last", None, Some(6), "ghi"),
        ]
    );
    assert_eq!(lines[6]["topic"], "fw");
    assert_eq!(lines[7].get("topic"), None);
    assert_eq!(lines[9]["data"], "bye");
    assert_eq!(lines[10]["offset"], 173);
}

#[test]
fn bad_link_syntax_is_a_usage_error_that_says_what_was_expected() {
    let o = run(&["request", "tcp:7000", "ping"]);
    expect_fail(&o, 2, "expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:7000");
    let o = run(&["listen", "tcp-listen:http"]);
    expect_fail(&o, 2, "expected tcp-listen:PORT or tcp-listen:HOST:PORT");
    let o = run(&["request", "serial:/dev/ttyUSB0@fast", "ping"]);
    expect_fail(&o, 2, "expected serial:PORT or serial:PORT@BAUD");
    let o = run(&["request", "udp:host:1", "ping"]);
    expect_fail(&o, 2, "unknown link kind `udp:`");
    let o = run(&["request", "exec:", "ping"]);
    expect_fail(&o, 2, "no command");
    let o = run(&["request", "filepipe:/tmp/x/pipe", "ping"]);
    expect_fail(&o, 2, "needs exactly one of --active");
    let o = run(&["request", "tcp:127.0.0.1:1", "ping", "--timeout", "0"]);
    expect_fail(&o, 2, "a timeout must be above zero");
}

#[test]
fn connection_refused_and_missing_command_are_link_errors() {
    let link = format!("tcp:127.0.0.1:{}", free_port());
    let o = run(&["request", &link, "ping"]);
    expect_fail(&o, 3, &format!("cannot open {link}: Connection refused"));
    let o = run(&["send", &link, "log", "x"]);
    expect_fail(&o, 3, "Connection refused");
    let o = run(&["bench", &link]);
    expect_fail(&o, 3, "Connection refused");
    let o = run(&["--json", "request", &link, "ping"]);
    assert_eq!(code(&o), 3);
    let v = &json_lines(&stdout(&o))[0];
    assert_eq!(v["kind"], "link");
    assert_eq!(v["code"], 3);

    let o = run(&["request", "exec:/nonexistent/peerpipe-worker", "ping"]);
    expect_fail(&o, 3, "cannot open exec:/nonexistent/peerpipe-worker");
    let o = run(&["bridge", &link, "tcp:127.0.0.1:1"]);
    expect_fail(&o, 3, "cannot open tcp:");
}

#[test]
fn no_reply_in_time_is_a_timeout() {
    // listen without --echo acknowledges the request and never answers it.
    let quiet = Bg::start(&["listen", "tcp-listen:0"]);
    let t0 = Instant::now();
    let o = run(&["request", &quiet.tcp(), "ping", "x", "--timeout", "0.5"]);
    expect_fail(&o, 4, "request 0 was delivered but not answered in time");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// A long send to a peer that stopped (SIGSTOP: its socket accepts, nothing answers) fails
/// once nothing has moved for --timeout, like a short one.
#[cfg(unix)]
#[test]
fn a_stalled_long_send_times_out() {
    let frozen = Bg::start(&["listen", "tcp-listen:0"]);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(frozen.child.id() as i32, libc::SIGSTOP) },
        0
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, pattern(1 << 20)).unwrap();
    let t0 = Instant::now();
    let o = run(&[
        "send",
        &frozen.tcp(),
        "big",
        &format!("@{}", file.display()),
        "--timeout",
        "1",
    ]);
    expect_fail(&o, 4, "send: not delivered: timed out");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let o = run(&[
        "send-file",
        &frozen.tcp(),
        file.to_str().unwrap(),
        "--timeout",
        "1",
    ]);
    expect_fail(&o, 4, "offer");
    drop(frozen); // SIGKILL ends a stopped process too
}

#[test]
fn peer_end_and_peer_gone() {
    // listen --count 1 ends the conversation (END) when the request arrives.
    let ender = Bg::start(&["listen", "tcp-listen:0", "--count", "1"]);
    let o = run(&["request", &ender.tcp(), "ping", "x"]);
    expect_fail(&o, 6, "peer ended");
    assert_eq!(ender.wait().0, 0);

    // A child that exits at once: the link breaks under the request.
    let o = run(&["request", "exec:sh -c 'exit 0'", "ping", "x"]);
    expect_fail(&o, 5, "the link to the peer broke");
    let o = run(&["listen", "exec:sh -c 'exit 0'"]);
    expect_fail(&o, 5, "the peer is gone");
}

#[test]
fn invalid_input_is_refused_before_anything_is_sent() {
    let link = format!("tcp:127.0.0.1:{}", free_port());
    let o = run(&["request", &link, "bad topic"]);
    expect_fail(&o, 7, "topic");
    let o = run(&["request", &link, "_END_"]);
    expect_fail(&o, 7, "invalid request");
    // Over MAX_PAYLOAD (4 GiB): a sparse file, refused from its length before it is read.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(peerpipe_std::MAX_PAYLOAD as u64 + 1)
        .unwrap();
    let o = run(&["send", &link, "big", &format!("@{}", huge.display())]);
    expect_fail(
        &o,
        7,
        "is 4294967297 bytes; a message carries at most 4294967296 bytes (4 GiB)",
    );
    let o = run(&["request", &link, "t", "@/nonexistent/file"]);
    expect_fail(&o, 7, "cannot read /nonexistent/file");
    let o = run(&["bench", &link, "--size", "4294967297"]);
    expect_fail(
        &o,
        7,
        "--size is 4294967297 bytes; a message carries at most 4294967296 bytes",
    );
}

#[test]
fn help_shows_examples_exit_codes_completions_and_man_page() {
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for want in [
        "Exit status:",
        "3  link error",
        "4  timeout",
        "5  peer gone",
        "6  the peer ended",
        "7  refused",
        "tcp-listen:[HOST:]PORT",
        "9  digest mismatch",
        "10  rejected by the peer",
        "peerpipe send-file tcp:127.0.0.1:7000 data.bin",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    for cmd in [
        "request",
        "send",
        "listen",
        "serve",
        "bench",
        "send-file",
        "recv-file",
        "sniff",
        "bridge",
    ] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(code(&o), 0);
        let text = stdout(&o);
        assert!(text.contains("Examples:"), "{cmd} --help has no example");
        assert!(
            text.contains(&format!("peerpipe {cmd} ")) || text.contains("peerpipe --json"),
            "{cmd}: {text}"
        );
    }
    let o = run(&["completions", "bash"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("_peerpipe"));
    let o = run(&["man"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with(".ie") || stdout(&o).contains(".TH peerpipe"));
}

#[test]
fn request_over_nvflare_s_file_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let link = format!("filepipe:{}", dir.path().join("pipe1").display());
    let mut echo = bin()
        .args(["--passive", "listen", &link, "--echo", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = run(&["--active", "request", &link, "ping", "via files"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // On a FilePipe, data is the FOBS file's msgpack body: text that is not one msgpack
    // value goes out as a msgpack bin (c4 LEN ...), and the echo sends that body back.
    assert_eq!(o.stdout, b"\xc4\x09via files");
    let deadline = Instant::now() + Duration::from_secs(30);
    while echo.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "listen --count 1 did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = echo.kill();
}

/// A pseudo-terminal pair in raw mode, as `peerpipe-std`'s serial tests make one: the
/// master's fd, the slave kept open (so that the master never reads EIO between two
/// processes) and the slave's path, which a `serial:` link opens.
#[cfg(unix)]
#[path = "../../peerpipe-std/tests/common/pty.rs"]
mod pty;

/// `peerpipe ARGS` on the master of `pty` (its stdin and stdout, a `stdio` link); stderr
/// (where its reports go) captured.
#[cfg(unix)]
fn on_master(pty: &pty::Pty, args: &[&str]) -> Child {
    bin()
        .args(args)
        .stdin(pty.master.try_clone().unwrap())
        .stdout(pty.master.try_clone().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peerpipe")
}

/// Waits (at most 60 s) for `child` to exit: its status and stderr.
#[cfg(unix)]
fn finish(child: Child) -> (i32, String) {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let o = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("peerpipe (pid {pid}) did not finish in 60 s"))
        .unwrap();
    (code(&o), stderr(&o))
}

/// Two `peerpipe` processes over a pseudo-terminal pair: one on the slave as a serial port
/// (`serial:/dev/pts/N@115200`), the other on the master as its stdin/stdout (`stdio`).
/// A fresh pair for each conversation: bytes one leaves in a pty's buffers are not the next
/// one's.
#[cfg(unix)]
#[test]
fn request_and_send_file_over_a_pseudo_terminal() {
    let p = pty::open_pty();
    let serial = format!("serial:{}@115200", p.path);
    let echo = on_master(&p, &["listen", "stdio", "--echo"]);
    let o = run(&["request", &serial, "ping", "over a pty"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "over a pty");
    let (status, reports) = finish(echo);
    assert_eq!(status, 0, "listen ends with the requester's END: {reports}");
    assert!(
        reports.contains("request peer=1 id=0 topic=ping len=10 data=\"over a pty\""),
        "{reports}"
    );

    let p = pty::open_pty();
    let serial = format!("serial:{}@115200", p.path);
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let data = random_bytes(100_000, 11);
    let file = dir.path().join("over-pty.bin");
    std::fs::write(&file, &data).unwrap();
    let recv = on_master(
        &p,
        &[
            "--json",
            "recv-file",
            "stdio",
            dst.to_str().unwrap(),
            "--count",
            "1",
        ],
    );
    let o = run(&["--json", "send-file", &serial, file.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sent = &json_lines(&stdout(&o))[0];
    assert_eq!(sent["sha256"], sha256_hex(&data).as_str());
    assert_eq!(sent["verified"], true);
    let (status, reports) = finish(recv);
    assert_eq!(status, 0, "{reports}");
    let received = json_lines(&reports)
        .into_iter()
        .find(|v| v["event"] == "received")
        .unwrap_or_else(|| panic!("no `received` in {reports}"));
    assert_eq!(received["sha256"], sent["sha256"]);
    assert!(std::fs::read(dst.join("over-pty.bin")).unwrap() == data);
}

/// QEMU running the echo firmware (`firmware/qemu-echo`), killed when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts QEMU on the firmware `elf` for `board`, its UART a TCP client of `addr`.
fn start_qemu(elf: &str, board: &str, addr: &str) -> Qemu {
    let (program, machine): (&str, &[&str]) = match board {
        "lm3s6965evb" => (
            "qemu-system-arm",
            &["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
        ),
        "microbit" => (
            "qemu-system-arm",
            &["-cpu", "cortex-m0", "-machine", "microbit"],
        ),
        "virt" => (
            "qemu-system-riscv32",
            &["-machine", "virt", "-bios", "none"],
        ),
        other => panic!("unknown board {other} (lm3s6965evb, microbit or virt)"),
    };
    let child = Command::new(program)
        .args(machine)
        .args(["-display", "none", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-kernel", elf])
        .args(["-serial", &format!("tcp:{addr},nodelay=on")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Qemu(child)
}

/// The data of a `--json` reply: `data` (UTF-8) or `data_hex`.
fn data_of(v: &Value) -> Vec<u8> {
    match (v["data"].as_str(), v["data_hex"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (_, Some(hex)) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        _ => panic!("no data in {v}"),
    }
}

/// CRC-32 (IEEE, as the firmware's `crc` computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `peerpipe --json request tcp-listen:0 ...` answered by the echo firmware in QEMU, whose
/// UART connects to it (one QEMU run per request): the reply's JSON object.
fn request_qemu(elf: &str, board: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json", "request", "tcp-listen:0"];
    all.extend(args);
    all.extend(["--timeout", "30"]);
    let requester = Bg::start(&all);
    let _qemu = start_qemu(elf, board, &requester.addr);
    let (status, out) = requester.wait();
    assert_eq!(status, 0, "{args:?}: {out}");
    json_lines(&out).remove(0)
}

/// `peerpipe request` against the echo firmware in QEMU (what `cargo xtask qemu` runs after
/// `qemu_host`, with `PEERPIPE_QEMU_ELF` and `PEERPIPE_QEMU_BOARD` set): a short echo (the
/// firmware answers with the data reversed), a 32 KiB `crc` request that the firmware
/// streams into a CRC-32 (fragments cut to its 128-byte payloads), and an 8 KiB `gen` reply
/// checked byte by byte.
#[test]
#[ignore = "needs QEMU and the echo firmware: cargo xtask qemu runs it"]
fn request_against_the_qemu_echo_firmware() {
    let elf = std::env::var("PEERPIPE_QEMU_ELF")
        .expect("PEERPIPE_QEMU_ELF: the echo firmware's ELF (firmware/qemu-echo/target/...)");
    let board = std::env::var("PEERPIPE_QEMU_BOARD").unwrap_or_else(|_| "lm3s6965evb".into());

    let v = request_qemu(&elf, &board, &["echo", "hello board"]);
    assert_eq!(v["data"], "draob olleh", "{v}");

    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(32 * 1024, 5);
    let file = dir.path().join("crc.bin");
    std::fs::write(&file, &data).unwrap();
    let t0 = Instant::now();
    let v = request_qemu(&elf, &board, &["crc", &format!("@{}", file.display())]);
    assert_eq!(data_of(&v), crc32(&data).to_le_bytes(), "{v}");
    eprintln!(
        "{board}: crc of 32 KiB through peerpipe request in {:?}",
        t0.elapsed()
    );

    let len: u32 = 8 * 1024;
    let file = dir.path().join("gen.bin");
    std::fs::write(&file, len.to_le_bytes()).unwrap();
    let v = request_qemu(&elf, &board, &["gen", &format!("@{}", file.display())]);
    let want: Vec<u8> = (0..len as usize)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) & 0xFF) as u8)
        .collect();
    assert_eq!(v["len"], len);
    assert!(data_of(&v) == want, "the gen reply differs: {v}");
}

#[cfg(all(feature = "tls", target_os = "linux"))]
#[path = "../../peerpipe-host/tests/support/certs.rs"]
mod certs;

/// Two `peerpipe` processes over TLS with mutual authentication; a client with a
/// certificate of another CA, one with none and one that speaks plain TCP are refused (exit
/// 3, with the reason) while the listener serves on; TLS options where they do not apply
/// are usage errors.
#[cfg(all(feature = "tls", target_os = "linux"))]
#[test]
fn request_over_tls_with_mutual_authentication_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = certs::Ca::new("cli test CA");
    let (server, client) = (ca.issue(&["localhost"]), ca.issue(&["client"]));
    let other = certs::Ca::new("another CA").issue(&["client"]);
    let ca_pem = file("ca.pem", &ca.pem);
    let (server_pem, server_key) = (
        file("server.pem", &server.cert_pem),
        file("server.key", &server.key_pem),
    );
    let (client_pem, client_key) = (
        file("client.pem", &client.cert_pem),
        file("client.key", &client.key_pem),
    );
    let (other_pem, other_key) = (
        file("other.pem", &other.cert_pem),
        file("other.key", &other.key_pem),
    );
    let echo = Bg::start(&[
        "listen",
        "tcp-listen:0",
        "--echo",
        "--tls-cert",
        &server_pem,
        "--tls-key",
        &server_key,
        "--tls-ca",
        &ca_pem,
    ]);
    let port = echo.addr.rsplit_once(':').unwrap().1.to_owned();
    let link = format!("tcp:localhost:{port}");

    let good = [
        "--tls-ca",
        &ca_pem,
        "--tls-cert",
        &client_pem,
        "--tls-key",
        &client_key,
    ];
    let o = run(&[&["request", &link, "ping", "over tls"][..], &good].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "over tls");

    let wrong = [
        "--tls-ca",
        &ca_pem,
        "--tls-cert",
        &other_pem,
        "--tls-key",
        &other_key,
    ];
    let o = run(&[&["request", &link, "ping", "x"][..], &wrong].concat());
    expect_fail(&o, 3, "TLS: the peer refused this end");
    let o = run(&["request", &link, "ping", "x", "--tls-ca", &ca_pem]);
    expect_fail(&o, 3, "CertificateRequired");
    // A client that speaks no TLS gets an alert and the end of the connection. (Not a plain
    // `peerpipe request`: it would reconnect at once after each refusal, for its timeout.)
    let mut plain = std::net::TcpStream::connect(&echo.addr).unwrap();
    plain.write_all(b"\0not TLS at all\0").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert_eq!(answer.first(), Some(&21), "a TLS alert record: {answer:?}");
    // The server's own name is checked.
    let o = run(&[
        &[
            "request",
            &link,
            "ping",
            "x",
            "--tls-server-name",
            "elsewhere",
        ][..],
        &good,
    ]
    .concat());
    expect_fail(&o, 3, "certificate not valid for name");

    let o = run(&[&["request", &link, "ping", "again"][..], &good].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "again");
    let (out, _) = echo.stop();
    assert!(
        out.contains("data=\"over tls\"") && out.contains("data=\"again\""),
        "{out}"
    );

    let o = run(&["request", "unix:/tmp/x.sock", "ping", "--tls-ca", &ca_pem]);
    expect_fail(
        &o,
        2,
        "TLS options apply to tcp: and tcp-listen: links only",
    );
    let o = run(&["request", &link, "ping", "--tls"]);
    expect_fail(&o, 2, "needs --tls-ca FILE");
    let o = run(&["listen", "tcp-listen:0", "--tls"]);
    expect_fail(&o, 2, "needs --tls-cert FILE and --tls-key FILE");
    let o = run(&["request", &link, "ping", "--tls-ca", "/nonexistent/ca.pem"]);
    expect_fail(&o, 1, "cannot read /nonexistent/ca.pem");
}
