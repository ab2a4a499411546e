//! A walk over msgpack bytes that checks them without building [`Value`]s: it allocates
//! nothing for the values it passes (a body of any size, a list of millions of ints), only for
//! the spans it records, and it finds what FOBS moves into datum sections and back.

use std::ops::Range;

use rmp::Marker;

use super::datum::Datums;
use super::{FobsError, Reader, Value, FOBS_TYPE_KEY, MAX_DEPTH};

/// What a walk checks and records.
#[derive(Clone, Copy)]
pub(super) enum Goal<'d, 'a> {
    /// What [`decode`](super::decode) accepts: FOBS-specific maps are refused.
    Check,
    /// Any msgpack value, FOBS-specific maps included, and where NVFlare's `Externalizer`
    /// would move a value into a datum section: a bin of `threshold` bytes or more, or a str
    /// of `threshold` characters or more, that is the value itself or is reached from it
    /// through plain maps' values and lists' items (not map keys, not inside a FOBS map).
    Externalize {
        /// NVFlare's `max_value_size`.
        threshold: usize,
    },
    /// Any msgpack value, FOBS-specific maps included, and every `DatumRef` map, which must
    /// name one of these sections (to be replaced by the section's value).
    Resolve(&'d Datums<'a>),
}

/// A value found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found<'a> {
    /// A bin (`text` false) or str value at or above the threshold; its data is `payload`.
    Large { text: bool, payload: Range<usize> },
    /// A `DatumRef` map that stands for this section's value.
    Datum { text: bool, data: &'a [u8] },
}

/// Where a found value is (its marker and length included), and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Span<'a> {
    pub(super) range: Range<usize>,
    pub(super) found: Found<'a>,
}

/// Walks the one msgpack value that must fill `bytes`; the spans found, in order.
pub(super) fn walk<'a>(bytes: &'a [u8], goal: Goal<'_, 'a>) -> Result<Vec<Span<'a>>, FobsError> {
    let mut w = Walker {
        bytes,
        pos: 0,
        goal,
        spans: Vec::new(),
    };
    w.value(0, true)?;
    match bytes.len() - w.pos {
        0 => Ok(w.spans),
        extra => Err(FobsError::TrailingBytes { extra }),
    }
}

struct Walker<'a, 'd> {
    bytes: &'a [u8],
    pos: usize,
    goal: Goal<'d, 'a>,
    spans: Vec<Span<'a>>,
}

impl<'a> Walker<'a, '_> {
    fn take(&mut self, n: usize) -> Result<Range<usize>, FobsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(FobsError::Truncated)?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FobsError> {
        let range = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[range]);
        Ok(a)
    }

    fn len(&mut self, bytes: usize) -> Result<usize, FobsError> {
        let n = match bytes {
            1 => u32::from(self.array::<1>()?[0]),
            2 => u32::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?),
        };
        usize::try_from(n).map_err(|_| FobsError::TooLong)
    }

    fn threshold(&self, outer: bool) -> Option<usize> {
        match self.goal {
            Goal::Externalize { threshold } if outer => Some(threshold),
            _ => None,
        }
    }

    fn str(&mut self, start: usize, n: usize, outer: bool) -> Result<(), FobsError> {
        let payload = self.take(n)?;
        let text = &self.bytes[payload.clone()];
        std::str::from_utf8(text).map_err(|_| FobsError::InvalidUtf8)?;
        // Python counts a str's length in characters (code points), not bytes.
        if let Some(threshold) = self.threshold(outer) {
            if n >= threshold && chars(text) >= threshold {
                self.found(
                    start,
                    Found::Large {
                        text: true,
                        payload,
                    },
                );
            }
        }
        Ok(())
    }

    fn bin(&mut self, start: usize, n: usize, outer: bool) -> Result<(), FobsError> {
        let payload = self.take(n)?;
        if self.threshold(outer).is_some_and(|t| n >= t) {
            self.found(
                start,
                Found::Large {
                    text: false,
                    payload,
                },
            );
        }
        Ok(())
    }

    fn found(&mut self, start: usize, found: Found<'a>) {
        self.spans.push(Span {
            range: start..self.pos,
            found,
        });
    }

    fn list(&mut self, n: usize, depth: usize, outer: bool) -> Result<(), FobsError> {
        for _ in 0..n {
            self.value(depth + 1, outer)?;
        }
        Ok(())
    }

    fn map(&mut self, start: usize, n: usize, depth: usize, outer: bool) -> Result<(), FobsError> {
        let mark = self.spans.len();
        let mut fobs_type: Option<Range<usize>> = None;
        for _ in 0..n {
            let key = self.pos;
            self.value(depth + 1, false)?;
            let is_type = str_at(&self.bytes[key..self.pos]) == Some(FOBS_TYPE_KEY.as_bytes());
            let value = self.pos;
            self.value(depth + 1, outer)?;
            if is_type && fobs_type.is_none() {
                fobs_type = Some(value..self.pos);
            }
        }
        let Some(type_range) = fobs_type else {
            return Ok(());
        };
        let type_bytes = &self.bytes[type_range];
        match self.goal {
            // What lies inside a FOBS map is its decomposer's business, not the Externalizer's.
            Goal::Externalize { .. } => {
                self.spans.truncate(mark);
                return Ok(());
            }
            Goal::Resolve(datums) if str_at(type_bytes) == Some(DATUM_REF_BYTES) => {
                // A DatumRef map is small: read it whole.
                let mut r = Reader::new(&self.bytes[start..self.pos]);
                r.skip_fobs_check = true;
                let Value::Map(entries) = r.value(depth)? else {
                    return Err(FobsError::BadDatum("DatumRef is not a map"));
                };
                let (text, data) = datums.lookup(&entries)?;
                self.spans.truncate(mark);
                self.found(start, Found::Datum { text, data });
                return Ok(());
            }
            Goal::Resolve(_) => return Ok(()),
            Goal::Check => {}
        }
        let fobs_type = match str_at(type_bytes).map(std::str::from_utf8) {
            Some(Ok(s)) => s.to_owned(),
            _ => {
                let mut r = Reader::new(type_bytes);
                r.skip_fobs_check = true;
                r.value(depth + 1)
                    .map_or_else(|_| "?".to_owned(), |v| format!("{v:?}"))
            }
        };
        Err(FobsError::Unsupported { fobs_type })
    }

    fn ext(&mut self, n: usize) -> Result<(), FobsError> {
        let code = i8::from_be_bytes(self.array()?);
        self.take(n)?;
        Err(FobsError::Extension { code })
    }

    /// Walks one value; `outer`: it is on the Externalizer's path.
    fn value(&mut self, depth: usize, outer: bool) -> Result<(), FobsError> {
        if depth > MAX_DEPTH {
            return Err(FobsError::TooDeep);
        }
        let start = self.pos;
        let [marker] = self.array::<1>()?;
        let skip = |w: &mut Self, n: usize| w.take(n).map(drop);
        match Marker::from_u8(marker) {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::False | Marker::True => {
                Ok(())
            }
            Marker::Reserved => Err(FobsError::Reserved),
            Marker::U8 | Marker::I8 => skip(self, 1),
            Marker::U16 | Marker::I16 => skip(self, 2),
            Marker::U32 | Marker::I32 | Marker::F32 => skip(self, 4),
            Marker::U64 | Marker::I64 | Marker::F64 => skip(self, 8),
            Marker::FixStr(n) => self.str(start, usize::from(n), outer),
            Marker::Str8 => self.len(1).and_then(|n| self.str(start, n, outer)),
            Marker::Str16 => self.len(2).and_then(|n| self.str(start, n, outer)),
            Marker::Str32 => self.len(4).and_then(|n| self.str(start, n, outer)),
            Marker::Bin8 => self.len(1).and_then(|n| self.bin(start, n, outer)),
            Marker::Bin16 => self.len(2).and_then(|n| self.bin(start, n, outer)),
            Marker::Bin32 => self.len(4).and_then(|n| self.bin(start, n, outer)),
            Marker::FixArray(n) => self.list(usize::from(n), depth, outer),
            Marker::Array16 => self.len(2).and_then(|n| self.list(n, depth, outer)),
            Marker::Array32 => self.len(4).and_then(|n| self.list(n, depth, outer)),
            Marker::FixMap(n) => self.map(start, usize::from(n), depth, outer),
            Marker::Map16 => self.len(2).and_then(|n| self.map(start, n, depth, outer)),
            Marker::Map32 => self.len(4).and_then(|n| self.map(start, n, depth, outer)),
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

const DATUM_REF_BYTES: &[u8] = super::datum::DATUM_REF.as_bytes();

/// The bytes of the str that is exactly `value` (a walked value's span), if it is a str.
fn str_at(value: &[u8]) -> Option<&[u8]> {
    let (&marker, rest) = value.split_first()?;
    let skip = match Marker::from_u8(marker) {
        Marker::FixStr(_) => 0,
        Marker::Str8 => 1,
        Marker::Str16 => 2,
        Marker::Str32 => 4,
        _ => return None,
    };
    rest.get(skip..)
}

/// The characters of valid UTF-8: the bytes that do not continue a character.
fn chars(text: &[u8]) -> usize {
    text.iter().filter(|&&b| b & 0xc0 != 0x80).count()
}
