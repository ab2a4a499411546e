//! What a handler costs in memory, measured with a counting allocator: an idle handler
//! (started, connected, heartbeats exchanged) holds at most 64 KiB of heap, endpoint and
//! driver together, and returns to about that after carrying a large message.
//!
//! `cargo test -p peerpipe-std --test memory -- --nocapture` prints the figures. Heap only:
//! the I/O thread's stack is mapped by the system (2 MiB of address space, of which the
//! pages it touches are resident: a few KiB).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{config, wait_until, STEP};
use peerpipe_std::{memory_pair, Message, PeerState, PipeHandler, TcpTransport, FRAGMENT};

/// Counts the bytes allocated and not yet freed, by every thread.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this file measure the whole process: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// The most heap an idle handler (endpoint and driver) may hold.
const IDLE_LIMIT: isize = 64 * 1024;

/// Two connected, started handlers that have heard each other's heartbeats, idle.
fn idle_pair(tcp: bool) -> (PipeHandler, PipeHandler) {
    let (a, b) = if tcp {
        let server = TcpTransport::listen("127.0.0.1:0").expect("listen");
        let addr = server.local_addr().expect("addr");
        let b = PipeHandler::new(server, config()).expect("config");
        b.start().expect("start");
        let a = PipeHandler::new(TcpTransport::connect(addr).expect("connect"), config())
            .expect("config");
        a.start().expect("start");
        (a, b)
    } else {
        let (x, y) = memory_pair();
        common::start_pair(x, y, config())
    };
    assert!(wait_until(STEP, || a.peer_state() == PeerState::Up
        && b.peer_state() == PeerState::Up));
    // A few heartbeats each way, then quiet.
    std::thread::sleep(Duration::from_millis(300));
    (a, b)
}

fn measure(tcp: bool) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = if tcp { "tcp" } else { "memory" };
    // A first pair, dropped, so that what the process sets up once (thread machinery,
    // lazily built statics) is not counted as the handlers'.
    let (a, b) = idle_pair(tcp);
    a.stop(true);
    b.stop(true);
    drop((a, b));
    std::thread::sleep(Duration::from_millis(100));
    let before = live();
    let (a, b) = idle_pair(tcp);
    let idle = (live() - before) / 2;
    println!(
        "idle handler over {name}: {idle} bytes of heap ({} KiB)",
        idle / 1024
    );
    assert!(
        idle <= IDLE_LIMIT,
        "an idle handler over {name} holds {idle} bytes (limit {IDLE_LIMIT})"
    );

    // After a message of 64 fragments each way (and the application dropped it), the
    // handlers hold about what they held idle: their output buffers may have grown to
    // their bound (UNSENT_LIMIT plus a frame), nothing else.
    let _echo = common::echo_server(&b);
    let data = common::pattern(64 * FRAGMENT, 1);
    let reply = a
        .request(
            Message::request("echo", data.clone()).expect("request"),
            Some(STEP),
            None,
        )
        .expect("echo");
    assert_eq!(reply.data(), &data[..]);
    drop((reply, data));
    std::thread::sleep(Duration::from_millis(300));
    let after = (live() - before) / 2;
    println!(
        "the same after a 512 KiB echo: {after} bytes ({} KiB)",
        after / 1024
    );
    let bound = IDLE_LIMIT + (peerpipe_std::UNSENT_LIMIT + peerpipe_std::FRAME) as isize;
    assert!(
        after <= bound,
        "{after} bytes after the echo (bound {bound})"
    );
    a.stop(true);
    b.stop(true);
}

#[test]
fn an_idle_handler_over_memory_holds_at_most_64_kib() {
    measure(false);
}

#[test]
fn an_idle_handler_over_tcp_holds_at_most_64_kib() {
    measure(true);
}
