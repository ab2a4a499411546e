//! Interoperation with the real NVFlare 2.8.3 (PyPI) over its FilePipe.
//!
//! The Python side runs `tests/nvflare/echo_peer.py` or `tests/nvflare/driver.py` with the
//! interpreter named by `PEERPIPE_NVFLARE_PYTHON` (a venv with `nvflare==2.8.3`; `cargo xtask
//! test` makes one and sets it). Without it every test here prints why it is skipped and
//! passes. The Rust side is the examples' own code ([`peerpipe_examples::nvflare`]): in this
//! process, or, where it must be killed, in this test binary re-run as a worker
//! (`PEERPIPE_NVFLARE_WORKER` set, see [`echo_worker`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peerpipe_examples::nvflare::{client, echo, Settings};
use peerpipe_nvflare::fobs::{self, Value};
use peerpipe_std::{Config, GoneReason, Item, Message, Mode, PipeHandler, Status};

mod proc;
mod sha256;

use proc::Proc;
use sha256::sha256_hex;

const PYTHON_ENV: &str = "PEERPIPE_NVFLARE_PYTHON";
const WORKER_ENV: &str = "PEERPIPE_NVFLARE_WORKER";
/// Bound on every wait for the other process (the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(30);

/// The interpreter, or `None` (the test is skipped, and says so).
fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os(PYTHON_ENV) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            // Straight to stderr, past the test harness's capture: a skip must be seen.
            let line = format!(
                "{test}: skipped: set {PYTHON_ENV} to a python with nvflare==2.8.3 \
                 (cargo xtask test nvflare does)\n"
            );
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
    }
}

/// Fast NVFlare-side settings, matched by `fast_config` (see `tests/nvflare/common.py`).
fn fast_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_secs(3),
        resend_interval: Some(Duration::from_secs(1)),
        max_resends: None,
        default_request_timeout: Duration::from_secs(10),
        max_message: 0,
    }
}

/// A fresh pipe root (pre-created: NVFlare removes a root it created itself).
fn fresh_root(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("peerpipe-nvflare-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn settings(root: &Path, mode: Mode, count: usize) -> Settings {
    Settings {
        mode,
        root: root.to_owned(),
        name: "pipe".into(),
        count,
        config: fast_config(),
        file_check_interval: Duration::from_millis(10),
    }
}

fn other(mode: Mode) -> &'static str {
    match mode {
        Mode::Active => "passive",
        Mode::Passive => "active",
    }
}

/// The Rust echo in its own process: this binary re-run with `PEERPIPE_NVFLARE_WORKER`.
fn rust_echo(root: &Path, mode: Mode) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    let mode = match mode {
        Mode::Active => "active",
        Mode::Passive => "passive",
    };
    cmd.args(["--exact", "echo_worker", "--nocapture", "--quiet"])
        .env(WORKER_ENV, format!("{mode}:{}", root.display()));
    Proc::spawn(cmd, "rust echo")
}

/// The worker: the `nvflare_echo` example's code, with the fast settings.
#[test]
fn echo_worker() {
    let Some(arg) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let arg = arg.into_string().unwrap();
    let (mode, root) = arg.split_once(':').unwrap();
    let mode = if mode == "active" {
        Mode::Active
    } else {
        Mode::Passive
    };
    if let Err(e) = echo(&settings(Path::new(root), mode, 0)) {
        eprintln!("echo worker: {e}");
        std::process::exit(1);
    }
}

fn rust_client_with_python_echo(test: &str, mode: Mode) {
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let mut peer = Proc::python(&py, "echo_peer.py", other(mode), &root, &[]);
    let s = settings(&root, mode, 30);
    let report = client(&s, &mut |_| {}).unwrap_or_else(|e| panic!("client: {e}"));
    assert_eq!(report.rtts.len(), 30);
    assert_eq!(report.end_data, Some(Value::from("bye")));
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert!(peer.wait().success(), "the Python echo failed");
    let mut rtts = report.rtts;
    rtts.sort();
    eprintln!(
        "{test}: rtt p50 {:?} max {:?}",
        rtts[rtts.len() / 2],
        rtts[rtts.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn rust_client_active_python_echo_passive() {
    rust_client_with_python_echo("client_active", Mode::Active);
}

#[test]
fn rust_client_passive_python_echo_active() {
    rust_client_with_python_echo("client_passive", Mode::Passive);
}

fn python_driver_with_rust_echo(test: &str, mode: Mode) {
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let mut echo = rust_echo(&root, mode);
    let mut driver = Proc::python(&py, "driver.py", other(mode), &root, &["--count", "24"]);
    assert!(driver.wait().success(), "the Python driver failed");
    assert!(echo.wait().success(), "the Rust echo failed");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn python_driver_active_rust_echo_passive() {
    python_driver_with_rust_echo("echo_passive", Mode::Passive);
}

#[test]
fn python_driver_passive_rust_echo_active() {
    python_driver_with_rust_echo("echo_active", Mode::Active);
}

/// NVFlare's own END is withdrawn after 0.1 s unread; ours waits for a slow reader.
#[test]
fn rust_end_reaches_a_slow_python_reader() {
    let test = "slow_reader";
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let mut echo = rust_echo(&root, Mode::Active);
    let mut driver = Proc::python(
        &py,
        "driver.py",
        "passive",
        &root,
        &["--count", "2", "--read-interval", "0.5"],
    );
    assert!(driver.wait().success(), "the Python driver failed");
    assert!(echo.wait().success(), "the Rust echo failed");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn python_reports_peer_gone_when_rust_is_killed() {
    let test = "rust_killed";
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let mut echo = rust_echo(&root, Mode::Passive);
    let mut driver = Proc::python(&py, "driver.py", "active", &root, &["--expect-gone"]);
    driver.wait_line("pinged");
    echo.child.kill().unwrap();
    let killed = Instant::now();
    let line = driver.wait_line("status");
    assert!(line.contains("_PEER_GONE_"), "{line}");
    assert_eq!(driver.wait().code(), Some(3));
    // Python's heartbeat_timeout is 3 s.
    assert!(killed.elapsed() < Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn rust_reports_gone_when_python_is_killed() {
    let test = "python_killed";
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let peer = Proc::python(&py, "echo_peer.py", "passive", &root, &[]);
    let s = settings(&root, Mode::Active, 0);
    let h = PipeHandler::new(s.transport(), s.config).unwrap();
    h.start().unwrap();
    let reply = h
        .request(Message::request("ping", vec![0x2a]).unwrap(), None, None)
        .unwrap();
    assert_eq!(reply.data(), [0x2a]);
    drop(peer); // SIGKILL
    let killed = Instant::now();
    match h.recv_timeout(PATIENCE) {
        Some(Item::Status(Status::Gone { reason, .. })) => assert_eq!(reason, GoneReason::Silence),
        other => panic!("expected GONE, got {other:?}"),
    }
    // Our heartbeat_timeout is 3 s.
    let after = killed.elapsed();
    assert!(
        after > Duration::from_secs(2) && after < Duration::from_secs(20),
        "{after:?}"
    );
    h.stop(true);
    let _ = std::fs::remove_dir_all(&root);
}

/// Files NVFlare's reader would die on are removed and reported; the conversation goes on.
#[test]
fn bad_files_are_removed_and_reported() {
    let test = "bad_files";
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    // A tuple as FOBS writes it: a map with `__fobs_type__`.
    let tuple = root.join("tuple.fobs");
    let made = Command::new(&py)
        .args([
            "-c",
            "import sys; from nvflare.fuel.utils import fobs; fobs.dumpf((1, 2), sys.argv[1])",
        ])
        .arg(&tuple)
        .status()
        .unwrap();
    assert!(made.success());
    let mut peer = Proc::python(&py, "echo_peer.py", "passive", &root, &[]);
    let s = settings(&root, Mode::Active, 12);
    // We are ACTIVE: we read x/.
    let read_dir = root.join("pipe/x");
    let bad = [
        "not_a_message.txt",
        "REQ.ping.00000000-0000-4000-8000-000000000001",
        "REQ.ping.00000000-0000-4000-8000-000000000002",
    ];
    let mut poison = |i: usize| {
        if i != 3 {
            return;
        }
        std::fs::write(read_dir.join(bad[0]), b"hello").unwrap();
        std::fs::write(read_dir.join(bad[1]), b"\x64\x00garbage").unwrap();
        std::fs::rename(&tuple, read_dir.join(bad[2])).unwrap();
    };
    let report = client(&s, &mut poison).unwrap_or_else(|e| panic!("client: {e}"));
    assert_eq!(report.rtts.len(), 12);
    assert!(peer.wait().success(), "the Python echo failed");
    // Each was removed before it was reported.
    let mut rejected: Vec<(String, String)> = report
        .rejected
        .into_iter()
        .map(|r| (r.file, r.reason))
        .collect();
    rejected.sort();
    let files: Vec<&str> = rejected.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, [bad[1], bad[2], bad[0]], "{rejected:?}");
    assert!(rejected[0].1.contains("truncated"), "{rejected:?}");
    assert!(rejected[1].1.contains("\"tuple\""), "{rejected:?}");
    assert!(rejected[2].1.contains("bad file name"), "{rejected:?}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A value of 10 MiB or more goes into a datum section after the body when NVFlare writes
/// it (`fobs.dumpf`); the codec resolves the section back into the value, for bytes and str.
#[test]
fn fobs_datum_sections_written_by_nvflare_are_read() {
    let Some(py) = python("fobs_datum_sections_written_by_nvflare_are_read") else {
        return;
    };
    let dir = fresh_root("fobs_datum");
    let path = dir.join("big.fobs");
    let status = Command::new(py)
        .arg("-c")
        .arg(
            "import sys\n\
             from nvflare.fuel.utils import fobs\n\
             n = 10 * 1024 * 1024 + 3\n\
             big = bytes(i % 251 for i in range(n))\n\
             fobs.dumpf({'big': big, 's': 'small', 't': 'x' * n}, sys.argv[1])\n",
        )
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let file = std::fs::read(&path).unwrap();
    let n = 10 * 1024 * 1024 + 3;
    assert!(file.len() > 2 * n, "NVFlare wrote {} bytes", file.len());
    let body = peerpipe_nvflare::fobs::from_file(&file).expect("sections resolved");
    let value = peerpipe_nvflare::fobs::decode(&body).unwrap();
    let Value::Map(entries) = value else {
        panic!("not a map: {value:?}");
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == Value::from(key))
            .map(|(_, v)| v)
            .unwrap()
    };
    match get("big") {
        Value::Bin(b) => {
            assert_eq!(b.len(), n);
            assert!(b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        }
        other => panic!("big: {:?}", std::mem::discriminant(other)),
    }
    assert_eq!(get("s"), &Value::from("small"));
    match get("t") {
        Value::Str(s) => assert!(s.len() == n && s.bytes().all(|c| c == b'x')),
        other => panic!("t: {:?}", std::mem::discriminant(other)),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other way round: a file we write (`fobs::write_file`) with bytes and str values of
/// 10 MiB or more, at the top, in a dict and in a list, is loaded by NVFlare's own
/// `fobs.loadf` with every value in place.
#[test]
fn fobs_datum_sections_we_write_are_read_by_nvflare() {
    let Some(py) = python("fobs_datum_sections_we_write_are_read_by_nvflare") else {
        return;
    };
    let dir = fresh_root("fobs_datum_written");
    let n = 10 * 1024 * 1024 + 3;
    let big = |seed: u8| Value::Bin((0..n).map(|i| (i % 251) as u8 ^ seed).collect());
    let value = Value::Map(vec![
        ("big".into(), big(0)),
        ("s".into(), "small".into()),
        ("t".into(), Value::Str("x".repeat(n))),
        ("l".into(), Value::List(vec![1.into(), big(7)])),
    ]);
    let path = dir.join("ours.fobs");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    fobs::write_file(&fobs::encode(&value).unwrap(), &mut out).unwrap();
    out.into_inner().unwrap();
    let status = Command::new(py)
        .arg("-c")
        .arg(
            "import sys\n\
             from nvflare.fuel.utils import fobs\n\
             v = fobs.loadf(sys.argv[1])\n\
             n = 10 * 1024 * 1024 + 3\n\
             big = bytes(i % 251 for i in range(n))\n\
             assert v['big'] == big, 'big'\n\
             assert v['s'] == 'small' and v['t'] == 'x' * n, 's, t'\n\
             assert v['l'][0] == 1 and v['l'][1] == bytes(b ^ 7 for b in big), 'l'\n\
             assert sorted(v) == ['big', 'l', 's', 't'], sorted(v)\n",
        )
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "NVFlare did not load our file as written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 64 MiB of bytes each way between our handler (ACTIVE) and NVFlare's (PASSIVE,
/// `tests/nvflare/bulk_peer.py`), each checked by its SHA-256 on the other side: ours goes
/// as one message in fragments (`peerpipe_std::FRAGMENT`) to the bridge, which writes the file as NVFlare's
/// `fobs.dumpf` would (the bytes in a datum section); NVFlare's file (written by its own
/// FilePipe) is read by the bridge and delivered in fragments. Prints the times.
#[test]
fn big_bytes_both_ways() {
    let test = "big_bytes";
    let Some(py) = python(test) else { return };
    let root = fresh_root(test);
    let mut peer = Proc::python(&py, "bulk_peer.py", "passive", &root, &["--timeout", "300"]);
    peer.wait_line("ready");
    let s = settings(&root, Mode::Active, 0);
    let h = PipeHandler::new(s.transport(), s.config).unwrap();
    h.start().unwrap();
    let long = Some(Duration::from_secs(120));
    let n = 64 << 20;

    // peerpipe -> NVFlare.
    let data = pattern(n);
    let digest = sha256_hex(&data);
    let body = fobs::encode(&Value::Bin(data)).unwrap();
    let (t, start) = (Instant::now(), epoch());
    let reply = h
        .request(Message::request("digest", body).unwrap(), long, None)
        .unwrap_or_else(|e| panic!("digest: {e}"));
    let round_trip = t.elapsed();
    let reply = fobs::decode(reply.data()).unwrap();
    assert_eq!(field(&reply, "len"), &Value::from(n as u64));
    assert_eq!(field(&reply, "sha256"), &Value::from(digest));
    let (Value::Float(created), Value::Float(read)) =
        (field(&reply, "created"), field(&reply, "read"))
    else {
        panic!("no times: {reply:?}");
    };
    eprintln!(
        "{test}: peerpipe -> NVFlare, 64 MiB: the file was in NVFlare's directory {:.3} s after \
         the request began, read by NVFlare after {:.3} s; the digest reply came after {:.3} s",
        created - start,
        read - start,
        round_trip.as_secs_f64(),
    );

    // NVFlare -> peerpipe.
    let m = match h.recv_timeout(Duration::from_secs(120)) {
        Some(Item::Message(m)) => m,
        other => panic!("expected NVFlare's push, got {other:?}"),
    };
    let arrived = epoch();
    assert_eq!(m.topic(), "push");
    let push = fobs::decode(m.data()).unwrap();
    let Value::Bin(data) = field(&push, "data") else {
        panic!("push without bytes");
    };
    assert_eq!(data.len(), n);
    assert_eq!(field(&push, "sha256"), &Value::from(sha256_hex(data)));
    let ok = Value::Map(vec![("ok".into(), Value::Bool(true))]);
    h.send_to_peer(m.reply_to(fobs::encode(&ok).unwrap()).unwrap(), long, None)
        .unwrap();
    let dumpf = peer.wait_line("fobs.dumpf");
    let pushing = peer.wait_line("pushing");
    let began: f64 = pushing.rsplit(' ').next().unwrap().parse().unwrap();
    let pushed = peer.wait_line("pushed");
    eprintln!(
        "{test}: NVFlare -> peerpipe, 64 MiB: delivered to our application {:.3} s after \
         NVFlare's send_to_peer began; NVFlare: {pushed}; {dumpf}",
        arrived - began
    );

    h.send_to_peer(Message::request("quit", vec![0xc0]).unwrap(), long, None)
        .unwrap();
    match h.recv_timeout(PATIENCE) {
        Some(Item::Status(Status::End(d))) => {
            assert_eq!(fobs::decode(&d), Ok(Value::from("bye")));
        }
        other => panic!("expected END, got {other:?}"),
    }
    h.stop(true);
    assert!(peer.wait().success(), "the Python peer failed");
    let _ = std::fs::remove_dir_all(&root);
}

/// Now, in seconds since the Unix epoch (Python's `time.time()`).
fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The value of `key` in a map.
fn field<'v>(map: &'v Value, key: &str) -> &'v Value {
    let Value::Map(entries) = map else {
        panic!("not a map: {map:?}");
    };
    entries
        .iter()
        .find(|(k, _)| *k == Value::from(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key:?} in {map:?}"))
}

/// `len` bytes of a xorshift pattern.
fn pattern(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
