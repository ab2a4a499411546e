//! Transports: the original's `Pipe`, byte streams between two ends.
//!
//! A [`Transport`] is opened on the handler's I/O thread and becomes a [`Link`]. TCP, Unix
//! sockets and a child's pipes are non-blocking descriptors that the I/O thread polls, reads
//! and writes itself; the in-memory pair is a channel each way; other byte streams (a serial
//! port, this process's stdin/stdout, anything given to [`Link::from_stream`]) get a reader
//! thread that forwards what it reads into a channel; a transport that is not a byte stream
//! is bridged through [`Link::channel`] (NVFlare's FilePipe, in `peerpipe-nvflare`, is a
//! bridge thread that turns frames into files). When the stream ends or fails, the handler
//! reports the peer gone with the error as its cause: never a panic, never a hang.
//!
//! Reconnects: TCP and Unix socket connections reconnect by default when they break (see
//! [`Reconnect`]: the ACTIVE end dials again, the PASSIVE end keeps listening and takes the
//! peer's new connection), and the conversation goes on in the same session; a serial port
//! that fails is opened again at its path. A closed pipe, a dead child, the in-memory pair
//! and a transport whose reconnection is off end the handler's conversation when they break
//! (GONE). To talk again after GONE,
//! start a new handler on a new transport; the peer sees a new session and reports a
//! restart if it was still running.

mod accept;
#[cfg(unix)]
mod fd;
mod memory;
mod process;
mod reconnect;
#[cfg(feature = "serial")]
mod serial;
mod socket;
#[cfg(feature = "tls")]
mod tls;

pub(crate) use accept::{Accepted, Acceptor, Securer, Socket, StopAccept, Stream};
pub use memory::{memory_pair, MemoryTransport};
pub use process::{ChildExit, ChildTransport, StdioTransport};
pub use reconnect::Reconnect;
pub(crate) use reconnect::{Redial, Target};
#[cfg(feature = "serial")]
pub use serial::SerialTransport;
#[cfg(unix)]
pub(crate) use socket::bind_unix;
pub(crate) use socket::stream_link;
pub use socket::TcpTransport;
#[cfg(unix)]
pub use socket::UnixTransport;
#[cfg(feature = "tls")]
pub(crate) use tls::server_config;

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, Sender};

/// Bytes read at once by a reader thread.
const READ_CHUNK: usize = 16 * 1024;

/// Chunks a reader thread may queue ahead of the I/O thread: memory stays bounded.
const CHUNKS_IN_FLIGHT: usize = 64;

/// Which end of a pipe, as in NVFlare: the PASSIVE end waits for the ACTIVE one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connects (TCP, Unix) or spawns (child process); on a FilePipe, writes `y/` and
    /// reads `x/` (NVFlare's external script).
    Active,
    /// Listens and accepts; on a FilePipe, writes `x/`, reads `y/` and removes the pipe's
    /// directory on close (NVFlare's FL client).
    Passive,
}

/// Something a [`PipeHandler`](crate::PipeHandler) can talk through.
pub trait Transport: Send + 'static {
    /// Connects, accepts or spawns; runs on the handler's I/O thread, so it may block.
    fn open(self: Box<Self>) -> io::Result<Link>;

    /// What makes a blocked [`open`](Self::open) return early, if it can wait for long
    /// (e.g. for a peer to connect). The handler takes it at `start`, before `open` runs,
    /// and calls it on the thread that [`stop`](crate::PipeHandler::stop)s the handler while
    /// `open` has not returned: it must release what `open` holds (the listening TCP and
    /// Unix transports close their socket there, so the port is free when `stop` returns)
    /// and make `open` return an error soon. The handler then waits for `open` to return.
    ///
    /// The default is `None`: a handler stopped while its transport opens does not wait for
    /// it (its I/O thread ends once `open` returns).
    fn interrupter(&self) -> Option<Box<dyn FnOnce() + Send>> {
        None
    }

    /// Where a listening transport counts the connections it refuses (TLS handshakes that
    /// failed while `open` waits for a peer or while the handler waits for it to reconnect,
    /// strangers while a conversation is going on): the handler's
    /// [`refused_connections`](crate::HandlerStats::refused_connections).
    /// Taken at `start`, like [`interrupter`](Self::interrupter). The default is `None`.
    #[doc(hidden)]
    fn refusals(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
}

/// An open transport: where incoming bytes come from, where outgoing bytes go, and what to
/// do on close.
pub struct Link {
    pub(crate) io: LinkIo,
    pub(crate) closer: Option<Box<dyn FnOnce() + Send>>,
    /// How to get a new connection when this one breaks (TCP and Unix sockets).
    pub(crate) redial: Option<Redial>,
}

/// What a channel link carries: bytes, or why there will be no more. An empty chunk only
/// wakes the receiving I/O thread.
pub type Chunk = io::Result<Vec<u8>>;

/// The far end of a [`Link::channel`], for the code that bridges it to a real transport.
pub struct LinkEnds {
    /// Bytes for the handler, as they arrive (any split); an `Err` says the transport
    /// broke, with its cause (the handler reports GONE); an empty chunk is ignored.
    pub to_handler: Sender<Chunk>,
    /// Bytes the handler writes, one chunk per write; an `Err` says the handler closed its
    /// end (it stopped).
    pub from_handler: Receiver<Chunk>,
}

/// The two ways a link carries bytes.
pub(crate) enum LinkIo {
    /// Incoming chunks from a channel (the in-memory peer, or a reader thread over a blocking
    /// stream), outgoing bytes into a writer that may block. The I/O thread is woken through
    /// `wake`, a sender into `incoming`, so that it waits on that one channel only (the end
    /// of input is an `Err` chunk, not a disconnection).
    Channel {
        incoming: Receiver<Chunk>,
        wake: Sender<Chunk>,
        writer: Box<dyn Write + Send>,
    },
    /// Non-blocking file descriptors (sockets, a child's pipes) that the I/O thread polls,
    /// reads and writes itself, and that any thread may write without blocking: no reader
    /// thread, no hand-off between threads on the way in or out. Unix only; elsewhere these
    /// transports are streams with a reader thread.
    #[cfg(unix)]
    Fd {
        reader: Box<dyn fd::FdRead>,
        writer: Box<dyn fd::FdWrite>,
    },
}

#[cfg(unix)]
pub(crate) use fd::{duplex, FdRead, FdWrite};

/// A link over a socket's or a child's two ends: a stream with a reader thread and blocking
/// writes (on Unix, non-blocking descriptors the I/O thread polls itself: `fd::duplex`).
#[cfg(not(unix))]
pub(crate) fn duplex<R: Read + Send + 'static, W: Write + Send + 'static>(
    reader: R,
    writer: W,
) -> io::Result<Link> {
    Link::from_stream(reader, writer)
}

impl Link {
    /// A link over a blocking reader and a writer; a thread forwards what the reader reads.
    pub fn from_stream<R: Read + Send + 'static, W: Write + Send + 'static>(
        mut reader: R,
        writer: W,
    ) -> io::Result<Link> {
        let (tx, rx) = crossbeam_channel::bounded(CHUNKS_IN_FLIGHT);
        let tx_wake = tx.clone();
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
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // A read timeout (serial ports wake once a second): if the handler
                        // is gone, end this thread and release the port; an empty chunk is
                        // harmless to a live one.
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            match tx.try_send(Ok(Vec::new())) {
                                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
                                _ => continue,
                            }
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
            io: LinkIo::Channel {
                incoming: rx,
                wake: tx_wake,
                writer: Box::new(writer),
            },
            closer: None,
            redial: None,
        })
    }

    /// A link whose far end the caller drives, through the returned [`LinkEnds`]: the way
    /// to bridge a handler to a transport that is not a byte stream (NVFlare's FilePipe in
    /// `peerpipe-nvflare` is one). Nothing is buffered beyond the channels' contents; the
    /// bridge decides how much it takes.
    ///
    /// ```
    /// use peerpipe_std::{Config, Link, PipeHandler, Transport};
    ///
    /// struct Loopback;
    /// impl Transport for Loopback {
    ///     fn open(self: Box<Self>) -> std::io::Result<Link> {
    ///         let (link, ends) = Link::channel();
    ///         // Everything the handler writes comes back to it.
    ///         std::thread::spawn(move || {
    ///             for chunk in ends.from_handler.iter() {
    ///                 if ends.to_handler.send(chunk).is_err() {
    ///                     return;
    ///                 }
    ///             }
    ///         });
    ///         Ok(link)
    ///     }
    /// }
    /// let h = PipeHandler::new(Loopback, Config::default())?;
    /// h.start()?;
    /// h.stop(true);
    /// # Ok::<(), peerpipe_std::Error>(())
    /// ```
    pub fn channel() -> (Link, LinkEnds) {
        let (to_handler, incoming) = crossbeam_channel::unbounded();
        let (from_handler_tx, from_handler) = crossbeam_channel::unbounded();
        let link = Link {
            io: LinkIo::Channel {
                incoming,
                wake: to_handler.clone(),
                writer: Box::new(ChannelWriter(from_handler_tx)),
            },
            closer: None,
            redial: None,
        };
        let ends = LinkEnds {
            to_handler,
            from_handler,
        };
        (link, ends)
    }

    /// Adds an action run when the handler stops with `close_pipe` (e.g. a socket shutdown).
    pub fn with_closer(mut self, closer: impl FnOnce() + Send + 'static) -> Link {
        self.closer = Some(Box::new(closer));
        self
    }
}

/// A writer that sends each write as one chunk into a channel; dropped, it tells the
/// receiving end that nothing more will come.
pub(crate) struct ChannelWriter(pub(crate) Sender<Chunk>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer end closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.0.send(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "transport closed by the peer",
        )));
    }
}
