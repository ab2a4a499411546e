//! # peerpipe-nvflare
//!
//! Talk to a real NVFlare process (2.8 and earlier, whose Client API uses a `PipeHandler`
//! over a `FilePipe`) from Rust: [`FilePipeTransport`] is NVFlare's FilePipe as a
//! [`peerpipe_std`] transport, so a `peerpipe_std::PipeHandler` on it is a drop-in peer of
//! the Python side, and [`fobs`] reads and writes the FOBS/msgpack payloads NVFlare puts in
//! its files. A program that does not talk to NVFlare does not need this crate.
//!
//! ```no_run
//! use std::time::Duration;
//! use peerpipe_nvflare::{fobs, FilePipeTransport};
//! use peerpipe_std::{Config, Message, Mode, PipeHandler};
//!
//! let pipe = FilePipeTransport::new("/tmp/nvflare", "task_pipe", Mode::Active);
//! let handler = PipeHandler::new(pipe, Config::default())?;
//! handler.start()?;
//! let body = fobs::encode(&fobs::Value::Map(vec![("round".into(), 1.into())])).unwrap();
//! let reply = handler.request(Message::request("train", body)?, Some(Duration::from_secs(30)), None)?;
//! println!("{:?}", fobs::decode(reply.data()));
//! # Ok::<(), peerpipe_std::Error>(())
//! ```
//!
//! NVFlare 2.9 dropped the pipe family; `docs/NVFLARE.md` in the repository describes the
//! mapping between files and frames in full.

#![warn(missing_docs)]

mod file_pipe;
pub mod fobs;
mod uuid;

pub use file_pipe::{FilePipeTransport, Rejected, Rejections};
