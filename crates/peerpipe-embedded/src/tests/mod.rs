//! Two drivers against each other over an in-memory nb serial pair: the pair (`MockSerial`) and
//! the loop that runs two drivers over it, shared by the tests in the submodules.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use embedded_hal_nb::serial::{self, ErrorKind, ErrorType};

use super::*;

mod exchange;
mod link;
mod parts;
mod ports;
mod time;

#[derive(Debug)]
struct MockError;

impl serial::Error for MockError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Overrun
    }
}

/// One direction of the wire.
type Lane = Rc<RefCell<VecDeque<u8>>>;

/// One end of an in-memory serial pair. `tx_per_poll` limits how many bytes `write` takes until
/// `refill` (a slow UART whose TX FIFO is full); `errors` makes the next reads fail.
struct MockSerial {
    rx: Lane,
    tx: Lane,
    tx_per_poll: Option<usize>,
    tx_room: usize,
    errors: usize,
}

/// Ports whose transmitter gets its room back for the next step of [`run`].
trait Refill {
    fn refill(&mut self);
}

impl Refill for MockSerial {
    fn refill(&mut self) {
        self.tx_room = self.tx_per_poll.unwrap_or(usize::MAX);
    }
}

impl<R> Refill for Split<R, MockSerial> {
    fn refill(&mut self) {
        self.tx.refill();
    }
}

impl Refill for TxOnly<MockSerial> {
    fn refill(&mut self) {
        self.0.refill();
    }
}

/// `port` cut in a receive half and a transmit half, each a [`MockSerial`] with the other
/// direction unconnected (as a HAL's `split()`).
fn halves(port: MockSerial) -> (MockSerial, MockSerial) {
    let MockSerial {
        rx,
        tx,
        tx_per_poll,
        tx_room,
        errors,
    } = port;
    let unconnected = Lane::default;
    let rx = MockSerial {
        rx,
        tx: unconnected(),
        tx_per_poll,
        tx_room,
        errors,
    };
    let tx = MockSerial {
        rx: unconnected(),
        tx,
        tx_per_poll,
        tx_room,
        errors: 0,
    };
    (rx, tx)
}

fn pair(tx_per_poll: Option<usize>) -> (MockSerial, MockSerial) {
    let ab: Lane = Rc::default();
    let ba: Lane = Rc::default();
    let port = |rx: &Lane, tx: &Lane| MockSerial {
        rx: rx.clone(),
        tx: tx.clone(),
        tx_per_poll,
        tx_room: tx_per_poll.unwrap_or(usize::MAX),
        errors: 0,
    };
    (port(&ba, &ab), port(&ab, &ba))
}

impl ErrorType for MockSerial {
    type Error = MockError;
}

impl serial::Read<u8> for MockSerial {
    fn read(&mut self) -> nb::Result<u8, MockError> {
        if self.errors > 0 {
            self.errors -= 1;
            return Err(nb::Error::Other(MockError));
        }
        self.rx
            .borrow_mut()
            .pop_front()
            .ok_or(nb::Error::WouldBlock)
    }
}

impl serial::Write<u8> for MockSerial {
    fn write(&mut self, byte: u8) -> nb::Result<(), MockError> {
        if self.tx_room == 0 {
            return Err(nb::Error::WouldBlock);
        }
        self.tx_room -= 1;
        self.tx.borrow_mut().push_back(byte);
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), MockError> {
        Ok(())
    }
}

type Driver = SerialDriver<MockSerial>;

fn drivers(tx_per_poll: Option<usize>) -> (Driver, Driver) {
    let (a, b) = pair(tx_per_poll);
    (
        Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap(),
        Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap(),
    )
}

/// Runs both drivers for `steps` milliseconds of virtual time; `b` answers every request with
/// the payload reversed. Returns the events `a` saw.
fn run<S: Read<u8> + Write<u8> + Refill>(
    a: &mut SerialDriver<S>,
    b: &mut Driver,
    start: u64,
    steps: u64,
) -> Vec<Event> {
    let mut seen = Vec::new();
    for ms in start..start + steps {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(event) = b.endpoint_mut().poll_event() {
            if let Event::Message(m) = event {
                if m.is_request() {
                    let mut data = m.data().to_vec();
                    data.reverse();
                    let reply = m.reply_to(&data).unwrap();
                    b.endpoint_mut().send(now, reply, None).unwrap();
                }
            }
        }
        while let Some(event) = a.endpoint_mut().poll_event() {
            seen.push(event);
        }
    }
    seen
}
