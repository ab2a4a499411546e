//! Printing pieces: the aligned table (column widths, the row formatting helpers) and JSON
//! lines.

use peerpipe_core::wire::Frag;
use serde_json::{Map, Value};

use super::{DataKind, FrameInfo, Info, Piece, What};
use crate::obj;
use crate::out::{escape, put_data, Out};

/// A row as printed: a piece, with its time and direction when known.
pub struct Row<'a> {
    pub piece: &'a Piece,
    pub time: Option<f64>,
    pub dir: Option<&'static str>,
}

/// Prints rows as an aligned table or as JSON lines.
pub struct Printer {
    out: Out,
    time: bool,
    dir: bool,
}

const W_TIME: usize = 10;
const W_DIR: usize = 3;
const W_OFFSET: usize = 8;
const W_KIND: usize = 7;
const W_SESSION: usize = 8;
const W_IDS: usize = 34;
const W_TOPIC: usize = 10;
const W_LEN: usize = 5;
const W_WIRE: usize = 5;

/// Data shown in the table's last column.
const DATA_PREVIEW: usize = 24;

impl Printer {
    pub fn new(out: Out, time: bool, dir: bool) -> Self {
        Printer { out, time, dir }
    }

    /// The table's header (nothing for JSON).
    pub fn header(&self) {
        if self.out.json {
            return;
        }
        self.table_line(
            "TIME", "DIR", "OFFSET", "KIND", "SESSION", "IDS", "TOPIC", "LEN", "WIRE", "INFO",
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn table_line(
        &self,
        time: &str,
        dir: &str,
        offset: &str,
        kind: &str,
        session: &str,
        ids: &str,
        topic: &str,
        len: &str,
        wire: &str,
        info: &str,
    ) {
        let mut line = String::new();
        if self.time {
            line.push_str(&format!("{time:<W_TIME$} "));
        }
        if self.dir {
            line.push_str(&format!("{dir:<W_DIR$} "));
        }
        line.push_str(&format!(
            "{offset:<W_OFFSET$} {kind:<W_KIND$} {session:<W_SESSION$} {ids:<W_IDS$} \
             {topic:<W_TOPIC$} {len:>W_LEN$} {wire:>W_WIRE$}  {info}"
        ));
        self.out.line(line.trim_end());
    }

    pub fn row(&self, row: &Row<'_>) {
        if self.out.json {
            self.out.json(row_json(row));
            return;
        }
        let p = row.piece;
        let time = row.time.map(|t| format!("{t:.6}")).unwrap_or_default();
        let dir = row.dir.unwrap_or("");
        let offset = p.offset.to_string();
        let wire = p.wire.to_string();
        let (kind, frame, info) = match &p.what {
            What::Frame(f) => (short_kind(f), Some(f), data_note(f)),
            What::CrcError {
                claimed,
                found,
                computed,
            } => (
                "CRC-ERR",
                Some(claimed),
                format!(
                    "{} with CRC {found:08x}, content gives {computed:08x}",
                    short_kind(claimed)
                ),
            ),
            What::Bad(e) => ("BAD", None, e.to_string()),
            What::Garbage(why) => ("GARBAGE", None, why.clone()),
        };
        let (session, ids, topic, len) = match frame {
            Some(f) => {
                let (ids, topic, len) = ids_topic_len(f);
                (format!("{:08x}", f.session), ids, topic, len)
            }
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        self.table_line(
            &time, dir, &offset, kind, &session, &ids, &topic, &len, &wire, &info,
        );
    }
}

fn short_kind(f: &FrameInfo) -> &'static str {
    match &f.body {
        Info::Data { kind, .. } => match kind {
            DataKind::Request => "REQ",
            DataKind::Reply => "REPLY",
            DataKind::End => "END",
            DataKind::Abort => "ABORT",
        },
        Info::Ack { .. } => "ACK",
        Info::Heartbeat { .. } => "HB",
    }
}

fn json_kind(f: &FrameInfo) -> &'static str {
    match &f.body {
        Info::Data { kind, .. } => match kind {
            DataKind::Request => "request",
            DataKind::Reply => "reply",
            DataKind::End => "end",
            DataKind::Abort => "abort",
        },
        Info::Ack { .. } => "ack",
        Info::Heartbeat { .. } => "heartbeat",
    }
}

/// The INFO column of a frame: the start of a DATA frame's data; the room, window and
/// capabilities an ACK or heartbeat announces.
fn data_note(f: &FrameInfo) -> String {
    match &f.body {
        Info::Data { payload, .. } if !payload.is_empty() => {
            format!("\"{}\"", escape(payload, DATA_PREVIEW))
        }
        Info::Data { .. } => String::new(),
        Info::Ack {
            room,
            window,
            retry,
            ..
        } => format!(
            "room={room} window={window}{}",
            if *retry { " retry" } else { "" }
        ),
        Info::Heartbeat(h) => format!(
            "room={} window={} max_payload={} max_topic={} max_message={}{}",
            h.room,
            h.window,
            h.caps.max_payload,
            h.caps.max_topic,
            h.caps.max_message,
            if h.ask { " ask" } else { "" }
        ),
    }
}

/// What part of its message a DATA frame carries, as `--json` names it.
fn frag_name(frag: &Frag) -> &'static str {
    match frag {
        Frag::Whole => "whole",
        Frag::First { .. } => "first",
        Frag::Next { last: false, .. } => "middle",
        Frag::Next { last: true, .. } => "last",
    }
}

fn ids_topic_len(f: &FrameInfo) -> (String, String, String) {
    match &f.body {
        Info::Data {
            seq,
            floor,
            id,
            frag,
            req_id,
            topic,
            payload,
            ..
        } => {
            let req = req_id.map(|r| format!(" req={r}")).unwrap_or_default();
            let frag = match frag {
                Frag::Whole => String::new(),
                Frag::First { total } => format!(" total={total}"),
                Frag::Next { offset, last } => {
                    format!(" at={offset}{}", if *last { " last" } else { "" })
                }
            };
            (
                format!("seq={seq} floor={floor} id={id}{req}{frag}"),
                topic.clone().unwrap_or_else(|| "-".into()),
                payload.len().to_string(),
            )
        }
        Info::Ack {
            to_session,
            next,
            bitmap,
            ..
        } => (
            format!("to={to_session:08x} next={next} bits={bitmap:#x}"),
            "-".into(),
            "-".into(),
        ),
        Info::Heartbeat(h) => (format!("floor={}", h.floor), "-".into(), "-".into()),
    }
}

fn frame_json(o: &mut Map<String, Value>, f: &FrameInfo) {
    o.insert("session".into(), format!("{:08x}", f.session).into());
    match &f.body {
        Info::Data {
            seq,
            floor,
            id,
            frag,
            req_id,
            topic,
            payload,
            ..
        } => {
            o.insert("seq".into(), (*seq).into());
            o.insert("floor".into(), (*floor).into());
            o.insert("id".into(), (*id).into());
            // `offset` is the row's place in the stream: a fragment's place in its message
            // is `at`.
            o.insert("frag".into(), frag_name(frag).into());
            match frag {
                Frag::Whole => {}
                Frag::First { total } => {
                    o.insert("total".into(), (*total).into());
                }
                Frag::Next { offset, .. } => {
                    o.insert("at".into(), (*offset).into());
                }
            }
            if let Some(r) = req_id {
                o.insert("req_id".into(), (*r).into());
            }
            if let Some(t) = topic {
                o.insert("topic".into(), t.clone().into());
            }
            o.insert("len".into(), payload.len().into());
            put_data(o, payload);
        }
        Info::Ack {
            to_session,
            next,
            bitmap,
            room,
            window,
            retry,
        } => {
            o.insert("to_session".into(), format!("{to_session:08x}").into());
            o.insert("next".into(), (*next).into());
            o.insert("bitmap".into(), (*bitmap).into());
            o.insert("room".into(), (*room).into());
            o.insert("window".into(), (*window).into());
            o.insert("retry".into(), (*retry).into());
        }
        Info::Heartbeat(h) => {
            o.insert("floor".into(), h.floor.into());
            o.insert("room".into(), h.room.into());
            o.insert("window".into(), h.window.into());
            o.insert("max_payload".into(), h.caps.max_payload.into());
            o.insert("max_topic".into(), h.caps.max_topic.into());
            o.insert("max_message".into(), h.caps.max_message.into());
            o.insert("ask".into(), h.ask.into());
        }
    }
}

fn row_json(row: &Row<'_>) -> Map<String, Value> {
    let p = row.piece;
    let mut o = obj! {"offset" => p.offset, "wire" => p.wire};
    if let Some(t) = row.time {
        o.insert("time".into(), t.into());
    }
    if let Some(d) = row.dir {
        o.insert("dir".into(), d.into());
    }
    match &p.what {
        What::Frame(f) => {
            o.insert("kind".into(), json_kind(f).into());
            frame_json(&mut o, f);
        }
        What::CrcError {
            claimed,
            found,
            computed,
        } => {
            o.insert("kind".into(), "crc_error".into());
            o.insert("claimed_kind".into(), json_kind(claimed).into());
            frame_json(&mut o, claimed);
            o.insert("crc".into(), format!("{found:08x}").into());
            o.insert("crc_computed".into(), format!("{computed:08x}").into());
        }
        What::Bad(e) => {
            o.insert("kind".into(), "bad_frame".into());
            o.insert("error".into(), e.to_string().into());
        }
        What::Garbage(why) => {
            o.insert("kind".into(), "garbage".into());
            o.insert("error".into(), why.clone().into());
        }
    }
    o
}
