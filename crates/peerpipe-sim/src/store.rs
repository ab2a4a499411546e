//! The bytes of messages sent with `send_from`, for the simulated endpoints to read.

use std::collections::HashMap;

use peerpipe_core::{MsgId, Source};

/// Message data by id: a [`Source`] for a simulated endpoint's
/// [`send_from`](peerpipe_core::Endpoint::send_from) sends. It keeps everything it was given
/// (a test's messages) and counts the reads, so that a test can see resends reread the source.
#[derive(Debug, Default)]
pub struct Store {
    data: HashMap<MsgId, Vec<u8>>,
    /// Fragments read so far.
    pub reads: u64,
}

impl Store {
    /// Keeps the data of message `id`.
    pub fn insert(&mut self, id: MsgId, data: Vec<u8>) {
        self.data.insert(id, data);
    }

    /// Forgets the data of message `id`: later reads of it fail.
    pub fn remove(&mut self, id: MsgId) {
        self.data.remove(&id);
    }
}

impl Source for Store {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        self.reads += 1;
        let start = usize::try_from(offset).ok()?;
        self.data.get(&id)?.get(start..start.checked_add(len)?)
    }
}
