//! `bridge` recording both directions, and `sniff` reading recordings and hand-made streams.

use super::*;

/// The table's rows, split into columns, without the header.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn bridge_records_both_directions_and_sniff_reads_them() {
    let echo = Bg::start(&["listen", "tcp-listen:0", "--echo"]);
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("session.rec");
    let bridge = Bg::start(&[
        "bridge",
        "tcp-listen:0",
        &echo.tcp(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    let o = run(&["request", &bridge.tcp(), "ping", "through the bridge"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "through the bridge");
    // The requester closed its side: the bridge ends by itself.
    let (status, _) = bridge.wait();
    assert_eq!(status, 0);

    let o = run(&["sniff", rec.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.starts_with(
            "TIME       DIR OFFSET   KIND    SESSION  IDS                                TOPIC        LEN  WIRE  INFO"
        ),
        "{table}"
    );
    let rows = rows(&table);
    let find = |dir: &str, kind: &str| {
        rows.iter()
            .find(|r| r[1] == dir && r[3] == kind)
            .unwrap_or_else(|| panic!("no {dir} {kind} row in\n{table}"))
            .clone()
    };
    let req = find("a>b", "REQ");
    assert_eq!(
        &req[5..],
        [
            "seq=0",
            "floor=0",
            "id=0",
            "ping",
            "18",
            "38",
            "\"through",
            "the",
            "bridge\""
        ]
    );
    // No DATA before the peer's capabilities: the requester's first frame is a heartbeat that
    // asks for them, and its request goes once the echo's heartbeat has passed the bridge.
    // (The echo's own first heartbeat may be recorded before it: the bridge opens both links
    // at once.)
    let first = rows.iter().find(|r| r[1] == "a>b").unwrap();
    assert_eq!(
        (&first[1][..], &first[2][..], &first[3][..]),
        ("a>b", "0", "HB")
    );
    assert_eq!(first.last().map(String::as_str), Some("ask"), "{table}");
    assert_ne!(req[2], "0", "{table}");
    let time = |r: &[String]| r[0].parse::<f64>().unwrap();
    let echo_hb = find("b>a", "HB");
    assert!(time(&req) >= time(&echo_hb), "{table}");
    let caps = format!(
        "max_payload={} max_topic={}",
        peerpipe_std::FRAGMENT,
        peerpipe_std::MAX_TOPIC
    );
    assert!(echo_hb.join(" ").contains(&caps), "{table}");
    let reply = find("b>a", "REPLY");
    assert_eq!(&reply[5..10], ["seq=0", "floor=0", "id=0", "req=0", "ping"]);
    assert_eq!(reply[4], echo_hb[4], "both from the echo's session");
    let end = find("a>b", "END");
    assert_eq!(end[4], req[4], "END from the requester's session");
    let ack = find("b>a", "ACK");
    assert_eq!(ack[5], format!("to={}", req[4]));
    assert!(
        !table.contains("GARBAGE") && !table.contains("CRC-ERR"),
        "{table}"
    );

    // The same as JSON lines, with directions and times.
    let o = run(&["--json", "sniff", rec.to_str().unwrap()]);
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), rows.len());
    let req = lines.iter().find(|v| v["kind"] == "request").unwrap();
    assert_eq!(req["dir"], "a>b");
    assert_eq!(req["topic"], "ping");
    assert_eq!(req["data"], "through the bridge");
    assert_eq!(
        (&req["id"], &req["frag"]),
        (&Value::from(0), &Value::from("whole"))
    );
    assert!(req["time"].as_f64().is_some());
    drop(echo);
}

/// Frames from `docs/PROTOCOL.md` section 2.4.
const HEARTBEAT: &[u8] = &[
    0x06, 0x33, 0x0d, 0x0c, 0x0b, 0x0a, 0x08, 0x03, 0x03, 0x80, 0x03, 0x80, 0x01, 0x20, 0x05, 0xc6,
    0x04, 0x93, 0x3d, 0x00,
];
const REQUEST: &[u8] = &[
    0x06, 0x31, 0x04, 0x03, 0x02, 0x01, 0x0b, 0x05, 0x04, 0x05, 0x04, 0x70, 0x69, 0x6e, 0x67, 0x68,
    0x69, 0x05, 0x59, 0x92, 0x20, 0x78, 0x00,
];
const ACK: &[u8] = &[
    0x0f, 0x32, 0x0d, 0x0c, 0x0b, 0x0a, 0x04, 0x03, 0x02, 0x01, 0x05, 0x02, 0x02, 0x80, 0x02, 0x05,
    0xd4, 0x7e, 0x23, 0x7f, 0x00,
];
const END: &[u8] = &[
    0x11, 0x31, 0x04, 0x03, 0x02, 0x01, 0x02, 0x06, 0x06, 0x06, 0x62, 0x79, 0x65, 0xae, 0xfa, 0x04,
    0x7a, 0x00,
];
/// A request of 9 bytes in three fragments.
const FRAGMENTS: [&[u8]; 3] = [
    &[
        0x15, 0x31, 0x04, 0x03, 0x02, 0x01, 0x08, 0x08, 0x08, 0x08, 0x02, 0x66, 0x77, 0x09, 0x61,
        0x62, 0x63, 0x20, 0x29, 0xbd, 0xe9, 0x00,
    ],
    &[
        0x12, 0x31, 0x04, 0x03, 0x02, 0x01, 0x0c, 0x09, 0x08, 0x08, 0x03, 0x64, 0x65, 0x66, 0xae,
        0x69, 0x10, 0x37, 0x00,
    ],
    &[
        0x12, 0x31, 0x04, 0x03, 0x02, 0x01, 0x04, 0x0a, 0x08, 0x08, 0x06, 0x67, 0x68, 0x69, 0x23,
        0x45, 0x48, 0x1f, 0x00,
    ],
];

#[test]
fn sniff_a_hand_made_stream_with_garbage_and_a_corrupted_frame() {
    let mut stream = vec![0x55, 0x13, 0x77]; // noise right before a frame
    stream.extend(HEARTBEAT);
    let mut corrupt = REQUEST.to_vec();
    corrupt[13] ^= 0x01; // "ping" (from byte 11) becomes "piog": the CRC no longer matches
    stream.extend(&corrupt);
    stream.extend([0xde, 0xad, 0xbe, 0xef, 0x00]); // garbage between delimiters
    stream.extend(ACK);
    stream.extend(REQUEST);
    for fragment in FRAGMENTS {
        stream.extend(fragment);
    }
    stream.extend(END);
    stream.extend([0x01, 0x02]); // cut off at the end
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.bin");
    std::fs::write(&file, &stream).unwrap();

    let o = run(&["sniff", file.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let expected = "\
OFFSET   KIND    SESSION  IDS                                TOPIC        LEN  WIRE  INFO
0        GARBAGE -        -                                  -              -     3  noise before a frame
3        HB      0a0b0c0d floor=3                            -              -    20  room=3 window=384 max_payload=128 max_topic=32 max_message=0
23       CRC-ERR 01020304 seq=5 floor=4 id=5                 piog           3    23  REQ with CRC 78209259, content gives 4031fdf5
46       GARBAGE -        -                                  -              -     5  invalid COBS encoding
51       ACK     0a0b0c0d to=01020304 next=5 bits=0x2        -              -    21  room=2 window=256
72       REQ     01020304 seq=5 floor=4 id=5                 ping           3    23  \"hi\\x00\"
95       REQ     01020304 seq=8 floor=8 id=8 total=9         fw             3    22  \"abc\"
117      REQ     01020304 seq=9 floor=8 id=8 at=3            -              3    19  \"def\"
136      REQ     01020304 seq=10 floor=8 id=8 at=6 last      -              3    19  \"ghi\"
155      END     01020304 seq=6 floor=6 id=6                 -              3    18  \"bye\"
173      GARBAGE -        -                                  -              -     2  incomplete: no delimiter before the end
";
    assert_eq!(stdout(&o), expected);

    // The same from stdin, as JSON lines.
    let o = run_with(&["--json", "sniff", "-"], &stream);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    let kinds: Vec<&str> = lines.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "garbage",
            "heartbeat",
            "crc_error",
            "garbage",
            "ack",
            "request",
            "request",
            "request",
            "request",
            "end",
            "garbage"
        ]
    );
    assert_eq!(lines[1]["max_payload"], 128);
    assert_eq!(lines[1]["max_topic"], 32);
    assert_eq!(lines[1]["ask"], false);
    assert_eq!(lines[2]["claimed_kind"], "request");
    assert_eq!(lines[2]["topic"], "piog");
    assert_eq!(lines[2]["crc"], "78209259");
    assert_eq!(lines[2]["crc_computed"], "4031fdf5");
    assert_eq!(lines[4]["bitmap"], 2);
    assert_eq!(lines[4]["window"], 256);
    assert_eq!(lines[5]["data"], "hi\u{0}");
    assert_eq!(lines[5]["frag"], "whole");
    // The fragments: `offset` stays the row's place in the stream, `at` is the fragment's in
    // its message.
    let frags: Vec<_> = lines[6..9]
        .iter()
        .map(|v| {
            (
                v["offset"].as_u64().unwrap(),
                v["id"].as_u64().unwrap(),
                v["frag"].as_str().unwrap(),
                v["total"].as_u64(),
                v["at"].as_u64(),
                v["data"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        frags,
        [
            (95, 8, "first", Some(9), None, "abc"),
            (117, 8, "middle", None, Some(3), "def"),
            (136, 8, "last", None, Some(6), "ghi"),
        ]
    );
    assert_eq!(lines[6]["topic"], "fw");
    assert_eq!(lines[7].get("topic"), None);
    assert_eq!(lines[9]["data"], "bye");
    assert_eq!(lines[10]["offset"], 173);
}
