//! The UART of the nRF51822 (the micro:bit's chip; QEMU's `microbit` machine models it)
//! through raw registers, implementing the embedded-hal-nb serial traits.
//!
//! The peripheral works by tasks and events: `STARTRX`/`STARTTX` start the receiver and the
//! transmitter; `RXDRDY` says a byte waits in `RXD` (clear the event, then read `RXD`; QEMU sets
//! it again while its 6-byte receive FIFO holds more), `TXDRDY` says the byte written to `TXD`
//! has left (a `TXD` write before that is lost). An event raises the UART's interrupt (UART0 is
//! IRQ 2 on the nRF51) while its bit is set in `INTEN` ([`listen_rx_at`] sets and clears the
//! `RXDRDY` one): the echo firmware takes received bytes that way ([`read_byte_at`] in the
//! handler), and the minimal one polls the events through [`Read`]. Sending is polled.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use embedded_hal_nb::serial::{ErrorType, Read, Write};

/// The base address of UART0 on the nRF51 series.
pub const UART0: usize = 0x4000_2000;
const TASKS_STARTRX: usize = 0x000;
const TASKS_STARTTX: usize = 0x008;
const EVENTS_RXDRDY: usize = 0x108;
const EVENTS_TXDRDY: usize = 0x11C;
const INTENSET: usize = 0x304;
const INTENCLR: usize = 0x308;
/// The `RXDRDY` bit of `INTENSET`/`INTENCLR`.
const INT_RXDRDY: u32 = 1 << 2;
const ENABLE: usize = 0x500;
const RXD: usize = 0x518;
const TXD: usize = 0x51C;
const BAUDRATE: usize = 0x524;
const CONFIG: usize = 0x56C;
/// `ENABLE` value that turns the UART on.
const ENABLE_UART: u32 = 4;
/// `BAUDRATE` value for 115200 baud.
const BAUD_115200: u32 = 0x01D7_E000;

/// An nRF51 UART at a fixed address.
pub struct Nrf51Uart {
    base: usize,
    /// A byte was written to `TXD` and its `TXDRDY` has not been consumed yet.
    tx_busy: bool,
}

impl Nrf51Uart {
    /// Takes the UART at `base` and starts it: 115200 8N1, no flow control, interrupts off,
    /// receiver and transmitter started. (The pins are left alone: QEMU has none; real hardware
    /// sets PSELTXD/PSELRXD before enabling.)
    ///
    /// # Safety
    /// `base` is an nRF51 UART's register block, and nothing else uses it.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Nrf51Uart {
            base,
            tx_busy: false,
        };
        uart.write_reg(ENABLE, ENABLE_UART);
        uart.write_reg(CONFIG, 0);
        uart.write_reg(BAUDRATE, BAUD_115200);
        uart.write_reg(INTENCLR, u32::MAX);
        uart.write_reg(EVENTS_RXDRDY, 0);
        uart.write_reg(EVENTS_TXDRDY, 0);
        uart.write_reg(TASKS_STARTRX, 1);
        uart.write_reg(TASKS_STARTTX, 1);
        uart
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is an nRF51 UART (constructor contract); offsets are its registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }
}

/// Enables (`true`) or masks the `RXDRDY` interrupt of the nRF51 UART at `base` (the NVIC line
/// is the caller's): the interrupt handler masks it while the main loop's ring is full (QEMU's
/// 6-byte FIFO then holds the bytes and the sender waits: backpressure instead of loss), the
/// main loop enables it again.
pub fn listen_rx_at(base: usize, on: bool) {
    let reg = if on { INTENSET } else { INTENCLR };
    // SAFETY: callers pass an nRF51 UART base address; INTENSET/INTENCLR only (un)mask.
    unsafe { write_volatile((base + reg) as *mut u32, INT_RXDRDY) }
}

/// Reads one byte from the nRF51 UART at `base` when `RXDRDY` says one waits: for interrupt
/// handlers, which cannot own the [`Nrf51Uart`]. Clearing the event lowers the interrupt; the
/// read of `RXD` raises it again if more bytes wait.
pub fn read_byte_at(base: usize) -> Option<u8> {
    // SAFETY: callers pass an nRF51 UART base address; the accesses are those of receiving.
    unsafe {
        if read_volatile((base + EVENTS_RXDRDY) as *const u32) == 0 {
            return None;
        }
        // Clear the event before reading RXD: the read raises it again if more bytes wait.
        write_volatile((base + EVENTS_RXDRDY) as *mut u32, 0);
        Some(read_volatile((base + RXD) as *const u32) as u8)
    }
}

impl ErrorType for Nrf51Uart {
    // Overrun, parity and framing errors raise the ERROR event; this demo leaves them to the
    // frame's CRC.
    type Error = Infallible;
}

impl Read<u8> for Nrf51Uart {
    fn read(&mut self) -> nb::Result<u8, Infallible> {
        read_byte_at(self.base).ok_or(nb::Error::WouldBlock)
    }
}

impl Write<u8> for Nrf51Uart {
    fn write(&mut self, word: u8) -> nb::Result<(), Infallible> {
        if self.tx_busy {
            if self.read_reg(EVENTS_TXDRDY) == 0 {
                return Err(nb::Error::WouldBlock);
            }
            self.write_reg(EVENTS_TXDRDY, 0);
        }
        self.write_reg(TXD, u32::from(word));
        self.tx_busy = true;
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), Infallible> {
        if self.tx_busy && self.read_reg(EVENTS_TXDRDY) == 0 {
            Err(nb::Error::WouldBlock)
        } else {
            Ok(())
        }
    }
}
