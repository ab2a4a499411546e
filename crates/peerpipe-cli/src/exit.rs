//! Exit codes, and how a failed call maps to one.

use std::io::ErrorKind;

use peerpipe_std::{CloseReason, Error, FailReason};

/// What went wrong, as the process's exit code. `--help` lists them ([`TABLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Anything else: a local file that cannot be read or written, an internal error.
    Other = 1,
    /// Bad arguments or link syntax (clap's own usage errors exit 2 too).
    Usage = 2,
    /// The link could not be opened: connection refused, TLS refused (either way), no such
    /// port, file or command.
    Link = 3,
    /// Timeout: the peer did not acknowledge in time, or did not reply in time.
    Timeout = 4,
    /// The peer is gone: it went silent, or closed the link.
    Gone = 5,
    /// The peer ended (END) or aborted (ABORT) the conversation.
    Ended = 6,
    /// Refused before sending: invalid topic, data over the size limit, unreadable input.
    Refused = 7,
    /// The peer answered on topic `error` (what `serve` does when its command fails).
    ErrorReply = 8,
    /// A file arrived with another SHA-256 than the one sent (`send-file`, `recv-file`): it
    /// was not kept.
    Mismatch = 9,
    /// The peer refused: a file that exists there, over its size limit, or that it cannot
    /// store (`send-file`, `recv-file`); a message longer than the peer accepts.
    Rejected = 10,
}

impl Code {
    /// A short name for `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Code::Other => "error",
            Code::Usage => "usage",
            Code::Link => "link",
            Code::Timeout => "timeout",
            Code::Gone => "gone",
            Code::Ended => "ended",
            Code::Refused => "refused",
            Code::ErrorReply => "error_reply",
            Code::Mismatch => "mismatch",
            Code::Rejected => "rejected",
        }
    }
}

/// The exit codes, as `--help` shows them.
pub const TABLE: &str = "\
Exit status:
  0  success
  1  other error (a local file, an internal error)
  2  usage: bad arguments or link syntax
  3  link error: could not open the link (connection refused, TLS refused, no such port,
     file or command)
  4  timeout: not acknowledged in time, or no reply in time
  5  peer gone: it went silent or closed the link
  6  the peer ended (END) or aborted (ABORT) the conversation
  7  refused: invalid topic, data over 4 GiB, unreadable input
  8  the peer answered on topic `error` (serve's reply when its command fails)
  9  digest mismatch: the file arrived with another SHA-256 (send-file, recv-file)
 10  rejected by the peer: the file exists there, is over its size limit, or cannot be
     stored (send-file, recv-file); a message longer than the peer accepts";

/// A failure: its exit code and what to tell the user.
#[derive(Debug, Clone)]
pub struct CliError {
    pub code: Code,
    pub message: String,
}

impl CliError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

/// I/O errors that mean the link never opened (as opposed to a peer that went away).
pub fn is_open_failure(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::AddrInUse
            | ErrorKind::AddrNotAvailable
            | ErrorKind::InvalidInput
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::TimedOut
    )
}

/// The exit code and message for a handler call on `link` that failed while doing `what`.
pub fn from_link(link: &crate::link::LinkSpec, what: &str, e: &Error) -> CliError {
    match e {
        Error::TransportLost(cause) if is_open_failure(cause.kind()) => {
            CliError::new(Code::Link, format!("cannot open {link}: {cause}"))
        }
        Error::TransportLost(cause) => CliError::new(
            Code::Gone,
            format!("{what}: the link to the peer broke: {cause}"),
        ),
        _ => from_pipe(what, e),
    }
}

/// The exit code and message for a handler call that failed while doing `what`.
pub fn from_pipe(what: &str, e: &Error) -> CliError {
    let code = match e {
        Error::Invalid(_) => Code::Refused,
        Error::Config(_) => Code::Usage,
        Error::Closed(CloseReason::PeerEnded | CloseReason::PeerAborted)
        | Error::Failed(FailReason::PeerEnded | FailReason::PeerAborted) => Code::Ended,
        Error::TransportLost(cause) if is_open_failure(cause.kind()) => Code::Link,
        e if e.is_peer_gone() => Code::Gone,
        e if e.is_timeout() => Code::Timeout,
        Error::Failed(FailReason::ResendsExhausted) => Code::Timeout,
        Error::Failed(FailReason::TooLarge) => Code::Rejected,
        _ => Code::Other,
    };
    let hint = match code {
        Code::Timeout => " (is the peer running and answering? --timeout sets the wait)",
        _ => "",
    };
    CliError::new(code, format!("{what}: {e}{hint}"))
}
