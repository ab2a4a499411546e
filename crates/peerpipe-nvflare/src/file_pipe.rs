//! NVFlare's `FilePipe`: talk to a real NVFlare process (its Client API's `PipeHandler`)
//! through a directory.
//!
//! The layout is NVFlare's: `ROOT/NAME/{x,y,t}`. The ACTIVE end writes into `y/` and reads
//! `x/`, the PASSIVE end the other way round; a file is written into `t/` and renamed into
//! place; it counts as read once it is gone. A message is a file named `REQ.<topic>.<uuid>` or
//! `REP.<topic>.<req_uuid>.<uuid>` holding a FOBS header and a msgpack body (see
//! [`fobs`](crate::fobs)); heartbeats, END and ABORT are requests on `_HEARTBEAT_`, `_END_` and
//! `_ABORT_`.
//!
//! The handler stays as it is: [`FilePipeTransport::open`](Transport::open) starts a bridge
//! thread that turns the handler's frames into files and files into frames. The handler's
//! message ids (sequence numbers) are mapped to NVFlare's uuid strings both ways, so replies
//! match their requests on either side. A sent message is acknowledged when its file has
//! disappeared; a message read from the directory is removed once the handler accepted all
//! of it, so a full receive queue leaves files where they are (backpressure) and NVFlare's
//! sender sees them unread. A message's data is the msgpack body; data that is not exactly
//! one msgpack value goes out as one msgpack bin (Python `bytes`), empty data as `None`.
//!
//! Messages of any size go both ways (up to 4 GiB - 1 to NVFlare, up to what the handler
//! takes from it): the handler's fragments are put together into one file, written as
//! NVFlare's `fobs.dumpf` writes it (a bytes or str value of 10 MiB or more in a datum
//! section after the body); a file read is cut into fragments for the handler. The bridge
//! holds a message in memory while it puts it together or delivers it.
//!
//! Where the original is fragile, this end is not: a file it cannot take (a bad name, no
//! FOBS header, truncated or not msgpack, a FOBS-only type such as a tuple, larger than the
//! handler takes) is deleted and counted in [`Rejections`] with its reason, and reading goes
//! on; END and ABORT stay on disk until read or until the handler gives up on them
//! (NVFlare's own `notify_end` withdraws its file after 0.1 s). `docs/NVFLARE.md` describes
//! the mapping in full.

mod bridge;
mod names;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use peerpipe_std::{Link, Mode, Transport};

/// Tries to remove the pipe directory on close while the peer may still write into it.
const REMOVE_ATTEMPTS: usize = 20;

/// Rejected files remembered by [`Rejections::recent`].
const RECENT_REJECTIONS: usize = 64;

/// One end of an NVFlare FilePipe, under `root/name`.
///
/// ```no_run
/// use std::time::Duration;
/// use peerpipe_nvflare::{fobs, FilePipeTransport};
/// use peerpipe_std::{Config, Message, Mode, PipeHandler};
///
/// // The external script's end (NVFlare's FlareAgent is ACTIVE, the FL client PASSIVE).
/// let pipe = FilePipeTransport::new("/tmp/pipe_root", "task", Mode::Active)
///     .file_check_interval(Duration::from_millis(10));
/// let rejected = pipe.rejections();
/// let handler = PipeHandler::new(pipe, Config::default())?;
/// handler.start()?;
/// let data = fobs::encode(&fobs::Value::from("hello")).expect("a str always encodes");
/// let reply = handler.request(Message::request("ping", data)?, Some(Duration::from_secs(10)), None)?;
/// println!("{:?}, {} files rejected", fobs::decode(reply.data()), rejected.count());
/// # Ok::<(), peerpipe_std::Error>(())
/// ```
pub struct FilePipeTransport {
    root: PathBuf,
    name: String,
    mode: Mode,
    file_check_interval: Duration,
    heartbeat_interval: Duration,
    rejections: Rejections,
}

impl FilePipeTransport {
    /// The `mode` end of the pipe `name` under `root` (NVFlare's `FilePipe(mode, root)` opened
    /// with `name`). `root` is created when missing, and never removed.
    pub fn new(root: impl Into<PathBuf>, name: impl Into<String>, mode: Mode) -> Self {
        FilePipeTransport {
            root: root.into(),
            name: name.into(),
            mode,
            file_check_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(5),
            rejections: Rejections::default(),
        }
    }

    /// How often the directory is checked for new files and for files the peer has read
    /// (default 100 ms, as NVFlare's `file_check_interval`).
    pub fn file_check_interval(mut self, interval: Duration) -> Self {
        self.file_check_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The longest time without a file to the peer: a heartbeat file is written after it
    /// even while the handler only acknowledges (NVFlare counts only files as signs of
    /// life). Default 5 s, NVFlare's default `heartbeat_interval`; use the handler's.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// A handle on the files this end refused; it stays valid after the transport is
    /// moved into a handler.
    pub fn rejections(&self) -> Rejections {
        self.rejections.clone()
    }

    /// The pipe's directory, `root/name`.
    pub fn pipe_dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }
}

impl Transport for FilePipeTransport {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let name_ok = !self.name.is_empty()
            && self.name != "."
            && self.name != ".."
            && !self.name.contains(['/', '\\']);
        if !name_ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid FilePipe name {:?}", self.name),
            ));
        }
        let dir = self.pipe_dir();
        for sub in ["x", "y", "t"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let (link, ends) = Link::channel();
        let bridge = bridge::Bridge::new(bridge::Setup {
            dir: dir.clone(),
            mode: self.mode,
            file_check_interval: self.file_check_interval,
            heartbeat_interval: self.heartbeat_interval,
            rejections: self.rejections.clone(),
            to_handler: ends.to_handler,
            from_handler: ends.from_handler,
        });
        let thread: JoinHandle<()> = std::thread::Builder::new()
            .name("peerpipe-file-pipe".into())
            .spawn(move || bridge.run())?;
        let mode = self.mode;
        Ok(link.with_closer(move || close(thread, &dir, mode)))
    }
}

/// Closes the pipe as NVFlare does, once the bridge has stopped (the handler has dropped its
/// end of the link already): the PASSIVE end removes `root/name`, the ACTIVE end leaves it.
fn close(bridge: JoinHandle<()>, dir: &Path, mode: Mode) {
    let _ = bridge.join();
    if mode != Mode::Passive {
        return;
    }
    // The peer may be writing a file meanwhile ("directory not empty"): try again.
    let mut last = None;
    for _ in 0..REMOVE_ATTEMPTS {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => last = Some(e),
        }
        std::thread::yield_now();
    }
    if let Some(e) = last {
        log::warn!("peerpipe: cannot remove {}: {e}", dir.display());
    }
}

/// A file this end refused: deleted from the directory, never delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file's name.
    pub file: String,
    /// Why it was refused.
    pub reason: String,
}

/// The files a [`FilePipeTransport`] refused: a count and the most recent ones.
#[derive(Debug, Clone, Default)]
pub struct Rejections(Arc<Mutex<RejectLog>>);

#[derive(Debug, Default)]
struct RejectLog {
    count: u64,
    recent: VecDeque<Rejected>,
}

impl Rejections {
    /// How many files were refused since the transport was made.
    pub fn count(&self) -> u64 {
        self.0.lock().map_or(0, |l| l.count)
    }

    /// The most recently refused files (up to 64), oldest first.
    pub fn recent(&self) -> Vec<Rejected> {
        self.0
            .lock()
            .map(|l| l.recent.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, file: &str, reason: String) {
        log::warn!("peerpipe: FilePipe file {file} refused and removed: {reason}");
        if let Ok(mut l) = self.0.lock() {
            l.count += 1;
            if l.recent.len() == RECENT_REJECTIONS {
                l.recent.pop_front();
            }
            l.recent.push_back(Rejected {
                file: file.to_owned(),
                reason,
            });
        }
    }
}
