//! The echo firmware: `qemu_echo::App` over a UART, one board per target.
//!
//! - lm3s6965evb (Cortex-M3, thumbv7m): UART0 (PL011) through raw registers, received bytes
//!   taken by the UART0 interrupt into a ring and handed to the driver with `feed`; SysTick at
//!   1 kHz is the clock; the core sleeps (WFI) until a byte, a tick or the next deadline.
//! - micro:bit (nRF51822, Cortex-M0, thumbv6m): the nRF51 UART polled by the driver's `poll`,
//!   SysTick at 1 kHz as the clock.
//! - RISC-V (QEMU `virt`, riscv32imac): the NS16550 polled by the driver's `poll`, `mtime` as
//!   the clock.
//!
//! The session id mixes in how long the firmware waited for the host's first byte, so each
//! boot (each QEMU run) has a new one.

#![no_std]
#![no_main]

#[cfg(feature = "halt")]
use panic_halt as _;

/// What both Cortex-M boards share: the SysTick and HardFault handlers.
#[cfg(target_arch = "arm")]
mod arm {
    use cortex_m_rt::exception;
    #[cfg(feature = "semihosting")]
    use panic_semihosting as _;

    #[exception]
    fn SysTick() {
        qemu_echo::systick::tick();
    }

    #[exception]
    unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
        #[cfg(feature = "semihosting")]
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::bkpt();
        }
    }
}

/// The lm3s6965evb: PL011 RX by interrupt into a ring, WFI when idle.
#[cfg(board = "lm3s6965evb")]
mod lm3s6965evb {
    use cortex_m::peripheral::NVIC;
    use cortex_m_rt::{entry, exception};
    use peerpipe_embedded::{Instant, TxOnly, WrappingMillis};
    use qemu_echo::pl011::{self, Pl011, UART0};
    use qemu_echo::ring::Ring;
    use qemu_echo::{config, stack, App, Pipe};

    /// UART0's interrupt line on the LM3S6965.
    const UART0_IRQ: u16 = 5;

    static RX: Ring = Ring::new();

    #[derive(Clone, Copy)]
    struct Irq(u16);
    // SAFETY: 5 is UART0's interrupt number on this chip.
    unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
        fn number(self) -> u16 {
            self.0
        }
    }

    /// Every device interrupt lands here (no device crate): UART0's moves its FIFO into `RX`.
    /// When the ring is full it masks the RX interrupt instead of dropping bytes: they wait in
    /// the UART's FIFO (and the sender waits) until the main loop has drained the ring.
    #[exception]
    unsafe fn DefaultHandler(irqn: i16) {
        if irqn == UART0_IRQ as i16 {
            while !RX.is_full() {
                let Some(byte) = pl011::read_byte_at(UART0) else {
                    return;
                };
                RX.push(byte);
            }
            pl011::listen_rx_at(UART0, false);
        }
    }

    #[entry]
    fn main() -> ! {
        stack::paint();
        qemu_echo::systick::start();

        // SAFETY: UART0 is used by this loop (TX) and its interrupt handler (RX) only.
        let mut uart = unsafe { Pl011::new(UART0) };
        uart.listen_rx();
        // SAFETY: the handler only touches the ring and UART0's RX side.
        unsafe { NVIC::unmask(Irq(UART0_IRQ)) };

        // Entropy for the session id: how long until the host's first byte.
        let mut spins: u32 = 0;
        while RX.is_empty() {
            spins = spins.wrapping_add(1);
        }
        let seed = spins.wrapping_mul(0x9E37_79B9)
            ^ cortex_m::peripheral::SYST::get_current()
            ^ qemu_echo::systick::ticks().rotate_left(16);

        let mut millis = WrappingMillis::new();
        let mut now = move || millis.instant(qemu_echo::systick::ticks());
        let mut app = App::new(seed | 1);
        let start = now();
        let Ok(mut pipe) = Pipe::new(TxOnly(uart), config(), app.session(), start) else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        loop {
            let t = now();
            let mut chunk = [0u8; 64];
            let mut len = 0;
            while let Some(byte) = RX.pop() {
                if let Some(slot) = chunk.get_mut(len) {
                    *slot = byte;
                    len += 1;
                }
                if len == chunk.len() {
                    pipe.feed(t, &chunk);
                    len = 0;
                }
            }
            if let Some(rest) = chunk.get(..len) {
                pipe.feed(t, rest);
            }
            pl011::listen_rx_at(UART0, true);
            let next = app.step(&mut pipe, t);
            // Sleep until a byte, a SysTick or... the next deadline is at most a tick away from
            // a SysTick wake-up. Interrupts are masked between the check and WFI, so a byte
            // arriving in between still wakes it (WFI wakes on a pending interrupt).
            cortex_m::interrupt::free(|_| {
                let due = next.is_some_and(|d: Instant| d <= now());
                if RX.is_empty() && !pipe.tx_blocked() && !due {
                    cortex_m::asm::wfi();
                }
            });
        }
    }
}

/// The micro:bit: the nRF51 UART polled.
#[cfg(board = "microbit")]
mod microbit {
    use cortex_m_rt::entry;
    use peerpipe_embedded::WrappingMillis;
    use qemu_echo::nrf51::{Nrf51Uart, UART0};
    use qemu_echo::stack;

    #[entry]
    fn main() -> ! {
        stack::paint();
        qemu_echo::systick::start();
        // SAFETY: the only user of UART0.
        let uart = unsafe { Nrf51Uart::new(UART0) };
        let mut millis = WrappingMillis::new();
        qemu_echo::run_polled(
            uart,
            move || millis.instant(qemu_echo::systick::ticks()),
            || {
                cortex_m::peripheral::SYST::get_current()
                    ^ qemu_echo::systick::ticks().rotate_left(16)
            },
        )
    }
}

/// RISC-V `virt`: the NS16550 polled.
#[cfg(target_arch = "riscv32")]
mod rv {
    use qemu_echo::ns16550::{Ns16550, VIRT_UART0};
    use qemu_echo::rv::{mtime, now};
    use qemu_echo::stack;

    #[riscv_rt::entry]
    fn main() -> ! {
        stack::paint();
        // SAFETY: the only user of the UART.
        let uart = unsafe { Ns16550::new(VIRT_UART0) };
        qemu_echo::run_polled(uart, now, || mtime() as u32)
    }
}
