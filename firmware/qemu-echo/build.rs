//! Writes the `memory.x` of the board each target is built (and run) for, links with the
//! runtime's `link.x`, and sets `cfg(board = "...")` to that board (the QEMU machine).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-check-cfg=cfg(board, values(\"lm3s6965evb\", \"microbit\", \"virt\"))");
    let (board, memory_x) = match target.as_str() {
        // lm3s6965evb (Cortex-M3, QEMU): 256K flash, 64K RAM.
        "thumbv7m-none-eabi" | "thumbv7em-none-eabi" | "thumbv7em-none-eabihf" => {
            ("lm3s6965evb", cortex_m(256, 64))
        }
        // micro:bit (nRF51822, Cortex-M0, QEMU): 256K flash, 16K RAM.
        "thumbv6m-none-eabi" => ("microbit", cortex_m(256, 16)),
        // QEMU `virt` (riscv32): everything in RAM at 0x8000_0000.
        "riscv32imac-unknown-none-elf" => (
            "virt",
            "MEMORY\n{\n  RAM : ORIGIN = 0x80000000, LENGTH = 16M\n}\n\
             REGION_ALIAS(\"REGION_TEXT\", RAM);\nREGION_ALIAS(\"REGION_RODATA\", RAM);\n\
             REGION_ALIAS(\"REGION_DATA\", RAM);\nREGION_ALIAS(\"REGION_BSS\", RAM);\n\
             REGION_ALIAS(\"REGION_HEAP\", RAM);\nREGION_ALIAS(\"REGION_STACK\", RAM);\n"
                .to_string(),
        ),
        // Host (`cargo check` without --target): nothing to link.
        _ => return,
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    fs::write(out.join("memory.x"), memory_x).expect("write memory.x");
    println!("cargo:rustc-cfg=board=\"{board}\"");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
}

fn cortex_m(flash_k: u32, ram_k: u32) -> String {
    format!(
        "MEMORY\n{{\n  FLASH : ORIGIN = 0x00000000, LENGTH = {flash_k}K\n  RAM : ORIGIN = 0x20000000, LENGTH = {ram_k}K\n}}\n"
    )
}
