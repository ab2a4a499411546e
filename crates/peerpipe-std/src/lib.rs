//! # peerpipe-std
//!
//! NVFlare's `PipeHandler` for threaded Rust applications, over real transports: an
//! in-memory pair, TCP, Unix domain sockets, serial ports, and a child process's
//! stdin/stdout. Each handler runs the sans-IO [`peerpipe_core`] endpoint on one I/O thread
//! that sleeps until the endpoint's next deadline or until bytes, commands or queue room
//! arrive: no polling interval, no added latency.
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
//! Capacities: messages carry up to [`MAX_PAYLOAD`] bytes with topics up to [`MAX_TOPIC`];
//! up to [`TX`] sends are in flight at once (more callers wait their turn) and up to [`RX`]
//! received items wait for the application.

#![warn(missing_docs)]

mod driver;
mod error;
mod handler;
mod message;
mod signal;
pub mod transport;

pub use error::Error;
pub use handler::PipeHandler;
pub use message::{Item, Message, Status};
pub use peerpipe_core::{
    CloseReason, Config, ConfigError, FailReason, GoneReason, MessageKind, MsgId, PeerState,
};
pub use signal::AbortSignal;
#[cfg(feature = "serial")]
pub use transport::SerialTransport;
pub use transport::{
    memory_pair, ChildTransport, Mode, StdioTransport, TcpTransport, Transport, UnixTransport,
};

/// The largest message data, in bytes.
pub const MAX_PAYLOAD: usize = 8 * 1024;
/// The longest topic, in bytes.
pub const MAX_TOPIC: usize = 64;
/// Received items the handler holds for the application.
pub const RX: usize = 32;
/// Sends in flight at once.
pub const TX: usize = 32;

const FRAME: usize = peerpipe_core::wire::max_encoded_len(MAX_PAYLOAD, MAX_TOPIC);

pub(crate) type CoreEndpoint = peerpipe_core::Endpoint<MAX_PAYLOAD, MAX_TOPIC, RX, TX, FRAME>;
