//! CRC-32C (Castagnoli), reflected, init and final XOR `0xFFFF_FFFF`; check value of
//! `b"123456789"` is `0xE306_9283`.
//!
//! Two implementations, each the winner of a measurement on its kind of target:
//!
//! - Microcontrollers (targets narrower than 64 bits): the hand-written 16-entry table below,
//!   64 bytes of flash, one nibble per step, two steps per byte.
//! - 64-bit targets (hosts): the `crc` crate (`CRC_32_ISCSI`, `Table<16>`: slice-by-16 over
//!   16 KiB of tables). It replaced a hand-written slice-by-8 (8 KiB) that was half as fast.
//!
//! Flash of the minimal echo firmware on thumbv6m (`cargo xtask size`; the rest of the core
//! unchanged), the CRC on microcontrollers being:
//!
//! | variant                              | thumbv6m flash     |
//! |--------------------------------------|--------------------|
//! | this nibble table (kept)             | 12,440 B           |
//! | `crc::NoTable` (bit by bit)          | 12,648 B (+208 B)  |
//! | `crc::Table<1>` (one 1 KiB table)    | 13,532 B (+1,092 B) |
//!
//! Speed on the host (x86_64, 2 cores shared with other builds: medians, best of 3 runs back
//! to back), `cargo bench -p peerpipe-core --bench wire -- --measurement-time 2
//! --warm-up-time 1 crc32c`; the 32-bit variants forced onto the host to rank them:
//!
//! | variant                          | 64 B      | 1 KiB     | 8 KiB     |
//! |----------------------------------|-----------|-----------|-----------|
//! | `crc::Table<16>` (kept, 64-bit)  | 4.73 GB/s | 4.73 GB/s | 4.50 GB/s |
//! | hand slice-by-8 (replaced)       | 4.20 GB/s | 2.14 GB/s | 2.04 GB/s |
//! | `crc::Table<1>`                  | 770 MB/s  | 518 MB/s  | 505 MB/s  |
//! | nibble table (kept, 32-bit)      | 274 MB/s  | 223 MB/s  | 230 MB/s  |
//! | `crc::NoTable`                   | 177 MB/s  | 207 MB/s  | 207 MB/s  |
//!
//! Round trips on the host (`cargo bench -p peerpipe-core --bench roundtrip --
//! 'messages/single/(64|1024)$'`, same runs): 2.44 M messages/s with the hand slice-by-8, 2.64 M
//! with the crate at 64 B; 640 K and 918 K at 1 KiB.
//!
//! On microcontrollers the nibble table is both the smallest and faster than the crate's
//! table-less code; `Table<1>` is faster still but costs over 1 KiB of flash, which weighs
//! more on the firmware path than checksum speed on a serial link.

/// The crate's CRC-32C with 16 tables of 256 entries (slice-by-16, 16 KiB of read-only data).
#[cfg(target_pointer_width = "64")]
static CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The reflected polynomial.
#[cfg(any(test, not(target_pointer_width = "64")))]
const POLY: u32 = 0x82F6_3B78;

/// `NIBBLES[i]`: the CRC register after the four bits of `i` (low bit first).
#[cfg(any(test, not(target_pointer_width = "64")))]
#[allow(clippy::indexing_slicing)] // compile-time evaluation: an out-of-range index fails the build
const NIBBLES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 4 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
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
        self.update(&[byte]);
        #[cfg(not(target_pointer_width = "64"))]
        {
            self.0 = push_nibbles(self.0, byte);
        }
    }

    /// Adds bytes.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(target_pointer_width = "64")]
        {
            // The crate's digest starts from a bit-reversed initial value and hands the register
            // back XORed with 0xFFFF_FFFF: resume from ours, take it back (both fold away).
            let mut digest = CRC.digest_with_initial(self.0.reverse_bits());
            digest.update(bytes);
            self.0 = !digest.finalize();
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
        #[cfg(target_pointer_width = "64")]
        assert_eq!(CRC.checksum(b"123456789"), 0xE306_9283);
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
}
