//! The demo application of `peerpipe-embedded` and the drivers and clocks it needs
//! (`systick` on Cortex-M, `rv` on RISC-V; [`stack`] measures stack use), kept free of any
//! runtime so that the same code runs on both (the binaries in `src/bin/` hold the entry
//! points and interrupt handlers).
//!
//! The echo firmware runs [`run`] on every board: the UART's RX interrupt moves bytes into a
//! [`Ring`](ring::Ring), the loop feeds them to the driver, sends by polling and sleeps (WFI)
//! until a byte, the clock's interrupt or the next deadline (see [`Board`]; the boards are
//! `systick::CortexM` and `rv::Virt`). The minimal firmware polls its UART and never sleeps.
//!
//! What the application does (see [`Responder`], which [`App`] runs over the polled driver):
//! - a request with topic `stats` is answered with the counters (see [`Stats`]);
//! - a request `crc` of any length is answered with its CRC-32 (IEEE, as zlib and
//!   `crc32fast` compute it; 4 bytes, little-endian). A long one arrives in parts, which go
//!   into a running CRC as they come: the message is never held (the micro:bit has 16 KiB of
//!   RAM);
//! - a request `gen` with a length N (`u32`, little-endian) is answered with an N-byte reply
//!   whose byte `i` is `(i * 31 + 7) & 0xFF` (see [`generated`]), sent from a
//!   [`Source`](peerpipe_embedded::Source) ([`Generated`]) that makes each fragment's bytes
//!   when the driver encodes its frame;
//! - any other request in parts (too long to echo) is answered with `too-long`;
//! - a request `end` (`abort`) is answered with `ok`, then the firmware sends END (ABORT) with
//!   the data `fw-end` (`fw-abort`);
//! - a request `bench` is answered with its payload as it is (what `peerpipe bench` expects
//!   of an echoing peer);
//! - any other request is answered with the same topic and the payload reversed;
//! - END and ABORT from the peer are counted. A conversation closed by END or ABORT, either
//!   way, cannot carry messages any more, so the firmware then starts a new endpoint with a new
//!   session (once its last sends are settled, at most [`LINGER_MS`] later): the peer sees
//!   `PeerRestarted` and a new conversation can begin. GONE is counted; the endpoint stays (a
//!   peer that comes back reopens the conversation).

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod answer;
pub mod nrf51;
pub mod ns16550;
pub mod pl011;
pub mod ring;
#[cfg(target_arch = "riscv32")]
pub mod rv;
pub mod stack;
#[cfg(target_arch = "arm")]
pub mod systick;

mod app;
mod board;
mod crc;
mod source;
mod stats;

pub use answer::{Answers, Responder};
pub use app::App;
pub use board::{run, Board};
pub use crc::crc32;
pub use source::{generated, Generated};
pub use stats::Stats;

use peerpipe_embedded::{Config, SerialDriver};

/// The pipe: default capacities (128-byte payloads, 32-byte topics, 4 + 4 slots).
pub type Pipe<S> = SerialDriver<S>;

/// How long a closed conversation may wait for its last sends before the endpoint is replaced.
pub const LINGER_MS: u64 = 3_000;

/// The longest message the firmware accepts, announced to the host: a longer send fails
/// there at once (`TooLarge`). Long ones are streamed, never held, so this is a choice, not
/// a memory limit.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// How long a `gen` reply may take, resends included (64 KiB take a few seconds over QEMU's
/// UART; a busy host makes it slower).
pub const GEN_TIMEOUT_MS: u64 = 60_000;

/// The endpoint's timing: heartbeats every second, the host is gone after 5 s of silence;
/// messages up to [`MAX_MESSAGE`]. (`Config` takes `core::time::Duration`; the endpoint's own
/// `Duration`, in microseconds, is for arithmetic on its `Instant`.)
pub fn config() -> Config {
    use core::time::Duration;
    Config {
        heartbeat_interval: Duration::from_millis(1_000),
        heartbeat_timeout: Duration::from_millis(5_000),
        resend_interval: Some(Duration::from_millis(500)),
        max_resends: Some(10),
        default_request_timeout: Duration::from_millis(6_000),
        max_message: MAX_MESSAGE,
    }
}
