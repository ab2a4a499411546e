//! The requests whose caller gave up, remembered so that a driver recognises their late
//! replies.

use std::collections::{HashSet, VecDeque};

use peerpipe_core::MsgId;

/// How many abandoned requests a handler remembers, so that a reply arriving after its
/// `request()` gave up is recognised, dropped and counted instead of being queued for the
/// application. Beyond this many, the oldest is forgotten: a reply to it that arrives after
/// more than this many later requests gave up is handed to the application as an ordinary
/// message. (16 bytes or so per id, allocated only while requests give up.)
pub const ABANDONED_REQUESTS: usize = 1024;

/// For drivers: the last [`ABANDONED_REQUESTS`] requests whose caller gave up, oldest first.
#[derive(Debug, Default)]
pub struct AbandonedRequests {
    order: VecDeque<MsgId>,
    set: HashSet<MsgId>,
}

impl AbandonedRequests {
    /// Remembers `id`, forgetting the oldest beyond [`ABANDONED_REQUESTS`].
    pub fn insert(&mut self, id: MsgId) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > ABANDONED_REQUESTS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Whether `req_id` names an abandoned request; forgets it (a request has one reply).
    pub fn take(&mut self, req_id: MsgId) -> bool {
        if !self.set.remove(&req_id) {
            return false;
        }
        self.order.retain(|&id| id != req_id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_requests_are_bounded() {
        let mut a = AbandonedRequests::default();
        for i in 0..(ABANDONED_REQUESTS as u64 + 10) {
            a.insert(MsgId(i));
        }
        assert_eq!(a.order.len(), ABANDONED_REQUESTS);
        assert_eq!(a.set.len(), ABANDONED_REQUESTS);
        assert!(!a.take(MsgId(9)));
        assert!(a.take(MsgId(10)) && !a.take(MsgId(10)));
    }
}
