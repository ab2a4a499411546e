//! Pipelined sends: one thread keeps many acknowledged sends in flight, and takes each
//! outcome later from its ticket ([`PendingSend`]).

use std::fmt;
use std::time::{Duration, Instant as StdInstant};

use peerpipe_core::{FailReason, MsgId};

use crate::driver::{GaveUp, Outgoing};
use crate::signal::{oneshot, Waited, Waiter};
use crate::{Error, Message, PipeHandler};

impl PipeHandler {
    /// Sends `msg` without blocking and returns a ticket for its outcome: what
    /// [`send_to_peer`](Self::send_to_peer) would have returned, the same errors included,
    /// from [`PendingSend::wait`] or [`PendingSend::try_outcome`]. One thread keeps many
    /// acknowledged sends in flight this way, where `send_to_peer` would need a thread each.
    ///
    /// `timeout` (default `default_request_timeout`) bounds the whole send from this call
    /// on, the wait for a send slot included: a send that gets no slot in time fails with
    /// [`FailReason::NoSlot`] (nothing sent), one not acknowledged in time with
    /// [`FailReason::TimedOut`]. Outcomes come in the order of the sends.
    ///
    /// Up to [`TX`](crate::TX) sends are in flight; more wait for a slot, first come, first
    /// served, at most [`MAX_WAITING`](crate::MAX_WAITING) of them counting
    /// [`send_no_wait`](Self::send_no_wait)'s: one more is refused here with
    /// [`Error::QueueFull`] (nothing sent). Fails at once with [`Error::Stopped`],
    /// [`Error::NotStarted`] or an invalid `timeout`, like `send_to_peer`; everything else
    /// comes through the ticket.
    ///
    /// Dropping the ticket does not withdraw the send: it goes on like one from
    /// `send_no_wait`, and its outcome is dropped. May be called from a callback (the
    /// ticket's [`wait`](PendingSend::wait) may not: it would wait for itself).
    ///
    /// ```
    /// use std::collections::VecDeque;
    /// use std::time::Duration;
    /// use peerpipe_std::{memory_pair, Config, Message, PipeHandler};
    ///
    /// let (a, b) = memory_pair();
    /// let (a, b) = (PipeHandler::new(a, Config::default())?, PipeHandler::new(b, Config::default())?);
    /// b.set_message_cb(|_msg| {});
    /// a.start()?;
    /// b.start()?;
    /// // One thread, at most 16 sends in flight.
    /// let mut in_flight = VecDeque::new();
    /// for i in 0..1000u32 {
    ///     if in_flight.len() == 16 {
    ///         let ticket: peerpipe_std::PendingSend = in_flight.pop_front().unwrap();
    ///         ticket.wait()?;
    ///     }
    ///     let msg = Message::request("data", i.to_le_bytes().to_vec())?;
    ///     in_flight.push_back(a.send_pipelined(msg, Some(Duration::from_secs(10)))?);
    /// }
    /// for ticket in in_flight {
    ///     ticket.wait()?;
    /// }
    /// a.stop(true);
    /// b.stop(true);
    /// # Ok::<(), peerpipe_std::Error>(())
    /// ```
    pub fn send_pipelined(
        &self,
        msg: Message,
        timeout: Option<Duration>,
    ) -> Result<PendingSend, Error> {
        let deadline = self.deadline(timeout)?;
        let (done, wait) = oneshot();
        let ticket = self.submit(Outgoing::Message(msg), deadline, Some(done), None, true)?;
        Ok(PendingSend {
            handler: self.clone(),
            wait,
            ticket,
            deadline,
            outcome: None,
        })
    }
}

/// The outcome, to come, of a send from [`PipeHandler::send_pipelined`].
///
/// It may move to another thread. Dropping it does not withdraw the send (its outcome is
/// dropped) and blocks nothing. It holds a clone of its handler: a handler that stops when
/// its last clone is dropped stops once its tickets are gone too ([`PipeHandler::stop`]
/// stops it at once, and every send still pending then fails with
/// [`Error::Stopped`]).
#[must_use = "a send's outcome tells whether the peer accepted it"]
pub struct PendingSend {
    handler: PipeHandler,
    wait: Waiter<Result<MsgId, Error>>,
    ticket: u64,
    deadline: StdInstant,
    /// The outcome once [`try_outcome`](Self::try_outcome) took it.
    outcome: Option<Result<MsgId, Error>>,
}

impl fmt::Debug for PendingSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSend")
            .field("deadline", &self.deadline)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl PendingSend {
    /// Blocks until the send's outcome: the message's id once the peer's endpoint accepted
    /// it, or what [`PipeHandler::send_to_peer`] would have failed with. Returns by the
    /// send's deadline (or just after: the outcome of a send in flight is reported at its
    /// deadline). From a callback, fails with [`Error::InCallback`] unless the outcome is
    /// already there.
    pub fn wait(mut self) -> Result<MsgId, Error> {
        if let Some(outcome) = self.try_outcome() {
            return outcome;
        }
        if self.handler.in_callback() {
            return Err(Error::InCallback);
        }
        self.handler
            .wait_outcome(&self.wait, self.ticket, self.deadline, None)
    }

    /// The outcome if it came, else `None`; never blocks. Once the deadline passed, a send
    /// still waiting for a slot is withdrawn here and fails with [`FailReason::NoSlot`].
    /// Once it returned an outcome, it returns the same one again.
    pub fn try_outcome(&mut self) -> Option<Result<MsgId, Error>> {
        if self.outcome.is_none() {
            self.outcome = match self.wait.try_take() {
                Some(Waited::Value(r)) => Some(r),
                Some(_) => Some(Err(Error::Stopped)),
                None if StdInstant::now() >= self.deadline => self.give_up(),
                None => None,
            };
        }
        self.outcome.clone()
    }

    /// When the send fails with [`FailReason::NoSlot`] or [`FailReason::TimedOut`] at the
    /// latest.
    pub fn deadline(&self) -> StdInstant {
        self.deadline
    }

    /// The deadline passed: a send still waiting for a slot is withdrawn.
    fn give_up(&mut self) -> Option<Result<MsgId, Error>> {
        match self.handler.shared().lock().give_up(self.ticket) {
            GaveUp::NoSlot => Some(Err(Error::Failed(FailReason::NoSlot))),
            // In the endpoint: its outcome comes at the deadline.
            _ => None,
        }
    }
}
