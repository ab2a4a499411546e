//! The two ends of the NVFlare interoperation examples (`nvflare_client`, `nvflare_echo`),
//! shared with their tests against a real NVFlare.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli;
use peerpipe_nvflare::fobs::{self, Value};
use peerpipe_nvflare::{FilePipeTransport, Rejected};
use peerpipe_std::{Config, Item, Message, Mode, PipeHandler, Status};

/// The options both examples take.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our end of the pipe.
    pub mode: Mode,
    /// The pipe's root directory (NVFlare's `root_path`).
    pub root: PathBuf,
    /// The pipe's name (`FilePipe.open(name)`).
    pub name: String,
    /// Requests the client sends.
    pub count: usize,
    /// The handler's parameters.
    pub config: Config,
    /// How often the directory is checked.
    pub file_check_interval: Duration,
}

/// How the examples are called; `count` is the client's only.
pub const USAGE: &str = "--mode active|passive --root DIR --name NAME [--count N]";

impl Settings {
    /// Parses `--mode active|passive --root DIR --name NAME [--count N]` (`Ok(None)`: help was
    /// asked for); NVFlare's default handler parameters, and a 10 ms file check.
    pub fn parse(parser: &mut cli::Parser) -> Result<Option<Settings>, cli::Error> {
        use cli::{value, Long, Short, ValueExt};
        let (mut mode, mut root, mut name, mut count) = (None, None, None, 10);
        while let Some(arg) = parser.next()? {
            match arg {
                Long("mode") => {
                    mode = Some(match parser.value()?.string()?.as_str() {
                        "active" => Mode::Active,
                        "passive" => Mode::Passive,
                        other => {
                            return Err(format!("--mode {other}: not active or passive").into())
                        }
                    })
                }
                Long("root") => root = Some(PathBuf::from(parser.value()?)),
                Long("name") => name = Some(parser.value()?.string()?),
                Long("count") => count = value(parser, "--count")?,
                Short('h') | Long("help") => return Ok(None),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(Settings {
            mode: mode.ok_or("--mode is required")?,
            root: root.ok_or("--root is required")?,
            name: name.ok_or("--name is required")?,
            count,
            config: Config::default(),
            file_check_interval: Duration::from_millis(10),
        }))
    }

    /// Our end of the pipe, with these settings.
    pub fn transport(&self) -> FilePipeTransport {
        FilePipeTransport::new(&self.root, &self.name, self.mode)
            .file_check_interval(self.file_check_interval)
            .heartbeat_interval(self.config.heartbeat_interval)
    }
}

/// One payload of each kind the codec carries.
pub fn payloads() -> Vec<Value> {
    let map = |entries: Vec<(&str, Value)>| {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    };
    vec![
        Value::Bin(vec![0, 1, 0xfe, 0xff]),
        Value::from("héllo, NVFlare"),
        Value::Int(7),
        Value::Int(-5),
        Value::Int(-(1 << 40)),
        Value::Int(1 << 40),
        Value::UInt(u64::MAX),
        Value::Float(3.25),
        Value::Float(-1e-300),
        Value::Bool(true),
        Value::Bool(false),
        Value::Nil,
        Value::List(vec![Value::Int(1), "two".into(), Value::Nil]),
        map(vec![("a", "x".into()), ("n", Value::Int(7))]),
        map(vec![
            (
                "weights",
                Value::List(vec![Value::Float(0.5), Value::Float(-2.0)]),
            ),
            (
                "meta",
                map(vec![
                    ("round", Value::Int(3)),
                    ("blob", Value::Bin(b"\x00abc".to_vec())),
                    ("tags", Value::List(vec![Value::List(vec![])])),
                ]),
            ),
        ]),
    ]
}

/// What the client measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Round-trip times of the `ping` requests.
    pub rtts: Vec<Duration>,
    /// Files our end refused (removed from the pipe).
    pub rejected: Vec<Rejected>,
    /// The data of the peer's END.
    pub end_data: Option<Value>,
}

fn encode(v: &Value) -> Result<Vec<u8>, String> {
    fobs::encode(v).map_err(|e| format!("cannot encode {v:?}: {e}"))
}

/// The client: `count` requests on `ping`, each reply checked, then `quit` and the peer's END.
/// `after_each(i)` runs after round trip `i` (tests use it to disturb the pipe).
pub fn client(s: &Settings, after_each: &mut dyn FnMut(usize)) -> Result<Report, String> {
    let pipe = s.transport();
    let rejections = pipe.rejections();
    let h = PipeHandler::new(pipe, s.config).map_err(|e| e.to_string())?;
    h.start().map_err(|e| e.to_string())?;
    let result = client_talk(s, &h, after_each);
    h.stop(true);
    let mut report = result?;
    report.rejected = rejections.recent();
    Ok(report)
}

fn client_talk(
    s: &Settings,
    h: &PipeHandler,
    after_each: &mut dyn FnMut(usize),
) -> Result<Report, String> {
    let kinds = payloads();
    let mut report = Report::default();
    let request_timeout = s.config.default_request_timeout;
    let timeout = Some(request_timeout);
    for i in 0..s.count {
        let v = &kinds[i % kinds.len()];
        let msg = Message::request("ping", encode(v)?).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let reply = h
            .request(msg, timeout, None)
            .map_err(|e| format!("request {i} ({v:?}): {e}"))?;
        report.rtts.push(t0.elapsed());
        let back = fobs::decode(reply.data()).map_err(|e| format!("reply {i}: {e}"))?;
        if back != *v || reply.topic() != "ping" {
            return Err(format!(
                "reply {i} on {}: {back:?}, expected {v:?}",
                reply.topic()
            ));
        }
        after_each(i);
    }
    let quit = Message::request("quit", encode(&Value::Nil)?).map_err(|e| e.to_string())?;
    h.send_to_peer(quit, timeout, None)
        .map_err(|e| format!("quit: {e}"))?;
    // The END comes within the peer's read interval; a silent peer is GONE within its
    // heartbeat timeout.
    let wait = s.config.heartbeat_timeout.max(request_timeout);
    match h.recv_timeout(wait) {
        Some(Item::Status(Status::End(data))) => {
            report.end_data = Some(fobs::decode(&data).map_err(|e| format!("END data: {e}"))?);
            Ok(report)
        }
        Some(Item::Status(other)) => Err(format!("waiting for END: {other:?}")),
        Some(Item::Message(m)) => Err(format!("unexpected message on {}", m.topic())),
        None => Err("no END from the peer".into()),
    }
}

/// The echo: answers every request with its topic and data; on `quit`, sends END and returns.
pub fn echo(s: &Settings) -> Result<(), String> {
    let h = PipeHandler::new(s.transport(), s.config).map_err(|e| e.to_string())?;
    h.start().map_err(|e| e.to_string())?;
    let result = echo_talk(&h);
    h.stop(true);
    result
}

fn echo_talk(h: &PipeHandler) -> Result<(), String> {
    loop {
        match h.recv() {
            Some(Item::Message(m)) if m.is_request() && m.topic() == "quit" => {
                return h
                    .notify_end(encode(&Value::from("bye"))?)
                    .map_err(|e| format!("END: {e}"));
            }
            Some(Item::Message(m)) if m.is_request() => {
                let reply = m.reply_to(m.data().to_vec()).map_err(|e| e.to_string())?;
                h.send_to_peer(reply, None, None)
                    .map_err(|e| format!("reply on {}: {e}", m.topic()))?;
            }
            Some(Item::Message(m)) => log_unexpected(&m),
            Some(Item::Status(s)) => return Err(format!("peer: {s:?}")),
            None => return Err("handler stopped".into()),
        }
    }
}

fn log_unexpected(m: &Message) {
    eprintln!("nvflare_echo: ignoring a reply on {}", m.topic());
}
