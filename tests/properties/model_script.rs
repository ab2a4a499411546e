//! The script a model run follows: commands and link events, and how the model predicts and
//! applies each.

use peerpipe_core::wire::{Decoder, Item};
use peerpipe_core::{CloseReason, Duration, Error, Message, MessageKind, MsgId, PeerState};
use proptest::sample::Index;

use crate::model::{scripted, Inc, Rec, World};
use crate::support::{ms, Ep, MAX_RESTARTS, P, T, TOPICS};
use crate::tap::{tag_of, tagged, ItemRec};

pub(crate) enum Cmd {
    Msg(Message<P, T>),
    /// A request from the sender's source, longer than one frame.
    Large(&'static str, Vec<u8>),
    End(Vec<u8>),
    Abort(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Send {
        side: usize,
        topic: usize,
        len: usize,
        timeout: Option<u64>,
    },
    /// A request of more than one frame, from the sender's source.
    SendLarge {
        side: usize,
        topic: usize,
        len: usize,
        timeout: Option<u64>,
    },
    Reply {
        side: usize,
        pick: Index,
        len: usize,
        timeout: Option<u64>,
    },
    Close {
        side: usize,
        abort: bool,
        len: usize,
    },
    Advance(u64),
    Hold {
        dir: usize,
        on: bool,
    },
    Latency {
        dir: usize,
        ms: u64,
    },
    Deliver {
        dir: usize,
        n: usize,
        split: Option<Index>,
    },
    Drop {
        dir: usize,
        at: Index,
    },
    Duplicate {
        dir: usize,
        at: Index,
    },
    Corrupt {
        dir: usize,
        at: Index,
        pos: Index,
        how: u8,
    },
    Reorder {
        dir: usize,
        at: Index,
        with: Index,
    },
    Garbage {
        dir: usize,
        bytes: Vec<u8>,
    },
    Cut {
        dir: usize,
        on: bool,
    },
    Pause(usize),
    Resume(usize),
    Stop(usize),
    Restart {
        side: usize,
        graceful: bool,
    },
    Polls {
        side: usize,
        on: bool,
    },
    TransportLost(usize),
}

impl<const RX: usize, const TX: usize> World<RX, TX> {
    // ---- commands ------------------------------------------------------------------------

    pub(crate) fn expected_send(
        &self,
        side: usize,
        timeout: Option<Duration>,
    ) -> Result<u64, Error> {
        let inc = self.incs[side].last().unwrap();
        if inc.stopped {
            return Err(Error::Stopped);
        }
        if let Some(c) = inc.local_close {
            return Err(Error::Closed(c));
        }
        match self.eps[side].peer_state() {
            PeerState::Gone => return Err(Error::Closed(CloseReason::PeerGone)),
            PeerState::Ended => return Err(Error::Closed(CloseReason::PeerEnded)),
            PeerState::Aborted => return Err(Error::Closed(CloseReason::PeerAborted)),
            _ => {}
        }
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::ZeroTimeout);
        }
        if inc.outstanding >= TX {
            return Err(Error::SendQueueFull);
        }
        Ok(inc.next_seq)
    }

    pub(crate) fn send(&mut self, side: usize, cmd: Cmd, timeout: Option<u64>) {
        let timeout = timeout.map(ms);
        let expected = self.expected_send(side, timeout);
        let now = self.now;
        let ep = &mut self.eps[side];
        let (item, payload, result) = match cmd {
            Cmd::Msg(m) => {
                let item = match m.kind() {
                    MessageKind::Request => ItemRec::Request(m.topic().to_owned()),
                    MessageKind::Reply { req_id } => ItemRec::Reply(m.topic().to_owned(), req_id.0),
                };
                let payload = m.data().to_vec();
                (item, payload, ep.send(now, m, timeout))
            }
            Cmd::Large(topic, payload) => {
                let r = ep.send_from(now, Item::Request { topic }, payload.len() as u64, timeout);
                if let Ok(id) = r {
                    self.stores[side].insert(id, payload.clone());
                }
                (ItemRec::Request(topic.to_owned()), payload, r)
            }
            Cmd::End(d) => {
                let r = ep.notify_end(now, &d);
                (ItemRec::End, d, r)
            }
            Cmd::Abort(d) => {
                let r = ep.notify_abort(now, &d);
                (ItemRec::Abort, d, r)
            }
        };
        let result = result.map(|id| id.0);
        assert_eq!(result, expected, "side {side}: send result");
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                self.refused.push(e);
                return;
            }
        };
        let tag = self.recs.len();
        assert_eq!(tag_of(&payload), tag);
        let k = self.cur(side);
        let cfg = self.cfg[side];
        let inc = self.inc(side);
        inc.next_seq += 1;
        inc.outstanding += 1;
        match item {
            ItemRec::End => inc.local_close = Some(CloseReason::LocalEnd),
            ItemRec::Abort => inc.local_close = Some(CloseReason::LocalAbort),
            _ => {}
        }
        let session = inc.session;
        let in_parts = payload.len() > P;
        self.recs.push(Rec {
            from: side,
            inc: k,
            session,
            id,
            item,
            payload,
            sent_at: now,
            timeout: timeout.unwrap_or(cfg.default_request_timeout.into()),
            outcome: None,
            in_parts,
            transmissions: 0,
            frag_tx: Default::default(),
            retries_before: self.retries[side],
            accepted_by: Vec::new(),
            begun_by: Vec::new(),
            delivered_by: Vec::new(),
        });
        assert!(self.by_seq.insert((side, session, id), tag).is_none());
    }

    pub(crate) fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Send {
                side,
                topic,
                len,
                timeout,
            } => {
                let payload = tagged(self.recs.len(), len);
                let m = Message::request(TOPICS[topic], &payload).unwrap();
                self.send(side, Cmd::Msg(m), timeout);
            }
            Op::SendLarge {
                side,
                topic,
                len,
                timeout,
            } => {
                let payload = tagged(self.recs.len(), len);
                self.send(side, Cmd::Large(TOPICS[topic], payload), timeout);
            }
            Op::Reply {
                side,
                pick,
                len,
                timeout,
            } => {
                let payload = tagged(self.recs.len(), len);
                let requests = &self.incs[side].last().unwrap().requests;
                let (topic, req) = if requests.is_empty() {
                    (TOPICS[0].to_owned(), pick.index(100) as u64)
                } else {
                    requests[pick.index(requests.len())].clone()
                };
                let m = Message::reply(&topic, &payload, MsgId(req)).unwrap();
                self.send(side, Cmd::Msg(m), timeout);
            }
            Op::Close { side, abort, len } => {
                let data = tagged(self.recs.len(), len);
                let cmd = if abort {
                    Cmd::Abort(data)
                } else {
                    Cmd::End(data)
                };
                self.send(side, cmd, None);
            }
            Op::Advance(d) => self.advance(ms(d)),
            Op::Hold { dir, on } => self.held[dir] = on,
            Op::Latency { dir, ms: l } => self.links[dir].set_config(scripted(ms(l))),
            Op::Deliver { dir, n, split } => {
                for _ in 0..n {
                    let Some(bytes) = self.links[dir].take_next() else {
                        break;
                    };
                    match split {
                        Some(at) => {
                            let (head, tail) = bytes.split_at(at.index(bytes.len()));
                            self.arrive(1 - dir, &[head, tail]);
                        }
                        None => self.arrive(1 - dir, &[&bytes]),
                    }
                }
            }
            Op::Drop { dir, at } => {
                let n = self.links[dir].in_flight_len();
                if n > 0 {
                    self.links[dir].drop_at(at.index(n));
                }
            }
            Op::Duplicate { dir, at } => {
                let n = self.links[dir].in_flight_len();
                if n > 0 {
                    self.links[dir].duplicate_at(at.index(n));
                }
            }
            Op::Corrupt { dir, at, pos, how } => {
                let n = self.links[dir].in_flight_len();
                if n > 0 {
                    self.links[dir].corrupt_at(at.index(n), |bytes| {
                        let p = pos.index(bytes.len());
                        match how % 4 {
                            0 => bytes[p] ^= 1 << (how % 8),
                            1 => bytes[p] ^= 0b1010_0000,
                            2 => bytes.insert(p, how),
                            _ => {
                                bytes.remove(p);
                            }
                        }
                    });
                }
            }
            Op::Reorder { dir, at, with } => {
                let n = self.links[dir].in_flight_len();
                if n > 0 {
                    // Arrival instants stay with the positions; contents swap.
                    self.links[dir].swap(at.index(n), with.index(n));
                }
            }
            Op::Garbage { dir, ref bytes } => self.feed(1 - dir, bytes),
            // Cutting also loses what is in flight.
            Op::Cut { dir, on } => self.links[dir].set_cut(on),
            Op::Pause(s) => self.eps[s].pause(now),
            Op::Resume(s) => self.eps[s].resume(now),
            Op::Stop(s) => {
                let (held, discarded) = (
                    self.eps[s].received_len() as u64,
                    self.eps[s].stats().discarded_on_stop,
                );
                let stopped = self.eps[s].is_stopped();
                self.eps[s].stop();
                self.inc(s).stopped = true;
                assert_eq!(self.eps[s].poll_timeout(), None);
                assert_eq!(self.eps[s].received_len(), 0, "stop keeps received items");
                if !stopped {
                    let now_discarded = self.eps[s].stats().discarded_on_stop;
                    assert_eq!(now_discarded, discarded + held);
                }
            }
            Op::Restart { side, graceful } => {
                if self.incs[side].len() > MAX_RESTARTS {
                    return;
                }
                if graceful {
                    self.eps[side].stop();
                    self.inc(side).stopped = true;
                    self.drain(side);
                    assert_eq!(self.eps[side].pending_sends(), 0);
                    assert_eq!(self.inc(side).outstanding, 0);
                }
                let inc = self.inc(side);
                inc.replaced = true;
                inc.graceful = graceful;
                let session = self.session(side, self.incs[side].len());
                self.eps[side] = Ep::new(self.cfg[side], session, now).unwrap();
                self.mirrors[side] = Decoder::new();
                self.stores[side] = Default::default();
                self.partial[side] = None;
                self.owed[side] = false;
                self.retry_owed[side] = false;
                self.incs[side].push(Inc {
                    session,
                    ..Inc::default()
                });
            }
            Op::Polls { side, on } => self.polls[side] = on,
            Op::TransportLost(s) => {
                self.eps[s].transport_lost();
                self.inc(s).transport_lost = true;
            }
        }
        self.step();
    }
}
