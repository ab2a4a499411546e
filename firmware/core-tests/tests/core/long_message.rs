//! 20 KiB each way between two endpoints, sent from sources and received in parts, over a
//! lossy link.

use core_tests::note;
use peerpipe_core::wire::Item;
use peerpipe_core::{Config, Endpoint, Event, Instant, MsgId, Outcome, PartKind, Source};

use crate::link::{next_deadline, timeouts, transfer_from, Link};
use crate::{Ep, FRAME_BUF};

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

pub(crate) fn long_message_lossy() {
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
