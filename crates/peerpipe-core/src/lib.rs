//! # peerpipe-core
//!
//! The no_std, allocation-free, sans-IO core of peerpipe: two peers exchange topic-tagged
//! requests and replies; the sender learns whether the peer's endpoint accepted each one
//! (acknowledged, resent on loss, bounded by a timeout); heartbeats detect a peer that is
//! gone; END and ABORT end a conversation reliably. It does what NVIDIA NVFlare's
//! `PipeHandler` does, as a state machine that never reads a clock, never blocks, never
//! allocates and never panics on any input.
//!
//! An [`Endpoint`] takes the current time and incoming bytes (or decoded frames) as input and
//! hands out frames to transmit, events, and the instant at which it next needs the time.
//! Drivers (threads, tokio, a microcontroller's UART) own the I/O and the clock.
//!
//! Pick this crate to write a driver for a new platform or transport; an application uses a
//! driver instead: `peerpipe-std` (threads), `peerpipe-tokio` (async), `peerpipe-embedded`
//! (firmware on a UART).
//!
//! ## What "delivered" means
//! [`Outcome::Delivered`] means the peer's endpoint accepted the message into its receive
//! queue: it will be handed to the peer's application exactly once, in the order sent, unless
//! that application stops its endpoint first. (One corner: an item held behind a gap is
//! released when the sender's floor moves past the gap, when the peer restarts, or when it is
//! declared gone; with `heartbeat_timeout` 0 and a sender that vanishes for good, it waits.) It does not mean the application processed it
//! (replies are for that). A failed send may still have arrived (its acknowledgement may
//! have been lost), so make requests idempotent where that matters.
//!
//! ## A complete run loop
//! Two endpoints wired back to back in one thread, with virtual time that jumps to the next
//! deadline. A real driver does the same with a transport and a clock.
//!
//! ```
//! use peerpipe_core::{Config, Endpoint, Event, Instant, Message, Outcome};
//!
//! let mut now = Instant::ZERO;
//! let mut a: Endpoint = Endpoint::new(Config::default(), 0xA, now).unwrap();
//! let mut b: Endpoint = Endpoint::new(Config::default(), 0xB, now).unwrap();
//! let id = a.send(now, Message::request("ping", b"hello").unwrap(), None).unwrap();
//!
//! let mut buf = [0u8; Endpoint::<128, 32, 4, 4, 223>::MAX_FRAME_LEN];
//! let (mut delivered, mut received) = (false, None);
//! while !(delivered && received.is_some()) {
//!     // 1. Time: act on every deadline that has come.
//!     if a.poll_timeout().is_some_and(|t| t <= now) { a.handle_timeout(now); }
//!     if b.poll_timeout().is_some_and(|t| t <= now) { b.handle_timeout(now); }
//!     // 2. Events: hand them to the application (which may send in reply).
//!     while let Some(event) = a.poll_event() {
//!         if let Event::SendOutcome { id: done, outcome } = event {
//!             assert_eq!((done, outcome), (id, Outcome::Delivered));
//!             delivered = true;
//!         }
//!     }
//!     while let Some(event) = b.poll_event() {
//!         if let Event::Message(m) = event {
//!             received = Some(m);
//!         }
//!     }
//!     // 3. Output: drain frames into the transport (here: straight into the other side).
//!     //    Last, because taking events and sending both make frames due.
//!     let mut moved = false;
//!     while let Some(n) = a.poll_transmit(now, &mut buf).unwrap() {
//!         b.handle_bytes(now, &buf[..n]);
//!         moved = true;
//!     }
//!     while let Some(n) = b.poll_transmit(now, &mut buf).unwrap() {
//!         a.handle_bytes(now, &buf[..n]);
//!         moved = true;
//!     }
//!     // 4. Sleep until the next deadline (or until input arrives).
//!     if !moved {
//!         now = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min().unwrap();
//!     }
//! }
//! let m = received.unwrap();
//! assert_eq!((m.topic(), m.data()), ("ping", &b"hello"[..]));
//! ```
//!
//! ## Messages of any size
//! A message longer than one frame (`PAYLOAD` bytes here, and what the peer announces it
//! takes) travels in fragments: each one sequenced, acknowledged and resent like a whole
//! message, within the peer's window (its free receive slots and the bytes they hold). The
//! sender learns the outcome of the whole message; the receiver gets [`Event::Part`]s in
//! order, or an [`Event::Cut`] when the message will not be completed. Nothing waits for
//! the whole message anywhere: with [`Endpoint::send_from`] the bytes stay where the
//! application keeps them (a [`Source`]: flash, a file, a generator) and are read a
//! fragment at a time, so a Cortex-M0 can send and receive messages far larger than its RAM.
//!
//! ```
//! use peerpipe_core::wire::Item;
//! use peerpipe_core::{Config, Endpoint, Event, Instant, MsgId, Outcome, Source};
//!
//! /// A 10 000-byte message generated on the fly: it is never in memory as a whole.
//! struct Counting([u8; 128]);
//! impl Source for Counting {
//!     fn read(&mut self, _id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
//!         let buf = self.0.get_mut(..len)?;
//!         for (i, b) in buf.iter_mut().enumerate() {
//!             *b = (offset as usize + i) as u8;
//!         }
//!         Some(buf)
//!     }
//! }
//!
//! let now = Instant::ZERO;
//! let mut a: Endpoint = Endpoint::new(Config::default(), 0xA, now).unwrap();
//! let mut b: Endpoint = Endpoint::new(Config::default(), 0xB, now).unwrap();
//! let id = a.send_from(now, Item::Request { topic: "fw" }, 10_000, None).unwrap();
//!
//! let (mut source, mut buf) = (Counting([0; 128]), [0u8; 223]);
//! let (mut received, mut outcome) = (0u64, None);
//! while outcome.is_none() {
//!     while let Some(n) = a.poll_transmit_from(now, &mut buf, &mut source).unwrap() {
//!         b.handle_bytes(now, &buf[..n]);
//!     }
//!     while let Some(n) = b.poll_transmit(now, &mut buf).unwrap() {
//!         a.handle_bytes(now, &buf[..n]);
//!     }
//!     while let Some(event) = b.poll_event() {
//!         if let Event::Part(part) = event {
//!             // Consume it as it comes: check it, write it to flash, hash it...
//!             assert_eq!(part.offset(), received);
//!             assert!(part.data().iter().zip(received..).all(|(b, i)| *b == i as u8));
//!             received += part.data().len() as u64;
//!         }
//!     }
//!     while let Some(event) = a.poll_event() {
//!         if let Event::SendOutcome { id: done, outcome: o } = event {
//!             assert_eq!(done, id);
//!             outcome = Some(o);
//!         }
//!     }
//! }
//! assert_eq!((received, outcome), (10_000, Some(Outcome::Delivered)));
//! ```
//!
//! ## Modules
//! - [`wire`]: frames, their byte layout, COBS framing with CRC-32C, the stream decoder.
//! - The state machine ([`Endpoint`]) with its send slots (messages, and the fragments cut
//!   from them in flight), receive queue and timer table.
//!
//! `docs/PROTOCOL.md` in the repository specifies the wire format and the state machine.
//!
//! ## Features
//! - `defmt`: derives `defmt::Format` on the public types.
//! - `hardware-crc`: CRC-32C through the CPU's instruction on x86_64 (SSE4.2) and aarch64,
//!   detected at run time by the `crc32c` crate, which needs `std` (hosts; `peerpipe-host`
//!   turns it on). Same checksums, so the same wire; no change on other targets.

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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod const_msg;
mod endpoint;
mod error;
mod event;
mod event_ref;
mod machine;
mod message;
mod part;
mod recv;
mod rtt;
mod send;
mod slots;
mod stats;
mod time;
mod timer;
pub mod wire;

pub use config::{Config, ConfigError};
pub use endpoint::Endpoint;
pub use error::{CloseReason, Error, FailReason, GoneReason};
pub use event::{Event, Outcome, PeerState};
pub use event_ref::{EventRef, MessageRef, PartRef};
pub use message::{validate_topic, Message, MessageKind, MsgId, RESERVED_TOPICS};
pub use part::{CutReason, Part, PartKind};
pub use send::{NoSource, Source};
pub use stats::{Counter, Stats};
pub use time::{Duration, Instant};
