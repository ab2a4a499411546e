//! `recv-file`: offers checked against the options and DIR, files checked against their
//! offer and stored in one step, a verdict for each.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerpipe_std::{Item, Message, PipeHandler, Status, FRAGMENT};
use serde_json::{Map, Value};

use super::{check_name, sha256_hex, FILE_TOPIC, OFFER_TOPIC};
use crate::bar::Bar;
use crate::cmd::{self, Ended};
use crate::exit::{CliError, Code};
use crate::link::{LinkSpec, Side};
use crate::obj;
use crate::out::Out;
use crate::xfer;

/// What `recv-file` was told to do, shared by every peer's loop.
pub struct RecvOptions {
    pub dir: PathBuf,
    pub overwrite: bool,
    /// The longest file accepted (0: up to `MAX_PAYLOAD`).
    pub max_size: u64,
    pub timeout: Duration,
}

struct RecvCtx {
    opts: RecvOptions,
    out: Out,
    left: Arc<AtomicU64>,
    /// The worst outcome of a file so far: 0, or `Code::Rejected`, or `Code::Mismatch`.
    worst: AtomicU8,
}

impl RecvCtx {
    fn note(&self, code: Code) {
        let rank = |c: u8| match c {
            c if c == Code::Mismatch as u8 => 2,
            c if c == Code::Rejected as u8 => 1,
            _ => 0,
        };
        let _ = self
            .worst
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (rank(code as u8) > rank(w)).then_some(code as u8)
            });
    }
}

/// An offer the receiver accepted: the file it waits for.
struct Offer {
    name: String,
    size: u64,
    sha256: String,
}

/// Why a file is not taken: a reason word for the JSON and a sentence.
struct Refusal {
    reason: &'static str,
    message: String,
}

fn refusal(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// Checks an offer against the options and DIR.
fn take_offer(o: &RecvOptions, data: &[u8]) -> Result<Offer, Refusal> {
    let v: Map<String, Value> = match serde_json::from_slice(data) {
        Ok(Value::Object(v)) => v,
        _ => return Err(refusal("bad_offer", "the offer is no JSON object")),
    };
    let (Some(name), Some(size), Some(sha256)) = (
        v.get("name").and_then(Value::as_str),
        v.get("size").and_then(Value::as_u64),
        v.get("sha256").and_then(Value::as_str),
    ) else {
        return Err(refusal(
            "bad_offer",
            "the offer needs name (text), size (bytes) and sha256 (hex)",
        ));
    };
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refusal("bad_offer", "sha256 is not 64 hex digits"));
    }
    check_name(name).map_err(|e| refusal("bad_name", e))?;
    let max = if o.max_size == 0 {
        peerpipe_std::MAX_PAYLOAD as u64
    } else {
        o.max_size
    };
    if size > max {
        return Err(refusal(
            "too_large",
            format!("{size} bytes is over this receiver's limit of {max}"),
        ));
    }
    let dest = o.dir.join(name);
    if !o.overwrite && dest.symlink_metadata().is_ok() {
        return Err(refusal(
            "exists",
            format!(
                "{} exists (recv-file --overwrite replaces it)",
                dest.display()
            ),
        ));
    }
    Ok(Offer {
        name: name.to_owned(),
        size,
        sha256: sha256.to_ascii_lowercase(),
    })
}

/// Writes `data` to a temporary file in `dir`, syncs it, and moves it to `dir/name` in
/// one step (a hard link, which never replaces a file, unless `overwrite`: a rename): no
/// reader ever sees part of it. Returns the path.
fn store(dir: &Path, name: &str, data: &[u8], overwrite: bool) -> Result<PathBuf, Refusal> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".peerpipe-{}-{}.part",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create_new(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(refusal(
            "io",
            format!("cannot write {}: {e}", tmp.display()),
        ));
    }
    let dest = dir.join(name);
    let placed = if overwrite {
        std::fs::rename(&tmp, &dest)
    } else {
        match std::fs::hard_link(&tmp, &dest) {
            Ok(()) => std::fs::remove_file(&tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                return Err(refusal(
                    "exists",
                    format!("{} appeared meanwhile", dest.display()),
                ));
            }
            // A file system without hard links: check, then rename.
            Err(_) if dest.symlink_metadata().is_ok() => {
                let _ = std::fs::remove_file(&tmp);
                return Err(refusal(
                    "exists",
                    format!("{} appeared meanwhile", dest.display()),
                ));
            }
            Err(_) => std::fs::rename(&tmp, &dest),
        }
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(refusal(
            "io",
            format!("cannot move the file to {}: {e}", dest.display()),
        ));
    }
    // The directory entry too, where a directory can be synced.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// Sends `reply` (small JSON) and logs when it does not get through.
fn answer(
    ctx: &RecvCtx,
    h: &PipeHandler,
    peer: usize,
    reply: Result<Message, peerpipe_std::Error>,
) {
    let sent = reply.and_then(|r| xfer::send(h, r, ctx.opts.timeout, &mut xfer::quiet));
    if let Err(e) = sent {
        tracing::warn!(peer, "answer not delivered: {e}");
    }
}

fn json(o: Map<String, Value>) -> Vec<u8> {
    Value::Object(o).to_string().into_bytes()
}

/// One peer's conversation: offers, files, until it ends or `--count` files were handled.
fn recv_loop(ctx: &RecvCtx, h: &PipeHandler, peer: usize) -> Ended {
    let mut offer: Option<Offer> = None;
    let mut bar: Option<Bar> = None;
    loop {
        let Some(item) = h.recv_timeout(xfer::TICK) else {
            if let (Some(bar), Some(t)) = (&bar, h.progress().receiving) {
                bar.set(t.done);
            }
            continue;
        };
        let m = match item {
            Item::Message(m) => m,
            Item::Status(s) => {
                cmd::report_status(&ctx.out, peer, &s);
                match s {
                    Status::End(_) => return Ended::Done,
                    Status::Abort(_) => return Ended::Aborted,
                    Status::Gone { cause, .. } => return Ended::Gone(cause),
                    _ => continue,
                }
            }
        };
        if !m.is_request() {
            tracing::info!(peer, topic = m.topic(), "not a request: dropped");
            continue;
        }
        let counted = match m.topic() {
            OFFER_TOPIC => match take_offer(&ctx.opts, m.data()) {
                Ok(o) => {
                    ctx.out.event(
                            "offer",
                            obj! {"peer" => peer, "name" => o.name.as_str(), "size" => o.size, "sha256" => o.sha256.as_str()},
                        );
                    if o.size > FRAGMENT as u64 {
                        bar = Some(Bar::new(o.size, "receiving"));
                    }
                    answer(ctx, h, peer, m.reply_to(json(obj! {"accept" => true})));
                    offer = Some(o);
                    false
                }
                Err(r) => {
                    ctx.note(Code::Rejected);
                    ctx.out.event(
                            "refused",
                            obj! {"peer" => peer, "reason" => r.reason, "message" => r.message.as_str()},
                        );
                    let no = obj! {"accept" => false, "reason" => r.reason, "message" => r.message};
                    answer(ctx, h, peer, m.reply_to(json(no)));
                    true
                }
            },
            FILE_TOPIC => {
                if let Some(b) = &bar {
                    b.set(m.data().len() as u64);
                    b.label("checking");
                }
                let t0 = Instant::now();
                let verdict = receive(ctx, offer.take(), m.data());
                bar = None;
                let reply = match verdict {
                    Ok((o, path)) => {
                        let shown = path.display().to_string();
                        ctx.out.event(
                            "received",
                            obj! {
                                "peer" => peer, "name" => o.name.as_str(), "size" => o.size,
                                "sha256" => o.sha256.as_str(), "path" => shown.as_str(),
                                "check_us" => t0.elapsed().as_micros() as u64,
                            },
                        );
                        obj! {"ok" => true, "name" => o.name, "path" => shown, "size" => o.size, "sha256" => o.sha256}
                    }
                    Err((r, got)) => {
                        let mismatch = r.reason == "mismatch";
                        ctx.note(if mismatch {
                            Code::Mismatch
                        } else {
                            Code::Rejected
                        });
                        let mut fields = obj! {"peer" => peer, "reason" => r.reason, "message" => r.message.as_str()};
                        if let Some(got) = &got {
                            fields.insert("sha256".into(), got.as_str().into());
                        }
                        ctx.out
                            .event(if mismatch { "mismatch" } else { "refused" }, fields);
                        let mut no =
                            obj! {"ok" => false, "reason" => r.reason, "message" => r.message};
                        if let Some(got) = got {
                            no.insert("sha256".into(), got.into());
                        }
                        no
                    }
                };
                answer(ctx, h, peer, m.reply_to(json(reply)));
                true
            }
            other => {
                let why = format!(
                    "recv-file takes only send-file's requests (topics {OFFER_TOPIC} and {FILE_TOPIC}), not `{other}`"
                );
                answer(
                    ctx,
                    h,
                    peer,
                    Message::reply(cmd::ERROR_TOPIC, why.into_bytes(), m.id()),
                );
                false
            }
        };
        if counted && cmd::count_one(&ctx.left) {
            cmd::finish(h);
            return Ended::Done;
        }
    }
}

/// Checks a file against its offer and stores it: the offer and where it went, or why not
/// (with the digest computed, when it differs).
fn receive(
    ctx: &RecvCtx,
    offer: Option<Offer>,
    data: &[u8],
) -> Result<(Offer, PathBuf), (Refusal, Option<String>)> {
    let Some(o) = offer else {
        return Err((
            refusal(
                "no_offer",
                format!("no {OFFER_TOPIC} was accepted before the file"),
            ),
            None,
        ));
    };
    if data.len() as u64 != o.size {
        return Err((
            refusal(
                "size",
                format!("{} is {} bytes, offered as {}", o.name, data.len(), o.size),
            ),
            None,
        ));
    }
    let got = sha256_hex(data);
    if got != o.sha256 {
        return Err((
            refusal(
                "mismatch",
                format!("{} has sha256 {got}, offered as {}", o.name, o.sha256),
            ),
            Some(got),
        ));
    }
    let path = store(&ctx.opts.dir, &o.name, data, ctx.opts.overwrite).map_err(|r| (r, None))?;
    Ok((o, path))
}

/// `peerpipe recv-file`.
pub fn recv_file(
    link: &LinkSpec,
    side: Side,
    opts: RecvOptions,
    count: Option<u64>,
    out: Out,
) -> Result<(), CliError> {
    match std::fs::metadata(&opts.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CliError::new(
                Code::Other,
                format!("{} is not a directory", opts.dir.display()),
            ))
        }
        Err(e) => {
            return Err(CliError::new(
                Code::Other,
                format!("cannot use {}: {e}", opts.dir.display()),
            ))
        }
    }
    let mut config = cmd::config(opts.timeout);
    if opts.max_size > 0 {
        // Announced to the peer: a longer message fails at once at its end (TooLarge). An
        // offer always fits (one fragment: a name has at most 255 bytes).
        config.max_message = opts.max_size.max(FRAGMENT as u64);
    }
    let ctx = Arc::new(RecvCtx {
        opts,
        out,
        left: cmd::countdown(count),
        worst: AtomicU8::new(0),
    });
    let left = ctx.left.clone();
    let serving = ctx.clone();
    let result = cmd::serve_peers(link, side, config, out, left, move |h, peer| {
        recv_loop(&serving, h, peer)
    });
    match ctx.worst.load(Ordering::SeqCst) {
        c if c == Code::Mismatch as u8 => Err(CliError::new(
            Code::Mismatch,
            "a file arrived damaged (its sha256 differs from the offer's): it was not kept",
        )),
        c if c == Code::Rejected as u8 => Err(CliError::new(
            Code::Rejected,
            "a file was refused or could not be stored",
        )),
        _ => result,
    }
}
