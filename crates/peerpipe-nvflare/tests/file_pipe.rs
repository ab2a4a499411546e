//! The FilePipe transport without NVFlare: two handlers on one pipe directory, and a test
//! playing NVFlare's side by hand (writing and removing files as its FilePipe does). The
//! tests against the real NVFlare are in `examples/tests/nvflare.rs`.

#[path = "../../peerpipe-std/tests/common/mod.rs"]
mod common;
mod dir;

use std::fs;

use std::time::{Duration, Instant};

use common::*;
use dir::*;
use peerpipe_nvflare::fobs::{self, Value};
use peerpipe_std::{Error, FailReason, GoneReason, Item, Message, Mode, PipeHandler, Status};

#[test]
fn two_handlers_talk_through_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_pair(
        pipe(dir.path(), Mode::Active),
        pipe(dir.path(), Mode::Passive),
        config(),
    );
    b.set_message_cb({
        let b = b.clone();
        move |m| {
            let _ = b.send_no_wait(m.reply_to(m.data().to_vec()).unwrap());
        }
    });
    for v in [Value::from("x"), Value::Int(-7), Value::Nil] {
        let data = fobs::encode(&v).unwrap();
        let reply = a
            .request(
                Message::request("ping", data.clone()).unwrap(),
                Some(STEP),
                None,
            )
            .unwrap();
        assert_eq!(reply.data(), data);
    }
    a.notify_end(fobs::encode(&Value::from("bye")).unwrap())
        .unwrap();
    match b.recv_timeout(STEP) {
        Some(Item::Status(Status::End(d))) => assert_eq!(fobs::decode(&d), Ok("bye".into())),
        other => panic!("expected END, got {other:?}"),
    }
    a.stop(true);
    assert!(
        dir.path().join("p/y").is_dir(),
        "ACTIVE leaves the pipe directory"
    );
    b.stop(true);
    assert!(!dir.path().join("p").exists(), "PASSIVE removes it");
    assert!(dir.path().is_dir(), "the root stays");
}

#[test]
fn passive_close_removes_the_pipe_and_active_reports_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_pair(
        pipe(dir.path(), Mode::Active),
        pipe(dir.path(), Mode::Passive),
        config(),
    );
    b.stop(true);
    // (A handler stopped while still opening its transport closes it a moment later.)
    wait_dir("PASSIVE removing root/name", || {
        !dir.path().join("p").exists()
    });
    assert!(dir.path().exists(), "root stays");
    match a.recv_timeout(STEP) {
        Some(Item::Status(Status::Gone { reason, cause })) => {
            assert_eq!(reason, GoneReason::TransportLost);
            assert!(cause.is_some_and(|c| c.to_string().contains("is gone")));
        }
        other => panic!("expected GONE, got {other:?}"),
    }
    a.stop(true);
}

#[test]
fn nvflare_names_ids_and_acknowledgement_by_removal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Active), config()).unwrap();
    h.start().unwrap();
    wait_dir("the pipe directories", || root.join("p/x").is_dir());

    // A request from "NVFlare" arrives with its FOBS header stripped.
    let id = "5d0f4c2e-8a4b-4f4e-9a1c-0123456789ab";
    put(
        root,
        "x",
        &format!("REQ.train.{id}"),
        &value_file(&Value::Int(3)),
    );
    let Some(Item::Message(req)) = h.recv_timeout(STEP) else {
        panic!("no request");
    };
    assert_eq!((req.topic(), req.data()), ("train", &[3u8][..]));
    wait_dir("the request file removed once accepted", || {
        files(&root.join("p/x"), "REQ.").is_empty()
    });

    // Our reply names the peer's request id; raw data that is not msgpack goes out as bytes.
    let sender = std::thread::spawn({
        let h = h.clone();
        move || h.send_to_peer(req.reply_to(b"hi".to_vec()).unwrap(), Some(STEP), None)
    });
    let prefix = format!("REP.train.{id}.");
    wait_dir("the reply file", || {
        !files(&root.join("p/y"), &prefix).is_empty()
    });
    let reply = files(&root.join("p/y"), &prefix).remove(0);
    let content = fs::read(&reply).unwrap();
    assert_eq!(
        fobs::from_file(&content).as_deref(),
        Ok(&[0xc4, 2, b'h', b'i'][..])
    );
    // "Reading" it (removing it) is what acknowledges it.
    fs::remove_file(&reply).unwrap();
    assert!(sender.join().unwrap().is_ok());
    // Empty data goes out as None.
    let sender = std::thread::spawn({
        let h = h.clone();
        move || h.send_to_peer(Message::request("q", Vec::new()).unwrap(), Some(STEP), None)
    });
    wait_dir("the request file", || {
        !files(&root.join("p/y"), "REQ.q.").is_empty()
    });
    let ours = files(&root.join("p/y"), "REQ.q.").remove(0);
    assert_eq!(
        fobs::from_file(&fs::read(&ours).unwrap()).as_deref(),
        Ok(&[0xc0][..])
    );
    fs::remove_file(&ours).unwrap();
    assert!(sender.join().unwrap().is_ok());

    // A reply to our request, by its uuid, answers it.
    let asker = std::thread::spawn({
        let h = h.clone();
        move || {
            h.request(
                Message::request("ask", vec![0x2a]).unwrap(),
                Some(STEP),
                None,
            )
        }
    });
    wait_dir("the question", || {
        !files(&root.join("p/y"), "REQ.ask.").is_empty()
    });
    let q = files(&root.join("p/y"), "REQ.ask.").remove(0);
    let q_name = q.file_name().unwrap().to_str().unwrap().to_owned();
    let q_id = q_name.rsplit('.').next().unwrap().to_owned();
    fs::remove_file(&q).unwrap();
    put(
        root,
        "x",
        &format!("REP.ask.{q_id}.{id}"),
        &value_file(&"yes".into()),
    );
    let answer = asker.join().unwrap().unwrap();
    assert_eq!(fobs::decode(answer.data()), Ok("yes".into()));

    // END from "NVFlare".
    put(
        root,
        "x",
        &format!("REQ._END_.{id}"),
        &value_file(&"done".into()),
    );
    match h.recv_timeout(STEP) {
        Some(Item::Status(Status::End(d))) => assert_eq!(fobs::decode(&d), Ok("done".into())),
        other => panic!("expected END, got {other:?}"),
    }
    h.stop(true);
}

#[test]
fn bad_files_are_removed_and_counted_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let transport = pipe(root, Mode::Passive);
    let rejections = transport.rejections();
    let h = PipeHandler::new(transport, config()).unwrap();
    h.start().unwrap();
    wait_dir("the pipe directories", || root.join("p/y").is_dir());
    let tuple = [
        "__fobs_type__".into(),
        "tuple".into(),
        "__fobs_data__".into(),
        Value::List(vec![1.into(), 2.into()]),
    ];
    let tuple = Value::Map(vec![
        (tuple[0].clone(), tuple[1].clone()),
        (tuple[2].clone(), tuple[3].clone()),
    ]);
    let bad: [(&str, Vec<u8>); 5] = [
        ("junk", b"x".to_vec()),
        ("REQ.ping.1.2.3", value_file(&Value::Nil)),
        ("REQ.ping.u1", vec![0x82, 0xa1, b'a', 1]),
        ("REQ.ping.u2", fobs::to_file(&[0x92, 1])),
        ("REQ.ping.u3", value_file(&tuple)),
    ];
    for (name, content) in &bad {
        put(root, "y", name, content);
    }
    // A file larger than any message (sparse: refused before it is read).
    let huge = root.join("p/t/REQ.ping.u4");
    fs::write(&huge, value_file(&Value::Nil)).unwrap();
    fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(peerpipe_std::MAX_PAYLOAD as u64 + (2 << 20))
        .unwrap();
    fs::rename(&huge, root.join("p/y/REQ.ping.u4")).unwrap();
    fs::create_dir(root.join("p/y/REQ.ping.dir")).unwrap();
    put(root, "y", "REQ.ping.good", &value_file(&Value::Bool(true)));
    let Some(Item::Message(m)) = h.recv_timeout(STEP) else {
        panic!("the good file was not delivered");
    };
    assert_eq!(m.data(), [0xc3]);
    wait_dir("every bad file rejected", || rejections.count() == 7);
    wait_dir("the good file removed once accepted", || {
        files(&root.join("p/y"), "").is_empty()
    });
    let reasons: Vec<String> = rejections.recent().into_iter().map(|r| r.reason).collect();
    for needle in [
        "bad file name",
        "no FOBS header",
        "truncated",
        "\"tuple\"",
        "larger than",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:?}"
        );
    }
    h.stop(true);
}

#[test]
fn an_unread_message_is_withdrawn_when_the_handler_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Active), config()).unwrap();
    h.start().unwrap();
    let r = h.send_to_peer(
        Message::request("ping", vec![1]).unwrap(),
        Some(Duration::from_millis(300)),
        None,
    );
    assert!(
        matches!(r, Err(Error::Failed(FailReason::TimedOut))),
        "{r:?}"
    );
    wait_dir("the request file withdrawn", || {
        files(&root.join("p/y"), "REQ.ping.").is_empty()
    });
    h.stop(true);
}

#[test]
fn one_heartbeat_file_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Active), config()).unwrap();
    h.start().unwrap();
    wait_dir("a heartbeat file", || {
        !files(&root.join("p/y"), "REQ._HEARTBEAT_.").is_empty()
    });
    // Heartbeats are due every 100 ms; nobody reads them.
    std::thread::sleep(Duration::from_millis(500));
    let hb = files(&root.join("p/y"), "REQ._HEARTBEAT_.");
    assert_eq!(hb.len(), 1);
    assert_eq!(
        fs::read(&hb[0]).unwrap(),
        [0x64, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xa0]
    );
    // Read, it is replaced by a new one.
    fs::remove_file(&hb[0]).unwrap();
    wait_dir("the next heartbeat file", || {
        files(&root.join("p/y"), "REQ._HEARTBEAT_.").len() == 1
    });
    h.stop(true);
    // ACTIVE leaves the directory, but not our unread files.
    assert!(files(&root.join("p/y"), "").is_empty());
}

/// A file the handler could not take yet (its queue is full) and whose sender withdrew it
/// (NVFlare's send timed out: "not read") is never delivered, and does not block later ones.
#[test]
fn a_withdrawn_file_is_not_delivered_later() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Passive), config()).unwrap();
    h.start().unwrap();
    wait_dir("the pipe directories", || root.join("p/y").is_dir());
    let sent = 100;
    for i in 0..sent {
        put(
            root,
            "y",
            &format!("REQ.ping.id{i:03}"),
            &value_file(&Value::Int(i)),
        );
    }
    // Nobody reads the handler's queue: it fills, then files stay on disk.
    let mut last = usize::MAX;
    let mut unchanged = 0;
    let deadline = Instant::now() + STEP;
    while unchanged < 10 {
        assert!(Instant::now() < deadline, "the directory never settled");
        let n = files(&root.join("p/y"), "REQ.").len();
        unchanged = if n == last { unchanged + 1 } else { 0 };
        last = n;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(last > 0, "the handler took every file: no backpressure");
    for f in files(&root.join("p/y"), "REQ.") {
        fs::remove_file(f).unwrap();
    }
    put(
        root,
        "y",
        "REQ.ping.late",
        &value_file(&Value::from("late")),
    );
    let mut got = Vec::new();
    while let Some(Item::Message(m)) = h.recv_timeout(STEP) {
        let v = fobs::decode(m.data()).unwrap();
        let late = v == Value::from("late");
        got.push(v);
        if late {
            break;
        }
    }
    let accepted = sent as usize - last;
    assert_eq!(got.len(), accepted + 1, "{got:?}");
    let expected: Vec<Value> = (0..accepted as i64).map(Value::Int).collect();
    assert_eq!(got[..accepted], expected[..]);
    h.stop(true);
}

#[test]
fn abort_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let h = PipeHandler::new(pipe(root, Mode::Passive), config()).unwrap();
    h.start().unwrap();
    let aborter = std::thread::spawn({
        let h = h.clone();
        move || h.notify_abort(fobs::encode(&Value::from("stop")).unwrap())
    });
    wait_dir("our ABORT file", || {
        !files(&root.join("p/x"), "REQ._ABORT_.").is_empty()
    });
    let ours = files(&root.join("p/x"), "REQ._ABORT_.").remove(0);
    assert_eq!(
        fobs::from_file(&fs::read(&ours).unwrap()).as_deref(),
        Ok(&[0xa4, b's', b't', b'o', b'p'][..])
    );
    fs::remove_file(ours).unwrap();
    aborter.join().unwrap().unwrap();
    h.stop(true);

    let h = PipeHandler::new(pipe(root, Mode::Passive), config()).unwrap();
    h.start().unwrap();
    wait_dir("the pipe directories", || root.join("p/y").is_dir());
    put(root, "y", "REQ._ABORT_.u1", &value_file(&Value::Nil));
    match h.recv_timeout(STEP) {
        Some(Item::Status(Status::Abort(d))) => assert_eq!(d, [0xc0]),
        other => panic!("expected ABORT, got {other:?}"),
    }
    h.stop(true);
}
