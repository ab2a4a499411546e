//! A serial port, through the `serialport` crate.

use std::io;
use std::time::Duration;

use super::{Link, Transport};

/// A serial port (8N1) at a baud rate. Both ends are symmetric: there is no ACTIVE or PASSIVE.
pub struct SerialTransport {
    path: String,
    baud: u32,
}

impl SerialTransport {
    /// The port at `path` (e.g. `/dev/ttyUSB0`) at `baud` bits per second.
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        SerialTransport {
            path: path.into(),
            baud,
        }
    }
}

impl Transport for SerialTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        // Reads wake at least once a second; the reader thread just reads again.
        let port = serialport::new(&self.path, self.baud)
            .timeout(Duration::from_secs(1))
            .open()?;
        let reader = port.try_clone()?;
        Link::from_stream(reader, port)
    }
}
