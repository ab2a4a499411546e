//! The endpoint's parameters, with the original PipeHandler's names, defaults and validation.

use core::time::Duration;

use crate::time::Duration as Micros;

/// Timing parameters of an [`Endpoint`](crate::Endpoint).
///
/// The defaults are NVFlare PipeHandler's: heartbeats every 5 s, the peer is gone after 30 s
/// of silence, resend every 2 s (or, on a slow link, after the measured resend timeout) at
/// most 5 times, and a send times out after 5 s. The original's `read_interval` has no place
/// here: the core never polls; drivers that must poll a transport carry their own.
///
/// The times are `core::time::Duration`, which is `std::time::Duration` on a host: programs
/// write the one `Duration` they know. The endpoint counts whole microseconds (its own
/// [`Duration`](crate::Duration), converted once, in [`Endpoint::new`](crate::Endpoint::new)):
/// a time below one microsecond counts as zero, and what is below a microsecond is dropped.
///
/// ```
/// use core::time::Duration; // std::time::Duration on a host: the same type
/// use peerpipe_core::{Config, ConfigError};
///
/// let config = Config {
///     heartbeat_interval: Duration::from_secs(1),
///     heartbeat_timeout: Duration::from_secs(5),
///     ..Config::default()
/// };
/// assert_eq!(config.validate(), Ok(()));
///
/// let bad = Config { heartbeat_timeout: Duration::from_secs(1), ..config };
/// assert_eq!(bad.validate(), Err(ConfigError::HeartbeatTimeoutNotAboveInterval));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// How often to send a heartbeat when no other frame was sent. Must be at least 1 µs.
    pub heartbeat_interval: Duration,
    /// Silence after which the peer counts as gone; [`Duration::ZERO`] turns the check off.
    /// Otherwise it must exceed `heartbeat_interval`.
    pub heartbeat_timeout: Duration,
    /// The least time between transmissions of an unacknowledged message; `None` sends once.
    /// The endpoint measures the round-trip time and waits longer when the link is slow
    /// (RFC 6298: `srtt + max(1 ms, 4·rttvar)`, at most 60 s, never below this; see
    /// [`Endpoint::resend_timeout`](crate::Endpoint::resend_timeout)), so that what is still
    /// queued in a slow line is not sent again. A message the peer refused for a full queue
    /// goes again sooner: as soon as the peer says it has room. Must be at least 1 µs.
    pub resend_interval: Option<Duration>,
    /// How many times a message may be resent (at its resend interval, or when the peer asks
    /// for it after a refusal); `None` means until its timeout.
    pub max_resends: Option<u32>,
    /// A send's timeout when the caller gives none. Must be at least 1 µs.
    pub default_request_timeout: Duration,
    /// The longest message (payload bytes) this endpoint accepts, announced to the peer,
    /// whose sends of longer ones fail at once with
    /// [`FailReason::TooLarge`](crate::FailReason::TooLarge); 0 means no limit. A message
    /// longer than one frame arrives in [`Part`](crate::Part)s.
    pub max_message: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(30),
            resend_interval: Some(Duration::from_secs(2)),
            max_resends: Some(5),
            default_request_timeout: Duration::from_secs(5),
            max_message: 0,
        }
    }
}

impl Config {
    /// Checks the parameters as the original does, with a typed error for each mistake.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timing().map(drop)
    }

    /// The parameters in the endpoint's microseconds, checked: the one conversion.
    pub(crate) fn timing(&self) -> Result<Timing, ConfigError> {
        let t = Timing {
            heartbeat_interval: self.heartbeat_interval.into(),
            heartbeat_timeout: self.heartbeat_timeout.into(),
            resend_interval: self.resend_interval.map(Micros::from),
            max_resends: self.max_resends,
            default_request_timeout: self.default_request_timeout.into(),
        };
        if t.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeatInterval);
        }
        if !t.heartbeat_timeout.is_zero() && t.heartbeat_timeout <= t.heartbeat_interval {
            return Err(ConfigError::HeartbeatTimeoutNotAboveInterval);
        }
        if t.resend_interval.is_some_and(Micros::is_zero) {
            return Err(ConfigError::ZeroResendInterval);
        }
        if t.default_request_timeout.is_zero() {
            return Err(ConfigError::ZeroRequestTimeout);
        }
        Ok(t)
    }
}

/// A valid [`Config`] in the endpoint's own microsecond [`Duration`](crate::Duration), for
/// its `Instant` arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) heartbeat_interval: Micros,
    pub(crate) heartbeat_timeout: Micros,
    pub(crate) resend_interval: Option<Micros>,
    pub(crate) max_resends: Option<u32>,
    pub(crate) default_request_timeout: Micros,
}

impl Timing {
    /// The [`Config`] these are, with `max_message`: the one they were made from, in whole
    /// microseconds (an endpoint keeps these, not a second copy in the caller's units).
    pub(crate) fn config(&self, max_message: u64) -> Config {
        Config {
            heartbeat_interval: self.heartbeat_interval.into(),
            heartbeat_timeout: self.heartbeat_timeout.into(),
            resend_interval: self.resend_interval.map(Duration::from),
            max_resends: self.max_resends,
            default_request_timeout: self.default_request_timeout.into(),
            max_message,
        }
    }
}

/// A [`Config`] that [`Config::validate`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `heartbeat_interval` is zero (below 1 µs).
    ZeroHeartbeatInterval,
    /// `heartbeat_timeout` is neither zero (off) nor greater than `heartbeat_interval`.
    HeartbeatTimeoutNotAboveInterval,
    /// `resend_interval` is `Some(0)` (below 1 µs).
    ZeroResendInterval,
    /// `default_request_timeout` is zero (below 1 µs).
    ZeroRequestTimeout,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConfigError::ZeroHeartbeatInterval => "heartbeat_interval must be greater than zero",
            ConfigError::HeartbeatTimeoutNotAboveInterval => {
                "heartbeat_timeout must be 0 (off) or greater than heartbeat_interval"
            }
            ConfigError::ZeroResendInterval => "resend_interval must be greater than zero or None",
            ConfigError::ZeroRequestTimeout => "default_request_timeout must be greater than zero",
        })
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_and_valid() {
        let c = Config::default();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(30));
        assert_eq!(c.resend_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.max_resends, Some(5));
        assert_eq!(c.default_request_timeout, Duration::from_secs(5));
        assert_eq!(c.validate(), Ok(()));
        let t = c.timing().unwrap();
        assert_eq!(t.heartbeat_interval, Micros::from_secs(5));
        assert_eq!(t.heartbeat_timeout, Micros::from_secs(30));
        assert_eq!(t.resend_interval, Some(Micros::from_secs(2)));
        assert_eq!(t.default_request_timeout, Micros::from_secs(5));
    }

    #[test]
    fn the_endpoint_counts_whole_microseconds() {
        let c = Config {
            heartbeat_interval: Duration::from_nanos(2_999),
            heartbeat_timeout: Duration::from_nanos(3_001),
            resend_interval: Some(Duration::new(1, 999)),
            default_request_timeout: Duration::MAX,
            ..Config::default()
        };
        let t = c.timing().unwrap();
        assert_eq!(t.heartbeat_interval, Micros::from_micros(2));
        assert_eq!(t.heartbeat_timeout, Micros::from_micros(3));
        assert_eq!(t.resend_interval, Some(Micros::from_micros(1_000_000)));
        assert_eq!(t.default_request_timeout, Micros::from_micros(u64::MAX));
        // What an endpoint gives back: the same, in whole microseconds.
        let back = t.config(7);
        assert_eq!(back.heartbeat_interval, Duration::from_micros(2));
        assert_eq!(back.resend_interval, Some(Duration::from_secs(1)));
        assert_eq!(
            back.default_request_timeout,
            Duration::from_micros(u64::MAX)
        );
        assert_eq!((back.max_resends, back.max_message), (c.max_resends, 7));
        // Below a microsecond is zero; equal once counted in microseconds is not above.
        let sub = Config {
            heartbeat_interval: Duration::from_nanos(999),
            ..c
        };
        assert_eq!(sub.validate(), Err(ConfigError::ZeroHeartbeatInterval));
        let same = Config {
            heartbeat_timeout: Duration::from_nanos(2_001),
            ..c
        };
        assert_eq!(
            same.validate(),
            Err(ConfigError::HeartbeatTimeoutNotAboveInterval)
        );
    }
}
