//! Links given as one argument (`tcp:HOST:PORT`, `serial:/dev/ttyUSB0@115200`, ...), and
//! how each is opened: as a peerpipe handler, as a listener for many peers, or as a raw byte
//! stream for `bridge`.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;

use peerpipe_nvflare::FilePipeTransport;
use peerpipe_std::{
    ChildTransport, Config, Mode, PipeHandler, PipeListener, StdioTransport, TcpTransport,
};

use crate::exit::{CliError, Code};
use crate::tls::TlsArgs;

/// The forms a link takes, for error messages and `--help`.
pub const FORMS: &str = "\
  tcp:HOST:PORT             connect over TCP (tcp:127.0.0.1:7000, tcp:[::1]:7000)
  tcp-listen:PORT           accept over TCP on 127.0.0.1 (tcp-listen:0 picks a free port)
  tcp-listen:HOST:PORT      accept over TCP on HOST (tcp-listen:0.0.0.0:7000: any host)
  unix:PATH                 connect to a Unix socket (Unix only)
  unix-listen:PATH          accept on a Unix socket (Unix only)
  serial:PORT[@BAUD]        a serial port, 8N1, 115200 baud unless given (serial:/dev/ttyUSB0@9600)
  exec:COMMAND ARGS...      run a command and talk over its stdin/stdout (split like a shell would)
  filepipe:ROOT/NAME        NVFlare's FilePipe NAME under ROOT, with --active or --passive
  stdio                     this process's own stdin/stdout (for a worker run by exec:)";

/// A parsed link argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// Connect to a TCP listener.
    Tcp { host: String, port: u16 },
    /// Listen for TCP connections.
    TcpListen { host: String, port: u16 },
    /// Connect to a Unix socket.
    Unix(PathBuf),
    /// Listen on a Unix socket.
    UnixListen(PathBuf),
    /// A serial port.
    Serial { port: String, baud: u32 },
    /// A child process's stdin/stdout.
    Exec(Vec<String>),
    /// NVFlare's FilePipe.
    FilePipe { root: PathBuf, name: String },
    /// This process's stdin/stdout.
    Stdio,
}

/// Why a link argument does not parse: the text says which form was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParseError(String);

impl fmt::Display for LinkParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkParseError {}

fn expected(form: &str, example: &str, why: &str) -> LinkParseError {
    LinkParseError(format!("{why}: expected {form}, e.g. {example}"))
}

fn parse_port(text: &str, form: &str, example: &str) -> Result<u16, LinkParseError> {
    text.parse::<u16>()
        .map_err(|_| expected(form, example, &format!("`{text}` is not a port (0-65535)")))
}

/// `HOST:PORT`, with `[v6]` brackets removed from the host.
fn host_port(rest: &str, form: &str, example: &str) -> Result<(String, u16), LinkParseError> {
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| expected(form, example, &format!("`{rest}` is not HOST:PORT")))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(expected(form, example, "no host"));
    }
    Ok((host.to_owned(), parse_port(port, form, example)?))
}

impl FromStr for LinkSpec {
    type Err = LinkParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "stdio" || s == "-" {
            return Ok(LinkSpec::Stdio);
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(LinkParseError(format!(
                "`{s}` is not a link; a link is one of:\n{FORMS}"
            )));
        };
        match scheme {
            "tcp" => {
                let (host, port) = host_port(rest, "tcp:HOST:PORT", "tcp:127.0.0.1:7000")?;
                Ok(LinkSpec::Tcp { host, port })
            }
            "tcp-listen" => {
                const FORM: &str = "tcp-listen:PORT or tcp-listen:HOST:PORT";
                const EXAMPLE: &str = "tcp-listen:7000";
                if rest.contains(':') {
                    let (host, port) = host_port(rest, FORM, EXAMPLE)?;
                    Ok(LinkSpec::TcpListen { host, port })
                } else {
                    Ok(LinkSpec::TcpListen {
                        host: "127.0.0.1".into(),
                        port: parse_port(rest, FORM, EXAMPLE)?,
                    })
                }
            }
            "unix" | "unix-listen" => {
                if !cfg!(unix) {
                    return Err(LinkParseError(format!(
                        "`{scheme}:` links need a Unix system; use tcp: or tcp-listen: here"
                    )));
                }
                if rest.is_empty() {
                    return Err(expected(
                        &format!("{scheme}:PATH"),
                        &format!("{scheme}:/tmp/peerpipe.sock"),
                        "no path",
                    ));
                }
                Ok(if scheme == "unix" {
                    LinkSpec::Unix(rest.into())
                } else {
                    LinkSpec::UnixListen(rest.into())
                })
            }
            "serial" => {
                const FORM: &str = "serial:PORT or serial:PORT@BAUD";
                const EXAMPLE: &str = "serial:/dev/ttyUSB0@115200";
                let (port, baud) = match rest.rsplit_once('@') {
                    Some((port, baud)) => (
                        port,
                        baud.parse::<u32>().ok().filter(|b| *b > 0).ok_or_else(|| {
                            expected(FORM, EXAMPLE, &format!("`{baud}` is not a baud rate"))
                        })?,
                    ),
                    None => (rest, 115_200),
                };
                if port.is_empty() {
                    return Err(expected(FORM, EXAMPLE, "no port"));
                }
                Ok(LinkSpec::Serial {
                    port: port.into(),
                    baud,
                })
            }
            "exec" => {
                const FORM: &str = "exec:COMMAND ARGS...";
                const EXAMPLE: &str = "'exec:peerpipe listen stdio --echo'";
                let words = shlex::split(rest)
                    .ok_or_else(|| expected(FORM, EXAMPLE, "unbalanced quotes"))?;
                if words.is_empty() {
                    return Err(expected(FORM, EXAMPLE, "no command"));
                }
                Ok(LinkSpec::Exec(words))
            }
            "filepipe" => {
                const FORM: &str = "filepipe:ROOT/NAME";
                const EXAMPLE: &str = "filepipe:/tmp/nvflare/pipe1 --passive";
                let path = PathBuf::from(rest);
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                    .ok_or_else(|| expected(FORM, EXAMPLE, "no pipe name"))?
                    .to_owned();
                let root = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .ok_or_else(|| expected(FORM, EXAMPLE, "no root directory"))?
                    .to_path_buf();
                Ok(LinkSpec::FilePipe { root, name })
            }
            other => Err(LinkParseError(format!(
                "unknown link kind `{other}:`; a link is one of:\n{FORMS}"
            ))),
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            LinkSpec::TcpListen { host, port } => write!(f, "tcp-listen:{host}:{port}"),
            LinkSpec::Unix(p) => write!(f, "unix:{}", p.display()),
            LinkSpec::UnixListen(p) => write!(f, "unix-listen:{}", p.display()),
            LinkSpec::Serial { port, baud } => write!(f, "serial:{port}@{baud}"),
            LinkSpec::Exec(words) => write!(f, "exec:{}", words.join(" ")),
            LinkSpec::FilePipe { root, name } => {
                write!(f, "filepipe:{}", root.join(name).display())
            }
            LinkSpec::Stdio => f.write_str("stdio"),
        }
    }
}

impl LinkSpec {
    /// Whether this link accepts connections (and so can serve many peers).
    pub fn is_listener(&self) -> bool {
        matches!(self, LinkSpec::TcpListen { .. } | LinkSpec::UnixListen(_))
    }

    /// Whether the link is this process's stdin/stdout (reports then go to stderr).
    pub fn is_stdio(&self) -> bool {
        matches!(self, LinkSpec::Stdio)
    }
}

/// How to open a link: `--active` / `--passive` (the FilePipe), TLS options (TCP).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub active: bool,
    pub passive: bool,
    pub tls: TlsArgs,
}

impl Side {
    fn filepipe_mode(self) -> Result<Mode, CliError> {
        match (self.active, self.passive) {
            (true, false) => Ok(Mode::Active),
            (false, true) => Ok(Mode::Passive),
            _ => Err(CliError::new(
                Code::Usage,
                "a filepipe: link needs exactly one of --active (NVFlare's external script side) \
                 and --passive (NVFlare's FL client side)",
            )),
        }
    }
}

pub fn link_error(link: &LinkSpec, e: io::Error) -> CliError {
    CliError::new(Code::Link, format!("cannot open {link}: {e}"))
}

/// Tells where a listening link listens (on stderr, so that stdout stays data).
fn announce(addr: impl fmt::Display) {
    eprintln!("listening on {addr}");
}

/// A command line as a `Command`.
fn command(words: &[String]) -> Command {
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

/// One handler over `link` (a listening link accepts one peer), not started yet.
pub fn handler(link: &LinkSpec, side: Side, config: Config) -> Result<PipeHandler, CliError> {
    let new = |r: Result<PipeHandler, peerpipe_std::Error>| {
        r.map_err(|e| CliError::new(Code::Usage, format!("cannot create the handler: {e}")))
    };
    let tls = side.tls.enabled();
    if tls && !matches!(link, LinkSpec::Tcp { .. } | LinkSpec::TcpListen { .. }) {
        return Err(no_tls(link));
    }
    match link {
        LinkSpec::Tcp { host, port } if tls => {
            new(PipeHandler::new(side.tls.connect(host, *port)?, config))
        }
        LinkSpec::Tcp { host, port } => {
            let t =
                TcpTransport::connect((host.as_str(), *port)).map_err(|e| link_error(link, e))?;
            new(PipeHandler::new(t, config))
        }
        LinkSpec::TcpListen { host, port } => {
            let t = if tls {
                side.tls.listen(host, *port)?
            } else {
                TcpTransport::listen((host.as_str(), *port)).map_err(|e| link_error(link, e))?
            };
            if let Some(addr) = t.local_addr() {
                announce(addr);
            }
            new(PipeHandler::new(t, config))
        }
        #[cfg(unix)]
        LinkSpec::Unix(path) => new(PipeHandler::new(
            peerpipe_std::UnixTransport::connect(path),
            config,
        )),
        #[cfg(unix)]
        LinkSpec::UnixListen(path) => {
            let t = peerpipe_std::UnixTransport::listen(path).map_err(|e| link_error(link, e))?;
            announce(path.display());
            new(PipeHandler::new(t, config))
        }
        #[cfg(not(unix))]
        LinkSpec::Unix(_) | LinkSpec::UnixListen(_) => {
            Err(CliError::new(Code::Usage, "unix: links need a Unix system"))
        }
        LinkSpec::Serial { port, baud } => new(PipeHandler::new(
            peerpipe_std::SerialTransport::new(port.clone(), *baud),
            config,
        )),
        LinkSpec::Exec(words) => new(PipeHandler::new(
            ChildTransport::new(command(words)),
            config,
        )),
        LinkSpec::FilePipe { root, name } => {
            let mode = side.filepipe_mode()?;
            let t = FilePipeTransport::new(root.clone(), name.clone(), mode)
                .heartbeat_interval(config.heartbeat_interval);
            new(PipeHandler::new(t, config))
        }
        LinkSpec::Stdio => new(PipeHandler::new(StdioTransport, config)),
    }
}

/// TLS asked for on a link that is not TCP.
fn no_tls(link: &LinkSpec) -> CliError {
    CliError::new(
        Code::Usage,
        format!("TLS options apply to tcp: and tcp-listen: links only, not {link}"),
    )
}

/// A listener for many peers, for a listening link.
pub fn listener(link: &LinkSpec, side: &Side, config: Config) -> Result<PipeListener, CliError> {
    let tls = side.tls.enabled();
    match link {
        LinkSpec::TcpListen { host, port } => {
            let l = if tls {
                side.tls.bind(host, *port, config)?
            } else {
                PipeListener::bind((host.as_str(), *port), config)
                    .map_err(|e| link_error(link, e))?
            };
            if let Some(addr) = l.local_addr() {
                announce(addr);
            }
            Ok(l)
        }
        _ if tls => Err(no_tls(link)),
        #[cfg(unix)]
        LinkSpec::UnixListen(path) => {
            let l = PipeListener::bind_unix(path, config).map_err(|e| link_error(link, e))?;
            announce(path.display());
            Ok(l)
        }
        _ => Err(CliError::new(
            Code::Usage,
            format!("{link} does not accept connections"),
        )),
    }
}

/// A raw byte stream, for `bridge`: where its bytes come from, where bytes for it go.
pub struct RawStream {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
}

/// Opens `link` as a plain byte stream (a listening link accepts one connection).
pub fn raw(link: &LinkSpec) -> Result<RawStream, CliError> {
    let err = |e: io::Error| link_error(link, e);
    match link {
        LinkSpec::Tcp { host, port } => {
            let s = std::net::TcpStream::connect((host.as_str(), *port)).map_err(err)?;
            let _ = s.set_nodelay(true);
            Ok(RawStream {
                reader: Box::new(s.try_clone().map_err(err)?),
                writer: Box::new(s),
            })
        }
        LinkSpec::TcpListen { host, port } => {
            let l = std::net::TcpListener::bind((host.as_str(), *port)).map_err(err)?;
            announce(l.local_addr().map_err(err)?);
            let (s, from) = l.accept().map_err(err)?;
            tracing::info!(%from, "accepted");
            let _ = s.set_nodelay(true);
            Ok(RawStream {
                reader: Box::new(s.try_clone().map_err(err)?),
                writer: Box::new(s),
            })
        }
        #[cfg(unix)]
        LinkSpec::Unix(path) => {
            let s = std::os::unix::net::UnixStream::connect(path).map_err(err)?;
            Ok(RawStream {
                reader: Box::new(s.try_clone().map_err(err)?),
                writer: Box::new(s),
            })
        }
        #[cfg(unix)]
        LinkSpec::UnixListen(path) => {
            let _ = std::fs::remove_file(path);
            let l = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
            announce(path.display());
            let accepted = l.accept();
            let _ = std::fs::remove_file(path);
            let (s, _) = accepted.map_err(err)?;
            Ok(RawStream {
                reader: Box::new(s.try_clone().map_err(err)?),
                writer: Box::new(s),
            })
        }
        #[cfg(not(unix))]
        LinkSpec::Unix(_) | LinkSpec::UnixListen(_) => {
            Err(CliError::new(Code::Usage, "unix: links need a Unix system"))
        }
        LinkSpec::Serial { port, baud } => {
            let p = open_serial(port, *baud).map_err(err)?;
            Ok(RawStream {
                reader: Box::new(SerialReader(p.try_clone().map_err(|e| err(e.into()))?)),
                writer: Box::new(p),
            })
        }
        LinkSpec::Exec(words) => {
            let mut child = command(words)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(err)?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(CliError::new(Code::Link, "the child has no pipes"));
            };
            Ok(RawStream {
                reader: Box::new(stdout),
                writer: Box::new(stdin),
            })
        }
        LinkSpec::FilePipe { .. } => Err(CliError::new(
            Code::Usage,
            "a filepipe: link carries frames as files, not a byte stream: bridge cannot relay it",
        )),
        LinkSpec::Stdio => Ok(RawStream {
            reader: Box::new(io::stdin()),
            writer: Box::new(io::stdout()),
        }),
    }
}

/// A serial port, reads waking once a second.
pub fn open_serial(port: &str, baud: u32) -> io::Result<Box<dyn serialport::SerialPort>> {
    Ok(serialport::new(port, baud)
        .timeout(std::time::Duration::from_secs(1))
        .open()?)
}

/// A serial port's reader that waits through its read timeouts (a quiet line is not an end).
pub struct SerialReader(pub Box<dyn serialport::SerialPort>);

impl Read for SerialReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<LinkSpec, String> {
        s.parse::<LinkSpec>().map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            parse("tcp:localhost:7000"),
            Ok(LinkSpec::Tcp {
                host: "localhost".into(),
                port: 7000
            })
        );
        assert_eq!(
            parse("tcp:[::1]:7"),
            Ok(LinkSpec::Tcp {
                host: "::1".into(),
                port: 7
            })
        );
        assert_eq!(
            parse("tcp-listen:7000"),
            Ok(LinkSpec::TcpListen {
                host: "127.0.0.1".into(),
                port: 7000
            })
        );
        assert_eq!(
            parse("tcp-listen:0.0.0.0:0"),
            Ok(LinkSpec::TcpListen {
                host: "0.0.0.0".into(),
                port: 0
            })
        );
        assert_eq!(
            parse("serial:/dev/ttyUSB0@9600"),
            Ok(LinkSpec::Serial {
                port: "/dev/ttyUSB0".into(),
                baud: 9600
            })
        );
        assert_eq!(
            parse("serial:COM3"),
            Ok(LinkSpec::Serial {
                port: "COM3".into(),
                baud: 115_200
            })
        );
        assert_eq!(
            parse("exec:sh -c 'echo hi; cat'"),
            Ok(LinkSpec::Exec(vec![
                "sh".into(),
                "-c".into(),
                "echo hi; cat".into()
            ]))
        );
        assert_eq!(
            parse("filepipe:/tmp/root/pipe1"),
            Ok(LinkSpec::FilePipe {
                root: "/tmp/root".into(),
                name: "pipe1".into()
            })
        );
        assert_eq!(parse("stdio"), Ok(LinkSpec::Stdio));
        #[cfg(unix)]
        assert_eq!(parse("unix:/tmp/s"), Ok(LinkSpec::Unix("/tmp/s".into())));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = parse("tcp:7000").unwrap_err();
        assert!(e.contains("expected tcp:HOST:PORT"), "{e}");
        let e = parse("tcp:host:http").unwrap_err();
        assert!(e.contains("`http` is not a port"), "{e}");
        let e = parse("tcp-listen:x").unwrap_err();
        assert!(e.contains("expected tcp-listen:PORT"), "{e}");
        let e = parse("serial:/dev/ttyS0@fast").unwrap_err();
        assert!(
            e.contains("expected serial:PORT or serial:PORT@BAUD"),
            "{e}"
        );
        let e = parse("exec:").unwrap_err();
        assert!(e.contains("no command"), "{e}");
        let e = parse("exec:'open").unwrap_err();
        assert!(e.contains("unbalanced quotes"), "{e}");
        let e = parse("filepipe:pipe").unwrap_err();
        assert!(e.contains("expected filepipe:ROOT/NAME"), "{e}");
        let e = parse("udp:1:2").unwrap_err();
        assert!(e.contains("unknown link kind `udp:`"), "{e}");
        assert!(e.contains("tcp:HOST:PORT"), "{e}");
        let e = parse("localhost").unwrap_err();
        assert!(e.contains("is not a link"), "{e}");
    }
}
