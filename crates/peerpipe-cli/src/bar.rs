//! The progress bar of `send-file` and `recv-file`: on stderr when stderr is a terminal,
//! hidden otherwise (a script or a pipe sees only the report lines).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str =
    "{prefix:>9} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12}  {eta} left";

/// Bytes of a file done so far, with their rate and the time left.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for `total` bytes, labelled `what` (`reading`, `sending`, `receiving`, ...).
    pub fn new(total: u64, what: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(ProgressBar::hidden());
        }
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(what.to_owned());
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar(pb)
    }

    /// `done` bytes of the total.
    pub fn set(&self, done: u64) {
        self.0.set_position(done);
    }

    /// A new step over the same bytes, from zero (its rate and time left start again).
    pub fn restart(&self, what: &str) {
        self.0.set_prefix(what.to_owned());
        self.0.reset();
    }

    /// A step that moves no bytes (waiting, checking): the label changes, the bar stays.
    pub fn label(&self, what: &str) {
        self.0.set_prefix(what.to_owned());
    }

    /// Removes the bar (the report line that follows takes its place).
    pub fn clear(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
