//! Property tests of the endpoint state machine against a reference model.
//!
//! # The model (`model_*`, `lossless_*` properties)
//! Two endpoints with small capacities (16-byte payloads, 8-byte topics, `RX`/`TX` of 3, 2 or
//! 1) are driven by a random script of commands and link events, with virtual time:
//!
//! - commands: send a request (inline, or of up to six frames from the sender's source, which
//!   the endpoint cuts into fragments), reply to a received request, END, ABORT, pause, resume, stop,
//!   restart (a crash, or a graceful stop first), `transport_lost`, the application polling
//!   its events or not;
//! - the simulator's link (`peerpipe_sim::Link`) per direction, with a delay and none of its
//!   random faults: the script sets the delay, and holds, cuts, delivers early (whole or split
//!   in two chunks), drops, duplicates, corrupts or reorders the frames in flight, or precedes
//!   them with garbage bytes;
//! - time: advancing visits every deadline and arrival in order, like `peerpipe_sim::Pair`;
//!   the driver drains transmissions and events until both run dry, as the endpoint's docs ask.
//!
//! Every frame an endpoint emits is decoded by a tap; every byte an endpoint receives is also
//! fed to a mirror of its stream decoder, and a change of `stats().accepted` tells exactly which
//! DATA item was accepted into which incarnation's receive queue. Each payload starts with a
//! unique tag naming its send record. The model keeps, per send: the sender incarnation, its
//! id, item, payload, deadline, transmissions, outcome, the receiver incarnations that accepted
//! it and those whose application got it; per incarnation: next id, slots in use, local close,
//! stop/replace, and the peer's status as told by events.
//!
//! Invariants, checked as they happen and after a final quiet period (link healed, both
//! applications polling, paused endpoints resumed, more time than any deadline):
//! 1. every send gets exactly one outcome, and after the quiet period every send of an
//!    endpoint that did not crash has one;
//! 2. `Delivered` only for an item some peer incarnation accepted (ACKs are sound);
//! 3. an accepted item reaches that incarnation's application exactly once unless it stopped
//!    or crashed first (or the sending side stopped for good while the item waited behind a
//!    gap and the receiver's silence check is off: nothing can then release it); nothing is
//!    accepted twice by one incarnation (a message in parts counts as accepted with its last
//!    fragment, and one not delivered to its sender's knowledge may have been cut);
//! 4. every delivered item was sent, field for field (kind, topic, req_id, id, payload), and
//!    came from the peer; ids of one sender session arrive strictly increasing; a message in
//!    parts arrives as parts in order from offset 0 with nothing between them, or is cut; a
//!    delivered message is never cut, and only a message in parts fails for a peer restart;
//!    every fragment carries at most `P` bytes, at its offset, with the item on the first;
//! 5. at most `max_resends + 1` DATA transmissions per fragment (1 without resends, bounded by the
//!    timeout without a limit); no DATA after its outcome was reported; floor <= seq;
//! 6. every frame emitted is valid and carries the endpoint's own session;
//! 7. `poll_timeout` is strictly after the instant just handled, right after `handle_timeout`
//!    and after each step; no instant livelocks;
//! 8. send results are exactly what the model predicts (ids in sequence, `Stopped`,
//!    `Closed(..)`, `ZeroTimeout`, `SendQueueFull` from the model's count of slots in use);
//! 9. once the application has drained its events, the peer status told by events (END,
//!    ABORT, GONE, restart) equals `peer_state()`, so sends after END/ABORT/GONE are refused;
//!    GONE at most once per peer session, `TransportLost` only if reported; after stop only
//!    send outcomes, and stop discards (and counts) the received items;
//! 10. `received_len() <= RX`; no panic on any script;
//! 11. no item waits for its resend timer while the peer has announced room for it: a
//!     receiver that refused a DATA frame for a full queue sends an ACK asking for a retry at
//!     the instant it has room again (while the peer is up), and a sender that receives one
//!     transmits DATA at that instant.
//!
//! Over a link that loses nothing (`lossless_*`: delays, reorders, duplicates, split chunks,
//! applications that stop polling for a while, crashes), every send of an endpoint that did not
//! crash is Delivered (or failed by the peer's END/ABORT), and reaches the peer's application.
//!
//! Model assumptions (limits of the protocol, not checked): at most 4 restarts per side (the
//! receiver remembers 4 replaced sessions), and an incarnation never receives a frame of a
//! peer session older than one it has met unless it met that one too (session ids are random,
//! so they carry no order: such a frame would be taken for yet another restart). The model
//! loses such a frame when it arrives.
//!
//! # Junk (`junk_*`, `garbage_*`, `no_item_*` properties)
//! Arbitrary bytes and arbitrary frames (any session, acks for unsent seqs, seq and floor near
//! `u64::MAX`, oversize and invalid topics and payloads, truncated and bit-flipped encodings),
//! fed as bytes or as decoded frames at arbitrary times: no panic, the structural invariants
//! hold, every send still resolves exactly once, no (session, seq) is accepted twice, and where
//! the peer session makes sense a normal exchange completes afterwards.
//!
//! Case counts are fixed (`PROPTEST_CASES` overrides them for a long hunt, and
//! `PROPTEST_RNG_SEED` replays a run); `PROPS_STATS=1` prints what each model script did.
//!
//! # Modules
//! - `support`: capacities, the endpoint type, case counts, the configurations drawn;
//! - `tap`: frames as the tap decodes them, tagged payloads;
//! - `model`: the reference model's records and the world that drives it; `model_observe`:
//!   its checks on every frame and event; `model_script`: the commands and link events of a
//!   script; `model_props`: the strategies and the `model_*` and `lossless_*` properties;
//! - `link`: checks that the simulator's link does what the script's link events assume;
//! - `duo`: two endpoints back to back; `junk`: the junk strategies and properties.

mod duo;
mod junk;
mod link;
mod model;
mod model_observe;
mod model_props;
mod model_script;
mod support;
mod tap;
