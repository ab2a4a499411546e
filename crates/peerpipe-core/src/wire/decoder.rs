//! A stream decoder: bytes in any chunking, frames out, resynchronising on every `0x00`.

use super::{cobs, Frame, WireError};

/// Collects COBS bytes up to each `0x00` delimiter and yields the frame they hold.
///
/// `N` is the longest encoded frame accepted (see [`max_encoded_len`](super::max_encoded_len)).
/// A longer run of bytes is dropped whole as [`WireError::Oversize`]; garbage between frames
/// costs at most the frame it touches: decoding restarts after the next `0x00`.
#[derive(Debug, Clone)]
pub struct Decoder<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Decoder {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// Forgets any partial frame.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// Feeds bytes; returns how many were consumed and, when a delimiter was reached, the
    /// frame or why the bytes before it are not one. Call again with the rest until all
    /// bytes are consumed. Empty frames (repeated `0x00`) are skipped silently.
    pub fn feed<'a>(&'a mut self, bytes: &[u8]) -> (usize, Option<Result<Frame<'a>, WireError>>) {
        let mut consumed = 0;
        let mut rest = bytes;
        loop {
            let Some(zero) = cobs::find_zero(rest) else {
                self.append(rest);
                return (consumed + rest.len(), None);
            };
            let (chunk, tail) = rest.split_at(zero);
            self.append(chunk);
            consumed += zero + 1;
            rest = tail.get(1..).unwrap_or(&[]);
            if self.len == 0 && !self.overflow {
                continue;
            }
            let (len, overflow) = (self.len, self.overflow);
            self.reset();
            if overflow {
                return (consumed, Some(Err(WireError::Oversize)));
            }
            let Some(frame) = self.buf.get_mut(..len) else {
                return (consumed, Some(Err(WireError::Oversize)));
            };
            let result = cobs::decode_in_place(frame)
                .and_then(|n| Frame::parse(frame.get(..n).unwrap_or(&[])));
            return (consumed, Some(result));
        }
    }

    fn append(&mut self, chunk: &[u8]) {
        if self.overflow {
            return;
        }
        match self.buf.get_mut(self.len..self.len + chunk.len()) {
            Some(dst) => {
                dst.copy_from_slice(chunk);
                self.len += chunk.len();
            }
            None => self.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode, Body, Caps, Frame, Heartbeat, WireError};
    use super::Decoder;

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
}
