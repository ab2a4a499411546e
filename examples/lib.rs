//! Runnable examples: `cargo run --release --example NAME`.

pub mod bare;
#[path = "../crates/peerpipe-host/tests/support/certs.rs"]
pub mod certs;
pub mod cli;
pub mod nvflare;
