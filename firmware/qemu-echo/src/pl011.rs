//! UART0 of the LM3S6965 (QEMU's lm3s6965evb models it as a PL011) through raw registers,
//! implementing the embedded-hal-nb serial traits.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use embedded_hal_nb::serial::{ErrorType, Read, Write};

/// UART0's base address.
pub const UART0: usize = 0x4000_C000;
const DR: usize = 0x000;
const FR: usize = 0x018;
const LCRH: usize = 0x02C;
const CTL: usize = 0x030;
const IM: usize = 0x038;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
/// Interrupt mask bits: receive (FIFO level) and receive timeout.
const IM_RX: u32 = (1 << 4) | (1 << 6);

/// A PL011 at a fixed address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// Takes the UART at `base` and sets it up: 8N1, FIFOs on, RX and TX enabled. (The baud rate
    /// registers are left alone: QEMU ignores them; real hardware sets IBRD/FBRD here.)
    ///
    /// # Safety
    /// `base` is a PL011's register block, and nothing else uses it.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Pl011 { base };
        uart.write_reg(CTL, 0);
        uart.write_reg(LCRH, (0b11 << 5) | (1 << 4)); // WLEN 8 bits, FEN
        uart.write_reg(CTL, 1 | (1 << 8) | (1 << 9)); // UARTEN, TXE, RXE
        uart
    }

    /// Enables the receive and receive-timeout interrupts (the NVIC line is the caller's).
    pub fn listen_rx(&mut self) {
        self.write_reg(IM, IM_RX);
    }

    /// Reads one received byte, if any. Usable from the interrupt handler through a shared
    /// reference to the address only (see [`read_byte_at`]).
    pub fn try_read(&mut self) -> Option<u8> {
        read_byte_at(self.base)
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is a PL011 (constructor contract); offsets are its registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }
}

/// Enables (`true`) or masks the receive interrupts of the PL011 at `base`: the interrupt
/// handler masks them while the main loop's ring is full (the FIFO then holds the bytes and
/// the sender waits: backpressure instead of loss), the main loop enables them again.
pub fn listen_rx_at(base: usize, on: bool) {
    // SAFETY: callers pass a PL011 base address; IM only masks interrupts.
    unsafe { write_volatile((base + IM) as *mut u32, if on { IM_RX } else { 0 }) }
}

/// Reads one byte from the PL011 at `base` when its receive FIFO is not empty: for interrupt
/// handlers, which cannot own the [`Pl011`].
///
/// The receive interrupts are not cleared through ICR: reading DR until the FIFO is empty
/// clears them. (Clearing them with bytes left in the FIFO loses the interrupt for good on
/// QEMU's PL011, which raises it only when the FIFO level reaches the trigger.)
pub fn read_byte_at(base: usize) -> Option<u8> {
    // SAFETY: callers pass a PL011 base address; reading FR and DR has no effect besides
    // popping the FIFO, which is the point.
    unsafe {
        if read_volatile((base + FR) as *const u32) & FR_RXFE != 0 {
            None
        } else {
            Some(read_volatile((base + DR) as *const u32) as u8)
        }
    }
}

impl ErrorType for Pl011 {
    // Overrun, framing and parity errors are reported in DR's upper bits; this demo drops the
    // byte's flags (the frame's CRC catches what they would).
    type Error = Infallible;
}

impl Read<u8> for Pl011 {
    fn read(&mut self) -> nb::Result<u8, Infallible> {
        self.try_read().ok_or(nb::Error::WouldBlock)
    }
}

impl Write<u8> for Pl011 {
    fn write(&mut self, word: u8) -> nb::Result<(), Infallible> {
        if self.read_reg(FR) & FR_TXFF != 0 {
            return Err(nb::Error::WouldBlock);
        }
        self.write_reg(DR, u32::from(word));
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), Infallible> {
        if self.read_reg(FR) & FR_BUSY != 0 {
            Err(nb::Error::WouldBlock)
        } else {
            Ok(())
        }
    }
}
