//! Sends and requests of any size: `--timeout` counts the peer's silence, not the length of
//! the transfer, and each step reports how far the data has got (for a progress bar).
//!
//! `PipeHandler::send_to_peer` and `request` bound the whole call by their timeout, which
//! suits a message of a few fragments; a file of a GiB takes as long as the link needs. So a
//! message longer than one fragment goes with a deadline far away, and a watcher gives it up
//! (through an [`AbortSignal`]) once nothing has moved for `timeout`: no fragment of it
//! acknowledged, none of a message arriving. A request's reply is then awaited on the
//! handler's queue, again for `timeout` after the last thing that moved.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use peerpipe_std::{
    AbortSignal, Error, FailReason, Item, Message, MsgId, PipeHandler, Progress, Status, FRAGMENT,
};

/// How often a watcher looks at the progress (and redraws a bar).
pub const TICK: Duration = Duration::from_millis(100);

/// The deadline of a send that the watcher bounds: far enough never to come first.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// What has moved: the send on the wire and the message arriving, each with its bytes done.
type Moved = (Option<(MsgId, u64)>, Option<(MsgId, u64)>);

fn moved(p: &Progress) -> Moved {
    (
        p.sending.map(|t| (t.id, t.done)),
        p.receiving.map(|t| (t.id, t.done)),
    )
}

/// Tells when nothing has moved for `timeout`.
pub struct Stall {
    timeout: Duration,
    since: Instant,
    seen: Moved,
}

impl Stall {
    /// Starts the clock now.
    pub fn new(timeout: Duration) -> Self {
        Stall {
            timeout,
            since: Instant::now(),
            seen: (None, None),
        }
    }

    /// Notes `p` (anything that moved restarts the clock); whether the time is up.
    pub fn stalled(&mut self, p: &Progress) -> bool {
        let now = moved(p);
        if now != self.seen {
            self.seen = now;
            self.since = Instant::now();
        }
        self.since.elapsed() >= self.timeout
    }

    /// Time left before the clock runs out (at least a millisecond).
    fn left(&self) -> Duration {
        self.timeout
            .saturating_sub(self.since.elapsed())
            .max(Duration::from_millis(1))
    }
}

/// Sends `msg` and waits until the peer accepted it whole: its id. It fails with
/// [`FailReason::TimedOut`] once nothing moved for `timeout`, else as `send_to_peer` does.
/// `tick` sees the progress every [`TICK`] while the message moves.
pub fn send(
    h: &PipeHandler,
    msg: Message,
    timeout: Duration,
    tick: &mut dyn FnMut(&Progress),
) -> Result<MsgId, Error> {
    if msg.data().len() <= FRAGMENT {
        // One fragment: nothing moves until it is acknowledged, so the handler's own
        // timeout is the same rule, without a watcher.
        return h.send_to_peer(msg, Some(timeout), None);
    }
    let abort = AbortSignal::new();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(h.send_to_peer(msg, Some(FAR), Some(&abort)));
        });
        let mut stall = Stall::new(timeout);
        let mut gave_up = false;
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Err(Error::Aborted)) if gave_up => {
                    return Err(Error::Failed(FailReason::TimedOut))
                }
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Stopped),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let p = h.progress();
            tick(&p);
            if !gave_up && stall.stalled(&p) {
                gave_up = true;
                abort.trigger();
            }
        }
    })
}

/// Waits for the reply to request `id` on the handler's queue (other messages that come
/// meanwhile are dropped): [`Error::NoReply`] once nothing moved for `timeout`; the peer's
/// END, ABORT or departure as the error `request` would give.
pub fn await_reply(
    h: &PipeHandler,
    id: MsgId,
    timeout: Duration,
    tick: &mut dyn FnMut(&Progress),
) -> Result<Message, Error> {
    let mut stall = Stall::new(timeout);
    loop {
        match h.recv_timeout(stall.left().min(TICK)) {
            Some(Item::Message(m)) if m.req_id() == Some(id) => return Ok(m),
            Some(Item::Message(m)) => {
                tracing::debug!(id = m.id().0, topic = m.topic(), "not the reply: dropped")
            }
            Some(Item::Status(Status::End(_))) => return Err(Error::Failed(FailReason::PeerEnded)),
            Some(Item::Status(Status::Abort(_))) => {
                return Err(Error::Failed(FailReason::PeerAborted))
            }
            Some(Item::Status(Status::Gone {
                cause: Some(cause), ..
            })) => return Err(Error::TransportLost(cause)),
            Some(Item::Status(Status::Gone { .. })) => {
                return Err(Error::Failed(FailReason::PeerGone))
            }
            Some(Item::Status(s)) => tracing::info!("while waiting for the reply: {s:?}"),
            None => {}
        }
        let p = h.progress();
        tick(&p);
        if stall.stalled(&p) {
            return Err(Error::NoReply { request: id });
        }
    }
}

/// A request and its reply: [`send`], then [`await_reply`] (`reply_timeout` after the
/// request was acknowledged; `timeout` bounds the silence before that).
pub fn request(
    h: &PipeHandler,
    msg: Message,
    timeout: Duration,
    reply_timeout: Duration,
    tick: &mut dyn FnMut(&Progress),
) -> Result<Message, Error> {
    if !msg.is_request() {
        return Err(Error::Invalid(
            peerpipe_std::peerpipe_core::Error::NotARequest,
        ));
    }
    let id = send(h, msg, timeout, tick)?;
    await_reply(h, id, reply_timeout, tick)
}

/// A `tick` that does nothing.
pub fn quiet(_: &Progress) {}
