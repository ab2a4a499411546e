//! # peerpipe-std
//!
//! NVFlare's `PipeHandler` for threaded Rust applications, over real transports: an
//! in-memory pair, TCP, Unix domain sockets, serial ports and a child process's
//! stdin/stdout. Pick it for programs built on threads; `peerpipe-tokio` is the same API for
//! async programs, `peerpipe-nvflare` adds NVFlare's own FilePipe as a transport (a handler
//! becomes a drop-in peer of a Python NVFlare process), and any other byte stream plugs in
//! through [`Transport`] and [`Link`]. Each handler keeps the sans-IO [`peerpipe_core`]
//! endpoint behind a lock, with one I/O thread that waits until the endpoint's next deadline
//! or until bytes arrive; no polling interval.
//!
//! Latency: a message crosses as few threads as possible. The calling thread encodes and
//! writes its own message (no hand-off to the I/O thread); the I/O thread reads sockets and
//! pipes itself (no reader thread in between) and runs the callbacks, so a reply sent from
//! the message callback leaves in the same write as the request's acknowledgement; the ACK
//! of a reply rides with the requester's next send when it comes within 200 µs. Waiting
//! threads (the I/O thread, a caller blocked in [`PipeHandler::send_to_peer`] or
//! [`PipeHandler::request`]) poll for up to 20 µs and 100 µs respectively, yielding their
//! CPU between polls, before they sleep: a wake-up from sleep costs more than that on a
//! virtual machine ([`PipeHandler::set_spin`] turns this off). The I/O thread waits with
//! mio (epoll, kqueue) on Unix; elsewhere sockets and pipes get a reader thread. Round trips
//! through two handlers take a few microseconds (`cargo run --release --example rtt`); an
//! idle handler uses no CPU that `top` can see (`cargo run --release --example cpu`).
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use peerpipe_std::{ChildTransport, Config, Item, Message, PipeHandler, Status};
//!
//! // The parent runs a worker program and talks to it over its stdin/stdout.
//! let handler = PipeHandler::new(ChildTransport::new(Command::new("./worker")), Config::default())?;
//! handler.start()?;
//! let reply = handler.request(Message::request("train", b"round 1".to_vec())?, Some(Duration::from_secs(10)), None)?;
//! println!("worker answered {} bytes", reply.data().len());
//! while let Some(item) = handler.recv_timeout(Duration::from_secs(1)) {
//!     match item {
//!         Item::Message(m) => println!("{}: {:?}", m.topic(), m.data()),
//!         Item::Status(Status::End(_)) => break,
//!         Item::Status(other) => println!("peer: {other:?}"),
//!     }
//! }
//! handler.notify_end(b"done".to_vec())?;
//! handler.stop(true);
//! # Ok::<(), peerpipe_std::Error>(())
//! ```
//!
//! Throughput: [`PipeHandler::send_to_peer`] blocks its thread until the peer accepted the
//! message, so many sends at once need many threads. [`PipeHandler::send_pipelined`] lets
//! one thread keep many acknowledged sends in flight instead (up to [`TX`]; more wait for a
//! slot, bounded by [`MAX_WAITING`]) and take each outcome later from its [`PendingSend`],
//! the same outcome `send_to_peer` would have returned (`rtt`'s `pipelined_msgs_per_s`).
//!
//! Serving many peers: [`TcpTransport::listen`] (and [`UnixTransport::listen`]) accept one
//! connection; a [`PipeListener`] accepts them all, and yields one handler per peer that
//! connects, each with its own session and I/O thread. Stopping it (or dropping it) frees
//! the port at once (`cargo run --example server` has a complete server):
//!
//! ```
//! use std::time::Duration;
//! use peerpipe_std::{Config, Message, PipeHandler, PipeListener, TcpTransport};
//!
//! let listener = PipeListener::bind("127.0.0.1:0", Config::default())?;
//! let addr = listener.local_addr().unwrap();
//! let stopper = listener.stopper();
//! let server = std::thread::spawn(move || {
//!     let mut pipes = Vec::new();
//!     for pipe in listener.incoming() {
//!         let pipe = pipe?;
//!         // Handlers come not yet started: set the callbacks first.
//!         pipe.set_message_cb({
//!             let pipe = pipe.clone();
//!             move |req| {
//!                 let _ = pipe.send_no_wait(req.reply_to(req.data().to_vec()).unwrap());
//!             }
//!         });
//!         pipe.start()?;
//!         pipes.push(pipe);
//!     }
//!     pipes.iter().for_each(|p| p.stop(true));
//!     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! });
//! let client = PipeHandler::new(TcpTransport::connect(addr)?, Config::default())?;
//! client.start()?;
//! let reply = client.request(Message::request("echo", b"hi".to_vec())?, Some(Duration::from_secs(5)), None)?;
//! assert_eq!(reply.data(), b"hi");
//! client.stop(true);
//! stopper.stop(); // the port is free now; the server's loop ends
//! server.join().unwrap().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Reconnection: a [`TcpTransport`] or [`UnixTransport`] whose connection breaks gets a new
//! one (the ACTIVE end dials again with backoff and jitter, the PASSIVE end keeps listening),
//! and the conversation goes on in the same session: what was in flight is sent again at once,
//! delivered once, in order. The application sees [`Status::Reconnecting`] and
//! [`Status::Reconnected`]; the peer is GONE only when no connection comes back within
//! `heartbeat_timeout` (or [`Reconnect::give_up_after`]). [`Reconnect`] has the defaults, who
//! may replace a live connection, and what holds without TLS; [`Reconnect::OFF`] turns it off.
//! A [`PipeListener`] routes a client that reconnects to its old handler by the session its
//! first frame carries (a newcomer with an unknown session gets a new handler). Resends
//! caused by a new connection do not count against `max_resends`. A `SerialTransport`
//! whose device disappears is opened again when its path is back (same session). A child's
//! pipes and the in-memory pair end the conversation when they break (GONE).
//!
//! TLS (feature `tls`): without it, anyone who can reach a listening TCP port can talk to the
//! handler behind it. `TcpTransport::listen_tls` and `TcpTransport::connect_tls` (with a
//! `TlsServer` and a `TlsClient`, from PEM files or bytes) run the link over TLS 1.3
//! (rustls): the client checks the server's certificate, and the server may require a client
//! certificate signed by its CA (mutual authentication). A peer without an acceptable
//! certificate is refused, never silently: the listening end logs a warning, counts it in
//! [`HandlerStats::refused_connections`] and keeps listening (a conversation going on is
//! untouched); the refused client reports GONE with the refusal as its cause. Reconnection
//! makes a new handshake on each connection (`TcpTransport::listen_tls` has an example).
//!
//! Messages of any size: a message carries up to [`MAX_PAYLOAD`] bytes (4 GiB), END and
//! ABORT data too. One longer than [`FRAGMENT`] (4 KiB) travels in fragments, each
//! acknowledged, resent and bounded like a small message; the send succeeds once the peer's
//! endpoint accepted the whole message, and the receiver gets it whole (on the heap) or not
//! at all. The data is never copied whole: [`PipeHandler::send_to_peer`] keeps the message's
//! `Vec` until the outcome and encodes each fragment straight from it (a `bytes::Bytes`
//! that is the only handle to its buffer becomes that `Vec` without a copy). A peer that
//! accepts less (its [`Config::max_message`]) makes a longer send fail at once with
//! [`FailReason::TooLarge`]. [`PipeHandler::progress`] tells how many bytes of the send on
//! the wire the peer has acknowledged and how many of the message arriving have come.
//! `cargo run --release -p peerpipe-examples --example bulk` moves one message of 1 GiB and
//! compares it with a bare copy through the same kind of channel: on a busy 2-core machine
//! 0.43-0.70 GB/s, 31-50 % of the bare copy (which takes 2.4 to 2.6 times less CPU per byte:
//! no COBS, no CRC, one copy), with a peak RSS of the message's two copies plus 3 MiB.
//!
//! Capacities and bounds: topics up to [`MAX_TOPIC`] bytes; up to [`TX`] sends are in
//! flight at once (more callers wait their turn, first come, first served, within their own
//! timeout; at most [`MAX_WAITING`] sends that do not wait queue up, then
//! [`Error::QueueFull`]); the endpoint holds [`RX`] received fragments, which the I/O thread
//! takes at once into the application's queue (or the message being put together) while
//! that queue holds fewer than [`QUEUE_ITEMS`] items and [`QUEUE_BYTES`] bytes of data (a
//! message longer than that still gets through, alone); less than [`UNSENT_LIMIT`] plus one
//! frame of encoded bytes wait for a slow transport. So memory stays bounded whatever the
//! peer sends and however slowly the application reads: an idle handler holds less than
//! 64 KiB of heap (endpoint and driver, measured by `tests/memory.rs`: about 51 KiB over the
//! in-memory pair, 53 KiB over TCP, the eight receive slots of 4 KiB being most of it), a busy
//! one at most the messages themselves plus `QUEUE_BYTES` and its buffers (its output and
//! read buffers grow with the traffic, to `UNSENT_LIMIT` plus a frame and 64 KiB, and shrink
//! again when it stops).
//! [`PipeHandler::stats`] shows the counters and how full each of these is.
//!
//! Errors say what happened: [`Error::Failed`] with [`FailReason::NoSlot`] (the timeout
//! passed while waiting for a send slot: nothing was sent), [`FailReason::TimedOut`] (sent,
//! not acknowledged in time), [`FailReason::TooLarge`] (longer than the peer accepts),
//! [`Error::NoReply`] (the request was acknowledged, its reply did not come in time; a reply
//! that comes later is dropped and counted, never queued).

#![warn(missing_docs)]

mod driver;
mod handler;
mod listener;
mod pending;
mod signal;
pub mod transport;

pub use handler::PipeHandler;
pub use listener::{Incoming, ListenerStopper, PipeListener};
/// The sans-IO core, for its `Error` and wire types. Every time this crate takes is a
/// `std::time::Duration` (the [`Config`] fields too).
pub use peerpipe_core;
pub use peerpipe_core::{
    CloseReason, Config, ConfigError, FailReason, GoneReason, MessageKind, MsgId, PeerState,
};
pub use peerpipe_host::{
    new_session_id, Error, HandlerStats, IoCause, Item, Message, Status, FRAGMENT, FRAME,
    MAX_PAYLOAD, MAX_TOPIC, UNSENT_LIMIT,
};
#[cfg(feature = "tls")]
pub use peerpipe_host::{tls, TlsClient, TlsError, TlsServer};
pub use peerpipe_host::{Progress, Transfer};
pub use pending::PendingSend;
pub use signal::AbortSignal;
#[cfg(feature = "serial")]
pub use transport::SerialTransport;
#[cfg(unix)]
pub use transport::UnixTransport;
pub use transport::{
    memory_pair, ChildExit, ChildTransport, Link, LinkEnds, Mode, Reconnect, StdioTransport,
    TcpTransport, Transport,
};

/// Receive slots of the endpoint: fragments of up to [`FRAGMENT`] bytes that arrived and
/// wait for the I/O thread (which takes them at once, unless the application's queue is
/// full). They are most of an idle handler's memory (about 4.2 KiB each). The window the
/// peer may send ahead is these `RX` fragments plus the room of the application's queue (at
/// most 32 fragments in all): the I/O thread takes a burst in turns of `RX`, so that a
/// pipelining sender waits for one ACK per 32 small messages, not per 8. (`peerpipe-tokio`
/// has its own defaults: the README's "Capacities" explains every driver's.)
pub const RX: usize = 8;
/// Sends in flight at once (a send slot costs about 200 bytes: a message's data stays in
/// the application's buffer, which the handler holds until the outcome).
pub const TX: usize = 32;
/// Sends that do not wait ([`PipeHandler::send_no_wait`], [`PipeHandler::send_pipelined`])
/// queued for a send slot at most; one more is refused with [`Error::QueueFull`].
pub const MAX_WAITING: usize = 256;
/// Received items (messages and status changes) the application's queue holds at most;
/// then the handler takes nothing more from the peer until the application takes one.
/// The connection's own statuses ([`Status::Reconnecting`], [`Status::Reconnected`]) do not
/// count: at most one of each waits unread, since a break while a `Reconnected` is still
/// unread is merged into it (the application reads one `Reconnecting`, then one
/// `Reconnected`, however many cuts came in between; `HandlerStats::reconnects` counts
/// each).
pub const QUEUE_ITEMS: usize = 32;
/// Unread connection statuses the application's queue holds besides [`QUEUE_ITEMS`].
pub(crate) const LINK_STATUSES: usize = 2;
/// Data bytes the application's queue holds before the handler stops taking more from the
/// peer: the queue and the message being put together hold at most this plus one fragment,
/// or one message when that message alone is longer (a message is always delivered whole).
pub const QUEUE_BYTES: usize = 16 << 20;

pub(crate) type CoreEndpoint = peerpipe_host::HostEndpoint<RX, TX>;

/// A new endpoint on the heap (about 8.3 KiB per receive slot, plus the decoder's buffer of
/// one frame and about 200 bytes per send slot).
pub(crate) fn new_endpoint(config: Config, session: u32) -> Result<Box<CoreEndpoint>, ConfigError> {
    CoreEndpoint::new(config, session, peerpipe_core::Instant::ZERO).map(Box::new)
}
