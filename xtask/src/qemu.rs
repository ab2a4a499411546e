//! `cargo xtask qemu`: the echo firmware driven in QEMU over TCP, on each board, and the
//! embassy firmware through the same checks.

use std::process::ExitCode;
use std::time::Instant;

use xshell::{cmd, Shell};

use crate::run::{at, on_path, summarize, Job, Outcome};
use crate::{root, ECHO_BOARDS, ECHO_DIR, EMBASSY_BOARD, EMBASSY_DIR};

/// The commands of `cargo xtask qemu` for one board: build the firmware for its target and the
/// host driver, run it; then `peerpipe request` against it (a test of peerpipe-cli).
pub fn qemu_jobs<'a>(sh: &'a Shell, target: &str, board: &str) -> Vec<Job<'a>> {
    let elf = root()
        .join(ECHO_DIR)
        .join("target")
        .join(target)
        .join("release/echo");
    vec![
        at(
            ECHO_DIR,
            cmd!(sh, "cargo build --release --target {target}"),
        ),
        cmd!(
            sh,
            "cargo run --release --package peerpipe-examples --example qemu_host -- {elf} {board}"
        )
        .into(),
        // The command-line tool against the same firmware (release: the host tests' build).
        Job::from(cmd!(
            sh,
            "cargo test --release --package peerpipe-cli --test cli -- --ignored --exact qemu::request_against_the_qemu_echo_firmware"
        ))
        .env("PEERPIPE_QEMU_ELF", elf.display().to_string())
        .env("PEERPIPE_QEMU_BOARD", board),
    ]
}

/// The commands for the embassy firmware: build it, run `qemu_host` against it (the echo
/// firmware's checks: it answers the same way).
pub fn embassy_jobs(sh: &Shell) -> Vec<Job<'_>> {
    let (target, board) = EMBASSY_BOARD;
    let elf = root()
        .join(EMBASSY_DIR)
        .join("target")
        .join(target)
        .join("release/embassy-echo");
    vec![
        at(
            EMBASSY_DIR,
            cmd!(sh, "cargo build --release --target {target}"),
        ),
        cmd!(
            sh,
            "cargo run --release --package peerpipe-examples --example qemu_host -- {elf} {board}"
        )
        .into(),
    ]
}

pub fn qemu(sh: &Shell) -> ExitCode {
    let mut outcomes = Vec::new();
    for (target, board) in ECHO_BOARDS {
        let program = if target.starts_with("riscv") {
            "qemu-system-riscv32"
        } else {
            "qemu-system-arm"
        };
        let start = Instant::now();
        let ok = if on_path(program) {
            qemu_jobs(sh, target, board).iter().all(|job| job.run(sh))
        } else {
            eprintln!("xtask: {program} is not on PATH (see QEMU_PACKAGES; `cargo xtask test` installs it as root)");
            false
        };
        outcomes.push(Outcome {
            name: format!("qemu-echo over TCP {target} ({board})"),
            ok,
            secs: start.elapsed().as_secs_f64(),
        });
    }
    let (target, board) = EMBASSY_BOARD;
    let start = Instant::now();
    let ok = if on_path("qemu-system-arm") {
        embassy_jobs(sh).iter().all(|job| job.run(sh))
    } else {
        eprintln!("xtask: qemu-system-arm is not on PATH (see QEMU_PACKAGES; `cargo xtask test` installs it as root)");
        false
    };
    outcomes.push(Outcome {
        name: format!("qemu-embassy over TCP {target} ({board})"),
        ok,
        secs: start.elapsed().as_secs_f64(),
    });
    summarize("xtask qemu", &outcomes)
}
