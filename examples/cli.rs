//! The examples' command lines, read with lexopt: each example matches its own options and
//! [`parse_or_exit`] handles help and errors the same way for all of them.

use std::fmt::Display;
use std::str::FromStr;

pub use lexopt::prelude::*;
pub use lexopt::{Error, Parser};

/// Parses this process's arguments with `parse`: `Ok(None)` (help was asked for) prints
/// `usage` on stdout and exits 0; an error prints `program: error`, a blank line and `usage`
/// on stderr and exits 2.
pub fn parse_or_exit<T>(
    program: &str,
    usage: &str,
    parse: impl FnOnce(&mut Parser) -> Result<Option<T>, Error>,
) -> T {
    match parse(&mut Parser::from_env()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            std::process::exit(2)
        }
    }
}

/// The value of `option` (the option `parser` has just returned), parsed as a `T`; an error
/// names the option and the value.
pub fn value<T: FromStr>(parser: &mut Parser, option: &str) -> Result<T, Error>
where
    T::Err: Display,
{
    let raw = parser.value()?;
    let text = raw.string()?;
    text.parse()
        .map_err(|e| format!("{option}: {e}: {text:?}").into())
}

/// The kind of link a measuring example runs over (`--transport memory|tcp|unix`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// An in-memory pair in one process.
    Memory,
    /// TCP over loopback.
    Tcp,
    /// A Unix socket.
    Unix,
}

impl Kind {
    /// The name the command line and the figures line use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
        }
    }
}

impl FromStr for Kind {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(Kind::Memory),
            "tcp" => Ok(Kind::Tcp),
            "unix" => Ok(Kind::Unix),
            _ => Err("memory, tcp or unix"),
        }
    }
}

/// TLS with mutual authentication for a measuring example's `--tls`: a server identity and
/// a client identity, both signed by a certificate authority made now (nothing is read from
/// disk).
pub fn tls_pair() -> (peerpipe_std::TlsServer, peerpipe_std::TlsClient) {
    let ca = crate::certs::Ca::new("peerpipe example CA");
    let (server, client) = (ca.issue(&["localhost"]), ca.issue(&["client"]));
    let tls_server =
        peerpipe_std::TlsServer::new(server.cert_pem.as_bytes(), server.key_pem.as_bytes())
            .and_then(|s| s.require_client_cert(ca.pem.as_bytes()))
            .expect("certificates made now load");
    let tls_client = peerpipe_std::TlsClient::new(ca.pem.as_bytes(), "localhost")
        .and_then(|c| c.with_client_cert(client.cert_pem.as_bytes(), client.key_pem.as_bytes()))
        .expect("certificates made now load");
    (tls_server, tls_client)
}
