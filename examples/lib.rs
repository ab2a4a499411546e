//! Runnable examples: `cargo run --release --example NAME`.

pub mod nvflare;
