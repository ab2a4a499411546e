//! The bytes of the `gen` replies: [`generated`] says each byte, [`Generated`] is the
//! [`Source`] the driver reads them from, one fragment at a time.

use peerpipe_embedded::{MsgId, Source};

/// Byte `i` of every `gen` reply: `(i * 31 + 7) & 0xFF`.
pub fn generated(i: u64) -> u8 {
    // The low byte of i * 31 + 7 depends on the low byte of i only: no 64-bit multiply.
    (i as u32).wrapping_mul(31).wrapping_add(7) as u8
}

/// The [`Source`] of the `gen` replies: each fragment's bytes are made when the driver
/// encodes its frame (and again for a resend) into one fragment-sized buffer, never the
/// whole reply. It answers for the replies it was told of ([`add`](Self::add)) until their
/// outcome ([`forget`](Self::forget)).
pub struct Generated {
    ids: [Option<MsgId>; 4],
    buf: [u8; 128],
    /// Bytes supplied, resends included.
    pub supplied: u32,
}

impl Generated {
    /// A source that knows no reply yet.
    pub const fn new() -> Self {
        Generated {
            ids: [None; 4],
            buf: [0; 128],
            supplied: 0,
        }
    }

    /// Answers for reply `id` from now on; false when four are in flight already.
    pub fn add(&mut self, id: MsgId) -> bool {
        match self.ids.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(id);
                true
            }
            None => false,
        }
    }

    /// Reply `id` was settled: its bytes are not asked for any more.
    pub fn forget(&mut self, id: MsgId) {
        for slot in self.ids.iter_mut() {
            if *slot == Some(id) {
                *slot = None;
            }
        }
    }

    /// Forgets every reply (a new endpoint numbers its messages from 0 again).
    pub fn clear(&mut self) {
        self.ids = [None; 4];
    }
}

impl Default for Generated {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for Generated {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        if !self.ids.contains(&Some(id)) {
            return None;
        }
        let out = self.buf.get_mut(..len)?;
        let mut v = generated(offset);
        for b in out.iter_mut() {
            *b = v;
            v = v.wrapping_add(31);
        }
        self.supplied = self.supplied.wrapping_add(len as u32);
        Some(out)
    }
}
