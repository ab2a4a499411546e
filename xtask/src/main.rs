//! `cargo xtask`: peerpipe's build and test tasks (std only, no dependencies).
//!
//! - `cargo xtask test [--no-setup] [FILTER...]`: installs what a fresh machine lacks (rustup
//!   targets, clippy and rustfmt, `qemu-system-arm`, `qemu-system-riscv32`, a Python venv with
//!   NVFlare), then runs every check CI runs, each timed, going on after a failure, and prints
//!   a summary. FILTERs keep only the steps whose name
//!   starts with one of them (`fmt`, `clippy`, `host`, `no_std`, `firmware`, `nvflare`, `many_pipes`, `doc`).
//! - `cargo xtask qemu`: builds `firmware/qemu-echo` for each QEMU board (lm3s6965evb, micro:bit,
//!   RISC-V virt) and drives it in QEMU over TCP with peerpipe-std (`examples/qemu_host.rs`).
//! - `cargo xtask size`: builds the echo firmware with panic-halt for each firmware target and
//!   prints `target=<triple> flash=<bytes> ram=<bytes> stack=<bytes or ?> bin=minimal` for its
//!   minimal binary (the core and the driver at default capacities, echo only); the stack
//!   high-water mark is measured in QEMU (`?` when that fails).
//! - `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of peerpipe-core
//!   (installing nightly and cargo-fuzz when missing) for N seconds each.

use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Every target the project builds for; `rustup target add`ed by `cargo xtask test`.
const TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

/// Targets peerpipe-core is built for, with every feature set.
const NO_STD_TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

/// Targets the firmware tests run on in QEMU (the board is chosen by `scripts/qemu-run.sh`).
const FIRMWARE_TARGETS: &[(&str, &str)] = &[
    ("thumbv7m-none-eabi", "lm3s6965evb"),
    ("thumbv6m-none-eabi", "microbit"),
];

/// The firmware test package: its own workspace, so it is built from its own directory.
const FIRMWARE_DIR: &str = "firmware/core-tests";

/// The embedded driver crate.
const EMBEDDED_PKG: &str = "peerpipe-embedded";

/// The async driver: its `serial` feature is built and tested on its own.
const TOKIO_PKG: &str = "peerpipe-tokio";

/// The QEMU demo firmware (its own workspace) and the targets it is built for, each with the
/// QEMU board it runs on (`cargo xtask qemu`); all are built by `cargo xtask test` and measured
/// by `cargo xtask size`.
const ECHO_DIR: &str = "firmware/qemu-echo";
const ECHO_BOARDS: &[(&str, &str)] = &[
    ("thumbv7m-none-eabi", "lm3s6965evb"),
    ("thumbv6m-none-eabi", "microbit"),
    ("riscv32imac-unknown-none-elf", "virt"),
];

/// QEMU programs the firmware runs in, each with the Debian package that provides it.
const QEMU_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "qemu-system-arm"),
    ("qemu-system-riscv32", "qemu-system-misc"),
];

/// The binary of the echo firmware `cargo xtask size` measures: the minimal one (the core and
/// the driver with default capacities, panic-halt, echo only).
const SIZE_BIN: &str = "minimal";

/// Whether `cargo xtask test` runs the QEMU echo test (`cargo xtask qemu`).
const TEST_RUNS_QEMU_ECHO: bool = true;

/// The core crate and its fuzz package.
const CORE_DIR: &str = "crates/peerpipe-core";
const FUZZ_DIR: &str = "crates/peerpipe-core/fuzz";

/// Host tests in the release profile: the simulation tests run many long virtual-time scenarios,
/// and optimised code more than pays back its longer build.
const HOST_TESTS_RELEASE: bool = true;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-setup] [FILTER...]
        install missing rustup targets/components and QEMU (as root), then run
        fmt, clippy, host tests, no_std builds of peerpipe-core and peerpipe-embedded
        (every feature set), the firmware builds, the QEMU firmware tests and the QEMU echo
        run (as `qemu` below), the NVFlare interop tests (a venv with nvflare 2.8.3 is made
        under target/), a many_pipes smoke run and docs; print a timed summary; exit 1 on
        any failure.
        FILTERs keep only the steps whose name starts with one of them:
        fmt, clippy, host, no_std, firmware, nvflare, many_pipes, doc.
  qemu  build firmware/qemu-echo and drive it in QEMU over TCP with peerpipe-std, on each
        board (lm3s6965evb, microbit, virt): requests, garbage, END/ABORT both ways, GONE,
        restart; then with peerpipe-tokio: concurrent echo, END, GONE
  size  print target=<triple> flash=<bytes> ram=<bytes> stack=<bytes or ?> bin=minimal for
        the minimal echo firmware (firmware/qemu-echo/src/bin/minimal.rs: core + SerialDriver
        at default capacities, panic-halt), per target; stack measured in QEMU by
        stack painting (? when QEMU is missing or the run fails)
  fuzz [--seconds N] [TARGET...]
        run each cargo-fuzz target of peerpipe-core for N seconds (default 60) on nightly,
        installing nightly and cargo-fuzz when missing; exit 1 on a crash.";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => return usage_error(None),
    };
    match command {
        "test" => test(rest),
        "fuzz" => fuzz(rest),
        "qemu" => qemu(),
        "size" => size(),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => usage_error(Some(&format!("unknown command `{other}`"))),
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

// ---------------------------------------------------------------------------------------------
// Commands

/// A command to run, kept printable.
#[derive(Clone, Debug)]
struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl Cmd {
    fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn cwd(mut self, dir: PathBuf) -> Self {
        self.cwd = Some(dir);
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.current_dir(self.cwd.clone().unwrap_or_else(root));
        command
    }

    /// How a person would type it from the workspace root.
    fn display(&self) -> String {
        let mut s = String::new();
        if let Some(dir) = &self.cwd {
            let shown = dir.strip_prefix(root()).unwrap_or(dir);
            s.push_str(&format!("(cd {} && ", shown.display()));
        }
        for (key, value) in &self.env {
            s.push_str(&format!("{key}={} ", quote(value)));
        }
        s.push_str(&self.program);
        for arg in &self.args {
            s.push(' ');
            s.push_str(&quote(arg));
        }
        if self.cwd.is_some() {
            s.push(')');
        }
        s
    }

    /// Runs with inherited stdio; true on exit status 0.
    fn run(&self) -> bool {
        println!("$ {}", self.display());
        match self.command().stdin(Stdio::null()).status() {
            Ok(status) if status.success() => true,
            Ok(status) => {
                eprintln!("xtask: `{}` failed: {status}", self.display());
                false
            }
            Err(err) => {
                eprintln!("xtask: cannot run `{}`: {err}", self.program);
                false
            }
        }
    }

    /// Runs quietly and returns stdout on success.
    fn output(&self) -> Option<String> {
        let out = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=+./,:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn cargo() -> Cmd {
    Cmd::new("cargo")
}

/// Whether `program` is an executable file on PATH.
fn on_path(program: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn is_root() -> bool {
    Cmd::new("id")
        .args(["-u"])
        .output()
        .is_some_and(|uid| uid.trim() == "0")
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask test`

/// One line of the summary: one or more commands, all run even when one fails.
struct Step {
    name: String,
    cmds: Vec<Cmd>,
}

impl Step {
    fn new(name: impl Into<String>, cmds: Vec<Cmd>) -> Self {
        Step {
            name: name.into(),
            cmds,
        }
    }
}

struct Outcome {
    name: String,
    ok: bool,
    secs: f64,
}

fn test(args: &[String]) -> ExitCode {
    let mut setup = true;
    let mut filters = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--no-setup" => setup = false,
            flag if flag.starts_with('-') => {
                return usage_error(Some(&format!("unknown option `{flag}`")))
            }
            filter => filters.push(filter.to_string()),
        }
    }

    let mut outcomes = Vec::new();
    if setup {
        println!("\n==> setup");
        let start = Instant::now();
        let ok = install_prerequisites();
        outcomes.push(Outcome {
            name: "setup".into(),
            ok,
            secs: start.elapsed().as_secs_f64(),
        });
    }

    let steps: Vec<Step> = test_steps()
        .into_iter()
        .filter(|step| {
            filters.is_empty() || filters.iter().any(|f| step.name.starts_with(f.as_str()))
        })
        .collect();
    if steps.is_empty() {
        eprintln!("xtask: no step matches {filters:?}");
        return ExitCode::from(2);
    }
    let total = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        println!("\n==> [{}/{total}] {}", i + 1, step.name);
        let start = Instant::now();
        let mut ok = true;
        for cmd in &step.cmds {
            ok &= cmd.run();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "<== {}: {} in {secs:.1} s",
            step.name,
            if ok { "ok" } else { "FAIL" }
        );
        outcomes.push(Outcome {
            name: step.name,
            ok,
            secs,
        });
    }

    summarize("xtask test", &outcomes)
}

fn summarize(title: &str, outcomes: &[Outcome]) -> ExitCode {
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

/// rustup targets and components, and QEMU when we are root; true when all is in place.
fn install_prerequisites() -> bool {
    let mut ok = true;
    if on_path("rustup") {
        ok &= rustup_add("target", TARGETS, |line, t| line.trim() == t);
        // Components are listed with their host triple (`clippy-x86_64-unknown-linux-gnu`).
        ok &= rustup_add("component", &["clippy", "rustfmt"], |line, c| {
            line.trim() == c || line.starts_with(&format!("{c}-"))
        });
    } else {
        println!(
            "xtask: no rustup on PATH; assuming the targets, clippy and rustfmt are installed"
        );
    }

    let missing: Vec<&(&str, &str)> = QEMU_PACKAGES
        .iter()
        .filter(|(program, _)| !on_path(program))
        .collect();
    if missing.is_empty() {
        println!("QEMU: qemu-system-arm, qemu-system-riscv32 on PATH");
    } else if is_root() && on_path("apt-get") {
        let apt = |args: &[&str]| {
            Cmd::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(args)
        };
        ok &= apt(&["update"]).run();
        // One package per command: a combined install failed here ("generated breaks").
        for (program, package) in missing {
            ok &= apt(&["install", "-y", "--no-install-recommends", package]).run();
            ok &= on_path(program);
        }
    } else {
        for (program, package) in missing {
            eprintln!("xtask: {program} is not on PATH and we cannot install it (not root, or no apt-get):");
            eprintln!(
                "       install it (Debian: apt-get install --no-install-recommends {package});"
            );
        }
        eprintln!("       the firmware steps will fail until then");
        ok = false;
    }
    ok
}

/// Adds the rustup `kind`s (`target` or `component`) of `wanted` that
/// `rustup KIND list --installed` does not show (`listed(line, name)` matches a line).
fn rustup_add(kind: &str, wanted: &[&str], listed: impl Fn(&str, &str) -> bool) -> bool {
    let Some(installed) = Cmd::new("rustup")
        .args([kind, "list", "--installed"])
        .output()
    else {
        eprintln!("xtask: `rustup {kind} list --installed` failed");
        return false;
    };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !installed.lines().any(|l| listed(l, w)))
        .collect();
    if missing.is_empty() {
        println!("rustup {kind}s: {} installed", wanted.join(", "));
        return true;
    }
    Cmd::new("rustup").args([kind, "add"]).args(&missing).run()
}

fn test_steps() -> Vec<Step> {
    let root = root();
    let mut steps = Vec::new();

    // Formatting: the workspace, plus the two packages outside it.
    let mut fmt = vec![cargo().args(["fmt", "--all", "--check"])];
    if root.join(FIRMWARE_DIR).join("Cargo.toml").exists() {
        fmt.push(
            cargo()
                .args(["fmt", "--check"]) // not --all: that would take in peerpipe-core
                .cwd(root.join(FIRMWARE_DIR)),
        );
    }
    if root.join(ECHO_DIR).join("Cargo.toml").exists() {
        fmt.push(cargo().args(["fmt", "--check"]).cwd(root.join(ECHO_DIR)));
    }
    let fuzz_sources = rust_files(&root.join(FUZZ_DIR).join("fuzz_targets"));
    if !fuzz_sources.is_empty() {
        // Plain rustfmt: `cargo fmt` there would resolve libfuzzer-sys first.
        let files: Vec<String> = fuzz_sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        fmt.push(
            Cmd::new("rustfmt")
                .args(["--check", "--edition", "2021"])
                .args(&files),
        );
    }
    steps.push(Step::new("fmt", fmt));

    steps.push(Step::new(
        "clippy (workspace, all targets)",
        vec![
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            cargo().args([
                "clippy",
                "--package",
                TOKIO_PKG,
                "--all-features",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ],
    ));

    // The core as the MCU sees it, and the two packages outside the workspace.
    let features = crate_features(&root.join(CORE_DIR).join("Cargo.toml"));
    let feature_sets = powerset(&features);
    // Clippy with no features and with all of them (the powerset is for the builds below).
    let mut clippy_sets = vec![Vec::new()];
    if !features.is_empty() {
        clippy_sets.push(features.clone());
    }
    let clippy_v6m = clippy_sets
        .iter()
        .map(|set| {
            cargo()
                .args(["clippy", "--package", "peerpipe-core"])
                .args(["--target", "thumbv6m-none-eabi"])
                .args(feature_args(set))
                .args(["--", "-D", "warnings"])
        })
        .collect();
    steps.push(Step::new(
        "clippy peerpipe-core thumbv6m-none-eabi",
        clippy_v6m,
    ));

    let embedded_features =
        crate_features(&root.join("crates").join(EMBEDDED_PKG).join("Cargo.toml"));
    let embedded_sets = powerset(&embedded_features);
    steps.push(Step::new(
        "clippy peerpipe-embedded thumbv6m-none-eabi",
        [Vec::new(), embedded_features.clone()]
            .iter()
            .map(|set| {
                cargo()
                    .args(["clippy", "--package", EMBEDDED_PKG])
                    .args(["--target", "thumbv6m-none-eabi"])
                    .args(feature_args(set))
                    .args(["--", "-D", "warnings"])
            })
            .collect(),
    ));
    // Each board has code of its own: clippy for every target.
    for (target, _) in ECHO_BOARDS {
        steps.push(Step::new(
            format!("clippy firmware/qemu-echo {target}"),
            vec![cargo()
                .args(["clippy", "--release", "--target", target])
                .args(["--", "-D", "warnings"])
                .cwd(root.join(ECHO_DIR))],
        ));
    }

    steps.push(Step::new(
        "clippy firmware/core-tests thumbv7m-none-eabi",
        vec![cargo()
            .args([
                "clippy",
                "--target",
                "thumbv7m-none-eabi",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .cwd(root.join(FIRMWARE_DIR))],
    ));
    if root.join(FUZZ_DIR).join("Cargo.toml").exists() {
        // Stable is enough to type-check the fuzz targets (running them needs nightly).
        steps.push(Step::new(
            "clippy fuzz targets",
            vec![cargo().args([
                "clippy",
                "--manifest-path",
                &format!("{FUZZ_DIR}/Cargo.toml"),
                "--",
                "-D",
                "warnings",
            ])],
        ));
    }

    // --no-fail-fast: every test binary runs even after one fails, so the log shows them all.
    let mut host_test = cargo().args(["test", "--workspace", "--no-fail-fast"]);
    if HOST_TESTS_RELEASE {
        host_test = host_test.args(["--release"]);
    }
    steps.push(Step::new(
        if HOST_TESTS_RELEASE {
            "host tests (release)"
        } else {
            "host tests"
        },
        vec![
            host_test,
            // The embedded-io adapter and its tests exist with the feature only.
            cargo().args(["test", "--package", EMBEDDED_PKG, "--all-features"]),
            // So do the tokio driver's serial port and its test over pseudo-terminals.
            cargo().args([
                "test",
                "--release",
                "--package",
                TOKIO_PKG,
                "--all-features",
            ]),
        ],
    ));

    // no_std builds of the core: every target x every feature set.
    for target in NO_STD_TARGETS {
        for set in &feature_sets {
            steps.push(Step::new(
                format!("no_std build {target} [{}]", set_name(set)),
                vec![cargo()
                    .args(["build", "--package", "peerpipe-core", "--target", target])
                    .args(feature_args(set))],
            ));
        }
    }
    // no_std builds of the embedded driver: every target x every feature set.
    for target in NO_STD_TARGETS {
        steps.push(Step::new(
            format!("no_std build {EMBEDDED_PKG} {target} [all feature sets]"),
            embedded_sets
                .iter()
                .map(|set| {
                    cargo()
                        .args(["build", "--package", EMBEDDED_PKG, "--target", target])
                        .args(feature_args(set))
                })
                .collect(),
        ));
    }
    // The echo firmware: the QEMU build (semihosting), the size build (panic-halt) and its
    // stack-measuring variant.
    for (target, _) in ECHO_BOARDS {
        steps.push(Step::new(
            format!("firmware build qemu-echo {target}"),
            vec![
                cargo()
                    .args(["build", "--release", "--target", target])
                    .cwd(root.join(ECHO_DIR)),
                echo_size_build(target),
                stack_probe_build(target),
            ],
        ));
    }
    if TEST_RUNS_QEMU_ECHO {
        for (target, board) in ECHO_BOARDS {
            steps.push(Step::new(
                format!("firmware qemu-echo over TCP {target} (qemu {board})"),
                qemu_cmds(target, board),
            ));
        }
    }

    // Firmware tests in QEMU; the runner is set per target in .cargo/config.toml.
    for (target, board) in FIRMWARE_TARGETS {
        steps.push(Step::new(
            format!("firmware tests {target} (qemu {board})"),
            vec![cargo()
                .args(["test", "--release", "--no-fail-fast", "--target", target])
                .cwd(root.join(FIRMWARE_DIR))],
        ));
    }

    steps.push(nvflare_step(&root));

    // The async driver at scale, as a smoke run (its numbers are printed, not judged here:
    // the 10,000-pipe, 20-second measurement is `cargo run --release --example many_pipes --
    // --pipes 10000`).
    let many_pipes = |extra: &[&str]| {
        cargo()
            .args(["run", "--release", "--package", "peerpipe-examples"])
            .args(["--example", "many_pipes", "--"])
            .args(extra)
    };
    steps.push(Step::new(
        "many_pipes smoke (tokio: 2000 idle pipes 5 s, 100 loaded pipes 3 s)",
        vec![
            many_pipes(&["--pipes", "2000", "--idle-secs", "5"]),
            many_pipes(&["--pipes", "100", "--load", "3"]),
        ],
    ));

    steps.push(Step::new(
        "doc",
        vec![cargo()
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--workspace", "--no-deps"])],
    ));
    steps
}

/// The NVFlare interoperation tests (`examples/tests/nvflare.rs`) against the real NVFlare
/// 2.8.3 from PyPI, in a venv under `target/` made on first use.
fn nvflare_step(root: &Path) -> Step {
    let venv = root.join("target").join("nvflare-venv");
    let python = venv.join("bin").join("python");
    let make_venv = format!(
        "if ! {py} -c 'import nvflare, sys; sys.exit(nvflare.__version__ != \"2.8.3\")' 2>/dev/null; then \
           echo 'xtask: creating {venv} with nvflare==2.8.3' >&2; \
           python3 -m venv --clear {venv} || {{ echo 'xtask: python3 cannot create a venv: install python3 with venv (e.g. apt-get install python3-venv)' >&2; exit 1; }}; \
           {py} -m pip install --quiet --disable-pip-version-check nvflare==2.8.3; \
         fi",
        py = quote(&python.display().to_string()),
        venv = quote(&venv.display().to_string()),
    );
    Step::new(
        "nvflare interop (python nvflare 2.8.3)",
        vec![
            Cmd::new("sh").args(["-c", &make_venv]),
            cargo()
                .env("PEERPIPE_NVFLARE_PYTHON", &python.display().to_string())
                .args(["test", "--release", "--package", "peerpipe-examples"])
                .args(["--test", "nvflare"]),
        ],
    )
}

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

/// The feature names of a package's `[features]` table, `default` excluded. A deliberately small
/// reader: keys at the start of a line inside `[features]`, up to the next table header.
fn crate_features(manifest: &Path) -> Vec<String> {
    let text = match fs::read_to_string(manifest) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "xtask: cannot read {}: {err}; assuming no features",
                manifest.display()
            );
            return Vec::new();
        }
    };
    parse_features(&text)
}

fn parse_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[')
            && !line.starts_with("[[")
            && line.ends_with(']')
            && !line.contains('"')
        {
            in_features = line == "[features]";
            continue;
        }
        if line.starts_with("[[") {
            in_features = false;
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let is_name = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
        if is_name && key != "default" && !features.iter().any(|f| f == key) {
            features.push(key.to_string());
        }
    }
    features
}

/// Every subset, smallest first.
fn powerset(items: &[String]) -> Vec<Vec<String>> {
    assert!(
        items.len() < 16,
        "too many features for a powerset: {items:?}"
    );
    let mut sets: Vec<Vec<String>> = (0u32..1 << items.len())
        .map(|mask| {
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| f.clone())
                .collect()
        })
        .collect();
    sets.sort_by_key(|s| s.len());
    sets
}

fn set_name(set: &[String]) -> String {
    if set.is_empty() {
        "no features".to_string()
    } else {
        set.join(",")
    }
}

fn feature_args(set: &[String]) -> Vec<String> {
    let mut args = vec!["--no-default-features".to_string()];
    if !set.is_empty() {
        args.push("--features".to_string());
        args.push(set.join(","));
    }
    args
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask qemu` and `cargo xtask size`

/// The commands of `cargo xtask qemu` for one board: build the firmware for its target and the
/// host driver, run it.
fn qemu_cmds(target: &str, board: &str) -> Vec<Cmd> {
    let root = root();
    let elf = root
        .join(ECHO_DIR)
        .join("target")
        .join(target)
        .join("release/echo");
    vec![
        cargo()
            .args(["build", "--release", "--target", target])
            .cwd(root.join(ECHO_DIR)),
        cargo().args([
            "run",
            "--release",
            "--package",
            "peerpipe-examples",
            "--example",
            "qemu_host",
            "--",
            &elf.display().to_string(),
            board,
        ]),
    ]
}

fn qemu() -> ExitCode {
    let mut outcomes = Vec::new();
    for (target, board) in ECHO_BOARDS {
        let program = if target.starts_with("riscv") {
            "qemu-system-riscv32"
        } else {
            "qemu-system-arm"
        };
        let start = Instant::now();
        let ok = if on_path(program) {
            qemu_cmds(target, board).iter().all(Cmd::run)
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
    summarize("xtask qemu", &outcomes)
}

/// The size build of the echo firmware: panic-halt, no semihosting, its own target dir.
fn echo_size_build(target: &str) -> Cmd {
    cargo()
        .args(["build", "--release", "--target", target])
        .args(["--no-default-features", "--features", "halt"])
        .args(["--target-dir", "target/size"])
        .cwd(root().join(ECHO_DIR))
}

/// The minimal firmware with the feature `stack-probe` (paints its stack, answers `stack`).
fn stack_probe_build(target: &str) -> Cmd {
    cargo()
        .args(["build", "--release", "--target", target, "--bin", SIZE_BIN])
        .args(["--no-default-features", "--features", "halt,stack-probe"])
        .args(["--target-dir", "target/size-stack"])
        .cwd(root().join(ECHO_DIR))
}

/// The stack high-water mark of the minimal firmware on `board`, measured in QEMU: the
/// `stack-probe` build driven through requests of every size, pipelined requests and garbage
/// by `qemu_host --stack`. `None` when it cannot be measured (no QEMU, a failed run).
fn measure_stack(target: &str, board: &str) -> Option<u64> {
    if !stack_probe_build(target).run() {
        return None;
    }
    let elf = root()
        .join(ECHO_DIR)
        .join("target/size-stack")
        .join(target)
        .join("release")
        .join(SIZE_BIN);
    let cmd = cargo().args([
        "run",
        "--release",
        "--package",
        "peerpipe-examples",
        "--example",
        "qemu_host",
        "--",
        "--stack",
        &elf.display().to_string(),
        board,
    ]);
    println!("$ {}", cmd.display());
    let out = cmd.output();
    let stack = out
        .as_deref()
        .and_then(|out| out.lines().find_map(|l| l.strip_prefix("stack=")))
        .and_then(|n| n.trim().parse().ok());
    if stack.is_none() {
        eprintln!("xtask: no stack measurement for {target} ({board})");
    }
    stack
}

fn size() -> ExitCode {
    let tool = ["llvm-size", "llvm-size-14", "arm-none-eabi-size"]
        .into_iter()
        .find(|t| on_path(t));
    let Some(tool) = tool else {
        eprintln!("xtask: no llvm-size or arm-none-eabi-size on PATH");
        return ExitCode::FAILURE;
    };
    let mut lines = Vec::new();
    let mut ok = true;
    for (target, board) in ECHO_BOARDS {
        if !echo_size_build(target).run() {
            ok = false;
            continue;
        }
        let elf = root()
            .join(ECHO_DIR)
            .join("target/size")
            .join(target)
            .join("release")
            .join(SIZE_BIN);
        let Some(out) = Cmd::new(tool)
            .args(["-A", &elf.display().to_string()])
            .output()
        else {
            eprintln!("xtask: `{tool} -A {}` failed", elf.display());
            ok = false;
            continue;
        };
        let (flash, ram) = section_sizes(&out);
        let stack = measure_stack(target, board).map_or("?".to_string(), |s| s.to_string());
        lines.push(format!(
            "target={target} flash={flash} ram={ram} stack={stack} bin={SIZE_BIN}"
        ));
    }
    println!();
    for line in &lines {
        println!("{line}");
    }
    println!("(bin: firmware/qemu-echo/src/bin/{SIZE_BIN}.rs, the core + SerialDriver at default");
    println!(
        " capacities echoing requests, panic-halt; the echo app with stats is built alongside)"
    );
    println!("(flash: vector table + text + rodata + data; ram: data + bss + uninit, static only;");
    println!(" stack: high-water mark measured in QEMU by stack painting (feature stack-probe)");
    println!(" after requests of every size, pipelined requests and garbage; the endpoint and");
    println!(" the driver live on main's stack, so it counts them: RAM in use = ram + stack)");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// (flash, static RAM) from `size -A` output.
fn section_sizes(size_a: &str) -> (u64, u64) {
    let (mut flash, mut ram) = (0, 0);
    for line in size_a.lines() {
        let mut cols = line.split_whitespace();
        let (Some(name), Some(bytes)) = (cols.next(), cols.next()) else {
            continue;
        };
        let Ok(bytes) = bytes.parse::<u64>() else {
            continue;
        };
        match name {
            ".vector_table" | ".text" | ".rodata" | ".init" | ".trap" => flash += bytes,
            ".data" | ".sdata" => {
                flash += bytes;
                ram += bytes;
            }
            ".bss" | ".sbss" | ".uninit" => ram += bytes,
            _ => {}
        }
    }
    (flash, ram)
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask fuzz`

fn fuzz(args: &[String]) -> ExitCode {
    let mut seconds: u64 = 60;
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => seconds = n,
                _ => return usage_error(Some("--seconds needs a whole number of seconds > 0")),
            },
            flag if flag.starts_with("--seconds=") => match flag["--seconds=".len()..].parse() {
                Ok(n) if n > 0 => seconds = n,
                _ => return usage_error(Some("--seconds needs a whole number of seconds > 0")),
            },
            flag if flag.starts_with('-') => {
                return usage_error(Some(&format!("unknown option `{flag}`")))
            }
            target => only.push(target.to_string()),
        }
    }

    println!("==> fuzz setup");
    let has_nightly = Cmd::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_some_and(|list| list.lines().any(|l| l.starts_with("nightly")));
    if !has_nightly
        && !Cmd::new("rustup")
            .args(["toolchain", "install", "nightly", "--profile", "minimal"])
            .run()
    {
        return ExitCode::FAILURE;
    }
    if cargo()
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_none()
        && !cargo().args(["install", "--locked", "cargo-fuzz"]).run()
    {
        return ExitCode::FAILURE;
    }

    let root = root();
    let fuzz_dir = root.join(FUZZ_DIR);
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
        let cmd = cargo()
            .args([
                "+nightly",
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ])
            .cwd(root.join(CORE_DIR));
        let report = run_fuzz_target(&cmd);
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

/// Runs one `cargo fuzz run`, echoing its stderr and reading libFuzzer's run count and any
/// crash artifacts from it.
fn run_fuzz_target(cmd: &Cmd) -> FuzzReport {
    println!("$ {}", cmd.display());
    let mut report = FuzzReport {
        success: false,
        execs: None,
        artifacts: Vec::new(),
    };
    let mut child = match cmd
        .command()
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
    fn features_are_read_from_the_features_table() {
        let manifest = r#"
[package]
name = "x"
[features]
default = ["a"]
## doc comment = not a key
a = []
"b-c" = ["dep:defmt",
    "heapless/defmt"]
[dependencies]
d = "1"
"#;
        assert_eq!(parse_features(manifest), ["a", "b-c"]);
    }

    #[test]
    fn powerset_lists_every_subset_smallest_first() {
        let sets = powerset(&["a".into(), "b".into()]);
        assert_eq!(sets.len(), 4);
        assert!(sets[0].is_empty());
        assert_eq!(sets[3], ["a", "b"]);
        assert_eq!(powerset(&[]), [Vec::<String>::new()]);
    }

    #[test]
    fn size_sections_are_summed() {
        let out = "echo  :\nsection size addr\n.vector_table 192 0\n.text 1000 192\n.rodata 100 1192\n.data 8 536870912\n.bss 276 536870920\n.uninit 0 0\n.debug_info 5000 0\nTotal 6576\n";
        assert_eq!(section_sizes(out), (1300, 284));
    }

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
