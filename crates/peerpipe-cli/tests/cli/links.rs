//! Requests, sends, listening and serving over each kind of link, data of any size, and `bench`.

use super::*;

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
