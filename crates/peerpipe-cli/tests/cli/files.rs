//! `send-file` and `recv-file`: a large file intact, every refusal, a damaged file.

use super::*;

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
