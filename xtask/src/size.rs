//! `cargo xtask size`: flash, static RAM and measured stack of the minimal echo firmware.

use std::process::ExitCode;

use xshell::{cmd, Shell};

use crate::run::{at, on_path, read, Job};
use crate::{root, ECHO_BOARDS, ECHO_DIR};

/// The binary of the echo firmware `cargo xtask size` measures: the minimal one (the core and
/// the driver with default capacities, panic-halt, echo and requests in parts answered with
/// their CRC).
const SIZE_BIN: &str = "minimal";

/// The Cortex-M0 budget the minimal firmware is held to (printed, not enforced): flash of
/// 10 KiB and RAM in use (static + stack) of 3 KiB, with streaming receive compiled in
/// (docs/design/firmware-size.md says where it stands and what each change saved).
const BUDGET: (&str, u64, u64) = ("thumbv6m-none-eabi", 10 * 1024, 3 * 1024);

/// The size build of the echo firmware: panic-halt, no semihosting, its own target dir.
pub fn echo_size_build<'a>(sh: &'a Shell, target: &str) -> Job<'a> {
    at(
        ECHO_DIR,
        cmd!(sh, "cargo build --release --target {target} --no-default-features --features halt --target-dir target/size"),
    )
}

/// The minimal firmware with the feature `stack-probe` (paints its stack, answers `stack`).
pub fn stack_probe_build<'a>(sh: &'a Shell, target: &str) -> Job<'a> {
    at(
        ECHO_DIR,
        cmd!(sh, "cargo build --release --target {target} --bin {SIZE_BIN} --no-default-features --features halt,stack-probe --target-dir target/size-stack"),
    )
}

/// The stack high-water mark of the minimal firmware on `board`, measured in QEMU: the
/// `stack-probe` build driven through requests of every size, pipelined requests and garbage
/// by `qemu_host --stack`. `None` when it cannot be measured (no QEMU, a failed run).
fn measure_stack(sh: &Shell, target: &str, board: &str) -> Option<u64> {
    if !stack_probe_build(sh, target).run(sh) {
        return None;
    }
    let elf = root()
        .join(ECHO_DIR)
        .join("target/size-stack")
        .join(target)
        .join("release")
        .join(SIZE_BIN);
    let cmd = cmd!(
        sh,
        "cargo run --release --package peerpipe-examples --example qemu_host -- --stack {elf} {board}"
    );
    println!("$ {cmd}");
    let stack = read(cmd)
        .as_deref()
        .and_then(|out| out.lines().find_map(|l| l.strip_prefix("stack=")))
        .and_then(|n| n.trim().parse().ok());
    if stack.is_none() {
        eprintln!("xtask: no stack measurement for {target} ({board})");
    }
    stack
}

pub fn size(sh: &Shell) -> ExitCode {
    let tool = ["llvm-size", "llvm-size-14", "arm-none-eabi-size"]
        .into_iter()
        .find(|t| on_path(t));
    let Some(tool) = tool else {
        eprintln!("xtask: no llvm-size or arm-none-eabi-size on PATH");
        return ExitCode::FAILURE;
    };
    let mut lines = Vec::new();
    let mut ok = true;
    let mut budget = None;
    for (target, board) in ECHO_BOARDS {
        if !echo_size_build(sh, target).run(sh) {
            ok = false;
            continue;
        }
        let elf = root()
            .join(ECHO_DIR)
            .join("target/size")
            .join(target)
            .join("release")
            .join(SIZE_BIN);
        let Some(out) = read(cmd!(sh, "{tool} -A {elf}")) else {
            eprintln!("xtask: `{tool} -A {}` failed", elf.display());
            ok = false;
            continue;
        };
        let (flash, ram) = section_sizes(&out);
        let stack = measure_stack(sh, target, board);
        if *target == BUDGET.0 {
            budget = Some((flash, stack.map(|s| ram + s)));
        }
        // RAM in use: the static RAM and the stack's high-water mark (unknown without it).
        let (stack, total) = match stack {
            Some(s) => (s.to_string(), (ram + s).to_string()),
            None => ("?".to_string(), "?".to_string()),
        };
        lines.push(format!(
            "target={target} flash={flash} ram={ram} stack={stack} ram_total={total} bin={SIZE_BIN}"
        ));
    }
    println!();
    for line in &lines {
        println!("{line}");
    }
    println!("(bin: firmware/qemu-echo/src/bin/{SIZE_BIN}.rs, the core + SerialDriver at default");
    println!(" capacities echoing requests and answering requests in parts with their CRC-32,");
    println!(" panic-halt; the echo app with stats is built alongside)");
    println!("(flash: vector table + text + rodata + data; ram: data + bss + uninit, static only;");
    println!(" stack: high-water mark measured in QEMU by stack painting (feature stack-probe)");
    println!(" after requests of every size, pipelined requests, garbage and requests in parts;");
    println!(" the endpoint and the driver live on main's stack, so it counts them:");
    println!(" ram_total = ram + stack)");
    if let Some((flash, total)) = budget {
        let (target, max_flash, max_ram) = BUDGET;
        let verdict = |value: u64, max: u64| {
            if value <= max {
                format!("{value} <= {max}, within")
            } else {
                format!("{value} > {max}, over by {}", value - max)
            }
        };
        println!(
            "(budget, {target}: flash {}; ram_total {})",
            verdict(flash, max_flash),
            total.map_or("unmeasured".to_string(), |t| verdict(t, max_ram))
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_sections_are_summed() {
        let out = "echo  :\nsection size addr\n.vector_table 192 0\n.text 1000 192\n.rodata 100 1192\n.data 8 536870912\n.bss 276 536870920\n.uninit 0 0\n.debug_info 5000 0\nTotal 6576\n";
        assert_eq!(section_sizes(out), (1300, 284));
    }
}
