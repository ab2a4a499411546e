//! A core endpoint of the host's own, driven straight over the connection (for messages of
//! any size), and the bytes it sends.

use super::*;

/// The raw peer's capacities: 1 KiB inline messages (fragments go at the firmware's 128 B),
/// 8 + 8 slots.
pub(crate) const RAW_PAYLOAD: usize = 1024;
pub(crate) const RAW_TOPIC: usize = 32;
pub(crate) const RAW_FRAME: usize = wire::max_encoded_len(RAW_PAYLOAD, RAW_TOPIC);
pub(crate) type RawEndpoint = ppc::Endpoint<RAW_PAYLOAD, RAW_TOPIC, 8, 8, RAW_FRAME>;
pub(crate) type RawEvent = ppc::Event<RAW_PAYLOAD, RAW_TOPIC>;

/// The bytes of the raw peer's long messages, by id; a message is unreadable from its
/// `fail_from` on (to have it cut off half way).
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) msgs: Vec<(MsgId, Vec<u8>, Option<u64>)>,
}

impl ppc::Source for Held {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let (_, data, fail_from) = self.msgs.iter().find(|(m, _, _)| *m == id)?;
        if fail_from.is_some_and(|f| offset >= f) {
            return None;
        }
        data.get(offset as usize..)?.get(..len)
    }
}

/// A core endpoint driven straight over a TCP connection to the firmware (through the
/// proxy): what any v3 peer sends and receives, independent of the host drivers' limits.
pub(crate) struct RawPeer {
    pub(crate) ep: Box<RawEndpoint>,
    pub(crate) stream: TcpStream,
    pub(crate) start: Instant,
    pub(crate) held: Held,
    pub(crate) buf: Vec<u8>,
    /// Events other than send outcomes, in order.
    pub(crate) events: std::collections::VecDeque<RawEvent>,
    /// Send outcomes, by id, until asked for.
    pub(crate) outcomes: std::collections::HashMap<MsgId, Outcome>,
}

impl RawPeer {
    pub(crate) fn new(stream: TcpStream) -> Res<Self> {
        let start = Instant::now();
        let ep = RawEndpoint::new(config(), peerpipe_std::new_session_id(), ppc::Instant::ZERO)
            .map_err(|e| e.to_string())?;
        let mut peer = RawPeer {
            ep: Box::new(ep),
            stream,
            start,
            held: Held::default(),
            buf: vec![0; RAW_FRAME],
            events: Default::default(),
            outcomes: Default::default(),
        };
        peer.transmit()?;
        Ok(peer)
    }

    pub(crate) fn now(&self) -> ppc::Instant {
        ppc::Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    pub(crate) fn transmit(&mut self) -> Res<()> {
        let now = self.now();
        let mut out = Vec::new();
        while let Some(n) = self
            .ep
            .poll_transmit_from(now, &mut self.buf, &mut self.held)
            .map_err(|e| e.to_string())?
        {
            out.extend_from_slice(&self.buf[..n]);
        }
        if !out.is_empty() {
            self.stream.write_all(&out).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// One turn: waits up to `wait` (less when a deadline comes first) for bytes, feeds them,
    /// acts on deadlines, queues the events, transmits.
    pub(crate) fn turn(&mut self, wait: Duration) -> Res<()> {
        let now = self.now();
        let until_deadline = self
            .ep
            .poll_timeout()
            .map(|t| Duration::from_micros(t.as_micros().saturating_sub(now.as_micros())))
            .unwrap_or(wait);
        let wait = wait.min(until_deadline).max(Duration::from_micros(200));
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => return Err("the proxy closed the raw peer's connection".into()),
            Ok(n) => {
                let now = self.now();
                self.ep.handle_bytes(now, &chunk[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        let now = self.now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        while let Some(e) = self.ep.poll_event() {
            match e {
                ppc::Event::SendOutcome { id, outcome } => {
                    self.outcomes.insert(id, outcome);
                }
                other => self.events.push_back(other),
            }
        }
        self.transmit()
    }

    /// Turns until `f` takes an event (events it does not take are dropped; send outcomes are
    /// kept apart for [`outcome`](Self::outcome)), within `timeout`.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Self, RawEvent) -> Res<Option<T>>,
    ) -> Res<T> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                if let Some(t) = f(self, e)? {
                    return Ok(t);
                }
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("raw peer: no {what} within {timeout:?}"))?;
            self.turn(left.min(Duration::from_millis(50)))?;
        }
    }

    /// Sends `data` (any length) as a request on `topic`, from the peer's source.
    pub(crate) fn send_long(
        &mut self,
        topic: &str,
        data: Vec<u8>,
        fail_from: Option<u64>,
    ) -> Res<MsgId> {
        let now = self.now();
        let len = data.len() as u64;
        let id = self
            .ep
            .send_from(
                now,
                wire::Item::Request { topic },
                len,
                Some(ppc::Duration::from_secs(120)),
            )
            .map_err(|e| format!("send_from {topic} ({len} B): {e}"))?;
        self.held.msgs.push((id, data, fail_from));
        self.transmit()?;
        Ok(id)
    }

    /// Sends a short (inline) request.
    pub(crate) fn send_short(&mut self, topic: &str, data: &[u8]) -> Res<MsgId> {
        let now = self.now();
        let msg = ppc::Message::request(topic, data).map_err(|e| e.to_string())?;
        let id = self
            .ep
            .send(now, msg, Some(ppc::Duration::from_secs(20)))
            .map_err(|e| format!("send {topic}: {e}"))?;
        self.transmit()?;
        Ok(id)
    }

    /// The outcome of send `id`.
    pub(crate) fn outcome(&mut self, id: MsgId, timeout: Duration) -> Res<Outcome> {
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if let Some(outcome) = self.outcomes.remove(&id) {
                break outcome;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("raw peer: no outcome for {id:?} within {timeout:?}"))?;
            self.turn(left.min(Duration::from_millis(50)))?;
        };
        self.held.msgs.retain(|(m, _, _)| *m != id);
        Ok(outcome)
    }

    /// A one-frame reply to `id` (other events: passed over).
    pub(crate) fn reply(&mut self, id: MsgId, timeout: Duration) -> Res<Vec<u8>> {
        self.wait_for("reply", timeout, |_, e| match e {
            ppc::Event::Message(m) if m.req_id() == Some(id) => Ok(Some(m.data().to_vec())),
            ppc::Event::Part(p) if matches!(p.kind(), PartKind::Reply { req_id } if req_id == id) => {
                Err(format!("reply to {id:?} in parts: a one-frame reply was expected"))
            }
            _ => Ok(None),
        })
    }

    /// The firmware's counters.
    pub(crate) fn stats(&mut self) -> Res<FwStats> {
        let id = self.send_short("stats", b"")?;
        let raw = self.reply(id, REQUEST_TIMEOUT)?;
        parse_stats(&raw)
    }
}

/// `len` bytes that look random (a CRC over them tells any error).
pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// Byte `i` of the firmware's `gen` replies.
pub(crate) fn generated(i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7) & 0xFF) as u8
}
