//! The handler's messages to files.
//!
//! The handler sends a message as one DATA frame or as fragments with consecutive seqs. The
//! bridge takes them in seq order and puts a message's fragments together in memory;
//! each fragment but the last is acknowledged as soon as it is taken. The last (or the whole
//! message) is acknowledged only once the message's file, written when it came, has
//! disappeared from the peer's directory: "delivered" still means that NVFlare read it.
//!
//! While files wait to be read, their last fragments are unacknowledged, and the ACK bitmap
//! reaches only [`BITMAP`] seqs beyond the oldest: the room announced to the handler keeps
//! its sends within that reach, and within [`MAX_FILES`] unread files.

use super::*;
use peerpipe_core::wire::Data;

/// Width of the ACK bitmap: handler fragments are taken up to this far beyond `ack_next`.
pub(super) const BITMAP: u64 = 32;
/// The handler's messages on disk unread at most: then it is told to send nothing new.
const MAX_FILES: usize = 16;
/// Fragments the handler may have on their way to us beyond those we hold unacknowledged.
const FRESH: u64 = 16;
/// Memory reserved at once for a message of announced length (beyond, it grows as it comes).
const RESERVE: u64 = 64 << 20;

/// A handler's message written to disk, not yet read by the peer.
pub(super) struct OutFile {
    pub(super) path: PathBuf,
}

/// A handler's message being put together; its next fragment has seq `expected`.
pub(super) struct Assembly {
    id: u64,
    item: OwnedItem,
    total: u64,
    data: Vec<u8>,
}

impl Bridge {
    pub(super) fn on_data(&mut self, d: &Data<'_>) -> io::Result<()> {
        self.advance_floor(d.floor);
        let seq = d.seq;
        if seq < self.ack_next || self.confirmed.contains(&seq) {
            // A resend of what was acknowledged: acknowledge it again.
            self.ack_due = true;
            return Ok(());
        }
        // Its file is not read yet, or it was dropped (see below): nothing to say yet.
        if self.on_disk.contains_key(&seq) || seq < self.expected {
            return Ok(());
        }
        if seq > self.ack_next + BITMAP {
            // Beyond what an ACK can say (the room announced keeps the handler short of it).
            log::debug!("peerpipe: FilePipe bridge dropped fragment {seq}: beyond the window");
            return Ok(());
        }
        // Seqs between `expected` and this one were given up by the handler.
        match d.frag {
            Frag::Whole => {
                self.drop_assembly();
                self.expected = seq + 1;
                let item = OwnedItem::new(&d.item);
                if !self.write_message(seq, d.id, &item, d.payload)? {
                    // Its resend tries again.
                    self.expected = seq;
                }
            }
            Frag::First { total } => {
                self.drop_assembly();
                let mut data = Vec::with_capacity(total.min(RESERVE) as usize);
                data.extend_from_slice(d.payload);
                self.assembly = Some(Assembly {
                    id: d.id,
                    item: OwnedItem::new(&d.item),
                    total,
                    data,
                });
                self.expected = seq + 1;
                self.confirm(seq);
            }
            Frag::Next { offset, last } => {
                let Some(mut a) = self.assembly.take() else {
                    self.stray(seq, d.id);
                    return Ok(());
                };
                let ends = offset + d.payload.len() as u64 >= a.total;
                if seq != self.expected
                    || a.id != d.id
                    || a.data.len() as u64 != offset
                    || ends != last
                {
                    self.assembly = Some(a);
                    self.stray(seq, d.id);
                    return Ok(());
                }
                a.data.extend_from_slice(d.payload);
                self.expected = seq + 1;
                if !last {
                    self.assembly = Some(a);
                    self.confirm(seq);
                } else if !self.write_message(seq, a.id, &a.item, &a.data)? {
                    // Without its last fragment again: the resend of that tries again.
                    a.data.truncate(offset as usize);
                    self.assembly = Some(a);
                    self.expected = seq;
                }
            }
        }
        Ok(())
    }

    /// A continuation that does not continue the message being put together (should not
    /// happen: the handler sends in order over a lossless link). Not acknowledged: the
    /// handler resends it, or gives its message up.
    fn stray(&self, seq: u64, id: u64) {
        log::warn!(
            "peerpipe: FilePipe bridge dropped fragment {seq} of message {id}: not the next \
             part of the message being put together"
        );
    }

    /// The message being put together will not be completed: the handler gave it up.
    fn drop_assembly(&mut self) {
        if let Some(a) = self.assembly.take() {
            log::debug!(
                "peerpipe: FilePipe bridge dropped the first {} of {} bytes of message {}: \
                 the handler gave it up",
                a.data.len(),
                a.total,
                a.id
            );
        }
    }

    fn confirm(&mut self, seq: u64) {
        if seq >= self.ack_next {
            self.confirmed.insert(seq);
        }
        self.normalize();
        self.ack_due = true;
    }

    /// The handler gave up on everything below `floor`: withdraw those files, and the
    /// message being put together if its next fragment is among them.
    pub(super) fn advance_floor(&mut self, floor: u64) {
        if floor > self.ack_next {
            let kept = self.on_disk.split_off(&floor);
            for f in std::mem::replace(&mut self.on_disk, kept).into_values() {
                let _ = fs::remove_file(f.path);
            }
            self.ack_next = floor;
            self.confirmed = self.confirmed.split_off(&floor);
            self.normalize();
        }
        if floor > self.expected {
            self.drop_assembly();
            self.expected = floor;
        }
    }

    fn normalize(&mut self) {
        while self.confirmed.remove(&self.ack_next) {
            self.ack_next += 1;
        }
    }

    /// Writes the message whose last fragment is `seq`; whether it was written (when not,
    /// and the directory is still there, the handler's resend tries again).
    fn write_message(
        &mut self,
        seq: u64,
        msg_id: u64,
        item: &OwnedItem,
        data: &[u8],
    ) -> io::Result<bool> {
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
        match self.put(&name, data) {
            Ok(path) => {
                if let OwnedItem::Request { .. } = item {
                    self.our_ids.insert(msg_id, id);
                }
                self.on_disk.insert(seq, OutFile { path });
                Ok(true)
            }
            Err(e) if self.write_dir.is_dir() => {
                log::warn!("peerpipe: cannot write FilePipe file {name}: {e}");
                Ok(false)
            }
            Err(e) => Err(pipe_gone(&self.write_dir, e)),
        }
    }

    /// Our files that have disappeared were read: acknowledge their last fragments.
    ///
    /// Files that vanished with the directory (the peer closed the pipe) count as read, as on
    /// NVFlare's side: a peer that stops and closes right after reading our END must not make
    /// it fail. The broken pipe is reported after this acknowledgement.
    pub(super) fn check_read(&mut self) {
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

    /// How many fragments beyond the next one the handler may have unacknowledged: those
    /// we hold (the last fragments of unread files), and up to [`FRESH`] new ones, none
    /// beyond the ACK bitmap's reach, none while [`MAX_FILES`] files are unread.
    pub(super) fn room(&self) -> u32 {
        let held = self.on_disk.len() as u64;
        let fresh = if self.on_disk.len() >= MAX_FILES {
            0
        } else {
            (self.ack_next + BITMAP + 1)
                .saturating_sub(self.expected)
                .min(FRESH)
        };
        u32::try_from((held + fresh).saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The bytes `room` fragments beyond the next one may carry.
    pub(super) fn window(room: u32) -> u32 {
        u32::try_from((u64::from(room) + 1) * FRAGMENT as u64).unwrap_or(u32::MAX)
    }
}
