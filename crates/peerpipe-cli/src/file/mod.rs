//! `send-file` and `recv-file`: one file as one message, with its name and SHA-256 offered
//! first, and the receiver's verdict as the reply.
//!
//! The exchange (documented in the crate's README, "send-file and recv-file"):
//!
//! 1. The sender reads the file whole and hashes it, then sends the request `file_offer`,
//!    whose data is the JSON object `{"name", "size", "sha256"}`. The receiver answers
//!    `{"accept": true}`, or `{"accept": false, "reason", "message"}` (`exists`,
//!    `too_large`, `bad_name`, `bad_offer`): nothing large has moved yet.
//! 2. The sender sends the request `file`, whose data is the file's bytes and nothing else
//!    (one message, in fragments). The receiver checks its length and SHA-256 against the
//!    offer, writes it to a temporary file in DIR, syncs it and moves it to DIR/NAME, and
//!    answers `{"ok": true, "name", "path", "size", "sha256"}` or `{"ok": false, "reason",
//!    "message", ...}` (`mismatch` with the `sha256` it computed, `size`, `exists`, `io`,
//!    `no_offer`). The sender exits 0 only on `ok` with its own digest.

use sha2::{Digest, Sha256};

use crate::out::hex;

mod recv;
mod send;

pub use recv::{recv_file, RecvOptions};
pub use send::send_file;

/// The topic of the offer: name, size and digest, before the file.
pub const OFFER_TOPIC: &str = "file_offer";
/// The topic of the file's bytes.
pub const FILE_TOPIC: &str = "file";

/// Read and hashed in steps of this many bytes.
const CHUNK: usize = 1 << 20;

/// The lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    for chunk in data.chunks(CHUNK) {
        h.update(chunk);
    }
    hex(&h.finalize())
}

/// Whether `name` can be written under the receiver's DIR as it is: one path component.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` is not a file name"));
    }
    if name.len() > 255 {
        return Err("a file name has at most 255 bytes".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '\0') || c.is_control())
    {
        return Err(format!(
            "a file name has no {:?} (it names a file in the receiver's directory, no path)",
            c
        ));
    }
    Ok(())
}
