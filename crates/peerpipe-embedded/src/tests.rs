//! Two drivers against each other over an in-memory nb serial pair.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use embedded_hal_nb::serial::{self, Error as _, ErrorKind, ErrorType};
use peerpipe_core::{Event, Message, Outcome, PeerState};

use super::*;

#[derive(Debug)]
struct MockError;

impl serial::Error for MockError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Overrun
    }
}

/// One direction of the wire.
type Lane = Rc<RefCell<VecDeque<u8>>>;

/// One end of an in-memory serial pair. `tx_per_poll` limits how many bytes `write` takes until
/// `refill` (a slow UART whose TX FIFO is full); `errors` makes the next reads fail.
struct MockSerial {
    rx: Lane,
    tx: Lane,
    tx_per_poll: Option<usize>,
    tx_room: usize,
    errors: usize,
}

/// Ports whose transmitter gets its room back for the next step of [`run`].
trait Refill {
    fn refill(&mut self);
}

impl Refill for MockSerial {
    fn refill(&mut self) {
        self.tx_room = self.tx_per_poll.unwrap_or(usize::MAX);
    }
}

impl<R> Refill for Split<R, MockSerial> {
    fn refill(&mut self) {
        self.tx.refill();
    }
}

impl Refill for TxOnly<MockSerial> {
    fn refill(&mut self) {
        self.0.refill();
    }
}

/// `port` cut in a receive half and a transmit half, each a [`MockSerial`] with the other
/// direction unconnected (as a HAL's `split()`).
fn halves(port: MockSerial) -> (MockSerial, MockSerial) {
    let MockSerial {
        rx,
        tx,
        tx_per_poll,
        tx_room,
        errors,
    } = port;
    let unconnected = Lane::default;
    let rx = MockSerial {
        rx,
        tx: unconnected(),
        tx_per_poll,
        tx_room,
        errors,
    };
    let tx = MockSerial {
        rx: unconnected(),
        tx,
        tx_per_poll,
        tx_room,
        errors: 0,
    };
    (rx, tx)
}

fn pair(tx_per_poll: Option<usize>) -> (MockSerial, MockSerial) {
    let ab: Lane = Rc::default();
    let ba: Lane = Rc::default();
    let port = |rx: &Lane, tx: &Lane| MockSerial {
        rx: rx.clone(),
        tx: tx.clone(),
        tx_per_poll,
        tx_room: tx_per_poll.unwrap_or(usize::MAX),
        errors: 0,
    };
    (port(&ba, &ab), port(&ab, &ba))
}

impl ErrorType for MockSerial {
    type Error = MockError;
}

impl serial::Read<u8> for MockSerial {
    fn read(&mut self) -> nb::Result<u8, MockError> {
        if self.errors > 0 {
            self.errors -= 1;
            return Err(nb::Error::Other(MockError));
        }
        self.rx
            .borrow_mut()
            .pop_front()
            .ok_or(nb::Error::WouldBlock)
    }
}

impl serial::Write<u8> for MockSerial {
    fn write(&mut self, byte: u8) -> nb::Result<(), MockError> {
        if self.tx_room == 0 {
            return Err(nb::Error::WouldBlock);
        }
        self.tx_room -= 1;
        self.tx.borrow_mut().push_back(byte);
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), MockError> {
        Ok(())
    }
}

type Driver = SerialDriver<MockSerial>;

fn drivers(tx_per_poll: Option<usize>) -> (Driver, Driver) {
    let (a, b) = pair(tx_per_poll);
    (
        Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap(),
        Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap(),
    )
}

/// Runs both drivers for `steps` milliseconds of virtual time; `b` answers every request with
/// the payload reversed. Returns the events `a` saw.
fn run<S: Read<u8> + Write<u8> + Refill>(
    a: &mut SerialDriver<S>,
    b: &mut Driver,
    start: u64,
    steps: u64,
) -> Vec<Event> {
    let mut seen = Vec::new();
    for ms in start..start + steps {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(event) = b.endpoint_mut().poll_event() {
            if let Event::Message(m) = event {
                if m.is_request() {
                    let mut data = m.data().to_vec();
                    data.reverse();
                    let reply = m.reply_to(&data).unwrap();
                    b.endpoint_mut().send(now, reply, None).unwrap();
                }
            }
        }
        while let Some(event) = a.endpoint_mut().poll_event() {
            seen.push(event);
        }
    }
    seen
}

/// `pump` moves bytes and acts on deadlines as `poll` does: two pairs, one driven by each,
/// see the same events (heartbeats, a request, its acknowledgement).
#[test]
fn pump_does_what_poll_does_without_the_next_deadline() {
    let (mut a, mut b) = drivers(None);
    let (mut c, mut d) = drivers(None);
    let request = Message::request("echo", b"hi").unwrap();
    a.endpoint_mut()
        .send(Instant::ZERO, request.clone(), None)
        .unwrap();
    c.endpoint_mut().send(Instant::ZERO, request, None).unwrap();
    for ms in 0..3_000 {
        let now = Instant::from_millis(ms);
        for x in [&mut a, &mut b, &mut c, &mut d] {
            x.serial_mut().refill();
        }
        a.poll(now);
        b.poll(now);
        c.pump(now);
        d.pump(now);
    }
    let events =
        |x: &mut Driver| core::iter::from_fn(|| x.endpoint_mut().poll_event()).collect::<Vec<_>>();
    let got = events(&mut b);
    assert!(
        matches!(got.as_slice(), [Event::Message(m)] if m.data() == b"hi"),
        "{got:?}"
    );
    assert_eq!(got, events(&mut d));
    assert_eq!(events(&mut a), events(&mut c));
    assert_eq!(a.endpoint().stats(), c.endpoint().stats());
}

fn request_and_reply(tx_per_poll: Option<usize>, len: usize) {
    let (mut a, mut b) = drivers(tx_per_poll);
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let id = a
        .endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("echo", &data).unwrap(),
            None,
        )
        .unwrap();
    let events = run(&mut a, &mut b, 0, 1000);
    assert!(
        events.contains(&Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }),
        "{events:?}"
    );
    let reply = events
        .iter()
        .find_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a reply");
    assert_eq!(reply.topic(), "echo");
    assert_eq!(reply.req_id(), Some(id));
    let mut reversed = data.clone();
    reversed.reverse();
    assert_eq!(reply.data(), &reversed[..]);
    assert_eq!(a.endpoint().peer_state(), PeerState::Up);
    assert!(!a.tx_blocked() && !b.tx_blocked());
    assert_eq!(a.stats().tx_bytes, b.stats().rx_bytes);
    assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
}

#[test]
fn request_and_reply_over_a_fast_port() {
    for len in [0, 8, 64, 128] {
        request_and_reply(None, len);
    }
}

#[test]
fn request_and_reply_when_tx_takes_three_bytes_per_poll() {
    for len in [0, 8, 64, 128] {
        request_and_reply(Some(3), len);
    }
}

#[test]
fn a_blocked_frame_is_continued_on_the_next_poll() {
    let (mut a, mut b) = drivers(Some(1));
    a.endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("t", b"0123456789").unwrap(),
            None,
        )
        .unwrap();
    a.poll(Instant::ZERO);
    assert!(a.tx_blocked());
    assert_eq!(a.stats().tx_bytes, 1);
    let events = run(&mut a, &mut b, 0, 2000);
    assert!(events.iter().any(|e| matches!(e, Event::Message(_))));
}

#[test]
fn many_requests_both_ways_with_a_slow_port() {
    let (mut a, mut b) = drivers(Some(7));
    let mut replies = 0;
    let mut next = 0u64;
    let mut ms = 0u64;
    while replies < 20 && ms < 60_000 {
        if a.endpoint().pending_sends() < 2 {
            let payload = next.to_le_bytes();
            if a.endpoint_mut()
                .send(
                    Instant::from_millis(ms),
                    Message::request("n", &payload).unwrap(),
                    None,
                )
                .is_ok()
            {
                next += 1;
            }
        }
        for e in run(&mut a, &mut b, ms, 10) {
            match e {
                Event::Message(m) => {
                    assert_eq!(m.data().len(), 8);
                    replies += 1;
                }
                Event::SendOutcome { outcome, .. } => assert_eq!(outcome, Outcome::Delivered),
                other => panic!("unexpected {other:?}"),
            }
        }
        ms += 10;
    }
    assert_eq!(replies, 20);
}

#[test]
fn bytes_fed_from_an_interrupt_reach_the_endpoint() {
    let (a_port, b_port) = pair(None);
    let mut a = Driver::new(a_port, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut b = Driver::new(b_port, Config::default(), 0xB, Instant::ZERO).unwrap();
    a.endpoint_mut()
        .send(Instant::ZERO, Message::request("irq", b"x").unwrap(), None)
        .unwrap();
    // No DATA goes out before the peer's capabilities are known: b's start-up heartbeat
    // reaches a first (a's poll reads it, then sends its own heartbeat and the request).
    b.poll(Instant::ZERO);
    a.poll(Instant::ZERO);
    assert_eq!(a.endpoint().peer_state(), PeerState::Up);
    // An "interrupt handler" takes the bytes off the wire before b's poll could read them.
    let received: Vec<u8> = b.serial().rx.borrow_mut().drain(..).collect();
    assert!(!received.is_empty());
    for chunk in received.chunks(5) {
        b.feed(Instant::from_millis(1), chunk);
    }
    let mut got = None;
    while let Some(e) = b.endpoint_mut().poll_event() {
        if let Event::Message(m) = e {
            got = Some(m);
        }
    }
    assert_eq!(got.unwrap().topic(), "irq");
    assert_eq!(b.stats().rx_bytes as usize, received.len());
}

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

#[test]
fn garbage_and_read_errors_are_survived() {
    let (mut a, mut b) = drivers(None);
    b.serial_mut()
        .rx
        .borrow_mut()
        .extend((0..=255u8).cycle().take(3000));
    b.serial_mut().errors = 3;
    // More garbage than one poll reads: the RX budget keeps poll from running forever.
    b.poll(Instant::ZERO);
    assert_eq!(b.stats().rx_errors, 3);
    assert!(b.stats().rx_bytes as usize <= RX_BUDGET);
    a.endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("after", b"garbage").unwrap(),
            None,
        )
        .unwrap();
    let events = run(&mut a, &mut b, 0, 5000);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.topic() == "after")));
    let s = b.endpoint().stats();
    assert!(s.cobs_errors + s.crc_errors + s.malformed + s.oversize + s.bad_version > 0);
}

#[test]
fn deadlines_are_reported_and_a_silent_peer_goes() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut gone = false;
    for _ in 0..100 {
        let Some(next) = a.poll(now) else { break };
        assert!(next >= now);
        now = next;
        while let Some(e) = a.endpoint_mut().poll_event() {
            gone |= matches!(e, Event::Gone(_));
        }
        if gone {
            break;
        }
    }
    assert!(gone);
    assert!(now >= Instant::from_millis(30_000));
}

#[test]
fn a_closure_is_a_clock() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut ticks = 0u64;
    let mut clock = || {
        ticks += 1;
        Instant::from_millis(ticks)
    };
    assert!(a.poll_clock(&mut clock).is_some());
    assert!(a.stats().tx_bytes > 0, "the first heartbeat went out");
}

#[test]
fn end_closes_and_a_new_endpoint_is_seen_as_a_restart() {
    let (mut a, mut b) = drivers(Some(4));
    a.endpoint_mut().notify_end(Instant::ZERO, b"bye").unwrap();
    let mut ended = false;
    for ms in 0..100 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(e) = b.endpoint_mut().poll_event() {
            ended |= matches!(e, Event::End(ref d) if d.as_slice() == b"bye");
        }
        while a.endpoint_mut().poll_event().is_some() {}
    }
    assert!(ended);
    // a starts over with a new session; b sees a restart.
    a.replace_endpoint(Endpoint::new(Config::default(), 0xA2, Instant::from_millis(100)).unwrap());
    let mut restarted = false;
    for ms in 100..400 {
        let now = Instant::from_millis(ms);
        a.serial_mut().refill();
        b.serial_mut().refill();
        a.poll(now);
        b.poll(now);
        while let Some(e) = b.endpoint_mut().poll_event() {
            restarted |= e == Event::PeerRestarted;
        }
        while a.endpoint_mut().poll_event().is_some() {}
    }
    assert!(restarted);
}

#[test]
fn split_halves_carry_requests_and_replies() {
    for tx_per_poll in [None, Some(3)] {
        let (a, b) = pair(tx_per_poll);
        let (rx, tx) = halves(a);
        let mut a: SerialDriver<Split<MockSerial, MockSerial>> =
            SerialDriver::new_split(rx, tx, Config::default(), 0xA, Instant::ZERO).unwrap();
        let mut b = Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap();
        let id = a
            .endpoint_mut()
            .send(
                Instant::ZERO,
                Message::request("split", b"halves").unwrap(),
                None,
            )
            .unwrap();
        let events = run(&mut a, &mut b, 0, 1000);
        assert!(events.contains(&Event::SendOutcome {
            id,
            outcome: Outcome::Delivered
        }));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.data() == b"sevlah")));
        assert_eq!(a.stats().tx_bytes, b.stats().rx_bytes);
        assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
        // Nothing went through the unconnected directions.
        let (_, Split { rx, tx }) = a.into_parts();
        assert!(rx.tx.borrow().is_empty());
        assert_eq!(tx.errors, 0);
    }
}

#[test]
fn split_errors_say_which_half() {
    let (a, _b) = pair(None);
    let (mut rx, tx) = halves(a);
    rx.errors = 2;
    let mut port = Split::new(rx, tx);
    let err = serial::Read::read(&mut port).unwrap_err();
    assert!(matches!(err, nb::Error::Other(SplitError::Rx(MockError))));
    let mut a: SerialDriver<_> =
        SerialDriver::new(port, Config::default(), 0xA, Instant::ZERO).unwrap();
    a.poll(Instant::ZERO);
    assert_eq!(a.stats().rx_errors, 1);
    let e: SplitError<MockError, MockError> = SplitError::Tx(MockError);
    assert_eq!(e.kind(), ErrorKind::Overrun);
}

#[test]
fn tx_only_reads_nothing_and_takes_fed_bytes() {
    let (a, b) = pair(Some(5));
    let mut a: SerialDriver<TxOnly<MockSerial>> =
        SerialDriver::new(TxOnly::new(a), Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut b = Driver::new(b, Config::default(), 0xB, Instant::ZERO).unwrap();
    let id = a
        .endpoint_mut()
        .send(
            Instant::ZERO,
            Message::request("tx", b"only").unwrap(),
            None,
        )
        .unwrap();
    let mut events = Vec::new();
    for ms in 0..1000 {
        // The "interrupt handler": takes what b sent off the wire and feeds it.
        let received: Vec<u8> = a.serial().0.rx.borrow_mut().drain(..).collect();
        a.feed(Instant::from_millis(ms), &received);
        events.extend(run(&mut a, &mut b, ms, 1));
        // poll never reads: the wire keeps what b sent until the next feed.
        assert_eq!(a.stats().rx_errors, 0);
    }
    assert!(events.contains(&Event::SendOutcome {
        id,
        outcome: Outcome::Delivered
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.data() == b"ylno")));
    assert_eq!(b.stats().tx_bytes, a.stats().rx_bytes);
    let mut port = a.into_parts().1;
    port.0.rx.borrow_mut().push_back(1);
    assert!(matches!(
        serial::Read::read(&mut port),
        Err(nb::Error::WouldBlock)
    ));
    assert_eq!(port.into_inner().rx.borrow().len(), 1);
}

#[test]
fn wrapping_millis_counts_on_across_wraps() {
    let mut millis = WrappingMillis::new();
    // The counter may start anywhere.
    assert_eq!(millis.instant(1_000), Instant::from_millis(1_000));
    assert_eq!(millis.instant(1_000), Instant::from_millis(1_000));
    assert_eq!(
        millis.instant(u32::MAX),
        Instant::from_millis(u64::from(u32::MAX))
    );
    assert_eq!(millis.instant(0), Instant::from_millis(1 << 32));
    assert_eq!(millis.instant(7), Instant::from_millis((1 << 32) + 7));
    // Read once per half period over many wraps: never backwards, always the true time.
    let mut true_ms = (1u64 << 32) + 7;
    let mut last = Instant::ZERO;
    for _ in 0..20 {
        true_ms += u64::from(u32::MAX / 2) + 12_345;
        let now = millis.instant(true_ms as u32);
        assert_eq!(now, Instant::from_millis(true_ms));
        assert!(now > last);
        last = now;
    }
    assert_eq!(WrappingMillis::default(), WrappingMillis::new());
}

#[test]
fn wrapping_millis_is_a_clock_through_a_closure() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut counter = u32::MAX - 2_000;
    let mut millis = WrappingMillis::new();
    let mut clock = || {
        counter = counter.wrapping_add(100);
        millis.instant(counter)
    };
    let mut last = Instant::ZERO;
    for _ in 0..40 {
        let next = a.poll_clock(&mut clock).unwrap();
        assert!(next >= last, "deadlines never jump back across the wrap");
        last = next;
    }
    assert!(last > Instant::from_millis(1 << 32));
}

#[test]
fn sizes() {
    // Printed for the record (`cargo test -p peerpipe-embedded -- --nocapture sizes`).
    println!(
        "size_of: Endpoint {} B, SerialDriver {} B",
        core::mem::size_of::<Endpoint>(),
        core::mem::size_of::<SerialDriver<MockSerial>>()
    );
    // The adapters add nothing around zero-sized halves.
    assert_eq!(
        core::mem::size_of::<Split<TxOnly<()>, ()>>(),
        0,
        "Split and TxOnly are zero-cost wrappers"
    );
}
