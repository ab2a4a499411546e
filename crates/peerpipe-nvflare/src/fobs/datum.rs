//! FOBS datum sections: NVFlare writes a bytes or str value of 10 MiB or more not in the
//! msgpack body but in a section after it, and leaves a `DatumRef` map in its place:
//!
//! ```text
//! {"__fobs_type__": "nvflare.fuel.utils.fobs.datum.DatumRef",
//!  "__fobs_data__": {"data": {"datum_id": "<uuid>", "unwrap": true}},
//!  "__fobs_dc__": "nvflare.fuel.utils.fobs.decomposer.DataClassDecomposer"}
//! ```
//!
//! A section is a header like the main one (marker 101 for a str, 102 for bytes, 103 for a
//! file, a zero byte, a big-endian u64 size), the datum's 16-byte UUID, then `size - 16`
//! bytes of data. Checked against NVFlare 2.8.3's `fobs.dumpf`.

use std::collections::HashMap;

use super::{FobsError, Value, HEADER_LEN};

/// The FOBS type of a reference to a datum section.
pub(super) const DATUM_REF: &str = "nvflare.fuel.utils.fobs.datum.DatumRef";
const TEXT: u8 = 101;
const BLOB: u8 = 102;
const FILE: u8 = 103;
const UUID_LEN: usize = 16;

/// The datum sections of a file, by UUID.
pub(super) struct Datums<'a>(HashMap<[u8; UUID_LEN], (u8, &'a [u8])>);

impl<'a> Datums<'a> {
    /// Parses the sections that follow a file's body.
    pub(super) fn parse(mut rest: &'a [u8]) -> Result<Self, FobsError> {
        let mut sections = HashMap::new();
        while !rest.is_empty() {
            let (header, tail) = rest
                .split_first_chunk::<HEADER_LEN>()
                .ok_or(FobsError::Truncated)?;
            let (marker, dot) = (header[0], header[1]);
            if !matches!(marker, TEXT | BLOB | FILE) || dot != 0 {
                return Err(FobsError::BadDatum("unknown section marker"));
            }
            let mut size = [0u8; 8];
            size.copy_from_slice(&header[2..]);
            let size =
                usize::try_from(u64::from_be_bytes(size)).map_err(|_| FobsError::Truncated)?;
            if size < UUID_LEN || size > tail.len() {
                return Err(FobsError::Truncated);
            }
            let (section, after) = tail.split_at(size);
            let (uuid, data) = section.split_at(UUID_LEN);
            let mut id = [0u8; UUID_LEN];
            id.copy_from_slice(uuid);
            if sections.insert(id, (marker, data)).is_some() {
                return Err(FobsError::BadDatum("two sections with one UUID"));
            }
            rest = after;
        }
        Ok(Datums(sections))
    }

    /// The section a `DatumRef` map's entries name: whether it is text, and its data.
    pub(super) fn lookup(&self, entries: &[(Value, Value)]) -> Result<(bool, &'a [u8]), FobsError> {
        let id = match field(entries, "__fobs_data__") {
            Some(Value::Map(data)) => match field(data, "data") {
                Some(Value::Map(inner)) => match field(inner, "datum_id") {
                    Some(Value::Str(id)) => parse_uuid(id)?,
                    _ => return Err(FobsError::BadDatum("DatumRef without a datum_id")),
                },
                _ => return Err(FobsError::BadDatum("DatumRef without data")),
            },
            _ => return Err(FobsError::BadDatum("DatumRef without data")),
        };
        match self.0.get(&id) {
            Some(&(BLOB, data)) => Ok((false, data)),
            Some(&(TEXT, data)) => match std::str::from_utf8(data) {
                Ok(_) => Ok((true, data)),
                Err(_) => Err(FobsError::InvalidUtf8),
            },
            Some(_) => Err(FobsError::Unsupported {
                fobs_type: "file datum (a DatumRef to a file)".into(),
            }),
            None => Err(FobsError::BadDatum("DatumRef to a missing section")),
        }
    }
}

/// The `DatumRef` map NVFlare 2.8.3 leaves in the body for the datum `id` (a uuid string).
pub(super) fn reference(id: &str) -> Value {
    let data = Value::Map(vec![
        ("datum_id".into(), id.into()),
        ("unwrap".into(), Value::Bool(true)),
    ]);
    Value::Map(vec![
        (super::FOBS_TYPE_KEY.into(), DATUM_REF.into()),
        (
            "__fobs_data__".into(),
            Value::Map(vec![("data".into(), data)]),
        ),
        (
            "__fobs_dc__".into(),
            "nvflare.fuel.utils.fobs.decomposer.DataClassDecomposer".into(),
        ),
    ])
}

/// A section's header: its marker (text or bytes), a zero byte, its size (the UUID and
/// `len` bytes of data), then the datum's UUID.
pub(super) fn section_header(
    text: bool,
    id: [u8; UUID_LEN],
    len: u64,
) -> [u8; HEADER_LEN + UUID_LEN] {
    let mut h = [0u8; HEADER_LEN + UUID_LEN];
    h[0] = if text { TEXT } else { BLOB };
    h[2..HEADER_LEN].copy_from_slice(&(UUID_LEN as u64 + len).to_be_bytes());
    h[HEADER_LEN..].copy_from_slice(&id);
    h
}

/// The value of `key` in a map's entries.
fn field<'v>(entries: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
        .map(|(_, v)| v)
}

/// A UUID in its text form (`8-4-4-4-12` hexadecimal digits) as 16 bytes.
fn parse_uuid(text: &str) -> Result<[u8; UUID_LEN], FobsError> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    let bad = FobsError::BadDatum("datum_id is not a UUID");
    if hex.len() != 2 * UUID_LEN || text.len() != 36 {
        return Err(bad);
    }
    let mut id = [0u8; UUID_LEN];
    for (byte, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad.clone())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad.clone())?;
    }
    Ok(id)
}

/// A section's bytes, for tests: marker, UUID and data.
#[cfg(test)]
pub(super) fn section(marker: u8, id: [u8; UUID_LEN], data: &[u8]) -> Vec<u8> {
    let mut out = section_header(false, id, data.len() as u64).to_vec();
    out[0] = marker;
    out.extend_from_slice(data);
    out
}
