//! `Endpoint::poll_event_ref`: the events `poll_event` gives, their topic and data lent from
//! the receive slot instead of copied.

use peerpipe_core::wire::Item;
use peerpipe_core::{
    Endpoint, Event, EventRef, Instant, Message, MessageKind, MsgId, Outcome, PartKind, Source,
};

type Ep = Endpoint;

const NOW: Instant = Instant::ZERO;

/// Moves every frame `from` has to send now to `to`.
fn pump(from: &mut Ep, to: &mut Ep) {
    let mut buf = [0u8; Ep::MAX_FRAME_LEN];
    while let Some(n) = from.poll_transmit(NOW, &mut buf).unwrap() {
        to.handle_bytes(NOW, &buf[..n]);
    }
}

/// Two endpoints that know each other's capabilities, and the bytes of a 300-byte message.
fn pair() -> (Ep, Ep, Vec<u8>) {
    let mut a = Ep::new(Default::default(), 1, NOW).unwrap();
    let mut b = Ep::new(Default::default(), 2, NOW).unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    let long = (0..300u32).map(|i| (i * 7) as u8).collect();
    (a, b, long)
}

/// What B's application sees of A's sends, taken with `poll_event_ref` as owned values.
#[derive(Debug, PartialEq)]
enum Seen {
    Message(MessageKind, MsgId, String, Vec<u8>),
    Part(MsgId, PartKind, String, u64, u64, Vec<u8>, bool, bool),
    End(Vec<u8>),
}

impl Seen {
    fn of(event: EventRef<'_>) -> Self {
        match event {
            EventRef::Message(m) => {
                Seen::Message(m.kind(), m.id(), m.topic().to_owned(), m.data().to_vec())
            }
            EventRef::Part(p) => Seen::Part(
                p.id(),
                p.kind(),
                p.topic().to_owned(),
                p.total(),
                p.offset(),
                p.data().to_vec(),
                p.is_first(),
                p.is_last(),
            ),
            EventRef::End(data) => Seen::End(data.to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn drain_ref(b: &mut Ep) -> Vec<Seen> {
    core::iter::from_fn(|| b.poll_event_ref().map(Seen::of)).collect()
}

/// The owned events, seen through the same views (`From<&Message>`, `From<&Part>`).
fn drain_owned(b: &mut Ep) -> Vec<Seen> {
    core::iter::from_fn(|| b.poll_event())
        .map(|event| match &event {
            Event::Message(m) => Seen::of(EventRef::Message(m.into())),
            Event::Part(p) => Seen::of(EventRef::Part(p.into())),
            Event::End(data) => Seen::End(data.to_vec()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The bytes of the one message sent from a source.
struct Long(Vec<u8>);

impl Source for Long {
    fn read(&mut self, _: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        self.0.get(offset as usize..offset as usize + len)
    }
}

#[test]
fn lent_events_tell_what_owned_ones_do() {
    let (mut a, mut b, long) = pair();
    // A short request, a request in three parts (from a source), a reply and END.
    a.send(NOW, Message::request("short", b"hi").unwrap(), None)
        .unwrap();
    a.send_from(
        NOW,
        Item::Request { topic: "long" },
        long.len() as u64,
        None,
    )
    .unwrap();
    let reply = Message::reply("back", b"r", MsgId(9)).unwrap();
    a.send(NOW, reply, None).unwrap();
    a.notify_end(NOW, b"bye").unwrap();
    // B takes its events lent, a copy of B owned; A sends as B's ACKs let it.
    let mut b2 = b.clone();
    let (mut lent, mut owned) = (Vec::new(), Vec::new());
    let mut buf = [0u8; Ep::MAX_FRAME_LEN];
    let mut source = Long(long.clone());
    for _ in 0..10 {
        while let Some(n) = a.poll_transmit_from(NOW, &mut buf, &mut source).unwrap() {
            b.handle_bytes(NOW, &buf[..n]);
            b2.handle_bytes(NOW, &buf[..n]);
        }
        lent.extend(drain_ref(&mut b));
        owned.extend(drain_owned(&mut b2));
        pump(&mut b, &mut a);
    }
    assert_eq!(lent, owned);
    // The short request, the long one in parts (each with the message's topic and length),
    // the reply, END.
    let parts: Vec<_> = lent
        .iter()
        .filter_map(|s| match s {
            Seen::Part(_, kind, topic, total, offset, data, first, last) => Some((
                *kind,
                topic.as_str(),
                *total,
                *offset,
                data.len(),
                *first,
                *last,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        parts,
        [
            (PartKind::Request, "long", 300, 0, 128, true, false),
            (PartKind::Request, "long", 300, 128, 128, false, false),
            (PartKind::Request, "long", 300, 256, 44, false, true),
        ]
    );
    let joined: Vec<u8> = lent
        .iter()
        .filter_map(|s| match s {
            Seen::Part(.., data, _, _) => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(joined, long);
    assert_eq!(
        lent.first(),
        Some(&Seen::Message(
            MessageKind::Request,
            MsgId(0),
            "short".into(),
            b"hi".to_vec()
        ))
    );
    assert_eq!(lent.last(), Some(&Seen::End(b"bye".to_vec())));
}

#[test]
fn outcomes_come_lent_too() {
    let (mut a, mut b, _) = pair();
    let id = a
        .send(NOW, Message::request("t", b"x").unwrap(), None)
        .unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    assert_eq!(
        a.poll_event_ref(),
        Some(EventRef::SendOutcome {
            id,
            outcome: Outcome::Delivered
        })
    );
    assert_eq!(a.poll_event_ref(), None);
}
