//! A stream decoder: bytes in any chunking, frames out, resynchronising on every `0x00`.

use super::parse::parse;
use super::{cobs, Frame, TopicForm, WireError};

/// Whether [`Decoder::feed`] decodes byte by byte (microcontrollers: the smallest code)
/// rather than copying each block's bytes whole (64-bit targets: the fastest).
const BYTEWISE: bool = cfg!(not(target_pointer_width = "64"));

/// Collects COBS bytes up to each `0x00` delimiter and yields the frame they hold.
///
/// `N` is the longest encoded frame accepted (see [`max_encoded_len`](super::max_encoded_len)).
/// A longer run of bytes is dropped whole as [`WireError::Oversize`]; garbage between frames
/// costs at most the frame it touches: decoding restarts after the next `0x00`.
///
/// The COBS encoding is undone as the bytes arrive: each block's bytes are copied once, whole,
/// from the input into the buffer, which then holds the decoded frame.
#[derive(Debug, Clone)]
// `repr(C)`, the counters before the buffer, within a Cortex-M0 load's reach of the start
// (see `Msg` in send.rs; 28 B of thumbv6m code).
#[repr(C)]
pub struct Decoder<const N: usize> {
    /// Decoded bytes in `buf`.
    len: usize,
    /// Encoded bytes of the frame so far; above `N`, the frame is dropped.
    raw: usize,
    /// The current block's code byte.
    code: u8,
    /// Bytes of the current block still to come (0: the next byte is a code byte).
    left: u8,
    buf: [u8; N],
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Decoder::feed`] returns: the bytes it used, and the frame it reached, if any.
type Fed<'a, T> = (usize, Option<Result<Frame<'a, T>, WireError>>);

impl<const N: usize> Decoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Decoder {
            buf: [0; N],
            len: 0,
            raw: 0,
            code: 0,
            left: 0,
        }
    }

    /// Forgets any partial frame.
    pub fn reset(&mut self) {
        // (`code` is set by a frame's first byte before it is read.)
        self.len = 0;
        self.raw = 0;
        self.left = 0;
    }

    /// Feeds bytes; returns how many were consumed and, when a delimiter was reached, the
    /// frame or why the bytes before it are not one. Call again with the rest until all
    /// bytes are consumed. Empty frames (repeated `0x00`) are skipped silently.
    pub fn feed<'a>(&'a mut self, bytes: &[u8]) -> (usize, Option<Result<Frame<'a>, WireError>>) {
        self.feed_as::<BYTEWISE, str>(bytes)
    }

    /// [`Self::feed`], the topic as its checked bytes: how the endpoint reads (see
    /// [`frame`](super::frame)).
    pub(crate) fn feed_bytes<'a>(&'a mut self, bytes: &[u8]) -> Fed<'a, [u8]> {
        self.feed_as::<BYTEWISE, [u8]>(bytes)
    }

    /// [`Self::feed`], decoding byte by byte or by runs (both tested on hosts), the topic seen
    /// as `T`.
    fn feed_as<'a, const BYTEWISE: bool, T: TopicForm + ?Sized>(
        &'a mut self,
        bytes: &[u8],
    ) -> Fed<'a, T> {
        let mut consumed = 0;
        let mut rest = bytes;
        loop {
            let Some(zero) = cobs::find_zero(rest) else {
                self.take::<BYTEWISE>(rest);
                return (consumed + rest.len(), None);
            };
            let (chunk, tail) = rest.split_at(zero);
            self.take::<BYTEWISE>(chunk);
            consumed += zero + 1;
            rest = tail.get(1..).unwrap_or(&[]);
            if self.raw == 0 {
                continue;
            }
            let (len, raw, code, left) = (self.len, self.raw, self.code, self.left);
            self.reset();
            if raw > N {
                return (consumed, Some(Err(WireError::Oversize)));
            }
            if left != 0 {
                // The last block claims bytes past the delimiter.
                return (consumed, Some(Err(WireError::Cobs)));
            }
            // The zero written after the last block (one not full) is the frame's end.
            let len = if code < 0xFF {
                len.wrapping_sub(1)
            } else {
                len
            };
            let Some(frame) = self.buf.get(..len) else {
                return (consumed, Some(Err(WireError::Oversize)));
            };
            return (consumed, Some(parse::<T>(frame)));
        }
    }

    /// Decodes a chunk of one frame's bytes (no `0x00` among them) into the buffer.
    fn take<const BYTEWISE: bool>(&mut self, chunk: &[u8]) {
        // Past `N` the frame is lost (the bytes that made it so are decoded as far as they
        // fit, for less code); counting stops there, so `raw` cannot overflow.
        if self.raw > N {
            return;
        }
        self.raw += chunk.len();
        if BYTEWISE {
            self.take_bytewise(chunk);
        } else {
            self.take_runs(chunk);
        }
    }

    /// [`Self::take`] with each block's bytes copied whole (64-bit targets).
    fn take_runs(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if self.left == 0 {
                // A code byte: a block of `code - 1` bytes follows, then a zero unless it is
                // full (or the frame's last).
                self.code = first;
                self.left = first.wrapping_sub(1);
                rest = tail;
            } else {
                let (run, tail) = rest.split_at(rest.len().min(usize::from(self.left)));
                // (It always fits, as in `put`.)
                if let Some(dst) = self.buf.get_mut(self.len..self.len + run.len()) {
                    if run.len() < 16 {
                        // Short runs byte by byte: cheaper than a call to `memcpy`.
                        for (d, b) in dst.iter_mut().zip(run) {
                            *d = *b;
                        }
                    } else {
                        dst.copy_from_slice(run);
                    }
                    self.len += run.len();
                }
                self.left -= run.len() as u8;
                rest = tail;
            }
            self.end_block();
        }
    }

    /// [`Self::take`] one byte at a time (microcontrollers: the smallest code; tested on
    /// hosts too).
    fn take_bytewise(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.left == 0 {
                self.code = b;
                self.left = b;
            } else {
                self.put(b);
            }
            self.left -= 1;
            self.end_block();
        }
    }

    /// After each byte: the zero that follows a block not full once its bytes are in (taken
    /// back if the frame ends there).
    fn end_block(&mut self) {
        if self.left == 0 && self.code < 0xFF {
            self.put(0);
        }
    }

    /// Appends one decoded byte. It always fits: each decoded byte stands for one encoded
    /// byte counted in `raw`, at most `N`.
    fn put(&mut self, byte: u8) {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = byte;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cobs, encode, Body, Caps, Data, Frag, Frame, Heartbeat, Item, WireError};
    use super::Decoder;
    use proptest::prelude::*;

    fn heartbeat(floor: u64) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 32];
        let n = encode(
            &Frame {
                session: 9,
                body: Body::Heartbeat(Heartbeat {
                    floor,
                    room: 0,
                    window: 0,
                    caps: Caps {
                        max_payload: 8,
                        max_topic: 4,
                        max_message: 0,
                    },
                    ask: false,
                }),
            },
            &mut buf,
        )
        .unwrap();
        buf[..n].to_vec()
    }

    fn drain(d: &mut Decoder<32>, mut bytes: &[u8]) -> std::vec::Vec<Result<u64, WireError>> {
        let mut out = std::vec::Vec::new();
        while !bytes.is_empty() {
            let (n, r) = d.feed(bytes);
            bytes = &bytes[n..];
            match r {
                Some(Ok(Frame {
                    body: Body::Heartbeat(Heartbeat { floor, .. }),
                    ..
                })) => out.push(Ok(floor)),
                Some(Ok(_)) => panic!("unexpected frame"),
                Some(Err(e)) => out.push(Err(e)),
                None => {}
            }
        }
        out
    }

    #[test]
    fn byte_by_byte_and_merged() {
        let mut stream = heartbeat(1);
        stream.extend(heartbeat(2));
        stream.extend(heartbeat(300));
        let mut d = Decoder::<32>::new();
        let mut got = std::vec::Vec::new();
        for b in &stream {
            got.extend(drain(&mut d, std::slice::from_ref(b)));
        }
        assert_eq!(got, [Ok(1), Ok(2), Ok(300)]);
        assert_eq!(drain(&mut d, &stream), [Ok(1), Ok(2), Ok(300)]);
    }

    #[test]
    fn resynchronises_after_garbage_and_oversize() {
        let mut d = Decoder::<32>::new();
        let mut stream = std::vec![0x55, 0x13, 0x77, 0];
        stream.extend([0xAA; 100]);
        stream.push(0);
        stream.extend([0, 0, 0]);
        stream.extend(heartbeat(4));
        let got = drain(&mut d, &stream);
        assert_eq!(got.len(), 3);
        assert!(got[0].is_err());
        assert_eq!(got[1], Err(WireError::Oversize));
        assert_eq!(got[2], Ok(4));
    }

    /// What the decoder must make of `body` (no zero in it) followed by a delimiter: the
    /// reference in-place decoding, then `Frame::parse`; oversize above `N` encoded bytes.
    /// Frames are compared by their `Debug` text (every field, the payload included).
    fn reference<const N: usize>(body: &[u8]) -> Result<std::string::String, WireError> {
        if body.len() > N {
            return Err(WireError::Oversize);
        }
        let mut bytes = body.to_vec();
        let n = cobs::decode_in_place(&mut bytes)?;
        Frame::parse(&bytes[..n]).map(|f| std::format!("{f:?}"))
    }

    fn text(frame: Result<Frame<'_>, WireError>) -> Result<std::string::String, WireError> {
        frame.map(|f| std::format!("{f:?}"))
    }

    /// The last frame (as text) a decoder makes of `stream` fed in pieces ending at `cuts`,
    /// byte by byte or by runs.
    fn decode<const N: usize, const BYTEWISE: bool>(
        stream: &[u8],
        cuts: &[usize],
    ) -> Option<Result<std::string::String, WireError>> {
        let mut decoder = Decoder::<N>::new();
        let mut got = None;
        let mut start = 0;
        for &end in cuts {
            while start < end {
                let (n, r) = decoder.feed_as::<BYTEWISE, str>(&stream[start..end]);
                if let Some(r) = r {
                    got = Some(text(r));
                }
                start += n;
            }
        }
        got
    }

    /// An END frame with `payload`, encoded, without its delimiter.
    fn end_frame(payload: &[u8]) -> std::vec::Vec<u8> {
        let frame = Frame {
            session: 7,
            body: Body::Data(Data {
                seq: 1,
                floor: 1,
                id: 1,
                item: Item::End,
                frag: Frag::Whole,
                payload,
            }),
        };
        let mut out = std::vec![0u8; 1024];
        let n = encode(&frame, &mut out).unwrap();
        out.truncate(n - 1);
        out
    }

    proptest! {
        /// Whatever the bytes and however they are cut, the stream decoder agrees with the
        /// reference decoding: valid frames (full 254-byte blocks and zeros included) come
        /// back whole, broken COBS is `Cobs`, too long is `Oversize`, a bad CRC `BadCrc`.
        #[test]
        fn agrees_with_reference(
            runs in proptest::collection::vec((0usize..300, any::<u8>()), 0..4),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3),
            cut in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            // Runs of non-zero bytes (254 and more fill whole blocks), each ended by a zero.
            let mut payload = std::vec::Vec::new();
            for (len, seed) in runs {
                payload.extend((0..len).map(|i| (i as u8).wrapping_add(seed) | 1));
                payload.push(0);
            }
            payload.truncate(800);
            let mut body = end_frame(&payload);
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            let mut stream = body.clone();
            stream.push(0);
            let mut cuts: std::vec::Vec<usize> =
                cut.iter().map(|c| c.index(stream.len())).collect();
            cuts.sort_unstable();
            cuts.push(stream.len());
            let want_small = Some(reference::<300>(&body));
            let want_large = Some(reference::<1024>(&body));
            prop_assert_eq!(&decode::<300, true>(&stream, &cuts), &want_small);
            prop_assert_eq!(&decode::<300, false>(&stream, &cuts), &want_small);
            prop_assert_eq!(&decode::<1024, true>(&stream, &cuts), &want_large);
            prop_assert_eq!(&decode::<1024, false>(&stream, &cuts), &want_large);
        }
    }
}
