//! The feature sets of a package, read from its manifest: `cargo xtask test` builds every one.

use std::fs;
use std::path::Path;

/// The feature names of a package's `[features]` table, `default` excluded. A deliberately small
/// reader: keys at the start of a line inside `[features]`, up to the next table header.
pub fn crate_features(manifest: &Path) -> Vec<String> {
    let text = match fs::read_to_string(manifest) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "xtask: cannot read {}: {err}; assuming no features",
                manifest.display()
            );
            return Vec::new();
        }
    };
    parse_features(&text)
}

fn parse_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[')
            && !line.starts_with("[[")
            && line.ends_with(']')
            && !line.contains('"')
        {
            in_features = line == "[features]";
            continue;
        }
        if line.starts_with("[[") {
            in_features = false;
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let is_name = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
        if is_name && key != "default" && !features.iter().any(|f| f == key) {
            features.push(key.to_string());
        }
    }
    features
}

/// Every subset, smallest first.
pub fn powerset(items: &[String]) -> Vec<Vec<String>> {
    assert!(
        items.len() < 16,
        "too many features for a powerset: {items:?}"
    );
    let mut sets: Vec<Vec<String>> = (0u32..1 << items.len())
        .map(|mask| {
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| f.clone())
                .collect()
        })
        .collect();
    sets.sort_by_key(|s| s.len());
    sets
}

pub fn set_name(set: &[String]) -> String {
    if set.is_empty() {
        "no features".to_string()
    } else {
        set.join(",")
    }
}

pub fn feature_args(set: &[String]) -> Vec<String> {
    let mut args = vec!["--no-default-features".to_string()];
    if !set.is_empty() {
        args.push("--features".to_string());
        args.push(set.join(","));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_read_from_the_features_table() {
        let manifest = r#"
[package]
name = "x"
[features]
default = ["a"]
## doc comment = not a key
a = []
"b-c" = ["dep:defmt",
    "heapless/defmt"]
[dependencies]
d = "1"
"#;
        assert_eq!(parse_features(manifest), ["a", "b-c"]);
    }

    #[test]
    fn powerset_lists_every_subset_smallest_first() {
        let sets = powerset(&["a".into(), "b".into()]);
        assert_eq!(sets.len(), 4);
        assert!(sets[0].is_empty());
        assert_eq!(sets[3], ["a", "b"]);
        assert_eq!(powerset(&[]), [Vec::<String>::new()]);
    }
}
