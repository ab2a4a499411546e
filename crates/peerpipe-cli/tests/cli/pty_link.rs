//! Two `peerpipe` processes over a pseudo-terminal pair (a `serial:` link).

use super::*;

/// `peerpipe ARGS` on the master of `pty` (its stdin and stdout, a `stdio` link); stderr
/// (where its reports go) captured.
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
