//! What the firmware answers (the echo firmware's application, `qemu_echo::App`, as an async
//! task over the async driver's `Handle`): see `firmware/qemu-echo/src/lib.rs` for the topics
//! (`stats`, `crc` of any length, `gen`, `bench`, `end`, `abort`, anything else reversed) and the
//! counters, which are the same, so the host drives both firmwares through the same checks.
//! The stack figure in `stats` is `qemu_echo::stack::used`, which looks at most 12 KiB below
//! the stack's top: this firmware's high-water mark is about 7.6 KB, reached at boot, in
//! [`build`].

use core::cell::Cell;
use core::convert::Infallible;

use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::Timer;
use embedded_io_async::{Read, Write};
use peerpipe_embedded::asynch::{self, Clock, EmbassyClock, Handle, State};
use peerpipe_embedded::peerpipe_core::Duration;
use peerpipe_embedded::{Endpoint, Event, Instant, Item, Message, MsgId, Part, PartKind, Source};
use qemu_echo::{config, crc32, generated, stack, Stats, Streaming, GEN_TIMEOUT_MS, LINGER_MS};

/// The application's handle: default capacities (128-byte payloads, 32-byte topics, 4 + 4
/// slots, 4 events), one executor.
pub type Pipe<'a> = Handle<'a, NoopRawMutex, EmbassyClock>;

/// The bytes of the `gen` replies, made for each fragment when the runner encodes its frame
/// (and again for a resend): every message this firmware sends with `send_from` is one.
pub struct GenSource<'a> {
    buf: [u8; 128],
    /// Payload bytes supplied, resends included.
    supplied: &'a Cell<u32>,
}

impl Source for GenSource<'_> {
    fn read(&mut self, _id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let out = self.buf.get_mut(..len)?;
        let mut v = generated(offset);
        for b in out.iter_mut() {
            *b = v;
            v = v.wrapping_add(31);
        }
        self.supplied
            .set(self.supplied.get().wrapping_add(len as u32));
        Some(out)
    }
}

/// Runs the pipe over UART halves `rx` and `tx` and answers the host, forever. `seed` (entropy
/// gathered at boot) makes each boot's session new.
pub async fn serve(rx: impl Read, tx: impl Write, seed: u32) -> Infallible {
    let clock = EmbassyClock;
    let mut app = App {
        stats: Stats::default(),
        base_session: seed | 1,
        linger_until: None,
        streaming: Streaming::default(),
    };
    let Some(state) = build(app.session(), clock.now()) else {
        return core::future::pending().await;
    };
    let (mut runner, pipe) = asynch::new(state, &clock);
    let supplied = Cell::new(0);
    let mut source = GenSource {
        buf: [0; 128],
        supplied: &supplied,
    };
    let answer = async {
        loop {
            app.turn(pipe, &supplied).await;
        }
    };
    join(runner.run(rx, tx, &mut source), answer).await.0
}

/// The pipe's state (the endpoint, the waiting sends, the event channel), built once in a
/// static by a function of its own: its temporaries (an endpoint, the state) are in that
/// function's frame while it runs, not in the frame of the task's `poll`, which every
/// wake-up enters. `None` if called twice.
#[inline(never)]
fn build(session: u32, now: Instant) -> Option<&'static State<NoopRawMutex>> {
    let endpoint = Endpoint::new(config(), session, now).ok()?;
    let state = cortex_m::singleton!(: State<NoopRawMutex> = State::new(endpoint))?;
    Some(state)
}

/// Replaces the pipe's endpoint by a new one in session `session`, in a function of its own
/// (its temporaries, the new endpoint and the old, off the task's `poll` frame).
#[inline(never)]
fn restart(pipe: Pipe<'_>, session: u32, now: Instant) {
    if let Ok(endpoint) = Endpoint::new(config(), session, now) {
        pipe.replace_endpoint(endpoint);
    }
}

/// The application's state.
struct App {
    stats: Stats,
    base_session: u32,
    /// Set when the conversation closed: replace the endpoint by then at the latest.
    linger_until: Option<Instant>,
    /// The request arriving in parts, if any.
    streaming: Streaming,
}

impl App {
    fn session(&self) -> u32 {
        self.base_session
            .wrapping_add(self.stats.generation.wrapping_mul(0x9E37_79B9))
    }

    /// Takes one event (once its answer, at most two sends, has room) and answers it; once
    /// the conversation closed, starts a new endpoint when its last sends are settled (at
    /// most [`LINGER_MS`] later), looking every 10 ms.
    async fn turn(&mut self, pipe: Pipe<'_>, supplied: &Cell<u32>) {
        let next = async {
            pipe.room(2).await;
            pipe.receive().await
        };
        let event = if self.linger_until.is_some() {
            match select(next, Timer::after_millis(10)).await {
                Either::First(event) => Some(event),
                Either::Second(()) => None,
            }
        } else {
            Some(next.await)
        };
        let now = EmbassyClock.now();
        self.stats.uptime_ms = now.as_millis() as u32;
        self.stats.gen_bytes = supplied.get();
        if let Some(event) = event {
            self.on_event(pipe, now, event);
        }
        if let Some(until) = self.linger_until {
            if pipe.pending_sends() == 0 || now >= until {
                self.stats.generation = self.stats.generation.wrapping_add(1);
                restart(pipe, self.session(), now);
                self.streaming.clear();
                self.linger_until = None;
            }
        }
    }

    fn close_soon(&mut self, now: Instant) {
        if self.linger_until.is_none() {
            self.linger_until = Some(now + Duration::from_millis(LINGER_MS));
        }
    }

    fn on_event(&mut self, pipe: Pipe<'_>, now: Instant, event: Event) {
        match event {
            Event::Message(m) if m.is_request() => self.on_request(pipe, now, &m),
            Event::Part(part) => self.on_part(pipe, now, &part),
            Event::Cut { id, .. } => {
                self.stats.cuts = self.stats.cuts.wrapping_add(1);
                self.streaming.cut(id);
            }
            Event::End(_) => {
                self.stats.ends = self.stats.ends.wrapping_add(1);
                self.close_soon(now);
            }
            Event::Abort(_) => {
                self.stats.aborts = self.stats.aborts.wrapping_add(1);
                self.close_soon(now);
            }
            Event::Gone(_) => self.stats.gone = self.stats.gone.wrapping_add(1),
            Event::PeerRestarted => self.stats.restarts = self.stats.restarts.wrapping_add(1),
            _ => {}
        }
    }

    fn on_request(&mut self, pipe: Pipe<'_>, now: Instant, m: &Message) {
        self.stats.requests = self.stats.requests.wrapping_add(1);
        match m.topic() {
            "crc" => reply(pipe, m, &crc32(0, m.data()).to_le_bytes()),
            "bench" => reply(pipe, m, m.data()),
            "gen" => match <[u8; 4]>::try_from(m.data()).map(u32::from_le_bytes) {
                Ok(len) => {
                    let item = Item::Reply {
                        topic: "gen",
                        req_id: m.id().0,
                    };
                    let timeout = Some(Duration::from_millis(GEN_TIMEOUT_MS));
                    pipe.send_from(item, u64::from(len), timeout).ok();
                }
                Err(_) => reply(pipe, m, b"bad-length"),
            },
            "stats" => {
                self.stats.stack_used = stack::used();
                let driver = pipe.stats();
                self.stats.rx_bytes = driver.rx_bytes;
                self.stats.tx_bytes = driver.tx_bytes;
                self.stats.dropped = pipe.with_endpoint(|ep| {
                    let s = ep.stats();
                    // The core's counters are `u32` on this 32-bit target.
                    s.cobs_errors + s.crc_errors + s.oversize + s.bad_version + s.malformed
                });
                reply(pipe, m, &self.stats.to_bytes());
            }
            "end" | "abort" => {
                reply(pipe, m, b"ok");
                if m.topic() == "end" {
                    pipe.notify_end(b"fw-end").ok();
                } else {
                    pipe.notify_abort(b"fw-abort").ok();
                }
                self.close_soon(now);
            }
            _ => {
                let mut data = [0u8; 128];
                let len = m.data().len().min(data.len());
                if let (Some(dst), Some(src)) = (data.get_mut(..len), m.data().get(..len)) {
                    dst.copy_from_slice(src);
                    dst.reverse();
                    reply(pipe, m, dst);
                }
            }
        }
    }

    /// One part of a message longer than a frame: a `crc` request goes into the running CRC,
    /// answered on its last part; any other request is answered `too-long` then; END and
    /// ABORT in parts close the conversation with their last part.
    fn on_part(&mut self, pipe: Pipe<'_>, now: Instant, part: &Part) {
        self.stats.part_bytes = self.stats.part_bytes.wrapping_add(part.data().len() as u32);
        let Some(answer) = self.streaming.follow(part) else {
            return;
        };
        match part.kind() {
            PartKind::Request => {
                self.stats.requests = self.stats.requests.wrapping_add(1);
                if let Ok(reply) = Message::reply(part.topic(), answer.data(), part.id()) {
                    pipe.send(reply, None).ok();
                }
            }
            PartKind::End => {
                self.stats.ends = self.stats.ends.wrapping_add(1);
                self.close_soon(now);
            }
            PartKind::Abort => {
                self.stats.aborts = self.stats.aborts.wrapping_add(1);
                self.close_soon(now);
            }
            PartKind::Reply { .. } => {}
        }
    }
}

/// Answers request `m` with `data` (room for it was waited for before the event was taken).
fn reply(pipe: Pipe<'_>, m: &Message, data: &[u8]) {
    if let Ok(answer) = m.reply_to(data) {
        pipe.send(answer, None).ok();
    }
}
