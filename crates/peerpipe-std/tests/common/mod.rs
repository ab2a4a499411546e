//! Helpers shared by the integration tests: configurations, waiting for items, an echo
//! server, a conversation that exercises a pair of handlers both ways, and `Wire`, an
//! in-memory link a test can inject bytes into, add noise to, and reopen with a new handler.
//!
//! Timing: heartbeats every 100 ms. Tests that do not wait for GONE use a 5 s silence
//! timeout, so that a stall of this loaded machine never ends their conversation; tests of
//! GONE use 500 ms and allow [`MARGIN`] on top. Every wait is bounded.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use peerpipe_std::peerpipe_core::wire::{self, Body, Caps, Frame, Heartbeat};
use peerpipe_std::transport::Link;
use peerpipe_std::{Config, Item, Message, PipeHandler, Status, Transport, FRAGMENT, MAX_TOPIC};

/// Bound for anything the tests expect to happen "soon".
pub const STEP: Duration = Duration::from_secs(5);
/// Slack allowed on top of a timer (GONE after heartbeat_timeout) on this loaded machine.
pub const MARGIN: Duration = Duration::from_secs(2);
/// The silence timeout of [`gone_config`].
pub const GONE_AFTER: Duration = Duration::from_millis(500);

/// Fast timers; GONE only after 5 s of silence.
pub fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(5_000),
        resend_interval: Some(Duration::from_millis(100)),
        max_resends: None,
        default_request_timeout: Duration::from_millis(5_000),
        max_message: 0,
    }
}

/// Fast timers and GONE after [`GONE_AFTER`] of silence.
pub fn gone_config() -> Config {
    Config {
        heartbeat_timeout: GONE_AFTER,
        ..config()
    }
}

/// [`config`] with resends every 20 ms, for lines that damage frames on purpose.
pub fn quick_resend_config() -> Config {
    Config {
        resend_interval: Some(Duration::from_millis(20)),
        ..config()
    }
}

/// Two started handlers over `a` and `b`.
pub fn start_pair(
    a: impl Transport,
    b: impl Transport,
    config: Config,
) -> (PipeHandler, PipeHandler) {
    let a = PipeHandler::new(a, config).expect("config");
    let b = PipeHandler::new(b, config).expect("config");
    a.start().expect("start a");
    b.start().expect("start b");
    (a, b)
}

/// The next queued item, which must be a status change, within `within`.
pub fn next_status(h: &PipeHandler, within: Duration) -> Status {
    match h.recv_timeout(within) {
        Some(Item::Status(s)) => s,
        other => panic!("expected a status change within {within:?}, got {other:?}"),
    }
}

/// The next queued item, which must be a message, within `within`.
pub fn next_message(h: &PipeHandler, within: Duration) -> Message {
    match h.recv_timeout(within) {
        Some(Item::Message(m)) => m,
        other => panic!("expected a message within {within:?}, got {other:?}"),
    }
}

/// Serves `h` from its message callback: requests on `echo` are answered with their data;
/// every other message goes to the returned channel.
pub fn echo_server(h: &PipeHandler) -> Receiver<Message> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let me = h.clone();
    h.set_message_cb(move |m| {
        if m.topic() == "echo" && m.is_request() {
            let reply = m.reply_to(m.data().to_vec()).expect("reply");
            me.send_no_wait(reply).expect("send reply");
        } else {
            let _ = tx.send(m);
        }
    });
    rx
}

/// Payloads worth a round trip: empty, one byte, every byte value (COBS must escape the
/// zeros), and lengths around the fragment size (one frame, or several).
pub fn payloads() -> Vec<Vec<u8>> {
    let mut v = vec![
        Vec::new(),
        b"x".to_vec(),
        (0..=255u8).cycle().take(1000).collect(),
    ];
    for len in [FRAGMENT - 1, FRAGMENT, FRAGMENT + 1, 3 * FRAGMENT] {
        v.push(pattern(len, len as u64));
    }
    v
}

/// `len` bytes of a pattern that differs with `seed` and from one fragment to the next (a
/// fragment delivered twice, lost or out of place shows), zeros included.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

/// A peer's first heartbeat, from session `session`: the capabilities of a host endpoint
/// (fragments of [`FRAGMENT`] bytes, topics of [`MAX_TOPIC`], messages of any length) and room for `room` fragments. A
/// raw peer a test plays writes it first: no endpoint sends DATA before it knows its
/// peer's capabilities.
pub fn hello(session: u32, room: u32) -> Vec<u8> {
    let frame = Frame {
        session,
        body: Body::Heartbeat(Heartbeat {
            floor: 0,
            room,
            window: room.saturating_mul(FRAGMENT as u32),
            caps: Caps {
                max_payload: FRAGMENT as u32,
                max_topic: MAX_TOPIC as u32,
                max_message: 0,
            },
            ask: false,
        }),
    };
    let mut buf = vec![0u8; 64];
    let n = wire::encode(&frame, &mut buf).expect("a heartbeat fits");
    buf.truncate(n);
    buf
}

/// Request/reply and one-way messages in both directions; both handlers must be started
/// and have no message callback yet (this installs [`echo_server`] on both).
pub fn exercise(a: &PipeHandler, b: &PipeHandler) {
    let notes_at_a = echo_server(a);
    let notes_at_b = echo_server(b);
    for (name, from, notes) in [("a->b", a, &notes_at_b), ("b->a", b, &notes_at_a)] {
        for data in payloads() {
            let req = Message::request("echo", data.clone()).expect("request");
            let reply = from
                .request(req, Some(STEP), None)
                .unwrap_or_else(|e| panic!("{name}: request of {} bytes: {e}", data.len()));
            assert_eq!(reply.topic(), "echo", "{name}");
            assert!(!reply.is_request(), "{name}: a reply");
            assert_eq!(reply.data(), &data[..], "{name}");
        }
        for i in 0..10u8 {
            let note = Message::request("note", vec![i; usize::from(i) * 100]).expect("note");
            from.send_to_peer(note, Some(STEP), None)
                .unwrap_or_else(|e| panic!("{name}: note {i}: {e}"));
        }
        for i in 0..10u8 {
            let m = notes
                .recv_timeout(STEP)
                .unwrap_or_else(|_| panic!("{name}: note {i} missing"));
            assert_eq!(m.topic(), "note", "{name}");
            assert_eq!(m.data(), &vec![i; usize::from(i) * 100][..], "{name}");
        }
        assert!(notes.try_recv().is_err(), "{name}: a note arrived twice");
    }
}

/// Waits until `cond` holds, up to `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A small deterministic generator for garbage and noise.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A stream transport over anything readable and writable (e.g. a TCP stream a test wrote
/// garbage into first, or a pty master).
pub struct StreamTransport<R, W>(pub R, pub W);

impl<R: Read + Send + 'static, W: Write + Send + 'static> Transport for StreamTransport<R, W> {
    fn open(self: Box<Self>) -> io::Result<Link> {
        Link::from_stream(self.0, self.1)
    }
}

/// One end of an in-memory byte link that outlives its handlers.
///
/// [`open`](Transport::open) attaches a new handler to the end: bytes from the peer go to
/// the newest handler only (the previous one, stopped without closing, sees its stream end).
/// Bytes sent while no handler is attached are lost, as on a serial line. [`inject`] writes
/// raw bytes toward the peer; [`set_noise`] corrupts a share of what this end sends.
#[derive(Clone)]
pub struct Wire {
    to_peer: Sender<Vec<u8>>,
    reader: Arc<Mutex<Option<Sender<Vec<u8>>>>>,
    /// Chance in 1000 that a chunk this end sends is damaged.
    noise: Arc<AtomicU32>,
}

/// Two connected [`Wire`] ends.
pub fn wire_pair() -> (Wire, Wire) {
    let (a_tx, a_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (b_tx, b_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let a = Wire {
        to_peer: a_tx,
        reader: Arc::default(),
        noise: Arc::default(),
    };
    let b = Wire {
        to_peer: b_tx,
        reader: Arc::default(),
        noise: Arc::default(),
    };
    // Pumps: bytes for an end go to whichever handler is attached to it now.
    for (rx, reader) in [(b_rx, a.reader.clone()), (a_rx, b.reader.clone())] {
        std::thread::spawn(move || {
            for chunk in rx {
                if let Some(r) = reader.lock().unwrap().as_ref() {
                    let _ = r.send(chunk);
                }
            }
        });
    }
    (a, b)
}

impl Wire {
    /// Writes raw bytes toward the peer, between whole frames.
    pub fn inject(&self, bytes: &[u8]) {
        let _ = self.to_peer.send(bytes.to_vec());
    }

    /// Damages about `per_mille` in 1000 chunks this end sends from now on.
    pub fn set_noise(&self, per_mille: u32) {
        self.noise.store(per_mille, Ordering::Relaxed);
    }
}

struct WireReader {
    rx: Receiver<Vec<u8>>,
    left: Vec<u8>,
}

impl Read for WireReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left.is_empty() {
            match self.rx.recv() {
                Ok(chunk) => self.left = chunk,
                // Replaced by a newer handler: this stream ends.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.left.len());
        buf[..n].copy_from_slice(&self.left[..n]);
        self.left.drain(..n);
        Ok(n)
    }
}

struct WireWriter {
    to_peer: Sender<Vec<u8>>,
    noise: Arc<AtomicU32>,
    rng: Rng,
}

impl Write for WireWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut chunk = buf.to_vec();
        let noise = u64::from(self.noise.load(Ordering::Relaxed));
        if noise > 0 && !chunk.is_empty() && self.rng.below(1000) < noise {
            let at = self.rng.below(chunk.len() as u64) as usize;
            match self.rng.below(3) {
                // A flipped bit: the frame's CRC catches it.
                0 => chunk[at] ^= 1 << self.rng.below(8),
                // Garbage in the middle of a frame, zeros (frame ends) included.
                1 => {
                    let n = 1 + self.rng.below(40) as usize;
                    let junk = self.rng.bytes(n);
                    chunk.splice(at..at, junk);
                }
                // Bytes lost.
                _ => {
                    let end = (at + 1 + self.rng.below(20) as usize).min(chunk.len());
                    chunk.drain(at..end);
                }
            }
        }
        self.to_peer
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "wire cut"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Wire {
    fn open(self: Box<Self>) -> io::Result<Link> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Replacing the sender ends the previous handler's stream.
        *self.reader.lock().unwrap() = Some(tx);
        let seed = u64::from(self.noise.load(Ordering::Relaxed)) ^ 0x9E37_79B9_7F4A_7C15;
        Link::from_stream(
            WireReader {
                rx,
                left: Vec::new(),
            },
            WireWriter {
                to_peer: self.to_peer.clone(),
                noise: self.noise.clone(),
                rng: Rng(seed | 1),
            },
        )
    }
}

/// `closer` stops with `close_pipe`; `other` sees GONE from the transport, with its cause,
/// and refuses further sends.
pub fn close_and_expect_gone(closer: &PipeHandler, other: &PipeHandler) {
    closer.stop(true);
    match next_status(other, STEP) {
        Status::Gone {
            reason: peerpipe_std::GoneReason::TransportLost,
            cause: Some(cause),
        } => assert!(!cause.to_string().is_empty()),
        s => panic!("expected GONE with a transport cause, got {s:?}"),
    }
    assert_eq!(other.peer_state(), peerpipe_std::PeerState::Gone);
    let err = other
        .send_to_peer(Message::request("late", vec![1]).unwrap(), Some(STEP), None)
        .unwrap_err();
    assert!(
        matches!(err, peerpipe_std::Error::TransportLost(_)),
        "{err}"
    );
    other.stop(true);
}

/// A handler on TCP whose peer is a raw socket the test holds. The peer announces itself
/// with one heartbeat (its capabilities, and room for every send: without them the handler
/// sends no DATA at all), then says nothing more; `drain` reads and discards everything
/// on it (a peer that reads but never answers), else nothing reads it (a frozen peer: the
/// socket's buffers fill).
pub fn handler_with_raw_peer(config: Config, drain: bool) -> (PipeHandler, std::net::TcpStream) {
    let transport = peerpipe_std::TcpTransport::listen("127.0.0.1:0").expect("listen");
    let addr = transport.local_addr().expect("addr");
    let h = PipeHandler::new(transport, config).expect("config");
    h.start().expect("start");
    let mut peer = std::net::TcpStream::connect(addr).expect("connect");
    peer.write_all(&hello(0x5EED, 1000)).expect("hello");
    assert!(
        wait_until(STEP, || h.peer_state() == peerpipe_std::PeerState::Up),
        "the handler never saw the peer's heartbeat"
    );
    if drain {
        let mut reader = peer.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    (h, peer)
}
