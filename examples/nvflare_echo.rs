//! A Rust peer for NVFlare's Client API that echoes requests over a FilePipe.
//!
//! ```text
//! cargo run --release --example nvflare_echo -- --mode active|passive --root DIR --name NAME
//! ```
//!
//! Opens our end of the FilePipe `DIR/NAME` (NVFlare's layout; pre-create DIR) and answers
//! every request with a reply of the same topic and data. On a request on topic `quit` it
//! sends END (data `"bye"`), waits until the peer has read it, and exits 0. Exits 1 when the
//! peer ends, aborts or goes first. The peer is NVFlare's `PipeHandler` on a `FilePipe` of
//! the other mode (see `tests/nvflare/driver.py`), or `nvflare_client`.

use std::process::ExitCode;

use peerpipe_examples::cli;
use peerpipe_examples::nvflare::{echo, Settings, USAGE};

fn main() -> ExitCode {
    let usage = format!("usage: nvflare_echo {USAGE}");
    let settings = cli::parse_or_exit("nvflare_echo", &usage, Settings::parse);
    match echo(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvflare_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
