//! Large messages in parts, both ways, from the runner's source and from a handle.

use super::*;

#[test]
fn a_large_message_streams_both_ways() {
    const LONG: u64 = 20_000;
    let mut source = Counting {
        buf: [0; 128],
        asked: 0,
    };
    pair(&mut source, async |a, b, _| {
        // B answers `gen` with a long reply from its runner's source; A's request is told the
        // reply comes in parts, which arrive through `receive`.
        let server = async {
            loop {
                match b.receive().await {
                    Event::Message(m) if m.topic() == "gen" => {
                        let item = Item::Reply {
                            topic: "gen",
                            req_id: m.id().0,
                        };
                        b.send_from(item, LONG, None).unwrap();
                    }
                    Event::Part(part) if part.kind() == PartKind::Request => {
                        for (k, &x) in part.data().iter().enumerate() {
                            assert_eq!(x, byte(part.offset() + k as u64));
                        }
                        if part.is_last() {
                            let total = part.total().to_le_bytes();
                            b.send(Message::reply("big", &total, part.id()).unwrap(), None)
                                .unwrap();
                        }
                    }
                    _ => {}
                }
            }
        };
        let client = async {
            let id = match a.request(Message::request("gen", b"").unwrap(), None).await {
                Err(RequestError::ReplyInParts(id)) => id,
                other => panic!("{other:?}"),
            };
            let mut next = 0u64;
            while next < LONG {
                match a.receive().await {
                    Event::Part(part) => {
                        assert_eq!(part.kind(), PartKind::Reply { req_id: id });
                        assert_eq!((part.offset(), part.total()), (next, LONG));
                        for (k, &x) in part.data().iter().enumerate() {
                            assert_eq!(x, byte(next + k as u64));
                        }
                        next += part.data().len() as u64;
                        assert_eq!(part.is_last(), next == LONG);
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        select(client, server).await;
    });
    assert!(
        source.asked >= LONG,
        "every byte came from the source ({})",
        source.asked
    );
}

#[test]
fn a_large_message_from_a_handle_streams_to_the_peer() {
    const LONG: u64 = 30_000;
    let clock = MockClock::default();
    let (a_tx, b_rx) = pipe(64);
    let (b_tx, a_rx) = pipe(64);
    let sa: State<NoopRawMutex> = State::new(endpoint(1));
    let sb: State<NoopRawMutex> = State::new(endpoint(2));
    let (mut ra, a) = new(&sa, &clock);
    let (mut rb, b) = new(&sb, &clock);
    let mut source = Counting {
        buf: [0; 128],
        asked: 0,
    };
    let mut none = NoSource;
    let test = async {
        let id = a
            .send_from(Item::Request { topic: "big" }, LONG, None)
            .unwrap();
        let mut next = 0;
        loop {
            match b.receive().await {
                Event::Part(part) => {
                    assert_eq!(part.id(), id);
                    assert_eq!(part.offset(), next);
                    for (k, &x) in part.data().iter().enumerate() {
                        assert_eq!(x, byte(next + k as u64));
                    }
                    next += part.data().len() as u64;
                    if part.is_last() {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(next, LONG);
    };
    {
        let a = pin!(ra.run(a_rx, a_tx, &mut source));
        let b = pin!(rb.run(b_rx, b_tx, &mut none));
        block_on(&clock, test, &mut [a, b]);
    }
    assert!(source.asked >= LONG);
}
