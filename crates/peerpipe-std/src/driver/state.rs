//! Everything the lock protects: the endpoint, the bytes on their way to the link, the
//! sends, and the state of the connection (opening, broken, handed over, lost).

use std::io::{self, Write};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crossbeam_channel::Sender;
use peerpipe_core::{Config, Instant, PeerState};
use peerpipe_host::Assembler;

use super::out_buf::OutBuf;
use super::reconnect;
use super::sends::Sends;
#[cfg(unix)]
use crate::transport::FdWrite;
use crate::{CoreEndpoint, Error, Status, UNSENT_LIMIT};

/// Where outgoing bytes go.
pub(super) enum Out {
    /// The transport is not open yet: frames stay due in the endpoint.
    Opening,
    /// A writer that may block (an in-memory channel, a reader-thread stream).
    Blocking(Box<dyn Write + Send>),
    /// A non-blocking descriptor; what it does not take waits in `State::out`.
    #[cfg(unix)]
    Fd(Box<dyn FdWrite>),
    /// The link broke or the handler stopped: frames are dropped.
    Lost,
}

/// Everything the lock protects.
pub(crate) struct State {
    pub(crate) ep: Box<CoreEndpoint>,
    pub(super) origin: StdInstant,
    pub(super) last: Instant,
    pub(super) link: Out,
    /// Encoded bytes not yet taken by the link (a non-blocking descriptor may take part).
    pub(super) out: OutBuf,
    pub(crate) sends: Sends,
    /// Puts together the message arriving in parts.
    pub(crate) assembler: Assembler,
    pub(super) gone_cause: Option<crate::IoCause>,
    /// Events were made outside the I/O thread (a write failed): it must take them.
    pub(super) dispatch_needed: bool,
    /// The I/O thread is awake and will look at everything before it sleeps again.
    pub(super) io_busy: bool,
    /// When the sleeping I/O thread wakes by itself.
    pub(super) io_until: Option<StdInstant>,
    /// The I/O thread holds back its frames until then (see [`ACK_HOLD`](super::ACK_HOLD)); any other
    /// thread's transmission sends them.
    pub(super) hold_until: Option<StdInstant>,
    /// `stop` was asked for, with this `close_pipe`.
    pub(super) stop: Option<bool>,
    /// The I/O thread is opening the transport (it may block there: accept, connect).
    pub(crate) opening: bool,
    /// The link can be replaced when it breaks (TCP, Unix sockets with reconnection on).
    pub(super) can_reconnect: bool,
    /// The link broke, when, and why, while a new one is awaited (`link` is `Opening`:
    /// frames stay due in the endpoint).
    pub(super) down: Option<(StdInstant, crate::IoCause)>,
    /// A new connection for the I/O thread to take.
    pub(super) handover: Option<reconnect::Handover>,
    /// Tells the dialing thread that the link broke.
    pub(super) redial_tx: Option<Sender<()>>,
    /// Statuses about the link (reconnecting, reconnected) for the application.
    pub(super) link_events: Vec<Status>,
    /// `Reconnect::give_up_after`.
    pub(super) give_up_after: Option<StdDuration>,
    pub(super) reconnects: u64,
    /// Where a listening transport counts the connections it refuses, while it opens and
    /// while it waits for the peer to reconnect
    /// ([`Transport::refusals`](crate::Transport::refusals)).
    pub(crate) refusals: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl State {
    pub(crate) fn new(ep: Box<CoreEndpoint>) -> Self {
        State {
            ep,
            origin: StdInstant::now(),
            last: Instant::ZERO,
            link: Out::Opening,
            out: OutBuf::default(),
            sends: Sends::default(),
            assembler: Assembler::default(),
            gone_cause: None,
            dispatch_needed: false,
            io_busy: true,
            io_until: None,
            hold_until: None,
            stop: None,
            opening: false,
            can_reconnect: false,
            down: None,
            handover: None,
            redial_tx: None,
            link_events: Vec::new(),
            give_up_after: None,
            reconnects: 0,
            refusals: None,
        }
    }

    /// Puts a new endpoint in place at `start`: its clock starts now.
    pub(crate) fn restart(&mut self, config: Config, session: u32) -> Result<(), Error> {
        let mut ep = crate::new_endpoint(config, session).map_err(Error::Config)?;
        if self.ep.is_paused() {
            ep.pause(Instant::ZERO);
        }
        self.ep = ep;
        self.origin = StdInstant::now();
        self.last = Instant::ZERO;
        self.opening = true;
        Ok(())
    }

    /// The endpoint's clock: never backwards, whichever thread holds the lock.
    pub(crate) fn now(&mut self) -> Instant {
        let t = Instant::from_micros(
            u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        self.last = self.last.max(t);
        self.last
    }

    pub(super) fn std_instant(&self, t: Instant) -> StdInstant {
        self.origin + StdDuration::from_micros(t.as_micros())
    }

    /// Reports a break, unless the application has not yet been told of the last
    /// reconnection: the break is then merged into it (it is told again when this one is
    /// over), so that these statuses stay at most two however often the link breaks.
    pub(crate) fn link_broke(&mut self, cause: crate::IoCause) {
        if self.link_events.last() == Some(&Status::Reconnected) {
            self.link_events.pop();
        } else {
            self.link_events.push(Status::Reconnecting { cause });
        }
    }

    pub(super) fn lose_link(&mut self, e: &io::Error) {
        if matches!(self.link, Out::Lost) || self.down.is_some() {
            return;
        }
        if self.can_reconnect && self.accepts_links() {
            log::warn!("peerpipe: connection lost, reconnecting: {e}");
            self.link = Out::Opening;
            self.out = OutBuf::default();
            self.down = Some((StdInstant::now(), e.into()));
            self.link_broke(e.into());
            if let Some(tx) = &self.redial_tx {
                let _ = tx.try_send(());
            }
            self.dispatch_needed = true;
            return;
        }
        if matches!(self.link, Out::Opening) {
            // It never opened: a refused TLS peer, a device that is not there.
            log::warn!("peerpipe: the transport did not open: {e}");
        } else {
            log::warn!("peerpipe: transport lost: {e}");
        }
        self.link = Out::Lost;
        self.out = OutBuf::default();
        self.gone_cause.get_or_insert_with(|| e.into());
        self.ep.transport_lost();
        self.dispatch_needed = true;
    }

    /// Encodes every frame that is due and writes them, in one write when the link takes it.
    /// Frames are encoded straight into the output buffer, each fragment's bytes read from
    /// the outbox: a message's data is never copied whole.
    pub(crate) fn transmit(&mut self, now: Instant) {
        self.hold_until = None;
        match self.link {
            Out::Opening => return,
            Out::Lost => {
                // Frames are dropped (the buffer holds one at a time).
                let (ep, outbox) = (&mut self.ep, &mut self.sends.outbox);
                self.out.clear();
                while self
                    .out
                    .encode(|buf| ep.poll_transmit_from(now, buf, outbox))
                {
                    self.out.clear();
                }
                return;
            }
            #[cfg(unix)]
            Out::Fd(_) => {}
            Out::Blocking(_) => {}
        }
        let before = self.out.len();
        while self.out.len() < UNSENT_LIMIT {
            let (ep, outbox) = (&mut self.ep, &mut self.sends.outbox);
            if !self
                .out
                .encode(|buf| ep.poll_transmit_from(now, buf, outbox))
            {
                break;
            }
        }
        if self.out.is_empty() {
            return;
        }
        let made = self.out.len() - before;
        let r = match &mut self.link {
            Out::Blocking(w) => {
                let r = w.write_all(self.out.bytes()).and_then(|()| w.flush());
                self.out.clear();
                r
            }
            #[cfg(unix)]
            Out::Fd(w) => write_some(w, &mut self.out),
            Out::Opening | Out::Lost => Ok(()),
        };
        self.out.fit(made);
        if let Err(e) = r {
            self.lose_link(&e);
        }
    }

    /// Whether a message of several fragments is under way: one arriving, or a send not yet
    /// acknowledged whole.
    pub(crate) fn moving_large_message(&self) -> bool {
        self.assembler.progress().is_some()
            || self.sends.large_in_flight().any(|id| {
                self.ep
                    .progress(id)
                    .is_some_and(|(done, total)| total > crate::FRAGMENT as u64 && done < total)
            })
    }

    /// Whether a thread other than the I/O thread must wake it after what it just did; if
    /// so, the I/O thread counts as awake from now on. `send_deadline`: what was done is a
    /// send with this deadline, the only deadline it can make earlier than the I/O thread's
    /// wake-up (its resend timer is at least `wake_period` away, and a sleep is at most
    /// that long): then the endpoint's timers need no scan (which cost 1,400 instructions a
    /// send, a fifth of a pipelined sender's work: callgrind, 6,300 -> 4,600 per send).
    pub(crate) fn needs_wake(&mut self, send_deadline: Option<StdInstant>) -> bool {
        if self.io_busy {
            return false;
        }
        let earlier =
            match send_deadline {
                Some(d) => {
                    let earlier = self.io_until.is_none_or(|u| d < u);
                    // The claim above, checked in debug builds (the endpoint's clock counts whole
                    // microseconds: a millisecond of slack).
                    debug_assert!(
                        earlier
                            || !self.deadline_before(self.io_until.map(|u| {
                                u.checked_sub(StdDuration::from_millis(1)).unwrap_or(u)
                            })),
                        "a send made a deadline earlier than its own"
                    );
                    earlier
                }
                None => self.deadline_before(self.io_until),
            };
        let wake = earlier || self.dispatch_needed || self.stop.is_some();
        if wake {
            self.io_busy = true;
        }
        wake
    }

    /// Whether the endpoint's next deadline comes before `until` (or at all, without one).
    fn deadline_before(&self, until: Option<StdInstant>) -> bool {
        self.ep.poll_timeout().is_some_and(|t| {
            let t = self.std_instant(t);
            until.is_none_or(|u| t < u)
        })
    }

    /// Whether the conversation may take a new connection: not stopped, the peer not gone,
    /// ended or aborted, the link not given up.
    pub(crate) fn accepts_links(&self) -> bool {
        // After this side's END or ABORT went through, there is nothing left to say.
        let said_all = self.ep.local_close().is_some() && self.ep.pending_sends() == 0;
        self.stop.is_none()
            && !self.ep.is_stopped()
            && matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up)
            && !matches!(self.link, Out::Lost)
            && !said_all
    }

    /// Whether a connection is up.
    pub(super) fn link_is_live(&self) -> bool {
        match self.link {
            Out::Blocking(_) => true,
            #[cfg(unix)]
            Out::Fd(_) => true,
            Out::Opening | Out::Lost => false,
        }
    }

    /// Whether a new connection is wanted now: the link broke and none is on its way.
    pub(super) fn wants_link(&self) -> bool {
        self.down.is_some() && self.handover.is_none() && self.accepts_links()
    }

    /// No connection comes back (or the conversation is over): the link is lost for good;
    /// with the peer still there, it is gone with the break's cause.
    pub(super) fn give_up_link(&mut self) {
        let Some((_, cause)) = self.down.take() else {
            return;
        };
        self.link = Out::Lost;
        self.handover = None;
        if matches!(self.ep.peer_state(), PeerState::NotSeen | PeerState::Up) {
            log::warn!("peerpipe: no connection came back: {cause}");
            self.gone_cause.get_or_insert(cause);
            self.ep.transport_lost();
        }
        self.dispatch_needed = true;
    }

    pub(crate) fn request_stop(&mut self, close: bool) {
        self.stop.get_or_insert(close);
    }
}

/// Writes what a non-blocking descriptor takes now; keeps the rest.
#[cfg(unix)]
fn write_some(w: &mut Box<dyn FdWrite>, out: &mut OutBuf) -> io::Result<()> {
    let mut done = 0;
    while done < out.len() {
        match w.write(out.bytes().get(done..).unwrap_or(&[])) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    out.consume(done);
    Ok(())
}
