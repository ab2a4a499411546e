//! The embassy echo firmware for QEMU's lm3s6965evb: `qemu_embassy::app::serve` as an
//! embassy-executor task, UART0 interrupt-driven (`qemu_embassy::uart`), embassy-time on
//! SysTick (`qemu_embassy::time_driver`).
//!
//! The executor is embassy's raw one in a loop of our own that sleeps with WFI, not its
//! thread-mode executor: that one sleeps with WFE, which QEMU treats as a yield, not a sleep.
//! Idle, the thread-mode build kept QEMU at about 50 % of a host core, this one at 6-7 % (the
//! 1 kHz SysTick; `scripts/qemu-idle-cpu.py ELF lm3s6965evb 5`).
//!
//! The session seed mixes in when the host's first byte came, so each boot (each QEMU run)
//! has a new session.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use embassy_executor::raw::Executor;
use panic_semihosting as _;
use qemu_echo::stack;
use qemu_embassy::uart::{self, UartRx, UartTx};
use qemu_embassy::{app, time_driver};

/// A device interrupt line (no device crate).
#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: UART0's line, an interrupt number of the LM3S6965.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

#[exception]
fn SysTick() {
    time_driver::tick();
}

/// Every device interrupt lands here (no device crate): UART0's is served.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == uart::UART0_IRQ as i16 {
        uart::on_interrupt();
    }
}

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Set when a task was woken: the executor has work.
static PENDED: AtomicBool = AtomicBool::new(false);

/// The executor's pender: called (from a task or an interrupt handler) when a task is woken.
#[export_name = "__pender"]
fn pender(_context: *mut ()) {
    PENDED.store(true, Ordering::Release);
}

/// The only task: waits for the host's first byte (the session seed), then serves.
#[embassy_executor::task]
async fn echo(mut rx: UartRx, tx: UartTx) {
    rx.readable().await;
    let seed = (embassy_time::Instant::now().as_ticks() as u32).wrapping_mul(0x9E37_79B9)
        ^ cortex_m::peripheral::SYST::get_current();
    let _ = app::serve(rx, tx, seed).await;
}

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        halt();
    };
    time_driver::start(peripherals.SYST);
    // SAFETY: called once; UART0 is used by its halves and its interrupt handler only.
    let (rx, tx) = unsafe { uart::take() };
    // SAFETY: the handler above only touches the UART's ring, wakers and registers.
    unsafe { NVIC::unmask(Irq(uart::UART0_IRQ)) };
    let Some(executor) = cortex_m::singleton!(: Executor = Executor::new(core::ptr::null_mut()))
    else {
        halt();
    };
    let executor: &'static Executor = executor;
    match echo(rx, tx) {
        Ok(task) => executor.spawner().spawn(task),
        Err(_) => halt(),
    }
    loop {
        // SAFETY: polled from this thread only, never reentrantly.
        unsafe { executor.poll() };
        // PRIMASK set: a wake-up after the check leaves its interrupt pending, and WFI returns
        // at once (its handler runs when PRIMASK is cleared).
        cortex_m::interrupt::free(|_| {
            if !PENDED.swap(false, Ordering::AcqRel) {
                cortex_m::asm::wfi();
            }
        });
    }
}

/// Stops here for good (the setup cannot fail on this board).
fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
