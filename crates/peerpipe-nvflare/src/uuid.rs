//! Random uuid4 strings, as NVFlare names its messages and datums.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new random (version 4) uuid string, as Python's `str(uuid.uuid4())`.
pub(crate) fn uuid4() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut words = [0u64; 2];
    for w in &mut words {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        *w = h.finish();
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&words[0].to_le_bytes());
    b[8..].copy_from_slice(&words[1].to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(b)
}

/// The uuid string (`8-4-4-4-12` hexadecimal digits) of 16 bytes, as Python's
/// `str(uuid.UUID(bytes=b))`.
pub(crate) fn uuid_text(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The 16 bytes of a uuid string (`8-4-4-4-12` hexadecimal digits), as Python's
/// `uuid.UUID(s).bytes`; `None` if it is not one.
pub(crate) fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid4();
        let b = uuid4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert!(!a.contains('.'));
    }

    #[test]
    fn uuid_text_to_bytes() {
        let id = uuid_bytes("c16c3a05-a972-4eea-baa4-7bb5a9fe0f95").unwrap();
        assert_eq!(id[..4], [0xc1, 0x6c, 0x3a, 0x05]);
        assert_eq!(id[15], 0x95);
        assert!(uuid_bytes("c16c3a05a9724eeabaa47bb5a9fe0f95").is_none());
        assert!(uuid_bytes("c16c3a05-a972-4eea-baa4-7bb5a9fe0f9g").is_none());
        assert!(uuid_bytes(&uuid4()).is_some());
    }
}
