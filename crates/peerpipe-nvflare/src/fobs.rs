//! NVFlare's payload format on a FilePipe: FOBS files, a header and a plain msgpack body.
//!
//! A FilePipe message's data is what Python's `fobs.dumpf` wrote: a 10-byte header (marker
//! `0x64`, `0x00`, the body length as a big-endian u64) and the body, plain msgpack. Through
//! [`FilePipeTransport`](crate::FilePipeTransport) a `Message`'s
//! data *is* that msgpack body: the transport adds and strips the header. This module turns
//! bodies into [`Value`]s and back:
//!
//! ```
//! use peerpipe_nvflare::fobs::{self, Value};
//!
//! let v = Value::Map(vec![("a".into(), "x".into()), ("n".into(), 7.into())]);
//! let body = fobs::encode(&v)?;
//! assert_eq!(body, [0x82, 0xa1, b'a', 0xa1, b'x', 0xa1, b'n', 0x07]);
//! assert_eq!(fobs::decode(&body)?, v);
//! # Ok::<(), fobs::FobsError>(())
//! ```
//!
//! Python's bytes, str, int, float, bool, None, list and dict map to [`Value`]; ints are
//! written in their smallest encoding, floats as float64, like Python's msgpack. What FOBS
//! writes for any other type (a tuple, a set, a numpy array, a datetime...) is a map with a
//! `__fobs_type__` key: [`decode`] refuses it with [`FobsError::Unsupported`] naming the type,
//! as it refuses msgpack extension types, truncated input and trailing bytes. No input makes
//! this module panic.

use std::fmt;

/// The FOBS file header's marker of the main body.
const MAIN_MARKER: u8 = 100;
/// Bytes of a FOBS file header: marker, dot, u64 length.
pub const HEADER_LEN: usize = 10;
/// Nesting deeper than this is refused (the decoder recurses).
pub const MAX_DEPTH: usize = 64;
/// The map key by which FOBS marks a type that msgpack cannot carry.
const FOBS_TYPE_KEY: &str = "__fobs_type__";

/// A msgpack value of the kinds Python's plain types produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    Nil,
    /// `bool`.
    Bool(bool),
    /// An `int` in `i64` range.
    Int(i64),
    /// An `int` above `i64::MAX` (up to `u64::MAX`).
    UInt(u64),
    /// A `float` (float32 input is widened).
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes`.
    Bin(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `dict`, in its order.
    Map(Vec<(Value, Value)>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bin(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

/// Why bytes are not a payload this module can represent, or a value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FobsError {
    /// The input ends inside a value.
    Truncated,
    /// Bytes follow the one value a body holds.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A FOBS-specific type (a map with `__fobs_type__`), which has no [`Value`].
    Unsupported {
        /// The type FOBS named, e.g. `tuple` or `numpy.ndarray`.
        fobs_type: String,
    },
    /// A msgpack extension type (FOBS never writes them).
    Extension {
        /// The extension type code.
        code: i8,
    },
    /// The reserved byte `0xc1`.
    Reserved,
    /// A str that is not UTF-8.
    InvalidUtf8,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A string, binary, list or map longer than msgpack can say (`u32::MAX`).
    TooLong,
    /// A file without the FOBS main-body header (e.g. bare msgpack, or not FOBS at all).
    NoHeader {
        /// The first byte found instead of the marker `0x64`, if any.
        found: Option<u8>,
    },
    /// Datum sections follow the body: FOBS moves a bytes or str value of 10 MiB or more out
    /// of the body into a `DatumRef`, which this module does not resolve.
    DatumSections,
}

impl fmt::Display for FobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FobsError::Truncated => f.write_str("truncated"),
            FobsError::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the msgpack value")
            }
            FobsError::Unsupported { fobs_type } => write!(
                f,
                "FOBS type {fobs_type:?} is not supported (only bytes, str, int, float, bool, \
                 None, list and dict are)"
            ),
            FobsError::Extension { code } => write!(f, "msgpack extension type {code}"),
            FobsError::Reserved => f.write_str("reserved msgpack byte 0xc1"),
            FobsError::InvalidUtf8 => f.write_str("msgpack str is not UTF-8"),
            FobsError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH}"),
            FobsError::TooLong => f.write_str("value longer than msgpack can carry"),
            FobsError::NoHeader { found: Some(b) } => {
                write!(f, "no FOBS header (expected marker 100, found {b})")
            }
            FobsError::NoHeader { found: None } => f.write_str("no FOBS header (empty file)"),
            FobsError::DatumSections => f.write_str(
                "FOBS datum sections (a bytes or str value of 10 MiB or more) are not supported",
            ),
        }
    }
}

impl std::error::Error for FobsError {}

/// Writes `value` as msgpack, as Python's msgpack (`use_bin_type=True`) would.
pub fn encode(value: &Value) -> Result<Vec<u8>, FobsError> {
    let mut out = Vec::new();
    write_value(&mut out, value, 0)?;
    Ok(out)
}

/// Reads one msgpack value that must fill `body`; refuses FOBS-specific types.
pub fn decode(body: &[u8]) -> Result<Value, FobsError> {
    let mut r = Reader::new(body);
    let value = r.value(0)?;
    if !r.bytes.is_empty() {
        return Err(FobsError::TrailingBytes {
            extra: r.bytes.len(),
        });
    }
    Ok(value)
}

/// A FOBS file's content for a msgpack body: the header, then the body.
pub fn to_file(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAIN_MARKER);
    out.push(0);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The msgpack body of a FOBS file's content. Only a file with exactly one main section is
/// taken: datum sections after it are refused.
pub fn from_file(file: &[u8]) -> Result<&[u8], FobsError> {
    let Some((header, rest)) = file.split_first_chunk::<HEADER_LEN>() else {
        return Err(match file.first() {
            Some(&b) if b != MAIN_MARKER => FobsError::NoHeader { found: Some(b) },
            Some(_) => FobsError::Truncated,
            None => FobsError::NoHeader { found: None },
        });
    };
    if header[0] != MAIN_MARKER || header[1] != 0 {
        return Err(FobsError::NoHeader {
            found: Some(header[0]),
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[2..]);
    let len = usize::try_from(u64::from_be_bytes(len)).map_err(|_| FobsError::Truncated)?;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FobsError::Truncated),
        std::cmp::Ordering::Equal => Ok(rest),
        std::cmp::Ordering::Greater => Err(FobsError::DatumSections),
    }
}

/// The body to write for a message's data: the data itself when it is exactly one msgpack
/// value, `None` (`c0`) when it is empty, otherwise the data as one msgpack bin (Python
/// `bytes`).
pub fn body_for(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return vec![0xc0];
    }
    if is_one_value(data) {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len() + 5);
    // Data longer than u32::MAX bytes cannot be a message (see MAX_PAYLOAD).
    let _ = write_bin(&mut out, data);
    out
}

/// Whether `data` is exactly one msgpack value (FOBS-specific maps included).
fn is_one_value(data: &[u8]) -> bool {
    let mut r = Reader::new(data);
    r.skip_fobs_check = true;
    r.value(0).is_ok() && r.bytes.is_empty()
}

fn len_u32(n: usize) -> Result<u32, FobsError> {
    u32::try_from(n).map_err(|_| FobsError::TooLong)
}

fn write_bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), FobsError> {
    let n = len_u32(b.len())?;
    if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xc4, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xc5);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(b);
    Ok(())
}

/// Writes a length with its fix form (`fix` ORed with the length below `fix_max`) or the
/// 8/16/32-bit forms (`codes`; an 8-bit code of 0 means there is none).
fn write_len(
    out: &mut Vec<u8>,
    n: usize,
    fix: u8,
    fix_max: u32,
    codes: [u8; 3],
) -> Result<(), FobsError> {
    let n = len_u32(n)?;
    if n < fix_max {
        out.push(fix | n as u8);
    } else if let (true, Ok(n)) = (codes[0] != 0, u8::try_from(n)) {
        out.extend_from_slice(&[codes[0], n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(codes[1]);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(codes[2]);
        out.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if let Ok(v) = u8::try_from(v) {
        out.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(0xcd);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(0xce);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, v: i64) {
    if let Ok(u) = u64::try_from(v) {
        write_uint(out, u);
    } else if v >= -32 {
        out.push(v as u8);
    } else if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), FobsError> {
    if depth > MAX_DEPTH {
        return Err(FobsError::TooDeep);
    }
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::Float(x) => {
            out.push(0xcb);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Str(s) => {
            write_len(out, s.len(), 0xa0, 32, [0xd9, 0xda, 0xdb])?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => write_bin(out, b)?,
        Value::List(items) => {
            write_len(out, items.len(), 0x90, 16, [0, 0xdc, 0xdd])?;
            for item in items {
                write_value(out, item, depth + 1)?;
            }
        }
        Value::Map(entries) => {
            write_len(out, entries.len(), 0x80, 16, [0, 0xde, 0xdf])?;
            for (k, v) in entries {
                write_value(out, k, depth + 1)?;
                write_value(out, v, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// A checked cursor over msgpack bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Take FOBS-specific maps as plain maps (to check the shape only).
    skip_fobs_check: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            skip_fobs_check: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FobsError> {
        if n > self.bytes.len() {
            return Err(FobsError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FobsError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, FobsError> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self, bytes: usize) -> Result<usize, FobsError> {
        let n = match bytes {
            1 => u32::from(self.u8()?),
            2 => u32::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?),
        };
        usize::try_from(n).map_err(|_| FobsError::TooLong)
    }

    fn str(&mut self, n: usize) -> Result<Value, FobsError> {
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(|s| Value::Str(s.to_owned()))
            .map_err(|_| FobsError::InvalidUtf8)
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<Value, FobsError> {
        // Every element takes at least one byte: no allocation beyond the input's size.
        let mut items = Vec::with_capacity(n.min(self.bytes.len()));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, FobsError> {
        let mut entries = Vec::with_capacity(n.min(self.bytes.len() / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        if !self.skip_fobs_check {
            if let Some((_, t)) = entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == FOBS_TYPE_KEY))
            {
                let fobs_type = match t {
                    Value::Str(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                return Err(FobsError::Unsupported { fobs_type });
            }
        }
        Ok(Value::Map(entries))
    }

    fn ext(&mut self, n: usize) -> Result<Value, FobsError> {
        let code = i8::from_be_bytes(self.array()?);
        self.take(n)?;
        Err(FobsError::Extension { code })
    }

    fn value(&mut self, depth: usize) -> Result<Value, FobsError> {
        if depth > MAX_DEPTH {
            return Err(FobsError::TooDeep);
        }
        let b = self.u8()?;
        match b {
            0x00..=0x7f => Ok(Value::Int(i64::from(b))),
            0x80..=0x8f => self.map(usize::from(b & 0x0f), depth),
            0x90..=0x9f => self.list(usize::from(b & 0x0f), depth),
            0xa0..=0xbf => self.str(usize::from(b & 0x1f)),
            0xc0 => Ok(Value::Nil),
            0xc1 => Err(FobsError::Reserved),
            0xc2 => Ok(Value::Bool(false)),
            0xc3 => Ok(Value::Bool(true)),
            0xc4..=0xc6 => {
                let n = self.len(1 << (b - 0xc4))?;
                Ok(Value::Bin(self.take(n)?.to_vec()))
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (b - 0xc7))?;
                self.ext(n)
            }
            0xca => Ok(Value::Float(f64::from(f32::from_be_bytes(self.array()?)))),
            0xcb => Ok(Value::Float(f64::from_be_bytes(self.array()?))),
            0xcc => Ok(Value::Int(i64::from(self.u8()?))),
            0xcd => Ok(Value::Int(i64::from(u16::from_be_bytes(self.array()?)))),
            0xce => Ok(Value::Int(i64::from(u32::from_be_bytes(self.array()?)))),
            0xcf => Ok(Value::from(u64::from_be_bytes(self.array()?))),
            0xd0 => Ok(Value::Int(i64::from(i8::from_be_bytes(self.array()?)))),
            0xd1 => Ok(Value::Int(i64::from(i16::from_be_bytes(self.array()?)))),
            0xd2 => Ok(Value::Int(i64::from(i32::from_be_bytes(self.array()?)))),
            0xd3 => Ok(Value::Int(i64::from_be_bytes(self.array()?))),
            0xd4..=0xd8 => self.ext(1 << (b - 0xd4)),
            0xd9..=0xdb => {
                let n = self.len(1 << (b - 0xd9))?;
                self.str(n)
            }
            0xdc | 0xdd => {
                let n = self.len(2 << (b - 0xdc))?;
                self.list(n, depth)
            }
            0xde | 0xdf => {
                let n = self.len(2 << (b - 0xde))?;
                self.map(n, depth)
            }
            0xe0..=0xff => Ok(Value::Int(i64::from(b as i8))),
        }
    }
}

#[cfg(test)]
mod tests;
