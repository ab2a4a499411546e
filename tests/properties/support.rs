//! Shared by every property: the small capacities, the endpoint type, the driver's deadline
//! check, case counts, and the configurations the scripts draw.

use peerpipe_core::wire;
use peerpipe_core::{Config, Duration, Endpoint, Instant};
use proptest::prelude::*;

pub(crate) const P: usize = 16;
pub(crate) const T: usize = 8;
pub(crate) const F: usize = wire::max_encoded_len(P, T);
pub(crate) const TOPICS: [&str; 3] = ["t", "topic_1", "Z9_z9_Z9"];
pub(crate) const MAX_RESTARTS: usize = 4;
/// The longest per-send timeout the scripts give, in ms.
pub(crate) const MAX_SEND_TIMEOUT_MS: u64 = 2_000;

pub(crate) type Ep<const RX: usize, const TX: usize> = Endpoint<P, T, RX, TX, F>;

/// Handles `ep`'s deadline if it is due at `now`, and checks the next one is after `now`
/// (before anything is transmitted: a due resend or heartbeat waits for poll_transmit
/// without a timer at or before `now`).
pub(crate) fn fire_due<const RX: usize, const TX: usize>(
    ep: &mut Ep<RX, TX>,
    side: usize,
    now: Instant,
) {
    if ep.poll_timeout().is_some_and(|t| t <= now) {
        ep.handle_timeout(now);
        let next = ep.poll_timeout();
        assert!(
            next.is_none_or(|t| t > now),
            "side {side}: {next:?} after {now:?}"
        );
    }
}

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A fixed case count, so that CI time is stable (an eighth of it in an unoptimized build,
/// which runs about 25 times slower); `PROPTEST_CASES` overrides it for a long hunt
/// (`PROPTEST_RNG_SEED` fixes the seed to replay one).
pub(crate) fn proptest_config(cases: u32) -> ProptestConfig {
    let cases = if cfg!(debug_assertions) {
        cases / 8
    } else {
        cases
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Both sides' configurations: independent, except that each side's silence limit (when on)
/// spans at least two of the peer's heartbeat intervals, as a deployment would choose.
pub(crate) fn configs() -> BoxedStrategy<[Config; 2]> {
    let one = || {
        (
            20u64..400,
            prop_oneof![1 => Just(None), 4 => (2u64..8).prop_map(Some)],
            prop_oneof![1 => Just(None), 4 => (10u64..300).prop_map(Some)],
            prop_oneof![1 => Just(None), 3 => (0u32..6).prop_map(Some)],
            50u64..2_000,
        )
    };
    (one(), one())
        .prop_map(|(a, b)| {
            let slowest = a.0.max(b.0);
            [a, b].map(|(hb, silence, resend, max_resends, timeout)| Config {
                heartbeat_interval: ms(hb).into(),
                heartbeat_timeout: silence.map_or(Duration::ZERO, |k| ms(slowest * k)).into(),
                resend_interval: resend.map(|r| ms(r).into()),
                max_resends,
                default_request_timeout: ms(timeout).into(),
                max_message: 0,
            })
        })
        .boxed()
}
