//! Writes the lm3s6965evb's `memory.x` (256K flash, 64K RAM) and links with cortex-m-rt's
//! `link.x`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    if !env::var("TARGET")
        .unwrap_or_default()
        .starts_with("thumbv7")
    {
        // Host (`cargo check` without --target): nothing to link.
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    fs::write(
        out.join("memory.x"),
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 64K\n}\n",
    )
    .expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
}
