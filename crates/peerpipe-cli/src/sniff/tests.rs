use super::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn pieces(bytes: &[u8]) -> Vec<Piece> {
    let mut s = Sniffer::default();
    let mut v = Vec::new();
    s.feed(bytes, &mut |p| v.push(p));
    s.finish(&mut |p| v.push(p));
    v
}

const REQUEST: &str = "06 31 04 03 02 01 0b 05 04 05 04 70 69 6e 67 68 69 05 59 92 20 78 00";
const HEARTBEAT: &str = "06 33 0d 0c 0b 0a 08 03 03 80 03 80 01 20 05 c6 04 93 3d 00";

#[test]
fn protocol_examples_decode() {
    let mut stream = hex(REQUEST);
    stream.extend(hex(HEARTBEAT));
    let v = pieces(&stream);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].offset, 0);
    assert_eq!(v[0].wire, 23);
    let What::Frame(f) = &v[0].what else {
        panic!("{v:?}")
    };
    assert_eq!(f.session, 0x01020304);
    assert!(
        matches!(&f.body, Info::Data { kind: DataKind::Request, seq: 5, floor: 4, topic: Some(t), payload, .. } if t == "ping" && payload == &[0x68, 0x69, 0])
    );
    assert_eq!(v[1].offset, 23);
    assert!(matches!(
        &v[1].what,
        What::Frame(FrameInfo {
            session: 0x0a0b0c0d,
            body: Info::Heartbeat(Heartbeat {
                floor: 3,
                room: 3,
                window: 384,
                ..
            })
        })
    ));
}

#[test]
fn noise_before_a_frame_and_a_bad_crc_get_their_own_rows() {
    let mut stream = vec![0x55, 0x13, 0x77];
    stream.extend(hex(HEARTBEAT));
    let mut corrupt = hex(REQUEST);
    corrupt[13] ^= 0x01; // "ping" becomes "piog": COBS still sound, CRC not
    stream.extend(&corrupt);
    stream.extend([0x99, 0x98]);
    let v = pieces(&stream);
    assert_eq!(v.len(), 4, "{v:?}");
    assert_eq!((v[0].offset, v[0].wire), (0, 3));
    assert!(matches!(&v[0].what, What::Garbage(w) if w == "noise before a frame"));
    assert_eq!((v[1].offset, v[1].wire), (3, 20));
    assert!(matches!(&v[1].what, What::Frame(_)));
    assert_eq!((v[2].offset, v[2].wire), (23, 23));
    assert!(
        matches!(&v[2].what, What::CrcError { claimed: FrameInfo { body: Info::Data { topic: Some(t), .. }, .. }, found: 0x78209259, .. } if t == "piog")
    );
    assert_eq!((v[3].offset, v[3].wire), (46, 2));
    assert!(matches!(&v[3].what, What::Garbage(w) if w.starts_with("incomplete")));
}

#[test]
fn byte_by_byte_is_the_same() {
    let mut stream = vec![1, 2, 3, 0];
    stream.extend(hex(REQUEST));
    let whole = pieces(&stream);
    let mut s = Sniffer::default();
    let mut v = Vec::new();
    for b in &stream {
        s.feed(std::slice::from_ref(b), &mut |p| v.push(p));
    }
    s.finish(&mut |p| v.push(p));
    assert_eq!(v, whole);
    assert!(matches!(&v[0].what, What::Garbage(_)));
}

/// COBS-encodes `data` and adds the delimiter (the simple encoder: blocks of at most
/// 254 bytes are enough for these tests).
fn cobs(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.split(|&b| b == 0) {
        assert!(block.len() < 254);
        out.push(block.len() as u8 + 1);
        out.extend_from_slice(block);
    }
    out.push(0);
    out
}

#[test]
fn a_valid_crc_around_an_invalid_frame_is_bad_not_garbage() {
    // Version 1, kind HEARTBEAT: the CRC is right, the frame is not one of ours.
    let mut content = vec![0x13, 1, 0, 0, 0, 0];
    content.extend_from_slice(&crc32c(&content).to_le_bytes());
    let v = pieces(&cobs(&content));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].what, What::Bad(WireError::UnknownVersion(1)));
    assert_eq!(v[0].wire, content.len() + 2);
}
