//! Deterministic scenarios: each behaviour of the original PipeHandler, and each improvement
//! peerpipe promises, run over the simulated links with virtual time.
//!
//! Every instant asserted here follows from the protocol (docs/PROTOCOL.md): the perfect link
//! delays each frame by exactly 1 ms, and `Pair` handles every deadline at its exact instant.
//!
//! The scenarios are grouped by subject, one module each; `support` holds the helpers they
//! share.

mod support;

mod backpressure;
mod duplicates_and_order;
mod end_abort_stop;
mod garbage;
mod large;
mod liveness;
mod resends_and_timeouts;
mod restarts;
mod slow_link;
mod validation;
