//! The tests' child processes: killed when a test ends early, their stdout lines on a
//! channel.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::PATIENCE;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/nvflare")
        .join(name)
}

/// A child process that is killed if the test ends early, with its stdout lines on a channel.
pub(crate) struct Proc {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command, name: &str) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines,
            name: name.to_owned(),
        }
    }

    pub(crate) fn python(
        py: &Path,
        script_name: &str,
        mode: &str,
        root: &Path,
        extra: &[&str],
    ) -> Proc {
        let mut cmd = Command::new(py);
        cmd.arg(script(script_name))
            .args(["--mode", mode, "--root"])
            .arg(root)
            .args(["--name", "pipe"])
            .args(extra);
        Proc::spawn(cmd, script_name)
    }

    /// Waits for a line starting with `prefix`.
    pub(crate) fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("{}: no line {prefix:?} within {PATIENCE:?}", self.name),
            }
        }
    }

    pub(crate) fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
