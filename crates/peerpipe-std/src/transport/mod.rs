//! Transports: the original's `Pipe`, byte streams between two ends.
//!
//! A [`Transport`] is opened on the handler's I/O thread and becomes a [`Link`]: a channel of
//! incoming byte chunks and a writer. Byte-stream transports get a reader thread that forwards
//! what it reads; the in-memory pair needs none. When the stream ends or fails, the handler
//! reports the peer gone with the error as its cause: never a panic, never a hang.
//!
//! Reconnects: none. A broken TCP or Unix connection, a closed pipe or a dead child is the end
//! of that handler's conversation (GONE). To talk again, start a new handler on a new
//! transport; the peer sees a new session and reports a restart if it was still running.

mod memory;
mod process;
#[cfg(feature = "serial")]
mod serial;
mod socket;

pub use memory::{memory_pair, MemoryTransport};
pub use process::{ChildTransport, StdioTransport};
#[cfg(feature = "serial")]
pub use serial::SerialTransport;
pub use socket::{TcpTransport, UnixTransport};

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, Sender};

/// Bytes read at once by a reader thread.
const READ_CHUNK: usize = 16 * 1024;

/// Chunks a reader thread may queue ahead of the I/O thread: memory stays bounded.
const CHUNKS_IN_FLIGHT: usize = 64;

/// Which end of a pipe, as in NVFlare: the PASSIVE end waits for the ACTIVE one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connects (TCP, Unix) or spawns (child process).
    Active,
    /// Listens and accepts.
    Passive,
}

/// Something a [`PipeHandler`](crate::PipeHandler) can talk through.
pub trait Transport: Send + 'static {
    /// Connects, accepts or spawns; runs on the handler's I/O thread, so it may block.
    fn open(self: Box<Self>) -> io::Result<Link>;
}

/// An open transport: incoming chunks, a writer, and what to do on close.
pub struct Link {
    pub(crate) incoming: Receiver<io::Result<Vec<u8>>>,
    pub(crate) writer: Box<dyn Write + Send>,
    pub(crate) closer: Option<Box<dyn FnOnce() + Send>>,
}

impl Link {
    /// A link over a blocking reader and a writer; a thread forwards what the reader reads.
    pub fn from_stream<R: Read + Send + 'static, W: Write + Send + 'static>(
        mut reader: R,
        writer: W,
    ) -> io::Result<Link> {
        let (tx, rx) = crossbeam_channel::bounded(CHUNKS_IN_FLIGHT);
        std::thread::Builder::new()
            .name("peerpipe-reader".into())
            .spawn(move || {
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    let chunk = match reader.read(&mut buf) {
                        Ok(0) => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "transport closed by the peer",
                        )),
                        Ok(n) => Ok(buf[..n].to_vec()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
                            ) =>
                        {
                            continue
                        }
                        Err(e) => Err(e),
                    };
                    let end = chunk.is_err();
                    // A send error means the handler is gone: nobody needs the bytes any more.
                    if tx.send(chunk).is_err() || end {
                        return;
                    }
                }
            })?;
        Ok(Link {
            incoming: rx,
            writer: Box::new(writer),
            closer: None,
        })
    }

    /// Adds an action run when the handler stops with `close_pipe` (e.g. a socket shutdown).
    pub fn with_closer(mut self, closer: impl FnOnce() + Send + 'static) -> Link {
        self.closer = Some(Box::new(closer));
        self
    }
}

/// A writer that sends each write as one chunk into a channel.
pub(crate) struct ChannelWriter(pub(crate) Sender<io::Result<Vec<u8>>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer end closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
