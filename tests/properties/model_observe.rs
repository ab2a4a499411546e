//! The model's observations: the tap on every frame emitted, the mirror of each stream
//! decoder, and the events each application takes, each checked as it happens.

use peerpipe_core::wire::{Decoder, Frag, WireError};
use peerpipe_core::{
    Duration, Event, FailReason, GoneReason, MessageKind, MsgId, Outcome, PartKind, PeerState,
};

use crate::model::{Rec, Status, World};
use crate::support::{F, P, T};
use crate::tap::{decode_all, tag_of, ItemRec, Seen};

impl<const RX: usize, const TX: usize> World<RX, TX> {
    // ---- the tap and the mirror ----------------------------------------------------------

    pub(crate) fn on_transmit(&mut self, s: usize, bytes: Vec<u8>) {
        let frames = decode_all(&mut Decoder::<F>::new(), &bytes);
        let [Ok(frame)] = frames.as_slice() else {
            panic!("side {s} emitted {frames:?}");
        };
        let session = self.incs[s].last().unwrap().session;
        assert_eq!(
            frame.session(),
            session,
            "side {s}: frame of a foreign session"
        );
        if let Seen::Data {
            seq,
            floor,
            id,
            item,
            frag,
            payload,
            ..
        } = frame
        {
            self.owed[s] = false;
            let cfg = self.cfg[s];
            let tag = *self
                .by_seq
                .get(&(s, session, *id))
                .unwrap_or_else(|| panic!("side {s}: DATA id {id} was never sent"));
            let rec = &mut self.recs[tag];
            let offset = match *frag {
                Frag::Whole => {
                    assert_eq!(payload.len(), rec.payload.len(), "a whole message");
                    0
                }
                Frag::First { total } => {
                    assert_eq!(total, rec.payload.len() as u64, "total of a first fragment");
                    0
                }
                Frag::Next { offset, last } => {
                    let end = offset as usize + payload.len();
                    assert_eq!(last, end == rec.payload.len(), "last fragment flag");
                    offset
                }
            };
            assert!(
                payload.len() <= P && rec.in_parts == (*frag != Frag::Whole),
                "fragments of at most P bytes, only for messages longer than one frame"
            );
            if !matches!(frag, Frag::Next { .. }) {
                assert_eq!(item, &rec.item, "DATA item");
            }
            let at = offset as usize;
            assert_eq!(
                &payload[..],
                &rec.payload[at..at + payload.len()],
                "DATA content at {offset}"
            );
            assert!(floor <= seq, "floor {floor} above pending seq {seq}");
            assert!(rec.outcome.is_none(), "DATA {seq} sent after its outcome");
            // Per fragment, that is per seq: a message sent again from its first byte to a
            // restarted peer takes new fragments.
            let n = rec.frag_tx.entry(*seq).or_default();
            *n += 1;
            let n = *n;
            rec.transmissions = rec.transmissions.max(n);
            let retries = self.retries[s] - rec.retries_before;
            let by_time =
                |r: Duration| (rec.timeout.as_micros() / r.as_micros()) as u32 + 1 + retries;
            let bound = match (cfg.resend_interval.map(Duration::from), cfg.max_resends) {
                (None, _) => 1,
                (Some(r), Some(max)) => (max + 1).min(by_time(r)),
                (Some(r), None) => by_time(r),
            };
            assert!(
                n <= bound,
                "side {s}: seq {seq} transmitted {n} times, bound {bound}"
            );
        }
        if matches!(frame, Seen::Ack { retry: true, .. }) {
            self.retry_owed[s] = false;
        }
        self.links[s].send(self.now, &bytes);
    }

    /// A frame arrives at side `to`, in chunks.
    ///
    /// Session ids are random, so they carry no order: an endpoint that has seen a newer
    /// session of its peer takes a frame of an older one it never saw for yet another restart
    /// (and then ignores the newer, live session as replaced). Real links do not hold frames
    /// across two restarts; the model loses such a frame here instead of delivering it. The
    /// session is the one the frame carries; a frame damaged beyond decoding carries none and
    /// is fed as it is (the endpoint must discard it).
    pub(crate) fn arrive(&mut self, to: usize, chunks: &[&[u8]]) {
        let frames = decode_all(&mut Decoder::<F>::new(), &chunks.concat());
        if let Some(session) = frames
            .iter()
            .find_map(|f| f.as_ref().ok().map(Seen::session))
        {
            let met = &mut self.incs[to].last_mut().unwrap().met;
            if !met.contains(&session) {
                if met.iter().any(|&m| m > session) {
                    return;
                }
                met.push(session);
            }
        }
        for chunk in chunks {
            self.feed(to, chunk);
        }
    }

    /// Feeds bytes to side `to`, learning from its counters which item it accepted.
    pub(crate) fn feed(&mut self, to: usize, bytes: &[u8]) {
        let before = *self.eps[to].stats();
        let peer_before = self.eps[to].peer_session();
        self.eps[to].handle_bytes(self.now, bytes);
        let accepted = self.eps[to].stats().accepted - before.accepted;
        if self.eps[to].peer_session() != peer_before {
            // Refusals of an old peer session are not retried by the new one, and what the
            // old one asked to be retried is moot (messages in parts to it failed, whole
            // ones go on to the new one, whose capabilities come first).
            self.retry_owed[to] = false;
            self.owed[to] = false;
        }
        if self.eps[to].stats().refused_full > before.refused_full {
            self.retry_owed[to] = true;
        }
        let frames = decode_all(&mut self.mirrors[to], bytes);
        self.check_retry(to, &frames);
        let datas: Vec<&Seen> = frames
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|f| matches!(f, Seen::Data { .. }))
            .collect();
        match accepted {
            0 => {}
            1 => {
                let [Seen::Data {
                    session,
                    seq,
                    id,
                    item,
                    frag,
                    payload,
                    ..
                }] = datas.as_slice()
                else {
                    panic!("side {to} accepted one item from {frames:?}");
                };
                let from = 1 - to;
                let tag = *self
                    .by_seq
                    .get(&(from, *session, *id))
                    .unwrap_or_else(|| panic!("side {to} accepted id {id} (seq {seq}) never sent"));
                let k = self.cur(to);
                let rec = &mut self.recs[tag];
                // A message counts as accepted with its last fragment (its content was
                // checked fragment by fragment when it was sent).
                // A whole message is accepted once per incarnation. The last fragment of a
                // message in parts may be accepted twice: once as the stray rest of the
                // message a restarted receiver never saw begin, then again when the sender,
                // told of the restart, sends the message again from its first byte (that it
                // is delivered once is checked on delivery).
                match frag {
                    Frag::Whole => {
                        assert_eq!((item, payload), (&rec.item, &rec.payload));
                        assert!(
                            !rec.accepted_by.contains(&k),
                            "side {to} accepted seq {seq} of {session:#x} twice"
                        );
                    }
                    Frag::Next { last: true, .. } => {}
                    Frag::First { .. } => {
                        if !rec.begun_by.contains(&k) {
                            rec.begun_by.push(k);
                        }
                        return;
                    }
                    Frag::Next { .. } => return,
                }
                if !rec.accepted_by.contains(&k) {
                    rec.accepted_by.push(k);
                }
            }
            n => panic!("side {to} accepted {n} items from one chunk"),
        }
    }

    /// Notes which retries side `to` owes after these frames reached it (see `owed`).
    pub(crate) fn check_retry(&mut self, to: usize, frames: &[Result<Seen, WireError>]) {
        let ep = &self.eps[to];
        let own = self.incs[to].last().unwrap().session;
        let cfg = self.cfg[to];
        let k = self.cur(to);
        for f in frames.iter().filter_map(|f| f.as_ref().ok()) {
            let from_peer = ep.peer_session() == Some(f.session());
            match *f {
                Seen::Ack {
                    to_session,
                    ack,
                    retry: true,
                    ..
                } if from_peer && to_session == own && ep.peer_state() == PeerState::Up => {
                    self.retries[to] += 1;
                    // The lowest item still in flight as the sender knows it (not settled, not
                    // timed out, not acknowledged by this ACK) always may go: a retry if it
                    // has resends left, or its first transmission. (Whether the peer took it
                    // otherwise does not count: a restarted peer may take the stray last
                    // fragment of a message without acknowledging the message, which then
                    // keeps its fragment slots until it times out, with no resends left.)
                    let acked = |r: &&Rec| {
                        !r.frag_tx.is_empty() && r.frag_tx.keys().all(|&seq| ack.covers(seq))
                    };
                    let lowest = self
                        .recs
                        .iter()
                        .filter(|r| {
                            r.from == to
                                && r.inc == k
                                && r.outcome.is_none()
                                && r.sent_at + r.timeout > self.now
                        })
                        .filter(|r| !acked(r))
                        .min_by_key(|r| r.id);
                    // (A send the application has not polled may be settled already: hence
                    // also `pending_sends`.)
                    self.owed[to] = cfg.resend_interval.is_some()
                        && ep.pending_sends() > 0
                        && lowest.is_some_and(|r| {
                            r.transmissions == 0
                                || cfg.max_resends.is_none_or(|m| r.transmissions <= m)
                        });
                }
                // A later ACK or DATA may settle what was owed (acknowledged, or the peer's END).
                Seen::Ack { .. } | Seen::Data { .. } if from_peer => self.owed[to] = false,
                _ => {}
            }
        }
    }

    // ---- events --------------------------------------------------------------------------

    pub(crate) fn on_event(&mut self, s: usize, e: Event<P, T>) {
        let k = self.cur(s);
        let now = self.now;
        let cfg = self.cfg[s];
        let inc = &self.incs[s][k];
        assert!(
            !inc.stopped || matches!(e, Event::SendOutcome { .. }),
            "side {s}: {e:?} after stop"
        );
        match e {
            Event::SendOutcome { id, outcome } => {
                let session = inc.session;
                let stopped = inc.stopped;
                let tag = *self
                    .by_seq
                    .get(&(s, session, id.0))
                    .unwrap_or_else(|| panic!("side {s}: outcome for unknown id {id:?}"));
                let rec = &mut self.recs[tag];
                assert_eq!(rec.outcome, None, "side {s}: second outcome for {id:?}");
                rec.outcome = Some(outcome);
                match outcome {
                    Outcome::Delivered => assert!(
                        !rec.accepted_by.is_empty(),
                        "side {s}: {id:?} Delivered but never accepted"
                    ),
                    Outcome::Failed(FailReason::TimedOut) => assert!(
                        now >= rec.sent_at + rec.timeout,
                        "side {s}: {id:?} timed out early"
                    ),
                    Outcome::Failed(FailReason::ResendsExhausted) => {
                        assert!(cfg.resend_interval.is_some());
                        assert_eq!(Some(rec.transmissions), cfg.max_resends.map(|m| m + 1));
                    }
                    Outcome::Failed(FailReason::Stopped) => assert!(stopped),
                    Outcome::Failed(FailReason::PeerRestarted) => assert!(
                        rec.in_parts,
                        "side {s}: a whole message failed for a peer restart"
                    ),
                    Outcome::Failed(_) => {}
                }
                self.inc(s).outstanding -= 1;
            }
            Event::Message(m) => {
                let tag = tag_of(m.data());
                let item = match m.kind() {
                    MessageKind::Request => ItemRec::Request(m.topic().to_owned()),
                    MessageKind::Reply { req_id } => ItemRec::Reply(m.topic().to_owned(), req_id.0),
                };
                self.delivered(s, tag, &item, m.data());
                let rec = &self.recs[tag];
                assert_eq!(m.id(), MsgId(rec.id), "delivered id");
                if m.is_request() {
                    let r = (m.topic().to_owned(), rec.id);
                    self.inc(s).requests.push(r);
                }
            }
            Event::Part(part) => {
                if part.is_first() {
                    assert!(
                        self.partial[s].is_none(),
                        "side {s}: a message began inside another"
                    );
                    let item = match part.kind() {
                        PartKind::Request => ItemRec::Request(part.topic().to_owned()),
                        other => panic!("side {s}: a part of {other:?}, never sent in parts"),
                    };
                    let tag = tag_of(part.data());
                    self.partial[s] = Some((tag, part.id().0, item, Vec::new()));
                }
                let (tag, id, _, data) = self.partial[s]
                    .as_mut()
                    .unwrap_or_else(|| panic!("side {s}: a part with no first part"));
                assert_eq!((part.id().0, part.offset()), (*id, data.len() as u64));
                let tag = *tag;
                data.extend_from_slice(part.data());
                assert_eq!(part.total(), self.recs[tag].payload.len() as u64);
                if part.is_last() {
                    let (tag, id, item, data) = self.partial[s].take().unwrap();
                    self.delivered(s, tag, &item, &data);
                    assert_eq!(self.recs[tag].id, id, "delivered id");
                    if let ItemRec::Request(topic) = item {
                        self.inc(s).requests.push((topic, id));
                    }
                }
            }
            Event::Cut { id, .. } => {
                let (tag, partial_id, ..) = self.partial[s]
                    .take()
                    .unwrap_or_else(|| panic!("side {s}: a cut with no message in parts"));
                assert_eq!(id.0, partial_id);
                // Only a message its sender did not see delivered is cut, or the copy of one
                // that an earlier incarnation of this side took: a duplicate of its first
                // fragment reached this incarnation after a restart, and the sender, whose
                // message was delivered, sends the rest no more.
                let rec = &self.recs[tag];
                let k = self.cur(s);
                assert!(
                    rec.outcome != Some(Outcome::Delivered)
                        || (!rec.accepted_by.is_empty() && !rec.accepted_by.contains(&k)),
                    "side {s}: cut a delivered message"
                );
            }
            Event::End(data) => {
                self.delivered(s, tag_of(&data), &ItemRec::End, &data);
                self.inc(s).status = Status::Ended;
            }
            Event::Abort(data) => {
                self.delivered(s, tag_of(&data), &ItemRec::Abort, &data);
                self.inc(s).status = Status::Aborted;
            }
            Event::Gone(reason) => {
                let coalesced = self.eps[s].stats().status_coalesced > 0;
                let inc = self.inc(s);
                assert!(
                    !inc.gone_in_segment || coalesced,
                    "side {s}: GONE twice for one peer session"
                );
                if reason == GoneReason::TransportLost {
                    assert!(inc.transport_lost, "side {s}: TransportLost never reported");
                }
                inc.gone_in_segment = true;
                inc.status = Status::Gone;
            }
            Event::PeerRestarted => {
                let inc = self.inc(s);
                inc.gone_in_segment = false;
                inc.status = Status::Open;
            }
            e => panic!("side {s}: unexpected event {e:?}"),
        }
    }

    pub(crate) fn delivered(&mut self, s: usize, tag: usize, item: &ItemRec, payload: &[u8]) {
        let k = self.cur(s);
        let rec = self
            .recs
            .get_mut(tag)
            .unwrap_or_else(|| panic!("side {s}: delivered tag {tag} never sent"));
        assert_eq!(rec.from, 1 - s, "side {s}: delivered its own item");
        assert_eq!(
            (item, payload),
            (&rec.item, &rec.payload[..]),
            "delivered content"
        );
        assert!(
            rec.accepted_by.contains(&k),
            "side {s}: delivered tag {tag} it never accepted"
        );
        assert!(
            !rec.delivered_by.contains(&k),
            "side {s}: delivered tag {tag} twice"
        );
        rec.delivered_by.push(k);
        let (session, id) = (rec.session, rec.id);
        let last = self.inc(s).last_id.insert(session, id);
        assert!(
            last.is_none_or(|l| l < id),
            "side {s}: id {id} of {session:#x} delivered after {last:?}"
        );
    }
}
