//! Ports made of parts: a receiver and a transmitter owned apart ([`Split`]), or a transmitter
//! alone whose received bytes come through [`SerialDriver::feed`](crate::SerialDriver::feed)
//! ([`TxOnly`]).

use embedded_hal_nb::serial::{Error, ErrorKind, ErrorType, Read, Write};

/// One port from a receive half `R` (`embedded_hal_nb::serial::Read<u8>`) and a transmit half
/// `W` (`embedded_hal_nb::serial::Write<u8>`), as most HALs hand out a UART (`split()`).
///
/// Reads go to `rx`, writes and flushes to `tx`. The halves keep their own error types; the
/// port's error says which half failed ([`SplitError`]). [`SerialDriver::new_split`] builds a
/// driver from the halves directly.
///
/// With embedded-io halves, wrap each in `IoSerial` first: `Split::new(IoSerial(rx),
/// IoSerial(tx))` (the features `embedded-io` and `embedded-io-07`).
///
/// [`SerialDriver::new_split`]: crate::SerialDriver::new_split
#[derive(Debug, Clone, Default)]
pub struct Split<R, W> {
    /// The receive half.
    pub rx: R,
    /// The transmit half.
    pub tx: W,
}

impl<R, W> Split<R, W> {
    /// The port made of `rx` and `tx`.
    pub const fn new(rx: R, tx: W) -> Self {
        Split { rx, tx }
    }

    /// The halves back.
    pub fn into_parts(self) -> (R, W) {
        (self.rx, self.tx)
    }
}

/// An error of a [`Split`] port: which half reported it, and the half's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SplitError<RE, WE> {
    /// The receive half's error.
    Rx(RE),
    /// The transmit half's error.
    Tx(WE),
}

impl<RE: Error, WE: Error> Error for SplitError<RE, WE> {
    fn kind(&self) -> ErrorKind {
        match self {
            SplitError::Rx(e) => e.kind(),
            SplitError::Tx(e) => e.kind(),
        }
    }
}

impl<R: ErrorType, W: ErrorType> ErrorType for Split<R, W> {
    type Error = SplitError<R::Error, W::Error>;
}

impl<R: Read<u8>, W: ErrorType> Read<u8> for Split<R, W> {
    #[inline]
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        self.rx.read().map_err(|e| e.map(SplitError::Rx))
    }
}

impl<R: ErrorType, W: Write<u8>> Write<u8> for Split<R, W> {
    #[inline]
    fn write(&mut self, word: u8) -> nb::Result<(), Self::Error> {
        self.tx.write(word).map_err(|e| e.map(SplitError::Tx))
    }

    #[inline]
    fn flush(&mut self) -> nb::Result<(), Self::Error> {
        self.tx.flush().map_err(|e| e.map(SplitError::Tx))
    }
}

/// A port whose receive side is handled elsewhere: reads always say "nothing yet"
/// (`WouldBlock`), writes and flushes go to the transmitter `W`.
///
/// For firmware that takes received bytes in an interrupt handler (into a queue, or by DMA)
/// and hands them to [`SerialDriver::feed`](crate::SerialDriver::feed), while
/// [`SerialDriver::poll`](crate::SerialDriver::poll) writes. `W` may be a whole UART (its own
/// receiver then stays untouched by the driver) or a HAL's transmit half.
///
/// ```
/// use peerpipe_embedded::{Config, Instant, SerialDriver, TxOnly};
/// # use embedded_hal_nb::serial::{ErrorType, Write};
/// # /// A transmitter that takes every byte.
/// # struct Tx(Vec<u8>);
/// # impl ErrorType for Tx { type Error = core::convert::Infallible; }
/// # impl Write<u8> for Tx {
/// #     fn write(&mut self, byte: u8) -> nb::Result<(), Self::Error> { self.0.push(byte); Ok(()) }
/// #     fn flush(&mut self) -> nb::Result<(), Self::Error> { Ok(()) }
/// # }
/// # let tx = Tx(Vec::new());
/// let mut pipe: SerialDriver<TxOnly<Tx>> =
///     SerialDriver::new(TxOnly(tx), Config::default(), 1, Instant::ZERO)?;
/// // In the main loop: the bytes an RX interrupt queued, then a poll (which only writes).
/// # let queued: &[u8] = &[];
/// pipe.feed(Instant::from_millis(1), queued);
/// pipe.poll(Instant::from_millis(1));
/// # let (_, TxOnly(tx)) = pipe.into_parts();
/// # assert!(!tx.0.is_empty(), "the first heartbeat went out");
/// # Ok::<(), peerpipe_embedded::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TxOnly<W>(pub W);

impl<W> TxOnly<W> {
    /// Wraps the transmitter `tx`.
    pub const fn new(tx: W) -> Self {
        TxOnly(tx)
    }

    /// The transmitter back.
    pub fn into_inner(self) -> W {
        self.0
    }
}

impl<W: ErrorType> ErrorType for TxOnly<W> {
    type Error = W::Error;
}

impl<W: ErrorType> Read<u8> for TxOnly<W> {
    #[inline]
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        Err(nb::Error::WouldBlock)
    }
}

impl<W: Write<u8>> Write<u8> for TxOnly<W> {
    #[inline]
    fn write(&mut self, word: u8) -> nb::Result<(), Self::Error> {
        self.0.write(word)
    }

    #[inline]
    fn flush(&mut self) -> nb::Result<(), Self::Error> {
        self.0.flush()
    }
}
