//! The hex examples of `docs/PROTOCOL.md` (section 2.4) are frames this implementation decodes
//! and encodes to exactly the same bytes: the document cannot drift from the code unnoticed.

use peerpipe_core::wire::{encode, Decoder};

/// The examples: every table row of section 2.4 whose last cell is hex in backticks.
fn examples() -> Vec<(String, Vec<u8>)> {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let start = doc.find("### 2.4").expect("section 2.4");
    let end = start + doc[start..].find("\n### ").expect("section after 2.4");
    doc[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let hex = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            let bytes = hex
                .split(' ')
                .map(|b| u8::from_str_radix(b, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((cells[1].to_owned(), bytes))
        })
        .collect()
}

#[test]
fn every_example_decodes_and_encodes_back() {
    let examples = examples();
    assert!(examples.len() >= 7, "found only {examples:?}");
    for (what, bytes) in examples {
        let mut decoder = Decoder::<256>::new();
        let (used, frame) = decoder.feed(&bytes);
        assert_eq!(used, bytes.len(), "{what}: one frame");
        let frame = frame
            .unwrap_or_else(|| panic!("{what}: no frame"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut out = [0u8; 256];
        let n = encode(&frame, &mut out).unwrap();
        assert_eq!(out[..n], bytes[..], "{what}: {frame:?} encodes differently");
    }
}
