//! Waiting on a link of non-blocking descriptors (Unix): poll(2) on the reader, the writer
//! (while bytes wait for room) and a socket pair that other threads write to wake this one.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant as StdInstant;

use super::{WakeVia, POLL};
use crate::transport::{FdRead, FdWrite};

/// Bytes the I/O thread reads from a descriptor at once.
const READ_BUF: usize = 64 * 1024;

/// The link's descriptors, while it is up, the wake-up socket pair, and what was read.
pub(super) struct FdWait {
    reader: Option<Box<dyn FdRead>>,
    writer_fd: RawFd,
    wake: UnixStream,
    buf: Vec<u8>,
    len: usize,
}

impl FdWait {
    /// Waits on `reader` and `writer`; returns how other threads wake it.
    pub(super) fn new(
        reader: Box<dyn FdRead>,
        writer: &dyn FdWrite,
    ) -> io::Result<(Self, WakeVia)> {
        let (wake, waker) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        let wait = FdWait {
            reader: Some(reader),
            writer_fd: writer.as_raw_fd(),
            wake,
            buf: vec![0; READ_BUF],
            len: 0,
        };
        Ok((wait, WakeVia::Pipe(waker)))
    }

    /// The bytes read since the last call.
    pub(super) fn take_input(&mut self) -> &[u8] {
        let len = std::mem::take(&mut self.len);
        self.buf.get(..len).unwrap_or(&[])
    }

    /// The link is lost: stop polling its reader.
    pub(super) fn drop_reader(&mut self) {
        self.reader = None;
    }

    /// Sleeps until `until`, input, room to write (if `polls_out`) or a wake-up; reads what
    /// came. An error is the link's end.
    pub(super) fn sleep(&mut self, until: StdInstant, polls_out: bool) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.reader.as_ref().map_or(-1, |r| r.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                // Only while the link is up: a lost link drops its pending bytes.
                fd: if polls_out { self.writer_fd } else { -1 },
                events: libc::POLLOUT,
                revents: 0,
            },
        ];
        // Poll without sleeping for a moment first: the answer to what this thread
        // just sent usually comes within it, and is then taken without the cost of
        // a sleep and a wake-up (high on virtual machines).
        let poll_until = (StdInstant::now() + POLL).min(until);
        let mut ready = poll(&mut fds, StdInstant::now());
        while ready == 0 && StdInstant::now() < poll_until {
            std::thread::yield_now();
            ready = poll(&mut fds, StdInstant::now());
        }
        if ready == 0 {
            ready = poll(&mut fds, until);
        }
        if ready <= 0 {
            return Ok(());
        }
        if fds[0].revents != 0 {
            let mut sink = [0u8; 64];
            while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        }
        let Some(reader) = self.reader.as_mut().filter(|_| fds[1].revents != 0) else {
            return Ok(());
        };
        loop {
            let free = self.buf.get_mut(self.len..).unwrap_or(&mut []);
            let free_len = free.len();
            if free_len == 0 {
                return Ok(());
            }
            match reader.read(free) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "transport closed by the peer",
                    ));
                }
                Ok(n) => {
                    self.len += n;
                    // A short read took everything there was: the next poll says
                    // when more comes (saves a read that would only say EAGAIN).
                    if n < free_len {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// poll(2) until `until`, with a precise timeout where the platform has ppoll(2).
fn poll(fds: &mut [libc::pollfd; 3], until: StdInstant) -> i32 {
    let left = until.saturating_duration_since(StdInstant::now());
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        // SAFETY: `fds` is a valid array of 3 pollfd; `ts` outlives the call; no signal mask.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 3, &ts, std::ptr::null()) }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of 3 pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 3, ms) }
    }
}
