//! NVFlare's FilePipe file names and message ids.

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

pub(super) use crate::uuid::uuid4;

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
}
