//! NVFlare's FilePipe file names and message ids.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The heartbeat topic.
pub(super) const HEARTBEAT: &str = "_HEARTBEAT_";
/// The END topic.
pub(super) const END: &str = "_END_";
/// The ABORT topic.
pub(super) const ABORT: &str = "_ABORT_";
/// Progress notes of NVFlare's streaming: never liveness, dropped.
pub(super) const STREAM_PROGRESS: &str = "_STREAM_PROGRESS_";

/// What a file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// `REQ.<topic>.<id>`.
    Request { topic: &'a str, id: &'a str },
    /// `REP.<topic>.<req_id>.<id>`.
    Reply {
        topic: &'a str,
        req_id: &'a str,
        id: &'a str,
    },
}

/// Parses a file name as NVFlare's `file_name_to_message` does, and also checks the topic's
/// characters and that no part is empty.
pub(super) fn parse(name: &str) -> Result<Name<'_>, String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("an empty part in the file name".into());
    }
    let topic_ok = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let parsed = match parts.as_slice() {
        ["REQ", topic, id] => Name::Request { topic, id },
        ["REP", topic, req_id, id] => Name::Reply { topic, req_id, id },
        ["REQ" | "REP", ..] => return Err(format!("wrong number of parts ({})", parts.len())),
        _ => return Err("not REQ.<topic>.<id> or REP.<topic>.<req_id>.<id>".into()),
    };
    let topic = match parsed {
        Name::Request { topic, .. } | Name::Reply { topic, .. } => topic,
    };
    if !topic_ok(topic) {
        return Err(format!("topic {topic:?} is not [A-Za-z0-9_]+"));
    }
    Ok(parsed)
}

/// The file name of a request (or status message) on `topic` with id `id`.
pub(super) fn request(topic: &str, id: &str) -> String {
    format!("REQ.{topic}.{id}")
}

/// The file name of a reply on `topic` to request `req_id`, with id `id`.
pub(super) fn reply(topic: &str, req_id: &str, id: &str) -> String {
    format!("REP.{topic}.{req_id}.{id}")
}

/// A new random (version 4) uuid string, as Python's `str(uuid.uuid4())`.
pub(super) fn uuid4() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse("REQ.ping.abc"),
            Ok(Name::Request {
                topic: "ping",
                id: "abc"
            })
        );
        assert_eq!(
            parse("REP.ping.abc.def"),
            Ok(Name::Reply {
                topic: "ping",
                req_id: "abc",
                id: "def"
            })
        );
        for bad in [
            "REQ.ping",
            "REQ.a.b.c",
            "REP.a.b",
            "XYZ.a.b",
            "REQ..x",
            "REQ.a-b.x",
            "junk",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let n = request("ping", "u1");
        assert_eq!(
            parse(&n).unwrap(),
            Name::Request {
                topic: "ping",
                id: "u1"
            }
        );
        let n = reply("ping", "u1", "u2");
        assert_eq!(
            parse(&n).unwrap(),
            Name::Reply {
                topic: "ping",
                req_id: "u1",
                id: "u2"
            }
        );
    }

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
}
