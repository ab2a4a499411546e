//! Messages of any size through a FilePipe directory: a `PipeHandler` and the bridge, with a
//! second handler or with a test playing NVFlare's side file by file. Sizes: 0 B, 1 B, one
//! fragment (`FRAGMENT`) - 1, + 0, + 1, 8 KiB - 1, + 0, + 1, 1 MiB, 64 MiB, content checked.

#[path = "../../peerpipe-std/tests/common/mod.rs"]
mod common;
mod dir;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{start_pair, STEP};
use dir::{files, pipe};
use peerpipe_nvflare::fobs::{self, Value};
use peerpipe_std::{Config, Item, Message, Mode, PipeHandler, FRAGMENT};

const MIB: usize = 1 << 20;
/// The sizes tried, in increasing order.
fn sizes() -> Vec<usize> {
    let mut v = vec![0, 1, MIB, 64 * MIB];
    for edge in [FRAGMENT, 8 << 10] {
        v.extend([edge - 1, edge, edge + 1]);
    }
    v.sort();
    v.dedup();
    v
}
/// Bound on a 64 MiB transfer (an unoptimised build on a busy 2-core machine).
const BIG: Duration = Duration::from_secs(120);

fn config() -> Config {
    Config {
        default_request_timeout: BIG,
        ..common::config()
    }
}

/// `len` bytes that differ with `seed` and along the message (a fragment delivered twice,
/// lost or out of place shows), zeros included; the first is `0xc1`, which no msgpack value
/// starts with, so the data is never one value and travels as Python `bytes`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    if let Some(first) = out.first_mut() {
        *first = 0xc1;
    }
    out
}

/// What the other side makes of `data(len, seed)`: `None` for no data, else `bytes`.
fn arrived(len: usize, seed: u64) -> Value {
    match len {
        0 => Value::Nil,
        _ => Value::Bin(data(len, seed)),
    }
}

/// Compares without printing 64 MiB on a mismatch.
fn check(what: &str, got: &[u8], expected: &Value) {
    match fobs::decode(got) {
        Ok(v) if v == *expected => {}
        Ok(Value::Bin(b)) => {
            let first_diff = match expected {
                Value::Bin(e) => b.iter().zip(e).position(|(x, y)| x != y),
                _ => None,
            };
            panic!(
                "{what}: {} bytes arrived, first difference at {first_diff:?}",
                b.len()
            );
        }
        Ok(v) => panic!("{what}: got {:?}", std::mem::discriminant(&v)),
        Err(e) => panic!("{what}: {e}"),
    }
}

fn mib_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / MIB as f64 / t.as_secs_f64()
}

/// Two handlers on one pipe directory (each with its bridge): for every size, a request of
/// that many bytes one way and a reply of as many the other.
#[test]
fn every_size_both_ways_between_two_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_pair(
        pipe(dir.path(), Mode::Active),
        pipe(dir.path(), Mode::Passive),
        config(),
    );
    let server = std::thread::spawn({
        let b = b.clone();
        move || {
            for _ in sizes() {
                let Some(Item::Message(m)) = b.recv_timeout(BIG) else {
                    panic!("no request");
                };
                let n: usize = m.topic()[1..].parse().unwrap();
                check(&format!("request of {n} bytes"), m.data(), &arrived(n, 1));
                let reply = m.reply_to(data(n, 2)).unwrap();
                b.send_to_peer(reply, Some(BIG), None).unwrap();
            }
        }
    });
    for n in sizes() {
        let t = Instant::now();
        let req = Message::request(format!("n{n}"), data(n, 1)).unwrap();
        let reply = a.request(req, Some(BIG), None).unwrap();
        let rtt = t.elapsed();
        check(&format!("reply of {n} bytes"), reply.data(), &arrived(n, 2));
        eprintln!(
            "{n} bytes each way: {rtt:?} ({:.1} MiB/s)",
            mib_s(2 * n, rtt)
        );
    }
    server.join().unwrap();
    a.stop(true);
    b.stop(true);
}

fn wait_for_file(dir: &Path, prefix: &str, within: Duration) -> PathBuf {
    let deadline = Instant::now() + within;
    loop {
        if let Some(f) = files(dir, prefix).pop() {
            return f;
        }
        assert!(Instant::now() < deadline, "no file {prefix}* in {dir:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The datum sections of a FOBS file: marker and data length, in order.
fn sections(file: &[u8]) -> Vec<(u8, usize)> {
    let len = u64::from_be_bytes(file[2..10].try_into().unwrap()) as usize;
    let mut rest = &file[10 + len..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let size = u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize;
        out.push((rest[0], size - 16));
        rest = &rest[10 + size..];
    }
    out
}

/// The handler against a test playing NVFlare: every size each way, as files; the handler's
/// send is delivered only once its file is gone, a file is removed only once the handler has
/// the whole message, and a value of 10 MiB or more sits in a datum section as NVFlare's
/// own `fobs.dumpf` puts it.
#[test]
fn every_size_both_ways_with_nvflare_played_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Active), config()).unwrap();
    h.start().unwrap();
    let (ours, theirs) = (root.join("p/y"), root.join("p/x"));
    for n in sizes() {
        // Ours: a file, written whole; "read" (removed), the send is delivered.
        let t = Instant::now();
        let sender = std::thread::spawn({
            let h = h.clone();
            move || h.send_to_peer(Message::request("up", data(n, 3)).unwrap(), Some(BIG), None)
        });
        let f = wait_for_file(&ours, "REQ.up.", BIG);
        let took = t.elapsed();
        eprintln!(
            "{n} bytes to a file: {took:?} ({:.1} MiB/s)",
            mib_s(n, took)
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !sender.is_finished(),
            "{n} bytes: delivered before it was read"
        );
        let content = fs::read(&f).unwrap();
        let expected_sections = if n >= fobs::DATUM_THRESHOLD {
            vec![(102, n)]
        } else {
            vec![]
        };
        assert_eq!(sections(&content), expected_sections, "{n} bytes");
        check(
            &format!("file of {n} bytes"),
            &fobs::from_file(&content).unwrap(),
            &arrived(n, 3),
        );
        fs::remove_file(&f).unwrap();
        sender.join().unwrap().unwrap();

        // Theirs: a dict holding the bytes, in a datum section when large, as NVFlare writes.
        let value = Value::Map(vec![
            ("n".into(), Value::from(n as u64)),
            ("w".into(), Value::Bin(data(n, 4))),
        ]);
        let mut file = Vec::new();
        fobs::write_file(&fobs::encode(&value).unwrap(), &mut file).unwrap();
        let name = format!("REQ.down.00000000-0000-4000-8000-{n:012}");
        fs::write(root.join("p/t").join(&name), &file).unwrap();
        let t = Instant::now();
        fs::rename(root.join("p/t").join(&name), theirs.join(&name)).unwrap();
        let Some(Item::Message(m)) = h.recv_timeout(BIG) else {
            panic!("{n} bytes: nothing arrived");
        };
        let took = t.elapsed();
        assert_eq!(m.topic(), "down");
        match fobs::decode(m.data()) {
            Ok(v) => assert!(v == value, "{n} bytes: the dict arrived changed"),
            Err(e) => panic!("{n} bytes: {e}"),
        }
        let deadline = Instant::now() + STEP;
        while theirs.join(&name).exists() {
            assert!(Instant::now() < deadline, "{n} bytes: the file stays");
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!(
            "{n} bytes from a file: {took:?} ({:.1} MiB/s)",
            mib_s(file.len(), took)
        );
    }
    h.stop(true);
}

/// A handler that takes at most 1 MiB (its `max_message`): a larger file is refused with
/// the reason, the next one is delivered.
#[test]
fn a_file_larger_than_the_handler_takes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let transport = pipe(root, Mode::Passive);
    let rejections = transport.rejections();
    let small = Config {
        max_message: MIB as u64,
        ..config()
    };
    let h = PipeHandler::new(transport, small).unwrap();
    h.start().unwrap();
    let put = |name: &str, value: &Value| {
        let mut file = Vec::new();
        fobs::write_file(&fobs::encode(value).unwrap(), &mut file).unwrap();
        fs::write(root.join("p/t").join(name), &file).unwrap();
        fs::rename(root.join("p/t").join(name), root.join("p/y").join(name)).unwrap();
    };
    let deadline = Instant::now() + STEP;
    while !root.join("p/t").is_dir() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    put("REQ.big.u1", &Value::Bin(vec![1; 2 * MIB]));
    put("REQ.small.u2", &Value::Bin(vec![2; MIB - 5]));
    let Some(Item::Message(m)) = h.recv_timeout(STEP) else {
        panic!("the small file was not delivered");
    };
    assert_eq!(m.topic(), "small");
    assert_eq!(m.data().len(), MIB);
    assert_eq!(rejections.count(), 1);
    let reason = &rejections.recent()[0].reason;
    assert!(reason.contains("more than the handler takes"), "{reason}");
    h.stop(true);
}

/// Puts a FOBS file of `value` into the PASSIVE end's read directory, as NVFlare's sender
/// does (written in `t/`, renamed into place).
fn put_value(root: &Path, name: &str, value: &Value) {
    let mut file = Vec::new();
    fobs::write_file(&fobs::encode(value).unwrap(), &mut file).unwrap();
    fs::write(root.join("p/t").join(name), &file).unwrap();
    fs::rename(root.join("p/t").join(name), root.join("p/y").join(name)).unwrap();
}

fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A large file whose transfer stalls halfway (the application does not read, the handler's
/// queue is full) and that its sender then withdraws is not delivered, not even in part; the
/// next file is.
#[test]
fn a_file_withdrawn_halfway_is_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Passive), config()).unwrap();
    h.start().unwrap();
    wait_until("the pipe directories", STEP, || root.join("p/t").is_dir());
    let big = |seed| Value::Bin(data(12 * MIB, seed));
    put_value(root, "REQ.x.u1", &big(1));
    wait_until("the first file taken", BIG, || {
        !root.join("p/y/REQ.x.u1").exists()
    });
    // The handler holds 12 MiB for the application: the next 12 MiB do not fit.
    put_value(root, "REQ.a.u2", &big(2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        root.join("p/y/REQ.a.u2").exists(),
        "the second file was taken whole: nothing stalled"
    );
    fs::remove_file(root.join("p/y/REQ.a.u2")).unwrap();
    put_value(root, "REQ.b.u3", &Value::from("after"));
    let Some(Item::Message(x)) = h.recv_timeout(STEP) else {
        panic!("the first message is gone");
    };
    assert_eq!(x.topic(), "x");
    check("the first message", x.data(), &big(1));
    match h.recv_timeout(BIG) {
        Some(Item::Message(m)) => {
            assert_eq!(m.topic(), "b", "the withdrawn file was delivered");
            assert_eq!(fobs::decode(m.data()), Ok(Value::from("after")));
        }
        other => panic!("expected the last message, got {other:?}"),
    }
    wait_until("the last file removed", STEP, || {
        files(&root.join("p/y"), "").is_empty()
    });
    h.stop(true);
}

/// A large send that runs out of time while its fragments are on their way leaves no file
/// (its last fragment never came, the handler's floor moved past it), and the bridge goes on
/// with the next message.
#[test]
fn a_large_send_given_up_midway_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Active), config()).unwrap();
    h.start().unwrap();
    let r = h.send_to_peer(
        Message::request("big", data(64 * MIB, 5)).unwrap(),
        Some(Duration::from_millis(30)),
        None,
    );
    assert!(r.is_err(), "64 MiB delivered within 30 ms");
    let sender = std::thread::spawn({
        let h = h.clone();
        move || {
            h.send_to_peer(
                Message::request("next", data(3 * FRAGMENT, 6)).unwrap(),
                Some(BIG),
                None,
            )
        }
    });
    let f = wait_for_file(&root.join("p/y"), "REQ.next.", BIG);
    check(
        "the next message",
        &fobs::from_file(&fs::read(&f).unwrap()).unwrap(),
        &arrived(3 * FRAGMENT, 6),
    );
    assert!(files(&root.join("p/y"), "REQ.big.").is_empty());
    fs::remove_file(&f).unwrap();
    sender.join().unwrap().unwrap();
    h.stop(true);
}
