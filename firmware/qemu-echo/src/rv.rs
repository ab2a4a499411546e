//! The RISC-V side shared by both binaries: the clock of QEMU `virt` (CLINT `mtime`), its
//! timer (`mtimecmp`) and PLIC, the [`Board`](crate::Board) of the echo firmware and, with
//! `semihosting`, a panic handler that ends the QEMU run with a failure.

use core::ptr::{read_volatile, write_volatile};

use peerpipe_embedded::Instant;
use riscv::interrupt::machine::Interrupt;

/// CLINT `mtime` on QEMU `virt`, 10 MHz.
const MTIME: usize = 0x0200_BFF8;
/// CLINT `mtimecmp` of hart 0: the machine timer interrupt is pending while
/// `mtime >= mtimecmp`.
const MTIMECMP: usize = 0x0200_4000;
/// The PLIC of QEMU `virt`.
const PLIC: usize = 0x0C00_0000;
/// PLIC context 0: hart 0 in M-mode.
const PLIC_ENABLE: usize = PLIC + 0x2000;
const PLIC_THRESHOLD: usize = PLIC + 0x20_0000;
const PLIC_CLAIM: usize = PLIC + 0x20_0004;
/// The PLIC source of the NS16550 at 0x1000_0000 on `virt`.
pub const UART0_IRQ: u32 = 10;

/// The raw 64-bit `mtime` counter, read consistently from its two halves.
pub fn mtime() -> u64 {
    loop {
        // SAFETY: the CLINT's mtime register on QEMU virt.
        let (hi, lo, hi2) = unsafe {
            (
                core::ptr::read_volatile((MTIME + 4) as *const u32),
                core::ptr::read_volatile(MTIME as *const u32),
                core::ptr::read_volatile((MTIME + 4) as *const u32),
            )
        };
        if hi == hi2 {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

/// The current time.
pub fn now() -> Instant {
    Instant::from_micros(mtime() / 10)
}

/// Sets `mtimecmp` without a spurious interrupt in between (the low half first goes to
/// the maximum, as the privileged spec suggests for RV32).
fn set_mtimecmp(at: u64) {
    // SAFETY: hart 0's mtimecmp on QEMU virt; writing it only moves the timer interrupt.
    unsafe {
        write_volatile(MTIMECMP as *mut u32, u32::MAX);
        write_volatile((MTIMECMP + 4) as *mut u32, (at >> 32) as u32);
        write_volatile(MTIMECMP as *mut u32, at as u32);
    }
}

/// Turns the machine timer interrupt off (`mtimecmp` at the maximum): call it from its
/// handler.
pub fn timer_off() {
    set_mtimecmp(u64::MAX);
}

/// Routes PLIC `source` to hart 0 in M-mode (priority 1, threshold 0) and enables the
/// machine external and timer interrupts and interrupts globally (the timer stays off
/// until [`Virt::sleep`](crate::Board::sleep) sets it).
///
/// # Safety
/// The handlers of both interrupts are in place, and enabling interrupts breaks no
/// critical section of the caller.
pub unsafe fn enable_interrupts(source: u32) {
    timer_off();
    let bit = source as usize;
    // SAFETY: the PLIC's priority, enable and threshold registers of context 0 on virt.
    unsafe {
        write_volatile((PLIC + 4 * bit) as *mut u32, 1);
        let enable = (PLIC_ENABLE + 4 * (bit / 32)) as *mut u32;
        write_volatile(enable, read_volatile(enable) | (1 << (bit % 32)));
        write_volatile(PLIC_THRESHOLD as *mut u32, 0);
        riscv::interrupt::enable_interrupt(Interrupt::MachineExternal);
        riscv::interrupt::enable_interrupt(Interrupt::MachineTimer);
        riscv::interrupt::enable();
    }
}

/// Claims the highest pending PLIC source of hart 0 in M-mode (0: none); hand it back with
/// [`complete`] once served.
pub fn claim() -> u32 {
    // SAFETY: the claim register of context 0; reading it claims a source.
    unsafe { read_volatile(PLIC_CLAIM as *const u32) }
}

/// Completes a claimed source: the PLIC raises it again if its line is still high.
pub fn complete(source: u32) {
    // SAFETY: the complete register of context 0.
    unsafe { write_volatile(PLIC_CLAIM as *mut u32, source) }
}

/// RISC-V `virt` as a [`Board`](crate::Board): `mtime` is the clock, `mtimecmp` wakes WFI
/// at the next deadline; `listen` unmasks the UART's RX interrupt. Call
/// [`enable_interrupts`] first.
pub struct Virt {
    /// Unmasks the UART's RX interrupt.
    pub listen: fn(),
}

impl crate::Board for Virt {
    fn now(&mut self) -> Instant {
        now()
    }

    fn listen_rx(&mut self) {
        (self.listen)();
    }

    fn sleep(&mut self, rx: &crate::ring::Ring, next: Option<Instant>) {
        // mstatus.MIE clear: an interrupt after the check stays pending, WFI returns at
        // once (it waits on mip & mie, whatever MIE says) and the handler runs when MIE is
        // set again. A deadline already past makes the timer pending at once.
        riscv::interrupt::free(|| {
            if rx.is_empty() {
                set_mtimecmp(next.map_or(u64::MAX, |d| d.as_micros().saturating_mul(10)));
                riscv::asm::wfi();
            }
        });
    }

    fn entropy(&mut self) -> u32 {
        mtime() as u32
    }
}

#[cfg(feature = "semihosting")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    riscv_semihosting::debug::exit(riscv_semihosting::debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
