//! Every error path's exit code and message, and `--help`.

use super::*;

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
