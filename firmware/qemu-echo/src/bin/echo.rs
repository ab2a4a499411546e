//! The echo firmware: `qemu_echo::App` over a UART, one board per target.
//!
//! Every board runs the same loop ([`qemu_echo::run`]): the UART's RX interrupt moves received
//! bytes into a ring (masking itself while the ring is full, so no byte is dropped), the main
//! loop hands them to the driver with `feed`, sends by polling, and sleeps (WFI) when nothing
//! is left to do until a byte or the clock's interrupt.
//!
//! - lm3s6965evb (Cortex-M3, thumbv7m): UART0 (PL011) through raw registers, its interrupt
//!   (IRQ 5); SysTick at 1 kHz is the clock and wakes WFI every millisecond.
//! - micro:bit (nRF51822, Cortex-M0, thumbv6m): the nRF51 UART through raw registers, its
//!   `RXDRDY` interrupt (IRQ 2); SysTick at 1 kHz, as above.
//! - RISC-V (QEMU `virt`, riscv32imac): the NS16550's received-data interrupt through the PLIC
//!   (source 10, machine external interrupt); `mtime` is the clock and the machine timer
//!   interrupt (`mtimecmp`) wakes WFI at the driver's next deadline.
//!
//! The session id mixes in when the host's first byte came, so each boot (each QEMU run) has a
//! new one.

#![no_std]
#![no_main]

#[cfg(feature = "halt")]
use panic_halt as _;

/// What both Cortex-M boards share: the SysTick and HardFault handlers, NVIC line numbers.
#[cfg(target_arch = "arm")]
mod arm {
    use cortex_m_rt::exception;

    /// A device interrupt line (no device crate).
    #[derive(Clone, Copy)]
    pub struct Irq(pub u16);
    // SAFETY: the boards pass their UART's line, an interrupt number of their chip.
    unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
        fn number(self) -> u16 {
            self.0
        }
    }
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
    use qemu_echo::pl011::{self, Pl011, UART0};
    use qemu_echo::ring::Ring;
    use qemu_echo::stack;
    use qemu_echo::systick::CortexM;

    use super::arm::Irq;

    /// UART0's interrupt line on the LM3S6965.
    const UART0_IRQ: u16 = 5;

    static RX: Ring = Ring::new();

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
        let board = CortexM::new(|| pl011::listen_rx_at(UART0, true));
        // SAFETY: UART0 is used by the main loop (TX) and its interrupt handler (RX) only.
        let uart = unsafe { Pl011::new(UART0) };
        // SAFETY: the handler only touches the ring and UART0's RX side.
        unsafe { NVIC::unmask(Irq(UART0_IRQ)) };
        qemu_echo::run(uart, &RX, board)
    }
}

/// The micro:bit: nRF51 UART RX by its `RXDRDY` interrupt into a ring, WFI when idle.
#[cfg(board = "microbit")]
mod microbit {
    use cortex_m::peripheral::NVIC;
    use cortex_m_rt::{entry, exception};
    use qemu_echo::nrf51::{self, Nrf51Uart, UART0};
    use qemu_echo::ring::Ring;
    use qemu_echo::stack;
    use qemu_echo::systick::CortexM;

    use super::arm::Irq;

    /// UART0's interrupt line on the nRF51 (its peripheral id: bits 12..17 of the address).
    const UART0_IRQ: u16 = 2;

    static RX: Ring = Ring::new();

    /// Every device interrupt lands here (no device crate): UART0's moves the received bytes
    /// into `RX` while `RXDRDY` says one waits. When the ring is full it masks `RXDRDY`
    /// instead of dropping bytes: they wait in the UART's FIFO (and the sender waits) until
    /// the main loop has drained the ring.
    #[exception]
    unsafe fn DefaultHandler(irqn: i16) {
        if irqn == UART0_IRQ as i16 {
            while !RX.is_full() {
                let Some(byte) = nrf51::read_byte_at(UART0) else {
                    return;
                };
                RX.push(byte);
            }
            nrf51::listen_rx_at(UART0, false);
        }
    }

    #[entry]
    fn main() -> ! {
        stack::paint();
        let board = CortexM::new(|| nrf51::listen_rx_at(UART0, true));
        // SAFETY: UART0 is used by the main loop (TX) and its interrupt handler (RX) only.
        let uart = unsafe { Nrf51Uart::new(UART0) };
        // SAFETY: the handler only touches the ring and UART0's RX side.
        unsafe { NVIC::unmask(Irq(UART0_IRQ)) };
        qemu_echo::run(uart, &RX, board)
    }
}

/// RISC-V `virt`: NS16550 RX by interrupt (PLIC source 10) into a ring, the machine timer
/// (`mtimecmp`) at the next deadline, WFI when idle.
#[cfg(target_arch = "riscv32")]
mod rv {
    use qemu_echo::ns16550::{self, Ns16550, VIRT_UART0};
    use qemu_echo::ring::Ring;
    use qemu_echo::rv::{self, Virt, UART0_IRQ};
    use qemu_echo::stack;
    use riscv::interrupt::machine::Interrupt;

    static RX: Ring = Ring::new();

    /// The PLIC's interrupt: the UART's moves the received bytes into `RX`. When the ring is
    /// full it masks the UART's RX interrupt instead of dropping bytes: they wait in the UART's
    /// FIFO (and the sender waits) until the main loop has drained the ring.
    #[riscv_rt::core_interrupt(Interrupt::MachineExternal)]
    fn machine_external() {
        let source = rv::claim();
        if source == UART0_IRQ {
            while !RX.is_full() {
                let Some(byte) = ns16550::read_byte_at(VIRT_UART0) else {
                    break;
                };
                RX.push(byte);
            }
            if RX.is_full() {
                ns16550::listen_rx_at(VIRT_UART0, false);
            }
        }
        if source != 0 {
            rv::complete(source);
        }
    }

    /// The deadline `Virt::sleep` set has come: the main loop runs again.
    #[riscv_rt::core_interrupt(Interrupt::MachineTimer)]
    fn machine_timer() {
        rv::timer_off();
    }

    #[riscv_rt::entry]
    fn main() -> ! {
        stack::paint();
        // SAFETY: the UART is used by the main loop (TX) and its interrupt handler (RX) only.
        let uart = unsafe { Ns16550::new(VIRT_UART0) };
        // SAFETY: both handlers are above; nothing runs in a critical section yet.
        unsafe { rv::enable_interrupts(UART0_IRQ) };
        let board = Virt {
            listen: || ns16550::listen_rx_at(VIRT_UART0, true),
        };
        qemu_echo::run(uart, &RX, board)
    }
}
