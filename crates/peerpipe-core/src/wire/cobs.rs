//! Consistent Overhead Byte Stuffing: frames without zero bytes, each ended by one `0x00`.
//!
//! The writer encodes in one pass straight into the caller's buffer (no scratch copy); the
//! stream [`Decoder`](super::Decoder) undoes the stuffing as the bytes arrive, each block's
//! bytes copied once from the input into its buffer (byte by byte on microcontrollers).
//! `decode_in_place` (test builds), the decoder of the comparison below, stays as the reference the
//! stream decoder is tested against.
//!
//! Hand-written, and kept so after a comparison with two crates as drop-in replacements:
//!
//! - `corncobs` 0.1: its encoder cannot take the writer's place: it wants the whole frame in
//!   one slice (the writer encodes the fields as they come, without a copy), and it ends a
//!   frame whose last block is full (`0xFF` and 254 bytes) without the empty final block
//!   (`0x01`) that docs/PROTOCOL.md prescribes: the bytes on the wire would change. Its
//!   `decode_in_place` alone costs 1,312 B more flash on thumbv6m (it moves bytes with
//!   `copy_within`, a `memmove`), for at most 5 % on the host.
//! - `cobs` 0.3 (postcard's, in the build already): its `CobsEncoder` streams like the writer
//!   but also leaves out that final `0x01` block (7 of 4,400 test frames came out different),
//!   so the writer had to put it back; its decoder was 48 B larger than this one.
//!
//! What the comparison showed: on microcontrollers the crate's byte-by-byte encoder was 288 B
//! smaller than this writer's run copying, so `push_slice` goes byte by byte there too, and is
//! 144 B smaller than the crate. Hosts keep the run copying: the crate is 1.5 to 1.8 times
//! slower there.
//!
//! Flash of the minimal echo firmware on thumbv6m (`cargo xtask size`), CRC-32C unchanged:
//!
//! | encoder / decoder                                        | thumbv6m flash      |
//! |----------------------------------------------------------|---------------------|
//! | this writer, runs copied / this decoder (before)         | 12,440 B            |
//! | this writer / `corncobs::decode_in_place`                | 13,752 B (+1,312 B) |
//! | `cobs::CobsEncoder` / `cobs::decode_in_place`            | 12,200 B (-240 B)   |
//! | `cobs::CobsEncoder` / this decoder                       | 12,152 B (-288 B)   |
//! | this writer, byte by byte / this decoder (kept)          | 12,008 B (-432 B)   |
//!
//! Encode + decode on the host (x86_64, 2 cores shared with other builds: medians, best of 3
//! runs back to back), `cargo bench -p peerpipe-core --bench wire -- --measurement-time 2
//! --warm-up-time 1 cobs`: an END frame through `wire::encode` and `Decoder::feed`, so two
//! CRC-32C passes (the old slice-by-8 in every row) are included:
//!
//! | encoder / decoder                               | 64 B     | 1 KiB    | 8 KiB    |
//! |-------------------------------------------------|----------|----------|----------|
//! | this writer / this decoder (kept)               | 615 MB/s | 828 MB/s | 839 MB/s |
//! | this writer / `corncobs::decode_in_place`       | 618 MB/s | 854 MB/s | 882 MB/s |
//! | `cobs::CobsEncoder` / this decoder              | 415 MB/s | 544 MB/s | 551 MB/s |
//! | `cobs::CobsEncoder` / `cobs::decode_in_place`   | 341 MB/s | 454 MB/s | 464 MB/s |
//!
//! Round trips (`cargo bench -p peerpipe-core --bench roundtrip -- 'messages/single/64$'`):
//! 2.44 M messages/s with this codec, 2.08 M with `cobs`'s encoder, 1.88 M with all of `cobs`,
//! 2.25 M with `corncobs`'s decoder.
//!
//! Later changes on 64-bit targets, in instructions (callgrind) of a round trip at 64 B and
//! 1 KiB (`--bench roundtrip -- 'messages/single/(64|1024)$'`); 7,645 and 20,400 before,
//! 7,247 at 64 B with the CRC replaced (see `crc.rs`):
//!
//! - decoding while collecting (the stream decoder above) instead of collecting the encoded
//!   bytes and then decoding them in place byte by byte: 7,177 at 64 B, 16,142 at 1 KiB;
//! - slices under 16 bytes (session, topic, short payloads) written byte by byte: looking for
//!   runs and calling `memcpy` cost more than it saved: 6,455 and 15,546 (with short runs
//!   byte by byte in the decoder too);
//! - [`find_zero`] 16 bytes a step: 6,354 and 14,371.
//!
//! A copy fused with its zero test (16 bytes a step, no `find_zero` then `memcpy`) was tried
//! for both directions and lost: 7,328 at 64 B, and in `bulk` 4.9 instead of 4.55 instructions
//! a byte in the writer (its CRC included), 2.5 instead of 2.0 in the decoder.
//!
//! On thumbv6m the stream decoder (byte by byte) is 12 B smaller than collecting and then
//! decoding in place (minimal firmware 16,452 -> 16,440 B, `llvm-size` text). With the rest of
//! this round, `cargo xtask size` measured on two versions of main: flash 15,676 -> 15,652 B
//! and 15,052 -> 14,988 B, RAM in use (static + stack) 3,808 -> 3,788 B and 3,772 -> 3,780 B:
//! the decoder holds 8 B more state (the count of encoded bytes, the block's code and what is
//! left of it, instead of a flag), which the stack frames made up for in one version only. On
//! a later main, collecting and decoding in place on 32-bit targets again (tried) took flash
//! 14,736 -> 14,768 B and RAM in use 3,736 -> 3,808 B on thumbv6m, 14,820 -> 14,864 B and
//! 3,648 -> 3,640 B on thumbv7m, 16,588 -> 16,604 B and 3,636 -> 3,604 B on riscv32imac: the
//! stream decoding stays on every target.

use super::crc::Crc32c;
use super::WireError;

/// Slices shorter than this are written byte by byte on 64-bit targets: for them, finding
/// runs and copying them whole costs more than it saves.
#[cfg(target_pointer_width = "64")]
const SHORT: usize = 16;

/// Encodes bytes into `out` as one COBS frame while computing their CRC-32C.
pub(crate) struct CobsWriter<'a> {
    out: &'a mut [u8],
    code_pos: usize,
    pos: usize,
    crc: Crc32c,
    /// A byte did not fit `out`: [`finish`](Self::finish) says so. The writes themselves
    /// return nothing, so that a frame's fields are written one after the other without a
    /// check after each (a few hundred bytes of code on a Cortex-M0).
    full: bool,
}

impl<'a> CobsWriter<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Result<Self, WireError> {
        if out.is_empty() {
            return Err(WireError::BufferTooSmall);
        }
        Ok(CobsWriter {
            out,
            code_pos: 0,
            pos: 1,
            crc: Crc32c::new(),
            full: false,
        })
    }

    fn set(&mut self, at: usize, byte: u8) {
        match self.out.get_mut(at) {
            Some(slot) => *slot = byte,
            None => self.full = true,
        }
    }

    /// Closes the current block: its code byte is the distance to here (at most 0xFF: a
    /// block is closed when it is full).
    fn close_block(&mut self) {
        let code = u8::try_from(self.pos - self.code_pos).unwrap_or(0xFF);
        self.set(self.code_pos, code);
        self.code_pos = self.pos;
        self.pos += 1;
    }

    fn raw(&mut self, byte: u8) {
        if byte == 0 {
            return self.close_block();
        }
        self.set(self.pos, byte);
        self.pos += 1;
        if self.pos - self.code_pos == 0xFF {
            self.close_block();
        }
    }

    /// Adds one byte to the frame and its checksum.
    pub(crate) fn push(&mut self, byte: u8) {
        self.crc.push(byte);
        self.raw(byte)
    }

    /// Adds bytes to the frame and its checksum: byte by byte on microcontrollers (the
    /// smallest code, see the module comment), runs copied whole on 64-bit targets.
    #[inline]
    pub(crate) fn push_slice(&mut self, bytes: &[u8]) {
        #[cfg(target_pointer_width = "64")]
        if bytes.len() < SHORT {
            self.push_bytewise(bytes)
        } else {
            self.push_runs(bytes)
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            self.push_bytewise(bytes)
        }
    }

    /// [`Self::push_slice`] one byte at a time (the microcontroller path, and short slices).
    fn push_bytewise(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        for &b in bytes {
            self.raw(b);
        }
    }

    /// [`Self::push_slice`] with runs of non-zero bytes copied whole (the 64-bit path).
    #[cfg(target_pointer_width = "64")]
    fn push_runs(&mut self, bytes: &[u8]) {
        // The checksum covers the bytes as given, zeros included: take it in one go. (After
        // an overflow the frame is refused, so a checksum ahead of the output does no harm.)
        self.crc.update(bytes);
        // Copy runs of non-zero bytes in one go.
        let mut rest = bytes;
        while !rest.is_empty() {
            // Data bytes the current block can still take (a block holds at most 254).
            let room = 0xFF - (self.pos - self.code_pos);
            let window = rest.get(..room).unwrap_or(rest);
            let zero = find_zero(window);
            let run = zero.unwrap_or(window.len());
            let (chunk, tail) = rest.split_at(run);
            let Some(dst) = self.out.get_mut(self.pos..self.pos + run) else {
                self.full = true;
                return;
            };
            dst.copy_from_slice(chunk);
            self.pos += run;
            if zero.is_some() {
                // The zero that ended the run closes the block.
                self.close_block();
                rest = tail.get(1..).unwrap_or(&[]);
            } else {
                if self.pos - self.code_pos == 0xFF {
                    self.close_block();
                }
                rest = tail;
            }
        }
    }

    /// Appends the CRC, closes the frame with `0x00` and returns its encoded length, or
    /// [`WireError::BufferTooSmall`] when it did not fit.
    pub(crate) fn finish(mut self) -> Result<usize, WireError> {
        let crc = self.crc.finish().to_le_bytes();
        for b in crc {
            self.raw(b);
        }
        let code = u8::try_from(self.pos - self.code_pos).unwrap_or(0xFF);
        self.set(self.code_pos, code);
        self.set(self.pos, 0);
        if self.full {
            return Err(WireError::BufferTooSmall);
        }
        Ok(self.pos + 1)
    }
}

/// The high bit of each byte of `x` that may be zero: the lowest one flagged always is (higher
/// ones may be false positives); none is flagged when no byte is zero.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn zero_flags(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the first zero byte, 16 bytes at a time until the pair that holds it, then
/// eight at a time.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) fn find_zero(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let mut offset = 0;
    while let Some((pair, tail)) = rest.split_first_chunk::<16>() {
        let both = u128::from_le_bytes(*pair);
        if zero_flags(both as u64) | zero_flags((both >> 64) as u64) != 0 {
            break;
        }
        offset += 16;
        rest = tail;
    }
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let found = zero_flags(u64::from_le_bytes(*word));
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
        rest = tail;
    }
    rest.iter().position(|&b| b == 0).map(|i| offset + i)
}

/// The index of the first zero byte, byte by byte: the decoder takes the bytes one at a time
/// on these targets anyway, and a `u64` word test is several instructions a step on a 32-bit
/// core (172 B of Cortex-M0 code inlined into the decoder, for no speed).
#[cfg(not(target_pointer_width = "64"))]
#[inline]
pub(crate) fn find_zero(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// Decodes one COBS frame (without its `0x00` delimiter) in place; returns the decoded length.
/// The reference the stream [`Decoder`](super::Decoder) is tested against.
#[cfg(test)]
pub(crate) fn decode_in_place(buf: &mut [u8]) -> Result<usize, WireError> {
    let len = buf.len();
    let (mut read, mut write) = (0usize, 0usize);
    while read < len {
        let code = usize::from(*buf.get(read).ok_or(WireError::Cobs)?);
        if code == 0 {
            return Err(WireError::Cobs);
        }
        read += 1;
        let end = read + code - 1;
        if end > len {
            return Err(WireError::Cobs);
        }
        // Forward, byte by byte: `write <= read`, so nothing is overwritten before it is read
        // (and no `memmove`, which costs over 1 KiB of flash on Cortex-M0).
        for from in read..end {
            let byte = *buf.get(from).ok_or(WireError::Cobs)?;
            *buf.get_mut(write).ok_or(WireError::Cobs)? = byte;
            write += 1;
        }
        read = end;
        if code < 0xFF && read < len {
            *buf.get_mut(write).ok_or(WireError::Cobs)? = 0;
            write += 1;
        }
    }
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How `encode` feeds the writer.
    #[derive(Clone, Copy)]
    enum Way {
        Push,
        Slice,
        Bytewise,
    }

    fn encode(data: &[u8], way: Way) -> std::vec::Vec<u8> {
        let mut out = std::vec![0u8; data.len() + data.len() / 254 + 8];
        let mut w = CobsWriter::new(&mut out).unwrap();
        match way {
            Way::Push => {
                for &b in data {
                    w.push(b);
                }
            }
            Way::Slice => w.push_slice(data),
            Way::Bytewise => w.push_bytewise(data),
        }
        let n = w.finish().unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn round_trips_and_has_no_inner_zeros() {
        let cases: [std::vec::Vec<u8>; 6] = [
            std::vec![],
            std::vec![0],
            std::vec![0, 0, 1, 0],
            (1..=255u8).collect(),
            (0..600).map(|i| (i % 256) as u8).collect(),
            std::vec![7; 1000],
        ];
        for data in cases.iter() {
            let a = encode(data, Way::Push);
            let b = encode(data, Way::Slice);
            assert_eq!(a, b, "bulk and bytewise encodings differ for {data:?}");
            assert_eq!(
                a,
                encode(data, Way::Bytewise),
                "push_bytewise differs for {data:?}"
            );
            let (last, body) = a.split_last().unwrap();
            assert_eq!(*last, 0);
            assert!(!body.contains(&0));
            let mut body = body.to_vec();
            let n = decode_in_place(&mut body).unwrap();
            assert_eq!(&body[..n - 4], &data[..]);
            assert_eq!(
                super::super::crc::crc32c(&body[..n - 4]).to_le_bytes(),
                body[n - 4..n]
            );
        }
    }

    proptest::proptest! {
        /// Runs of non-zero bytes of every length around a block's 254 (a zero right after a
        /// full block included), each ended by a zero: the three ways of writing agree and the
        /// reference decoder gives the bytes back.
        #[test]
        fn runs_round_trip(runs in proptest::collection::vec((0usize..600, 0u8..255), 0..5)) {
            let mut data = std::vec::Vec::new();
            for (len, seed) in runs {
                data.extend((0..len).map(|i| (i as u8).wrapping_add(seed) | 1));
                data.push(0);
            }
            let a = encode(&data, Way::Slice);
            proptest::prop_assert_eq!(&a, &encode(&data, Way::Push));
            proptest::prop_assert_eq!(&a, &encode(&data, Way::Bytewise));
            let mut body = a[..a.len() - 1].to_vec();
            let n = decode_in_place(&mut body).unwrap();
            proptest::prop_assert_eq!(&body[..n - 4], &data[..]);
        }
    }

    #[test]
    fn find_zero_finds_the_first() {
        for len in 0..40 {
            for at in 0..=len {
                let mut data = std::vec![0xFFu8; len];
                if at < len {
                    data[at] = 0;
                    // A later zero, and bytes that fool a naive word test (0x01 after a zero).
                    if at + 1 < len {
                        data[at + 1] = 1;
                    }
                    if at + 3 < len {
                        data[at + 3] = 0;
                    }
                }
                let want = data.iter().position(|&b| b == 0);
                assert_eq!(find_zero(&data), want, "len {len} at {at}");
            }
        }
        assert_eq!(find_zero(&[0x80, 0x01, 0x00, 0x01]), Some(2));
        assert_eq!(find_zero(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]), Some(9));
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(decode_in_place(&mut [0, 1]), Err(WireError::Cobs));
        assert_eq!(decode_in_place(&mut [5, 1, 2]), Err(WireError::Cobs));
    }

    #[test]
    fn small_buffer_is_an_error() {
        let mut out = [0u8; 4];
        let mut w = CobsWriter::new(&mut out).unwrap();
        w.push_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(w.finish(), Err(WireError::BufferTooSmall));
        // Room for the bytes but not for the CRC and the closing zero.
        let mut out = [0u8; 7];
        let mut w = CobsWriter::new(&mut out).unwrap();
        w.push_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(w.finish(), Err(WireError::BufferTooSmall));
        assert!(CobsWriter::new(&mut []).is_err());
    }
}
