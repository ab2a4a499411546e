//! The NS16550A UART of QEMU's riscv `virt` machine through raw registers, implementing the
//! embedded-hal-nb serial traits.
//!
//! Its received-data interrupt (`IER` bit 0, level: raised while a byte waits) is PLIC source
//! 10 on `virt`: the echo firmware takes received bytes that way ([`listen_rx_at`],
//! [`read_byte_at`] in the handler), the minimal one polls through [`Read`]. Sending is polled.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use embedded_hal_nb::serial::{ErrorType, Read, Write};

/// The UART of QEMU `virt`.
pub const VIRT_UART0: usize = 0x1000_0000;
const RBR_THR: usize = 0;
const IER: usize = 1;
/// `IER`: received data available.
const IER_RDA: u8 = 1 << 0;
const FCR: usize = 2;
const LCR: usize = 3;
const LSR: usize = 5;
const LSR_DR: u8 = 1 << 0;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;

/// A 16550 with byte-wide registers at `base`.
pub struct Ns16550 {
    base: usize,
}

impl Ns16550 {
    /// Takes the UART at `base`: 8N1, FIFOs on.
    ///
    /// # Safety
    /// `base` is a 16550's register block, and nothing else uses it.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Ns16550 { base };
        uart.write_reg(LCR, 0b11);
        uart.write_reg(FCR, 0b111);
        uart
    }

    fn read_reg(&self, offset: usize) -> u8 {
        // SAFETY: `base` is a 16550 (constructor contract).
        unsafe { read_volatile((self.base + offset) as *const u8) }
    }

    fn write_reg(&self, offset: usize, value: u8) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u8, value) }
    }
}

/// Enables (`true`) or masks the received-data interrupt of the 16550 at `base` (the PLIC is
/// the caller's): the interrupt handler masks it while the main loop's ring is full (the
/// UART's FIFO then holds the bytes and the sender waits: backpressure instead of loss), the
/// main loop enables it again.
pub fn listen_rx_at(base: usize, on: bool) {
    // SAFETY: callers pass a 16550 base address; IER only (un)masks interrupts (the transmit
    // ones stay off).
    unsafe { write_volatile((base + IER) as *mut u8, if on { IER_RDA } else { 0 }) }
}

/// Reads one byte from the 16550 at `base` when one waits: for interrupt handlers, which
/// cannot own the [`Ns16550`]. The interrupt falls when the FIFO is empty.
pub fn read_byte_at(base: usize) -> Option<u8> {
    // SAFETY: callers pass a 16550 base address; reading LSR and RBR only pops the FIFO.
    unsafe {
        if read_volatile((base + LSR) as *const u8) & LSR_DR == 0 {
            None
        } else {
            Some(read_volatile((base + RBR_THR) as *const u8))
        }
    }
}

impl ErrorType for Ns16550 {
    type Error = Infallible;
}

impl Read<u8> for Ns16550 {
    fn read(&mut self) -> nb::Result<u8, Infallible> {
        read_byte_at(self.base).ok_or(nb::Error::WouldBlock)
    }
}

impl Write<u8> for Ns16550 {
    fn write(&mut self, word: u8) -> nb::Result<(), Infallible> {
        if self.read_reg(LSR) & LSR_THRE == 0 {
            return Err(nb::Error::WouldBlock);
        }
        self.write_reg(RBR_THR, word);
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), Infallible> {
        if self.read_reg(LSR) & LSR_TEMT == 0 {
            Err(nb::Error::WouldBlock)
        } else {
            Ok(())
        }
    }
}
