//! A pseudo-terminal pair in raw mode, for serial-port tests (Unix). Shared with the CLI's and
//! peerpipe-tokio's serial tests through `#[path]` (not part of `common`, which tests
//! without `libc` include too).

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

/// A pseudo-terminal pair in raw mode: the master's fd and the slave's path (the slave fd is
/// kept open until dropped, so that the master does not read EIO before the port opens).
pub struct Pty {
    /// The master end, which the test reads and writes.
    pub master: File,
    /// The slave end, kept open (some tests only hold it).
    #[allow(dead_code)]
    pub slave: File,
    /// The slave's path, to open as a serial port.
    pub path: String,
}

/// A new pseudo-terminal pair in raw mode.
pub fn open_pty() -> Pty {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: out-pointers to two ints; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            // `*mut` where Linux takes `*const` and macOS `*mut`: null either way.
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: fd is an open terminal; `t` is a plain C struct filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut t), 0);
            libc::cfmakeraw(&mut t);
            assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &t), 0);
        }
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the buffer and its length match.
    let rc = unsafe { libc::ttyname_r(slave, name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0, "ttyname_r");
    // SAFETY: ttyname_r wrote a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: openpty gave us these fds; each File takes sole ownership of one.
    let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
    Pty {
        master,
        slave,
        path,
    }
}

/// Copies bytes from one pty master to another on a thread until stopped (or a read
/// fails): a cable that can be pulled out.
pub struct Bridge {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bridge {
    /// Starts copying from `from` to `to`.
    #[allow(dead_code)]
    pub fn new(mut from: File, mut to: File) -> Bridge {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let mut p = libc::pollfd {
                    fd: from.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, its count 1.
                if unsafe { libc::poll(&mut p, 1, 20) } <= 0 {
                    continue;
                }
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Bridge {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops copying; the thread has dropped its ends when this returns.
    #[allow(dead_code)]
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A null-modem cable between two pseudo-terminals' masters: a [`Bridge`] each way.
pub struct Cable(Bridge, Bridge);

impl Cable {
    /// Plugs `a`'s master into `b`'s.
    #[allow(dead_code)]
    pub fn new(a: &Pty, b: &Pty) -> Cable {
        let (a1, a2) = (a.master.try_clone().unwrap(), a.master.try_clone().unwrap());
        let (b1, b2) = (b.master.try_clone().unwrap(), b.master.try_clone().unwrap());
        Cable(Bridge::new(a1, b1), Bridge::new(b2, a2))
    }

    /// Pulls the cable out: nothing crosses, and its copies of the masters are closed.
    #[allow(dead_code)]
    pub fn unplug(self) {
        self.0.stop();
        self.1.stop();
    }
}

/// Points the symlink `link` at `target` (atomically: a new link renamed over the old).
#[allow(dead_code)]
pub fn relink(target: &str, link: &std::path::Path) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}
