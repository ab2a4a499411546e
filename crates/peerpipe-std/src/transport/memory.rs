//! Two ends of a pipe inside one process.

use std::io;

use crossbeam_channel::{Receiver, Sender};

use super::{ChannelWriter, Chunk, Link, LinkIo, Transport};

/// One end of an in-memory pipe, from [`memory_pair`]. Frames go straight into the peer's
/// channel: no thread, no copy beyond one per batch of frames.
pub struct MemoryTransport {
    to_peer: ChannelWriter,
    from_peer: Receiver<Chunk>,
    /// Feeds `from_peer` too: the handler's wake-ups travel with the peer's bytes.
    wake: Sender<Chunk>,
}

/// Two connected in-memory transports (the original's `MemoryPipe`). Dropping one end (a
/// stop with `close_pipe`) makes the other report the peer gone.
pub fn memory_pair() -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = crossbeam_channel::unbounded();
    let (b_tx, b_rx) = crossbeam_channel::unbounded();
    (
        MemoryTransport {
            to_peer: ChannelWriter(a_tx.clone()),
            from_peer: b_rx,
            wake: b_tx.clone(),
        },
        MemoryTransport {
            to_peer: ChannelWriter(b_tx),
            from_peer: a_rx,
            wake: a_tx,
        },
    )
}

impl Transport for MemoryTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let MemoryTransport {
            to_peer,
            from_peer,
            wake,
        } = *self;
        Ok(Link {
            io: LinkIo::Channel {
                incoming: from_peer,
                wake,
                writer: Box::new(to_peer),
            },
            closer: None,
            redial: None,
        })
    }
}
