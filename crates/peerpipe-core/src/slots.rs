//! A ring of slots whose storage stays in place: the receive queue's items.
//!
//! An item is as large as the endpoint's capacities (a 4 KiB fragment on hosts), and every
//! move of one copies all of it, used or not. The slots are made once; an item is written
//! into a free slot in place and taken out of it in place, so that only its bytes are
//! copied, not the whole slot on every hand-over (as a queue taking items by value does).

/// `N` slots, all made up front; `len` of them in use, in order from `head` on (wrapping).
#[derive(Debug, Clone)]
// `repr(C)`, `head` and `len` before the slots, within a Cortex-M0 load's reach of the start
// (see `Msg` in send.rs; 64 B of thumbv6m code).
#[repr(C)]
pub(crate) struct Slots<E, const N: usize> {
    head: usize,
    len: usize,
    slots: [E; N],
}

impl<E, const N: usize> Slots<E, N> {
    /// Every slot free, holding what `slots` holds (their storage is reused).
    pub(crate) const fn new(slots: [E; N]) -> Self {
        Slots {
            slots,
            head: 0,
            len: 0,
        }
    }

    /// Where the `i`-th slot (`i` below `N`) is: a subtraction, not a remainder (Cortex-M0
    /// has no divide instruction).
    fn index(&self, i: usize) -> usize {
        let at = self.head.wrapping_add(i);
        if at >= N {
            at - N
        } else {
            at
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `i`-th slot in use.
    pub(crate) fn get(&self, i: usize) -> Option<&E> {
        if i >= self.len {
            return None;
        }
        self.slots.get(self.index(i))
    }

    /// The `i`-th slot in use.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut E> {
        if i >= self.len {
            return None;
        }
        let at = self.index(i);
        self.slots.get_mut(at)
    }

    /// The slots in use, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    /// Takes a free slot into use at the back, holding whatever it held before (for the
    /// caller to overwrite); `None` when every slot is in use.
    pub(crate) fn push_back(&mut self) -> Option<&mut E> {
        if self.len >= N {
            return None;
        }
        self.len += 1;
        self.get_mut(self.len - 1)
    }

    /// Frees the first slot in use and lends it: what it holds stays there until the slot
    /// is taken into use again, for the caller to take out in place.
    pub(crate) fn pop_front(&mut self) -> Option<&mut E> {
        if self.len == 0 {
            return None;
        }
        let at = self.head;
        self.head = self.index(1);
        self.len -= 1;
        self.slots.get_mut(at)
    }

    /// Frees every slot.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Moves the last slot in use to position `at`, the ones from `at` on one place back,
    /// by swaps (rare: an item that arrived out of order).
    pub(crate) fn move_last_to(&mut self, at: usize) {
        let mut j = self.len.saturating_sub(1);
        while j > at {
            let (a, b) = (self.index(j - 1), self.index(j));
            // `mem::swap` of two borrows, not `slice::swap`: that one may overlap and links
            // `memmove` (1.3 KiB of flash on Cortex-M0).
            let (lo, hi) = (a.min(b), a.max(b));
            let (left, right) = self.slots.split_at_mut(hi);
            if let (Some(x), Some(y)) = (left.get_mut(lo), right.first_mut()) {
                core::mem::swap(x, y);
            }
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    fn contents<const N: usize>(s: &Slots<u32, N>) -> Vec<u32> {
        s.iter().copied().collect()
    }

    #[test]
    fn slots_wrap_and_reorder_in_place() {
        let mut s = Slots::new([0u32; 3]);
        for round in 0..5 {
            for v in 1..=3 {
                *s.push_back().unwrap() = round * 10 + v;
            }
            assert!(s.push_back().is_none());
            s.move_last_to(0);
            assert_eq!(
                contents(&s),
                [round * 10 + 3, round * 10 + 1, round * 10 + 2]
            );
            assert_eq!(s.pop_front(), Some(&mut (round * 10 + 3)));
            assert_eq!(s.get(0), Some(&(round * 10 + 1)));
            s.pop_front();
            s.pop_front();
            assert_eq!(s.len(), 0);
            assert!(s.get(0).is_none());
            assert!(s.pop_front().is_none());
            // Start the next round one slot further on.
            *s.push_back().unwrap() = 0;
            s.pop_front();
        }
        *s.push_back().unwrap() = 7;
        s.clear();
        assert_eq!(contents(&s), []);
    }
}
