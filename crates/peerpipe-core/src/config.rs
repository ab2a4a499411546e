//! The endpoint's parameters, with the original PipeHandler's names, defaults and validation.

use crate::time::Duration;

/// Timing parameters of an [`Endpoint`](crate::Endpoint).
///
/// The defaults are NVFlare PipeHandler's: heartbeats every 5 s, the peer is gone after 30 s
/// of silence, resend every 2 s at most 5 times, and a send times out after 5 s. The
/// original's `read_interval` has no place here: the core never polls; drivers that must poll
/// a transport carry their own.
///
/// ```
/// use peerpipe_core::{Config, ConfigError, Duration};
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
    /// How often to send a heartbeat when no other frame was sent. Must not be zero.
    pub heartbeat_interval: Duration,
    /// Silence after which the peer counts as gone; [`Duration::ZERO`] turns the check off.
    /// Otherwise it must exceed `heartbeat_interval`.
    pub heartbeat_timeout: Duration,
    /// Time between transmissions of an unacknowledged message; `None` sends once. A message
    /// the peer refused for a full queue goes again sooner: as soon as the peer says it has
    /// room. Must not be zero.
    pub resend_interval: Option<Duration>,
    /// How many times a message may be resent (at its resend interval, or when the peer asks
    /// for it after a refusal); `None` means until its timeout.
    pub max_resends: Option<u32>,
    /// A send's timeout when the caller gives none. Must not be zero.
    pub default_request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(30),
            resend_interval: Some(Duration::from_secs(2)),
            max_resends: Some(5),
            default_request_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Checks the parameters as the original does, with a typed error for each mistake.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeatInterval);
        }
        if !self.heartbeat_timeout.is_zero() && self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::HeartbeatTimeoutNotAboveInterval);
        }
        if self.resend_interval.is_some_and(Duration::is_zero) {
            return Err(ConfigError::ZeroResendInterval);
        }
        if self.default_request_timeout.is_zero() {
            return Err(ConfigError::ZeroRequestTimeout);
        }
        Ok(())
    }
}

/// A [`Config`] that [`Config::validate`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `heartbeat_interval` is zero.
    ZeroHeartbeatInterval,
    /// `heartbeat_timeout` is neither zero (off) nor greater than `heartbeat_interval`.
    HeartbeatTimeoutNotAboveInterval,
    /// `resend_interval` is `Some(0)`.
    ZeroResendInterval,
    /// `default_request_timeout` is zero.
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
    }
}
