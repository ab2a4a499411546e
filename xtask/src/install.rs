//! What a fresh machine lacks for `cargo xtask test`: rustup targets and components, QEMU.

use xshell::{cmd, Shell};

use crate::run::{on_path, read, run, Job};

/// Every target the project builds for; `rustup target add`ed by `cargo xtask test`.
const TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
    // `cargo check` of the host crates for the other desktop systems (no linker needed).
    "x86_64-pc-windows-gnu",
    "x86_64-apple-darwin",
    // The core's hardware CRC on the other CPU it has a path for (`cargo clippy`, no linker).
    "aarch64-unknown-linux-gnu",
];

/// QEMU programs the firmware runs in, each with the Debian package that provides it.
const QEMU_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "qemu-system-arm"),
    ("qemu-system-riscv32", "qemu-system-misc"),
];

/// rustup targets and components, and QEMU when we are root; true when all is in place.
pub fn install_prerequisites(sh: &Shell) -> bool {
    let mut ok = true;
    if on_path("rustup") {
        ok &= rustup_add(sh, "target", TARGETS, |line, t| line.trim() == t);
        // Components are listed with their host triple (`clippy-x86_64-unknown-linux-gnu`).
        ok &= rustup_add(sh, "component", &["clippy", "rustfmt"], |line, c| {
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
    let is_root = || read(cmd!(sh, "id -u")).is_some_and(|uid| uid.trim() == "0");
    if missing.is_empty() {
        println!("QEMU: qemu-system-arm, qemu-system-riscv32 on PATH");
    } else if is_root() && on_path("apt-get") {
        let apt = |cmd| Job::from(cmd).env("DEBIAN_FRONTEND", "noninteractive");
        ok &= apt(cmd!(sh, "apt-get update")).run(sh);
        // One package per command: a combined install failed here ("generated breaks").
        for (program, package) in missing {
            ok &= apt(cmd!(
                sh,
                "apt-get install -y --no-install-recommends {package}"
            ))
            .run(sh);
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
fn rustup_add(
    sh: &Shell,
    kind: &str,
    wanted: &[&str],
    listed: impl Fn(&str, &str) -> bool,
) -> bool {
    let Some(installed) = read(cmd!(sh, "rustup {kind} list --installed")) else {
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
    run(sh, cmd!(sh, "rustup {kind} add {missing...}"))
}
