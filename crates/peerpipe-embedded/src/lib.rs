//! # peerpipe-embedded
//!
//! Runs the [`peerpipe_core`] endpoint over any UART-style byte port on a microcontroller:
//! no_std, no allocation, no busy-waiting. Pick it for firmware; its peer on the host is
//! `peerpipe-std` or `peerpipe-tokio` (same wire protocol). Bytes move through
//! [`embedded_hal_nb::serial::Read<u8>`] and [`embedded_hal_nb::serial::Write<u8>`]
//! (non-blocking, `nb`), or, with the `embedded-io` / `embedded-io-07` features, through an
//! embedded-io port wrapped in `IoSerial`. Time comes from the application: an [`Instant`]
//! passed to [`SerialDriver::poll`], or any [`Clock`] (a trait, also implemented by closures);
//! [`WrappingMillis`] turns the usual wrapping `u32` millisecond tick counter into one.
//!
//! [`SerialDriver::poll`] reads every byte the port has ready, feeds them to the endpoint, acts
//! on due deadlines, writes as much of the pending frames as the port takes without blocking
//! (a partly written frame is kept and continued on the next poll) and returns the next
//! deadline. Call it again at that deadline, when bytes arrive (RX interrupt), when the port
//! has room again while [`SerialDriver::tx_blocked`] (TX interrupt), and after the
//! application sent something or took events.
//!
//! ## Messages of any size
//!
//! A message longer than one frame (`PAYLOAD` bytes, 128 by default) travels in fragments.
//! Received, it arrives as [`Event::Part`]s, in order, from its first byte to its last (or an
//! [`Event::Cut`] when it will not be completed): firmware consumes each part as it comes
//! (hashes it, writes it to flash) and never needs room for the whole message. Sent, its
//! bytes come from a [`Source`] the application gives [`SerialDriver::poll_with`] (instead of
//! `poll`): [`Endpoint::send_from`] names the message and its length, and the driver asks the
//! source for one fragment's bytes at a time when it encodes the frame (again for a resend),
//! so a message in flash or generated on the fly is never copied into RAM. Nothing else
//! changes: the driver's one frame buffer still holds any frame.
//!
//! Firmware on an async executor (embassy) uses `asynch` instead (feature `async`).
//!
//! ## Ports
//!
//! - One type that is both `Read<u8>` and `Write<u8>`: [`SerialDriver::new`].
//! - A HAL's split halves, an RX half (`Read<u8>`) and a TX half (`Write<u8>`), each with its
//!   own error type: [`SerialDriver::new_split`], which wraps them in a [`Split`].
//! - Bytes received in an interrupt handler (for example into a `heapless::spsc` queue) or by
//!   DMA: hand them over with [`SerialDriver::feed`], and give the driver the transmitter
//!   alone in a [`TxOnly`] (its reads always say "nothing yet"). In an RTOS task, sleep until
//!   `min(deadline, next RX/TX notification)`.
//!
//! The adapters are plain wrappers, generic and inlined; a driver over a single port type
//! does not go through them and pays nothing for them.
//!
//! ## A bare main loop
//!
//! A firmware's `main` hands its UART and its millisecond tick counter (here a SysTick
//! handler's) to a function like this one:
//!
//! ```
//! use core::convert::Infallible;
//!
//! use embedded_hal_nb::serial::{Read, Write};
//! use peerpipe_embedded::{Config, ConfigError, Event, SerialDriver, WrappingMillis};
//!
//! fn run<S: Read<u8> + Write<u8>>(
//!     uart: S,
//!     ticks: impl Fn() -> u32,
//!     session: u32, // a boot counter or a random number: new on every start
//! ) -> Result<Infallible, ConfigError> {
//!     let mut millis = WrappingMillis::new();
//!     let mut now = || millis.instant(ticks());
//!     let mut pipe: SerialDriver<S> =
//!         SerialDriver::new(uart, Config::default(), session, now())?;
//!     loop {
//!         let _next_deadline = pipe.poll(now());
//!         while let Some(event) = pipe.endpoint_mut().poll_event() {
//!             if let Event::Message(request) = event {
//!                 if request.is_request() {
//!                     if let Ok(reply) = request.reply_to(request.data()) {
//!                         pipe.endpoint_mut().send(now(), reply, None).ok();
//!                     }
//!                 }
//!             }
//!         }
//!         // optional: sleep (WFI) until the deadline, a UART interrupt or a SysTick
//!     }
//! }
//! # use embedded_hal_nb::serial::ErrorType;
//! # /// A UART that never receives a byte and takes every byte.
//! # struct Uart;
//! # impl ErrorType for Uart { type Error = Infallible; }
//! # impl Read<u8> for Uart { fn read(&mut self) -> nb::Result<u8, Infallible> { Err(nb::Error::WouldBlock) } }
//! # impl Write<u8> for Uart {
//! #     fn write(&mut self, _: u8) -> nb::Result<(), Infallible> { Ok(()) }
//! #     fn flush(&mut self) -> nb::Result<(), Infallible> { Ok(()) }
//! # }
//! # // Type-checked, not run: `run` never returns.
//! # let _ = || run(Uart, || 0, 1);
//! ```
//!
//! ## Features
//! - `embedded-io`: `io06::IoSerial` (also `IoSerial` at the root), an adapter from
//!   embedded-io **0.6** `Read + ReadReady` / `Write + WriteReady` ports to the
//!   embedded-hal-nb traits.
//! - `embedded-io-07`: `io07::IoSerial`, the same adapter for embedded-io **0.7** (the
//!   version embedded-io-async 0.7 builds on).
//! - `defmt`: logs serial errors with defmt and derives `defmt::Format` on the core's types.
//! - `async`: `asynch`, the async driver for embassy and other executors: a `Runner` task
//!   drives the endpoint over embedded-io-async 0.7 halves, other tasks send, request and
//!   receive through a `Handle` (embassy-sync); see its docs for a worked example.
//! - `embassy-time` (enables `async`): `asynch::EmbassyClock`, embassy-time as its clock.
//!
//! Both embedded-io versions are offered because both are in use: a HAL release implements
//! the version it was built against, and a firmware cannot pick its HAL's version. Each
//! adapter is generic over its version's traits and is its own type (one type cannot
//! implement the embedded-hal-nb traits for both versions' ports: the blanket impls would
//! overlap), so each lives in a module named after its version, `io06` and `io07`, which
//! also re-exports that version of the crate as `embedded_io`. The feature `embedded-io`
//! keeps its first meaning (0.6), so that enabling it never changes which traits a port must
//! implement; enable either feature, or both.

#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

#[cfg(feature = "async")]
pub mod asynch;
mod clock;
mod split;

pub use clock::WrappingMillis;
pub use split::{Split, SplitError, TxOnly};

/// embedded-io 0.6 ports as embedded-hal-nb serial ports (feature `embedded-io`):
/// [`IoSerial`].
///
/// `embedded_io` here is the embedded-io crate of that version, to name its traits.
#[cfg(feature = "embedded-io")]
pub mod io06 {
    pub use embedded_io;
    include!("io.rs");
}

/// embedded-io 0.7 ports as embedded-hal-nb serial ports (feature `embedded-io-07`; the
/// version embedded-io-async 0.7 builds on): [`IoSerial`].
///
/// `embedded_io` here is the embedded-io crate of that version, to name its traits.
#[cfg(feature = "embedded-io-07")]
pub mod io07 {
    pub use embedded_io_07 as embedded_io;
    include!("io.rs");
}

// The embedded-io 0.6 adapter under its first name (also `io06::IoSerial`).
#[cfg(feature = "embedded-io")]
pub use io06::{IoError, IoSerial};

pub use embedded_hal_nb;
pub use peerpipe_core;
pub use peerpipe_core::wire::Item;
pub use peerpipe_core::{
    Config, ConfigError, CutReason, Endpoint, Event, EventRef, Instant, Message, MessageRef, MsgId,
    NoSource, Part, PartKind, PartRef, Source,
};

use embedded_hal_nb::serial::{Read, Write};

/// A monotonic time source for [`SerialDriver::poll_clock`]: SysTick, a DWT cycle counter, an
/// RTOS tick. Closures `FnMut() -> Instant` are clocks too.
pub trait Clock {
    /// The current time. Must never go backwards.
    fn now(&mut self) -> Instant;
}

impl<F: FnMut() -> Instant> Clock for F {
    fn now(&mut self) -> Instant {
        self()
    }
}

/// Byte counts and serial errors seen by a [`SerialDriver`] (the protocol's own counters are in
/// [`Endpoint::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DriverStats {
    /// Bytes read from the port or fed with [`SerialDriver::feed`].
    pub rx_bytes: u32,
    /// Bytes written to the port.
    pub tx_bytes: u32,
    /// Errors the port reported on read (overrun, framing, parity, noise...).
    pub rx_errors: u32,
    /// Errors the port reported on write; the byte is retried on the next poll.
    pub tx_errors: u32,
}

/// At most this many bytes are read in one [`SerialDriver::poll`], so that a port that never
/// runs dry (a stream of garbage) cannot keep `poll` from returning.
const RX_BUDGET: usize = 1024;

/// An [`Endpoint`] driven over a serial port `S` (embedded-hal-nb `Read<u8> + Write<u8>`).
///
/// The const parameters are the endpoint's capacities, with the same defaults (which fit a
/// Cortex-M0 with 16 KiB of RAM). The driver adds one frame buffer of `FRAME` bytes for a frame
/// the port has not taken completely yet.
// `repr(C)`, the fields that start at zero side by side after the endpoint: `new` clears them
// with one call (the same `__aeabi_memclr8` the endpoint's queues use), where Rust's own
// layout split them and linked `__aeabi_memclr`'s 192 B of code for the 16-byte stats alone.
#[repr(C)]
pub struct SerialDriver<
    S,
    const PAYLOAD: usize = 128,
    const TOPIC: usize = 32,
    const RX: usize = 4,
    const TX: usize = 4,
    const FRAME: usize = 223,
> {
    endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>,
    tx_len: usize,
    tx_pos: usize,
    stats: DriverStats,
    tx_buf: [u8; FRAME],
    serial: S,
}

impl<
        S,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
    > SerialDriver<S, PAYLOAD, TOPIC, RX, TX, FRAME>
where
    S: Read<u8> + Write<u8>,
{
    /// A driver with a new endpoint (see [`Endpoint::new`] for `session`).
    pub fn new(serial: S, config: Config, session: u32, now: Instant) -> Result<Self, ConfigError> {
        Ok(Self::with_endpoint(
            serial,
            Endpoint::new(config, session, now)?,
        ))
    }

    /// A driver around an existing endpoint.
    pub fn with_endpoint(serial: S, endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>) -> Self {
        SerialDriver {
            endpoint,
            serial,
            tx_buf: [0; FRAME],
            tx_len: 0,
            tx_pos: 0,
            stats: DriverStats::default(),
        }
    }

    /// Moves every byte that can move now, acts on due deadlines, and returns the instant of the
    /// next deadline (`None`: none armed; wait for input). Never blocks.
    ///
    /// Call it again at that instant, when bytes arrive, when the port has room again while
    /// [`tx_blocked`](Self::tx_blocked), and after sending or taking events through
    /// [`endpoint_mut`](Self::endpoint_mut).
    ///
    /// Messages sent with [`Endpoint::send_from`] need their bytes: use
    /// [`poll_with`](Self::poll_with) for them (here they fail as unreadable).
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.poll_with(now, &mut NoSource)
    }

    /// [`poll`](Self::poll), reading the bytes of messages sent with [`Endpoint::send_from`]
    /// from `source` as their frames are encoded: a message of any length goes out fragment
    /// by fragment, never held in RAM as a whole (bytes in flash, generated on the fly, read
    /// from a sensor). The source is asked for one fragment's bytes at a time (at most
    /// `PAYLOAD`), and again for a resend: it must give the same bytes each time until the
    /// send's outcome was polled. A frame the port did not take completely is kept encoded,
    /// so the next poll may be given another source (or none).
    ///
    /// ```
    /// use peerpipe_embedded::{Config, Instant, Item, MsgId, SerialDriver, Source, TxOnly};
    /// # use embedded_hal_nb::serial::{ErrorType, Write};
    /// # struct Tx;
    /// # impl ErrorType for Tx { type Error = core::convert::Infallible; }
    /// # impl Write<u8> for Tx {
    /// #     fn write(&mut self, _: u8) -> nb::Result<(), Self::Error> { Ok(()) }
    /// #     fn flush(&mut self) -> nb::Result<(), Self::Error> { Ok(()) }
    /// # }
    /// /// Byte `i` of every message is `i` mod 251: made up on the fly, one fragment at a time.
    /// struct Counting([u8; 128]);
    ///
    /// impl Source for Counting {
    ///     fn read(&mut self, _id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
    ///         let out = self.0.get_mut(..len)?;
    ///         for (i, b) in out.iter_mut().enumerate() {
    ///             *b = ((offset + i as u64) % 251) as u8;
    ///         }
    ///         Some(out)
    ///     }
    /// }
    ///
    /// let mut pipe: SerialDriver<TxOnly<Tx>> =
    ///     SerialDriver::new(TxOnly(Tx), Config::default(), 1, Instant::ZERO)?;
    /// let mut source = Counting([0; 128]);
    /// let now = Instant::ZERO;
    /// // A 64 KiB request; it goes out once the peer's first heartbeat has arrived.
    /// let id = pipe.endpoint_mut().send_from(now, Item::Request { topic: "log" }, 65_536, None)?;
    /// pipe.poll_with(now, &mut source);
    /// # let _ = id;
    /// # Ok::<(), Box<dyn core::error::Error>>(())
    /// ```
    pub fn poll_with<Src: Source + ?Sized>(
        &mut self,
        now: Instant,
        source: &mut Src,
    ) -> Option<Instant> {
        self.pump_with(now, source);
        self.endpoint.poll_timeout()
    }

    /// [`poll`](Self::poll) without the next deadline: moves every byte that can move now
    /// and acts on due deadlines. For firmware that does not sleep until a deadline: one that
    /// polls in a loop, or wakes on a periodic tick anyway (SysTick). The next deadline is a
    /// walk over every timer and send it would not use (on a Cortex-M0, about 370 B of code
    /// it then does not link); [`Endpoint::poll_timeout`] gives it when wanted.
    pub fn pump(&mut self, now: Instant) {
        self.pump_with(now, &mut NoSource);
    }

    /// [`pump`](Self::pump), reading the bytes of messages sent with [`Endpoint::send_from`]
    /// from `source`, as [`poll_with`](Self::poll_with) does.
    pub fn pump_with<Src: Source + ?Sized>(&mut self, now: Instant, source: &mut Src) {
        self.receive(now);
        // Unconditionally: early it is a no-op, and asking `poll_timeout` first was a second
        // walk over the deadlines (100 B of Cortex-M0 code) to decide the same thing.
        self.endpoint.handle_timeout(now);
        self.transmit(now, source);
    }

    /// [`poll`](Self::poll) with the time read from `clock`.
    pub fn poll_clock(&mut self, clock: &mut impl Clock) -> Option<Instant> {
        let now = clock.now();
        self.poll(now)
    }

    /// Feeds bytes received elsewhere (an RX interrupt's queue, DMA). Any chunking works.
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.rx_bytes = self
            .stats
            .rx_bytes
            .wrapping_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.endpoint.handle_bytes(now, bytes);
    }

    /// Whether a frame is waiting for room in the port's transmitter.
    pub fn tx_blocked(&self) -> bool {
        self.tx_pos < self.tx_len
    }

    /// The endpoint: [`Endpoint::send`], [`Endpoint::poll_event`], END and ABORT, stats.
    pub fn endpoint(&self) -> &Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME> {
        &self.endpoint
    }

    /// The endpoint, to send and take events. Call [`poll`](Self::poll) afterwards to move the
    /// frames this made due.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME> {
        &mut self.endpoint
    }

    /// Puts a new endpoint in place (after END or ABORT, to start a new conversation) and
    /// returns the old one. A partly sent frame of the old one is still finished first, so the
    /// peer's decoder stays in step.
    pub fn replace_endpoint(
        &mut self,
        endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>,
    ) -> Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME> {
        core::mem::replace(&mut self.endpoint, endpoint)
    }

    /// The serial port.
    pub fn serial(&self) -> &S {
        &self.serial
    }

    /// The serial port, mutably (to enable interrupts, change the baud rate...).
    pub fn serial_mut(&mut self) -> &mut S {
        &mut self.serial
    }

    /// Byte counts and serial errors.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// The endpoint and the port back.
    pub fn into_parts(self) -> (Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>, S) {
        (self.endpoint, self.serial)
    }

    /// Reads what the port has (at most [`RX_BUDGET`] bytes) and hands each byte to the
    /// endpoint as it comes: the decoder takes frames a byte at a time, so gathering them
    /// into a chunk first would only cost a buffer (cleared on every poll) and its code.
    fn receive(&mut self, now: Instant) {
        for _ in 0..RX_BUDGET {
            match self.serial.read() {
                Ok(byte) => self.feed(now, core::slice::from_ref(&byte)),
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(_e)) => {
                    self.stats.rx_errors = self.stats.rx_errors.wrapping_add(1);
                    #[cfg(feature = "defmt")]
                    defmt::warn!(
                        "peerpipe: serial read error {}",
                        defmt::Debug2Format(&embedded_hal_nb::serial::Error::kind(&_e))
                    );
                }
            }
        }
    }

    fn transmit<Src: Source + ?Sized>(&mut self, now: Instant, source: &mut Src) {
        loop {
            if let Some(&byte) = self.tx_buf.get(self.tx_pos).filter(|_| self.tx_blocked()) {
                match self.serial.write(byte) {
                    Ok(()) => {
                        self.tx_pos += 1;
                        self.stats.tx_bytes = self.stats.tx_bytes.wrapping_add(1);
                    }
                    Err(nb::Error::WouldBlock) => return,
                    Err(nb::Error::Other(_e)) => {
                        // Retried on the next poll: returning keeps a failing port from
                        // spinning here.
                        self.stats.tx_errors = self.stats.tx_errors.wrapping_add(1);
                        #[cfg(feature = "defmt")]
                        defmt::warn!(
                            "peerpipe: serial write error {}",
                            defmt::Debug2Format(&embedded_hal_nb::serial::Error::kind(&_e))
                        );
                        return;
                    }
                }
            } else {
                match self
                    .endpoint
                    .poll_transmit_from(now, &mut self.tx_buf, source)
                {
                    Ok(Some(len)) => {
                        self.tx_len = len;
                        self.tx_pos = 0;
                    }
                    // `tx_buf` holds MAX_FRAME_LEN bytes: BufferTooSmall cannot happen (a
                    // fragment is cut to PAYLOAD, whatever the message's length).
                    Ok(None) | Err(_) => {
                        self.tx_len = 0;
                        self.tx_pos = 0;
                        return;
                    }
                }
            }
        }
    }
}

impl<
        R,
        W,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
    > SerialDriver<Split<R, W>, PAYLOAD, TOPIC, RX, TX, FRAME>
where
    R: Read<u8>,
    W: Write<u8>,
{
    /// A driver with a new endpoint over a port split in a receive half `rx` and a transmit
    /// half `tx` (a [`Split`]; see [`Endpoint::new`] for `session`).
    ///
    /// ```
    /// use peerpipe_embedded::{Config, Instant, SerialDriver, Split};
    /// # use embedded_hal_nb::serial::{ErrorType, Read, Write};
    /// # /// A HAL's receive half: nothing received yet.
    /// # struct Rx;
    /// # impl ErrorType for Rx { type Error = core::convert::Infallible; }
    /// # impl Read<u8> for Rx { fn read(&mut self) -> nb::Result<u8, Self::Error> { Err(nb::Error::WouldBlock) } }
    /// # /// A HAL's transmit half: takes every byte.
    /// # struct Tx(usize);
    /// # impl ErrorType for Tx { type Error = core::convert::Infallible; }
    /// # impl Write<u8> for Tx {
    /// #     fn write(&mut self, _: u8) -> nb::Result<(), Self::Error> { self.0 += 1; Ok(()) }
    /// #     fn flush(&mut self) -> nb::Result<(), Self::Error> { Ok(()) }
    /// # }
    /// # struct Uart;
    /// # impl Uart { fn split(self) -> (Rx, Tx) { (Rx, Tx(0)) } }
    /// # let uart = Uart;
    /// let (rx, tx) = uart.split(); // the HAL's halves
    /// let mut pipe: SerialDriver<Split<Rx, Tx>> =
    ///     SerialDriver::new_split(rx, tx, Config::default(), 1, Instant::ZERO)?;
    /// pipe.poll(Instant::ZERO);
    /// let tx: &Tx = &pipe.serial().tx; // each half stays reachable
    /// # assert!(tx.0 > 0, "the first heartbeat went out");
    /// # Ok::<(), peerpipe_embedded::ConfigError>(())
    /// ```
    pub fn new_split(
        rx: R,
        tx: W,
        config: Config,
        session: u32,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        Self::new(Split::new(rx, tx), config, session, now)
    }
}

#[cfg(test)]
mod tests;
