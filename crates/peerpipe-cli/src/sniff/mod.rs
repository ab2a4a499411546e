//! `peerpipe sniff`: a raw byte stream in, one row per frame out, with CRC errors, frames
//! that are invalid in other ways and runs of garbage as their own rows; and the recording
//! format that `bridge --record` writes.
//!
//! The stream is cut at each `0x00` delimiter, as a receiver does. A run between two
//! delimiters that is not a valid frame is looked at more closely than a receiver would:
//! when a valid frame ends the run (noise arrived just before a frame, with no delimiter in
//! between), the noise and the frame get a row each; when the COBS layer is sound but the
//! CRC is not, the row shows what the frame claims to be.

use std::io::{self, Read};
use std::time::Instant;

use peerpipe_core::wire::{crc32c, Body, Frag, Frame, Heartbeat, Item, WireError, CRC_LEN};

use crate::out::Out;

mod print;

pub use print::{Printer, Row};

/// The first bytes of a recording made by `bridge --record`.
pub const RECORD_MAGIC: &[u8; 8] = b"PPREC01\n";

/// Bytes of a record's header: time (u64 LE, µs), direction (u8), length (u32 LE).
pub const RECORD_HEADER: usize = 13;

/// The longest run looked at for a frame hidden behind noise (a run of garbage and a frame
/// of the largest size, with room to spare); longer runs are garbage as a whole.
const MAX_RESYNC: usize = 2 * peerpipe_std::FRAME;

/// The longest run kept while waiting for a delimiter: past it, the oldest bytes are
/// reported as garbage (no frame is that long).
const MAX_RUN: usize = 4 * peerpipe_std::FRAME;

/// What a valid frame (or one with a bad CRC) says, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub session: u32,
    pub body: Info,
}

/// A frame's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    Data {
        kind: DataKind,
        seq: u64,
        floor: u64,
        id: u64,
        frag: Frag,
        req_id: Option<u64>,
        topic: Option<String>,
        payload: Vec<u8>,
    },
    Ack {
        to_session: u32,
        next: u64,
        bitmap: u32,
        room: u32,
        window: u32,
        retry: bool,
    },
    Heartbeat(Heartbeat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Request,
    Reply,
    End,
    Abort,
}

impl From<&Frame<'_>> for FrameInfo {
    fn from(f: &Frame<'_>) -> Self {
        let body = match f.body {
            Body::Data(d) => {
                let (kind, topic, req_id) = match d.item {
                    Item::Request { topic } => (DataKind::Request, Some(topic), None),
                    Item::Reply { topic, req_id } => (DataKind::Reply, Some(topic), Some(req_id)),
                    Item::End => (DataKind::End, None, None),
                    Item::Abort => (DataKind::Abort, None, None),
                };
                Info::Data {
                    kind,
                    seq: d.seq,
                    floor: d.floor,
                    id: d.id,
                    frag: d.frag,
                    req_id,
                    topic: topic.filter(|t| !t.is_empty()).map(str::to_owned),
                    payload: d.payload.to_vec(),
                }
            }
            Body::Ack(a) => Info::Ack {
                to_session: a.to_session,
                next: a.next,
                bitmap: a.bitmap,
                room: a.room,
                window: a.window,
                retry: a.retry,
            },
            Body::Heartbeat(h) => Info::Heartbeat(h),
        };
        FrameInfo {
            session: f.session,
            body,
        }
    }
}

/// What a piece of the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A valid frame.
    Frame(FrameInfo),
    /// Sound COBS, but the CRC does not match: what the frame claims to be, the CRC it
    /// carries and the one its content gives.
    CrcError {
        claimed: FrameInfo,
        found: u32,
        computed: u32,
    },
    /// The CRC matches, but the frame is not valid (unknown version or kind, bad field).
    Bad(WireError),
    /// Bytes that are no frame, and why.
    Garbage(String),
}

/// One row of the table: where the piece starts, how many bytes of the stream it covers
/// (its delimiter included) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub wire: usize,
    pub what: What,
}

/// COBS decoding (`docs/PROTOCOL.md` section 1), or `None` when the bytes are not COBS.
fn cobs_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let code = usize::from(src[i]);
        if code == 0 {
            return None;
        }
        let end = i + code;
        if end > src.len() {
            return None;
        }
        out.extend_from_slice(&src[i + 1..end]);
        i = end;
        if code < 0xFF && i < src.len() {
            out.push(0);
        }
    }
    Some(out)
}

/// Whether `src` is COBS at all, without decoding it (fast, for the search through noise).
fn cobs_shape_ok(src: &[u8]) -> bool {
    let mut i = 0;
    while i < src.len() {
        let code = usize::from(src[i]);
        if code == 0 || i + code > src.len() {
            return false;
        }
        i += code;
    }
    true
}

enum Decoded {
    Ok(FrameInfo),
    Bad(WireError),
    Crc(FrameInfo, u32, u32),
    Garbage(String),
}

/// One run of bytes between delimiters, as a single frame.
fn decode_run(run: &[u8]) -> Decoded {
    if !cobs_shape_ok(run) {
        return Decoded::Garbage(WireError::Cobs.to_string());
    }
    let Some(raw) = cobs_decode(run) else {
        return Decoded::Garbage(WireError::Cobs.to_string());
    };
    if raw.len() < CRC_LEN + 1 {
        return Decoded::Garbage("too short for a frame".into());
    }
    let (content, crc) = raw.split_at(raw.len() - CRC_LEN);
    let found = u32::from_le_bytes(crc.try_into().unwrap_or([0; 4]));
    let computed = crc32c(content);
    if found != computed {
        let mut fixed = content.to_vec();
        fixed.extend_from_slice(&computed.to_le_bytes());
        return match Frame::parse(&fixed) {
            Ok(f) => Decoded::Crc(FrameInfo::from(&f), found, computed),
            Err(_) => Decoded::Garbage("CRC mismatch; no frame inside".into()),
        };
    }
    match Frame::parse(&raw) {
        Ok(f) => Decoded::Ok(FrameInfo::from(&f)),
        Err(e) => Decoded::Bad(e),
    }
}

/// The pieces of one run (bytes between two delimiters), offsets relative to the run.
fn analyse_run(run: &[u8]) -> Vec<Piece> {
    let whole = |what| {
        vec![Piece {
            offset: 0,
            wire: run.len() + 1,
            what,
        }]
    };
    match decode_run(run) {
        Decoded::Ok(f) => whole(What::Frame(f)),
        Decoded::Bad(e) => whole(What::Bad(e)),
        other => {
            // Noise just before a frame, with no delimiter in between: find the frame.
            if run.len() <= MAX_RESYNC {
                for start in 1..run.len() {
                    if !cobs_shape_ok(&run[start..]) {
                        continue;
                    }
                    if let Decoded::Ok(f) = decode_run(&run[start..]) {
                        return vec![
                            Piece {
                                offset: 0,
                                wire: start,
                                what: What::Garbage("noise before a frame".into()),
                            },
                            Piece {
                                offset: start as u64,
                                wire: run.len() - start + 1,
                                what: What::Frame(f),
                            },
                        ];
                    }
                }
            }
            match other {
                Decoded::Crc(claimed, found, computed) => whole(What::CrcError {
                    claimed,
                    found,
                    computed,
                }),
                Decoded::Garbage(why) => whole(What::Garbage(why)),
                Decoded::Ok(_) | Decoded::Bad(_) => unreachable!("handled above"),
            }
        }
    }
}

/// Cuts one direction of a byte stream into pieces, in any chunking.
#[derive(Debug, Default)]
pub struct Sniffer {
    run: Vec<u8>,
    run_start: u64,
    pos: u64,
}

impl Sniffer {
    /// Feeds bytes; calls `emit` for each piece completed by them.
    pub fn feed(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(Piece)) {
        while let Some(z) = bytes.iter().position(|&b| b == 0) {
            self.run.extend_from_slice(&bytes[..z]);
            let run = std::mem::take(&mut self.run);
            for mut p in analyse_run_if_any(&run) {
                p.offset += self.run_start;
                emit(p);
            }
            self.pos += z as u64 + 1;
            self.run_start = self.pos;
            bytes = &bytes[z + 1..];
        }
        self.run.extend_from_slice(bytes);
        self.pos += bytes.len() as u64;
        if self.run.len() > MAX_RUN {
            let cut = self.run.len() - peerpipe_std::FRAME;
            emit(Piece {
                offset: self.run_start,
                wire: cut,
                what: What::Garbage(format!("no delimiter in {} bytes", self.run.len())),
            });
            self.run.drain(..cut);
            self.run_start += cut as u64;
        }
    }

    /// The end of the stream: bytes after the last delimiter are an incomplete frame.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Piece)) {
        if !self.run.is_empty() {
            emit(Piece {
                offset: self.run_start,
                wire: self.run.len(),
                what: What::Garbage("incomplete: no delimiter before the end".into()),
            });
            self.run.clear();
        }
    }
}

fn analyse_run_if_any(run: &[u8]) -> Vec<Piece> {
    if run.is_empty() {
        Vec::new()
    } else {
        analyse_run(run)
    }
}

/// The names of the directions of a recording: bytes from the first link of `bridge` (to
/// the second), and from the second (to the first).
pub const DIRECTIONS: [&str; 2] = ["a>b", "b>a"];

/// Where sniff reads from.
pub enum Source {
    /// A file, or stdin: a raw stream or a recording.
    Stream(Box<dyn Read>),
    /// A serial port, live.
    Serial(Box<dyn Read>),
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decodes `source` to the end, printing each row as it completes.
pub fn run(source: Source, out: Out) -> io::Result<()> {
    match source {
        Source::Serial(mut r) => {
            let printer = Printer::new(out, true, false);
            printer.header();
            let t0 = Instant::now();
            let mut s = Sniffer::default();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let time = Some(t0.elapsed().as_secs_f64());
                s.feed(&buf[..n], &mut |p| {
                    printer.row(&Row {
                        piece: &p,
                        time,
                        dir: None,
                    })
                });
            }
            let time = Some(t0.elapsed().as_secs_f64());
            s.finish(&mut |p| {
                printer.row(&Row {
                    piece: &p,
                    time,
                    dir: None,
                })
            });
            Ok(())
        }
        Source::Stream(mut r) => {
            let mut head = [0u8; RECORD_MAGIC.len()];
            let n = read_full(&mut r, &mut head)?;
            if n == head.len() && &head == RECORD_MAGIC {
                return run_recording(r, out);
            }
            let printer = Printer::new(out, false, false);
            printer.header();
            let mut s = Sniffer::default();
            let mut emit = |p: Piece| {
                printer.row(&Row {
                    piece: &p,
                    time: None,
                    dir: None,
                })
            };
            s.feed(&head[..n], &mut emit);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                s.feed(&buf[..n], &mut emit);
            }
            s.finish(&mut emit);
            Ok(())
        }
    }
}

/// A recording (after its magic): records of both directions, each decoded on its own.
fn run_recording(mut r: Box<dyn Read>, out: Out) -> io::Result<()> {
    let printer = Printer::new(out, true, true);
    printer.header();
    let mut sniffers = [Sniffer::default(), Sniffer::default()];
    let mut last_time = 0.0;
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; RECORD_HEADER];
        let n = read_full(&mut r, &mut head)?;
        if n == 0 {
            break;
        }
        if n < RECORD_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the recording ends inside a record header",
            ));
        }
        let micros = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let dir = usize::from(head[8]);
        let len = u32::from_le_bytes(head[9..13].try_into().unwrap_or([0; 4])) as usize;
        if dir > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a recording: direction {dir} in a record header"),
            ));
        }
        data.resize(len, 0);
        if read_full(&mut r, &mut data)? < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the recording ends inside a record",
            ));
        }
        let time = micros as f64 / 1e6;
        last_time = time;
        sniffers[dir].feed(&data, &mut |p| {
            printer.row(&Row {
                piece: &p,
                time: Some(time),
                dir: Some(DIRECTIONS[dir]),
            })
        });
    }
    for (dir, s) in sniffers.iter_mut().enumerate() {
        s.finish(&mut |p| {
            printer.row(&Row {
                piece: &p,
                time: Some(last_time),
                dir: Some(DIRECTIONS[dir]),
            })
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
