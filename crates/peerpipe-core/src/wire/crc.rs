//! CRC-32C (Castagnoli), reflected, init and final XOR `0xFFFF_FFFF`; check value of
//! `b"123456789"` is `0xE306_9283`.
//!
//! Three implementations, each the winner of a measurement on its kind of target:
//!
//! - Microcontrollers (targets narrower than 64 bits): the hand-written 16-entry table below,
//!   64 bytes of flash, one nibble per step, two steps per byte.
//! - 64-bit targets: a hand-written slice-by-16 (16 tables of 256 entries, 16 KiB of
//!   read-only data, built at compile time), in safe code. It replaced the `crc` crate's
//!   `Table<16>`, the same method: this one orders the lookups so that those of the bytes the
//!   register does not touch need not wait for it, and a single byte (the writer's `push`) is
//!   one lookup instead of a digest's set-up.
//! - Hosts (feature `hardware-crc`, x86_64 and aarch64; peerpipe-host turns it on, and so
//!   peerpipe-std and peerpipe-tokio): slices of 64 bytes and more go to the CPU's CRC-32C
//!   instruction (SSE4.2 `crc32`, ARMv8 `crc32c*`) through the `crc32c` crate (MIT or
//!   Apache-2.0, the field's crate for it: three interleaved streams of 8-byte steps, the CPU
//!   detected at run time with `std`'s `is_x86_feature_detected!`, its own tables without the
//!   instruction). The detection takes `unsafe` and `std`, which stay in that crate: this one
//!   keeps `#![forbid(unsafe_code)]` and `no_std`. Shorter slices and single bytes keep the
//!   tables, which beat a call into the crate there. Firmware never turns the feature on: the
//!   thumbv6m image of the minimal echo firmware is byte for byte the same.
//!
//! Flash of the minimal echo firmware on thumbv6m (`cargo xtask size`; the rest of the core
//! unchanged; measured when it was 12,440 B), the CRC on microcontrollers being:
//!
//! | variant                              | thumbv6m flash     |
//! |--------------------------------------|--------------------|
//! | this nibble table (kept)             | 12,440 B           |
//! | `crc::NoTable` (bit by bit)          | 12,648 B (+208 B)  |
//! | `crc::Table<1>` (one 1 KiB table)    | 13,532 B (+1,092 B) |
//!
//! Speed on the host (x86_64, 2 cores shared with other builds, runs of the two builds
//! alternated: the middle estimates of 5 to 7 runs), `cargo bench -p peerpipe-core --bench wire --
//! --measurement-time 1.5 --warm-up-time 0.5 crc32c`:
//!
//! | variant                          | 64 B          | 1 KiB         | 8 KiB         |
//! |----------------------------------|---------------|---------------|---------------|
//! | this slice-by-16 (kept, 64-bit)  | 4.3-5.0 GB/s  | 4.0-4.8 GB/s  | 3.9-4.7 GB/s  |
//! | `crc::Table<16>` (replaced)      | 3.9-4.2 GB/s  | 3.5-4.1 GB/s  | 2.9-4.1 GB/s  |
//! | this code as slice-by-8 (8 KiB)  | 4.0-4.4 GB/s  | 1.6-2.4 GB/s  | 1.6 GB/s      |
//!
//! Earlier runs (`--measurement-time 2 --warm-up-time 1`) ranked the 32-bit variants forced
//! onto the host: `crc::Table<1>` 505-770 MB/s, the nibble table 223-274 MB/s, `crc::NoTable`
//! 177-207 MB/s.
//!
//! Instructions (callgrind) of a round trip of `cargo bench -p peerpipe-core --bench roundtrip
//! -- 'messages/single/64$'`, with the COBS codec unchanged: 7,645 with the crate, 7,247 with
//! this code; in `bulk` (16 MiB in memory) both ends' checksums took 7.8 instructions a byte
//! with the crate, 5.1 with this code.
//!
//! On microcontrollers the nibble table is both the smallest and faster than the crate's
//! table-less code; `Table<1>` is faster still but costs over 1 KiB of flash, which weighs
//! more on the firmware path than checksum speed on a serial link.
//!
//! The CPU's instruction against the tables (x86_64, 2 cores at a load of 3.5 to 4 from other
//! builds), `cargo bench -p peerpipe-core --bench wire -- --measurement-time 1.5
//! --warm-up-time 0.5 crc32c`, the two builds alternated, 3 runs each (the tables' build
//! without the feature):
//!
//! | variant                          | 64 B          | 1 KiB          | 8 KiB          |
//! |----------------------------------|---------------|----------------|----------------|
//! | `hardware-crc` (hosts)           | 4.3-9.4 GB/s  | 9.2-23.3 GB/s  | 9.5-24.1 GB/s  |
//! | this slice-by-16                 | 2.5-5.3 GB/s  | 2.7-4.9 GB/s   | 2.5-4.7 GB/s   |
//!
//! Where the crate starts to win, one call on a slice in a loop whose register chains the
//! calls (best of 7 runs of 10^6 calls, ns a call), which set `hardware::MIN` at 64 bytes:
//!
//! | bytes         | 8   | 16  | 32   | 48   | 64   | 84   | 128  | 256  | 1,024 | 4,096 |
//! |---------------|-----|-----|------|------|------|------|------|------|-------|-------|
//! | the crate     | 8.3 | 8.7 | 10.4 | 11.4 | 13.1 | 15.4 | 19.6 | 34.1 | 69.9  | 185   |
//! | the tables    | 3.3 | 4.3 | 7.5  | 11.7 | 13.0 | 25.4 | 26.3 | 55.8 | 220   | 809   |
//!
//! A full cycle of `--bench roundtrip -- 'messages/single/64$'` (callgrind): 6,362
//! instructions with the tables, 6,345 with the crate from 16 bytes, 6,259 from 64 bytes (a
//! DATA frame's check on receipt; its 64-byte payload while encoding). In `bulk` (16 MiB in
//! memory, both handlers' I/O threads) 12.1 instructions a byte before, 7.7 with the crate.

/// The reflected polynomial.
const POLY: u32 = 0x82F6_3B78;

/// The CRC register `crc` after `bits` more bits, low bit first (the tables' entries).
const fn shift(mut crc: u32, bits: u32) -> u32 {
    let mut bit = 0;
    while bit < bits {
        crc = if crc & 1 != 0 {
            (crc >> 1) ^ POLY
        } else {
            crc >> 1
        };
        bit += 1;
    }
    crc
}

/// `NIBBLES[i]`: the CRC register after the four bits of `i` (low bit first).
#[cfg(any(test, not(target_pointer_width = "64")))]
#[allow(clippy::indexing_slicing)] // compile-time evaluation: an out-of-range index fails the build
const NIBBLES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        table[i] = shift(i as u32, 4);
        i += 1;
    }
    table
};

/// One byte through the nibble table (the microcontroller path; tested on hosts too).
#[cfg(any(test, not(target_pointer_width = "64")))]
#[inline(always)]
#[allow(clippy::indexing_slicing)] // the index is masked to 0..16
fn push_nibbles(crc: u32, byte: u8) -> u32 {
    let crc = NIBBLES[((crc ^ u32::from(byte)) & 0xF) as usize] ^ (crc >> 4);
    NIBBLES[((crc ^ u32::from(byte >> 4)) & 0xF) as usize] ^ (crc >> 4)
}

/// `TABLES[0][b]`: the CRC register after the eight bits of `b`; `TABLES[k][b]`: the same
/// followed by `k` zero bytes. Slice-by-16: 16 KiB of read-only data (64-bit targets only).
#[cfg(target_pointer_width = "64")]
#[allow(clippy::indexing_slicing)] // compile-time evaluation: an out-of-range index fails the build
static TABLES: [[u32; 256]; 16] = {
    let mut tables = [[0u32; 256]; 16];
    let mut i = 0;
    while i < 256 {
        tables[0][i] = shift(i as u32, 8);
        i += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// `TABLES[table][byte]`.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
#[allow(clippy::indexing_slicing)] // constant table numbers below 16, byte indices
fn t(table: usize, byte: u8) -> u32 {
    TABLES[table][usize::from(byte)]
}

/// Eight bytes through `TABLES[base..base + 8]`, the register XORed into the first four: the
/// register after them followed by `base` zero bytes. The lookups of the last four bytes do not
/// wait for the register and the others are added last, which keeps the loop's critical path
/// (register to register) short.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn fold8(b: &[u8; 8], crc: u32, base: usize) -> u32 {
    let free = (t(base + 3, b[4]) ^ t(base + 2, b[5])) ^ (t(base + 1, b[6]) ^ t(base, b[7]));
    let x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ crc;
    let tied = (t(base + 7, x as u8) ^ t(base + 6, (x >> 8) as u8))
        ^ (t(base + 5, (x >> 16) as u8) ^ t(base + 4, (x >> 24) as u8));
    free ^ tied
}

/// One byte through the first table.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
#[allow(clippy::indexing_slicing)] // the index is a byte
fn push_table(crc: u32, b: u8) -> u32 {
    TABLES[0][usize::from(crc as u8 ^ b)] ^ (crc >> 8)
}

/// `bytes` through the tables: 16 bytes a step, then 8, then one at a time.
#[cfg(target_pointer_width = "64")]
#[inline]
fn update_slice16(mut crc: u32, bytes: &[u8]) -> u32 {
    let mut rest = bytes;
    while let Some((lo, tail)) = rest.split_first_chunk::<8>() {
        rest = tail;
        match tail.split_first_chunk::<8>() {
            Some((hi, tail)) => {
                crc = fold8(hi, 0, 0) ^ fold8(lo, crc, 8);
                rest = tail;
            }
            None => crc = fold8(lo, crc, 0),
        }
    }
    for &b in rest {
        crc = push_table(crc, b);
    }
    crc
}

/// The CPU's CRC-32C instruction, through the `crc32c` crate (feature `hardware-crc`, on
/// x86_64 and aarch64): it detects the instruction at run time (falling back to its own
/// tables), which takes `unsafe` and `std`, both kept out of this crate.
#[cfg(all(
    feature = "hardware-crc",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod hardware {
    /// Slices shorter than this go through the tables: the crate's call, its feature test and
    /// its alignment steps cost more than the lookups save (see the module comment).
    pub(super) const MIN: usize = 64;

    /// `bytes` added to the register `crc` (the crate takes and returns finished values).
    #[inline]
    pub(super) fn update(crc: u32, bytes: &[u8]) -> u32 {
        !crc32c::crc32c_append(!crc, bytes)
    }
}

/// A running CRC-32C.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Crc32c {
    /// A new computation.
    pub const fn new() -> Self {
        Crc32c(0xFFFF_FFFF)
    }

    /// Adds one byte.
    #[inline(always)]
    pub fn push(&mut self, byte: u8) {
        #[cfg(target_pointer_width = "64")]
        {
            self.0 = push_table(self.0, byte);
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            self.0 = push_nibbles(self.0, byte);
        }
    }

    /// Adds bytes.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(all(
            feature = "hardware-crc",
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        if bytes.len() >= hardware::MIN {
            self.0 = hardware::update(self.0, bytes);
            return;
        }
        #[cfg(target_pointer_width = "64")]
        {
            self.0 = update_slice16(self.0, bytes);
        }
        #[cfg(not(target_pointer_width = "64"))]
        for &b in bytes {
            self.0 = push_nibbles(self.0, b);
        }
    }

    /// The checksum of everything added.
    pub const fn finish(self) -> u32 {
        !self.0
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// The CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    /// Both paths agree with the bit-at-a-time definition, for every length and alignment
    /// around the crate's 16-byte blocks, and whatever the split into `update` and `push`.
    #[test]
    fn matches_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u32 {
            let mut crc = 0xFFFF_FFFFu32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ POLY
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let data: std::vec::Vec<u8> = (0..300u32).map(|i| (i * 73 + 11) as u8).collect();
        // The microcontrollers' nibble path.
        let nibbles = |bytes: &[u8]| !bytes.iter().fold(0xFFFF_FFFF, |c, &b| push_nibbles(c, b));
        assert_eq!(nibbles(b"123456789"), 0xE306_9283);
        for start in 0..17 {
            for len in 0..(data.len() - start) {
                let slice = &data[start..start + len];
                let want = bitwise(slice);
                assert_eq!(crc32c(slice), want, "start {start} len {len}");
                #[cfg(target_pointer_width = "64")]
                assert_eq!(
                    !update_slice16(!0, slice),
                    want,
                    "tables, start {start} len {len}"
                );
                assert_eq!(nibbles(slice), want, "nibbles, start {start} len {len}");
                let mut split = Crc32c::new();
                let (a, b) = slice.split_at(len / 3);
                split.update(a);
                for &x in &b[..b.len() / 2] {
                    split.push(x);
                }
                split.update(&b[b.len() / 2..]);
                assert_eq!(split.finish(), want, "split, start {start} len {len}");
            }
        }
    }

    /// The CPU's instruction (through the crate) and the tables agree on random bytes of every
    /// length up to 300 from every alignment up to 8, on a few large inputs, and when a large
    /// input is fed in pieces of both kinds.
    #[cfg(all(
        feature = "hardware-crc",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn hardware_matches_tables() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = |n: usize| -> std::vec::Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 32) as u8
                })
                .collect()
        };
        for len in 0..=300 {
            let data = random(len + 8);
            for start in 0..8 {
                let slice = &data[start..start + len];
                for init in [!0, 0, 0x1234_5678] {
                    assert_eq!(
                        hardware::update(init, slice),
                        update_slice16(init, slice),
                        "len {len} start {start} init {init:#x}"
                    );
                }
            }
        }
        for len in [4096, 65_536 + 7, 1 << 20, (3 << 20) + 13] {
            let data = random(len);
            let want = update_slice16(!0, &data);
            assert_eq!(hardware::update(!0, &data), want, "len {len}");
            let mut pieces = Crc32c::new();
            for piece in data.chunks(4093) {
                let (short, long) = piece.split_at(piece.len().min(hardware::MIN - 1));
                pieces.update(short);
                pieces.update(long);
            }
            assert_eq!(pieces.0, want, "pieces, len {len}");
        }
    }
}
