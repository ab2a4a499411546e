//! peerpipe-core on the MCU (run in QEMU): the wire codec through the stream decoder, and two
//! endpoints talking over a lossy in-memory link in deterministic virtual time.
//!
//! `cargo test --release --target thumbv7m-none-eabi` (lm3s6965evb) or `thumbv6m-none-eabi`
//! (micro:bit, 16K RAM). Everything lives on the stack: the endpoints are of the default
//! capacities, the size a Cortex-M0 application would use.

#![no_std]
#![no_main]

use core::mem::size_of;

use core_tests::{note, Runner};
use panic_semihosting as _;
use peerpipe_core::wire::{self, Ack, Body, Data, Decoder, Frame, Item, WireError};
use peerpipe_core::{
    CloseReason, Config, Duration, Endpoint, Error, Event, GoneReason, Instant, Message, MsgId,
    Outcome,
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

/// One frame of every kind and item, with edge values.
fn sample_frames() -> [Frame<'static>; 8] {
    let data = |session, seq, floor, item, payload| Frame {
        session,
        body: Body::Data(Data {
            seq,
            floor,
            item,
            payload,
        }),
    };
    [
        Frame {
            session: 1,
            body: Body::Heartbeat { floor: 0, room: 0 },
        },
        Frame {
            session: u32::MAX,
            body: Body::Heartbeat {
                floor: u64::MAX,
                room: 255,
            },
        },
        Frame {
            session: 7,
            body: Body::Ack(Ack {
                to_session: 9,
                next: 300,
                bitmap: 0b1011,
                room: 3,
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
                retry: false,
            }),
        },
        data(
            0xDEAD_BEEF,
            5,
            2,
            Item::Request { topic: "train" },
            &[0, 1, 0, 0xFF],
        ),
        data(
            3,
            1 << 40,
            1 << 39,
            Item::Reply {
                topic: "Topic_32_bytes_long_exactly_0123",
                req_id: 77,
            },
            &LONG,
        ),
        data(3, 6, 6, Item::End, b"bye"),
        data(3, 7, 6, Item::Abort, b""),
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
    let mut stream = [0u8; 640];
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

    let mut stream = [0u8; 1024];
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
    let mut sent = false;
    for _ in 0..64 {
        match from.poll_transmit(now, buf) {
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
