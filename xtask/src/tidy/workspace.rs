//! The workspace as the tidy checks see it: the members the root
//! `Cargo.toml` lists, each member's `src/` files as text, and the crate
//! roots among them.
//!
//! The members are read from the manifest rather than written down here, so
//! a crate added to the workspace is checked without anyone remembering to
//! add it to the tidy tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Source files by their path relative to the workspace root
/// (`tests/src/lib.rs`), each with its text.
pub(super) type Sources = BTreeMap<PathBuf, String>;

/// The member directories of the `[workspace]` table in `manifest` (the text
/// of the root `Cargo.toml`), in the order written. A member ending in `/*`
/// stands for every directory under it that holds a `Cargo.toml`, looked up
/// under `root`.
pub(super) fn members(manifest: &str, root: &Path) -> Result<Vec<String>, String> {
    let listed = members_array(manifest)?;
    let mut members = Vec::new();
    for member in listed {
        let Some(parent) = member.strip_suffix("/*") else {
            members.push(member);
            continue;
        };
        let entries = fs::read_dir(root.join(parent))
            .map_err(|error| format!("cannot list the members under `{parent}`: {error}"))?;
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("Cargo.toml").is_file())
            .map(|entry| format!("{parent}/{}", entry.file_name().to_string_lossy()))
            .collect();
        found.sort();
        members.extend(found);
    }
    Ok(members)
}

/// The strings of `members = [...]` inside the `[workspace]` table.
fn members_array(manifest: &str) -> Result<Vec<String>, String> {
    let mut in_workspace = false;
    let mut array: Option<String> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(text) = &mut array {
            text.push_str(line);
            if line.contains(']') {
                break;
            }
            continue;
        }
        if line.starts_with('[') {
            in_workspace = line == "[workspace]";
            continue;
        }
        if in_workspace
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "members"
        {
            let value = value.trim().to_owned();
            let closed = value.contains(']');
            array = Some(value);
            if closed {
                break;
            }
        }
    }
    let text = array.ok_or("the root Cargo.toml has no `members` in `[workspace]`")?;
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .ok_or_else(|| format!("`members` is not an array: {text}"))?;
    Ok(inner
        .split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty())
        .collect())
}

/// Every `.rs` file under `<root>/<member>/src`, keyed by its path relative
/// to `root`.
pub(super) fn read_sources(root: &Path, member: &str) -> Result<Sources, String> {
    let mut sources = Sources::new();
    let mut pending = vec![Path::new(member).join("src")];
    while let Some(directory) = pending.pop() {
        let entries = fs::read_dir(root.join(&directory))
            .map_err(|error| format!("cannot list {}: {error}", directory.display()))?;
        for entry in entries {
            let entry = entry.map_err(|error| format!("in {}: {error}", directory.display()))?;
            let relative = directory.join(entry.file_name());
            let path = entry.path();
            if path.is_dir() {
                pending.push(relative);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = fs::read_to_string(&path)
                    .map_err(|error| format!("cannot read {}: {error}", relative.display()))?;
                sources.insert(relative, text);
            }
        }
    }
    Ok(sources)
}

/// The crate roots among `sources` of `member`, by Cargo's conventions:
/// `src/lib.rs`, `src/main.rs`, `src/bin/<name>.rs` and
/// `src/bin/<name>/main.rs`. Each is a crate of its own, with its own
/// `crate::` paths.
pub(super) fn crate_roots(sources: &Sources, member: &str) -> Vec<PathBuf> {
    let src = Path::new(member).join("src");
    let bin = src.join("bin");
    sources
        .keys()
        .filter(|path| {
            let Ok(inside) = path.strip_prefix(&src) else {
                return false;
            };
            let is_bin = match path.strip_prefix(&bin) {
                Ok(in_bin) => {
                    let parts = in_bin.components().count();
                    parts == 1 || (parts == 2 && in_bin.ends_with("main.rs"))
                }
                Err(_) => false,
            };
            inside == Path::new("lib.rs") || inside == Path::new("main.rs") || is_bin
        })
        .cloned()
        .collect()
}

/// `files` (path, text) as [`Sources`], for tests of the checks.
pub(super) fn in_memory(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_from_the_workspace_table_only() {
        let manifest = r#"
[package]
members = ["not-this"]

[workspace]
resolver = "3"
members = [
    "schema", # The protocol.
    "server",
    "testkit",
]

[workspace.package]
members = ["nor-this"]
"#;
        assert_eq!(
            members(manifest, Path::new("/nonexistent")),
            Ok(vec![
                "schema".to_owned(),
                "server".to_owned(),
                "testkit".to_owned()
            ])
        );
        let one_line = "[workspace]\nmembers = [\"bench\", \"xtask\"]\n";
        assert_eq!(
            members(one_line, Path::new("/nonexistent")),
            Ok(vec!["bench".to_owned(), "xtask".to_owned()])
        );
        assert!(members("[workspace]\n", Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn crate_roots_follow_cargo_conventions() {
        let sources: Sources = [
            "tool/src/lib.rs",
            "tool/src/main.rs",
            "tool/src/bin/one.rs",
            "tool/src/bin/two/main.rs",
            "tool/src/bin/two/helper.rs",
            "tool/src/module.rs",
            "tool/src/module/lib.rs",
        ]
        .into_iter()
        .map(|path| (PathBuf::from(path), String::new()))
        .collect();
        let roots: Vec<String> = crate_roots(&sources, "tool")
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        assert_eq!(
            roots,
            [
                "tool/src/bin/one.rs",
                "tool/src/bin/two/main.rs",
                "tool/src/lib.rs",
                "tool/src/main.rs",
            ]
        );
    }
}
