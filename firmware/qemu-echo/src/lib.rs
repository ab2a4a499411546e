//! The demo application of `peerpipe-embedded` and the drivers and clocks it needs
//! (`systick` on Cortex-M, `rv` on RISC-V; [`stack`] measures stack use), kept free of any
//! runtime so that the same code runs on both (the binaries in `src/bin/` hold the entry
//! points and interrupt handlers).
//!
//! The echo firmware runs [`run`] on every board: the UART's RX interrupt moves bytes into a
//! [`Ring`], the loop feeds them to the driver, sends by polling and sleeps (WFI)
//! until a byte, the clock's interrupt or the next deadline (see [`Board`]; the boards are
//! `systick::CortexM` and `rv::Virt`). The minimal firmware polls its UART and never sleeps.
//!
//! What the application does (see [`Responder`], which [`App`] runs over the polled driver):
//! - a request with topic `stats` is answered with the counters (see [`Stats`]);
//! - a request `crc` of any length is answered with its CRC-32 (IEEE, as zlib and
//!   `crc32fast` compute it; 4 bytes, little-endian). A long one arrives in parts, which go
//!   into a running CRC as they come: the message is never held (the micro:bit has 16 KiB of
//!   RAM);
//! - a request `gen` with a length N (`u32`, little-endian) is answered with an N-byte reply
//!   whose byte `i` is `(i * 31 + 7) & 0xFF` (see [`generated`]), sent from a [`Source`]
//!   ([`Generated`]) that makes each fragment's bytes when the driver encodes its frame;
//! - any other request in parts (too long to echo) is answered with `too-long`;
//! - a request `end` (`abort`) is answered with `ok`, then the firmware sends END (ABORT) with
//!   the data `fw-end` (`fw-abort`);
//! - a request `bench` is answered with its payload as it is (what `peerpipe bench` expects
//!   of an echoing peer);
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

pub mod answer;
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

    /// A Cortex-M board for [`run`](crate::run): SysTick is the clock (and wakes WFI every
    /// millisecond, so a deadline needs no timer of its own); `listen` unmasks the UART's RX
    /// interrupt.
    pub struct CortexM {
        millis: peerpipe_embedded::WrappingMillis,
        listen: fn(),
    }

    impl CortexM {
        /// Starts SysTick (see [`start`]); `listen` unmasks the board UART's RX interrupt.
        pub fn new(listen: fn()) -> Self {
            start();
            CortexM {
                millis: peerpipe_embedded::WrappingMillis::new(),
                listen,
            }
        }
    }

    impl crate::Board for CortexM {
        fn now(&mut self) -> peerpipe_embedded::Instant {
            self.millis.instant(ticks())
        }

        fn listen_rx(&mut self) {
            (self.listen)();
        }

        fn sleep(&mut self, rx: &crate::ring::Ring, next: Option<peerpipe_embedded::Instant>) {
            // PRIMASK set: an interrupt after the check stays pending and WFI returns at once.
            cortex_m::interrupt::free(|_| {
                let due = next.is_some_and(|d| d <= self.now());
                if rx.is_empty() && !due {
                    cortex_m::asm::wfi();
                }
            });
        }

        fn entropy(&mut self) -> u32 {
            cortex_m::peripheral::SYST::get_current() ^ ticks().rotate_left(16)
        }
    }
}

/// The RISC-V side shared by both binaries: the clock of QEMU `virt` (CLINT `mtime`), its
/// timer (`mtimecmp`) and PLIC, the [`Board`] of the echo firmware and, with
/// `semihosting`, a panic handler that ends the QEMU run with a failure.
#[cfg(target_arch = "riscv32")]
pub mod rv {
    use core::ptr::{read_volatile, write_volatile};

    use peerpipe_embedded::Instant;
    use riscv::interrupt::machine::Interrupt;

    /// CLINT `mtime` on QEMU `virt`, 10 MHz.
    const MTIME: usize = 0x0200_BFF8;
    /// CLINT `mtimecmp` of hart 0: the machine timer interrupt is pending while
    /// `mtime >= mtimecmp`.
    const MTIMECMP: usize = 0x0200_4000;
    /// The PLIC of QEMU `virt`.
    const PLIC: usize = 0x0C00_0000;
    /// PLIC context 0: hart 0 in M-mode.
    const PLIC_ENABLE: usize = PLIC + 0x2000;
    const PLIC_THRESHOLD: usize = PLIC + 0x20_0000;
    const PLIC_CLAIM: usize = PLIC + 0x20_0004;
    /// The PLIC source of the NS16550 at 0x1000_0000 on `virt`.
    pub const UART0_IRQ: u32 = 10;

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

    /// Sets `mtimecmp` without a spurious interrupt in between (the low half first goes to
    /// the maximum, as the privileged spec suggests for RV32).
    fn set_mtimecmp(at: u64) {
        // SAFETY: hart 0's mtimecmp on QEMU virt; writing it only moves the timer interrupt.
        unsafe {
            write_volatile(MTIMECMP as *mut u32, u32::MAX);
            write_volatile((MTIMECMP + 4) as *mut u32, (at >> 32) as u32);
            write_volatile(MTIMECMP as *mut u32, at as u32);
        }
    }

    /// Turns the machine timer interrupt off (`mtimecmp` at the maximum): call it from its
    /// handler.
    pub fn timer_off() {
        set_mtimecmp(u64::MAX);
    }

    /// Routes PLIC `source` to hart 0 in M-mode (priority 1, threshold 0) and enables the
    /// machine external and timer interrupts and interrupts globally (the timer stays off
    /// until [`Virt::sleep`](crate::Board::sleep) sets it).
    ///
    /// # Safety
    /// The handlers of both interrupts are in place, and enabling interrupts breaks no
    /// critical section of the caller.
    pub unsafe fn enable_interrupts(source: u32) {
        timer_off();
        let bit = source as usize;
        // SAFETY: the PLIC's priority, enable and threshold registers of context 0 on virt.
        unsafe {
            write_volatile((PLIC + 4 * bit) as *mut u32, 1);
            let enable = (PLIC_ENABLE + 4 * (bit / 32)) as *mut u32;
            write_volatile(enable, read_volatile(enable) | (1 << (bit % 32)));
            write_volatile(PLIC_THRESHOLD as *mut u32, 0);
            riscv::interrupt::enable_interrupt(Interrupt::MachineExternal);
            riscv::interrupt::enable_interrupt(Interrupt::MachineTimer);
            riscv::interrupt::enable();
        }
    }

    /// Claims the highest pending PLIC source of hart 0 in M-mode (0: none); hand it back with
    /// [`complete`] once served.
    pub fn claim() -> u32 {
        // SAFETY: the claim register of context 0; reading it claims a source.
        unsafe { read_volatile(PLIC_CLAIM as *const u32) }
    }

    /// Completes a claimed source: the PLIC raises it again if its line is still high.
    pub fn complete(source: u32) {
        // SAFETY: the complete register of context 0.
        unsafe { write_volatile(PLIC_CLAIM as *mut u32, source) }
    }

    /// RISC-V `virt` as a [`Board`](crate::Board): `mtime` is the clock, `mtimecmp` wakes WFI
    /// at the next deadline; `listen` unmasks the UART's RX interrupt. Call
    /// [`enable_interrupts`] first.
    pub struct Virt {
        /// Unmasks the UART's RX interrupt.
        pub listen: fn(),
    }

    impl crate::Board for Virt {
        fn now(&mut self) -> Instant {
            now()
        }

        fn listen_rx(&mut self) {
            (self.listen)();
        }

        fn sleep(&mut self, rx: &crate::ring::Ring, next: Option<Instant>) {
            // mstatus.MIE clear: an interrupt after the check stays pending, WFI returns at
            // once (it waits on mip & mie, whatever MIE says) and the handler runs when MIE is
            // set again. A deadline already past makes the timer pending at once.
            riscv::interrupt::free(|| {
                if rx.is_empty() {
                    set_mtimecmp(next.map_or(u64::MAX, |d| d.as_micros().saturating_mul(10)));
                    riscv::asm::wfi();
                }
            });
        }

        fn entropy(&mut self) -> u32 {
            mtime() as u32
        }
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

/// What [`run`] needs from a board besides the UART's transmitter: its clock, its RX interrupt
/// and its way of sleeping. The board's RX interrupt handler moves bytes into the ring `run` is
/// given, and masks the interrupt while the ring is full (the UART's FIFO then holds the bytes
/// and the sender waits: no byte is dropped).
pub trait Board {
    /// The current time.
    fn now(&mut self) -> Instant;
    /// Unmasks the RX interrupt (the handler masks it while the ring is full).
    fn listen_rx(&mut self);
    /// Sleeps (WFI) until an interrupt, unless a byte waits in `rx` or `next` is due. The check
    /// and WFI run with interrupts masked, so an interrupt between them still ends the sleep
    /// (WFI returns on a pending interrupt); its handler runs right after.
    fn sleep(&mut self, rx: &Ring, next: Option<Instant>);
    /// Any changing counter, mixed into the session id.
    fn entropy(&mut self) -> u32;
}

/// The main loop of every board: sleeps until the host's first byte (the wake-ups it took and
/// [`Board::entropy`] seed the session id), then runs [`App`] over `tx`, handing it the bytes
/// the RX interrupt put into `rx` with `feed`, and sleeps whenever nothing is left to do until
/// a byte, a clock interrupt or the next deadline.
pub fn run<T: Write<u8>>(tx: T, rx: &Ring, mut board: impl Board) -> ! {
    board.listen_rx();
    let mut waits: u32 = 0;
    while rx.is_empty() {
        board.sleep(rx, None);
        waits = waits.wrapping_add(1);
    }
    let seed = waits.wrapping_mul(0x9E37_79B9) ^ board.entropy();
    let mut app = App::new(seed | 1);
    let start = board.now();
    let Ok(mut pipe) = Pipe::new(TxOnly(tx), config(), app.session(), start) else {
        loop {
            board.sleep(rx, None);
        }
    };
    loop {
        let t = board.now();
        let mut chunk = [0u8; 64];
        let mut len = 0;
        while let Some(byte) = rx.pop() {
            if let Some(slot) = chunk.get_mut(len) {
                *slot = byte;
                len += 1;
            }
            if len == chunk.len() {
                pipe.feed(t, &chunk);
                len = 0;
            }
        }
        if let Some(rest) = chunk.get(..len) {
            pipe.feed(t, rest);
        }
        board.listen_rx();
        let next = app.step(&mut pipe, t);
        // A full transmitter is polled again at once (sending is not interrupt-driven).
        if !pipe.tx_blocked() {
            board.sleep(rx, next);
        }
    }
}

pub use answer::{Answers, Responder};
use embedded_hal_nb::serial::{Read, Write};
use peerpipe_embedded::peerpipe_core::Duration;
use peerpipe_embedded::{
    Config, Endpoint, Instant, Item, Message, MsgId, SerialDriver, Source, TxOnly,
};
use ring::Ring;

/// The pipe: default capacities (128-byte payloads, 32-byte topics, 4 + 4 slots).
pub type Pipe<S> = SerialDriver<S>;

/// How long a closed conversation may wait for its last sends before the endpoint is replaced.
pub const LINGER_MS: u64 = 3_000;

/// The longest message the firmware accepts, announced to the host: a longer send fails
/// there at once (`TooLarge`). Long ones are streamed, never held, so this is a choice, not
/// a memory limit.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// How long a `gen` reply may take, resends included (64 KiB take a few seconds over QEMU's
/// UART; a busy host makes it slower).
pub const GEN_TIMEOUT_MS: u64 = 60_000;

/// The endpoint's timing: heartbeats every second, the host is gone after 5 s of silence;
/// messages up to [`MAX_MESSAGE`]. (`Config` takes `core::time::Duration`; the endpoint's own
/// `Duration`, in microseconds, is for arithmetic on its `Instant`.)
pub fn config() -> Config {
    use core::time::Duration;
    Config {
        heartbeat_interval: Duration::from_millis(1_000),
        heartbeat_timeout: Duration::from_millis(5_000),
        resend_interval: Some(Duration::from_millis(500)),
        max_resends: Some(10),
        default_request_timeout: Duration::from_millis(6_000),
        max_message: MAX_MESSAGE,
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
    /// Payload bytes received in parts (messages longer than one frame).
    pub part_bytes: u32,
    /// Messages in parts that were cut off (`Event::Cut`).
    pub cuts: u32,
    /// Payload bytes the [`Generated`] source supplied (resends included).
    pub gen_bytes: u32,
}

impl Stats {
    /// Number of counters.
    pub const LEN: usize = 14;

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
            self.part_bytes,
            self.cuts,
            self.gen_bytes,
        ];
        let mut out = [0u8; Self::LEN * 4];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and `crc32fast` compute it) of `bytes`, continued
/// from `crc` (0 to start): `crc32(crc32(0, a), b) == crc32(0, ab)`. Bitwise: a few dozen
/// bytes of code and no table (QEMU runs it at well over UART speed).
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
    }
    !c
}

/// Byte `i` of every `gen` reply: `(i * 31 + 7) & 0xFF`.
pub fn generated(i: u64) -> u8 {
    // The low byte of i * 31 + 7 depends on the low byte of i only: no 64-bit multiply.
    (i as u32).wrapping_mul(31).wrapping_add(7) as u8
}

/// The [`Source`] of the `gen` replies: each fragment's bytes are made when the driver
/// encodes its frame (and again for a resend) into one fragment-sized buffer, never the
/// whole reply. It answers for the replies it was told of ([`add`](Self::add)) until their
/// outcome ([`forget`](Self::forget)).
pub struct Generated {
    ids: [Option<MsgId>; 4],
    buf: [u8; 128],
    /// Bytes supplied, resends included.
    pub supplied: u32,
}

impl Generated {
    /// A source that knows no reply yet.
    pub const fn new() -> Self {
        Generated {
            ids: [None; 4],
            buf: [0; 128],
            supplied: 0,
        }
    }

    /// Answers for reply `id` from now on; false when four are in flight already.
    pub fn add(&mut self, id: MsgId) -> bool {
        match self.ids.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(id);
                true
            }
            None => false,
        }
    }

    /// Reply `id` was settled: its bytes are not asked for any more.
    pub fn forget(&mut self, id: MsgId) {
        for slot in self.ids.iter_mut() {
            if *slot == Some(id) {
                *slot = None;
            }
        }
    }

    /// Forgets every reply (a new endpoint numbers its messages from 0 again).
    pub fn clear(&mut self) {
        self.ids = [None; 4];
    }
}

impl Default for Generated {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for Generated {
    fn read(&mut self, id: MsgId, offset: u64, len: usize) -> Option<&[u8]> {
        if !self.ids.contains(&Some(id)) {
            return None;
        }
        let out = self.buf.get_mut(..len)?;
        let mut v = generated(offset);
        for b in out.iter_mut() {
            *b = v;
            v = v.wrapping_add(31);
        }
        self.supplied = self.supplied.wrapping_add(len as u32);
        Some(out)
    }
}

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
    /// The stack use it reports is [`stack::used`]: call [`stack::paint`] at boot.
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
