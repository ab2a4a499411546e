//! Running commands with xshell, and the summary table of their outcomes.

use std::env;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use xshell::{Cmd, Shell};

/// A command to run from the workspace root or from a directory below it, kept printable.
pub struct Job<'a> {
    dir: Option<&'static str>,
    env: Vec<(&'static str, String)>,
    cmd: Cmd<'a>,
}

impl<'a> From<Cmd<'a>> for Job<'a> {
    fn from(cmd: Cmd<'a>) -> Self {
        Job {
            dir: None,
            env: Vec::new(),
            cmd: cmd.quiet(), // `run` prints the command itself, with its directory
        }
    }
}

/// `cmd`, run from `dir` (relative to the workspace root).
pub fn at<'a>(dir: &'static str, cmd: Cmd<'a>) -> Job<'a> {
    Job {
        dir: Some(dir),
        ..cmd.into()
    }
}

impl Job<'_> {
    /// Sets the environment variable `key` for the command.
    pub fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        self.cmd = self.cmd.env(key, &value);
        self.env.push((key, value));
        self
    }

    /// Prints the command, runs it with inherited stdio in `sh` (the shell the command was
    /// made with); true on exit status 0.
    pub fn run(&self, sh: &Shell) -> bool {
        println!("$ {self}");
        let _dir = self.dir.map(|dir| sh.push_dir(dir));
        match self.cmd.run() {
            Ok(()) => true,
            Err(err) => {
                eprintln!("xtask: {err}");
                false
            }
        }
    }
}

/// How a person would type it from the workspace root.
impl fmt::Display for Job<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = self.dir {
            write!(f, "(cd {dir} && ")?;
        }
        for (key, value) in &self.env {
            if value.contains(char::is_whitespace) {
                write!(f, "{key}={value:?} ")?;
            } else {
                write!(f, "{key}={value} ")?;
            }
        }
        write!(f, "{}", self.cmd)?;
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Runs `cmd` from the workspace root, printing it first; true on exit status 0.
pub fn run(sh: &Shell, cmd: Cmd<'_>) -> bool {
    Job::from(cmd).run(sh)
}

/// Runs `cmd` quietly (stderr discarded) and returns its stdout on exit status 0.
pub fn read(cmd: Cmd<'_>) -> Option<String> {
    cmd.quiet().ignore_stderr().read().ok()
}

/// Whether `program` is an executable file on PATH.
pub fn on_path(program: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// One line of a summary.
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    pub secs: f64,
}

/// Prints the summary table of `outcomes`; exit code 1 when any failed.
pub fn summarize(title: &str, outcomes: &[Outcome]) -> ExitCode {
    let width = outcomes
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let total: f64 = outcomes.iter().map(|o| o.secs).sum();
    println!("\n{title} summary");
    println!("{:<width$}  {:<6}  {:>8}", "step", "result", "seconds");
    println!("{:-<width$}  {:-<6}  {:->8}", "", "", "");
    for o in outcomes {
        println!(
            "{:<width$}  {:<6}  {:>8.1}",
            o.name,
            if o.ok { "ok" } else { "FAIL" },
            o.secs
        );
    }
    println!("{:<width$}  {:<6}  {:>8.1}", "total", "", total);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let passed = outcomes.len() - failed;
    if failed > 0 {
        let names: Vec<&str> = outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| o.name.as_str())
            .collect();
        println!("\nfailed: {}", names.join(", "));
    }
    println!("xtask: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
