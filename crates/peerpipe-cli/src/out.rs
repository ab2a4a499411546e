//! Output helpers: human-readable data, JSON lines, and where reports go.

use std::io::Write;

use serde_json::{Map, Value};

/// Bytes shown as text: printable ASCII as is, `"` and `\` escaped, anything else as `\xNN`
/// (`\n`, `\r`, `\t` by name); at most `max` bytes, then `...`.
pub fn escape(data: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in data.iter().take(max) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7E => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if data.len() > max {
        s.push_str("...");
    }
    s
}

/// Message data for JSON: `"data"` as a string when it is UTF-8, else `"data_hex"`.
pub fn put_data(obj: &mut Map<String, Value>, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) => obj.insert("data".into(), text.into()),
        Err(_) => obj.insert("data_hex".into(), hex(data).into()),
    };
}

/// Lower-case hex, no separators.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a command's reports go: stdout, unless stdout carries the link (`stdio`).
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub to_stderr: bool,
}

impl Out {
    /// Writes one line (a report, or a JSON object) and flushes it: reports are read live.
    pub fn line(&self, text: &str) {
        if self.to_stderr {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{text}");
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{text}");
            let _ = o.flush();
        }
    }

    /// Writes a JSON object as one line.
    pub fn json(&self, obj: Map<String, Value>) {
        self.line(&Value::Object(obj).to_string());
    }

    /// Reports an event: with `--json` the object `{"event": EVENT, ...fields}`, else the
    /// line `EVENT key=value ...`, where data, and strings with spaces, are quoted and
    /// escaped (at most 64 bytes shown).
    pub fn event(&self, event: &str, fields: Map<String, Value>) {
        if self.json {
            let mut o = Map::new();
            o.insert("event".into(), event.into());
            o.extend(fields);
            self.json(o);
            return;
        }
        let mut line = event.to_owned();
        for (k, v) in fields {
            match v {
                Value::String(s) if k == "data" || k.contains(' ') || s.contains(' ') => {
                    line.push_str(&format!(" {k}=\"{}\"", escape(s.as_bytes(), 64)))
                }
                Value::String(s) => line.push_str(&format!(" {k}={s}")),
                other => line.push_str(&format!(" {k}={other}")),
            }
        }
        self.line(&line);
    }
}

/// A JSON object from `(key, value)` pairs.
#[macro_export]
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert(String::from($k), serde_json::Value::from($v)); )*
        m
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape(b"hi \"x\"\n\x00\xff", 100),
            "hi \\\"x\\\"\\n\\x00\\xff"
        );
        assert_eq!(escape(b"abcdef", 3), "abc...");
    }
}
