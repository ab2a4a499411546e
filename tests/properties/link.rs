//! The simulator's link as the model drives it: checks that its scripted controls do exactly
//! what the script's link events (`Op::Deliver`, `Drop`, `Duplicate`, `Corrupt`, `Reorder`,
//! `Cut`, `Latency`) assume.

use peerpipe_core::{Duration, Instant};
use peerpipe_sim::{Link, LinkStats};

use crate::model::scripted;
use crate::support::ms;

fn at(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// A link with a 10 ms delay carrying frames `[0]`, `[1]`, `[2]` sent at 0, 1 and 2 ms: they
/// arrive at 10, 11 and 12 ms.
fn three() -> Link {
    let mut link = Link::new(scripted(ms(10)), 7);
    for i in 0..3u8 {
        link.send(at(u64::from(i)), &[i]);
    }
    link
}

#[test]
fn a_scripted_link_only_delays() {
    let mut link = three();
    assert_eq!(link.in_flight_len(), 3);
    assert_eq!(link.next_arrival(), Some(at(10)));
    assert!(link.deliver(Instant::from_micros(9_999)).is_empty());
    assert_eq!(link.deliver(at(11)), [[0], [1]]);
    assert_eq!(link.deliver(at(20)), [[2]]);
    assert_eq!(link.in_flight_len(), 0);
    assert_eq!(
        link.stats(),
        LinkStats {
            frames: 3,
            bytes_delivered: 3,
            ..LinkStats::default()
        }
    );
}

#[test]
fn take_next_delivers_ahead_of_time() {
    let mut link = three();
    assert_eq!(link.take_next(), Some(vec![0]));
    assert_eq!(link.next_arrival(), Some(at(11)));
    assert_eq!(link.in_flight_len(), 2);
    assert_eq!(link.stats().bytes_delivered, 1);
}

#[test]
fn drop_duplicate_and_corrupt_by_index() {
    let mut link = three();
    assert!(link.drop_at(1));
    assert!(link.duplicate_at(1));
    assert!(link.corrupt_at(0, |b| b.push(9)));
    assert!(!link.drop_at(3) && !link.duplicate_at(3) && !link.corrupt_at(3, |_| {}));
    // The copy arrives right after its original, at the same instant.
    assert_eq!(link.deliver(at(11)), [vec![0, 9]]);
    assert_eq!(link.next_arrival(), Some(at(12)));
    assert_eq!(link.deliver(at(12)), [[2], [2]]);
    let stats = link.stats();
    assert_eq!(
        (stats.dropped, stats.duplicated, stats.corrupted),
        (1, 1, 1)
    );
}

#[test]
fn swap_exchanges_contents_not_instants() {
    let mut link = three();
    assert!(link.swap(0, 2));
    assert!(link.swap(1, 1));
    assert!(!link.swap(0, 3));
    assert_eq!(link.deliver(at(10)), [[2]]);
    assert_eq!(link.deliver(at(11)), [[1]]);
    assert_eq!(link.deliver(at(12)), [[0]]);
    assert_eq!(link.stats().reordered, 1);
}

#[test]
fn a_shorter_delay_overtakes_and_a_cut_loses_everything() {
    let mut link = Link::new(scripted(ms(20)), 7);
    link.send(at(0), &[0]);
    link.set_config(scripted(Duration::ZERO));
    link.send(at(1), &[1]);
    assert_eq!(link.deliver(at(1)), [[1]]);
    link.send(at(2), &[2]);
    link.set_cut(true);
    assert_eq!(link.in_flight_len(), 0);
    link.send(at(3), &[3]);
    link.set_cut(false);
    link.send(at(4), &[4]);
    assert_eq!(link.deliver(at(30)), [[4]]);
    assert_eq!(link.stats().dropped, 1);
}
