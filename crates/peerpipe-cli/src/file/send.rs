//! `send-file`: the offer, then the file, then the receiver's verdict.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use peerpipe_std::Message;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{check_name, CHUNK, FILE_TOPIC, OFFER_TOPIC};
use crate::bar::Bar;
use crate::cmd::{self, check_len};
use crate::exit::{from_link, from_pipe, CliError, Code};
use crate::link::{self, LinkSpec, Side};
use crate::obj;
use crate::out::{hex, Out};
use crate::xfer;

/// The rate at which the sender assumes the receiver checks and writes a file, for the
/// wait for its verdict: `--timeout` plus a second per 32 MiB.
const CHECK_RATE: u64 = 32 << 20;

fn refused(what: impl Into<String>) -> CliError {
    CliError::new(Code::Refused, what)
}

/// The file's bytes and SHA-256, read in steps shown on `bar`.
fn read_file(path: &Path, bar: &Bar) -> Result<(Vec<u8>, String), CliError> {
    let shown = path.display();
    let unreadable = |e: std::io::Error| refused(format!("cannot read {shown}: {e}"));
    let file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(refused(format!("{shown} is not a regular file")));
    }
    check_len(meta.len(), &shown.to_string())?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    let mut hasher = Sha256::new();
    let mut input = file.take(peerpipe_std::MAX_PAYLOAD as u64 + 1);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        };
        hasher.update(&buf[..n]);
        data.extend_from_slice(&buf[..n]);
        bar.set(data.len() as u64);
    }
    // A file that grew while it was read.
    check_len(data.len() as u64, &shown.to_string())?;
    Ok((data, hex(&hasher.finalize())))
}

/// A reply's data as a JSON object, or why it is not one.
fn json_reply(m: &Message, what: &str) -> Result<Map<String, Value>, CliError> {
    if m.topic() == cmd::ERROR_TOPIC {
        return Err(CliError::new(
            Code::ErrorReply,
            format!(
                "the peer answered the {what} on topic `error`: {}",
                String::from_utf8_lossy(m.data()).trim_end()
            ),
        ));
    }
    match serde_json::from_slice::<Value>(m.data()) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(CliError::new(
            Code::Other,
            format!(
                "the peer is no recv-file: it answered the {what} on topic `{}` with {} bytes \
                 that are no JSON object",
                m.topic(),
                m.data().len()
            ),
        )),
    }
}

fn text<'a>(o: &'a Map<String, Value>, key: &str) -> &'a str {
    o.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `peerpipe send-file`.
pub fn send_file(
    link: &LinkSpec,
    side: Side,
    path: &Path,
    name: Option<String>,
    timeout: Duration,
    out: Out,
) -> Result<(), CliError> {
    let name = match name {
        Some(n) => n,
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                refused(format!(
                    "{} has no file name in UTF-8: give one with --name",
                    path.display()
                ))
            })?
            .to_owned(),
    };
    check_name(&name).map_err(refused)?;
    let size_hint = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = Bar::new(size_hint, "reading");
    let (data, digest) = read_file(path, &bar)?;
    let size = data.len() as u64;

    let h = link::handler(link, side, cmd::config(timeout))?;
    h.start()
        .map_err(|e| CliError::new(Code::Other, format!("cannot start: {e}")))?;
    // The link failed: stop. The peer answered, but not as hoped: end politely first.
    let fail = |e: CliError| {
        bar.clear();
        h.stop(true);
        e
    };
    let give_up = |e: CliError| {
        bar.clear();
        cmd::finish(&h);
        e
    };

    // 1. The offer: name, size, digest; the receiver accepts or says why not.
    bar.label("offering");
    let offer = obj! {"name" => name.as_str(), "size" => size, "sha256" => digest.as_str()};
    let offer = Message::request(OFFER_TOPIC, Value::Object(offer).to_string().into_bytes())
        .map_err(|e| fail(from_pipe("invalid offer", &e)))?;
    let answer = xfer::request(&h, offer, timeout, timeout, &mut xfer::quiet)
        .map_err(|e| fail(from_link(link, "offer", &e)))?;
    let answer = json_reply(&answer, "offer").map_err(give_up)?;
    match answer.get("accept") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Err(give_up(CliError::new(
                Code::Rejected,
                format!(
                    "the receiver refused {name} ({}): {}",
                    text(&answer, "reason"),
                    text(&answer, "message")
                ),
            )))
        }
        _ => {
            return Err(give_up(CliError::new(
                Code::Other,
                format!(
                    "the peer is no recv-file: its answer to the offer has no `accept`: {}",
                    Value::Object(answer.clone())
                ),
            )))
        }
    }

    // 2. The file, one message; its progress on the bar; then the receiver's verdict.
    bar.restart("sending");
    let msg = Message::request(FILE_TOPIC, data)
        .map_err(|e| fail(from_pipe("invalid file message", &e)))?;
    let t0 = Instant::now();
    let id = xfer::send(&h, msg, timeout, &mut |p| {
        if let Some(t) = p.sending {
            bar.set(t.done);
        }
    })
    .map_err(|e| fail(from_link(link, "send-file", &e)))?;
    let seconds = t0.elapsed().as_secs_f64();
    bar.set(size);
    bar.label("checking");
    let verdict_wait = timeout + Duration::from_secs(size / CHECK_RATE);
    let verdict = xfer::await_reply(&h, id, verdict_wait, &mut xfer::quiet)
        .map_err(|e| fail(from_link(link, "send-file: the receiver's verdict", &e)))?;
    bar.clear();
    cmd::finish(&h);
    let verdict = json_reply(&verdict, "file")?;
    let theirs = text(&verdict, "sha256");
    let ok = verdict.get("ok") == Some(&Value::Bool(true));
    if !ok || theirs != digest {
        let reason = text(&verdict, "reason");
        let (code, why) = if reason == "mismatch" || (ok && theirs != digest) {
            (
                Code::Mismatch,
                format!(
                    "{name} arrived damaged: the receiver computed sha256 {theirs}, sent {digest}; \
                     it did not keep it"
                ),
            )
        } else {
            (
                Code::Rejected,
                format!(
                    "the receiver did not store {name} ({reason}): {}",
                    text(&verdict, "message")
                ),
            )
        };
        return Err(CliError::new(code, why));
    }
    let rate = size as f64 / seconds.max(1e-9) / 1e6;
    let path = text(&verdict, "path");
    if out.json {
        out.json(obj! {
            "event" => "sent", "name" => name.as_str(), "size" => size,
            "sha256" => digest.as_str(), "verified" => true, "path" => path,
            "seconds" => (seconds * 1e3).round() / 1e3,
            "mb_per_s" => (rate * 1e3).round() / 1e3,
        });
    } else {
        let rate = if rate >= 1.0 {
            format!("{rate:.1} MB/s")
        } else {
            format!("{:.1} kB/s", rate * 1e3)
        };
        out.line(&format!(
            "sent {name}: {size} bytes in {seconds:.2} s ({rate}), sha256 {digest}, verified \
             by the receiver ({path})"
        ));
    }
    Ok(())
}
