//! The I/O thread: owns the endpoint and the link, sleeps until the endpoint's next deadline,
//! new bytes, a command from the application, or room in the application's queue.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use crossbeam_channel::{Receiver, Select, Sender};
use peerpipe_core::{Duration, Event, FailReason, GoneReason, Instant, MsgId, Outcome};

use crate::handler::Shared;
use crate::transport::{Link, Transport};
use crate::{CoreEndpoint, Error, Item, Message, Status};

/// What the application asks of the I/O thread.
pub(crate) enum Command {
    Send {
        msg: Message,
        deadline: StdInstant,
        /// Told the outcome of the send.
        done: Option<Sender<Result<MsgId, Error>>>,
        /// Told the reply (or why the request failed).
        reply: Option<Sender<Result<Message, Error>>>,
    },
    End(Vec<u8>, Sender<Result<MsgId, Error>>),
    Abort(Vec<u8>, Sender<Result<MsgId, Error>>),
    Pause,
    Resume,
    Stop {
        close: bool,
        done: Sender<()>,
    },
}

pub(crate) struct Driver {
    pub(crate) ep: Box<CoreEndpoint>,
    pub(crate) origin: StdInstant,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmd_rx: Receiver<Command>,
    pub(crate) queue_tx: Sender<Item>,
    pub(crate) transport: Option<Box<dyn Transport>>,
}

struct State {
    link: Option<Link>,
    gone_cause: Option<String>,
    waiters: HashMap<MsgId, Sender<Result<MsgId, Error>>>,
    reply_waiters: HashMap<MsgId, Sender<Result<Message, Error>>>,
    backlog: VecDeque<Command>,
    pending: Option<Item>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn failure(reason: FailReason) -> Error {
    match reason {
        FailReason::Stopped => Error::Stopped,
        other => Error::Failed(other),
    }
}

impl Driver {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn std_instant(&self, t: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_micros(t.as_micros())
    }

    pub(crate) fn run(mut self) {
        let mut st = State {
            link: None,
            gone_cause: None,
            waiters: HashMap::new(),
            reply_waiters: HashMap::new(),
            backlog: VecDeque::new(),
            pending: None,
            buf: vec![0; CoreEndpoint::MAX_FRAME_LEN],
            out: Vec::new(),
        };
        if let Some(transport) = self.transport.take() {
            match transport.open() {
                Ok(link) => st.link = Some(link),
                Err(e) => self.lose_link(&mut st, &e),
            }
        }
        loop {
            let now = self.now();
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
            self.feed_backlog(&mut st, now);
            self.dispatch(&mut st);
            self.transmit(&mut st, now);
            self.shared.set_peer_state(self.ep.peer_state());
            if let Some(stop) = self.wait(&mut st) {
                self.stop(&mut st, stop);
                return;
            }
        }
    }

    /// Sleeps until something happens; returns a stop request.
    fn wait(&mut self, st: &mut State) -> Option<(bool, Sender<()>)> {
        let deadline = self.ep.poll_timeout().map(|t| self.std_instant(t));
        let mut sel = Select::new();
        let i_cmd = sel.recv(&self.cmd_rx);
        let i_link = st.link.as_ref().map(|l| sel.recv(&l.incoming));
        let i_queue = st.pending.is_some().then(|| sel.send(&self.queue_tx));
        let op = match deadline {
            Some(d) => match sel.select_deadline(d) {
                Ok(op) => op,
                Err(_) => return None,
            },
            None => sel.select(),
        };
        let index = op.index();
        if index == i_cmd {
            match op.recv(&self.cmd_rx) {
                Ok(cmd) => return self.command(st, cmd),
                // Every handle is gone: stop quietly.
                Err(_) => return Some((true, crossbeam_channel::bounded(1).0)),
            }
        } else if Some(index) == i_link {
            let link = st.link.as_ref()?;
            let now = self.now();
            match op.recv(&link.incoming) {
                Ok(Ok(bytes)) => {
                    self.ep.handle_bytes(now, &bytes);
                    // Take whatever else has arrived, before answering.
                    while let Some(Ok(Ok(bytes))) = st.link.as_ref().map(|l| l.incoming.try_recv())
                    {
                        self.ep.handle_bytes(now, &bytes);
                    }
                }
                Ok(Err(e)) => self.lose_link(st, &e),
                Err(_) => self.lose_link(
                    st,
                    &io::Error::new(io::ErrorKind::BrokenPipe, "transport closed"),
                ),
            }
        } else if Some(index) == i_queue {
            if let Some(item) = st.pending.take() {
                if let Err(e) = op.send(&self.queue_tx, item) {
                    st.pending = Some(e.into_inner());
                }
            }
        }
        None
    }

    fn lose_link(&mut self, st: &mut State, e: &io::Error) {
        log::warn!("peerpipe: transport lost: {e}");
        st.link = None;
        st.gone_cause.get_or_insert_with(|| e.to_string());
        self.ep.transport_lost();
    }

    fn command(&mut self, st: &mut State, cmd: Command) -> Option<(bool, Sender<()>)> {
        let now = self.now();
        match cmd {
            Command::Send { .. } => {
                st.backlog.push_back(cmd);
                self.feed_backlog(st, now);
            }
            Command::End(data, done) => {
                let r = self.ep.notify_end(now, &data).map_err(Error::from);
                self.register(st, r, Some(done), None);
            }
            Command::Abort(data, done) => {
                let r = self.ep.notify_abort(now, &data).map_err(Error::from);
                self.register(st, r, Some(done), None);
            }
            Command::Pause => self.ep.pause(now),
            Command::Resume => self.ep.resume(now),
            Command::Stop { close, done } => return Some((close, done)),
        }
        None
    }

    /// Moves queued sends into the endpoint while it has free slots.
    fn feed_backlog(&mut self, st: &mut State, now: Instant) {
        while let Some(Command::Send {
            msg,
            deadline,
            done,
            reply,
        }) = st.backlog.pop_front()
        {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                let e = Error::Failed(FailReason::TimedOut);
                Self::tell(done, reply, e);
                continue;
            }
            let core = match msg.to_core() {
                Ok(core) => core,
                Err(e) => {
                    Self::tell(done, reply, e);
                    continue;
                }
            };
            match self.ep.send(now, core, Some(Duration::from(left))) {
                Err(peerpipe_core::Error::SendQueueFull) => {
                    st.backlog.push_front(Command::Send {
                        msg,
                        deadline,
                        done,
                        reply,
                    });
                    return;
                }
                r => self.register(st, r.map_err(Error::from), done, reply),
            }
        }
    }

    fn tell(
        done: Option<Sender<Result<MsgId, Error>>>,
        reply: Option<Sender<Result<Message, Error>>>,
        e: Error,
    ) {
        match (done, reply) {
            (Some(d), _) => drop(d.send(Err(e))),
            (None, Some(r)) => drop(r.send(Err(e))),
            (None, None) => {}
        }
    }

    fn register(
        &mut self,
        st: &mut State,
        r: Result<MsgId, Error>,
        done: Option<Sender<Result<MsgId, Error>>>,
        reply: Option<Sender<Result<Message, Error>>>,
    ) {
        match r {
            Ok(id) => {
                if let Some(d) = done {
                    st.waiters.insert(id, d);
                }
                if let Some(r) = reply {
                    st.reply_waiters.insert(id, r);
                }
            }
            Err(e) => Self::tell(done, reply, e),
        }
    }

    /// Settles a send: its waiter learns the outcome; a request that failed learns it too
    /// (a delivered request waits on for its reply).
    fn outcome(st: &mut State, id: MsgId, outcome: Outcome) {
        let result = match outcome {
            Outcome::Delivered => Ok(id),
            Outcome::Failed(r) => Err(failure(r)),
        };
        if let Some(d) = st.waiters.remove(&id) {
            let _ = d.send(result);
        } else if let Err(e) = result {
            if let Some(r) = st.reply_waiters.remove(&id) {
                let _ = r.send(Err(e));
            }
        }
    }

    /// Hands outcomes to their waiters, and messages and status changes to the callbacks or
    /// the application's queue, while the queue has room.
    fn dispatch(&mut self, st: &mut State) {
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            Self::outcome(st, id, outcome);
        }
        while st.pending.is_none() {
            let Some(event) = self.ep.poll_event() else {
                break;
            };
            let item = match event {
                Event::SendOutcome { id, outcome } => {
                    Self::outcome(st, id, outcome);
                    None
                }
                Event::Message(m) => Self::route_reply(st, Message::from_core(m)),
                Event::End(data) => Some(Item::Status(Status::End(data.to_vec()))),
                Event::Abort(data) => Some(Item::Status(Status::Abort(data.to_vec()))),
                Event::Gone(reason) => {
                    let cause = if reason == GoneReason::TransportLost {
                        st.gone_cause.clone()
                    } else {
                        None
                    };
                    Some(Item::Status(Status::Gone { reason, cause }))
                }
                Event::PeerRestarted => Some(Item::Status(Status::PeerRestarted)),
                _ => None,
            };
            let Some(item) = item else { continue };
            if let Some(item) = self.shared.callback(item) {
                match self.queue_tx.try_send(item) {
                    Ok(()) => {}
                    Err(crossbeam_channel::TrySendError::Full(item)) => st.pending = Some(item),
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
                }
            }
        }
    }

    /// A reply someone waits for goes to them; anything else is for the application.
    fn route_reply(st: &mut State, m: Message) -> Option<Item> {
        let Some(waiter) = m.req_id().and_then(|r| st.reply_waiters.remove(&r)) else {
            return Some(Item::Message(m));
        };
        match waiter.send(Ok(m)) {
            Ok(()) => None,
            // The requester gave up: deliver the reply like any message.
            Err(e) => e.into_inner().ok().map(Item::Message),
        }
    }

    fn transmit(&mut self, st: &mut State, now: Instant) {
        st.out.clear();
        while let Ok(Some(n)) = self.ep.poll_transmit(now, &mut st.buf) {
            st.out.extend_from_slice(st.buf.get(..n).unwrap_or(&[]));
        }
        if st.out.is_empty() {
            return;
        }
        let Some(link) = st.link.as_mut() else { return };
        if let Err(e) = link
            .writer
            .write_all(&st.out)
            .and_then(|()| link.writer.flush())
        {
            self.lose_link(st, &e);
        }
    }

    fn stop(&mut self, st: &mut State, (close, done): (bool, Sender<()>)) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.ep.stop();
        while let Some((id, outcome)) = self.ep.poll_outcome() {
            Self::outcome(st, id, outcome);
        }
        for cmd in st.backlog.drain(..) {
            if let Command::Send { done, reply, .. } = cmd {
                Self::tell(done, reply, Error::Stopped);
            }
        }
        for (_, r) in st.reply_waiters.drain() {
            let _ = r.send(Err(Error::Stopped));
        }
        if let Some(link) = st.link.take() {
            if close {
                if let Some(closer) = link.closer {
                    closer();
                }
            }
        }
        let _ = done.send(());
    }
}
