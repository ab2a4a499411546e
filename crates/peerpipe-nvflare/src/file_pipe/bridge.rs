//! The bridge thread: the handler's frames become files, files become frames.
//!
//! Towards the handler the bridge is a peer endpoint with its own session: it sends DATA
//! frames for the files it reads (its own sequence numbers), HEARTBEAT frames for NVFlare's
//! heartbeat files, and ACK frames for the handler's items once their files are gone.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use peerpipe_core::wire::{self, Ack, Body, Caps, Data, Decoder, Frag, Frame, Heartbeat, Item};
use peerpipe_core::{validate_topic, RESERVED_TOPICS};

use super::names::{self, Name};
use super::Rejections;
use crate::fobs;
use peerpipe_std::transport::Chunk;
use peerpipe_std::FRAGMENT as MAX_PAYLOAD;
use peerpipe_std::{Mode, FRAME, MAX_TOPIC};

/// Items the handler may have unacknowledged on disk (the room announced in ACKs is one
/// less), and files read but not yet accepted by the handler.
const WINDOW: usize = 16;

/// How often a DATA frame the handler has not accepted yet is offered again.
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

/// A handler's item written to disk, not yet read by the peer.
struct OutFile {
    path: PathBuf,
}

/// A file read from disk and offered to the handler, not yet accepted.
struct InFile {
    path: PathBuf,
    name: String,
    frame: Vec<u8>,
    sent: Instant,
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
    decoder: Box<Decoder<FRAME>>,
    /// This bridge's session, as the handler sees it.
    session: u32,
    /// The handler's session, once it sent a frame.
    handler_session: Option<u32>,

    // The handler's items (outgoing files).
    /// Every handler seq below this is read by the peer or given up by the handler.
    ack_next: u64,
    /// Handler seqs at or above `ack_next` read by the peer.
    confirmed: BTreeSet<u64>,
    on_disk: BTreeMap<u64, OutFile>,
    /// Our requests' uuids, for the peer's replies.
    our_ids: IdMap,
    heartbeat_file: Option<PathBuf>,
    last_write: Instant,

    // The peer's files (incoming items).
    next_seq: u64,
    in_flight: BTreeMap<u64, InFile>,
    /// The peer's request uuids by the seq we gave them, for the handler's replies.
    peer_ids: IdMap,
    /// The room the handler last announced: DATA frames it can take beyond the next one.
    handler_room: usize,
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
            decoder: Box::new(Decoder::new()),
            session: peerpipe_std::new_session_id(),
            handler_session: None,
            ack_next: 0,
            confirmed: BTreeSet::new(),
            on_disk: BTreeMap::new(),
            our_ids: IdMap::default(),
            heartbeat_file: None,
            last_write: Instant::now(),
            next_seq: 0,
            in_flight: BTreeMap::new(),
            peer_ids: IdMap::default(),
            handler_room: 0,
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
        let mut next_scan = Instant::now();
        loop {
            match self
                .from_handler
                .recv_timeout(next_scan.saturating_duration_since(Instant::now()))
            {
                Ok(Ok(bytes)) => {
                    if let Err(e) = self.on_handler_bytes(&bytes) {
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

    fn on_handler_bytes(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let (used, frame) = self.decoder.feed(bytes);
            bytes = bytes.get(used..).unwrap_or(&[]);
            match frame {
                Some(Ok(frame)) => {
                    let frame = OwnedFrame::from(&frame);
                    self.on_frame(frame)?;
                }
                Some(Err(e)) => log::warn!("peerpipe: FilePipe bridge dropped a frame: {e}"),
                None => {}
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: OwnedFrame) -> io::Result<()> {
        self.handler_session = Some(frame.session);
        match frame.body {
            OwnedBody::Data {
                seq,
                floor,
                id,
                item,
                whole,
                payload,
            } => {
                self.advance_floor(floor);
                if seq < self.ack_next || self.confirmed.contains(&seq) {
                    self.send_ack();
                } else if !whole {
                    // Announced in our capabilities: a handler never sends us fragments.
                    log::warn!("peerpipe: FilePipe bridge dropped a fragment of message {id}");
                } else if !self.on_disk.contains_key(&seq) {
                    self.write_item(seq, id, &item, &payload)?;
                }
            }
            OwnedBody::Ack(ack) => {
                if ack.to_session == self.session {
                    self.handler_room = ack.room as usize;
                    self.accepted(&ack);
                    if ack.retry {
                        // Not the files their sender withdrew meanwhile.
                        self.check_withdrawn();
                        self.resend(Duration::ZERO);
                    }
                }
            }
            OwnedBody::Heartbeat { floor, room, ask } => {
                self.advance_floor(floor);
                self.handler_room = room as usize;
                if ask {
                    self.send_heartbeat();
                }
                self.write_heartbeat()?;
            }
        }
        if self.last_write.elapsed() >= self.heartbeat_interval {
            self.write_heartbeat()?;
        }
        Ok(())
    }

    /// The handler gave up on everything below `floor`: withdraw those files.
    fn advance_floor(&mut self, floor: u64) {
        if floor <= self.ack_next {
            return;
        }
        let kept = self.on_disk.split_off(&floor);
        for f in std::mem::replace(&mut self.on_disk, kept).into_values() {
            let _ = fs::remove_file(f.path);
        }
        self.ack_next = floor;
        self.confirmed = self.confirmed.split_off(&floor);
        self.normalize();
    }

    fn normalize(&mut self) {
        while self.confirmed.remove(&self.ack_next) {
            self.ack_next += 1;
        }
    }

    fn write_item(
        &mut self,
        seq: u64,
        msg_id: u64,
        item: &OwnedItem,
        payload: &[u8],
    ) -> io::Result<()> {
        let id = names::uuid4();
        let name = match item {
            OwnedItem::Request { topic } => names::request(topic, &id),
            OwnedItem::Reply { topic, req_id } => {
                let req = match self.peer_ids.by_seq.get(req_id) {
                    Some(u) => u.clone(),
                    None => {
                        log::warn!(
                            "peerpipe: reply to request {req_id}, whose NVFlare id is no longer \
                             known: the peer will not match it"
                        );
                        names::uuid4()
                    }
                };
                names::reply(topic, &req, &id)
            }
            OwnedItem::End => names::request(names::END, &id),
            OwnedItem::Abort => names::request(names::ABORT, &id),
        };
        let content = fobs::to_file(&fobs::body_for(payload));
        match self.put(&name, &content) {
            Ok(path) => {
                if let OwnedItem::Request { .. } = item {
                    self.our_ids.insert(msg_id, id);
                }
                self.on_disk.insert(seq, OutFile { path });
                Ok(())
            }
            // The handler resends: the next copy tries again.
            Err(e) if self.write_dir.is_dir() => {
                log::warn!("peerpipe: cannot write FilePipe file {name}: {e}");
                Ok(())
            }
            Err(e) => Err(pipe_gone(&self.write_dir, e)),
        }
    }

    /// Writes `t/<name>` and renames it into the peer's directory, as NVFlare does.
    fn put(&mut self, name: &str, content: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.tmp_dir.join(name);
        let path = self.write_dir.join(name);
        fs::write(&tmp, content)?;
        if let Err(e) = fs::rename(&tmp, &path) {
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
        let content = fobs::to_file(&[0xa0]);
        match self.put(&name, &content) {
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

    /// The handler accepted some of our DATA frames: their files are read now.
    fn accepted(&mut self, ack: &Ack) {
        let done: Vec<u64> = self
            .in_flight
            .keys()
            .copied()
            .filter(|s| ack.covers(*s))
            .collect();
        for seq in done {
            if let Some(f) = self.in_flight.remove(&seq) {
                if let Err(e) = fs::remove_file(&f.path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        log::warn!("peerpipe: cannot remove FilePipe file {}: {e}", f.name);
                    }
                }
            }
        }
    }

    fn send_ack(&mut self) {
        let Some(to_session) = self.handler_session else {
            return;
        };
        let mut bitmap = 0u32;
        for s in self.confirmed.range(self.ack_next + 1..=self.ack_next + 32) {
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

    /// How many more of the handler's items may go on disk beyond the next one.
    fn room(&self) -> u32 {
        WINDOW.saturating_sub(1 + self.on_disk.len()) as u32
    }

    /// The payload bytes `room` items may carry.
    fn window(room: u32) -> u32 {
        room.saturating_mul(MAX_PAYLOAD as u32)
    }

    fn send_frame(&mut self, frame: &Frame<'_>) {
        let mut buf = vec![0u8; FRAME];
        if let Ok(n) = wire::encode(frame, &mut buf) {
            buf.truncate(n);
            let _ = self.to_handler.send(Ok(buf));
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

    /// Sends again the frames offered to the handler at least `age` ago and not accepted:
    /// at the resend interval, and at once when the handler asks for a retry (it refused
    /// some for a full queue and has room again).
    fn resend(&mut self, age: Duration) {
        let now = Instant::now();
        let stale: Vec<Vec<u8>> = self
            .in_flight
            .values_mut()
            .filter(|f| now.duration_since(f.sent) >= age)
            .map(|f| {
                f.sent = now;
                f.frame.clone()
            })
            .collect();
        for frame in stale {
            let _ = self.to_handler.send(Ok(frame));
        }
    }

    /// Files offered to the handler but not accepted yet (its queue is full) that their
    /// sender has withdrawn (its send timed out, it was told "not read"): they are not
    /// delivered any more, and the handler learns the new floor from a heartbeat.
    fn check_withdrawn(&mut self) {
        let before = self.in_flight.len();
        self.in_flight.retain(|_, f| f.path.exists());
        if self.in_flight.len() < before {
            self.send_heartbeat();
        }
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
                    max_payload: MAX_PAYLOAD as u32,
                    max_topic: MAX_TOPIC as u32,
                    max_message: MAX_PAYLOAD as u64,
                },
                ask: self.handler_session.is_none(),
            }),
        });
    }

    /// Our files that have disappeared were read: acknowledge them to the handler.
    ///
    /// Files that vanished with the directory (the peer closed the pipe) count as read, as on
    /// NVFlare's side: a peer that stops and closes right after reading our END must not make
    /// it fail. The broken pipe is reported after this acknowledgement.
    fn check_read(&mut self) {
        let gone: Vec<u64> = self
            .on_disk
            .iter()
            .filter(|(_, f)| !f.path.exists())
            .map(|(s, _)| *s)
            .collect();
        if gone.is_empty() {
            return;
        }
        for seq in gone {
            self.on_disk.remove(&seq);
            if seq >= self.ack_next {
                self.confirmed.insert(seq);
            }
        }
        self.normalize();
        self.send_ack();
    }

    fn read_files(&mut self) -> io::Result<()> {
        let entries = fs::read_dir(&self.read_dir).map_err(|e| pipe_gone(&self.read_dir, e))?;
        let mut files: Vec<(SystemTime, String)> = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.in_flight.values().any(|f| f.name == name) {
                continue;
            }
            // A file removed meanwhile sorts last and is skipped when read.
            let mtime = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)));
            files.push((mtime, name));
        }
        files.sort();
        let mut heartbeat = false;
        for (_, name) in files {
            let path = self.read_dir.join(&name);
            match names::parse(&name) {
                Ok(Name::Request { topic, .. }) if topic == names::HEARTBEAT => {
                    if remove(&path) {
                        heartbeat = true;
                    }
                }
                Ok(Name::Request { topic, .. }) if topic == names::STREAM_PROGRESS => {
                    remove(&path);
                }
                Ok(parsed) => {
                    // Beyond the first, only as many as the handler has said it has room for.
                    if self.in_flight.len() < (self.handler_room + 1).min(WINDOW) {
                        self.take(&path, &name, parsed);
                    }
                }
                Err(reason) => self.reject(&path, &name, format!("bad file name: {reason}")),
            }
        }
        if heartbeat {
            self.send_heartbeat();
        }
        Ok(())
    }

    fn floor(&self) -> u64 {
        self.in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_seq)
    }

    fn reject(&mut self, path: &Path, name: &str, reason: String) {
        if remove(path) {
            self.rejections.push(name, reason);
        }
    }

    /// Reads a message, END or ABORT file and offers it to the handler.
    fn take(&mut self, path: &Path, name: &str, parsed: Name<'_>) {
        let content = match read_limited(path) {
            Ok(Some(c)) => c,
            // Withdrawn by its sender meanwhile.
            Ok(None) => return,
            Err(reason) => return self.reject(path, name, reason),
        };
        let body = match fobs::from_file(&content).and_then(|b| fobs::decode(&b).map(|_| b)) {
            Ok(b) => b,
            Err(e) => return self.reject(path, name, e.to_string()),
        };
        if body.len() > MAX_PAYLOAD {
            let reason = format!("data of {} bytes, more than {MAX_PAYLOAD}", body.len());
            return self.reject(path, name, reason);
        }
        let (item, peer_id) = match parsed {
            Name::Request { topic, .. } if topic == names::END => (Item::End, None),
            Name::Request { topic, .. } if topic == names::ABORT => (Item::Abort, None),
            Name::Request { topic, id } => (Item::Request { topic }, Some(id)),
            Name::Reply { topic, req_id, .. } => match self.our_ids.by_uuid.get(req_id) {
                Some(&req_id) => (Item::Reply { topic, req_id }, None),
                None => {
                    let reason = format!("reply to unknown request {req_id}");
                    return self.reject(path, name, reason);
                }
            },
        };
        if let Item::Request { topic } | Item::Reply { topic, .. } = item {
            if RESERVED_TOPICS.contains(&topic) || validate_topic(topic, MAX_TOPIC).is_err() {
                return self.reject(path, name, format!("topic {topic:?} not accepted"));
            }
        }
        let seq = self.next_seq;
        let floor = self.floor();
        let frame = Frame {
            session: self.session,
            body: Body::Data(Data {
                seq,
                floor,
                id: seq,
                item,
                frag: Frag::Whole,
                payload: &body,
            }),
        };
        let mut buf = vec![0u8; FRAME];
        let Ok(n) = wire::encode(&frame, &mut buf) else {
            return self.reject(path, name, "cannot be framed".into());
        };
        buf.truncate(n);
        self.next_seq += 1;
        if let Some(id) = peer_id {
            self.peer_ids.insert(seq, id.to_owned());
        }
        let _ = self.to_handler.send(Ok(buf.clone()));
        self.in_flight.insert(
            seq,
            InFile {
                path: path.to_owned(),
                name: name.to_owned(),
                frame: buf,
                sent: Instant::now(),
            },
        );
    }
}

/// Removes a file (or a directory, which NVFlare's reader removes too); whether it was
/// still there.
fn remove(path: &Path) -> bool {
    fs::remove_file(path).is_ok() || (path.is_dir() && fs::remove_dir_all(path).is_ok())
}

/// A file's content, `None` when it is gone, or why it cannot be taken (too large).
fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let limit = (fobs::HEADER_LEN + MAX_PAYLOAD) as u64;
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let mut content = Vec::new();
    match file.take(limit + 1).read_to_end(&mut content) {
        Ok(_) if content.len() as u64 > limit => Err(format!(
            "larger than {limit} bytes (a FOBS header and {MAX_PAYLOAD} bytes of data)"
        )),
        Ok(_) => Ok(Some(content)),
        Err(e) => Err(format!("cannot read: {e}")),
    }
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

/// A frame from the handler, owned (the decoder's buffer is reused).
struct OwnedFrame {
    session: u32,
    body: OwnedBody,
}

enum OwnedBody {
    Data {
        seq: u64,
        floor: u64,
        id: u64,
        item: OwnedItem,
        whole: bool,
        payload: Vec<u8>,
    },
    Ack(Ack),
    Heartbeat {
        floor: u64,
        room: u32,
        ask: bool,
    },
}

enum OwnedItem {
    Request { topic: String },
    Reply { topic: String, req_id: u64 },
    End,
    Abort,
}

impl From<&Frame<'_>> for OwnedFrame {
    fn from(f: &Frame<'_>) -> Self {
        let body = match f.body {
            Body::Data(d) => OwnedBody::Data {
                seq: d.seq,
                floor: d.floor,
                id: d.id,
                whole: d.frag == Frag::Whole,
                item: match d.item {
                    Item::Request { topic } => OwnedItem::Request {
                        topic: topic.to_owned(),
                    },
                    Item::Reply { topic, req_id } => OwnedItem::Reply {
                        topic: topic.to_owned(),
                        req_id,
                    },
                    Item::End => OwnedItem::End,
                    Item::Abort => OwnedItem::Abort,
                },
                payload: d.payload.to_vec(),
            },
            Body::Ack(a) => OwnedBody::Ack(a),
            Body::Heartbeat(h) => OwnedBody::Heartbeat {
                floor: h.floor,
                room: h.room,
                ask: h.ask,
            },
        };
        OwnedFrame {
            session: f.session,
            body,
        }
    }
}
