//! The echo firmware's application on embassy, through peerpipe-embedded's async driver
//! (`peerpipe_embedded::asynch`), for QEMU's lm3s6965evb (Cortex-M3, thumbv7m):
//!
//! - [`uart`]: UART0 (a PL011) as embedded-io-async halves, both interrupt-driven: the RX
//!   interrupt moves the FIFO into a ring and wakes the reader, the TX interrupt wakes a
//!   writer that found the FIFO full;
//! - [`time_driver`]: embassy-time's driver on SysTick at 1 kHz, with embassy's timer queue;
//! - [`app`]: what `firmware/qemu-echo` answers, the same topics and counters, so that the
//!   host drives both through the same checks (`examples/qemu_host/`), as a task over a
//!   `Handle`, beside the driver's `Runner`.
//!
//! The binary (`src/bin/embassy-echo.rs`) holds the entry point and the interrupt handlers.

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod app;
pub mod time_driver;
pub mod uart;
