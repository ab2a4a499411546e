//! peerpipe-core on the MCU (run in QEMU): the wire codec through the stream decoder, and two
//! endpoints talking over a lossy in-memory link in deterministic virtual time: requests and
//! replies, a message of any size sent from a source and received in parts, GONE.
//!
//! `cargo test --release --target thumbv7m-none-eabi` (lm3s6965evb) or `thumbv6m-none-eabi`
//! (micro:bit, 16K RAM). Everything lives on the stack: the endpoints are of the default
//! capacities, the size a Cortex-M0 application would use.

#![no_std]
#![no_main]

use core_tests::Runner;
use panic_semihosting as _;
use peerpipe_core::Endpoint;

mod codec;
mod exchange;
mod gone;
mod link;
mod long_message;

use codec::{codec_byte_by_byte, codec_every_kind, codec_garbage};
use exchange::exchange_lossy;
use gone::gone_after_silence;
use long_message::long_message_lossy;

/// The default endpoint: 128-byte payloads, 32-byte topics, 4 receive and 4 send slots.
type Ep = Endpoint;

/// A buffer for one encoded frame from an endpoint of the default capacities.
const FRAME_BUF: usize = <Ep>::MAX_FRAME_LEN;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut t = Runner::new("core-tests");
    t.run(
        "codec: every frame kind round-trips through the stream decoder",
        codec_every_kind,
    );
    t.run("codec: frames fed one byte at a time", codec_byte_by_byte);
    t.run(
        "codec: garbage, noise and corruption before a frame",
        codec_garbage,
    );
    t.run(
        "endpoints: requests, replies and END over a link dropping a third of the frames",
        exchange_lossy,
    );
    t.run(
        "endpoints: 20 KiB each way from sources, received in parts, over a lossy link",
        long_message_lossy,
    );
    t.run(
        "endpoints: GONE after silence, at the exact deadline",
        gone_after_silence,
    );
    t.finish()
}
