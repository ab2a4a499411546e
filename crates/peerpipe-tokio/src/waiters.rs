//! The callers a pipe keeps track of: sends waiting for their outcome, requests waiting for
//! their reply, and the queue of callers waiting for a free send slot (first come, first
//! served). The requests that gave up are `peerpipe_host::AbandonedRequests`.

use std::collections::{HashMap, VecDeque};
use std::task::Waker;

use peerpipe_core::MsgId;

/// Stores `waker` in `slot` unless it already wakes the same task.
pub(crate) fn set_waker(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

/// Adds `waker` to `list` unless it would wake the same task as one already there.
pub(crate) fn enlist(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

/// Wakes and forgets every waker in `list`.
pub(crate) fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

/// A caller waiting for one value: the value once it is known, and who to wake.
pub(crate) struct Slot<V> {
    pub(crate) value: Option<V>,
    waker: Option<Waker>,
    /// For a request: the peer's endpoint acknowledged it (it was delivered), so running
    /// out of time now means no reply, not "not delivered".
    pub(crate) delivered: bool,
}

impl<V> Slot<V> {
    pub(crate) const EMPTY: Self = Slot {
        value: None,
        waker: None,
        delivered: false,
    };

    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Callers waiting on message ids. A slot stays until its caller forgets it (takes its
/// value, or gives up), so the caller can still ask whether it was delivered.
pub(crate) struct Waiters<V>(HashMap<MsgId, Slot<V>>);

impl<V> Waiters<V> {
    pub(crate) fn new() -> Self {
        Waiters(HashMap::new())
    }

    pub(crate) fn register(&mut self, id: MsgId) {
        self.0.insert(id, Slot::EMPTY);
    }

    pub(crate) fn remove(&mut self, id: MsgId) -> Option<Slot<V>> {
        self.0.remove(&id)
    }

    pub(crate) fn contains(&self, id: MsgId) -> bool {
        self.0.contains_key(&id)
    }

    pub(crate) fn get_mut(&mut self, id: MsgId) -> Option<&mut Slot<V>> {
        self.0.get_mut(&id)
    }

    /// Puts `value` into the waiter for `id` unless it has one already; returns whether
    /// someone waits for `id`.
    pub(crate) fn fulfil(&mut self, id: MsgId, value: V) -> bool {
        match self.0.get_mut(&id) {
            Some(slot) => {
                if slot.value.is_none() {
                    slot.value = Some(value);
                    slot.wake();
                }
                true
            }
            None => false,
        }
    }

    /// The value for `id` if known (taken: asked again, it is gone), else registers
    /// `waker`. `None` also when nobody waits for `id`.
    pub(crate) fn take(&mut self, id: MsgId, waker: &Waker) -> Option<V> {
        let slot = self.0.get_mut(&id)?;
        match slot.value.take() {
            Some(v) => Some(v),
            None => {
                set_waker(&mut slot.waker, waker);
                None
            }
        }
    }

    /// Every waiter that has no value yet gets one from `value`, and is woken.
    pub(crate) fn fail_all(&mut self, value: impl Fn() -> V) {
        for slot in self.0.values_mut() {
            if slot.value.is_none() {
                slot.value = Some(value());
                slot.wake();
            }
        }
    }

    pub(crate) fn wake_all(&mut self) {
        self.0.values_mut().for_each(Slot::wake);
    }
}

/// Callers waiting for a free send slot, served first come, first served: only the caller
/// at the front may take a slot, and a new caller may take one directly only while nobody
/// waits. A freed slot wakes the front only (no herd of woken callers racing for it).
pub(crate) struct RoomQueue {
    queue: VecDeque<(u64, Option<Waker>)>,
    next: u64,
}

impl RoomQueue {
    pub(crate) fn new() -> Self {
        RoomQueue {
            queue: VecDeque::new(),
            next: 0,
        }
    }

    /// Callers waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the caller holding `ticket` (`None`: not queued yet) may try for a slot.
    pub(crate) fn is_turn(&self, ticket: Option<u64>) -> bool {
        match ticket {
            None => self.queue.is_empty(),
            Some(t) => self.queue.front().is_some_and(|&(f, _)| f == t),
        }
    }

    /// Queues the caller at the back (giving it a ticket) unless it holds one, and
    /// remembers `waker` to wake it when its turn comes.
    pub(crate) fn wait(&mut self, ticket: &mut Option<u64>, waker: &Waker) {
        match *ticket {
            Some(t) => {
                if let Some((_, w)) = self.queue.iter_mut().find(|(f, _)| *f == t) {
                    set_waker(w, waker);
                }
            }
            None => {
                let t = self.next;
                self.next = self.next.wrapping_add(1);
                self.queue.push_back((t, Some(waker.clone())));
                *ticket = Some(t);
            }
        }
    }

    /// The caller holding `ticket` leaves the queue (it got a slot, failed, or gave up);
    /// when it was at the front, the next caller's turn comes.
    pub(crate) fn leave(&mut self, ticket: u64) {
        let Some(pos) = self.queue.iter().position(|&(t, _)| t == ticket) else {
            return;
        };
        self.queue.remove(pos);
        if pos == 0 {
            self.wake_front();
        }
    }

    /// A slot may be free: the front caller tries for it.
    pub(crate) fn wake_front(&mut self) {
        if let Some((_, w)) = self.queue.front_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }

    /// Everyone tries again (the handler stopped or the transport closed: they fail).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in &mut self.queue {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_queue_serves_in_order() {
        let mut q = RoomQueue::new();
        let w = Waker::noop();
        let (mut a, mut b) = (None, None);
        assert!(q.is_turn(None));
        q.wait(&mut a, w);
        q.wait(&mut b, w);
        assert!(!q.is_turn(None), "a newcomer waits behind the queue");
        assert!(q.is_turn(a) && !q.is_turn(b));
        q.leave(a.unwrap());
        assert!(q.is_turn(b));
        q.leave(b.unwrap());
        assert!(q.is_empty() && q.is_turn(None));
    }
}
