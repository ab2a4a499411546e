//! `Endpoint::send_bytes`: a message from borrowed parts, without a `Message` first.

use peerpipe_core::wire::Item;
use peerpipe_core::{CloseReason, Endpoint, Error, Event, Instant, Message, MsgId, PeerState};

type Ep = Endpoint;

fn pump(from: &mut Ep, to: &mut Ep, now: Instant) {
    let mut buf = [0u8; Ep::MAX_FRAME_LEN];
    while let Some(n) = from.poll_transmit(now, &mut buf).unwrap() {
        to.handle_bytes(now, &buf[..n]);
    }
}

fn pair(now: Instant) -> (Ep, Ep) {
    let mut a = Ep::new(Default::default(), 1, now).unwrap();
    let mut b = Ep::new(Default::default(), 2, now).unwrap();
    pump(&mut a, &mut b, now);
    pump(&mut b, &mut a, now);
    (a, b)
}

#[test]
fn a_reply_from_borrowed_parts_arrives_as_sent() {
    let now = Instant::ZERO;
    let (mut a, mut b) = pair(now);
    let req = a
        .send(now, Message::request("ping", b"hi").unwrap(), None)
        .unwrap();
    pump(&mut a, &mut b, now);
    let Some(Event::Message(m)) = b.poll_event() else {
        panic!("the request arrives");
    };
    let item = Item::Reply {
        topic: m.topic(),
        req_id: m.id().0,
    };
    b.send_bytes(now, item, &[7; 128], None).unwrap();
    pump(&mut b, &mut a, now);
    let reply = core::iter::from_fn(|| a.poll_event()).find_map(|e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    });
    let reply = reply.expect("the reply arrives");
    assert_eq!(reply.topic(), "ping");
    assert_eq!(reply.req_id(), Some(req));
    assert_eq!(reply.data(), &[7; 128][..]);
}

#[test]
fn bad_items_and_data_too_long_for_a_slot_are_refused() {
    let now = Instant::ZERO;
    let (mut a, _b) = pair(now);
    let request = |topic| Item::Request { topic };
    assert_eq!(
        a.send_bytes(now, request("ping"), &[0; 129], None),
        Err(Error::PayloadTooLarge { len: 129, max: 128 })
    );
    assert_eq!(
        a.send_bytes(now, request("no spaces"), b"", None),
        Err(Error::InvalidTopic)
    );
    assert_eq!(a.pending_sends(), 0, "nothing was queued");
    assert_eq!(a.send_bytes(now, request("ok"), b"", None), Ok(MsgId(0)));
}

#[test]
fn end_data_closes_the_conversation() {
    let now = Instant::ZERO;
    let (mut a, mut b) = pair(now);
    a.send_bytes(now, Item::End, b"bye", None).unwrap();
    assert_eq!(a.local_close(), Some(CloseReason::LocalEnd));
    pump(&mut a, &mut b, now);
    let end = core::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
        Event::End(data) => Some(data),
        _ => None,
    });
    assert_eq!(end.as_deref(), Some(&b"bye"[..]));
    assert_eq!(b.peer_state(), PeerState::Ended);
}
