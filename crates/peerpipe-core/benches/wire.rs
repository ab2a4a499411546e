//! The wire codec alone: CRC-32C, and COBS framing (encode, then decode) of DATA frames, over
//! 64 B, 1 KiB and 8 KiB.
//!
//! `crc32c` is timed on its own. COBS is reached through the public path: `wire::encode` of an
//! END frame carrying the payload (10 bytes of header) and `Decoder::feed` of the bytes; both
//! compute the CRC too (encode while stuffing, decode in `Frame::parse`), so `cobs` minus two
//! `crc32c` runs is the framing itself.
//!
//! Run with `cargo bench -p peerpipe-core --bench wire -- --measurement-time 3 --warm-up-time 1`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peerpipe_core::wire::{
    crc32c, encode, max_encoded_len, Body, Data, Decoder, Frag, Frame, Item,
};

const SIZES: [usize; 3] = [64, 1024, 8192];
const MAX: usize = max_encoded_len(8192, 0);

/// Non-zero bytes with a zero now and then, as real payloads have.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    for size in SIZES {
        let data = payload(size);
        group.throughput(Throughput::BytesDecimal(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| crc32c(black_box(data)));
        });
    }
    group.finish();
}

fn cobs(c: &mut Criterion) {
    let mut group = c.benchmark_group("cobs");
    for size in SIZES {
        let data = payload(size);
        let frame = Frame {
            session: 0x0102_0304,
            body: Body::Data(Data {
                seq: 5,
                floor: 5,
                id: 5,
                item: Item::End,
                frag: Frag::Whole,
                payload: &data,
            }),
        };
        let mut out = vec![0u8; MAX];
        let mut decoder = Box::new(Decoder::<MAX>::new());
        group.throughput(Throughput::BytesDecimal(size as u64));
        group.bench_function(BenchmarkId::new("encode_decode", size), |b| {
            b.iter(|| {
                let n = encode(black_box(&frame), &mut out).unwrap();
                let (used, got) = decoder.feed(black_box(&out[..n]));
                assert_eq!(used, n);
                match got {
                    Some(Ok(Frame {
                        body: Body::Data(d),
                        ..
                    })) => black_box(d.payload.len()),
                    other => panic!("{other:?}"),
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, crc, cobs);
criterion_main!(benches);
