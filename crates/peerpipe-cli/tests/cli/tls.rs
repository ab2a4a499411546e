//! TLS with mutual authentication, and each refusal.

use super::*;

/// Two `peerpipe` processes over TLS with mutual authentication; a client with a
/// certificate of another CA, one with none and one that speaks plain TCP are refused (exit
/// 3, with the reason) while the listener serves on; TLS options where they do not apply
/// are usage errors.
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
