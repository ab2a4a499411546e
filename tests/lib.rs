//! Cross-crate tests live in `tests/*.rs` next to this file.
