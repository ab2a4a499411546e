//! The UART of the nRF51822 (the micro:bit's chip; QEMU's `microbit` machine models it)
//! through raw registers, implementing the embedded-hal-nb serial traits (polled).
//!
//! The peripheral works by tasks and events: `STARTRX`/`STARTTX` start the receiver and the
//! transmitter; `RXDRDY` says a byte waits in `RXD` (clear the event, then read `RXD`; QEMU sets
//! it again while its 6-byte receive FIFO holds more), `TXDRDY` says the byte written to `TXD`
//! has left (a `TXD` write before that is lost). Interrupts would come from the same events
//! through `INTENSET`; this driver polls them.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use embedded_hal_nb::serial::{ErrorType, Read, Write};

/// The base address of UART0 on the nRF51 series.
pub const UART0: usize = 0x4000_2000;
const TASKS_STARTRX: usize = 0x000;
const TASKS_STARTTX: usize = 0x008;
const EVENTS_RXDRDY: usize = 0x108;
const EVENTS_TXDRDY: usize = 0x11C;
const INTENCLR: usize = 0x308;
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

impl ErrorType for Nrf51Uart {
    // Overrun, parity and framing errors raise the ERROR event; this demo leaves them to the
    // frame's CRC.
    type Error = Infallible;
}

impl Read<u8> for Nrf51Uart {
    fn read(&mut self) -> nb::Result<u8, Infallible> {
        if self.read_reg(EVENTS_RXDRDY) == 0 {
            return Err(nb::Error::WouldBlock);
        }
        // Clear the event before reading RXD: the read raises it again if more bytes wait.
        self.write_reg(EVENTS_RXDRDY, 0);
        Ok(self.read_reg(RXD) as u8)
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
