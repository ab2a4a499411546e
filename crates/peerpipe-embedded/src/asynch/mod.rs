//! The async driver (feature `async`): the endpoint driven by one task over an
//! [`embedded_io_async`] port, shared with the application's tasks through embassy-sync
//! channels and signals. No polling loop, no allocation, any executor (embassy-executor,
//! RTIC's async tasks, `embassy_futures::block_on`).
//!
//! [`new`] splits a [`State`] into a [`Runner`], which one task runs over the port's two
//! halves, and a [`Handle`], which every other task copies: [`Handle::send`] (fire and
//! forget), [`Handle::deliver`] (await the outcome), [`Handle::request`] (await the reply),
//! [`Handle::send_from`] (a message of any length, its bytes read from the runner's
//! [`Source`](crate::Source) as its frames go out), [`Handle::notify_end`] /
//! [`Handle::notify_abort`], and [`Handle::receive`] for everything the peer sends and
//! every change of its state, messages longer than a frame as [`Event::Part`](crate::Event::Part)s.
//!
//! Time comes from a [`Clock`]: [`EmbassyClock`] (feature `embassy-time`) or any other.
//!
//! Back-pressure, never a silent drop: a send with every send slot taken fails at once with
//! [`Error::SendQueueFull`]; events the
//! application does not receive wait in the endpoint once the channel is full, its receive
//! queue fills and the peer's sends wait for room.
//!
//! ## Example: an echo server on embassy
//!
//! ```
//! use embassy_futures::select::select;
//! use embassy_sync::blocking_mutex::raw::NoopRawMutex;
//! use embedded_io_async::{Read, Write};
//! use peerpipe_embedded::asynch::{self, Clock, State};
//! use peerpipe_embedded::{Config, Endpoint, Event, NoSource};
//!
//! /// Runs the pipe over a UART's halves and answers every request with its own data, until
//! /// the peer ends or aborts the conversation.
//! async fn serve(rx: impl Read, tx: impl Write, clock: &impl Clock, session: u32) {
//!     let Ok(endpoint) = Endpoint::new(Config::default(), session, clock.now()) else {
//!         return;
//!     };
//!     let state: State<NoopRawMutex> = State::new(endpoint);
//!     let (mut runner, pipe) = asynch::new(&state, clock);
//!     let app = async {
//!         loop {
//!             match pipe.receive().await {
//!                 Event::Message(m) if m.is_request() => {
//!                     if let Ok(reply) = m.reply_to(m.data()) {
//!                         // Err(SendQueueFull) when every send slot is taken: this demo
//!                         // then leaves the request unanswered.
//!                         pipe.send(reply, None).ok();
//!                     }
//!                 }
//!                 Event::End(_) | Event::Abort(_) => return,
//!                 _ => {}
//!             }
//!         }
//!     };
//!     // The runner never returns: `select` stops it when `app` does.
//!     select(runner.run(rx, tx, &mut NoSource), app).await;
//! }
//! ```
//! With embassy-executor, `serve` is the body of a task given the UART's halves and an
//! [`EmbassyClock`]; see `firmware/qemu-embassy` in the repository for a complete firmware
//! (interrupt-driven UART, SysTick time driver, streaming in and out).

mod handle;
mod runner;
mod state;
#[cfg(test)]
mod tests;

use core::future::Future;

use embassy_sync::blocking_mutex::raw::RawMutex;
use peerpipe_core::{Error, FailReason, Instant, MsgId};

pub use handle::Handle;
pub use runner::Runner;
pub use state::State;

/// Time for the async driver: the current instant and a future that waits for one.
/// [`EmbassyClock`] is embassy-time's; tests use a virtual one.
pub trait Clock {
    /// The current time. Must never go backwards.
    fn now(&self) -> Instant;

    /// Completes at `deadline` (at once when it has passed).
    fn at(&self, deadline: Instant) -> impl Future<Output = ()>;
}

/// embassy-time as a [`Clock`] (feature `embassy-time`): instants are embassy-time's, in
/// microseconds since its origin (boot).
#[cfg(feature = "embassy-time")]
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_micros(embassy_time::Instant::now().as_micros())
    }

    #[inline]
    fn at(&self, deadline: Instant) -> impl Future<Output = ()> {
        // Rounded up to the next tick (embassy-time's `Instant::from_micros` rounds down): a
        // timer that fired before the deadline would wake the runner for nothing.
        let ticks = embassy_time::Duration::from_micros(deadline.as_micros()).as_ticks();
        embassy_time::Timer::at(embassy_time::Instant::from_ticks(ticks))
    }
}

/// Why a [`Handle::request`] or [`Handle::deliver`] ended without its reply or delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RequestError {
    /// The endpoint refused the send at once, nothing was sent (as [`Handle::send`]; also
    /// [`Error::SendQueueFull`] when every waiter slot, one per send slot, is taken).
    Send(Error),
    /// The send failed, or the request was delivered but no reply will come: the peer went,
    /// ended, aborted or restarted ([`FailReason::PeerGone`] ...), or the endpoint was
    /// replaced ([`FailReason::Stopped`]).
    Failed(FailReason),
    /// No reply within the request's timeout.
    TimedOut,
    /// The reply is longer than a frame: its parts come through [`Handle::receive`] as
    /// [`Event::Part`](crate::Event::Part)s of `PartKind::Reply { req_id }` with this id.
    ReplyInParts(MsgId),
}

impl core::fmt::Display for RequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestError::Send(e) => write!(f, "send refused: {e}"),
            RequestError::Failed(reason) => write!(f, "send failed: {reason}"),
            RequestError::TimedOut => f.write_str("no reply within the timeout"),
            RequestError::ReplyInParts(id) => write!(f, "the reply to {} comes in parts", id.0),
        }
    }
}

impl core::error::Error for RequestError {}

/// Splits `state` into the [`Runner`] (one task runs it) and a [`Handle`] (`Copy`, for every
/// other task), both reading time from `clock`.
pub fn new<
    'a,
    M: RawMutex,
    C: Clock,
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
    const EVENTS: usize,
>(
    state: &'a State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    clock: &'a C,
) -> (
    Runner<'a, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
    Handle<'a, M, C, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>,
) {
    (
        Runner {
            state,
            clock,
            tx_buf: [0; FRAME],
        },
        Handle { state, clock },
    )
}
