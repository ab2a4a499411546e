//! `cargo xtask test`: every check CI runs, as timed steps, and their summary.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use xshell::{cmd, Shell};

use crate::features::{crate_features, feature_args, feature_sets, names, set_name};
use crate::install::install_prerequisites;
use crate::qemu::{embassy_jobs, qemu_jobs};
use crate::run::{at, summarize, Job, Outcome};
use crate::size::{echo_size_build, stack_probe_build};
use crate::{
    root, rust_files, CORE_DIR, ECHO_BOARDS, ECHO_DIR, EMBASSY_BOARD, EMBASSY_DIR, FUZZ_DIR,
};

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

/// Whether `cargo xtask test` runs the QEMU echo tests of both firmwares (`cargo xtask qemu`).
const TEST_RUNS_QEMU_ECHO: bool = true;

/// Host tests in the release profile: the simulation tests run many long virtual-time scenarios,
/// and optimised code more than pays back its longer build.
const HOST_TESTS_RELEASE: bool = true;

/// One line of the summary: one or more commands, all run even when one fails.
struct Step<'a> {
    name: String,
    jobs: Vec<Job<'a>>,
}

impl<'a> Step<'a> {
    fn new(name: impl Into<String>, jobs: Vec<Job<'a>>) -> Self {
        Step {
            name: name.into(),
            jobs,
        }
    }
}

pub fn test(sh: &Shell, setup: bool, filters: &[String]) -> ExitCode {
    let mut outcomes = Vec::new();
    if setup {
        println!("\n==> setup");
        let start = Instant::now();
        let ok = install_prerequisites(sh);
        outcomes.push(Outcome {
            name: "setup".into(),
            ok,
            secs: start.elapsed().as_secs_f64(),
        });
    }

    let steps: Vec<Step> = test_steps(sh)
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
        for job in &step.jobs {
            ok &= job.run(sh);
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

/// Desktop systems other than the one CI runs on, for which the host crates must build.
const HOST_CHECK_TARGETS: [&str; 2] = ["x86_64-pc-windows-gnu", "x86_64-apple-darwin"];

/// Every feature of the host crates except `tls`, as `package/feature,...`.
fn host_features_but_tls(root: &Path) -> String {
    let mut all = Vec::new();
    for package in [
        "peerpipe-host",
        "peerpipe-std",
        TOKIO_PKG,
        "peerpipe-nvflare",
        "peerpipe-cli",
    ] {
        let manifest = root.join("crates").join(package).join("Cargo.toml");
        for feature in names(&crate_features(&manifest)) {
            if feature != "tls" {
                all.push(format!("{package}/{feature}"));
            }
        }
    }
    all.join(",")
}

fn test_steps(sh: &Shell) -> Vec<Step<'_>> {
    let root = root();
    let mut steps = Vec::new();

    // Formatting: the workspace, plus the two packages outside it.
    let mut fmt = vec![cmd!(sh, "cargo fmt --all --check").into()];
    if root.join(FIRMWARE_DIR).join("Cargo.toml").exists() {
        // not --all: that would take in peerpipe-core
        fmt.push(at(FIRMWARE_DIR, cmd!(sh, "cargo fmt --check")));
    }
    for dir in [ECHO_DIR, EMBASSY_DIR] {
        if root.join(dir).join("Cargo.toml").exists() {
            fmt.push(at(dir, cmd!(sh, "cargo fmt --check")));
        }
    }
    let fuzz_sources = rust_files(&root.join(FUZZ_DIR).join("fuzz_targets"));
    if !fuzz_sources.is_empty() {
        // Plain rustfmt: `cargo fmt` there would resolve libfuzzer-sys first.
        fmt.push(cmd!(sh, "rustfmt --check --edition 2021 {fuzz_sources...}").into());
    }
    // Brought in with `include!` (once per embedded-io version): `cargo fmt` does not see it.
    let included = root
        .join("crates")
        .join(EMBEDDED_PKG)
        .join("src")
        .join("io.rs");
    if included.exists() {
        fmt.push(cmd!(sh, "rustfmt --check --edition 2021 {included}").into());
    }
    steps.push(Step::new("fmt", fmt));

    steps.push(Step::new(
        "clippy (workspace, all targets)",
        vec![
            cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").into(),
            cmd!(
                sh,
                "cargo clippy --package {TOKIO_PKG} --all-features --all-targets -- -D warnings"
            )
            .into(),
        ],
    ));

    // The host crates on the other desktop systems: type-checked, tests included (linking
    // would need their toolchains), with every feature but `tls`: its crypto (ring) compiles
    // C for the target, which needs that target's C compiler. (The workspace's clippy and
    // tests above and below build `tls`: the examples package turns it on.)
    let host_features = host_features_but_tls(&root);
    for target in HOST_CHECK_TARGETS {
        steps.push(Step::new(
            format!("check host crates {target}"),
            vec![cmd!(
                sh,
                "cargo check --package peerpipe-host --package peerpipe-std --package {TOKIO_PKG} --package peerpipe-nvflare --package peerpipe-cli --all-targets --no-default-features --features {host_features} --target {target}"
            )
            .into()],
        ));
    }

    // The core's hardware CRC-32C has a second path, for aarch64, which the host here never
    // builds: clippy (no linker needed) keeps it compiling and lint-clean.
    steps.push(Step::new(
        "clippy peerpipe-core aarch64-unknown-linux-gnu [hardware-crc]",
        vec![cmd!(
            sh,
            "cargo clippy --package peerpipe-core --all-targets --features hardware-crc --target aarch64-unknown-linux-gnu -- -D warnings"
        )
        .into()],
    ));

    // The core as the MCU sees it, and the two packages outside the workspace.
    let core_features = crate_features(&root.join(CORE_DIR).join("Cargo.toml"));
    let core_sets = feature_sets(&core_features);
    let features = names(&core_features);
    // Clippy with no features and with all of them (every set is for the builds below).
    let mut clippy_sets = vec![Vec::new()];
    if !features.is_empty() {
        clippy_sets.push(features.clone());
    }
    let clippy_v6m = |package: &str, set: &[String]| {
        let features = feature_args(set);
        cmd!(sh, "cargo clippy --package {package} --target thumbv6m-none-eabi {features...} -- -D warnings").into()
    };
    steps.push(Step::new(
        "clippy peerpipe-core thumbv6m-none-eabi",
        clippy_sets
            .iter()
            .map(|set| clippy_v6m("peerpipe-core", set))
            .collect(),
    ));

    let embedded_features =
        crate_features(&root.join("crates").join(EMBEDDED_PKG).join("Cargo.toml"));
    let embedded_sets = feature_sets(&embedded_features);
    let embedded_features = names(&embedded_features);
    steps.push(Step::new(
        "clippy peerpipe-embedded thumbv6m-none-eabi",
        [Vec::new(), embedded_features.clone()]
            .iter()
            .map(|set| clippy_v6m(EMBEDDED_PKG, set))
            .collect(),
    ));
    // Each board has code of its own: clippy for every target.
    for (target, _) in ECHO_BOARDS {
        steps.push(Step::new(
            format!("clippy firmware/qemu-echo {target}"),
            vec![at(
                ECHO_DIR,
                cmd!(
                    sh,
                    "cargo clippy --release --target {target} -- -D warnings"
                ),
            )],
        ));
    }

    let (embassy_target, embassy_board) = EMBASSY_BOARD;
    steps.push(Step::new(
        format!("clippy {EMBASSY_DIR} {embassy_target}"),
        vec![at(
            EMBASSY_DIR,
            cmd!(
                sh,
                "cargo clippy --release --target {embassy_target} -- -D warnings"
            ),
        )],
    ));

    steps.push(Step::new(
        "clippy firmware/core-tests thumbv7m-none-eabi",
        vec![at(
            FIRMWARE_DIR,
            cmd!(
                sh,
                "cargo clippy --target thumbv7m-none-eabi --all-targets -- -D warnings"
            ),
        )],
    ));
    if root.join(FUZZ_DIR).join("Cargo.toml").exists() {
        // Stable is enough to type-check the fuzz targets (running them needs nightly).
        let manifest = format!("{FUZZ_DIR}/Cargo.toml");
        steps.push(Step::new(
            "clippy fuzz targets",
            vec![cmd!(sh, "cargo clippy --manifest-path {manifest} -- -D warnings").into()],
        ));
    }

    // --no-fail-fast: every test binary runs even after one fails, so the log shows them all.
    let release = HOST_TESTS_RELEASE.then_some("--release");
    steps.push(Step::new(
        if HOST_TESTS_RELEASE {
            "host tests (release)"
        } else {
            "host tests"
        },
        vec![
            cmd!(sh, "cargo test --workspace --no-fail-fast {release...}").into(),
            // The embedded-io adapter and its tests exist with the feature only.
            cmd!(sh, "cargo test --package {EMBEDDED_PKG} --all-features").into(),
            // So do the tokio driver's serial port and its test over pseudo-terminals.
            cmd!(
                sh,
                "cargo test --release --package {TOKIO_PKG} --all-features"
            )
            .into(),
        ],
    ));

    // no_std builds of the core: every target x every feature set.
    let no_std_build = |package: &str, target: &str, set: &[String]| {
        let features = feature_args(set);
        cmd!(
            sh,
            "cargo build --package {package} --target {target} {features...}"
        )
        .into()
    };
    for target in NO_STD_TARGETS {
        for set in &core_sets {
            steps.push(Step::new(
                format!("no_std build {target} [{}]", set_name(set)),
                vec![no_std_build("peerpipe-core", target, set)],
            ));
        }
    }
    // no_std builds of the embedded driver: every target x every distinct feature set (see `feature_sets`).
    for target in NO_STD_TARGETS {
        steps.push(Step::new(
            format!("no_std build {EMBEDDED_PKG} {target} [all feature sets]"),
            embedded_sets
                .iter()
                .map(|set| no_std_build(EMBEDDED_PKG, target, set))
                .collect(),
        ));
    }
    // The echo firmware: the QEMU build (semihosting), the size build (panic-halt) and its
    // stack-measuring variant.
    for (target, _) in ECHO_BOARDS {
        steps.push(Step::new(
            format!("firmware build qemu-echo {target}"),
            vec![
                at(
                    ECHO_DIR,
                    cmd!(sh, "cargo build --release --target {target}"),
                ),
                echo_size_build(sh, target),
                stack_probe_build(sh, target),
            ],
        ));
    }
    if TEST_RUNS_QEMU_ECHO {
        for (target, board) in ECHO_BOARDS {
            steps.push(Step::new(
                format!("firmware qemu-echo over TCP {target} (qemu {board})"),
                qemu_jobs(sh, target, board),
            ));
        }
        // The embassy firmware (built by its first job) through the same checks.
        steps.push(Step::new(
            format!("firmware qemu-embassy over TCP {embassy_target} (qemu {embassy_board})"),
            embassy_jobs(sh),
        ));
    }

    // Firmware tests in QEMU; the runner is set per target in .cargo/config.toml.
    for (target, board) in FIRMWARE_TARGETS {
        steps.push(Step::new(
            format!("firmware tests {target} (qemu {board})"),
            vec![at(
                FIRMWARE_DIR,
                cmd!(sh, "cargo test --release --no-fail-fast --target {target}"),
            )],
        ));
    }

    steps.push(nvflare_step(sh, &root));

    // The async driver at scale, as a smoke run (its numbers are printed, not judged here:
    // the 10,000-pipe, 20-second measurement is `cargo run --release --example many_pipes --
    // --pipes 10000`).
    let many_pipes = |options: &[&str]| {
        cmd!(
            sh,
            "cargo run --release --package peerpipe-examples --example many_pipes -- {options...}"
        )
        .into()
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
        vec![Job::from(cmd!(sh, "cargo doc --workspace --no-deps"))
            .env("RUSTDOCFLAGS", "-D warnings")],
    ));

    // What crates.io would receive, every publishable crate in dependency order, each
    // package built from its own tarball. None is published yet: cargo resolves the
    // workspace's own crates from the packages it just made, so no `--no-verify` is needed.
    // `--allow-dirty`: this checks the packages, not whether the work tree is committed.
    // Cargo unpacks those packages under CARGO_HOME/registry/src and builds them in the
    // target directory as registry crates, which it never rebuilds: with the version
    // unchanged, a second run would verify against the first run's copies. Both go first
    // (our crates never come from crates.io).
    let package_dir = root.join("target").join("package-check");
    steps.push(Step::new(
        "publish dry-run (every publishable crate, verified)",
        vec![
            cmd!(
                sh,
                "sh -c {FORGET_PACKAGES} sh {package_dir}"
            )
            .into(),
            cmd!(
                sh,
                "cargo publish --dry-run --workspace --allow-dirty --exclude peerpipe-examples --exclude peerpipe-tests --exclude xtask --target-dir {package_dir}"
            )
            .into(),
        ],
    ));
    steps
}

/// `sh -c FORGET_PACKAGES sh DIR`: removes the package check's target directory DIR and the
/// unpacked copies of this workspace's own packages from cargo's registry cache.
const FORGET_PACKAGES: &str =
    "rm -rf \"$1\" \"${CARGO_HOME:-$HOME/.cargo}\"/registry/src/*/peerpipe-*";

/// `sh -c MAKE_VENV sh PYTHON VENV`: makes the venv VENV with nvflare 2.8.3 unless its
/// PYTHON already imports it.
const MAKE_VENV: &str = "\
    if ! \"$1\" -c 'import nvflare, sys; sys.exit(nvflare.__version__ != \"2.8.3\")' 2>/dev/null; then \
      echo \"xtask: creating $2 with nvflare==2.8.3\" >&2; \
      python3 -m venv --clear \"$2\" || { echo 'xtask: python3 cannot create a venv: install python3 with venv (e.g. apt-get install python3-venv)' >&2; exit 1; }; \
      \"$1\" -m pip install --quiet --disable-pip-version-check nvflare==2.8.3; \
    fi";

/// The NVFlare interoperation tests (`examples/tests/nvflare.rs`) against the real NVFlare
/// 2.8.3 from PyPI, in a venv under `target/` made on first use.
fn nvflare_step<'a>(sh: &'a Shell, root: &Path) -> Step<'a> {
    let venv = root.join("target").join("nvflare-venv");
    let python = venv.join("bin").join("python");
    Step::new(
        "nvflare interop (python nvflare 2.8.3)",
        vec![
            cmd!(sh, "sh -c {MAKE_VENV} sh {python} {venv}").into(),
            Job::from(cmd!(
                sh,
                "cargo test --release --package peerpipe-examples --test nvflare"
            ))
            .env("PEERPIPE_NVFLARE_PYTHON", python.display().to_string()),
        ],
    )
}
