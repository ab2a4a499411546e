//! Two ends of a pipe inside one process.

use std::io;

use crossbeam_channel::{Receiver, Sender};

use super::{ChannelWriter, Link, Transport};

/// One end of an in-memory pipe, from [`memory_pair`]. Frames go straight into the peer's
/// channel: no thread, no copy beyond one per batch of frames.
pub struct MemoryTransport {
    to_peer: Sender<io::Result<Vec<u8>>>,
    from_peer: Receiver<io::Result<Vec<u8>>>,
}

/// Two connected in-memory transports (the original's `MemoryPipe`). Dropping one end (a
/// stop with `close_pipe`) makes the other report the peer gone.
pub fn memory_pair() -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = crossbeam_channel::unbounded();
    let (b_tx, b_rx) = crossbeam_channel::unbounded();
    (
        MemoryTransport {
            to_peer: a_tx,
            from_peer: b_rx,
        },
        MemoryTransport {
            to_peer: b_tx,
            from_peer: a_rx,
        },
    )
}

impl Transport for MemoryTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        Ok(Link {
            incoming: self.from_peer,
            writer: Box::new(ChannelWriter(self.to_peer)),
            closer: None,
        })
    }
}
