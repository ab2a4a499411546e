//! Non-blocking file descriptors that the I/O thread polls, reads and writes itself (Unix).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use super::{Link, LinkIo};

/// A readable non-blocking file descriptor.
pub(crate) trait FdRead: Read + AsRawFd + Send {}
impl<T: Read + AsRawFd + Send> FdRead for T {}

/// A writable non-blocking file descriptor.
pub(crate) trait FdWrite: Write + AsRawFd + Send {}
impl<T: Write + AsRawFd + Send> FdWrite for T {}

/// Sets `O_NONBLOCK` on a descriptor this crate owns alone (a socket, a child's pipe end).
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) on a descriptor owned by the caller; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A link over a socket's or a child's two ends: non-blocking descriptors that the handler's
/// I/O thread polls itself. Both are switched to non-blocking mode: they must belong to this
/// link alone.
pub(crate) fn duplex<R: FdRead + 'static, W: FdWrite + 'static>(
    reader: R,
    writer: W,
) -> io::Result<Link> {
    set_nonblocking(reader.as_raw_fd())?;
    set_nonblocking(writer.as_raw_fd())?;
    Ok(Link {
        io: LinkIo::Fd {
            reader: Box::new(reader),
            writer: Box::new(writer),
        },
        closer: None,
        redial: None,
    })
}
