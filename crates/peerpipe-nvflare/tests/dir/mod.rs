//! What the FilePipe tests share: a pipe with fast polling, and the directory as NVFlare's
//! side sees it.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peerpipe_nvflare::fobs::{self, Value};
use peerpipe_nvflare::FilePipeTransport;
use peerpipe_std::Mode;

use crate::common::STEP;

pub(crate) fn pipe(root: &Path, mode: Mode) -> FilePipeTransport {
    FilePipeTransport::new(root, "p", mode)
        .file_check_interval(Duration::from_millis(5))
        .heartbeat_interval(Duration::from_millis(100))
}

/// Waits for `cond` (polling: the other side is a directory).
pub(crate) fn wait_dir(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The files in `dir` whose names start with `prefix`.
pub(crate) fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Puts a file into `dir` as NVFlare's sender does: written in `t/`, renamed into place.
pub(crate) fn put(root: &Path, dir: &str, name: &str, content: &[u8]) {
    let tmp = root.join("p/t").join(name);
    fs::write(&tmp, content).unwrap();
    fs::rename(&tmp, root.join("p").join(dir).join(name)).unwrap();
}

pub(crate) fn value_file(v: &Value) -> Vec<u8> {
    fobs::to_file(&fobs::encode(v).unwrap())
}
