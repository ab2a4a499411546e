//! UART0 of the LM3S6965 (a PL011 in QEMU) as embedded-io-async halves, interrupt-driven both
//! ways. The interrupt handler ([`on_interrupt`]) moves received bytes from the FIFO into a
//! ring and wakes the reader; when the ring is full it masks the RX interrupt instead of
//! dropping bytes (they wait in the FIFO, the sender waits), and the reader unmasks it once it
//! took bytes. A writer that finds the TX FIFO full unmasks the TX interrupt and sleeps until
//! the handler wakes it.

use core::convert::Infallible;
use core::future::poll_fn;
use core::ptr::{read_volatile, write_volatile};
use core::task::Poll;

use embassy_sync::waitqueue::AtomicWaker;
use qemu_echo::pl011::{self, Pl011, UART0};
use qemu_echo::ring::Ring;

const DR: usize = 0x000;
const FR: usize = 0x018;
const IM: usize = 0x038;
const MIS: usize = 0x040;
const ICR: usize = 0x044;
const FR_TXFF: u32 = 1 << 5;
const FR_TXFE: u32 = 1 << 7;
/// Interrupt bits: receive (FIFO level) and receive timeout.
const INT_RX: u32 = (1 << 4) | (1 << 6);
/// Interrupt bit: transmit (FIFO at or below its level).
const INT_TX: u32 = 1 << 5;

/// UART0's interrupt line on the LM3S6965.
pub const UART0_IRQ: u16 = 5;

static RX: Ring = Ring::new();
static RX_WAKER: AtomicWaker = AtomicWaker::new();
static TX_WAKER: AtomicWaker = AtomicWaker::new();

fn reg(offset: usize) -> u32 {
    // SAFETY: UART0's registers (a PL011 on the lm3s6965evb).
    unsafe { read_volatile((UART0 + offset) as *const u32) }
}

fn set_reg(offset: usize, value: u32) {
    // SAFETY: as in `reg`.
    unsafe { write_volatile((UART0 + offset) as *mut u32, value) }
}

/// Unmasks (`on`) or masks the interrupts `bits`: a read-modify-write of IM in a critical
/// section (the handler changes it too).
fn listen(bits: u32, on: bool) {
    critical_section::with(|_| {
        let im = reg(IM);
        set_reg(IM, if on { im | bits } else { im & !bits });
    });
}

/// The receiving half.
pub struct UartRx(());

/// The transmitting half.
pub struct UartTx(());

/// Sets UART0 up (8N1, FIFOs on) and returns its halves, RX interrupt unmasked (the NVIC line
/// is the caller's: unmask [`UART0_IRQ`] once [`on_interrupt`] is its handler).
///
/// # Safety
/// Called once; nothing else uses UART0.
pub unsafe fn take() -> (UartRx, UartTx) {
    // SAFETY: the caller's promise.
    let _ = unsafe { Pl011::new(UART0) };
    listen(INT_RX, true);
    (UartRx(()), UartTx(()))
}

/// The UART's interrupt handler: call it from UART0's interrupt.
pub fn on_interrupt() {
    while !RX.is_full() {
        let Some(byte) = pl011::read_byte_at(UART0) else {
            break;
        };
        RX.push(byte);
    }
    if RX.is_full() {
        listen(INT_RX, false);
    }
    if !RX.is_empty() {
        RX_WAKER.wake();
    }
    if reg(MIS) & INT_TX != 0 {
        listen(INT_TX, false);
        set_reg(ICR, INT_TX);
        TX_WAKER.wake();
    }
}

impl UartRx {
    /// Waits until a received byte waits (it stays there for [`read`](embedded_io_async::Read::read)).
    pub async fn readable(&mut self) {
        poll_fn(|cx| {
            RX_WAKER.register(cx.waker());
            if RX.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

impl embedded_io_async::ErrorType for UartRx {
    // Overrun, framing and parity flags are dropped with the byte's upper DR bits: the
    // frame's CRC catches what they would.
    type Error = Infallible;
}

impl embedded_io_async::ErrorType for UartTx {
    type Error = Infallible;
}

impl embedded_io_async::Read for UartRx {
    /// Waits for at least one byte, then takes as many as `buf` holds and the ring has.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            // Registered first: a byte the handler pushes after the pops below wakes us.
            RX_WAKER.register(cx.waker());
            let mut n = 0;
            for slot in buf.iter_mut() {
                let Some(byte) = RX.pop() else {
                    break;
                };
                *slot = byte;
                n += 1;
            }
            // The ring has room again: let the handler move the FIFO on.
            listen(INT_RX, true);
            if n == 0 {
                Poll::Pending
            } else {
                Poll::Ready(Ok(n))
            }
        })
        .await
    }
}

impl embedded_io_async::Write for UartTx {
    /// Waits for room in the TX FIFO, then fills it with as much of `buf` as fits.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut n = 0;
            for &byte in buf {
                if reg(FR) & FR_TXFF != 0 {
                    break;
                }
                set_reg(DR, u32::from(byte));
                n += 1;
            }
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            TX_WAKER.register(cx.waker());
            listen(INT_TX, true);
            Poll::Pending
        })
        .await
    }

    /// Waits until the TX FIFO is empty.
    async fn flush(&mut self) -> Result<(), Infallible> {
        poll_fn(|cx| {
            if reg(FR) & FR_TXFE != 0 {
                return Poll::Ready(Ok(()));
            }
            TX_WAKER.register(cx.waker());
            listen(INT_TX, true);
            Poll::Pending
        })
        .await
    }
}
