//! Stack high-water mark by painting: [`paint`] fills the RAM below the stack pointer with a
//! pattern at boot, [`used`] finds the deepest word overwritten since. The painted window is
//! the [`WINDOW`] bytes below the stack top (or less, down to the end of static data), so a
//! deeper use reads as the whole window.

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
