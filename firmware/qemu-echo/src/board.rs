//! The main loop of every board ([`run`]) and what it needs from a board ([`Board`]).

use embedded_hal_nb::serial::Write;
use peerpipe_embedded::{Instant, TxOnly};

use crate::ring::Ring;
use crate::{config, App, Pipe};

/// What [`run`] needs from a board besides the UART's transmitter: its clock, its RX interrupt
/// and its way of sleeping. The board's RX interrupt handler moves bytes into the ring `run` is
/// given, and masks the interrupt while the ring is full (the UART's FIFO then holds the bytes
/// and the sender waits: no byte is dropped).
pub trait Board {
    /// The current time.
    fn now(&mut self) -> Instant;
    /// Unmasks the RX interrupt (the handler masks it while the ring is full).
    fn listen_rx(&mut self);
    /// Sleeps (WFI) until an interrupt, unless a byte waits in `rx` or `next` is due. The check
    /// and WFI run with interrupts masked, so an interrupt between them still ends the sleep
    /// (WFI returns on a pending interrupt); its handler runs right after.
    fn sleep(&mut self, rx: &Ring, next: Option<Instant>);
    /// Any changing counter, mixed into the session id.
    fn entropy(&mut self) -> u32;
}

/// The main loop of every board: sleeps until the host's first byte (the wake-ups it took and
/// [`Board::entropy`] seed the session id), then runs [`App`] over `tx`, handing it the bytes
/// the RX interrupt put into `rx` with `feed`, and sleeps whenever nothing is left to do until
/// a byte, a clock interrupt or the next deadline.
pub fn run<T: Write<u8>>(tx: T, rx: &Ring, mut board: impl Board) -> ! {
    board.listen_rx();
    let mut waits: u32 = 0;
    while rx.is_empty() {
        board.sleep(rx, None);
        waits = waits.wrapping_add(1);
    }
    let seed = waits.wrapping_mul(0x9E37_79B9) ^ board.entropy();
    let mut app = App::new(seed | 1);
    let start = board.now();
    let Ok(mut pipe) = Pipe::new(TxOnly(tx), config(), app.session(), start) else {
        loop {
            board.sleep(rx, None);
        }
    };
    loop {
        let t = board.now();
        let mut chunk = [0u8; 64];
        let mut len = 0;
        while let Some(byte) = rx.pop() {
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
        board.listen_rx();
        let next = app.step(&mut pipe, t);
        // A full transmitter is polled again at once (sending is not interrupt-driven).
        if !pipe.tx_blocked() {
            board.sleep(rx, next);
        }
    }
}
