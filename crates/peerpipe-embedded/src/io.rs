// The body of the modules `io06` and `io07` (see lib.rs): each brings its version of the crate
// into scope as `embedded_io`, then includes this file. (`cargo fmt` does not see included
// files: `rustfmt --edition 2021 crates/peerpipe-embedded/src/io.rs`.)

use embedded_hal_nb::serial::{self, ErrorKind, ErrorType};

use self::embedded_io::{Read, ReadReady, Write, WriteReady};

/// Wraps an embedded-io port (`Read + ReadReady`, `Write + WriteReady`) so that it implements
/// [`embedded_hal_nb::serial::Read<u8>`] and [`Write<u8>`](embedded_hal_nb::serial::Write):
/// a byte is read or written only when `read_ready`/`write_ready` say it will not block.
///
/// One type with both halves, or each half alone: `IoSerial<Rx>` reads, `IoSerial<Tx>`
/// writes, and [`Split::new(IoSerial(rx), IoSerial(tx))`](crate::Split) is a port.
#[derive(Debug, Clone, Default)]
pub struct IoSerial<T>(pub T);

impl<T> IoSerial<T> {
    /// Wraps `port`.
    pub fn new(port: T) -> Self {
        IoSerial(port)
    }

    /// The port back.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// An embedded-io error seen through embedded-hal-nb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError<E>(pub E);

impl<E: self::embedded_io::Error> serial::Error for IoError<E> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl<T: self::embedded_io::ErrorType> ErrorType for IoSerial<T> {
    type Error = IoError<T::Error>;
}

impl<T: Read + ReadReady> serial::Read<u8> for IoSerial<T> {
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        if !self
            .0
            .read_ready()
            .map_err(|e| nb::Error::Other(IoError(e)))?
        {
            return Err(nb::Error::WouldBlock);
        }
        let mut byte = [0u8; 1];
        match self.0.read(&mut byte) {
            Ok(1) => Ok(u8::from_ne_bytes(byte)),
            Ok(_) => Err(nb::Error::WouldBlock),
            Err(e) => Err(nb::Error::Other(IoError(e))),
        }
    }
}

impl<T: Write + WriteReady> serial::Write<u8> for IoSerial<T> {
    fn write(&mut self, word: u8) -> nb::Result<(), Self::Error> {
        if !self
            .0
            .write_ready()
            .map_err(|e| nb::Error::Other(IoError(e)))?
        {
            return Err(nb::Error::WouldBlock);
        }
        match self.0.write(&[word]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(nb::Error::WouldBlock),
            Err(e) => Err(nb::Error::Other(IoError(e))),
        }
    }

    fn flush(&mut self) -> nb::Result<(), Self::Error> {
        self.0.flush().map_err(|e| nb::Error::Other(IoError(e)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use embedded_hal_nb::serial::{Read as _, Write as _};

    use super::embedded_io;
    use super::*;
    use crate::{Config, Instant, SerialDriver, Split};

    /// An embedded-io port (or, with `room` 0 and no bytes, either half of one) with a receive queue and a transmitter that takes `room` bytes.
    struct Port {
        rx: VecDeque<u8>,
        tx: Vec<u8>,
        room: usize,
    }

    impl embedded_io::ErrorType for Port {
        type Error = embedded_io::ErrorKind;
    }

    impl Read for Port {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let mut n = 0;
            while let (Some(slot), Some(byte)) = (buf.get_mut(n), self.rx.front()) {
                *slot = *byte;
                self.rx.pop_front();
                n += 1;
            }
            Ok(n)
        }
    }

    impl ReadReady for Port {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.rx.is_empty())
        }
    }

    impl Write for Port {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.room);
            self.tx.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    impl WriteReady for Port {
        fn write_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(self.room > 0)
        }
    }

    #[test]
    fn bytes_move_only_when_ready() {
        let mut port = IoSerial::new(Port {
            rx: VecDeque::from(vec![1, 2]),
            tx: Vec::new(),
            room: 1,
        });
        assert_eq!(port.read(), Ok(1));
        assert_eq!(port.read(), Ok(2));
        assert_eq!(port.read(), Err(nb::Error::WouldBlock));
        assert_eq!(port.write(7), Ok(()));
        assert_eq!(port.write(8), Err(nb::Error::WouldBlock));
        assert_eq!(port.into_inner().tx, [7]);
    }

    #[test]
    fn a_driver_runs_over_an_embedded_io_port() {
        let port = IoSerial::new(Port {
            rx: VecDeque::new(),
            tx: Vec::new(),
            room: 1000,
        });
        let mut driver: SerialDriver<_> =
            SerialDriver::new(port, Config::default(), 1, Instant::ZERO).unwrap();
        driver.poll(Instant::ZERO);
        assert!(
            !driver.serial().0.tx.is_empty(),
            "the first heartbeat went out"
        );
    }

    #[test]
    fn a_driver_runs_over_split_embedded_io_halves() {
        // What the peer says first (its heartbeat), waiting in the receive half.
        let mut peer: crate::Endpoint =
            crate::Endpoint::new(Config::default(), 2, Instant::ZERO).unwrap();
        let mut frame = [0u8; 256];
        let len = peer
            .poll_transmit(Instant::ZERO, &mut frame)
            .unwrap()
            .unwrap();
        let rx = IoSerial(Port {
            rx: frame[..len].iter().copied().collect(),
            tx: Vec::new(),
            room: 0,
        });
        let tx = IoSerial(Port {
            rx: VecDeque::new(),
            tx: Vec::new(),
            room: 1000,
        });
        let mut driver: SerialDriver<Split<_, _>> =
            SerialDriver::new_split(rx, tx, Config::default(), 1, Instant::ZERO).unwrap();
        driver.poll(Instant::ZERO);
        assert_eq!(driver.stats().rx_bytes as usize, len);
        assert_eq!(driver.endpoint().stats().frames_received, 1);
        let (_, Split { rx, tx }) = driver.into_parts();
        assert!(rx.0.rx.is_empty() && rx.0.tx.is_empty());
        assert!(!tx.0.tx.is_empty(), "the first heartbeat went out");
    }
}
