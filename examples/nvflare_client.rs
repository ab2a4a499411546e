//! A Rust peer for NVFlare's Client API: sends requests over a FilePipe and checks the replies.
//!
//! ```text
//! cargo run --release --example nvflare_client -- --mode active|passive --root DIR --name NAME --count N
//! ```
//!
//! Opens our end of the FilePipe `DIR/NAME` (NVFlare's layout; pre-create DIR), sends N
//! requests on topic `ping` whose data cycles through every payload kind NVFlare's FOBS
//! writes as plain msgpack (bytes, str, ints small, negative and large, float, bool, None,
//! list, map, nested), waits for each reply (matched by its req_id) and checks that the data
//! came back equal; then sends a request on `quit` and waits for the peer's END. The peer
//! is NVFlare's `PipeHandler` on a `FilePipe` of the other mode (see
//! `tests/nvflare/echo_peer.py`), or `nvflare_echo`. Handler parameters are NVFlare's
//! defaults (heartbeat 5 s, peer gone after 30 s).
//!
//! Prints the round-trip times and exits 0 when everything matched; otherwise exits 1 with
//! the reason.

use std::process::ExitCode;

use peerpipe_examples::cli;
use peerpipe_examples::nvflare::{client, Settings, USAGE};

fn main() -> ExitCode {
    let usage = format!("usage: nvflare_client {USAGE}");
    let settings = cli::parse_or_exit("nvflare_client", &usage, Settings::parse);
    match client(&settings, &mut |_| {}) {
        Ok(report) => {
            let mut rtts = report.rtts;
            rtts.sort();
            let pct = |p: usize| rtts.get(rtts.len().saturating_sub(1) * p / 100);
            println!(
                "nvflare_client: {} round trips matched; rtt p50 {:?} p99 {:?}; peer END {:?}; {} files refused",
                rtts.len(),
                pct(50).copied().unwrap_or_default(),
                pct(99).copied().unwrap_or_default(),
                report.end_data,
                report.rejected.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nvflare_client: {e}");
            ExitCode::FAILURE
        }
    }
}
