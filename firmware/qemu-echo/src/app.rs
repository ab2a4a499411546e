//! The echo application over the polled driver: [`App`] runs a [`Responder`] over a [`Pipe`]
//! and answers through it (`Polled`), with the [`Generated`] source of its `gen` replies.

use embedded_hal_nb::serial::{Read, Write};
use peerpipe_embedded::peerpipe_core::Duration;
use peerpipe_embedded::{Endpoint, Instant, Item, Message};

use crate::{config, Answers, Generated, Pipe, Responder, Stats};

/// The application state around one [`Pipe`]: what it answers ([`Responder`]) and the
/// source of its `gen` replies.
pub struct App {
    /// The counters, the message followed in parts, whether the conversation closed.
    pub responder: Responder,
    /// The bytes of the `gen` replies.
    source: Generated,
}

impl App {
    /// An application whose sessions derive from `base_session` (entropy gathered at boot).
    /// The stack use it reports is [`stack::used`](crate::stack::used): call
    /// [`stack::paint`](crate::stack::paint) at boot.
    pub fn new(base_session: u32) -> Self {
        App {
            responder: Responder::new(base_session),
            source: Generated::new(),
        }
    }

    /// The session id of the current endpoint.
    pub fn session(&self) -> u32 {
        self.responder.session()
    }

    /// One turn of the main loop: moves bytes, answers what came in, returns the next
    /// deadline (`None`: none; wait for input).
    pub fn step<S: Read<u8> + Write<u8>>(
        &mut self,
        pipe: &mut Pipe<S>,
        now: Instant,
    ) -> Option<Instant> {
        self.responder.stats.uptime_ms = now.as_millis() as u32;
        pipe.pump_with(now, &mut self.source);
        // Settled sends free their slots; a settled `gen` reply is not read any more.
        while let Some((id, _)) = pipe.endpoint_mut().poll_outcome() {
            self.source.forget(id);
        }
        // Take an event only when its answer (at most two sends) has room.
        while pipe.endpoint().pending_sends() + 2 <= 4 {
            let Some(event) = pipe.endpoint_mut().poll_event() else {
                break;
            };
            let mut out = Polled {
                pipe: &mut *pipe,
                source: &mut self.source,
                now,
            };
            self.responder.on_event(&mut out, now, &event);
        }
        let settled = pipe.endpoint().pending_sends() == 0;
        if !pipe.tx_blocked() && self.responder.restart_due(now, settled) {
            if let Ok(endpoint) = Endpoint::new(config(), self.session(), now) {
                *pipe.endpoint_mut() = endpoint;
            }
            // The new endpoint numbers its messages from 0 again.
            self.source.clear();
        }
        let next = pipe.poll_with(now, &mut self.source);
        match (next, self.responder.lingering()) {
            // While lingering, look again soon (sends settle without a deadline of ours).
            (_, true) => Some(now + Duration::from_millis(10)),
            (next, false) => next,
        }
    }
}

/// The answers of one turn, through the polled driver.
struct Polled<'a, S> {
    pipe: &'a mut Pipe<S>,
    source: &'a mut Generated,
    now: Instant,
}

impl<S: Read<u8> + Write<u8>> Answers for Polled<'_, S> {
    fn send(&mut self, message: Message) {
        self.pipe.endpoint_mut().send(self.now, message, None).ok();
    }

    fn send_generated(&mut self, item: Item<'_>, len: u64, timeout: Duration) {
        let ep = self.pipe.endpoint_mut();
        if let Ok(id) = ep.send_from(self.now, item, len, Some(timeout)) {
            // Room for it: at most two sends are pending here.
            self.source.add(id);
        }
    }

    fn end(&mut self, data: &[u8]) {
        self.pipe.endpoint_mut().notify_end(self.now, data).ok();
    }

    fn abort(&mut self, data: &[u8]) {
        self.pipe.endpoint_mut().notify_abort(self.now, data).ok();
    }

    fn count(&self, stats: &mut Stats) {
        let core = self.pipe.endpoint().stats();
        // The core's counters are `u32` on these 32-bit targets.
        stats.dropped =
            core.cobs_errors + core.crc_errors + core.oversize + core.bad_version + core.malformed;
        stats.rx_bytes = self.pipe.stats().rx_bytes;
        stats.tx_bytes = self.pipe.stats().tx_bytes;
        stats.gen_bytes = self.source.supplied;
    }
}
