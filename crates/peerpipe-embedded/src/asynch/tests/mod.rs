//! Two async drivers against each other over an in-memory async pipe, in virtual time: a
//! small executor runs each runner and the test's body as tasks of their own, polls a task
//! only when its waker was called (a missing wake-up stalls the test) and, when no task can
//! move, jumps the clock to the earliest armed timer and wakes it. Deterministic; no thread,
//! no real time.

use core::convert::Infallible;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::task::{Context, Poll, Waker};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use peerpipe_core::wire::Item;
use peerpipe_core::{
    Config, Duration, Endpoint, Error, Event, FailReason, GoneReason, Instant, Message, MsgId,
    NoSource, PartKind, Source,
};

use super::{new, Clock, Handle, RequestError, State};

mod conversation;
mod executor;
mod ports;
mod pressure;
mod streaming;

use executor::*;
use ports::*;

type H<'a> = Handle<'a, NoopRawMutex, MockClock>;

fn config() -> Config {
    Config {
        heartbeat_interval: core::time::Duration::from_millis(100),
        heartbeat_timeout: core::time::Duration::from_millis(500),
        resend_interval: Some(core::time::Duration::from_millis(50)),
        // Resends until the send's timeout (a receiver that holds the sender back for long
        // must not make it give up).
        max_resends: None,
        default_request_timeout: core::time::Duration::from_millis(2_000),
        max_message: 1 << 20,
    }
}

fn endpoint(session: u32) -> Endpoint {
    Endpoint::new(config(), session, Instant::ZERO).unwrap()
}

/// Byte `i` of the streamed test messages.
fn byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// Makes the bytes of every sourced message on the fly: byte `i` is [`byte`]`(i)`.
struct Counting {
    buf: [u8; 128],
    asked: u64,
}

impl Source for Counting {
    fn read(&mut self, _: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        let out = self.buf.get_mut(..len)?;
        for (i, b) in out.iter_mut().enumerate() {
            *b = byte(offset + i as u64);
        }
        self.asked += len as u64;
        Some(out)
    }
}

/// Drivers A and B over two pipes of 64 bytes each way; B's runner reads sourced messages
/// from `source_b`. Runs `body` until it returns (the runners are dropped then).
fn pair<T>(
    source_b: &mut dyn Source,
    body: impl for<'a> AsyncFnOnce(H<'a>, H<'a>, &'a MockClock) -> T,
) -> T {
    let clock = MockClock::default();
    let (a_tx, b_rx) = pipe(64);
    let (b_tx, a_rx) = pipe(64);
    let sa: State<NoopRawMutex> = State::new(endpoint(1));
    let sb: State<NoopRawMutex> = State::new(endpoint(2));
    let (mut ra, ha) = new(&sa, &clock);
    let (mut rb, hb) = new(&sb, &clock);
    let mut none = NoSource;
    let a = pin!(ra.run(a_rx, a_tx, &mut none));
    let b = pin!(rb.run(b_rx, b_tx, source_b));
    block_on(&clock, body(ha, hb, &clock), &mut [a, b])
}

/// Answers every request in one frame with its data reversed, under the same topic.
async fn reverse_server(h: H<'_>) {
    loop {
        if let Event::Message(m) = h.receive().await {
            if m.is_request() {
                let mut data = m.data().to_vec();
                data.reverse();
                h.send(m.reply_to(&data).unwrap(), None).unwrap();
            }
        }
    }
}
