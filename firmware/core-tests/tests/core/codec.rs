//! The wire codec through the stream decoder: every frame kind, byte by byte, and garbage,
//! noise and corruption before a frame.

use core_tests::note;
use peerpipe_core::wire::{
    self, Ack, Body, Caps, Data, Decoder, Frag, Frame, Heartbeat, Item, WireError,
};

use crate::FRAME_BUF;

/// The decoder size for the default capacities.
const DECODER: usize = wire::max_encoded_len(128, 32);

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

pub(crate) fn codec_every_kind() {
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

pub(crate) fn codec_byte_by_byte() {
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

pub(crate) fn codec_garbage() {
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
