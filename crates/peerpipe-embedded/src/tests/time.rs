//! Clocks: a closure as a `Clock`, and `WrappingMillis` across the wraps of a `u32` counter.

use super::*;

#[test]
fn a_closure_is_a_clock() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut ticks = 0u64;
    let mut clock = || {
        ticks += 1;
        Instant::from_millis(ticks)
    };
    assert!(a.poll_clock(&mut clock).is_some());
    assert!(a.stats().tx_bytes > 0, "the first heartbeat went out");
}

#[test]
fn wrapping_millis_counts_on_across_wraps() {
    let mut millis = WrappingMillis::new();
    // The counter may start anywhere.
    assert_eq!(millis.instant(1_000), Instant::from_millis(1_000));
    assert_eq!(millis.instant(1_000), Instant::from_millis(1_000));
    assert_eq!(
        millis.instant(u32::MAX),
        Instant::from_millis(u64::from(u32::MAX))
    );
    assert_eq!(millis.instant(0), Instant::from_millis(1 << 32));
    assert_eq!(millis.instant(7), Instant::from_millis((1 << 32) + 7));
    // Read once per half period over many wraps: never backwards, always the true time.
    let mut true_ms = (1u64 << 32) + 7;
    let mut last = Instant::ZERO;
    for _ in 0..20 {
        true_ms += u64::from(u32::MAX / 2) + 12_345;
        let now = millis.instant(true_ms as u32);
        assert_eq!(now, Instant::from_millis(true_ms));
        assert!(now > last);
        last = now;
    }
    assert_eq!(WrappingMillis::default(), WrappingMillis::new());
}

#[test]
fn wrapping_millis_is_a_clock_through_a_closure() {
    let (a, _b) = pair(None);
    let mut a = Driver::new(a, Config::default(), 0xA, Instant::ZERO).unwrap();
    let mut counter = u32::MAX - 2_000;
    let mut millis = WrappingMillis::new();
    let mut clock = || {
        counter = counter.wrapping_add(100);
        millis.instant(counter)
    };
    let mut last = Instant::ZERO;
    for _ in 0..40 {
        let next = a.poll_clock(&mut clock).unwrap();
        assert!(next >= last, "deadlines never jump back across the wrap");
        last = next;
    }
    assert!(last > Instant::from_millis(1 << 32));
}
