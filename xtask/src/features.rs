//! The feature sets of a package, read from its manifest: `cargo xtask test` builds every one.

use std::fs;
use std::path::Path;

/// A feature of a package and the features of the same package it turns on.
#[derive(Debug, PartialEq)]
pub struct Feature {
    pub name: String,
    pub enables: Vec<String>,
}

/// The features of a package's `[features]` table, `default` excluded. A deliberately small
/// reader: keys at the start of a line inside `[features]`, up to the next table header, each
/// with the quoted names of its value (which may span lines up to its `]`).
pub fn crate_features(manifest: &Path) -> Vec<Feature> {
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

fn parse_features(manifest: &str) -> Vec<Feature> {
    let mut in_features = false;
    // The feature whose value is still open (its `]` not yet seen), and that value so far.
    let mut open: Option<(String, String)> = None;
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if let Some((name, mut value)) = open.take() {
            value.push_str(line);
            if line.contains(']') {
                entries.push((name, value));
            } else {
                open = Some((name, value));
            }
            continue;
        }
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
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let is_name = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
        if !is_name || key == "default" || entries.iter().any(|(name, _)| name == key) {
            continue;
        }
        if value.contains(']') {
            entries.push((key.to_string(), value.to_string()));
        } else {
            open = Some((key.to_string(), value.to_string()));
        }
    }
    let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    entries
        .iter()
        .map(|(name, value)| Feature {
            name: name.clone(),
            enables: value
                .split('"')
                .skip(1)
                .step_by(2)
                .filter(|item| names.contains(item))
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

/// The features' names.
pub fn names(features: &[Feature]) -> Vec<String> {
    features.iter().map(|f| f.name.clone()).collect()
}

/// Every set of features that builds differently, smallest first: a set naming a feature but
/// not one that feature enables builds the same as the set with both, so it is left out.
pub fn feature_sets(features: &[Feature]) -> Vec<Vec<String>> {
    powerset(&names(features))
        .into_iter()
        .filter(|set| {
            features
                .iter()
                .filter(|f| set.contains(&f.name))
                .all(|f| f.enables.iter().all(|e| set.contains(e)))
        })
        .collect()
}

/// Every subset, smallest first.
fn powerset(items: &[String]) -> Vec<Vec<String>> {
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
    "a",
    "heapless/defmt"]
[dependencies]
d = "1"
"#;
        let features = parse_features(manifest);
        assert_eq!(names(&features), ["a", "b-c"]);
        assert_eq!(features[1].enables, ["a"]);
    }

    #[test]
    fn sets_with_a_feature_but_not_what_it_enables_are_left_out() {
        let features = [
            Feature {
                name: "a".into(),
                enables: vec![],
            },
            Feature {
                name: "b".into(),
                enables: vec!["a".into()],
            },
        ];
        let sets = feature_sets(&features);
        assert_eq!(
            sets,
            [vec![], vec!["a".to_string()], vec!["a".into(), "b".into()]]
        );
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
