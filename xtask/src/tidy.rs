//! Tidy checks over the workspace's own sources, run as ordinary tests so
//! that a plain `cargo test` enforces them (as rust-analyzer's
//! `xtask/src/tidy.rs` does).
//!
//! The rules, from the style guide: no hand-written source file has more
//! than 500 lines before its `#[cfg(test)]`, and the files of a crate do not
//! import each other in a circle. Every member the root `Cargo.toml` lists is
//! checked, every crate root of it (library and binaries) separately.
//!
//! # Layout
//! - `workspace`: the members, their `src/` files, and their crate roots.
//! - `modules`: the module tree of a crate, from its `mod` declarations.
//! - `length`: the file-length rule.
//! - `paths`: the crate-relative paths a file names.
//! - `circles`: the import graph between files and its circles.

mod circles;
mod length;
mod modules;
mod paths;
mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use circles::Circle;
use length::{LongFile, MAX_LINES};
use modules::ModuleTree;
use workspace::Sources;

/// Files allowed, for a while, to be over [`MAX_LINES`] (while a rewrite of
/// them is under way on another branch); none today. Only `server/` and
/// `sdk-rust/` may appear here. An entry that is no longer too long fails
/// the test, so the list cannot outlive its reason.
const KNOWN_LONG_FILES: &[&str] = &[];

/// Files allowed, for a while, to be in an import circle, with the same
/// rules as [`KNOWN_LONG_FILES`]; none today. A circle is allowed only when every
/// file in it is listed.
const KNOWN_CIRCLE_FILES: &[&str] = &[];

/// The crates whose findings may be allow-listed for now.
const ALLOWED_TO_LIST: &[&str] = &["server/", "sdk-rust/"];

/// One workspace member, read and parsed.
struct Member {
    name: String,
    sources: Sources,
    /// One tree per crate root.
    trees: Vec<ModuleTree>,
}

/// Every member of the workspace, with its module trees.
fn workspace() -> Vec<Member> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest directory has a parent");
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("the root Cargo.toml");
    let members = workspace::members(&manifest, root).expect("the workspace members");
    assert!(
        members.iter().any(|member| member == "xtask"),
        "the members read from the root Cargo.toml miss xtask itself: {members:?}"
    );
    members
        .into_iter()
        .map(|name| {
            let sources = workspace::read_sources(root, &name).expect("the member's sources");
            let roots = workspace::crate_roots(&sources, &name);
            assert!(!roots.is_empty(), "{name} has no crate root under src/");
            let trees = roots
                .iter()
                .map(|root| ModuleTree::build(&sources, root))
                .collect();
            Member {
                name,
                sources,
                trees,
            }
        })
        .collect()
}

/// Fails listing `findings` (minus the allow-listed ones), and fails too
/// for each allow-listed entry that is no longer found.
fn assert_only_known(rule: &str, findings: &[String], found: &BTreeSet<String>, known: &[&str]) {
    let mut failures = findings.to_vec();
    for entry in known {
        if !found.contains(*entry) {
            failures.push(format!(
                "{entry} is allow-listed but no longer breaks the rule: remove it from the list"
            ));
        }
        if !ALLOWED_TO_LIST
            .iter()
            .any(|prefix| entry.starts_with(prefix))
        {
            failures.push(format!(
                "{entry} is allow-listed, but only files under {ALLOWED_TO_LIST:?} may be"
            ));
        }
    }
    assert!(failures.is_empty(), "{rule}:\n  {}", failures.join("\n  "));
}

#[test]
fn every_file_is_in_a_crate_and_parses() {
    let mut problems = Vec::new();
    for member in workspace() {
        let reached: BTreeSet<&PathBuf> = member
            .trees
            .iter()
            .flat_map(|tree| tree.files.keys())
            .collect();
        for tree in &member.trees {
            problems.extend(tree.problems.iter().cloned());
        }
        for path in member.sources.keys() {
            if !reached.contains(path) {
                problems.push(format!(
                    "{} is in no module of {}: no crate root reaches it, so no rule checks its imports",
                    path.display(),
                    member.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn hand_written_files_are_short() {
    let mut long: Vec<LongFile> = Vec::new();
    for member in workspace() {
        // A file is test-only when every crate that reaches it reaches it
        // through `#[cfg(test)]`.
        let mut reached_for_tests = BTreeSet::new();
        let mut reached_otherwise = BTreeSet::new();
        for tree in &member.trees {
            for (path, file) in &tree.files {
                if file.test_only {
                    reached_for_tests.insert(path.clone());
                } else {
                    reached_otherwise.insert(path.clone());
                }
            }
        }
        let test_only = &reached_for_tests - &reached_otherwise;
        long.extend(length::long_files(&member.sources, &test_only, MAX_LINES));
    }
    let found: BTreeSet<String> = long
        .iter()
        .map(|file| file.path.display().to_string())
        .collect();
    let findings: Vec<String> = long
        .iter()
        .filter(|file| !KNOWN_LONG_FILES.contains(&file.path.display().to_string().as_str()))
        .map(|file| {
            format!(
                "{}: {} lines before its #[cfg(test)] (at most {MAX_LINES}); split it by concept",
                file.path.display(),
                file.lines
            )
        })
        .collect();
    assert_only_known("files too long", &findings, &found, KNOWN_LONG_FILES);
}

#[test]
fn files_do_not_import_each_other_in_a_circle() {
    let mut all: BTreeMap<String, Circle> = BTreeMap::new();
    for member in workspace() {
        for tree in &member.trees {
            for circle in circles::circles(tree) {
                all.insert(circle.to_string(), circle);
            }
        }
    }
    let found: BTreeSet<String> = all
        .values()
        .flat_map(|circle| circle.files.iter().map(|file| file.display().to_string()))
        .collect();
    let findings: Vec<String> = all
        .into_iter()
        .filter(|(_, circle)| {
            !circle
                .files
                .iter()
                .all(|file| KNOWN_CIRCLE_FILES.contains(&file.display().to_string().as_str()))
        })
        .map(|(text, _)| text)
        .collect();
    assert_only_known(
        "import circles between files (make the imports flow one way; a child may use its parent)",
        &findings,
        &found,
        KNOWN_CIRCLE_FILES,
    );
}

#[test]
#[should_panic(expected = "sdk-rust/src/gone.rs is allow-listed but no longer breaks the rule")]
fn an_allow_listed_file_that_no_longer_breaks_the_rule_fails() {
    let found = BTreeSet::from(["sdk-rust/src/still.rs".to_owned()]);
    assert_only_known(
        "rule",
        &[],
        &found,
        &["sdk-rust/src/still.rs", "sdk-rust/src/gone.rs"],
    );
}

#[test]
#[should_panic(expected = "only files under")]
fn only_the_crates_being_rewritten_may_be_allow_listed() {
    let found = BTreeSet::from(["tests/src/long.rs".to_owned()]);
    assert_only_known("rule", &[], &found, &["tests/src/long.rs"]);
}
