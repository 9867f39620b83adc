//! Runs every example in `sdk-rust/examples/` against a local server: each
//! asserts what it gets and exits non-zero otherwise.

mod common;

use std::path::{Path, PathBuf};

/// `target/<profile>/examples/NAME`, built here if `cargo test` did not
/// build the examples (e.g. `cargo test --test examples`).
fn example_binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    let target_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = target_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let status = std::process::Command::new(cargo)
            .args(["build", "--example", name, "--manifest-path", manifest])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    binary
}

#[test]
fn every_example_runs_and_succeeds() {
    let examples_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples_dir)
        .expect("the examples directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no examples in {}",
        examples_dir.display()
    );
    let server = common::server_binary();
    for name in names {
        let output = std::process::Command::new(example_binary(&name))
            .env(exec_client::SERVER_BINARY_ENV, &server)
            .output()
            .expect("running the example");
        assert!(
            output.status.success(),
            "example {name} failed with {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}
