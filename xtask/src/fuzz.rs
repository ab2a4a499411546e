//! `cargo xtask fuzz`: the cargo-fuzz targets of peerpipe-core, each for a while.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use xshell::{cmd, Shell};

use crate::run::{read, run, summarize, Outcome};
use crate::{root, rust_files, CORE_DIR, FUZZ_DIR};

/// Runs each fuzz target (or those of `only`) for `seconds`.
pub fn fuzz(sh: &Shell, seconds: u64, only: &[String]) -> ExitCode {
    println!("==> fuzz setup");
    let has_nightly = read(cmd!(sh, "rustup toolchain list"))
        .is_some_and(|list| list.lines().any(|l| l.starts_with("nightly")));
    if !has_nightly
        && !run(
            sh,
            cmd!(sh, "rustup toolchain install nightly --profile minimal"),
        )
    {
        return ExitCode::FAILURE;
    }
    if read(cmd!(sh, "cargo +nightly fuzz --version")).is_none()
        && !run(sh, cmd!(sh, "cargo install --locked cargo-fuzz"))
    {
        return ExitCode::FAILURE;
    }

    let fuzz_dir = root().join(FUZZ_DIR);
    let mut targets: Vec<String> = rust_files(&fuzz_dir.join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    if targets.is_empty() {
        eprintln!(
            "xtask: no fuzz targets under {}",
            fuzz_dir.join("fuzz_targets").display()
        );
        return ExitCode::FAILURE;
    }
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|t| !targets.contains(t)) {
            eprintln!(
                "xtask: no fuzz target `{unknown}` (have: {})",
                targets.join(", ")
            );
            return ExitCode::from(2);
        }
        targets.retain(|t| only.contains(t));
    }

    let mut outcomes = Vec::new();
    let mut reports = Vec::new();
    for target in &targets {
        println!("\n==> fuzz {target} for {seconds} s");
        let start = Instant::now();
        let report = run_fuzz_target(sh, target, seconds);
        let secs = start.elapsed().as_secs_f64();
        let ok = report.success && report.artifacts.is_empty();
        let verdict = match (&report.artifacts[..], report.success) {
            ([], true) => "no crash".to_string(),
            ([], false) => "FAILED (no crash input written: see output above)".to_string(),
            (artifacts, _) => format!("CRASH: {}", artifacts.join(", ")),
        };
        let execs = report
            .execs
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        println!("<== fuzz {target}: {execs} executions, {verdict}");
        reports.push(format!("{target}: {execs} executions, {verdict}"));
        outcomes.push(Outcome {
            name: format!("fuzz {target}"),
            ok,
            secs,
        });
    }
    println!();
    for report in &reports {
        println!("{report}");
    }
    summarize("xtask fuzz", &outcomes)
}

struct FuzzReport {
    success: bool,
    execs: Option<u64>,
    artifacts: Vec<String>,
}

/// Runs `cargo fuzz run TARGET` for `seconds`, echoing its stderr and reading libFuzzer's run
/// count and any crash artifacts from it.
fn run_fuzz_target(sh: &Shell, target: &str, seconds: u64) -> FuzzReport {
    let mut report = FuzzReport {
        success: false,
        execs: None,
        artifacts: Vec::new(),
    };
    let max_total_time = format!("-max_total_time={seconds}");
    let _dir = sh.push_dir(CORE_DIR);
    let cmd = cmd!(sh, "cargo +nightly fuzz run {target} -- {max_total_time}");
    println!("$ (cd {CORE_DIR} && {cmd})");
    // A std Command: xshell hands over a child's stderr only when it has exited, and this
    // reads it line by line while the fuzzer runs.
    let mut child = match Command::from(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("xtask: cannot run cargo: {err}");
            return report;
        }
    };
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Some(n) = parse_execs(&line) {
                report.execs = Some(n);
            }
            if let Some(path) = line.split("Test unit written to ").nth(1) {
                report.artifacts.push(path.trim().to_string());
            }
        }
    }
    report.success = child.wait().is_ok_and(|status| status.success());
    report
}

/// libFuzzer's "Done 123 runs in 5 second(s)" or a status line "#123\tNEW ...".
fn parse_execs(line: &str) -> Option<u64> {
    if let Some(rest) = line.strip_prefix("Done ") {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let rest = line.strip_prefix('#')?;
    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if n.is_empty() || !rest[n.len()..].starts_with(char::is_whitespace) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_counts_are_parsed() {
        assert_eq!(
            parse_execs("Done 919291 runs in 21 second(s)"),
            Some(919291)
        );
        assert_eq!(
            parse_execs("#65536\tpulse  cov: 310 ft: 1020 corp: 90/2Kb exec/s: 32768"),
            Some(65536)
        );
        assert_eq!(parse_execs("#include"), None);
        assert_eq!(parse_execs("INFO: Seed: 1"), None);
    }
}
