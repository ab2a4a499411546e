//! peerpipe-core on the MCU (run in QEMU): the wire codec through the stream decoder, and two
//! endpoints talking over a lossy in-memory link in deterministic virtual time: requests and
//! replies, a message of any size sent from a source and received in parts, GONE.
//!
//! `cargo test --release --target thumbv7m-none-eabi` (lm3s6965evb) or `thumbv6m-none-eabi`
//! (micro:bit, 16K RAM). Everything lives on the stack: the endpoints are of the default
//! capacities, the size a Cortex-M0 application would use.

#![no_std]
#![no_main]

use core::mem::size_of;

use core_tests::{note, Runner};
use panic_semihosting as _;
use peerpipe_core::wire::{
    self, Ack, Body, Caps, Data, Decoder, Frag, Frame, Heartbeat, Item, WireError,
};
use peerpipe_core::{
    CloseReason, Config, Duration, Endpoint, Error, Event, GoneReason, Instant, Message, MsgId,
    Outcome, PartKind, Source,
};

/// The default endpoint: 128-byte payloads, 32-byte topics, 4 receive and 4 send slots.
type Ep = Endpoint;

/// A buffer for one encoded frame from an endpoint of the default capacities.
const FRAME_BUF: usize = <Ep>::MAX_FRAME_LEN;

/// The decoder size for the default capacities.
const DECODER: usize = wire::max_encoded_len(128, 32);

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut t = Runner::new("core-tests");
    t.run(
        "codec: every frame kind round-trips through the stream decoder",
        codec_every_kind,
    );
    t.run("codec: frames fed one byte at a time", codec_byte_by_byte);
    t.run(
        "codec: garbage, noise and corruption before a frame",
        codec_garbage,
    );
    t.run(
        "endpoints: requests, replies and END over a link dropping a third of the frames",
        exchange_lossy,
    );
    t.run(
        "endpoints: 20 KiB each way from sources, received in parts, over a lossy link",
        long_message_lossy,
    );
    t.run(
        "endpoints: GONE after silence, at the exact deadline",
        gone_after_silence,
    );
    t.finish()
}

// ------------------------------------------------------------------------------------------------
// Codec

static LONG: [u8; 128] = {
    let mut p = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        p[i] = (i as u8).wrapping_mul(37); // zeros included: COBS must escape them
        i += 1;
    }
    p
};

/// One frame of every kind and item, with edge values: whole messages and fragments.
fn sample_frames() -> [Frame<'static>; 11] {
    let data = |session, seq, floor, id, item, frag, payload| Frame {
        session,
        body: Body::Data(Data {
            seq,
            floor,
            id,
            item,
            frag,
            payload,
        }),
    };
    [
        Frame {
            session: 1,
            body: Body::Heartbeat(Heartbeat {
                floor: 0,
                room: 0,
                window: 0,
                caps: Caps {
                    max_payload: 128,
                    max_topic: 32,
                    max_message: 0,
                },
                ask: true,
            }),
        },
        Frame {
            session: u32::MAX,
            body: Body::Heartbeat(Heartbeat {
                floor: u64::MAX,
                room: u32::MAX,
                window: u32::MAX,
                caps: Caps {
                    max_payload: u32::MAX,
                    max_topic: u32::MAX,
                    max_message: u64::MAX,
                },
                ask: false,
            }),
        },
        Frame {
            session: 7,
            body: Body::Ack(Ack {
                to_session: 9,
                next: 300,
                bitmap: 0b1011,
                room: 3,
                window: 384,
                retry: true,
            }),
        },
        Frame {
            session: 0,
            body: Body::Ack(Ack {
                to_session: u32::MAX,
                next: 0,
                bitmap: u32::MAX,
                room: 0,
                window: u32::MAX,
                retry: false,
            }),
        },
        data(
            0xDEAD_BEEF,
            5,
            2,
            5,
            Item::Request { topic: "train" },
            Frag::Whole,
            &[0, 1, 0, 0xFF],
        ),
        data(
            3,
            1 << 40,
            1 << 39,
            u64::MAX,
            Item::Reply {
                topic: "Topic_32_bytes_long_exactly_0123",
                req_id: 77,
            },
            Frag::Whole,
            &LONG,
        ),
        data(3, 6, 6, 6, Item::End, Frag::Whole, b"bye"),
        data(3, 7, 6, 7, Item::Abort, Frag::Whole, b""),
        // A message in three fragments: the first names it, the rest continue it.
        data(
            3,
            8,
            8,
            8,
            Item::Request { topic: "big" },
            Frag::First { total: 1 << 33 },
            &LONG,
        ),
        data(
            3,
            9,
            8,
            8,
            Item::Request { topic: "" },
            Frag::Next {
                offset: 128,
                last: false,
            },
            &LONG[..100],
        ),
        data(
            3,
            10,
            8,
            8,
            Item::Request { topic: "" },
            Frag::Next {
                offset: (1 << 33) - 1,
                last: true,
            },
            b"z",
        ),
    ]
}

fn encode(frame: &Frame<'_>, buf: &mut [u8]) -> usize {
    let n = wire::encode(frame, buf).unwrap();
    assert!(
        (2..=FRAME_BUF).contains(&n),
        "encoded length {} outside 2..={}",
        n,
        FRAME_BUF
    );
    assert_eq!(buf[n - 1], 0, "a frame ends with its delimiter");
    assert!(!buf[..n - 1].contains(&0), "no zero inside a COBS frame");
    n
}

/// Feeds `bytes` (in one call sequence) and hands each decoder result to `each`.
fn feed_all<const N: usize>(
    d: &mut Decoder<N>,
    mut bytes: &[u8],
    mut each: impl FnMut(Result<Frame<'_>, WireError>),
) {
    while !bytes.is_empty() {
        let (used, result) = d.feed(bytes);
        assert!(
            used >= 1 && used <= bytes.len(),
            "feed consumed {} of {} bytes",
            used,
            bytes.len()
        );
        if let Some(result) = result {
            each(result);
        }
        bytes = &bytes[used..];
    }
}

fn codec_every_kind() {
    let frames = sample_frames();
    let mut d = Decoder::<DECODER>::new();
    let mut buf = [0u8; FRAME_BUF];
    // Each frame alone.
    for frame in &frames {
        let n = encode(frame, &mut buf);
        let (used, decoded) = d.feed(&buf[..n]);
        assert_eq!(used, n);
        assert_eq!(decoded, Some(Ok(*frame)));
    }
    // All of them back to back in one stream.
    let mut stream = [0u8; 1024];
    let mut len = 0;
    for frame in &frames {
        len += encode(frame, &mut stream[len..]);
    }
    let mut got = 0;
    feed_all(&mut d, &stream[..len], |r| {
        assert_eq!(r, Ok(frames[got]), "frame {} of the stream", got);
        got += 1;
    });
    assert_eq!(got, frames.len());
    note(format_args!("{} frames, {} bytes", frames.len(), len));
}

fn codec_byte_by_byte() {
    let mut d = Decoder::<DECODER>::new();
    let mut buf = [0u8; FRAME_BUF];
    for frame in &sample_frames() {
        let n = encode(frame, &mut buf);
        for (i, byte) in buf[..n].iter().enumerate() {
            let (used, decoded) = d.feed(core::slice::from_ref(byte));
            assert_eq!(used, 1);
            if i + 1 < n {
                assert_eq!(decoded, None, "no frame before the delimiter (byte {})", i);
            } else {
                assert_eq!(decoded, Some(Ok(*frame)));
            }
        }
    }
}

fn codec_garbage() {
    let frames = sample_frames();
    let good = &frames[5]; // the long reply
    let mut d = Decoder::<DECODER>::new();
    let mut frame = [0u8; FRAME_BUF];
    let n = encode(good, &mut frame);

    let mut stream = [0u8; 1280];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        stream[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(&[0x55, 0x13, 0x77, 0xAA, 0x00]); // line noise, then a delimiter: one bad frame
    push(&[0, 0, 0]); // empty frames: skipped silently
    push(&[0xA5; 300]); // longer than the decoder: Oversize
    push(&[0]);
    let mut corrupt = frame;
    let k = n / 2;
    corrupt[k] = if corrupt[k] ^ 0x20 != 0 {
        corrupt[k] ^ 0x20
    } else {
        corrupt[k] ^ 0x40
    }; // one bit flipped
    push(&corrupt[..n]); // a damaged copy: its CRC (or COBS) fails
    push(&[0x42, 0x42]); // noise without a delimiter: merges with the next frame, which is lost
    push(&frame[..n]);
    push(&frame[..n]); // the good frame, now after a delimiter: decodes
    let stream = &stream[..len];

    let (mut errors, mut oversize, mut ok) = (0, 0, 0);
    feed_all(&mut d, stream, |r| match r {
        Ok(f) => {
            assert_eq!(&f, good);
            ok += 1;
        }
        Err(WireError::Oversize) => oversize += 1,
        Err(_) => errors += 1,
    });
    assert_eq!(
        (errors, oversize, ok),
        (3, 1, 1),
        "(errors, oversize, frames)"
    );

    // The same stream in 7-byte chunks decodes the same way.
    let (mut bad, mut ok) = (0, 0);
    for chunk in stream.chunks(7) {
        feed_all(
            &mut d,
            chunk,
            |r| if r.is_ok() { ok += 1 } else { bad += 1 },
        );
    }
    assert_eq!((bad, ok), (4, 1));
}

// ------------------------------------------------------------------------------------------------
// Two endpoints

const REQUESTS: usize = 10;

/// A link that loses every `n`th frame it carries (one count for both directions), or all.
struct Link {
    every: u32,
    rng: u32,
    carried: u32,
    dropped: u32,
    up: bool,
}

impl Link {
    /// A link that loses one frame in `every` on average, at pseudo-random (seeded, so
    /// repeatable) places: a fixed rhythm could keep hitting the same frame of a resend cycle.
    fn new(every: u32) -> Self {
        Link {
            every,
            rng: 0x2545_F491,
            carried: 0,
            dropped: 0,
            up: true,
        }
    }

    fn pass(&mut self) -> bool {
        self.carried += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let lost = !self.up || (self.every > 0 && self.rng.is_multiple_of(self.every));
        self.dropped += u32::from(lost);
        !lost
    }
}

/// Moves every frame `from` has to send over `link` into `to`; returns whether any was sent
/// and updates `to_heard` with the time `to` last received one.
fn transfer(
    now: Instant,
    from: &mut Ep,
    to: &mut Ep,
    link: &mut Link,
    buf: &mut [u8],
    to_heard: &mut Instant,
) -> bool {
    transfer_from(
        now,
        from,
        to,
        link,
        buf,
        to_heard,
        &mut peerpipe_core::NoSource,
    )
}

/// [`transfer`], the bytes of `from`'s messages sent with `send_from` read from `source`.
fn transfer_from(
    now: Instant,
    from: &mut Ep,
    to: &mut Ep,
    link: &mut Link,
    buf: &mut [u8],
    to_heard: &mut Instant,
    source: &mut dyn Source,
) -> bool {
    let mut sent = false;
    for _ in 0..64 {
        match from.poll_transmit_from(now, buf, source) {
            Ok(Some(n)) => {
                sent = true;
                if link.pass() {
                    to.handle_bytes(now, &buf[..n]);
                    *to_heard = now;
                }
            }
            Ok(None) => return sent,
            Err(e) => panic!("poll_transmit: {:?}", e),
        }
    }
    panic!("poll_transmit never ran dry");
}

/// Calls `handle_timeout` on each endpoint whose deadline has come.
fn timeouts(now: Instant, a: &mut Ep, b: &mut Ep) {
    for ep in [a, b] {
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
    }
}

/// The next deadline of either endpoint: virtual time jumps there when nothing else moves.
fn next_deadline(now: Instant, a: &Ep, b: &Ep) -> Instant {
    let next = [a.poll_timeout(), b.poll_timeout()]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline is armed");
    assert!(
        next > now,
        "a deadline at or before now ({} us) after handle_timeout",
        now.as_micros()
    );
    next
}

/// Request `i`'s payload: distinct per request (first byte `i`), 1 to 128 bytes, zeros included.
fn request_payload(i: usize, buf: &mut [u8; 128]) -> &[u8] {
    let len = 1 + (i * 53) % 128;
    for (k, b) in buf[..len].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(i as u8 | 1);
    }
    buf[0] = i as u8;
    &buf[..len]
}

fn reply_payload(i: usize) -> [u8; 3] {
    [b'R', i as u8, !(i as u8)]
}

fn exchange_lossy() {
    // Resends until a generous timeout: at a third lost, the default 5 s (three
    // transmissions) would fail about one send in six, and END uses that default.
    let config = Config {
        max_resends: None,
        default_request_timeout: core::time::Duration::from_secs(60),
        ..Config::default()
    };
    let mut now = Instant::ZERO;
    let mut a: Ep = Endpoint::new(config, 0xA1, now).unwrap();
    let mut b: Ep = Endpoint::new(config, 0xB2, now).unwrap();
    let timeout = Some(Duration::from_secs(60));
    let mut link = Link::new(3);
    let mut buf = [0u8; FRAME_BUF];
    let mut payload = [0u8; 128];
    let (mut a_heard, mut b_heard) = (now, now);

    let mut request_ids = [MsgId(0); REQUESTS];
    let mut sent = 0; // requests a has sent
    let mut delivered = 0; // a's requests reported Delivered
    let mut replies = 0; // replies a received, in order
    let mut requests = 0; // requests b received, in order
    let mut replies_delivered = 0; // b's replies reported Delivered
    let mut owed = [(0usize, MsgId(0)); REQUESTS]; // replies b still has to send (no free slot yet)
    let (mut owed_next, mut owed_len) = (0, 0);
    let mut end_id = None;
    let (mut end_delivered, mut end_received) = (false, false);

    for _ in 0..10_000 {
        timeouts(now, &mut a, &mut b);

        // a's application: send the requests as slots free up, then END once all is answered.
        while sent < REQUESTS {
            let message = Message::request("work", request_payload(sent, &mut payload)).unwrap();
            match a.send(now, message, timeout) {
                Ok(id) => {
                    request_ids[sent] = id;
                    sent += 1;
                }
                Err(Error::SendQueueFull) => break,
                Err(e) => panic!("a.send: {:?}", e),
            }
        }
        // (END only once b's replies are settled too: an END overtaking the ACK of b's last
        // reply fails that reply with PeerEnded, although a accepted it.)
        if end_id.is_none()
            && replies == REQUESTS
            && delivered == REQUESTS
            && replies_delivered == REQUESTS
        {
            end_id = Some(a.notify_end(now, b"bye").unwrap());
        }
        // b's application: answer each request as slots free up.
        while owed_next < owed_len {
            let (i, id) = owed[owed_next];
            match b.send(
                now,
                Message::reply("work", &reply_payload(i), id).unwrap(),
                timeout,
            ) {
                Ok(_) => owed_next += 1,
                Err(Error::SendQueueFull) => break,
                Err(e) => panic!("b.send: {:?}", e),
            }
        }

        let mut moved = transfer(now, &mut a, &mut b, &mut link, &mut buf, &mut b_heard);
        moved |= transfer(now, &mut b, &mut a, &mut link, &mut buf, &mut a_heard);

        while let Some(event) = a.poll_event() {
            moved = true;
            match event {
                Event::SendOutcome { id, outcome } => {
                    assert_eq!(outcome, Outcome::Delivered, "a's send {:?}", id);
                    if Some(id) == end_id {
                        assert!(!end_delivered, "END settled twice");
                        end_delivered = true;
                    } else {
                        assert!(
                            request_ids[..sent].contains(&id),
                            "outcome for unknown {:?}",
                            id
                        );
                        delivered += 1;
                    }
                }
                Event::Message(m) => {
                    assert!(replies < sent, "more replies than requests");
                    assert_eq!(
                        m.req_id(),
                        Some(request_ids[replies]),
                        "reply {} out of order",
                        replies
                    );
                    assert_eq!(m.data(), reply_payload(replies));
                    replies += 1;
                }
                other => panic!("a: unexpected {:?}", other),
            }
        }
        while let Some(event) = b.poll_event() {
            moved = true;
            match event {
                Event::Message(m) => {
                    assert!(m.is_request() && m.topic() == "work");
                    assert_eq!(
                        m.data(),
                        request_payload(requests, &mut payload),
                        "request {} out of order",
                        requests
                    );
                    owed[owed_len] = (requests, m.id());
                    owed_len += 1;
                    requests += 1;
                }
                Event::SendOutcome { id, outcome } => {
                    assert_eq!(outcome, Outcome::Delivered, "b's send {:?}", id);
                    replies_delivered += 1;
                }
                Event::End(data) => {
                    assert!(!end_received, "END received twice");
                    assert_eq!(&data[..], b"bye");
                    end_received = true;
                }
                other => panic!("b: unexpected {:?}", other),
            }
        }

        if end_delivered && end_received {
            assert_eq!(
                (sent, delivered, requests, replies),
                (REQUESTS, REQUESTS, REQUESTS, REQUESTS)
            );
            assert!(link.dropped > 0);
            assert!(
                now < Instant::from_millis(300_000),
                "took {} ms of virtual time",
                now.as_millis()
            );
            note(format_args!(
                "{} frames carried, {} dropped, {} ms virtual, endpoint {} B",
                link.carried,
                link.dropped,
                now.as_millis(),
                size_of::<Ep>()
            ));
            return;
        }
        if !moved {
            now = next_deadline(now, &a, &b);
        }
    }
    panic!(
        "exchange unfinished at {} ms: sent {} delivered {} requests {} replies {} replies delivered {} END {}/{}",
        now.as_millis(),
        sent,
        delivered,
        requests,
        replies,
        replies_delivered,
        end_delivered,
        end_received
    );
}

/// Byte `i` of generated message `salt`: made on the fly, never held (20 KiB would not fit
/// next to the endpoints in the micro:bit's 16 KiB).
fn generated(salt: u8, i: u64) -> u8 {
    (i as u32)
        .wrapping_mul(7)
        .wrapping_add(u32::from(salt) + (i >> 8) as u32) as u8
}

/// A [`Source`] of generated messages: message `id` is `generated(salt, ..)`, of any length.
struct Generator {
    id: Option<MsgId>,
    salt: u8,
    buf: [u8; 128],
    asked: u32,
}

impl Generator {
    const fn new(salt: u8) -> Self {
        Generator {
            id: None,
            salt,
            buf: [0; 128],
            asked: 0,
        }
    }
}

impl Source for Generator {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        if Some(id) != self.id {
            return None;
        }
        let out = self.buf.get_mut(..len)?;
        for (k, b) in out.iter_mut().enumerate() {
            *b = generated(self.salt, offset + k as u64);
        }
        self.asked += len as u32;
        Some(out)
    }
}

/// What a receiver checks of a message arriving in parts: order, no gap, every byte.
struct Receiving {
    salt: u8,
    next: u64,
    parts: u32,
    done: bool,
}

impl Receiving {
    fn take(&mut self, part: &peerpipe_core::Part) {
        assert!(!self.done, "a part after the last");
        assert_eq!(part.offset(), self.next, "parts in order, no gap");
        for (k, &b) in part.data().iter().enumerate() {
            assert_eq!(
                b,
                generated(self.salt, self.next + k as u64),
                "byte {}",
                self.next + k as u64
            );
        }
        self.next += part.data().len() as u64;
        self.parts += 1;
        self.done = part.is_last();
        assert_eq!(self.done, self.next == part.total());
    }
}

const LONG_LEN: u64 = 20 * 1024;

fn long_message_lossy() {
    let config = Config {
        max_resends: None,
        default_request_timeout: core::time::Duration::from_secs(600),
        ..Config::default()
    };
    let mut now = Instant::ZERO;
    let mut a: Ep = Endpoint::new(config, 0xA3, now).unwrap();
    let mut b: Ep = Endpoint::new(config, 0xB4, now).unwrap();
    let mut link = Link::new(4);
    let mut buf = [0u8; FRAME_BUF];
    let (mut a_heard, mut b_heard) = (now, now);
    let (mut a_src, mut b_src) = (Generator::new(1), Generator::new(2));
    let mut request = Receiving {
        salt: 1,
        next: 0,
        parts: 0,
        done: false,
    };
    let mut reply = Receiving {
        salt: 2,
        next: 0,
        parts: 0,
        done: false,
    };

    // a: a long request from its source; b answers it with a long reply from its own.
    let req = a
        .send_from(now, Item::Request { topic: "upload" }, LONG_LEN, None)
        .unwrap();
    a_src.id = Some(req);
    let (mut a_settled, mut b_settled) = (false, false);

    for _ in 0..50_000 {
        timeouts(now, &mut a, &mut b);
        let mut moved = transfer_from(
            now,
            &mut a,
            &mut b,
            &mut link,
            &mut buf,
            &mut b_heard,
            &mut a_src,
        );
        moved |= transfer_from(
            now,
            &mut b,
            &mut a,
            &mut link,
            &mut buf,
            &mut a_heard,
            &mut b_src,
        );
        while let Some(event) = b.poll_event() {
            moved = true;
            match event {
                Event::Part(part) => {
                    assert_eq!(part.kind(), PartKind::Request);
                    assert_eq!((part.id(), part.topic()), (req, "upload"));
                    request.take(&part);
                    if part.is_last() {
                        let item = Item::Reply {
                            topic: "upload",
                            req_id: part.id().0,
                        };
                        b_src.id = Some(b.send_from(now, item, LONG_LEN, None).unwrap());
                    }
                }
                Event::SendOutcome { id, outcome } => {
                    assert_eq!((Some(id), outcome), (b_src.id, Outcome::Delivered));
                    b_settled = true;
                }
                other => panic!("b: unexpected {:?}", other),
            }
        }
        while let Some(event) = a.poll_event() {
            moved = true;
            match event {
                Event::Part(part) => {
                    assert_eq!(part.kind(), PartKind::Reply { req_id: req });
                    assert_eq!(part.topic(), "upload");
                    reply.take(&part);
                }
                Event::SendOutcome { id, outcome } => {
                    assert_eq!((id, outcome), (req, Outcome::Delivered));
                    a_settled = true;
                }
                other => panic!("a: unexpected {:?}", other),
            }
        }
        if request.done && reply.done && a_settled && b_settled {
            assert_eq!((request.next, reply.next), (LONG_LEN, LONG_LEN));
            assert_eq!(request.parts as u64, LONG_LEN.div_ceil(128));
            // Each fragment's bytes were asked for when it was sent (and again when resent).
            assert!(u64::from(a_src.asked) >= LONG_LEN && u64::from(b_src.asked) >= LONG_LEN);
            assert!(link.dropped > 0);
            note(format_args!(
                "{} + {} parts, {} frames carried, {} dropped, source reads {} + {} B, {} ms virtual",
                request.parts,
                reply.parts,
                link.carried,
                link.dropped,
                a_src.asked,
                b_src.asked,
                now.as_millis()
            ));
            return;
        }
        if !moved {
            now = next_deadline(now, &a, &b);
        }
    }
    panic!(
        "unfinished at {} ms: request {} B, reply {} B, settled {}/{}",
        now.as_millis(),
        request.next,
        reply.next,
        a_settled,
        b_settled
    );
}

fn gone_after_silence() {
    let config = Config::default();
    let mut now = Instant::ZERO;
    let mut a: Ep = Endpoint::new(config, 0x1111, now).unwrap();
    let mut b: Ep = Endpoint::new(config, 0x2222, now).unwrap();
    let mut link = Link::new(0); // lossless until cut
    let mut buf = [0u8; FRAME_BUF];
    let (mut a_heard, mut b_heard) = (now, now);
    let cut_at = Instant::from_millis(12_000);
    let (mut a_gone, mut b_gone) = (None, None);

    let id = a
        .send(now, Message::request("hello", b"hi").unwrap(), None)
        .unwrap();
    let (mut delivered, mut received) = (false, false);

    for _ in 0..10_000 {
        if now >= cut_at {
            link.up = false;
        }
        timeouts(now, &mut a, &mut b);
        let mut moved = transfer(now, &mut a, &mut b, &mut link, &mut buf, &mut b_heard);
        moved |= transfer(now, &mut b, &mut a, &mut link, &mut buf, &mut a_heard);
        while let Some(event) = a.poll_event() {
            moved = true;
            match event {
                Event::SendOutcome { id: done, outcome } => {
                    assert_eq!((done, outcome), (id, Outcome::Delivered));
                    delivered = true;
                }
                Event::Gone(reason) => {
                    assert_eq!(reason, GoneReason::Silence);
                    assert!(a_gone.is_none(), "a: GONE twice");
                    a_gone = Some(now);
                }
                other => panic!("a: unexpected {:?}", other),
            }
        }
        while let Some(event) = b.poll_event() {
            moved = true;
            match event {
                Event::Message(m) => {
                    assert_eq!(m.data(), b"hi");
                    received = true;
                }
                Event::Gone(reason) => {
                    assert_eq!(reason, GoneReason::Silence);
                    assert!(b_gone.is_none(), "b: GONE twice");
                    b_gone = Some(now);
                }
                other => panic!("b: unexpected {:?}", other),
            }
        }
        if let (Some(a_at), Some(b_at)) = (a_gone, b_gone) {
            assert!(delivered && received);
            let silence = Duration::from_secs(30);
            assert!(a_heard < cut_at && b_heard < cut_at);
            assert!(
                a_heard > Instant::ZERO,
                "heartbeats kept the link alive before the cut"
            );
            assert_eq!(
                a_at,
                a_heard + silence,
                "a: GONE 30 s after the last frame it heard"
            );
            assert_eq!(
                b_at,
                b_heard + silence,
                "b: GONE 30 s after the last frame it heard"
            );
            // A gone peer refuses new sends.
            let refused = a.send(now, Message::request("late", b"").unwrap(), None);
            assert_eq!(refused, Err(Error::Closed(CloseReason::PeerGone)));
            note(format_args!(
                "a heard last at {} ms, GONE at {} ms",
                a_heard.as_millis(),
                a_at.as_millis()
            ));
            return;
        }
        if !moved {
            now = next_deadline(now, &a, &b);
        }
    }
    panic!(
        "no GONE by {} ms (a {:?}, b {:?})",
        now.as_millis(),
        a_gone,
        b_gone
    );
}
