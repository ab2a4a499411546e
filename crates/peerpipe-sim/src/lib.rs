//! Deterministic simulation for peerpipe.
//!
//! - [`Rng`]: a small seeded generator (SplitMix64), so every run is reproducible from its seed.
//! - [`Link`]: a one-way byte link that drops, duplicates, reorders, delays, corrupts frames,
//!   injects garbage, and splits and merges byte chunks, all from its seed.
//! - [`Pair`]: two [`Endpoint`]s wired through two links, with a virtual clock that jumps to the
//!   next deadline: hours of protocol time run in milliseconds, and a failing seed replays
//!   exactly.
//! - [`Store`]: message data for sends from a source (`send_from`), any size.

#![warn(missing_docs)]

mod link;
mod pair;
mod rng;
mod store;

pub use link::{Link, LinkConfig, LinkStats};
pub use pair::{Pair, Side};
pub use rng::Rng;
pub use store::Store;

use peerpipe_core::Endpoint;

/// The endpoint type the simulations use by default: default capacities except a wider
/// window of sends in flight and receive slots, as a host driver would choose.
pub type SimEndpoint = Endpoint<128, 32, 8, 8, 223>;
