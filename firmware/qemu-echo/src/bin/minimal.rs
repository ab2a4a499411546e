//! The minimal firmware `cargo xtask size` measures: the core and `SerialDriver` at default
//! capacities, panic-halt, nothing else. It answers every request with the same topic and
//! payload (an echo), and a request too long for one frame, which arrives in parts, with its
//! CRC-32 (4 bytes, little-endian; the streaming receive: the parts go into a running CRC,
//! the message is never held); no stats, no endpoint replacement, no sending from a source. With the feature `stack-probe` it
//! paints its stack at boot and answers a request `stack` with the stack high-water mark
//! (little-endian `u32`) instead: `cargo xtask size` runs that variant in QEMU.
//!
//! - Cortex-M: the board's UART (the PL011 of the lm3s6965evb on thumbv7m, the nRF51 UART of
//!   the micro:bit on thumbv6m) polled by the driver, SysTick at 1 kHz as the clock.
//! - RISC-V (QEMU `virt`): the NS16550 polled by the driver, `mtime` as the clock.

#![no_std]
#![no_main]

#[cfg(feature = "halt")]
use panic_halt as _;

use embedded_hal_nb::serial::{Read, Write};
use peerpipe_embedded::{Endpoint, EventRef, Instant, Item, MsgId, PartKind};
use qemu_echo::Pipe;

/// The request arriving in parts and its CRC so far.
type Streaming = Option<(MsgId, u32)>;

/// One turn: move bytes, echo requests, answer requests in parts with their CRC, drop
/// outcomes. Not inlined into `main`: the event and its temporaries then live in a frame
/// only while a turn runs, not beside the pipe in `main`'s (about 300 B less stack).
#[inline(never)]
fn step<S: Read<u8> + Write<u8>>(pipe: &mut Pipe<S>, now: Instant, streaming: &mut Streaming) {
    // It polls in a loop: the next deadline is of no use to it.
    pipe.pump(now);
    serve(pipe.endpoint_mut(), now, streaming);
    pipe.pump(now);
}

/// Takes the events and sends the replies. Not inlined into [`step`]: the reply's copy of
/// the request (about 160 B) and its temporaries then live in a frame of their own, not in
/// the one that is on the driver's `poll` path too (the deepest).
#[inline(never)]
fn serve(ep: &mut Endpoint, now: Instant, streaming: &mut Streaming) {
    while ep.pending_sends() < 4 {
        // The event is lent from the receive slot (no copy of a whole slot); what the reply
        // needs of it is copied out, since sending uses the endpoint again.
        let mut topic = heapless::String::<32>::new();
        let mut payload = heapless::Vec::<u8, 128>::new();
        let req_id = match ep.poll_event_ref() {
            None => break,
            Some(EventRef::Message(m)) if m.is_request() => {
                let _ = topic.push_str(m.topic());
                #[cfg(feature = "stack-probe")]
                let data = if m.topic() == "stack" {
                    &qemu_echo::stack::used().to_le_bytes()[..]
                } else {
                    m.data()
                };
                #[cfg(not(feature = "stack-probe"))]
                let data = m.data();
                let _ = payload.extend_from_slice(data);
                m.id()
            }
            Some(EventRef::Part(part)) => {
                if part.is_first() {
                    *streaming = (part.kind() == PartKind::Request).then_some((part.id(), 0));
                }
                let Some((id, crc)) = streaming.as_mut().filter(|(id, _)| *id == part.id()) else {
                    continue;
                };
                *crc = qemu_echo::crc32(*crc, part.data());
                if !part.is_last() {
                    continue;
                }
                let _ = topic.push_str(part.topic());
                let _ = payload.extend_from_slice(&crc.to_le_bytes());
                let id = *id;
                *streaming = None;
                id
            }
            Some(_) => continue,
        };
        reply(ep, now, &topic, req_id, &payload);
    }
}

/// Sends the reply to `req_id`. Not inlined into [`serve`]: the temporaries of `send_bytes`
/// then get a frame of their own, which is not on the path of `poll_event`.
#[inline(never)]
fn reply(ep: &mut Endpoint, now: Instant, topic: &str, req_id: MsgId, payload: &[u8]) {
    let reply = Item::Reply {
        topic,
        req_id: req_id.0,
    };
    ep.send_bytes(now, reply, payload, None).ok();
}

/// Builds the pipe. Not inlined into `main`: the temporaries of the construction then live
/// in this frame, at boot only, not beside the pipe in `main`'s.
#[inline(never)]
fn build<S: Read<u8> + Write<u8>>(
    serial: S,
    session: u32,
    now: Instant,
) -> Result<Pipe<S>, peerpipe_embedded::ConfigError> {
    Pipe::new(serial, qemu_echo::config(), session, now)
}

#[cfg(target_arch = "arm")]
mod arm {

    use cortex_m_rt::{entry, exception};
    #[cfg(feature = "semihosting")]
    use panic_semihosting as _;
    use peerpipe_embedded::WrappingMillis;
    #[cfg(board = "microbit")]
    use qemu_echo::nrf51::{Nrf51Uart as Uart, UART0};
    #[cfg(board = "lm3s6965evb")]
    use qemu_echo::pl011::{Pl011 as Uart, UART0};
    #[exception]
    fn SysTick() {
        qemu_echo::systick::tick();
    }

    #[entry]
    fn main() -> ! {
        #[cfg(feature = "stack-probe")]
        qemu_echo::stack::paint();
        qemu_echo::systick::start();

        // SAFETY: the only user of UART0.
        let uart = unsafe { Uart::new(UART0) };
        let mut millis = WrappingMillis::new();
        let mut now = move || millis.instant(qemu_echo::systick::ticks());
        let session = cortex_m::peripheral::SYST::get_current() | 1;
        // Used where `build` wrote it: moving it out of the `Result` would copy it.
        let mut built = super::build(uart, session, now());
        let Ok(pipe) = &mut built else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        let mut streaming = None;
        loop {
            super::step(pipe, now(), &mut streaming);
        }
    }
}

#[cfg(target_arch = "riscv32")]
mod rv {
    use qemu_echo::ns16550::{Ns16550, VIRT_UART0};
    use qemu_echo::rv::{mtime, now};

    #[riscv_rt::entry]
    fn main() -> ! {
        #[cfg(feature = "stack-probe")]
        qemu_echo::stack::paint();
        // SAFETY: the only user of the UART.
        let uart = unsafe { Ns16550::new(VIRT_UART0) };
        let session = (mtime() as u32).wrapping_mul(0x9E37_79B9) | 1;
        let mut built = super::build(uart, session, now());
        let Ok(pipe) = &mut built else {
            #[allow(clippy::empty_loop)]
            loop {}
        };
        let mut streaming = None;
        loop {
            super::step(pipe, now(), &mut streaming);
        }
    }
}
