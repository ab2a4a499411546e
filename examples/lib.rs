//! Runnable examples: `cargo run --release --example NAME`.

pub mod cli;
pub mod nvflare;
