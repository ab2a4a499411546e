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
//!
//! Values are written with the `rmp` crate; they are read by this module's own bounds-checked
//! reader (why: see its doc comment, with the figures).

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use rmp::encode::{self as mp, ByteBuf, ValueWriteError};
use rmp::Marker;

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
    /// A datum section (where FOBS puts a bytes or str value of 10 MiB or more) or a
    /// `DatumRef` to one is malformed; the text says how.
    BadDatum(&'static str),
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
            FobsError::BadDatum(why) => write!(f, "bad FOBS datum section: {why}"),
        }
    }
}

impl std::error::Error for FobsError {}

/// Writes `value` as msgpack, as Python's msgpack (`use_bin_type=True`) would.
pub fn encode(value: &Value) -> Result<Vec<u8>, FobsError> {
    let mut out = ByteBuf::new();
    write_value(&mut out, value, 0)?;
    Ok(out.into_vec())
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

/// The msgpack body of a FOBS file's content. When datum sections follow the body (NVFlare
/// moves a bytes or str value of [`DATUM_THRESHOLD`] or more into one, leaving a `DatumRef`
/// in the body), each reference is replaced by its value, so that the result is plain msgpack
/// either way (the rest of the body is copied as it is); a file datum, a reference to a
/// missing section, a body that is not one msgpack value or a malformed section is refused.
/// Without sections the body is returned as it is (borrowed). [`check`] or [`decode`] it.
pub fn from_file(file: &[u8]) -> Result<Cow<'_, [u8]>, FobsError> {
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
    if rest.len() < len {
        return Err(FobsError::Truncated);
    }
    let (body, sections) = rest.split_at(len);
    if sections.is_empty() {
        return Ok(Cow::Borrowed(body));
    }
    let datums = datum::Datums::parse(sections)?;
    let spans = walk::walk(body, walk::Goal::Resolve(&datums))?;
    let size = spans.iter().fold(body.len(), |n, s| match s.found {
        walk::Found::Datum { data, .. } => n - s.range.len() + 5 + data.len(),
        walk::Found::Large { .. } => n,
    });
    let mut out = ByteBuf::with_capacity(size);
    let mut at = 0;
    for s in spans {
        let walk::Found::Datum { text, data } = s.found else {
            continue;
        };
        out.as_mut_vec().extend_from_slice(&body[at..s.range.start]);
        if text {
            written(mp::write_str_len(&mut out, len_u32(data.len())?));
        } else {
            written(mp::write_bin_len(&mut out, len_u32(data.len())?));
        }
        out.as_mut_vec().extend_from_slice(data);
        at = s.range.end;
    }
    out.as_mut_vec().extend_from_slice(&body[at..]);
    Ok(Cow::Owned(out.into_vec()))
}

/// Checks that `body` is one msgpack value that [`decode`] accepts, without building it: the
/// same errors, but no memory beyond a few words per nesting level, whatever the body's size.
pub fn check(body: &[u8]) -> Result<(), FobsError> {
    walk::walk(body, walk::Goal::Check).map(drop)
}

/// Values NVFlare's FOBS moves out of the body into a datum section: bytes values of this
/// many bytes or more, str values of this many characters or more (its default
/// `max_value_size`, 10 MiB).
pub const DATUM_THRESHOLD: usize = 10 * 1024 * 1024;

/// Writes the FOBS file for a message's data, as NVFlare 2.8.3's `fobs.dumpf` writes the
/// same Python value: the body is what [`body_for`] makes of the data, except that every
/// bytes or str value of [`DATUM_THRESHOLD`] or more that NVFlare's `Externalizer` would
/// move (the value itself, or one reached through dict values and list items) goes into a
/// datum section after the body, with a `DatumRef` in its place. The data is written in
/// slices, never copied as a whole. Returns the bytes written.
///
/// Fails only when writing fails, or (`InvalidInput`) for data that is not one msgpack value
/// and is longer than a msgpack bin can be (4 GiB - 1).
pub fn write_file<W: std::io::Write>(data: &[u8], out: &mut W) -> std::io::Result<u64> {
    write_file_with(data, DATUM_THRESHOLD, out)
}

/// [`write_file`] with NVFlare's `max_value_size` = `threshold`.
pub(crate) fn write_file_with<W: std::io::Write>(
    data: &[u8],
    threshold: usize,
    out: &mut W,
) -> std::io::Result<u64> {
    use std::io::{Error, ErrorKind};
    // The body in pieces (slices of the data, and what replaces the rest), and the sections.
    let mut body: Vec<Cow<'_, [u8]>> = Vec::new();
    let mut sections: Vec<(bool, [u8; 16], &[u8])> = Vec::new();
    // A new datum's reference for the body, and its UUID for the section.
    let datum_ref = || {
        let id = crate::uuid::uuid4();
        let bytes = crate::uuid::uuid_bytes(&id).expect("uuid4 makes uuids");
        let reference = encode(&datum::reference(&id)).expect("a DatumRef map encodes");
        (reference, bytes)
    };
    if data.is_empty() {
        body.push(Cow::Borrowed(&[0xc0]));
    } else if let Ok(spans) = walk::walk(data, walk::Goal::Externalize { threshold }) {
        let mut at = 0;
        for s in spans {
            let walk::Found::Large { text, payload } = s.found else {
                continue;
            };
            body.push(Cow::Borrowed(&data[at..s.range.start]));
            let (reference, id) = datum_ref();
            body.push(Cow::Owned(reference));
            sections.push((text, id, &data[payload]));
            at = s.range.end;
        }
        body.push(Cow::Borrowed(&data[at..]));
    } else if data.len() >= threshold {
        // Not one value: Python bytes, and as such large.
        let (reference, id) = datum_ref();
        body.push(Cow::Owned(reference));
        sections.push((false, id, data));
    } else {
        let mut head = ByteBuf::new();
        let len = len_u32(data.len()).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        written(mp::write_bin_len(&mut head, len));
        body.push(Cow::Owned(head.into_vec()));
        body.push(Cow::Borrowed(data));
    }
    let body_len: usize = body.iter().map(|p| p.len()).sum();
    let mut header = [0u8; HEADER_LEN];
    header[0] = MAIN_MARKER;
    header[2..].copy_from_slice(&(body_len as u64).to_be_bytes());
    out.write_all(&header)?;
    let mut total = (HEADER_LEN + body_len) as u64;
    for piece in &body {
        out.write_all(piece)?;
    }
    for (text, id, data) in sections {
        out.write_all(&datum::section_header(text, id, data.len() as u64))?;
        out.write_all(data)?;
        total += (HEADER_LEN + 16 + data.len()) as u64;
    }
    Ok(total)
}

/// The body to write for a message's data: the data itself when it is exactly one msgpack
/// value, `None` (`c0`) when it is empty, otherwise the data as one msgpack bin (Python
/// `bytes`; for data longer than a bin can be, 4 GiB - 1 bytes, the body is empty). All in
/// the body: [`write_file`] writes a file as NVFlare would, with datum sections.
pub fn body_for(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return vec![0xc0];
    }
    if is_one_value(data) {
        return data.to_vec();
    }
    let mut out = ByteBuf::with_capacity(data.len() + 5);
    // Data longer than u32::MAX bytes cannot be one bin (see the doc comment).
    if write_bin(&mut out, data).is_err() {
        return Vec::new();
    }
    out.into_vec()
}

/// Whether `data` is exactly one msgpack value (FOBS-specific maps included).
fn is_one_value(data: &[u8]) -> bool {
    walk::walk(
        data,
        walk::Goal::Externalize {
            threshold: usize::MAX,
        },
    )
    .is_ok()
}

fn len_u32(n: usize) -> Result<u32, FobsError> {
    // rmp's `write_str`/`write_bin` would cut a longer length to 32 bits (`len as u32`).
    u32::try_from(n).map_err(|_| FobsError::TooLong)
}

/// The value of an `rmp` write into a [`ByteBuf`], which cannot fail.
fn written<T>(r: Result<T, ValueWriteError<Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(ValueWriteError::InvalidMarkerWrite(e) | ValueWriteError::InvalidDataWrite(e)) => {
            match e {}
        }
    }
}

fn write_bin(out: &mut ByteBuf, b: &[u8]) -> Result<(), FobsError> {
    written(mp::write_bin_len(out, len_u32(b.len())?));
    out.as_mut_vec().extend_from_slice(b);
    Ok(())
}

fn write_value(out: &mut ByteBuf, value: &Value, depth: usize) -> Result<(), FobsError> {
    if depth > MAX_DEPTH {
        return Err(FobsError::TooDeep);
    }
    // rmp's int and length writers pick the smallest encoding, as Python's msgpack does.
    match value {
        Value::Nil => {
            let Ok(()) = mp::write_nil(out);
        }
        Value::Bool(b) => {
            let Ok(()) = mp::write_bool(out, *b);
        }
        Value::Int(i) => drop(written(mp::write_sint(out, *i))),
        Value::UInt(u) => drop(written(mp::write_uint(out, *u))),
        Value::Float(x) => written(mp::write_f64(out, *x)),
        Value::Str(s) => {
            written(mp::write_str_len(out, len_u32(s.len())?));
            out.as_mut_vec().extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => write_bin(out, b)?,
        Value::List(items) => {
            written(mp::write_array_len(out, len_u32(items.len())?));
            for item in items {
                write_value(out, item, depth + 1)?;
            }
        }
        Value::Map(entries) => {
            written(mp::write_map_len(out, len_u32(entries.len())?));
            for (k, v) in entries {
                write_value(out, k, depth + 1)?;
                write_value(out, v, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// A checked cursor over msgpack bytes.
///
/// Why hand-written, when the encoder is `rmp`'s: `rmpv::decode::read_value` (1.3) is robust
/// on hostile input (its depth limit holds, a declared length of 2^32 - 1 in a 5-byte input
/// allocates at most 64 KiB, truncation is an error), but it reads the reserved byte `0xc1` as
/// `Nil`: Python's msgpack refuses that byte, and [`body_for`] must not send it raw as "one
/// value". It also cannot say which `__fobs_type__` it met or stop at the first extension
/// without a second walk converting its `Value` into ours, and it is slower: on a 10 MiB bin,
/// 4.0 ms (debug) / 4.5 ms (release) against 0.7 ms for this reader (best of 5; `rmpv` grows
/// the `Vec` from 64 KiB). `rmp`'s own read-after-marker helpers (`read_data_*`) are
/// `#[doc(hidden)]`. So this reader keeps its own bounds checks and only names markers with
/// `rmp::Marker`. Figures: `cargo test [--release] -p peerpipe-nvflare --lib
/// fobs::tests::timings -- --ignored --nocapture`, and the same cases through `rmpv`.
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

    fn bin(&mut self, n: usize) -> Result<Value, FobsError> {
        Ok(Value::Bin(self.take(n)?.to_vec()))
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
        match Marker::from_u8(self.u8()?) {
            Marker::FixPos(n) => Ok(Value::Int(i64::from(n))),
            Marker::FixNeg(n) => Ok(Value::Int(i64::from(n))),
            Marker::Null => Ok(Value::Nil),
            Marker::Reserved => Err(FobsError::Reserved),
            Marker::False => Ok(Value::Bool(false)),
            Marker::True => Ok(Value::Bool(true)),
            Marker::U8 => Ok(Value::Int(i64::from(self.u8()?))),
            Marker::U16 => Ok(Value::Int(i64::from(u16::from_be_bytes(self.array()?)))),
            Marker::U32 => Ok(Value::Int(i64::from(u32::from_be_bytes(self.array()?)))),
            Marker::U64 => Ok(Value::from(u64::from_be_bytes(self.array()?))),
            Marker::I8 => Ok(Value::Int(i64::from(i8::from_be_bytes(self.array()?)))),
            Marker::I16 => Ok(Value::Int(i64::from(i16::from_be_bytes(self.array()?)))),
            Marker::I32 => Ok(Value::Int(i64::from(i32::from_be_bytes(self.array()?)))),
            Marker::I64 => Ok(Value::Int(i64::from_be_bytes(self.array()?))),
            Marker::F32 => Ok(Value::Float(f64::from(f32::from_be_bytes(self.array()?)))),
            Marker::F64 => Ok(Value::Float(f64::from_be_bytes(self.array()?))),
            Marker::FixStr(n) => self.str(usize::from(n)),
            Marker::Str8 => self.len(1).and_then(|n| self.str(n)),
            Marker::Str16 => self.len(2).and_then(|n| self.str(n)),
            Marker::Str32 => self.len(4).and_then(|n| self.str(n)),
            Marker::Bin8 => self.len(1).and_then(|n| self.bin(n)),
            Marker::Bin16 => self.len(2).and_then(|n| self.bin(n)),
            Marker::Bin32 => self.len(4).and_then(|n| self.bin(n)),
            Marker::FixArray(n) => self.list(usize::from(n), depth),
            Marker::Array16 => self.len(2).and_then(|n| self.list(n, depth)),
            Marker::Array32 => self.len(4).and_then(|n| self.list(n, depth)),
            Marker::FixMap(n) => self.map(usize::from(n), depth),
            Marker::Map16 => self.len(2).and_then(|n| self.map(n, depth)),
            Marker::Map32 => self.len(4).and_then(|n| self.map(n, depth)),
            Marker::FixExt1 => self.ext(1),
            Marker::FixExt2 => self.ext(2),
            Marker::FixExt4 => self.ext(4),
            Marker::FixExt8 => self.ext(8),
            Marker::FixExt16 => self.ext(16),
            Marker::Ext8 => self.len(1).and_then(|n| self.ext(n)),
            Marker::Ext16 => self.len(2).and_then(|n| self.ext(n)),
            Marker::Ext32 => self.len(4).and_then(|n| self.ext(n)),
        }
    }
}

mod datum;
#[cfg(test)]
mod tests;
mod walk;
