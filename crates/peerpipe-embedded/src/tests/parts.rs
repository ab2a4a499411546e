//! Messages of any size: sent from a `Source` (held in memory or generated), received as
//! `Part`s, and cut at the receiver when the source fails.

use peerpipe_core::Outcome;

use super::*;

/// A message's bytes in memory, as a [`Source`] for the message `id`; unreadable from
/// `fail_from` on. Counts the bytes it was asked for.
struct Held {
    id: Option<MsgId>,
    data: Vec<u8>,
    fail_from: Option<u64>,
    asked: u64,
}

impl Held {
    fn new(data: Vec<u8>) -> Self {
        Held {
            id: None,
            data,
            fail_from: None,
            asked: 0,
        }
    }
}

impl Source for Held {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        if Some(id) != self.id || self.fail_from.is_some_and(|f| offset >= f) {
            return None;
        }
        self.asked += len as u64;
        self.data.get(usize::try_from(offset).ok()?..)?.get(..len)
    }
}

/// Byte `i` of a generated message (what the QEMU firmware's `gen` sends too).
fn generated(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7) & 0xFF) as u8
}

/// Messages made up on the fly, one fragment at a time: any id in `ids`, never held.
struct Generator {
    ids: Vec<MsgId>,
    buf: [u8; 128],
}

impl Source for Generator {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        if !self.ids.contains(&id) {
            return None;
        }
        let out = self.buf.get_mut(..len)?;
        for (i, b) in out.iter_mut().enumerate() {
            *b = generated(offset + i as u64);
        }
        Some(out)
    }
}

/// A message put together from its parts, with the checks a receiver makes.
#[derive(Default)]
struct Assembled {
    id: Option<MsgId>,
    kind: Option<PartKind>,
    topic: String,
    total: u64,
    data: Vec<u8>,
    parts: usize,
    done: bool,
}

impl Assembled {
    fn take(&mut self, part: &Part) {
        assert!(!self.done, "a part after the last");
        if part.is_first() {
            assert!(self.id.is_none(), "a second first part");
            self.id = Some(part.id());
            self.kind = Some(part.kind());
            self.topic = part.topic().to_string();
            self.total = part.total();
        }
        assert_eq!(
            Some(part.id()),
            self.id,
            "parts of one message follow each other"
        );
        assert_eq!(Some(part.kind()), self.kind);
        assert_eq!(part.topic(), self.topic);
        assert_eq!(part.total(), self.total);
        assert_eq!(
            part.offset(),
            self.data.len() as u64,
            "parts in order, no gap"
        );
        assert!(!part.data().is_empty() && part.data().len() <= 128);
        self.data.extend_from_slice(part.data());
        self.parts += 1;
        self.done = part.is_last();
        assert_eq!(self.done, self.data.len() as u64 == self.total);
    }
}

/// `a` sends a request of `len` bytes from a [`Held`] source over ports taking `tx_per_poll`
/// bytes per poll; `b` takes it in parts and answers on the last one with the message's
/// length and a checksum (inline). Returns what `b` assembled and the reply `a` got.
fn sourced_request(tx_per_poll: Option<usize>, len: usize) -> (Assembled, Vec<u8>, u64) {
    let (mut a, mut b) = drivers(tx_per_poll);
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 256) as u8).collect();
    let mut held = Held::new(data);
    let id = a
        .endpoint_mut()
        .send_from(
            Instant::ZERO,
            Item::Request { topic: "big" },
            len as u64,
            None,
        )
        .unwrap();
    held.id = Some(id);
    let mut got = Assembled::default();
    let (mut delivered, mut reply) = (false, None);
    for ms in 0..5_000 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll_with(now, &mut held);
        b.poll(now);
        while let Some(event) = b.endpoint_mut().poll_event() {
            match event {
                Event::Part(part) => {
                    got.take(&part);
                    if part.is_last() {
                        let sum = got
                            .data
                            .iter()
                            .fold(0u32, |s, &x| s.rotate_left(3) ^ u32::from(x));
                        let mut answer = (got.total as u32).to_le_bytes().to_vec();
                        answer.extend_from_slice(&sum.to_le_bytes());
                        let reply = Message::reply("big", &answer, part.id()).unwrap();
                        b.endpoint_mut().send(now, reply, None).unwrap();
                    }
                }
                Event::SendOutcome { outcome, .. } => assert_eq!(outcome, Outcome::Delivered),
                other => panic!("b: unexpected {other:?}"),
            }
        }
        while let Some(event) = a.endpoint_mut().poll_event() {
            match event {
                Event::SendOutcome { id: done, outcome } => {
                    assert_eq!((done, outcome), (id, Outcome::Delivered));
                    delivered = true;
                }
                Event::Message(m) => {
                    assert_eq!(m.req_id(), Some(id));
                    reply = Some(m.data().to_vec());
                }
                other => panic!("a: unexpected {other:?}"),
            }
        }
        if delivered && reply.is_some() && !a.tx_blocked() && !b.tx_blocked() {
            break;
        }
    }
    assert!(delivered, "the request was delivered");
    assert_eq!(got.data, held.data, "the message arrived whole and intact");
    (got, reply.expect("a reply"), held.asked)
}

#[test]
fn a_request_from_a_source_arrives_in_parts() {
    for tx_per_poll in [None, Some(7)] {
        for len in [129usize, 1000, 10_000] {
            let (got, reply, asked) = sourced_request(tx_per_poll, len);
            assert_eq!(got.kind, Some(PartKind::Request));
            assert_eq!(got.topic, "big");
            assert_eq!(got.parts, len.div_ceil(128), "fragments of PAYLOAD bytes");
            let sum = got
                .data
                .iter()
                .fold(0u32, |s, &x| s.rotate_left(3) ^ u32::from(x));
            assert_eq!(reply[..4], (len as u32).to_le_bytes());
            assert_eq!(reply[4..], sum.to_le_bytes());
            // Each fragment was read when it was encoded (again for a resend), never all at
            // once: at least the message once.
            assert!(asked >= len as u64, "{asked} of {len}");
        }
    }
}

#[test]
fn a_generated_reply_streams_back_in_parts() {
    let (mut a, mut b) = drivers(Some(16));
    let mut generator = Generator {
        ids: Vec::new(),
        buf: [0; 128],
    };
    let len: u32 = 20_000;
    let id = a
        .endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("gen", &len.to_le_bytes()).unwrap(),
            None,
        )
        .unwrap();
    let mut got = Assembled::default();
    let mut b_outcomes = Vec::new();
    for ms in 0..10_000 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll_with(now, &mut generator);
        while let Some(event) = b.endpoint_mut().poll_event() {
            match event {
                Event::Message(m) if m.topic() == "gen" => {
                    let n = u32::from_le_bytes(m.data().try_into().unwrap());
                    let reply = b
                        .endpoint_mut()
                        .send_from(
                            now,
                            Item::Reply {
                                topic: "gen",
                                req_id: m.id().0,
                            },
                            u64::from(n),
                            None,
                        )
                        .unwrap();
                    generator.ids.push(reply);
                }
                Event::SendOutcome { id, outcome } => {
                    // The source may forget a message once its outcome is known.
                    generator.ids.retain(|&g| g != id);
                    b_outcomes.push(outcome);
                }
                other => panic!("b: unexpected {other:?}"),
            }
        }
        while let Some(event) = a.endpoint_mut().poll_event() {
            match event {
                Event::Part(part) => got.take(&part),
                Event::SendOutcome { outcome, .. } => assert_eq!(outcome, Outcome::Delivered),
                other => panic!("a: unexpected {other:?}"),
            }
        }
        if got.done && b_outcomes.len() == 1 {
            break;
        }
    }
    assert!(
        got.done,
        "the reply arrived whole ({} of {len} B)",
        got.data.len()
    );
    assert_eq!(got.kind, Some(PartKind::Reply { req_id: id }));
    assert_eq!(got.topic, "gen");
    assert_eq!(got.total, u64::from(len));
    assert!(got
        .data
        .iter()
        .enumerate()
        .all(|(i, &x)| x == generated(i as u64)));
    assert_eq!(b_outcomes, [Outcome::Delivered]);
    assert!(generator.ids.is_empty());
}

#[test]
fn a_message_whose_source_fails_is_cut_at_the_receiver() {
    let (mut a, mut b) = drivers(None);
    let mut held = Held::new(vec![0x42; 4096]);
    held.fail_from = Some(1024);
    let id = a
        .endpoint_mut()
        .send_from(Instant::ZERO, Item::Request { topic: "cut" }, 4096, None)
        .unwrap();
    held.id = Some(id);
    let (mut failed, mut cut, mut received) = (None, None, 0u64);
    for ms in 0..20_000 {
        let now = Instant::from_millis(ms);
        a.poll_with(now, &mut held);
        b.poll(now);
        while let Some(event) = b.endpoint_mut().poll_event() {
            match event {
                Event::Part(part) => {
                    assert_eq!(part.offset(), received);
                    received += part.data().len() as u64;
                }
                Event::Cut { id: gone, reason } => cut = Some((gone, reason)),
                other => panic!("b: unexpected {other:?}"),
            }
        }
        while let Some(event) = a.endpoint_mut().poll_event() {
            match event {
                Event::SendOutcome { id: done, outcome } => {
                    assert_eq!(done, id);
                    failed = Some(outcome);
                }
                other => panic!("a: unexpected {other:?}"),
            }
        }
        if failed.is_some() && cut.is_some() {
            break;
        }
    }
    assert_eq!(
        failed,
        Some(Outcome::Failed(peerpipe_core::FailReason::Unreadable))
    );
    assert_eq!(received, 1024, "the parts before the source failed");
    let (gone, reason) = cut.expect("a Cut at the receiver");
    assert_eq!(reason, CutReason::GivenUp);
    assert_eq!(
        gone, id,
        "the receiver names the message by its sender's id"
    );
}
