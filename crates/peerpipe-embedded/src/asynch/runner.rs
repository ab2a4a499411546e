//! The task that drives the endpoint: reads, keeps its deadlines, writes.

use core::convert::Infallible;

use embassy_futures::join::join3;
use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_io_async::{Read, Write};
use peerpipe_core::Source;

use super::{Clock, State};

/// How many bytes one read asks the port for.
const RX_CHUNK: usize = 64;

/// Drives an endpoint over an embedded-io-async port: made by [`new`](super::new), run by
/// one task with [`run`](Self::run). It holds one frame buffer of `FRAME` bytes.
pub struct Runner<
    'a,
    M: RawMutex,
    C: Clock,
    const PAYLOAD: usize = 128,
    const TOPIC: usize = 32,
    const RX: usize = 4,
    const TX: usize = 4,
    const FRAME: usize = 223,
    const EVENTS: usize = 4,
> {
    pub(crate) state: &'a State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    pub(crate) clock: &'a C,
    pub(crate) tx_buf: [u8; FRAME],
}

impl<
        M: RawMutex,
        C: Clock,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const EVENTS: usize,
    > Runner<'_, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>
{
    /// Runs the endpoint over a port's receive half `rx` and transmit half `tx` (one object
    /// that is both may be passed as `&mut`-borrowed halves only if its HAL splits it; most
    /// embassy HALs do: `split()`), reading the bytes of messages sent with
    /// [`Handle::send_from`](super::Handle::send_from) from `source` (or
    /// [`NoSource`](crate::NoSource)). Never returns: drop the future to stop it.
    ///
    /// Three loops run concurrently, none of them polls: the receiver awaits bytes and feeds
    /// them to the endpoint; the deadline keeper awaits the endpoint's next deadline or a
    /// change (bytes in, a handle's call, room in the event channel), acts on the deadline and
    /// hands events to the channel and outcomes and replies to the waiting tasks; the
    /// transmitter writes each due frame whole, then awaits a change. So deadlines are kept
    /// (the peer declared gone) even while the transmitter is stuck on a port that takes
    /// nothing.
    ///
    /// Read errors are counted ([`Handle::stats`](super::Handle::stats)) and reading goes on;
    /// the end of input (a read of 0 bytes) tells the endpoint that the transport is lost
    /// (the peer is gone). A write error is counted and ends that frame (the peer's decoder
    /// resynchronizes on the next frame; the protocol resends what was lost).
    pub async fn run<R: Read, W: Write, S: Source + ?Sized>(
        &mut self,
        rx: R,
        tx: W,
        source: &mut S,
    ) -> Infallible {
        let state = self.state;
        let clock = self.clock;
        let tx_buf = &mut self.tx_buf;
        let (never, _, _) = join3(
            receive(state, clock, rx),
            keep_deadlines(state, clock),
            transmit(state, clock, tx, tx_buf, source),
        )
        .await;
        never
    }
}

/// Feeds every byte the port delivers to the endpoint.
async fn receive<
    M: RawMutex,
    C: Clock,
    R: Read,
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
    const EVENTS: usize,
>(
    state: &State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    clock: &C,
    mut rx: R,
) -> Infallible {
    let mut buf = [0u8; RX_CHUNK];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) => {
                state.lock(|inner| inner.endpoint.transport_lost());
                state.wake();
                return core::future::pending().await;
            }
            Ok(n) => {
                let now = clock.now();
                let framed = state.lock(|inner| {
                    inner.stats.rx_bytes = inner.stats.rx_bytes.wrapping_add(n as u32);
                    let before = inner.endpoint.stats().frames_received;
                    inner
                        .endpoint
                        .handle_bytes(now, buf.get(..n).unwrap_or(&[]));
                    inner.endpoint.stats().frames_received != before
                });
                // Bytes of a frame not yet complete change nothing else: the rest of the
                // runner is woken once per frame, not once per byte (a UART often delivers
                // one byte per read).
                if framed {
                    state.wake();
                }
            }
            Err(_e) => {
                state.lock(|inner| inner.stats.rx_errors = inner.stats.rx_errors.wrapping_add(1));
                #[cfg(feature = "defmt")]
                defmt::warn!(
                    "peerpipe: serial read error {}",
                    defmt::Debug2Format(&embedded_io_async::Error::kind(&_e))
                );
            }
        }
    }
}

/// Acts on the endpoint's deadlines and moves its events on, then sleeps until the next
/// deadline or a change.
async fn keep_deadlines<
    M: RawMutex,
    C: Clock,
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
    const EVENTS: usize,
>(
    state: &State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    clock: &C,
) {
    loop {
        let now = clock.now();
        let next = state.lock(|inner| {
            if inner.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                inner.endpoint.handle_timeout(now);
            }
            inner.dispatch(&state.events);
            inner.endpoint.poll_timeout()
        });
        state.wake_tx.signal(());
        match next {
            Some(at) => {
                select(state.wake_service.wait(), clock.at(at)).await;
            }
            None => state.wake_service.wait().await,
        }
    }
}

/// Writes every due frame, whole, then sleeps until a change.
async fn transmit<
    M: RawMutex,
    C: Clock,
    W: Write,
    S: Source + ?Sized,
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
    const EVENTS: usize,
>(
    state: &State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    clock: &C,
    mut tx: W,
    buf: &mut [u8; FRAME],
    source: &mut S,
) {
    loop {
        let now = clock.now();
        // `buf` holds FRAME bytes, every frame's bound: BufferTooSmall cannot happen.
        let frame = state.lock(|inner| {
            inner
                .endpoint
                .poll_transmit_from(now, buf, source)
                .ok()
                .flatten()
        });
        let Some(frame) = frame.and_then(|len| buf.get(..len)) else {
            state.wake_tx.wait().await;
            continue;
        };
        let written = tx.write_all(frame).await;
        let len = frame.len() as u32;
        state.lock(|inner| match written {
            Ok(()) => inner.stats.tx_bytes = inner.stats.tx_bytes.wrapping_add(len),
            Err(_) => inner.stats.tx_errors = inner.stats.tx_errors.wrapping_add(1),
        });
        // A frame out may arm a deadline (a resend).
        state.wake_service.signal(());
    }
}
