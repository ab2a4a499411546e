//! The Cortex-M clock shared by both binaries: SysTick at 1 kHz. Each binary's `SysTick`
//! exception handler calls [`tick`].

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
    let Some(cortex_m::Peripherals { SYST: mut syst, .. }) = cortex_m::Peripherals::take() else {
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
