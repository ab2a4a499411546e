//! The bridge thread: the handler's frames become files, files become frames.
//!
//! Towards the handler the bridge is a peer endpoint with its own session: it sends DATA
//! frames for the files it reads (its own sequence numbers, a file's message cut into
//! fragments), HEARTBEAT frames with its capabilities and for NVFlare's heartbeat files, and
//! ACK frames for the handler's fragments: each fragment but a message's last as soon as it
//! is put together with the ones before, the last once the message's file is gone (read).
//!
//! `to_disk` handles the handler's messages (fragments to files), `from_disk` the peer's
//! files (files to fragments).

mod from_disk;
mod to_disk;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use peerpipe_core::wire::{self, Ack, Body, Caps, Decoder, Frag, Frame, Heartbeat, Item};

use super::names;
use super::Rejections;
use crate::fobs;
use peerpipe_std::transport::Chunk;
use peerpipe_std::{Mode, FRAGMENT, FRAME, MAX_TOPIC};

use from_disk::{InFile, Sent};
use to_disk::{Assembly, OutFile};

/// The longest message the bridge takes from the handler (announced as its `max_message`):
/// the longest msgpack bin, as which data that is not one msgpack value goes out.
pub(super) const MAX_MESSAGE: u64 = u32::MAX as u64;

/// How often a DATA frame the handler has not acknowledged is sent again.
const RESEND: Duration = Duration::from_millis(200);

/// Message ids remembered for matching replies, each way.
const IDS_KEPT: usize = 4096;

/// What the bridge starts from.
pub(super) struct Setup {
    pub(super) dir: PathBuf,
    pub(super) mode: Mode,
    pub(super) file_check_interval: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) rejections: Rejections,
    pub(super) to_handler: Sender<Chunk>,
    pub(super) from_handler: Receiver<Chunk>,
}

/// A bounded two-way map between our sequence numbers and NVFlare's uuid strings.
#[derive(Default)]
struct IdMap {
    by_seq: HashMap<u64, String>,
    by_uuid: HashMap<String, u64>,
    order: VecDeque<u64>,
}

impl IdMap {
    fn insert(&mut self, seq: u64, uuid: String) {
        if self.order.len() == IDS_KEPT {
            if let Some(old) = self.order.pop_front() {
                if let Some(u) = self.by_seq.remove(&old) {
                    self.by_uuid.remove(&u);
                }
            }
        }
        self.by_uuid.insert(uuid.clone(), seq);
        self.by_seq.insert(seq, uuid);
        self.order.push_back(seq);
    }
}

/// Why the bridge stops.
enum Stop {
    /// The handler dropped its end.
    Handler,
    /// The directory broke: reported to the handler as the transport's error.
    Pipe(io::Error),
}

pub(super) struct Bridge {
    read_dir: PathBuf,
    write_dir: PathBuf,
    tmp_dir: PathBuf,
    file_check_interval: Duration,
    heartbeat_interval: Duration,
    rejections: Rejections,
    to_handler: Sender<Chunk>,
    from_handler: Receiver<Chunk>,
    /// This bridge's session, as the handler sees it.
    session: u32,
    /// The handler's session, once it sent a frame.
    handler_session: Option<u32>,
    /// What the handler receives, from its heartbeats: no DATA goes to it before.
    handler_caps: Option<Caps>,

    // The handler's messages (outgoing files): see `to_disk`.
    /// Every handler seq below this is acknowledged, or given up by the handler.
    ack_next: u64,
    /// Handler seqs above `ack_next` acknowledged.
    confirmed: BTreeSet<u64>,
    /// The handler's messages on disk, not read yet, by the seq of their last fragment.
    on_disk: BTreeMap<u64, OutFile>,
    /// The next handler seq to take: the fragments below are taken, or given up.
    expected: u64,
    /// The handler's message being put together from its fragments.
    assembly: Option<Assembly>,
    /// An ACK is due (fragments were taken).
    ack_due: bool,
    /// Our requests' uuids, for the peer's replies.
    our_ids: IdMap,
    heartbeat_file: Option<PathBuf>,
    last_write: Instant,

    // The peer's files (incoming messages): see `from_disk`.
    /// The seq of the next message's first fragment.
    next_seq: u64,
    /// Files read and not yet delivered whole, in seq order.
    incoming: VecDeque<InFile>,
    /// Fragments sent and not acknowledged.
    unacked: BTreeMap<u64, Sent>,
    /// No fragment at or above this seq was sent yet.
    fresh: u64,
    /// The peer's request uuids by the id we gave them, for the handler's replies.
    peer_ids: IdMap,
    /// The room and window the handler last announced.
    handler_room: u32,
    handler_window: u32,
}

impl Bridge {
    pub(super) fn new(s: Setup) -> Self {
        let (read, write) = match s.mode {
            Mode::Active => ("x", "y"),
            Mode::Passive => ("y", "x"),
        };
        Bridge {
            read_dir: s.dir.join(read),
            write_dir: s.dir.join(write),
            tmp_dir: s.dir.join("t"),
            file_check_interval: s.file_check_interval,
            heartbeat_interval: s.heartbeat_interval,
            rejections: s.rejections,
            to_handler: s.to_handler,
            from_handler: s.from_handler,
            session: peerpipe_std::new_session_id(),
            handler_session: None,
            handler_caps: None,
            ack_next: 0,
            confirmed: BTreeSet::new(),
            on_disk: BTreeMap::new(),
            expected: 0,
            assembly: None,
            ack_due: false,
            our_ids: IdMap::default(),
            heartbeat_file: None,
            last_write: Instant::now(),
            next_seq: 0,
            incoming: VecDeque::new(),
            unacked: BTreeMap::new(),
            fresh: 0,
            peer_ids: IdMap::default(),
            handler_room: 0,
            handler_window: 0,
        }
    }

    /// Works until the handler drops its end or the directory breaks.
    pub(super) fn run(mut self) {
        let stop = self.work();
        if let Stop::Pipe(e) = stop {
            // Whatever broke the pipe (a write, a scan), what was read first is acknowledged.
            self.check_read();
            log::warn!("peerpipe: FilePipe broken: {e}");
            let _ = self.to_handler.send(Err(e));
        }
        // Our unread files would be stale news to a later reader of this pipe.
        for f in std::mem::take(&mut self.on_disk).into_values() {
            let _ = fs::remove_file(f.path);
        }
        if let Some(hb) = self.heartbeat_file.take() {
            let _ = fs::remove_file(hb);
        }
    }

    fn work(&mut self) -> Stop {
        let mut decoder = Box::new(Decoder::<FRAME>::new());
        let mut next_scan = Instant::now();
        loop {
            match self
                .from_handler
                .recv_timeout(next_scan.saturating_duration_since(Instant::now()))
            {
                Ok(Ok(bytes)) => {
                    if let Err(e) = self.on_handler_bytes(&mut decoder, &bytes) {
                        return Stop::Pipe(e);
                    }
                }
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => return Stop::Handler,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Also while the handler keeps sending: its frames never starve the directory.
            if Instant::now() >= next_scan {
                if let Err(e) = self.scan() {
                    return Stop::Pipe(e);
                }
                next_scan = Instant::now() + self.file_check_interval;
            }
        }
    }

    // ---- frames from the handler ----

    fn on_handler_bytes(
        &mut self,
        decoder: &mut Decoder<FRAME>,
        mut bytes: &[u8],
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let (used, frame) = decoder.feed(bytes);
            bytes = bytes.get(used..).unwrap_or(&[]);
            match frame {
                Some(Ok(frame)) => {
                    let session = frame.session;
                    let first = self.handler_session.is_none();
                    self.handler_session = Some(session);
                    if first {
                        // Our capabilities at once, so that its first send need not ask.
                        self.send_heartbeat();
                    }
                    match frame.body {
                        Body::Data(d) => self.on_data(&d)?,
                        Body::Ack(ack) => self.on_ack(&ack),
                        Body::Heartbeat(hb) => self.on_heartbeat(&hb)?,
                    }
                }
                Some(Err(e)) => log::warn!("peerpipe: FilePipe bridge dropped a frame: {e}"),
                None => {}
            }
        }
        // One ACK for everything this chunk brought.
        if std::mem::take(&mut self.ack_due) {
            self.send_ack();
        }
        if self.last_write.elapsed() >= self.heartbeat_interval {
            self.write_heartbeat()?;
        }
        Ok(())
    }

    fn on_ack(&mut self, ack: &Ack) {
        if ack.to_session != self.session {
            return;
        }
        self.handler_room = ack.room;
        self.handler_window = ack.window;
        self.accepted(ack);
        if ack.retry {
            // Not the files their sender withdrew meanwhile.
            self.check_withdrawn();
            self.retry(ack);
        }
        self.pump();
    }

    fn on_heartbeat(&mut self, hb: &Heartbeat) -> io::Result<()> {
        self.advance_floor(hb.floor);
        self.handler_room = hb.room;
        self.handler_window = hb.window;
        self.handler_caps = Some(hb.caps);
        if hb.ask {
            self.send_heartbeat();
        }
        self.pump();
        self.write_heartbeat()
    }

    fn send_ack(&mut self) {
        let Some(to_session) = self.handler_session else {
            return;
        };
        let mut bitmap = 0u32;
        for s in self
            .confirmed
            .range(self.ack_next + 1..=self.ack_next + to_disk::BITMAP)
        {
            bitmap |= 1 << (s - self.ack_next - 1);
        }
        let room = self.room();
        self.send_frame(&Frame {
            session: self.session,
            body: Body::Ack(Ack {
                to_session,
                next: self.ack_next,
                bitmap,
                room,
                window: Self::window(room),
                retry: false,
            }),
        });
    }

    fn send_heartbeat(&mut self) {
        let floor = self.floor();
        let room = self.room();
        self.send_frame(&Frame {
            session: self.session,
            body: Body::Heartbeat(Heartbeat {
                floor,
                room,
                window: Self::window(room),
                caps: Caps {
                    max_payload: FRAGMENT as u32,
                    max_topic: MAX_TOPIC as u32,
                    max_message: MAX_MESSAGE,
                },
                ask: self.handler_caps.is_none(),
            }),
        });
    }

    fn send_frame(&mut self, frame: &Frame<'_>) {
        let mut buf = vec![0u8; FRAME];
        match wire::encode(frame, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                let _ = self.to_handler.send(Ok(buf));
            }
            Err(e) => log::warn!("peerpipe: FilePipe bridge cannot encode a frame: {e}"),
        }
    }

    // ---- the directory ----

    fn scan(&mut self) -> io::Result<()> {
        self.check_read();
        if !self.write_dir.is_dir() {
            return Err(pipe_gone(&self.write_dir, io::ErrorKind::NotFound.into()));
        }
        self.check_withdrawn();
        self.read_files()?;
        self.resend(RESEND);
        Ok(())
    }

    /// Writes `t/<name>` and renames it into the peer's directory, as NVFlare does.
    fn put(&mut self, name: &str, data: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.tmp_dir.join(name);
        let path = self.write_dir.join(name);
        let written = fs::File::create(&tmp).and_then(|f| {
            let mut out = io::BufWriter::with_capacity(1 << 16, f);
            fobs::write_file(data, &mut out)?;
            out.into_inner().map_err(io::IntoInnerError::into_error)?;
            fs::rename(&tmp, &path)
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.last_write = Instant::now();
        Ok(path)
    }

    /// Writes a heartbeat file unless ours is still unread.
    fn write_heartbeat(&mut self) -> io::Result<()> {
        if self.heartbeat_file.as_ref().is_some_and(|p| p.exists()) {
            return Ok(());
        }
        let name = names::request(names::HEARTBEAT, &names::uuid4());
        // A str, "" (msgpack `a0`), as NVFlare's own heartbeat.
        match self.put(&name, &[0xa0]) {
            Ok(path) => {
                self.heartbeat_file = Some(path);
                Ok(())
            }
            Err(e) if self.write_dir.is_dir() => {
                log::warn!("peerpipe: cannot write FilePipe heartbeat: {e}");
                Ok(())
            }
            Err(e) => Err(pipe_gone(&self.write_dir, e)),
        }
    }

    fn reject(&mut self, path: &Path, name: &str, reason: String) {
        if remove(path) {
            self.rejections.push(name, reason);
        }
    }
}

/// Removes a file (or a directory, which NVFlare's reader removes too); whether it was
/// still there.
fn remove(path: &Path) -> bool {
    fs::remove_file(path).is_ok() || (path.is_dir() && fs::remove_dir_all(path).is_ok())
}

fn pipe_gone(dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!(
            "FilePipe directory {} is gone (the peer closed the pipe): {e}",
            dir.display()
        ),
    )
}

/// What a message is, owned (the decoder's buffer is reused).
#[derive(Debug, Clone)]
enum OwnedItem {
    Request { topic: String },
    Reply { topic: String, req_id: u64 },
    End,
    Abort,
}

impl OwnedItem {
    fn new(item: &Item<'_>) -> Self {
        match *item {
            Item::Request { topic } => OwnedItem::Request {
                topic: topic.to_owned(),
            },
            Item::Reply { topic, req_id } => OwnedItem::Reply {
                topic: topic.to_owned(),
                req_id,
            },
            Item::End => OwnedItem::End,
            Item::Abort => OwnedItem::Abort,
        }
    }

    fn item(&self) -> Item<'_> {
        match self {
            OwnedItem::Request { topic } => Item::Request { topic },
            OwnedItem::Reply { topic, req_id } => Item::Reply {
                topic,
                req_id: *req_id,
            },
            OwnedItem::End => Item::End,
            OwnedItem::Abort => Item::Abort,
        }
    }
}

/// Which part of a message a fragment is, from its offset and length in a message of
/// `total` bytes.
fn frag_of(offset: u64, len: usize, total: u64) -> Frag {
    let last = offset + len as u64 >= total;
    match (offset, last) {
        (0, true) => Frag::Whole,
        (0, false) => Frag::First { total },
        (offset, last) => Frag::Next { offset, last },
    }
}
