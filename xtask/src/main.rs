//! `cargo xtask`: peerpipe's build and test tasks (arguments read with lexopt, commands run
//! with xshell).
//!
//! - `cargo xtask test [--no-setup] [FILTER...]`: installs what a fresh machine lacks (rustup
//!   targets, clippy and rustfmt, `qemu-system-arm`, `qemu-system-riscv32`, a Python venv with
//!   NVFlare), then runs every check CI runs, each timed, going on after a failure, and prints
//!   a summary. FILTERs keep only the steps whose name
//!   starts with one of them (`fmt`, `clippy`, `host`, `no_std`, `firmware`, `nvflare`, `many_pipes`, `doc`).
//! - `cargo xtask qemu`: builds `firmware/qemu-echo` for each QEMU board (lm3s6965evb, micro:bit,
//!   RISC-V virt) and drives it in QEMU over TCP with peerpipe-std, a core endpoint (messages
//!   of any size: a 256 KiB request streamed into a CRC, a 64 KiB generated reply) and
//!   peerpipe-tokio (`examples/qemu_host/`); then `firmware/qemu-embassy` (the same
//!   application on embassy, through peerpipe-embedded's async driver) on the lm3s6965evb,
//!   through the same checks.
//! - `cargo xtask size`: builds the echo firmware with panic-halt for each firmware target and
//!   prints `target=<triple> flash=<bytes> ram=<bytes> stack=<bytes or ?> bin=minimal` for its
//!   minimal binary (the core and the driver at default capacities, echo only); the stack
//!   high-water mark is measured in QEMU (`?` when that fails).
//! - `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of peerpipe-core
//!   (installing nightly and cargo-fuzz when missing) for N seconds each.
//!
//! Modules: `args` (the command line), `run` (running commands, the summary table), `install`
//! (setup), `steps` (`test`), `features` (feature sets), `qemu`, `size`, `fuzz`.

mod args;
mod features;
mod fuzz;
mod install;
mod qemu;
mod run;
mod size;
mod steps;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xshell::Shell;

use crate::args::Task;

/// The QEMU demo firmware (its own workspace) and the targets it is built for, each with the
/// QEMU board it runs on (`cargo xtask qemu`); all are built by `cargo xtask test` and measured
/// by `cargo xtask size`.
const ECHO_DIR: &str = "firmware/qemu-echo";
const ECHO_BOARDS: &[(&str, &str)] = &[
    ("thumbv7m-none-eabi", "lm3s6965evb"),
    ("thumbv6m-none-eabi", "microbit"),
    ("riscv32imac-unknown-none-elf", "virt"),
];

/// The embassy firmware (its own workspace; `peerpipe_embedded::asynch` on embassy) and the
/// one target and QEMU board it is built for and run on (`cargo xtask qemu`).
const EMBASSY_DIR: &str = "firmware/qemu-embassy";
const EMBASSY_BOARD: (&str, &str) = ("thumbv7m-none-eabi", "lm3s6965evb");

/// The core crate and its fuzz package.
const CORE_DIR: &str = "crates/peerpipe-core";
const FUZZ_DIR: &str = "crates/peerpipe-core/fuzz";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-setup] [FILTER...]
        install missing rustup targets/components and QEMU (as root), then run
        fmt, clippy, host tests, no_std builds of peerpipe-core and peerpipe-embedded
        (every distinct feature set), the firmware builds, the QEMU firmware tests and the QEMU echo
        run (as `qemu` below), the NVFlare interop tests (a venv with nvflare 2.8.3 is made
        under target/), a many_pipes smoke run and docs; print a timed summary; exit 1 on
        any failure.
        FILTERs keep only the steps whose name starts with one of them:
        fmt, clippy, host, no_std, firmware, nvflare, many_pipes, doc.
  qemu  build firmware/qemu-echo and drive it in QEMU over TCP with peerpipe-std, on each
        board (lm3s6965evb, microbit, virt): requests, oversize, garbage, END/ABORT both
        ways, GONE, restart; then with a core endpoint: a 256 KiB request streamed into a
        CRC-32, a 64 KiB generated reply, a message cut off (UART throughput printed); then
        with peerpipe-tokio: concurrent echo, END, GONE; then the same checks against
        firmware/qemu-embassy (embassy, peerpipe-embedded's async driver) on lm3s6965evb
  size  print target=<triple> flash=<bytes> ram=<bytes> stack=<bytes or ?> bin=minimal for
        the minimal echo firmware (firmware/qemu-echo/src/bin/minimal.rs: core + SerialDriver
        at default capacities, requests in parts answered with their CRC, panic-halt), per
        target; stack measured in QEMU by
        stack painting (? when QEMU is missing or the run fails)
  fuzz [--seconds N] [TARGET...]
        run each cargo-fuzz target of peerpipe-core for N seconds (default 60) on nightly,
        installing nightly and cargo-fuzz when missing; exit 1 on a crash.";

fn main() -> ExitCode {
    let task = match args::parse(env::args_os().skip(1)) {
        Ok(Some(task)) => task,
        Ok(None) => return usage_error(None),
        Err(err) => return usage_error(Some(&err.to_string())),
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(err) => {
            eprintln!("xtask: {err}");
            return ExitCode::FAILURE;
        }
    };
    sh.change_dir(root()); // every command runs from the workspace root unless said otherwise
    match task {
        Task::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Task::Test { setup, filters } => steps::test(&sh, setup, &filters),
        Task::Qemu => qemu::qemu(&sh),
        Task::Size => size::size(&sh),
        Task::Fuzz { seconds, targets } => fuzz::fuzz(&sh, seconds, &targets),
    }
}

fn usage_error(message: Option<&str>) -> ExitCode {
    if let Some(message) = message {
        eprintln!("xtask: {message}");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The workspace root (the xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// The `.rs` files in `dir`, sorted; none when it cannot be read.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
