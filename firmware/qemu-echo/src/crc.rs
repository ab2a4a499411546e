//! The CRC-32 of the `crc` requests ([`crc32`]).

/// CRC-32 (IEEE 802.3, reflected, as zlib and `crc32fast` compute it) of `bytes`, continued
/// from `crc` (0 to start): `crc32(crc32(0, a), b) == crc32(0, ab)`. Bitwise: a few dozen
/// bytes of code and no table (QEMU runs it at well over UART speed).
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
    }
    !c
}
