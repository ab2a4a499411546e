use proptest::prelude::*;

use super::*;
use crate::uuid::uuid_text;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn python_encodings() {
    let cases: &[(Value, &str)] = &[
        (Value::Nil, "c0"),
        (Value::Bool(true), "c3"),
        (Value::Bool(false), "c2"),
        (Value::Int(42), "2a"),
        (Value::Int(-1), "ff"),
        (Value::Int(-32), "e0"),
        (Value::Int(-33), "d0 df"),
        (Value::Int(200), "cc c8"),
        (Value::Int(-129), "d1 ff 7f"),
        (Value::Int(65536), "ce 00 01 00 00"),
        (Value::Int(-(1 << 32)), "d3 ff ff ff ff 00 00 00 00"),
        (Value::UInt(u64::MAX), "cf ff ff ff ff ff ff ff ff"),
        (Value::Float(1.5), "cb 3f f8 00 00 00 00 00 00"),
        (Value::Str("hello".into()), "a5 68 65 6c 6c 6f"),
        (Value::Bin(vec![0xff]), "c4 01 ff"),
        (Value::List(vec![Value::Int(1), Value::Nil]), "92 01 c0"),
    ];
    for (v, bytes) in cases {
        assert_eq!(encode(v).unwrap(), hex(bytes), "{v:?}");
        assert_eq!(decode(&hex(bytes)).unwrap(), *v, "{bytes}");
    }
    let long = "x".repeat(40);
    assert_eq!(encode(&Value::Str(long.clone())).unwrap()[..2], [0xd9, 40]);
    let list = Value::List(vec![Value::Nil; 16]);
    assert_eq!(encode(&list).unwrap()[..3], [0xdc, 0, 16]);
}

#[test]
fn reference_file() {
    // `{"a":"x","n":7,"b":b"\xff"}` as NVFlare 2.8.3 writes it.
    let file = hex("64 00 00 00 00 00 00 00 00 0d 83 a1 61 a1 78 a1 6e 07 a1 62 c4 01 ff");
    let body = from_file(&file).unwrap();
    let v = decode(&body).unwrap();
    assert_eq!(
        v,
        Value::Map(vec![
            ("a".into(), "x".into()),
            ("n".into(), 7.into()),
            ("b".into(), vec![0xffu8].into()),
        ])
    );
    assert_eq!(to_file(&encode(&v).unwrap()), file);
    assert_eq!(
        to_file(&encode(&Value::Str(String::new())).unwrap()),
        hex("64 00 00 00 00 00 00 00 00 01 a0")
    );
}

#[test]
fn refusals() {
    // A tuple as FOBS writes it.
    let tuple = hex("83 ad 5f 5f 66 6f 62 73 5f 74 79 70 65 5f 5f a5 74 75 70 6c 65 ad 5f 5f 66 6f 62 73 5f 64 61 74 61 5f 5f 92 01 02 ab 5f 5f 66 6f 62 73 5f 64 63 5f 5f c0");
    assert_eq!(
        decode(&tuple),
        Err(FobsError::Unsupported {
            fobs_type: "tuple".into()
        })
    );
    assert_eq!(decode(&hex("92 01")), Err(FobsError::Truncated));
    assert_eq!(decode(&[]), Err(FobsError::Truncated));
    assert_eq!(
        decode(&hex("01 02")),
        Err(FobsError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        decode(&hex("d4 05 00")),
        Err(FobsError::Extension { code: 5 })
    );
    assert_eq!(decode(&hex("c1")), Err(FobsError::Reserved));
    assert_eq!(decode(&hex("a1 ff")), Err(FobsError::InvalidUtf8));
    assert_eq!(decode(&[0x91; 100]), Err(FobsError::TooDeep));
    // Declared lengths of 2^32 - 1 in 5 bytes: refused without allocating for them.
    for declared in ["dd", "df", "c6", "db", "c9"] {
        let input = hex(&format!("{declared} ff ff ff ff"));
        assert_eq!(decode(&input), Err(FobsError::Truncated), "{declared}");
    }
    assert_eq!(
        from_file(&hex("82 a1 61 01")),
        Err(FobsError::NoHeader { found: Some(0x82) })
    );
    assert_eq!(from_file(&[]), Err(FobsError::NoHeader { found: None }));
    assert_eq!(from_file(&hex("64 00 00")), Err(FobsError::Truncated));
    assert_eq!(
        from_file(&hex("64 00 00 00 00 00 00 00 00 05 c0")),
        Err(FobsError::Truncated)
    );
    // Bytes after the body are datum sections: these are cut short, or not one.
    assert_eq!(
        from_file(&hex("64 00 00 00 00 00 00 00 00 01 c0 66 00")),
        Err(FobsError::Truncated)
    );
    assert_eq!(
        from_file(&hex(
            "64 00 00 00 00 00 00 00 00 01 c0 63 00 00 00 00 00 00 00 00 10"
        )),
        Err(FobsError::BadDatum("unknown section marker"))
    );
}

/// A `DatumRef` map as NVFlare 2.8.3 writes it, for the datum `id`.
fn datum_ref(id: &str) -> Value {
    let data = Value::Map(vec![
        ("datum_id".into(), id.into()),
        ("unwrap".into(), Value::Bool(true)),
    ]);
    Value::Map(vec![
        (
            "__fobs_type__".into(),
            "nvflare.fuel.utils.fobs.datum.DatumRef".into(),
        ),
        (
            "__fobs_data__".into(),
            Value::Map(vec![("data".into(), data)]),
        ),
        (
            "__fobs_dc__".into(),
            "nvflare.fuel.utils.fobs.decomposer.DataClassDecomposer".into(),
        ),
    ])
}

#[test]
fn datum_sections_are_resolved_into_the_body() {
    let (blob_id, text_id) = (
        "6bc790a1-7913-46c3-a95e-6d2393687462",
        "d7f0d82b-8c30-4c66-8b30-553672810000",
    );
    let body = encode(&Value::Map(vec![
        ("big".into(), datum_ref(blob_id)),
        ("s".into(), "small".into()),
        ("t".into(), datum_ref(text_id)),
    ]))
    .unwrap();
    let uuid = |s: &str| {
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        id
    };
    let mut file = to_file(&body);
    file.extend(super::datum::section(102, uuid(blob_id), &[1, 2, 3]));
    file.extend(super::datum::section(101, uuid(text_id), b"text"));
    let plain = from_file(&file).unwrap();
    assert_eq!(
        decode(&plain).unwrap(),
        Value::Map(vec![
            ("big".into(), Value::Bin(vec![1, 2, 3])),
            ("s".into(), "small".into()),
            ("t".into(), "text".into()),
        ])
    );

    // A reference to a section that is not there, a file datum, a broken section.
    let mut missing = to_file(&body);
    missing.extend(super::datum::section(102, uuid(blob_id), &[1]));
    assert_eq!(
        from_file(&missing),
        Err(FobsError::BadDatum("DatumRef to a missing section"))
    );
    let mut file_datum = to_file(&body);
    file_datum.extend(super::datum::section(103, uuid(blob_id), b"/tmp/x"));
    file_datum.extend(super::datum::section(101, uuid(text_id), b"t"));
    assert!(matches!(
        from_file(&file_datum),
        Err(FobsError::Unsupported { .. })
    ));
    let mut cut = file.clone();
    cut.truncate(file.len() - 1);
    assert_eq!(from_file(&cut), Err(FobsError::Truncated));
    // Without sections, a DatumRef is an unsupported FOBS type, as before.
    assert!(matches!(decode(&body), Err(FobsError::Unsupported { .. })));
}

#[test]
fn bodies_for_raw_data() {
    assert_eq!(body_for(&[]), [0xc0]);
    assert_eq!(body_for(&[0x2a]), [0x2a]);
    // Not one msgpack value: sent as bytes.
    assert_eq!(body_for(b"hi"), [0xc4, 2, b'h', b'i']);
    assert_eq!(body_for(&[0xc1]), [0xc4, 1, 0xc1]);
}

/// A datum section: marker, UUID, data.
type Section<'a> = (u8, [u8; 16], &'a [u8]);

/// The body and the sections of a FOBS file.
fn split_file(file: &[u8]) -> (&[u8], Vec<Section<'_>>) {
    let len = u64::from_be_bytes(file[2..10].try_into().unwrap()) as usize;
    let (body, mut rest) = file[10..].split_at(len);
    let mut sections = Vec::new();
    while !rest.is_empty() {
        let size = u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize;
        let id: [u8; 16] = rest[10..26].try_into().unwrap();
        sections.push((rest[0], id, &rest[26..10 + size]));
        rest = &rest[10 + size..];
    }
    (body, sections)
}

fn file_of(data: &[u8], threshold: usize) -> Vec<u8> {
    let mut file = Vec::new();
    let n = write_file_with(data, threshold, &mut file).unwrap();
    assert_eq!(n, file.len() as u64);
    file
}

#[test]
fn a_large_bytes_value_is_written_as_nvflare_writes_it() {
    // NVFlare 2.8.3, `fobs.dumpf(b"x" * (10 << 20), path)`: a 199-byte body (the DatumRef),
    // then one section of marker 102 and size 16 + 10 MiB.
    let data = encode(&Value::Bin(vec![b'x'; DATUM_THRESHOLD])).unwrap();
    let mut file = Vec::new();
    write_file(&data, &mut file).unwrap();
    assert_eq!(file[..10], hex("64 00 00 00 00 00 00 00 00 c7"));
    let (body, sections) = split_file(&file);
    assert_eq!(sections.len(), 1);
    let (marker, id, section) = sections[0];
    assert_eq!(marker, 102);
    assert_eq!(
        file[10 + 199..10 + 199 + 10],
        hex("66 00 00 00 00 00 00 a0 00 10")
    );
    assert!(section.len() == DATUM_THRESHOLD && section.iter().all(|&b| b == b'x'));
    // The body NVFlare wrote, but for the uuid.
    let python = hex(
        "83ad5f5f666f62735f747970655f5fd9266e76666c6172652e6675656c2e7574696c732e666f6273         2e646174756d2e446174756d526566ad5f5f666f62735f646174615f5f81a46461746182a8646174         756d5f6964d924 UUID a6756e77726170c3ab5f5f666f62735f64635f5fd9366e76666c6172652e         6675656c2e7574696c732e666f62732e6465636f6d706f7365722e44617461436c617373446563         6f6d706f736572"
            .replace(char::is_whitespace, "")
            .replace("UUID", &uuid_text(id).bytes().map(|b| format!("{b:02x}")).collect::<String>())
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
    );
    assert_eq!(body, python);
    assert_eq!(from_file(&file).unwrap(), data);
    // One byte less stays in the body.
    let data = encode(&Value::Bin(vec![b'x'; DATUM_THRESHOLD - 1])).unwrap();
    let mut file = Vec::new();
    write_file(&data, &mut file).unwrap();
    assert_eq!(split_file(&file), (&data[..], vec![]));
}

#[test]
fn large_values_go_where_the_externalizer_puts_them() {
    let t = 64;
    let big = || Value::Bin((0..100u8).collect());
    let big_str = || Value::Str("é".repeat(40) + &"x".repeat(30)); // 70 characters
    let few_chars = Value::Str("é".repeat(40)); // 80 bytes, 40 characters
    let tuple = Value::Map(vec![
        ("__fobs_type__".into(), "tuple".into()),
        ("__fobs_data__".into(), Value::List(vec![big()])),
    ]);
    let v = Value::Map(vec![
        ("a".into(), big()),
        (
            "l".into(),
            Value::List(vec![1.into(), big_str(), few_chars.clone()]),
        ),
        (big(), "key".into()),
        ("t".into(), tuple),
        (
            "m".into(),
            Value::Map(vec![("deep".into(), Value::List(vec![big()]))]),
        ),
    ]);
    let data = encode(&v).unwrap();
    let file = file_of(&data, t);
    let (body, sections) = split_file(&file);
    let markers: Vec<u8> = sections.iter().map(|s| s.0).collect();
    // Not the key, not inside the FOBS map; in order of appearance.
    assert_eq!(markers, [102, 101, 102]);
    // The references, by their uuids, in the body.
    for (_, id, _) in &sections {
        let text = uuid_text(*id);
        assert!(body.windows(36).any(|w| w == text.as_bytes()), "{text}");
    }
    assert_eq!(from_file(&file).unwrap(), data);
    // The top-level value itself, and data that is not one value (Python bytes).
    let file = file_of(&encode(&big_str()).unwrap(), t);
    assert_eq!(split_file(&file).1.len(), 1);
    assert_eq!(from_file(&file).unwrap(), encode(&big_str()).unwrap());
    let raw = vec![0xc1; 100];
    let file = file_of(&raw, t);
    let (_, sections) = split_file(&file);
    assert_eq!(sections, [(102, sections[0].1, &raw[..])]);
    assert_eq!(decode(&from_file(&file).unwrap()), Ok(Value::Bin(raw)));
    // Small: as body_for.
    for data in [&[][..], b"hi", &[0x2a]] {
        assert_eq!(file_of(data, t), to_file(&body_for(data)));
    }
}

#[test]
fn check_refuses_what_decode_refuses() {
    let tuple = hex("82 ad 5f 5f 66 6f 62 73 5f 74 79 70 65 5f 5f a5 74 75 70 6c 65 a1 78 01");
    assert_eq!(
        check(&tuple),
        Err(FobsError::Unsupported {
            fobs_type: "tuple".into()
        })
    );
    assert_eq!(check(&hex("92 01")), Err(FobsError::Truncated));
    assert_eq!(
        check(&hex("01 02")),
        Err(FobsError::TrailingBytes { extra: 1 })
    );
    assert_eq!(check(&[0x91; 100]), Err(FobsError::TooDeep));
    assert_eq!(check(&hex("c1")), Err(FobsError::Reserved));
    // A list of a million ints: checked without a Value per int.
    let mut many = hex("dd 00 0f 42 40");
    many.resize(many.len() + 1_000_000, 0x07);
    assert_eq!(check(&many), Ok(()));
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::UInt),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
            .prop_map(Value::Float),
        ".{0,40}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::List),
            proptest::collection::vec((".{0,8}".prop_map(Value::Str), inner), 0..20)
                .prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn round_trip(v in value()) {
        let body = encode(&v).unwrap();
        prop_assert_eq!(decode(&body).unwrap(), v.clone());
        prop_assert_eq!(body_for(&body), body.clone());
        prop_assert_eq!(decode(&from_file(&to_file(&body)).unwrap()).unwrap(), v);
    }

    #[test]
    fn large_values_round_trip_through_datum_sections(v in value(), t in 1usize..200) {
        let body = encode(&v).unwrap();
        let file = file_of(&body, t);
        prop_assert_eq!(from_file(&file).unwrap(), body);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(check(&bytes), decode(&bytes).map(drop));
        let _ = from_file(&bytes);
        let file = file_of(&bytes, 16);
        let body = from_file(&file);
        prop_assert!(body.is_ok(), "{:?}", body);
        let body = body_for(&bytes);
        prop_assert!(is_one_value(&body));
    }
}

/// Encode+decode timings behind the choice of codec (see the module's "Why hand-written"):
/// `cargo test -p peerpipe-nvflare --lib fobs::tests::timings -- --ignored --nocapture`
/// (add `--release` for optimised figures). Prints the best of 5 runs of each case.
#[test]
#[ignore = "a measurement, not a check"]
fn timings() {
    use std::time::{Duration, Instant};
    let big = Value::Bin(vec![0x5a; 10 << 20]);
    let map = Value::Map(
        (0..10_000)
            .map(|i| (Value::Str(format!("k{i}")), Value::Int(i)))
            .collect(),
    );
    for (name, v) in [("10 MiB bin", &big), ("map of 10,000 entries", &map)] {
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            let body = encode(v).unwrap();
            let enc = t.elapsed();
            let t = Instant::now();
            let back = decode(&body).unwrap();
            let dec = t.elapsed();
            assert_eq!(&back, v);
            best = (best.0.min(enc), best.1.min(dec));
        }
        println!("{name}: encode {:?}, decode {:?}", best.0, best.1);
    }
}
