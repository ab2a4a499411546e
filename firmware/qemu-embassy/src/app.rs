//! What the firmware answers: the echo firmware's application (`qemu_echo::Responder`, which
//! both firmwares share) as an async task over the async driver's `Handle`: see
//! `firmware/qemu-echo/src/lib.rs` for the topics (`stats`, `crc` of any length, `gen`,
//! `bench`, `end`, `abort`, anything else reversed) and the counters, so the host drives both
//! firmwares through the same checks.
//! The stack figure in `stats` is `qemu_echo::stack::used`, which looks at most 12 KiB below
//! the stack's top: this firmware's high-water mark is about 7.8 KB, reached at boot, in
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
use peerpipe_embedded::{Endpoint, Instant, Item, Message, MsgId, Source};
use qemu_echo::{config, generated, Answers, Responder, Stats};

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
    let mut app = Responder::new(seed | 1);
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
            turn(&mut app, pipe, &supplied).await;
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

/// Takes one event (once its answer, at most two sends, has room) and answers it; once
/// the conversation closed, starts a new endpoint when its last sends are settled (at most
/// [`LINGER_MS`](qemu_echo::LINGER_MS) later), looking every 10 ms.
async fn turn(app: &mut Responder, pipe: Pipe<'_>, supplied: &Cell<u32>) {
    let next = async {
        pipe.room(2).await;
        pipe.receive().await
    };
    let event = if app.lingering() {
        match select(next, Timer::after_millis(10)).await {
            Either::First(event) => Some(event),
            Either::Second(()) => None,
        }
    } else {
        Some(next.await)
    };
    let now = EmbassyClock.now();
    app.stats.uptime_ms = now.as_millis() as u32;
    if let Some(event) = event {
        app.on_event(&mut Async { pipe, supplied }, now, &event);
    }
    if app.restart_due(now, pipe.pending_sends() == 0) {
        restart(pipe, app.session(), now);
    }
}

/// The answers, through the async driver's handle.
struct Async<'a, 'p> {
    pipe: Pipe<'p>,
    supplied: &'a Cell<u32>,
}

impl Answers for Async<'_, '_> {
    fn send(&mut self, message: Message) {
        self.pipe.send(message, None).ok();
    }

    fn send_generated(&mut self, item: Item<'_>, len: u64, timeout: Duration) {
        self.pipe.send_from(item, len, Some(timeout)).ok();
    }

    fn end(&mut self, data: &[u8]) {
        self.pipe.notify_end(data).ok();
    }

    fn abort(&mut self, data: &[u8]) {
        self.pipe.notify_abort(data).ok();
    }

    fn count(&self, stats: &mut Stats) {
        let driver = self.pipe.stats();
        stats.rx_bytes = driver.rx_bytes;
        stats.tx_bytes = driver.tx_bytes;
        stats.dropped = self.pipe.with_endpoint(|ep| {
            let s = ep.stats();
            // The core's counters are `u32` on this 32-bit target.
            s.cobs_errors + s.crc_errors + s.oversize + s.bad_version + s.malformed
        });
        stats.gen_bytes = self.supplied.get();
    }
}
