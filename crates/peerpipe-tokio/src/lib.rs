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
//! ## Reconnection
//! A handler started on a stream by [`PipeHandler::start`] ends its conversation when the
//! stream breaks (GONE). One made by [`PipeHandler::connect_tcp`] or
//! [`connect_unix`](PipeHandler::connect_unix) (the ACTIVE end) or by
//! [`accept_tcp`](PipeHandler::accept_tcp) or [`accept_unix`](PipeHandler::accept_unix)
//! (the PASSIVE end, on a listener the application bound) survives a broken connection, as
//! [`Reconnect`] says (the same policy as `peerpipe_std`'s):
//! - the ACTIVE end dials again, at once, then with a backoff that doubles from
//!   `initial_backoff` to `max_backoff`, with jitter; the PASSIVE end keeps its listener
//!   for the handler's whole life and takes the peer's next connection;
//! - the conversation goes on in the same session: what was acknowledged stays delivered
//!   once, what was in flight is sent again at once on the new connection (without counting
//!   against `max_resends`) and arrives once, in order; sends and requests just wait
//!   (within their timeouts);
//! - the application sees [`Status::Reconnecting`] (with the cause) and
//!   [`Status::Reconnected`] (counted in [`HandlerStats::reconnects`]); a peer that comes
//!   back as a new process is [`Status::PeerRestarted`], on the same handler;
//! - the peer is GONE only when nothing came from it for `Config::heartbeat_timeout`
//!   (the silence rule runs on through the break), or, with
//!   [`Reconnect::give_up_after`], when no connection came back that long after the break
//!   ([`GoneReason::TransportLost`]);
//! - a newcomer at a PASSIVE end while a connection is live replaces it only if its first
//!   frame (within `probation`) carries the peer's session; otherwise it is closed and
//!   counted in [`HandlerStats::refused_connections`]. While no connection is live, the
//!   next one is taken as it comes. Without TLS, anyone who can reach the port can talk
//!   while no connection is live; [`Reconnect`] says what holds while one is.
//! - [`Reconnect::OFF`] turns it off; nothing reconnects once this side's END or ABORT went
//!   through, and the first connection is not retried.
//! - A [`PipeListener`]'s handlers reconnect too: the listener routes a client that comes
//!   back to its old handler by the session its first frame carries, and gives a newcomer
//!   with an unknown session a new handler (see [`PipeListener`]).
//! - A serial port opened by `PipeHandler::start_serial` (feature `serial`) is opened again
//!   at its path when it fails (its device unplugged and plugged back), in the same session.
//!   Any stream given to [`PipeHandler::start`] ends the conversation when it breaks (GONE).
//!
//! ```no_run
//! use peerpipe_tokio::{Config, PipeHandler, Reconnect};
//! use tokio::net::TcpListener;
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = TcpListener::bind("127.0.0.1:7000").await?;
//! let server = tokio::spawn(PipeHandler::<1024>::accept_tcp(listener, Config::default(), Reconnect::ON));
//! let client: PipeHandler = PipeHandler::connect_tcp("127.0.0.1:7000", Config::default(), Reconnect::ON).await?;
//! let server = server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! ## TLS
//! Without TLS, anyone who can reach a listening port can talk to the handler behind it. With
//! the feature `tls` (tokio-rustls, TLS 1.3), `PipeHandler::connect_tls`,
//! `PipeHandler::accept_tls` and `PipeListener::bind_tls` run the link over TLS with the
//! certificates of a `tls::TlsClient` or `tls::TlsServer` (the same types as
//! `peerpipe_std`'s): the client checks the server's certificate, the server may require a
//! client certificate (mutual authentication). A peer without an acceptable certificate is
//! refused, never silently: a refused client's `connect_tls` fails with the reason; a
//! listening handler logs a warning and counts it in [`HandlerStats::refused_connections`]
//! (the conversation going on is untouched); `PipeListener::accept` returns it as its error.
//! Reconnection makes a new handshake per connection. The `tls` module has an example.
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
//! - **Bounded memory.** At most `TX` sends are held (the send slots, each holding its
//!   message's data, shared with nobody else's copy); callers waiting for one are futures
//!   the application holds. The output buffer holds at most [`UNSENT_LIMIT`] plus one
//!   frame, however long the peer does not read: frames that come due meanwhile stay due in
//!   the endpoint. Received data is bounded in items and in bytes: see "Memory" below.
//! - [`PipeHandler::stats`] shows it all: the endpoint's counters, the calls waiting for a
//!   slot, the items waiting for the application, late replies, unsent bytes.
//!
//! ## Messages of any size
//! A message carries up to [`MAX_PAYLOAD`] (4 GiB) bytes: requests, replies, END and ABORT
//! data alike. It travels in fragments of at most `FRAGMENT` bytes (the handler's first
//! const parameter, [`DEFAULT_FRAGMENT`] = 1 KiB by default; a peer with smaller fragments
//! gets smaller ones), each acknowledged and resent on its own; `send_to_peer` resolves
//! once the peer's endpoint has accepted the whole message.
//! - **No copies.** A message's data moves into shared `Bytes` once; the endpoint reads
//!   each fragment from the handler's outbox when it transmits it (and again when it
//!   resends it). A call that waits for a send slot holds no second copy, and a send slot
//!   costs a few dozen bytes whatever the message's length.
//! - **Whole messages only.** A message longer than a fragment arrives in parts, which the
//!   handler puts together: [`recv`](PipeHandler::recv), [`events`](PipeHandler::events)
//!   and a waiting [`request`](PipeHandler::request) get it whole. One that will not be
//!   completed (its sender gave it up, went away or restarted in the middle) is dropped
//!   and counted in `stats().core.messages_cut`, never delivered in part; GONE or the
//!   restart is reported as always.
//! - **Progress.** [`PipeHandler::progress`] gives the bytes of the oldest send under way
//!   that the peer has acknowledged and the bytes that arrived of the message being put
//!   together ([`Progress`], as in `peerpipe_std`); [`PipeHandler::sending`] lists every
//!   send under way.
//! - **The peer's limit.** [`Config::max_message`] (0: no limit) is announced to the peer,
//!   and a send longer than the peer's limit fails at once with
//!   [`Error::Failed`]`(`[`FailReason::TooLarge`]`)`. A server facing peers it does not
//!   trust sets it: it bounds what one message costs. No DATA goes out before the peer's
//!   first heartbeat has told its limits; sends wait meanwhile (within their timeout).
//! - **Delivered means taken in.** A message longer than the receiver's receive slots is
//!   acknowledged as its handler takes the parts in, so while the receiving application
//!   leaves its queue full (see below), a long message waits, and its send with it.
//!
//! ## Memory
//! - **Idle:** a default pipe takes 13.7 KiB of heap (14,012 B; 14.1 KiB after a 1 MiB
//!   transfer; measured by `tests/memory.rs`, over TCP): its endpoint is 12.75 KiB
//!   (8 receive slots of a 1 KiB fragment and a 64-byte topic, a 1,155-byte frame buffer, 8
//!   send slots of a few dozen bytes), the rest the shared state, the task and its timer.
//!   With 8 KiB fragments the endpoint alone would be 75.5 KiB.
//! - **Receiving:** the handler holds at most `RX` items for the application, and takes
//!   nothing more from the endpoint while those and the message it is putting together
//!   come to [`QUEUE_BYTES`] (1 MiB) or more, unless its queue is empty (so that a
//!   message longer than the limit gets through) or that message is a reply a request waits
//!   for (it goes to the request, never to the queue, so an unread queue cannot hold it
//!   back). The connection's statuses (`Reconnecting`, `Reconnected`) take no place
//!   either, so that an application that only makes requests and never reads its queue
//!   loses no reply to them; a break that comes while the previous reconnect is still
//!   unread is merged into it (one `Reconnecting`, then the next `Reconnected`; every
//!   reconnect is counted in `HandlerStats::reconnects`), so that they stay bounded too.
//!   Its received data is then at most twice `QUEUE_BYTES`, or one message when a
//!   message is longer; add what the application holds, and replies handed to waiting
//!   requests. Meanwhile the endpoint's receive slots fill and the peer waits (flow
//!   control, not loss). Measured with an application that takes one message per 50 ms,
//!   everything allocated on its side included: 8.0 MiB at most for a flood of 4 MiB
//!   messages, 1.33 MiB for 192 KiB ones.
//! - **Sending:** the messages in the send slots, whose data the application gave.
//!
//! ## Throughput
//! Small fragments cost throughput: each is a frame to encode, check and acknowledge, and
//! fewer bytes are in flight per round trip. `tests/throughput.rs` measures it (`cargo test
//! --release -p peerpipe-tokio --test throughput -- --ignored --nocapture`: 256 MiB over TCP
//! loopback by concurrent `send_to_peer` calls). On the shared 2-core machine, in 16 MiB and
//! 64 KiB messages, three runs: about 380-430 MiB/s with the defaults (1 KiB fragments,
//! 8 + 8 slots; 220 MiB/s once under load), 620-720 MiB/s with 8 KiB fragments and 8 + 8
//! slots (`PipeHandler<8192, 64, 8, 8, { max_encoded_len(8192, 64) }>`, a 75.5 KiB
//! endpoint), 535-620 MiB/s with 1 KiB fragments and 32 + 32 slots (44 KiB). So the
//! defaults give up about a third of the bulk throughput for a sixth of the memory. A
//! program with a few pipes that move bulk data picks 8 KiB fragments; a server with
//! thousands of pipes keeps the defaults.
//! One message of 256 MiB (`cargo run --release -p peerpipe-examples --example bulk --
//! --driver tokio --transport tcp --size 256M`) went at 265-390 MB/s with the defaults
//! in five runs (`peerpipe_std`, 4 KiB fragments, in three of them: 314-504 MB/s), with a
//! peak RSS of the message's two copies plus 3 MiB.
//!
//! ## Features
//! - `serial`: `open_serial`, a serial port as a transport (through `tokio-serial`), and
//!   `PipeHandler::start_serial`, which opens it again when it fails.

#![warn(missing_docs)]

mod guards;
mod handler;
mod listener;
mod net;
mod outgoing;
mod receive;
mod reconnect;
#[cfg(feature = "serial")]
mod serial;
mod state;
mod task;
#[cfg(feature = "tls")]
pub mod tls;
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
pub use peerpipe_host::{Error, HandlerStats, Item, Message, Status};
pub use peerpipe_host::{Progress, Reconnect, Transfer};
pub use peerpipe_host::{MAX_PAYLOAD, UNSENT_LIMIT};
#[cfg(feature = "serial")]
pub use serial::open_serial;

/// The default fragment size: the most message bytes one frame carries, and the size of
/// each receive slot. Messages of any length (up to [`MAX_PAYLOAD`]) travel in fragments of
/// at most this many bytes; the peer's own limit may cut them smaller. 1 KiB keeps an idle
/// default pipe under 14 KiB (its endpoint 12.75 KiB, 8 receive slots of 1 KiB most of it)
/// where 8 KiB fragments would make the endpoint 75.5 KiB; the crate docs give the
/// throughput it costs.
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

/// Received data a handler's queue holds for its application before it takes no more from
/// the endpoint (whose receive slots then fill, so that the peer waits), counting the
/// message being put together: the queue holds at most twice this, or one message when that
/// message alone is longer (a message is always delivered whole). 1 MiB, where
/// `peerpipe_std` has 16 MiB: a server runs thousands of pipes. The crate docs give the
/// whole bound.
pub const QUEUE_BYTES: usize = 1 << 20;
