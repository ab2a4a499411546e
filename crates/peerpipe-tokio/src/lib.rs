//! # peerpipe-tokio
//!
//! peerpipe for async Rust: NVIDIA NVFlare's `PipeHandler` API over any tokio
//! `AsyncRead + AsyncWrite` (TCP, Unix sockets, `tokio::io::duplex`, a serial port through
//! `tokio-serial` behind the `serial` feature). The same wire protocol as every other peerpipe
//! driver: a tokio peer talks to a threaded `peerpipe-std` peer or to firmware on a UART.
//! Pick it for async programs; it does not depend on the threaded driver (the owned types
//! both share live in `peerpipe-host`, re-exported here).
//!
//! One task per pipe drives the sans-IO core (`peerpipe-core`): it sleeps until the
//! endpoint's next deadline (`poll_timeout`), input from the transport, or a call on a handle;
//! there is no polling interval, so an idle pipe costs a wake-up per heartbeat and nothing
//! else. The endpoint's clock is tokio's, so tests with paused time run in virtual time.
//!
//! ## A run loop
//! A server that answers every request, and a client, over TCP. A [`PipeListener`] yields
//! one started handler per peer that connects (each with its own session and task);
//! dropping it frees the port (on Unix, [`PipeListener::bind_unix`] serves a Unix socket):
//!
//! ```no_run
//! use peerpipe_tokio::{Config, Item, Message, PipeHandler, PipeListener, Status};
//! use tokio::net::TcpStream;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener: PipeListener = PipeListener::bind("127.0.0.1:7000", Config::default()).await?;
//! tokio::spawn(async move {
//!     while let Ok(pipe) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(item) = pipe.recv().await {
//!                 match item {
//!                     Item::Message(req) if req.is_request() => {
//!                         let reply = req.reply_to(req.data().to_vec())?;
//!                         pipe.send_to_peer(reply, None).await?;
//!                     }
//!                     Item::Status(Status::End(_) | Status::Abort(_) | Status::Gone { .. }) => break,
//!                     _ => {}
//!                 }
//!             }
//!             Ok::<(), peerpipe_tokio::Error>(())
//!         });
//!     }
//! });
//!
//! let stream = TcpStream::connect("127.0.0.1:7000").await?;
//! stream.set_nodelay(true)?;
//! let client: PipeHandler = PipeHandler::start(stream, Config::default())?;
//! let reply = client.request(Message::request("echo", b"hello".to_vec())?, None).await?;
//! assert_eq!(reply.data(), b"hello");
//! client.notify_end(Vec::new(), None).await?;
//! client.stop();
//! # Ok(())
//! # }
//! ```
//!
//! ## Under pressure
//! - **A timeout bounds the whole call.** `send_to_peer`, `request`, `notify_end` and
//!   `notify_abort` take one (`None`: `default_request_timeout`) that covers waiting for a
//!   send slot, sending and resending, and, for `request`, the reply. When every send slot is
//!   taken they wait their turn, first come, first served (END and ABORT too): a freed slot
//!   goes to the caller that has waited longest.
//! - **Errors say what ran out.** [`Error::Failed`]`(`[`FailReason::NoSlot`]`)`: no slot
//!   came free in time, nothing was sent. [`Error::Failed`]`(`[`FailReason::TimedOut`]`)`:
//!   sent but not acknowledged in time. [`Error::NoReply`]`{ request }`: the request was
//!   acknowledged (delivered) but not answered in time. [`Error::QueueFull`]: the
//!   non-waiting [`send_no_wait`](PipeHandler::send_no_wait) found every slot taken. A busy
//!   handler is never [`Error::Invalid`]. [`Error::is_timeout`] covers the first three.
//! - **A request's id**: the reply's [`req_id`](Message::req_id), or the `request` of
//!   [`Error::NoReply`].
//! - **Late replies** (to a request that gave up: timed out, failed, or its future was
//!   dropped) are dropped and counted in [`HandlerStats::late_replies`]; they never take a
//!   place in the application's queue. The last [`ABANDONED_REQUESTS`] abandoned requests
//!   are remembered for this.
//! - **Bounded memory.** At most `TX` sends are held (the send slots); callers waiting for
//!   one are futures the application holds. The output buffer holds at most
//!   [`UNSENT_LIMIT`] plus one frame, however long the peer does not read: frames that come
//!   due meanwhile stay due in the endpoint. At most `RX` received items wait in the
//!   handler's queue (and `RX` more in the endpoint; beyond, the peer's resends cover them).
//! - [`PipeHandler::stats`] shows it all: the endpoint's counters, the calls waiting for a
//!   slot, the items waiting for the application, late replies, unsent bytes.
//!
//! ## Features
//! - `serial`: `open_serial`, a serial port as a transport (through `tokio-serial`).

#![warn(missing_docs)]

mod guards;
mod handler;
mod listener;
mod outgoing;
mod receive;
#[cfg(feature = "serial")]
mod serial;
mod state;
mod task;
mod waiters;

pub use handler::{Events, PipeHandler};
pub use listener::PipeListener;
/// The sans-IO core, for its `Error` and wire types. Every time this crate takes is a
/// `std::time::Duration` (the [`Config`] fields too).
pub use peerpipe_core;
pub use peerpipe_core::{
    CloseReason, Config, ConfigError, FailReason, GoneReason, MessageKind, MsgId, PeerState, Stats,
};
pub use peerpipe_host::ABANDONED_REQUESTS;
pub use peerpipe_host::{MAX_PAYLOAD, UNSENT_LIMIT};
pub use peerpipe_host::{Error, HandlerStats, Item, Message, Status};
#[cfg(feature = "serial")]
pub use serial::open_serial;

/// The default fragment size: the most message bytes one frame carries, and the size of
/// each receive slot. Messages of any length (up to [`MAX_PAYLOAD`]) travel in fragments of
/// at most this many bytes; the peer's own limit may cut them smaller. 1 KiB keeps an idle
/// default pipe near 12 KiB (8 receive slots of 1 KiB dominate it) where `peerpipe_std`'s
/// 8 KiB fragments would make it about 80 KiB; the crate docs give the throughput it costs.
pub const DEFAULT_FRAGMENT: usize = 1024;
/// The default longest topic: as in `peerpipe_std`.
pub const DEFAULT_TOPIC: usize = peerpipe_host::MAX_TOPIC;
/// The default number of receive and of send slots: fewer than `peerpipe_std`'s 32, since a
/// server runs thousands of pipes and callers beyond the slots wait as futures (the README's
/// "Capacities" explains every driver's defaults). A send slot holds one message (of any
/// length) until its outcome, and bounds the fragments in flight.
pub const DEFAULT_SLOTS: usize = 8;
/// The frame buffer of the default capacities.
pub const DEFAULT_FRAME: usize =
    peerpipe_core::wire::max_encoded_len(DEFAULT_FRAGMENT, DEFAULT_TOPIC);

/// Received data a handler holds for its application, in bytes, beyond one message: while
/// the items in its queue and the message it is putting together come to this much, it
/// takes nothing more from the endpoint (whose receive slots then fill, so that the peer
/// waits), unless the queue is empty. The crate docs give the whole bound.
pub const RECEIVED_LIMIT: usize = 1 << 20;

/// How far a message got: `done` of its `total` bytes (acknowledged by the peer, for a send;
/// arrived, for a message being received). From [`PipeHandler::progress`],
/// [`PipeHandler::sending`] and [`PipeHandler::receiving`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The message's id (the sender's: the receiver sees the same id).
    pub id: MsgId,
    /// Bytes done.
    pub done: u64,
    /// The message's length in bytes.
    pub total: u64,
}
