//! Requests, replies and END between two endpoints over a link dropping a third of the
//! frames.

use core::mem::size_of;

use core_tests::note;
use peerpipe_core::{Config, Duration, Endpoint, Error, Event, Instant, Message, MsgId, Outcome};

use crate::link::{next_deadline, timeouts, transfer, Link};
use crate::{Ep, FRAME_BUF};

const REQUESTS: usize = 10;

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

pub(crate) fn exchange_lossy() {
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
