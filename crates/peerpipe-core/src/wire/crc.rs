//! CRC-32C (Castagnoli), reflected, init and final XOR `0xFFFF_FFFF`; check value of
//! `b"123456789"` is `0xE306_9283`.
//!
//! Microcontrollers (targets narrower than 64 bits) use one 16-entry table: 64 bytes of flash
//! (a 256-entry one would take 1 KiB), one nibble per step, two steps per byte. 64-bit targets
//! (hosts) use slice-by-8: eight 256-entry tables, 8 KiB of read-only data, eight bytes per
//! step; its first table is the bytewise one, which does the tails.

const POLY: u32 = 0x82F6_3B78;

/// Number of 256-entry tables: eight on 64-bit targets (slice-by-8).
#[cfg(target_pointer_width = "64")]
const SLICES: usize = 8;

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

/// `TABLES[k][i]`: the CRC register after byte `i` followed by `k` zero bytes.
#[cfg(target_pointer_width = "64")]
#[allow(clippy::indexing_slicing)] // compile-time evaluation: an out-of-range index fails the build
const TABLES: [[u32; 256]; SLICES] = {
    let mut tables = [[0u32; 256]; SLICES];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < SLICES {
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

/// `TABLES[K][low byte of x]`.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
#[allow(clippy::indexing_slicing)] // K < SLICES is checked at compile time; the index is masked
fn lookup<const K: usize>(x: u32) -> u32 {
    TABLES[K][(x & 0xFF) as usize]
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
            self.0 = lookup::<0>(self.0 ^ u32::from(byte)) ^ (self.0 >> 8);
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            self.0 = push_nibbles(self.0, byte);
        }
    }

    /// Adds bytes.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(target_pointer_width = "64")]
        let bytes = self.update_by_8(bytes);
        for &b in bytes {
            self.push(b);
        }
    }

    /// Slice-by-8: adds whole 8-byte blocks; returns the bytes left over (fewer than 8).
    #[cfg(target_pointer_width = "64")]
    #[inline]
    fn update_by_8<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        let mut crc = self.0;
        while let Some(([b0, b1, b2, b3, b4, b5, b6, b7], rest)) = bytes.split_first_chunk::<8>() {
            let lo = u32::from_le_bytes([*b0, *b1, *b2, *b3]) ^ crc;
            let hi = u32::from_le_bytes([*b4, *b5, *b6, *b7]);
            crc = lookup::<7>(lo)
                ^ lookup::<6>(lo >> 8)
                ^ lookup::<5>(lo >> 16)
                ^ lookup::<4>(lo >> 24)
                ^ lookup::<3>(hi)
                ^ lookup::<2>(hi >> 8)
                ^ lookup::<1>(hi >> 16)
                ^ lookup::<0>(hi >> 24);
            bytes = rest;
        }
        self.0 = crc;
        bytes
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

    /// The table-driven paths agree with the bit-at-a-time definition, for every length and
    /// alignment around the 8-byte blocks, and whatever the split into `update` calls.
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
        assert_eq!(nibbles(&data), bitwise(&data));
        for start in 0..9 {
            for len in 0..(data.len() - start) {
                let slice = &data[start..start + len];
                let want = bitwise(slice);
                assert_eq!(crc32c(slice), want, "start {start} len {len}");
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
