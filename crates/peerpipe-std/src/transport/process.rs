//! A child process's stdin/stdout (the parent's end) and this process's own (the worker's).

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Link, Transport};

/// The parent's end: spawns a worker program and talks to it over its stdin and stdout (its
/// stderr is inherited, for its logs). Stopping the handler with `close_pipe` closes the
/// worker's stdin, waits up to a second for it to exit, then kills it.
pub struct ChildTransport {
    command: Command,
}

impl ChildTransport {
    /// A transport that spawns `command` when the handler starts.
    pub fn new(command: Command) -> Self {
        ChildTransport { command }
    }
}

impl Transport for ChildTransport {
    fn open(mut self: Box<Self>) -> io::Result<Link> {
        let mut child: Child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("child has no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("child has no stdout"))?;
        Ok(Link::from_stream(stdout, stdin)?.with_closer(move || {
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }))
    }
}

/// The worker's end: this process's stdin and stdout (log to stderr, never to stdout).
#[derive(Debug, Default)]
pub struct StdioTransport;

impl Transport for StdioTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        Link::from_stream(io::stdin(), io::stdout())
    }
}
