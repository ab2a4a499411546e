//! The wire codec on arbitrary bytes: `Frame::parse` and the stream `Decoder` never panic, the
//! decoder always makes progress, and every frame it yields re-encodes to bytes that decode to
//! the same frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerpipe_core::wire::{encode, max_encoded_len, Decoder, Frame};

/// The decoder of a default endpoint (128-byte payloads, 32-byte topics).
const N: usize = max_encoded_len(128, 32);

/// Re-encoding room: a decoded frame may be re-encoded a little longer than it came in.
const OUT: usize = 2 * N;

fuzz_target!(|data: &[u8]| {
    // Parsing raw (already COBS-decoded) bytes.
    if let Ok(frame) = Frame::parse(data) {
        check_round_trip(&frame);
    }

    // The stream decoder, in chunks whose size the first byte picks (1..=256).
    let chunk = usize::from(data.first().copied().unwrap_or(0)) + 1;
    let mut decoder = Decoder::<N>::new();
    for mut part in data.chunks(chunk) {
        while !part.is_empty() {
            let (used, result) = decoder.feed(part);
            assert!(
                used >= 1 && used <= part.len(),
                "feed consumed {used} of {}",
                part.len()
            );
            if let Some(Ok(frame)) = result {
                check_round_trip(&frame);
            }
            part = &part[used..];
        }
    }
});

fn check_round_trip(frame: &Frame<'_>) {
    let mut buf = [0u8; OUT];
    let n = encode(frame, &mut buf).expect("a decoded frame encodes");
    assert_eq!(buf[n - 1], 0);
    assert!(!buf[..n - 1].contains(&0));
    let mut decoder = Decoder::<OUT>::new();
    let (used, again) = decoder.feed(&buf[..n]);
    assert_eq!(used, n);
    assert_eq!(again, Some(Ok(*frame)));
}
