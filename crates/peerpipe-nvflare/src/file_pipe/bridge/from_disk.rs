//! The peer's files to the handler.
//!
//! A file is read whole into memory (its data, as the handler will get it), checked, and
//! cut into fragments of at most the handler's `max_payload`, which take consecutive seqs;
//! the first fragment's seq is the message's id. Fragments go out in seq order within the
//! room and window the handler announces, unacknowledged ones are sent again after
//! [`RESEND`] (or at once when the handler asks for a retry), and the file is removed once
//! every fragment is acknowledged: then the peer sees it read. A file its sender withdraws
//! meanwhile is dropped, and the floor tells the handler to give up what it has of it.

use std::borrow::Cow;
use std::ops::Range;
use std::time::SystemTime;

use super::*;
use peerpipe_core::wire::Data;
use peerpipe_core::{validate_topic, RESERVED_TOPICS};

use crate::file_pipe::names::Name;

/// Files read and not yet delivered whole, at most.
const READ_AHEAD: usize = 16;
/// Bytes of data held for files read and not yet delivered whole above which no further file
/// is read (the first is read whatever its size).
const READ_AHEAD_BYTES: usize = 64 << 20;
/// A file larger than this is refused unread: it cannot hold a message the handler takes.
const MAX_FILE: u64 = peerpipe_std::MAX_PAYLOAD as u64 + (1 << 20);

/// A file read from disk, its message not yet delivered whole.
pub(super) struct InFile {
    pub(super) path: PathBuf,
    pub(super) name: String,
    /// The seq of its first fragment, also the message's id.
    first: u64,
    /// How many fragments it takes.
    frags: u64,
    /// How many of them the handler acknowledged.
    acked: u64,
    /// The data bytes of one fragment (the last may be shorter).
    frag_len: usize,
    item: OwnedItem,
    /// The message's data is `buf[data]`.
    buf: Vec<u8>,
    data: Range<usize>,
}

impl InFile {
    fn seqs(&self) -> Range<u64> {
        self.first..self.first + self.frags
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.data.clone()]
    }

    /// Fragment `seq`'s offset in the message, and its bytes.
    fn fragment(&self, seq: u64) -> (u64, &[u8]) {
        let data = self.data();
        let start = ((seq - self.first) as usize).saturating_mul(self.frag_len);
        let start = start.min(data.len());
        let end = start.saturating_add(self.frag_len).min(data.len());
        (start as u64, &data[start..end])
    }
}

/// A fragment sent and not acknowledged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    /// When it was last sent; `None`: due again (the handler asked for a retry).
    at: Option<Instant>,
    /// Its data bytes.
    len: u32,
}

impl Bridge {
    /// The lowest seq not settled: acknowledged, or dropped with a withdrawn file.
    pub(super) fn floor(&self) -> u64 {
        let fresh = self.next_fresh().unwrap_or(self.next_seq);
        self.unacked.keys().next().map_or(fresh, |&u| u.min(fresh))
    }

    /// The lowest seq never sent, if a file read has one.
    fn next_fresh(&self) -> Option<u64> {
        self.incoming
            .iter()
            .find(|f| f.seqs().end > self.fresh)
            .map(|f| f.first.max(self.fresh))
    }

    fn file_of(&self, seq: u64) -> Option<&InFile> {
        self.incoming.iter().find(|f| f.seqs().contains(&seq))
    }

    /// Sends fragments while the handler has room: first those it asked to have again,
    /// then new ones, in seq order. The lowest unsettled one may always go.
    pub(super) fn pump(&mut self) {
        loop {
            let floor = self.floor();
            let (mut outstanding, mut bytes) = (0u32, 0u64);
            for (&seq, sent) in &self.unacked {
                if sent.at.is_some() {
                    outstanding += 1;
                    if seq != floor {
                        bytes += u64::from(sent.len);
                    }
                }
            }
            let retry = self
                .unacked
                .iter()
                .find(|(_, s)| s.at.is_none())
                .map(|(&seq, _)| seq);
            let Some(seq) = retry.or_else(|| self.next_fresh()) else {
                return;
            };
            let Some(len) = self.file_of(seq).map(|f| f.fragment(seq).1.len() as u32) else {
                return;
            };
            let fits = outstanding <= self.handler_room
                && bytes + u64::from(len) <= u64::from(self.handler_window);
            if seq != floor && !fits {
                return;
            }
            self.send_fragment(seq);
            self.unacked.insert(
                seq,
                Sent {
                    at: Some(Instant::now()),
                    len,
                },
            );
            self.fresh = self.fresh.max(seq + 1);
        }
    }

    fn send_fragment(&mut self, seq: u64) {
        let floor = self.floor();
        let Some(f) = self.file_of(seq) else {
            return;
        };
        let (offset, payload) = f.fragment(seq);
        let frame = Frame {
            session: self.session,
            body: Body::Data(Data {
                seq,
                floor,
                id: f.first,
                item: f.item.item(),
                frag: frag_of(offset, payload.len(), f.data.len() as u64),
                payload,
            }),
        };
        let mut buf = vec![0u8; FRAME];
        match wire::encode(&frame, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                let _ = self.to_handler.send(Ok(buf));
            }
            Err(e) => log::warn!("peerpipe: FilePipe bridge cannot encode fragment {seq}: {e}"),
        }
    }

    /// Sends again the fragments sent at least `age` ago and not acknowledged.
    pub(super) fn resend(&mut self, age: Duration) {
        let now = Instant::now();
        let stale: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, s)| s.at.is_some_and(|at| now.duration_since(at) >= age))
            .map(|(&seq, _)| seq)
            .collect();
        for seq in stale {
            self.send_fragment(seq);
            if let Some(s) = self.unacked.get_mut(&seq) {
                s.at = Some(now);
            }
        }
    }

    /// The handler refused some fragments for lack of room and has room again: every one it
    /// has not acknowledged is due again, within its window.
    pub(super) fn retry(&mut self, ack: &Ack) {
        for (&seq, s) in self.unacked.iter_mut() {
            if !ack.covers(seq) {
                s.at = None;
            }
        }
    }

    /// The handler acknowledged fragments: a file whose fragments all are is delivered, and
    /// removed (the peer sees it read).
    pub(super) fn accepted(&mut self, ack: &Ack) {
        let done: Vec<u64> = self
            .unacked
            .keys()
            .copied()
            .filter(|&s| ack.covers(s))
            .collect();
        for seq in done {
            self.unacked.remove(&seq);
            if let Some(f) = self.incoming.iter_mut().find(|f| f.seqs().contains(&seq)) {
                f.acked += 1;
            }
        }
        while let Some(i) = self.incoming.iter().position(|f| f.acked >= f.frags) {
            let Some(f) = self.incoming.remove(i) else {
                break;
            };
            if let Err(e) = fs::remove_file(&f.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("peerpipe: cannot remove FilePipe file {}: {e}", f.name);
                }
            }
        }
    }

    /// Files read but not delivered whole that their sender has withdrawn (its send timed
    /// out, it was told "not read"): they are not delivered any more, and the handler learns
    /// the new floor from a heartbeat (it gives up what it has of them).
    pub(super) fn check_withdrawn(&mut self) {
        let gone: Vec<Range<u64>> = self
            .incoming
            .iter()
            .filter(|f| !f.path.exists())
            .map(InFile::seqs)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.incoming
            .retain(|f| !gone.iter().any(|g| g.start == f.first));
        self.unacked
            .retain(|seq, _| !gone.iter().any(|g| g.contains(seq)));
        self.send_heartbeat();
        self.pump();
    }

    pub(super) fn read_files(&mut self) -> io::Result<()> {
        let entries = fs::read_dir(&self.read_dir).map_err(|e| pipe_gone(&self.read_dir, e))?;
        let mut files: Vec<(SystemTime, String)> = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.incoming.iter().any(|f| f.name == name) {
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
                    if self.may_read() {
                        self.take(&path, &name, parsed);
                        self.pump();
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

    /// Whether another file may be read: the handler's capabilities are known, and every
    /// fragment of the files read before has been sent (the handler has room), unless there
    /// are none; a bounded number of files and bytes.
    fn may_read(&self) -> bool {
        if self.handler_caps.is_none() {
            return false;
        }
        if self.incoming.is_empty() {
            return true;
        }
        let held: usize = self.incoming.iter().map(|f| f.data.len()).sum();
        self.incoming.len() < READ_AHEAD && held < READ_AHEAD_BYTES && self.next_fresh().is_none()
    }

    /// Reads a message, END or ABORT file and queues its fragments for the handler.
    fn take(&mut self, path: &Path, name: &str, parsed: Name<'_>) {
        let Some(caps) = self.handler_caps else {
            return;
        };
        let (buf, data) = match read(path) {
            Ok(Some(read)) => read,
            // Withdrawn by its sender meanwhile.
            Ok(None) => return,
            Err(reason) => return self.reject(path, name, reason),
        };
        if let Err(e) = fobs::check(&buf[data.clone()]) {
            return self.reject(path, name, e.to_string());
        }
        let len = data.len();
        let max = match caps.max_message {
            0 => peerpipe_std::MAX_PAYLOAD as u64,
            m => m.min(peerpipe_std::MAX_PAYLOAD as u64),
        };
        if len as u64 > max {
            let reason = format!("data of {len} bytes, more than the handler takes ({max})");
            return self.reject(path, name, reason);
        }
        let frag_len = (caps.max_payload as usize).min(FRAGMENT);
        if frag_len == 0 && len > 0 {
            let reason = "data, and the handler takes none in a frame".to_owned();
            return self.reject(path, name, reason);
        }
        let (item, peer_id) = match parsed {
            Name::Request { topic, .. } if topic == names::END => (OwnedItem::End, None),
            Name::Request { topic, .. } if topic == names::ABORT => (OwnedItem::Abort, None),
            Name::Request { topic, id } => (
                OwnedItem::Request {
                    topic: topic.to_owned(),
                },
                Some(id),
            ),
            Name::Reply { topic, req_id, .. } => match self.our_ids.by_uuid.get(req_id) {
                Some(&req_id) => (
                    OwnedItem::Reply {
                        topic: topic.to_owned(),
                        req_id,
                    },
                    None,
                ),
                None => {
                    let reason = format!("reply to unknown request {req_id}");
                    return self.reject(path, name, reason);
                }
            },
        };
        if let OwnedItem::Request { topic } | OwnedItem::Reply { topic, .. } = &item {
            let max_topic = (caps.max_topic as usize).min(MAX_TOPIC);
            if RESERVED_TOPICS.contains(&topic.as_str())
                || validate_topic(topic, max_topic).is_err()
            {
                return self.reject(path, name, format!("topic {topic:?} not accepted"));
            }
        }
        let frags = if len == 0 {
            1
        } else {
            len.div_ceil(frag_len) as u64
        };
        let first = self.next_seq;
        self.next_seq += frags;
        if let Some(id) = peer_id {
            self.peer_ids.insert(first, id.to_owned());
        }
        self.incoming.push_back(InFile {
            path: path.to_owned(),
            name: name.to_owned(),
            first,
            frags,
            acked: 0,
            frag_len,
            item,
            buf,
            data,
        });
    }
}

/// A file's content and where its message's data is in it (datum sections resolved),
/// `None` when it is gone, or why it cannot be taken.
#[allow(clippy::type_complexity)]
fn read(path: &Path) -> Result<Option<(Vec<u8>, Range<usize>)>, String> {
    let size = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    if size > MAX_FILE {
        return Err(format!(
            "{size} bytes, larger than any message the handler takes"
        ));
    }
    let content = match fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    match fobs::from_file(&content) {
        // The body as it is: right after the header.
        Ok(Cow::Borrowed(body)) => {
            let data = fobs::HEADER_LEN..fobs::HEADER_LEN + body.len();
            Ok(Some((content, data)))
        }
        Ok(Cow::Owned(body)) => {
            let data = 0..body.len();
            Ok(Some((body, data)))
        }
        Err(e) => Err(e.to_string()),
    }
}
