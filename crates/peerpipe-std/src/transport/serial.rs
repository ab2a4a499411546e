//! A serial port, through the `serialport` crate.

use std::io;
use std::time::Duration;

use super::{Link, Reconnect, Redial, Transport};

/// A serial port (8N1) at a baud rate. Both ends are symmetric: there is no ACTIVE or PASSIVE.
///
/// When the port fails (its device disappears: a USB adapter unplugged), the handler opens
/// the same path again, as [`Reconnect`] says (default [`Reconnect::ON`]: at once, then
/// with backoff and jitter, until the device is back; the conversation goes on in the same
/// session, reported as [`Status::Reconnecting`](crate::Status::Reconnecting) and
/// [`Status::Reconnected`](crate::Status::Reconnected); GONE only when nothing came from
/// the peer for `heartbeat_timeout`, or after `give_up_after`). [`Reconnect::OFF`]: a
/// failed port is GONE at once. Only the first open is not retried.
pub struct SerialTransport {
    path: String,
    baud: u32,
    reconnect: Reconnect,
}

impl SerialTransport {
    /// The port at `path` (e.g. `/dev/ttyUSB0`) at `baud` bits per second.
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        SerialTransport {
            path: path.into(),
            baud,
            reconnect: Reconnect::default(),
        }
    }

    /// What to do when the port fails (default [`Reconnect::ON`]: open the path again;
    /// `connect_timeout` and `probation` do not apply).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = policy;
        self
    }
}

/// Opens the port at `path` as a link.
fn open(path: &str, baud: u32) -> io::Result<Link> {
    // Reads wake at least once a second; the reader thread just reads again.
    let port = serialport::new(path, baud)
        .timeout(Duration::from_secs(1))
        .open()?;
    let reader = port.try_clone()?;
    Link::from_stream(reader, port)
}

impl Transport for SerialTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let mut link = open(&self.path, self.baud)?;
        if self.reconnect.enabled {
            let (path, baud) = (self.path, self.baud);
            let reopen = Box::new(move || open(&path, baud));
            link.redial = Some(Redial::Reopen(reopen, self.reconnect));
        }
        Ok(link)
    }
}
