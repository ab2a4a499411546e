//! Guards a handle's call holds while it waits: its place in the queue for a send slot,
//! and its registration for an outcome or a reply. Dropping one (a finished call, a
//! timeout, a cancelled future) undoes the registration, so nothing piles up.

use std::future::poll_fn;
use std::task::{Poll, Waker};

use peerpipe_core::MsgId;
use peerpipe_host::{Error, Message};

use crate::state::{Shared, State, Wait};

/// A caller's place in the queue for a free send slot (`number`: none until it queues).
/// Dropped, it leaves the queue, and the next caller's turn comes if it was first.
pub(crate) struct Ticket<
    'a,
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
> {
    shared: &'a Shared<P, T, RX, TX, F>,
    pub(crate) number: Option<u64>,
}

impl<'a, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    Ticket<'a, P, T, RX, TX, F>
{
    pub(crate) fn new(shared: &'a Shared<P, T, RX, TX, F>) -> Self {
        Ticket {
            shared,
            number: None,
        }
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Drop
    for Ticket<'_, P, T, RX, TX, F>
{
    fn drop(&mut self) {
        if let Some(t) = self.number.take() {
            self.shared.lock().room.leave(t);
        }
    }
}

/// A registered wait for an outcome or a reply; dropping it forgets the registration (a
/// request that was not `answered` is remembered as abandoned, for its late reply).
pub(crate) struct Waiting<
    'a,
    const P: usize,
    const T: usize,
    const RX: usize,
    const TX: usize,
    const F: usize,
> {
    shared: &'a Shared<P, T, RX, TX, F>,
    id: MsgId,
    wait: Wait,
    /// The request got its reply (set by the caller before the guard drops).
    pub(crate) answered: bool,
}

impl<'a, const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize>
    Waiting<'a, P, T, RX, TX, F>
{
    pub(crate) fn new(shared: &'a Shared<P, T, RX, TX, F>, id: MsgId, wait: Wait) -> Self {
        Waiting {
            shared,
            id,
            wait,
            answered: false,
        }
    }

    pub(crate) async fn outcome(&self) -> Result<MsgId, Error> {
        self.value(State::take_outcome).await
    }

    pub(crate) async fn reply(&self) -> Result<Message, Error> {
        self.value(State::take_reply).await
    }

    async fn value<V>(
        &self,
        take: fn(&mut State<P, T, RX, TX, F>, MsgId, &Waker) -> Option<V>,
    ) -> V {
        poll_fn(
            |cx| match take(&mut self.shared.lock(), self.id, cx.waker()) {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            },
        )
        .await
    }
}

impl<const P: usize, const T: usize, const RX: usize, const TX: usize, const F: usize> Drop
    for Waiting<'_, P, T, RX, TX, F>
{
    fn drop(&mut self) {
        self.shared.lock().forget(self.id, self.wait, self.answered);
    }
}
