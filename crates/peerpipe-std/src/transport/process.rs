//! A child process's stdin/stdout (the parent's end) and this process's own (the worker's).

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Link, Transport};

/// The parent's end: spawns a worker program and talks to it over its stdin and stdout (its
/// stderr is inherited, for its logs). Stopping the handler with `close_pipe` closes the
/// worker's stdin, waits up to a second for it to exit, then kills it; its exit status is
/// then available from [`exit_status`](Self::exit_status).
pub struct ChildTransport {
    command: Command,
    exit: ChildExit,
}

impl ChildTransport {
    /// A transport that spawns `command` when the handler starts.
    pub fn new(command: Command) -> Self {
        ChildTransport {
            command,
            exit: ChildExit::default(),
        }
    }

    /// A handle on the worker's exit status, filled in when the handler stops with
    /// `close_pipe` and reaps the worker.
    pub fn exit_status(&self) -> ChildExit {
        self.exit.clone()
    }
}

/// The exit status of a worker spawned by a [`ChildTransport`], once its handler reaped it.
#[derive(Clone, Default, Debug)]
pub struct ChildExit(Arc<(Mutex<Option<ExitStatus>>, Condvar)>);

impl ChildExit {
    fn set(&self, status: ExitStatus) {
        let (slot, cond) = &*self.0;
        if let Ok(mut s) = slot.lock() {
            *s = Some(status);
            cond.notify_all();
        }
    }

    /// The exit status, if the worker was reaped already.
    pub fn get(&self) -> Option<ExitStatus> {
        self.0 .0.lock().ok().and_then(|s| *s)
    }

    /// Waits up to `timeout` for the worker to be reaped.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let (slot, cond) = &*self.0;
        let guard = slot.lock().ok()?;
        let (guard, _) = cond
            .wait_timeout_while(guard, timeout, |s| s.is_none())
            .ok()?;
        *guard
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
        let exit = self.exit;
        // The handler drops both pipe ends before it runs the closer: the worker sees EOF.
        Ok(super::duplex(stdout, stdin)?.with_closer(move || {
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    exit.set(status);
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                exit.set(status);
            }
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
