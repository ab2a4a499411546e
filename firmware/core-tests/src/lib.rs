//! Support for the QEMU test programs in `tests/`: a semihosting exit, a HardFault handler that
//! fails the run instead of hanging it, a tiny sequential test runner and a stack high-water mark.
//!
//! A test program is a `harness = false` test (`tests/*.rs`):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use core_tests::Runner;
//! use panic_semihosting as _; // a failed assert prints its message and exits QEMU with 1
//!
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     let mut t = Runner::new("core-tests");
//!     t.run("codec round trip", codec_round_trip);
//!     t.finish() // prints "core-tests: N passed, 0 failed" and exits QEMU with 0
//! }
//! ```
//!
//! `cargo test --release --target thumbv7m-none-eabi` (or `thumbv6m-none-eabi`) builds each
//! program and runs it through `scripts/qemu-run.sh` (the runner in `.cargo/config.toml`).

#![no_std]

use core::ptr::{addr_of, read_volatile, write_volatile};

use cortex_m_semihosting::{debug, hprint, hprintln};

/// Ends the QEMU run: exit status 0 when `ok`, else 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The default handler loops forever, which would hang the run until the runner's timeout.
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    hprintln!(
        "\nHardFault at pc={:#010x} (a stack overflow into unmapped memory?)",
        frame.pc()
    );
    exit(false)
}

// -------------------------------------------------------------------------------------------------
// Stack high-water mark: cortex-m-rt places the stack at the top of RAM, growing down towards
// the end of .bss (`_stack_end`). Nothing stops it there: on the 16K micro:bit an overflow would
// silently corrupt statics. So the free stack is painted at start and checked at the end.

extern "C" {
    static _stack_start: u32; // top of RAM: the initial stack pointer
    static _stack_end: u32; // end of .bss/.uninit: the lowest address the stack may use
}

const PAINT: u32 = 0x5AC3_3CA5;

/// Bytes kept clear of this function's own frame when painting.
const PAINT_MARGIN: usize = 256;

/// Bytes at the bottom of the stack region that must still hold the paint at the end.
const GUARD: usize = 64;

fn stack_bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken, never their values.
    (
        addr_of!(_stack_end) as usize,
        addr_of!(_stack_start) as usize,
    )
}

/// Fills the unused stack with a pattern (before each test).
#[inline(never)]
fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + PAINT_MARGIN < sp {
        // SAFETY: [bottom, sp - margin) is RAM below every live stack frame and above all statics.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The most stack used since the paint, in bytes, and the stack region's size.
pub fn stack_usage() -> (usize, usize) {
    let (bottom, top) = stack_bounds();
    let mut p = bottom;
    // SAFETY: reads of RAM inside the stack region, word-aligned (cortex-m-rt asserts it).
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p, top - bottom)
}

// -------------------------------------------------------------------------------------------------

/// Prints a note about the running test on its `test NAME ... ok` line: `[note] `.
pub fn note(args: core::fmt::Arguments<'_>) {
    hprint!("[{}] ", args);
}

/// Runs test functions one after another; a failing assert panics, and panic-semihosting prints
/// the message and exits QEMU with status 1.
pub struct Runner {
    name: &'static str,
    passed: usize,
    peak: usize,
}

impl Runner {
    /// Starts a run called `name` (the prefix of the closing "N passed" line).
    pub fn new(name: &'static str) -> Self {
        paint_stack();
        hprintln!("{}: running on {}", name, board());
        Runner {
            name,
            passed: 0,
            peak: 0,
        }
    }

    /// Runs one test, printing `test NAME ... [stack N B] ok` (N: the test's peak stack use,
    /// this runner's frames included).
    pub fn run(&mut self, test: &str, f: fn()) {
        hprint!("test {} ... ", test);
        paint_stack();
        f();
        let (used, size) = stack_usage();
        self.peak = self.peak.max(used);
        assert!(
            used + GUARD <= size,
            "stack overflow: the stack reached the statics"
        );
        hprintln!("[stack {} B] ok", used);
        self.passed += 1;
    }

    /// Prints the peak stack use and the closing line, and exits with 0.
    pub fn finish(self) -> ! {
        let (_, size) = stack_usage();
        hprintln!("stack: {} of {} bytes used at most", self.peak, size);
        hprintln!("{}: {} passed, 0 failed", self.name, self.passed);
        exit(true)
    }
}

fn board() -> &'static str {
    // Set by build.rs.
    env!("CORE_TESTS_TARGET")
}
