//! The bytes of the messages a host driver has handed to its endpoint, until their outcome.

use std::collections::HashMap;

use bytes::Bytes;
use peerpipe_core::{MsgId, Source};

/// The data of every message a handler has given its endpoint with
/// [`send_from`](peerpipe_core::Endpoint::send_from), by id, until the send's outcome is
/// taken: the endpoint reads each fragment from here when it transmits it, so a message is
/// never copied whole (a 1 GiB message costs 1 GiB, once).
///
/// ```
/// use bytes::Bytes;
/// use peerpipe_core::{MsgId, Source};
/// use peerpipe_host::Outbox;
///
/// let mut outbox = Outbox::default();
/// outbox.insert(MsgId(3), Bytes::from_static(b"hello world"));
/// assert_eq!(outbox.read(MsgId(3), 6, 5), Some(&b"world"[..]));
/// assert_eq!(outbox.read(MsgId(3), 6, 6), None); // past the end
/// assert_eq!(outbox.bytes_held(), 11);
/// outbox.remove(MsgId(3));
/// assert_eq!(outbox.read(MsgId(3), 0, 1), None);
/// ```
#[derive(Debug, Default)]
pub struct Outbox {
    data: HashMap<MsgId, Bytes>,
    held: usize,
}

impl Outbox {
    /// Keeps the data of message `id`.
    pub fn insert(&mut self, id: MsgId, data: Bytes) {
        self.held += data.len();
        if let Some(old) = self.data.insert(id, data) {
            self.held -= old.len();
        }
    }

    /// Lets go of the data of message `id` (its outcome was taken).
    pub fn remove(&mut self, id: MsgId) {
        if let Some(old) = self.data.remove(&id) {
            self.held -= old.len();
        }
    }

    /// Lets go of everything.
    pub fn clear(&mut self) {
        self.data.clear();
        self.held = 0;
    }

    /// Bytes held, over all messages.
    pub fn bytes_held(&self) -> usize {
        self.held
    }
}

impl Source for Outbox {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let data = self.data.get(&id)?;
        let start = usize::try_from(offset).ok()?;
        data.get(start..start.checked_add(len)?)
    }
}
