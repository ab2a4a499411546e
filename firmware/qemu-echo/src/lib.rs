//! The demo application of `peerpipe-embedded` and the drivers and clocks it needs
//! (`systick` on Cortex-M, `rv` on RISC-V; [`stack`] measures stack use), kept free of any runtime so that the same code
//! runs on both (the binaries in `src/bin/` hold the entry points and interrupt handlers).
//!
//! What the application does (see [`App`]):
//! - a request with topic `stats` is answered with the counters (see [`Stats`]);
//! - a request `end` (`abort`) is answered with `ok`, then the firmware sends END (ABORT) with
//!   the data `fw-end` (`fw-abort`);
//! - any other request is answered with the same topic and the payload reversed;
//! - END and ABORT from the peer are counted. A conversation closed by END or ABORT, either
//!   way, cannot carry messages any more, so the firmware then starts a new endpoint with a new
//!   session (once its last sends are settled, at most [`LINGER_MS`] later): the peer sees
//!   `PeerRestarted` and a new conversation can begin. GONE is counted; the endpoint stays (a
//!   peer that comes back reopens the conversation).

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod nrf51;
pub mod ns16550;
pub mod pl011;
pub mod ring;

/// The Cortex-M clock shared by both binaries: SysTick at 1 kHz. Each binary's `SysTick`
/// exception handler calls [`systick::tick`].
#[cfg(target_arch = "arm")]
pub mod systick {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::syst::SystClkSource;

    /// The core clock QEMU gives the board's SysTick (CLKSOURCE = processor clock): 12 MHz on
    /// the lm3s6965evb, 16 MHz on the micro:bit.
    #[cfg(not(board = "microbit"))]
    const CORE_HZ: u32 = 12_000_000;
    #[cfg(board = "microbit")]
    const CORE_HZ: u32 = 16_000_000;

    static TICKS: AtomicU32 = AtomicU32::new(0);

    /// Takes the core peripherals and starts SysTick interrupting every millisecond. Called
    /// once, at boot; a second call (the peripherals already taken) halts.
    pub fn start() {
        let Some(cortex_m::Peripherals { SYST: mut syst, .. }) = cortex_m::Peripherals::take()
        else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CORE_HZ / 1_000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    /// Counts one millisecond; call it from the `SysTick` exception handler only.
    pub fn tick() {
        // Only the handler writes TICKS: load + store is enough (no RMW atomics on M0).
        TICKS.store(
            TICKS.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Milliseconds since `start`, wrapping at 2^32 (turned into an `Instant` by
    /// [`WrappingMillis`](peerpipe_embedded::WrappingMillis)).
    pub fn ticks() -> u32 {
        TICKS.load(Ordering::Acquire)
    }
}

/// The RISC-V side shared by both binaries: the clock of QEMU `virt` and, with
/// `semihosting`, a panic handler that ends the QEMU run with a failure.
#[cfg(target_arch = "riscv32")]
pub mod rv {
    use peerpipe_embedded::Instant;

    /// CLINT `mtime` on QEMU `virt`, 10 MHz.
    const MTIME: usize = 0x0200_BFF8;

    /// The raw 64-bit `mtime` counter, read consistently from its two halves.
    pub fn mtime() -> u64 {
        loop {
            // SAFETY: the CLINT's mtime register on QEMU virt.
            let (hi, lo, hi2) = unsafe {
                (
                    core::ptr::read_volatile((MTIME + 4) as *const u32),
                    core::ptr::read_volatile(MTIME as *const u32),
                    core::ptr::read_volatile((MTIME + 4) as *const u32),
                )
            };
            if hi == hi2 {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }

    /// The current time.
    pub fn now() -> Instant {
        Instant::from_micros(mtime() / 10)
    }

    #[cfg(feature = "semihosting")]
    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        riscv_semihosting::debug::exit(riscv_semihosting::debug::EXIT_FAILURE);
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

/// Stack high-water mark by painting: [`paint`](stack::paint) fills the RAM below the stack
/// pointer with a pattern at boot, [`used`](stack::used) finds the deepest word overwritten
/// since. The painted window is the [`WINDOW`](stack::WINDOW) bytes below the stack top (or
/// less, down to the end of static data), so a deeper use reads as the whole window.
pub mod stack {
    /// The pattern.
    const PAINT: u32 = 0x5AA5_C33C;
    /// At most this many bytes below the stack top are painted and scanned.
    pub const WINDOW: usize = 12 * 1024;

    extern "C" {
        /// The end of static data (the runtime's linker script).
        static __sheap: u32;
        /// The initial stack pointer, the top of the stack.
        static _stack_start: u32;
    }

    fn top() -> usize {
        core::ptr::addr_of!(_stack_start) as usize
    }

    fn bottom() -> usize {
        let sheap = core::ptr::addr_of!(__sheap) as usize;
        sheap.max(top().saturating_sub(WINDOW))
    }

    fn sp() -> usize {
        #[cfg(target_arch = "arm")]
        {
            cortex_m::register::msp::read() as usize
        }
        #[cfg(target_arch = "riscv32")]
        {
            let sp: usize;
            // SAFETY: copies the stack pointer into a register; no memory access.
            unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
            sp
        }
    }

    /// Paints the window up to 64 bytes below the current stack pointer. Call it first thing
    /// in `main`.
    pub fn paint() {
        let end = sp().saturating_sub(64);
        let mut p = bottom();
        while p < end {
            // SAFETY: RAM between the end of static data and below the live stack: unused
            // (no allocator).
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// The deepest stack use since [`paint`], in bytes.
    pub fn used() -> u32 {
        let top = top();
        let mut p = bottom();
        // SAFETY: reads of RAM between the window's bottom and the stack top.
        while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        (top - p) as u32
    }
}

/// The main loop of the polled boards (micro:bit, RISC-V `virt`): waits for the host's first
/// byte (the time it took seeds the session id), then runs [`App`] over `uart`, polling it.
/// `now` is the clock, `entropy` any changing counter.
pub fn run_polled<S: Read<u8> + Write<u8>>(
    mut uart: S,
    mut now: impl FnMut() -> Instant,
    entropy: impl Fn() -> u32,
) -> ! {
    let mut spins: u32 = 0;
    let first = loop {
        if let Ok(byte) = uart.read() {
            break byte;
        }
        spins = spins.wrapping_add(1);
    };
    let seed = spins.wrapping_mul(0x9E37_79B9) ^ entropy();
    let mut app = App::new(seed | 1);
    let start = now();
    let Ok(mut pipe) = Pipe::new(uart, config(), app.session(), start) else {
        #[allow(clippy::empty_loop)]
        loop {}
    };
    pipe.feed(start, &[first]);
    loop {
        // Polled: the loop spins (a real design would sleep until the UART's or the timer's
        // interrupt, as the lm3s6965evb build does).
        let _ = app.step(&mut pipe, now());
    }
}

use embedded_hal_nb::serial::{Read, Write};
use peerpipe_embedded::peerpipe_core::Duration;
use peerpipe_embedded::{Config, Endpoint, Event, Instant, SerialDriver};

/// The pipe: default capacities (128-byte payloads, 32-byte topics, 4 + 4 slots).
pub type Pipe<S> = SerialDriver<S>;

/// How long a closed conversation may wait for its last sends before the endpoint is replaced.
pub const LINGER_MS: u64 = 3_000;

/// The endpoint's timing: heartbeats every second, the host is gone after 5 s of silence.
/// (`Config` takes `core::time::Duration`; the endpoint's own `Duration`, in microseconds,
/// is for arithmetic on its `Instant`.)
pub fn config() -> Config {
    use core::time::Duration;
    Config {
        heartbeat_interval: Duration::from_millis(1_000),
        heartbeat_timeout: Duration::from_millis(5_000),
        resend_interval: Some(Duration::from_millis(500)),
        max_resends: Some(10),
        default_request_timeout: Duration::from_millis(6_000),
    }
}

/// The counters a `stats` request returns, as little-endian `u32`s in this order.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Requests answered (`stats` included).
    pub requests: u32,
    /// END received from the peer.
    pub ends: u32,
    /// ABORT received from the peer.
    pub aborts: u32,
    /// Peer restarts seen.
    pub restarts: u32,
    /// Times the peer was declared gone.
    pub gone: u32,
    /// Endpoints started after the first (new conversations).
    pub generation: u32,
    /// Bytes received and sent on the UART.
    pub rx_bytes: u32,
    /// Bytes sent.
    pub tx_bytes: u32,
    /// Frames dropped as garbage (COBS, CRC, oversize, version, malformed).
    pub dropped: u32,
    /// Deepest stack use seen, in bytes (see [`stack::used`]).
    pub stack_used: u32,
    /// Milliseconds since boot, by the firmware's clock.
    pub uptime_ms: u32,
}

impl Stats {
    /// Number of counters.
    pub const LEN: usize = 11;

    /// The counters in wire order.
    pub fn to_bytes(&self) -> [u8; Self::LEN * 4] {
        let words = [
            self.requests,
            self.ends,
            self.aborts,
            self.restarts,
            self.gone,
            self.generation,
            self.rx_bytes,
            self.tx_bytes,
            self.dropped,
            self.stack_used,
            self.uptime_ms,
        ];
        let mut out = [0u8; Self::LEN * 4];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// The application state around one [`Pipe`].
pub struct App {
    /// The counters.
    pub stats: Stats,
    base_session: u32,
    /// Set when the conversation closed: replace the endpoint by then at the latest.
    linger_until: Option<Instant>,
}

impl App {
    /// An application whose sessions derive from `base_session` (entropy gathered at boot).
    /// The stack use it reports is [`stack::used`]: call [`stack::paint`] at boot.
    pub fn new(base_session: u32) -> Self {
        App {
            stats: Stats::default(),
            base_session,
            linger_until: None,
        }
    }

    /// The session id of the current endpoint.
    pub fn session(&self) -> u32 {
        self.base_session
            .wrapping_add(self.stats.generation.wrapping_mul(0x9E37_79B9))
    }

    /// One turn of the main loop: moves bytes, answers what came in, returns the next
    /// deadline (`None`: none; wait for input).
    pub fn step<S: Read<u8> + Write<u8>>(
        &mut self,
        pipe: &mut Pipe<S>,
        now: Instant,
    ) -> Option<Instant> {
        self.stats.uptime_ms = now.as_millis() as u32;
        pipe.poll(now);
        // Outcomes are not needed: settled sends free their slots.
        while pipe.endpoint_mut().poll_outcome().is_some() {}
        // Take an event only when its answer (at most two sends) has room.
        while pipe.endpoint().pending_sends() + 2 <= 4 {
            let Some(event) = pipe.endpoint_mut().poll_event() else {
                break;
            };
            self.on_event(pipe, now, event);
        }
        if let Some(until) = self.linger_until {
            let settled = pipe.endpoint().pending_sends() == 0;
            if (settled || now >= until) && !pipe.tx_blocked() {
                self.stats.generation = self.stats.generation.wrapping_add(1);
                if let Ok(endpoint) = Endpoint::new(config(), self.session(), now) {
                    *pipe.endpoint_mut() = endpoint;
                }
                self.linger_until = None;
            }
        }
        let next = pipe.poll(now);
        let stats = pipe.endpoint().stats();
        self.stats.dropped = (stats.cobs_errors
            + stats.crc_errors
            + stats.oversize
            + stats.bad_version
            + stats.malformed) as u32;
        self.stats.rx_bytes = pipe.stats().rx_bytes;
        self.stats.tx_bytes = pipe.stats().tx_bytes;
        match (next, self.linger_until) {
            // While lingering, look again soon (sends settle without a deadline of ours).
            (_, Some(_)) => Some(now + Duration::from_millis(10)),
            (next, None) => next,
        }
    }

    fn close_soon(&mut self, now: Instant) {
        if self.linger_until.is_none() {
            self.linger_until = Some(now + Duration::from_millis(LINGER_MS));
        }
    }

    fn on_event<S: Read<u8> + Write<u8>>(
        &mut self,
        pipe: &mut Pipe<S>,
        now: Instant,
        event: Event,
    ) {
        match event {
            Event::Message(m) if m.is_request() => {
                self.stats.requests = self.stats.requests.wrapping_add(1);
                let ep = pipe.endpoint_mut();
                match m.topic() {
                    "stats" => {
                        self.stats.stack_used = stack::used();
                        if let Ok(reply) = m.reply_to(&self.stats.to_bytes()) {
                            ep.send(now, reply, None).ok();
                        }
                    }
                    "end" | "abort" => {
                        if let Ok(reply) = m.reply_to(b"ok") {
                            ep.send(now, reply, None).ok();
                        }
                        if m.topic() == "end" {
                            ep.notify_end(now, b"fw-end").ok();
                        } else {
                            ep.notify_abort(now, b"fw-abort").ok();
                        }
                        self.close_soon(now);
                    }
                    _ => {
                        let mut data = [0u8; 128];
                        let len = m.data().len().min(data.len());
                        if let (Some(dst), Some(src)) = (data.get_mut(..len), m.data().get(..len)) {
                            dst.copy_from_slice(src);
                            dst.reverse();
                            if let Ok(reply) = m.reply_to(dst) {
                                ep.send(now, reply, None).ok();
                            }
                        }
                    }
                }
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
}
