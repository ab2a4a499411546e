use super::*;

fn round_trip(frame: Frame<'_>) -> std::vec::Vec<u8> {
    let mut buf = [0u8; 600];
    let n = encode(&frame, &mut buf).unwrap();
    let mut body = buf[..n - 1].to_vec();
    let len = cobs::decode_in_place(&mut body).unwrap();
    assert_eq!(Frame::parse(&body[..len]).unwrap(), frame);
    buf[..n].to_vec()
}

fn heartbeat(floor: u64, room: u32) -> Heartbeat {
    Heartbeat {
        floor,
        room,
        window: room * 128,
        caps: Caps {
            max_payload: 128,
            max_topic: 32,
            max_message: 0,
        },
        ask: false,
    }
}

fn data<'a>(seq: u64, item: Item<'a>, frag: Frag, payload: &'a [u8]) -> Frame<'a> {
    Frame {
        session: 3,
        body: Body::Data(Data {
            seq,
            floor: seq,
            id: seq,
            item,
            frag,
            payload,
        }),
    }
}

#[test]
fn every_kind_round_trips() {
    let frames = [
        Frame {
            session: 1,
            body: Body::Heartbeat(heartbeat(0, 0)),
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
                ask: true,
            }),
        },
        Frame {
            session: 0,
            body: Body::Ack(Ack {
                to_session: 9,
                next: 300,
                bitmap: 0b101,
                room: 3,
                window: 70_000,
                retry: true,
            }),
        },
        data(5, Item::Request { topic: "t_1" }, Frag::Whole, &[0, 1, 0]),
        data(
            1 << 40,
            Item::Reply {
                topic: "x",
                req_id: 77,
            },
            Frag::Whole,
            &[0xAA; 500],
        ),
        data(0, Item::End, Frag::Whole, b"bye"),
        data(1, Item::Abort, Frag::Whole, b""),
        data(
            2,
            Item::Request { topic: "big" },
            Frag::First { total: 1 << 33 },
            b"head",
        ),
        data(
            3,
            Item::Reply {
                topic: "",
                req_id: 0,
            },
            Frag::Next {
                offset: 4,
                last: false,
            },
            b"body",
        ),
        data(
            4,
            Item::Request { topic: "" },
            Frag::Next {
                offset: 8,
                last: true,
            },
            b"",
        ),
        data(5, Item::End, Frag::First { total: 9 }, b"12345678"),
    ];
    for f in frames {
        round_trip(f);
    }
}

#[test]
fn small_frames_are_small() {
    let ack = round_trip(Frame {
        session: 1,
        body: Body::Ack(Ack {
            to_session: 2,
            next: 3,
            bitmap: 0,
            room: 0,
            window: 0,
            retry: false,
        }),
    });
    assert_eq!(ack.len(), 20);
    let hb = round_trip(Frame {
        session: 1,
        body: Body::Heartbeat(heartbeat(3, 1)),
    });
    assert_eq!(hb.len(), 20);
}

fn with_crc(mut content: std::vec::Vec<u8>) -> std::vec::Vec<u8> {
    let crc = crc32c(&content);
    content.extend_from_slice(&crc.to_le_bytes());
    content
}

#[test]
fn rejects_bad_frames() {
    let mut buf = [0u8; 64];
    let n = encode(
        &Frame {
            session: 1,
            body: Body::Heartbeat(heartbeat(3, 1)),
        },
        &mut buf,
    )
    .unwrap();
    let mut raw = buf[..n - 1].to_vec();
    let len = cobs::decode_in_place(&mut raw).unwrap();
    raw.truncate(len);
    let mut bad = raw.clone();
    bad[5] ^= 1;
    assert_eq!(Frame::parse(&bad), Err(WireError::BadCrc));
    assert_eq!(Frame::parse(&raw[..3]), Err(WireError::Truncated));
    // Versions 1 and 2 are refused, whatever follows.
    for old in [0x13, 0x23, 0x21] {
        assert_eq!(
            Frame::parse(&with_crc(std::vec![old, 1, 0, 0, 0, 0])),
            Err(WireError::UnknownVersion(old >> 4))
        );
    }
    assert_eq!(
        Frame::parse(&with_crc(std::vec![0x3F, 1, 0, 0, 0])),
        Err(WireError::UnknownKind(15))
    );
    let malformed = [
        // Overlong varint in a heartbeat; reserved heartbeat flag.
        std::vec![0x33, 1, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0],
        std::vec![0x33, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0],
        // Reserved DATA flag bits.
        std::vec![0x31, 1, 0, 0, 0, 0x10, 0, 0, 0],
        // Bad and empty topics.
        std::vec![0x31, 1, 0, 0, 0, 0, 0, 0, 0, 1, b'-'],
        std::vec![0x31, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        // A first fragment no longer than its total; a continuation at offset 0.
        std::vec![0x31, 1, 0, 0, 0, 0x0A, 0, 0, 0, 1, b'x'],
        std::vec![0x31, 1, 0, 0, 0, 0x06, 0, 0, 0, 0],
        // Trailing bytes after a heartbeat.
        std::vec![0x33, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
    ];
    for m in malformed {
        assert_eq!(
            Frame::parse(&with_crc(m.clone())),
            Err(WireError::Malformed),
            "{m:x?}"
        );
    }
    let mut reserved = std::vec![0x31, 1, 0, 0, 0, 0, 0, 0, 0, 5];
    reserved.extend_from_slice(b"_END_");
    assert_eq!(Frame::parse(&with_crc(reserved)), Err(WireError::Malformed));
}

#[test]
fn the_first_thing_wrong_is_the_error() {
    let cases: [(std::vec::Vec<u8>, WireError); 5] = [
        // Reserved DATA flags, then too short for its sequence number.
        (std::vec![0x31, 1, 0, 0, 0, 0x10], WireError::Malformed),
        // Cut inside the session, whatever the kind.
        (std::vec![0x3F, 1, 0], WireError::Truncated),
        (std::vec![0x32, 1, 0], WireError::Truncated),
        // An ACK cut after its session, then nothing that could be malformed.
        (std::vec![0x32, 1, 0, 0, 0, 2, 0, 0], WireError::Truncated),
        // An overlong varint before a heartbeat is cut short.
        (
            std::vec![0x33, 1, 0, 0, 0, 0, 0x80, 0],
            WireError::Malformed,
        ),
    ];
    for (content, want) in cases {
        assert_eq!(
            Frame::parse(&with_crc(content.clone())),
            Err(want),
            "{content:x?}"
        );
    }
}

#[test]
fn ack_covers() {
    let a = Ack {
        to_session: 0,
        next: 10,
        bitmap: 0b1001,
        room: 0,
        window: 0,
        retry: false,
    };
    assert!(a.covers(0) && a.covers(9) && a.covers(11) && a.covers(14));
    assert!(
        !a.covers(10) && !a.covers(12) && !a.covers(13) && !a.covers(15) && !a.covers(u64::MAX)
    );
}

#[test]
fn max_len_holds_the_largest_frame() {
    let topic = "t".repeat(32);
    for frag in [Frag::Whole, Frag::First { total: u64::MAX }] {
        let f = Frame {
            session: u32::MAX,
            body: Body::Data(Data {
                seq: u64::MAX,
                floor: u64::MAX,
                id: u64::MAX,
                item: Item::Reply {
                    topic: topic.as_str(),
                    req_id: u64::MAX,
                },
                frag,
                payload: &[0xFF; 128],
            }),
        };
        let mut buf = [0u8; 400];
        let n = encode(&f, &mut buf).unwrap();
        assert!(n <= max_encoded_len(128, 32), "{n}");
        assert!(encode(&f, &mut buf[..n - 1]).is_err());
    }
}

#[test]
fn encode_refuses_what_parse_refuses() {
    let mut buf = [0u8; 64];
    for bad in [
        data(
            1,
            Item::Request { topic: "x" },
            Frag::First { total: 3 },
            b"abc",
        ),
        data(
            1,
            Item::End,
            Frag::Next {
                offset: 0,
                last: true,
            },
            b"abc",
        ),
        data(1, Item::Request { topic: "" }, Frag::Whole, b""),
        data(
            1,
            Item::Request { topic: "a-b" },
            Frag::First { total: 9 },
            b"",
        ),
        data(
            1,
            Item::Reply {
                topic: "_END_",
                req_id: 0,
            },
            Frag::Whole,
            b"",
        ),
    ] {
        assert_eq!(encode(&bad, &mut buf), Err(WireError::Malformed), "{bad:?}");
    }
}
