//! What the runner and the handles share: the endpoint, the table of tasks waiting for an
//! outcome or a reply, the wake-up signals and the event channel.

use core::cell::RefCell;
use core::task::{Context, Poll};

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_sync::waitqueue::WakerRegistration;
use peerpipe_core::{Endpoint, Event, FailReason, Message, MsgId, Outcome, PartKind};

use crate::DriverStats;

/// Where a waiting send stands.
pub(crate) enum Wait<const PAYLOAD: usize, const TOPIC: usize> {
    /// Not delivered yet.
    Sending,
    /// Delivered; a request waits for its reply.
    Delivered,
    /// The send failed, or the reply will not come (the peer went, ended, restarted).
    Failed(FailReason),
    /// The reply, in one frame.
    Replied(Message<PAYLOAD, TOPIC>),
    /// The reply comes in parts: they go to the event channel.
    InParts,
}

/// One task waiting for the outcome of a send (and, for a request, its reply).
pub(crate) struct Waiter<const PAYLOAD: usize, const TOPIC: usize> {
    /// The send's id; `None`: the slot is free.
    pub(crate) id: Option<MsgId>,
    /// Whether the task waits for a reply (a request) or only for delivery.
    pub(crate) reply: bool,
    pub(crate) wait: Wait<PAYLOAD, TOPIC>,
    pub(crate) waker: WakerRegistration,
}

impl<const PAYLOAD: usize, const TOPIC: usize> Waiter<PAYLOAD, TOPIC> {
    pub(crate) const FREE: Self = Waiter {
        id: None,
        reply: false,
        wait: Wait::Sending,
        waker: WakerRegistration::new(),
    };

    fn set(&mut self, wait: Wait<PAYLOAD, TOPIC>) {
        self.wait = wait;
        self.waker.wake();
    }
}

/// The endpoint and the waiters, behind the state's blocking mutex.
pub(crate) struct Inner<
    const PAYLOAD: usize,
    const TOPIC: usize,
    const RX: usize,
    const TX: usize,
    const FRAME: usize,
> {
    pub(crate) endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>,
    /// One per send slot of the endpoint.
    pub(crate) waiters: [Waiter<PAYLOAD, TOPIC>; TX],
    pub(crate) stats: DriverStats,
    /// The task waiting for free send slots ([`Handle::room`](super::Handle::room)).
    pub(crate) room: WakerRegistration,
}

impl<
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
    > Inner<PAYLOAD, TOPIC, RX, TX, FRAME>
{
    /// A free waiter slot's index.
    pub(crate) fn free_waiter(&self) -> Option<usize> {
        self.waiters.iter().position(|w| w.id.is_none())
    }

    /// The waiter of send `id`.
    fn waiter(&mut self, id: MsgId) -> Option<&mut Waiter<PAYLOAD, TOPIC>> {
        self.waiters.iter_mut().find(|w| w.id == Some(id))
    }

    /// Hands a send's outcome to its waiter (an outcome nobody waits for is dropped: the
    /// send was made with `send`, which reports none).
    fn settle(&mut self, id: MsgId, outcome: Outcome) {
        if let Some(w) = self.waiter(id).filter(|w| matches!(w.wait, Wait::Sending)) {
            match outcome {
                Outcome::Delivered => w.set(Wait::Delivered),
                Outcome::Failed(reason) => w.set(Wait::Failed(reason)),
            }
        }
    }

    /// Requests delivered and waiting for their reply will get none: they fail with `reason`.
    fn fail_replies(&mut self, reason: FailReason) {
        for w in self.waiters.iter_mut() {
            if w.id.is_some() && matches!(w.wait, Wait::Delivered) {
                w.set(Wait::Failed(reason));
            }
        }
    }

    /// Fails every waiter with `reason` (the endpoint was replaced).
    pub(crate) fn fail_all(&mut self, reason: FailReason) {
        for w in self.waiters.iter_mut() {
            if w.id.is_some() && matches!(w.wait, Wait::Sending | Wait::Delivered) {
                w.set(Wait::Failed(reason));
            }
        }
    }

    /// Settles every send outcome, then moves the endpoint's events to their waiters or to
    /// the channel while it has room: what does not fit stays queued in the endpoint (whose
    /// receive queue then fills and holds the peer back), never dropped.
    pub(crate) fn dispatch<M: RawMutex, const EVENTS: usize>(
        &mut self,
        events: &Channel<M, Event<PAYLOAD, TOPIC>, EVENTS>,
    ) {
        let mut freed = false;
        while let Some((id, outcome)) = self.endpoint.poll_outcome() {
            self.settle(id, outcome);
            freed = true;
        }
        if freed {
            self.room.wake();
        }
        while !events.is_full() {
            let Some(event) = self.endpoint.poll_event() else {
                return;
            };
            let event = match event {
                Event::SendOutcome { id, outcome } => {
                    self.settle(id, outcome);
                    self.room.wake();
                    continue;
                }
                Event::Message(m) => match m.req_id().and_then(|id| self.reply_waiter(id)) {
                    Some(w) => {
                        w.set(Wait::Replied(m));
                        continue;
                    }
                    None => Event::Message(m),
                },
                Event::Part(part) => {
                    match part.kind() {
                        PartKind::Reply { req_id } => {
                            if let Some(w) = self.reply_waiter(req_id) {
                                w.set(Wait::InParts);
                            }
                        }
                        PartKind::End if part.is_last() => self.fail_replies(FailReason::PeerEnded),
                        PartKind::Abort if part.is_last() => {
                            self.fail_replies(FailReason::PeerAborted)
                        }
                        _ => {}
                    }
                    Event::Part(part)
                }
                other => {
                    match other {
                        Event::End(_) => self.fail_replies(FailReason::PeerEnded),
                        Event::Abort(_) => self.fail_replies(FailReason::PeerAborted),
                        Event::Gone(_) => self.fail_replies(FailReason::PeerGone),
                        Event::PeerRestarted => self.fail_replies(FailReason::PeerRestarted),
                        _ => {}
                    }
                    other
                }
            };
            // Room was checked above, and only this task sends into the channel.
            let _ = events.try_send(event);
        }
    }

    /// The waiter of request `id` that still waits for its reply.
    fn reply_waiter(&mut self, id: MsgId) -> Option<&mut Waiter<PAYLOAD, TOPIC>> {
        self.waiter(id)
            .filter(|w| w.reply && matches!(w.wait, Wait::Sending | Wait::Delivered))
    }
}

/// The state an async driver's [`Runner`](super::Runner) and its [`Handle`](super::Handle)s
/// share: the endpoint, the tasks waiting for outcomes and replies, and a channel of
/// `EVENTS` events for the application. Make one (a `static`, or a local of the task that
/// runs both) and pass it to [`new`](super::new).
///
/// `M` is the embassy-sync raw mutex that guards it: `NoopRawMutex` when the runner and
/// every handle run on one executor, `CriticalSectionRawMutex` when they are spread over
/// executors or interrupt priorities. The const parameters are the endpoint's (see
/// [`Endpoint`]), with the same defaults, and `EVENTS`, the channel's depth.
pub struct State<
    M: RawMutex,
    const PAYLOAD: usize = 128,
    const TOPIC: usize = 32,
    const RX: usize = 4,
    const TX: usize = 4,
    const FRAME: usize = 223,
    const EVENTS: usize = 4,
> {
    pub(crate) inner: Mutex<M, RefCell<Inner<PAYLOAD, TOPIC, RX, TX, FRAME>>>,
    /// Wakes the runner's deadline keeper: time to act on deadlines and events.
    pub(crate) wake_service: Signal<M, ()>,
    /// Wakes the runner's transmitter: frames may be due.
    pub(crate) wake_tx: Signal<M, ()>,
    pub(crate) events: Channel<M, Event<PAYLOAD, TOPIC>, EVENTS>,
}

impl<
        M: RawMutex,
        const PAYLOAD: usize,
        const TOPIC: usize,
        const RX: usize,
        const TX: usize,
        const FRAME: usize,
        const EVENTS: usize,
    > State<M, PAYLOAD, TOPIC, RX, TX, FRAME, EVENTS>
{
    /// A state around `endpoint`.
    pub fn new(endpoint: Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>) -> Self {
        State {
            inner: Mutex::new(RefCell::new(Inner {
                endpoint,
                waiters: [const { Waiter::FREE }; TX],
                stats: DriverStats::default(),
                room: WakerRegistration::new(),
            })),
            wake_service: Signal::new(),
            wake_tx: Signal::new(),
            events: Channel::new(),
        }
    }

    /// Runs `f` on the locked inner state.
    pub(crate) fn lock<R>(
        &self,
        f: impl FnOnce(&mut Inner<PAYLOAD, TOPIC, RX, TX, FRAME>) -> R,
    ) -> R {
        self.inner.lock(|cell| f(&mut cell.borrow_mut()))
    }

    /// Wakes both halves of the runner: something changed that may make frames or events due.
    pub(crate) fn wake(&self) {
        self.wake_service.signal(());
        self.wake_tx.signal(());
    }

    /// Polls waiter `slot` (of send `id`): ready once the wait is over (`want_reply`: with a
    /// reply or failure; otherwise once delivered or failed).
    pub(crate) fn poll_waiter(
        &self,
        slot: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Wait<PAYLOAD, TOPIC>> {
        self.lock(|inner| {
            let Some(w) = inner.waiters.get_mut(slot) else {
                return Poll::Ready(Wait::Failed(FailReason::Stopped));
            };
            match w.wait {
                Wait::Sending => {}
                Wait::Delivered if w.reply => {}
                _ => return Poll::Ready(core::mem::replace(&mut w.wait, Wait::Sending)),
            }
            w.waker.register(cx.waker());
            Poll::Pending
        })
    }

    /// Frees waiter `slot`.
    pub(crate) fn free(&self, slot: usize) {
        self.lock(|inner| {
            if let Some(w) = inner.waiters.get_mut(slot) {
                *w = Waiter::FREE;
            }
        });
    }
}
